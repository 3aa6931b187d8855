"""Patrol coverage per grid and ISO week (巡查覆盖率).

For each current grid in the caller's scope: the week's patrol count, km walked and
hours of the patrols of that grid, the **coverage** — the share of the grid's area
within ``DVMAP_PATROL_BUFFER_M`` (default 50 m) of any track of the week that
reaches it — and the share of its active key points checked in that week. A grid
below ``DVMAP_PATROL_MIN_COVERAGE`` (default 0.6) is flagged. Buffers and areas are
computed in PostGIS in the metric CRS (EPSG:4549), never in degrees. Tracks are
read under row-level security, so a caller sees coverage from the tracks they may see.
"""
from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.config import METRIC_SRID, get_settings
from geodata.field.common import Week

_COVERAGE = f"""
WITH g AS (
    SELECT gr.uid, gr.code, gr.name, gr.village_id, v.name AS village, w.name AS worker,
           ST_Transform(gr.geom, {METRIC_SRID}) AS gm, gr.geom
      FROM grid gr
      JOIN village v ON v.id = gr.village_id
      LEFT JOIN person w ON w.id = gr.worker_id
     WHERE gr.valid_to IS NULL
       AND (CAST(:w AS float8) IS NULL
            OR gr.geom && ST_MakeEnvelope(:w, :s, :e, :n, ST_SRID(gr.geom)))
       AND (CAST(:grid AS text) IS NULL OR gr.uid::text = :grid)
), p AS (
    SELECT id, grid_uid, distance_m, geom,
           extract(epoch FROM coalesce(ended_at, last_point_at, started_at) - started_at) AS secs
      FROM patrol
     WHERE started_at >= :start AND started_at < :end
)
SELECT g.uid::text AS grid_uid, g.code, g.name, g.village, g.worker,
       ST_AsGeoJSON(g.geom, 6)::json AS geometry,
       (SELECT count(*) FROM p WHERE p.grid_uid = g.uid) AS patrols,
       (SELECT coalesce(sum(p.distance_m), 0) / 1000.0 FROM p WHERE p.grid_uid = g.uid) AS km,
       (SELECT coalesce(sum(p.secs), 0) / 3600.0 FROM p WHERE p.grid_uid = g.uid) AS hours,
       (SELECT ST_Area(ST_Intersection(g.gm, ST_Union(ST_Buffer(ST_Transform(p.geom, {METRIC_SRID}), :buf))))
          FROM p WHERE p.geom IS NOT NULL
           AND ST_DWithin(ST_Transform(p.geom, {METRIC_SRID}), g.gm, :buf)) / nullif(ST_Area(g.gm), 0) AS coverage,
       (SELECT count(*) FROM checkpoint c WHERE c.grid_uid = g.uid AND c.active) AS key_points,
       (SELECT count(DISTINCT ci.checkpoint_id) FROM checkin ci
          JOIN checkpoint c ON c.id = ci.checkpoint_id AND c.grid_uid = g.uid AND c.active
          JOIN p ON p.id = ci.patrol_id) AS key_points_checked
  FROM g
 ORDER BY g.code
"""


def weekly_coverage(session: Session, week: Week, *, bbox: tuple[float, float, float, float] | None = None,
                    grid_uid: str | None = None, buffer_m: float | None = None,
                    min_coverage: float | None = None, with_geometry: bool = False) -> list[dict]:
    """Patrol figures and coverage of every current grid in scope for one ISO week.

    Parameters
    ----------
    session : Session
        Scoped session; grids and tracks are what RLS lets the caller see.
    week : Week
        From :func:`geodata.field.common.iso_week`.
    bbox : (w, s, e, n), optional
        Only grids meeting this box (storage CRS degrees), for a map view.
    grid_uid : str, optional
        Only this grid.
    buffer_m, min_coverage : float, optional
        Override ``DVMAP_PATROL_BUFFER_M`` / ``DVMAP_PATROL_MIN_COVERAGE``.
    with_geometry : bool
        Keep each grid's GeoJSON geometry (for the map layer).

    Returns
    -------
    list of dict
        ``grid_uid, code, name, village, worker, patrols, km, hours, coverage (0–1),
        key_points, key_points_checked, key_point_share (0–1 or None), flagged``.
    """
    settings = get_settings()
    buf = float(settings.patrol_buffer_m if buffer_m is None else buffer_m)
    floor = float(settings.patrol_min_coverage if min_coverage is None else min_coverage)
    w, s, e, n = bbox if bbox is not None else (None, None, None, None)
    rows = session.execute(
        text(_COVERAGE),
        {"start": week.start, "end": week.end, "buf": buf, "w": w, "s": s, "e": e, "n": n, "grid": grid_uid},
    ).mappings()
    out = []
    for r in rows:
        item = dict(r)
        if not with_geometry:
            item.pop("geometry")
        cov = min(1.0, float(item["coverage"] or 0.0))
        item.update(
            coverage=round(cov, 4), km=round(float(item["km"]), 2), hours=round(float(item["hours"]), 2),
            key_point_share=(round(item["key_points_checked"] / item["key_points"], 4)
                             if item["key_points"] else None),
            flagged=cov < floor, week=week.label,
        )
        out.append(item)
    return out
