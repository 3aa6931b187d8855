"""Errors, input checks and ISO weeks shared by the field services."""
from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from geodata.clock import display_zone
from geodata.i18n import BilingualError

#: most track points one request may carry (the phone sends smaller batches)
MAX_POINTS_PER_BATCH = 2000
#: a phone clock may run this far ahead of the server's
CLOCK_SKEW = timedelta(minutes=10)
#: positions worse than this are kept but left out of the track line and its length
MAX_TRACK_ACCURACY_M = 100.0


class FieldError(BilingualError):
    """Base of the field services' errors: bad input (400)."""

    code = "field_invalid"


class FieldForbidden(FieldError):
    """The caller may not do this (not a patrolling role, not their patrol)."""

    code, http_status = "field_forbidden", 403


class FieldNotFound(FieldError):
    """No such patrol/key point, or not visible to the caller (the two look alike)."""

    code, http_status = "not_found", 404


class FieldConflict(FieldError):
    """The key is already used by something the caller cannot see."""

    code, http_status = "conflict", 409


@dataclass(frozen=True)
class FieldUser:
    """Who uses the field app: the logged-in user as the server knows it (never client input)."""

    user_id: int
    role: str
    person_id: int | None = None


def check_key(value, name: str = "patrol_key") -> uuid.UUID:
    """A client-made UUID key, or FieldError."""
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        raise FieldError(f"{name} 不是有效的 UUID", f"{name} is not a valid UUID", code="bad_key") from None


def check_number(value, name: str, *, low: float, high: float, required: bool = True) -> float | None:
    """A finite float within ``[low, high]`` (None allowed unless ``required``)."""
    if value is None or value == "":
        if required:
            raise FieldError(f"缺少 {name}", f"{name} is required", code="missing_value")
        return None
    if isinstance(value, bool):
        raise FieldError(f"{name} 不是数字", f"{name} is not a number", code="bad_number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FieldError(f"{name} 不是数字", f"{name} is not a number", code="bad_number") from None
    if not math.isfinite(number) or not low <= number <= high:
        raise FieldError(f"{name} 超出范围({low}–{high})", f"{name} is out of range ({low}–{high})",
                         code="out_of_range")
    return number


def check_lonlat(lon, lat) -> tuple[float, float]:
    """Finite lon/lat in degrees of the storage CRS."""
    return (check_number(lon, "lon", low=-180, high=180), check_number(lat, "lat", low=-90, high=90))


def check_time(value, name: str = "t", *, now: datetime | None = None) -> datetime:
    """An ISO 8601 time with a zone (``…Z`` or an offset), not in the future beyond clock skew."""
    if not isinstance(value, str) or len(value) > 40:
        raise FieldError(f"{name} 须为 ISO 8601 时间", f"{name} must be an ISO 8601 time", code="bad_time")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise FieldError(f"{name} 须为 ISO 8601 时间", f"{name} must be an ISO 8601 time", code="bad_time") from None
    if parsed.tzinfo is None:
        raise FieldError(f"{name} 须带时区(如 …Z)", f"{name} needs a time zone (e.g. …Z)", code="bad_time")
    now = now or datetime.now(timezone.utc)
    if parsed > now + CLOCK_SKEW:
        raise FieldError(f"{name} 在未来", f"{name} is in the future", code="future_time")
    if parsed.year < 2000:
        raise FieldError(f"{name} 过早", f"{name} is too early", code="bad_time")
    return parsed.astimezone(timezone.utc)


_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


@dataclass(frozen=True)
class Week:
    """An ISO week in the display zone: ``label`` (``2026-W49``), UTC ``start`` (Monday 00:00 local), ``end``."""

    label: str
    start: datetime
    end: datetime


def iso_week(value: str | None = None, *, today: date | None = None) -> Week:
    """Parse ``YYYY-Www`` (default: the current week in the display zone).

    Raises
    ------
    FieldError
        Not a valid ISO week.
    """
    zone = display_zone()
    if value in (None, ""):
        day = today or datetime.now(zone).date()
        year, number, _ = day.isocalendar()
    else:
        match = _WEEK.match(str(value).strip())
        if not match:
            raise FieldError("周格式须为 YYYY-Www", "week must look like YYYY-Www", code="bad_week")
        year, number = int(match.group(1)), int(match.group(2))
    try:
        monday = date.fromisocalendar(year, number, 1)
    except ValueError:
        raise FieldError("没有这一周", "no such ISO week", code="bad_week") from None
    start = datetime.combine(monday, time(0), zone).astimezone(timezone.utc)
    end = datetime.combine(monday + timedelta(days=7), time(0), zone).astimezone(timezone.utc)
    return Week(f"{year:04d}-W{number:02d}", start, end)
