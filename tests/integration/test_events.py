"""The event service against the real PostGIS: routing, the loop, locking, history, KPIs.

Geography comes from :mod:`tests.integration.event_world` (a small committed
county, removed afterwards). Most tests run in a transaction rolled back at the
end; the concurrency tests commit on separate connections and the world's
teardown removes what they wrote.
"""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import pool, text
from sqlalchemy.exc import DBAPIError

from geodata import events as ev
from geodata.db import SYSTEM, Scope, apply_scope, make_engine, make_sessionmaker, scoped
from geodata.events import (
    Actor, EventInputError, EventNotFound, InvalidTransition, PermissionDenied, StaleVersion,
)
from geodata.queries import event_list as el
from geodata.workflow import State
from tests.conftest import rolled_back_connection, session_for
from tests.integration.event_world import build_world, destroy_world

CST = timezone(timedelta(hours=8))
OFFICIAL = Actor("村干部甲", "village_official", 7)
WORKER = Actor("网格员甲一", "grid_worker", 8)
SYS = Actor.system()

JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + b"\x00" * 64
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 64


@pytest.fixture(scope="module")
def world(owner_engine):
    w = build_world(owner_engine)
    yield w
    destroy_world(owner_engine, w)


@pytest.fixture
def conn(app_engine, world):
    """An app-role connection in a transaction that is rolled back."""
    yield from rolled_back_connection(app_engine)


@pytest.fixture
def s(conn):
    session = session_for(conn)
    yield session
    session.close()


def report(session, point, subclass="0102", actor=OFFICIAL, **kw):
    kw.setdefault("description", "垃圾桶满了")
    kw.setdefault("source", "patrol")
    return ev.create_event(session, lon=point[0], lat=point[1], subclass=subclass, actor=actor, **kw)


def counts(session) -> tuple[int, int, int, int]:
    row = session.execute(text(
        "SELECT (SELECT count(*) FROM event), (SELECT count(*) FROM event_history),"
        " (SELECT count(*) FROM event_photo), (SELECT count(*) FROM event_request)"
    )).one()
    return tuple(row)


def t(day: int, hour: int = 8, month: int = 3, minute: int = 0) -> datetime:
    return datetime(2021, month, day, hour, minute, tzinfo=CST)


# -- reference data and schema ------------------------------------------------------

def test_reference_data_is_complete(s):
    tree = ev.categories(s)
    subclasses = [sub for cls in tree for sub in cls["subclasses"]]
    assert len(tree) == 8 and len(subclasses) >= 30
    names = {(cls["name_zh"], sub["name_zh"]) for cls in tree for sub in cls["subclasses"]}
    assert ("市容环境", "垃圾满溢") in names and ("街面秩序", "占道经营") in names
    assert ("公用设施", "井盖缺失") in names and ("环境保护", "烟雾报警") in names
    for sub in subclasses:
        assert sub["department"], sub["code"]
        assert set(sub["sla_hours"]) == {"normal", "urgent", "emergency"}, sub["code"]
        assert sub["sla_hours"]["emergency"] <= sub["sla_hours"]["urgent"] <= sub["sla_hours"]["normal"]
    lists = ev.reference_lists(s)
    assert [x["name_zh"] for x in lists["sources"]] == ["网格员巡查", "12345热线", "群众随手拍", "视频AI", "传感器", "上级交办"]


@pytest.mark.parametrize("table", ["event_subclass", "event_routing", "event_sla", "event_class", "department"])
def test_reference_tables_are_read_only_for_the_app(conn, table):
    apply_scope(conn, SYSTEM)
    assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() > 0
    with pytest.raises(DBAPIError, match="permission denied"), conn.begin_nested():
        conn.execute(text(f"DELETE FROM {table}"))


def test_state_constraint_matches_the_workflow(s):
    check = s.execute(text(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = 'event'::regclass AND contype = 'c' AND pg_get_constraintdef(oid) LIKE '%state = ANY%'"
        " AND pg_get_constraintdef(oid) LIKE '%in_progress%'"
    )).scalar_one()
    for state in State:
        assert f"'{state.value}'" in check


def test_rls_forced_on_every_event_table_and_partitions_closed_to_the_app(conn):
    rows = conn.execute(text(
        "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c"
        " WHERE c.relname ~ '^event(_y[0-9]{4}|_default|_history|_photo|_request)?$' AND c.relkind IN ('r', 'p')"
    )).all()
    assert len(rows) == 1 + 11 + 1 + 3
    assert all(r.relrowsecurity and r.relforcerowsecurity for r in rows), rows
    with pytest.raises(DBAPIError, match="permission denied"), conn.begin_nested():
        conn.execute(text("SELECT count(*) FROM event_y2021"))


def test_partitions_by_year_and_pruning(s, world):
    ref = report(s, world.P_A1, reported_at=t(5))
    part = s.execute(text("SELECT tableoid::regclass::text FROM event WHERE id = :id"), {"id": ref.id}).scalar()
    assert part == "event_y2021"
    ref2 = report(s, world.P_A1, reported_at=datetime(2035, 1, 1, tzinfo=CST))
    part = s.execute(text("SELECT tableoid::regclass::text FROM event WHERE id = :id"), {"id": ref2.id}).scalar()
    assert part == "event_default"
    plan = "\n".join(r[0] for r in s.execute(text(
        "EXPLAIN SELECT count(*) FROM event WHERE reported_at >= '2021-03-01+08' AND reported_at < '2021-04-01+08'"
    )))
    assert "event_y2021" in plan and "event_y2022" not in plan and "event_y2020" not in plan


# -- routing ------------------------------------------------------------------------

def test_routes_to_the_containing_grid_its_worker_village_town_and_department(s, world):
    ref = report(s, world.P_A1, subclass="0102")
    assert ref.created and ref.state == "reported" and ref.version == 1
    assert ref.grid_uid == world.grids["a1"] and ref.grid_id == world.grid_ids["a1"]
    assert ref.worker_id == world.workers["a1"]
    assert (ref.village_id, ref.town_id) == (world.village_a, world.town_id)
    assert ref.department == "sanitation" and ref.queue == "grid"
    assert not ref.outside_grid and not ref.boundary_pending and ref.candidate_grid_uids == (world.grids["a1"],)
    stored = ev.get_event(s, ref.id)
    assert stored["worker"] == "网格员甲一" and stored["village"] == "甲村" and stored["department_zh"] == "环境卫生管理所"
    assert stored["lon"] == pytest.approx(world.P_A1[0]) and stored["lat"] == pytest.approx(world.P_A1[1])
    # another subclass, another department; another grid, another worker
    ref = report(s, world.P_B1, subclass="0301")
    assert (ref.grid_uid, ref.worker_id, ref.village_id) == (world.grids["b1"], world.workers["b1"], world.village_b)
    assert ref.department == "housing"


def test_boundary_guard_flags_and_lists_candidates(s, world, monkeypatch):
    near = report(s, world.P_EDGE)                    # ~19.5 m from A2
    assert near.grid_uid == world.grids["a1"] and near.boundary_pending
    assert near.candidate_grid_uids == (world.grids["a1"], world.grids["a2"])
    far = report(s, world.P_EDGE_FAR)                 # ~48.7 m from A2
    assert not far.boundary_pending and far.candidate_grid_uids == (world.grids["a1"],)
    assert report(s, world.P_EDGE_FAR, boundary_m=60).boundary_pending
    monkeypatch.setenv("DVMAP_BOUNDARY_M", "10")
    assert not report(s, world.P_EDGE).boundary_pending
    cross = report(s, world.P_CROSS)                  # in A2, ~9.7 m from B1 in village B
    assert cross.grid_uid == world.grids["a2"] and cross.village_id == world.village_a
    assert cross.candidate_grid_uids == (world.grids["a2"], world.grids["b1"]) and cross.boundary_pending


def test_outside_every_grid_goes_to_the_village_queue_flagged(s, world):
    ref = report(s, world.P_VILLAGE_QUEUE)
    assert ref.queue == "village" and ref.outside_grid and not ref.boundary_pending
    assert ref.village_id == world.village_a and ref.grid_uid is None and ref.worker_id is None
    assert ref.department == "sanitation"
    near = report(s, world.P_NEAR_OUTSIDE)            # no grid, ~22 m from A2
    assert near.outside_grid and near.boundary_pending and near.candidate_grid_uids == (world.grids["a2"],)


def test_outside_every_village_goes_to_the_county_queue_seen_by_county_scope_only(conn, world):
    s = session_for(conn)
    ref = report(s, world.P_COUNTY_QUEUE)
    assert ref.queue == "county" and ref.village_id is None and ref.town_id == world.town_id and ref.outside_grid
    assert ev.get_event(s, ref.id) is not None
    village_s = session_for(conn, Scope.villages([world.village_a], "village_official"))
    assert ev.get_event(village_s, ref.id) is None
    assert village_s.execute(text("SELECT count(*) FROM event_history WHERE event_id = :i"), {"i": ref.id}).scalar() == 0


# -- bad input -------------------------------------------------------------------------

BAD_INPUTS = [
    ("outside county", dict(lon=121.5, lat=29.02), "location"),
    ("nan", dict(lon=float("nan"), lat=29.02), "location"),
    ("inf", dict(lon=120.91, lat=float("inf")), "location"),
    ("not a number", dict(lon="east", lat=29.02), "location"),
    ("out of range", dict(lon=200.0, lat=29.02), "location"),
    ("unknown subclass", dict(subclass="9999"), "subclass"),
    ("empty subclass", dict(subclass=""), "subclass"),
    ("bad urgency", dict(urgency="whenever"), "urgency"),
    ("bad source", dict(source="rumour"), "source"),
    ("empty description", dict(description="   "), "description"),
    ("long description", dict(description="长" * 2001), "description"),
    ("bad phone", dict(reporter_phone="call me maybe"), "reporter_phone"),
    ("oversized photo", dict(photos=[JPEG + b"\x00" * (5 * 1024 * 1024)]), "photos"),
    ("not an image", dict(photos=[JPEG, b"GIF89a" + b"\x00" * 32]), "photos"),
    ("pdf", dict(photos=[b"%PDF-1.7\n" + b"\x00" * 32]), "photos"),
    ("empty photo", dict(photos=[b""]), "photos"),
    ("too many photos", dict(photos=[JPEG] * 10), "photos"),
]


@pytest.mark.parametrize("name,override,field", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_gives_a_typed_bilingual_error_and_writes_nothing(s, world, name, override, field):
    before = counts(s)
    args = dict(lon=world.P_A1[0], lat=world.P_A1[1], subclass="0102", description="垃圾", source="patrol",
                actor=OFFICIAL, client_key=f"bad-{name}")
    args.update(override)
    with pytest.raises(EventInputError) as err:
        ev.create_event(s, **args)
    assert err.value.field == field
    assert err.value.message_zh and err.value.message_en and err.value.message_zh != err.value.message_en
    assert counts(s) == before


def test_permission_errors_write_nothing(conn, world):
    s = session_for(conn)
    before = counts(s)
    with pytest.raises(PermissionDenied):
        report(s, world.P_A1, actor=Actor("规划师", "planner"))
    village_s = session_for(conn, Scope.villages([world.village_a], "village_official"))
    with pytest.raises(PermissionDenied) as err:
        report(village_s, world.P_B1)           # village B is not theirs
    assert "village" in err.value.message_en
    with pytest.raises(PermissionDenied):
        report(village_s, world.P_COUNTY_QUEUE)  # the county queue is not theirs either
    # routing looked at every grid, but the caller's scope is back as it was
    assert village_s.execute(text("SELECT current_setting('dvmap.scope')")).scalar() == str(world.village_a)
    assert village_s.execute(text("SELECT count(*) FROM village")).scalar() == 1
    assert counts(session_for(conn)) == before


def test_photos_are_sniffed_and_stored(s, world):
    ref = report(s, world.P_A1, photos=[JPEG, PNG, WEBP, JPEG])  # the repeated one is stored once
    photos = ev.event_photos(s, ref.id)
    assert [p["content_type"] for p in photos] == ["image/jpeg", "image/png", "image/webp"]
    assert all(p["history_id"] == ref.history_id for p in photos)
    assert ev.photo_bytes(s, photos[1]["id"]) == ("image/png", PNG)
    assert photos[0]["size"] == len(JPEG)


# -- idempotency ------------------------------------------------------------------------

def test_a_repeated_submission_returns_the_same_event(s, world):
    first = report(s, world.P_A1, client_key="phone-42-0001", photos=[JPEG])
    before = counts(s)
    again = report(s, world.P_A1, client_key="phone-42-0001", photos=[JPEG])
    assert again.id == first.id and not again.created and first.created
    assert again.grid_uid == first.grid_uid
    assert counts(s) == before
    other = report(s, world.P_A1, client_key="phone-42-0002")
    assert other.id != first.id and other.created


def test_concurrent_repeats_of_one_submission_make_one_event(pg, world):
    engine = make_engine(pg.app_url, poolclass=pool.NullPool)
    factory = make_sessionmaker(engine)
    key = f"concurrent-{datetime.now().timestamp()}"
    results, errors = [], []
    barrier = threading.Barrier(12)

    def submit():
        try:
            barrier.wait()
            with scoped(factory, SYSTEM) as session, session.begin():
                results.append(report(session, world.P_A1, client_key=key))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=submit) for _ in range(12)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    engine.dispose()
    assert not errors, errors
    assert len({r.id for r in results}) == 1 and sum(r.created for r in results) == 1
    with scoped(factory, SYSTEM) as session:
        rid = results[0].id
        assert session.execute(text("SELECT count(*) FROM event WHERE id = :i"), {"i": rid}).scalar() == 1
        assert session.execute(text("SELECT count(*) FROM event_history WHERE event_id = :i"), {"i": rid}).scalar() == 1


# -- the loop --------------------------------------------------------------------------

def drive(session, ref, steps, actor=OFFICIAL):
    """Apply ``steps`` = [(action, at, note, data)] starting from ``ref``'s version."""
    version = ref.version if hasattr(ref, "version") else ref
    results = []
    for action, at, note, data in steps:
        r = ev.transition(session, ref.id, action, actor, version, note, at=at, **data)
        version = r.version
        results.append(r)
    return results


def test_full_loop_with_rework_writes_one_history_row_per_step(s, world):
    ref = report(s, world.P_A1, subclass="0102", urgency="normal", reported_at=t(1, 7))
    steps = [
        ("accept", t(1, 7, minute=30), None, {}),
        ("dispatch", t(1, 8), None, {}),
        ("start", t(1, 9), None, {}),
        ("handle", t(1, 10), "已清运", {}),
        ("verify_fail", t(1, 11), "现场仍有垃圾", {}),
        ("handle", t(1, 12), "再次清运", {}),
        ("verify_pass", t(1, 13), None, {}),
        ("close", t(1, 14), None, {}),
        ("rate", t(1, 15), None, {"rating": 5}),
    ]
    results = drive(s, ref, steps)
    assert [r.to_state for r in results] == [
        "accepted", "dispatched", "in_progress", "handled", "in_progress", "handled", "verified", "closed",
        "evaluated"]
    assert [r.version for r in results] == list(range(2, 11))
    e = ev.get_event(s, ref.id)
    assert e["state"] == "evaluated" and e["version"] == 10 and e["rework_count"] == 1 and e["rating"] == 5
    assert e["dispatched_at"] == t(1, 8) and e["sla_due_at"] == t(1, 20) == e["due_at"]  # 0102 normal: 12 h
    assert e["closed_at"] == t(1, 14) and e["handled_at"] == t(1, 12) and e["result"] == "再次清运"
    hist = ev.event_history(s, ref.id)
    assert [h["action"] for h in hist] == ["report"] + [step[0] for step in steps]
    assert [h["version"] for h in hist] == list(range(1, 11))
    assert all(h["to_state"] == n["from_state"] for h, n in zip(hist, hist[1:]))
    assert hist[5]["data"]["rework_count"] == 1 and hist[5]["note"] == "现场仍有垃圾"
    assert all(h["actor"] == OFFICIAL.name for h in hist[1:])


def test_dispatch_uses_the_sla_of_subclass_and_urgency(s, world):
    ref = report(s, world.P_A1, subclass="0301", urgency="emergency", reported_at=t(2))  # 井盖缺失 4 h → 1 h
    drive(s, ref, [("accept", t(2, 8, minute=5), None, {}), ("dispatch", t(2, 9), None, {})])
    assert ev.get_event(s, ref.id)["due_at"] == t(2, 10)


def test_stale_version_is_refused_and_nothing_is_written(s, world):
    ref = report(s, world.P_A1)
    ev.transition(s, ref.id, "accept", OFFICIAL, 1)
    before = counts(s)
    with pytest.raises(StaleVersion) as err:
        ev.transition(s, ref.id, "reject", OFFICIAL, 1, "重复")
    assert err.value.current == 2 and err.value.expected == 1
    assert "刷新" in err.value.message_zh and "reload" in err.value.message_en
    assert counts(s) == before and ev.get_event(s, ref.id)["state"] == "accepted"


def test_invalid_transition_unknown_event_and_permission(s, world):
    ref = report(s, world.P_A1)
    before = counts(s)
    with pytest.raises(InvalidTransition) as err:
        ev.transition(s, ref.id, "close", OFFICIAL, 1)
    assert "受理" in err.value.message_zh
    with pytest.raises(InvalidTransition):
        ev.transition(s, ref.id, "teleport", OFFICIAL, 1)
    with pytest.raises(EventNotFound):
        ev.transition(s, 987654321098, "accept", OFFICIAL, 1)
    with pytest.raises(PermissionDenied):
        ev.transition(s, ref.id, "accept", WORKER, 1)
    with pytest.raises(PermissionDenied):
        ev.transition(s, ref.id, "accept", Actor("领导", "county_leader"), 1)
    with pytest.raises(EventInputError) as err:
        ev.transition(s, ref.id, "reject", OFFICIAL, 1)  # a reason is required
    assert err.value.field == "note"
    with pytest.raises(EventInputError):
        ev.transition(s, ref.id, "accept", OFFICIAL, 1, colour="red")
    assert counts(s) == before and ev.get_event(s, ref.id)["version"] == 1


def test_boundary_event_cannot_be_dispatched_until_the_grid_is_confirmed(s, world):
    ref = report(s, world.P_EDGE)
    ev.transition(s, ref.id, "accept", OFFICIAL, 1)
    with pytest.raises(EventInputError) as err:
        ev.transition(s, ref.id, "dispatch", OFFICIAL, 2)
    assert err.value.field == "grid_uid" and "边界" in err.value.message_zh
    r = ev.transition(s, ref.id, "dispatch", OFFICIAL, 2, grid_uid=world.grids["a2"])
    e = ev.get_event(s, ref.id)
    assert r.version == 3 and e["grid_uid"] == world.grids["a2"] and e["worker_id"] == world.workers["a2"]
    assert not e["boundary_pending"] and e["state"] == "dispatched"
    assert ev.event_history(s, ref.id)[-1]["data"]["grid_uid"] == world.grids["a2"]
    # The timeline names the candidate chosen (code + name), not only a uid.
    grid = s.execute(text("SELECT code, name FROM grid WHERE uid = CAST(:u AS uuid) AND valid_to IS NULL"),
                     {"u": world.grids["a2"]}).mappings().one()
    assert ev.event_history(s, ref.id)[-1]["data"]["chosen_grid"] == {"code": grid["code"].strip(), "name": grid["name"]}
    assert "chosen_grid" not in ev.event_history(s, ref.id)[-2]["data"]  # accept without a grid chose nothing


def test_postpone_reassign_escalate(s, world):
    ref = report(s, world.P_A1, reported_at=t(3, 7))
    drive(s, ref, [("accept", t(3, 7), None, {}), ("dispatch", t(3, 8), None, {}), ("start", t(3, 9), None, {})])
    with pytest.raises(EventInputError) as err:        # no reason
        ev.transition(s, ref.id, "postpone", OFFICIAL, 4, until=t(10))
    assert err.value.field == "note"
    with pytest.raises(EventInputError) as err:        # not later than the current due date
        ev.transition(s, ref.id, "postpone", OFFICIAL, 4, "等配件", until=t(3, 19), at=t(3, 10))
    assert err.value.field == "until"
    r = ev.transition(s, ref.id, "postpone", OFFICIAL, 4, "等配件", until="2021-03-10T18:00", at=t(3, 10))
    e = ev.get_event(s, ref.id)
    assert e["state"] == "postponed" and e["due_at"] == t(10, 18) and e["sla_due_at"] == t(3, 20)
    assert e["postponed_until"] == t(10, 18) and e["postpone_count"] == 1
    r = ev.transition(s, ref.id, "resume", OFFICIAL, r.version, at=t(4))
    with pytest.raises(EventInputError):                # reassign needs a target
        ev.transition(s, ref.id, "reassign", OFFICIAL, r.version, "换人")
    r = ev.transition(s, ref.id, "reassign", OFFICIAL, r.version, "换人", worker_id=world.workers["a2"], at=t(4, 9))
    assert r.to_state == "dispatched" and ev.get_event(s, ref.id)["worker_id"] == world.workers["a2"]
    r = ev.transition(s, ref.id, "escalate", OFFICIAL, r.version, "请加快", at=t(4, 10))
    r = ev.transition(s, ref.id, "escalate", OFFICIAL, r.version, at=t(4, 11))
    assert ev.get_event(s, ref.id)["escalation_level"] == 2
    with pytest.raises(EventInputError):
        ev.transition(s, ref.id, "escalate", OFFICIAL, r.version)
    actions = [h["action"] for h in ev.event_history(s, ref.id)]
    assert actions[-5:] == ["postpone", "resume", "reassign", "escalate", "escalate"]


def test_rating_is_1_to_5(s, world):
    ref = report(s, world.P_A1, reported_at=t(6))
    rs = drive(s, ref, [(a, t(6, 9), n, {}) for a, n in (
        ("accept", None), ("dispatch", None), ("start", None), ("handle", "好了"), ("verify_pass", None),
        ("close", None))])
    for bad in (0, 6, "5", True, None):
        with pytest.raises(EventInputError) as err:
            ev.transition(s, ref.id, "rate", OFFICIAL, rs[-1].version, rating=bad)
        assert err.value.field == "rating"


# -- history is append-only -------------------------------------------------------------

def test_history_rejects_update_and_delete_for_the_app_role(conn, world):
    s = session_for(conn)
    ref = report(s, world.P_A1)
    s.flush()
    for sql in ("UPDATE event_history SET note = 'rewritten' WHERE event_id = :i",
                "DELETE FROM event_history WHERE event_id = :i",
                "UPDATE event_photo SET size = 1 WHERE event_id = :i",
                "DELETE FROM event WHERE id = :i"):
        with pytest.raises(DBAPIError, match="permission denied"), conn.begin_nested():
            conn.execute(text(sql), {"i": ref.id})
    assert ev.event_history(s, ref.id)[0]["note"] is None


def test_history_trigger_stops_even_the_owner(owner_engine, world):
    with owner_engine.connect() as c, c.begin() as tx:
        s = session_for(c)
        ref = report(s, world.P_A1)
        s.flush()
        for sql in ("UPDATE event_history SET note = 'rewritten' WHERE event_id = :i",
                    "DELETE FROM event_history WHERE event_id = :i",
                    "TRUNCATE event_history CASCADE"):
            with pytest.raises(DBAPIError, match="append-only"), c.begin_nested():
                c.execute(text(sql), {"i": ref.id})
        assert c.execute(text("SELECT count(*) FROM event_history WHERE event_id = :i"), {"i": ref.id}).scalar() == 1
        tx.rollback()


# -- grid workers see their grids only ------------------------------------------------------

def test_grid_worker_sees_and_handles_only_events_of_own_grid(conn, world):
    s = session_for(conn)
    mine = report(s, world.P_A1)
    theirs = report(s, world.P_CROSS)  # grid A2, same village
    for ref, grid in ((mine, "a1"), (theirs, "a2")):   # theirs lies on the A2|B1 edge: confirm A2
        drive(s, ref, [("accept", None, None, {}), ("dispatch", None, None, {"grid_uid": world.grids[grid]})])
    scope = Scope(frozenset({world.village_a}), "grid_worker", 8, frozenset({world.grids["a1"]}))
    ws = session_for(conn, scope)
    assert ev.get_event(ws, mine.id) is not None and ev.get_event(ws, theirs.id) is None
    assert len(ev.event_history(ws, mine.id)) == 3 and ev.event_history(ws, theirs.id) == []
    r = ev.transition(ws, mine.id, "start", WORKER, 3)
    assert r.to_state == "in_progress"
    with pytest.raises(EventNotFound):
        ev.transition(ws, theirs.id, "start", WORKER, 3)
    with pytest.raises(PermissionDenied):
        ev.transition(ws, mine.id, "close", WORKER, 4)
    # reporting on patrol into the neighbour's grid works; the event then belongs to them,
    # but the reporter still reads it, its timeline and photos (migration 0020) — and only reads
    new = report(ws, world.P_CROSS, actor=WORKER, photos=[PNG])
    assert new.created and new.grid_uid == world.grids["a2"]
    seen = ev.get_event(ws, new.id)
    assert seen is not None and seen["reported_by"] == WORKER.name and seen["state"] == "reported"
    assert [h["action"] for h in ev.event_history(ws, new.id)] == ["report"]
    assert ws.execute(text("SELECT count(*) FROM event_photo WHERE event_id = :i"), {"i": new.id}).scalar() == 1
    assert not el.in_own_scope(ws, new.id) and el.in_own_scope(ws, mine.id)
    with pytest.raises(EventNotFound):
        ev.transition(ws, new.id, "accept", Actor("网格员甲一", "village_official", 8), 1)
    # Another worker of the village sees neither the report nor its history.
    other = session_for(conn, Scope(frozenset({world.village_a}), "grid_worker", 9, frozenset({world.grids["a1"]})))
    assert ev.get_event(other, new.id) is None and ev.event_history(other, new.id) == []


# -- concurrency: one of fifty ------------------------------------------------------------------

def test_fifty_concurrent_attempts_of_one_transition_exactly_one_succeeds(pg, world):
    engine = make_engine(pg.app_url, poolclass=pool.NullPool)
    factory = make_sessionmaker(engine)
    with scoped(factory, SYSTEM) as session, session.begin():
        ref = report(session, world.P_A1, description="并发测试")
        ev.transition(session, ref.id, "accept", OFFICIAL, 1)
    n = 50
    barrier = threading.Barrier(n)
    outcomes: list = []
    lock = threading.Lock()

    def attempt(i):
        try:
            with scoped(factory, SYSTEM) as session:
                session.connection()  # connect before the barrier so all race on the UPDATE
                barrier.wait(30)
                r = ev.transition(session, ref.id, "dispatch", Actor(f"调度员{i}", "village_official"), 2)
                session.commit()
            out = ("ok", r.version)
        except StaleVersion as exc:
            out = ("stale", exc.current)
        except Exception as exc:  # noqa: BLE001
            out = ("error", repr(exc))
        with lock:
            outcomes.append(out)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    engine.dispose()
    kinds = [o[0] for o in outcomes]
    assert kinds.count("ok") == 1, outcomes
    assert kinds.count("stale") == n - 1, outcomes
    engine = make_engine(pg.app_url, poolclass=pool.NullPool)
    with scoped(make_sessionmaker(engine), SYSTEM) as session:
        e = ev.get_event(session, ref.id)
        hist = ev.event_history(session, ref.id)
    engine.dispose()
    assert e["state"] == "dispatched" and e["version"] == 3
    assert [h["action"] for h in hist] == ["report", "accept", "dispatch"]


# -- deadlines ----------------------------------------------------------------------------------

def test_check_overdue_marks_then_escalates_village_then_county(s, world):
    ref = report(s, world.P_A1, subclass="0102", reported_at=t(8, 7))
    rs = drive(s, ref, [("accept", t(8, 7, minute=30), None, {}), ("dispatch", t(8, 8), None, {})])
    due = t(8, 20)
    assert ev.get_event(s, ref.id)["due_at"] == due
    assert ev.check_overdue(s, due - timedelta(minutes=1)) == {"marked": 0, "escalated_village": 0,
                                                               "escalated_county": 0}
    got = ev.check_overdue(s, due + timedelta(hours=1))
    assert got["marked"] >= 1 and got["escalated_village"] == 0
    e = ev.get_event(s, ref.id)
    assert e["overdue_at"] == due + timedelta(hours=1) and e["escalation_level"] == 0 and e["version"] == 4
    assert ev.check_overdue(s, due + timedelta(hours=2))["marked"] == 0  # already marked
    ev.check_overdue(s, due + timedelta(hours=25))
    assert ev.get_event(s, ref.id)["escalation_level"] == 1
    ev.check_overdue(s, due + timedelta(hours=73))
    e = ev.get_event(s, ref.id)
    assert e["escalation_level"] == 2 and e["version"] == 6
    hist = ev.event_history(s, ref.id)
    assert [h["action"] for h in hist[-3:]] == ["mark_overdue", "escalate", "escalate"]
    assert [h["data"].get("level") for h in hist[-2:]] == [1, 2] and hist[-1]["data"]["auto"] is True
    assert all(h["actor"] == "system" and h["from_state"] == h["to_state"] == "dispatched" for h in hist[-3:])
    # the worker's form was based on version 3: now stale, with a message
    with pytest.raises(StaleVersion):
        ev.transition(s, ref.id, "start", OFFICIAL, rs[-1].version)


# -- indicators ---------------------------------------------------------------------------------

def _build_indicator_set(s, world):
    """The controlled set of events of the docstring of test_indicators_equal_hand_computed_values."""
    def new(day, month=3, hour=7, point=world.P_A1):
        return report(s, point, subclass="0102", reported_at=t(day, hour, month))

    def loop(ref, dispatch_at, *rest):
        steps = [("accept", dispatch_at, None, {}), ("dispatch", dispatch_at, None, {})] + list(rest)
        return drive(s, ref, steps)

    def finish(at_handle, at_close, rework_at=None):
        steps = [("start", at_handle, None, {}), ("handle", at_handle, "处理完毕", {})]
        if rework_at:
            steps += [("verify_fail", rework_at, "不合格", {}), ("handle", rework_at, "再处理", {})]
        return steps + [("verify_pass", at_close, None, {}), ("close", at_close, None, {})]

    loop(new(5), t(5, 8), *finish(t(5, 12), t(5, 18)))                                 # E1 on time, 10 h
    loop(new(10), t(10, 8), *finish(t(10, 12), t(11, 8), rework_at=t(10, 22)))         # E2 late, rework, 24 h
    loop(new(20), t(20, 8), ("start", t(20, 9), None, {}))                             # E3 open, overdue
    loop(new(25), t(25, 8), ("postpone", t(25, 10), "等审批", {"until": t(10, 8, 4)}))  # E4 缓办 past the end
    loop(new(31), t(31, 20))                                                           # E5 due after the end
    loop(new(27, 2), t(27, 8, 2), *finish(t(27, 9, 2), t(2, 8)))                        # E6 previous period
    loop(new(28, 2), t(28, 8, 2))                                                      # E7 old, open, overdue
    e8 = new(15)
    ev.transition(s, e8.id, "reject", OFFICIAL, 1, "重复上报", at=t(15, 8))              # E8 rejected
    loop(new(28), t(28, 8), ("postpone", t(28, 10), "等配件", {"until": t(30, 12)}),     # E9 postponed, closed
         ("resume", t(30, 9), None, {}), ("handle", t(30, 9, minute=30), "换好", {}),   #    in time, 50 h
         ("verify_pass", t(30, 10), None, {}), ("close", t(30, 10), None, {}))
    loop(new(12), t(12, 8), ("postpone", t(12, 9), "等一下", {"until": t(14, 8)}))       # E10 postponed, lapsed
    loop(new(6, point=world.P_B1), t(6, 8), *finish(t(6, 9), t(6, 10)))                # E11 village B


def test_indicators_equal_hand_computed_values(s, world):
    """Period March 2021 (CST); 0102 has a 12 h limit from dispatch.

    E1 closed in time (10 h) · E2 closed late (24 h) after one rework · E3 open past its limit ·
    E4 postponed to 10 April · E5 limit falls after the period · E6, E7 belong to February
    (E7 still open) · E8 rejected · E9 postponed, closed within the new limit (50 h) ·
    E10 postponed to 14 March and still open · E11 in village B.

    Village A: 应结案 N = {E1,E2,E3,E4,E9,E10} = 6, 结案 C = {E1,E2,E9} = 3, 按期 T = {E1,E9} = 2,
    缓办 P = {E4} = 1, 返工 = {E2} = 1 → 结案率 3/5, 按期结案率 2/5, 返工率 1/6, 平均 (10+24+50)/3 = 28 h;
    超期未结 as of 1 April = {E3, E7, E10} = 3; reported in March = 8 (E1–E5, E8, E9, E10).
    """
    _build_indicator_set(s, world)
    k = ev.indicators(s, t(1, 0), t(1, 0, 4), village_ids=[world.village_a])
    assert (k.should_close, k.closed, k.closed_on_time, k.postponed, k.reworked) == (6, 3, 2, 1, 1)
    assert k.closure_rate == pytest.approx(3 / 5) and k.on_time_rate == pytest.approx(2 / 5)
    assert k.rework_rate == pytest.approx(1 / 6) and k.avg_handling_hours == pytest.approx(28.0)
    assert k.open_overdue == 3 and k.reported == 8 and k.as_of == t(1, 0, 4)
    both = ev.indicators(s, t(1, 0), t(1, 0, 4), village_ids=[world.village_a, world.village_b])
    assert (both.should_close, both.closed, both.closed_on_time, both.reported) == (7, 4, 3, 9)
    by_village = ev.indicators_by_village(s, t(1, 0), t(1, 0, 4), village_ids=[world.village_a, world.village_b])
    assert by_village[world.village_a] == k
    assert by_village[world.village_b].closed == 1 and by_village[world.village_b].closure_rate == 1.0
    by_town = ev.indicators_grouped(s, t(1, 0), t(1, 0, 4), "town_id", [world.village_a, world.village_b])
    assert by_town == {world.town_id: both}
    with pytest.raises(EventInputError):
        ev.indicators_grouped(s, t(1, 0), t(1, 0, 4), "reporter_phone")
    # February: E6 (closed late, 2 March) and E7 (open)
    feb = ev.indicators(s, t(1, 0, 2), t(1, 0, 3), village_ids=[world.village_a])
    assert (feb.should_close, feb.closed, feb.closed_on_time, feb.postponed) == (2, 0, 0, 0)
    assert feb.closure_rate == 0.0 and feb.open_overdue == 2  # E6 and E7 were both open past limit on 1 March
    # an empty period has no rates rather than perfect ones
    empty = ev.indicators(s, t(1, 0, 1), t(1, 0, 2), village_ids=[world.village_a])
    assert empty.should_close == 0 and empty.closure_rate is None and empty.on_time_rate is None


def test_indicators_reject_a_backwards_period(s):
    with pytest.raises(EventInputError):
        ev.indicators(s, t(2), t(1))

