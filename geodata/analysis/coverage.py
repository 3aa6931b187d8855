"""Service coverage: people within D metres of the nearest facility of a type, per grid and village.

How population is placed: each grid's population (``population`` rows with a
``grid_uid``, latest year) is assumed spread **uniformly over the grid's area**; a grid
whose area lies x % within D metres of a facility has x % of its people covered.
Villages add up their grids; a village without grid figures uses its own row, spread
over the village. Distances are straight-line, in EPSG:4549 metres (buffers of D m
around every facility, merged). Facilities come from :sql:`dvmap_facilities` (0007), so
the facility of the next village counts even for a village-scoped user; the population
side follows the caller's scope (RLS).

A what-if facility is only a parameter of the query: nothing is written.
"""
from __future__ import annotations

import json
import math

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.analysis.errors import AnalysisError
from geodata.analysis.result import AnalysisResult, LegendEntry
from geodata.config import METRIC_SRID, STORAGE_SRID

MEASURES = {"total": ("总人口", "people"), "age_60_plus": ("60岁以上老人", "people aged 60+")}
COVERAGE_COLORS = ["#d7191c", "#fdae61", "#ffffbf", "#a6d96a", "#1a9641"]  # 0–20 … 80–100 % covered
DESERT_COLOR = "#7f0000"
MAX_DISTANCE_M = 50_000


def check_params(session: Session, resource_type: str, distance_m, measure: str) -> tuple[str, float, str]:
    """Validate a coverage request.

    Raises
    ------
    AnalysisError
        ``bad_type``, ``bad_distance`` or ``bad_measure``.
    """
    known = session.execute(text("SELECT name_zh, name_en FROM resource_type WHERE code = :c"),
                            {"c": str(resource_type)}).first()
    if known is None:
        raise AnalysisError("bad_type", f"未知的设施类型:{resource_type}", f"Unknown facility type: {resource_type}")
    try:
        d = float(distance_m)
    except (TypeError, ValueError):
        d = float("nan")
    if not math.isfinite(d) or d <= 0 or d > MAX_DISTANCE_M:
        raise AnalysisError("bad_distance", f"服务半径须在 0–{MAX_DISTANCE_M:,} 米之间且大于 0。",
                            f"The service distance must be greater than 0 and at most {MAX_DISTANCE_M:,} m.")
    if measure not in MEASURES:
        raise AnalysisError("bad_measure", f"未知的人口指标:{measure}", f"Unknown population measure: {measure}")
    return str(resource_type), d, measure


def facility_points(session: Session, resource_type: str) -> list[tuple[int, float, float]]:
    """All facilities of a type county-wide: ``(id, lon, lat)`` (see :sql:`dvmap_facilities`)."""
    rows = session.execute(text("SELECT id, ST_X(geom), ST_Y(geom) FROM dvmap_facilities(:t)"),
                           {"t": resource_type}).all()
    return [(int(r[0]), float(r[1]), float(r[2])) for r in rows]


def _check_points(points) -> list[tuple[float, float]]:
    out = []
    for p in points or ():
        try:
            lon, lat = float(p[0]), float(p[1])
        except (TypeError, ValueError, IndexError):
            raise AnalysisError("bad_point", "假设设施的位置无效。", "Invalid location for the hypothetical facility.") \
                from None
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise AnalysisError("bad_point", "假设设施的位置无效。", "Invalid location for the hypothetical facility.")
        out.append((lon, lat))
    return out


# One statement; :xs/:ys are the facilities (existing + hypothetical), lon/lat.
_UNITS_SQL = f"""
WITH fac AS (
    SELECT ST_Union(ST_Buffer(ST_Transform(ST_SetSRID(ST_MakePoint(x, y), {STORAGE_SRID}), {METRIC_SRID}), :d, 16)) AS g
      FROM unnest(CAST(:xs AS float8[]), CAST(:ys AS float8[])) AS f(x, y)
), yr AS (SELECT max(year) AS y FROM population),
grids AS (
    SELECT 'grid' AS level, g.id::text AS key, g.code, g.name, g.village_id, v.name AS village,
           ST_Transform(g.geom, {METRIC_SRID}) AS geom, p.total, p.age_60_plus
      FROM grid g JOIN village v ON v.id = g.village_id
      JOIN population p ON p.grid_uid = g.uid AND p.year = (SELECT y FROM yr)
     WHERE g.valid_to IS NULL {{grid_cond}}
), villages_without_grids AS (
    SELECT 'village' AS level, v.id::text AS key, v.code, v.name, v.id AS village_id, v.name AS village,
           ST_Transform(v.geom, {METRIC_SRID}) AS geom, p.total, p.age_60_plus
      FROM village v JOIN population p ON p.village_id = v.id AND p.grid_uid IS NULL AND p.year = (SELECT y FROM yr)
     WHERE NOT EXISTS (SELECT 1 FROM grids WHERE grids.village_id = v.id) {{village_cond}}
), units AS (
    SELECT * FROM grids UNION ALL SELECT * FROM villages_without_grids
), measured AS (
    SELECT u.*, ST_Area(u.geom) AS area,
           CASE WHEN fac.g IS NULL THEN 0 ELSE ST_Area(ST_Intersection(u.geom, fac.g)) END AS covered_area,
           CASE WHEN fac.g IS NULL THEN u.geom ELSE ST_Difference(u.geom, fac.g) END AS gap
      FROM units u CROSS JOIN fac
)
SELECT level, key, code, name, village_id, village, total, age_60_plus, area, covered_area,
       CASE WHEN :with_geom THEN ST_AsGeoJSON(ST_Transform(ST_SimplifyPreserveTopology(geom, 5), {STORAGE_SRID}), 6) END
           AS geojson,
       CASE WHEN :with_geom AND NOT ST_IsEmpty(gap) AND ST_Area(gap) > 1
            THEN ST_AsGeoJSON(ST_Transform(ST_SimplifyPreserveTopology(gap, 5), {STORAGE_SRID}), 6) END AS gap_geojson
  FROM measured ORDER BY level, code
"""


def _units(session, xs, ys, d, village_ids, with_geom):
    grid_cond = village_cond = ""
    params = {"xs": xs, "ys": ys, "d": d, "with_geom": with_geom}
    if village_ids:
        grid_cond = "AND g.village_id = ANY(:vids)"
        village_cond = "AND v.id = ANY(:vids)"
        params["vids"] = [int(v) for v in village_ids]
    sql = _UNITS_SQL.replace("{grid_cond}", grid_cond).replace("{village_cond}", village_cond)
    return session.execute(text(sql), params).mappings().all()


def _share_color(share: float) -> str:
    return COVERAGE_COLORS[min(4, int(share * 5))] if share < 1 else COVERAGE_COLORS[4]


def coverage(session: Session, resource_type: str, distance_m: float, *, measure: str = "total",
             level: str = "grid", village_ids=(), hypothetical=(), progress=None) -> AnalysisResult:
    """Population within ``distance_m`` metres of the nearest ``resource_type`` facility.

    Parameters
    ----------
    session : Session
        A scoped session.
    resource_type : str
        ``resource_type.code`` (``elderly_care``, ``clinic``, ``school`` ...).
    distance_m : float
        Service distance in metres (> 0).
    measure : {'total', 'age_60_plus'}
        Whose coverage: everybody or people aged 60+.
    level : {'grid', 'village'}
        The units drawn (both are summarised).
    village_ids : sequence of int
        Restrict to these villages (default: all the caller may see).
    hypothetical : sequence of (lon, lat)
        Extra facilities assumed to exist (what-if; nothing is written).

    Returns
    -------
    AnalysisResult
        ``features``: the units coloured by share covered; ``points``: the uncovered parts
        ("service deserts") with their uncovered people; ``summary``: people, covered,
        uncovered, share.
    """
    report = progress or (lambda *a: None)
    rtype, d, measure = check_params(session, resource_type, distance_m, measure)
    if level not in ("grid", "village"):
        raise AnalysisError("bad_level", "统计单元须为网格或行政村。", "The unit must be grid or village.")
    extra = _check_points(hypothetical)
    report(0.1, "读取设施", "Reading facilities")
    fac = facility_points(session, rtype)
    xs = [f[1] for f in fac] + [p[0] for p in extra]
    ys = [f[2] for f in fac] + [p[1] for p in extra]
    report(0.3, "计算覆盖范围", "Computing coverage")
    rows = _units(session, xs, ys, d, village_ids, True)
    if not rows:
        raise AnalysisError("empty_selection", "所选范围内没有人口数据。", "No population figures in the selection.")
    report(0.8, "整理结果", "Preparing the result")
    name_zh, name_en = session.execute(text("SELECT name_zh, name_en FROM resource_type WHERE code = :c"),
                                       {"c": rtype}).one()
    mz, me = MEASURES[measure]
    villages: dict[int, dict] = {}
    grid_feats, deserts = [], []
    for r in rows:
        people = float(r[measure] or 0)
        share = (r["covered_area"] / r["area"]) if r["area"] else 0.0
        covered = people * share
        v = villages.setdefault(r["village_id"], {"village": r["village"], "people": 0.0, "covered": 0.0,
                                                  "geoms": []})
        v["people"] += people
        v["covered"] += covered
        props = {"level": r["level"], "code": r["code"], "name": r["name"], "village": r["village"],
                 "people": round(people), "covered": round(covered), "uncovered": round(people - covered),
                 "share": round(share, 4), "label": r["name"]}
        grid_feats.append({"type": "Feature", "id": r["key"], "geometry": json.loads(r["geojson"]),
                           "properties": {"_key": r["key"], "_color": _share_color(share), **props}})
        if r["gap_geojson"] and people - covered >= 0.5:
            deserts.append({"type": "Feature", "id": f"gap-{r['key']}", "geometry": json.loads(r["gap_geojson"]),
                            "properties": {"_key": f"gap-{r['key']}", "_color": DESERT_COLOR,
                                           "name": r["name"], "village": r["village"],
                                           "uncovered": round(people - covered),
                                           "label": f"{r['name']}:{round(people - covered)} 人未覆盖"}})
    if level == "village":
        feats = _village_features(session, villages)
    else:
        feats = grid_feats
    total = sum(v["people"] for v in villages.values())
    covered = sum(v["covered"] for v in villages.values())
    summary = {"people": round(total), "covered": round(covered), "uncovered": round(total - covered),
               "share": round(covered / total, 4) if total else None, "facilities": len(fac),
               "hypothetical": len(extra), "desert_areas": len(deserts),
               "villages": {str(k): {"village": v["village"], "people": round(v["people"]),
                                     "covered": round(v["covered"])} for k, v in villages.items()}}
    legend = [LegendEntry(f"覆盖 {20 * i}–{20 * (i + 1)}%", f"{20 * i}–{20 * (i + 1)} % covered", c)
              for i, c in enumerate(COVERAGE_COLORS)]
    legend.append(LegendEntry(f"服务盲区(距{name_zh}超过 {d:,.0f} 米)",
                              f"Service desert (over {d:,.0f} m from {name_en.lower()})", DESERT_COLOR, "line"))
    notes = [(f"{mz}按网格面积均匀分布(每个网格的人口均摊到其面积上);直线距离,EPSG:{METRIC_SRID}。",
              f"{me.capitalize()} spread uniformly over each grid's area; straight-line distance, EPSG:{METRIC_SRID}."),
             (f"设施:全县 {len(fac)} 处{name_zh}" + (f",另加 {len(extra)} 处假设设施(未写入数据库)" if extra else ""),
              f"Facilities: all {len(fac)} {name_en.lower()} facilities in the county"
              + (f", plus {len(extra)} hypothetical (not saved)" if extra else ""))]
    params = {"resource_type": rtype, "distance_m": d, "measure": measure, "level": level,
              "village_ids": list(village_ids or ()), "hypothetical": [list(p) for p in extra]}
    return AnalysisResult("coverage", f"{name_zh}服务覆盖({d:,.0f} 米,{mz})",
                          f"{name_en} coverage ({d:,.0f} m, {me})", feats, legend, summary, notes, params, deserts)


def _village_features(session, villages: dict) -> list[dict]:
    if not villages:
        return []
    rows = session.execute(text(
        "SELECT id, code, name, ST_AsGeoJSON(ST_SimplifyPreserveTopology(geom, 0.00005), 6) AS gj FROM village"
        " WHERE id = ANY(:ids)"), {"ids": list(villages)}).mappings().all()
    out = []
    for r in rows:
        v = villages[r["id"]]
        share = v["covered"] / v["people"] if v["people"] else 0.0
        out.append({"type": "Feature", "id": str(r["id"]), "geometry": json.loads(r["gj"]),
                    "properties": {"_key": str(r["id"]), "_color": _share_color(share), "level": "village",
                                   "code": r["code"], "name": r["name"], "people": round(v["people"]),
                                   "covered": round(v["covered"]), "uncovered": round(v["people"] - v["covered"]),
                                   "share": round(share, 4), "label": r["name"]}})
    return out


def what_if(session: Session, resource_type: str, distance_m: float, points, *, measure: str = "total",
            village_ids=()) -> dict:
    """Coverage gain of hypothetical facilities at ``points`` (lon, lat), without writing anything.

    Returns
    -------
    dict
        ``before``/``after`` covered people, ``gain`` (people), ``gain_share`` (of all people
        in the selection), ``people``, ``share_before``/``share_after``, and ``top`` — the
        grids/villages that gain most.
    """
    rtype, d, measure = check_params(session, resource_type, distance_m, measure)
    extra = _check_points(points)
    if not extra:
        raise AnalysisError("empty_selection", "请先在地图上点击放置假设设施。",
                            "Click on the map to place a hypothetical facility first.")
    fac = facility_points(session, rtype)
    xs, ys = [f[1] for f in fac], [f[2] for f in fac]
    before = _units(session, xs, ys, d, village_ids, False)
    after = _units(session, xs + [p[0] for p in extra], ys + [p[1] for p in extra], d, village_ids, False)

    def covered(r):
        return float(r[measure] or 0) * (r["covered_area"] / r["area"] if r["area"] else 0.0)

    people = sum(float(r[measure] or 0) for r in before)
    cb = sum(covered(r) for r in before)
    ca = sum(covered(r) for r in after)
    gains = sorted(((covered(a) - covered(b), a["name"], a["village"]) for a, b in zip(after, before)),
                   reverse=True)
    return {"people": round(people), "before": round(cb), "after": round(ca), "gain": round(ca - cb),
            "gain_share": round((ca - cb) / people, 4) if people else None,
            "share_before": round(cb / people, 4) if people else None,
            "share_after": round(ca / people, 4) if people else None,
            "top": [{"name": n, "village": v, "gain": round(g)} for g, n, v in gains[:5] if g >= 0.5],
            "resource_type": rtype, "distance_m": d, "measure": measure, "points": [list(p) for p in extra]}
