"""Issue 18 findings on the desktop (1366×768): each one as an official would meet it."""
from __future__ import annotations

import pytest

from tests.browser.conftest import login, shot
from tests.event_support import remove_events
from tests.browser.test_map import _wait_for_villages

LAPTOP = {"width": 1366, "height": 768}


def _own_village(app_engine, username: str) -> dict:
    from sqlalchemy import text

    from geodata.db import SYSTEM, apply_scope

    with app_engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        return dict(conn.execute(text(
            "SELECT v.id, v.name FROM village v JOIN app_user u ON u.village_id = v.id WHERE u.username = :u"),
            {"u": username}).mappings().one())


def test_village_search_works_with_the_mouse(live_app, page, app_engine):
    """The result list is drawn above the map: clicking an option opens the village, it does not
    click through to the map (which would drop a report marker)."""
    page.set_viewport_size(LAPTOP)
    village = _own_village(app_engine, "village")
    login(page, live_app["url"], "village")
    page.goto(live_app["url"] + "/")
    _wait_for_villages(page)
    page.locator("#village-search").click()
    page.locator("#village-search").fill(village["name"])
    option = page.get_by_role("option").filter(has_text=village["name"]).first
    option.wait_for(timeout=10_000)
    box = option.bounding_box()
    # What the mouse would hit at the option's centre is the option, not the map.
    hit = page.evaluate(
        "([x, y]) => { const e = document.elementFromPoint(x, y); return !!e.closest('[role=option]'); }",
        [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
    )
    shot(page, "18-search-list-over-map")
    assert hit, "the search result list is covered by the map"
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector("[data-testid=village-facts]", timeout=10_000)
    shot(page, "18-search-after-click")
    assert village["name"] in page.locator("#details").inner_text()
    assert "不在您" not in page.inner_text("body")
    assert page.locator(".leaflet-marker-icon.event-pick, #event-pick .leaflet-marker-icon").count() == 0
    assert not page.errors, page.errors


def _cut_elements(page, selector: str) -> list[str]:
    """Texts of elements matching ``selector`` that are clipped by an ancestor or the viewport."""
    return page.evaluate(
        """(sel) => {
          const out = [];
          for (const el of document.querySelectorAll(sel)) {
            const r = el.getBoundingClientRect();
            if (r.width === 0) continue;
            let cut = r.right > window.innerWidth + 0.5 || r.bottom > window.innerHeight + 0.5;
            for (let p = el.parentElement; p && !cut; p = p.parentElement) {
              const s = getComputedStyle(p);
              if (s.overflowX === 'visible' && s.overflowY === 'visible') continue;
              const q = p.getBoundingClientRect();
              if (r.right > q.right + 0.5 || r.left < q.left - 0.5) cut = true;
            }
            if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX !== 'visible') cut = true;
            if (cut) out.push(el.innerText.slice(0, 40));
          }
          return out;
        }""",
        selector,
    )


TAG = "[desk-test]"


@pytest.fixture
def town_events(app_engine, owner_engine):
    """Fifteen open events in the demo town's villages, so the events list has rows to show."""
    from sqlalchemy import text

    from geodata import events as ev
    from geodata.db import SYSTEM, make_sessionmaker, scoped

    actor = ev.Actor("测试", "system")
    with scoped(make_sessionmaker(app_engine), SYSTEM) as s, s.begin():
        points = s.execute(text(
            "SELECT ST_X(v.label_point) AS lon, ST_Y(v.label_point) AS lat FROM village v"
            " JOIN app_user u ON u.town_id = v.town_id WHERE u.username = 'town' ORDER BY v.code")).mappings().all()
        for i in range(15):
            p = points[i % len(points)]
            ev.create_event(s, lon=p["lon"], lat=p["lat"], subclass="0102", source="patrol", actor=actor,
                            description=f"列表测试 {i} {TAG}")
    yield
    remove_events(owner_engine, TAG)


def test_nothing_cut_at_1366_in_either_language(live_app, page, town_events):
    page.set_viewport_size(LAPTOP)
    login(page, live_app["url"], "town")
    for lang in ("zh", "en"):
        page.goto(live_app["url"] + f"/?lang={lang}")
        _wait_for_villages(page, minimum=5)
        page.wait_for_selector(".kpi", timeout=15_000)
        shot(page, f"18-topbar-kpis-{lang}")
        # Search keeps a usable width; sign-out stays on one line.
        search = page.locator("#village-search").bounding_box()
        assert search["width"] >= 200, search
        for el in page.locator(".topbar .user, .topbar a, .topbar button").all():
            box = el.bounding_box()
            if box:
                assert box["height"] <= 40, (lang, el.inner_text(), box)
        assert _cut_elements(page, ".topbar > *, .kpi") == [], lang
        # The events list: enough rows to work with, and every column header readable.
        page.locator(".evt-drawer-toggle").click()
        page.wait_for_selector(".ag-row", timeout=15_000)
        page.wait_for_timeout(500)
        shot(page, f"18-events-list-{lang}")
        rows = page.evaluate(
            "() => { const v = document.querySelector('.ag-body-viewport').getBoundingClientRect();"
            " return [...document.querySelectorAll('.ag-center-cols-container .ag-row')]"
            ".filter(r => { const b = r.getBoundingClientRect(); return b.top >= v.top - 1 && b.bottom <= v.bottom + 1; }).length; }")
        assert rows >= 8, (lang, rows)
        # The filters sit on one line; the grid column's values are whole (not "33052100120…").
        tops = page.evaluate("() => [...document.querySelectorAll('.evt-filters > *')]"
                             ".filter(e => e.offsetWidth).map(e => Math.round(e.getBoundingClientRect().top))")
        assert max(tops) - min(tops) < 12, (lang, tops)
        cut = page.evaluate("() => [...document.querySelectorAll('.ag-cell[col-id=grid_seq], .ag-cell[col-id=village], .ag-cell[col-id=state_label], .ag-cell[col-id=category], .ag-cell[col-id=urgency_label]')]"
                            ".filter(c => c.scrollWidth > c.clientWidth + 1).map(c => c.innerText)")
        assert cut == [], (lang, cut)
        page.locator(".evt-drawer-toggle").click()
