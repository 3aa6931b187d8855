"""Bulk actions on the events of a hot spot or cluster, each through :func:`geodata.events.transition`.

Every event is its own savepoint: one that moved on meanwhile (stale version), is in a
state the action does not apply to, or is outside the actor's scope is reported and
skipped, and the others go through. The role is checked once up front, so a read-only
role (planner, county leader) is told before anything is tried.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from geodata.events import EventError, transition
from geodata.identity import Actor
from geodata.workflow import Action, InvalidTransition, PermissionDenied, check_permission

#: What a planner's list offers: 立案 (open) and 派遣 (assign to the routed grid worker).
BULK_ACTIONS = (Action.ACCEPT, Action.DISPATCH)


@dataclass
class BulkResult:
    """Outcome per event: ``done`` ids and ``failed`` (id, zh, en) triples."""

    action: str
    done: list[int] = field(default_factory=list)
    failed: list[tuple[int, str, str]] = field(default_factory=list)


def bulk_transition(session: Session, items, action: str, actor: Actor, note: str | None = None,
                    **data) -> BulkResult:
    """Apply ``action`` to each ``(event_id, expected_version)`` in ``items``.

    Parameters
    ----------
    session : Session
        A scoped session; the caller commits (what succeeded) or rolls back.
    items : iterable of (int, int)
        Event ids with the versions the user saw.
    action : str
        ``accept`` (立案) or ``dispatch`` (派遣).
    actor : Actor
        Who acts (from the server-side session).
    note : str, optional
    **data
        Passed to :func:`transition`. For ``dispatch`` without ``grid_uid``, an event flagged
        边界待确认 is dispatched to the grid it was routed to.

    Returns
    -------
    BulkResult

    Raises
    ------
    PermissionDenied
        The actor's role may not take this action at all.
    """
    act = Action(action)
    if act not in BULK_ACTIONS:
        raise PermissionDenied("批量操作仅支持立案和派遣。", "Bulk actions are accept and dispatch only.")
    check_permission(actor.role, act)
    result = BulkResult(act.value)
    from geodata.events import get_event

    for event_id, version in items:
        extra = dict(data)
        try:
            with session.begin_nested():
                if act == Action.DISPATCH and "grid_uid" not in extra:
                    ev = get_event(session, int(event_id), with_personal=False)
                    if ev and ev.get("boundary_pending") and ev.get("grid_uid"):
                        extra["grid_uid"] = ev["grid_uid"]
                transition(session, int(event_id), act, actor, int(version), note, **extra)
            result.done.append(int(event_id))
        except (EventError, InvalidTransition, PermissionDenied) as exc:
            result.failed.append((int(event_id), exc.message_zh, exc.message_en))
    return result
