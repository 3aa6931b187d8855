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


def test_points_are_the_newest_in_view_across_the_time_slices(db_session):
    """event_points reads slices (7 d, 30 d, 90 d, …) newest first: the result is still the newest N."""
    x, y = db_session.execute(text("SELECT ST_X(label_point) + 0.00037, ST_Y(label_point) + 0.00041"
                                   " FROM village ORDER BY id LIMIT 1")).one()
    ref = ev.create_event(db_session, lon=x, lat=y, subclass="0102", description="切片测试",
                          source="patrol", actor=ev.Actor.system())
    cols = [c for c in db_session.execute(text(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'event' ORDER BY ordinal_position"
    )).scalars() if c not in ("id", "reported_at")]
    ages = [0.5, 3, 10, 20, 45, 80, 100, 200, 400, 800, 1000, 2000]  # days: one or more per slice
    for age in ages:
        db_session.execute(text(
            f"INSERT INTO event (id, reported_at, {', '.join(cols)})"
            f" SELECT nextval('event_id_seq'), now() - make_interval(secs => :age * 86400), {', '.join(cols)}"
            f" FROM event WHERE id = :id AND reported_at = :at"), {"age": age, "id": ref.id, "at": ref.reported_at})
    box = (x - 1e-5, y - 1e-5, x + 1e-5, y + 1e-5)
    newest = db_session.execute(text(
        "SELECT id FROM event WHERE geom && ST_MakeEnvelope(:w, :s, :e, :n, 4490) ORDER BY reported_at DESC"),
        dict(zip("wsen", box))).scalars().all()
    assert len(newest) == len(ages) + 1
    for limit in (1, 2, 4, 7, 13, 50):
        got = [f["properties"]["id"] for f in q.event_points(db_session, box, state_group="all", days=3650,
                                                              limit=limit)["features"]]
        assert sorted(got) == sorted(newest[:limit]), limit
    within_90 = [f["properties"]["id"] for f in q.event_points(db_session, box, state_group="all", days=90)["features"]]
    assert sorted(within_90) == sorted(newest[:7])  # now, 0.5, 3, 10, 20, 45 and 80 days ago
    # a cut view says so, and the map tells the user
    assert q.event_points(db_session, box, state_group="all", days=3650, limit=4)["truncated"] == 4
    assert "truncated" not in q.event_points(db_session, box, state_group="all", days=3650, limit=50)
    from layers.events import truncation_note as events_layer_note

    assert "最新 4 件" in events_layer_note({"type": "FeatureCollection", "features": [], "truncated": 4}, "zh")
    assert "newest 3,000" in events_layer_note({"features": [], "truncated": 3000}, "en")
    assert events_layer_note({"type": "FeatureCollection", "features": []}, "zh") == ""
