"""The planners' analysis page in Chromium, tried as a new user would.

Hot spots for one category over 90 days (hot cells and a legend on the map, weights
stated), the events of a hot cell, elderly-care coverage with its deserts, a what-if
facility, exports (GeoJSON and the folium HTML opened in the browser). Demo events are
committed for this module and removed again afterwards.
"""
from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from tests.browser.conftest import login, shot

HOT = ".leaflet-an-result-pane path"


@pytest.fixture(scope="module")
def demo_events(live_app, app_engine, owner_engine):
    from etl.demo_events import load_demo_events, remove_demo_events
    from geodata.db import SYSTEM, apply_scope, make_sessionmaker, scoped

    with scoped(make_sessionmaker(app_engine), SYSTEM) as s:
        load_demo_events(s, n=900, seed=7)
        s.commit()
    yield
    with owner_engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        remove_demo_events(conn)


def _biggest_desert(app_engine):
    import shapely.geometry as sg

    from geodata.analysis.coverage import coverage
    from geodata.db import SYSTEM, ScopedSession, apply_scope

    with app_engine.connect() as conn:
        apply_scope(conn, SYSTEM)
        s = ScopedSession(bind=conn, info={"scope": SYSTEM})
        res = coverage(s, "elderly_care", 2000, measure="age_60_plus")
        s.close()
    desert = max(res.points, key=lambda f: f["properties"]["uncovered"])
    p = sg.shape(desert["geometry"]).representative_point()
    return p.y, p.x


def _run(page):
    page.locator(".mantine-Tabs-panel:visible button:has-text('运行分析')").click()


def test_hotspots_events_coverage_what_if_and_exports(live_app, demo_events, page, app_engine, tmp_path):
    base = live_app["url"]
    login(page, base, "planner")
    page.goto(base + "/analysis")
    page.wait_for_selector("#an-map .leaflet-an-result-pane", state="attached", timeout=30_000)
    page.wait_for_selector("#an-map .leaflet-an-result-pane", state="attached", timeout=30_000)

    # -- hot spots: one category (01 市容环境), the last 90 days --------------------------------------
    page.click("#an-categories")
    page.get_by_role("option", name="01 市容环境").click()
    page.keyboard.press("Escape")
    page.fill("#an-days", "90")
    _run(page)
    page.wait_for_selector(".an-map-legend h5", timeout=60_000)
    legend = page.locator(".an-map-legend").inner_text()
    assert "热点(99% 置信)" in legend and "冷点" in legend
    assert "Queen 邻接" in legend and "行标准化" in legend  # the weights, stated
    page.wait_for_function(f"[...document.querySelectorAll('{HOT}')].some(p => p.getAttribute('fill') === '#b2182b')",
                           timeout=15_000)
    assert "完成" in page.locator("#an-message").inner_text()
    shot(page, "analysis-hotspots")

    # -- the events of a hot cell ----------------------------------------------------------------
    page.wait_for_timeout(1200)  # let the map settle (fitBounds animation) before aiming
    centres = page.evaluate(
        """() => {
             const legend = document.querySelector('.an-map-legend').getBoundingClientRect();
             const out = [];
             for (const p of document.querySelectorAll('.leaflet-an-result-pane path[fill="#b2182b"]')) {
               const r = p.getBoundingClientRect();
               const x = r.left + r.width / 2, y = r.top + r.height / 2;
               if (x < legend.left || y < legend.top) { out.push([x, y]); }
             }
             return out;
           }""")
    assert centres
    for x, y in centres[:6]:
        page.mouse.click(x, y)
        try:
            page.wait_for_selector("#an-event-block .mantine-Checkbox-root", timeout=6_000)
            break
        except Exception:  # noqa: BLE001 - aim at the next hot cell
            continue
    page.wait_for_selector("#an-event-block .mantine-Checkbox-root", timeout=5_000)
    detail = page.locator("#an-detail").inner_text()
    assert "件事件" in detail and "#" in detail
    assert "您的角色只能查看事件" in detail  # a planner sees, does not dispatch
    shot(page, "analysis-hot-cell-events")

    # -- export the hot spots: GeoJSON and the standalone HTML ------------------------------------
    with page.expect_download() as dl:
        page.get_by_role("button", name="GeoJSON").click()
    gj = json.loads(open(dl.value.path(), encoding="utf-8").read())
    assert gj["features"] and gj["dvmap"]["params"]["categories"] == ["01"]
    with page.expect_download() as dl:
        page.get_by_role("button", name="HTML 地图").click()
    html_path = tmp_path / "hotspots.html"
    dl.value.save_as(html_path)

    # -- coverage of elderly care: deserts -------------------------------------------------------
    page.get_by_role("tab", name="覆盖").click()
    page.locator(".mantine-Tabs-panel:visible button:has-text('运行分析')").click()
    page.wait_for_function("document.querySelector('.an-map-legend h5') &&"
                           " document.querySelector('.an-map-legend h5').textContent.includes('养老')", timeout=60_000)
    page.wait_for_function("document.querySelectorAll('.leaflet-an-extra-pane path').length > 10", timeout=15_000)
    summary = page.locator("#an-summary").inner_text()
    assert "未覆盖" in summary and "覆盖率" in summary
    assert "服务盲区" in page.locator(".an-map-legend").inner_text()
    shot(page, "analysis-coverage-deserts")

    # -- a what-if facility in the biggest desert ---------------------------------------------------
    lat, lon = _biggest_desert(app_engine)
    page.locator("#an-whatif-on").check()
    page.wait_for_selector(".an-whatif-mode", timeout=5_000)
    point = page.evaluate(
        """([lat, lon]) => {
             const m = window.dvmap.maps.filter(m => m.getContainer().id === 'an-map').pop();
             m.setView([lat, lon], 12, {animate: false});
             const p = m.latLngToContainerPoint([lat, lon]);
             const r = m.getContainer().getBoundingClientRect();
             return [r.left + p.x, r.top + p.y];
           }""", [lat, lon])
    page.wait_for_timeout(400)
    page.mouse.click(point[0], point[1])
    page.wait_for_selector("#an-whatif-gain", timeout=20_000)
    gain = page.locator("#an-whatif-gain").inner_text()
    assert gain.startswith("+") and int(gain[1:].split()[0].replace(",", "")) > 0
    shot(page, "analysis-what-if")

    # -- the exported HTML opens on its own -----------------------------------------------------------
    page.goto(html_path.as_uri())
    page.wait_for_selector("#dvmap-legend", timeout=15_000)
    # folium draws on a canvas (prefer_canvas): the map and its legend are there, Leaflet ran
    page.wait_for_selector(".leaflet-container canvas, .leaflet-container path", state="attached", timeout=15_000)
    assert page.evaluate("typeof L !== 'undefined'")
    assert "热点" in page.locator("#dvmap-legend").inner_text()
    shot(page, "analysis-export-folium")
    assert not [e for e in page.errors if "dvmap" in e.lower()]


def test_bad_input_is_explained(live_app, demo_events, page):
    base = live_app["url"]
    login(page, base, "planner")
    page.goto(base + "/analysis")
    page.wait_for_selector("#an-map .leaflet-an-result-pane", state="attached", timeout=30_000)
    page.wait_for_selector("#an-map .leaflet-an-result-pane", state="attached", timeout=30_000)
    page.get_by_role("tab", name="聚类").click()
    page.fill("#an-eps", "0")
    page.locator(".mantine-Tabs-panel:visible button:has-text('运行分析')").click()
    page.wait_for_selector("#an-message .an-msg-error", timeout=60_000)
    assert "eps" in page.locator("#an-message").inner_text()
    # too few events: one rare subclass over 7 days
    page.get_by_role("tab", name="热点").click()
    page.click("#an-categories")
    page.get_by_role("option", name="0801 独居老人关爱").click()
    page.keyboard.press("Escape")
    page.fill("#an-days", "7")
    page.locator(".mantine-Tabs-panel:visible button:has-text('运行分析')").click()
    page.wait_for_function("document.querySelector('#an-message .an-msg-error') &&"
                           " /至少需要 30|没有事件/.test(document.querySelector('#an-message').textContent)",
                           timeout=60_000)
    shot(page, "analysis-bad-input")
