"""Re-routing open events after a village's grids change.

:mod:`geodata.events` routes an event once, when it is reported, and changes its
route only through workflow actions (``accept``/``dispatch``/``reassign``), which
move the state machine and need a dispatcher's decision. When a grid manager
redraws, splits, merges, deletes or re-staffs grids, the open events inside the
changed area must follow the new grids without any state change — so this module
is the one other writer of an event's route (``grid_uid``, ``grid_id``,
``worker_id``, ``queue``, ``outside_grid``). It follows the events service's
conventions: the event's ``version`` goes up by one (a dispatcher holding the old
version gets :class:`geodata.events.StaleVersion`), and each changed event gets one
``event_history`` row — action ``reroute``, state unchanged — in the caller's
transaction. Closed events (:data:`geodata.workflow.CLOSED`) are never touched:
they keep the grid they were handled in.
"""
from __future__ import annotations

import json

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.events import record_history
from geodata.identity import Actor
from geodata.workflow import OPEN

__all__ = ["REROUTE", "reroute_open_events"]

#: ``event_history.action`` of a route change caused by a grid change (not a workflow action).
REROUTE = "reroute"
REROUTE_NOTE = "网格调整,自动改派至新网格 / re-routed after a grid change"

_SQL = """
WITH area AS (
    SELECT ST_Union(geom) AS geom FROM grid WHERE id = ANY(CAST(:ids AS bigint[]))
), cand AS (
    SELECT e.id, e.reported_at, e.state, e.version, e.grid_uid, e.grid_id, e.worker_id, e.geom
      FROM event e, area
     WHERE e.village_id = :village AND e.state = ANY(CAST(:open AS text[]))
       AND (e.grid_id = ANY(CAST(:closed AS bigint[]))
            OR (e.geom && area.geom AND ST_Intersects(e.geom, area.geom)))
       FOR UPDATE OF e
), target AS (
    SELECT c.*, g.id AS new_grid_id, g.uid AS new_grid_uid,
           (SELECT p.id FROM person p WHERE p.id = g.worker_id AND p.active) AS new_worker_id
      FROM cand c
      LEFT JOIN LATERAL (
            SELECT gr.id, gr.uid, gr.worker_id FROM grid gr
             WHERE gr.valid_to IS NULL AND gr.village_id = :village
               AND gr.geom && c.geom AND ST_Intersects(gr.geom, c.geom)
             ORDER BY gr.id LIMIT 1) g ON true
     WHERE g.id IS DISTINCT FROM c.grid_id OR
           (SELECT p.id FROM person p WHERE p.id = g.worker_id AND p.active) IS DISTINCT FROM c.worker_id
), upd AS (
    UPDATE event e
       SET grid_id = t.new_grid_id, grid_uid = t.new_grid_uid, worker_id = t.new_worker_id,
           queue = CASE WHEN t.new_grid_id IS NULL THEN 'village' ELSE 'grid' END,
           outside_grid = (t.new_grid_id IS NULL), version = e.version + 1, updated_at = :at
      FROM target t
     WHERE e.id = t.id AND e.reported_at = t.reported_at AND e.version = t.version
    RETURNING e.id, e.reported_at, e.village_id, e.state, e.version, e.subclass_code, e.description,
              t.grid_uid AS from_grid_uid, t.grid_id AS from_grid_id, t.worker_id AS from_worker_id,
              t.new_grid_uid AS to_grid_uid, t.new_grid_id AS to_grid_id, t.new_worker_id AS to_worker_id
)
SELECT u.id, u.state, u.version, u.subclass_code, s.name_zh AS subclass_zh, s.name_en AS subclass_en,
       u.description, u.from_grid_uid::text AS from_grid_uid, u.to_grid_uid::text AS to_grid_uid,
       fg.code AS from_grid_code, tg.code AS to_grid_code,
       u.from_worker_id, fw.name AS from_worker, u.to_worker_id, tw.name AS to_worker,
       u.reported_at, u.from_grid_id, u.to_grid_id
  FROM upd u
  JOIN event_subclass s ON s.code = u.subclass_code
  LEFT JOIN grid fg ON fg.id = u.from_grid_id
  LEFT JOIN grid tg ON tg.id = u.to_grid_id
  LEFT JOIN person fw ON fw.id = u.from_worker_id
  LEFT JOIN person tw ON tw.id = u.to_worker_id
 ORDER BY u.id
"""


def reroute_open_events(
    session: Session,
    *,
    village_id: int,
    closed_ids,
    created_ids,
    actor: Actor,
    change_id: int | None = None,
    at=None,
) -> list[dict]:
    """Move the open events of a changed area to the grid (and worker) now covering them.

    Runs after the grid rows of a change were closed and inserted, in the same
    transaction. An open event of the village is considered when it was routed
    to one of the closed grid versions or lies inside the area of the closed or
    created versions; it is re-routed when the current grid containing it (or
    none: the village queue) or that grid's active worker differs from its route.

    Parameters
    ----------
    session : Session
        The grid service's session (RLS applies; a grid manager sees the village's events).
    village_id : int
    closed_ids, created_ids : sequence of int
        ``grid.id`` of the versions the change closed and inserted.
    actor : Actor
        Written to each history row.
    change_id : int, optional
        The ``grid_change`` row, recorded in each history row's ``data``.
    at : datetime, optional
        Time of the change (default: ``clock_timestamp()``).

    Returns
    -------
    list of dict
        One per re-routed event: ``id``, ``state``, new ``version``, category, description,
        from/to grid uid and code, from/to worker id and name.
    """
    closed = [int(i) for i in closed_ids]
    ids = closed + [int(i) for i in created_ids]
    if not ids:
        return []
    if at is None:
        at = session.execute(text("SELECT clock_timestamp()")).scalar_one()
    rows = session.execute(
        text(_SQL),
        {
            "ids": ids, "closed": closed, "village": int(village_id),
            "open": sorted(s.value for s in OPEN), "at": at,
        },
    ).mappings().all()
    # One history row per re-routed event, written by the function that checks it against
    # the event (migration 0014): a second statement, once the UPDATE is visible.
    record_history(session, [{
        "event_id": r["id"], "event_reported_at": r["reported_at"], "at": at, "actor": actor.name,
        "actor_role": actor.role, "actor_user_id": actor.user_id, "action": REROUTE, "from_state": r["state"],
        "to_state": r["state"], "version": r["version"], "note": REROUTE_NOTE,
        "data": {"grid_change_id": None if change_id is None else int(change_id),
                 "from_grid_uid": r["from_grid_uid"], "to_grid_uid": r["to_grid_uid"],
                 "from_grid_id": r["from_grid_id"], "to_grid_id": r["to_grid_id"],
                 "from_worker_id": r["from_worker_id"], "to_worker_id": r["to_worker_id"]},
    } for r in rows])
    out = []
    for r in rows:
        d = dict(r)
        for internal in ("reported_at", "from_grid_id", "to_grid_id"):
            d.pop(internal)
        out.append(json.loads(json.dumps(d, default=str)))
    return out
