"""The layer contract in Chromium: a layer is its class + one registry entry.

A toy layer registered at run time (after the app was built, so it cannot have
brought a callback of its own) is drawn, clicked, restyled and live-patched by the
generic callbacks of callbacks/map.py. Then the built-in layers through the same
hooks: the events legend lists every state of the workflow table, and a click inside
a village opens its grid with a link up to the village, whose panel lists its grids.
"""
from __future__ import annotations

import json

import dash_mantine_components as dmc
import pytest
from dash import Patch, html
from sqlalchemy import text

from geodata import workflow as wf
from layers import registry
from layers.base import Layer, LegendItem, option_id
from tests.browser.conftest import login, shot

TOY_NAME = "toy-square-7"  # ASCII: easy to find in a callback response
BLUE, RED, PURPLE = "#0e7490", "#dc2626", "#7c3aed"


class ToyLayer(Layer):
    """One square, coloured through ``hideout.color`` (assets/dvmap.js ``styles.custom``)."""

    name = "toy"
    title_zh, title_en = "玩具图层", "Toy layer"
    style = "custom"
    z_index = 660
    depends_on = ()

    def __init__(self, lon: float, lat: float):
        d = 0.003
        self.ring = [[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d], [lon - d, lat - d]]
        self.loads = 0          # how often the generic loader asked for data
        self.live_calls = 0     # how often the shared clock asked for a patch
        self.pending = None     # a colour the next tick should patch in

    def features(self, session, req):
        self.loads += 1
        return {"type": "FeatureCollection", "features": [
            {"type": "Feature", "id": 7, "geometry": {"type": "Polygon", "coordinates": [self.ring]},
             "properties": {"id": 7, "kind": "toy", "name": TOY_NAME}}]}

    def request_key(self, req, view_key):
        return "one-square"

    def initial_hideout(self, session):
        return {"color": BLUE}

    def controls(self, session, lang):
        return [dmc.SegmentedControl(id=option_id(self.name, "color"), value=BLUE, size="xs", fullWidth=True,
                                     data=[{"value": BLUE, "label": "蓝"}, {"value": RED, "label": "红"}])]

    def hideout_for(self, session, options, hideout):
        return {**hideout, "color": options.get("color") or BLUE}

    def legend(self, lang, hideout):
        return [LegendItem("玩具方块", "Toy square", hideout.get("color", BLUE), "fill")]

    def details(self, session, feature, lang):
        fid = (feature.get("properties") or {}).get("id")
        return html.Div([html.H3("玩具方块"), html.P(f"feature {fid} · {session.info['scope'].role}")],
                        **{"data-testid": "toy-facts"})

    def live_patch(self, session, hideout, subtypes):
        self.live_calls += 1
        if self.pending and hideout.get("color") != self.pending:
            patch = Patch()
            patch["color"] = self.pending
            return patch
        return None


def _largest_village(app_engine) -> dict:
    from geodata.db import SYSTEM, apply_scope

    with app_engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        return dict(conn.execute(text(
            "SELECT id, name, ST_X(label_point) AS lon, ST_Y(label_point) AS lat FROM village"
            " ORDER BY area_m2 DESC LIMIT 1")).mappings().one())


def _screen_point(page, lat: float, lon: float) -> list[float]:
    return page.evaluate(
        "([lat, lon]) => { const m = window.dvmap.maps[0]; const p = m.latLngToContainerPoint([lat, lon]);"
        " const r = m.getContainer().getBoundingClientRect(); return [r.left + p.x, r.top + p.y]; }", [lat, lon])


def _toy_fill(page) -> str | None:
    return page.evaluate("() => { const p = document.querySelector('.leaflet-pane-toy-pane path');"
                         " return p ? p.getAttribute('fill') : null; }")


@pytest.fixture
def toy(app_engine, monkeypatch):
    """The toy layer, in the registry for this test only (the app was built without it)."""
    v = _largest_village(app_engine)
    layer = ToyLayer(v["lon"] + 0.004, v["lat"])
    monkeypatch.setitem(registry.LAYERS, layer.name, layer)
    yield layer


def test_a_toy_layer_is_drawn_clicked_restyled_and_live_patched_by_the_generic_callbacks(
        live_app, page, toy, monkeypatch):
    monkeypatch.setenv("DVMAP_LIVE_SECONDS", "2")  # the page's clock, read when the layout is built
    login(page, live_app["url"], "leader")
    deps_before = page.request.get(live_app["url"] + "/_dash-dependencies").json()
    page.goto(live_app["url"] + "/")
    # Drawn: the loader asked the toy for data and the square is on the map, in its own pane.
    page.wait_for_selector(".leaflet-pane-toy-pane path", timeout=30_000)
    assert _toy_fill(page) == BLUE
    assert toy.loads >= 1
    page.wait_for_selector("[data-layer=toy] .legend-item", timeout=10_000)

    lon, lat = toy.ring[0][0] + 0.003, toy.ring[0][1] + 0.003
    page.evaluate("([lat, lon]) => window.dvmap.maps[0].setView([lat, lon], 15, {animate: false})", [lat, lon])
    page.wait_for_timeout(1500)  # the viewport reload of the other layers settles
    loads = toy.loads
    responses: list = []
    page.on("response", lambda r: responses.append(r) if "_dash-update-component" in r.url else None)

    # Clicked: the toy's details() fills the panel, rendered in the user's scope.
    x, y = _screen_point(page, lat, lon)
    page.mouse.click(x, y)
    page.wait_for_selector("[data-testid=toy-facts]", timeout=10_000)
    assert "feature 7 · county_leader" in page.locator("#details").inner_text()

    # Restyled: the option only changes hideout (the square turns red), no data is sent again.
    page.locator("[data-options=toy]").get_by_text("红", exact=True).click()
    page.wait_for_function(f"() => {{ const p = document.querySelector('.leaflet-pane-toy-pane path');"
                           f" return p && p.getAttribute('fill') === '{RED}'; }}", timeout=10_000)
    page.wait_for_function(f"() => Array.from(document.querySelectorAll('[data-layer=toy] .legend-swatch'))"
                           f".some(s => s.style.getPropertyValue('--swatch') === '{RED}')", timeout=10_000)

    # Live-patched: the shared clock asks the toy for a patch; its colour arrives without a reload.
    calls = toy.live_calls
    toy.pending = PURPLE
    page.wait_for_function(f"() => {{ const p = document.querySelector('.leaflet-pane-toy-pane path');"
                           f" return p && p.getAttribute('fill') === '{PURPLE}'; }}", timeout=15_000)
    assert toy.live_calls > calls
    page.wait_for_timeout(500)
    assert toy.loads == loads, "restyle and live patch must not reload the layer's data"
    assert responses and not [r for r in responses if TOY_NAME in r.text()], "the toy's features were sent again"

    # No new callback: the app's callbacks are the same, and none of them names the toy.
    deps_after = page.request.get(live_app["url"] + "/_dash-dependencies").json()
    assert deps_after == deps_before
    assert "toy" not in json.dumps(deps_after)
    assert not page.errors, page.errors


@pytest.fixture
def laptop(browser):
    """A 1366×768 page (the officials' laptop)."""
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.errors = errors
    yield pg
    context.close()


def test_the_events_legend_lists_every_state_of_the_workflow_table(live_app, laptop):
    page = laptop
    login(page, live_app["url"], "leader")
    page.goto(live_app["url"] + "/")
    group = "[data-layer=events]"
    page.wait_for_selector(f"{group} .legend-item", timeout=30_000)
    states = page.locator(f"{group} .legend-cols .legend-item")
    assert states.count() == len(wf.STATE_LABELS) == len(wf.State)
    shown = [states.nth(i).inner_text().strip() for i in range(states.count())]
    assert sorted(shown) == sorted(zh for zh, _ in wf.STATE_LABELS.values())
    # Each entry's swatch has the colour the map draws that state in.
    swatches = page.evaluate(f"() => Array.from(document.querySelectorAll('{group} .legend-cols .legend-swatch'))"
                             ".map(s => s.style.getPropertyValue('--swatch'))")
    assert sorted(swatches) == sorted(wf.STATE_COLORS.values())
    ring = page.locator(f"{group} .legend-ring")
    assert ring.count() == 1 and "超期" in page.locator(f"{group}").inner_text()
    page.locator(group).scroll_into_view_if_needed()
    shot(page, "layers-01-legend-1366")
    # In English too.
    page.goto(live_app["url"] + "/?lang=en")
    page.wait_for_selector(f"{group} .legend-cols .legend-item", timeout=30_000)
    shown_en = page.locator(f"{group} .legend-cols").inner_text()
    assert all(en in shown_en for _, en in wf.STATE_LABELS.values())
    page.locator(group).scroll_into_view_if_needed()
    shot(page, "layers-02-legend-1366-en")
    assert not page.errors, page.errors


def _grid_in_village(app_engine, village_id: int) -> dict:
    from geodata.db import SYSTEM, apply_scope

    with app_engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        row = conn.execute(text(
            "SELECT g.id, trim(g.code) AS code, g.name, ST_X(ST_PointOnSurface(g.geom)) AS lon,"
            " ST_Y(ST_PointOnSurface(g.geom)) AS lat,"
            " (SELECT count(*) FROM grid x WHERE x.village_id = g.village_id AND x.valid_to IS NULL) AS n"
            " FROM grid g WHERE g.village_id = :v AND g.valid_to IS NULL ORDER BY ST_Area(g.geom) DESC LIMIT 1"),
            {"v": village_id}).mappings().one()
    return dict(row)


def test_a_click_inside_a_village_opens_its_grid_with_a_link_up_to_the_village(live_app, laptop, app_engine):
    page = laptop
    village = _largest_village(app_engine)
    grid = _grid_in_village(app_engine, village["id"])
    login(page, live_app["url"], "leader")
    page.goto(live_app["url"] + "/")
    page.wait_for_selector("[data-layer=events] .legend-item", timeout=30_000)
    # Points above the grids would take the click: only the areas stay on.
    for label in ("公共资源", "物联感知设备", "事件"):
        page.get_by_label(label, exact=True).uncheck()
    page.wait_for_function("document.querySelectorAll('.sensor-agg, .event-agg, .res-cluster, .res-icon')"
                           ".length === 0", timeout=10_000)
    page.evaluate("([lat, lon]) => window.dvmap.maps[0].setView([lat, lon], 14, {animate: false})",
                  [grid["lat"], grid["lon"]])
    page.wait_for_function("document.querySelectorAll('path[stroke=\"#c2410c\"]').length > 0", timeout=15_000)
    page.wait_for_timeout(800)
    x, y = _screen_point(page, grid["lat"], grid["lon"])
    page.mouse.click(x, y)

    # The grid opens (grids lie above the village) …
    page.wait_for_selector("[data-testid=grid-facts]", timeout=10_000)
    assert grid["code"] in page.locator("#details").inner_text()
    link = page.locator("[data-testid=grid-village-link]")
    assert link.inner_text().replace("\n", "").startswith(f"所属村:{village['name']}")
    page.wait_for_function("document.querySelectorAll('path[stroke=\"#c2410c\"][stroke-width=\"3\"]').length === 1",
                           timeout=10_000)  # the clicked grid is highlighted
    shot(page, "layers-03-grid-panel-1366")

    # … and its link opens the village, highlighted, whose panel lists its grids.
    link.click()
    page.wait_for_selector("[data-testid=village-facts]", timeout=10_000)
    assert village["name"] in page.locator(".panel-title").inner_text()
    buttons = page.locator("[data-testid=village-grids] .panel-link")
    assert buttons.count() == grid["n"]
    page.wait_for_function("document.querySelectorAll('path[stroke=\"#b91c1c\"]').length === 1", timeout=10_000)
    page.wait_for_function("document.querySelectorAll('path[stroke=\"#c2410c\"][stroke-width=\"3\"]').length === 0",
                           timeout=10_000)  # the grid's highlight moved to the village
    shot(page, "layers-04-village-panel-1366")

    # Down again: a grid of the list opens its own panel.
    code = grid["code"]
    page.locator(f'[data-testid=village-grids] .panel-link[title="{code}"]').click()
    page.wait_for_selector("[data-testid=grid-facts]", timeout=10_000)
    assert grid["code"] in page.locator("#details").inner_text()
    assert not page.errors, page.errors
