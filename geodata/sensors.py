"""IoT sensors: validate readings, store them once, raise and clear alarms, detect silence.

The ingest service behind both the MQTT worker (etl/sensor_ingest.py) and the
gateways' HTTP batch endpoint. Like the event service it runs inside the
caller's session and transaction and never commits: the MQTT worker commits and
only then acknowledges the messages, so a crash between the two means a
redelivery, which the primary key (sensor, seq) turns into a no-op.

* :func:`ingest` — parse and validate raw payloads, store each reading once
  (``INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING``: COPY is refused on
  RLS tables), advance ``sensor.last_*`` only with newer measured times,
  evaluate the rules of ``sensor_rule`` with hysteresis in measured-time order
  (time, then seq), open one event per alarm episode through
  :func:`geodata.events.create_event` and note its clearing with
  :func:`geodata.events.add_note`, count outcomes and log rejections.
* Late readings (older than one the sensor already sent, e.g. redelivered after
  a broker restart) are evaluated too: the rules are run again over the
  sensor's stored readings from the episode open just before the late reading
  on, and the episodes are made to agree with the result (:func:`episode_spans`
  is that one state machine). A late alarm opens its episode and event, a late
  clearing reading closes or splits one; a rerun over the same readings changes
  nothing, so redeliveries never duplicate an episode or an event. Bounded:
  readings more than :data:`REEVALUATE_WINDOW` older than the sensor's newest,
  or a rerun of more than :data:`REPLAY_MAX_READINGS` readings, are stored and
  not evaluated (logged). Ingest locks the sensor rows (``FOR UPDATE``, in id
  order), so two batches for one sensor — two workers, a worker and a gateway —
  take turns, and the second sees the first's readings.
* :func:`check_offline` — sensors silent for longer than
  ``offline_after_reports × report_interval_s`` become offline (an episode of
  kind ``offline``); their next fresh reading clears it.
* Read helpers for the map: :func:`status_counts`, :func:`status_changes`,
  :func:`unit_counts`, :func:`reading_series`, :func:`sensor_alarms`.

Errors a person reads are bilingual (:class:`ReadingRejected`, :class:`SensorInputError`).
"""
from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping, Sequence

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata import events as ev
from geodata.i18n import BilingualError

log = logging.getLogger(__name__)

__all__ = [
    "RawReading", "Reading", "Rejection", "IngestResult", "Rule", "ReadingRejected", "SensorInputError",
    "parse_reading", "topic_sensor_code", "reading_topic", "ingest", "check_offline", "status_counts",
    "status_changes", "unit_counts", "reading_series", "sensor_alarms", "alarm_for_event", "rules",
    "ingest_stats", "prune_rejections", "record_rejections", "county_code", "create_gateway_key", "find_gateway",
    "REASONS", "MAX_BATCH", "EpisodeSpan", "episode_spans", "REEVALUATE_WINDOW", "REPLAY_MAX_READINGS",
]

#: Largest payload accepted (bytes); a reading is a few hundred.
MAX_PAYLOAD_BYTES = 4096
#: Most values in one reading.
MAX_VALUES = 32
#: Most readings in one call (one HTTP batch).
MAX_BATCH = 10_000
#: Sensor clocks may run this far ahead of the server's.
MAX_FUTURE = timedelta(minutes=10)
#: Readings older than this are refused (a gateway replaying a very old buffer).
MAX_AGE = timedelta(days=30)
#: Rejected payloads logged as rows per call; the counters stay exact beyond it.
REJECTION_ROWS_PER_CALL = 50
#: Late readings measured at most this long before the sensor's newest one are
#: evaluated in their place in time; older ones are stored only.
REEVALUATE_WINDOW = timedelta(hours=24)
#: Most stored readings of one sensor run through the rules again for late readings.
REPLAY_MAX_READINGS = 20_000
SOURCES = ("mqtt", "http", "cli")
TOPIC_PREFIX = "dvmap"

_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_MAX_SEQ = 2**63 - 1
_MAX_TEXT_VALUE = 40

#: reason → (Chinese, English) of every rejection.
REASONS: Mapping[str, tuple[str, str]] = {
    "too_large": ("报文过大(超过 4 KB)", "payload larger than 4 KB"),
    "not_json": ("报文不是有效的 UTF-8 JSON", "payload is not valid UTF-8 JSON"),
    "not_object": ("报文须为 JSON 对象", "payload must be a JSON object"),
    "bad_topic": ("主题格式无效,应为 dvmap/<县代码>/<设备编码>/reading",
                  "topic must be dvmap/<county code>/<sensor code>/reading"),
    "bad_sensor_code": ("设备编码缺失或格式无效", "sensor code missing or malformed"),
    "sensor_mismatch": ("报文中的设备编码与主题不一致", "the payload's sensor code differs from the topic's"),
    "bad_seq": ("seq 须为非负整数", "seq must be a non-negative integer"),
    "bad_time": ("measured_at 无效:须为带时区的 ISO 8601 时间或 Unix 秒",
                 "measured_at must be an ISO 8601 time with a zone, or Unix seconds"),
    "future_time": ("测量时间超前服务器时间 10 分钟以上", "measured_at is more than 10 minutes in the future"),
    "too_old": ("测量时间早于 30 天前", "measured_at is more than 30 days old"),
    "bad_values": ("values 须为 1–32 项的对象:键为小写英文,值为数字、布尔或短文本",
                   "values must be an object of 1–32 entries: lower-case keys; numbers, booleans or short text"),
    "unknown_sensor": ("设备未登记或不在您的范围内", "unknown sensor, or outside your scope"),
    "internal_error": ("处理该报文时发生内部错误", "internal error while processing this payload"),
}


# -- errors and value types -----------------------------------------------------

class ReadingRejected(BilingualError):
    """One payload that cannot become a reading; ``reason`` is a key of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str | None = None):
        zh, en = REASONS[reason]
        if detail:
            zh, en = f"{zh}({detail})", f"{en} ({detail})"
        super().__init__(zh, en, code=reason)
        self.reason = reason
        self.detail = detail


class SensorInputError(BilingualError):
    """A call that cannot be served at all (bad batch, bad source, bad key name)."""

    code = "bad_batch"


@dataclass(frozen=True)
class RawReading:
    """A payload as received: bytes/str (MQTT) or a decoded mapping (HTTP), and its MQTT topic."""

    payload: Any
    topic: str | None = None


@dataclass(frozen=True)
class Reading:
    """A validated reading."""

    sensor_code: str
    seq: int
    measured_at: datetime
    values: dict


@dataclass(frozen=True)
class Rejection:
    """Why item ``index`` of a call was refused."""

    index: int
    reason: str
    message_zh: str
    message_en: str
    topic: str | None = None
    sensor_code: str | None = None
    payload: str | None = None

    def as_dict(self) -> dict:
        return {"index": self.index, "reason": self.reason, "message_zh": self.message_zh,
                "message_en": self.message_en}


@dataclass
class IngestResult:
    """What :func:`ingest` did; ``outcomes[i]`` is item i's: stored, late, duplicate or rejected."""

    received: int = 0
    stored: int = 0
    late: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    alarms_opened: int = 0
    alarms_cleared: int = 0
    offline_cleared: int = 0
    events: list[int] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"received": self.received, "stored": self.stored, "late": self.late,
                "duplicates": self.duplicates, "rejected": [r.as_dict() for r in self.rejected],
                "alarms_opened": self.alarms_opened, "alarms_cleared": self.alarms_cleared,
                "offline_cleared": self.offline_cleared, "events": list(self.events)}


@dataclass(frozen=True)
class Rule:
    """One row of ``sensor_rule``: raise when ``value <cmp> raise_level``, hold while ``value <cmp> clear_level``."""

    id: int
    sensor_type: str
    code: str
    value_key: str
    comparison: str
    raise_level: float
    clear_level: float
    subclass_code: str
    urgency: str
    event_source: str
    label_zh: str
    label_en: str

    def raises(self, value: float) -> bool:
        """True when ``value`` opens an episode: ``value <comparison> raise_level``."""
        return _compare(value, self.comparison, self.raise_level)

    def clears(self, value: float) -> bool:
        """True when ``value`` ends an open episode: it no longer holds ``value <comparison> clear_level``.

        The band between the two levels keeps the episode as it is (hysteresis).
        """
        return not _compare(value, self.comparison, self.clear_level)

    def worse(self, a: float, b: float) -> float:
        """The value further into the alarm range (for the episode's peak)."""
        return max(a, b) if self.comparison in (">=", ">") else min(a, b)


def _compare(value: float, comparison: str, level: float) -> bool:
    if comparison == ">=":
        return value >= level
    if comparison == ">":
        return value > level
    if comparison == "<=":
        return value <= level
    return value < level


def _step(rule: Rule, is_open: bool, value: float) -> str | None:
    """The rule's state machine: ``open``, ``hold``, ``clear`` or None (stays normal)."""
    if not is_open:
        return "open" if rule.raises(value) else None
    return "clear" if rule.clears(value) else "hold"


@dataclass
class EpisodeSpan:
    """One alarm episode as the readings say it should be (see :func:`episode_spans`)."""

    opened_at: datetime
    open_seq: int
    open_value: float
    peak: float
    seqs: list
    cleared_at: datetime | None = None
    clear_seq: int | None = None
    clear_value: float | None = None


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


# -- parsing (pure) -----------------------------------------------------------------

def reading_topic(county: str, sensor_code: str) -> str:
    """MQTT topic of a sensor's readings: ``dvmap/<county>/<sensor_code>/reading``."""
    return f"{TOPIC_PREFIX}/{county}/{sensor_code}/reading"


def topic_sensor_code(topic: str, county: str | None = None) -> str:
    """The sensor code in a reading topic.

    Parameters
    ----------
    topic : str
        ``dvmap/<county>/<sensor_code>/reading``.
    county : str, optional
        When given, the topic's county segment must equal it.

    Returns
    -------
    str

    Raises
    ------
    ReadingRejected
        ``bad_topic`` or ``bad_sensor_code``.
    """
    parts = topic.split("/") if isinstance(topic, str) else []
    if len(parts) != 4 or parts[0] != TOPIC_PREFIX or parts[3] != "reading" or (county and parts[1] != county):
        raise ReadingRejected("bad_topic", str(topic)[:80])
    if not _CODE.match(parts[2]):
        raise ReadingRejected("bad_sensor_code")
    return parts[2]


def _parse_time(value) -> datetime:
    if isinstance(value, bool):
        raise ReadingRejected("bad_time")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ReadingRejected("bad_time")
        seconds = value / 1000.0 if abs(value) > 1e11 else float(value)  # milliseconds from some gateways
        try:
            return datetime.fromtimestamp(seconds, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise ReadingRejected("bad_time") from None
    if isinstance(value, str) and len(value) <= 40:
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ReadingRejected("bad_time") from None
        if parsed.tzinfo is None:  # a clock without a zone is ambiguous by 8 hours
            raise ReadingRejected("bad_time", "no time zone")
        return parsed
    raise ReadingRejected("bad_time")


def _check_values(values) -> dict:
    if not isinstance(values, dict) or not 1 <= len(values) <= MAX_VALUES:
        raise ReadingRejected("bad_values")
    for key, value in values.items():
        if not isinstance(key, str) or not _KEY.match(key):
            raise ReadingRejected("bad_values", f"key {str(key)[:40]!r}")
        if isinstance(value, bool):
            continue
        if isinstance(value, (int, float)):
            if not math.isfinite(value):
                raise ReadingRejected("bad_values", f"{key} is not finite")
            continue
        if isinstance(value, str) and len(value) <= _MAX_TEXT_VALUE and "\x00" not in value:
            continue
        raise ReadingRejected("bad_values", f"{key}")
    return values


def parse_reading(payload, *, sensor_code: str | None = None, now: datetime | None = None) -> Reading:
    """Validate one payload.

    Parameters
    ----------
    payload : bytes, str or mapping
        JSON ``{"seq": int, "measured_at": ISO 8601 with zone | Unix seconds, "values": {...}}``,
        plus ``"sensor": code`` when the code does not come from the topic.
    sensor_code : str, optional
        The code from the MQTT topic; a ``sensor`` field, if present, must agree.
    now : datetime, optional
        Server time for the future/age checks (default: the clock).

    Returns
    -------
    Reading

    Raises
    ------
    ReadingRejected
    """
    if isinstance(payload, (bytes, bytearray, memoryview, str)):
        raw = payload.encode("utf-8", "replace") if isinstance(payload, str) else bytes(payload)
        if len(raw) > MAX_PAYLOAD_BYTES:
            raise ReadingRejected("too_large")
        try:
            payload = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise ReadingRejected("not_json") from None
    if not isinstance(payload, dict):
        raise ReadingRejected("not_object")
    code = payload.get("sensor")
    if code is not None:
        if not isinstance(code, str) or not _CODE.match(code):
            raise ReadingRejected("bad_sensor_code")
        if sensor_code is not None and code != sensor_code:
            raise ReadingRejected("sensor_mismatch")
    code = code or sensor_code
    if code is None:
        raise ReadingRejected("bad_sensor_code")
    seq = payload.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= _MAX_SEQ:
        raise ReadingRejected("bad_seq")
    measured_at = _parse_time(payload.get("measured_at"))
    now = now or datetime.now(timezone.utc)
    if measured_at > now + MAX_FUTURE:
        raise ReadingRejected("future_time")
    if measured_at < now - MAX_AGE:
        raise ReadingRejected("too_old")
    return Reading(code, seq, measured_at, _check_values(payload.get("values")))


def _excerpt(payload) -> str | None:
    if payload is None:
        return None
    if isinstance(payload, (bytes, bytearray, memoryview)):
        text_ = bytes(payload[:1000]).decode("utf-8", "replace")
    elif isinstance(payload, str):
        text_ = payload
    else:
        try:
            text_ = json.dumps(payload, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            text_ = repr(payload)
    return text_.replace("\x00", "")[:1000]


def _number(value) -> float | None:
    """A rule's view of a value: numbers as they are, flags as 0/1, anything else ignored."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    return None


# -- ingest -------------------------------------------------------------------------

@dataclass
class _Sensor:
    id: int
    code: str
    type: str
    village_id: int
    lon: float
    lat: float
    status: str
    last_seen_at: datetime | None
    last_seq: int | None
    fresh: list = field(default_factory=list)   # [(measured_at, seq, values)] newer than last_seen
    late: list = field(default_factory=list)    # [(measured_at, seq)] stored now, older than last_seen


@dataclass
class _Episode:
    id: int
    sensor_id: int
    rule: Rule | None
    opened_at: datetime
    peak: float | None
    event_id: int | None
    event_reported_at: datetime | None
    new_seqs: list = field(default_factory=list)
    # the whole row, for reconciling with a rerun (late readings)
    open_seq: int | None = None
    open_value: float | None = None
    cleared_at: datetime | None = None
    clear_seq: int | None = None
    clear_value: float | None = None
    seqs: tuple = ()


def rules(session: Session) -> list[Rule]:
    """The active alarm rules (table ``sensor_rule``), by sensor type and code."""
    rows = session.execute(
        text(
            "SELECT id, sensor_type, code, value_key, comparison, raise_level, clear_level, subclass_code,"
            " urgency, event_source, label_zh, label_en FROM sensor_rule WHERE active ORDER BY sensor_type, id"
        )
    ).mappings()
    return [Rule(**r) for r in rows]


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

    parsed: list[tuple[int, Reading]] = []
    for i, item in enumerate(items):
        code = None
        try:
            if item.topic is not None:
                code = topic_sensor_code(item.topic, county)
            parsed.append((i, parse_reading(item.payload, sensor_code=code, now=now)))
        except ReadingRejected as exc:
            _reject(result, i, exc, item, code)

    sensors = _lock_sensors(session, sorted({r.sensor_code for _, r in parsed}))
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

    inserted = _insert_readings(session, rows)
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

    live = [s for s in sensors.values() if s.fresh or s.late]
    if live:
        _evaluate(session, live, now, result)
    result.rejected.sort(key=lambda r: r.index)
    _record(session, source, client, result)
    return result


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


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


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


def _actor(s: _Sensor) -> ev.Actor:
    return ev.Actor(f"sensor:{s.code}", "system")


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
            SELECT (now() AT TIME ZONE 'Asia/Shanghai')::date, :source, o, r, c
              FROM unnest(CAST(:o AS text[]), CAST(:r AS text[]), CAST(:c AS bigint[])) AS u(o, r, c)
            ON CONFLICT (day, source, outcome, reason)
            DO UPDATE SET count = sensor_ingest_counter.count + EXCLUDED.count
            """
        ),
        {"source": source, "o": [k[0] for k in keys], "r": [k[1] for k in keys], "c": [counts[k] for k in keys]},
    )


def record_rejections(session: Session, rejections: Iterable[Rejection], *, source: str,
                      client: str | None = None) -> None:
    """Count and log payloads refused before :func:`ingest` saw them (e.g. a poison message)."""
    result = IngestResult(rejected=list(rejections))
    _record(session, source, client, result)


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


def prune_rejections(session: Session, keep: timedelta = timedelta(days=30)) -> int:
    """Delete rejection rows older than ``keep`` (the counters stay); returns how many."""
    return session.execute(
        text("DELETE FROM sensor_ingest_rejection WHERE at < now() - :keep"), {"keep": keep}
    ).rowcount


# -- reading --------------------------------------------------------------------------

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


def ingest_stats(session: Session, days: int = 1) -> list[dict]:
    """Counter rows of the last ``days`` days (China time), newest first."""
    return [
        dict(r)
        for r in session.execute(
            text(
                """
                SELECT day, source, outcome, reason, count FROM sensor_ingest_counter
                 WHERE day > (now() AT TIME ZONE 'Asia/Shanghai')::date - :days
                 ORDER BY day DESC, source, outcome, reason
                """
            ),
            {"days": int(days)},
        ).mappings()
    ]


# -- gateway keys -------------------------------------------------------------------------

def create_gateway_key(session: Session, name: str, village_ids: Iterable[int] | None = None) -> tuple[int, str]:
    """Issue a key for a sensor gateway (an ``api_client`` of source ``sensor``); shown only once.

    Parameters
    ----------
    session : Session
    name : str
        Unique name of the gateway.
    village_ids : iterable of int, optional
        Villages whose sensors it may report for; None = the whole county.

    Returns
    -------
    (int, str)
        The client id and the plaintext key.
    """
    return ev.create_api_client(session, name, village_ids, source="sensor")


def find_gateway(session: Session, key: str | None) -> ev.ApiClient | None:
    """The active sensor gateway holding ``key``, or None (other API clients' keys do not count)."""
    client = ev.find_api_client(session, key)
    return client if client is not None and client.source == "sensor" else None
