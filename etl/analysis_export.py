"""Files for the planners' analyses: reading the points/polygons the CLI analyses.

Any format GDAL reads, or a CSV with lon/lat columns; a file without geometry is
refused with a clear message. Writing results moved to :mod:`geodata.analysis.export`
(the analysis page's callback needs it, and callbacks do not import etl); its names
are re-exported here for the CLI and older callers.
"""
from __future__ import annotations

from pathlib import Path

from geodata.analysis.errors import AnalysisError
from geodata.analysis.export import FORMATS, MEDIA_TYPES, export_result, folium_html  # noqa: F401  (re-exported)
from geodata.config import STORAGE_SRID

_LON = ("lon", "lng", "longitude", "x", "经度")
_LAT = ("lat", "latitude", "y", "纬度")


# -- reading files for the CLI ---------------------------------------------------------------------
def read_features(path: str | Path, *, layer: str | None = None, lon: str | None = None, lat: str | None = None):
    """Read a point/polygon file into a GeoDataFrame in EPSG:4490.

    GeoPackage, GeoJSON, Shapefile (or anything pyogrio reads); a CSV needs lon/lat
    columns (``lon``/``lng``/``longitude``/``x`` and ``lat``/``latitude``/``y``, or named).

    Raises
    ------
    AnalysisError
        ``no_geometry`` (no geometry column and no lon/lat columns), ``unreadable``,
        ``no_crs`` (a spatial file without a CRS).
    """
    import geopandas as gpd
    import pandas as pd

    path = Path(path)
    try:
        if path.suffix.lower() in (".csv", ".txt"):
            df = pd.read_csv(path, encoding="utf-8-sig")
            cols = {c.lower(): c for c in df.columns}
            xc = lon or next((cols[c] for c in _LON if c in cols), None)
            yc = lat or next((cols[c] for c in _LAT if c in cols), None)
            if xc is None or yc is None or xc not in df.columns or yc not in df.columns:
                raise AnalysisError("no_geometry", f"文件 {path.name} 没有几何列,也没有经纬度列(lon/lat)。",
                                    f"{path.name} has no geometry column and no lon/lat columns.")
            return gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(df[xc], df[yc]), crs=STORAGE_SRID)
        gdf = gpd.read_file(path, layer=layer)
    except AnalysisError:
        raise
    except Exception as exc:  # any reader failure is one message
        raise AnalysisError("unreadable", f"无法读取文件 {path.name}:{exc}", f"Cannot read {path.name}: {exc}") from None
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.geometry is None or gdf.geometry.isna().all():
        raise AnalysisError("no_geometry", f"文件 {path.name} 没有几何列。", f"{path.name} has no geometry column.")
    if gdf.crs is None:
        raise AnalysisError("no_crs", f"文件 {path.name} 没有坐标系。", f"{path.name} has no coordinate reference system.")
    return gdf.to_crs(STORAGE_SRID)
