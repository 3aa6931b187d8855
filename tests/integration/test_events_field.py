"""What the field app relies on in the event service (issue 16; migration 0017), against the real PostGIS.

* a reported point keeps its accuracy and source (GPS vs tapped);
* photos carry a step (上报 / 处置前 / 处置后 / 核查), derived from the action when the
  phone does not say it, and the server's stamp (uploader, time, position);
* a duplicate photo is stored once and the timeline says so (issue 18);
* a transition replayed with the same ``client_key`` (an offline queue sending twice)
  returns the first result and writes nothing, even after the event moved on;
* migration 0017 goes down and up again cleanly, keeping existing photos' steps.
"""
from __future__ import annotations

import threading

import pytest
from alembic import command
from sqlalchemy import pool, text
from sqlalchemy.exc import DBAPIError

from geodata import events as ev
from geodata import migrate
from geodata.db import SYSTEM, make_engine, make_sessionmaker, scoped
from geodata.events import Actor, EventInputError, PhotoIn, StaleVersion
from tests.conftest import make_test_database, rolled_back_connection, session_for
from tests.integration.event_world import build_world, destroy_world

OFFICIAL = Actor("村干部甲", "village_official", 7)


def jpeg(tag: bytes) -> bytes:
    """A distinct small JPEG-looking file (the service sniffs magic bytes only)."""
    return b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + tag.ljust(64, b"\x00")


@pytest.fixture(scope="module")
def world(owner_engine):
    w = build_world(owner_engine, prefix="97")
    yield w
    destroy_world(owner_engine, w)


@pytest.fixture
def conn(app_engine, world):
    yield from rolled_back_connection(app_engine)


@pytest.fixture
def s(conn):
    session = session_for(conn)
    yield session
    session.close()


def report(session, point, **kw):
    kw.setdefault("description", "路灯不亮")
    kw.setdefault("source", "patrol")
    kw.setdefault("subclass", "0102")
    return ev.create_event(session, lon=point[0], lat=point[1], actor=OFFICIAL, **kw)


def counts(session) -> tuple[int, int, int]:
    return tuple(session.execute(text(
        "SELECT (SELECT count(*) FROM event), (SELECT count(*) FROM event_history), (SELECT count(*) FROM event_photo)"
    )).one())


def to_dispatched(session, ref) -> int:
    version = ref.version
    for action in ("accept", "dispatch"):
        version = ev.transition(session, ref.id, action, OFFICIAL, version).version
    return version


# -- position of the report ---------------------------------------------------------------------

def test_position_accuracy_and_source_are_stored_and_read(s, world):
    gps = report(s, world.P_A1, position_accuracy_m=8.5, position_source="gps")
    tap = report(s, world.P_A1, position_source="tap")
    plain = report(s, world.P_A1)
    e = ev.get_event(s, gps.id)
    assert (e["position_accuracy_m"], e["position_source"]) == (8.5, "gps")
    assert (ev.get_event(s, tap.id)["position_accuracy_m"], ev.get_event(s, tap.id)["position_source"]) == (None, "tap")
    assert (ev.get_event(s, plain.id)["position_accuracy_m"], ev.get_event(s, plain.id)["position_source"]) == (None, None)


@pytest.mark.parametrize("kw, field", [
    (dict(position_accuracy_m=-1), "position_accuracy_m"),
    (dict(position_accuracy_m=100_001), "position_accuracy_m"),
    (dict(position_accuracy_m=float("nan")), "position_accuracy_m"),
    (dict(position_accuracy_m="near"), "position_accuracy_m"),
    (dict(position_source="wifi"), "position_source"),
])
def test_bad_position_facts_are_refused_and_nothing_is_written(s, world, kw, field):
    before = counts(s)
    with pytest.raises(EventInputError) as err:
        report(s, world.P_A1, **kw)
    assert err.value.field == field
    assert counts(s) == before


def test_the_database_refuses_a_position_source_outside_the_list(conn, s, world):
    ref = report(s, world.P_A1, position_source="gps")
    with pytest.raises(DBAPIError, match="event_position_source_check"), conn.begin_nested():
        conn.execute(text("UPDATE event SET position_source = 'wifi' WHERE id = :id"), {"id": ref.id})


# -- photo steps and stamps ---------------------------------------------------------------------

def test_photo_steps_are_derived_from_the_action(s, world):
    ref = report(s, world.P_A1, photos=[jpeg(b"report")])
    version = to_dispatched(s, ref)
    version = ev.transition(s, ref.id, "start", OFFICIAL, version, photos=[jpeg(b"before")]).version
    version = ev.transition(s, ref.id, "handle", OFFICIAL, version, "已修好", photos=[jpeg(b"after")]).version
    ev.transition(s, ref.id, "verify_pass", OFFICIAL, version, photos=[PhotoIn(jpeg(b"verify"))])
    photos = ev.event_photos(s, ref.id)
    assert [p["step"] for p in photos] == ["report", "before", "after", "verify"]
    assert all(p["uploaded_by"] == OFFICIAL.name for p in photos)
    hist = {h["id"]: h for h in ev.event_history(s, ref.id)}
    assert [hist[p["history_id"]]["action"] for p in photos] == ["report", "start", "handle", "verify_pass"]
    assert all(p["at"] == hist[p["history_id"]]["at"] for p in photos)


def test_an_explicit_step_and_position_are_kept(s, world):
    ref = report(s, world.P_A1)
    version = to_dispatched(s, ref)
    shot = PhotoIn(jpeg(b"site"), step="after", lon=120.9101, lat=29.0201, accuracy_m=12.0)
    r = ev.transition(s, ref.id, "start", OFFICIAL, version, photos=[shot, PhotoIn(jpeg(b"nostamp"))])
    photos = ev.event_photos(s, ref.id)
    assert [p["step"] for p in photos] == ["after", "before"]
    assert photos[0]["lon"] == pytest.approx(120.9101) and photos[0]["lat"] == pytest.approx(29.0201)
    assert photos[0]["accuracy_m"] == 12.0
    assert (photos[1]["lon"], photos[1]["lat"], photos[1]["accuracy_m"]) == (None, None, None)
    assert r.changes["photos"] == 2
    srid = s.execute(text("SELECT ST_SRID(geom) FROM event_photo WHERE id = :id"), {"id": photos[0]["id"]}).scalar()
    from geodata.config import STORAGE_SRID
    assert srid == STORAGE_SRID


@pytest.mark.parametrize("photo", [
    PhotoIn(jpeg(b"x"), step="during"),
    PhotoIn(jpeg(b"x"), lon=120.91),
    PhotoIn(jpeg(b"x"), lon=120.91, lat=95.0),
    PhotoIn(jpeg(b"x"), accuracy_m=-3),
    PhotoIn(b"GIF89a" + b"\x00" * 32),
])
def test_bad_stamped_photos_are_refused(s, world, photo):
    before = counts(s)
    with pytest.raises(EventInputError) as err:
        report(s, world.P_A1, photos=[photo])
    assert err.value.field == "photos"
    assert counts(s) == before


def test_a_duplicate_photo_is_stored_once_and_the_timeline_says_so(s, world):
    same = jpeg(b"same")
    ref = report(s, world.P_A1, photos=[same, same, jpeg(b"other")])
    first = ev.event_history(s, ref.id)[0]
    assert len(ev.event_photos(s, ref.id)) == 2
    assert first["data"]["photos"] == 2 and first["data"]["photos_duplicate"] == 1
    # the same picture again with a later step: the event already has it
    r = ev.transition(s, ref.id, "accept", OFFICIAL, 1, photos=[same])
    assert len(ev.event_photos(s, ref.id)) == 2
    assert "photos" not in r.changes and r.changes["photos_duplicate"] == 1
    assert ev.event_history(s, ref.id)[-1]["data"] == r.changes


# -- replaying a transition -------------------------------------------------------------------

def test_a_replayed_transition_returns_the_first_result_and_writes_nothing(s, world):
    ref = report(s, world.P_A1)
    version = to_dispatched(s, ref)
    first = ev.transition(s, ref.id, "start", OFFICIAL, version, photos=[jpeg(b"b1")], client_key="phone-7-0001")
    before = counts(s)
    again = ev.transition(s, ref.id, "start", OFFICIAL, version, photos=[jpeg(b"b1")], client_key="phone-7-0001")
    assert again == first and again.history_id == first.history_id
    assert counts(s) == before
    # the event moves on; the late replay still gets its own result, not StaleVersion
    ev.transition(s, ref.id, "handle", OFFICIAL, first.version, "修好了")
    late = ev.transition(s, ref.id, "start", OFFICIAL, version, client_key="phone-7-0001")
    assert late == first
    assert counts(s)[1] == before[1] + 1
    stored = s.execute(text("SELECT client_key FROM event_history WHERE id = :h"), {"h": first.history_id}).scalar()
    assert stored == "phone-7-0001"


def test_another_key_on_an_old_version_is_stale(s, world):
    ref = report(s, world.P_A1)
    version = to_dispatched(s, ref)
    ev.transition(s, ref.id, "start", OFFICIAL, version, client_key="phone-7-0002")
    before = counts(s)
    with pytest.raises(StaleVersion):
        ev.transition(s, ref.id, "start", OFFICIAL, version, client_key="phone-7-0003")
    with pytest.raises(EventInputError) as err:  # same key, another action: a client bug, said clearly
        ev.transition(s, ref.id, "postpone", OFFICIAL, version, "等配件", until="2099-01-01", client_key="phone-7-0002")
    assert err.value.field == "client_key"
    assert counts(s) == before


def test_the_same_key_on_another_event_is_its_own_transition(s, world):
    a, b = report(s, world.P_A1), report(s, world.P_A1)
    ra = ev.transition(s, a.id, "accept", OFFICIAL, 1, client_key="phone-7-0004")
    rb = ev.transition(s, b.id, "accept", OFFICIAL, 1, client_key="phone-7-0004")
    assert ra.history_id != rb.history_id and rb.event_id == b.id


def test_concurrent_replays_of_one_key_write_once(pg, world):
    engine = make_engine(pg.app_url, poolclass=pool.NullPool)
    factory = make_sessionmaker(engine)
    with scoped(factory, SYSTEM) as session, session.begin():
        ref = report(session, world.P_A1, description="重放并发测试")
    n = 8
    barrier = threading.Barrier(n)
    outcomes: list = []
    lock = threading.Lock()

    def attempt():
        try:
            with scoped(factory, SYSTEM) as session:
                session.connection()
                barrier.wait(30)
                r = ev.transition(session, ref.id, "accept", OFFICIAL, 1, client_key="phone-7-race")
                session.commit()
            out = ("ok", r.history_id)
        except Exception as exc:  # noqa: BLE001
            out = ("error", repr(exc))
        with lock:
            outcomes.append(out)

    threads = [threading.Thread(target=attempt) for _ in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    with scoped(factory, SYSTEM) as session:
        hist = ev.event_history(session, ref.id)
    engine.dispose()
    assert [o[0] for o in outcomes] == ["ok"] * n, outcomes
    assert len({o[1] for o in outcomes}) == 1
    assert [h["action"] for h in hist] == ["report", "accept"]


# -- the migration ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fresh_db():
    """A database of its own: the test moves its schema down and up."""
    yield from make_test_database("dvmap_t0017")


def _versions(engine) -> set[str]:
    with engine.connect() as c:
        return set(c.execute(text("SELECT version_num FROM alembic_version")).scalars())


def _columns(engine, table: str) -> set[str]:
    with engine.connect() as c:
        return set(c.execute(text(
            "SELECT column_name FROM information_schema.columns WHERE table_name = :t"), {"t": table}).scalars())


def test_migration_0017_goes_down_and_up_cleanly(fresh_db):
    owner = make_engine(fresh_db.owner_url, poolclass=pool.NullPool)
    app = make_engine(fresh_db.app_url, poolclass=pool.NullPool)
    try:
        w = build_world(owner, prefix="96")
        with scoped(make_sessionmaker(app), SYSTEM) as session, session.begin():
            ref = report(session, w.P_A1, photos=[jpeg(b"old")])
            v = to_dispatched(session, ref)
            ev.transition(session, ref.id, "start", OFFICIAL, v, photos=[jpeg(b"start")])
        cfg = migrate.alembic_config(fresh_db.owner_url)
        before = _versions(owner)
        command.downgrade(cfg, "0017@-1")  # this branch only: the other heads stay where they are
        after = _versions(owner)
        # 0017's parents (0016, 0014) may show up as heads of their own now; nothing else moved
        assert "0017" in before and "0017" not in after, after
        assert before - {"0017"} <= after and after - before <= {"0014", "0016"}, (before, after)
        assert not {"step", "geom", "accuracy_m", "uploaded_by"} & _columns(owner, "event_photo")
        assert not {"position_accuracy_m", "position_source"} & _columns(owner, "event")
        assert "client_key" not in _columns(owner, "event_history")
        # 0014's history function is back: the service without client_key still works on it
        with owner.connect() as c:
            fn = c.execute(text("SELECT prosrc FROM pg_proc WHERE proname = 'dvmap_record_history'")).scalar_one()
        assert "client_key" not in fn

        migrate.upgrade(fresh_db.owner_url)
        assert migrate.check(fresh_db.owner_url) == ""
        with owner.connect() as c:
            c.execute(text("SELECT set_config('dvmap.scope', '*', false)"))
            steps = c.execute(text("SELECT step, uploaded_by FROM event_photo WHERE event_id = :id ORDER BY id"),
                              {"id": ref.id}).all()
        assert [tuple(r) for r in steps] == [("report", OFFICIAL.name), ("before", OFFICIAL.name)]
        destroy_world(owner, w)
    finally:
        owner.dispose()
        app.dispose()
