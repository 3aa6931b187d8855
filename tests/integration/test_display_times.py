"""One clock for people: every time shown is the display zone's (Asia/Shanghai), never bare UTC.

Known instants are stored (UTC, as always) on a sensor reading, a grid's 生效时间, a grid
change, an audit-log row and an import report; the pages and panels that show them are
rendered through the real app with a logged-in user, and the output must carry the
Shanghai rendering — 8 hours and, here, a calendar day later — and not the UTC one.
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from etl.demo_accounts import demo_password
from geodata.db import SYSTEM, apply_scope

STORED = datetime(2026, 3, 4, 21, 37, 5, tzinfo=timezone.utc)  # 2026-03-05 05:37:05 in Shanghai
SHANGHAI = "2026-03-05 05:37"
UTC_LOOKS = ("2026-03-04 21:37", "03-04 21:37", "21:37:05")
TAG = "clock-test"


@pytest.fixture(scope="module")
def app(pg, demo_db):
    from map_app.app import create_app

    return create_app(pg.app_url)


def _client(app, username):
    c = app.server.test_client()
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").get_data(as_text=True)).group(1)
    r = c.post("/login", data={"csrf": token, "username": username, "password": demo_password(username),
                               "next": "/"})
    assert r.status_code == 302, (username, r.status_code)
    return c


@pytest.fixture(scope="module")
def stored(owner_engine, demo_db, pg):
    """Rows carrying STORED; restored or removed afterwards."""
    with owner_engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        sensor_id, seen = conn.execute(text("SELECT id, last_seen_at FROM sensor ORDER BY id LIMIT 1")).one()
        conn.execute(text("UPDATE sensor SET last_seen_at = :t WHERE id = :i"), {"t": STORED, "i": sensor_id})
        grid_id, village_id, valid_from = conn.execute(text(
            "SELECT g.id, g.village_id, g.valid_from FROM grid g WHERE g.valid_to IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM grid o WHERE o.uid = g.uid AND o.id <> g.id) ORDER BY g.id LIMIT 1")).one()
        conn.execute(text("UPDATE grid SET valid_from = :t WHERE id = :i"), {"t": STORED, "i": grid_id})
        village_code = conn.execute(text("SELECT code FROM village WHERE id = :v"), {"v": village_id}).scalar()
        change_id = conn.execute(text(
            "INSERT INTO grid_change (village_id, at, actor, actor_role, action, summary_zh, summary_en)"
            " VALUES (:v, :t, :a, 'admin', 'edit', '时钟测试', 'clock test') RETURNING id"),
            {"v": village_id, "t": STORED, "a": TAG}).scalar()
        conn.execute(text("INSERT INTO audit_log (at, username, action, target) VALUES (:t, :a, 'clock.test', :a)"),
                     {"t": STORED, "a": TAG})
        report_id = conn.execute(text(
            "INSERT INTO import_report (file_sha256, file_name, target, status, started_at, created_by)"
            " VALUES (:h, 'clock-test.geojson', 'custom', 'refused', :t, :a) RETURNING id"),
            {"h": "c" * 64, "t": STORED, "a": TAG}).scalar()
    yield {"sensor": sensor_id, "grid": grid_id, "village": village_id, "village_code": village_code,
           "report": report_id}
    with owner_engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        conn.execute(text("UPDATE sensor SET last_seen_at = :t WHERE id = :i"), {"t": seen, "i": sensor_id})
        conn.execute(text("UPDATE grid SET valid_from = :t WHERE id = :i"), {"t": valid_from, "i": grid_id})
        conn.execute(text("DELETE FROM import_report WHERE id = :i"), {"i": report_id})
    if pg.superuser_url:
        # grid_change and audit_log are append-only (statement triggers): only a superuser
        # with triggers off can take the test's rows out again, so the grid tests' undo
        # never meets this change. An external server keeps them in its test database.
        from sqlalchemy import create_engine

        engine = create_engine(pg.superuser_url)
        try:
            with engine.begin() as conn:
                conn.execute(text("SET LOCAL session_replication_role = replica"))
                conn.execute(text("DELETE FROM grid_change WHERE id = :i"), {"i": change_id})
                conn.execute(text("DELETE FROM audit_log WHERE username = :a"), {"a": TAG})
        finally:
            engine.dispose()


def _shows_shanghai(body: str, where: str) -> None:
    assert SHANGHAI in body, f"{where}: no {SHANGHAI} (Shanghai time of the stored instant)"
    for utc in UTC_LOOKS:
        assert utc not in body, f"{where}: shows the UTC time {utc!r} unlabelled"


def _post_callback(c, deps, output_has: str, values: dict):
    dep = next(d for d in deps if output_has in d["output"] and not d.get("clientside_function"))
    outputs = [{"id": o.rsplit(".", 1)[0], "property": o.rsplit(".", 1)[1].split("@")[0]}
               for o in dep["output"].strip(".").split("...")]
    inputs = [{**i, "value": values.get(i["id"], values.get(i["property"]))} for i in dep["inputs"]]
    state = [{**s, "value": values.get(s["id"], values.get(s["property"]))} for s in dep.get("state", [])]
    r = c.post("/_dash-update-component", json={
        "output": dep["output"], "outputs": outputs if len(outputs) > 1 else outputs[0], "inputs": inputs,
        "state": state, "changedPropIds": [f"{inputs[0]['id']}.{inputs[0]['property']}"]})
    assert r.status_code == 200, r.get_data(as_text=True)[:500]
    return r.get_data(as_text=True)


def _map_page(c, deps, search: str) -> str:
    """The map page as Dash's router renders it for ``/?…`` (deep link: details panel filled)."""
    href = "http://localhost/" + search
    return _post_callback(c, deps, "_pages_content", {"pathname": "/", "search": search, "hash": "", "href": href})


def test_panels_pages_and_cli_show_the_stored_instant_in_shanghai_time(app, stored, pg):
    leader = _client(app, "leader")
    deps = leader.get("/_dash-dependencies").get_json()

    sensor = _map_page(leader, deps, f"?sensor={stored['sensor']}")
    assert "sensor-facts" in sensor
    _shows_shanghai(sensor, "sensor panel 最新读数 时间")

    grid = _map_page(leader, deps, f"?grid={stored['grid']}")
    assert "生效" in grid or "valid" in grid.lower()
    _shows_shanghai(grid, "grid panel 生效时间")

    gridmgr = _client(app, "gridmgr")
    history = _post_callback(gridmgr, gridmgr.get("/_dash-dependencies").get_json(), "grid-history",
                             {"grid-village": str(stored["village"]), "grid-lang": "zh"})
    assert "时钟测试" in history
    assert "03-05 05:37" in history and "03-04 21:37" not in history, "grid editor history"

    admin = _client(app, "admin")
    audit = admin.get("/admin/users").get_data(as_text=True)
    row = next(r for r in audit.split("<tr>") if TAG in r)
    _shows_shanghai(row, "audit log")
    imports = admin.get("/admin/import/").get_data(as_text=True)
    row = next(r for r in imports.split("<tr>") if "clock-test.geojson" in r)
    _shows_shanghai(row, "import page recent list")
    report = admin.get(f"/admin/import/reports/{stored['report']}").get_data(as_text=True)
    _shows_shanghai(report, "import report")

    from map_app.cli import main

    out = CliRunner().invoke(main, ["grids", "history", stored["village_code"]],
                             env={"DATABASE_URL": pg.app_url, "DVMAP_OWNER_URL": pg.owner_url})
    assert out.exit_code == 0, out.output
    line = next(ln for ln in out.output.splitlines() if "时钟测试" in ln)
    _shows_shanghai(line, "dvmap grids history")


def test_the_display_zone_is_a_setting(monkeypatch):
    from geodata import clock

    monkeypatch.setenv("DVMAP_TIMEZONE", "Europe/Berlin")
    assert clock.fmt_local(STORED) == "2026-03-04 22:37"
    monkeypatch.setenv("DVMAP_TIMEZONE", "Asia/Shanghai")
    assert clock.fmt_local(STORED, "%Y-%m-%d %H:%M:%S") == "2026-03-05 05:37:05"
    assert clock.fmt_local(STORED.replace(tzinfo=None)) == SHANGHAI  # naive = stored UTC
    assert clock.fmt_local(None) == "—"
    monkeypatch.setenv("DVMAP_TIMEZONE", "Mars/Olympus")
    with pytest.raises(ValueError, match="DVMAP_TIMEZONE"):
        clock.fmt_local(STORED)
    assert json.dumps(clock.fmt_local(STORED.date()))  # dates pass as they are
