"""Sensors for the sensor tests: placed in a tiny county of their own (event_world), or
anywhere, committed, and removed again with everything they caused."""
from __future__ import annotations

import json
import socket
from datetime import datetime, timezone

from sqlalchemy import text

from geodata.db import SYSTEM, apply_scope
from geodata.sensors import RawReading, reading_topic


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def add_sensor(owner_engine, code: str, type_: str, village_id: int, lon: float, lat: float, **cols) -> int:
    """Insert one sensor (committed) and return its id."""
    with owner_engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        names = ", ".join(["code", "type", "village_id", "geom", *cols])
        values = ", ".join([":code", ":type", ":village", "ST_SetSRID(ST_MakePoint(:lon, :lat), 4490)",
                            *(f":{c}" for c in cols)])
        return conn.execute(
            text(f"INSERT INTO sensor ({names}) VALUES ({values}) RETURNING id"),
            {"code": code, "type": type_, "village": village_id, "lon": lon, "lat": lat, **cols},
        ).scalar_one()


def remove_sensors(owner_engine, sensor_ids) -> None:
    """Delete sensors with their readings, alarm episodes and the events they opened."""
    ids = list(sensor_ids)
    if not ids:
        return
    with owner_engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        p = {"ids": ids}
        events = "SELECT id FROM event WHERE sensor_id = ANY(:ids)"
        conn.execute(text("DELETE FROM sensor_alarm WHERE sensor_id = ANY(:ids)"), p)
        conn.execute(text("ALTER TABLE event_history DISABLE TRIGGER event_history_append_only"))
        for sql in (f"DELETE FROM event_photo WHERE event_id IN ({events})",
                    f"DELETE FROM event_history WHERE event_id IN ({events})",
                    f"DELETE FROM event_request WHERE event_id IN ({events})",
                    "DELETE FROM event WHERE sensor_id = ANY(:ids)"):
            conn.execute(text(sql), p)
        conn.execute(text("ALTER TABLE event_history ENABLE TRIGGER event_history_append_only"))
        conn.execute(text("DELETE FROM sensor_reading WHERE sensor_id = ANY(:ids)"), p)
        conn.execute(text("DELETE FROM sensor WHERE id = ANY(:ids)"), p)


def reading(code: str, seq: int, values: dict, at: datetime | None = None, county: str | None = None) -> RawReading:
    """A raw reading as the broker would hand it over (with a topic when ``county`` is given)."""
    at = at or datetime.now(timezone.utc)
    body = json.dumps({"seq": seq, "measured_at": at.isoformat(), "values": values}).encode()
    return RawReading(body, reading_topic(county, code) if county else None)


def scalar(engine, sql: str, **params):
    with engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        return conn.execute(text(sql), params).scalar()
