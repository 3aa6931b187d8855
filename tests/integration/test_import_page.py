"""The administrators' upload page and the export downloads, through the Flask test client."""
from __future__ import annotations

import io
import json
import re
import time

import pytest
import shapely
from sqlalchemy import text

from etl.importers import samples
from geodata.db import SYSTEM, apply_scope


@pytest.fixture(scope="module")
def app(pg, demo_db):
    from map_app.app import create_app
    from map_app.import_page import init_import_page

    app = create_app(pg.app_url)
    init_import_page(app)
    return app.server


def _client(app, username):
    from etl.demo_accounts import demo_password

    c = app.test_client()
    page = c.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    r = c.post("/login", data={"csrf": token, "username": username, "password": demo_password(username), "next": "/"})
    assert r.status_code == 302
    return c


def _csrf(c, path="/admin/import/"):
    return re.search(r'name="csrf" value="([^"]+)"', c.get(path).get_data(as_text=True)).group(1)


def test_only_administrators_may_import(app):
    assert _client(app, "leader").get("/admin/import/").status_code == 403
    assert _client(app, "village").post("/admin/import/upload").status_code == 403
    page = _client(app, "admin").get("/admin/import/")
    assert page.status_code == 200 and "数据导入" in page.get_data(as_text=True)


def test_upload_runs_the_import_and_shows_the_report(app, owner_engine, tmp_path):
    with owner_engine.connect() as conn:
        apply_scope(conn, SYSTEM)
        pts = conn.execute(text("SELECT ST_X(label_point), ST_Y(label_point) FROM village ORDER BY code LIMIT 4")).all()
    feats = [(shapely.Point(x, y), {"名称": f"上传水井{i}"}) for i, (x, y) in enumerate(pts)]
    feats.append((None, {"名称": "没有位置"}))
    gj = samples.geojson(tmp_path / "wells.geojson", feats)
    c = _client(app, "admin")
    token = _csrf(c)
    assert c.post("/admin/import/upload", data={"target": "custom"}).status_code == 400  # no CSRF token
    r = c.post("/admin/import/upload", content_type="multipart/form-data", data={
        "csrf": token, "target": "custom", "layer_name": "page_wells", "title_zh": "上传水井", "title_en": "Wells",
        "file": (io.BytesIO(gj.read_bytes()), "水井.geojson")})
    assert r.status_code == 202, r.get_data(as_text=True)
    job = r.get_json()["job"]
    for _ in range(200):
        state = c.get(f"/admin/import/jobs/{job}").get_json()
        if state.get("finished"):
            break
        time.sleep(0.1)
    try:
        assert state["status"] == "imported", state
        assert any("拒绝 1" in line for line in state["lines"])
        page = c.get(f"/admin/import/reports/{state['report_id']}").get_data(as_text=True)
        assert "水井.geojson" in page and "几何为空" in page and "Empty geometry" in page
        listing = c.get("/admin/import/").get_data(as_text=True)
        assert "水井.geojson" in listing
        # the same file again is recognised
        r = c.post("/admin/import/upload", content_type="multipart/form-data", data={
            "csrf": token, "target": "custom", "layer_name": "page_wells",
            "file": (io.BytesIO(gj.read_bytes()), "again.geojson")})
        job2 = r.get_json()["job"]
        for _ in range(200):
            again = c.get(f"/admin/import/jobs/{job2}").get_json()
            if again.get("finished"):
                break
            time.sleep(0.1)
        assert again["status"] == "already_imported"
        assert c.get("/admin/import/jobs/not-a-job").status_code == 404
    finally:
        with owner_engine.begin() as conn:
            apply_scope(conn, SYSTEM)
            conn.execute(text("DELETE FROM custom_layer WHERE name = 'page_wells'"))


def test_exports_are_scoped_to_the_user(app, owner_engine):
    c = _client(app, "village")
    r = c.get("/export/villages.geojson")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/geo+json")
    feats = json.loads(r.get_data())["features"]
    assert len(feats) == 1
    mine = feats[0]["properties"]["code"]
    r = c.get(f"/export/village/{mine}.html")
    assert r.status_code == 200 and "attachment" in r.headers["Content-Disposition"]
    assert feats[0]["properties"]["name"] in r.get_data(as_text=True)
    with owner_engine.connect() as conn:
        apply_scope(conn, SYSTEM)
        other = conn.execute(text("SELECT code FROM village WHERE code <> :c ORDER BY code LIMIT 1"), {"c": mine}).scalar()
    assert c.get(f"/export/village/{other}.gpkg").status_code == 404
    assert c.get("/export/nope.gpkg").status_code == 404
    gpkg = c.get(f"/export/village/{mine}.gpkg")
    assert gpkg.status_code == 200 and gpkg.get_data()[:16] == b"SQLite format 3\x00"
    assert app.test_client().get("/export/villages.geojson").status_code == 401
