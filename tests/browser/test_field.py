"""网格通 (/field) on an emulated phone in Debian's Chromium: a grid worker's day.

The worker signs in on a 390×844 touch phone and lands on /field; the map is full width and
the tasks are listed. One task is started with a before photo and handled with an after
photo (camera through the file chooser); the timeline shows both steps side by side. Then
without signal: three reports with photos and one action are queued, the page is reloaded
offline (the queue survives in IndexedDB, the tasks come from the service worker's cache),
and back online exactly three events and one transition reach PostGIS. A patrol walked
offline along a line uploads and shows its distance and coverage. No screen scrolls
sideways at 360/390/430 px. Screenshots of every screen at 390×844 and 768×1024 go to
test-artifacts/field/.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.browser.conftest import login
from tests.event_support import png, remove_events

TAG = "[field-test]"
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "field"
PHONE_UA = ("Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0.0.0 Mobile Safari/537.36")


def _query(engine, sql, **params):
    from geodata.db import SYSTEM, apply_scope

    with engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        return conn.execute(text(sql), params).mappings().all()


def shot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


@pytest.fixture(scope="module")
def worker_grid(app_engine, demo_db):
    """The demo worker's first grid: three points well inside it (≥ 60 m from its edge)."""
    row = _query(app_engine, """
        SELECT g.code, g.uid::text AS uid,
               ST_X(ST_Transform(a.p1, 4490)) AS lon, ST_Y(ST_Transform(a.p1, 4490)) AS lat,
               ST_X(ST_Transform(b.p2, 4490)) AS lon2, ST_Y(ST_Transform(b.p2, 4490)) AS lat2,
               ST_X(ST_Transform(c.p3, 4490)) AS lon3, ST_Y(ST_Transform(c.p3, 4490)) AS lat3
          FROM app_user u
          JOIN grid g ON g.worker_id = u.person_id AND g.valid_to IS NULL,
          LATERAL (SELECT ST_Buffer(ST_Transform(g.geom, 4549), -60) AS inner) i,
          LATERAL (SELECT ST_PointOnSurface(i.inner) AS p1) a,
          LATERAL (SELECT ST_ClosestPoint(i.inner, ST_Translate(a.p1, 80, 0)) AS p2) b,
          LATERAL (SELECT ST_ClosestPoint(i.inner, ST_Translate(a.p1, -80, 40)) AS p3) c
         WHERE u.username = 'worker' ORDER BY g.code LIMIT 1
    """)[0]
    return dict(row)


@pytest.fixture(scope="module")
def two_tasks(app_engine, owner_engine, worker_grid):
    """Two events dispatched to the demo worker: one handled online, one started offline."""
    from geodata import events as ev
    from geodata.db import SYSTEM, make_sessionmaker, scoped

    actor = ev.Actor("测试", "system")
    ids = []
    with scoped(make_sessionmaker(app_engine), SYSTEM) as s, s.begin():
        for n, (lon, lat) in enumerate([(worker_grid["lon2"], worker_grid["lat2"]),
                                        (worker_grid["lon3"], worker_grid["lat3"])]):
            ref = ev.create_event(s, lon=lon, lat=lat, subclass="0102", source="patrol", actor=actor,
                                  description=f"道路旁堆放垃圾 {n + 1} {TAG}")
            ev.transition(s, ref.id, "accept", actor, 1)
            ev.transition(s, ref.id, "dispatch", actor, 2)
            ids.append(ref.id)
    yield ids
    remove_events(owner_engine, TAG)
    with owner_engine.begin() as conn:
        conn.execute(text("DELETE FROM patrol WHERE user_id = (SELECT id FROM app_user WHERE username = 'worker')"))


@pytest.fixture(scope="module")
def phone_browser(browser):
    """Chromium whose every request, the service worker's included, says it is a phone.

    A context's ``user_agent`` does not reach service workers, and Flask-Login's strong session
    protection ends a session whose User-Agent changes: the phone's User-Agent is the browser's.
    """
    from tests.browser.conftest import CHROMIUM

    b = browser.browser_type.launch(
        executable_path=CHROMIUM, headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
              "--disable-sync", "--no-first-run", "--disable-quic", f"--user-agent={PHONE_UA}"],
    )
    yield b
    b.close()


def _context(browser, grid, width=390, height=844):
    context = browser.new_context(
        viewport={"width": width, "height": height}, device_scale_factor=2 if width < 700 else 1,
        is_mobile=width < 700, has_touch=True, locale="zh-CN", permissions=["geolocation"],
        geolocation={"longitude": grid["lon"], "latitude": grid["lat"], "accuracy": 8},
    )
    return context


@pytest.fixture
def phone(phone_browser, worker_grid, two_tasks):
    context = _context(phone_browser, worker_grid)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    yield page
    context.close()


def _ready(page):
    page.wait_for_selector("body[data-ready='1']", timeout=20_000)


def _sw_ready(page):
    """Wait until the service worker controls the page and has the worker's data cached."""
    page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=20_000)
    page.wait_for_selector("body[data-warm='1']", timeout=20_000)


def _tab(page, name):
    page.click(f"#tabs button[data-tab={name}]")


def _pending(page) -> int:
    return page.evaluate("window.dvmapOutbox.list().then(items => items.filter(i => i.status === 'pending'"
                         " || i.status === 'sending').length)")


_shots_taken = iter(range(1, 10_000))


def _photo(page, selector, name="photo.png"):
    """Pick one photo through the file chooser, as the camera would hand it over.

    Each photo differs (the service drops a photo already attached to the event)."""
    n = next(_shots_taken)
    with page.expect_file_chooser() as chooser:
        page.click(selector)
    chooser.value.set_files([{"name": name, "mimeType": "image/png",
                              "buffer": png(1200, 900, rgb=(40 + n * 7 % 200, 120, 200 - n * 5 % 150))}])


def _wait_version(page, event_id, version):
    page.wait_for_selector(f".evt[data-event='{event_id}'][data-version='{version}']", timeout=20_000)


def _no_sideways_scroll(page) -> bool:
    return page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth")


def test_worker_day_on_a_phone_online_then_offline(phone, live_app, app_engine, two_tasks, worker_grid):
    page, base = phone, live_app["url"]
    first, second = two_tasks
    login(page, base, "worker")
    assert page.url.rstrip("/").endswith("/field"), page.url  # a worker on a phone lands on 网格通
    _ready(page)
    page.wait_for_selector(f".task[data-id='{first}']", timeout=20_000)
    box = page.locator("#map").bounding_box()
    assert box["width"] == 390 and box["height"] > 500  # the map is the screen, not 0 px
    assert page.locator(f".task[data-id='{second}']").count() == 1
    assert page.locator(".task .dist").first.inner_text().endswith("m")  # distance from my position
    shot(page, "phone-tasks")

    # Start with a before photo, handle with an after photo: both side by side.
    page.click(f".task[data-id='{first}']")
    page.wait_for_selector(f".evt[data-event='{first}']")
    shot(page, "phone-event")
    _photo(page, ".evt .photo-pick")
    page.wait_for_selector("#action-thumbs img")
    page.click(".evt .btn[data-action='start']")
    _wait_version(page, first, 4)
    _photo(page, ".evt .photo-pick")
    page.wait_for_selector("#action-thumbs img")
    page.fill("#note", f"已清理完毕 {TAG}")
    page.click(".evt .btn[data-action='handle']")
    _wait_version(page, first, 5)
    rows = _query(app_engine, "SELECT step FROM event_photo WHERE event_id = :e ORDER BY id", e=first)
    assert [r["step"] for r in rows] == ["before", "after"], (rows, page.inner_html(".steps"))
    page.wait_for_function("document.querySelectorAll('.steps .step img').length >= 2 && "
                           "[...document.querySelectorAll('.steps .step img')].every(i => i.complete && i.naturalWidth > 0)")
    assert page.locator(".step[data-step='before']").get_attribute("data-count") == "1"
    assert page.locator(".step[data-step='after']").get_attribute("data-count") == "1"
    before, after = page.locator(".step[data-step='before'] img").bounding_box(), \
        page.locator(".step[data-step='after'] img").bounding_box()
    assert abs(before["y"] - after["y"]) < 2 and after["x"] > before["x"] + before["width"]  # side by side
    assert "反馈结果" in page.locator("[data-testid=timeline]").inner_text()
    page.locator(".steps").scroll_into_view_if_needed()
    shot(page, "phone-event-photos")

    # No signal: three reports with photos and one action wait on the phone.
    _sw_ready(page)
    events_before = _query(app_engine, "SELECT count(*) AS n FROM event")[0]["n"]
    history_before = _query(app_engine, "SELECT count(*) AS n FROM event_history WHERE event_id = :e", e=second)[0]["n"]
    page.context.set_offline(True)
    _tab(page, "report")
    page.wait_for_selector("#cat option[value='0101']", state="attached")
    for n in range(3):
        page.select_option("#cat", "0101")
        page.fill("#desc", f"离线上报 {n + 1} {TAG}")
        _photo(page, ".sheet .photo-pick")
        page.wait_for_selector("#report-thumbs img")
        page.click("#here")
        # The point is set from the position fix (at once, or when the fix arrives).
        page.wait_for_function("/\\d+\\.\\d{6}/.test(document.querySelector('#point').textContent)")
        if n == 0:
            shot(page, "phone-report")
        page.click("#submit")
        page.wait_for_selector("[data-testid=report-message]")
    assert "待发送" in page.locator("[data-testid=report-message]").inner_text()
    _tab(page, "tasks")
    page.click(f".task[data-id='{second}']")
    page.wait_for_selector(f".evt[data-event='{second}'] .btn[data-action='start']")
    page.click(".evt .btn[data-action='start']")
    page.wait_for_selector(".evt .queued")
    assert _pending(page) == 4
    assert page.locator("#pending").inner_text() == "待发送 4"
    shot(page, "phone-offline")

    page.reload()  # still offline: the shell and the tasks come from the service worker
    _ready(page)
    page.wait_for_selector(f".task[data-id='{second}']", timeout=20_000)
    page.wait_for_selector("#pending:not([hidden])")
    assert page.locator("#pending").inner_text() == "待发送 4"
    assert page.locator("#offline").is_visible()
    _tab(page, "me")
    page.wait_for_selector("[data-testid=outbox] li")
    assert page.locator("[data-testid=outbox] li").count() == 4
    shot(page, "phone-me")
    assert _query(app_engine, "SELECT count(*) AS n FROM event")[0]["n"] == events_before  # nothing sent yet

    page.context.set_offline(False)
    page.wait_for_function("document.getElementById('pending').hidden", timeout=60_000)
    assert _pending(page) == 0
    reports = _query(app_engine, "SELECT id, position_source, position_accuracy_m FROM event"
                                 " WHERE description LIKE :d", d=f"离线上报 % {TAG}")
    assert len(reports) == 3 and _query(app_engine, "SELECT count(*) AS n FROM event")[0]["n"] == events_before + 3
    assert {r["position_source"] for r in reports} == {"gps"} and all(r["position_accuracy_m"] == 8 for r in reports)
    photos = _query(app_engine, "SELECT count(*) AS n FROM event_photo WHERE event_id = ANY(:ids)",
                    ids=[r["id"] for r in reports])[0]["n"]
    assert photos == 3
    history = _query(app_engine, "SELECT action FROM event_history WHERE event_id = :e ORDER BY id", e=second)
    assert len(history) == history_before + 1 and history[-1]["action"] == "start"
    assert not page.errors, page.errors


def _walk(context, grid, steps=4, metres=25.0):
    """Move the emulated position east along a line, a step every 5.2 s (the app keeps ≥ 5 s / ≥ 5 m)."""
    import math

    dlon = metres / (111_320 * math.cos(math.radians(grid["lat"])))
    for i in range(1, steps + 1):
        time.sleep(5.2)
        context.set_geolocation({"longitude": grid["lon"] + i * dlon, "latitude": grid["lat"], "accuracy": 6})


def test_patrol_recorded_offline_uploads(phone, live_app, app_engine, worker_grid):
    page, base = phone, live_app["url"]
    login(page, base, "worker")
    _ready(page)
    _sw_ready(page)
    _tab(page, "patrol")
    page.wait_for_selector("#patrol-btn")
    page.context.set_offline(True)
    page.click("#patrol-btn")  # 开始巡查
    page.wait_for_selector("#patrol-btn.danger")
    _walk(page.context, worker_grid)
    page.wait_for_function("parseFloat(document.querySelector('[data-testid=patrol-distance]').textContent) >= 70")
    shot(page, "phone-patrol")
    page.click("#patrol-btn")  # 结束巡查
    page.wait_for_selector("[data-testid=patrol-message]")
    assert _pending(page) >= 3  # start, points, end
    page.context.set_offline(False)
    page.wait_for_selector("[data-testid=patrol-km]", timeout=60_000)
    km = page.locator("[data-testid=patrol-km]").inner_text()
    assert km.endswith(" m") and 80 <= float(km.split()[0]) <= 120, km  # 4 steps of 25 m
    row = _query(app_engine, "SELECT distance_m, ended_at FROM patrol WHERE user_id ="
                             " (SELECT id FROM app_user WHERE username = 'worker') ORDER BY id DESC LIMIT 1")[0]
    assert 80 <= row["distance_m"] <= 120 and row["ended_at"] is not None
    page.wait_for_selector("[data-testid=coverage] li")
    cover = page.locator(f"[data-testid=coverage] b[data-grid='{worker_grid['code']}']").inner_text()
    assert cover.endswith("%") and int(cover[:-1]) > 0
    shot(page, "phone-patrol-done")
    assert not page.errors, page.errors


SCREENS = ("tasks", "event", "report", "patrol", "me")


def _show(page, screen, event_id):
    if screen == "event":
        _tab(page, "tasks")
        page.click(f".task[data-id='{event_id}']")
        page.wait_for_selector(f".evt[data-event='{event_id}']")
    else:
        _tab(page, screen)
        page.wait_for_timeout(300)


@pytest.mark.parametrize("width", [360, 390, 430])
def test_no_sideways_scroll_on_phones(phone_browser, live_app, worker_grid, two_tasks, width):
    context = _context(phone_browser, worker_grid, width=width, height=800)
    page = context.new_page()
    try:
        login(page, live_app["url"], "worker")
        _ready(page)
        page.wait_for_selector(f".task[data-id='{two_tasks[1]}']", timeout=20_000)
        for screen in SCREENS:
            _show(page, screen, two_tasks[1])
            assert _no_sideways_scroll(page), (width, screen)
            small = page.evaluate("""[...document.querySelectorAll(
                '#sheet button, #sheet select, #sheet .btn, #tabs button, #locate')]
                .filter(e => e.offsetParent && e.getBoundingClientRect().height < 44)
                .map(e => e.textContent.trim() || e.id)""")
            assert not small, (screen, small)  # touch targets ≥ 44 px
            font = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
            assert font >= 16
    finally:
        context.close()


def test_tablet_screens(phone_browser, live_app, worker_grid, two_tasks):
    context = _context(phone_browser, worker_grid, width=768, height=1024)
    page = context.new_page()
    try:
        login(page, live_app["url"], "worker")
        page.goto(live_app["url"] + "/field")
        _ready(page)
        page.wait_for_selector(f".task[data-id='{two_tasks[1]}']", timeout=20_000)
        for screen in SCREENS:
            _show(page, screen, two_tasks[1])
            assert _no_sideways_scroll(page)
            shot(page, f"tablet-{screen}")
        map_box = page.locator("#map").bounding_box()
        assert map_box["width"] == 768
        context.set_offline(True)
        page.wait_for_selector("#offline:not([hidden])")
        shot(page, "tablet-offline")
        context.set_offline(False)
    finally:
        context.close()


def test_desktop_page_points_phones_to_field(browser, live_app, worker_grid, two_tasks):
    """The one-map page at phone width says where the phone app is; the desktop keeps three columns."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                  locale="zh-CN")
    page = context.new_page()
    try:
        login(page, live_app["url"], "village")
        page.goto(live_app["url"] + "/")
        card = page.locator("#field-card")
        card.wait_for(timeout=30_000)
        assert card.is_visible() and card.get_attribute("href") == "/field"
        assert card.bounding_box()["width"] >= 300
        shot(page, "phone-desktop-card")
        page.set_viewport_size({"width": 1600, "height": 900})
        page.wait_for_timeout(200)
        assert not card.is_visible()
        assert page.locator(".map-wrap").bounding_box()["width"] > 800
    finally:
        context.close()


def test_field_shell_and_files(live_app):
    """Routes: the shell needs a login, files carry long cache headers under their hash, the worker's scope."""
    import requests

    base = live_app["url"]
    r = requests.get(base + "/field", headers={"Accept": "text/html"}, allow_redirects=False)
    assert r.status_code in (302, 303) and "/login?next=/field" in r.headers["Location"]
    r = requests.get(base + "/api/field/tasks", headers={"Accept": "application/json"})
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"


def test_field_routes_cache_headers_and_manifest(live_app):
    """Versioned files are cached for a year, the shell and sw.js are revalidated, no path escapes."""
    import re

    from tests.event_support import login_client

    client = live_app["app"].server.test_client()
    login_client(client, "worker")
    shell = client.get("/field")
    assert shell.status_code == 200 and "no-cache" in shell.headers["Cache-Control"]
    urls = re.findall(r'(?:src|href)="(/field/[^"]+\?v=[0-9a-f]+)"', shell.get_data(as_text=True))
    assert len(urls) >= 7
    for url in urls:
        r = client.get(url)
        assert r.status_code == 200 and "immutable" in r.headers["Cache-Control"], url
    stale = client.get(urls[0].split("?")[0] + "?v=000000000000")
    assert stale.status_code == 200 and stale.headers["Cache-Control"] == "no-cache"
    sw = client.get("/sw.js")
    body = sw.get_data(as_text=True)
    assert sw.headers["Service-Worker-Allowed"] == "/" and "__VERSION__" not in body and "/field/static/" in body
    manifest = client.get("/field/manifest.webmanifest").get_json(force=True)
    assert manifest["name"] == "数字乡村·网格通" and manifest["display"] == "standalone"
    assert manifest["start_url"] == "/field" and {i["sizes"] for i in manifest["icons"]} == {"192x192", "512x512"}
    for bad in ("/field/static/../field_page.py", "/field/static/%2e%2e/field_page.py", "/field/static/x/../../app.py",
                "/field/vendor/leaflet/../../../../etc/passwd", "/field/static/field/nope.js"):
        assert client.get(bad).status_code == 404, bad


@pytest.fixture
def contested_task(app_engine, worker_grid, two_tasks):
    """A third event dispatched to the worker, which the office will change while the phone is offline."""
    from geodata import events as ev
    from geodata.db import SYSTEM, make_sessionmaker, scoped

    actor = ev.Actor("测试", "system")
    with scoped(make_sessionmaker(app_engine), SYSTEM) as s, s.begin():
        ref = ev.create_event(s, lon=worker_grid["lon"], lat=worker_grid["lat"], subclass="0101", source="patrol",
                              actor=actor, description=f"有人同时处理 {TAG}")
        ev.transition(s, ref.id, "accept", actor, 1)
        ev.transition(s, ref.id, "dispatch", actor, 2)
    return ref.id


def test_offline_action_on_a_changed_event_is_a_conflict_on_that_item(phone, live_app, app_engine, contested_task):
    from geodata import events as ev
    from geodata.db import SYSTEM, make_sessionmaker, scoped

    page = phone
    login(page, live_app["url"], "worker")
    _ready(page)
    _sw_ready(page)
    page.click(f".task[data-id='{contested_task}']")
    page.wait_for_selector(f".evt[data-event='{contested_task}'][data-version='3']")
    page.context.set_offline(True)
    page.click(".evt .btn[data-action='start']")
    page.wait_for_selector(".evt .queued")
    with scoped(make_sessionmaker(app_engine), SYSTEM) as s, s.begin():  # the office acts meanwhile
        ev.transition(s, contested_task, "escalate", ev.Actor("督办", "system"), 3)
    page.context.set_offline(False)
    page.wait_for_selector("[data-testid=event-message]", timeout=60_000)
    message = page.locator("[data-testid=event-message]").inner_text()
    assert "版本" in message or "已被" in message or "冲突" in message or "刷新" in message, message
    _tab(page, "me")
    item = page.locator("[data-testid=outbox] li[data-status=conflict]")
    assert item.count() == 1 and item.locator(".msg.err").is_visible()
    shot(page, "phone-conflict")
    history = _query(app_engine, "SELECT action FROM event_history WHERE event_id = :e ORDER BY id", e=contested_task)
    assert [h["action"] for h in history] == ["report", "accept", "dispatch", "escalate"]  # nothing lost, nothing forced
    item.locator("[data-discard]").click()  # the worker drops it after reading the message
    page.wait_for_selector("[data-testid=outbox] li[data-status=conflict]", state="detached")
