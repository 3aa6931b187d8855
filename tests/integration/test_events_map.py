"""The events layer: counts zoomed out, points zoomed in, filters, RLS."""
from __future__ import annotations

from sqlalchemy import text

from geodata import events as ev
from geodata.db import Scope, apply_scope
from geodata.queries import events_map as q
from layers.base import ViewRequest
from layers.events import EventLayer


def _report(session, n=5):
    pts = session.execute(text(
        "SELECT v.id, ST_X(v.label_point), ST_Y(v.label_point) FROM village v ORDER BY v.id LIMIT 2")).all()
    refs = []
    for i in range(n):
        vid, x, y = pts[i % 2]
        refs.append(ev.create_event(session, lon=x, lat=y, subclass="0102", description=f"垃圾满溢 {i}",
                                    source="patrol", actor=ev.Actor.system()))
    return pts, refs


def _by_name(features):
    return {f["properties"]["name"]: f["properties"]["count"] for f in features}


def test_counts_and_points_agree_and_filters_apply(db_session):
    # Other tests may have committed events: compare with what was there before.
    before = _by_name(q.event_counts(db_session, "village", state_group="all", days=30)["features"])
    grid_before = sum(f["properties"]["count"] for f in q.event_counts(db_session, "grid", state_group="open")["features"])
    pts, refs = _report(db_session, 5)
    counts = _by_name(q.event_counts(db_session, "village", state_group="all", days=30)["features"])
    delta = {k: v - before.get(k, 0) for k, v in counts.items() if v != before.get(k, 0)}
    assert sorted(delta.values()) == [2, 3]
    grid_counts = q.event_counts(db_session, "grid", state_group="open", days=30)["features"]
    assert sum(f["properties"]["count"] for f in grid_counts) - grid_before == 5
    x, y = pts[0][1], pts[0][2]
    near = q.event_points(db_session, (x - 0.0001, y - 0.0001, x + 0.0001, y + 0.0001), state_group="all")["features"]
    mine = [f for f in near if f["properties"]["id"] in {r.id for r in refs}]
    assert len(mine) == 3 and all(f["properties"]["state"] == "reported" for f in mine)
    assert q.event_points(db_session, (x - 0.001, y - 0.001, x + 0.001, y + 0.001), state_group="closed")["features"] == []
    assert not any(f["properties"]["id"] in {r.id for r in refs}
                   for f in q.event_points(db_session, (x - 0.0001, y - 0.0001, x + 0.0001, y + 0.0001),
                                           state_group="all", class_code="02")["features"])


def test_layer_switches_from_counts_to_points_by_zoom(db_session):
    pts, _ = _report(db_session, 2)
    layer = EventLayer()
    x, y = pts[0][1], pts[0][2]
    out = layer.features(db_session, ViewRequest((x - 0.01, y - 0.01, x + 0.01, y + 0.01), 10, options={"state": "all"}))
    assert all(f["properties"]["kind"] == "event_aggregate" for f in out["features"])
    out = layer.features(db_session, ViewRequest((x - 0.01, y - 0.01, x + 0.01, y + 0.01), 15, options={"state": "all"}))
    assert out["features"] and all(f["properties"]["kind"] == "event" for f in out["features"])


def test_a_village_scope_sees_only_its_events(db_session):
    pts, _ = _report(db_session, 4)
    conn = db_session.connection()
    apply_scope(conn, Scope.villages([pts[0][0]], "village_official"))
    counts = q.event_counts(db_session, "village", state_group="all")["features"]
    assert len(counts) == 1 and counts[0]["properties"]["count"] >= 2
