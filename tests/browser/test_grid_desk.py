"""The grid manager's desk at 1366×768 (issue 18, "Grids"): what a manager sees after each edit.

* /grids opens on the county with every village drawn (county-wide manager without
  edits) and, once the manager has edited, on the village of the last edit.
* A split gives the new grid people (not "—"), with where the figure comes from, and
  the county's figures stay the same (population follows grid edits).
* A large overlap says so in m² and offers "clip to free area" instead of "snap".
* In a fully tiled village "新建网格" says why it cannot work, before anything is drawn.
* A save refused after the checks passed shows the refusal in the checks panel and
  keeps Save disabled until the geometry changes.
Screenshots: test-artifacts/screenshots/grid-desk-*.png.
"""
from __future__ import annotations

import re

import pytest
import shapely
import shapely.affinity
import shapely.ops
from sqlalchemy import text

from geodata import grids as G
from geodata.db import SYSTEM, apply_scope, make_sessionmaker, scoped
from geodata.identity import Actor
from tests.browser.conftest import login, shot
from tests.browser.test_grid_editor import BW, _click_row, _confirm, _fit, _lonlat, _metric, _screen, _split_line

VIEW = {"width": 1366, "height": 768}


def _q(engine, sql, **p):
    with engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        return conn.execute(text(sql), p).mappings().all()


def _figures(engine) -> dict:
    """The county's people: village rows (big screen total) and current grids' rows (covered)."""
    return dict(_q(engine, """
        SELECT (SELECT sum(total) FROM population WHERE grid_uid IS NULL) AS county,
               (SELECT sum(p.total) FROM population p JOIN grid g ON g.uid = p.grid_uid AND g.valid_to IS NULL
                 WHERE p.year = (SELECT max(year) FROM population)) AS covered""")[0])


@pytest.fixture
def desk(browser):
    context = browser.new_context(viewport=VIEW, locale="zh-CN")
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    yield page
    context.close()


@pytest.fixture(scope="module")
def village(live_app, app_engine):
    """A fully tiled demo village with 3–6 grids, not the one test_grid_editor.py edits."""
    return _q(app_engine, """
        SELECT v.id, v.code, v.name FROM village v
         WHERE (SELECT count(*) FROM grid g WHERE g.village_id = v.id AND g.valid_to IS NULL) BETWEEN 3 AND 6
           AND ST_Area(ST_Transform(ST_Difference(v.geom, (SELECT ST_Union(geom) FROM grid g
                 WHERE g.village_id = v.id AND g.valid_to IS NULL)), 4549)) < 1
         ORDER BY v.code DESC LIMIT 1""")[0]


def _grids(engine, vid):
    return _q(engine, "SELECT uid::text AS uid, version, code, ST_AsText(geom) AS wkt FROM grid"
                      " WHERE village_id = :v AND valid_to IS NULL ORDER BY ST_Area(geom) DESC, code", v=vid)


def test_opens_on_the_county_then_on_the_last_edited_village(live_app, desk, app_engine):
    base = live_app["url"]
    login(desk, base, "gridmgr")
    uid = _q(app_engine, "SELECT id FROM app_user WHERE username = 'gridmgr'")[0]["id"]
    last = _q(app_engine, "SELECT v.name FROM grid_change c JOIN village v ON v.id = c.village_id"
                          " WHERE c.actor_user_id = :u ORDER BY c.at DESC LIMIT 1", u=uid)
    desk.goto(f"{base}/grids")
    if last:  # an earlier test edited as gridmgr: the page opens on that village
        desk.wait_for_selector(".ge-label", timeout=30_000)
        assert last[0]["name"] in desk.inner_text("#grid-stats")
        shot(desk, "grid-desk-01-last-village")
        return
    # County view: every village drawn, none chosen, and a click on one opens it.
    desk.wait_for_function("document.querySelectorAll('.ge-map path.leaflet-interactive').length > 50",
                           timeout=30_000)
    n_villages = _q(app_engine, "SELECT count(*) AS n FROM village")[0]["n"]
    assert desk.locator(".ge-map path.leaflet-interactive").count() == n_villages
    shot(desk, "grid-desk-01-county")
    box = desk.locator(".ge-map").bounding_box()
    desk.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    desk.wait_for_selector(".ge-label", timeout=30_000)
    assert desk.input_value("#grid-village") != ""
    shot(desk, "grid-desk-02-village-from-county")


def test_split_gives_the_new_grid_people_and_totals_stay(live_app, desk, app_engine, village):
    base = live_app["url"]
    before = _figures(app_engine)
    login(desk, base, "gridmgr")
    desk.goto(f"{base}/grids?village={village['id']}")
    desk.wait_for_selector(".ge-label", timeout=30_000)

    # Fully tiled: "new grid" says why at once, nothing to draw.
    desk.click("#grid-btn-new")
    desk.wait_for_selector(".ge-msg-warning", timeout=10_000)
    assert "已全部划入网格" in desk.inner_text("#grid-message") and "分割" in desk.inner_text("#grid-message")
    shot(desk, "grid-desk-03-village-full")

    target = _grids(app_engine, village["id"])[0]
    geom = shapely.from_wkt(target["wkt"])
    a, b = [BW.transform(x, y) for x, y in _split_line(geom).coords]
    _fit(desk, geom, padding=60)
    _click_row(desk, target["code"])
    desk.click("#grid-btn-split")
    desk.wait_for_timeout(300)
    for lon, lat in (a, b, b):
        x, y = _screen(desk, lon, lat)
        desk.mouse.click(x, y)
        desk.wait_for_timeout(150)
    summary = _confirm(desk, "grid-desk-04-split-preview")
    piece = re.findall(r"\d{15}", summary)[-1]
    desk.wait_for_selector(f"tr[data-code='{piece}']", timeout=15_000)
    cells = desk.locator(f"tr[data-code='{piece}'] td").all_inner_texts()
    assert cells[2] != "—" and int(cells[2].replace(",", "")) > 0
    _click_row(desk, piece)
    assert re.search(r"来源: 人口点位 \d{4}-\d{2}-\d{2}", desk.inner_text("#grid-selected-facts"))
    shot(desk, "grid-desk-05-split-population")
    assert _figures(app_engine) == before
    assert not [e for e in desk.errors if "ResizeObserver" not in e], desk.errors


def test_large_overlap_clip_to_free_area_and_a_refused_save(live_app, desk, app_engine, village):
    base = live_app["url"]
    before = _figures(app_engine)
    victim = _grids(app_engine, village["id"])[-1]
    factory = make_sessionmaker(app_engine)
    with scoped(factory, SYSTEM) as s:   # a hole to draw into
        G.delete_grid(s, Actor.system(), victim["uid"], victim["version"])
        s.commit()
    hole = shapely.from_wkt(victim["wkt"])
    hole_m = _metric(hole.geoms[0] if hasattr(hole, "geoms") else hole)
    login(desk, base, "gridmgr")
    desk.goto(f"{base}/grids?village={village['id']}")
    desk.wait_for_selector(".ge-label", timeout=30_000)

    # Draw the hole shrunk by 40 m and pushed 150 m into its neighbour: a real overlap, not a sliver.
    neighbour = shapely.from_wkt(_grids(app_engine, village["id"])[0]["wkt"])
    n_m = _metric(neighbour.geoms[0] if hasattr(neighbour, "geoms") else neighbour)
    inner = hole_m.buffer(-40).simplify(20)
    inner = inner if inner.geom_type == "Polygon" else max(inner.geoms, key=lambda p: p.area)
    c, t = inner.centroid, shapely.ops.nearest_points(n_m, inner.centroid)[0]
    d = c.distance(t)
    big = _lonlat(shapely.affinity.translate(inner, 150 * (t.x - c.x) / d, 150 * (t.y - c.y) / d))
    corners = list(big.exterior.coords)[:-1]
    _fit(desk, big, padding=40)
    desk.click("#grid-btn-new")
    desk.wait_for_selector("#grid-message:has-text('逐点单击')", timeout=10_000)
    desk.wait_for_timeout(300)
    for lon, lat in corners + [corners[0]]:
        x, y = _screen(desk, lon, lat)
        desk.mouse.click(x, y)
        desk.wait_for_timeout(120)
    desk.wait_for_selector(".ge-check.ge-error[data-code=overlap]", timeout=15_000)
    checks = desk.inner_text("#grid-validation")
    assert "重叠过大" in checks and "吸附无法消除" in checks and "可用“吸附”消除" not in checks
    m2 = float(re.search(r"重叠 ([\d,.]+) 平方米", checks).group(1).replace(",", ""))
    assert m2 > 1000
    assert desk.is_visible("#grid-btn-clip") and desk.inner_text("#grid-btn-clip") == "裁剪到空白区"
    assert desk.is_disabled("#grid-btn-save")
    shot(desk, "grid-desk-06-large-overlap")

    desk.click("#grid-btn-clip")
    desk.wait_for_selector(".ge-check.ge-ok", timeout=15_000)
    assert not desk.is_disabled("#grid-btn-save")
    shot(desk, "grid-desk-07-clipped")

    # Meanwhile someone else fills the hole: Save is refused, and the checks panel says so.
    with scoped(factory, SYSTEM) as s:
        G.save_grid(s, Actor.system(), village_id=village["id"], geometry=shapely.geometry.mapping(hole))
        s.commit()
    desk.click("#grid-btn-save")
    desk.wait_for_selector("#grid-refusal-note", timeout=15_000)
    assert "保存被拒绝" in desk.inner_text("#grid-validation")
    assert "校验通过" not in desk.inner_text("#grid-validation")
    assert desk.is_disabled("#grid-btn-save")
    shot(desk, "grid-desk-08-refused-save")
    assert _figures(app_engine) == before   # delete + redraw: nobody vanished
