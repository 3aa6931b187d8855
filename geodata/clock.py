"""Times shown to people: stored in UTC, shown in one zone — the county's clock.

``DVMAP_TIMEZONE`` (default ``Asia/Shanghai``) names that zone. Pages, panels, the
audit log and CLI lines format times through :func:`fmt_local`, so a sensor reading
20 minutes old never looks 8 hours stale beside an event reported at the same moment.
"""
from __future__ import annotations

import functools
from datetime import date, datetime, time, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from geodata.config import get_settings

DEFAULT_FORMAT = "%Y-%m-%d %H:%M"


@functools.lru_cache(maxsize=8)
def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"DVMAP_TIMEZONE 不是有效时区 / DVMAP_TIMEZONE is not a time zone: {name!r}") from exc


def display_zone() -> tzinfo:
    """The zone times are shown in (``DVMAP_TIMEZONE``, default Asia/Shanghai).

    Raises
    ------
    ValueError
        The setting names no IANA time zone.
    """
    return _zone(get_settings().timezone)


def zone_name() -> str:
    """The IANA name of the display zone, for SQL (``(t AT TIME ZONE :tz)::date``).

    Raises
    ------
    ValueError
        The setting names no IANA time zone (checked here, so SQL never sees a bad name).
    """
    name = get_settings().timezone
    _zone(name)
    return name


def local_today(now: datetime | None = None) -> date:
    """The display zone's date at ``now`` (default: the current time)."""
    return to_local(now or datetime.now(timezone.utc)).date()


def day_start(day: date) -> datetime:
    """The first instant of ``day`` in the display zone (an aware datetime)."""
    return datetime.combine(day, time.min, display_zone())


def as_local(value: datetime) -> datetime:
    """``value`` if aware; a naive value is read as display-zone wall time (what a person typed)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=display_zone())


def to_local(value: datetime) -> datetime:
    """``value`` in the display zone; a naive value is taken as UTC (how times are stored)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(display_zone())


def fmt_local(value, fmt: str = DEFAULT_FORMAT, empty: str = "—") -> str:
    """Format a stored time for a person, in the display zone.

    Parameters
    ----------
    value : datetime, date, str or None
        Datetimes are converted; dates and strings are shown as they are.
    fmt : str
        ``strftime`` format.
    empty : str
        Shown for None.
    """
    if value is None:
        return empty
    if isinstance(value, datetime):
        return to_local(value).strftime(fmt)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)
