"""Event history is written only by ``dvmap_record_history`` (migration 0014), never directly by the app.

The app role may read ``event_history`` but not insert, update or delete rows; the
SECURITY DEFINER function that writes them checks every row against the event's
actual state and version, so a compromised app cannot forge a step that did not happen.
"""
from __future__ import annotations

import json

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from geodata import events as ev
from geodata.db import Scope
from geodata.events import Actor
from tests.conftest import rolled_back_connection, session_for
from tests.integration.event_world import build_world, destroy_world

OFFICIAL = Actor("村干部甲", "village_official", 7)


@pytest.fixture(scope="module")
def world(owner_engine):
    w = build_world(owner_engine, prefix="94")
    yield w
    destroy_world(owner_engine, w)


@pytest.fixture
def conn(app_engine, world):
    yield from rolled_back_connection(app_engine)


def _report(s, world):
    return ev.create_event(s, lon=world.P_A1[0], lat=world.P_A1[1], subclass="0102", actor=OFFICIAL,
                           description="井盖缺失", source="patrol")


def _forge(conn, ref, **row):
    """Call the history function as the app would, with a row of the caller's choosing."""
    base = {"event_id": ref.id, "event_reported_at": ref.reported_at.isoformat(), "actor": "x", "actor_role": "admin",
            "action": "close", "from_state": "reported", "to_state": "closed", "version": 2}
    return conn.execute(text("SELECT count(*) FROM dvmap_record_history(CAST(:r AS jsonb))"),
                        {"r": json.dumps([{**base, **row}])}).scalar()


def test_the_app_role_cannot_write_history_rows_directly(conn, world):
    s = session_for(conn)
    ref = _report(s, world)
    s.flush()
    for sql in (
        "INSERT INTO event_history (event_id, event_reported_at, village_id, actor, actor_role, action,"
        " from_state, to_state, version) SELECT id, reported_at, village_id, 'forger', 'admin', 'close',"
        " 'reported', 'closed', 2 FROM event WHERE id = :i",
        "UPDATE event_history SET note = 'x' WHERE event_id = :i",
        "DELETE FROM event_history WHERE event_id = :i",
    ):
        with pytest.raises(DBAPIError, match="permission denied"), conn.begin_nested():
            conn.execute(text(sql), {"i": ref.id})
    assert [h["action"] for h in ev.event_history(s, ref.id)] == ["report"]


def test_the_catalog_grants_history_writes_to_the_function_only(owner_engine):
    with owner_engine.connect() as c:
        for priv in ("INSERT", "UPDATE", "DELETE", "TRUNCATE"):
            assert not c.execute(text("SELECT has_table_privilege('dvmap_app', 'event_history', :p)"),
                                 {"p": priv}).scalar(), priv
        assert c.execute(text("SELECT has_table_privilege('dvmap_app', 'event_history', 'SELECT')")).scalar()
        fn = c.execute(text(
            "SELECT p.prosecdef, p.proconfig, pg_get_userbyid(p.proowner) AS owner,"
            " (SELECT tableowner FROM pg_tables WHERE tablename = 'event_history') AS table_owner,"
            " has_function_privilege('dvmap_app', p.oid, 'EXECUTE') AS app_exec,"
            " coalesce(array_to_string(p.proacl, ','), '') AS acl"
            " FROM pg_proc p WHERE p.proname = 'dvmap_record_history'")).mappings().one()
    assert fn["prosecdef"] and fn["owner"] == fn["table_owner"]
    assert any(c.startswith("search_path=") for c in fn["proconfig"])
    assert fn["app_exec"] and not any(e.startswith("=") for e in fn["acl"].split(","))  # PUBLIC: no EXECUTE


def test_the_function_refuses_rows_that_do_not_match_the_event(conn, world):
    s = session_for(conn)
    ref = _report(s, world)
    s.flush()
    cases = [
        {},                                                         # a 'closed' step the event never took
        {"version": 1, "from_state": None, "to_state": "reported"},  # the report row again
        {"version": 2, "to_state": "reported", "from_state": "reported"},  # a version the event does not have
        {"event_reported_at": "2001-01-01T00:00:00+00:00"},         # another (non-existent) event key
    ]
    for row in cases:
        with pytest.raises(DBAPIError, match="history refused"), conn.begin_nested():
            _forge(conn, ref, **row)
    # a real step, then a second row for that same step
    r = ev.transition(s, ref.id, "accept", OFFICIAL, 1)
    with pytest.raises(DBAPIError, match="history refused"), conn.begin_nested():
        _forge(conn, ref, action="accept", from_state="reported", to_state=r.to_state, version=r.version)
    # the app bumps the version itself, then claims the event was closed: the state does not match
    conn.execute(text("UPDATE event SET version = version + 1 WHERE id = :i"), {"i": ref.id})
    with pytest.raises(DBAPIError, match="history refused"), conn.begin_nested():
        _forge(conn, ref, action="close", from_state=r.to_state, to_state="closed", version=r.version + 1)
    assert [h["action"] for h in ev.event_history(s, ref.id)] == ["report", "accept"]


def test_a_village_scope_cannot_record_history_of_another_village(conn, world):
    s = session_for(conn)
    ref = _report(s, world)  # in village A
    s.flush()
    other = session_for(conn, Scope(frozenset({world.village_b}), "village_official", 7))
    other.execute(text("SELECT 1"))  # applies village B's scope to the connection
    with pytest.raises(DBAPIError, match="not found in scope"), conn.begin_nested():
        _forge(conn, ref, action="note", from_state="reported", to_state="reported", version=2)


def test_the_loop_still_writes_its_history(conn, world):
    s = session_for(conn)
    ref = _report(s, world)
    r1 = ev.transition(s, ref.id, "accept", OFFICIAL, 1)
    r2 = ev.transition(s, ref.id, "dispatch", OFFICIAL, r1.version)
    hid = ev.add_note(s, ref.id, Actor.system(), "传感器恢复正常")
    hist = ev.event_history(s, ref.id)
    assert [(h["action"], h["version"]) for h in hist] == [("report", 1), ("accept", 2), ("dispatch", 3), ("note", 4)]
    assert hist[-1]["from_state"] == hist[-1]["to_state"] == r2.to_state
    row = conn.execute(text("SELECT id, village_id FROM event_history WHERE event_id = :i AND version = 4"),
                       {"i": ref.id}).one()
    assert row.id == hid and row.village_id == world.village_a
