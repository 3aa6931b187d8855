"""Queries behind the events table, the report form and the event panel.

Plain values in, plain dicts out; row-level security decides what the caller
sees, so none of these take a scope. State groups come from
:mod:`geodata.workflow` (``CLOSED``); no state list is repeated here.
"""
from __future__ import annotations

from datetime import datetime
from typing import Sequence

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.config import STORAGE_SRID
from geodata.queries import events_map

#: State groups the table filters by: the map layer's, with the same conditions.
STATE_GROUPS = events_map.STATE_GROUPS
#: Most rows the table receives; it pages and sorts them in the browser.
TABLE_CAP = 2000


def _where(state_group: str, class_code: str | None, start: datetime | None, end: datetime | None,
           village_id: int | None) -> tuple[str, dict]:
    condition, params = events_map.state_condition(state_group)
    where = [condition]
    if class_code:
        where.append("e.class_code = :class_code")
        params["class_code"] = class_code
    if start is not None:
        where.append("e.reported_at >= :start")
        params["start"] = start
    if end is not None:
        where.append("e.reported_at < :end")
        params["end"] = end
    if village_id is not None:
        where.append("e.village_id = :village_id")
        params["village_id"] = int(village_id)
    return " AND ".join(where), params


def event_rows(
    session: Session,
    *,
    state_group: str = "open",
    class_code: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    village_id: int | None = None,
    limit: int = TABLE_CAP,
) -> tuple[list[dict], int]:
    """Events for the table, newest first, and how many match in all.

    Parameters
    ----------
    session : Session
        A scoped session (RLS limits the rows).
    state_group : {'open', 'overdue', 'closed', 'all'}
    class_code : str, optional
        Event class (first category level).
    start, end : datetime, optional
        Report-time window ``[start, end)``.
    village_id : int, optional
    limit : int
        Cap on the rows returned (the count is not capped).

    Returns
    -------
    (list of dict, int)
        Rows (id, time, state, overdue flag, category, place, worker, deadline,
        rework count, lon/lat) and the number of matching events.
    """
    where, params = _where(state_group, class_code, start, end, village_id)
    params["limit"] = max(1, min(int(limit), 100_000))
    total = session.execute(text(f"SELECT count(*) FROM event e WHERE {where}"), params).scalar_one()
    rows = session.execute(
        text(
            f"""
            SELECT e.id, e.reported_at, e.state, e.version, e.urgency,
                   (e.state <> ALL (:closed) AND e.due_at < now()) AS overdue,
                   e.class_code, c.name_zh AS class_zh, c.name_en AS class_en,
                   s.name_zh AS subclass_zh, s.name_en AS subclass_en,
                   e.village_id, v.name AS village, g.code AS grid_code, w.name AS worker,
                   e.due_at, e.rework_count, e.escalation_level, e.boundary_pending, e.outside_grid,
                   left(e.description, 80) AS description,
                   ST_X(e.geom) AS lon, ST_Y(e.geom) AS lat
              FROM event e
              JOIN event_class c ON c.code = e.class_code
              JOIN event_subclass s ON s.code = e.subclass_code
              LEFT JOIN village v ON v.id = e.village_id
              LEFT JOIN grid g ON g.id = e.grid_id
              LEFT JOIN person w ON w.id = e.worker_id
             WHERE {where}
             ORDER BY e.reported_at DESC, e.id DESC
             LIMIT :limit
            """
        ),
        params,
    ).mappings()
    return [dict(r) for r in rows], int(total)


def village_workers(session: Session, village_id: int | None) -> list[dict]:
    """Active grid workers of a village with the codes of the current grids they serve.

    Parameters
    ----------
    village_id : int or None
        None (county queue) gives an empty list.

    Returns
    -------
    list of dict
        ``id``, ``name``, ``phone``, ``grids`` (list of grid codes), by name.
    """
    if village_id is None:
        return []
    rows = session.execute(
        text(
            """
            SELECT p.id, p.name, p.phone,
                   coalesce(array_agg(g.code ORDER BY g.code) FILTER (WHERE g.id IS NOT NULL), '{}') AS grids
              FROM person p
              LEFT JOIN grid g ON g.worker_id = p.id AND g.valid_to IS NULL
             WHERE p.village_id = :v AND p.duty = 'grid_worker' AND p.active
             GROUP BY p.id ORDER BY p.name, p.id
            """
        ),
        {"v": int(village_id)},
    ).mappings()
    return [{**dict(r), "grids": [str(c).strip() for c in r["grids"]]} for r in rows]


def grid_choices(session: Session, uids: Sequence[str]) -> list[dict]:
    """Current grids among ``uids`` that the caller can see, in the given order.

    Returns
    -------
    list of dict
        ``uid``, ``code``, ``name``, ``village``, ``worker_id``, ``worker`` (active worker or None).
    """
    uids = [str(u) for u in uids or ()]
    if not uids:
        return []
    rows = session.execute(
        text(
            """
            SELECT g.uid::text AS uid, g.code, g.name, v.name AS village, p.id AS worker_id, p.name AS worker
              FROM grid g JOIN village v ON v.id = g.village_id
              LEFT JOIN person p ON p.id = g.worker_id AND p.active
             WHERE g.valid_to IS NULL AND g.uid::text = ANY (:uids)
            """
        ),
        {"uids": uids},
    ).mappings()
    found = {r["uid"]: {**dict(r), "code": str(r["code"]).strip()} for r in rows}
    return [found[u] for u in uids if u in found]


def place_at(session: Session, lon: float, lat: float) -> dict:
    """What lies at a point, as far as the caller can see: village, town, current grid.

    Containment runs on the GiST indexes; the caller's scope hides what it may
    not see, which tells a reporter early that a point is outside their villages.

    Returns
    -------
    dict
        ``inside_county`` (bool), ``village_id``, ``village``, ``town``, ``grid_code``,
        ``grid_name``, ``worker`` (each None when nothing visible contains the point).
    """
    row = session.execute(
        text(
            f"""
            WITH p AS (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), {STORAGE_SRID}) AS geom)
            SELECT EXISTS (SELECT 1 FROM county c, p WHERE ST_Intersects(c.geom, p.geom)) AS inside_county,
                   v.id AS village_id, v.name AS village, t.name AS town,
                   g.code AS grid_code, g.name AS grid_name, w.name AS worker
              FROM p
              LEFT JOIN LATERAL (SELECT vv.id, vv.name, vv.town_id FROM village vv
                                  WHERE ST_Intersects(vv.geom, p.geom) ORDER BY vv.id LIMIT 1) v ON true
              LEFT JOIN town t ON t.id = v.town_id
              LEFT JOIN LATERAL (SELECT gg.code, gg.name, gg.worker_id FROM grid gg
                                  WHERE gg.valid_to IS NULL AND ST_Intersects(gg.geom, p.geom)
                                  ORDER BY gg.id LIMIT 1) g ON true
              LEFT JOIN person w ON w.id = g.worker_id
            """
        ),
        {"lon": float(lon), "lat": float(lat)},
    ).mappings().one()
    out = dict(row)
    if out["grid_code"] is not None:
        out["grid_code"] = str(out["grid_code"]).strip()
    return out


def photo_of_event(session: Session, event_id: int, photo_id: int) -> tuple[str, bytes] | None:
    """``(content_type, data)`` of a photo when it belongs to that event and is visible, else None."""
    row = session.execute(
        text("SELECT content_type, data FROM event_photo WHERE id = :pid AND event_id = :eid"),
        {"pid": int(photo_id), "eid": int(event_id)},
    ).first()
    return (row.content_type, bytes(row.data)) if row else None


def in_own_scope(session: Session, event_id: int) -> bool:
    """Whether the caller's scope covers the event, not only their own report (migration 0020).

    Parameters
    ----------
    session : Session
        A scoped session.
    event_id : int

    Returns
    -------
    bool
        True when the event's village and grid are in scope (the caller may act on it);
        False for a report the caller made into another grid, or an unknown id.
    """
    return bool(session.execute(text(
        "SELECT dvmap_village_visible(village_id) AND dvmap_grid_visible(grid_uid) FROM event WHERE id = :id"),
        {"id": int(event_id)}).scalar())
