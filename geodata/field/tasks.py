"""My tasks (我的任务): the open events a grid worker can act on, overdue first, with distance.

"Mine" = open events assigned to me (``event.worker_id`` = my person) plus the
unassigned open events of my grids' queue, in a state where my role has an action
(read from :mod:`geodata.workflow`, so no state list is repeated here). Distance
from my position is measured on the geography, in metres.
"""
from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.config import STORAGE_SRID
from geodata.field.common import FieldUser, check_lonlat
from geodata.workflow import OPEN, allowed_actions

#: most tasks one list carries (a worker has tens; the cap keeps a bad day's answer small)
MAX_TASKS = 300

_TASKS = f"""
SELECT e.id, e.state, e.version, e.description, e.address, e.urgency, e.due_at, e.reported_at,
       s.name_zh AS subclass_zh, s.name_en AS subclass_en,
       ST_X(e.geom) AS lon, ST_Y(e.geom) AS lat,
       coalesce(e.due_at < now(), false) AS overdue,
       CASE WHEN CAST(:lon AS float8) IS NULL THEN NULL
            ELSE ST_Distance(e.geom::geography,
                             ST_SetSRID(ST_MakePoint(:lon, :lat), {STORAGE_SRID})::geography) END AS distance_m
  FROM event e
  JOIN event_subclass s ON s.code = e.subclass_code
 WHERE e.state = ANY (:states)
   AND (e.worker_id = :person
        OR (e.worker_id IS NULL AND e.grid_uid::text = ANY (:grids)))
 ORDER BY overdue DESC, e.due_at ASC NULLS LAST, e.reported_at ASC, e.id
 LIMIT {MAX_TASKS}
"""


def my_grid_uids(session: Session, person_id: int | None) -> list[str]:
    """The current grids whose worker is ``person_id`` (uids as text)."""
    if person_id is None:
        return []
    return list(session.execute(
        text("SELECT uid::text FROM grid WHERE worker_id = :p AND valid_to IS NULL ORDER BY code"),
        {"p": person_id},
    ).scalars())


def my_tasks(session: Session, user: FieldUser, lon=None, lat=None) -> list[dict]:
    """The caller's open tasks, overdue first, then by due time.

    Parameters
    ----------
    session : Session
        Scoped to the caller (RLS also hides other grids' events from grid workers).
    user : FieldUser
        The signed-in user (person id from the server-side session).
    lon, lat : float, optional
        The caller's position (storage CRS degrees); both or neither.

    Returns
    -------
    list of dict
        Event rows with ``distance_m`` (None without a position) and ``overdue``.
    """
    if (lon is None) != (lat is None):
        lon = lat = None
    if lon is not None:
        lon, lat = check_lonlat(lon, lat)
    states = [s.value for s in OPEN if allowed_actions(s, user.role)]
    if user.person_id is None or not states:
        return []
    rows = session.execute(
        text(_TASKS),
        {"states": states, "person": user.person_id, "grids": my_grid_uids(session, user.person_id),
         "lon": lon, "lat": lat},
    ).mappings()
    return [dict(r) for r in rows]
