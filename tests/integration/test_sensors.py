"""The sensor ingest service against the real PostGIS: store once, order, hysteresis,
one event per episode routed by location, clearing noted, offline detection, RLS,
counters, and the gateways' HTTP endpoint."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import pool, text

from geodata import events as ev
from geodata import sensors as sn
from geodata.db import SYSTEM, Scope, ScopedSession, apply_scope, make_engine, make_sessionmaker, scoped
from map_app.sensor_api import init_sensor_api
from tests.conftest import rolled_back_session
from tests.integration.event_world import build_world, destroy_world
from tests.integration.sensor_world import add_sensor, remove_sensors, scalar

COUNTY = "960001"


@pytest.fixture(scope="module")
def world(owner_engine):
    w = build_world(owner_engine, prefix="96")
    a1, b1, vq = w.P_A1, w.P_B1, w.P_VILLAGE_QUEUE
    w.sensors = {
        "TB": add_sensor(owner_engine, "T96-TB-1", "trash_bin", w.village_a, *a1),
        "MH": add_sensor(owner_engine, "T96-MH-1", "manhole", w.village_b, *b1),
        "SM": add_sensor(owner_engine, "T96-SM-1", "smoke", w.village_a, *vq),
        "GH": add_sensor(owner_engine, "T96-GH-1", "geohazard", w.village_a, a1[0] + 0.002, a1[1]),
        "EV": add_sensor(owner_engine, "T96-EV-1", "environment", w.village_a, a1[0], a1[1] + 0.002),
        "HTTP": add_sensor(owner_engine, "T96-TB-2", "trash_bin", w.village_a, a1[0] + 0.001, a1[1]),
        "HTTPB": add_sensor(owner_engine, "T96-TB-3", "trash_bin", w.village_b, b1[0] + 0.001, b1[1]),
    }
    yield w
    remove_sensors(owner_engine, w.sensors.values())
    with owner_engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        conn.execute(text("DELETE FROM api_client WHERE name LIKE 't96-%'"))
        # the big screen's daily counts keep zero rows pointing at the town (migration 0008)
        conn.execute(text("DELETE FROM event_daily WHERE town_id = :t"), {"t": w.town_id})
    destroy_world(owner_engine, w)


@pytest.fixture
def s(app_engine, world):
    """A county-scope app session whose work is rolled back after the test."""
    yield from rolled_back_session(app_engine)


def now(s):
    return s.execute(text("SELECT now()")).scalar_one()


def item(code, seq, values, at):
    body = json.dumps({"seq": seq, "measured_at": at.isoformat(), "values": values})
    return sn.RawReading(body, sn.reading_topic(COUNTY, code))


def feed(s, code, values, start, step=timedelta(minutes=1), first_seq=1, one_by_one=True):
    items = [item(code, first_seq + k, {"fill_pct": v} if not isinstance(v, dict) else v, start + k * step)
             for k, v in enumerate(values)]
    if one_by_one:
        return [sn.ingest(s, [i], county=COUNTY) for i in items]
    return [sn.ingest(s, items, county=COUNTY)]


def sensor_row(s, sid):
    return s.execute(text("SELECT status, last_seq, last_seen_at, last_values FROM sensor WHERE id = :id"),
                     {"id": sid}).mappings().one()


def episodes(s, sid, kind="threshold"):
    return s.execute(text("SELECT * FROM sensor_alarm WHERE sensor_id = :id AND kind = :k ORDER BY id"),
                     {"id": sid, "k": kind}).mappings().all()


def counters(s):
    return {(r["outcome"], r["reason"]): r["count"] for r in sn.ingest_stats(s)}


def test_readings_are_stored_once_and_late_ones_do_not_move_the_sensor(s, world):
    sid, t0 = world.sensors["TB"], now(s) - timedelta(hours=1)
    before = counters(s)
    outcomes = []
    for seq in (3, 1, 5, 2, 3, 4):
        r = sn.ingest(s, [item("T96-TB-1", seq, {"fill_pct": 10 * seq}, t0 + timedelta(minutes=seq))], county=COUNTY)
        outcomes += r.outcomes
    assert outcomes == ["stored", "late", "stored", "late", "duplicate", "late"]
    assert s.execute(text("SELECT count(*) FROM sensor_reading WHERE sensor_id = :id"), {"id": sid}).scalar() == 5
    row = sensor_row(s, sid)
    assert row["last_seq"] == 5 and row["last_values"] == {"fill_pct": 50}
    assert row["last_seen_at"] == t0 + timedelta(minutes=5)
    # the same reading twice in one batch, and again later: stored once
    r = sn.ingest(s, [item("T96-TB-1", 6, {"fill_pct": 1}, t0 + timedelta(minutes=6))] * 2, county=COUNTY)
    assert r.outcomes == ["stored", "duplicate"]
    after = counters(s)
    assert after[("stored", "")] - before.get(("stored", ""), 0) == 3
    assert after[("late", "")] - before.get(("late", ""), 0) == 3
    assert after[("duplicate", "")] - before.get(("duplicate", ""), 0) == 2


@pytest.mark.parametrize("one_by_one", [True, False], ids=["message-by-message", "one-batch"])
def test_hysteresis_one_event_per_episode_routed_to_the_grid_worker(s, world, one_by_one):
    sid, t0 = world.sensors["TB"], now(s) - timedelta(hours=2)
    # 85 raises; 79/81/72/78 hover inside the band and hold it; 69 clears; 75, 79 stay normal; 83 raises again
    values = [50, 85, 79, 81, 72, 78, 69, 75, 79, 83]
    results = feed(s, "T96-TB-1", values, t0, one_by_one=one_by_one)
    assert sum(r.alarms_opened for r in results) == 2 and sum(r.alarms_cleared for r in results) == 1
    first, second = episodes(s, sid)
    assert (first["open_seq"], first["clear_seq"], first["peak_value"]) == (2, 7, 85)
    assert first["reading_seqs"] == [2, 3, 4, 5, 6, 7]
    assert first["opened_at"] == t0 + timedelta(minutes=1) and first["cleared_at"] == t0 + timedelta(minutes=6)
    assert second["cleared_at"] is None and second["reading_seqs"] == [10]
    events = s.execute(text("SELECT id FROM event WHERE sensor_id = :id ORDER BY id"), {"id": sid}).scalars().all()
    assert events == [first["event_id"], second["event_id"]]

    e = ev.get_event(s, first["event_id"])
    assert (e["source"], e["subclass_code"], e["department"], e["queue"]) == ("sensor", "0102", "sanitation", "grid")
    assert e["worker_id"] == world.workers["a1"] and e["grid_uid"] == world.grids["a1"]
    assert "T96-TB-1" in e["description"] and e["state"] == "reported"
    history = ev.event_history(s, first["event_id"])
    assert [h["action"] for h in history] == ["report", ev.NOTE]
    assert "告警解除" in history[1]["note"] and "Alarm cleared" in history[1]["note"]
    assert history[1]["data"]["clear_seq"] == 7 and history[1]["to_state"] == "reported"
    assert e["version"] == 2
    assert [h["action"] for h in ev.event_history(s, second["event_id"])] == ["report"]
    assert sensor_row(s, sid)["status"] == "alarm"
    # the panel's view of it
    alarm = sn.alarm_for_event(s, first["event_id"])
    assert [r["seq"] for r in alarm["readings"]] == [2, 3, 4, 5, 6, 7]


def test_each_sensor_type_opens_its_own_subclass(s, world):
    t0 = now(s) - timedelta(minutes=30)
    cases = [
        ("T96-MH-1", world.sensors["MH"], {"tilt_deg": 22.5, "cover_open": False}, "0302", "urgent", "grid"),
        ("T96-SM-1", world.sensors["SM"], {"smoke_obscura": 14.2}, "0501", "emergency", "village"),
        ("T96-GH-1", world.sensors["GH"], {"displacement_mm": 3.1, "rain_mm": 42.0}, "0502", "urgent", "grid"),
        ("T96-EV-1", world.sensors["EV"], {"pm25": 30, "noise_db": 78.5}, "0506", "normal", "grid"),
    ]
    for code, sid, values, subclass, urgency, queue in cases:
        r = sn.ingest(s, [item(code, 1, values, t0)], county=COUNTY)
        assert r.alarms_opened == 1 and len(r.events) == 1, code
        e = ev.get_event(s, r.events[0])
        assert (e["subclass_code"], e["urgency"], e["queue"], e["source"]) == (subclass, urgency, queue, "sensor"), code
    # the manhole's cover then opens too: a second rule, a second episode and event
    r = sn.ingest(s, [item("T96-MH-1", 2, {"tilt_deg": 23.0, "cover_open": True}, t0 + timedelta(minutes=1))],
                  county=COUNTY)
    assert r.alarms_opened == 1 and ev.get_event(s, r.events[0])["subclass_code"] == "0301"
    # the next normal reading clears both, each event gets its note
    r = sn.ingest(s, [item("T96-MH-1", 3, {"tilt_deg": 1.0, "cover_open": False}, t0 + timedelta(minutes=2))],
                  county=COUNTY)
    assert r.alarms_cleared == 2 and sensor_row(s, world.sensors["MH"])["status"] == "normal"
    notes = s.execute(text("SELECT count(*) FROM event_history h JOIN event e ON e.id = h.event_id"
                           " WHERE e.sensor_id = :id AND h.action = 'note'"), {"id": world.sensors["MH"]}).scalar()
    assert notes == 2


def test_silent_sensors_go_offline_and_come_back(s, world):
    sid = world.sensors["SM"]
    db_now = now(s)
    limit = dict(s.execute(text("SELECT code, report_interval_s * offline_after_reports FROM sensor_type")).all())
    interval = limit["smoke"]
    last = db_now - timedelta(seconds=interval + 60)
    s.execute(text("UPDATE sensor SET last_seen_at = :t, last_seq = 10 WHERE id = :id"), {"t": last, "id": sid})
    # silent for a little less than its own limit: still online
    s.execute(text("UPDATE sensor SET last_seen_at = :t WHERE id = :id"),
              {"t": db_now - timedelta(seconds=limit["manhole"] - 60), "id": world.sensors["MH"]})
    assert sn.check_offline(s)["opened"] >= 1
    assert sensor_row(s, sid)["status"] == "offline"
    assert sensor_row(s, world.sensors["MH"])["status"] == "normal"
    (episode,) = episodes(s, sid, "offline")
    assert episode["opened_at"] == last + timedelta(seconds=interval) and episode["open_seq"] == 10
    assert episode["event_id"] is None  # offline is the device's matter, not a governance event
    assert sn.check_offline(s)["opened"] == 0  # one episode per silence
    assert len(episodes(s, sid, "offline")) == 1
    # a reading older than the last one proves nothing; a newer one ends the silence
    r = sn.ingest(s, [item("T96-SM-1", 9, {"smoke_obscura": 0.3}, last - timedelta(minutes=5))], county=COUNTY)
    assert r.outcomes == ["late"] and sensor_row(s, sid)["status"] == "offline"
    r = sn.ingest(s, [item("T96-SM-1", 11, {"smoke_obscura": 0.3}, db_now)], county=COUNTY)
    assert r.offline_cleared == 1 and sensor_row(s, sid)["status"] == "normal"
    (episode,) = episodes(s, sid, "offline")
    assert episode["cleared_at"] == db_now and episode["clear_seq"] == 11


def test_malformed_items_are_counted_and_sampled_in_the_log(s, world):
    t0 = now(s)
    bad = [sn.RawReading(b"not json", sn.reading_topic(COUNTY, "T96-TB-1")) for _ in range(55)]
    bad += [sn.RawReading(b"{}", "dvmap/other/T96-TB-1/reading"),
            item("T96-NOPE", 1, {"fill_pct": 1}, t0),
            item("T96-TB-1", 1, {"fill_pct": 1}, t0 + timedelta(hours=2)),
            sn.RawReading(b"x" * 5000, sn.reading_topic(COUNTY, "T96-TB-1"))]
    good = [item("T96-TB-1", 100, {"fill_pct": 12}, t0)]
    before = counters(s)
    logged_before = s.execute(text("SELECT count(*) FROM sensor_ingest_rejection")).scalar()
    r = sn.ingest(s, bad + good, county=COUNTY)
    assert r.stored == 1 and len(r.rejected) == 59
    assert [x.reason for x in r.rejected[-4:]] == ["bad_topic", "unknown_sensor", "future_time", "too_large"]
    after = counters(s)
    grew = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
    assert grew == {("stored", ""): 1, ("rejected", "not_json"): 55, ("rejected", "bad_topic"): 1,
                    ("rejected", "unknown_sensor"): 1, ("rejected", "future_time"): 1, ("rejected", "too_large"): 1}
    rows = s.execute(text("SELECT reason, payload, source FROM sensor_ingest_rejection ORDER BY id DESC LIMIT 50")
                     ).mappings().all()
    assert s.execute(text("SELECT count(*) FROM sensor_ingest_rejection")).scalar() - logged_before == \
        sn.REJECTION_ROWS_PER_CALL
    assert all(r["source"] == "mqtt" and len(r["payload"]) <= 1000 for r in rows)
    with pytest.raises(sn.SensorInputError):
        sn.ingest(s, bad * (sn.MAX_BATCH // len(bad) + 1))


def test_episodes_follow_the_villages_scope(s, world, app_engine):
    t0 = now(s) - timedelta(minutes=5)
    sn.ingest(s, [item("T96-MH-1", 50, {"tilt_deg": 30.0}, t0), item("T96-TB-1", 50, {"fill_pct": 95}, t0)],
              county=COUNTY)
    mine = {world.sensors["MH"], world.sensors["TB"]}
    seen = {r[0] for r in s.execute(text("SELECT sensor_id FROM sensor_alarm")) if r[0] in mine}
    assert seen == mine
    # the same connection under village A's scope sees A's episode only, and cannot feed B's sensor
    s.commit()  # ends the savepoint; the outer transaction is still rolled back afterwards
    village_a = ScopedSession(bind=s.get_bind(), join_transaction_mode="create_savepoint",
                              info={"scope": Scope.villages([world.village_a], "village_official")})
    try:
        village_a.begin()
        assert {r[0] for r in village_a.execute(text("SELECT sensor_id FROM sensor_alarm"))} & mine == \
            {world.sensors["TB"]}
        r = sn.ingest(village_a, [item("T96-MH-1", 51, {"tilt_deg": 1.0}, t0)], county=COUNTY)
        assert [x.reason for x in r.rejected] == ["unknown_sensor"]
    finally:
        village_a.close()


def test_live_views_for_the_map(s, world):
    since = now(s) - timedelta(seconds=1)
    before = sn.status_counts(s)
    sn.ingest(s, [item("T96-TB-1", 70, {"fill_pct": 90}, since)], county=COUNTY)
    after = sn.status_counts(s)
    assert after["alarm"] == before["alarm"] + 1 and after["online"] == before["online"]
    assert after["total"] == after["online"] + after["offline"]
    _, changes = sn.status_changes(s, since)
    assert changes.get(world.sensors["TB"]) == "alarm"
    units = sn.unit_counts(s)
    assert units[f"village-{world.village_a}"][1] >= 1
    assert units[f"town-{world.town_id}"][0] == sum(v[0] for k, v in units.items()
                                                     if k in (f"village-{world.village_a}", f"village-{world.village_b}"))
    assert sn.unit_counts(s, ["smoke"])[f"village-{world.village_a}"] == [1, 0, 0]
    series = sn.reading_series(s, world.sensors["TB"])
    assert series["values"][-1] == 90 and series["rules"][0]["raise_level"] == 80


# -- the gateways' HTTP endpoint --------------------------------------------------------

@pytest.fixture(scope="module")
def api(pg, world, owner_engine):
    engine = make_engine(pg.app_url, poolclass=pool.NullPool)
    factory = make_sessionmaker(engine)
    with scoped(make_sessionmaker(owner_engine), SYSTEM) as session, session.begin():
        _, county_key = sn.create_gateway_key(session, "t96-gateway")
        _, village_key = sn.create_gateway_key(session, "t96-gateway-b", [world.village_b])
        _, hotline_key = ev.create_api_client(session, "t96-hotline")
    app = Flask("sensor-api-test")
    init_sensor_api(app, factory)
    yield {"client": app.test_client(), "county": county_key, "b": village_key, "hotline": hotline_key}
    engine.dispose()


def post(api, key, readings, header="X-API-Key"):
    headers = {header: key if header == "X-API-Key" else f"Bearer {key}"} if key else {}
    return api["client"].post("/api/sensors/readings", json={"readings": readings}, headers=headers)


def http_item(code, seq, value, minutes_ago=1):
    from datetime import datetime, timezone

    at = datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)
    return {"sensor": code, "seq": seq, "measured_at": at.isoformat(), "values": {"fill_pct": value}}


def test_gateway_batch_is_stored_once_and_opens_one_event(api, world, app_engine):
    batch = [http_item("T96-TB-2", 1, 40, 5), http_item("T96-TB-2", 2, 92, 4), http_item("T96-TB-2", 3, 88, 3),
             {"sensor": "T96-TB-2", "seq": "x"}]
    resp = post(api, api["county"], batch)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert (body["stored"], body["duplicates"], body["alarms_opened"]) == (3, 0, 1)
    assert body["rejected"] == [{"index": 3, "reason": "bad_seq", "message_zh": sn.REASONS["bad_seq"][0],
                                 "message_en": sn.REASONS["bad_seq"][1]}]
    (event_id,) = body["events"]
    # the gateway retries the same batch (its answer was lost): nothing new
    again = post(api, api["county"], batch, header="Authorization").get_json()
    assert (again["stored"], again["duplicates"], again["alarms_opened"], again["events"]) == (0, 3, 0, [])
    sid = world.sensors["HTTP"]
    assert scalar(app_engine, "SELECT count(*) FROM sensor_reading WHERE sensor_id = :id", id=sid) == 3
    assert scalar(app_engine, "SELECT count(*) FROM event WHERE sensor_id = :id", id=sid) == 1
    assert scalar(app_engine, "SELECT worker_id FROM event WHERE id = :id", id=event_id) == world.workers["a1"]
    counts = scalar(app_engine, "SELECT sum(count) FROM sensor_ingest_counter WHERE source = 'http'"
                                " AND outcome = 'duplicate'")
    assert counts >= 3


def test_gateway_keys_and_bad_requests(api, world):
    for key in (None, "dvk_wrong", api["hotline"]):  # an Open311 key is no gateway key
        resp = post(api, key, [http_item("T96-TB-2", 9, 1)])
        assert resp.status_code == 401
        err = resp.get_json()["error"]
        assert err["code"] == "bad_key" and err["message_zh"] and err["message_en"]
    # a key limited to village B: A's sensor is unknown to it, B's is fine
    body = post(api, api["b"], [http_item("T96-TB-2", 10, 1), http_item("T96-TB-3", 1, 1)]).get_json()
    assert [r["reason"] for r in body["rejected"]] == ["unknown_sensor"] and body["stored"] == 1
    client = api["client"]
    resp = client.post("/api/sensors/readings", data="nope", headers={"X-API-Key": api["county"]})
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "bad_body"
    resp = post(api, api["county"], [http_item("T96-TB-2", 1, 1)] * (sn.MAX_BATCH + 1))
    assert resp.status_code == 413


def test_the_app_lets_gateways_through_its_login_guard(pg, api):
    from map_app.app import create_app

    app = create_app(pg.app_url)
    init_sensor_api(app.server)
    client = app.server.test_client()
    resp = client.post("/api/sensors/readings", json={"readings": []}, headers={"X-API-Key": api["county"]})
    assert resp.status_code == 200 and resp.get_json()["received"] == 0
    resp = client.post("/api/sensors/readings", json={"readings": []})
    assert resp.status_code == 401 and resp.get_json()["error"]["code"] == "bad_key"  # the key check, not a login page


def test_the_live_patch_sends_only_what_changed(s, world):
    from layers.registry import LAYERS

    layer = LAYERS["sensors"]
    hideout = layer.initial_hideout(s)

    def ops(patch):
        return {tuple(o["location"]): o["params"]["value"] for o in patch.to_plotly_json()["operations"]}

    def apply(patch):  # what the browser does with it
        for (*path, last), value in ops(patch).items():
            target = hideout
            for key in path:
                target = target[key]
            target[last] = value

    first = layer.live_patch(s, hideout, None)
    assert ops(first)[("agg",)] == sn.unit_counts(s) and ("agg_types",) in ops(first)
    apply(first)
    assert layer.live_patch(s, hideout, None) is None  # a quiet tick sends nothing, so nothing is redrawn
    sid = world.sensors["TB"]
    before = hideout["agg"][f"village-{world.village_a}"]
    sn.ingest(s, [item("T96-TB-1", 300, {"fill_pct": 97}, now(s))], county=COUNTY)
    changed = layer.live_patch(s, hideout, None)
    assert ops(changed)[("live", str(sid))] == "alarm"
    assert ops(changed)[("agg", f"village-{world.village_a}")] == [before[0], before[1] + 1, before[2]]
    assert set(ops(changed)) == {("live", str(sid)), ("agg", f"village-{world.village_a}"),
                                 ("agg", f"town-{world.town_id}"), ("live_since",)}
    apply(changed)
    assert layer.live_patch(s, hideout, None) is None
    # other sub-types chosen: the counts are replaced for them
    assert ops(layer.live_patch(s, hideout, ["smoke"]))[("agg_types",)] == ["smoke"]
