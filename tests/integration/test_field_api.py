"""The field app's JSON API (/api/field/) through the real app, login guard and all, on real PostGIS.

Tasks (order, distance), report and action idempotency, stale versions, patrols
sent as an offline phone sends them (out of order, twice), check-ins, weekly
coverage on a synthetic square grid, track privacy between workers (RLS),
retention, and hostile input.
"""
from __future__ import annotations

import io
import json
import re
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from pyproj import Geod
from sqlalchemy import text

from tests.event_support import login_client, png, remove_events

TAG = "[field-api-test]"
GEOD = Geod(ellps="GRS80")  # CGCS2000's ellipsoid
W2_USER, W2_PASSWORD = "fieldw2", "field-test-pass-2"


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _login(client, username: str, password: str) -> None:
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    resp = client.post("/login", data={"username": username, "password": password, "csrf": csrf, "next": "/"})
    assert resp.status_code == 302


@pytest.fixture(scope="module")
def app(pg, demo_db):
    from map_app.app import create_app

    return create_app(pg.app_url)


@pytest.fixture(scope="module")
def world(owner_engine, app_engine, demo_db):
    """The demo worker's grid, a key point in it, and a second worker (another person's grid)."""
    from geodata import users
    from geodata.db import SYSTEM, make_sessionmaker, scoped

    with scoped(make_sessionmaker(owner_engine), SYSTEM) as s, s.begin():
        w = s.execute(text("SELECT id, person_id FROM app_user WHERE username = 'worker'")).one()
        g = s.execute(text("""SELECT uid::text AS uid, village_id, ST_X(ST_PointOnSurface(geom)) AS lon,
                                     ST_Y(ST_PointOnSurface(geom)) AS lat
                                FROM grid WHERE worker_id = :p AND valid_to IS NULL ORDER BY code LIMIT 1"""),
                      {"p": w.person_id}).one()
        other = s.execute(text("""SELECT worker_id FROM grid WHERE valid_to IS NULL AND worker_id IS NOT NULL
                                     AND worker_id <> :p ORDER BY code LIMIT 1"""), {"p": w.person_id}).scalar_one()
        if s.execute(text("SELECT 1 FROM app_user WHERE username = :u"), {"u": W2_USER}).first() is None:
            users.create_user(s, W2_USER, W2_PASSWORD, "grid_worker", person_id=other)
        cp = s.execute(text("""INSERT INTO checkpoint (grid_uid, village_id, name, geom, radius_m)
                               VALUES (:g, :v, :n, ST_SetSRID(ST_MakePoint(:lon, :lat), 4490), 50) RETURNING id"""),
                       {"g": g.uid, "v": g.village_id, "n": f"关键点 {TAG}", "lon": g.lon, "lat": g.lat}).scalar_one()
    yield {"user_id": w.id, "person_id": w.person_id, "grid_uid": g.uid, "village_id": g.village_id,
           "lon": g.lon, "lat": g.lat, "checkpoint": cp}
    with scoped(make_sessionmaker(owner_engine), SYSTEM) as s, s.begin():
        ids = "SELECT id FROM app_user WHERE username IN ('worker', :u)"
        s.execute(text(f"DELETE FROM patrol WHERE user_id IN ({ids})"), {"u": W2_USER})
        s.execute(text("DELETE FROM checkin WHERE checkpoint_id = :c"), {"c": cp})
        s.execute(text("DELETE FROM checkpoint WHERE id = :c"), {"c": cp})
        s.execute(text("DELETE FROM app_user WHERE username = :u"), {"u": W2_USER})
    remove_events(owner_engine, TAG)


@pytest.fixture
def worker(app):
    client = app.server.test_client()
    login_client(client, "worker")
    return client


def _dispatched_event(app_engine, world, *, dlon_m: float, days_ago: float, description: str) -> int:
    """An event ``dlon_m`` metres east of the grid's inner point, dispatched to the worker."""
    from geodata import events as ev
    from geodata.db import SYSTEM, make_sessionmaker, scoped

    lon, lat, _ = GEOD.fwd(world["lon"], world["lat"], 90, dlon_m) if dlon_m else (world["lon"], world["lat"], 0)
    when = datetime.now(timezone.utc) - timedelta(days=days_ago)
    with scoped(make_sessionmaker(app_engine), SYSTEM) as s, s.begin():
        ref = ev.create_event(s, lon=lon, lat=lat, subclass="0101", description=f"{description} {TAG}",
                              source="patrol", actor=ev.Actor.system(), reported_at=when)
        version = ev.transition(s, ref.id, "accept", ev.Actor.system(), ref.version, grid_uid=world["grid_uid"],
                                at=when + timedelta(seconds=10)).version
        ev.transition(s, ref.id, "dispatch", ev.Actor.system(), version, worker_id=world["person_id"],
                      grid_uid=world["grid_uid"], at=when + timedelta(seconds=20))
    return ref.id


# -- access ---------------------------------------------------------------------------------

def test_not_signed_in_gets_json_401(app):
    client = app.server.test_client()
    for method, url in (("get", "/api/field/tasks"), ("get", "/api/field/me"), ("post", "/api/field/patrols")):
        resp = getattr(client, method)(url, headers={"Accept": "text/html"})
        assert resp.status_code == 401, url
        body = resp.get_json()
        assert body["code"] == "unauthorized" and body["message_zh"] and body["message_en"]


def test_me_lists_my_grids(worker, world):
    body = worker.get("/api/field/me").get_json()
    assert body["user"]["role"] == "grid_worker"
    uids = [f["properties"]["uid"] for f in body["grids"]["features"]]
    assert world["grid_uid"] in uids
    w, s, e, n = body["bbox"]
    assert w <= world["lon"] <= e and s <= world["lat"] <= n


# -- tasks ----------------------------------------------------------------------------------

def test_tasks_overdue_first_then_due_with_distance_in_metres(worker, app_engine, world):
    near = _dispatched_event(app_engine, world, dlon_m=0, days_ago=0.01, description="近处 新")
    far = _dispatched_event(app_engine, world, dlon_m=300, days_ago=0.02, description="东 300 米")
    late = _dispatched_event(app_engine, world, dlon_m=100, days_ago=60, description="超期")
    body = worker.get(f"/api/field/tasks?lon={world['lon']}&lat={world['lat']}").get_json()
    tasks = {t["id"]: t for t in body["tasks"]}
    assert {near, far, late} <= set(tasks)
    order = [t["id"] for t in body["tasks"]]
    assert tasks[late]["overdue"] and not tasks[near]["overdue"]
    assert order.index(late) < order.index(near)
    # Overdue first, then by due time: the list is sorted on (not overdue, due_at).
    keys = [(not t["overdue"], t["due_at"] or "9999") for t in body["tasks"]]
    assert keys == sorted(keys)
    assert tasks[near]["distance_m"] < 1.0
    assert abs(tasks[far]["distance_m"] - 300) < 1.5  # geodesic metres, not degrees
    assert tasks[far]["due_local"] and tasks[far]["state_zh"]
    # Without a position: no distance.
    body = worker.get("/api/field/tasks").get_json()
    assert all(t["distance_m"] is None for t in body["tasks"])


# -- actions and reports ----------------------------------------------------------------------

def test_action_replay_is_one_transition_and_stale_is_409(worker, app, app_engine, world):
    eid = _dispatched_event(app_engine, world, dlon_m=50, days_ago=0.01, description="处置测试")
    detail = worker.get(f"/api/field/events/{eid}").get_json()
    assert {a["action"] for a in detail["actions"]} == {"start", "send_back"}
    version = detail["event"]["version"]
    form = {"client_key": f"act-{uuid.uuid4()}", "action": "start", "expected_version": str(version),
            "lon": str(world["lon"]), "lat": str(world["lat"]), "accuracy_m": "8"}
    first = worker.post(f"/api/field/events/{eid}/actions",
                        data={**form, "photo": (io.BytesIO(png()), "before.png")})
    assert first.status_code == 200, first.get_data(as_text=True)
    again = worker.post(f"/api/field/events/{eid}/actions",
                        data={**form, "photo": (io.BytesIO(png()), "before.png")})
    assert again.status_code == 200
    assert again.get_json()["replayed"] is True and first.get_json()["replayed"] is False
    assert again.get_json()["result"] == first.get_json()["result"]
    with app_engine.connect() as c:
        from geodata.db import SYSTEM, apply_scope

        apply_scope(c, SYSTEM)
        n = c.execute(text("SELECT count(*) FROM event_history WHERE event_id = :e AND action = 'start'"),
                      {"e": eid}).scalar()
    assert n == 1
    photos = worker.get(f"/api/field/events/{eid}").get_json()["photos"]
    assert [p["step"] for p in photos] == ["before"] and photos[0]["lon"] is not None
    # Another action based on the old version: 409, bilingual, with the current state.
    stale = worker.post(f"/api/field/events/{eid}/actions",
                        data={"client_key": f"act-{uuid.uuid4()}", "action": "handle",
                              "expected_version": str(version), "note": "已清理"})
    assert stale.status_code == 409
    body = stale.get_json()
    assert body["code"] == "stale_version" and body["message_zh"] and body["message_en"]
    assert body["current"] == {"state": "in_progress", "version": version + 1}


def test_report_same_key_twice_is_one_event(worker, app_engine, world):
    key = f"rep-{uuid.uuid4()}"
    form = {"client_key": key, "subclass": "0101", "description": f"路边垃圾 {TAG}", "urgency": "normal",
            "lon": str(world["lon"]), "lat": str(world["lat"]), "accuracy_m": "12", "position_source": "gps"}
    first = worker.post("/api/field/reports", data={**form, "photo": (io.BytesIO(png()), "a.png")})
    assert first.status_code == 201, first.get_data(as_text=True)
    again = worker.post("/api/field/reports", data={**form, "photo": (io.BytesIO(png()), "a.png")})
    assert again.status_code == 200 and again.get_json()["replayed"] is True
    assert again.get_json()["event"]["id"] == first.get_json()["event"]["id"]
    assert first.get_json()["event"]["grid_code"]
    from tests.conftest import scalar

    assert scalar(app_engine, "SELECT count(*) FROM event WHERE description = :d", d=form["description"]) == 1
    detail = worker.get(f"/api/field/events/{first.get_json()['event']['id']}").get_json()
    assert detail["event"]["position_source"] == "gps" and detail["event"]["position_accuracy_m"] == 12


def test_report_with_a_non_image_file_is_a_bilingual_4xx(worker, world):
    resp = worker.post("/api/field/reports", data={
        "client_key": f"rep-{uuid.uuid4()}", "subclass": "0101", "description": f"坏文件 {TAG}",
        "lon": str(world["lon"]), "lat": str(world["lat"]),
        "photo": (io.BytesIO(b"MZ\x90\x00 not an image"), "x.jpg")})
    assert 400 <= resp.status_code < 500
    assert resp.get_json()["message_zh"] and resp.get_json()["message_en"]


# -- patrols --------------------------------------------------------------------------------

def _track(world, n=21, step_m=10.0, start=None):
    """Points walking east from the grid's inner point, ``step_m`` apart, 5 s apart."""
    start = start or datetime.now(timezone.utc) - timedelta(minutes=5)
    pts = []
    for i in range(n):
        lon, lat, _ = GEOD.fwd(world["lon"], world["lat"], 90, i * step_m) if i else (world["lon"], world["lat"], 0)
        pts.append({"t": _iso(start + timedelta(seconds=5 * i)), "lon": lon, "lat": lat, "accuracy_m": 5})
    return pts, start


def test_patrol_offline_batches_out_of_order_and_twice(worker, world):
    key = str(uuid.uuid4())
    pts, start = _track(world)
    resp = worker.post("/api/field/patrols", json={"patrol_key": key, "started_at": _iso(start)})
    assert resp.status_code == 201
    assert worker.post("/api/field/patrols", json={"patrol_key": key, "started_at": _iso(start)}).status_code == 200
    late, early = pts[10:], pts[:11]  # the later batch arrives first; point 10 is in both
    assert worker.post(f"/api/field/patrols/{key}/points", json={"points": late}).get_json() == \
        {"stored": 11, "total": 11}
    assert worker.post(f"/api/field/patrols/{key}/points", json={"points": early}).get_json() == \
        {"stored": 10, "total": 21}
    assert worker.post(f"/api/field/patrols/{key}/points", json={"points": early}).get_json() == \
        {"stored": 0, "total": 21}
    end = worker.post(f"/api/field/patrols/{key}/end", json={"ended_at": _iso(start + timedelta(seconds=100))})
    body = end.get_json()
    assert abs(body["distance_m"] - 200.0) < 1.0, body  # 20 steps of 10 m, in time order
    assert body["duration_s"] == 100
    listed = worker.get("/api/field/patrols").get_json()
    assert any(p["patrol_key"] == key and abs(p["distance_m"] - 200) < 1 for p in listed)


def test_checkin_inside_and_outside_the_radius(worker, world):
    key = str(uuid.uuid4())
    now = datetime.now(timezone.utc)
    worker.post("/api/field/patrols", json={"patrol_key": key, "started_at": _iso(now - timedelta(minutes=1))})
    fc = worker.get("/api/field/checkpoints").get_json()
    assert world["checkpoint"] in [f["properties"]["id"] for f in fc["features"]]
    far_lon, far_lat, _ = GEOD.fwd(world["lon"], world["lat"], 0, 120)
    out = worker.post(f"/api/field/patrols/{key}/checkins", json={
        "checkpoint_id": world["checkpoint"], "t": _iso(now), "lon": far_lon, "lat": far_lat, "accuracy_m": 5})
    assert out.status_code == 422
    assert out.get_json()["code"] == "checkin_outside" and abs(out.get_json()["distance_m"] - 120) < 1
    near_lon, near_lat, _ = GEOD.fwd(world["lon"], world["lat"], 0, 20)
    ok = worker.post(f"/api/field/patrols/{key}/checkins", json={
        "checkpoint_id": world["checkpoint"], "t": _iso(now), "lon": near_lon, "lat": near_lat})
    assert ok.status_code == 201 and abs(ok.get_json()["distance_m"] - 20) < 0.5
    again = worker.post(f"/api/field/patrols/{key}/checkins", json={
        "checkpoint_id": world["checkpoint"], "t": _iso(now), "lon": near_lon, "lat": near_lat})
    assert again.status_code == 200


def test_another_worker_cannot_read_or_write_my_track(app, worker, world, app_engine):
    key = str(uuid.uuid4())
    pts, start = _track(world, n=3)
    worker.post("/api/field/patrols", json={"patrol_key": key, "started_at": _iso(start)})
    worker.post(f"/api/field/patrols/{key}/points", json={"points": pts})
    other = app.server.test_client()
    _login(other, W2_USER, W2_PASSWORD)
    assert other.post(f"/api/field/patrols/{key}/points", json={"points": pts}).status_code == 404
    assert other.post(f"/api/field/patrols/{key}/end", json={"ended_at": _iso(start)}).status_code == 404
    # The same key cannot be taken over either.
    taken = other.post("/api/field/patrols", json={"patrol_key": key, "started_at": _iso(start)})
    assert taken.status_code == 409 and taken.get_json()["code"] == "conflict"
    # In the database, under each one's scope (RLS): the other worker sees no row of it.
    from geodata import users
    from geodata.db import SYSTEM, make_sessionmaker, scoped

    factory = make_sessionmaker(app_engine)
    with scoped(factory, SYSTEM) as s:
        w2 = users.get_user(s, s.execute(text("SELECT id FROM app_user WHERE username = :u"),
                                         {"u": W2_USER}).scalar_one())
        w2_scope = users.scope_for(s, w2)
        gm = users.get_user(s, s.execute(text("SELECT id FROM app_user WHERE username = 'gridmgr'")).scalar_one())
        gm_scope = users.scope_for(s, gm)
    from dataclasses import replace

    # Even with the village in scope, a grid worker sees only their own tracks.
    w2_wide = replace(w2_scope, village_ids=frozenset({world["village_id"]}) | (w2_scope.village_ids or frozenset()))
    sql = ("SELECT (SELECT count(*) FROM patrol WHERE patrol_key = :k),"
           " (SELECT count(*) FROM patrol_point pp JOIN patrol p ON p.id = pp.patrol_id WHERE p.patrol_key = :k)")
    with scoped(factory, w2_wide) as s:
        assert tuple(s.execute(text(sql), {"k": key}).one()) == (0, 0)
    if gm_scope.allows_village(world["village_id"]):
        with scoped(factory, gm_scope) as s:
            assert tuple(s.execute(text(sql), {"k": key}).one()) == (1, 3)


# -- coverage ---------------------------------------------------------------------------------

@pytest.fixture
def owner_session(owner_engine, demo_db):
    """A county-scoped session of the schema owner, rolled back afterwards."""
    from tests.conftest import rolled_back_session

    yield from rolled_back_session(owner_engine)


def test_coverage_of_a_line_through_a_square_grid(owner_session):
    """A 1 km square grid crossed by one straight track: covered share = 2·50·1000 / 1000² = 0.10."""
    from geodata.field.common import iso_week
    from geodata.field.coverage import weekly_coverage

    s = owner_session
    village = s.execute(text("SELECT id, ST_X(label_point) AS lon, ST_Y(label_point) AS lat FROM village"
                             " ORDER BY id DESC LIMIT 1")).one()  # away from the other tests' tracks
    user = s.execute(text("SELECT id FROM app_user WHERE username = 'worker'")).scalar_one()
    # The square and the line are built in the metric CRS, so the expected share is exact.
    s.execute(text("ALTER TABLE grid DISABLE TRIGGER USER"))  # topology checks are not this test's subject
    uid = s.execute(text("""
        WITH c AS (SELECT ST_Transform(ST_SetSRID(ST_MakePoint(:lon, :lat), 4490), 4549) AS p)
        INSERT INTO grid (uid, village_id, code, name, geom)
        SELECT gen_random_uuid(), :v, '999999999999001', '覆盖率测试',
               ST_Multi(ST_Transform(ST_MakeEnvelope(ST_X(p) - 500, ST_Y(p) - 500, ST_X(p) + 500, ST_Y(p) + 500,
                                                     4549), 4490))
          FROM c RETURNING uid::text"""), {"lon": village.lon, "lat": village.lat, "v": village.id}).scalar_one()
    week = iso_week()
    s.execute(text("""
        WITH c AS (SELECT ST_Transform(ST_SetSRID(ST_MakePoint(:lon, :lat), 4490), 4549) AS p)
        INSERT INTO patrol (patrol_key, user_id, village_id, grid_uid, started_at, ended_at, distance_m, geom)
        SELECT gen_random_uuid(), :u, :v, CAST(:g AS uuid), :t, CAST(:t AS timestamptz) + interval '90 minutes',
               1400, ST_Transform(ST_MakeLine(ST_SetSRID(ST_MakePoint(ST_X(p) - 700, ST_Y(p)), 4549),
                                              ST_SetSRID(ST_MakePoint(ST_X(p) + 700, ST_Y(p)), 4549)), 4490)
          FROM c"""), {"lon": village.lon, "lat": village.lat, "u": user, "v": village.id, "g": uid,
                       "t": week.start + timedelta(hours=30)})
    [row] = weekly_coverage(s, week, grid_uid=uid)
    assert row["patrols"] == 1 and row["km"] == 1.4 and row["hours"] == 1.5
    assert abs(row["coverage"] - 0.10) < 0.002  # buffer ends are outside the square
    assert row["flagged"] is True
    [wide] = weekly_coverage(s, week, grid_uid=uid, buffer_m=400)
    assert abs(wide["coverage"] - 0.80) < 0.005 and wide["flagged"] is False
    # Another week: nothing walked.
    [empty] = weekly_coverage(s, iso_week((week.start - timedelta(days=7)).strftime("%G-W%V")), grid_uid=uid)
    assert empty["patrols"] == 0 and empty["coverage"] == 0


# -- retention --------------------------------------------------------------------------------

def test_retention_purges_old_points_only(app_engine, owner_engine, world):
    from geodata.db import SYSTEM, make_sessionmaker, scoped
    from geodata.field.retention import purge_tracks

    factory = make_sessionmaker(app_engine)
    with scoped(factory, SYSTEM) as s, s.begin():
        old = datetime.now(timezone.utc) - timedelta(days=200)
        pid = s.execute(text("""INSERT INTO patrol (patrol_key, user_id, village_id, started_at, ended_at, distance_m,
                                                    geom)
                                VALUES (gen_random_uuid(), :u, :v, :t, :t, 10,
                                        ST_SetSRID(ST_MakeLine(ST_MakePoint(:lon, :lat),
                                                               ST_MakePoint(:lon + 0.0001, :lat)), 4490))
                                RETURNING id"""),
                        {"u": world["user_id"], "v": world["village_id"], "t": old, "lon": world["lon"],
                         "lat": world["lat"]}).scalar_one()
        s.execute(text("""INSERT INTO patrol_point (patrol_id, t, geom)
                          VALUES (:p, :t, ST_SetSRID(ST_MakePoint(:lon, :lat), 4490)),
                                 (:p, now(), ST_SetSRID(ST_MakePoint(:lon, :lat), 4490))"""),
                  {"p": pid, "t": old, "lon": world["lon"], "lat": world["lat"]})
    # The app's role may not delete positions at all; the owner's job with a user's scope
    # deletes nothing (RLS: only system jobs purge).
    from sqlalchemy.exc import ProgrammingError

    from geodata.db import Scope

    with pytest.raises(ProgrammingError, match="permission denied"):
        with scoped(factory, SYSTEM) as s, s.begin():
            purge_tracks(s, 180)
    owner = make_sessionmaker(owner_engine)
    with scoped(owner, Scope.county("admin")) as s, s.begin():
        assert purge_tracks(s, 180)["points"] == 0
    with scoped(owner, SYSTEM) as s, s.begin():
        out = purge_tracks(s, 180)
        assert out["points"] >= 1 and out["tracks"] >= 1
        left = s.execute(text("SELECT count(*) FROM patrol_point WHERE patrol_id = :p"), {"p": pid}).scalar()
        geom, dist = s.execute(text("SELECT geom, distance_m FROM patrol WHERE id = :p"), {"p": pid}).one()
    assert left == 1 and geom is None and dist == 10  # the figures stay, the positions go


# -- hostile input --------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    "{not json", "[]", json.dumps({"points": "x"}), json.dumps({"points": [{"t": "2026-01-01T00:00:00Z",
                                                                           "lon": "NaN", "lat": 30}]}),
    json.dumps({"points": [{"t": "yesterday", "lon": 120, "lat": 30}]}),
    json.dumps({"points": [{"t": "2026-01-01T00:00:00", "lon": 120, "lat": 30}]}),  # no zone
    json.dumps({"points": [{"t": "2026-01-01T00:00:00Z", "lon": 1e308, "lat": 30}]}),
])
def test_hostile_points_are_4xx(worker, world, body):
    key = str(uuid.uuid4())
    worker.post("/api/field/patrols", json={"patrol_key": key, "started_at": _iso(datetime.now(timezone.utc))})
    resp = worker.post(f"/api/field/patrols/{key}/points", data=body, content_type="application/json")
    assert 400 <= resp.status_code < 500, resp.get_data(as_text=True)
    assert resp.get_json()["message_en"]


def test_huge_batch_and_bad_keys_are_4xx(worker, world):
    key = str(uuid.uuid4())
    worker.post("/api/field/patrols", json={"patrol_key": key, "started_at": _iso(datetime.now(timezone.utc))})
    pts = [{"t": _iso(datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=i)), "lon": 120, "lat": 30}
           for i in range(2001)]
    assert worker.post(f"/api/field/patrols/{key}/points", json={"points": pts}).status_code == 413
    big = json.dumps({"points": [], "pad": "x" * 1_500_000})
    assert worker.post(f"/api/field/patrols/{key}/points", data=big, content_type="application/json").status_code == 413
    assert worker.post("/api/field/patrols/not-a-uuid/points", json={"points": []}).status_code == 400
    assert worker.post("/api/field/patrols", json={"patrol_key": "x", "started_at": "now"}).status_code == 400
    assert worker.get("/api/field/patrols?week=2026-W99").status_code == 400
    assert worker.post("/api/field/reports", data={"subclass": "0101"}).status_code == 400  # no client_key
    assert worker.post("/api/field/events/1/actions", data={"client_key": "k", "action": "start",
                                                            "expected_version": "x"}).status_code == 400
    resp = worker.post("/api/field/events/1/actions", data={"client_key": "k", "action": "start",
                                                            "expected_version": "1", "lon": "nan", "lat": "1"})
    assert resp.status_code == 400
