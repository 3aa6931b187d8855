"""Alarm rules run over readings: in order for fresh ones, again from before for late ones.

:func:`episode_spans` is the one state machine (raise, hold with hysteresis,
clear); :func:`_evaluate` drives it for a batch, advancing open episodes with
fresh readings (:func:`_advance`) or rerunning a sensor's stored readings when
late ones arrived and reconciling the stored episodes with the result
(:func:`_rerun`, :func:`_reconcile`).
"""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Iterable

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.sensors.alarms import _close, _note_cleared, _open
from geodata.sensors.base import (
    REEVALUATE_WINDOW,
    REPLAY_MAX_READINGS,
    EpisodeSpan,
    IngestResult,
    Rule,
    _dumps,
    _Episode,
    _number,
    _Sensor,
)

log = logging.getLogger(__name__)


def rules(session: Session) -> list[Rule]:
    """The active alarm rules (table ``sensor_rule``), by sensor type and code."""
    rows = session.execute(
        text(
            "SELECT id, sensor_type, code, value_key, comparison, raise_level, clear_level, subclass_code,"
            " urgency, event_source, label_zh, label_en FROM sensor_rule WHERE active ORDER BY sensor_type, id"
        )
    ).mappings()
    return [Rule(**r) for r in rows]


def _step(rule: Rule, is_open: bool, value: float) -> str | None:
    """The rule's state machine: ``open``, ``hold``, ``clear`` or None (stays normal)."""
    if not is_open:
        return "open" if rule.raises(value) else None
    return "clear" if rule.clears(value) else "hold"


def episode_spans(rule: Rule, readings: Iterable[tuple]) -> list[EpisodeSpan]:
    """Run one rule over readings in measured order, starting with no episode open.

    Parameters
    ----------
    rule : Rule
    readings : iterable of (measured_at, seq, values)
        Sorted by (measured_at, seq); readings without the rule's value are skipped.

    Returns
    -------
    list of EpisodeSpan
        The episodes in time order; only the last may be open (``cleared_at`` None).
        ``seqs`` holds the raising, holding and clearing readings, like
        ``sensor_alarm.reading_seqs``.
    """
    out: list[EpisodeSpan] = []
    current: EpisodeSpan | None = None
    for measured_at, seq, values in readings:
        value = _number(values.get(rule.value_key))
        if value is None:
            continue
        step = _step(rule, current is not None, value)
        if step == "open":
            current = EpisodeSpan(measured_at, seq, value, value, [seq])
            out.append(current)
        elif step == "clear":
            current.seqs.append(seq)
            current.cleared_at, current.clear_seq, current.clear_value = measured_at, seq, value
            current = None
        elif step == "hold":
            current.seqs.append(seq)
            current.peak = rule.worse(current.peak, value)
    return out


def _evaluate(session: Session, live: list[_Sensor], now: datetime, result: IngestResult) -> None:
    """Run the new readings of each sensor through its rules, in measured-time order.

    Readings newer than the sensor's last advance the open episodes (the common
    case, cheap); a sensor with late readings gets its rules run again from
    before the earliest of them (:func:`_rerun`).
    """
    by_type: dict[str, list[Rule]] = {}
    all_rules = rules(session)
    for rule in all_rules:
        by_type.setdefault(rule.sensor_type, []).append(rule)
    rule_by_id = {r.id: r for r in all_rules}
    open_rule, open_offline = _open_episodes(session, [s.id for s in live], rule_by_id)
    touched: dict[int, _Episode] = {}
    updates, statuses = [], []
    for s in live:
        s.fresh.sort(key=lambda x: (x[0], x[1]))
        offline = open_offline.get(s.id)
        if offline is not None and s.fresh:
            # Heard from again: the silence is over (communication restored now).
            _close(session, offline.id, now, s.fresh[0][1], None, offline.new_seqs)
            result.offline_cleared += 1
        type_rules = by_type.get(s.type, [])
        since = _rerun_from(s)
        eps = _rerun(session, s, type_rules, since, result) if since is not None else None
        if eps is None:
            eps = open_rule.get(s.id, {})
            _advance(session, s, type_rules, eps, touched, result)
        status = "alarm" if eps else "normal"
        if s.fresh:
            newest = s.fresh[-1]
            updates.append((s.id, newest[0].isoformat(), newest[1], newest[2], status))
        elif offline is None:  # late readings only: the alarm state may change, not what was seen last
            statuses.append((s.id, status))
    for ep in touched.values():
        session.execute(
            text("UPDATE sensor_alarm SET reading_seqs = reading_seqs || CAST(:seqs AS bigint[]), peak_value = :peak,"
                 " updated_at = now() WHERE id = :id"),
            {"seqs": ep.new_seqs, "peak": ep.peak, "id": ep.id},
        )
    if updates:
        session.execute(
            text(
                """
                UPDATE sensor s SET last_seen_at = (x ->> 1)::timestamptz, last_seq = (x ->> 2)::bigint,
                       last_values = x -> 3, status = x ->> 4,
                       status_changed_at = CASE WHEN s.status <> x ->> 4 THEN now() ELSE s.status_changed_at END
                  FROM jsonb_array_elements(CAST(:doc AS jsonb)) AS x
                 WHERE s.id = (x ->> 0)::integer
                """
            ),
            {"doc": _dumps(updates)},
        )
    for sensor_id, status in statuses:
        session.execute(
            text("UPDATE sensor SET status = :st, status_changed_at = now() WHERE id = :id AND status <> :st"),
            {"id": sensor_id, "st": status},
        )


def _advance(session: Session, s: _Sensor, type_rules: list[Rule], eps: dict[int, _Episode],
             touched: dict[int, _Episode], result: IngestResult) -> None:
    """Readings newer than any before: move each rule's state machine on from its open episode."""
    for measured_at, seq, values in s.fresh:
        for rule in type_rules:
            value = _number(values.get(rule.value_key))
            if value is None:
                continue
            ep = eps.get(rule.id)
            step = _step(rule, ep is not None, value)
            if step == "open":
                eps[rule.id] = _open(session, s, rule, measured_at, seq, value, result)
            elif step == "clear":
                ep.new_seqs.append(seq)
                _close(session, ep.id, measured_at, seq, value, ep.new_seqs, ep.peak)
                touched.pop(ep.id, None)
                _note_cleared(session, s, ep, measured_at, seq, value)
                del eps[rule.id]
                result.alarms_cleared += 1
            elif step == "hold":
                ep.new_seqs.append(seq)
                ep.peak = value if ep.peak is None else rule.worse(ep.peak, value)
                touched[ep.id] = ep


def _rerun_from(s: _Sensor) -> tuple | None:
    """(measured_at, seq) of the earliest late reading worth evaluating, or None."""
    if not s.late:
        return None
    horizon = s.last_seen_at - REEVALUATE_WINDOW
    recent = [p for p in s.late if p[0] >= horizon]
    if len(recent) < len(s.late):
        log.warning("sensor %s: %d reading(s) more than %s older than its newest stored, not evaluated",
                    s.code, len(s.late) - len(recent), REEVALUATE_WINDOW)
    return min(recent) if recent else None


def _rerun(session: Session, s: _Sensor, type_rules: list[Rule], since: tuple,
           result: IngestResult) -> dict[int, _Episode] | None:
    """Run the rules again over the stored readings from before ``since`` and reconcile the episodes.

    Per rule, the rerun starts at the opening of the episode open just before
    ``since`` (its state before that reading was "no episode"), or at ``since``.
    Returns the open episodes afterwards by rule id, or None when the rerun
    would be too long (the late readings then stay unevaluated).
    """
    if not type_rules:
        return {}
    existing = _episodes_since(session, s.id, [r.id for r in type_rules], since)
    starts = {}
    for rule in type_rules:
        carried = [(e.opened_at, e.open_seq) for e in existing.get(rule.id, ()) if (e.opened_at, e.open_seq) < since]
        starts[rule.id] = min(carried, default=since)
    first = min(starts.values())
    readings = session.execute(
        text(
            """
            SELECT measured_at, seq, "values" FROM sensor_reading
             WHERE sensor_id = :sid AND measured_at >= :t AND (measured_at, seq) >= (:t, :seq)
             ORDER BY measured_at, seq LIMIT :n
            """
        ),
        {"sid": s.id, "t": first[0], "seq": first[1], "n": REPLAY_MAX_READINGS + 1},
    ).all()
    if len(readings) > REPLAY_MAX_READINGS:
        log.warning("sensor %s: more than %d readings since %s; late readings stored, not evaluated",
                    s.code, REPLAY_MAX_READINGS, first[0].isoformat())
        return None
    readings = [(r.measured_at, r.seq, r.values) for r in readings]
    open_now = {}
    for rule in type_rules:
        start = starts[rule.id]
        spans = episode_spans(rule, (x for x in readings if (x[0], x[1]) >= start))
        ep = _reconcile(session, s, rule, existing.get(rule.id, []), spans, result)
        if ep is not None:
            open_now[rule.id] = ep
    return open_now


def _episodes_since(session: Session, sensor_id: int, rule_ids: list[int], since: tuple) -> dict[int, list[_Episode]]:
    """Threshold episodes still open at ``since`` or opened after it, by rule, in time order."""
    rows = session.execute(
        text(
            """
            SELECT id, rule_id, opened_at, open_seq, open_value, peak_value, cleared_at, clear_seq, clear_value,
                   reading_seqs, event_id, event_reported_at
              FROM sensor_alarm
             WHERE sensor_id = :sid AND kind = 'threshold' AND rule_id = ANY(:rules)
               AND (cleared_at IS NULL OR (cleared_at, coalesce(clear_seq, -1)) > (:t, :seq))
             ORDER BY opened_at, open_seq, id
            """
        ),
        {"sid": sensor_id, "rules": rule_ids, "t": since[0], "seq": since[1]},
    ).mappings()
    out: dict[int, list[_Episode]] = {}
    for r in rows:
        out.setdefault(r["rule_id"], []).append(_Episode(
            r["id"], sensor_id, None, r["opened_at"], r["peak_value"], r["event_id"], r["event_reported_at"],
            open_seq=r["open_seq"], open_value=r["open_value"], cleared_at=r["cleared_at"],
            clear_seq=r["clear_seq"], clear_value=r["clear_value"], seqs=tuple(r["reading_seqs"]),
        ))
    return out


def _reconcile(session: Session, s: _Sensor, rule: Rule, existing: list[_Episode], spans: list[EpisodeSpan],
               result: IngestResult) -> _Episode | None:
    """Make the stored episodes of one rule agree with a rerun; returns the one left open, if any.

    A stored episode is the same episode as the span sharing readings with it
    (readings are only ever added, so a raising reading stays in an episode and
    a clearing reading still clears): it keeps its id and event and takes the
    span's bounds. A span without one is a missed episode: opened with its
    event now (cleared at once, with its note, if its readings say so). Spans
    are handled in time order, so the one-open-episode index never trips.
    """
    used: set[int] = set()
    pairs = []
    for span in spans:
        seqs = set(span.seqs)
        match = next((e for e in existing if e.id not in used and seqs.intersection(e.seqs)), None)
        if match is not None:
            used.add(match.id)
        pairs.append((span, match))
    strays = [e for e in existing if e.id not in used]
    for e in strays:  # only after rules or readings were edited by hand
        log.warning("sensor %s: alarm episode %s (%s) no longer matches its readings; left as it is",
                    s.code, e.id, rule.code)
    stray_open = any(e.cleared_at is None for e in strays)
    left_open = None
    for span, ep in pairs:
        if span.cleared_at is None and stray_open and (ep is None or ep.cleared_at is not None):
            continue  # it would be a second open episode of the rule
        if ep is None:
            ep = _open(session, s, rule, span.opened_at, span.open_seq, span.open_value, result, span)
            was_open = True  # raised and, if its readings say so, cleared: noted like in order
        else:
            was_open = ep.cleared_at is None
        ep.rule = rule
        if (ep.opened_at, ep.open_seq, ep.open_value, ep.peak, tuple(ep.seqs), ep.cleared_at, ep.clear_seq,
                ep.clear_value) != (span.opened_at, span.open_seq, span.open_value, span.peak, tuple(span.seqs),
                                    span.cleared_at, span.clear_seq, span.clear_value):
            session.execute(
                text(
                    "UPDATE sensor_alarm SET opened_at = :oa, open_seq = :os, open_value = :ov, peak_value = :pk,"
                    " reading_seqs = CAST(:seqs AS bigint[]), cleared_at = :ca, clear_seq = :cs, clear_value = :cv,"
                    " updated_at = now() WHERE id = :id"
                ),
                {"oa": span.opened_at, "os": span.open_seq, "ov": span.open_value, "pk": span.peak,
                 "seqs": list(span.seqs), "ca": span.cleared_at, "cs": span.clear_seq, "cv": span.clear_value,
                 "id": ep.id},
            )
            log.info("sensor %s: alarm episode %s (%s) set by late readings to %s … %s", s.code, ep.id, rule.code,
                     span.opened_at.isoformat(), span.cleared_at.isoformat() if span.cleared_at else "open")
        ep.opened_at, ep.peak = span.opened_at, span.peak
        if span.cleared_at is None:
            left_open = ep
        elif was_open:
            _note_cleared(session, s, ep, span.cleared_at, span.clear_seq, span.clear_value)
            result.alarms_cleared += 1
    return left_open


def _open_episodes(session: Session, sensor_ids: list[int], rule_by_id: dict[int, Rule]):
    rows = session.execute(
        text(
            "SELECT id, sensor_id, kind, rule_id, opened_at, peak_value, event_id, event_reported_at"
            " FROM sensor_alarm WHERE sensor_id = ANY(:ids) AND cleared_at IS NULL"
        ),
        {"ids": sensor_ids},
    ).mappings()
    by_rule: dict[int, dict[int, _Episode]] = {}
    offline: dict[int, _Episode] = {}
    for r in rows:
        ep = _Episode(r["id"], r["sensor_id"], rule_by_id.get(r["rule_id"]), r["opened_at"], r["peak_value"],
                      r["event_id"], r["event_reported_at"])
        if r["kind"] == "offline":
            offline[r["sensor_id"]] = ep
        elif ep.rule is not None:  # a deactivated rule's episode stays as it is
            by_rule.setdefault(r["sensor_id"], {})[r["rule_id"]] = ep
    return by_rule, offline
