"""The ingest: validate a batch, store each reading once, hand the new ones to the rules.

Runs inside the caller's session and transaction and never commits (see the
package docstring for why).
"""
from __future__ import annotations

from datetime import datetime
from typing import Sequence

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.sensors.base import (
    MAX_BATCH,
    SOURCES,
    IngestResult,
    RawReading,
    Reading,
    ReadingRejected,
    Rejection,
    SensorInputError,
    _dumps,
    _Sensor,
)
from geodata.sensors.counters import _record
from geodata.sensors.evaluation import _evaluate
from geodata.sensors.parsing import _excerpt, parse_reading, topic_sensor_code


def ingest(
    session: Session,
    items: Sequence[RawReading],
    *,
    source: str = "mqtt",
    client: str | None = None,
    county: str | None = None,
) -> IngestResult:
    """Store a batch of raw readings once and act on them, in the caller's transaction.

    Parameters
    ----------
    session : Session
        A scoped session: the worker's is the county (``SYSTEM``), a gateway's is
        its villages; sensors outside the scope are ``unknown_sensor``.
    items : sequence of RawReading
        Payloads with their MQTT topic (or none, for HTTP items carrying ``sensor``).
    source : str
        ``mqtt``, ``http`` or ``cli`` (for the counters).
    client : str, optional
        Gateway name, kept with rejections.
    county : str, optional
        County code topics must carry.

    Returns
    -------
    IngestResult

    Raises
    ------
    SensorInputError
        More than :data:`MAX_BATCH` items or an unknown source (nothing is written).
    """
    if source not in SOURCES:
        raise SensorInputError(f"未知来源:{source}", f"Unknown source: {source}")
    items = list(items)
    if len(items) > MAX_BATCH:
        raise SensorInputError(f"一次最多提交 {MAX_BATCH} 条读数。", f"At most {MAX_BATCH} readings per batch.")
    result = IngestResult(received=len(items), outcomes=[""] * len(items))
    if not items:
        return result
    now = session.execute(text("SELECT now()")).scalar_one()
    parsed = _parse_items(items, county, now, result)
    sensors = _lock_sensors(session, sorted({r.sensor_code for _, r in parsed}))
    rows = _match_sensors(items, parsed, sensors, result)
    _sort_stored(rows, _insert_readings(session, rows), result)
    live = [s for s in sensors.values() if s.fresh or s.late]
    if live:
        _evaluate(session, live, now, result)
    result.rejected.sort(key=lambda r: r.index)
    _record(session, source, client, result)
    return result


def _parse_items(items: list[RawReading], county: str | None, now: datetime,
                 result: IngestResult) -> list[tuple[int, Reading]]:
    """Each item's topic and payload checked; the refused ones go to ``result``."""
    parsed: list[tuple[int, Reading]] = []
    for i, item in enumerate(items):
        code = None
        try:
            if item.topic is not None:
                code = topic_sensor_code(item.topic, county)
            parsed.append((i, parse_reading(item.payload, sensor_code=code, now=now)))
        except ReadingRejected as exc:
            _reject(result, i, exc, item, code)
    return parsed


def _match_sensors(items: list[RawReading], parsed: list[tuple[int, Reading]], sensors: dict[str, _Sensor],
                   result: IngestResult) -> list[tuple[int, _Sensor, Reading]]:
    """Readings of known sensors, each (sensor, seq) once; unknown sensors are rejected."""
    rows, keys = [], set()
    for i, r in parsed:
        s = sensors.get(r.sensor_code)
        if s is None:
            _reject(result, i, ReadingRejected("unknown_sensor", r.sensor_code), items[i], r.sensor_code)
            continue
        if (s.id, r.seq) in keys:  # the same reading twice in one batch
            result.outcomes[i] = "duplicate"
            result.duplicates += 1
            continue
        keys.add((s.id, r.seq))
        rows.append((i, s, r))
    return rows


def _sort_stored(rows: list[tuple[int, _Sensor, Reading]], inserted: set[tuple[int, int]],
                 result: IngestResult) -> None:
    """Outcome of each row: duplicate (already stored), stored (fresh) or late."""
    for i, s, r in rows:
        if (s.id, r.seq) not in inserted:
            result.outcomes[i] = "duplicate"
            result.duplicates += 1
        elif s.last_seen_at is None or (r.measured_at, r.seq) > (s.last_seen_at, s.last_seq or -1):
            s.fresh.append((r.measured_at, r.seq, r.values))
            result.outcomes[i] = "stored"
            result.stored += 1
        else:  # older than what the sensor already told us: evaluated in its place in time
            s.late.append((r.measured_at, r.seq))
            result.outcomes[i] = "late"
            result.late += 1


def _reject(result: IngestResult, index: int, exc: ReadingRejected, item: RawReading, code: str | None) -> None:
    result.rejected.append(Rejection(index, exc.reason, exc.message_zh, exc.message_en, item.topic, code,
                                     _excerpt(item.payload)))
    result.outcomes[index] = f"rejected:{exc.reason}"


def _lock_sensors(session: Session, codes: list[str]) -> dict[str, _Sensor]:
    if not codes:
        return {}
    # Locked in id order: concurrent batches for the same sensors queue up instead of
    # racing to open the same episode, and never deadlock.
    rows = session.execute(
        text(
            "SELECT id, code, type, village_id, ST_X(geom) AS lon, ST_Y(geom) AS lat, status, last_seen_at,"
            " last_seq FROM sensor WHERE code = ANY(:codes) ORDER BY id FOR UPDATE"
        ),
        {"codes": codes},
    ).mappings()
    return {r["code"]: _Sensor(**r) for r in rows}


def _insert_readings(session: Session, rows) -> set[tuple[int, int]]:
    if not rows:
        return set()
    # One JSON document instead of five arrays: the driver dumps it in one go, which
    # is several times cheaper than adapting lists of datetimes and dicts.
    doc = _dumps([[s.id, r.seq, s.village_id, r.measured_at.isoformat(), r.values] for _, s, r in rows])
    got = session.execute(
        text(
            """
            INSERT INTO sensor_reading (sensor_id, seq, village_id, measured_at, "values")
            SELECT (x ->> 0)::integer, (x ->> 1)::bigint, (x ->> 2)::integer, (x ->> 3)::timestamptz, x -> 4
              FROM jsonb_array_elements(CAST(:doc AS jsonb)) AS x
            ON CONFLICT (sensor_id, seq) DO NOTHING
            RETURNING sensor_id, seq
            """
        ),
        {"doc": doc},
    )
    return {(a, b) for a, b in got}
