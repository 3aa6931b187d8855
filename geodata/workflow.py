"""The event workflow: states, actions, who may take them — one table, no I/O.

The closed loop of 一网统管 (发现-上报-处置-反馈-评价) as a finite state machine::

    受理 reported ──accept──▶ 立案 accepted ──dispatch──▶ 派遣 dispatched ──start──▶ 处置 in_progress
        │                        │   ▲                      │  ▲ │                      │    ▲
        └──reject──▶ 作废 ◀──reject┘   └────send_back───────┘  │ └─postpone─▶ 缓办 ─resume┘    │
                                                             reassign                      verify_fail (返工)
    处置 in_progress ──handle──▶ 反馈 handled ──verify_pass──▶ 核查 verified ──close──▶ 结案 closed
    结案 closed ──rate──▶ 评价 evaluated

A villager's public report starts one step earlier, 待核实 pending_verification: the grid
worker checks it on site (confirm → 受理 reported) or an official rejects it (→ 作废).
Any open event may be merged (合并 merged) into the one it duplicates; an administrator
can undo that (unmerge → the state before the merge, read from the history).

Everything else in the project (the service, map colours, filters, KPIs, Open311
status) reads :data:`TRANSITIONS`, :data:`OPEN` and :data:`CLOSED`; no list of
states is repeated elsewhere. The database's CHECK constraint on ``event.state``
is the one literal copy, and a test compares it with :class:`State`.

This module imports nothing from the database or the UI.
"""
from __future__ import annotations

from enum import Enum
from types import MappingProxyType
from typing import Mapping

from geodata.i18n import BilingualError


class State(str, Enum):
    """Event states (``value`` is what the database stores)."""

    PENDING_VERIFICATION = "pending_verification"  # 待核实: a villager's report, not yet checked on site
    REPORTED = "reported"        # 受理: received, not yet checked
    ACCEPTED = "accepted"        # 立案: a valid case, waiting for dispatch
    REJECTED = "rejected"        # 作废: invalid, duplicate or not ours (terminal)
    DISPATCHED = "dispatched"    # 派遣: sent to a worker/department; SLA clock runs
    IN_PROGRESS = "in_progress"  # 处置: being handled on site
    POSTPONED = "postponed"      # 缓办: deferred with a reason and a new due date
    HANDLED = "handled"          # 反馈: handler reported the result
    VERIFIED = "verified"        # 核查: result checked on site and found good
    CLOSED = "closed"            # 结案: case closed
    EVALUATED = "evaluated"      # 评价: rated by the reporter/official (terminal)
    MERGED = "merged"            # 合并: a duplicate, folded into another event (undone only by an admin)


class Action(str, Enum):
    """What a person (or the system) does to an event."""

    ACCEPT = "accept"            # 立案
    REJECT = "reject"            # 作废
    DISPATCH = "dispatch"        # 派遣
    SEND_BACK = "send_back"      # 退回: the assignee says it is not theirs
    REASSIGN = "reassign"        # 改派
    START = "start"              # 开始处置
    POSTPONE = "postpone"        # 缓办
    RESUME = "resume"            # 恢复处置
    HANDLE = "handle"            # 反馈
    VERIFY_PASS = "verify_pass"  # 核查通过
    VERIFY_FAIL = "verify_fail"  # 核查不通过 → 返工
    CLOSE = "close"              # 结案
    RATE = "rate"                # 评价
    ESCALATE = "escalate"        # 督办
    MARK_OVERDUE = "mark_overdue"  # 超期 (system only)
    CONFIRM = "confirm"          # 核实属实: a public report checked on site becomes a case (受理)
    MERGE = "merge"              # 合并: close a duplicate into the kept event
    UNMERGE = "unmerge"          # 撤销合并 (admin): back to the state before the merge


#: Not a transition: the action name of the first history row of every event.
REPORT = "report"

S, A = State, Action

_TRANSITIONS: dict[tuple[State, Action], State] = {
    (S.PENDING_VERIFICATION, A.CONFIRM): S.REPORTED,
    (S.PENDING_VERIFICATION, A.REJECT): S.REJECTED,
    (S.REPORTED, A.ACCEPT): S.ACCEPTED,
    (S.REPORTED, A.REJECT): S.REJECTED,
    (S.ACCEPTED, A.REJECT): S.REJECTED,
    (S.ACCEPTED, A.DISPATCH): S.DISPATCHED,
    (S.DISPATCHED, A.START): S.IN_PROGRESS,
    (S.DISPATCHED, A.SEND_BACK): S.ACCEPTED,
    (S.DISPATCHED, A.REASSIGN): S.DISPATCHED,
    (S.IN_PROGRESS, A.REASSIGN): S.DISPATCHED,
    (S.DISPATCHED, A.POSTPONE): S.POSTPONED,
    (S.IN_PROGRESS, A.POSTPONE): S.POSTPONED,
    (S.POSTPONED, A.RESUME): S.IN_PROGRESS,
    (S.IN_PROGRESS, A.HANDLE): S.HANDLED,
    (S.HANDLED, A.VERIFY_PASS): S.VERIFIED,
    (S.HANDLED, A.VERIFY_FAIL): S.IN_PROGRESS,   # 返工: rework_count + 1
    (S.VERIFIED, A.CLOSE): S.CLOSED,
    (S.CLOSED, A.RATE): S.EVALUATED,
    # Self-loops: recorded in history and bump the version, state unchanged.
    (S.ACCEPTED, A.ESCALATE): S.ACCEPTED,
    (S.DISPATCHED, A.ESCALATE): S.DISPATCHED,
    (S.IN_PROGRESS, A.ESCALATE): S.IN_PROGRESS,
    (S.POSTPONED, A.ESCALATE): S.POSTPONED,
    (S.HANDLED, A.ESCALATE): S.HANDLED,
    (S.DISPATCHED, A.MARK_OVERDUE): S.DISPATCHED,
    (S.IN_PROGRESS, A.MARK_OVERDUE): S.IN_PROGRESS,
    (S.POSTPONED, A.MARK_OVERDUE): S.POSTPONED,
    (S.HANDLED, A.MARK_OVERDUE): S.HANDLED,
    (S.VERIFIED, A.MARK_OVERDUE): S.VERIFIED,
}
# 合并: any open event may be folded into another (its duplicate).
_TRANSITIONS.update({
    (s, A.MERGE): S.MERGED for s in (S.PENDING_VERIFICATION, S.REPORTED, S.ACCEPTED, S.DISPATCHED,
                                     S.IN_PROGRESS, S.POSTPONED, S.HANDLED, S.VERIFIED)
})
#: {(state, action): new_state} — the whole workflow.
TRANSITIONS: Mapping[tuple[State, Action], State] = MappingProxyType(_TRANSITIONS)

#: The state every event starts in (officials, workers, systems).
INITIAL = S.REPORTED
#: The state a villager's public report starts in (待核实, verified on site before 受理).
PUBLIC_INITIAL = S.PENDING_VERIFICATION
#: Out of the loop. Only RATE leaves CLOSED, and only :data:`RESTORING` leaves MERGED.
CLOSED: frozenset[State] = frozenset({S.CLOSED, S.EVALUATED, S.REJECTED, S.MERGED})
#: Everything still in the loop (Open311 ``status=open``).
OPEN: frozenset[State] = frozenset(State) - CLOSED
#: Closed as solved (结案): counts for 结案率; REJECTED and MERGED do not.
SETTLED: frozenset[State] = frozenset({S.CLOSED, S.EVALUATED})

#: Actions whose target is not in :data:`TRANSITIONS` but in the event's history: UNMERGE
#: returns a merged event to the state it had before the merge (which one varies, so no
#: fixed row can say it). :func:`restore_target` checks such a target.
RESTORING: Mapping[Action, State] = MappingProxyType({A.UNMERGE: S.MERGED})

#: Actions that need a note (reason/result), checked by the service.
NOTE_REQUIRED: frozenset[Action] = frozenset(
    {A.REJECT, A.SEND_BACK, A.POSTPONE, A.HANDLE, A.VERIFY_FAIL, A.REASSIGN, A.UNMERGE}
)

# -- roles --------------------------------------------------------------------

#: Roles of issue 3, the machine roles ``system`` (jobs) and ``api_client`` (Open311), and
#: ``citizen``: a villager without an account, acting only through a tracking code.
ROLES: tuple[str, ...] = (
    "county_leader", "town_official", "village_official", "grid_manager", "grid_worker",
    "planner", "admin", "system", "api_client", "citizen",
)

_DISPATCHER = frozenset({
    A.ACCEPT, A.REJECT, A.DISPATCH, A.REASSIGN, A.START, A.POSTPONE, A.RESUME, A.HANDLE,
    A.VERIFY_PASS, A.VERIFY_FAIL, A.CLOSE, A.RATE, A.ESCALATE, A.CONFIRM, A.MERGE,
})
_ROLE_ACTIONS: dict[str, frozenset[Action]] = {
    # Read-only roles: they watch, they do not edit events.
    "county_leader": frozenset(),
    "planner": frozenset(),
    # Village/town 综治中心: the dispatchers who open, route, verify and close.
    "village_official": _DISPATCHER,
    "town_official": _DISPATCHER,
    # Draws grids and routes events to them; does not verify or close.
    "grid_manager": frozenset({A.ACCEPT, A.REJECT, A.DISPATCH, A.REASSIGN, A.ESCALATE, A.CONFIRM, A.MERGE}),
    # Handles events of own grids; cannot verify its own work, close, or dispatch.
    # Confirms (核实) villagers' reports of own grids on site (the 智网人人拍 model).
    "grid_worker": frozenset({A.START, A.SEND_BACK, A.HANDLE, A.CONFIRM}),
    # Only administrators undo a merge.
    "admin": frozenset(Action) - {A.MARK_OVERDUE},
    "system": frozenset(Action),
    # External systems (Open311) only report.
    "api_client": frozenset(),
    # A villager rates the result of their own report (the service checks the tracking code).
    "citizen": frozenset({A.RATE}),
}
#: role → actions it may take (where the transition exists).
ROLE_ACTIONS: Mapping[str, frozenset[Action]] = MappingProxyType(_ROLE_ACTIONS)
#: Roles that may report (create) an event.
MAY_REPORT: frozenset[str] = frozenset(
    {"town_official", "village_official", "grid_manager", "grid_worker", "admin", "system", "api_client",
     "citizen"}
)

# -- labels and colours -----------------------------------------------------

STATE_LABELS: Mapping[State, tuple[str, str]] = MappingProxyType({
    S.PENDING_VERIFICATION: ("待核实", "To be verified"),
    S.REPORTED: ("受理", "Reported"),
    S.ACCEPTED: ("立案", "Accepted"),
    S.REJECTED: ("作废", "Rejected"),
    S.DISPATCHED: ("派遣", "Dispatched"),
    S.IN_PROGRESS: ("处置", "In progress"),
    S.POSTPONED: ("缓办", "Postponed"),
    S.HANDLED: ("反馈", "Handled"),
    S.VERIFIED: ("核查", "Verified"),
    S.CLOSED: ("结案", "Closed"),
    S.EVALUATED: ("评价", "Evaluated"),
    S.MERGED: ("合并", "Merged"),
})

ACTION_LABELS: Mapping[Action, tuple[str, str]] = MappingProxyType({
    A.ACCEPT: ("立案", "Accept"),
    A.REJECT: ("作废", "Reject"),
    A.DISPATCH: ("派遣", "Dispatch"),
    A.SEND_BACK: ("退回", "Send back"),
    A.REASSIGN: ("改派", "Reassign"),
    A.START: ("开始处置", "Start"),
    A.POSTPONE: ("缓办", "Postpone"),
    A.RESUME: ("恢复处置", "Resume"),
    A.HANDLE: ("反馈结果", "Report result"),
    A.VERIFY_PASS: ("核查通过", "Verify: pass"),
    A.VERIFY_FAIL: ("核查不通过(返工)", "Verify: fail (rework)"),
    A.CLOSE: ("结案", "Close"),
    A.RATE: ("评价", "Rate"),
    A.ESCALATE: ("督办", "Escalate"),
    A.MARK_OVERDUE: ("超期", "Overdue"),
    A.CONFIRM: ("核实属实", "Confirm on site"),
    A.MERGE: ("合并", "Merge"),
    A.UNMERGE: ("撤销合并", "Undo merge"),
})

#: Map colours per state (open: warm → cool along the loop; closed: greys/green).
STATE_COLORS: Mapping[State, str] = MappingProxyType({
    S.PENDING_VERIFICATION: "#cf222e",  # red-pink: a villager's report nobody has checked yet
    S.REPORTED: "#d1242f",     # red: nobody has looked yet
    S.ACCEPTED: "#e16f24",     # orange
    S.DISPATCHED: "#bf8700",   # amber
    S.IN_PROGRESS: "#1f6feb",  # blue
    S.POSTPONED: "#8957e5",    # purple
    S.HANDLED: "#0969da",      # darker blue: waiting for verification
    S.VERIFIED: "#1b7c83",     # teal
    S.CLOSED: "#1a7f37",       # green
    S.EVALUATED: "#116329",    # dark green
    S.REJECTED: "#8c959f",     # grey
    S.MERGED: "#afb8c1",       # light grey: folded into another event
})
#: Colour of the ring drawn around overdue open events.
OVERDUE_COLOR = "#ff0000"

#: Escalation (督办) levels: 0 none, 1 village/town level, 2 county level.
ESCALATION_LABELS: Mapping[int, tuple[str, str]] = MappingProxyType({
    0: ("未督办", "None"), 1: ("村级督办", "Village-level"), 2: ("县级督办", "County-level"),
})
MAX_ESCALATION = 2


# -- errors -----------------------------------------------------------------

class InvalidTransition(BilingualError):
    """The action is not allowed from the event's current state."""

    code, http_status = "invalid_transition", 409

    def __init__(self, state: State | str, action: Action | str):
        self.state = _as_state(state) if _is_state(state) else state
        self.action = action
        st_zh, st_en = STATE_LABELS.get(self.state, (str(state), str(state)))
        try:
            ac_zh, ac_en = ACTION_LABELS[Action(action)]
        except ValueError:
            ac_zh = ac_en = str(action)
        super().__init__(
            f"当前状态“{st_zh}”下不能执行“{ac_zh}”操作。",
            f"Action '{ac_en}' is not allowed while the event is '{st_en}'.",
        )


class PermissionDenied(BilingualError):
    """The actor's role may not do this."""

    code, http_status = "permission", 403


# -- functions ----------------------------------------------------------------

def _is_state(value) -> bool:
    try:
        State(value)
        return True
    except ValueError:
        return False


def _as_state(value: State | str) -> State:
    return value if isinstance(value, State) else State(value)


def next_state(state: State | str, action: Action | str) -> State:
    """Return the state ``action`` leads to from ``state``.

    Parameters
    ----------
    state : State or str
        The event's current state.
    action : Action or str
        The action to take.

    Returns
    -------
    State

    Raises
    ------
    InvalidTransition
        When ``state`` or ``action`` is unknown, or the pair is not in :data:`TRANSITIONS`.
    """
    try:
        key = (_as_state(state), Action(action))
    except ValueError:
        raise InvalidTransition(state, action) from None
    try:
        return TRANSITIONS[key]
    except KeyError:
        raise InvalidTransition(state, action) from None


def restore_target(action: Action | str, state: State | str, previous: State | str) -> State:
    """Check a :data:`RESTORING` action (UNMERGE) and return the state it leads to.

    Parameters
    ----------
    action : Action or str
    state : State or str
        The event's current state (must be the action's source, MERGED).
    previous : State or str
        The state before the merge, read from the event's history; must be open.

    Raises
    ------
    InvalidTransition
    """
    try:
        act, st, prev = Action(action), _as_state(state), _as_state(previous)
    except ValueError:
        raise InvalidTransition(state, action) from None
    if RESTORING.get(act) != st or prev not in OPEN:
        raise InvalidTransition(state, action)
    return prev


def allowed_actions(state: State | str, role: str | None = None) -> list[Action]:
    """Actions possible from ``state`` (for ``role`` when given), in declaration order.

    Parameters
    ----------
    state : State or str
    role : str, optional
        Restrict to what this role may do; ``MARK_OVERDUE`` is only ever offered to ``system``.

    Returns
    -------
    list of Action
    """
    st = _as_state(state)
    actions = [a for (s, a) in TRANSITIONS if s == st] + [a for a, s in RESTORING.items() if s == st]
    if role is not None:
        mine = ROLE_ACTIONS.get(role, frozenset())
        actions = [a for a in actions if a in mine]
    return list(dict.fromkeys(actions))


def may(role: str, action: Action | str) -> bool:
    """True when ``role`` may take ``action`` (wherever the transition exists)."""
    try:
        return Action(action) in ROLE_ACTIONS.get(role, frozenset())
    except ValueError:
        return False


def check_permission(role: str, action: Action | str) -> None:
    """Raise :class:`PermissionDenied` unless ``role`` may take ``action``."""
    if not may(role, action):
        try:
            ac_zh, ac_en = ACTION_LABELS[Action(action)]
        except ValueError:
            ac_zh = ac_en = str(action)
        raise PermissionDenied(
            f"您的角色({role})无权执行“{ac_zh}”。",
            f"Your role ({role}) may not perform '{ac_en}'.",
        )


def check_may_report(role: str) -> None:
    """Raise :class:`PermissionDenied` unless ``role`` may report events."""
    if role not in MAY_REPORT:
        raise PermissionDenied(
            f"您的角色({role})无权上报事件。", f"Your role ({role}) may not report events."
        )


def is_open(state: State | str) -> bool:
    """True while the event is in the loop (not closed, evaluated or rejected)."""
    return _as_state(state) in OPEN


def open311_status(state: State | str) -> str:
    """GeoReport v2 status: ``'open'`` or ``'closed'``."""
    return "open" if is_open(state) else "closed"


def states_for_open311(status: str) -> frozenset[State]:
    """States an Open311 ``status`` filter value stands for."""
    if status == "open":
        return OPEN
    if status == "closed":
        return CLOSED
    raise ValueError(status)


def label(value: State | Action | str, lang: str = "zh") -> str:
    """Chinese (default) or English label of a state or action."""
    if isinstance(value, Action):
        zh, en = ACTION_LABELS[value]
    else:
        try:
            zh, en = STATE_LABELS[_as_state(value)]
        except ValueError:
            zh, en = ACTION_LABELS[Action(value)]
    return en if lang == "en" else zh
