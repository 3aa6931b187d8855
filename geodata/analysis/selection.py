"""Which events an analysis looks at: category, time window, villages (the caller's scope applies)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.analysis.errors import AnalysisError
from geodata.clock import as_local, display_zone
from geodata.config import METRIC_SRID

_CODE = re.compile(r"^[0-9]{2}([0-9]{2})?$")


@dataclass(frozen=True)
class EventFilter:
    """The events of an analysis.

    Parameters
    ----------
    categories : tuple of str
        Event class codes (2 digits) and/or subclass codes (4 digits); empty = all.
    start, end : datetime, optional
        Report-time window ``[start, end)``; naive values are display-zone wall time (``DVMAP_TIMEZONE``).
    village_ids : tuple of int
        Restrict to these villages; empty = everything the caller may see.
    states : tuple of str
        Restrict to these states; empty = all.
    """

    categories: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    village_ids: tuple[int, ...] = ()
    states: tuple[str, ...] = ()

    @classmethod
    def last_days(cls, days: int, categories=(), village_ids=(), now: datetime | None = None) -> "EventFilter":
        """The last ``days`` days up to ``now`` (default: now)."""
        end = (now or datetime.now(timezone.utc)).astimezone(display_zone())
        return cls(tuple(categories or ()), end - timedelta(days=int(days)), end, tuple(village_ids or ()))

    def validate(self) -> "EventFilter":
        """Check codes and window; return self.

        Raises
        ------
        AnalysisError
            ``bad_category`` or ``bad_window``.
        """
        for code in self.categories:
            if not isinstance(code, str) or not _CODE.match(code):
                raise AnalysisError("bad_category", f"事件类别代码无效:{code}",
                                    f"Invalid event category code: {code}")
        start, end = _aware(self.start), _aware(self.end)
        if start is not None and end is not None and start >= end:
            raise AnalysisError("bad_window", "时间窗口的开始必须早于结束。",
                                "The start of the time window must be before its end.")
        return self

    def describe(self) -> dict:
        return {"categories": list(self.categories),
                "start": _aware(self.start).isoformat() if self.start else None,
                "end": _aware(self.end).isoformat() if self.end else None,
                "village_ids": list(self.village_ids), "states": list(self.states)}

    def where(self, alias: str = "e") -> tuple[str, dict]:
        """SQL condition and parameters for this filter."""
        self.validate()
        parts, params = [], {}
        classes = [c for c in self.categories if len(c) == 2]
        subs = [c for c in self.categories if len(c) == 4]
        if classes or subs:
            parts.append(f"({alias}.class_code = ANY(:f_classes) OR {alias}.subclass_code = ANY(:f_subs))")
            params.update(f_classes=classes, f_subs=subs)
        if self.start is not None:
            parts.append(f"{alias}.reported_at >= :f_start")
            params["f_start"] = _aware(self.start)
        if self.end is not None:
            parts.append(f"{alias}.reported_at < :f_end")
            params["f_end"] = _aware(self.end)
        if self.village_ids:
            parts.append(f"{alias}.village_id = ANY(:f_villages)")
            params["f_villages"] = [int(v) for v in self.village_ids]
        if self.states:
            parts.append(f"{alias}.state = ANY(:f_states)")
            params["f_states"] = list(self.states)
        return (" AND ".join(parts) or "true"), params


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return as_local(value)


@dataclass
class EventPoints:
    """Selected events as arrays (lon/lat in EPSG:4490, x/y in EPSG:4549 metres)."""

    ids: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    x: np.ndarray
    y: np.ndarray
    reported_at: list = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.ids.size)


def event_points(session: Session, flt: EventFilter) -> EventPoints:
    """The events matching ``flt`` that the caller may see (RLS), with metric coordinates.

    Parameters
    ----------
    session : Session
        A scoped session.
    flt : EventFilter

    Returns
    -------
    EventPoints
    """
    where, params = flt.where("e")
    rows = session.execute(text(
        f"""
        SELECT e.id, ST_X(e.geom) AS lon, ST_Y(e.geom) AS lat,
               ST_X(ST_Transform(e.geom, {METRIC_SRID})) AS x, ST_Y(ST_Transform(e.geom, {METRIC_SRID})) AS y,
               e.reported_at
          FROM event e WHERE {where} ORDER BY e.id
        """), params).all()
    if not rows:
        z = np.empty(0)
        return EventPoints(np.empty(0, dtype=np.int64), z, z, z, z, [])
    arr = np.array([(r[0], r[1], r[2], r[3], r[4]) for r in rows], dtype=float)
    return EventPoints(arr[:, 0].astype(np.int64), arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4], [r[5] for r in rows])


def require_events(n: int, needed: int, what_zh: str, what_en: str) -> None:
    """Raise ``empty_selection`` / ``too_few_events`` when ``n`` < ``needed``, saying why."""
    if n == 0:
        raise AnalysisError("empty_selection", "所选条件下没有事件:请放宽类别、时间窗口或村范围。",
                            "No events match the selection: widen the category, time window or villages.")
    if n < needed:
        raise AnalysisError(
            "too_few_events",
            f"事件太少:找到 {n} 件,{what_zh}至少需要 {needed} 件。请延长时间窗口或选择更多类别。",
            f"Too few events: {n} found; {what_en} needs at least {needed}. Widen the time window or the categories.",
            found=n, needed=needed)
