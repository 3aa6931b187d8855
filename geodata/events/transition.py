"""Moving an event through the loop: the only writer of ``event.state``.

A transition is one versioned ``UPDATE`` (SQLAlchemy Core on the
:class:`~geodata.models.events.Event` table: ``WHERE id, version, state``, bumping
the version) plus exactly one ``event_history`` row and any photos, in the
caller's transaction. Of concurrent attempts based on the same version exactly
one succeeds; the others get :class:`StaleVersion` — unless they replay the same
``client_key``, which returns the first attempt's result.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Iterable, Mapping

from sqlalchemy import text, update
from sqlalchemy.orm import Session

from geodata.events.changes import EVENT, _changes_for, _check_data_keys, _is_expr
from geodata.events.checks import MAX_NOTE, _aware, _check_client_key, _check_photos, _check_text, _jsonable
from geodata.events.errors import EventInputError, EventNotFound, StaleVersion
from geodata.events.history import _insert_history, _insert_photos, _new_photos, _photo_facts
from geodata.events.types import PhotoIn, TransitionResult
from geodata.identity import Actor
from geodata.workflow import (
    NOTE_REQUIRED, Action, InvalidTransition, State, check_may_report, check_permission, next_state,
)

__all__ = ["transition", "add_note", "NOTE", "photo_step"]

#: Action name of history rows written by :func:`add_note` (not a workflow action).
NOTE = "note"

#: The step a photo sent with an action shows (处置前 / 处置后 / 核查); others are ``report``.
_PHOTO_STEP = {
    Action.START: "before",
    Action.HANDLE: "after",
    Action.VERIFY_PASS: "verify",
    Action.VERIFY_FAIL: "verify",
}

_EVENT_ROW = """
    SELECT id, reported_at, state, version, village_id, town_id, grid_uid::text AS grid_uid, grid_id,
           worker_id, department, subclass_code, urgency, dispatched_at, sla_due_at, due_at,
           escalation_level, boundary_pending, candidate_grid_uids::text[] AS candidates,
           now() AS db_now, nextval('event_history_id_seq') AS history_id
      FROM event WHERE id = :id
       -- a reporter may read their report outside their scope (0020), never act on it
       AND dvmap_village_visible(village_id) AND dvmap_grid_visible(grid_uid)
"""


def photo_step(action: Action | str | None) -> str:
    """The ``event_photo.step`` of a photo sent with ``action`` without a step of its own.

    Parameters
    ----------
    action : Action or str or None
        The workflow action; None (or ``report``) for the report itself.

    Returns
    -------
    str
        ``before`` for start, ``after`` for handle, ``verify`` for verify_pass and
        verify_fail, ``report`` otherwise.
    """
    try:
        return _PHOTO_STEP.get(Action(action), "report")
    except ValueError:
        return "report"


def transition(
    session: Session,
    event_id: int,
    action: Action | str,
    actor: Actor,
    expected_version: int,
    note: str | None = None,
    *,
    at: datetime | None = None,
    photos: Iterable[bytes | PhotoIn] = (),
    client_key: str | None = None,
    **data: Any,
) -> TransitionResult:
    """Apply one workflow action to one event: the only writer of ``event.state``.

    Parameters
    ----------
    session : Session
        A scoped session; RLS decides which events the actor can see.
    event_id : int
    action : Action or str
        See :data:`geodata.workflow.TRANSITIONS`.
    actor : Actor
        Who acts; ``actor.role`` must be allowed the action.
    expected_version : int
        The version the actor's decision was based on.
    note : str, optional
        Reason or result; required for reject, send_back, reassign, postpone,
        handle (the result text) and verify_fail.
    at : datetime, optional
        Time of the action (default: the transaction's ``now()``); for imports and tests.
    photos : iterable of bytes or PhotoIn
        Photos attached to this step; without a step of their own they get
        :func:`photo_step` of the action (start → 处置前, handle → 处置后, verify → 核查).
    client_key : str, optional
        Idempotency key (1–200 characters) of an offline replay: when this event
        already has a history row with the key, its result is returned as it was
        — no new row, no :class:`StaleVersion` even if the event moved on since.
    **data
        Per action: ``accept``/``dispatch``/``reassign`` take ``grid_uid`` (confirms or
        changes the route; required to dispatch an event flagged 边界待确认),
        ``worker_id`` and ``department``; ``postpone`` takes ``until`` (the new due
        date); ``rate`` takes ``rating`` (1–5); ``escalate`` takes an optional ``level``.

    Returns
    -------
    TransitionResult

    Raises
    ------
    EventNotFound, StaleVersion, InvalidTransition, PermissionDenied, EventInputError
        (the last also when ``client_key`` was used on this event for another action).
    """
    act, eid, expected, note, checked_photos = _validate(event_id, action, actor, expected_version, note, photos,
                                                         client_key, data)
    if client_key is not None:
        replay = _replayed(session, eid, client_key, act)
        if replay is not None:
            return replay
    ev = session.execute(text(_EVENT_ROW), {"id": eid}).mappings().first()
    if ev is None:
        raise EventNotFound(eid)
    if ev["version"] != expected:
        raise StaleVersion(eid, expected, ev["version"])
    new = next_state(ev["state"], act)
    when = _aware(at, "at") if at is not None else ev["db_now"]
    if when < ev["reported_at"]:
        raise EventInputError("操作时间早于上报时间。", "The action time is before the report time.", "at")

    changes = _changes_for(session, act, ev, when, note, data)
    return _apply(session, ev, act, new, actor, expected, when, note, changes, checked_photos, client_key)


def _validate(event_id, action, actor: Actor, expected_version, note, photos, client_key, data):
    """Check everything that needs no database; return ``(action, id, version, note, photos)``."""
    try:
        act = Action(action)
    except ValueError:
        raise InvalidTransition("?", action) from None
    check_permission(actor.role, act)
    _check_data_keys(act, data)
    note = _check_text(note, "note", "说明", required=act in NOTE_REQUIRED, limit=MAX_NOTE)
    checked_photos = _check_photos(photos)
    _check_client_key(client_key)
    try:
        expected = int(expected_version)
    except (TypeError, ValueError):
        raise EventInputError("版本号无效。", "Invalid version.", "version") from None
    try:
        eid = int(event_id)
    except (TypeError, ValueError):
        raise EventNotFound(event_id) from None
    return act, eid, expected, note, checked_photos


def _replayed(session: Session, event_id: int, client_key: str, act: Action) -> TransitionResult | None:
    """The result of the earlier transition with ``client_key`` on this event, or None."""
    row = session.execute(
        text("SELECT id, action, from_state, to_state, version, data FROM event_history"
             " WHERE event_id = :id AND client_key = :k"),
        {"id": event_id, "k": client_key},
    ).mappings().first()
    if row is None:
        return None
    if row["action"] != act.value:
        raise EventInputError(
            "该请求标识已用于此事件的其他操作。", "This client_key was already used for another action on this event.",
            "client_key",
        )
    return TransitionResult(
        event_id=event_id, action=row["action"], from_state=row["from_state"], to_state=row["to_state"],
        version=row["version"], history_id=row["id"], changes=dict(row["data"] or {}),
    )


def _apply(session: Session, ev: Mapping, act: Action, new: State, actor: Actor, expected: int,
           when: datetime, note, changes: dict, photos, client_key: str | None = None) -> TransitionResult:
    values = {col: uuid.UUID(v) if col == "grid_uid" and v is not None else v for col, v in changes.items()}
    row = session.execute(
        update(EVENT)
        .where(EVENT.c.id == ev["id"], EVENT.c.reported_at == ev["reported_at"],
               EVENT.c.version == expected, EVENT.c.state == ev["state"])
        .values(state=new.value, version=EVENT.c.version + 1, updated_at=when, **values)
        .returning(EVENT.c.version, EVENT.c.village_id, EVENT.c.rework_count, EVENT.c.escalation_level,
                   EVENT.c.due_at)
    ).mappings().first()
    if row is None:
        return _lost_race(session, ev["id"], expected, client_key, act)
    recorded = {k: v for k, v in changes.items() if not _is_expr(v)}
    if act == Action.VERIFY_FAIL:
        recorded["rework_count"] = row["rework_count"]
    if act == Action.POSTPONE:
        recorded["previous_due_at"] = ev["due_at"]
    if act == Action.ESCALATE:
        recorded["from_level"] = ev["escalation_level"]
    if ev["boundary_pending"] and changes.get("grid_id") is not None:
        # 边界待确认 resolved: the timeline names the candidate grid that was chosen.
        recorded["chosen_grid"] = _grid_label(session, changes["grid_id"])
    kept, duplicates = _new_photos(session, ev["id"], photos)
    recorded.update(_photo_facts(kept, duplicates))
    _insert_history(
        session, history_id=ev["history_id"], event_id=ev["id"], reported_at=ev["reported_at"], at=when,
        actor=actor, action=act.value, from_state=ev["state"], to_state=new.value, version=row["version"],
        note=note, data=recorded, client_key=client_key,
    )
    _insert_photos(session, ev["id"], ev["reported_at"], row["village_id"], ev["history_id"], kept,
                   step=photo_step(act), uploaded_by=actor.name)
    return TransitionResult(
        event_id=ev["id"], action=act.value, from_state=ev["state"], to_state=new.value,
        version=row["version"], history_id=ev["history_id"], changes=_jsonable(recorded),
    )


def _grid_label(session: Session, grid_id: int) -> dict:
    """``{"code", "name"}`` of a grid version, for the history row (stays readable after edits)."""
    row = session.execute(text("SELECT code, name FROM grid WHERE id = :id"), {"id": grid_id}).mappings().first()
    return {"code": str(row["code"]).strip(), "name": row["name"]} if row else {"code": None, "name": None}


def _lost_race(session: Session, event_id: int, expected: int, client_key: str | None,
               act: Action) -> TransitionResult:
    """The versioned update matched nothing: a concurrent replay of the same key won, or the event moved on."""
    if client_key is not None:
        replay = _replayed(session, event_id, client_key, act)
        if replay is not None:
            return replay
    current = session.execute(text("SELECT version FROM event WHERE id = :id"), {"id": event_id}).scalar()
    if current is None:
        raise EventNotFound(event_id)
    raise StaleVersion(event_id, expected, current)


def add_note(session: Session, event_id: int, actor: Actor, note: str, *, data: Mapping | None = None) -> int:
    """Append a remark to an event's history without changing its state (e.g. a sensor alarm cleared).

    Bumps the event's version (history rows are unique per version) and writes
    one ``event_history`` row with action :data:`NOTE`, in the caller's transaction.

    Parameters
    ----------
    session : Session
    event_id : int
    actor : Actor
        Who remarks; the role must be allowed to report.
    note : str
        The remark (1–2000 characters).
    data : mapping, optional
        Facts kept with the row (JSON).

    Returns
    -------
    int
        The id of the history row.

    Raises
    ------
    EventNotFound, PermissionDenied, EventInputError
    """
    check_may_report(actor.role)
    note = _check_text(note, "note", "说明", required=True, limit=MAX_NOTE)
    row = session.execute(
        text(
            "UPDATE event SET version = version + 1, updated_at = now() WHERE id = :id"
            " RETURNING reported_at, village_id, state, version, now() AS at,"
            " nextval('event_history_id_seq') AS history_id"
        ),
        {"id": int(event_id)},
    ).mappings().first()
    if row is None:
        raise EventNotFound(event_id)
    _insert_history(
        session, history_id=row["history_id"], event_id=int(event_id), reported_at=row["reported_at"],
        at=row["at"], actor=actor, action=NOTE, from_state=row["state"], to_state=row["state"],
        version=row["version"], note=note, data=dict(data or {}),
    )
    return row["history_id"]
