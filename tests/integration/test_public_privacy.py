"""Privacy: every public response (villagers' pages and API, Open311 reads) searched for personal data.

The test data holds phone numbers, a reporter's name, a worker's name and an event in
a sensitive subclass (独居老人关爱); none of them may appear in anything a person
without an account can fetch.
"""
from __future__ import annotations

import io
import json

import pytest
from sqlalchemy import text

from geodata import events as ev
from geodata import public
from geodata.db import SYSTEM, apply_scope, make_sessionmaker, scoped
from geodata.workflow import Action
from tests.event_support import png, remove_events

TAG = "[public-privacy-test]"
PHONE = "13755551234"
TYPED_PHONE = "13944448888"
HOTLINE_PHONE = "0572-8123456"
NAME = "诸葛保密"
SENSITIVE_TEXT = "独居的孙阿婆需要送药"


@pytest.fixture(scope="module")
def app(pg, demo_db):
    from map_app.app import create_app

    return create_app(pg.app_url).server


@pytest.fixture(scope="module")
def data(app, app_engine, owner_engine):
    factory = make_sessionmaker(app_engine)
    with scoped(factory, SYSTEM) as s:
        lon, lat = s.execute(text(
            """SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(g.geom) AS p FROM grid g
                WHERE g.valid_to IS NULL AND g.worker_id IS NOT NULL ORDER BY g.id LIMIT 1 OFFSET 7) x""")).one()
    c = app.test_client()
    c.environ_base["REMOTE_ADDR"] = "10.2.0.1"
    resp = c.post("/api/public/reports", content_type="multipart/form-data", data={
        "category": "outage", "description": f"停电了,请打 {TYPED_PHONE} 联系 {TAG}", "lon": lon, "lat": lat,
        "position_source": "gps", "phone": PHONE, "photos": [(io.BytesIO(png()), "a.png")]})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    code = resp.get_json()["tracking_code"]
    with scoped(factory, SYSTEM) as s, s.begin():
        pub_id = s.execute(text("SELECT event_id FROM public_report WHERE tracking_code_hash = :h"),
                           {"h": public.common.code_hash(code)}).scalar_one()
        worker_id, worker_name = s.execute(text(
            "SELECT id, name FROM person WHERE active AND name IS NOT NULL ORDER BY id LIMIT 1")).one()
        for action, actor, extra in ((Action.CONFIRM, ev.Actor("worker", "grid_worker"), {}),
                                     (Action.ACCEPT, ev.Actor(NAME, "village_official"), {}),
                                     (Action.DISPATCH, ev.Actor(NAME, "village_official"), {"worker_id": worker_id})):
            v = s.execute(text("SELECT version FROM event WHERE id = :e"), {"e": pub_id}).scalar_one()
            ev.transition(s, pub_id, action, actor, v, **extra)
        hot = ev.create_event(s, lon=lon, lat=lat, subclass="0803", description=f"热线反映停电 {TAG}",
                              source="hotline", actor=ev.Actor.system(), reporter_name=NAME,
                              reporter_phone=HOTLINE_PHONE)
        sens = ev.create_event(s, lon=lon, lat=lat, subclass="0801", description=f"{SENSITIVE_TEXT} {TAG}",
                               source="hotline", actor=ev.Actor.system(), reporter_name=NAME,
                               reporter_phone=HOTLINE_PHONE, photos=[png(rgb=(5, 5, 5))])
        sens_photo = s.execute(text("SELECT id FROM event_photo WHERE event_id = :e"), {"e": sens.id}).scalar_one()
    yield {"lon": lon, "lat": lat, "code": code, "public_id": pub_id, "hotline_id": hot.id, "sensitive_id": sens.id,
           "sensitive_photo": sens_photo, "worker_name": worker_name, "client": c}
    with owner_engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        conn.execute(text("DELETE FROM public_report WHERE event_id = :e"), {"e": pub_id})
        conn.execute(text("DELETE FROM login_throttle WHERE key LIKE 'public-%'"))
    remove_events(owner_engine, TAG)


def public_responses(app, data) -> dict[str, tuple[int, str]]:
    c = data["client"]
    lon, lat, code = data["lon"], data["lat"], data["code"]
    urls = ["/report", "/report?lang=en", f"/track/{code}", f"/api/public/track/{code}", "/api/public/categories",
            f"/api/public/villages?lon={lon}&lat={lat}",
            "/open311/v2/services.json", "/open311/v2/requests.json", "/open311/v2/requests.json?status=open",
            "/open311/v2/requests.json?service_code=0801", "/open311/v2/requests.json?service_code=0803,0801",
            f"/open311/v2/requests/{data['public_id']}.json", f"/open311/v2/requests/{data['hotline_id']}.json",
            f"/open311/v2/requests/{data['sensitive_id']}.json",
            f"/open311/v2/requests.json?service_request_id={data['sensitive_id']},{data['hotline_id']}"]
    urls += [f"/api/public/nearby?lon={lon}&lat={lat}&category={k}" for k, *_ in public.CATEGORIES]
    out = {}
    for url in urls:
        resp = c.get(url)
        out[url] = (resp.status_code, resp.get_data(as_text=True))
    return out


def test_no_public_response_names_a_person_or_shows_a_sensitive_event(app, data):
    responses = public_responses(app, data)
    forbidden = [PHONE, TYPED_PHONE, HOTLINE_PHONE, "8123456", NAME, data["worker_name"], SENSITIVE_TEXT,
                 "reporter_name", "reporter_phone"]
    for url, (status, body) in responses.items():
        assert status < 500, url
        for needle in forbidden:
            assert needle not in body, (needle, url)
    # the sensitive event is not there in any form, and its photo is not served
    sid = str(data["sensitive_id"])
    assert responses[f"/open311/v2/requests/{sid}.json"][0] == 404
    for url, (status, body) in responses.items():
        if url.startswith("/open311/v2/requests") and status == 200:
            records = json.loads(body)
            assert all(r["service_code"] not in {"0701", "0702", "0703", "0801", "0802"} for r in records), url
            assert sid not in {r["service_request_id"] for r in records}, url
        if url.startswith("/api/public/nearby"):
            assert all(r["id"] != data["sensitive_id"] for r in json.loads(body)), url
    assert data["client"].get(f"/api/public/photos/{data['sensitive_photo']}").status_code == 404
    # the things that should be there are there (so the search above searched something)
    track = json.loads(responses[f"/api/public/track/{data['code']}"][1])
    assert [s["action"] for s in track["timeline"]] == ["report", "confirm", "accept", "dispatch"]
    hot = json.loads(responses[f"/open311/v2/requests/{data['hotline_id']}.json"][1])
    assert hot[0]["service_code"] == "0803"
    own = json.loads(responses[f"/open311/v2/requests/{data['public_id']}.json"][1])
    assert "[电话已隐藏 phone hidden]" in own[0]["description"]


def test_sensitive_list_is_data(app_engine, demo_db):
    with scoped(make_sessionmaker(app_engine), SYSTEM) as s:
        assert {"0701", "0702", "0703", "0801", "0802"} <= public.sensitive_subclasses(s)
