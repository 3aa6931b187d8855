"""The import page's recent list shows the import that just finished (issue 18: it ran one behind)."""
from __future__ import annotations

import shapely
from sqlalchemy import text

from etl.importers import samples
from tests.browser.conftest import login, shot


def test_the_finished_import_heads_the_recent_list(live_app, page, app_engine, owner_engine, tmp_path):
    from geodata.db import SYSTEM, apply_scope

    with app_engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        pts = conn.execute(text("SELECT ST_X(label_point), ST_Y(label_point) FROM village ORDER BY code LIMIT 3")).all()
    path = samples.geojson(tmp_path / "recent.geojson",
                           [(shapely.Point(x, y), {"名称": f"最近导入{i}"}) for i, (x, y) in enumerate(pts)])
    page.set_viewport_size({"width": 1366, "height": 768})
    login(page, live_app["url"], "admin")
    try:
        for n, name in enumerate(("第一次.geojson", "第二次.geojson")):
            page.goto(live_app["url"] + "/admin/import/")
            page.check("input[name=target][value=custom]")
            page.fill("input[name=layer_name]", f"recent_wells_{n}")
            page.set_input_files("input[name=file]", files=[{
                "name": name, "mimeType": "application/geo+json",
                "buffer": path.read_bytes().replace("最近导入".encode(), f"最近导入{n}-".encode())}])
            page.click("form#upload button[type=submit]")
            page.wait_for_selector("#result a", timeout=30_000)
            # Without a reload, the first row is the import that just finished.
            page.wait_for_function(f"document.querySelector('#recent tr td:nth-child(3)')?.innerText === '{name}'",
                                   timeout=10_000)
        shot(page, "18-import-recent")
    finally:
        with owner_engine.begin() as conn:
            apply_scope(conn, SYSTEM)
            conn.execute(text("DELETE FROM custom_layer WHERE name LIKE 'recent_wells_%'"))
