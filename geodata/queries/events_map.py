"""Events on the map: counts per village or grid when zoomed out, points when zoomed in.

At a million events a county view must not ship every point: counts are grouped in
PostGIS (index on reported_at + state), points are cut to the viewport with the GiST
index and capped. Filters: state group, event class, time window.
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.clock import zone_name
from geodata.config import STORAGE_SRID
from geodata.queries.layers import BBox, _bbox_params, _fc
from geodata.workflow import CLOSED

#: SQL condition of each state group (``:closed`` = the workflow's CLOSED states);
#: the map layer and the events table filter the same way.
STATE_CONDITIONS = {
    "open": "e.state <> ALL (:closed)",
    "overdue": "e.state <> ALL (:closed) AND e.due_at < now()",
    "closed": "e.state = ANY (:closed)",
    "all": "TRUE",
}
STATE_GROUPS = tuple(STATE_CONDITIONS)


def state_condition(state_group: str) -> tuple[str, dict]:
    """SQL condition and parameters selecting events of ``state_group``.

    Raises
    ------
    ValueError
        For an unknown group.
    """
    if state_group not in STATE_CONDITIONS:
        raise ValueError(f"unknown state group {state_group!r}")
    return STATE_CONDITIONS[state_group], {"closed": [s.value for s in CLOSED]}


def _filters(state_group: str, class_code: str | None, days: int) -> tuple[str, dict]:
    condition, state_params = state_condition(state_group)
    days = int(days)
    if not 1 <= days <= 3660:
        raise ValueError(f"days out of range: {days}")
    closed = state_params["closed"]
    where = ["e.reported_at >= now() - make_interval(days => :days)", condition]
    if class_code:
        where.append("e.class_code = :class_code")
    return " AND ".join(where), {"days": days, "closed": closed, "class_code": class_code}


#: Day boundaries of the windows ``event_points`` reads newest-first (see there).
WINDOW_CUTS = (7, 30, 90, 365, 730, 1825)


def event_points(session: Session, bbox: BBox, *, state_group: str = "open", class_code: str | None = None,
                 days: int = 30, limit: int = 3000) -> dict:
    """Event points in ``bbox`` (newest first, at most ``limit``; ``truncated`` = limit when cut).

    The query is :func:`points_query`'s.
    """
    fc = _fc(session, *points_query(session, bbox, state_group=state_group, class_code=class_code, days=days,
                                    limit=limit))
    if len(fc["features"]) >= int(limit):
        fc["truncated"] = int(limit)  # the map says "newest N shown" (a foreign member, RFC 7946 §6.1)
    return fc


def points_query(session: Session, bbox: BBox, *, state_group: str = "open", class_code: str | None = None,
                 days: int = 30, limit: int = 3000) -> tuple[str, dict]:
    """SQL and parameters of the event points in ``bbox`` (one row per GeoJSON feature).

    Parameters
    ----------
    state_group : {'open', 'overdue', 'closed', 'all'}
    class_code : str, optional
        Event class (first level of the category tree).
    days : int
        Time window: events reported in the last ``days`` days.

    Notes
    -----
    A street-level view over years of history can hold 50,000+ events, of which the
    newest ``limit`` are shown. Sorting them all costs ~100 ms, so the window is cut
    into slices (last 7 days, 7–30, 30–90, … days ago), each sorted on its own and
    concatenated newest slice first under one LIMIT: PostgreSQL's Append runs a slice
    only when the newer ones did not fill the limit, and each slice reads its rows
    through the GiST index on (geom, reported_at).
    """
    where, params = _filters(state_group, class_code, days)
    days = params["days"]
    cuts = [0] + [c for c in WINDOW_CUTS if c < days] + [days]
    # The slices' bounds are parameters (from the database's clock), not now() - …:
    # so the planner prunes each slice to its one or two yearly partitions.
    now = session.execute(text("SELECT now()")).scalar_one()
    bounds = {f"t{i}": now - timedelta(days=c) for i, c in enumerate(cuts)}
    slices = []
    for k in range(len(cuts) - 1):
        upper = "" if k == 0 else f" AND e.reported_at < :t{k}"
        slices.append(
            f"""(SELECT e.id, e.geom, e.state, e.due_at, e.reported_at, e.subclass_code
                   FROM event e
                  WHERE e.geom && ST_MakeEnvelope(:w, :s, :e, :n, {STORAGE_SRID})
                    AND e.reported_at >= :t{k + 1}{upper} AND {where}
                  ORDER BY e.reported_at DESC
                  LIMIT :limit)"""
        )
    return (
        f"""
        SELECT 'Feature' AS type, e.id AS id, ST_AsGeoJSON(e.geom, 6)::json AS geometry,
               json_build_object('id', e.id, 'kind', 'event', 'state', e.state, 'subclass', s.name_zh,
                                 'overdue', (e.state <> ALL (:closed) AND e.due_at < now()),
                                 'reported_at', to_char(e.reported_at AT TIME ZONE :tz,
                                                        'YYYY-MM-DD HH24:MI')) AS properties
          FROM (SELECT * FROM ({" UNION ALL ".join(slices)}) AS newest_first LIMIT :limit) AS e
          JOIN event_subclass s ON s.code = e.subclass_code
        """,
        {**_bbox_params(bbox), **params, **bounds, "limit": int(limit), "tz": zone_name()},
    )


def event_counts(session: Session, level: str, *, state_group: str = "open", class_code: str | None = None,
                 days: int = 30) -> dict:
    """Event counts (and overdue counts) per village or per current grid, at a point inside it."""
    where, params = _filters(state_group, class_code, days)
    if level == "village":
        unit_sql = """SELECT v.id AS unit, v.name, v.label_point AS pt, v.geom FROM village v"""
        key = "e.village_id"
    elif level == "grid":
        unit_sql = """SELECT g.uid AS unit, g.name, ST_PointOnSurface(g.geom) AS pt, g.geom
                        FROM grid g WHERE g.valid_to IS NULL"""
        key = "e.grid_uid"
    else:
        raise ValueError(f"unknown level {level!r}")
    return _fc(
        session,
        f"""
        WITH counts AS (
            SELECT {key} AS unit, count(*) AS n,
                   count(*) FILTER (WHERE e.state <> ALL (:closed) AND e.due_at < now()) AS overdue
              FROM event e WHERE {key} IS NOT NULL AND {where}
             GROUP BY {key})
        SELECT 'Feature' AS type, CAST(:level AS text) || '-' || u.unit AS id,
               ST_AsGeoJSON(u.pt, 6)::json AS geometry,
               json_build_object('kind', 'event_aggregate', 'level', CAST(:level AS text), 'name', u.name,
                                 'count', c.n, 'overdue', c.overdue,
                                 'bounds', json_build_array(json_build_array(ST_YMin(u.geom), ST_XMin(u.geom)),
                                                            json_build_array(ST_YMax(u.geom), ST_XMax(u.geom))))
                   AS properties
          FROM counts c JOIN ({unit_sql}) u ON u.unit = c.unit
        """,
        {**params, "level": level},
    )


def event_classes(session: Session) -> list[dict]:
    """Event classes (first level), for the filter."""
    rows = session.execute(text("SELECT code, name_zh, name_en FROM event_class ORDER BY sort"))
    return [dict(r._mapping) for r in rows]
