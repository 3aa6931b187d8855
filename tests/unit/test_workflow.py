"""The workflow table, exhaustively: every (state, action) pair, every role."""
from __future__ import annotations

import itertools
from collections import deque

import pytest

from geodata import workflow as wf
from geodata.workflow import (
    CLOSED, INITIAL, OPEN, PUBLIC_INITIAL, RESTORING, ROLE_ACTIONS, ROLES, SETTLED, STATE_COLORS, STATE_LABELS, ACTION_LABELS,
    TRANSITIONS, Action, InvalidTransition, PermissionDenied, State, next_state,
)

ALL_PAIRS = list(itertools.product(State, Action))


@pytest.mark.parametrize("state,action", ALL_PAIRS, ids=lambda v: v.value)
def test_next_state_follows_the_table_for_every_pair(state, action):
    if (state, action) in TRANSITIONS:
        assert next_state(state, action) is TRANSITIONS[(state, action)]
        assert next_state(state.value, action.value) is TRANSITIONS[(state, action)]
    else:
        with pytest.raises(InvalidTransition) as err:
            next_state(state, action)
        assert err.value.message_zh and err.value.message_en
        assert STATE_LABELS[state][0] in err.value.message_zh
        assert ACTION_LABELS[action][1] in err.value.message_en


def test_unknown_names_are_invalid_transitions():
    with pytest.raises(InvalidTransition):
        next_state("nonsense", "accept")
    with pytest.raises(InvalidTransition):
        next_state(State.REPORTED, "fly")


def test_open_and_closed_partition_the_states():
    assert OPEN | CLOSED == set(State)
    assert not OPEN & CLOSED
    assert SETTLED <= CLOSED and State.REJECTED in CLOSED - SETTLED
    # a merged duplicate is out of the loop but is not a solved case (结案率)
    assert State.MERGED in CLOSED - SETTLED and State.PENDING_VERIFICATION in OPEN


def test_closed_states_are_terminal_except_rating_and_unmerge():
    exits = {(s, a) for (s, a) in TRANSITIONS if s in CLOSED}
    assert exits == {(State.CLOSED, Action.RATE)}
    assert TRANSITIONS[(State.CLOSED, Action.RATE)] is State.EVALUATED
    assert dict(RESTORING) == {Action.UNMERGE: State.MERGED}


def test_every_open_state_can_be_merged_and_nothing_else_can():
    merged_from = {s for (s, a) in TRANSITIONS if a == Action.MERGE}
    assert merged_from == set(OPEN)
    assert all(TRANSITIONS[(s, Action.MERGE)] is State.MERGED for s in merged_from)


@pytest.mark.parametrize("previous", list(State), ids=lambda v: v.value)
def test_unmerge_returns_to_an_open_previous_state_only(previous):
    if previous in OPEN:
        assert wf.restore_target(Action.UNMERGE, State.MERGED, previous) is previous
    else:
        with pytest.raises(InvalidTransition):
            wf.restore_target(Action.UNMERGE, State.MERGED, previous)
    for state in set(State) - {State.MERGED}:
        with pytest.raises(InvalidTransition):
            wf.restore_target(Action.UNMERGE, state, State.REPORTED)
    with pytest.raises(InvalidTransition):
        wf.restore_target(Action.MERGE, State.MERGED, State.REPORTED)


def test_public_reports_are_verified_before_they_become_cases():
    assert PUBLIC_INITIAL is State.PENDING_VERIFICATION
    assert next_state(PUBLIC_INITIAL, Action.CONFIRM) is State.REPORTED
    assert next_state(PUBLIC_INITIAL, Action.REJECT) is State.REJECTED
    assert {a for (s, a) in TRANSITIONS if s == PUBLIC_INITIAL} == {Action.CONFIRM, Action.REJECT, Action.MERGE}
    # nothing leads back into 待核实: it is only ever an initial state
    assert PUBLIC_INITIAL not in TRANSITIONS.values()


def test_every_state_reachable_from_an_initial_state_and_every_open_state_can_finish():
    seen, todo = {INITIAL, PUBLIC_INITIAL}, deque([INITIAL, PUBLIC_INITIAL])
    while todo:
        s = todo.popleft()
        for (src, _a), dst in TRANSITIONS.items():
            if src == s and dst not in seen:
                seen.add(dst)
                todo.append(dst)
    assert seen == set(State)
    # From every open state some path leads to a closed state.
    for start in OPEN:
        seen, todo = {start}, deque([start])
        while todo:
            s = todo.popleft()
            for (src, _a), dst in TRANSITIONS.items():
                if src == s and dst not in seen:
                    seen.add(dst)
                    todo.append(dst)
        assert seen & CLOSED, start


def test_the_loop_of_the_issue_including_rework():
    path = [
        (Action.ACCEPT, State.ACCEPTED), (Action.DISPATCH, State.DISPATCHED), (Action.START, State.IN_PROGRESS),
        (Action.HANDLE, State.HANDLED), (Action.VERIFY_FAIL, State.IN_PROGRESS),  # 返工
        (Action.HANDLE, State.HANDLED), (Action.VERIFY_PASS, State.VERIFIED), (Action.CLOSE, State.CLOSED),
        (Action.RATE, State.EVALUATED),
    ]
    state = INITIAL
    for action, expected in path:
        state = next_state(state, action)
        assert state is expected


def test_postpone_resume_reassign_and_escalate():
    assert next_state(State.IN_PROGRESS, Action.POSTPONE) is State.POSTPONED
    assert next_state(State.POSTPONED, Action.RESUME) is State.IN_PROGRESS
    assert next_state(State.IN_PROGRESS, Action.REASSIGN) is State.DISPATCHED
    assert next_state(State.DISPATCHED, Action.SEND_BACK) is State.ACCEPTED
    for s in (State.DISPATCHED, State.IN_PROGRESS, State.POSTPONED):
        assert next_state(s, Action.ESCALATE) is s
    with pytest.raises(InvalidTransition):
        next_state(State.CLOSED, Action.ESCALATE)
    with pytest.raises(InvalidTransition):
        next_state(State.REPORTED, Action.DISPATCH)  # must be accepted (立案) first


def test_self_loops_are_only_escalate_reassign_and_overdue():
    loops = {a for (s, a), d in TRANSITIONS.items() if s == d}
    assert loops == {Action.ESCALATE, Action.REASSIGN, Action.MARK_OVERDUE}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", list(Action), ids=lambda a: a.value)
def test_check_permission_matches_role_table(role, action):
    if action in ROLE_ACTIONS[role]:
        wf.check_permission(role, action)
    else:
        with pytest.raises(PermissionDenied) as err:
            wf.check_permission(role, action)
        assert role in err.value.message_zh and role in err.value.message_en


def test_role_rules_of_the_issue():
    # grid workers handle but cannot close, verify, or dispatch
    for action in (Action.CLOSE, Action.VERIFY_PASS, Action.VERIFY_FAIL, Action.DISPATCH, Action.REJECT):
        assert not wf.may("grid_worker", action)
    for action in (Action.START, Action.HANDLE):
        assert wf.may("grid_worker", action)
    # planners and county leaders do not edit events at all
    for role in ("planner", "county_leader"):
        assert not any(wf.may(role, a) for a in Action)
        with pytest.raises(PermissionDenied):
            wf.check_may_report(role)
    # only the system marks events overdue
    assert [r for r in ROLES if wf.may(r, Action.MARK_OVERDUE)] == ["system"]
    wf.check_may_report("grid_worker")
    wf.check_may_report("api_client")
    assert not wf.may("nobody", Action.ACCEPT)
    # villagers (no account) only rate, through their tracking code; workers confirm public reports
    assert ROLE_ACTIONS["citizen"] == {Action.RATE}
    wf.check_may_report("citizen")
    assert wf.may("grid_worker", Action.CONFIRM) and not wf.may("grid_worker", Action.MERGE)
    assert [r for r in ROLES if wf.may(r, Action.UNMERGE)] == ["admin", "system"]
    for role in ("village_official", "town_official", "grid_manager"):
        assert wf.may(role, Action.CONFIRM) and wf.may(role, Action.MERGE) and not wf.may(role, Action.UNMERGE)


def test_allowed_actions_are_exactly_the_table_rows():
    def rows(state):
        return {a for (s, a) in TRANSITIONS if s == state} | {a for a, s in RESTORING.items() if s == state}

    for state in State:
        assert set(wf.allowed_actions(state)) == rows(state)
        for role in ROLES:
            got = set(wf.allowed_actions(state, role))
            assert got == {a for a in rows(state) if a in ROLE_ACTIONS[role]}
    assert wf.allowed_actions(State.MERGED, "admin") == [Action.UNMERGE]
    assert wf.allowed_actions(State.MERGED, "village_official") == []
    assert wf.allowed_actions(State.HANDLED, "grid_worker") == []
    assert Action.VERIFY_FAIL in wf.allowed_actions(State.HANDLED, "village_official")


def test_every_role_action_is_used_somewhere():
    used = {a for (_s, a) in TRANSITIONS} | set(RESTORING)
    for role, actions in ROLE_ACTIONS.items():
        assert actions <= used, role


def test_labels_and_colours_cover_everything():
    assert set(STATE_LABELS) == set(State) and set(STATE_COLORS) == set(State)
    assert set(ACTION_LABELS) == set(Action)
    assert len(set(STATE_COLORS.values())) == len(State)
    for c in STATE_COLORS.values():
        assert c.startswith("#") and len(c) == 7
    assert wf.label(State.CLOSED) == "结案" and wf.label("closed", "en") == "Closed"
    assert wf.label(Action.VERIFY_FAIL, "en").startswith("Verify")


def test_open311_status_mapping():
    for s in State:
        assert wf.open311_status(s) == ("open" if s in OPEN else "closed")
    assert wf.states_for_open311("open") == OPEN
    with pytest.raises(ValueError):
        wf.states_for_open311("pending")


def test_transitions_table_is_read_only():
    with pytest.raises(TypeError):
        TRANSITIONS[(State.CLOSED, Action.ACCEPT)] = State.ACCEPTED  # type: ignore[index]


def test_migration_states_match_the_enum():
    import importlib.util
    from pathlib import Path

    # the newest migration that lists the states (0002, then 0019 added the public ones)
    for name in ("0019_public_reports.py", "0002_events.py"):
        path = Path(wf.__file__).parent / "migrations" / "versions" / name
        if path.exists():
            break
    spec = importlib.util.spec_from_file_location("mstates", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert set(mod.EVENT_STATES) == {s.value for s in State}
