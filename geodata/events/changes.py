"""What each workflow action changes on the event row besides state and version.

Values are validated per action; counters are SQL expressions on the row's own
column (``rework_count + 1``), so the versioned ``UPDATE`` applies them atomically.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping

from sqlalchemy import text
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from geodata.events.checks import _aware
from geodata.events.errors import EventInputError
from geodata.models.events import Event
from geodata.workflow import MAX_ESCALATION, Action

#: the partitioned ``event`` table, for Core statements
EVENT = Event.__table__

#: Keyword data each action accepts (anything else is refused).
_DATA_KEYS: dict[Action, frozenset[str]] = {
    Action.ACCEPT: frozenset({"grid_uid"}),
    Action.DISPATCH: frozenset({"grid_uid", "worker_id", "department"}),
    Action.REASSIGN: frozenset({"grid_uid", "worker_id", "department"}),
    Action.POSTPONE: frozenset({"until"}),
    Action.RATE: frozenset({"rating"}),
    Action.ESCALATE: frozenset({"level"}),
}


def _is_expr(value) -> bool:
    """True for a SQL expression in a change set (not a value to record)."""
    return isinstance(value, ColumnElement)


def _check_data_keys(act: Action, data: Mapping) -> None:
    unknown = set(data) - _DATA_KEYS.get(act, frozenset())
    if unknown:
        raise EventInputError(
            f"此操作不接受参数:{', '.join(sorted(unknown))}",
            f"Unexpected parameters for '{act.value}': {', '.join(sorted(unknown))}",
            sorted(unknown)[0],
        )


def _changes_for(session: Session, act: Action, ev: Mapping, when: datetime, note, data: dict) -> dict:
    """Columns to set besides state/version, validated per action."""
    ch: dict[str, Any] = {}
    if act in (Action.ACCEPT, Action.DISPATCH, Action.REASSIGN):
        ch.update(_route_changes(session, data))
    step = _PER_ACTION.get(act)
    if step is not None:
        ch.update(step(session, ev, when, note, data, ch))
    return ch


def _route_changes(session: Session, data: Mapping) -> dict:
    ch: dict[str, Any] = {}
    if data.get("grid_uid") is not None:
        ch.update(_reroute(session, data["grid_uid"]))
    if data.get("worker_id") is not None:
        ch["worker_id"] = _check_worker(session, data["worker_id"])
    if data.get("department") is not None:
        ch["department"] = _check_department(session, data["department"])
    return ch


def _dispatch(session, ev, when, note, data, ch) -> dict:
    if ev["boundary_pending"] and "grid_uid" not in ch:
        raise EventInputError(
            "事件位于网格边界(边界待确认),请先确认责任网格再派遣。",
            "The event lies on a grid boundary (route to be confirmed): choose the grid before dispatching.",
            "grid_uid",
        )
    if not (ch.get("worker_id", ev["worker_id"]) or ch.get("department", ev["department"])):
        raise EventInputError(
            "没有可派遣的网格员或部门。", "There is no grid worker or department to dispatch to.", "worker_id"
        )
    if ev["dispatched_at"] is not None:  # the SLA clock starts at the first dispatch only
        return {}
    hours = session.execute(
        text("SELECT hours FROM event_sla WHERE subclass_code = :s AND urgency = :u"),
        {"s": ev["subclass_code"], "u": ev["urgency"]},
    ).scalar()
    if hours is None:
        raise EventInputError(
            "该类别缺少处置时限配置。", "No time limit is configured for this category.", "subclass"
        )
    due = when + timedelta(hours=float(hours))
    return {"dispatched_at": when, "sla_due_at": due, "due_at": due}


def _reassign(session, ev, when, note, data, ch) -> dict:
    if not ch:
        raise EventInputError(
            "改派需要指定新的网格、网格员或部门。", "Reassigning needs a new grid, worker or department.", "worker_id",
        )
    return {}


def _postpone(session, ev, when, note, data, ch) -> dict:
    if data.get("until") is None:
        raise EventInputError("缓办需要新的办结期限。", "Postponing needs a new due date.", "until")
    until = _aware(data["until"], "until")
    floor = max(when, ev["due_at"]) if ev["due_at"] else when
    if until <= floor:
        raise EventInputError(
            "新的办结期限必须晚于当前期限和当前时间。",
            "The new due date must be later than the current due date and now.", "until",
        )
    return {"postponed_until": until, "due_at": until, "overdue_at": None,
            "postpone_count": EVENT.c.postpone_count + 1}


def _rate(session, ev, when, note, data, ch) -> dict:
    rating = data.get("rating")
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        raise EventInputError("评价须为 1–5 分。", "The rating must be 1 to 5.", "rating")
    return {"rating": rating, "evaluated_at": when}


def _escalate(session, ev, when, note, data, ch) -> dict:
    level = data.get("level", ev["escalation_level"] + 1)
    if isinstance(level, bool) or not isinstance(level, int) or not ev["escalation_level"] < level <= MAX_ESCALATION:
        raise EventInputError(
            "督办级别无效或已是最高级别。", "Invalid escalation level, or already at the highest level.", "level"
        )
    return {"escalation_level": level}


def _mark_overdue(session, ev, when, note, data, ch) -> dict:
    if ev["due_at"] is None or ev["due_at"] >= when:
        raise EventInputError("事件尚未超期。", "The event is not overdue.", "due_at")
    return {"overdue_at": when}


_PER_ACTION: dict[Action, Callable[..., dict]] = {
    Action.DISPATCH: _dispatch,
    Action.REASSIGN: _reassign,
    Action.POSTPONE: _postpone,
    Action.HANDLE: lambda session, ev, when, note, data, ch: {"result": note, "handled_at": when},
    Action.VERIFY_PASS: lambda session, ev, when, note, data, ch: {"verified_at": when},
    Action.VERIFY_FAIL: lambda session, ev, when, note, data, ch: {"rework_count": EVENT.c.rework_count + 1},
    Action.CLOSE: lambda session, ev, when, note, data, ch: {"closed_at": when},
    Action.RATE: _rate,
    Action.ESCALATE: _escalate,
    Action.MARK_OVERDUE: _mark_overdue,
}


def _reroute(session: Session, grid_uid) -> dict:
    try:
        uid = str(uuid.UUID(str(grid_uid)))
    except ValueError:
        raise EventInputError(f"网格编号无效:{grid_uid}", f"Invalid grid id: {grid_uid}", "grid_uid") from None
    row = session.execute(
        text(
            """
            SELECT g.id, g.uid::text AS uid, g.village_id, v.town_id,
                   (SELECT p.id FROM person p WHERE p.id = g.worker_id AND p.active) AS worker_id
              FROM grid g JOIN village v ON v.id = g.village_id
             WHERE g.uid = CAST(:uid AS uuid) AND g.valid_to IS NULL
            """
        ),
        {"uid": uid},
    ).mappings().first()
    if row is None:
        raise EventInputError(
            "该网格不存在或不在您的权限范围内。", "That grid does not exist or is outside your scope.", "grid_uid"
        )
    return {
        "grid_id": row["id"], "grid_uid": row["uid"], "village_id": row["village_id"], "town_id": row["town_id"],
        "worker_id": row["worker_id"], "queue": "grid", "boundary_pending": False,
    }


def _check_worker(session: Session, worker_id) -> int:
    try:
        wid = int(worker_id)
    except (TypeError, ValueError):
        wid = None
    ok = wid is not None and session.execute(
        text("SELECT EXISTS (SELECT 1 FROM person WHERE id = :id AND active)"), {"id": wid}
    ).scalar()
    if not ok:
        raise EventInputError(
            f"网格员不存在或已停用:{worker_id}", f"Unknown or inactive worker: {worker_id}", "worker_id"
        )
    return wid


def _check_department(session: Session, code) -> str:
    ok = isinstance(code, str) and session.execute(
        text("SELECT EXISTS (SELECT 1 FROM department WHERE code = :c)"), {"c": code}
    ).scalar()
    if not ok:
        raise EventInputError(f"部门不存在:{code}", f"Unknown department: {code}", "department")
    return code
