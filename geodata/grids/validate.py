"""Checking a candidate grid polygon against its village and the current grids, in PostGIS.

:func:`validate` reads the candidate's validity first (``ST_IsValidReason`` and
where), then in one query what lies outside the village, which grids it overlaps
and the village's uncovered area after the change; the findings become
bilingual :class:`~geodata.grids.errors.Issue` s.
"""
from __future__ import annotations

from typing import Iterable, Mapping

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.config import METRIC_SRID, STORAGE_SRID
from geodata.grids.errors import Issue
from geodata.grids.geometry import _fmt_m2, _wkb, as_shape
from geodata.grids.read import _check_uid, _village_row
from geodata.grids.results import Validation
from geodata.grids.rules import AREA_EPSILON_M2, GJ_DIGITS, MIN_AREA_M2, SLIVER_MAX_SHARE, SLIVER_WIDTH_M

#: The candidate polygon, bound as WKB in the storage CRS.
CANDIDATE = f"ST_Multi(ST_GeomFromWKB(:wkb, {STORAGE_SRID}))"

_VALIDITY_SQL = f"""
SELECT ST_IsValid(c.g) AS valid, ST_IsValidReason(c.g) AS reason,
       ST_AsGeoJSON((ST_IsValidDetail(c.g)).location)::json AS location,
       ST_NPoints(c.g) AS vertices, ST_AsGeoJSON(c.g, {GJ_DIGITS})::json AS geometry
  FROM (SELECT {CANDIDATE} AS g) c
"""

# Outside area, clipped part, other villages, overlaps and the gap left, in one pass.
_MEASURE_SQL = f"""
WITH c AS (SELECT {CANDIDATE} AS g),
v AS (SELECT geom FROM village WHERE id = :v),
m0 AS (   -- covered by the village: the usual case needs no overlay at all
    SELECT c.g, ST_CoveredBy(c.g, v.geom) AS covered, ST_Area(ST_Transform(c.g, {METRIC_SRID})) AS area
      FROM c, v
),
m AS (
    SELECT m0.area,
           CASE WHEN m0.covered THEN 0
                ELSE ST_Area(ST_Transform(ST_Difference(m0.g, v.geom), {METRIC_SRID})) END AS outside,
           CASE WHEN m0.covered THEN m0.g
                ELSE ST_Multi(ST_CollectionExtract(ST_Intersection(m0.g, v.geom), 3)) END AS inside
      FROM m0, v
),
others AS (   -- only asked when the candidate sticks out
    SELECT coalesce(array_agg(o.name ORDER BY o.code), '{{}}') AS names
      FROM village o, c, m
     WHERE m.outside > :eps AND o.id <> :v AND o.geom && c.g AND ST_Intersects(o.geom, c.g)
       AND ST_Area(ST_Transform(ST_Intersection(o.geom, c.g), {METRIC_SRID})) > :eps
),
ov AS (
    SELECT g.uid::text AS uid, g.code, g.name, x.inter, g.geom AS og,
           ST_Area(ST_Transform(x.inter, {METRIC_SRID})) AS a,
           ST_Perimeter(ST_Transform(x.inter, {METRIC_SRID})) AS p
      FROM grid g, c,
           LATERAL (SELECT ST_CollectionExtract(ST_Intersection(g.geom, c.g), 3) AS inter) x
     WHERE g.village_id = :v AND g.valid_to IS NULL
       AND NOT (g.uid = ANY(CAST(:ignore AS uuid[])))
       AND g.geom && c.g AND ST_Intersects(g.geom, c.g)
),
ovk AS (SELECT * FROM ov WHERE a > :eps),
cover AS (
    SELECT ST_Union(geom) AS geom FROM (
        SELECT g.geom FROM grid g
         WHERE g.village_id = :v AND g.valid_to IS NULL
           AND NOT (g.uid = ANY(CAST(:ignore AS uuid[])))
        UNION ALL SELECT m.inside FROM m WHERE NOT ST_IsEmpty(m.inside)
    ) u
),
free AS (   -- the candidate minus the grids it overlaps: what "clip to free area" would save
    SELECT ST_Multi(ST_CollectionExtract(ST_Difference(m.inside, (SELECT ST_Union(og) FROM ovk)), 3)) AS g
      FROM m WHERE EXISTS (SELECT 1 FROM ovk)
),
gap AS (
    SELECT ST_Collect(d.geom) AS geom
      FROM v, cover,
           ST_Dump(ST_CollectionExtract(coalesce(ST_Difference(v.geom, cover.geom), v.geom), 3)) d
     WHERE ST_Area(ST_Transform(d.geom, {METRIC_SRID})) > :eps
)
SELECT m.area, m.outside, ST_AsGeoJSON(m.inside, {GJ_DIGITS})::json AS clipped,
       ST_IsEmpty(m.inside) AS inside_empty,
       ST_Area(ST_Transform(m.inside, {METRIC_SRID})) AS inside_m2,
       others.names AS other_villages,
       (SELECT coalesce(json_agg(json_build_object('uid', uid, 'code', code, 'name', name, 'area_m2', a,
                                                   'width_m', CASE WHEN p > 0 THEN 2 * a / p ELSE 0 END)
                                 ORDER BY a DESC), '[]'::json)
          FROM ovk) AS overlaps,
       (SELECT coalesce(sum(a), 0) FROM ovk) AS overlap_m2,
       (SELECT ST_AsGeoJSON(ST_Collect(inter), 9)::json FROM ovk) AS overlap_geometry,
       (SELECT ST_Area(ST_Transform(geom, {METRIC_SRID})) FROM v) AS village_m2,
       coalesce(ST_Area(ST_Transform(gap.geom, {METRIC_SRID})), 0) AS gap_m2,
       ST_AsGeoJSON(gap.geom, 9)::json AS gap_geometry,
       (SELECT ST_AsGeoJSON(g, {GJ_DIGITS})::json FROM free WHERE NOT ST_IsEmpty(g)) AS free,
       (SELECT ST_NumGeometries(g) FROM free) AS free_parts,
       (SELECT ST_Area(ST_Transform(g, {METRIC_SRID})) FROM free) AS free_m2
  FROM m, others, gap
"""


def validate(
    session: Session,
    village_id: int,
    geometry,
    *,
    ignore_uids: Iterable[str] = (),
) -> Validation:
    """Check a candidate grid polygon against its village and the current grids, in PostGIS.

    Parameters
    ----------
    session : Session
        A scoped session (RLS decides which villages and grids are seen).
    village_id : int
        The village the grid belongs to.
    geometry : dict, str or shapely geometry
        The candidate (see :func:`parse_polygon`).
    ignore_uids : iterable of str
        Grids the change replaces (the grid being edited, the grids being merged):
        they count neither as overlaps nor as cover for the gap figure.

    Returns
    -------
    Validation
        ``errors`` block saving (invalid geometry, outside the village or spanning two,
        overlap, too small); ``warnings`` do not (the village's remaining gaps).

    Raises
    ------
    GridInputError
        When the input cannot even be read as a polygon (see :func:`parse_polygon`).
    GridNotFound
        The village does not exist or is outside the caller's scope.
    """
    geom = as_shape(geometry)
    village = _village_row(session, village_id)
    ignore = [_check_uid(u) for u in ignore_uids]
    params = {"wkb": _wkb(geom), "v": village["id"], "ignore": ignore, "eps": AREA_EPSILON_M2}
    out = _validity(session, params)
    if not out.valid:
        return out
    row = session.execute(text(_MEASURE_SQL), params).mappings().one()
    inside_m2 = _measures(out, row)
    _placement_issue(out, row, village["name"], inside_m2)
    _overlap_size_gap_issues(out)
    out.ok = not out.errors
    return out


def _validity(session: Session, params: Mapping) -> Validation:
    """The candidate as PostGIS reads it; an ``invalid`` error (with where) when it is not valid."""
    base = session.execute(text(_VALIDITY_SQL), params).mappings().one()
    out = Validation(ok=False, geometry=base["geometry"], vertices=base["vertices"], valid=base["valid"])
    if not base["valid"]:
        out.reason = base["reason"]
        loc = base["location"]
        out.reason_location = loc["coordinates"][:2] if loc else None
        where = f" @ {out.reason_location[0]:.6f}, {out.reason_location[1]:.6f}" if out.reason_location else ""
        out.errors.append(Issue("invalid", f"几何无效(例如边自相交):{out.reason}{where}",
                                f"Invalid geometry (e.g. self-intersecting edges): {out.reason}{where}"))
    return out


def _measures(out: Validation, row: Mapping) -> float:
    """Copy the measured figures into ``out``; return the area inside the village (m²)."""
    out.area_m2 = float(row["area"])
    out.outside_m2 = float(row["outside"] or 0.0)
    out.other_villages = list(row["other_villages"] or [])
    out.overlaps = [dict(o) for o in row["overlaps"]]
    out.overlap_m2 = float(row["overlap_m2"] or 0.0)
    out.overlap_geometry = row["overlap_geometry"]
    out.gap_m2 = float(row["gap_m2"] or 0.0)
    out.gap_pct = 100.0 * out.gap_m2 / row["village_m2"] if row["village_m2"] else 0.0
    out.gap_geometry = row["gap_geometry"]
    # One piece, big enough to be a grid: offered as "clip to free area".
    if row["free"] and row["free_parts"] == 1 and float(row["free_m2"] or 0) >= MIN_AREA_M2:
        out.free, out.free_m2 = row["free"], float(row["free_m2"])
    out.sliver = bool(out.overlaps) and out.overlap_m2 < SLIVER_MAX_SHARE * out.area_m2 and all(
        float(o["width_m"]) <= SLIVER_WIDTH_M for o in out.overlaps)
    return float(row["inside_m2"] or 0.0)


def _placement_issue(out: Validation, row: Mapping, vname: str, inside_m2: float) -> None:
    """The candidate lies in another village / no village, or sticks out of its own."""
    if inside_m2 <= AREA_EPSILON_M2:
        if out.other_villages:
            names = "、".join(out.other_villages)
            out.errors.append(Issue("other_village", f"多边形位于{names},不在{vname}范围内。",
                                    f"The polygon lies in {', '.join(out.other_villages)}, not in {vname}."))
        else:
            out.errors.append(Issue("outside_all", "多边形不在任何村的范围内。",
                                    "The polygon lies outside every village."))
    elif out.outside_m2 > AREA_EPSILON_M2:
        out.clipped = row["clipped"]
        m2 = _fmt_m2(out.outside_m2)
        if out.other_villages:
            names = "、".join(out.other_villages)
            out.errors.append(Issue(
                "spanning",
                f"多边形跨越两个村({vname}与{names}),超出{vname} {m2} 平方米;可裁剪到村界后保存。",
                f"The polygon spans two villages ({vname} and {', '.join(out.other_villages)}): {m2} m² lie "
                f"outside {vname}; clip it to the village boundary to save."))
        else:
            out.errors.append(Issue(
                "outside", f"多边形超出{vname}村界 {m2} 平方米;可裁剪到村界后保存。",
                f"The polygon extends {m2} m² outside {vname}; clip it to the village boundary to save."))


def _overlap_size_gap_issues(out: Validation) -> None:
    """Overlaps and a too small area block saving; the village's remaining gaps only warn."""
    if out.overlaps:
        out.errors.append(_overlap_issue(out))
    if out.area_m2 < MIN_AREA_M2:
        out.errors.append(Issue(
            "too_small", f"面积过小:{_fmt_m2(out.area_m2)} 平方米(下限 {MIN_AREA_M2:,.0f} 平方米)。",
            f"Too small: {_fmt_m2(out.area_m2)} m² (minimum {MIN_AREA_M2:,.0f} m²)."))
    if out.gap_m2 > AREA_EPSILON_M2:
        out.warnings.append(Issue(
            "gaps", f"保存后村内仍有 {_fmt_m2(out.gap_m2)} 平方米({out.gap_pct:.2f}%)未划入网格(地图上斜线区域)。",
            f"After saving, {_fmt_m2(out.gap_m2)} m² ({out.gap_pct:.2f}%) of the village are in no grid "
            "(hatched on the map)."))


def _overlap_issue(out: Validation) -> Issue:
    """Snapping only for slivers; a real overlap must be redrawn (or clipped to the free area)."""
    codes = "、".join(o["code"] for o in out.overlaps)
    codes_en = ", ".join(o["code"] for o in out.overlaps)
    m2 = _fmt_m2(out.overlap_m2)
    if out.sliver:
        return Issue("overlap", f"与现有网格 {codes} 有细小重叠 {m2} 平方米(地图上红色区域);可用“吸附”消除。",
                     f"A sliver of {m2} m² overlaps existing grid(s) {codes_en} (red on the map); "
                     "'Snap' removes it.")
    zh = (f"与现有网格 {codes} 重叠 {m2} 平方米(地图上红色区域),重叠过大,吸附无法消除:"
          f"请重画边界避开相邻网格")
    en = (f"Overlaps existing grid(s) {codes_en} by {m2} m² (red on the map), too much for snapping: "
          "redraw the boundary clear of the neighbouring grids")
    if out.free:
        zh += f",或点击“裁剪到空白区”只保留不重叠的 {_fmt_m2(out.free_m2)} 平方米"
        en += f", or press 'Clip to free area' to keep only the {_fmt_m2(out.free_m2)} m² that overlap nothing"
    return Issue("overlap", zh + "。", en + ".")
