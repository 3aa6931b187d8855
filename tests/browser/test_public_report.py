"""随手拍 at 390×844 with an emulated location: me too, a new report, the loop, the tracking page, 评价, KPIs.

The villager's steps are taps in Chromium; the officials' steps are service calls.
Screenshots of every step (zh and en) go to test-artifacts/public/.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import text

from geodata import events as ev
from geodata import public
from geodata.db import SYSTEM, apply_scope, make_sessionmaker, scoped
from geodata.workflow import Action
from tests.browser.conftest import login
from tests.event_support import png, remove_events

TAG = "[public-browser-test]"
OUT = Path(__file__).resolve().parents[2] / "test-artifacts" / "public"
PHONE = "13600001234"


def snap(page, name: str) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.png"
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(path), full_page=True)
    return path


def both(page, name: str) -> None:
    """Screenshots of the current step in Chinese, then English (switched back afterwards)."""
    snap(page, f"{name}-zh")
    page.click("#lang")
    fits(page)
    snap(page, f"{name}-en")
    page.click("#lang")


@pytest.fixture(scope="module")
def factory(app_engine):
    return make_sessionmaker(app_engine)


@pytest.fixture(scope="module")
def place(factory, demo_db):
    """A point in a demo grid with a worker, and an open public report of a street light there."""
    with scoped(factory, SYSTEM) as s, s.begin():
        lon, lat, worker = s.execute(text(
            """SELECT ST_X(p), ST_Y(p), w FROM (SELECT ST_PointOnSurface(g.geom) AS p, g.worker_id AS w FROM grid g
                WHERE g.valid_to IS NULL AND g.worker_id IS NOT NULL ORDER BY g.id LIMIT 1 OFFSET 11) x""")).one()
        existing = public.submit_report(s, category_key="light", description=f"村口路灯晚上不亮 {TAG}", lon=lon + 0.0002,
                                        lat=lat, photos=[png(320, 240, rgb=(240, 200, 40))], pepper="x")
    return {"lon": lon, "lat": lat, "worker": worker, "existing": existing.event_id}


@pytest.fixture(scope="module", autouse=True)
def cleanup(owner_engine, demo_db):
    yield
    with owner_engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        ids = "SELECT id FROM event WHERE description LIKE :tag"
        for sql in (f"DELETE FROM event_follower WHERE event_id IN ({ids})",
                    f"DELETE FROM public_report WHERE event_id IN ({ids})",
                    "DELETE FROM login_throttle WHERE key LIKE 'public-%'"):
            conn.execute(text(sql), {"tag": f"%{TAG}%"})
    remove_events(owner_engine, TAG)


@pytest.fixture
def phone(browser, place):
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN", is_mobile=True,
                                  has_touch=True, geolocation={"longitude": place["lon"], "latitude": place["lat"],
                                                               "accuracy": 12},
                                  permissions=["geolocation"])
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.errors = errors
    yield pg
    context.close()


def count_events(factory) -> int:
    with scoped(factory, SYSTEM) as s:
        return s.execute(text("SELECT count(*) FROM event")).scalar_one()


def fits(page) -> None:
    """Nothing wider than the phone (a cut or sideways-scrolling screen is broken)."""
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def service_steps(factory, event_id: int, worker: int) -> None:
    """The worker confirms, an official dispatches, the worker handles with an after-photo, it is closed."""
    official, grid_worker = ev.Actor("village", "village_official"), ev.Actor("worker", "grid_worker")
    steps = [(Action.CONFIRM, grid_worker, None, {}), (Action.ACCEPT, official, None, {}),
             (Action.DISPATCH, official, None, {"worker_id": worker}), (Action.START, grid_worker, None, {}),
             (Action.HANDLE, grid_worker, "垃圾已清运", {"photos": [png(480, 360, rgb=(30, 140, 60))]}),
             (Action.VERIFY_PASS, official, None, {}), (Action.CLOSE, official, None, {})]
    for action, actor, note, extra in steps:
        with scoped(factory, SYSTEM) as s, s.begin():
            v = s.execute(text("SELECT version FROM event WHERE id = :e"), {"e": event_id}).scalar_one()
            ev.transition(s, event_id, action, actor, v, note, **extra)


def test_villager_reports_says_me_too_follows_the_code_and_rates(live_app, phone, place, factory, browser):
    base = live_app["url"]
    page = phone
    page.goto(base + "/report")
    page.wait_for_selector("#cats button")
    fits(page)
    both(page, "01-category")
    # 1. street light: the existing report 20 m away is offered; "me too" adds a follower, no event
    page.click("#cats button[data-key=light]")
    page.wait_for_selector("#where-next:not([disabled])", timeout=15_000)
    page.wait_for_selector("#map path.village-outline", state="attached", timeout=15_000)  # outlines drawn
    assert "·" in page.locator("#pos").inner_text()  # … and the village of the point named
    both(page, "02-where")
    page.click("#where-next")
    card = f".card[data-event='{place['existing']}']"
    page.wait_for_selector(card, timeout=15_000)
    page.wait_for_function(f"document.querySelector(\"{card} img\").naturalWidth > 0")
    fits(page)
    both(page, "03-nearby")
    before = count_events(factory)
    page.click(f"{card} button.metoo")
    page.wait_for_selector("#step-followed:not([hidden])")
    assert page.locator("#followers").inner_text() == "1"
    assert count_events(factory) == before
    both(page, "04-me-too")
    # 2. something new: rubbish (another class: nothing nearby), with a photo and a phone number
    page.click("#again2")
    page.click("#cats button[data-key=rubbish]")
    page.wait_for_selector("#where-next:not([disabled])", timeout=15_000)
    page.click("#where-next")
    page.wait_for_selector("#step-details:not([hidden])", timeout=15_000)
    page.set_input_files("#photos", files=[{"name": "rubbish.png", "mimeType": "image/png",
                                            "buffer": png(1200, 900, rgb=(120, 110, 100))}])
    page.wait_for_selector("#previews img")
    page.fill("#desc", f"桥头垃圾堆了好几天没人清 {TAG}")
    page.fill("#phone", PHONE)
    fits(page)
    both(page, "05-details")
    page.click("#send")
    page.wait_for_selector("#step-done:not([hidden])", timeout=15_000)
    code = page.locator("#code").inner_text().strip()
    assert re.fullmatch(r"[2-9A-HJ-NP-Z]{12}", code)
    assert count_events(factory) == before + 1
    both(page, "06-code")
    with scoped(factory, SYSTEM) as s:
        eid, state, n_photos = s.execute(text(
            """SELECT e.id, e.state, (SELECT count(*) FROM event_photo p WHERE p.event_id = e.id)
                 FROM public_report r JOIN event e ON e.id = r.event_id WHERE r.tracking_code_hash = :h"""),
            {"h": public.common.code_hash(code)}).one()
    assert state == "pending_verification" and n_photos == 1
    page.click("#lang")
    page.click("#again")
    assert page.locator("#cats button[data-key=rubbish]").inner_text() == "Rubbish or litter"

    # 3. officials: confirm, dispatch, handle with an after-photo, verify, close (service calls)
    service_steps(factory, eid, place["worker"])

    # 4. the villager opens the tracking page, sees the after-photo, rates
    page.click("#lang")  # back to Chinese
    page.goto(f"{base}/track/{code}")
    page.wait_for_selector("#timeline li")
    page.wait_for_function("document.querySelector('#after-photos img') && "
                           "document.querySelector('#after-photos img').naturalWidth > 0", timeout=15_000)
    assert page.locator("#status").inner_text() == "已办结"
    body = page.locator("body").inner_text()
    assert "worker" not in body and "village" not in body and PHONE not in body
    fits(page)
    snap(page, "08-track-zh")
    page.click(".levels button[data-level=satisfied]")
    page.fill("#comment", "修得很快,谢谢")
    page.click("#send-rating")
    page.wait_for_selector("#rated:not([hidden])", timeout=15_000)
    assert "满意" in page.locator("#rated-text").inner_text()
    snap(page, "09-rated-zh")
    page.click("#lang")
    page.wait_for_function("document.querySelector('#status').textContent === 'Done and rated'")
    snap(page, "10-track-en")
    assert page.errors == []
    with scoped(factory, SYSTEM) as s:
        assert s.execute(text("SELECT state, rating FROM event WHERE id = :e"), {"e": eid}).one() == ("evaluated", 5)

    # 5. the rating shows in the KPIs (the event list's 满意率 chip)
    from callbacks.events import _period

    start, end = _period(None)
    with scoped(factory, SYSTEM) as s:
        sat = public.satisfaction(s, start, end)
    assert sat["by_reporter"] >= 1
    desk = browser.new_context(viewport={"width": 1600, "height": 900}, locale="zh-CN").new_page()
    try:
        login(desk, base, "leader")
        desk.goto(base + "/")
        desk.wait_for_selector(".kpi[data-kpi=satisfaction]", timeout=30_000)
        chip = desk.locator(".kpi[data-kpi=satisfaction]").inner_text()
        assert f"{sat['satisfied']}/{sat['rated']}" in chip and "—" not in chip
        desk.locator(".evt-kpis").screenshot(path=str(OUT / "11-kpi-satisfaction.png"))
    finally:
        desk.context.close()
