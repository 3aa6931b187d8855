"""The planners' analysis desk (issue 18) in Chromium at 1366×768, as a planner and a grid manager.

The map flies to a chosen village and to a result; a planner sees the inspection-task
button disabled with the reason, a grid manager turns a hot cell into dispatched tasks;
heat classes set the hot cells apart; two chosen windows are compared with numbers per
village; the coverage summary counts a what-if facility; results download as a zipped
Shapefile; the HTML export's legend sits beside the map, not on it; the layer downloads
are linked.
"""
from __future__ import annotations

import json
import re
import zipfile
from datetime import timedelta

import pytest
from sqlalchemy import text

from tests.browser.conftest import login, shot
from tests.browser.test_analysis_page import _biggest_desert

HOT = ".leaflet-an-result-pane path"
TASKS = "description LIKE '排查任务:空间分析热点%'"


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
        ids = f"SELECT id FROM event WHERE {TASKS}"
        conn.execute(text("ALTER TABLE event_history DISABLE TRIGGER event_history_append_only"))
        for sql in (f"DELETE FROM event_history WHERE event_id IN ({ids})",
                    f"DELETE FROM event_request WHERE event_id IN ({ids})", f"DELETE FROM event WHERE {TASKS}"):
            conn.execute(text(sql))
        conn.execute(text("ALTER TABLE event_history ENABLE TRIGGER event_history_append_only"))


@pytest.fixture
def small(page):
    page.set_viewport_size({"width": 1366, "height": 768})
    return page


def _open(page, base, user):
    login(page, base, user)
    page.goto(base + "/analysis")
    page.wait_for_selector("#an-map .leaflet-an-result-pane", state="attached", timeout=30_000)


def _run(page):
    page.locator(".mantine-Tabs-panel:visible button:has-text('运行分析')").click()


def _map(page, js: str):
    return page.evaluate("() => { const m = window.dvmap.maps.filter(m => m.getContainer().id === 'an-map').pop();"
                         f" {js} }}")


def _run_hotspots(page):
    page.get_by_role("tab", name="热点").click()
    _run(page)
    try:
        page.wait_for_function(
            f"[...document.querySelectorAll('{HOT}')].some(p => p.getAttribute('fill') === '#b2182b')", timeout=60_000)
    except Exception:
        shot(page, "analysis-desk-hotspots-failed")
        raise AssertionError(page.locator("#an-message").inner_text()) from None
    page.wait_for_timeout(1500)  # the flight to the result


def _click_hot_cell(page, selector: str):
    centres = page.evaluate(
        """() => {
             const legend = document.querySelector('.an-map-legend').getBoundingClientRect();
             const map = document.querySelector('#an-map').getBoundingClientRect();
             const out = [];
             for (const p of document.querySelectorAll('.leaflet-an-result-pane path[fill="#b2182b"]')) {
               const r = p.getBoundingClientRect();
               const x = r.left + r.width / 2, y = r.top + r.height / 2;
               const free = x < legend.left || y < legend.top;
               if (free && x > map.left + 40 && y > map.top + 10 && x < map.right && y < map.bottom) out.push([x, y]);
             }
             return out;
           }""")
    assert centres
    for x, y in centres[:8]:
        page.mouse.click(x, y)
        try:
            page.wait_for_selector(selector, state="attached", timeout=6_000)
            return
        except Exception:  # noqa: BLE001 - aim at the next hot cell
            continue
    shot(page, "analysis-desk-hot-cell-failed")
    page.wait_for_selector(selector, state="attached", timeout=5_000)


def _result_inside_map(page) -> bool:
    return page.evaluate(
        """() => {
             const map = document.querySelector('#an-map').getBoundingClientRect();
             const ps = [...document.querySelectorAll('.leaflet-an-result-pane path')].map(p => p.getBoundingClientRect())
                          .filter(r => r.width > 0);
             if (!ps.length) return false;
             const l = Math.min(...ps.map(r => r.left)), t = Math.min(...ps.map(r => r.top));
             const r = Math.max(...ps.map(r => r.right)), b = Math.max(...ps.map(r => r.bottom));
             return l >= map.left - 2 && t >= map.top - 2 && r <= map.right + 2 && b <= map.bottom + 2
                    && (r - l) > map.width * 0.3;
           }""")


def test_planner_village_zoom_tasks_refused_heat_classes_and_two_windows(live_app, demo_events, small, app_engine):
    page = small
    base = live_app["url"]
    _open(page, base, "planner")
    page.wait_for_timeout(800)

    # -- the map flies to the chosen village -------------------------------------------------------------
    z0 = _map(page, "return m.getZoom();")
    page.click("#an-villages")
    page.get_by_role("option").first.click()
    page.keyboard.press("Escape")
    page.wait_for_function("() => window.dvmap.maps.filter(m => m.getContainer().id === 'an-map').pop().getZoom()"
                           f" >= {z0 + 1.5}", timeout=10_000)
    page.wait_for_selector("#an-map path[stroke='#ea580c']", timeout=5_000)  # the chosen village, outlined
    page.wait_for_timeout(2500)  # the end of the flight
    inside = page.evaluate("""() => {
        const m = document.querySelector('#an-map').getBoundingClientRect();
        const r = document.querySelector("#an-map path[stroke='#ea580c']").getBoundingClientRect();
        return r.left >= m.left && r.right <= m.right && r.top >= m.top && r.bottom <= m.bottom
               && (r.width > m.width * 0.4 || r.height > m.height * 0.4); }""")
    assert inside  # the village fills the map
    shot(page, "analysis-desk-village-zoom")
    page.locator("#an-villages").locator("xpath=..").locator("button").last.click()  # clear the village
    page.wait_for_function("() => window.dvmap.maps.filter(m => m.getContainer().id === 'an-map').pop().getZoom()"
                           f" <= {z0 + 0.5}", timeout=10_000)

    # -- hot spots: the map frames the result; a planner cannot create tasks ------------------------------
    _run_hotspots(page)
    assert _result_inside_map(page)
    _click_hot_cell(page, "#an-task-button")
    assert page.locator("#an-task-button").is_disabled()
    assert "只能查看" in page.locator("#an-task-reason").inner_text()
    shot(page, "analysis-desk-planner-task-refused")

    # -- heat: the darkest class holds the hottest cells only -----------------------------------------------
    page.get_by_role("tab", name="热力").click()
    _run(page)
    page.wait_for_function("document.querySelector('.an-map-legend h5') &&"
                           " document.querySelector('.an-map-legend h5').textContent.includes('热力')", timeout=60_000)
    labels = page.locator(".an-map-legend .an-legend-item").all_inner_texts()
    top = re.match(r"(\d+)(?:–(\d+))? 件", labels[-1])
    assert top and int(top.group(1)) > 3, labels
    assert len(labels) >= 4
    shot(page, "analysis-desk-heat-classes")

    # -- two windows the planner chooses: last 30 days against the 30 before --------------------------------
    page.get_by_role("tab", name="变化").click()
    page.click("#an-cmp-preset")
    page.get_by_role("option", name="近30天 对比 前30天").click()
    from geodata.clock import day_start, local_today

    today = local_today()
    b0, b1 = today - timedelta(days=59), today - timedelta(days=30)
    page.wait_for_function(f"document.querySelector('#an-cmp-before').textContent.includes('{b0.isoformat()} – "
                           f"{b1.isoformat()}')", timeout=5_000)
    _run(page)
    page.wait_for_selector("#an-village-table", timeout=60_000)
    summary = page.locator("#an-summary").inner_text()
    with app_engine.connect() as conn:
        from geodata.db import SYSTEM, apply_scope

        apply_scope(conn, SYSTEM)
        n_before = conn.execute(text("SELECT count(*) FROM event WHERE reported_at >= :a AND reported_at < :b"),
                                {"a": day_start(b0), "b": day_start(b1 + timedelta(days=1))}).scalar()
        n_after = conn.execute(text("SELECT count(*) FROM event WHERE reported_at >= :a AND reported_at < :b"),
                               {"a": day_start(today - timedelta(days=29)),
                                "b": day_start(today + timedelta(days=1))}).scalar()
    assert re.search(rf"前一时段事件\s*{n_before:,}\b", summary), summary
    assert re.search(rf"后一时段事件\s*{n_after:,}\b", summary), summary
    rows = page.locator("#an-village-table tbody tr").all_inner_texts()
    assert rows and all(len(r.split()) == 4 for r in rows)
    for r in rows:
        _, before, after, delta = r.split()
        assert int(after.replace(",", "")) - int(before.replace(",", "")) == int(delta.replace(",", ""))
    assert _result_inside_map(page)
    shot(page, "analysis-desk-two-windows")


def test_manager_turns_a_hot_cell_into_dispatched_tasks(live_app, demo_events, small, app_engine):
    page = small
    base = live_app["url"]
    _open(page, base, "gridmgr")
    _run_hotspots(page)
    _click_hot_cell(page, "#an-task-button")
    assert page.locator("#an-task-button").is_enabled()
    page.click("#an-task-button")
    page.wait_for_selector("#an-task-msg .an-msg-ok", timeout=20_000)
    msg = page.locator("#an-task-msg").inner_text()
    n = int(re.search(r"已创建并派遣 (\d+) 件排查任务", msg).group(1))
    assert n >= 1 and page.locator("#an-task-button").is_disabled()
    with app_engine.connect() as conn:
        from geodata.db import SYSTEM, apply_scope

        apply_scope(conn, SYSTEM)
        rows = conn.execute(text(f"SELECT e.state, e.grid_uid, e.description FROM event e WHERE {TASKS}")).all()
    assert len(rows) == n and {r.state for r in rows} == {"dispatched"}
    assert len({r.grid_uid for r in rows}) == n  # one per grid
    shot(page, "analysis-desk-manager-tasks")


def test_what_if_summary_shapefile_html_legend_and_layer_links(live_app, demo_events, small, app_engine, tmp_path):
    page = small
    base = live_app["url"]
    _open(page, base, "planner")

    # -- coverage, then a what-if facility: the summary counts it ------------------------------------------
    page.get_by_role("tab", name="覆盖").click()
    _run(page)
    page.wait_for_function("document.querySelector('.an-map-legend h5') &&"
                           " document.querySelector('.an-map-legend h5').textContent.includes('养老')", timeout=60_000)
    assert re.search(r"假设设施\s*0", page.locator("#an-summary").inner_text())
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
    page.wait_for_function("/假设设施\\s*1/.test(document.querySelector('#an-summary').innerText)", timeout=10_000)
    after = re.search(r"覆盖 [\d,]+ → ([\d,]+)", page.locator(".an-whatif-box").inner_text()).group(1)
    assert re.search(rf"已覆盖\s*{after}\b", page.locator("#an-summary").inner_text())
    shot(page, "analysis-desk-what-if-summary")

    # -- the result as a zipped Shapefile --------------------------------------------------------------------
    with page.expect_download() as dl:
        page.get_by_role("button", name="Shapefile").click()
    assert dl.value.suggested_filename.endswith(".zip")
    with zipfile.ZipFile(dl.value.path()) as zf:
        names = zf.namelist()
        assert {"coverage.shp", "coverage.dbf", "coverage.cpg", "coverage.prj", "fields.csv"} <= set(names)
        assert "coverage_deserts.shp" in names

    # -- the HTML map: the legend beside the map, not on it ----------------------------------------------------
    with page.expect_download() as dl:
        page.get_by_role("button", name="HTML 地图").click()
    html_path = tmp_path / "coverage.html"
    dl.value.save_as(html_path)

    # -- the layer downloads are linked ----------------------------------------------------------------------
    page.locator("#an-layer-exports summary").click()
    page.locator("#an-layer-exports").evaluate("el => el.scrollIntoView({block: 'end'})")
    link = page.locator("#an-layer-exports a[href='/export/villages.shp']")
    assert link.is_visible()
    resp = page.request.get(base + "/export/villages.shp")
    assert resp.status == 200 and resp.body()[:2] == b"PK"
    shot(page, "analysis-desk-layer-links")

    page.goto(html_path.as_uri())
    page.wait_for_selector("#dvmap-legend", timeout=15_000)
    page.wait_for_timeout(800)
    geo = page.evaluate(
        """() => {
             const m = Object.values(window).find(v => v && v instanceof L.Map);
             const box = el => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
             let b = null;
             m.eachLayer(l => { if (l.getBounds && l.feature === undefined && l.getLayers) {
               const lb = l.getBounds(); if (lb.isValid()) b = b ? b.extend(lb) : L.latLngBounds(lb.getSouthWest(), lb.getNorthEast()); } });
             const c = m.getContainer().getBoundingClientRect();
             const sw = m.latLngToContainerPoint(b.getSouthWest()), ne = m.latLngToContainerPoint(b.getNorthEast());
             return {legend: box(document.querySelector('#dvmap-legend')), map: box(m.getContainer()),
                     features: [c.left + sw.x, c.top + ne.y, c.left + ne.x, c.top + sw.y]};
           }""")
    lg, mp, ft = geo["legend"], geo["map"], geo["features"]
    assert mp[2] <= lg[0] + 1  # the map ends where the legend starts
    assert ft[2] <= lg[0] and ft[0] >= mp[0] - 1  # every feature left of the legend, on the map
    centre_x = (mp[0] + mp[2]) / 2
    assert not (lg[0] <= centre_x <= lg[2])
    shot(page, "analysis-desk-export-html")
    json.dumps(geo)  # the numbers, for the log when an assertion fails


def test_english_at_1920_nothing_cut(live_app, demo_events, page):
    page.set_viewport_size({"width": 1920, "height": 1080})
    base = live_app["url"]
    login(page, base, "planner", lang="en")
    page.goto(base + "/analysis?lang=en")
    page.wait_for_selector("#an-map .leaflet-an-result-pane", state="attached", timeout=30_000)
    page.get_by_role("tab", name="Heat").click()
    page.locator(".mantine-Tabs-panel:visible button:has-text('Run analysis')").click()
    page.wait_for_function("document.querySelector('.an-map-legend h5') &&"
                           " document.querySelector('.an-map-legend h5').textContent.includes('density')",
                           timeout=60_000)
    assert re.search(r"\d+–\d+ events", page.locator(".an-map-legend").inner_text())
    page.get_by_role("tab", name="Change").click()
    page.click("#an-cmp-preset")
    page.get_by_role("option", name="This month vs same month last year").click()
    page.locator("#an-layer-exports summary").click()
    assert "Layer downloads" in page.locator("#an-layer-exports").inner_text()
    # nothing sticks out of the side panel sideways
    assert page.evaluate("(() => { const s = document.querySelector('.an-side');"
                         " return s.scrollWidth <= s.clientWidth + 1; })()")
    shot(page, "analysis-desk-en-1920")
