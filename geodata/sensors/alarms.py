"""Alarm episodes and their events: open (with one event), close (with a note), and silence.

An episode of a threshold rule opens its event through
:func:`geodata.events.create_event` and notes its clearing with
:func:`geodata.events.add_note`, each inside a savepoint so a refused event
never undoes the readings. :func:`check_offline` opens ``offline`` episodes
for sensors silent too long.
"""
from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata import events as ev
from geodata.identity import Actor
from geodata.sensors.base import EpisodeSpan, IngestResult, Rule, _Episode, _Sensor
from geodata.sensors.counters import _count

log = logging.getLogger(__name__)


def _actor(s: _Sensor) -> Actor:
    return Actor(f"sensor:{s.code}", "system")


def _open(session: Session, s: _Sensor, rule: Rule, measured_at, seq: int, value: float,
          result: IngestResult, span: EpisodeSpan | None = None) -> _Episode:
    """Open an episode and its one event (idempotent on the episode's raising reading).

    With ``span`` (a missed episode found by a rerun) the row is written whole,
    already cleared if the span is: never a second open episode, even for a moment.
    """
    op_zh = {">=": "≥", ">": ">", "<=": "≤", "<": "<"}[rule.comparison]
    description = (
        f"{rule.label_zh}:设备 {s.code} 读数 {rule.value_key} = {value:g}(阈值 {op_zh} {rule.raise_level:g})。"
        f" / {rule.label_en}: sensor {s.code} reads {rule.value_key} = {value:g} "
        f"(limit {rule.comparison} {rule.raise_level:g})."
    )
    event_id = reported_at = None
    key = f"sensor-alarm:{s.id}:{rule.id}:{seq}"
    try:
        for attempt in range(3):
            with session.begin_nested():  # a refused event must not undo the readings
                ref = ev.create_event(
                    session, lon=s.lon, lat=s.lat, subclass=rule.subclass_code, description=description,
                    urgency=rule.urgency, source=rule.event_source, actor=_actor(s), sensor_id=s.id,
                    client_key=key if attempt == 0 else f"{key}:{attempt}",
                )
            # The key names the raising reading; once late readings moved an episode's
            # start, its old raising reading may raise again and find that episode's event.
            if ref.created or not session.execute(
                    text("SELECT EXISTS (SELECT 1 FROM sensor_alarm WHERE event_id = :id)"), {"id": ref.id}).scalar():
                event_id, reported_at = ref.id, ref.reported_at
                result.events.append(ref.id)
                break
    except (ev.EventError, ev.PermissionDenied) as exc:
        log.warning("sensor %s: alarm %s without event: %s", s.code, rule.code, exc)
    span = span or EpisodeSpan(measured_at, seq, value, value, [seq])
    episode_id = session.execute(
        text(
            """
            INSERT INTO sensor_alarm (sensor_id, village_id, kind, rule_id, opened_at, open_seq, open_value,
                                      peak_value, reading_seqs, cleared_at, clear_seq, clear_value,
                                      event_id, event_reported_at)
            VALUES (:sid, :vid, 'threshold', :rid, :at, :seq, :v, :peak, CAST(:seqs AS bigint[]), :ca, :cs, :cv,
                    :eid, :ert)
            RETURNING id
            """
        ),
        {"sid": s.id, "vid": s.village_id, "rid": rule.id, "at": measured_at, "seq": seq, "v": value,
         "peak": span.peak, "seqs": list(span.seqs), "ca": span.cleared_at, "cs": span.clear_seq,
         "cv": span.clear_value, "eid": event_id, "ert": reported_at},
    ).scalar_one()
    result.alarms_opened += 1
    return _Episode(episode_id, s.id, rule, measured_at, span.peak, event_id, reported_at, open_seq=seq,
                    open_value=value, cleared_at=span.cleared_at, clear_seq=span.clear_seq,
                    clear_value=span.clear_value, seqs=tuple(span.seqs))


def _close(session: Session, episode_id: int, at, seq, value, seqs, peak=None) -> None:
    session.execute(
        text(
            "UPDATE sensor_alarm SET cleared_at = :at, clear_seq = :seq, clear_value = :v,"
            " reading_seqs = reading_seqs || CAST(:seqs AS bigint[]), peak_value = coalesce(:peak, peak_value),"
            " updated_at = now() WHERE id = :id"
        ),
        {"at": at, "seq": seq, "v": value, "seqs": list(seqs), "peak": peak, "id": episode_id},
    )


def _note_cleared(session: Session, s: _Sensor, ep: _Episode, at, seq: int, value: float) -> None:
    if ep.event_id is None:
        return
    rule = ep.rule
    note = (f"告警解除:{rule.label_zh},设备 {s.code} 读数 {rule.value_key} = {value:g},"
            f"已回到正常范围(解除阈值 {rule.clear_level:g})。"
            f" / Alarm cleared: {rule.label_en}, sensor {s.code} reads {rule.value_key} = {value:g}, "
            f"back in the normal range (clear level {rule.clear_level:g}).")
    try:
        with session.begin_nested():
            ev.add_note(session, ep.event_id, _actor(s), note, data={
                "sensor_alarm_id": ep.id, "sensor_id": s.id, "rule": rule.code, "cleared_at": at.isoformat(),
                "clear_seq": seq, "value": value, "peak": ep.peak, "opened_at": ep.opened_at.isoformat(),
            })
    except (ev.EventError, ev.PermissionDenied) as exc:
        log.warning("sensor %s: could not note the clearing on event %s: %s", s.code, ep.event_id, exc)


# -- silence ------------------------------------------------------------------------

def check_offline(session: Session, *, source: str = "mqtt") -> dict[str, int]:
    """Open an ``offline`` episode for every sensor silent too long, and mark it offline.

    Silent too long: no reading newer than ``offline_after_reports ×
    report_interval_s`` seconds (per sensor type) before the transaction's
    ``now()``; a sensor that never reported counts from ``installed_at``. The
    episode opens at the moment the silence passed that limit. Sensors locked by
    a running ingest are skipped (they are being heard from). Set-based, in the
    caller's transaction; run it with a county-scope session.

    Returns
    -------
    dict
        ``{"opened": n}`` — episodes opened (sensors newly offline).
    """
    opened = session.execute(
        text(
            """
            WITH due AS (
                SELECT s.id, s.village_id, s.last_seq,
                       coalesce(s.last_seen_at, s.installed_at)
                         + st.offline_after_reports * st.report_interval_s * interval '1 second' AS silent_from
                  FROM sensor s JOIN sensor_type st ON st.code = s.type
                 WHERE coalesce(s.last_seen_at, s.installed_at)
                         + st.offline_after_reports * st.report_interval_s * interval '1 second' < now()
                   AND NOT EXISTS (SELECT 1 FROM sensor_alarm a
                                    WHERE a.sensor_id = s.id AND a.kind = 'offline' AND a.cleared_at IS NULL)
                   FOR UPDATE OF s SKIP LOCKED
            ), ins AS (
                INSERT INTO sensor_alarm (sensor_id, village_id, kind, opened_at, open_seq)
                SELECT id, village_id, 'offline', silent_from, last_seq FROM due
                ON CONFLICT (sensor_id) WHERE cleared_at IS NULL AND kind = 'offline' DO NOTHING
                RETURNING sensor_id
            ), upd AS (
                UPDATE sensor s SET status = 'offline', status_changed_at = now()
                  FROM ins WHERE s.id = ins.sensor_id AND s.status <> 'offline'
                RETURNING s.id
            )
            SELECT (SELECT count(*) FROM ins) AS opened, (SELECT count(*) FROM upd) AS changed
            """
        )
    ).mappings().one()
    if opened["opened"]:
        _count(session, source, {("offline_opened", ""): opened["opened"]})
    return {"opened": int(opened["opened"])}
