"""Spatial analysis for planners: hot spots, density clusters, service coverage, rasters.

* :mod:`~geodata.analysis.gistar` — Getis-Ord Gi* (own vectorised numpy/scipy code).
* :mod:`~geodata.analysis.hotspots` — Gi* on H3 hexagons or grids, heat (natural breaks), two chosen windows.
* :mod:`~geodata.analysis.clusters` — DBSCAN in PostGIS (``ST_ClusterDBSCAN``).
* :mod:`~geodata.analysis.coverage` — people within D metres of facilities; what-if.
* :mod:`~geodata.analysis.raster` — zonal statistics and raster rendering.
* :mod:`~geodata.analysis.actions` — bulk open/assign of a hot spot's events.
* :mod:`~geodata.analysis.tasks` — a hot cell → one 排查任务 per grid, dispatched, linked to the run.
* :mod:`~geodata.analysis.export` — a result as GeoJSON, GeoPackage, zipped Shapefile, CSV or offline HTML.

Every function takes a scoped session and plain values and returns an
:class:`~geodata.analysis.result.AnalysisResult` (or plain data); bad input raises
:class:`~geodata.analysis.errors.AnalysisError` with a bilingual message.
"""
from geodata.analysis.errors import AnalysisError
from geodata.analysis.result import AnalysisResult, LegendEntry

__all__ = ["AnalysisError", "AnalysisResult", "LegendEntry"]
