"""OGC API – Features from GIS software: GDAL's OAPIF driver (pyogrio) with an API key,
against the app served as ``make demo`` serves it (``dvmap serve``: gunicorn, login guard and all).

The other OGC tests read with a browser session; here the client has no session, only
an ``api_client`` key, sent as ``Authorization: Bearer`` (GDAL_HTTP_HEADER_FILE) or ``?api_key=``.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import text

from geodata.db import SYSTEM, apply_scope, make_sessionmaker, scoped
from tests.conftest import scalar

ROOT = Path(__file__).resolve().parents[2]
GDAL_BASE = {"GDAL_HTTP_TIMEOUT": "60", "GDAL_HTTP_MAX_RETRY": "0", "GDAL_HTTP_USERAGENT": "dvmap-oapif-test/1.0"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(pg, demo_db, tmp_path_factory):
    """``dvmap serve`` (gunicorn, one worker) on a free port against the test database."""
    port = _free_port()
    log = tmp_path_factory.mktemp("served") / "serve.log"
    env = {**os.environ, "DATABASE_URL": pg.app_url, "DVMAP_OWNER_URL": pg.owner_url}
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "dvmap"), "serve", "--host", "127.0.0.1",
                                 "--port", str(port), "--workers", "1"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if requests.get(base + "/healthz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:  # bound by gunicorn, worker still booting
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("dvmap serve did not come up:\n" + log.read_text(errors="replace")[-3000:])
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture(scope="module")
def keys(owner_engine, demo_db):
    """A county key, a key for one village (the one with most resources) and a disabled key."""
    from geodata.events import create_api_client, deactivate_api_client

    with owner_engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        vid, vcode = conn.execute(text(
            "SELECT v.id, v.code FROM village v JOIN resource r ON r.village_id = v.id"
            " GROUP BY v.id ORDER BY count(*) DESC, v.id LIMIT 1")).one()
    with scoped(make_sessionmaker(owner_engine), SYSTEM) as s, s.begin():
        county_id, county = create_api_client(s, "oapif-test-county")
        village_id, village = create_api_client(s, "oapif-test-village", [vid])
        off_id, off = create_api_client(s, "oapif-test-disabled")
        assert deactivate_api_client(s, off_id)
    yield {"county": county, "village": village, "disabled": off, "village_id": vid, "village_code": vcode}
    with owner_engine.begin() as conn:
        conn.execute(text("DELETE FROM api_client WHERE id = ANY(:ids)"), {"ids": [county_id, village_id, off_id]})


class Oapif:
    """GDAL's OAPIF driver through pyogrio, with the key in a header or in the URL.

    The header goes in a GDAL_HTTP_HEADER_FILE: GDAL (3.12) ignores GDAL_HTTP_HEADERS
    for OAPIF requests, whose own Accept header takes the place of that option.
    """

    def __init__(self, base: str, key: str, how: str = "header"):
        self.ds = f"OAPIF:{base}/ogc" + (f"?api_key={key}" if how == "query" else "")
        self.header = f"Authorization: Bearer {key}\n" if how == "header" else None

    def _with_options(self, fn, *args, **kw):
        import pyogrio

        options = dict(GDAL_BASE)
        if self.header:
            fd, options["GDAL_HTTP_HEADER_FILE"] = tempfile.mkstemp(prefix="dvmap-oapif-", suffix=".txt")
            with os.fdopen(fd, "w") as f:
                f.write(self.header)
        pyogrio.set_gdal_config_options(options)
        try:
            return fn(*args, **kw)
        finally:
            pyogrio.set_gdal_config_options({k: None for k in options})
            if self.header:
                os.unlink(options["GDAL_HTTP_HEADER_FILE"])

    def layers(self) -> list[str]:
        import pyogrio

        return [str(row[0]) for row in self._with_options(pyogrio.list_layers, self.ds)]

    def read(self, layer: str):
        import pyogrio

        return self._with_options(pyogrio.read_dataframe, self.ds, layer=layer)


def _matched(base: str, key: str, layer: str) -> int:
    r = requests.get(f"{base}/ogc/collections/{layer}/items", params={"limit": 1},
                     headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert r.status_code == 200, r.text[:300]
    return r.json()["numberMatched"]


def test_the_gdal_in_pyogrio_has_the_oapif_driver():
    import pyogrio

    assert "OAPIF" in pyogrio.list_drivers()


@pytest.mark.parametrize("how", ["header", "query"])
def test_gdal_lists_and_reads_every_layer_with_a_county_key(served, keys, owner_engine, how):
    gdal = Oapif(served, keys["county"], how)
    names = gdal.layers()
    assert {"villages", "towns", "grids", "resources", "sensors", "population", "events"} <= set(names)
    read = {}
    for name in names:
        df = gdal.read(name)
        read[name] = len(df)
        assert len(df) == _matched(served, keys["county"], name), name  # every page followed
        assert df.geometry.notna().all(), name
    assert read["villages"] == scalar(owner_engine, "SELECT count(*) FROM village") == 137
    assert read["resources"] == scalar(owner_engine, "SELECT count(*) FROM resource") > 100
    print(f"OAPIF ({how} key): {len(names)} layers read, {sum(read.values())} features: {read}")


def test_a_village_key_reads_only_its_village(served, keys, owner_engine):
    gdal = Oapif(served, keys["village"], "header")
    code, vid = keys["village_code"], keys["village_id"]
    villages = gdal.read("villages")
    assert villages["code"].tolist() == [code]
    resources = gdal.read("resources")
    assert len(resources) == scalar(owner_engine, "SELECT count(*) FROM resource WHERE village_id = :v", v=vid) > 0
    for name in ("grids", "resources", "sensors", "population"):
        df = gdal.read(name)
        assert len(df) > 0 and set(df["village_code"]) == {code}, name
    same_by_query = Oapif(served, keys["village"], "query").read("villages")
    assert same_by_query["code"].tolist() == [code]


def test_a_disabled_or_wrong_key_is_refused(served, keys):
    from pyogrio.errors import DataSourceError

    for key in (keys["disabled"], "dvk_not-a-key"):
        for how in ("header", "query"):
            with pytest.raises(DataSourceError):
                Oapif(served, key, how).layers()
        r = requests.get(f"{served}/ogc/collections", headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert r.status_code == 401 and "API 令牌无效" in r.json()["description"] \
            and "Invalid API token" in r.json()["description"]
        assert requests.get(f"{served}/ogc/collections/villages/items", params={"api_key": key},
                            timeout=30).status_code == 401


def test_no_key_and_no_session_get_401_and_a_session_still_works(served):
    from etl.demo_accounts import demo_password
    import re

    for path in ("/ogc", "/ogc/", "/ogc/collections", "/ogc/collections/villages/items"):
        r = requests.get(served + path, timeout=30)
        assert r.status_code == 401, path
        body = r.json()
        assert "需要登录" in body["description"] and "Log in" in body["description"], body
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    # the login guard still guards everything else: a path under /ogc that is no OGC resource
    assert requests.get(served + "/ogc-not-the-api/x", timeout=30, allow_redirects=False).status_code in (302, 401)
    s = requests.Session()
    token = re.search(r'name="csrf" value="([^"]+)"', s.get(served + "/login", timeout=30).text).group(1)
    assert s.post(served + "/login", data={"csrf": token, "username": "village", "password": demo_password("village"),
                                           "next": "/"}, allow_redirects=False, timeout=30).status_code == 302
    r = s.get(served + "/ogc/collections/villages/items", timeout=30)
    assert r.status_code == 200 and r.json()["numberMatched"] == 1
