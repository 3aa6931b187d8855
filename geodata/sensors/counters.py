"""Ingest counters (exact, per day, source, outcome and reason) and the rejection log."""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Iterable, Mapping

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.clock import zone_name
from geodata.sensors.base import REJECTION_ROWS_PER_CALL, IngestResult, Rejection

log = logging.getLogger(__name__)


def _record(session: Session, source: str, client: str | None, result: IngestResult) -> None:
    """Counters (exact) and the first rejections as rows, in the same transaction as the data."""
    counts: dict[tuple[str, str], int] = {}
    for outcome, n in (("stored", result.stored), ("late", result.late), ("duplicate", result.duplicates),
                       ("alarm_opened", result.alarms_opened), ("alarm_cleared", result.alarms_cleared),
                       ("offline_cleared", result.offline_cleared)):
        if n:
            counts[(outcome, "")] = n
    for r in result.rejected:
        counts[("rejected", r.reason)] = counts.get(("rejected", r.reason), 0) + 1
    _count(session, source, counts)
    logged = result.rejected[:REJECTION_ROWS_PER_CALL]
    if logged:
        session.execute(
            text(
                "INSERT INTO sensor_ingest_rejection (source, client, topic, sensor_code, reason, detail, payload)"
                " VALUES (:source, :client, :topic, :code, :reason, :detail, :payload)"
            ),
            [{"source": source, "client": client, "topic": (r.topic or "")[:300] or None,
              "code": (r.sensor_code or "")[:64] or None, "reason": r.reason, "detail": r.message_en,
              "payload": r.payload} for r in logged],
        )
        for r in logged[:5]:
            log.warning("rejected %s reading (%s): %s topic=%s", source, r.reason, r.message_en, r.topic)
        if len(result.rejected) > 5:
            log.warning("… and %d more rejected in this batch", len(result.rejected) - 5)


def _count(session: Session, source: str, counts: Mapping[tuple[str, str], int]) -> None:
    if not counts:
        return
    keys = sorted(counts)  # one order for everybody: concurrent upserts never deadlock
    session.execute(
        text(
            """
            INSERT INTO sensor_ingest_counter (day, source, outcome, reason, count)
            SELECT (now() AT TIME ZONE :tz)::date, :source, o, r, c
              FROM unnest(CAST(:o AS text[]), CAST(:r AS text[]), CAST(:c AS bigint[])) AS u(o, r, c)
            ON CONFLICT (day, source, outcome, reason)
            DO UPDATE SET count = sensor_ingest_counter.count + EXCLUDED.count
            """
        ),
        {"source": source, "o": [k[0] for k in keys], "r": [k[1] for k in keys], "c": [counts[k] for k in keys],
         "tz": zone_name()},
    )


def record_rejections(session: Session, rejections: Iterable[Rejection], *, source: str,
                      client: str | None = None) -> None:
    """Count and log payloads refused before :func:`ingest` saw them (e.g. a poison message)."""
    result = IngestResult(rejected=list(rejections))
    _record(session, source, client, result)


def prune_rejections(session: Session, keep: timedelta = timedelta(days=30)) -> int:
    """Delete rejection rows older than ``keep`` (the counters stay); returns how many."""
    return session.execute(
        text("DELETE FROM sensor_ingest_rejection WHERE at < now() - :keep"), {"keep": keep}
    ).rowcount


def ingest_stats(session: Session, days: int = 1) -> list[dict]:
    """Counter rows of the last ``days`` days (display zone, :func:`geodata.clock.zone_name`), newest first."""
    return [
        dict(r)
        for r in session.execute(
            text(
                """
                SELECT day, source, outcome, reason, count FROM sensor_ingest_counter
                 WHERE day > (now() AT TIME ZONE :tz)::date - :days
                 ORDER BY day DESC, source, outcome, reason
                """
            ),
            {"days": int(days), "tz": zone_name()},
        ).mappings()
    ]
