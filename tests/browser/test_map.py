"""The one-map page in Chromium: villages drawn, a layer toggled, a village clicked."""
from __future__ import annotations

from sqlalchemy import text

from tests.browser.conftest import login, shot

POLYGONS = ".leaflet-pane path.leaflet-interactive"


def _wait_for_villages(page, minimum: int = 100):
    page.wait_for_function(
        f"document.querySelectorAll('{POLYGONS}').length >= {minimum}", timeout=30_000
    )


def _village_with_interior_point(app_engine):
    from geodata.db import SYSTEM, apply_scope

    with app_engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        row = conn.execute(text(
            """
            SELECT v.id, v.name, ST_X(v.label_point) AS lon, ST_Y(v.label_point) AS lat, p.total
              FROM village v JOIN population p ON p.village_id = v.id AND p.grid_uid IS NULL
             ORDER BY v.area_m2 DESC LIMIT 1
            """
        )).mappings().one()
    return dict(row)


def test_map_shows_villages_toggles_layers_and_opens_a_village(live_app, page, app_engine):
    login(page, live_app["url"], "leader")
    page.goto(live_app["url"] + "/")
    _wait_for_villages(page)
    n_polys = page.locator(POLYGONS).count()
    assert n_polys >= 137  # every village (plus town/county outlines are non-interactive)
    # Resource clusters/markers are drawn, and the legend lists resource types.
    page.wait_for_selector(".res-icon, .res-cluster", timeout=15_000)
    assert page.locator("[data-layer=resources]").count() == 1
    shot(page, "01-county-overview")

    # Toggle the resources layer off: its markers and legend disappear.
    page.get_by_label("公共资源").uncheck()
    page.wait_for_function("document.querySelectorAll('.res-icon, .res-cluster').length === 0", timeout=10_000)
    page.wait_for_function("document.querySelectorAll('[data-layer=resources]').length === 0", timeout=10_000)
    # Population choropleth on: filled polygons appear with class-break legend.
    page.get_by_label("人口分布").check()
    page.wait_for_selector("[data-layer=population] .legend-item", timeout=10_000)
    assert page.locator("[data-layer=population] .legend-item").count() >= 3
    shot(page, "02-population-choropleth")
    page.get_by_label("人口分布").uncheck()
    page.get_by_label("物联感知设备").uncheck()
    # Wait until the sensor count boxes are gone: they could sit over the village.
    page.wait_for_function("document.querySelectorAll('.sensor-agg').length === 0", timeout=10_000)

    # Click the largest village at its label point: the panel shows its population from the DB.
    village = _village_with_interior_point(app_engine)
    point = page.evaluate(
        "([lat, lon]) => { const m = window.dvmap.maps[0]; const p = m.latLngToContainerPoint([lat, lon]);"
        " const r = m.getContainer().getBoundingClientRect(); return [r.left + p.x, r.top + p.y]; }",
        [village["lat"], village["lon"]],
    )
    page.mouse.click(point[0], point[1])
    page.wait_for_selector("[data-testid=village-facts]", timeout=10_000)
    panel = page.locator("#details").inner_text()
    assert village["name"] in panel
    population_cell = page.locator("[data-testid=village-facts] [data-field='field.population']").inner_text()
    assert population_cell.replace(",", "") == str(village["total"])
    shot(page, "03-village-panel")
    assert not page.errors, page.errors


def test_search_flies_to_village_and_unknown_id_gives_a_message(live_app, page, app_engine):
    village = _village_with_interior_point(app_engine)
    login(page, live_app["url"], "planner")
    page.goto(live_app["url"] + "/?village=99999999")
    page.wait_for_selector(".panel-error", timeout=15_000)
    assert "99999999" in page.locator(".panel-error").inner_text()
    page.goto(live_app["url"] + "/?lang=en")
    _wait_for_villages(page)
    page.locator("#village-search").fill(village["name"])
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-testid=village-facts]", timeout=10_000)
    assert "Population" in page.locator("#details").inner_text()
    # After the flight the viewport reload brings village labels and grid outlines.
    page.wait_for_selector(".place-label-village", timeout=15_000)
    zoom = page.evaluate("window.dvmap.maps[0].getZoom()")
    assert zoom >= 12
    page.wait_for_function("document.querySelectorAll('path[stroke=\"#c2410c\"]').length > 0", timeout=15_000)
    shot(page, "04-search-english")
    assert not page.errors, page.errors
