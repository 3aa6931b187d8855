"""Topics and payloads: turn what a broker or gateway sent into a :class:`Reading` (pure)."""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone

from geodata.sensors.base import (
    _CODE,
    _KEY,
    _MAX_SEQ,
    _MAX_TEXT_VALUE,
    MAX_AGE,
    MAX_FUTURE,
    MAX_PAYLOAD_BYTES,
    MAX_VALUES,
    TOPIC_PREFIX,
    Reading,
    ReadingRejected,
)


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
