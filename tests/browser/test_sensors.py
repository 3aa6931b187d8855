"""Live sensors in Chromium: the top bar's counter equals the database, a sensor's dot
changes colour on the clock without the layer being reloaded, and its panel shows the
24-hour chart."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from geodata import sensors as sn
from geodata.db import SYSTEM, ScopedSession, apply_scope
from tests.browser.conftest import login, shot
from tests.integration.sensor_world import add_sensor, remove_sensors

CODE = "T-BROWSER-TB-1"


@pytest.fixture
def test_sensor(demo_db, owner_engine, app_engine):
    """A trash bin beside the largest village's label, with 24 hourly readings (normal)."""
    with app_engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        v = conn.execute(text("SELECT id, ST_X(label_point) + 0.002 AS lon, ST_Y(label_point) AS lat FROM village"
                              " ORDER BY area_m2 DESC LIMIT 1")).mappings().one()
    sid = add_sensor(owner_engine, CODE, "trash_bin", v["id"], v["lon"], v["lat"])
    now = datetime.now(timezone.utc)
    with app_engine.connect() as conn, conn.begin():
        s = ScopedSession(bind=conn, info={"scope": SYSTEM})
        county = sn.county_code(s)
        items = [sn.RawReading({"sensor": CODE, "seq": k + 1, "values": {"fill_pct": 20 + 2 * k},
                                "measured_at": (now - timedelta(hours=23 - k)).isoformat()}) for k in range(24)]
        assert sn.ingest(s, items, source="cli").stored == 24
        s.flush()
    yield {"id": sid, "lon": v["lon"], "lat": v["lat"], "county": county}
    remove_sensors(owner_engine, [sid])


def db_counts(app_engine) -> dict:
    with app_engine.connect() as conn, conn.begin():
        return sn.status_counts(ScopedSession(bind=conn, info={"scope": SYSTEM}))


def counter(page) -> dict:
    return {k: int(page.locator(f"[data-testid=counter-{k}]").get_attribute("data-value"))
            for k in ("online", "alarm", "offline")}


def dot_class(page, lat, lon) -> str:
    """Class of the SVG element drawn at (lat, lon) on the map."""
    return page.evaluate(
        "([lat, lon]) => { const m = window.dvmap.maps[0]; const p = m.latLngToContainerPoint([lat, lon]);"
        " const r = m.getContainer().getBoundingClientRect();"
        " const el = document.elementFromPoint(r.left + p.x, r.top + p.y);"
        " return el ? (el.getAttribute('class') || '') : ''; }",
        [lat, lon],
    )


def test_live_counter_status_and_chart(live_app, page, app_engine, test_sensor, monkeypatch):
    monkeypatch.setenv("DVMAP_LIVE_SECONDS", "2")  # the page's clock, read when the layout is built
    login(page, live_app["url"], "leader")
    page.goto(live_app["url"] + "/")
    page.wait_for_selector("[data-testid=counter-online]", timeout=30_000)
    page.wait_for_selector(".sensor-agg", timeout=30_000)
    assert counter(page) == {k: db_counts(app_engine)[k] for k in ("online", "alarm", "offline")}
    assert "在线" in page.locator("#live-counters").inner_text()
    shot(page, "sensors-01-counter")

    # Only the sensors above the map, zoomed in on the test sensor.
    for label in ("公共资源", "事件", "地名标注"):
        box = page.get_by_label(label, exact=True)
        if box.count():
            box.uncheck()
    lat, lon = test_sensor["lat"], test_sensor["lon"]
    page.evaluate("([lat, lon]) => window.dvmap.maps[0].setView([lat, lon], 17, {animate: false})", [lat, lon])
    page.wait_for_function(
        "([lat, lon]) => { const m = window.dvmap.maps[0]; const p = m.latLngToContainerPoint([lat, lon]);"
        " const r = m.getContainer().getBoundingClientRect();"
        " const el = document.elementFromPoint(r.left + p.x, r.top + p.y);"
        " return el && (el.getAttribute('class') || '').includes('sensor-normal'); }",
        arg=[lat, lon], timeout=20_000,
    )
    # From here on, count the callbacks that (re)load layer data: the live path must not need them.
    page.wait_for_timeout(1500)
    loads: list[str] = []
    page.on("request", lambda req: loads.append(req.url) if "_dash-update-component" in req.url
            and "layer-keys" in (req.post_data or "") else None)
    before = counter(page)

    # Silent too long → offline: the dot turns grey and the counter follows, on the clock alone.
    with app_engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        conn.execute(text("UPDATE sensor SET last_seen_at = now() - interval '2 hours' WHERE id = :id"),
                     {"id": test_sensor["id"]})
    with app_engine.connect() as conn, conn.begin():
        sn.check_offline(ScopedSession(bind=conn, info={"scope": SYSTEM}))
    page.wait_for_function(
        "([lat, lon]) => { const m = window.dvmap.maps[0]; const p = m.latLngToContainerPoint([lat, lon]);"
        " const r = m.getContainer().getBoundingClientRect();"
        " const el = document.elementFromPoint(r.left + p.x, r.top + p.y);"
        " return el && (el.getAttribute('class') || '').includes('sensor-offline'); }",
        arg=[lat, lon], timeout=15_000,
    )
    page.wait_for_function("(n) => Number(document.querySelector('[data-testid=counter-offline]')"
                           ".getAttribute('data-value')) > n", arg=before["offline"], timeout=15_000)
    assert counter(page) == {k: db_counts(app_engine)[k] for k in ("online", "alarm", "offline")}

    # It reports again → back to normal.
    with app_engine.connect() as conn, conn.begin():
        r = sn.ingest(ScopedSession(bind=conn, info={"scope": SYSTEM}),
                      [sn.RawReading({"sensor": CODE, "seq": 25, "values": {"fill_pct": 41},
                                      "measured_at": datetime.now(timezone.utc).isoformat()})], source="cli")
        assert r.offline_cleared == 1
    page.wait_for_function(
        "([lat, lon]) => { const m = window.dvmap.maps[0]; const p = m.latLngToContainerPoint([lat, lon]);"
        " const r = m.getContainer().getBoundingClientRect();"
        " const el = document.elementFromPoint(r.left + p.x, r.top + p.y);"
        " return el && (el.getAttribute('class') || '').includes('sensor-normal'); }",
        arg=[lat, lon], timeout=15_000,
    )
    assert loads == []  # colours changed through the hideout patch, the layer was not reloaded

    # Click it: the panel shows the latest value and the 24-hour chart with its 25 readings.
    point = page.evaluate(
        "([lat, lon]) => { const m = window.dvmap.maps[0]; const p = m.latLngToContainerPoint([lat, lon]);"
        " const r = m.getContainer().getBoundingClientRect(); return [r.left + p.x, r.top + p.y]; }",
        [lat, lon],
    )
    page.mouse.click(point[0], point[1])
    page.wait_for_selector("[data-testid=sensor-facts]", timeout=10_000)
    assert CODE in page.locator("#details").inner_text()
    assert page.locator("[data-testid=sensor-facts] [data-field='field.latest']").inner_text() == "41 %"
    page.wait_for_selector("#sensor-chart .main-svg", timeout=15_000)
    points = page.locator("#sensor-chart .scatterlayer .point").count()
    assert points == 25
    assert "告警 80" in page.locator("#sensor-chart").inner_text()
    shot(page, "sensors-02-panel-chart")
    assert "告警记录" in page.locator("#details").inner_text()  # the offline episode is listed
    assert not page.errors, page.errors
