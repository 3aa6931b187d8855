"""Hostile requests through the real app (login guard and all): 4xx with a bilingual message, never 5xx.

Two parts:

* a corpus of hand-written hostile requests to every Flask route and to the Dash
  callback endpoint — malformed envelopes, wrong types, NUL bytes, huge and negative
  numbers, bad boxes and dates — sent as anonymous, a village official, a grid worker
  and an administrator; none may answer 5xx, and every 4xx says why in Chinese and
  English;
* a hypothesis fuzz over every server callback of the app's callback map
  (``/_dash-dependencies``): wrong-typed values for its inputs and state, posted as a
  logged-in user; none may answer 5xx.
"""
from __future__ import annotations

import io
import json
import os
import re
import time

import pytest
from sqlalchemy import text

from tests.event_support import login_client, remove_events

TAG = "[hostile-test]"
CJK = re.compile(r"[\u4e00-\u9fff]")
LATIN = re.compile(r"[A-Za-z]{3,}")
HUGE = "9" * 30
NUL = "\x00"
BOUNDS = [[30.50, 119.90], [30.56, 119.98]]


@pytest.fixture(scope="module")
def app(pg, demo_db):
    from map_app.app import create_app

    return create_app(pg.app_url)


@pytest.fixture(scope="module")
def keys(owner_engine, demo_db):
    """An Open311 key and a sensor gateway key, removed afterwards with what they made."""
    from geodata import events as ev
    from geodata import sensors
    from geodata.db import SYSTEM, make_sessionmaker, scoped

    factory = make_sessionmaker(owner_engine)
    with scoped(factory, SYSTEM) as s, s.begin():
        open311_id, open311 = ev.create_api_client(s, f"hostile-open311-{time.time_ns()}")
        gateway_id, gateway = sensors.create_gateway_key(s, f"hostile-gateway-{time.time_ns()}")
    yield {"open311": open311, "gateway": gateway}
    remove_events(owner_engine, TAG)
    with owner_engine.begin() as conn:
        conn.execute(text("UPDATE api_client SET active = false WHERE id IN (:a, :b)"),
                     {"a": open311_id, "b": gateway_id})
        conn.execute(text("DELETE FROM app_user WHERE username LIKE 'hostile%'"))


@pytest.fixture(scope="module")
def clients(app):
    out = {"anon": app.server.test_client()}
    for username in ("village", "worker", "admin"):
        c = app.server.test_client()
        login_client(c, username)
        out[username] = c
    return out


def _csrf(client) -> str:
    page = client.get("/login").get_data(as_text=True)  # any session gets its token there
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def _text_of(resp) -> str:
    if resp.is_json:
        return json.dumps(resp.get_json(silent=True), ensure_ascii=False)
    body = resp.get_data(as_text=True)
    body = re.sub(r"<(style|script)[^>]*>.*?</\1>", " ", body, flags=re.S | re.I)
    return re.sub(r"<[^>]+>", " ", body)


def bilingual(resp) -> bool:
    """True when the answer says something in Chinese and in English."""
    words = _text_of(resp)
    return bool(CJK.search(words)) and bool(LATIN.search(words))


# -- the Dash callback requests ------------------------------------------------------------

def item(cid, prop, value=None):
    return {"id": cid, "property": prop, "value": value}


def layer_call(options: list, zoom=15, bounds=BOUNDS, names=("events",)):
    """The map's load_layers request with the events layer on and these layer-option values."""
    return {
        "output": '..{"name":["ALL"],"type":"layer"}.data...layer-keys.data..',
        "outputs": [[{"id": {"name": n, "type": "layer"}, "property": "data"} for n in names],
                    {"id": "layer-keys", "property": "data"}],
        "inputs": [item("map", "bounds", bounds), item("map", "zoom", zoom),
                   [item({"name": n, "type": "layer-toggle"}, "checked", True) for n in names],
                   [],
                   [item({"key": k, "name": "events", "type": "layer-option"}, "value", v) for k, v in options]],
        "state": [item("layer-keys", "data", {})],
        "changedPropIds": ["map.zoom"],
    }


def table_call(state="open", klass=None, period=None, village=None, is_open=True):
    f = lambda key, v: item({"key": key, "type": "evt-filter"}, "value", v)  # noqa: E731
    return {
        "output": "..evt-table.rowData...evt-table-count.children..",
        "outputs": [{"id": "evt-table", "property": "rowData"}, {"id": "evt-table-count", "property": "children"}],
        "inputs": [item("evt-drawer-open", "data", is_open), f("state", state), f("class", klass),
                   f("range", period), f("village", village), item("event-refresh", "data", 0)],
        "state": [item("lang", "data", "zh")],
        "changedPropIds": ['{"key":"class","type":"evt-filter"}.value'],
    }


def indicators_call(period=None, village=None):
    f = lambda key, v: item({"key": key, "type": "evt-filter"}, "value", v)  # noqa: E731
    return {
        "output": "evt-indicators.children",
        "outputs": {"id": "evt-indicators", "property": "children"},
        "inputs": [f("range", period), f("village", village), item("event-refresh", "data", 0)],
        "state": [item("lang", "data", "zh")],
        "changedPropIds": ['{"key":"range","type":"evt-filter"}.value'],
    }


def details_call(click=None, search=None, lang="zh"):
    return {
        "output": next(k for k in _OUTPUT_KEYS if k.startswith("..details.children...map.viewport...")),
        "outputs": [{"id": "details", "property": "children"}, {"id": "map", "property": "viewport"},
                    {"id": {"name": "villages", "type": "layer"}, "property": "hideout"}],
        "inputs": [[item({"name": "villages", "type": "layer"}, "clickData", click)],
                   item("village-search", "value", search)],
        "state": [item("lang", "data", lang)],
        "changedPropIds": ["village-search.value" if search is not None else
                           '{"name":"villages","type":"layer"}.clickData'],
    }


def page_call(pathname="/", search=""):
    return {
        "output": ".._pages_content.children..._pages_store.data..",
        "outputs": [{"id": "_pages_content", "property": "children"}, {"id": "_pages_store", "property": "data"}],
        "inputs": [item("_pages_location", "pathname", pathname), item("_pages_location", "search", search)],
        "changedPropIds": ["_pages_location.pathname"],
    }


_OUTPUT_KEYS: list[str] = []


def dash_corpus() -> list[tuple[str, str, str, dict]]:
    """(who, method, path, kwargs) for the callback endpoint."""
    url = "/_dash-update-component"
    known = "legend.children"
    out = []
    bodies = [[], "x", None, {}, 1, 1.5, True, {"output": None}, {"output": 1}, {"output": ["x"]},
              {"output": "nope.children"}, {"output": "nope.children", "inputs": []},
              {"output": known}, {"output": known, "inputs": "x"}, {"output": known, "inputs": [1, 2]},
              {"output": known, "inputs": [[], []]}, {"output": known, "inputs": [[], []], "state": "x"},
              {"output": known, "inputs": [[], []], "state": [1]},
              {"output": known, "inputs": [[], []], "state": [item("lang", "data", "zh")]},
              {"output": known, "inputs": [[], []], "state": [item("lang", "data", "zh")], "outputs": 5},
              {"output": known, "inputs": [[], []], "state": [item("lang", "data", "zh")],
               "outputs": {"id": "legend", "property": "children"}, "changedPropIds": "x"},
              {"output": known, "inputs": [[], []], "state": [item("lang", "data", "zh")],
               "outputs": {"id": "legend", "property": "children"}, "changedPropIds": [1]},
              {"output": known, "inputs": [{"id": 5, "property": "x"}, []], "state": [item("lang", "data", 1)],
               "outputs": {"id": "legend", "property": "children"}},
              {"output": known, "inputs": [{"id": "a"}, []], "state": [item("lang", "data", 1)],
               "outputs": {"id": "legend", "property": "children"}},
              {"output": known + NUL, "inputs": [], "state": []}]
    for body in bodies:
        out.append(("village", "POST", url, {"json": body}))
    # Wrong shapes inside a known callback: outputs that do not match, values of wrong types.
    good = layer_call([("days", "30")])
    wrong_outputs = dict(good, outputs=[{"id": "layer-keys", "property": "data"}])
    out += [("village", "POST", url, {"json": wrong_outputs}),
            ("village", "POST", url, {"json": dict(good, outputs={"id": "layer-keys", "property": "data"})}),
            ("village", "POST", url, {"json": dict(good, inputs=good["inputs"][:3])}),
            ("village", "POST", url, {"json": dict(good, state=[])})]
    # Not JSON at all, or too big.
    out += [("village", "POST", url, {"data": "{not json", "content_type": "application/json"}),
            ("village", "POST", url, {"data": b"\xff\xfe\x00", "content_type": "application/json"}),
            ("village", "POST", url, {"data": "output=legend.children",
                                      "content_type": "application/x-www-form-urlencoded"}),
            ("village", "POST", url, {"data": json.dumps({"pad": "x" * (20 * 1024 * 1024)}),
                                      "content_type": "application/json"}),
            ("village", "POST", url, {"data": b"[" + b"1," * (33 * 1024 * 1024) + b"1]",
                                      "content_type": "application/json"}),
            ("village", "GET", url, {}),
            ("anon", "POST", url, {"json": good})]
    # The events layer's options: days, state, class of every wrong kind.
    for days in ("abc", "-1", "0", "1e9", HUGE, "30.5", NUL, "3" + NUL, -5, 10**12, 2**70, 1.5, True, [], {},
                 "99999", "365 days", " ", "NaN", "Infinity"):
        out.append(("village", "POST", url, {"json": layer_call([("days", days)])}))
    for state in (NUL, 5, [], {"a": 1}, "closed" + NUL):
        out.append(("village", "POST", url, {"json": layer_call([("state", state)])}))
    for klass in (NUL, "01" + NUL, 5, [], {"a": 1}, "x" * 5000):
        out.append(("village", "POST", url, {"json": layer_call([("class", klass)])}))
    for zoom, bounds in ((HUGE, BOUNDS), (1e308, BOUNDS), (-1, BOUNDS), ("x", BOUNDS), (15, "x"), (15, [1, 2]),
                         (15, [[1, 2], [3]]), (15, [["a", "b"], ["c", "d"]]), (15, [[NUL, 1], [2, 3]]),
                         (15, [[-1e308, -1e308], [1e308, 1e308]]), (15, [[None, None], [None, None]]),
                         ([15], BOUNDS), ({"z": 1}, BOUNDS)):
        out.append(("village", "POST", url, {"json": layer_call([("days", "30")], zoom=zoom, bounds=bounds)}))
    # The event table and the indicators: NUL bytes and wrong types in every filter.
    for kw in ({"klass": NUL}, {"klass": "01" + NUL}, {"klass": ["01"]}, {"klass": {"a": 1}}, {"klass": 7},
               {"klass": "x" * 10000}, {"state": NUL}, {"state": ["open"]}, {"village": NUL}, {"village": HUGE},
               {"village": -1}, {"village": 2**80}, {"village": {"id": 1}}, {"period": [NUL, NUL]},
               {"period": ["0001-01-01", "9999-12-31"]}, {"period": ["9999-12-31", "9999-12-31"]},
               {"period": "2025-01-01"}, {"period": [1, 2]}, {"period": [None, "2025-13-45"]},
               {"period": {"a": 1}}, {"is_open": NUL}):
        out.append(("village", "POST", url, {"json": table_call(**kw)}))
    for kw in ({"village": NUL}, {"village": HUGE}, {"period": ["9999-12-31", None]}, {"period": [NUL]},
               {"village": 2**80}, {"period": ["0001-01-01", "0001-01-01"]}):
        out.append(("village", "POST", url, {"json": indicators_call(**kw)}))
    # Details panel and search.
    for click, search in ((None, NUL), (None, HUGE), (None, "-1"), (None, {"a": 1}), (None, [1]),
                          ({"properties": {"id": NUL, "kind": "village"}}, None),
                          ({"properties": {"id": HUGE}}, None), ({"properties": "x"}, None), ("x", None),
                          ({"properties": {"kind": "sensor_aggregate", "bounds": "x"}}, None),
                          ({"id": 2**70, "properties": {"id": 2**70}}, None)):
        out.append(("village", "POST", url, {"json": details_call(click, search)}))
    out.append(("village", "POST", url, {"json": details_call(None, "1", lang={"x": 1})}))
    # Pages with hostile query strings (the page layout runs in a callback).
    for path, search in (("/", "?village=" + NUL), ("/", "?village=" + HUGE), ("/", "?grid=-1&lang=" + NUL),
                         ("/", "?" + "a=1&" * 2000), ("/" + NUL, ""), ("/nope", ""), (None, None), (5, {}),
                         ("/analysis", "?x=" + NUL), ("/grids", "?village=" + HUGE), ("/bigscreen", "?lang=xx"),
                         ("/bigscreen/admin", "?period=" + NUL)):
        out.append(("village", "POST", url, {"json": page_call(path, search)}))
        out.append(("admin", "POST", url, {"json": page_call(path, search)}))
    return out


def flask_corpus(keys) -> list[tuple[str, str, str, dict]]:
    """(who, method, path, kwargs) for the Flask routes."""
    out = []
    add = lambda who, method, path, **kw: out.append((who, method, path, kw))  # noqa: E731
    # Pages, the login guard and login itself.
    for path in ("/?village=" + HUGE, "/?lang=%00", "/%00", "/nope/../../etc/passwd", "/_dash-layout?x=%00",
                 "/_dash-dependencies?x=1", "/_reload-hash", "/assets/%00", "/assets/../pyproject.toml",
                 "/_dash-component-suites/%00/x.js", "/healthz?x=%00"):
        add("anon", "GET", path)
        add("village", "GET", path)
    add("anon", "GET", "/login?next=%00&lang=%00")
    add("anon", "POST", "/login", data={"username": "x"})  # no CSRF token
    add("anon", "POST", "/login", data={"csrf": "wrong", "username": "x", "password": "y"})
    add("anon", "POST", "/login", json=[1, 2])
    add("village", "POST", "/logout", data={})
    add("village", "POST", "/logout", data={"csrf": NUL})
    add("anon", "PUT", "/login")
    add("anon", "DELETE", "/healthz")
    # Administrators' pages, as someone else and as an administrator with bad forms.
    for who in ("anon", "village", "worker"):
        add(who, "GET", "/admin/users")
        add(who, "POST", "/admin/users", data={"op": "add"})
        add(who, "GET", "/admin/import/")
        add(who, "POST", "/admin/import/upload", data={})
    add("admin", "GET", "/admin/users?x=%00")
    add("admin", "POST", "/admin/users", data={"op": "add"})  # no CSRF
    for form in ({"op": "nope"},
                 {"op": "add", "username": "u" + NUL, "password": "long-enough-1", "role": "county_leader"},
                 {"op": "add", "username": "hostile1", "password": "long-enough-1", "role": "grid_worker",
                  "person_id": "abc"},
                 {"op": "add", "username": "hostile2", "password": "long-enough-1", "role": "grid_worker",
                  "person_id": HUGE},
                 {"op": "add", "username": "hostile3", "password": "long-enough-1", "role": "village_official",
                  "village_code": NUL},
                 {"op": "add", "username": "hostile4", "password": "long-enough-1", "role": "town_official",
                  "town_code": HUGE},
                 {"op": "add", "username": "hostile5", "password": "long-enough-1", "role": NUL},
                 {"op": "add", "username": "", "password": "", "role": ""},
                 {"op": "add", "username": "hostile6", "password": "x" * 100_000 + NUL, "role": "nope"},
                 {"op": "add", "username": "hostile7", "password": "long-enough-1", "role": "county_leader",
                  "display_name": NUL},
                 {"op": "disable", "username": NUL}, {"op": "enable", "username": "x" * 10_000}):
        add("admin", "POST", "/admin/users", data={**form, "csrf": "@csrf"})
    for path in ("/admin/import/jobs/%00", "/admin/import/jobs/" + "a" * 20, "/admin/import/jobs/x",
                 "/admin/import/reports/0", "/admin/import/reports/" + HUGE, "/admin/import/reports/-1",
                 "/admin/import/reports/abc"):
        add("admin", "GET", path)
    add("admin", "POST", "/admin/import/upload", data={"csrf": "@csrf"})
    add("admin", "POST", "/admin/import/upload", content_type="multipart/form-data",
        data={"csrf": "@csrf", "target": "nope", "file": (io.BytesIO(b"x"), "a.csv")})
    add("admin", "POST", "/admin/import/upload", data={"csrf": "wrong"})
    # Exports.
    for path in ("/export/nope.geojson", "/export/%00.geojson", "/export/villages.exe", "/export/villages.%00",
                 "/export/" + "x" * 3000 + ".csv", "/export/village/" + NUL + ".gpkg", "/export/village/1.gpkg",
                 "/export/village/999999999999.html", "/export/village/330521100200.pdf"):
        add("village", "GET", path)
    add("anon", "GET", "/export/villages.geojson")
    # Event photos.
    for path in ("/events/" + HUGE + "/photos/1", "/events/1/photos/" + HUGE, "/events/0/photos/0",
                 "/events/-1/photos/1", "/events/x/photos/1", "/events/1/photos/%00"):
        add("village", "GET", path)
    add("anon", "GET", "/events/1/photos/1")
    # OGC API – Features.
    items = "/ogc/collections/villages/items"
    for query in ("limit=-1", "limit=0", "limit=abc", "limit=" + HUGE, "limit=1e9", "offset=-5", "offset=" + HUGE,
                  "offset=x", "bbox=1,2,3", "bbox=a,b,c,d", "bbox=%00", "bbox=1,2,3,4,5", "bbox=nan,nan,nan,nan",
                  "bbox=inf,-inf,inf,inf", "bbox=" + ",".join([HUGE] * 4), "bbox=200,100,-200,-100",
                  "datetime=nope", "datetime=%00", "datetime=99999-01-01T00:00:00Z",
                  "datetime=2025-01-01T00:00:00Z/..", "datetime=../..", "datetime=2025-02-30",
                  "bbox-crs=nope", "bbox-crs=%00", "f=%00", "lang=%00"):
        add("village", "GET", f"{items}?{query}")
    for path in ("/ogc/collections/%00", "/ogc/collections/%00/items", "/ogc/collections/villages/items/" + HUGE,
                 "/ogc/collections/villages/items/-1", "/ogc/collections/villages/items/%00",
                 "/ogc/collections/" + "x" * 3000, "/ogc/collections/events/items?datetime=0000-00-00"):
        add("village", "GET", path)
    add("anon", "GET", "/ogc/collections?api_key=%00")
    add("anon", "GET", "/ogc/collections", headers={"Authorization": "Bearer " + "x" * 10_000})
    add("anon", "GET", "/ogc/collections/villages/items", headers={"Authorization": "Bearer nope"})
    add("village", "POST", "/ogc/collections")
    # Open311 GeoReport v2.
    base = "/open311/v2"
    k = keys["open311"]
    for query in ("service_request_id=abc", "service_request_id=" + HUGE, "service_request_id=-1",
                  "status=nope", "status=%00", "start_date=nope", "start_date=%00", "end_date=9999-99-99",
                  "start_date=2025-01-01T00:00:00&end_date=2020-01-01T00:00:00", "service_code=%00",
                  "service_code=" + "x" * 5000, "start_date=0001-01-01T00:00:00&end_date=9999-12-31T23:59:59",
                  "locale=%00"):
        add("anon", "GET", f"{base}/requests.json?{query}")
    for path in ("/requests/" + HUGE + ".json", "/requests/%00.json", "/requests/-1", "/requests/1.xml",
                 "/services/%00.json", "/services/" + "x" * 3000, "/nope", "/services.xml"):
        add("anon", "GET", base + path)
    posts = [{"api_key": k, "service_code": "0102", "lat": "nan", "long": "nan"},
             {"api_key": k, "service_code": "0102", "lat": "inf", "long": "-inf"},
             {"api_key": k, "service_code": "0102", "lat": HUGE, "long": HUGE},
             {"api_key": k, "service_code": "0102", "lat": "30.5", "long": "x"},
             {"api_key": k, "service_code": NUL, "lat": "30.53", "long": "119.95"},
             {"api_key": k, "service_code": "0102", "lat": "30.53", "long": "119.95", "description": TAG + NUL},
             {"api_key": k, "service_code": "0102", "lat": "30.53", "long": "119.95", "description": TAG,
              "first_name": NUL, "phone": NUL, "email": NUL},
             {"api_key": k, "service_code": "0102", "lat": "30.53", "long": "119.95", "description": TAG,
              "address_string": "x" + NUL, "attribute[urgency]": NUL},
             {"api_key": k, "service_code": "0102", "lat": "30.53", "long": "119.95", "description": TAG,
              "media_url": NUL},
             {"api_key": k, "service_code": "0102", "lat": "30.53", "long": "119.95",
              "description": TAG + "x" * 100_000},
             {"api_key": NUL, "service_code": "0102", "lat": "30.53", "long": "119.95"},
             {"api_key": k, "service_code": "0102" + NUL * 3, "lat": "30.53", "long": "119.95"}]
    for form in posts:
        add("anon", "POST", f"{base}/requests.json", data=form)
    for body in ([1, 2], "x", None, {"api_key": k, "service_code": ["0102"], "lat": [1], "long": {"a": 1}},
                 {"api_key": [k], "service_code": "0102", "lat": 30.53, "long": 119.95},
                 {"api_key": k, "service_code": {"a": 1}, "lat": 30.53, "long": 119.95},
                 {"api_key": k, "service_code": "0102", "lat": 30.53, "long": 119.95, "description": ["x"]},
                 {"api_key": k, "service_code": "0102", "lat": 30.53, "long": 119.95, "description": TAG,
                  "attribute": {"urgency": ["x"]}},
                 {"api_key": k, "service_code": "0102", "lat": 1e308, "long": -1e308}):
        add("anon", "POST", f"{base}/requests.json", json=body)
    add("anon", "POST", f"{base}/requests.json", data="{bad", content_type="application/json")
    add("anon", "POST", f"{base}/requests.json", data={"api_key": k, "service_code": "0102", "lat": "30.53",
                                                         "long": "119.95", "description": TAG,
                                                         "media": (io.BytesIO(b"\x00" * 64), "x.jpg")},
        content_type="multipart/form-data", headers={"Idempotency-Key": NUL})
    add("anon", "DELETE", f"{base}/requests.json")
    # Sensor gateways.
    g = {"X-API-Key": keys["gateway"]}
    add("anon", "POST", "/api/sensors/readings", json={"readings": []})
    add("anon", "POST", "/api/sensors/readings", json={"readings": []}, headers={"X-API-Key": NUL})
    add("anon", "POST", "/api/sensors/readings", json={"readings": []}, headers={"X-API-Key": "x" * 100_000})
    add("anon", "GET", "/api/sensors/readings", headers=g)
    for body in ([None], [1, "x", []], {"readings": {"a": 1}}, {"readings": [{"sensor": NUL, "seq": 1}]},
                 {"readings": [{"sensor": "S1", "seq": HUGE, "measured_at": "x", "values": {}}]},
                 {"readings": [{"sensor": "S1", "seq": 2**70, "measured_at": "2025-01-01T00:00:00Z",
                                "values": {"pm25": 1}}]},
                 {"readings": [{"sensor": "S1", "seq": -1, "measured_at": "9999-12-31T23:59:59Z",
                                "values": {NUL: 1}}]},
                 {"readings": [{"sensor": "S1", "seq": 1, "measured_at": "0001-01-01T00:00:00+14:00",
                                "values": {"a": 1e308}}]},
                 {"readings": [{"sensor": ["S1"], "seq": [1], "measured_at": {}, "values": []}]},
                 "x", 5, None):
        add("anon", "POST", "/api/sensors/readings", json=body, headers=g)
    add("anon", "POST", "/api/sensors/readings", data="{bad", content_type="application/json", headers=g)
    add("anon", "POST", "/api/sensors/readings", data="x" * (9 * 1024 * 1024), content_type="application/json",
        headers=g)
    return out


def _send(clients, who, method, path, kw):
    client = clients[who]
    kw = dict(kw)
    if isinstance(kw.get("data"), dict) and kw["data"].get("csrf") == "@csrf":
        kw["data"] = {**kw["data"], "csrf": _csrf(client)}
    return client.open(path, method=method, **kw)


def test_hostile_requests_get_a_bilingual_4xx_never_a_5xx(app, clients, keys, owner_engine):
    _OUTPUT_KEYS[:] = [d["output"] for d in clients["village"].get("/_dash-dependencies").get_json()]
    corpus = flask_corpus(keys) + dash_corpus()
    assert len(corpus) >= 200
    errors, silent, answered = [], [], {}
    for who, method, path, kw in corpus:
        resp = _send(clients, who, method, path, kw)
        answered[resp.status_code] = answered.get(resp.status_code, 0) + 1
        label = f"{who} {method} {path[:80]!r} {str(kw.get('json', kw.get('data', '')))[:120]!r}"
        if resp.status_code >= 500:
            errors.append(f"{resp.status_code} {label}")
        elif resp.status_code >= 400 and not bilingual(resp):
            silent.append(f"{resp.status_code} {label}: {resp.get_data(as_text=True)[:120]!r}")
    print(f"\nhostile corpus: {len(corpus)} requests, status counts {sorted(answered.items())}, "
          f"5xx: {len(errors)}, 4xx without a bilingual message: {len(silent)}")
    assert not errors, f"{len(errors)} of {len(corpus)} hostile requests answered 5xx:\n" + "\n".join(errors)
    assert not silent, f"{len(silent)} 4xx answers without a bilingual message:\n" + "\n".join(silent)
    # The app still answers normal requests as before (no poisoned connection or session).
    assert clients["village"].get("/_dash-layout").status_code == 200
    assert clients["admin"].get("/admin/users").status_code == 200


# -- the fuzz over every callback -----------------------------------------------------------------

FUZZ_EXAMPLES = int(os.environ.get("DVMAP_FUZZ_EXAMPLES", "20"))
WILDCARDS = (["ALL"], ["MATCH"], ["ALLSMALLER"])


def _hostile_values():
    from hypothesis import strategies as st

    scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(),
                       st.text(max_size=12), st.text(alphabet="\x00a1-.:é中{}[]", max_size=6), st.just(NUL),
                       st.sampled_from(["", "0", "-1", HUGE, "30", "zh", "en", "open", "1e309", "2025-13-45"]))
    return st.one_of(scalar, st.lists(scalar, max_size=3), st.dictionaries(st.text(max_size=5), scalar, max_size=3))


def _parse_id(raw: str):
    return json.loads(raw) if raw.startswith("{") else raw


def _concrete(pattern: dict, draw, ids):
    return {k: (draw(ids) if v in WILDCARDS else v) for k, v in pattern.items()}


def _slot(spec: dict, draw, values, ids, with_value=True):
    """One input/state/output slot for ``spec``: an item, or a list of items for a wildcard id."""
    from hypothesis import strategies as st

    cid = _parse_id(spec["id"])
    prop = spec["property"].split("@")[0]

    def one(c):
        return {"id": c, "property": prop, **({"value": draw(values)} if with_value else {})}

    if isinstance(cid, dict) and any(v in WILDCARDS for v in cid.values()):
        if ["MATCH"] in cid.values() and not with_value:
            return one(_concrete(cid, draw, ids))
        n = draw(st.integers(0, 2))
        return [one(_concrete(cid, draw, ids)) for _ in range(n)]
    return one(cid)


def _outputs(output: str):
    parts = output[2:-2].split("...") if output.startswith("..") else [output]
    specs = []
    for part in parts:
        cid, prop = part.rsplit(".", 1)
        specs.append({"id": cid, "property": prop})
    return specs


def test_fuzzing_every_callback_never_gets_a_5xx(app, clients, owner_engine):
    """Wrong-typed values for every server callback's inputs and state: < 500, and 4xx say why."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    client = clients["admin"]
    deps = [d for d in client.get("/_dash-dependencies").get_json() if not d.get("clientside_function")]
    assert len(deps) >= 40, "the callback map looks empty"
    values = _hostile_values()
    ids = st.one_of(st.sampled_from(["events", "villages", "grids", "sensors", "population", 1, 0]),
                    st.integers(-(2**70), 2**70), st.text(max_size=6))

    def counts():
        with owner_engine.connect() as conn:
            return conn.execute(text("SELECT (SELECT count(*) FROM event), (SELECT count(*) FROM grid),"
                                     " (SELECT count(*) FROM app_user)")).one()

    before = counts()
    ran = {"examples": 0, "4xx": 0}
    started = time.monotonic()
    def fuzz(dep, n):
        @settings(max_examples=n, deadline=None, database=None, derandomize=not os.environ.get("DVMAP_FUZZ_RANDOM"),
                  suppress_health_check=list(HealthCheck))
        @given(data=st.data())
        def call(data):
            draw = data.draw
            inputs = [_slot(s, draw, values, ids) for s in dep["inputs"]]
            state = [_slot(s, draw, values, ids) for s in dep.get("state", [])]
            outs = [_slot(s, draw, values, ids, with_value=False) for s in _outputs(dep["output"])]
            first = inputs[0] if inputs else None
            first = first[0] if isinstance(first, list) and first else first
            changed = []
            if isinstance(first, dict):
                cid = json.dumps(first["id"], separators=(",", ":"), sort_keys=True) \
                    if isinstance(first["id"], dict) else first["id"]
                changed = [f"{cid}.{first['property']}"]
            body = {"output": dep["output"], "outputs": outs if len(outs) > 1 else outs[0], "inputs": inputs,
                    "state": state, "changedPropIds": changed}
            resp = client.post("/_dash-update-component", data=json.dumps(body), content_type="application/json")
            ran["examples"] += 1
            assert resp.status_code < 500, (dep["output"][:100], body, resp.get_data(as_text=True)[:300])
            if resp.status_code >= 400:
                ran["4xx"] += 1
                assert bilingual(resp), (dep["output"][:100], resp.status_code, resp.get_data(as_text=True)[:200])

        call()

    for dep in deps:
        # A background job forks a worker for each call: a few calls are enough for it.
        fuzz(dep, 3 if dep["output"].startswith("..an-result-ref.data") else FUZZ_EXAMPLES)
    print(f"\ncallback fuzz: {len(deps)} callbacks, {ran['examples']} examples, {ran['4xx']} answered 4xx, "
          f"{time.monotonic() - started:.0f} s")
    assert ran["examples"] >= len(deps) * 3
    assert counts() == before, "hostile callback values changed events, grids or users"
