"""OGC API – Features: read through GDAL's OAPIF driver (pyogrio) against the app on 127.0.0.1."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading

import pytest
import requests
import shapely
from flask import Flask
from sqlalchemy import text

from etl.importers import ImportOptions, import_file, samples
from geodata.db import SYSTEM, Database, Scope, apply_scope
from tests.conftest import scalar

UA = "dvmap-ogc-test/1.0"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(pg, demo_db, owner_engine, tmp_path_factory):
    """The full app (login and all) plus the OGC blueprint, served by werkzeug; a custom layer imported."""
    from werkzeug.serving import make_server

    from map_app.app import create_app
    from map_app.ogc import init_ogc

    tmp = tmp_path_factory.mktemp("ogc")
    with owner_engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        pts = conn.execute(text("SELECT ST_X(label_point), ST_Y(label_point) FROM village ORDER BY code LIMIT 30")).all()
    gj = samples.geojson(tmp / "wells.geojson", [(shapely.Point(x, y), {"名称": f"水井{i}", "深度": i})
                                                 for i, (x, y) in enumerate(pts)])
    report = import_file(gj, "custom", owner_engine, options=ImportOptions(layer_name="ogc_wells", title_zh="水井",
                                                                          title_en="Wells", work_dir=tmp))
    assert report.status in ("imported", "already_imported"), report.lines()

    app = create_app(pg.app_url)
    init_ogc(app)
    port = _free_port()
    server = make_server("127.0.0.1", port, app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    with owner_engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        conn.execute(text("DELETE FROM custom_layer WHERE name = 'ogc_wells'"))


def _login(base: str, username: str) -> requests.Session:
    from etl.demo_accounts import demo_password

    s = requests.Session()
    s.headers["User-Agent"] = UA
    page = s.get(base + "/login").text
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    r = s.post(base + "/login", data={"csrf": token, "username": username, "password": demo_password(username),
                                      "next": "/"}, allow_redirects=False)
    assert r.status_code == 302, r.text[:300]
    return s


_OGR_SCRIPT = r"""
import json, sys
import pyogrio
args = json.loads(sys.argv[1])
try:
    if args["action"] == "list":
        out = {"layers": [str(r[0]) for r in pyogrio.list_layers(args["ds"])]}
    else:
        kw = {k: v for k, v in args.get("open", {}).items()}
        bbox = tuple(args["bbox"]) if args.get("bbox") else None
        df = pyogrio.read_dataframe(args["ds"], layer=args["layer"], bbox=bbox, **kw)
        out = {"n": len(df), "columns": [c for c in df.columns if c != "geometry"],
               "values": {c: [None if v != v else v for v in df[c].tolist()] for c in args.get("want", [])},
               "wkt": df.geometry.to_wkt().tolist() if args.get("wkt") else None}
except Exception as exc:  # report GDAL errors to the test
    out = {"error": f"{type(exc).__name__}: {exc}"}
print(json.dumps(out, ensure_ascii=False, default=str))
"""


class Gdal:
    """GDAL's OAPIF driver in a child process.

    pyogrio keeps the GIL while GDAL fetches pages, so reading in this process would
    starve the werkzeug thread serving the app; a child process reads like ogrinfo would.
    """

    def __init__(self, base: str, cookie: str | None):
        self.ds = "OAPIF:" + base + "/ogc"
        self.env = {**os.environ, "GDAL_HTTP_USERAGENT": UA, "GDAL_HTTP_TIMEOUT": "60", "GDAL_HTTP_MAX_RETRY": "0"}
        if cookie:
            self.env["GDAL_HTTP_COOKIE"] = cookie

    def _run(self, **args) -> dict:
        proc = subprocess.run([sys.executable, "-c", _OGR_SCRIPT, json.dumps({"ds": self.ds, **args})],
                              env=self.env, capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def layers(self) -> list[str]:
        out = self._run(action="list")
        if "error" in out:
            raise RuntimeError(out["error"])
        return out["layers"]

    def read(self, layer: str, **kw) -> dict:
        out = self._run(action="read", layer=layer, **kw)
        if "error" in out:
            raise RuntimeError(out["error"])
        return out


@pytest.fixture
def gdal_as(served):
    """GDAL pointed at the app with a logged-in user's session cookie (or none)."""
    def _use(username: str | None) -> Gdal:
        cookie = None
        if username:
            s = _login(served, username)
            cookie = "; ".join(f"{c.name}={c.value}" for c in s.cookies)
        return Gdal(served, cookie)
    return _use


def test_gdal_lists_and_reads_every_layer(gdal_as, owner_engine):
    gdal = gdal_as("leader")
    names = set(gdal.layers())
    assert {"villages", "towns", "grids", "resources", "sensors", "population", "ogc_wells"} <= names
    villages = gdal.read("villages", want=["name", "code"])
    n = scalar(owner_engine, "SELECT count(*) FROM village")
    assert villages["n"] == n
    with owner_engine.connect() as conn:
        apply_scope(conn, SYSTEM)
        db_names = set(conn.execute(text("SELECT name FROM village")).scalars())
    assert set(villages["values"]["name"]) == db_names  # Chinese names intact
    wells = gdal.read("ogc_wells", want=["名称"])
    assert wells["n"] == 30 and set(wells["values"]["名称"]) == {f"水井{i}" for i in range(30)}


def test_gdal_follows_next_links(gdal_as, owner_engine):
    gdal = gdal_as("leader")
    n = scalar(owner_engine, "SELECT count(*) FROM resource")
    assert n > 25
    out = gdal.read("resources", open={"PAGE_SIZE": "25"}, want=["name"], wkt=True)
    assert out["n"] == n
    assert len(set(zip(out["values"]["name"], out["wkt"]))) == n  # no page read twice


def test_gdal_bbox_filter(gdal_as, owner_engine):
    gdal = gdal_as("leader")
    # the bounds of the village with the most sensors: a box that certainly holds some
    box = tuple(scalar(owner_engine, "SELECT ARRAY[ST_XMin(v.geom), ST_YMin(v.geom), ST_XMax(v.geom), ST_YMax(v.geom)]"
                                     " FROM village v JOIN sensor s ON s.village_id = v.id"
                                     " GROUP BY v.id ORDER BY count(*) DESC, v.id LIMIT 1"))
    out = gdal.read("sensors", bbox=list(box))
    expected = scalar(owner_engine, "SELECT count(*) FROM sensor WHERE ST_Intersects(geom,"
                                    " ST_MakeEnvelope(:w, :s, :e, :n, 4490))", w=box[0], s=box[1], e=box[2], n=box[3])
    assert out["n"] == expected > 0


def test_gdal_sees_only_the_users_village(gdal_as):
    gdal = gdal_as("village")
    assert gdal.read("villages")["n"] == 1
    assert gdal.read("towns")["n"] >= 1  # reference outlines stay visible


def test_gdal_without_login_is_refused(gdal_as):
    with pytest.raises(RuntimeError):
        gdal_as(None).layers()


def test_core_resources_and_paging_links(served):
    s = _login(served, "leader")
    landing = s.get(served + "/ogc/").json()
    rels = {link["rel"] for link in landing["links"]}
    assert {"self", "service-desc", "conformance", "data"} <= rels
    conf = s.get(served + "/ogc/conformance").json()["conformsTo"]
    assert any(c.endswith("/conf/core") for c in conf) and any(c.endswith("/conf/geojson") for c in conf)
    api = s.get(served + "/ogc/api")
    assert api.headers["Content-Type"].startswith("application/vnd.oai.openapi+json") and "paths" in api.json()
    coll = s.get(served + "/ogc/collections/villages").json()
    assert coll["itemType"] == "feature" and len(coll["extent"]["spatial"]["bbox"][0]) == 4
    page = s.get(served + "/ogc/collections/villages/items", params={"limit": 10, "offset": 5})
    assert page.headers["Content-Type"].startswith("application/geo+json")
    body = page.json()
    assert body["numberReturned"] == 10 and body["numberMatched"] > 15
    nxt = [link for link in body["links"] if link["rel"] == "next"][0]["href"]
    assert "offset=15" in nxt and "limit=10" in nxt
    assert [link for link in body["links"] if link["rel"] == "prev"]
    second = s.get(nxt).json()
    assert {f["id"] for f in second["features"]}.isdisjoint({f["id"] for f in body["features"]})
    fid = body["features"][0]["id"]
    one = s.get(f"{served}/ogc/collections/villages/items/{fid}").json()
    assert one["id"] == fid and one["properties"]["name"] == body["features"][0]["properties"]["name"]
    assert s.get(served + "/ogc/collections/villages/items/99999999").status_code == 404
    assert s.get(served + "/ogc/collections/nope/items").status_code == 404
    assert s.get(served + "/ogc/collections/villages/items", params={"bbox": "1,2,3"}).status_code == 400
    assert s.get(served + "/ogc/collections/villages/items", params={"limit": "x"}).status_code == 400
    assert s.get(served + "/ogc/collections/grids/items", params={"datetime": "yesterday"}).status_code == 400


def test_datetime_selects_grid_versions(served, owner_engine):
    s = _login(served, "leader")
    current = s.get(served + "/ogc/collections/grids/items", params={"limit": 1}).json()["numberMatched"]
    assert current == scalar(owner_engine, "SELECT count(*) FROM grid WHERE valid_to IS NULL")
    past = s.get(served + "/ogc/collections/grids/items",
                 params={"limit": 1, "datetime": "1990-01-01T00:00:00Z"}).json()["numberMatched"]
    assert past == 0
    always = s.get(served + "/ogc/collections/grids/items",
                   params={"limit": 1, "datetime": "../.."}).json()["numberMatched"]
    assert always == scalar(owner_engine, "SELECT count(*) FROM grid")
    coll = s.get(served + "/ogc/collections/grids").json()
    assert "temporal" in coll["extent"]


def test_village_user_cannot_fetch_other_villages_features(served, owner_engine):
    s = _login(served, "village")
    mine = s.get(served + "/ogc/collections/villages/items").json()["features"]
    assert len(mine) == 1
    other = scalar(owner_engine, "SELECT min(id) FROM village WHERE id <> :id", id=mine[0]["id"])
    assert s.get(f"{served}/ogc/collections/villages/items/{other}").status_code == 404


def test_api_token_hook(pg, demo_db):
    """On a server without the login guard, the token hook alone decides the scope."""
    from map_app.ogc import init_ogc

    server = Flask("ogc-token-test")
    database = Database(pg.app_url, scope_provider=lambda: Scope(frozenset(), "anonymous"))
    server.extensions["dvmap"] = database
    village_id = scalar(database.engine, "SELECT min(id) FROM village")
    tokens = {"county-token": Scope.county("api"), "village-token": Scope.villages([village_id], "api")}
    init_ogc(server, token_scope=tokens.get)
    c = server.test_client()
    assert c.get("/ogc/collections").status_code == 401
    assert c.get("/ogc/collections", headers={"Authorization": "Bearer wrong"}).status_code == 401
    r = c.get("/ogc/collections/villages/items?limit=1", headers={"Authorization": "Bearer county-token"})
    assert r.status_code == 200 and r.get_json()["numberMatched"] > 1
    r = c.get("/ogc/collections/villages/items?limit=5&api_key=village-token")
    body = r.get_json()
    assert body["numberMatched"] == 1 and body["features"][0]["id"] == village_id
    assert all("api_key=village-token" in link["href"] for link in body["links"])
    database.engine.dispose()


def test_api_client_keys_as_tokens(pg, demo_db, owner_engine):
    from geodata.events import create_api_client
    from geodata.db import make_sessionmaker, scoped
    from map_app.ogc import api_client_token_scope, init_ogc

    village_id = scalar(owner_engine, "SELECT min(id) FROM village")
    with scoped(make_sessionmaker(owner_engine), SYSTEM) as s, s.begin():
        cid, key = create_api_client(s, "ogc-test-client", [village_id])
    try:
        server = Flask("ogc-apikey-test")
        database = Database(pg.app_url, scope_provider=lambda: Scope(frozenset(), "anonymous"))
        server.extensions["dvmap"] = database
        init_ogc(server, token_scope=api_client_token_scope(database))
        c = server.test_client()
        body = c.get("/ogc/collections/villages/items", headers={"Authorization": f"Bearer {key}"}).get_json()
        assert [f["id"] for f in body["features"]] == [village_id]
        assert c.get("/ogc/collections", headers={"Authorization": "Bearer dvk_nope"}).status_code == 401
        database.engine.dispose()
    finally:
        with owner_engine.begin() as conn:
            conn.execute(text("DELETE FROM api_client WHERE id = :id"), {"id": cid})
