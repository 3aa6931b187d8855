"""Snapping a candidate polygon onto the village boundary and its neighbours' edges.

In the metric CRS (:data:`geodata.config.METRIC_SRID`) vertices move onto
reference vertices or edges within a tolerance, then back in the storage CRS
coinciding vertices are made bit-identical to the neighbours', and slivers
thinner than the tolerance are trimmed or filled.
"""
from __future__ import annotations

import math
from typing import Iterable

import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.config import METRIC_SRID, STORAGE_SRID
from geodata.grids.errors import GridInputError
from geodata.grids.geometry import _wkb, as_shape, count_vertices, drop_specks
from geodata.grids.read import _check_uid, _village_row
from geodata.grids.results import SnapResult
from geodata.grids.rules import DEFAULT_SNAP_M, GJ_DIGITS, MAX_SNAP_M
from geodata.grids.validate import CANDIDATE

_SNAP_SQL = f"""
WITH c AS (SELECT {CANDIDATE} AS g),
refs AS (
    SELECT gr.geom FROM grid gr, c
     WHERE gr.village_id = :v AND gr.valid_to IS NULL
       AND NOT (gr.uid = ANY(CAST(:ignore AS uuid[])))
       AND gr.geom && ST_Expand(c.g, :deg)
    UNION ALL SELECT geom FROM village WHERE id = :v
),
ref AS (   -- every reference boundary, in the storage CRS and in metres
    SELECT ST_Collect(ST_Boundary(geom)) AS l_store,
           ST_Transform(ST_Collect(ST_Boundary(geom)), {METRIC_SRID}) AS lm
      FROM refs
),
refpts AS (SELECT DISTINCT d.geom AS p FROM ref, ST_DumpPoints(ref.lm) d),
cv AS (
    SELECT d.path, d.geom AS p FROM c, ST_DumpPoints(ST_Transform(c.g, {METRIC_SRID})) d
),
moved AS (   -- each vertex: to the nearest reference vertex, else onto the nearest edge, within tol
    SELECT cv.path, cv.p AS old,
           coalesce((SELECT r.p FROM refpts r WHERE ST_DWithin(r.p, cv.p, :tol) ORDER BY r.p <-> cv.p LIMIT 1),
                    (SELECT ST_ClosestPoint(ref.lm, cv.p) FROM ref WHERE ST_DWithin(ref.lm, cv.p, :tol)),
                    cv.p) AS p
      FROM cv
),
rings AS (
    SELECT path[1] AS part, path[2] AS ring,
           ST_RemoveRepeatedPoints(ST_MakeLine(p ORDER BY path[3])) AS line
      FROM moved GROUP BY path[1], path[2]
),
good AS (SELECT * FROM rings WHERE ST_NPoints(line) >= 4 AND ST_IsClosed(line)),
polys AS (
    SELECT s.part, ST_MakePolygon(s.line, coalesce(
               (SELECT array_agg(h.line ORDER BY h.ring) FROM good h WHERE h.part = s.part AND h.ring > 1),
               '{{}}')) AS poly
      FROM good s WHERE s.ring = 1
),
snapped AS (  -- then the neighbours' vertices along the snapped edges, so shared edges match
    SELECT ST_Snap(ST_MakeValid(ST_Collect(poly)), (SELECT ST_Collect(p) FROM refpts), :tol) AS gm FROM polys
),
back AS (     -- bit-identical vertices where they coincide with a neighbour's (within ~1 cm)
    SELECT ST_Snap(ST_Transform(snapped.gm, {STORAGE_SRID}), ref.l_store, 1e-7) AS g FROM snapped, ref
)
SELECT ST_AsBinary(ST_Multi(ST_CollectionExtract(ST_MakeValid(back.g), 3))) AS g,
       (SELECT count(*) FROM moved WHERE path[3] > 1 AND NOT ST_Equals(moved.p, moved.old)) AS moved
  FROM back
"""

_SLIVER_SQL = f"""
WITH s AS (SELECT ST_GeomFromWKB(:snapped, {STORAGE_SRID}) AS g),
v AS (SELECT geom FROM village WHERE id = :v),
nb AS (
    SELECT ST_Union(gr.geom) AS geom FROM grid gr, s
     WHERE gr.village_id = :v AND gr.valid_to IS NULL AND NOT (gr.uid = ANY(CAST(:ignore AS uuid[])))
       AND gr.geom && ST_Expand(s.g, :deg)
),
bad AS (     -- thin pieces over a neighbour or outside the village: trimmed
    SELECT d.geom FROM s, nb, ST_Dump(ST_CollectionExtract(ST_Intersection(s.g, nb.geom), 3)) d
     WHERE ST_IsEmpty(ST_Buffer(ST_Transform(d.geom, {METRIC_SRID}), -:half))
    UNION ALL
    SELECT d.geom FROM s, v, ST_Dump(ST_CollectionExtract(ST_Difference(s.g, v.geom), 3)) d
     WHERE ST_IsEmpty(ST_Buffer(ST_Transform(d.geom, {METRIC_SRID}), -:half))
),
trimmed AS (
    SELECT CASE WHEN EXISTS (SELECT 1 FROM bad)
                THEN ST_Difference(s.g, (SELECT ST_Union(geom) FROM bad)) ELSE s.g END AS g FROM s
),
holes AS (   -- thin gaps along the candidate, inside the village and in no grid: filled
    SELECT d.geom FROM trimmed, v, nb,
           ST_Dump(ST_CollectionExtract(
               ST_Difference(ST_Intersection(ST_Transform(ST_Buffer(ST_Transform(trimmed.g, {METRIC_SRID}), :tol), {STORAGE_SRID}), v.geom),
                             ST_Union(trimmed.g, coalesce(nb.geom, 'GEOMETRYCOLLECTION EMPTY'::geometry))), 3)) d
     WHERE ST_IsEmpty(ST_Buffer(ST_Transform(d.geom, {METRIC_SRID}), -:half))
       AND ST_Intersects(d.geom, ST_Transform(ST_Buffer(ST_Transform(trimmed.g, {METRIC_SRID}), 0.01), {STORAGE_SRID}))
)
SELECT ST_AsBinary(ST_Multi(ST_CollectionExtract(ST_MakeValid(
           CASE WHEN EXISTS (SELECT 1 FROM holes)
                THEN ST_Union(trimmed.g, (SELECT ST_Union(geom) FROM holes)) ELSE trimmed.g END), 3))) AS g,
       coalesce((SELECT sum(ST_Area(ST_Transform(geom, {METRIC_SRID}))) FROM bad), 0) AS trimmed_m2,
       coalesce((SELECT sum(ST_Area(ST_Transform(geom, {METRIC_SRID}))) FROM holes), 0) AS filled_m2
  FROM trimmed
"""

_FINAL_SQL = (f"SELECT ST_AsGeoJSON(g, {GJ_DIGITS})::json AS gj, ST_NPoints(g) AS n, ST_IsEmpty(g) AS empty"
              f" FROM (SELECT ST_Multi(ST_GeomFromWKB(:g, {STORAGE_SRID})) AS g) x")


def _deg(metres: float) -> float:
    """A generous bbox margin in degrees for ``metres`` (longitude degrees shrink with latitude)."""
    return 2.0 * metres / 111_000.0 / 0.5


def snap(
    session: Session,
    village_id: int,
    geometry,
    tolerance_m: float = DEFAULT_SNAP_M,
    *,
    ignore_uids: Iterable[str] = (),
) -> SnapResult:
    """Snap a candidate's vertices to the village boundary and neighbouring grid edges.

    In the metric CRS (:data:`geodata.config.METRIC_SRID`, metres): every vertex within ``tolerance_m`` of a reference
    vertex (neighbouring current grids, the village boundary) moves onto it, else
    onto the nearest reference edge if that is within the tolerance; then
    ``ST_Snap`` inserts the reference vertices that lie along the snapped edges.
    Back in the storage CRS, vertices within ~1 cm of a reference vertex are made
    identical to it (``ST_Snap`` with 1e-7°), so shared edges match exactly.
    Finally slivers thinner than the tolerance are removed: thin overlaps with
    neighbours and thin parts outside the village are cut off, thin gaps between
    the candidate and its neighbours are filled.

    Parameters
    ----------
    session : Session
    village_id : int
    geometry : dict, str or shapely geometry
    tolerance_m : float
        Snapping distance in metres, 0 < tolerance ≤ :data:`MAX_SNAP_M`.
    ignore_uids : iterable of str
        Grids not to snap to (the grid being edited).

    Returns
    -------
    SnapResult

    Raises
    ------
    GridInputError
        Unreadable geometry or a tolerance out of range, or snapping collapsed the polygon.
    """
    geom = as_shape(geometry)
    tol = _check_tolerance(tolerance_m)
    village = _village_row(session, village_id)
    ignore = [_check_uid(u) for u in ignore_uids]
    params = {"wkb": _wkb(geom), "v": village["id"], "ignore": ignore, "tol": tol, "deg": _deg(tol)}
    row = session.execute(text(_SNAP_SQL), params).mappings().one()
    if row["g"] is None:
        raise _collapsed()
    fix = session.execute(text(_SLIVER_SQL), {
        "snapped": bytes(row["g"]), "v": village["id"], "ignore": ignore, "deg": _deg(tol), "tol": tol, "half": tol / 2,
    }).mappings().one()
    cleaned = drop_specks(shapely.from_wkb(bytes(fix["g"])))
    final = session.execute(text(_FINAL_SQL), {"g": _wkb(cleaned)}).mappings().one()
    if final["empty"]:
        raise _collapsed()
    return SnapResult(
        geometry=final["gj"], tolerance_m=tol, moved=int(row["moved"]), vertices_before=count_vertices(geom),
        vertices_after=int(final["n"]), trimmed_m2=float(fix["trimmed_m2"]), filled_m2=float(fix["filled_m2"]),
    )


def _check_tolerance(tolerance_m) -> float:
    try:
        tol = float(tolerance_m)
    except (TypeError, ValueError):
        tol = float("nan")
    if not (math.isfinite(tol) and 0 < tol <= MAX_SNAP_M):
        raise GridInputError(f"吸附距离须在 0–{MAX_SNAP_M:g} 米之间。",
                             f"The snapping distance must be between 0 and {MAX_SNAP_M:g} m.", "tolerance")
    return tol


def _collapsed() -> GridInputError:
    return GridInputError("吸附后多边形退化,请减小吸附距离。",
                          "Snapping collapsed the polygon; use a smaller distance.", "snap_collapsed")
