"""Demo patrols: key points in every demo grid and a week of patrol tracks for a few workers.

So the patrol coverage layer and the /patrol table are not empty after ``make demo``
(``dvmap bigscreen-demo`` calls :func:`load_demo_patrols`). Deterministic from the
seed and idempotent: key points are added only to grids without any, and each
(worker, day) patrol has a fixed key, so a second run stores nothing new.

The walkers are the demo account ``worker`` and the workers of the other grids of
its village. Workers without an account get a data-only account
(``demo-patrol-<person id>``, disabled, no usable password), because a patrol
belongs to a user. Tracks are built in PostGIS: points scattered in the grid, visited
in order of bearing around its centre, densified every 25 m in the metric CRS, one
position every 20 s (a walking pace).
"""
from __future__ import annotations

import random
import uuid
from datetime import datetime, time, timedelta, timezone

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.clock import display_zone
from geodata.config import METRIC_SRID, STORAGE_SRID

NAMESPACE = uuid.UUID("5b0c4a6e-3f1d-4c61-9a57-2f1f4f3c9e10")
KEY_POINT_NAMES = ("村委会门口", "垃圾收集点", "河道桥头", "文化礼堂", "路口监控杆")

_CHECKPOINTS = f"""
INSERT INTO checkpoint (grid_uid, village_id, name, geom, radius_m)
SELECT g.uid, g.village_id, (ARRAY{list(KEY_POINT_NAMES)!r})[d.path[1]], d.geom, 50
  FROM grid g
 CROSS JOIN LATERAL ST_Dump(ST_GeneratePoints(g.geom, 3, :seed + g.id::int)) d
 WHERE g.valid_to IS NULL AND NOT EXISTS (SELECT 1 FROM checkpoint c WHERE c.grid_uid = g.uid)
"""

_POINTS = f"""
WITH g AS (SELECT geom, ST_Centroid(geom) AS c FROM grid WHERE uid = CAST(:grid AS uuid) AND valid_to IS NULL),
stops AS (SELECT d.geom FROM g, ST_Dump(ST_GeneratePoints(g.geom, :stops, :seed)) d
           ORDER BY ST_Azimuth(g.c, d.geom)),
line AS (SELECT ST_Segmentize(ST_Transform(ST_MakeLine(geom), {METRIC_SRID}), 25) AS m FROM stops),
pts AS (SELECT (dp).path[1] AS i, ST_Transform((dp).geom, {STORAGE_SRID}) AS geom
          FROM (SELECT ST_DumpPoints(m) AS dp FROM line) x)
INSERT INTO patrol_point (patrol_id, t, geom, accuracy_m)
SELECT :patrol, CAST(:start AS timestamptz) + (i - 1) * interval '20 seconds', geom, 5 + (i % 7)
  FROM pts
ON CONFLICT DO NOTHING
"""

_FINISH = """
UPDATE patrol p SET geom = x.line, distance_m = ST_Length(x.line::geography), last_point_at = x.last_t,
                    ended_at = x.last_t
  FROM (SELECT ST_MakeLine(geom ORDER BY t) AS line, max(t) AS last_t FROM patrol_point
         WHERE patrol_id = :patrol) x
 WHERE p.id = :patrol
"""

_CHECKINS = """
INSERT INTO checkin (patrol_id, checkpoint_id, t, geom, accuracy_m, distance_m)
SELECT p.id, c.id, p.started_at + (p.ended_at - p.started_at) * ST_LineLocatePoint(p.geom, c.geom),
       ST_ClosestPoint(p.geom, c.geom), 8, ST_Distance(p.geom::geography, c.geom::geography)
  FROM patrol p JOIN checkpoint c ON c.grid_uid = p.grid_uid AND c.active
 WHERE p.id = :patrol AND ST_DWithin(p.geom::geography, c.geom::geography, c.radius_m)
ON CONFLICT DO NOTHING
"""


def _walkers(session: Session, max_workers: int) -> list:
    """(user id, person id, grid uid, village id) of the demo worker and its village's other workers."""
    rows = session.execute(text("""
        SELECT g.worker_id AS person_id, g.uid::text AS grid_uid, g.village_id,
               (SELECT u.id FROM app_user u WHERE u.person_id = g.worker_id AND u.role = 'grid_worker'
                 ORDER BY (u.username = 'worker') DESC, u.id LIMIT 1) AS user_id
          FROM grid g
         WHERE g.valid_to IS NULL AND g.worker_id IS NOT NULL
           AND g.village_id = (SELECT g2.village_id FROM grid g2 JOIN app_user u ON u.person_id = g2.worker_id
                                WHERE u.username = 'worker' AND g2.valid_to IS NULL ORDER BY g2.code LIMIT 1)
         ORDER BY g.code LIMIT :n"""), {"n": max_workers}).mappings().all()
    out = []
    for r in rows:
        user_id = r["user_id"]
        if user_id is None:  # a data-only account: disabled, no password that any input matches
            user_id = session.execute(text("""
                INSERT INTO app_user (username, display_name, password_hash, role, person_id, active, is_demo)
                VALUES (:u, :d, '!disabled', 'grid_worker', :p, false, true) RETURNING id"""),
                {"u": f"demo-patrol-{r['person_id']}", "d": f"演示网格员 {r['person_id']}",
                 "p": r["person_id"]}).scalar_one()
        out.append((user_id, r["person_id"], r["grid_uid"], r["village_id"]))
    return out


def load_demo_patrols(session: Session, *, seed: int = 7, days: int = 7, max_workers: int = 6,
                      today: datetime | None = None) -> dict:
    """Key points in every current grid and ``days`` days of patrols for up to ``max_workers`` workers.

    Parameters
    ----------
    session : Session
        Owner session with the system scope (RLS lets system jobs write any patrol).
    seed : int
        Makes the key points, which days each worker walks and the tracks reproducible.
    days : int
        Days back from today (local time), today included.
    max_workers : int
        Workers of the demo worker's village that patrol.
    today : datetime, optional
        For tests; default now.

    Returns
    -------
    dict
        ``{checkpoints, patrols, points, checkins}`` added by this call.
    """
    rng = random.Random(seed)
    added_cp = session.execute(text(_CHECKPOINTS), {"seed": seed}).rowcount
    zone = display_zone()
    local_today = (today or datetime.now(timezone.utc)).astimezone(zone).date()
    counts = {"checkpoints": int(added_cp), "patrols": 0, "points": 0, "checkins": 0}
    for user_id, person_id, grid_uid, village_id in _walkers(session, max_workers):
        diligence, reach = rng.uniform(0.15, 0.95), rng.randrange(2, 10)  # some grids end up flagged
        for back in range(days):
            day = local_today - timedelta(days=back)
            # Every draw happens whatever is skipped below, so a rerun makes the same choices.
            walks, hour, minute = rng.random() < diligence, rng.randrange(8, 16), rng.randrange(0, 60)
            stops, track_seed = rng.randrange(max(2, reach - 2), reach + 2), rng.randrange(1, 10**6)
            start = datetime.combine(day, time(hour, minute), zone)
            if not walks or start > datetime.now(timezone.utc):
                continue
            key = uuid.uuid5(NAMESPACE, f"{person_id}:{grid_uid}:{day.isoformat()}")
            patrol_id = session.execute(text("""
                INSERT INTO patrol (patrol_key, user_id, person_id, village_id, grid_uid, started_at)
                VALUES (:k, :u, :p, :v, CAST(:g AS uuid), :s) ON CONFLICT (patrol_key) DO NOTHING RETURNING id"""),
                {"k": key, "u": user_id, "p": person_id, "v": village_id, "g": grid_uid, "s": start}).scalar()
            if patrol_id is None:
                continue  # loaded by an earlier run
            counts["patrols"] += 1
            counts["points"] += session.execute(text(_POINTS), {
                "grid": grid_uid, "stops": stops, "seed": track_seed,
                "patrol": patrol_id, "start": start}).rowcount
            session.execute(text(_FINISH), {"patrol": patrol_id})
            counts["checkins"] += session.execute(text(_CHECKINS), {"patrol": patrol_id}).rowcount
    return counts
