"""Patrols (巡查): start, track points, end, key-point check-ins, who is on patrol now.

The phone makes each patrol's key (a UUID) itself, so a patrol can start without a
connection; every call is idempotent — a resent start, a resent batch of points
(primary key patrol + time) or a resent check-in (once per patrol and key point)
stores nothing twice. The track line and its length are rebuilt in PostGIS from
the stored points, in time order whatever order they arrived in; length is
measured on the geography (metres), points less accurate than
:data:`~geodata.field.common.MAX_TRACK_ACCURACY_M` are kept but left out of it.
"""
from __future__ import annotations

import math
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.config import STORAGE_SRID
from geodata.field.common import (MAX_POINTS_PER_BATCH, MAX_TRACK_ACCURACY_M, FieldConflict, FieldError,
                                  FieldForbidden, FieldNotFound, FieldUser, Week, check_key, check_lonlat,
                                  check_number, check_time)

#: a patrol with a point newer than this is "on patrol now" (big screen)
ACTIVE_MINUTES = 10
#: roles that see who is on patrol now
LEADER_ROLES = frozenset({"county_leader", "admin"})


class CheckinOutside(FieldError):
    """The position is farther from the key point than its radius."""

    code, http_status = "checkin_outside", 422

    def __init__(self, distance_m: float, radius_m: float):
        super().__init__(f"不在签到范围内(距离 {distance_m:.0f} 米,半径 {radius_m:.0f} 米)",
                         f"outside the check-in radius ({distance_m:.0f} m away, radius {radius_m:.0f} m)")
        self.distance_m = distance_m
        self.radius_m = radius_m

    def as_dict(self) -> dict:
        return {**super().as_dict(), "distance_m": round(self.distance_m, 1), "radius_m": self.radius_m}


def _home_grid(session: Session, person_id: int | None):
    """The worker's first current grid (uid, village) — the patrol's grid until a point says otherwise."""
    if person_id is None:
        return None
    return session.execute(
        text("SELECT uid, village_id FROM grid WHERE worker_id = :p AND valid_to IS NULL ORDER BY code LIMIT 1"),
        {"p": person_id},
    ).first()


def _my_patrol(session: Session, user: FieldUser, patrol_key) -> dict:
    key = check_key(patrol_key)
    row = session.execute(
        text("SELECT id, user_id, started_at, ended_at FROM patrol WHERE patrol_key = :k"), {"k": key}
    ).mappings().first()
    # Another worker's patrol is invisible (RLS); a manager's view of it is not theirs to write.
    if row is None or row["user_id"] != user.user_id:
        raise FieldNotFound("未找到该巡查", "patrol not found")
    return dict(row)


def start_patrol(session: Session, user: FieldUser, patrol_key, started_at) -> tuple[dict, bool]:
    """Start a patrol (idempotent per ``patrol_key``).

    Parameters
    ----------
    session : Session
        Scoped to the user (RLS).
    user : FieldUser
        The signed-in user; must be a grid worker with a current grid.
    patrol_key : str
        UUID made by the phone.
    started_at : str
        ISO 8601 time with a zone.

    Returns
    -------
    (dict, bool)
        ``{patrol_key, started_at}`` and whether it was created now (False: a replay).

    Raises
    ------
    FieldForbidden, FieldConflict, FieldError
    """
    key = check_key(patrol_key)
    started = check_time(started_at, "started_at")
    home = _home_grid(session, user.person_id)
    if user.role != "grid_worker" or home is None:
        raise FieldForbidden("只有负责网格的网格员可以巡查", "only grid workers with a grid can patrol")
    created = session.execute(
        text("""INSERT INTO patrol (patrol_key, user_id, person_id, village_id, grid_uid, started_at)
                VALUES (:k, :u, :p, :v, :g, :s) ON CONFLICT (patrol_key) DO NOTHING RETURNING started_at"""),
        {"k": key, "u": user.user_id, "p": user.person_id, "v": home.village_id, "g": home.uid, "s": started},
    ).first()
    if created is None:
        row = session.execute(text("SELECT user_id, started_at FROM patrol WHERE patrol_key = :k"),
                              {"k": key}).first()
        if row is None or row.user_id != user.user_id:
            raise FieldConflict("该巡查编号已被使用", "this patrol key is already in use")
        return {"patrol_key": str(key), "started_at": row.started_at}, False
    return {"patrol_key": str(key), "started_at": created.started_at}, True


def _check_points(points) -> list[tuple]:
    if not isinstance(points, list):
        raise FieldError("points 须为数组", "points must be an array", code="bad_points")
    if len(points) > MAX_POINTS_PER_BATCH:
        raise FieldError(f"一次最多 {MAX_POINTS_PER_BATCH} 个点", f"at most {MAX_POINTS_PER_BATCH} points per request",
                         code="too_many_points", http_status=413)
    rows, seen = [], set()
    for i, p in enumerate(points):
        if not isinstance(p, dict):
            raise FieldError(f"第 {i + 1} 个点不是对象", f"point {i + 1} is not an object", code="bad_points")
        t = check_time(p.get("t"), f"points[{i}].t")
        lon, lat = check_lonlat(p.get("lon"), p.get("lat"))
        acc = check_number(p.get("accuracy_m"), f"points[{i}].accuracy_m", low=0, high=100000, required=False)
        if t not in seen:  # one position per instant; the first wins, as in the table
            seen.add(t)
            rows.append((t, lon, lat, acc))
    return rows


def _refresh(session: Session, patrol_id: int) -> None:
    """Rebuild the patrol's line, length and last point time from its stored points."""
    session.execute(
        text(f"""
        UPDATE patrol p SET
            geom = CASE WHEN x.n >= 2 THEN x.line END,
            distance_m = CASE WHEN x.n >= 2 THEN ST_Length(x.line::geography) ELSE 0 END,
            last_point_at = x.last_t
          FROM (SELECT ST_SetSRID(ST_MakeLine(geom ORDER BY t)
                                  FILTER (WHERE coalesce(accuracy_m, 0) <= :acc), {STORAGE_SRID}) AS line,
                       count(*) FILTER (WHERE coalesce(accuracy_m, 0) <= :acc) AS n, max(t) AS last_t
                  FROM patrol_point WHERE patrol_id = :id) x
         WHERE p.id = :id"""),
        {"id": patrol_id, "acc": MAX_TRACK_ACCURACY_M},
    )


def add_points(session: Session, user: FieldUser, patrol_key, points) -> dict:
    """Store a batch of track points (idempotent per time; any order) and refresh the track.

    Returns
    -------
    dict
        ``{stored, total}``: points new in this call, points of the patrol.

    Raises
    ------
    FieldNotFound, FieldError
        Not the caller's patrol; malformed, non-finite or too many points (413).
    """
    patrol = _my_patrol(session, user, patrol_key)
    rows = _check_points(points)
    stored = 0
    if rows:
        stored = session.execute(
            text(f"""INSERT INTO patrol_point (patrol_id, t, geom, accuracy_m)
                     SELECT :id, t, ST_SetSRID(ST_MakePoint(lon, lat), {STORAGE_SRID}), acc
                       FROM unnest(CAST(:t AS timestamptz[]), CAST(:lon AS float8[]), CAST(:lat AS float8[]),
                                   CAST(:acc AS float8[])) AS u(t, lon, lat, acc)
                     ON CONFLICT (patrol_id, t) DO NOTHING"""),
            {"id": patrol["id"], "t": [r[0] for r in rows], "lon": [r[1] for r in rows],
             "lat": [r[2] for r in rows], "acc": [r[3] for r in rows]},
        ).rowcount
        if stored:
            _refresh(session, patrol["id"])
    total = session.execute(text("SELECT count(*) FROM patrol_point WHERE patrol_id = :id"),
                            {"id": patrol["id"]}).scalar_one()
    return {"stored": int(stored), "total": int(total)}


def end_patrol(session: Session, user: FieldUser, patrol_key, ended_at) -> dict:
    """End a patrol (a repeat keeps the first end) and return its length and duration.

    Returns
    -------
    dict
        ``{patrol_key, distance_m, duration_s, ended_at}``; both measured in PostGIS.
    """
    patrol = _my_patrol(session, user, patrol_key)
    ended = check_time(ended_at, "ended_at")
    _refresh(session, patrol["id"])
    row = session.execute(
        text("""UPDATE patrol SET ended_at = coalesce(ended_at, greatest(:e, started_at, last_point_at))
                 WHERE id = :id
             RETURNING ended_at, coalesce(distance_m, 0) AS distance_m,
                       extract(epoch FROM ended_at - started_at) AS duration_s"""),
        {"id": patrol["id"], "e": ended},
    ).first()
    return {"patrol_key": str(check_key(patrol_key)), "distance_m": round(float(row.distance_m), 1),
            "duration_s": int(round(float(row.duration_s))), "ended_at": row.ended_at}


def checkpoints(session: Session, grid_uids: frozenset[str] | None = None) -> dict:
    """Active key points in scope (of ``grid_uids`` when given) as a GeoJSON FeatureCollection."""
    fc = session.execute(
        text("""SELECT json_build_object('type', 'FeatureCollection', 'features', coalesce(json_agg(
                    json_build_object('type', 'Feature', 'id', c.id,
                                      'geometry', ST_AsGeoJSON(c.geom, 7)::json,
                                      'properties', json_build_object('id', c.id, 'name', c.name,
                                                                      'radius_m', c.radius_m,
                                                                      'grid_uid', c.grid_uid))
                    ORDER BY c.id), '[]'::json))
                  FROM checkpoint c
                 WHERE c.active AND (CAST(:all AS boolean) OR c.grid_uid::text = ANY (:grids))"""),
        {"all": grid_uids is None, "grids": sorted(grid_uids or ())},
    ).scalar_one()
    return fc


def check_in(session: Session, user: FieldUser, patrol_key, checkpoint_id, t, lon, lat,
             accuracy_m=None) -> tuple[dict, bool]:
    """Check in at a key point during the caller's patrol (once per patrol and key point).

    Returns
    -------
    (dict, bool)
        ``{ok, distance_m, checkpoint_id}`` and whether it was stored now.

    Raises
    ------
    CheckinOutside
        Farther than the key point's radius (422, with the distance).
    FieldNotFound
        Not the caller's patrol, or no such active key point in scope.
    """
    patrol = _my_patrol(session, user, patrol_key)
    when = check_time(t, "t")
    lon_f, lat_f = check_lonlat(lon, lat)
    acc = check_number(accuracy_m, "accuracy_m", low=0, high=100000, required=False)
    try:
        cid = int(checkpoint_id)
    except (TypeError, ValueError):
        raise FieldError("checkpoint_id 无效", "invalid checkpoint_id", code="bad_checkpoint") from None
    if not 0 < cid < 2**31:
        raise FieldNotFound("未找到该关键点位", "key point not found")
    cp = session.execute(
        text(f"""SELECT radius_m, ST_Distance(geom::geography,
                        ST_SetSRID(ST_MakePoint(:lon, :lat), {STORAGE_SRID})::geography) AS d
                   FROM checkpoint WHERE id = :c AND active"""),
        {"c": cid, "lon": lon_f, "lat": lat_f},
    ).first()
    if cp is None:
        raise FieldNotFound("未找到该关键点位", "key point not found")
    if cp.d > cp.radius_m:
        raise CheckinOutside(float(cp.d), float(cp.radius_m))
    row = session.execute(
        text(f"""INSERT INTO checkin (patrol_id, checkpoint_id, t, geom, accuracy_m, distance_m)
                 VALUES (:p, :c, :t, ST_SetSRID(ST_MakePoint(:lon, :lat), {STORAGE_SRID}), :acc, :d)
                 ON CONFLICT (patrol_id, checkpoint_id) DO NOTHING RETURNING distance_m"""),
        {"p": patrol["id"], "c": cid, "t": when, "lon": lon_f, "lat": lat_f, "acc": acc, "d": float(cp.d)},
    ).first()
    if row is None:
        first = session.execute(text("SELECT distance_m FROM checkin WHERE patrol_id = :p AND checkpoint_id = :c"),
                                {"p": patrol["id"], "c": cid}).scalar_one()
        return {"ok": True, "checkpoint_id": cid, "distance_m": round(float(first), 1)}, False
    return {"ok": True, "checkpoint_id": cid, "distance_m": round(float(row.distance_m), 1)}, True


def my_patrols(session: Session, user: FieldUser, week: Week) -> list[dict]:
    """The caller's patrols started in ``week``, newest first."""
    rows = session.execute(
        text(f"""SELECT patrol_key::text AS patrol_key, started_at, ended_at, coalesce(distance_m, 0) AS distance_m,
                        extract(epoch FROM coalesce(ended_at, last_point_at, started_at) - started_at) AS duration_s,
                        (ended_at IS NULL AND last_point_at > now() - interval '{ACTIVE_MINUTES} minutes') AS active
                   FROM patrol WHERE user_id = :u AND started_at >= :a AND started_at < :b
                  ORDER BY started_at DESC"""),
        {"u": user.user_id, "a": week.start, "b": week.end},
    ).mappings()
    return [{**r, "distance_m": round(float(r["distance_m"]), 1),
             "duration_s": int(round(float(r["duration_s"] or 0)))} for r in rows]


def active_patrols(session: Session, *, now: datetime | None = None) -> list[dict]:
    """Workers on patrol now, one dot each (last position only, no history) — leaders only.

    A patrol is active when it has not ended and has a point from the last
    :data:`ACTIVE_MINUTES` minutes. Other roles get an empty list.

    Returns
    -------
    list of dict
        ``{lon, lat, village, grid_code}`` per active patrol.
    """
    scope = session.info.get("scope")
    if scope is None or scope.role not in LEADER_ROLES:
        return []
    rows = session.execute(
        text(f"""SELECT ST_X(pt.geom) AS lon, ST_Y(pt.geom) AS lat, v.name AS village, g.code AS grid_code
                   FROM patrol p
                   JOIN LATERAL (SELECT geom FROM patrol_point WHERE patrol_id = p.id
                                  ORDER BY t DESC LIMIT 1) pt ON true
                   JOIN village v ON v.id = p.village_id
                   LEFT JOIN grid g ON g.uid = p.grid_uid AND g.valid_to IS NULL
                  WHERE p.ended_at IS NULL
                    AND p.last_point_at > coalesce(CAST(:now AS timestamptz), now())
                                          - interval '{ACTIVE_MINUTES} minutes'
                  ORDER BY p.id"""),
        {"now": now},
    ).mappings()
    return [{**r, "lon": round(r["lon"], 6), "lat": round(r["lat"], 6)} for r in rows
            if math.isfinite(r["lon"]) and math.isfinite(r["lat"])]
