"""Deadlines: mark overdue events and escalate (督办) the long-overdue ones, set-based."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.events.checks import _aware
from geodata.events.errors import EventInputError
from geodata.events.history import record_history
from geodata.workflow import TRANSITIONS, Action

__all__ = ["check_overdue"]


# The rows changed, as history rows for dvmap_record_history (a second statement: it
# checks them against the events, which a statement's own CTEs cannot see changed).
_HISTORY = """
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'event_id', id, 'event_reported_at', reported_at, 'at', CAST(:now AS timestamptz),
               'actor', 'system', 'actor_role', 'system', 'action', CAST(:action AS text),
               'from_state', state, 'to_state', state, 'version', version, 'note', CAST(:note AS text),
               'data', data)), '[]'::jsonb)
      FROM u
"""

_MARK = text(
    f"""
    WITH c AS (
        SELECT id, reported_at FROM event
         WHERE state = ANY(:states) AND due_at < :now AND overdue_at IS NULL
         FOR UPDATE
    ), u AS (
        UPDATE event e SET overdue_at = :now, version = e.version + 1, updated_at = :now
          FROM c WHERE e.id = c.id AND e.reported_at = c.reported_at
        RETURNING e.id, e.reported_at, e.village_id, e.state, e.version,
                  jsonb_build_object('due_at', e.due_at) AS data
    ) {_HISTORY}
    """
)

_ESCALATE = text(
    f"""
    WITH c AS (
        SELECT id, reported_at, escalation_level AS old_level FROM event
         WHERE state = ANY(:states) AND due_at < :cutoff AND escalation_level < :level
         FOR UPDATE
    ), u AS (
        UPDATE event e SET escalation_level = :level, version = e.version + 1, updated_at = :now
          FROM c WHERE e.id = c.id AND e.reported_at = c.reported_at
        RETURNING e.id, e.reported_at, e.village_id, e.state, e.version,
                  jsonb_build_object('level', :level, 'from_level', c.old_level, 'auto', true,
                                     'due_at', e.due_at) AS data
    ) {_HISTORY}
    """
)


def check_overdue(
    session: Session,
    now: datetime | None = None,
    *,
    village_after: timedelta = timedelta(hours=24),
    county_after: timedelta = timedelta(hours=72),
) -> dict[str, int]:
    """Mark overdue events and escalate (督办) the long-overdue ones, set-based.

    An open event whose effective deadline (``due_at``) has passed is marked
    (``overdue_at``); overdue by more than ``village_after`` it is escalated to
    level 1 (村级督办), by more than ``county_after`` to level 2 (县级督办). Every
    change bumps the event's version and writes one history row (actor
    ``system``), in the caller's transaction. Run it with a county-scope session.

    Parameters
    ----------
    session : Session
    now : datetime, optional
        Reference time (default: the transaction's ``now()``).
    village_after, county_after : timedelta
        Margins after the deadline for the two escalation levels.

    Returns
    -------
    dict
        ``{"marked": n, "escalated_village": n, "escalated_county": n}``.
    """
    if county_after < village_after:
        raise EventInputError("县级督办时限不能早于村级。", "county_after must not be shorter than village_after.")
    now = _aware(now, "now") if now is not None else session.execute(text("SELECT now()")).scalar()
    # the states come from the workflow table: those the two actions may start from
    mark_states = [s.value for (s, a) in TRANSITIONS if a == Action.MARK_OVERDUE]
    escalate_states = [s.value for (s, a) in TRANSITIONS if a == Action.ESCALATE]
    rows = session.execute(_MARK, {"states": mark_states, "now": now, "action": Action.MARK_OVERDUE.value,
                                   "note": "超期未办结 / overdue"}).scalar_one()
    counts = {"marked": record_history(session, rows)}
    for level, margin, key, note in (
        (1, village_after, "escalated_village", "超期自动村级督办 / auto-escalated to village level"),
        (2, county_after, "escalated_county", "超期自动县级督办 / auto-escalated to county level"),
    ):
        rows = session.execute(_ESCALATE, {
            "states": escalate_states, "now": now, "cutoff": now - margin, "level": level,
            "action": Action.ESCALATE.value, "note": note,
        }).scalar_one()
        counts[key] = record_history(session, rows)
    return counts
