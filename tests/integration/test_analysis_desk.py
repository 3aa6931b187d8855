"""Planners' analysis desk (issue 18): chosen windows compared, hot spot → inspection tasks, heat classes.

Runs on the real PostGIS with the demo county and 700 demo events reported inside an
outer transaction that is rolled back at the end (the fixtures of test_analysis).
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text

from geodata.analysis.selection import EventFilter
from geodata.clock import display_zone
from geodata.db import SYSTEM, Scope, apply_scope
from tests.conftest import session_for
from tests.integration.test_analysis import events_conn, s  # noqa: F401  (shared fixtures)


def _sql_counts(s, start, end):
    rows = s.execute(text("SELECT v.name, count(*) FROM event e JOIN village v ON v.id = e.village_id"
                          " WHERE e.reported_at >= :a AND e.reported_at < :b GROUP BY v.name"),
                     {"a": start, "b": end}).all()
    return {r[0]: int(r[1]) for r in rows}


def test_two_chosen_windows_counts_per_cell_and_village(s):
    from geodata.analysis.hotspots import compare_windows

    now = datetime.now(display_zone())
    before = (now - timedelta(days=170), now - timedelta(days=140))   # far apart, not two halves
    after = (now - timedelta(days=30), now)
    res = compare_windows(s, EventFilter(), before, after, resolution=8, permutations=99)
    n0 = sum(_sql_counts(s, *before).values())
    n1 = sum(_sql_counts(s, *after).values())
    assert n0 > 30 and n1 > 30
    assert res.summary["events_before"] == n0 and res.summary["events_after"] == n1
    assert sum(f["properties"]["count_before"] for f in res.features) == n0
    assert sum(f["properties"]["count_after"] for f in res.features) == n1
    assert all(f["properties"]["delta"] == f["properties"]["count_after"] - f["properties"]["count_before"]
               for f in res.features)
    by_village = {r["village"]: r for r in res.summary["by_village"]}
    c0, c1 = _sql_counts(s, *before), _sql_counts(s, *after)
    assert set(by_village) == set(c0) | set(c1)
    for name, r in by_village.items():
        assert (r["before"], r["after"], r["delta"]) == (c0.get(name, 0), c1.get(name, 0),
                                                         c1.get(name, 0) - c0.get(name, 0))
    deltas = [abs(r["delta"]) for r in res.summary["by_village"]]
    assert deltas == sorted(deltas, reverse=True)
    assert res.params["gistar"] is True and res.params["before"][0] == before[0].isoformat()


def test_this_month_against_a_quiet_year_compares_counts(s):
    """The same month last year has no demo events: counts are still compared, Gi* is skipped and said so."""
    from geodata.analysis.hotspots import compare_windows

    now = datetime.now(display_zone())
    before = (now - timedelta(days=395), now - timedelta(days=365))
    after = (now - timedelta(days=30), now)
    res = compare_windows(s, EventFilter(), before, after, resolution=8)
    assert res.summary["events_before"] == 0 and res.summary["events_after"] > 0
    assert res.params["gistar"] is False and "30" in res.notes[1][0]
    assert res.summary["more"] == len(res.features) and res.summary["fewer"] == 0
    assert all(f["properties"]["change"] == "more" for f in res.features)


def test_heat_classes_let_the_hot_cells_stand_out(s):
    from geodata.analysis.hotspots import heat

    h = heat(s, EventFilter.last_days(180), resolution=9)
    counts = sorted(f["properties"]["count"] for f in h.features)
    top_label = h.legend[-1].label_en
    lo = int(top_label.split("–")[0].split()[0])
    # the darkest class holds only the hottest cells, not half the map
    assert sum(c >= lo for c in counts) <= max(3, len(counts) // 10)
    assert max(counts) >= lo > 3


# -- hot spot → inspection tasks ------------------------------------------------------------------------
def _hot_cell(s):
    from geodata.analysis.hotspots import events_in_cell, hotspots

    flt = EventFilter.last_days(180)
    res = hotspots(s, flt, permutations=99)
    hot = max((f for f in res.features if f["properties"]["cls"] >= 2), key=lambda f: f["properties"]["count"])
    key = hot["properties"]["_key"]
    return key, events_in_cell(s, flt, "h3", key)


def test_a_hot_cell_becomes_one_dispatched_task_per_grid(events_conn):  # noqa: F811
    from geodata.analysis.tasks import create_inspection_tasks, dominant_subclass, grids_of_cell
    from geodata.identity import Actor
    from geodata.workflow import PermissionDenied

    sys_s = session_for(events_conn)
    key, events = _hot_cell(sys_s)
    sub = dominant_subclass(events)
    assert sub == Counter(e["subclass_code"] for e in events).most_common(1)[0][0]
    grids = grids_of_cell(sys_s, "h3", key)
    assert grids
    sys_s.close()
    mgr = session_for(events_conn, Scope.county("grid_manager"))
    try:
        with pytest.raises(PermissionDenied):
            create_inspection_tasks(mgr, "run-x", "h3", key, sub, Actor("p", "planner"))
        actor = Actor("gm", "grid_manager")
        res = create_inspection_tasks(mgr, "run-abc", "h3", key, sub, actor, label="z 5.1")
        assert len(res.created) == len(grids) and not res.failed
        ids = [i for i, _ in res.created]
        rows = mgr.execute(text("SELECT id, state, source, subclass_code, grid_uid::text, description FROM event"
                                " WHERE id = ANY(:i) ORDER BY id"), {"i": ids}).mappings().all()
        assert {r["state"] for r in rows} == {"dispatched"} and {r["source"] for r in rows} == {"superior"}
        assert {r["subclass_code"] for r in rows} == {sub}
        assert sorted(r["grid_uid"] for r in rows) == sorted(g["uid"] for g in grids)  # one per grid
        assert all("run-abc" in r["description"] and "排查任务" in r["description"] for r in rows)
        notes = mgr.execute(text("SELECT action, note FROM event_history WHERE event_id = ANY(:i)"
                                 " AND action IN ('accept', 'dispatch')"), {"i": ids}).all()
        assert len(notes) == 2 * len(ids) and all("run-abc" in n.note for n in notes)
        # the same run and cell again: nothing new (client_key from run id + cell + grid)
        again = create_inspection_tasks(mgr, "run-abc", "h3", key, sub, actor)
        assert not again.created and sorted(i for i, _ in again.existing) == sorted(ids)
        n = mgr.execute(text("SELECT count(*) FROM event WHERE description LIKE '%run-abc%'")).scalar()
        assert n == len(grids)
    finally:
        mgr.close()
        apply_scope(events_conn, SYSTEM)


def test_compare_job_takes_the_chosen_dates():
    from callbacks.analysis import compare_windows_of

    spec = {"filter": {"days": 90}, "params": {"preset": "month_last_year", "before": ["2025-12-01", "2025-12-05"],
                                               "after": ["2026-12-01", "2026-12-05"]}}
    (b0, b1), (a0, a1) = compare_windows_of(spec)
    assert (b0.date().isoformat(), b1.date().isoformat()) == ("2025-12-01", "2025-12-06")  # end day included
    assert (a0.date().isoformat(), a1.date().isoformat()) == ("2026-12-01", "2026-12-06")
    assert b0.utcoffset() == timedelta(hours=8)
    spec["params"]["preset"] = "halves"
    (h0, h1), (h2, h3) = compare_windows_of(spec)
    assert h1 == h2 and (h3 - h0).days == 90
