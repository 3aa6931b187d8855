"""What each role sees, and hostile names shown as text."""
from __future__ import annotations

from sqlalchemy import text

from tests.browser.conftest import login, shot

def _count_villages_drawn(page) -> int:
    return page.evaluate("""() => { const m = window.dvmap.maps[0]; let n = 0;
        m.eachLayer(l => { if (l.feature && l.feature.properties && l.feature.properties.kind === 'village'
                               && l.getLatLngs) n++; }); return n; }""")


def test_a_village_official_sees_only_their_village_and_a_leader_all(live_app, browser, app_engine):
    for username, expected in (("village", 1), ("leader", 137)):
        context = browser.new_context(viewport={"width": 1600, "height": 900}, locale="zh-CN")
        page = context.new_page()
        login(page, live_app["url"], username)
        page.wait_for_function("window.dvmap && window.dvmap.maps && window.dvmap.maps.length > 0", timeout=20_000)
        page.wait_for_function(
            f"""() => {{ let n = 0; window.dvmap.maps[0].eachLayer(l => {{ if (l.feature && l.feature.properties
                 && l.feature.properties.kind === 'village' && l.getLatLngs) n++; }}); return n >= {expected}; }}""",
            timeout=30_000)
        page.wait_for_timeout(800)
        assert _count_villages_drawn(page) == expected
        shot(page, f"10-sees-{username}")
        context.close()


def test_hostile_village_names_are_shown_as_text(live_app, page, owner_engine):
    from geodata.db import SYSTEM, apply_scope

    hostile = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">javascript:alert(1)'
    with owner_engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        vid, old, x, y = conn.execute(text(
            "SELECT id, name, ST_X(label_point), ST_Y(label_point) FROM village ORDER BY area_m2 DESC LIMIT 1")).one()
        conn.execute(text("UPDATE village SET name = :n WHERE id = :id"), {"n": hostile, "id": vid})
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    try:
        login(page, live_app["url"], "leader")
        page.goto(live_app["url"] + f"/?village={vid}")
        page.wait_for_selector("[data-testid=village-facts]", timeout=20_000)
        # The panel shows the name literally; nothing ran.
        assert hostile in page.locator("#details").inner_text()
        page.wait_for_selector(".place-label-village", timeout=20_000)
        labels = page.evaluate("Array.from(document.querySelectorAll('.place-label-village span')).map(e => e.textContent)")
        assert hostile in labels
        # Hover the village for its tooltip.
        point = page.evaluate(
            "([lat, lon]) => { const m = window.dvmap.maps[0]; const p = m.latLngToContainerPoint([lat, lon]);"
            " const r = m.getContainer().getBoundingClientRect(); return [r.left + p.x, r.top + p.y]; }", [y, x])
        page.mouse.move(point[0] + 3, point[1] + 3)
        page.wait_for_timeout(500)
        shot(page, "11-hostile-name-as-text")
        assert page.evaluate("window.__xss") is None
        assert dialogs == []
    finally:
        with owner_engine.begin() as conn:
            apply_scope(conn, SYSTEM)
            conn.execute(text("UPDATE village SET name = :n WHERE id = :id"), {"n": old, "id": vid})
