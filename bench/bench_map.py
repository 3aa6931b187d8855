"""The map page: viewport queries vs whole layers, and the first render in Chromium.

Runs against the dev database (``make demo``'s), which must hold the demo county.
"""
from __future__ import annotations

import json
import socket
import threading

from sqlalchemy import text

from bench.common import median, p95, timed


def _viewport_rows():
    from geodata.db import SYSTEM, Database, app_url
    from geodata.queries import layers as q

    db = Database(app_url())
    rows = []
    with db.session(SYSTEM) as s:
        x, y = s.execute(text("SELECT ST_X(label_point), ST_Y(label_point) FROM village ORDER BY area_m2 DESC LIMIT 1")).one()
        # A 1600×900 px view at zoom 15 is about 0.034° × 0.014° here.
        view = (x - 0.02, y - 0.01, x + 0.02, y + 0.01)
        whole = (-180.0, -90.0, 180.0, 90.0)
        vp = timed(lambda: q.sensors(s, view, None), repeat=15)
        full = timed(lambda: q.sensors(s, whole, None, limit=10**7), repeat=5)
        n_vp = len(q.sensors(s, view, None)["features"])
        size_vp = len(json.dumps(q.sensors(s, view, None)))
        size_full = len(json.dumps(q.sensors(s, whole, None, limit=10**7)))
        rows.append(dict(name="sensors viewport z15 (p50)", value=median(vp), baseline=median(full), unit="ms",
                         note=f"{n_vp} sensors in view vs whole layer; p95 {p95(vp):.1f} ms"))
        rows.append(dict(name="sensors viewport payload", value=size_vp / 1024, baseline=size_full / 1024, unit="KiB",
                         note="GeoJSON bytes sent"))
        agg = timed(lambda: q.sensors_by_unit(s, "town", whole, None), repeat=15)
        rows.append(dict(name="sensor counts per town (p50)", value=median(agg), baseline=median(full), unit="ms",
                         note="zoomed-out view vs whole layer"))
        (s_, w), (n, e) = q.county_extent(s)
        vil = timed(lambda: q.villages(s, (w, s_, e, n), 11), repeat=15)
        sel1 = timed(lambda: s.execute(text("SELECT 1")).scalar(), repeat=50)
        rows.append(dict(name="137 villages z11 GeoJSON (p50)", value=median(vil), baseline=median(sel1), unit="ms",
                         note="baseline: SELECT 1 round trip"))
    db.engine.dispose()
    return rows


def _open_event_places(database_url: str | None, n: int = 5) -> list[tuple[float, float]]:
    """(lat, lon) of open events of the last 30 days in ``n`` different villages: places where
    the map's default filter has points to draw at street level."""
    from geodata.db import SYSTEM, Database, app_url
    from geodata.workflow import CLOSED

    db = Database(database_url or app_url())
    with db.session(SYSTEM) as s:
        rows = s.execute(text(
            """SELECT lat, lon FROM (
                   SELECT DISTINCT ON (village_id) village_id, ST_Y(geom) AS lat, ST_X(geom) AS lon
                     FROM event WHERE reported_at > now() - interval '30 days' AND state <> ALL (:closed)
                    ORDER BY village_id, id) v
                ORDER BY village_id LIMIT :n"""), {"closed": [c.value for c in CLOSED], "n": n}).all()
    db.engine.dispose()
    return [tuple(r) for r in rows]


def render_rows(database_url: str | None = None, shots: str | None = None) -> list[dict]:
    """First map render with all layers in headless Chromium, then zooms to single events.

    Parameters
    ----------
    database_url : str, optional
        The app's database (default: the dev database).
    shots : str, optional
        A file-name prefix: screenshots ``<shots>-overview.png`` and ``<shots>-z15.png``
        are written there (folders created).
    """
    import logging
    import pathlib
    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    from etl.demo_accounts import demo_password
    from map_app.app import create_app

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no request log in the table
    places = _open_event_places(database_url)
    app = create_app(database_url)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = make_server("127.0.0.1", port, app.server, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    rows = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            page.goto(base + "/login")
            page.fill("#username", "leader")
            page.fill("#password", demo_password("leader"))
            page.click("button[type=submit]")
            page.wait_for_url(lambda u: "/login" not in u)
            renders, tasks, transfer, zooms, zoom_tasks, points = [], [], [], [], [], []
            for _ in range(3):
                page.goto(base + "/?lang=zh", wait_until="commit")
                page.evaluate("""() => { window.__long = 0; new PerformanceObserver(l => { for (const e of l.getEntries())
                    window.__long = Math.max(window.__long, e.duration); }).observe({type: 'longtask', buffered: true}); }""")
                page.wait_for_function("document.querySelectorAll('.leaflet-pane path.leaflet-interactive').length >= 137"
                                       " && document.querySelectorAll('.sensor-agg').length >= 12"
                                       " && document.querySelectorAll('.event-agg').length > 0", timeout=60_000)
                renders.append(page.evaluate("performance.now()"))
                tasks.append(page.evaluate("window.__long || 0"))
                transfer.append(page.evaluate(
                    "performance.getEntriesByType('resource').reduce((a, e) => a + (e.transferSize || e.encodedBodySize || 0), 0)"
                    " + (performance.getEntriesByType('navigation')[0].transferSize || 0)"))
            if shots:
                pathlib.Path(shots).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=f"{shots}-overview.png")
            # Zoom in to street level (z15) over five villages in turn: time from setView to the
            # single event points drawn, and the longest main-thread task meanwhile.
            for lat, lon in places:
                page.evaluate("""([lat, lon]) => { window.__long = 0; window.__t0 = performance.now();
                    document.querySelectorAll('.event-point').forEach(e => e.classList.add('stale'));
                    window.dvmap.maps[0].setView([lat, lon], 15, {animate: false}); }""", [lat, lon])
                page.wait_for_function("document.querySelectorAll('.event-point:not(.stale)').length > 0"
                                       " && document.querySelectorAll('.event-point.stale').length === 0",
                                       timeout=60_000)
                zooms.append(page.evaluate("performance.now() - window.__t0"))
                zoom_tasks.append(page.evaluate("window.__long || 0"))
                points.append(page.evaluate("document.querySelectorAll('.event-point').length"))
            if shots:
                page.screenshot(path=f"{shots}-z15.png")
            browser.close()
    finally:
        server.shutdown()
    rows.append(dict(name="first map render, all layers", value=median(renders), baseline=1500.0, unit="ms",
                     note="navigation start → villages, sensor and event counts drawn; baseline = 1.5 s target"))
    rows.append(dict(name="longest main-thread task", value=median(tasks), baseline=200.0, unit="ms",
                     note="PerformanceObserver longtask; baseline = 200 ms target"))
    rows.append(dict(name="initial page transfer", value=median(transfer) / 1024, baseline=None, unit="KiB",
                     note="HTML + JS/CSS + layout + first layer data as transferred (compressed)"))
    if zooms:
        rows.append(dict(name="zoom to z15, event points drawn (p50)", value=median(zooms), baseline=1500.0,
                         unit="ms", note=f"{len(zooms)} villages in turn; max {max(zooms):.0f} ms, "
                                         f"{int(median(points))} points in view, longest task {max(zoom_tasks):.0f} ms; "
                                         "baseline = 1.5 s" + (f"; screenshots {shots}-*.png" if shots else "")))
    return rows


def run() -> list[dict]:
    return _viewport_rows() + render_rows(shots="bench/out/map-demo")
