"""The analyses on files (for ``dvmap analyze ... --input FILE``): the same statistics as on the database.

Hot spots take points (counted per H3 hexagon) or polygons with a value column (Gi* on
the polygons, queen contiguity). Clusters send the points to PostGIS
(``ST_ClusterDBSCAN``). Coverage takes a population polygon file and a facility point
file (population spread uniformly over each polygon, as in the database analysis).
Zonal statistics take a raster and a polygon file.
"""
from __future__ import annotations

import numpy as np
import shapely

from geodata.analysis import gistar as gs
from geodata.analysis.cells import h3_cells
from geodata.analysis.errors import AnalysisError
from geodata.analysis.result import AnalysisResult, LegendEntry, feature
from geodata.analysis.selection import require_events
from geodata.config import METRIC_SRID, STORAGE_SRID


def _points(gdf):
    if not (gdf.geom_type == "Point").all():
        raise AnalysisError("not_points", "该分析需要点要素文件。", "This analysis needs a file of points.")
    return gdf.geometry.x.to_numpy(), gdf.geometry.y.to_numpy()


def hotspots_file(gdf, *, value: str | None = None, resolution: int = 8, weights: str = "queen",
                  band_m: float | None = None, transform: str = "R", permutations: int = 999, seed: int = 42,
                  fdr: bool = False) -> AnalysisResult:
    """Gi* on a file: points counted per H3 cell, or polygons with a ``value`` column."""
    polygons = gdf.geom_type.isin(["Polygon", "MultiPolygon"]).all()
    if polygons:
        if not value or value not in gdf.columns:
            raise AnalysisError("no_value", "面要素文件需要用 --value 指定数值列。",
                                "A polygon file needs --value naming its numeric column.")
        metric = gdf.to_crs(METRIC_SRID)
        y = metric[value].astype(float).fillna(0).to_numpy()
        if weights == "distance":
            xy = np.column_stack([metric.centroid.x, metric.centroid.y])
            w = gs.distance_band_weights(xy, band_m or gs.min_band_for_neighbours(xy) * 1.0001)
        else:
            w = gs.queen_weights(metric.geometry.values, tolerance=1.0)
        geoms, keys = list(gdf.geometry.values), [str(i) for i in gdf.index]
        unit_zh, unit_en = "面要素", "polygons"
    else:
        lon, lat = _points(gdf)
        require_events(len(lon), 30, "Gi* 热点分析", "Gi* hot-spot analysis")
        area = shapely.MultiPoint(np.column_stack([lon, lat])).convex_hull.buffer(0.005)
        cells = h3_cells(area, resolution, (lon, lat))
        idx = cells.assign(lon, lat, None, None)
        y = cells.counts(idx)
        w = cells.weights(weights, band_m or (gs.min_band_for_neighbours(cells.xy) * 1.0001))
        geoms, keys = cells.geoms, cells.ids
        unit_zh, unit_en = f"H3 六边形(分辨率 {resolution})", f"H3 hexagons (resolution {resolution})"
    res = gs.gi_star(y, w, transform, permutations, seed, fdr)
    p = res.p_sim if res.p_sim is not None else res.p_norm
    feats = [feature(geoms[i], keys[i], gs.CLASS_COLORS[int(res.classes[i])], value=float(y[i]),
                     z=round(float(res.z[i]), 4), p=round(float(p[i]), 4), cls=int(res.classes[i]),
                     cls_zh=gs.CLASS_LABELS[int(res.classes[i])][0], cls_en=gs.CLASS_LABELS[int(res.classes[i])][1])
             for i in range(len(keys))]
    wzh, wen = gs.describe_weights(w, transform)
    legend = [LegendEntry(*gs.CLASS_LABELS[k], gs.CLASS_COLORS[k]) for k in (3, 2, 1, 0, -1, -2, -3)]
    summary = {"units": len(keys), "hot": int((res.classes > 0).sum()), "cold": int((res.classes < 0).sum())}
    return AnalysisResult("hotspots", f"热点分析(Gi*,{unit_zh})", f"Hot spots (Gi*, {unit_en})", feats, legend,
                          summary, [(wzh, wen)], {"value": value, "resolution": resolution, "weights": w.kind,
                                                  "transform": transform, "permutations": permutations,
                                                  "seed": seed, "fdr": fdr})


def clusters_file(session, gdf, eps_m: float, min_points: int) -> AnalysisResult:
    """DBSCAN (PostGIS) on the points of a file; hulls with counts."""
    from pyproj import Transformer

    from geodata.analysis.clusters import CLUSTER_COLORS, check_params, dbscan_xy

    eps, mp = check_params(eps_m, min_points)
    lon, lat = _points(gdf)
    require_events(len(lon), mp, "DBSCAN 聚类", "DBSCAN clustering")
    x, y = Transformer.from_crs(STORAGE_SRID, METRIC_SRID, always_xy=True).transform(lon, lat)
    labels = dbscan_xy(session, np.column_stack([x, y]), eps, mp)
    feats, legend = [], []
    order = sorted(set(labels[labels >= 0].tolist()), key=lambda c: -(labels == c).sum())
    for rank, c in enumerate(order):
        m = labels == c
        hull = shapely.MultiPoint(np.column_stack([lon[m], lat[m]])).convex_hull
        if hull.geom_type != "Polygon":
            hull = hull.buffer(0.0001)
        color = CLUSTER_COLORS[rank % len(CLUSTER_COLORS)]
        feats.append(feature(hull, f"c{c}", color, cluster=int(c), rank=rank + 1, count=int(m.sum())))
        if rank < 8:
            legend.append(LegendEntry(f"聚类 #{rank + 1}({int(m.sum())} 个)", f"Cluster #{rank + 1} ({int(m.sum())})",
                                      color))
    points = [feature(shapely.Point(a, b), f"p{i}", "#333333", cluster=int(labels[i]))
              for i, (a, b) in enumerate(zip(lon, lat))]
    summary = {"points": len(lon), "clusters": len(order), "noise": int((labels < 0).sum())}
    return AnalysisResult("clusters", "密度聚类(DBSCAN)", "Density clusters (DBSCAN)", feats, legend, summary,
                          [(f"PostGIS ST_ClusterDBSCAN,EPSG:{METRIC_SRID},eps {eps:g} 米,最少点数 {mp}",
                            f"PostGIS ST_ClusterDBSCAN, EPSG:{METRIC_SRID}, eps {eps:g} m, min points {mp}")],
                          {"eps_m": eps, "min_points": mp}, points)


def coverage_file(population, value: str, facilities, distance_m: float) -> AnalysisResult:
    """People (``value`` of each population polygon, spread uniformly) within ``distance_m`` of a facility."""
    from geodata.analysis.coverage import COVERAGE_COLORS, DESERT_COLOR

    if not value or value not in population.columns:
        raise AnalysisError("no_value", "人口文件需要用 --value 指定人口列。", "The population file needs --value.")
    try:
        d = float(distance_m)
    except (TypeError, ValueError):
        d = float("nan")
    if not np.isfinite(d) or d <= 0:
        raise AnalysisError("bad_distance", "服务半径必须大于 0 米。", "The service distance must be greater than 0 m.")
    _points(facilities)
    pop = population.to_crs(METRIC_SRID)
    reach = shapely.union_all(facilities.to_crs(METRIC_SRID).buffer(d, 16).values)
    area = pop.area.to_numpy()
    inter = pop.intersection(reach).area.to_numpy()
    share = np.divide(inter, area, out=np.zeros_like(area), where=area > 0)
    people = pop[value].astype(float).fillna(0).to_numpy()
    covered = people * share
    back = pop.geometry.to_crs(STORAGE_SRID).values
    gaps = pop.difference(reach).to_crs(STORAGE_SRID).values
    feats = [feature(back[i], str(k), COVERAGE_COLORS[min(4, int(share[i] * 5))], people=round(people[i]),
                     covered=round(covered[i]), share=round(float(share[i]), 4))
             for i, k in enumerate(pop.index)]
    deserts = [feature(gaps[i], f"gap-{k}", DESERT_COLOR, uncovered=round(people[i] - covered[i]))
               for i, k in enumerate(pop.index) if not gaps[i].is_empty and people[i] - covered[i] >= 0.5]
    total = float(people.sum())
    summary = {"people": round(total), "covered": round(float(covered.sum())),
               "uncovered": round(total - float(covered.sum())),
               "share": round(float(covered.sum()) / total, 4) if total else None, "facilities": len(facilities)}
    legend = [LegendEntry(f"覆盖 {20 * i}–{20 * (i + 1)}%", f"{20 * i}–{20 * (i + 1)} % covered", c)
              for i, c in enumerate(COVERAGE_COLORS)] + [LegendEntry("服务盲区", "Service desert", DESERT_COLOR)]
    return AnalysisResult("coverage", f"服务覆盖({d:,.0f} 米)", f"Service coverage ({d:,.0f} m)", feats, legend,
                          summary, [(f"人口按面要素面积均匀分布;直线距离,EPSG:{METRIC_SRID}。",
                                     f"Population spread uniformly over each polygon; straight-line distance, EPSG:{METRIC_SRID}.")],
                          {"distance_m": d, "value": value}, deserts)


def zonal_file(raster, zones, band: int = 1) -> AnalysisResult:
    """Zonal statistics (sum/mean/max) of ``raster`` over the polygons of ``zones``."""
    from geodata.analysis.raster import CHORO, zonal_frame
    from geodata.analysis.result import sequential_colors

    frame, notes = zonal_frame(raster, zones, band=band)
    colors, _ = sequential_colors(frame["sum"].fillna(0).to_numpy(), CHORO)
    feats = []
    for i, (k, geom) in enumerate(zip(zones.index, zones.to_crs(STORAGE_SRID).geometry.values)):
        row = frame.iloc[i]
        feats.append(feature(geom, str(k), colors[i], **{c: (None if not np.isfinite(row[c]) else round(float(row[c]), 4))
                                                         for c in ("sum", "mean", "max", "pixels")}))
    return AnalysisResult("zonal", "分区统计", "Zonal statistics", feats, [], {"zones": len(zones)}, notes,
                          {"band": band})
