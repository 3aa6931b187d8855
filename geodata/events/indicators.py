"""Performance indicators the GB way (结案率, 按期结案率, 返工率, 平均处置时长, 超期未结).

The one implementation of the KPI formulas; the big screen, evaluation and lists reuse it.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.events.checks import _aware
from geodata.events.errors import EventInputError
from geodata.events.types import Indicators
from geodata.workflow import State

__all__ = ["indicators", "indicators_grouped", "indicators_by_village", "GROUPABLE"]

_INDICATOR_SQL = """
WITH base AS (
    SELECT e.dispatched_at, e.closed_at, e.due_at, e.sla_due_at, e.postpone_count,
           e.rework_count, least(e.closed_at, e.sla_due_at) AS settle_at {base_cols}
      FROM event e
     WHERE e.sla_due_at IS NOT NULL AND e.state <> :rejected
       AND ((e.sla_due_at >= :start AND e.sla_due_at < :end) OR (e.closed_at >= :start AND e.closed_at < :end))
       AND (CAST(:vids AS integer[]) IS NULL OR e.village_id = ANY(CAST(:vids AS integer[])))
), cohort AS (
    SELECT * FROM base WHERE settle_at >= :start AND settle_at < :end
), k AS (
    SELECT {group_col} AS grp,
           count(*) AS should_close,
           count(*) FILTER (WHERE closed_at < :end) AS closed,
           count(*) FILTER (WHERE closed_at < :end AND closed_at <= due_at) AS closed_on_time,
           count(*) FILTER (WHERE postpone_count > 0 AND due_at >= :end
                                  AND (closed_at IS NULL OR closed_at >= :end)) AS postponed,
           count(*) FILTER (WHERE rework_count > 0) AS reworked,
           avg(extract(epoch FROM closed_at - dispatched_at) / 3600.0) FILTER (WHERE closed_at < :end)
               AS avg_handling_hours
      FROM cohort GROUP BY 1
), r AS (
    SELECT {group_col_e} AS grp, count(*) AS reported
      FROM event e
     WHERE e.reported_at >= :start AND e.reported_at < :end
       AND (CAST(:vids AS integer[]) IS NULL OR e.village_id = ANY(CAST(:vids AS integer[])))
     GROUP BY 1
), o AS (
    SELECT {group_col_e} AS grp, count(*) AS open_overdue
      FROM event e
     WHERE e.sla_due_at IS NOT NULL AND e.state <> :rejected AND e.due_at < :as_of
       AND (e.closed_at IS NULL OR e.closed_at >= :as_of)
       AND (CAST(:vids AS integer[]) IS NULL OR e.village_id = ANY(CAST(:vids AS integer[])))
     GROUP BY 1
), grps AS (SELECT grp FROM k UNION SELECT grp FROM r UNION SELECT grp FROM o)
SELECT grps.grp, coalesce(r.reported, 0) AS reported, coalesce(k.should_close, 0) AS should_close,
       coalesce(k.closed, 0) AS closed, coalesce(k.closed_on_time, 0) AS closed_on_time,
       coalesce(k.postponed, 0) AS postponed, coalesce(k.reworked, 0) AS reworked,
       k.avg_handling_hours, coalesce(o.open_overdue, 0) AS open_overdue
  FROM grps LEFT JOIN k USING (grp) LEFT JOIN r USING (grp) LEFT JOIN o USING (grp)
"""


def _rate(num: int, den: int) -> float | None:
    return num / den if den > 0 else None


#: Columns :func:`indicators_grouped` may group by.
GROUPABLE = ("village_id", "town_id", "grid_uid", "department", "class_code", "subclass_code", "source", "urgency")


def _indicators_query(session, start, end, village_ids, now, by: str | None):
    start = _aware(start, "start")
    end = _aware(end, "end")
    if end <= start:
        raise EventInputError("结束时间必须晚于开始时间。", "The end must be after the start.", "end")
    db_now = session.execute(text("SELECT now()")).scalar() if now is None else _aware(now, "now")
    as_of = min(end, db_now)
    vids = None if village_ids is None else [int(v) for v in village_ids]
    if by is not None and by not in GROUPABLE:
        raise EventInputError(f"不能按 {by} 分组。", f"Cannot group by {by}.", "by")
    sql = _INDICATOR_SQL.format(
        base_cols=f", e.{by} AS grp_col" if by else "",
        group_col="grp_col" if by else "0",
        group_col_e=f"e.{by}" if by else "0",
    )
    rows = session.execute(
        text(sql), {"start": start, "end": end, "as_of": as_of, "vids": vids, "rejected": State.REJECTED.value}
    ).mappings().all()
    return start, end, as_of, rows


def _make_indicators(start, end, as_of, row) -> Indicators:
    row = row or {}
    n, c, t = row.get("should_close", 0), row.get("closed", 0), row.get("closed_on_time", 0)
    p, w = row.get("postponed", 0), row.get("reworked", 0)
    avg = row.get("avg_handling_hours")
    return Indicators(
        start=start, end=end, as_of=as_of, reported=row.get("reported", 0), should_close=n, closed=c,
        closed_on_time=t, postponed=p, reworked=w, closure_rate=_rate(c, n - p), on_time_rate=_rate(t, n - p),
        rework_rate=_rate(w, n), avg_handling_hours=None if avg is None else float(avg),
        open_overdue=row.get("open_overdue", 0),
    )


def indicators(
    session: Session,
    start: datetime,
    end: datetime,
    village_ids: Sequence[int] | None = None,
    *,
    now: datetime | None = None,
) -> Indicators:
    """Performance indicators of the period ``[start, end)`` the GB way.

    The one implementation of the KPI formulas; the big screen and lists reuse it.
    Only events visible in the session's scope count (RLS), optionally narrowed
    to ``village_ids``.

    Definitions (each event counted in exactly one period):

    * **应结案数** (should close, N): events that were dispatched (SLA clock
      started, not rejected) whose *settlement date* — the earlier of their
      closing time and their original SLA deadline (``sla_due_at``) — falls in
      the period. I.e. the cases whose regulatory time limit expired in the
      period, plus those closed in the period before their limit expired.
    * **结案数** (closed, C): of N, those closed (结案) before the period's end.
    * **按期结案数** (closed on time, T): of C, those closed no later than their
      effective deadline (``due_at``, moved only by an approved 缓办).
    * **缓办数** (postponed, P): of N, those with an approved 缓办 whose new
      deadline lies at or after the period's end and that were not closed in
      the period — legitimately deferred, so taken out of the denominator.
    * **结案率** = C / (N − P); **按期结案率** = T / (N − P).
    * **返工率** = 返工数 / N, 返工数 = events of N sent back at least once by a
      failed 核查.
    * **平均处置时长** = mean of (closed_at − dispatched_at) over C, in hours.
    * **超期未结** (open overdue): counted separately, as of ``min(end, now)``:
      dispatched, not rejected, not closed by then, effective deadline passed —
      whatever period they belong to, so old rotting cases stay visible.

    Rates are ``None`` when their denominator is 0.

    Parameters
    ----------
    session : Session
    start, end : datetime
        The period (naive values are China time).
    village_ids : sequence of int, optional
        Restrict to these villages (county-queue events have none and drop out).
    now : datetime, optional
        Reference "now" for the open-overdue count (default the database's).

    Returns
    -------
    Indicators
    """
    start, end, as_of, rows = _indicators_query(session, start, end, village_ids, now, None)
    return _make_indicators(start, end, as_of, rows[0] if rows else None)


def indicators_grouped(
    session: Session, start: datetime, end: datetime, by: str, village_ids: Sequence[int] | None = None, *,
    now: datetime | None = None,
) -> dict[Any, Indicators]:
    """:func:`indicators` per group — same definitions, one query.

    Parameters
    ----------
    by : str
        One of :data:`GROUPABLE` (``village_id``, ``town_id``, ``grid_uid``, ``department``,
        ``class_code``, ``subclass_code``, ``source``, ``urgency``).
    start, end, village_ids, now
        As for :func:`indicators`.

    Returns
    -------
    dict
        group value (None for events without one, e.g. the county queue) → Indicators,
        for groups with anything counted.
    """
    start, end, as_of, rows = _indicators_query(session, start, end, village_ids, now, by)
    return {row["grp"]: _make_indicators(start, end, as_of, row) for row in rows}


def indicators_by_village(
    session: Session, start: datetime, end: datetime, village_ids: Sequence[int] | None = None, *,
    now: datetime | None = None,
) -> dict[int | None, Indicators]:
    """:func:`indicators` per village (key None = county queue); see :func:`indicators_grouped`."""
    return indicators_grouped(session, start, end, "village_id", village_ids, now=now)
