"""Limits, errors and value types of the sensor service (no database, no I/O).

The rejection reasons (:data:`REASONS`), the bilingual errors, what a call
receives and returns (:class:`RawReading`, :class:`Reading`, :class:`Rejection`,
:class:`IngestResult`), an alarm rule (:class:`Rule`) and the working rows the
ingest keeps per sensor and per episode while it runs.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Mapping

from geodata.i18n import BilingualError

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
        """The rejection as the HTTP endpoint returns it (no payload, topic or code)."""
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
        """The result as the HTTP endpoint returns it (without per-item outcomes)."""
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


def _number(value) -> float | None:
    """A rule's view of a value: numbers as they are, flags as 0/1, anything else ignored."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    return None


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@dataclass
class _Sensor:
    """A ``sensor`` row locked by the ingest, with the batch's readings for it."""

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
    """A ``sensor_alarm`` row the ingest works on."""

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
