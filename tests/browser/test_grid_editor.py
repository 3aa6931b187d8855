"""The grid editor in Chromium, tried as a new grid manager would.

Delete a grid (its open event goes to the village queue), draw a new one with the
mouse over the hole with one corner pushed into a neighbour, see the overlap
warning, snap, pick a worker, save, see the new code and worker on the map (and
the event re-routed); then drag a vertex of an existing grid and split another.
Each step is a screenshot in test-artifacts/screenshots/grid-*.png.
"""
from __future__ import annotations

import math
import re

import pytest
import shapely
import shapely.ops
from pyproj import Transformer
from shapely.geometry import LineString, Point
from sqlalchemy import text

from geodata import events as ev
from geodata.db import SYSTEM, apply_scope, make_sessionmaker, scoped
from tests.browser.conftest import login, shot

FW = Transformer.from_crs(4490, 4549, always_xy=True)
BW = Transformer.from_crs(4549, 4490, always_xy=True)
MAP = "(() => window.dvmap.gridEditor.findMap())()"


def _q(engine, sql, **p):
    with engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        return conn.execute(text(sql), p).mappings().all()


def _metric(geom):
    return shapely.transform(geom, lambda xy: list(zip(*FW.transform(xy[:, 0], xy[:, 1]))), include_z=False)


def _lonlat(geom):
    return shapely.transform(geom, lambda xy: list(zip(*BW.transform(xy[:, 0], xy[:, 1]))), include_z=False)


@pytest.fixture(scope="module")
def scene(live_app, app_engine):
    """A village with 4+ grids; the grid to delete (most shared border) and an open event in it."""
    village = _q(app_engine, """
        SELECT v.id, v.code FROM village v
         WHERE (SELECT count(*) FROM grid g WHERE g.village_id = v.id AND g.valid_to IS NULL) BETWEEN 5 AND 7
         ORDER BY v.code LIMIT 1""")[0]
    grids = _q(app_engine, """
        SELECT g.uid::text AS uid, g.code, ST_AsText(g.geom) AS wkt,
               (SELECT coalesce(sum(ST_Length(ST_Transform(ST_Intersection(ST_Boundary(g.geom),
                                                                           ST_Boundary(o.geom)), 4549))), 0)
                  FROM grid o WHERE o.village_id = g.village_id AND o.valid_to IS NULL AND o.id <> g.id) AS shared
          FROM grid g WHERE g.village_id = :v AND g.valid_to IS NULL ORDER BY g.code""", v=village["id"])
    doomed = max(grids, key=lambda g: g["shared"])
    hole = shapely.from_wkt(doomed["wkt"])
    inside = hole.representative_point()
    factory = make_sessionmaker(app_engine)
    with scoped(factory, SYSTEM) as s:
        ref = ev.create_event(s, lon=inside.x, lat=inside.y, subclass="0101", description="网格调整测试:暴露垃圾",
                              source="patrol", actor=ev.Actor.system())
        s.commit()
    others = [g for g in grids if g["uid"] != doomed["uid"]]
    return {"village": village, "doomed": doomed, "hole": hole, "event_id": ref.id, "others": others}


def _drawing(app_engine, scene) -> list[tuple[float, float]]:
    """A hand-drawn polygon inside the hole, one corner pushed 6 m into a neighbouring grid."""
    hole_m = _metric(scene["hole"].geoms[0] if hasattr(scene["hole"], "geoms") else scene["hole"])
    inner = hole_m.buffer(-40).simplify(20)
    if inner.geom_type != "Polygon":
        inner = max(inner.geoms, key=lambda p: p.area)
    pts = list(inner.exterior.coords)[:-1]
    shared = _q(app_engine, """
        SELECT ST_AsText(ST_Transform(ST_Intersection(ST_Boundary(ST_GeomFromText(:h, 4490)),
               ST_Union(o.geom)), 4549)) AS wkt
          FROM grid o WHERE o.village_id = :v AND o.valid_to IS NULL""",
                h=scene["hole"].wkt, v=scene["village"]["id"])[0]["wkt"]
    edge = shapely.from_wkt(shared)
    i = min(range(len(pts)), key=lambda k: edge.distance(Point(pts[k])))
    p = Point(pts[i])
    near = shapely.ops.nearest_points(edge, p)[0]
    d = p.distance(near)
    pts[i] = (near.x + 6 * (near.x - p.x) / d, near.y + 6 * (near.y - p.y) / d)
    return [BW.transform(x, y) for x, y in pts]


def _screen(page, lon, lat) -> tuple[float, float]:
    pt = page.evaluate(
        f"([lat, lon]) => {{ const m = {MAP}; const p = m.latLngToContainerPoint([lat, lon]);"
        " const r = m.getContainer().getBoundingClientRect(); return [r.left + p.x, r.top + p.y]; }",
        [lat, lon])
    return pt[0], pt[1]


def _fit(page, geom, padding=40):
    w, s, e, n = geom.bounds
    page.evaluate(f"([b, p]) => {{ const m = {MAP}; m.fitBounds(b, {{padding: [p, p], animate: false}}); }}",
                  [[[s, w], [n, e]], padding])
    page.wait_for_timeout(400)


def _confirm(page, name):
    page.wait_for_selector("#grid-confirm-summary", timeout=15_000)
    page.wait_for_timeout(500)        # let the dialogue finish fading in before the screenshot
    shot(page, name)
    summary = page.inner_text("#grid-confirm-summary")
    page.click("#grid-btn-confirm")
    page.wait_for_selector(".ge-msg-ok", timeout=15_000)
    page.wait_for_selector("#grid-confirm-summary", state="detached", timeout=10_000)
    return summary


def _click_row(page, code):
    page.click(f"tr[data-code='{code}']")
    page.wait_for_function(
        f"document.querySelector('#grid-selected-facts') && "
        f"document.querySelector('#grid-selected-facts').innerText.includes('{code}')", timeout=10_000)


def _grid_count(page) -> int:
    return page.locator("#grid-table-el tbody tr").count()


def test_grid_manager_deletes_draws_snaps_saves_edits_and_splits(live_app, page, app_engine, scene):
    base = live_app["url"]
    vid, vcode = scene["village"]["id"], scene["village"]["code"]
    login(page, base, "gridmgr")
    page.goto(f"{base}/grids?village={vid}")
    page.wait_for_selector(".ge-label", timeout=30_000)
    n0 = _grid_count(page)
    assert page.locator(".ge-label").count() == n0 >= 5
    shot(page, "grid-01-village")

    # 1. Delete the grid with the most shared border: the preview lists its open event.
    doomed = scene["doomed"]["code"]
    _click_row(page, doomed)
    page.click("#grid-btn-delete")
    page.wait_for_selector("#grid-reroute-table", timeout=15_000)
    assert f"#{scene['event_id']}" in page.inner_text("#grid-reroute-table")
    summary = _confirm(page, "grid-02-delete-preview")
    assert doomed in summary
    page.wait_for_selector(".ge-gap-figure.ge-has-gap", timeout=10_000)
    page.wait_for_function(f"document.querySelectorAll('#grid-table-el tbody tr').length === {n0 - 1}")
    shot(page, "grid-03-gap")

    # 2. Draw a new grid with the mouse over the hole, one corner 6 m into a neighbour.
    _fit(page, scene["hole"], padding=60)
    corners = _drawing(app_engine, scene)
    page.click("#grid-btn-new")
    page.wait_for_timeout(300)
    for lon, lat in corners:
        x, y = _screen(page, lon, lat)
        page.mouse.click(x, y)
        page.wait_for_timeout(120)
    x, y = _screen(page, *corners[0])
    page.mouse.click(x, y)          # back on the first corner: the polygon is closed
    page.wait_for_selector(".ge-check.ge-error[data-code=overlap]", timeout=15_000)
    assert page.locator("path.ge-overlap").count() >= 1          # highlighted in red on the map
    assert page.locator("path.ge-overlap-mark").count() >= 1
    # The vertex handles are redrawn after each validation: wait for them, then count.
    page.wait_for_function(f"document.querySelectorAll('.ge-vertex').length === {len(corners)}", timeout=15_000)
    assert page.is_disabled("#grid-btn-save")
    shot(page, "grid-04-overlap-warning")

    # 3. Snap within 10 m: the overlap is gone, the checks pass.
    page.fill("#grid-tolerance", "10")
    page.click("#grid-btn-snap")
    page.wait_for_selector(".ge-check.ge-ok", timeout=15_000)
    assert page.locator(".ge-check.ge-error").count() == 0
    assert page.locator("path.ge-overlap, path.ge-overlap-mark").count() == 0
    shot(page, "grid-05-snapped")

    # 4. Pick a worker and save: the preview shows the event coming back from the village queue.
    page.click("#grid-worker")
    option = page.locator("[role=option]:visible").first
    worker = option.inner_text().split("(")[0]
    option.click()
    page.click("#grid-btn-save")
    page.wait_for_selector("#grid-reroute-table", timeout=15_000)
    assert f"#{scene['event_id']}" in page.inner_text("#grid-reroute-table")
    summary = _confirm(page, "grid-06-save-preview")
    new_code = next(c for c in re.findall(r"\d{15}", summary) if c.startswith(vcode))
    page.wait_for_function(f"document.querySelectorAll('#grid-table-el tbody tr').length === {n0}")
    label = page.locator(".ge-label", has_text=new_code).filter(has_text=worker)
    assert label.count() == 1                                       # new code and worker on the map
    assert worker in page.inner_text(f"tr[data-code='{new_code}']")
    shot(page, "grid-07-saved-new-grid")
    row = _q(app_engine, "SELECT e.grid_uid::text AS uid, g.code, e.worker_id, p.name FROM event e"
                         " JOIN grid g ON g.id = e.grid_id JOIN person p ON p.id = e.worker_id WHERE e.id = :id",
             id=scene["event_id"])[0]
    assert row["code"] == new_code and row["name"] == worker

    # 5. Edit an existing grid's vertex: drag the handle farthest from the middle 30 px inwards.
    edited = scene["others"][0]["code"]
    _fit(page, shapely.from_wkt(scene["others"][0]["wkt"]), padding=80)
    _click_row(page, edited)
    page.click("#grid-btn-edit")
    page.wait_for_selector(".ge-vertex", timeout=10_000)
    n_vertices = page.locator(".ge-vertex").count()
    pts = page.evaluate("() => window.dvmap.gridEditor.parts[0][0].map((c, i) =>"
                        " window.dvmap.gridEditor.vertexPoint(0, 0, i))")
    cx, cy = sum(p["x"] for p in pts) / len(pts), sum(p["y"] for p in pts) / len(pts)
    k = max(range(len(pts)), key=lambda i: math.hypot(pts[i]["x"] - cx, pts[i]["y"] - cy))
    x0, y0 = pts[k]["x"], pts[k]["y"]
    d = math.hypot(cx - x0, cy - y0)
    x1, y1 = x0 + 30 * (cx - x0) / d, y0 + 30 * (cy - y0) / d
    before = page.evaluate("() => JSON.stringify(window.dvmap.gridEditor.parts)")
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x1, y1, steps=6)
    page.mouse.up()
    page.wait_for_selector(".ge-check.ge-warning[data-code=gaps]", timeout=15_000)
    after = page.evaluate("() => JSON.stringify(window.dvmap.gridEditor.parts)")
    assert after != before and page.locator(".ge-vertex").count() == n_vertices
    shot(page, "grid-08-vertex-dragged")
    page.click("#grid-btn-save")
    _confirm(page, "grid-09-edit-preview")
    page.wait_for_function(f"document.querySelector(\"tr[data-code='{edited}']\")"
                           f" && document.querySelector(\"tr[data-code='{edited}']\").lastChild.innerText === '2'")
    shot(page, "grid-10-edited")
    versions = _q(app_engine, "SELECT version, ST_NPoints(geom) AS n FROM grid WHERE code = :c ORDER BY version",
                  c=edited)
    assert [v["version"] for v in versions] == [1, 2] and versions[0]["n"] == versions[1]["n"]

    # 6. Split another grid with a line drawn across it.
    target = scene["others"][1]
    geom = shapely.from_wkt(target["wkt"])
    line = _split_line(geom)
    _fit(page, geom, padding=80)
    _click_row(page, target["code"])
    page.click("#grid-btn-split")
    page.wait_for_timeout(300)
    a, b = [BW.transform(x, y) for x, y in line.coords]
    for lon, lat in (a, b, b):       # the second click on the last point finishes the line
        x, y = _screen(page, lon, lat)
        page.mouse.click(x, y)
        page.wait_for_timeout(150)
    summary = _confirm(page, "grid-11-split-preview")
    assert target["code"] in summary
    page.wait_for_function(f"document.querySelectorAll('#grid-table-el tbody tr').length === {n0 + 1}")
    shot(page, "grid-12-split")
    piece = re.findall(r"\d{15}", summary)[-1]

    # 7. Merge the two pieces back (table clicks add grids to the merge), then undo the merge.
    _click_row(page, target["code"])
    page.click("#grid-btn-merge")
    page.click(f"tr[data-code='{piece}']")
    page.wait_for_selector("path.ge-grid-merge", timeout=10_000)
    page.click("#grid-btn-save")
    summary = _confirm(page, "grid-13-merge-preview")
    assert piece in summary and target["code"] in summary
    page.wait_for_function(f"document.querySelectorAll('#grid-table-el tbody tr').length === {n0}")
    page.click("#grid-btn-undo")
    summary = _confirm(page, "grid-14-undo-preview")
    assert summary.startswith("撤销") and "合并" in summary
    page.wait_for_function(f"document.querySelectorAll('#grid-table-el tbody tr').length === {n0 + 1}")
    page.wait_for_selector(".ge-undone", timeout=10_000)

    # 8. Give the new piece another worker.
    _click_row(page, piece)
    current = page.input_value("#grid-worker").split("(")[0]
    page.click("#grid-worker")
    other = page.locator("[role=option]:visible").filter(has_not_text=current).first
    name = other.inner_text().split("(")[0]
    other.click()
    page.click("#grid-btn-assign")
    summary = _confirm(page, "grid-15-assign-preview")
    assert name in summary
    page.wait_for_function(f"document.querySelector(\"tr[data-code='{piece}']\").innerText.includes('{name}')")
    shot(page, "grid-16-final")

    history = page.inner_text("#grid-history")
    for word in ("分割网格", "修改网格", "新建网格", "删除网格", "合并网格", "撤销", "网格员改为"):
        assert word in history
    assert not [e for e in page.errors if "ResizeObserver" not in e], page.errors


def _split_line(geom) -> LineString:
    """A straight line through the grid that cuts it into exactly two sizeable parts, ends 30 m outside."""
    poly = _metric(geom.geoms[0] if hasattr(geom, "geoms") else geom)
    c = poly.representative_point()
    for angle in range(0, 180, 15):
        dx, dy = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        far = LineString([(c.x - 5000 * dx, c.y - 5000 * dy), (c.x + 5000 * dx, c.y + 5000 * dy)])
        cut = far.intersection(poly)
        if cut.geom_type != "LineString":
            continue
        (x0, y0), (x1, y1) = cut.coords[0], cut.coords[-1]
        line = LineString([(x0 - 30 * dx, y0 - 30 * dy), (x1 + 30 * dx, y1 + 30 * dy)])
        parts = shapely.get_parts(shapely.ops.split(poly, line))
        if len(parts) == 2 and min(p.area for p in parts) > 0.2 * poly.area:
            return line
    raise AssertionError("no straight line splits this grid in two")


def test_other_roles_get_a_clear_refusal_and_english_works(live_app, browser, app_engine):
    base = live_app["url"]
    context = browser.new_context(viewport={"width": 1600, "height": 900}, locale="zh-CN")
    page = context.new_page()
    login(page, base, "village")
    response = page.goto(f"{base}/grids")
    assert response.status == 403  # refused at the URL (map_app/pages.py), both languages on the page
    page.wait_for_selector("#page-refusal", timeout=20_000)
    text_zh = page.inner_text("#page-refusal")
    assert "网格管理员" in text_zh and page.locator("#grid-map").count() == 0
    shot(page, "grid-17-refused-village-official")
    page.goto(f"{base}/grids?lang=en")
    page.wait_for_selector("#page-refusal", timeout=20_000)
    assert "Only grid managers and administrators" in page.inner_text("#page-refusal")
    context.close()

    context = browser.new_context(viewport={"width": 1600, "height": 900}, locale="en-US")
    page = context.new_page()
    login(page, base, "admin", lang="en")
    vid = _q(app_engine, "SELECT id FROM village ORDER BY code DESC LIMIT 1")[0]["id"]
    page.goto(f"{base}/grids?lang=en&village={vid}")
    page.wait_for_selector(".ge-label", timeout=30_000)
    assert "Grid editor" in page.inner_text("header") and "Snap to neighbours" in page.inner_text("body")
    shot(page, "grid-18-admin-english")
    context.close()

