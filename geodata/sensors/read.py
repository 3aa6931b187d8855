"""Read helpers for the map, the sensor panel and the event page (scoped by the session)."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Sequence

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.sensors.base import _number
from geodata.sensors.evaluation import rules


def county_code(session: Session) -> str | None:
    """The code of the county the database holds (the first, if it holds several)."""
    return session.execute(text("SELECT code FROM county ORDER BY id LIMIT 1")).scalar()


def status_counts(session: Session) -> dict[str, int]:
    """Sensors in the session's scope: ``online`` (not offline), ``alarm``, ``offline``, ``total``."""
    row = session.execute(
        text(
            "SELECT count(*) AS total, count(*) FILTER (WHERE status <> 'offline') AS online,"
            " count(*) FILTER (WHERE status = 'alarm') AS alarm,"
            " count(*) FILTER (WHERE status = 'offline') AS offline FROM sensor"
        )
    ).mappings().one()
    return {k: int(v) for k, v in row.items()}


def status_changes(session: Session, since: datetime | None, overlap: timedelta = timedelta(seconds=60)):
    """Sensors whose status changed since ``since`` (minus ``overlap``, for transactions still committing).

    Returns
    -------
    (datetime, dict)
        The database's ``now()`` (the next call's ``since``) and ``{sensor id: status}``.
    """
    now = session.execute(text("SELECT now()")).scalar_one()
    if since is None:
        return now, {}
    rows = session.execute(
        text("SELECT id, status FROM sensor WHERE status_changed_at >= :since"), {"since": since - overlap}
    ).all()
    return now, {int(r.id): r.status for r in rows}


def unit_counts(session: Session, types: Sequence[str] | None = None) -> dict[str, list[int]]:
    """``[count, alarm, offline]`` per town (``town-<id>``) and village (``village-<id>``).

    The keys are the ids of the sensor layer's aggregate features.
    """
    rows = session.execute(
        text(
            """
            SELECT v.town_id, s.village_id, count(*) AS n,
                   count(*) FILTER (WHERE s.status = 'alarm') AS alarm,
                   count(*) FILTER (WHERE s.status = 'offline') AS offline
              FROM sensor s JOIN village v ON v.id = s.village_id
             WHERE CAST(:types AS text[]) IS NULL OR s.type = ANY (CAST(:types AS text[]))
             GROUP BY GROUPING SETS ((v.town_id), (s.village_id))
            """
        ),
        {"types": list(types) if types is not None else None},
    ).all()
    out = {}
    for r in rows:
        key = f"village-{r.village_id}" if r.village_id is not None else f"town-{r.town_id}"
        out[key] = [int(r.n), int(r.alarm), int(r.offline)]
    return out


def reading_series(session: Session, sensor_id: int, hours: float = 24) -> dict | None:
    """The last ``hours`` of a sensor's main value, with its rules' levels, for a chart.

    Returns
    -------
    dict or None
        ``{"times": [...], "values": [...], "main_value", "unit", "rules": [{code, label_zh,
        label_en, value_key, raise_level, clear_level}]}``; None when the sensor is not visible.
    """
    head = session.execute(
        text("SELECT s.type, st.main_value, st.unit FROM sensor s JOIN sensor_type st ON st.code = s.type"
             " WHERE s.id = :id"),
        {"id": int(sensor_id)},
    ).mappings().first()
    if head is None:
        return None
    rows = session.execute(
        text(
            """
            SELECT measured_at, "values" ->> :key AS v FROM sensor_reading
             WHERE sensor_id = :id AND measured_at >= now() - :span
             ORDER BY measured_at, seq
            """
        ),
        {"id": int(sensor_id), "key": head["main_value"], "span": timedelta(hours=hours)},
    ).all()
    times, values = [], []
    for r in rows:
        value = _number(_to_number(r.v))
        times.append(r.measured_at)
        values.append(value)
    levels = [
        {"code": r.code, "label_zh": r.label_zh, "label_en": r.label_en, "value_key": r.value_key,
         "raise_level": r.raise_level, "clear_level": r.clear_level}
        for r in rules(session) if r.sensor_type == head["type"] and r.value_key == head["main_value"]
    ]
    return {"times": times, "values": values, "main_value": head["main_value"], "unit": head["unit"],
            "rules": levels}


def _to_number(raw: str | None):
    if raw is None:
        return None
    if raw in ("true", "false"):
        return raw == "true"
    try:
        return float(raw)
    except ValueError:
        return None


def sensor_alarms(session: Session, sensor_id: int, limit: int = 5) -> list[dict]:
    """A sensor's latest alarm episodes (open first), with the events they opened."""
    return [
        dict(r)
        for r in session.execute(
            text(
                """
                SELECT a.id, a.kind, a.opened_at, a.cleared_at, a.open_value, a.peak_value, a.clear_value,
                       cardinality(a.reading_seqs) AS readings, a.event_id, e.state AS event_state,
                       r.code AS rule, r.label_zh, r.label_en
                  FROM sensor_alarm a
                  LEFT JOIN sensor_rule r ON r.id = a.rule_id
                  LEFT JOIN event e ON e.id = a.event_id AND e.reported_at = a.event_reported_at
                 WHERE a.sensor_id = :id
                 ORDER BY a.cleared_at IS NULL DESC, a.opened_at DESC
                 LIMIT :limit
                """
            ),
            {"id": int(sensor_id), "limit": int(limit)},
        ).mappings()
    ]


def alarm_for_event(session: Session, event_id: int) -> dict | None:
    """The alarm episode that opened an event, with its readings (for the event's page)."""
    row = session.execute(
        text(
            """
            SELECT a.id, a.sensor_id, s.code AS sensor_code, a.kind, a.opened_at, a.cleared_at, a.open_seq,
                   a.clear_seq, a.open_value, a.peak_value, a.clear_value, a.reading_seqs, r.code AS rule
              FROM sensor_alarm a JOIN sensor s ON s.id = a.sensor_id
              LEFT JOIN sensor_rule r ON r.id = a.rule_id
             WHERE a.event_id = :id
            """
        ),
        {"id": int(event_id)},
    ).mappings().first()
    if row is None:
        return None
    out = dict(row)
    out["readings"] = [
        dict(r)
        for r in session.execute(
            text('SELECT seq, measured_at, received_at, "values" FROM sensor_reading'
                 " WHERE sensor_id = :sid AND seq = ANY(:seqs) ORDER BY measured_at, seq"),
            {"sid": row["sensor_id"], "seqs": list(row["reading_seqs"])},
        ).mappings()
    ]
    return out
