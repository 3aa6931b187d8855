"""``dvmap events check-overdue|watch`` and ``dvmap api-key add|list|disable`` on the real PostGIS."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.event_support import remove_events

DVMAP = str(Path(sys.executable).with_name("dvmap"))
TAG = "[cli-test]"


def _run(pg, *args):
    """The command in this process (fast); see the watch test for the real ``dvmap`` executable."""
    from click.testing import CliRunner

    from map_app.cli import main

    return CliRunner().invoke(main, list(args), env={"DATABASE_URL": pg.app_url, "DVMAP_OWNER_URL": pg.owner_url})


def _exec(pg, *args):
    env = {**os.environ, "DATABASE_URL": pg.app_url, "DVMAP_OWNER_URL": pg.owner_url}
    return subprocess.run([DVMAP, *args], capture_output=True, text=True, env=env, timeout=120)


def _one(engine, sql, **params):
    from geodata.db import SYSTEM, apply_scope

    with engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        return conn.execute(text(sql), params).mappings().first()


@pytest.fixture
def late_event(app_engine, owner_engine, demo_db):
    """Dispatched five days ago with a 12-hour limit: overdue by more than the county margin (72 h)."""
    from geodata import events as ev
    from geodata.db import SYSTEM, make_sessionmaker, scoped

    then = datetime.now(timezone.utc) - timedelta(days=5)
    actor = ev.Actor("测试", "system")
    with scoped(make_sessionmaker(app_engine), SYSTEM) as s, s.begin():
        lon, lat = s.execute(text("SELECT ST_X(label_point), ST_Y(label_point) FROM village ORDER BY id LIMIT 1")).one()
        ref = ev.create_event(s, lon=lon, lat=lat, subclass="0102", description=f"超期 {TAG}", source="patrol",
                              actor=actor, reported_at=then)
        ev.transition(s, ref.id, "accept", actor, 1, at=then + timedelta(minutes=1))
        ev.transition(s, ref.id, "dispatch", actor, 2, at=then + timedelta(minutes=2), department="sanitation")
    yield ref.id
    remove_events(owner_engine, TAG)


def test_check_overdue_marks_and_escalates_then_has_nothing_left(pg, app_engine, late_event):
    res = _run(pg, "events", "check-overdue")
    assert res.exit_code == 0, res.output
    counts = dict(zip(("marked", "village", "county"), map(int, re.findall(r"(\d+)", res.stdout))))
    assert counts["marked"] >= 1 and counts["village"] >= 1 and counts["county"] >= 1, res.stdout
    row = _one(app_engine, "SELECT overdue_at, escalation_level, version FROM event WHERE id = :e", e=late_event)
    assert row["overdue_at"] is not None and row["escalation_level"] == 2 and row["version"] == 6
    actions = [r["action"] for r in _all(app_engine, late_event)]
    assert actions[-3:] == ["mark_overdue", "escalate", "escalate"]
    # A second run finds nothing new for this event.
    again = _run(pg, "events", "check-overdue")
    assert again.exit_code == 0
    assert _one(app_engine, "SELECT version FROM event WHERE id = :e", e=late_event)["version"] == 6


def _all(engine, event_id):
    from geodata.db import SYSTEM, apply_scope

    with engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        return conn.execute(text("SELECT action, actor FROM event_history WHERE event_id = :e ORDER BY version"),
                            {"e": event_id}).mappings().all()


def test_watch_runs_rounds_and_bad_margins_are_refused(pg, demo_db):
    res = _exec(pg, "events", "watch", "--every", "5", "--rounds", "1")
    assert res.returncode == 0, res.stderr
    assert "marked" in res.stdout and "checking every 5 s" in res.stderr
    bad = _run(pg, "events", "check-overdue", "--village-after", "48", "--county-after", "24")
    assert bad.exit_code == 2 and "--county-after must not be shorter" in bad.stderr


def test_api_keys_add_list_disable(pg, app_engine, owner_engine, demo_db):
    code, vid = _one(app_engine, "SELECT code, id FROM village ORDER BY id LIMIT 1").values()
    try:
        res = _run(pg, "api-key", "add", "test-cli-12345", "--village", code, "--source", "hotline")
        assert res.exit_code == 0, res.output
        key = re.search(r"api_key: (dvk_\S+)", res.stdout).group(1)
        client_id = int(re.search(r"client (\d+)", res.stdout).group(1))
        from geodata import events as ev
        from geodata.db import SYSTEM, make_sessionmaker, scoped

        factory = make_sessionmaker(app_engine)
        with scoped(factory, SYSTEM) as s:
            found = ev.find_api_client(s, key)
        assert found is not None and found.id == client_id and found.village_ids == frozenset({vid})

        listed = _run(pg, "api-key", "list")
        line = next(ln for ln in listed.stdout.splitlines() if "test-cli-12345" in ln)
        assert "active" in line and key[:10] in line and key not in listed.stdout  # never the whole key

        dup = _run(pg, "api-key", "add", "test-cli-12345")  # names are unique
        assert dup.exit_code != 0 and "exists already" in dup.stderr
        unknown = _run(pg, "api-key", "add", "test-cli-nowhere", "--village", "999999999999")
        assert unknown.exit_code != 0 and "no village with code" in unknown.stderr

        off = _run(pg, "api-key", "disable", str(client_id))
        assert off.exit_code == 0 and "disabled" in off.stdout
        with scoped(factory, SYSTEM) as s:
            assert ev.find_api_client(s, key) is None
        listed = _run(pg, "api-key", "list").stdout
        assert "disabled" in next(ln for ln in listed.splitlines() if "test-cli-12345" in ln)
        again = _run(pg, "api-key", "disable", str(client_id))
        assert again.exit_code == 1 and "no active client" in again.stderr
    finally:
        with owner_engine.begin() as conn:
            conn.execute(text("DELETE FROM api_client WHERE name LIKE 'test-cli-%'"))
