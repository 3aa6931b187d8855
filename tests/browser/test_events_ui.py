"""The closed loop in Chromium: a village official reports an event by clicking the map, it is
routed to the right grid worker, and the two take it through every state including a 返工.

Along the way: the report form's error for a non-image, the routing result, a stale version
refused and the panel reloaded, the timeline, the indicators changing, the table's row
select flying the map, and a map point selecting its row. Screenshots of the form, the panel
and the table go to test-artifacts/screenshots/events-*.png.
"""
from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.browser.conftest import login, shot
from tests.event_support import png, remove_events

TAG = "[ui-test]"
REPORT_TEXT = f"村口垃圾桶满溢,周边有散落垃圾 {TAG}"


def _query(engine, sql, **params):
    from geodata.db import SYSTEM, apply_scope

    with engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        return conn.execute(text(sql), params).mappings().all()


@pytest.fixture
def worker_grid(app_engine, demo_db):
    """The demo grid worker's grid: two points well inside it (≥ 60 m from its edge), its code, worker, village."""
    row = _query(app_engine, """
        SELECT g.code, g.name, g.village_id, p.name AS worker, ov.village_id AS official_village,
               ST_X(ST_Transform(a.p1, 4490)) AS lon, ST_Y(ST_Transform(a.p1, 4490)) AS lat,
               ST_X(ST_Transform(b.p2, 4490)) AS lon2, ST_Y(ST_Transform(b.p2, 4490)) AS lat2,
               ST_Distance(a.p1, b.p2) AS gap_m
          FROM app_user u
          JOIN grid g ON g.worker_id = u.person_id AND g.valid_to IS NULL
          JOIN person p ON p.id = g.worker_id
          CROSS JOIN (SELECT village_id FROM app_user WHERE username = 'village') ov,
          LATERAL (SELECT ST_Buffer(ST_Transform(g.geom, 4549), -60) AS inner) i,
          LATERAL (SELECT ST_PointOnSurface(i.inner) AS p1) a,
          LATERAL (SELECT ST_ClosestPoint(i.inner, ST_Translate(a.p1, 80, 0)) AS p2) b
         WHERE u.username = 'worker' ORDER BY g.code LIMIT 1
    """)[0]
    assert row["village_id"] == row["official_village"]  # the demo worker serves the official's village
    assert row["gap_m"] > 20  # a second point, apart from the first, for another event
    return dict(row)


@pytest.fixture
def overdue_event(app_engine, worker_grid, cleanup):
    """An event in the official's village dispatched three days ago with a 12-hour limit: overdue."""
    from datetime import datetime, timedelta, timezone

    from geodata import events as ev
    from geodata.db import SYSTEM, make_sessionmaker, scoped

    then = datetime.now(timezone.utc) - timedelta(days=3)
    actor = ev.Actor("测试", "system")
    with scoped(make_sessionmaker(app_engine), SYSTEM) as s, s.begin():
        ref = ev.create_event(s, lon=worker_grid["lon2"], lat=worker_grid["lat2"], subclass="0102",
                              description=f"超期未处理的垃圾 {TAG}", source="patrol", actor=actor, reported_at=then)
        ev.transition(s, ref.id, "accept", actor, 1, at=then + timedelta(minutes=5))
        ev.transition(s, ref.id, "dispatch", actor, 2, at=then + timedelta(minutes=10))
    return ref.id


@pytest.fixture
def cleanup(owner_engine):
    """Remove the events this test reported (committed through the UI)."""
    yield
    remove_events(owner_engine, TAG)


def _open_map(page, base_url, username):
    login(page, base_url, username)
    page.goto(base_url + "/")
    page.wait_for_function("window.dvmap && window.dvmap.maps && window.dvmap.maps.length > 0", timeout=30_000)
    page.wait_for_selector(".kpi[data-kpi=closure]", timeout=30_000)


def _screen_point(page, lon, lat):
    return page.evaluate(
        "([lat, lon]) => { const m = window.dvmap.maps[0]; const p = m.latLngToContainerPoint([lat, lon]);"
        " const r = m.getContainer().getBoundingClientRect(); return [r.left + p.x, r.top + p.y]; }",
        [lat, lon],
    )


def _panel_stamp(page) -> str:
    return page.evaluate(
        "(() => { const p = document.querySelector('.evt-panel');"
        " const m = document.querySelector('[data-testid=event-message]');"
        " return (p ? p.dataset.event + ':' + p.dataset.version : '') + '|' + (m ? m.textContent : ''); })()"
    )


def _act(page, action: str, note: str | None = None) -> str:
    """Click an action button of the open panel; return the panel's message once it changed."""
    if note is not None:
        page.fill(".evt-panel [data-testid=event-actions] textarea", note)
    before = _panel_stamp(page)
    page.click(f".evt-panel .evt-btn[data-action='{action}']")
    page.wait_for_function(
        "(b) => { const p = document.querySelector('.evt-panel');"
        " const m = document.querySelector('[data-testid=event-message]');"
        " return ((p ? p.dataset.event + ':' + p.dataset.version : '') + '|' + (m ? m.textContent : '')) !== b; }",
        arg=before, timeout=15_000,
    )
    return page.locator("[data-testid=event-message]").inner_text()


def _state(page) -> str:
    return page.locator("[data-testid=event-state]").get_attribute("data-state")


def _open_drawer(page):
    if "open" not in (page.locator("#evt-drawer").get_attribute("class") or ""):
        page.click("#evt-drawer-toggle")
    page.wait_for_selector("#evt-table .ag-row", timeout=15_000)


def _open_row(page, event_id: int):
    """Click the event's row in the table: the panel opens (and the map flies there)."""
    row = f"#evt-table .ag-row[row-id='{event_id}']"
    page.wait_for_selector(row, timeout=15_000)
    before = _panel_stamp(page)
    page.click(f"{row} [col-id='category']")
    page.wait_for_function(
        "([eid, b]) => { const p = document.querySelector('.evt-panel');"
        " return p && p.dataset.event === String(eid)"
        " && (p.dataset.event + ':' + p.dataset.version) !== b.split('|')[0]; }",
        arg=[event_id, before], timeout=15_000,
    )


def _kpi(page, key: str) -> str:
    return page.locator(f".kpi[data-kpi={key}]").inner_text()


def test_report_route_and_close_the_loop_with_a_rework(live_app, page, browser, app_engine, worker_grid, cleanup,
                                                      overdue_event, tmp_path):
    base = live_app["url"]
    good, result, bad = tmp_path / "rubbish.png", tmp_path / "cleaned.png", tmp_path / "notes.png"
    good.write_bytes(png())
    result.write_bytes(png(rgb=(40, 160, 60)))
    bad.write_bytes(b"this is not an image")
    lon, lat = worker_grid["lon"], worker_grid["lat"]

    # -- the village official clicks the map inside the worker's grid and reports --------
    _open_map(page, base, "village")
    kpi_closure_before, kpi_rework_before = _kpi(page, "closure"), _kpi(page, "rework")
    page.evaluate("([lat, lon]) => window.dvmap.maps[0].setView([lat, lon], 16, {animate: false})", [lat, lon])
    page.wait_for_timeout(600)
    x, y = _screen_point(page, lon, lat)
    page.mouse.click(x, y)
    page.wait_for_selector("#event-report-open", timeout=15_000)
    assert worker_grid["code"].strip() in page.locator("[data-testid=report-where]").inner_text()
    page.click("#event-report-open")
    page.wait_for_selector("[data-testid=report-location]", timeout=10_000)
    page.get_by_role("textbox", name="事件大类").click()
    page.get_by_role("option", name="市容环境").click()
    page.get_by_role("textbox", name="事件小类").click()
    page.get_by_role("option", name="垃圾满溢(时限 12 小时)").click()
    page.get_by_role("textbox", name="事件描述").fill(REPORT_TEXT)
    page.get_by_role("textbox", name="联系电话").fill("13800001111")

    # A file that is not an image: the service's message, in Chinese, and nothing written.
    page.set_input_files("#event-report-photos input[type=file]", [str(bad)])
    page.click("#event-report-submit")
    page.wait_for_selector("[data-testid=report-error]", timeout=10_000)
    assert "不是 JPEG、PNG 或 WebP 图片" in page.locator("[data-testid=report-error]").inner_text()
    assert not _query(app_engine, "SELECT id FROM event WHERE description = :t", t=REPORT_TEXT)

    page.set_input_files("#event-report-photos input[type=file]", [str(good)])
    page.wait_for_selector("#event-report-photo-list li", timeout=5_000)
    shot(page, "events-01-report-form")
    page.click("#event-report-submit")
    page.wait_for_selector("[data-testid=report-success]", timeout=15_000)
    routed = page.locator("[data-testid=report-success]").inner_text()
    # Routed in PostGIS to the containing grid and its worker.
    assert worker_grid["code"].strip() in routed and worker_grid["worker"] in routed
    shot(page, "events-02-report-routed")
    row = _query(app_engine, "SELECT id, state, grid_id, worker_id, village_id FROM event WHERE description = :t",
                 t=REPORT_TEXT)
    assert len(row) == 1 and row[0]["state"] == "reported"
    event_id = row[0]["id"]
    assert _query(app_engine, "SELECT count(*) AS n FROM event_photo WHERE event_id = :e", e=event_id)[0]["n"] == 1
    page.click("#event-report-cancel")
    page.wait_for_selector(f".evt-panel[data-event='{event_id}']", timeout=10_000)
    assert _state(page) == "reported"
    # The photo is served through the scoped route.
    assert page.locator("[data-testid=event-photos] img").evaluate("img => img.complete && img.naturalWidth") == 64

    # -- the official accepts and dispatches to the routed worker -----------------------
    assert "立案" in _act(page, "accept") and _state(page) == "accepted"
    worker_select = page.locator(".evt-panel [data-block=route] input").first
    assert worker_grid["worker"] in worker_select.input_value()
    assert "派遣" in _act(page, "dispatch") and _state(page) == "dispatched"
    shot(page, "events-03-panel-dispatched")

    # A point on the map selects its row in the table.
    _open_drawer(page)
    page.evaluate("([lat, lon]) => window.dvmap.maps[0].setView([lat, lon], 17, {animate: false})", [lat, lon])
    page.wait_for_timeout(800)
    x, y = _screen_point(page, lon, lat)
    page.mouse.click(x, y)
    page.wait_for_selector(f"#evt-table .ag-row-selected[row-id='{event_id}']", timeout=15_000)

    # -- the grid worker opens it from the table: the map flies there ----------------
    context = browser.new_context(viewport={"width": 1600, "height": 900}, locale="zh-CN")
    worker = context.new_page()
    errors: list[str] = []
    worker.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        _open_map(worker, base, "worker")
        _open_drawer(worker)
        _open_row(worker, event_id)
        worker.wait_for_function(
            "([lat, lon]) => { const m = window.dvmap.maps[0]; const c = m.getCenter();"
            " return m.getZoom() >= 16 && Math.abs(c.lat - lat) < 0.0005 && Math.abs(c.lng - lon) < 0.0005; }",
            arg=[lat, lon], timeout=15_000,
        )
        shot(worker, "events-04-worker-table-flew")
        # Only the worker's actions are offered: start / send back, no dispatching or closing.
        offered = worker.locator(".evt-panel .evt-btn").evaluate_all("bs => bs.map(b => b.dataset.action)")
        assert set(offered) == {"start", "send_back"}
        assert "开始处置" in _act(worker, "start") and _state(worker) == "in_progress"
        worker.set_input_files(".evt-panel [data-block=handle] input[type=file]", [str(result)])
        worker.wait_for_selector(".evt-panel .evt-upload-list li", timeout=5_000)
        assert "反馈" in _act(worker, "handle", "已清运,周边已打扫") and _state(worker) == "handled"

        # -- the official's panel is stale now: refused with a message, and reloaded ----
        message = _act(page, "escalate")
        assert "已被他人更新" in message and _state(page) == "handled"
        shot(page, "events-05-stale-version")
        # 核查不通过 → 返工
        assert "核查不通过" in _act(page, "verify_fail", "路边仍有散落垃圾") and _state(page) == "in_progress"
        assert page.locator(".evt-panel [data-flag=rework]").count() == 1

        _open_row(worker, event_id)
        assert _state(worker) == "in_progress"
        assert "反馈" in _act(worker, "handle", "已彻底清理") and _state(worker) == "handled"
        assert not errors, errors
    finally:
        context.close()

    # -- the official verifies, closes and rates -------------------------------------
    _open_row(page, event_id)
    assert _state(page) == "handled"
    assert "核查通过" in _act(page, "verify_pass") and _state(page) == "verified"
    assert "结案" in _act(page, "close") and _state(page) == "closed"
    page.locator(".evt-panel [data-block=rate] .mantine-Rating-symbolGroup").nth(4).click()
    assert "评价" in _act(page, "rate") and _state(page) == "evaluated"
    assert page.locator(".evt-panel .evt-btn").count() == 0  # nothing is left to do

    timeline = page.locator("[data-testid=event-timeline] li").evaluate_all("ls => ls.map(l => l.dataset.action)")
    assert timeline == ["report", "accept", "dispatch", "start", "handle", "verify_fail", "handle", "verify_pass",
                        "close", "rate"]
    facts = page.locator("[data-testid=event-facts]").inner_text()
    assert "★★★★★" in facts and "已彻底清理" in facts

    # The indicators of the official's village changed: one more case closed, one reworked.
    page.wait_for_function(
        "([c, r]) => { const k = (n) => document.querySelector('.kpi[data-kpi=' + n + ']').innerText;"
        " return k('closure') !== c && k('rework') !== r; }",
        arg=[kpi_closure_before, kpi_rework_before], timeout=15_000,
    )
    db = _query(app_engine, "SELECT state, rating, rework_count, worker_id FROM event WHERE id = :e", e=event_id)[0]
    assert (db["state"], db["rating"], db["rework_count"]) == ("evaluated", 5, 1)
    assert db["worker_id"] == row[0]["worker_id"]

    # The table, with the event's row and the overdue marking, and the full panel.
    page.locator(".evt-filters .mantine-SegmentedControl-label", has_text="全部").click()
    page.wait_for_selector(f"#evt-table .ag-row[row-id='{event_id}']", timeout=15_000)
    # Overdue rows are marked (the table reads the same deadline as the map's red ring).
    page.wait_for_selector(f"#evt-table .ag-row.evt-row-overdue[row-id='{overdue_event}']", timeout=5_000)
    assert page.locator(f"#evt-table .ag-row.evt-row-overdue[row-id='{event_id}']").count() == 0
    assert "超期" in page.locator(f"#evt-table .ag-row[row-id='{overdue_event}'] [col-id='overdue_label']").inner_text()
    shot(page, "events-06-table")
    page.set_viewport_size({"width": 1600, "height": 2000})
    page.wait_for_timeout(500)
    shot(page, "events-07-panel-evaluated")
    assert not page.errors, page.errors


def test_read_only_roles_get_no_report_button_and_no_actions(live_app, page, worker_grid):
    _open_map(page, live_app["url"], "leader")
    lon, lat = worker_grid["lon"], worker_grid["lat"]
    page.evaluate("([lat, lon]) => window.dvmap.maps[0].setView([lat, lon], 16, {animate: false})", [lat, lon])
    page.wait_for_timeout(600)
    x, y = _screen_point(page, lon, lat)
    page.mouse.click(x, y)
    page.wait_for_selector("#details .panel-title", timeout=15_000)  # the grid's panel opened
    page.wait_for_timeout(800)
    assert page.locator("#event-report-open").count() == 0
    # The indicators are there for the leader too (county scope).
    # GB/T 30428's four rates, the overdue count, and the reporters' 满意率 (issue 17).
    assert page.locator(".kpi").count() == 6
    assert page.locator(".kpi[data-kpi=satisfaction]").count() == 1
    assert not page.errors, page.errors


@pytest.fixture
def boundary_event(app_engine, demo_db, cleanup):
    """An event 8 m inside one grid of the official's village from a neighbouring grid: 边界待确认."""
    from geodata import events as ev
    from geodata.db import SYSTEM, make_sessionmaker, scoped

    spot = _query(app_engine, """
        WITH pair AS (
            SELECT a.code AS a_code, b.code AS b_code, b.uid::text AS b_uid, pb.name AS b_worker,
                   ST_Transform(a.geom, 4549) AS ga, ST_Transform(b.geom, 4549) AS gb
              FROM grid a JOIN grid b ON b.village_id = a.village_id AND a.id < b.id
              JOIN person pb ON pb.id = b.worker_id
             WHERE a.valid_to IS NULL AND b.valid_to IS NULL
               AND a.village_id = (SELECT village_id FROM app_user WHERE username = 'village')
               AND ST_DWithin(a.geom, b.geom, 0.00001)
             ORDER BY a.code, b.code LIMIT 1)
        SELECT a_code, b_code, b_uid, b_worker, ST_X(ST_Transform(p, 4490)) AS lon, ST_Y(ST_Transform(p, 4490)) AS lat
          FROM pair, LATERAL (SELECT ST_ClosestPoint(ST_Buffer(ga, -8), ST_Centroid(ST_ShortestLine(ga, gb))) AS p) x
    """)[0]
    with scoped(make_sessionmaker(app_engine), SYSTEM) as s, s.begin():
        ref = ev.create_event(s, lon=spot["lon"], lat=spot["lat"], subclass="0203", description=f"边界上的车 {TAG}",
                              source="hotline", actor=ev.Actor("测试", "system"))
    assert ref.boundary_pending and spot["b_uid"] in ref.candidate_grid_uids
    return {**dict(spot), "id": ref.id}


def test_boundary_event_needs_a_grid_and_a_postponement_needs_a_date_in_english(live_app, page, boundary_event):
    base, eid = live_app["url"], boundary_event["id"]
    login(page, base, "village", lang="en")
    page.goto(base + "/?lang=en")
    page.wait_for_selector(".kpi[data-kpi=closure]", timeout=30_000)
    assert "Closure rate" in page.locator(".kpi[data-kpi=closure]").inner_text()
    _open_drawer(page)
    _open_row(page, eid)
    assert page.locator(".evt-panel [data-flag=boundary]").inner_text() == "Boundary: confirm grid"
    assert "Accepted" in _act(page, "accept")
    # Dispatching before the route is confirmed: the service's message, in English; nothing changes.
    assert "grid boundary" in _act(page, "dispatch") and _state(page) == "accepted"
    page.locator(".evt-panel input[id*='\"field\":\"grid\"']").click()
    page.get_by_role("option", name=boundary_event["b_code"].strip(), exact=False).click()
    # The chosen grid's worker is proposed for the dispatch.
    page.wait_for_function(
        "(w) => document.querySelector(`.evt-panel input[id*='\"field\":\"worker\"']`).value.startsWith(w)",
        arg=boundary_event["b_worker"], timeout=10_000,
    )
    assert "Dispatched" in _act(page, "dispatch") and _state(page) == "dispatched"
    route = page.locator("[data-testid=event-route]").inner_text()
    assert boundary_event["b_code"].strip() in route and boundary_event["b_worker"] in route
    assert page.locator(".evt-panel [data-flag=boundary]").count() == 0
    # The timeline records which candidate grid was chosen.
    dispatched = page.locator("[data-testid=event-timeline] li[data-action=dispatch]").inner_text()
    assert "Chosen grid: " + boundary_event["b_code"].strip() in dispatched, dispatched

    # 缓办 needs a new due date and a reason.
    assert "new due date" in _act(page, "postpone", "waiting for a tow truck") and _state(page) == "dispatched"
    page.locator(".evt-panel [data-block=postpone] button.mantine-DatePickerInput-input").click()
    page.locator(".mantine-DatePickerInput-calendarHeaderControl[data-direction=next]").click()
    day = page.locator(".mantine-DatePickerInput-day:not([data-outside])").filter(has_text="15").first
    day.click()
    assert "Postponed" in _act(page, "postpone", "waiting for a tow truck") and _state(page) == "postponed"
    assert "-15 23:59" in page.locator("[data-testid=event-facts] [data-field=due_at]").inner_text()
    assert "In progress" in _act(page, "resume") and _state(page) == "in_progress"
    shot(page, "events-08-boundary-postpone-en")
    assert not page.errors, page.errors


@pytest.fixture
def report_into_neighbour(app_engine, demo_db, cleanup):
    """The demo grid worker's patrol report at a point of a grid that is not theirs (their scope)."""
    from geodata import events as ev
    from geodata import users
    from geodata.db import SYSTEM, make_sessionmaker, scoped

    factory = make_sessionmaker(app_engine)
    with scoped(factory, SYSTEM) as s:
        scope = users.scope_for(s, users.find_user(s, "worker"))
    mine = ",".join(f"'{u}'" for u in scope.grid_uids)
    spot = _query(app_engine, f"""
        SELECT g.code, ST_X(ST_PointOnSurface(g.geom)) AS lon, ST_Y(ST_PointOnSurface(g.geom)) AS lat
          FROM grid g WHERE g.valid_to IS NULL AND g.village_id = ANY(:v) AND g.uid::text NOT IN ({mine})
         ORDER BY g.code LIMIT 1""", v=list(scope.village_ids))[0]
    with scoped(factory, scope) as s, s.begin():
        ref = ev.create_event(s, lon=spot["lon"], lat=spot["lat"], subclass="0102", source="patrol",
                              description=f"邻格的垃圾 {TAG}", actor=ev.Actor("网格员(演示)", "grid_worker", scope.user_id))
    return {"id": ref.id, "code": spot["code"]}


def test_reporter_sees_a_report_routed_to_a_neighbours_grid_read_only(live_app, page, report_into_neighbour):
    """Issue 18: a worker who reports into a neighbour's grid keeps sight of the report (read-only)."""
    base, eid = live_app["url"], report_into_neighbour["id"]
    login(page, base, "worker")
    page.goto(f"{base}/?event={eid}")
    page.wait_for_selector(f".evt-panel[data-event='{eid}']", timeout=30_000)
    assert _state(page) == "reported"
    assert page.locator("[data-testid=event-read-only]").count() == 1
    assert page.locator(".evt-panel [data-testid=event-actions]").count() == 0
    assert page.locator("[data-testid=event-timeline] li[data-action=report]").count() == 1
    assert report_into_neighbour["code"].strip() in page.locator("[data-testid=event-route]").inner_text()
    shot(page, "events-18-reporter-read-only")
    assert not page.errors, page.errors
