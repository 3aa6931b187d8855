"""The villagers' channel over HTTP and through the services, on the demo county.

Reports go in through the real app (create_app: login guard, error shapes, limits);
officials' steps are service calls. Everything these tests commit carries TAG and is
removed afterwards.
"""
from __future__ import annotations

import io
import json
import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from geodata import events as ev
from geodata import public
from geodata.db import SYSTEM, apply_scope, make_sessionmaker, scoped
from geodata.workflow import Action, PermissionDenied, State
from tests.event_support import png, remove_events

TAG = "[public-test]"
PHONE = "13712349876"
OTHER_PHONE = "13698765432"
SECRET_NAME = "欧阳秘密"


@pytest.fixture(scope="module")
def app(pg, demo_db):
    from map_app.app import create_app

    return create_app(pg.app_url).server


@pytest.fixture(scope="module")
def factory(app_engine):
    return make_sessionmaker(app_engine)


@pytest.fixture(scope="module")
def spot(factory):
    """A point inside a demo grid that has a worker, and a second point ~200 m east of it."""
    with scoped(factory, SYSTEM) as s:
        row = s.execute(text(
            """SELECT ST_X(p) AS lon, ST_Y(p) AS lat FROM (
                 SELECT ST_PointOnSurface(g.geom) AS p FROM grid g
                  WHERE g.valid_to IS NULL AND g.worker_id IS NOT NULL ORDER BY g.id LIMIT 1 OFFSET 3) x""")).one()
    return {"lon": row.lon, "lat": row.lat, "far_lon": row.lon + 0.002}


@pytest.fixture(scope="module", autouse=True)
def cleanup(owner_engine, demo_db):
    yield
    with owner_engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        ids = "SELECT id FROM event WHERE description LIKE :tag"
        p = {"tag": f"%{TAG}%"}
        for sql in (f"DELETE FROM event_follower WHERE event_id IN ({ids})",
                    f"DELETE FROM event_merge WHERE merged_event_id IN ({ids})",
                    f"DELETE FROM public_report WHERE event_id IN ({ids})",
                    "DELETE FROM citizen_points", "DELETE FROM login_throttle WHERE key LIKE 'public-%'"):
            conn.execute(text(sql), p)
    remove_events(owner_engine, TAG)


def client_for(app, addr: str):
    c = app.test_client()
    c.environ_base["REMOTE_ADDR"] = addr
    return c


def report(client, spot, *, category="light", desc="路灯不亮", phone=None, photos=(), lon=None, **extra):
    data = {"category": category, "description": f"{desc} {TAG}", "lon": str(lon or spot["lon"]),
            "lat": str(spot["lat"]), "position_source": "gps", **extra}
    if phone:
        data["phone"] = phone
    data["photos"] = [(io.BytesIO(p), f"p{i}.png") for i, p in enumerate(photos)]
    return client.post("/api/public/reports", data=data, content_type="multipart/form-data")


def event_of(factory, code: str) -> dict:
    with scoped(factory, SYSTEM) as s:
        return dict(s.execute(text(
            """SELECT e.id, e.state, e.version, e.source, e.reporter_phone, r.phone_hash, r.tracking_code_hash
                 FROM public_report r JOIN event e ON e.id = r.event_id
                WHERE r.tracking_code_hash = :h"""), {"h": public.common.code_hash(code)}).mappings().one())


def official() -> ev.Actor:
    return ev.Actor("village", "village_official")


def step(factory, event_id: int, action, actor=None, note=None, **data):
    with scoped(factory, SYSTEM) as s, s.begin():
        version = s.execute(text("SELECT version FROM event WHERE id = :e"), {"e": event_id}).scalar_one()
        return ev.transition(s, event_id, action, actor or official(), version, note, **data)


def bilingual(resp, status: int) -> dict:
    assert resp.status_code == status, resp.get_data(as_text=True)[:400]
    body = resp.get_json()
    assert body["message_zh"] and body["message_en"] and body["code"]
    return body


# -- intake ------------------------------------------------------------------------------------

def test_a_report_enters_as_pending_with_an_unguessable_code(app, factory, spot):
    resp = report(client_for(app, "10.1.0.1"), spot, phone=PHONE, photos=[png()])
    assert resp.status_code == 201, resp.get_data(as_text=True)
    code = resp.get_json()["tracking_code"]
    assert re.fullmatch(r"[23456789A-HJ-NP-Z]{12}", code)
    row = event_of(factory, code)
    assert row["state"] == State.PENDING_VERIFICATION.value and row["source"] == "citizen"
    assert str(row["id"]) not in code and row["tracking_code_hash"] != code
    assert row["phone_hash"] and PHONE not in row["phone_hash"]
    with scoped(factory, SYSTEM) as s:
        hist = s.execute(text("SELECT action, to_state, actor FROM event_history WHERE event_id = :e"),
                         {"e": row["id"]}).one()
        assert tuple(hist) == ("report", "pending_verification", "群众随手拍")
        assert s.execute(text("SELECT count(*) FROM event_photo WHERE event_id = :e"), {"e": row["id"]}).scalar() == 1


def test_nearby_shows_open_reports_of_the_class_and_me_too_counts_once(app, factory, spot):
    c = client_for(app, "10.1.0.2")
    code = report(c, spot, category="light", desc="又一盏路灯不亮", photos=[png(rgb=(0, 90, 0))]).get_json()["tracking_code"]
    eid = event_of(factory, code)["id"]
    rows = c.get(f"/api/public/nearby?lon={spot['lon']}&lat={spot['lat']}&category=light").get_json()
    mine = [r for r in rows if r["id"] == eid]
    assert mine and mine[0]["metres"] <= 1 and mine[0]["photo_url"] and mine[0]["status_zh"] == "待核实"
    assert "description" not in mine[0]
    assert c.get(mine[0]["photo_url"]).status_code == 200
    # ~190 m away: not nearby; another class at the same place: not listed
    far = c.get(f"/api/public/nearby?lon={spot['far_lon']}&lat={spot['lat']}&category=light").get_json()
    assert eid not in [r["id"] for r in far]
    other = c.get(f"/api/public/nearby?lon={spot['lon']}&lat={spot['lat']}&category=river").get_json()
    assert eid not in [r["id"] for r in other]
    before = count_events(factory)
    r1 = c.post(f"/api/public/events/{eid}/follow", json={"device_key": "d" * 32}).get_json()
    r2 = c.post(f"/api/public/events/{eid}/follow", json={"device_key": "d" * 32}).get_json()
    r3 = c.post(f"/api/public/events/{eid}/follow", json={"device_key": "e" * 32}).get_json()
    assert (r1["followers"], r1["added"], r2["followers"], r2["added"], r3["followers"]) == (1, True, 1, False, 2)
    assert count_events(factory) == before  # me too never makes an event


def count_events(factory) -> int:
    with scoped(factory, SYSTEM) as s:
        return s.execute(text("SELECT count(*) FROM event")).scalar_one()


def test_confirm_earns_points_and_the_timeline_is_public_wording(app, factory, spot, monkeypatch):
    monkeypatch.setenv("DVMAP_PUBLIC_POINTS_CAP", "3")
    c = client_for(app, "10.1.0.3")
    codes = [report(c, spot, category="rubbish", desc=f"垃圾{i}", phone=OTHER_PHONE).get_json()["tracking_code"]
             for i in range(2)]
    for code in codes:
        step(factory, event_of(factory, code)["id"], Action.CONFIRM, ev.Actor("网格员钱多多", "grid_worker"))
    with scoped(factory, SYSTEM) as s, s.begin():
        assert public.award_points(s) == 3  # 2 + 1: the monthly cap of 3
        assert public.award_points(s) == 0  # idempotent
        table = public.points_by_village(s)
    assert sum(r["points"] for r in table) == 3 and sum(r["reports"] for r in table) == 2
    data = c.get(f"/api/public/track/{codes[0]}").get_json()
    assert data["status_zh"] == "已受理" and [s["action"] for s in data["timeline"]] == ["report", "confirm"]
    assert "网格员已现场核实" in data["timeline"][1]["text_zh"]
    assert "钱多多" not in json.dumps(data, ensure_ascii=False) and OTHER_PHONE not in json.dumps(data)


def test_rejection_shows_its_reason(app, factory, spot):
    c = client_for(app, "10.1.0.4")
    code = report(c, spot, category="parking", desc="乱停车").get_json()["tracking_code"]
    step(factory, event_of(factory, code)["id"], Action.REJECT, note="现场未发现车辆")
    data = c.get(f"/api/public/track/{code}").get_json()
    assert data["status_zh"] == "不予受理" and data["timeline"][-1]["reason"] == "现场未发现车辆"
    assert c.get(f"/track/{code}").status_code == 200


def test_the_whole_loop_then_the_reporter_rates_and_not_satisfied_flags(app, factory, spot):
    c = client_for(app, "10.1.0.5")
    code = report(c, spot, category="road", desc="路面坑洼", phone=PHONE).get_json()["tracking_code"]
    eid = event_of(factory, code)["id"]
    assert bilingual(c.post(f"/api/public/track/{code}/rating", json={"level": "basic"}), 409)["code"] == "not_closed"
    step(factory, eid, Action.CONFIRM, ev.Actor("worker", "grid_worker"))
    step(factory, eid, Action.ACCEPT)
    with scoped(factory, SYSTEM) as s:
        worker = s.execute(text("SELECT id FROM person WHERE active ORDER BY id LIMIT 1")).scalar_one()
    step(factory, eid, Action.DISPATCH, worker_id=worker)
    step(factory, eid, Action.START, ev.Actor("worker", "grid_worker"))
    with scoped(factory, SYSTEM) as s, s.begin():
        v = s.execute(text("SELECT version FROM event WHERE id = :e"), {"e": eid}).scalar_one()
        ev.transition(s, eid, Action.HANDLE, ev.Actor("worker", "grid_worker"), v, "已修补", photos=[png(rgb=(1, 2, 3))])
    assert c.get(f"/api/public/track/{code}").get_json()["after_photos"]
    step(factory, eid, Action.VERIFY_PASS)
    step(factory, eid, Action.CLOSE)
    data = c.get(f"/api/public/track/{code}").get_json()
    assert data["can_rate"] and data["status_zh"] == "已办结"
    assert c.get(data["after_photos"][0]).status_code == 200
    bad = c.post(f"/api/public/track/{code}/rating", json={"level": "great"})
    assert bilingual(bad, 400)["code"] == "rating"
    resp = c.post(f"/api/public/track/{code}/rating", json={"level": "not", "comment": "补得不平"})
    assert resp.status_code == 200 and resp.get_json() == {"rating": 1, "flagged": True}
    assert bilingual(c.post(f"/api/public/track/{code}/rating", json={"level": "satisfied"}), 409)
    with scoped(factory, SYSTEM) as s:
        assert s.execute(text("SELECT state, rating FROM event WHERE id = :e"), {"e": eid}).one() == ("evaluated", 1)
        hist = s.execute(text("SELECT action, actor_role FROM event_history WHERE event_id = :e ORDER BY version"),
                         {"e": eid}).all()
        assert hist[-2:] == [("rate", "citizen"), ("note", "citizen")]
        now = datetime.now(timezone.utc)
        sat = public.satisfaction(s, now - timedelta(hours=1), now + timedelta(hours=1))
    assert sat["rated"] >= 1 and sat["by_reporter"] >= 1
    data = c.get(f"/api/public/track/{code}").get_json()
    assert data["rating"]["label_zh"] == "不满意" and not data["can_rate"]


# -- merge -----------------------------------------------------------------------------------------

def test_merge_moves_followers_copies_photos_and_admin_unmerges(app, factory, spot):
    c = client_for(app, "10.1.0.6")
    kept_code = report(c, spot, category="leak", desc="水管漏水", photos=[png(rgb=(9, 9, 9))]).get_json()["tracking_code"]
    dup_code = report(c, spot, category="leak", desc="这里漏水", photos=[png(rgb=(8, 8, 8))]).get_json()["tracking_code"]
    kept, dup = event_of(factory, kept_code), event_of(factory, dup_code)
    c.post(f"/api/public/events/{dup['id']}/follow", json={"device_key": "f" * 32})
    with scoped(factory, SYSTEM) as s:
        assert dup["id"] in [d["id"] for d in public.duplicate_candidates(s, kept["id"])]
    with scoped(factory, SYSTEM) as s, s.begin():
        with pytest.raises(PermissionDenied):
            public.merge(s, kept["id"], dup["id"], ev.Actor("worker", "grid_worker"), dup["version"])
    with scoped(factory, SYSTEM) as s, s.begin():
        out = public.merge(s, kept["id"], dup["id"], official(), dup["version"])
    assert out["followers_moved"] == 1 and out["photos_copied"] == 1
    with scoped(factory, SYSTEM) as s:
        assert s.execute(text("SELECT state FROM event WHERE id = :e"), {"e": dup["id"]}).scalar() == "merged"
        assert public.followers(s, kept["id"]) == 2 and public.followers(s, dup["id"]) == 0  # follower + reporter
        assert s.execute(text("SELECT count(*) FROM event_photo WHERE event_id = :e"), {"e": kept["id"]}).scalar() == 2
        last = lambda e: s.execute(text("SELECT action, note FROM event_history WHERE event_id = :e"  # noqa: E731
                                        " ORDER BY version DESC LIMIT 1"), {"e": e}).one()
        assert last(dup["id"]) == ("merge", f"合并到 #{kept['id']}")
        assert last(kept["id"]) == ("note", f"合并了重复事件 #{dup['id']}")
    data = c.get(f"/api/public/track/{dup_code}").get_json()
    assert data["status_zh"] == "已与同一问题合并" and data["merged_into"]["status_zh"] == "待核实"
    with scoped(factory, SYSTEM) as s, s.begin():
        with pytest.raises(PermissionDenied):
            public.unmerge(s, dup["id"], official(), "合并错了")
    with scoped(factory, SYSTEM) as s, s.begin():
        back = public.unmerge(s, dup["id"], ev.Actor("admin", "admin"), "不是同一处漏水")
    assert back["state"] == "pending_verification" and back["followers_moved_back"] == 1
    with scoped(factory, SYSTEM) as s:
        assert public.followers(s, kept["id"]) == 0 and public.followers(s, dup["id"]) == 1
        assert s.execute(text("SELECT action, from_state, to_state FROM event_history WHERE event_id = :e"
                              " ORDER BY version DESC LIMIT 1"), {"e": dup["id"]}).one() == \
            ("unmerge", "merged", "pending_verification")
    # merged again after the undo: the partial unique index allows one active merge only
    with scoped(factory, SYSTEM) as s, s.begin():
        v = s.execute(text("SELECT version FROM event WHERE id = :e"), {"e": dup["id"]}).scalar_one()
        public.merge(s, kept["id"], dup["id"], official(), v)


def test_merged_events_do_not_count_as_settled():
    from geodata.workflow import CLOSED, SETTLED

    assert State.MERGED in CLOSED and State.MERGED not in SETTLED


# -- abuse and bad input -----------------------------------------------------------------------

def test_honeypot_and_bad_input_are_bilingual_4xx_and_write_nothing(app, factory, spot):
    c = client_for(app, "10.1.0.7")
    before = count_events(factory)
    assert bilingual(report(c, spot, website="http://spam.example"), 400)["code"] == "refused"
    assert bilingual(report(c, spot, category="nonsense"), 400)["code"] == "category"
    assert bilingual(report(c, spot, desc="<script>alert(1)</script>"), 400)
    assert bilingual(report(c, spot, desc="长" * 501), 400)
    assert bilingual(report(c, spot, photos=[png()] * 4), 400)
    assert bilingual(report(c, spot, photos=[b"not an image at all"]), 400)
    assert bilingual(report(c, spot, lon=150.0), 400)
    assert bilingual(report(c, spot, phone="call me"), 400)
    assert bilingual(report(c, spot, position_source="psychic"), 400)
    assert bilingual(c.get("/api/public/nearby?lon=x&lat=1&category=light"), 400)
    assert bilingual(c.get("/api/public/track/NOPE"), 404)
    assert bilingual(c.get("/api/public/track/ABCDEFGHJKMN"), 404)
    assert bilingual(c.post("/api/public/events/999999999/follow", json={"device_key": "g" * 32}), 404)
    assert bilingual(c.post("/api/public/events/1/follow", json={}), 400)
    assert bilingual(c.get("/api/public/photos/abc"), 404)
    assert count_events(factory) == before


def test_rate_limits_answer_429_in_both_languages(app, spot, monkeypatch):
    monkeypatch.setenv("DVMAP_PUBLIC_LIMIT_TRACK", "3 per hour")
    monkeypatch.setenv("DVMAP_PUBLIC_LIMIT_REPORT_PHONE", "1 per day")
    c = client_for(app, "10.1.0.8")
    statuses = [c.get("/api/public/track/ABCDEFGHJKMN").status_code for _ in range(4)]
    assert statuses == [404, 404, 404, 429]
    body = bilingual(c.get("/api/public/track/ABCDEFGHJKMN"), 429)
    assert "频繁" in body["message_zh"] and "Too many" in body["message_en"]
    # another address is not affected
    assert client_for(app, "10.1.0.9").get("/api/public/track/ABCDEFGHJKMN").status_code == 404
    # per phone, across addresses
    assert report(client_for(app, "10.1.1.1"), spot, phone="13500001111").status_code == 201
    assert bilingual(report(client_for(app, "10.1.1.2"), spot, phone="135-0000-1111"), 429)


def test_public_paths_need_no_login_and_pages_render(app):
    c = client_for(app, "10.1.0.10")
    page = c.get("/report", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "随手拍" in page.get_data(as_text=True)
    assert "{{" not in page.get_data(as_text=True)
    for url in re.findall(r'(?:src|href)="(/report/[^"]+)"', page.get_data(as_text=True)):
        assert c.get(url).status_code == 200, url
    assert c.get("/report/static/public/../../auth.py").status_code == 404
    cats = c.get("/api/public/categories").get_json()
    assert {"light", "rubbish"} <= {x["key"] for x in cats}


def test_the_officials_panel_shows_followers_and_suggests_the_duplicate(app, factory, spot):
    from geodata.db import Scope
    from layers import event_panel

    c = client_for(app, "10.1.0.11")
    first = event_of(factory, report(c, spot, category="tree", desc="树倒了").get_json()["tracking_code"])
    second = event_of(factory, report(c, spot, category="tree", desc="路边树倒了").get_json()["tracking_code"])
    c.post(f"/api/public/events/{first['id']}/follow", json={"device_key": "h" * 32})
    with scoped(factory, Scope(None, "town_official")) as s:
        text_ = json.dumps(event_panel.render(s, second["id"], "zh").to_plotly_json(), default=str,
                           ensure_ascii=False)
    assert f"可能重复 #{first['id']}" in text_ and f"merge:{first['id']}" in text_
    assert "关注人数" in text_ and '"data-action": "merge"' not in text_  # no bare merge button
    with scoped(factory, Scope(None, "town_official")) as s, s.begin():
        out = public.panel_action(s, second["id"], f"merge:{first['id']}", official(), second["version"])
    assert (out.from_state, out.to_state) == ("pending_verification", "merged")
    with scoped(factory, Scope(None, "town_official")) as s:
        assert public.followers(s, first["id"]) == 2
        panel = json.dumps(event_panel.render(s, first["id"], "zh").to_plotly_json(), default=str, ensure_ascii=False)
    assert "关注人数" in panel
