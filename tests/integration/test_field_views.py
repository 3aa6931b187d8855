"""What managers and leaders see of patrols: the coverage layer, the /patrol page, the big
screen's workers on patrol now; the demo patrols; the purge command. Real PostGIS, real app."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from tests.event_support import login_client


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def app(pg, demo_db):
    from map_app.app import create_app

    return create_app(pg.app_url)


@pytest.fixture(scope="module")
def demo_patrols(owner_engine, demo_db):
    """The demo patrols, loaded twice (the second load must add nothing)."""
    from etl.demo_patrol import load_demo_patrols
    from geodata.db import SYSTEM, make_sessionmaker, scoped

    factory = make_sessionmaker(owner_engine)
    with scoped(factory, SYSTEM) as s, s.begin():
        first = load_demo_patrols(s, seed=7)
    with scoped(factory, SYSTEM) as s, s.begin():
        second = load_demo_patrols(s, seed=7)
    yield first, second
    with scoped(factory, SYSTEM) as s, s.begin():
        s.execute(text("DELETE FROM patrol"))
        s.execute(text("DELETE FROM checkpoint"))
        s.execute(text("DELETE FROM app_user WHERE username LIKE 'demo-patrol-%'"))


def _scope_of(app_engine, username: str):
    from geodata import users
    from geodata.db import SYSTEM, make_sessionmaker, scoped

    with scoped(make_sessionmaker(app_engine), SYSTEM) as s:
        uid = s.execute(text("SELECT id FROM app_user WHERE username = :u"), {"u": username}).scalar_one()
        return users.scope_for(s, users.get_user(s, uid))


def test_demo_patrols_are_loaded_once_and_cover_the_week(demo_patrols, app_engine):
    first, second = demo_patrols
    assert first["checkpoints"] > 0 and first["patrols"] >= 5 and first["points"] > 100
    assert second == {"checkpoints": 0, "patrols": 0, "points": 0, "checkins": 0}
    from geodata.db import make_sessionmaker, scoped
    from geodata.field.common import iso_week
    from geodata.field.coverage import weekly_coverage

    with scoped(make_sessionmaker(app_engine), _scope_of(app_engine, "gridmgr")) as s:
        rows = [r for r in weekly_coverage(s, iso_week()) if r["patrols"]]
    # Today may be a Monday: then only today's patrols fall in this week, so no count is asserted.
    assert all(0 < r["coverage"] <= 1 and r["km"] > 0 for r in rows)


def test_coverage_layer_only_for_managers(demo_patrols, app_engine):
    from geodata.db import make_sessionmaker, scoped
    from layers.base import ViewRequest
    from layers.registry import LAYERS

    layer = LAYERS["patrol"]
    with scoped(make_sessionmaker(app_engine), _scope_of(app_engine, "leader")) as s:
        box = s.execute(text("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM"
                             " (SELECT ST_Extent(geom) AS e FROM patrol) x")).one()
    req = ViewRequest(bbox=tuple(box), zoom=13)
    for username, expect in (("gridmgr", True), ("leader", True), ("worker", False), ("planner", False)):
        with scoped(make_sessionmaker(app_engine), _scope_of(app_engine, username)) as s:
            fc = layer.features(s, req)
        walked = [f for f in fc["features"] if f["properties"]["patrols"]]
        assert bool(walked) is expect, username
        if walked:
            assert {"coverage", "flagged", "key_point_share"} <= set(walked[0]["properties"])
    assert layer.features(None, ViewRequest(bbox=tuple(box), zoom=10))["features"] == []  # zoomed out: nothing


def test_patrol_page_by_role(app, demo_patrols):
    for username, status in (("gridmgr", 200), ("town", 200), ("worker", 403), ("planner", 403)):
        client = app.server.test_client()
        login_client(client, username)
        resp = client.get("/patrol", headers={"Accept": "text/html"})
        assert resp.status_code == status, username


def test_leaders_see_workers_on_patrol_now_and_nobody_else(app, app_engine):
    worker = app.server.test_client()
    login_client(worker, "worker")
    me = worker.get("/api/field/me").get_json()
    feature = me["grids"]["features"][0]
    w, s, e, n = me["bbox"]
    lon, lat = (w + e) / 2, (s + n) / 2
    key = str(uuid.uuid4())
    now = datetime.now(timezone.utc)
    assert worker.post("/api/field/patrols", json={"patrol_key": key,
                                                   "started_at": _iso(now - timedelta(minutes=3))}).status_code == 201
    worker.post(f"/api/field/patrols/{key}/points", json={"points": [
        {"t": _iso(now - timedelta(minutes=2)), "lon": lon, "lat": lat, "accuracy_m": 5},
        {"t": _iso(now - timedelta(minutes=1)), "lon": lon + 0.0005, "lat": lat, "accuracy_m": 5}]})
    from geodata.db import make_sessionmaker, scoped
    from geodata.field.patrol import active_patrols

    factory = make_sessionmaker(app_engine)
    with scoped(factory, _scope_of(app_engine, "leader")) as s:
        dots = active_patrols(s)
    mine = [d for d in dots if abs(d["lon"] - (lon + 0.0005)) < 1e-6 and abs(d["lat"] - lat) < 1e-6]
    assert len(mine) == 1 and set(mine[0]) == {"lon", "lat", "village", "grid_code"}  # no name, no track
    assert mine[0]["grid_code"] == feature["properties"]["code"]
    for username in ("town", "gridmgr", "worker"):
        with scoped(factory, _scope_of(app_engine, username)) as s:
            assert active_patrols(s) == [], username
    # Ended: off the screen.
    worker.post(f"/api/field/patrols/{key}/end", json={"ended_at": _iso(now)})
    with scoped(factory, _scope_of(app_engine, "leader")) as s:
        assert not [d for d in active_patrols(s) if abs(d["lon"] - (lon + 0.0005)) < 1e-6]


def test_purge_tracks_command(pg, owner_engine, demo_db):
    from geodata.db import SYSTEM, make_sessionmaker, scoped
    from map_app.cli import main

    with scoped(make_sessionmaker(owner_engine), SYSTEM) as s, s.begin():
        u, v = s.execute(text("SELECT id, (SELECT village_id FROM grid WHERE worker_id = app_user.person_id"
                              " LIMIT 1) FROM app_user WHERE username = 'worker'")).one()
        pid = s.execute(text("""INSERT INTO patrol (patrol_key, user_id, village_id, started_at)
                                VALUES (gen_random_uuid(), :u, :v, now() - interval '40 days') RETURNING id"""),
                        {"u": u, "v": v}).scalar_one()
        s.execute(text("""INSERT INTO patrol_point (patrol_id, t, geom) VALUES
                          (:p, now() - interval '40 days', ST_SetSRID(ST_MakePoint(120, 30.5), 4490))"""),
                  {"p": pid})
    env = {"DATABASE_URL": pg.app_url, "DVMAP_OWNER_URL": pg.owner_url}
    out = CliRunner().invoke(main, ["field", "purge-tracks", "--days", "30"], env=env)
    assert out.exit_code == 0, out.output
    assert "purged 1 track points" in out.output
    again = CliRunner().invoke(main, ["field", "purge-tracks", "--days", "30"], env=env)
    assert "purged 0 track points" in again.output
    with scoped(make_sessionmaker(owner_engine), SYSTEM) as s, s.begin():
        s.execute(text("DELETE FROM patrol WHERE id = :p"), {"p": pid})
