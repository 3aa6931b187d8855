"""The managers' patrol views in Chromium: the /patrol table with its CSV export, and the
coverage layer on the map (grid manager); screenshots under test-artifacts/."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.browser.conftest import login, shot


@pytest.fixture(scope="module")
def patrols(owner_engine, demo_db):
    from etl.demo_patrol import load_demo_patrols
    from geodata.db import SYSTEM, make_sessionmaker, scoped

    factory = make_sessionmaker(owner_engine)
    with scoped(factory, SYSTEM) as s, s.begin():
        load_demo_patrols(s, seed=7)
        # The most walked grid of this week (the view the map test opens).
        row = s.execute(text("""SELECT g.code, ST_X(ST_Centroid(g.geom)) AS lon, ST_Y(ST_Centroid(g.geom)) AS lat
                                  FROM patrol p JOIN grid g ON g.uid = p.grid_uid AND g.valid_to IS NULL
                                 GROUP BY g.code, g.geom ORDER BY count(*) DESC LIMIT 1""")).one()
    yield dict(row._mapping)
    with scoped(factory, SYSTEM) as s, s.begin():
        s.execute(text("DELETE FROM patrol"))
        s.execute(text("DELETE FROM checkpoint"))
        s.execute(text("DELETE FROM app_user WHERE username LIKE 'demo-patrol-%'"))


@pytest.fixture
def laptop(browser):
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN", accept_downloads=True)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.errors = errors
    yield pg
    context.close()


def test_patrol_table_for_a_grid_manager_with_csv(live_app, laptop, patrols):
    page = laptop
    login(page, live_app["url"], "gridmgr")
    page.goto(live_app["url"] + "/patrol")
    page.wait_for_selector(".ag-center-cols-container .ag-row", timeout=30_000)
    assert "个网格" in page.locator("#pt-summary").inner_text()
    shot(page, "patrol-table-1366")
    with page.expect_download(timeout=15_000) as info:
        page.get_by_role("button", name="导出 CSV").click()
    path = info.value.path()
    csv = open(path, encoding="utf-8-sig").read()
    lines = csv.splitlines()
    assert "覆盖率" in lines[0] and len(lines) > 2
    walked = [line for line in lines if patrols["code"] in line]
    assert walked and walked[0].split(",")[4].strip('"') not in ("0", "")  # its patrols column
    assert not page.errors


def test_coverage_layer_on_the_map(live_app, laptop, patrols):
    page = laptop
    login(page, live_app["url"], "gridmgr")
    page.goto(live_app["url"] + "/")
    page.get_by_label("巡查覆盖(本周)").check()
    for other in ("公共资源", "物联感知设备", "事件"):  # a clear view of the grids (and a click that hits one)
        page.get_by_label(other, exact=True).uncheck()
    page.wait_for_selector("[data-layer=patrol] .legend-item", timeout=15_000)
    page.evaluate("([lat, lon]) => window.dvmap.maps[0].setView([lat, lon], 14, {animate: false})",
                  [patrols["lat"], patrols["lon"]])
    page.wait_for_selector(".leaflet-pane-patrol-pane path", timeout=30_000)
    fills = page.evaluate("() => Array.from(document.querySelectorAll('.leaflet-pane-patrol-pane path'))"
                          ".map(p => p.getAttribute('fill'))")
    assert len(set(fills)) >= 2  # walked and unwalked grids differ in colour
    # A click on the walked grid opens its week's figures in the panel.
    box = page.locator(".leaflet-container").first.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector("[data-testid=patrol-facts]", timeout=15_000)
    assert patrols["code"] in page.locator("#details").inner_text()
    shot(page, "patrol-coverage-layer-1366")
    assert not page.errors


def test_big_screen_shows_a_dot_per_worker_on_patrol_to_leaders(live_app, laptop, patrols):
    """The worker patrols now (API, as the phone does); the leader's big screen draws one dot for it."""
    import uuid
    from datetime import datetime, timedelta, timezone

    page = laptop
    login(page, live_app["url"], "worker")
    key, now = str(uuid.uuid4()), datetime.now(timezone.utc)

    def iso(dt):
        return dt.isoformat().replace("+00:00", "Z")

    api = page.request
    assert api.post(live_app["url"] + "/api/field/patrols",
                    data={"patrol_key": key, "started_at": iso(now - timedelta(minutes=2))}).status == 201
    resp = api.post(live_app["url"] + f"/api/field/patrols/{key}/points", data={"points": [
        {"t": iso(now - timedelta(seconds=60)), "lon": patrols["lon"], "lat": patrols["lat"], "accuracy_m": 6}]})
    assert resp.json() == {"stored": 1, "total": 1}
    login(page, live_app["url"], "leader")
    page.goto(live_app["url"] + "/bigscreen")
    page.wait_for_selector(".bs-patrol", timeout=30_000)
    assert page.locator(".bs-patrol").count() == 1
    assert page.locator(".bs-lg-patrol").count() == 1
    shot(page, "patrol-bigscreen-leader-1366")
    assert not page.errors
