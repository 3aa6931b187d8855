"""Open311 GeoReport v2 against the real PostGIS: Flask test client and a real HTTP server."""
from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone

import pytest
import requests
from flask import Flask
from sqlalchemy import pool
from werkzeug.serving import make_server

from geodata import events as ev
from geodata.db import SYSTEM, Scope, make_engine, make_sessionmaker, scoped
from map_app.open311 import init_open311
from tests.integration.event_world import build_world, destroy_world

JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + b"\x00" * 64
PRIVATE = ("三丰", "13912345678", "zhang@example.com", "first_name", "last_name", "phone", "email",
           "reporter")
SPEC_FIELDS = {"service_request_id", "status", "status_notes", "service_name", "service_code", "description",
               "agency_responsible", "service_notice", "requested_datetime", "updated_datetime",
               "expected_datetime", "address", "address_id", "zipcode", "lat", "long", "media_url"}


@pytest.fixture(scope="module")
def world(owner_engine):
    w = build_world(owner_engine, prefix="98")
    yield w
    destroy_world(owner_engine, w)


@pytest.fixture(scope="module")
def keys(owner_engine, world):
    factory = make_sessionmaker(owner_engine)
    with scoped(factory, SYSTEM) as s, s.begin():
        _, county_key = ev.create_api_client(s, "test-12345-hotline")
        _, b_key = ev.create_api_client(s, "test-village-b-app", [world.village_b], source="citizen")
        revoked_id, revoked_key = ev.create_api_client(s, "test-revoked")
        assert ev.deactivate_api_client(s, revoked_id)
    return {"county": county_key, "b": b_key, "revoked": revoked_key}


@pytest.fixture(scope="module")
def engine(pg):
    e = make_engine(pg.app_url, poolclass=pool.NullPool)
    yield e
    e.dispose()


@pytest.fixture(scope="module")
def app(engine, world, keys):
    flask_app = Flask("open311-test")
    init_open311(flask_app, make_sessionmaker(engine))
    return flask_app


@pytest.fixture
def client(app):
    return app.test_client()


def body(resp):
    return json.loads(resp.get_data(as_text=True))


def spec_error(resp, code):
    assert resp.status_code == code, resp.get_data(as_text=True)
    assert resp.mimetype == "application/json"
    data = body(resp)
    assert isinstance(data, list) and len(data) == 1 and data[0]["code"] == code
    assert isinstance(data[0]["description"], str) and data[0]["description"]
    return data[0]["description"]


def post(client, world, key, **extra):
    form = {"api_key": key, "service_code": "0102", "lat": world.P_A1[1], "long": world.P_A1[0],
            "description": "路口垃圾桶满溢", "first_name": "张", "last_name": "三丰", "phone": "13912345678",
            "email": "zhang@example.com", "address_string": "甲村村口"}
    form.update(extra)
    return client.post("/open311/v2/requests.json", data={k: v for k, v in form.items() if v is not None})


# -- services ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/open311/v2/services.json", "/open311/v2/services"])
def test_services_list(client, path):
    resp = client.get(path)
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    services = body(resp)
    assert len(services) >= 30
    by_code = {s["service_code"]: s for s in services}
    assert by_code["0102"]["service_name"] == "垃圾满溢" and by_code["0102"]["group"] == "市容环境"
    for s in services:
        assert set(s) == {"service_code", "service_name", "description", "metadata", "type", "keywords", "group"}
        assert s["type"] in ("realtime", "batch", "blackbox") and isinstance(s["metadata"], bool)
    en = body(client.get(path + "?locale=en"))
    assert {s["service_code"]: s for s in en}["0201"]["service_name"] == "Street vending on the road"


@pytest.mark.parametrize("path", ["/open311/v2/services/0301.json", "/open311/v2/services/0301"])
def test_service_definition(client, path):
    data = body(client.get(path))
    assert data["service_code"] == "0301"
    (attr,) = data["attributes"]
    assert attr["code"] == "urgency" and attr["datatype"] == "singlevaluelist" and attr["variable"] is True
    assert [v["key"] for v in attr["values"]] == ["normal", "urgent", "emergency"]
    assert {"required", "order", "description", "datatype_description"} <= set(attr)


def test_unknown_service_and_paths_answer_in_spec_format(client):
    spec_error(client.get("/open311/v2/services/9999.json"), 404)
    spec_error(client.get("/open311/v2/nothing-here.json"), 404)
    spec_error(client.get("/open311/v2/requests/abc.json"), 404)
    spec_error(client.get("/open311/v2/requests/987654321.json"), 404)
    spec_error(client.get("/open311/v2/services/0102.xml"), 400)
    spec_error(client.put("/open311/v2/services.json"), 405)


# -- posting ----------------------------------------------------------------------------

def test_post_read_back_and_no_private_fields(client, world, keys):
    resp = post(client, world, keys["county"], **{"attribute[urgency]": "urgent"})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    (created,) = body(resp)
    assert set(created) == {"service_request_id", "service_notice", "account_id"}
    rid = created["service_request_id"]
    assert "6 小时" in created["service_notice"]  # 0102: 12 h normal, urgent half
    one = client.get(f"/open311/v2/requests/{rid}.json")
    assert one.status_code == 200
    raw = one.get_data(as_text=True)
    (record,) = body(one)
    assert set(record) == SPEC_FIELDS
    assert record["service_request_id"] == rid and record["status"] == "open" and record["service_code"] == "0102"
    assert record["lat"] == pytest.approx(world.P_A1[1]) and record["long"] == pytest.approx(world.P_A1[0])
    assert record["agency_responsible"] == "环境卫生管理所" and record["address"] == "甲村村口"
    assert record["description"] == "路口垃圾桶满溢"
    datetime.fromisoformat(record["requested_datetime"])
    for secret in PRIVATE:
        assert secret not in raw
    # the event behind it: routed, with the reporter kept privately and the client's source
    engine_s = make_sessionmaker(make_engine_for(client))
    with scoped(engine_s, SYSTEM) as s:
        e = ev.get_event(s, int(rid))
    assert e["grid_uid"] == world.grids["a1"] and e["worker_id"] == world.workers["a1"]
    assert e["reporter_name"] == "张 三丰" and e["reporter_phone"] == "13912345678"
    assert e["source"] == "hotline" and e["urgency"] == "urgent" and e["reported_by"] == "open311:test-12345-hotline"
    assert all(secret not in raw for secret in PRIVATE)


def make_engine_for(client):
    cfg = client.application.extensions["dvmap_open311"]
    return cfg.session_factory.kw["bind"]


def test_post_accepts_json_and_multipart_media(client, world, keys):
    resp = client.post("/open311/v2/requests.json", json={
        "api_key": keys["county"], "service_code": "0201", "lat": world.P_B1[1], "long": world.P_B1[0],
        "attribute": {"urgency": "normal"}})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    rid = body(resp)[0]["service_request_id"]
    (record,) = body(client.get(f"/open311/v2/requests/{rid}"))
    assert record["description"] == "占道经营"  # no description given: the service name
    resp = client.post("/open311/v2/requests.json", data={
        "api_key": keys["county"], "service_code": "0102", "lat": str(world.P_A1[1]), "long": str(world.P_A1[0]),
        "description": "有图", "media": [(__import__("io").BytesIO(JPEG), "a.jpg")]},
        content_type="multipart/form-data")
    assert resp.status_code == 201, resp.get_data(as_text=True)
    rid = int(body(resp)[0]["service_request_id"])
    with scoped(make_sessionmaker(make_engine_for(client)), SYSTEM) as s:
        assert [p["content_type"] for p in ev.event_photos(s, rid)] == ["image/jpeg"]
    resp = client.post("/open311/v2/requests.json", data={
        "api_key": keys["county"], "service_code": "0102", "lat": str(world.P_A1[1]), "long": str(world.P_A1[0]),
        "description": "不是图", "media": [(__import__("io").BytesIO(b"%PDF-1.4 hello"), "a.pdf")]},
        content_type="multipart/form-data")
    assert "JPEG" in spec_error(resp, 400)


def test_post_errors(client, world, keys):
    before = len(body(client.get("/open311/v2/requests.json")))
    assert "api_key" in spec_error(post(client, world, None), 403)
    spec_error(post(client, world, "dvk_not-a-key"), 403)
    spec_error(post(client, world, keys["revoked"]), 403)
    assert "service_code" in spec_error(post(client, world, keys["county"], service_code=None), 400)
    assert "9999" in spec_error(post(client, world, keys["county"], service_code="9999"), 400)
    spec_error(post(client, world, keys["county"], lat=None), 400)
    spec_error(post(client, world, keys["county"], lat="north"), 400)
    spec_error(post(client, world, keys["county"], lat="nan"), 400)
    assert "county" in spec_error(post(client, world, keys["county"], long=121.5), 400)
    spec_error(post(client, world, keys["county"], **{"attribute[urgency]": "yesterday"}), 400)
    # a key scoped to village B may not report into village A
    assert "villages" in spec_error(post(client, world, keys["b"]), 403)
    spec_error(client.post("/open311/v2/requests.json", data="[1,2]", content_type="application/json"), 400)
    assert len(body(client.get("/open311/v2/requests.json"))) == before  # nothing half-written


def test_scoped_key_reports_into_its_village_with_its_source(client, world, keys):
    resp = post(client, world, keys["b"], lat=world.P_B1[1], long=world.P_B1[0])
    assert resp.status_code == 201
    rid = int(body(resp)[0]["service_request_id"])
    with scoped(make_sessionmaker(make_engine_for(client)), SYSTEM) as s:
        e = ev.get_event(s, rid)
    assert e["village_id"] == world.village_b and e["source"] == "citizen"


def test_idempotency_key_returns_the_same_request(client, world, keys):
    headers = {"Idempotency-Key": f"retry-{datetime.now().timestamp()}"}
    form = {"api_key": keys["county"], "service_code": "0102", "lat": world.P_A1[1], "long": world.P_A1[0],
            "description": "重复提交"}
    first = client.post("/open311/v2/requests.json", data=form, headers=headers)
    again = client.post("/open311/v2/requests.json", data=form, headers=headers)
    assert first.status_code == 201 and again.status_code == 200
    assert body(first)[0]["service_request_id"] == body(again)[0]["service_request_id"]


# -- listing ----------------------------------------------------------------------------

def test_list_filters(client, world, keys):
    ids = [body(post(client, world, keys["county"], service_code=code))[0]["service_request_id"]
           for code in ("0103", "0103", "0104")]
    engine = make_engine_for(client)
    with scoped(make_sessionmaker(engine), SYSTEM) as s, s.begin():  # close one through the loop
        rid = int(ids[0])
        actor = ev.Actor("村干部", "village_official")
        v = 1
        for action, note in (("accept", None), ("dispatch", None), ("start", None), ("handle", "已清扫"),
                             ("verify_pass", None), ("close", None)):
            v = ev.transition(s, rid, action, actor, v, note).version
    got = body(client.get("/open311/v2/requests.json", query_string={"service_request_id": ",".join(ids)}))
    assert sorted(r["service_request_id"] for r in got) == sorted(ids)
    assert {r["service_request_id"]: r["status"] for r in got}[ids[0]] == "closed"
    only_0104 = body(client.get("/open311/v2/requests.json", query_string={"service_code": "0104"}))
    assert ids[2] in {r["service_request_id"] for r in only_0104} and {r["service_code"] for r in only_0104} == {"0104"}
    closed = body(client.get("/open311/v2/requests.json", query_string={"status": "closed", "service_code": "0103"}))
    assert [r["service_request_id"] for r in closed] == [ids[0]]
    open_ = body(client.get("/open311/v2/requests.json", query_string={"status": "open", "service_code": "0103"}))
    assert ids[1] in {r["service_request_id"] for r in open_} and ids[0] not in {r["service_request_id"] for r in open_}
    both = body(client.get("/open311/v2/requests.json", query_string={"status": "open,closed", "service_code": "0103"}))
    assert set(ids[:2]) <= {r["service_request_id"] for r in both}
    future = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    assert body(client.get("/open311/v2/requests.json", query_string={"start_date": future})) == []
    past = body(client.get("/open311/v2/requests.json", query_string={
        "start_date": "2020-01-01T00:00:00+08:00", "end_date": "2020-02-01T00:00:00+08:00"}))
    assert past == []
    spec_error(client.get("/open311/v2/requests.json?status=pending"), 400)
    spec_error(client.get("/open311/v2/requests.json?start_date=yesterday"), 400)
    spec_error(client.get("/open311/v2/requests.json?service_request_id=1,x"), 400)


def test_reads_can_require_a_key(engine, world, keys):
    strict = Flask("open311-strict")
    init_open311(strict, make_sessionmaker(engine), require_key_for_reads=True)
    c = strict.test_client()
    spec_error(c.get("/open311/v2/services.json"), 403)
    assert c.get("/open311/v2/services.json", query_string={"api_key": keys["county"]}).status_code == 200


def test_falls_back_to_the_apps_dvmap_extension(engine):
    class Ext:
        sessionmaker = make_sessionmaker(engine)

        def scope_for_api(self):
            return Scope.county("open311")

    from map_app.open311 import blueprint

    other = Flask("open311-ext")
    other.extensions["dvmap"] = Ext()
    other.register_blueprint(blueprint)
    assert other.test_client().get("/open311/v2/services.json").status_code == 200


# -- a real HTTP client against a real server ---------------------------------------------------

@pytest.fixture
def live_server(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/open311/v2"
    server.shutdown()
    thread.join(10)


def test_a_real_georeport_client_lists_submits_and_reads_back(live_server, world, keys):
    http = requests.Session()
    services = http.get(f"{live_server}/services.json", timeout=10)
    assert services.status_code == 200 and services.headers["Content-Type"].startswith("application/json")
    code = next(s["service_code"] for s in services.json() if s["service_name"] == "井盖缺失")
    definition = http.get(f"{live_server}/services/{code}.json", timeout=10).json()
    assert definition["attributes"][0]["code"] == "urgency"
    created = http.post(f"{live_server}/requests.json", data={
        "api_key": keys["county"], "service_code": code, "lat": world.P_B1[1], "long": world.P_B1[0],
        "description": "井盖不见了", "attribute[urgency]": "emergency", "first_name": "张", "last_name": "三丰",
        "phone": "13912345678", "email": "zhang@example.com"}, timeout=10)
    assert created.status_code == 201, created.text
    rid = created.json()[0]["service_request_id"]
    one = http.get(f"{live_server}/requests/{rid}.json", timeout=10)
    assert one.status_code == 200
    (record,) = one.json()
    assert record["service_code"] == code and record["status"] == "open" and record["description"] == "井盖不见了"
    assert record["agency_responsible"] == "住房和城乡建设局"
    assert all(secret not in one.text for secret in PRIVATE)
    listed = http.get(f"{live_server}/requests.json", params={"service_request_id": rid, "status": "open"},
                      timeout=10)
    assert [r["service_request_id"] for r in listed.json()] == [rid]
    bad = http.post(f"{live_server}/requests.json", data={"service_code": code}, timeout=10)
    assert bad.status_code == 403 and bad.json()[0]["code"] == 403
