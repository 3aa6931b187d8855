"""What the details panel shows for one clicked feature.

Each function returns a plain dict, or None when the id does not exist or lies
outside the caller's scope (RLS hides it: the two cases look the same on purpose).
"""
from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.config import METRIC_SRID

_LATEST_YEAR = "(SELECT max(year) FROM population)"


def village(session: Session, village_id: int) -> dict | None:
    """Village: code, town, area, population, counts of grids, resources and sensors."""
    row = session.execute(
        text(
            f"""
            SELECT v.id, v.name, v.code, t.name AS town, v.area_m2,
                   p.total, p.age_60_plus, p.households, p.year,
                   (SELECT count(*) FROM grid g WHERE g.village_id = v.id AND g.valid_to IS NULL) AS grids,
                   (SELECT count(*) FROM sensor s WHERE s.village_id = v.id) AS sensors,
                   (SELECT count(*) FROM sensor s WHERE s.village_id = v.id AND s.status = 'alarm') AS sensors_alarm,
                   (SELECT count(*) FROM sensor s WHERE s.village_id = v.id AND s.status = 'offline') AS sensors_offline
              FROM village v
              JOIN town t ON t.id = v.town_id
              LEFT JOIN population p ON p.village_id = v.id AND p.grid_uid IS NULL AND p.year = {_LATEST_YEAR}
             WHERE v.id = :id
            """
        ),
        {"id": village_id},
    ).mappings().first()
    if row is None:
        return None
    out = dict(row)
    out["resources"] = [
        dict(r)
        for r in session.execute(
            text(
                """
                SELECT rt.code, rt.name_zh, rt.name_en, count(r.id) AS n
                  FROM resource_type rt LEFT JOIN resource r ON r.type = rt.code AND r.village_id = :id
                 GROUP BY rt.code, rt.name_zh, rt.name_en, rt.sort ORDER BY rt.sort
                """
            ),
            {"id": village_id},
        ).mappings()
    ]
    return out


def grid(session: Session, grid_id: int) -> dict | None:
    """Grid (one version): code, village, worker, population, validity."""
    row = session.execute(
        text(
            f"""
            SELECT g.id, g.uid::text AS uid, g.code, g.name, g.version, g.valid_from, g.valid_to,
                   v.name AS village, v.id AS village_id, pe.name AS worker, pe.phone AS worker_phone,
                   ST_Area(ST_Transform(g.geom, {METRIC_SRID})) AS area_m2,
                   p.total, p.age_60_plus, p.households
              FROM grid g
              JOIN village v ON v.id = g.village_id
              LEFT JOIN person pe ON pe.id = g.worker_id
              LEFT JOIN population p ON p.grid_uid = g.uid AND p.year = {_LATEST_YEAR}
             WHERE g.id = :id
            """
        ),
        {"id": grid_id},
    ).mappings().first()
    return dict(row) if row else None


def village_grids(session: Session, village_id: int) -> list[dict]:
    """The village's current grids (id, code, name), in code order (west → east, north → south).

    Parameters
    ----------
    session : Session
        A scoped session: grids outside the caller's scope are not listed.
    village_id : int
        ``village.id``.
    """
    rows = session.execute(
        text(
            """
            SELECT g.id, trim(g.code) AS code, g.name
              FROM grid g
             WHERE g.village_id = :id AND g.valid_to IS NULL
             ORDER BY g.code
            """
        ),
        {"id": village_id},
    ).mappings()
    return [dict(r) for r in rows]


def resource(session: Session, resource_id: int) -> dict | None:
    """Resource: type, capacity, village, address."""
    row = session.execute(
        text(
            """
            SELECT r.id, r.name, r.type, rt.name_zh AS type_zh, rt.name_en AS type_en, r.capacity,
                   rt.capacity_unit_zh, rt.capacity_unit_en, r.address, v.name AS village,
                   ST_X(r.geom) AS lon, ST_Y(r.geom) AS lat
              FROM resource r
              JOIN resource_type rt ON rt.code = r.type
              JOIN village v ON v.id = r.village_id
             WHERE r.id = :id
            """
        ),
        {"id": resource_id},
    ).mappings().first()
    return dict(row) if row else None


def sensor(session: Session, sensor_id: int) -> dict | None:
    """Sensor: type, status, latest reading and its time."""
    row = session.execute(
        text(
            """
            SELECT s.id, s.code, s.type, st.name_zh AS type_zh, st.name_en AS type_en, st.unit,
                   st.main_value, s.status, s.last_seen_at, s.last_values, v.name AS village,
                   ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat
              FROM sensor s
              JOIN sensor_type st ON st.code = s.type
              JOIN village v ON v.id = s.village_id
             WHERE s.id = :id
            """
        ),
        {"id": sensor_id},
    ).mappings().first()
    return dict(row) if row else None
