"""Late readings still raise and clear alarms (issue 14): evaluated by measured time, not by
arrival, exactly once under redelivery — in the ingest service, under two concurrent
writers, and end to end through a real Mosquitto restarted mid-stream."""
from __future__ import annotations

import json
import random
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from etl.mqtt import LocalBroker, make_client
from etl.sensor_ingest import IngestWorker
from geodata import sensors as sn
from geodata.db import SYSTEM, Database, apply_scope
from tests.conftest import rolled_back_session
from tests.integration.event_world import build_world, destroy_world
from tests.integration.sensor_world import add_sensor, free_port, remove_sensors, scalar

COUNTY = "870001"
E2E_SENSORS = 10  # half get their alarm redelivered by the broker, half publish it out of order
# pm25 (raise > 75, clear <= 60) and noise_db (raise > 70, clear <= 65): bands, splits and merges
PM25 = [30, 100, 70, 65, 50, 80, 90, 62, 61, 40, 100, 30, 76, 61]
NOISE = [50, 60, 72, 71, 66, 64, 75, 80, 60, 50, 50, 71, 69, 60]


@pytest.fixture(scope="module")
def world(owner_engine):
    w = build_world(owner_engine, prefix="87")
    x, y = w.P_A1
    codes = ["ISSUE", "ORDER", "ARRIVAL", "LOCK", "OLD"] + [f"E{i:02d}" for i in range(E2E_SENSORS)]
    w.sensors = {c: add_sensor(owner_engine, f"T87-EV-{c}", "environment", w.village_a, x + 0.0001 * k, y)
                 for k, c in enumerate(codes)}
    yield w
    remove_sensors(owner_engine, w.sensors.values())
    with owner_engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        conn.execute(text("DELETE FROM event_daily WHERE town_id = :t"), {"t": w.town_id})
    destroy_world(owner_engine, w)


@pytest.fixture
def s(app_engine, world):
    yield from rolled_back_session(app_engine)


def item(code, seq, values, at):
    body = json.dumps({"seq": seq, "measured_at": at.isoformat(), "values": values})
    return sn.RawReading(body, sn.reading_topic(COUNTY, f"T87-EV-{code}"))


def episodes(s, sid):
    """Everything a person sees of a sensor's episodes, without ids: comparable across sensors."""
    rows = s.execute(text(
        """
        SELECT r.code AS rule, a.opened_at, a.open_seq, a.open_value, a.peak_value, a.cleared_at, a.clear_seq,
               a.clear_value, a.reading_seqs, a.event_id IS NOT NULL AS has_event,
               (SELECT count(*) FROM event_history h WHERE h.event_id = a.event_id AND h.action = 'note') AS notes
          FROM sensor_alarm a JOIN sensor_rule r ON r.id = a.rule_id
         WHERE a.sensor_id = :id AND a.kind = 'threshold' ORDER BY r.code, a.opened_at
        """), {"id": sid}).mappings().all()
    return [dict(r) for r in rows]


def events(s, sid):
    return s.execute(text("SELECT count(*) FROM event WHERE sensor_id = :id"), {"id": sid}).scalar()


def status(s, sid):
    return s.execute(text("SELECT status FROM sensor WHERE id = :id"), {"id": sid}).scalar()


def test_redelivered_alarm_readings_after_a_newer_normal_one_open_their_episode_once(s, world):
    """The reported case: pm25 = 100 at seq 41713–41714 arrive after seq 41715 (normal)."""
    sid, t0 = world.sensors["ISSUE"], s.execute(text("SELECT now()")).scalar() - timedelta(minutes=30)
    at = lambda seq: t0 + timedelta(minutes=seq - 41710)  # noqa: E731
    for seq in (41710, 41711, 41712, 41715):
        sn.ingest(s, [item("ISSUE", seq, {"pm25": 30}, at(seq))], county=COUNTY)
    assert episodes(s, sid) == []
    late = [item("ISSUE", seq, {"pm25": 100}, at(seq)) for seq in (41713, 41714)]
    r = sn.ingest(s, late, county=COUNTY)
    assert r.outcomes == ["late", "late"]
    assert (r.alarms_opened, r.alarms_cleared, len(r.events)) == (1, 1, 1)
    (ep,) = episodes(s, sid)
    assert (ep["open_seq"], ep["clear_seq"], ep["peak_value"], ep["clear_value"]) == (41713, 41715, 100, 30)
    assert ep["reading_seqs"] == [41713, 41714, 41715]
    assert ep["opened_at"] == at(41713) and ep["cleared_at"] == at(41715)
    assert ep["has_event"] and ep["notes"] == 1  # raised and, like in order, its clearing noted
    assert status(s, sid) == "normal"
    assert s.execute(text("SELECT last_seq FROM sensor WHERE id = :id"), {"id": sid}).scalar() == 41715
    # the broker hands them over again, alone and mixed with the rest: nothing new
    for batch in (late, late[::-1], [item("ISSUE", q, {"pm25": 30}, at(q)) for q in (41712, 41715)] + late):
        r = sn.ingest(s, batch, county=COUNTY)
        assert r.stored == r.late == r.alarms_opened == r.alarms_cleared == 0 and r.events == []
    assert len(episodes(s, sid)) == 1 and events(s, sid) == 1 and episodes(s, sid)[0]["notes"] == 1


def _orders(n):
    """Arrival orders (lists of batches of reading indexes) that are not measured order."""
    rng = random.Random(14)
    one = lambda order: [[i] for i in order]  # noqa: E731
    orders = {"reverse": one(range(n - 1, -1, -1)),
              "alarms-after-the-next-normal": one([0, 2, 1, 3, 4, 5, 7, 8, 6, 9, 11, 10, 12, 13])}
    for k in range(4):
        order = list(range(n))
        rng.shuffle(order)
        orders[f"shuffle-{k}"] = one(order)
    order = list(range(n))
    rng.shuffle(order)
    orders["shuffled-batches"] = [order[:5], order[5:9], order[9:]]
    twice = list(range(n)) * 2
    rng.shuffle(twice)
    orders["each-twice"] = one(twice)
    return orders


@pytest.mark.parametrize("name", list(_orders(len(PM25))))
def test_any_arrival_order_gives_the_in_order_episodes_and_events(s, world, name):
    sid, ref = world.sensors["ARRIVAL"], world.sensors["ORDER"]
    t0 = s.execute(text("SELECT now()")).scalar() - timedelta(hours=2)
    values = [{"pm25": p, "noise_db": n} for p, n in zip(PM25, NOISE)]
    for k, v in enumerate(values):  # the reference: one by one, in measured order
        sn.ingest(s, [item("ORDER", 100 + k, v, t0 + timedelta(minutes=k))], county=COUNTY)
    expected = episodes(s, ref)
    assert len(expected) == 7 and events(s, ref) == 7  # pm25 ×4, noise ×3; pm25 still open
    opened = cleared = 0
    for batch in _orders(len(values))[name]:
        r = sn.ingest(s, [item("ARRIVAL", 100 + k, values[k], t0 + timedelta(minutes=k)) for k in batch],
                      county=COUNTY)
        opened, cleared = opened + r.alarms_opened, cleared + r.alarms_cleared
    assert episodes(s, sid) == expected
    assert events(s, sid) == events(s, ref) and (opened, cleared) == (7, 6)
    assert status(s, sid) == status(s, ref) == "alarm"
    # a gateway replays everything: duplicates, nothing opened twice
    r = sn.ingest(s, [item("ARRIVAL", 100 + k, v, t0 + timedelta(minutes=k)) for k, v in enumerate(values)],
                  county=COUNTY)
    assert r.duplicates == len(values) and r.alarms_opened == 0 and r.events == []
    assert episodes(s, sid) == expected and events(s, sid) == 7


def test_readings_older_than_the_window_are_stored_not_evaluated(s, world):
    sid, now = world.sensors["OLD"], s.execute(text("SELECT now()")).scalar()
    sn.ingest(s, [item("OLD", 10, {"pm25": 30}, now)], county=COUNTY)
    old = now - sn.REEVALUATE_WINDOW - timedelta(minutes=5)
    r = sn.ingest(s, [item("OLD", 5, {"pm25": 100}, old)], county=COUNTY)
    assert r.outcomes == ["late"] and r.alarms_opened == 0 and episodes(s, sid) == []


def test_two_writers_for_one_sensor_take_turns(pg, world, app_engine):
    """A worker holds the sensor while it stores a newer normal reading; a gateway's late
    alarm readings for the same sensor wait for it, then see it, and raise the episode."""
    sid, db = world.sensors["LOCK"], Database(pg.app_url)
    t0 = datetime.now(timezone.utc) - timedelta(minutes=20)
    try:
        with db.session(SYSTEM) as first, first.begin():
            sn.ingest(first, [item("LOCK", q, {"pm25": 30}, t0 + timedelta(minutes=q)) for q in (1, 2)],
                      county=COUNTY)
        done = {}

        def gateway():
            with db.session(SYSTEM) as second, second.begin():
                done["result"] = sn.ingest(second, [item("LOCK", q, {"pm25": 100}, t0 + timedelta(minutes=q))
                                                    for q in (3, 4)], source="http")

        with db.session(SYSTEM) as worker, worker.begin():
            sn.ingest(worker, [item("LOCK", 5, {"pm25": 30}, t0 + timedelta(minutes=5))], county=COUNTY)
            thread = threading.Thread(target=gateway)
            thread.start()
            time.sleep(0.5)
            assert thread.is_alive()  # waiting for the sensor's lock
        thread.join(10)
        assert not thread.is_alive() and done["result"].outcomes == ["late", "late"]
        with db.session(SYSTEM) as check:
            (ep,) = episodes(check, sid)
            assert (ep["open_seq"], ep["clear_seq"], ep["reading_seqs"]) == (3, 5, [3, 4, 5])
            assert events(check, sid) == 1 and status(check, sid) == "normal"
    finally:
        db.engine.dispose()


# -- end to end: a real Mosquitto, restarted -------------------------------------------------

def wait_until(predicate, timeout: float = 20.0, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s")


@contextmanager
def publisher(broker, name):
    client = make_client(broker.address, name, clean_session=False)
    client.connects = 0

    def on_connect(*_):
        client.connects += 1

    client.on_connect = on_connect
    client.connect_async(broker.address.host, broker.address.port, keepalive=10)
    client.loop_start()
    wait_until(lambda: client.connects == 1, timeout=10)
    try:
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


class InHandAtTheRestart(IngestWorker):
    """Had the alarm readings (pm25 = 100) of its first connection in hand, not yet
    committed, when the broker went down: never stored, never acknowledged, so the
    broker sends them again after its restart — after the newer normal readings."""

    def _process(self, batch):
        keep = [m for m in batch if not (m.generation == 1 and b'"pm25": 100' in m.payload)]
        self.stats["in_hand"] += len(batch) - len(keep)
        if keep:
            super()._process(keep)


def test_alarms_redelivered_or_published_late_across_a_broker_restart(world, pg, app_engine, tmp_path):
    broker = LocalBroker(tmp_path / "mosquitto", free_port())  # our own, never the system one
    broker.start()
    database = Database(pg.app_url)
    codes = [f"E{i:02d}" for i in range(E2E_SENSORS)]
    redelivered, republished = codes[: E2E_SENSORS // 2], codes[E2E_SENSORS // 2:]
    ids = [world.sensors[c] for c in codes]
    # three episodes per sensor: 95…30, 90/65 (band)…50, 100…30 — the last one's alarm arrives late
    values = [30, 95, 95, 30, 30, 90, 65, 50, 30, 100, 100, 30]
    t0 = datetime.now(timezone.utc) - timedelta(minutes=30)
    late_seqs = {41710, 41711}

    def send(pub, code, k):
        seq = 41701 + k
        body = json.dumps({"seq": seq, "measured_at": (t0 + timedelta(minutes=k)).isoformat(),
                           "values": {"pm25": values[k]}})
        return pub.publish(sn.reading_topic(COUNTY, f"T87-EV-{code}"), body, qos=1)

    count = lambda sql: scalar(app_engine, sql, ids=ids)  # noqa: E731
    stored = lambda: count("SELECT count(*) FROM sensor_reading WHERE sensor_id = ANY(:ids)")  # noqa: E731
    worker = InHandAtTheRestart(database, broker.address, county=COUNTY, client_id="t87-ingest", offline_every=0)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert worker.connected.wait(10)
        with publisher(broker, "t87-gateway") as pub:
            for k in range(len(values)):
                for code in codes:
                    if not (code in republished and 41701 + k in late_seqs):
                        send(pub, code, k).wait_for_publish(5)
            n_before = len(values) * E2E_SENSORS - 2 * len(republished)
            wait_until(lambda: worker.stats["in_hand"] == 2 * len(redelivered)
                       and stored() == n_before - 2 * len(redelivered))
            broker.stop()   # SIGTERM: Mosquitto saves the session with its unacknowledged messages
            broker.start()
            wait_until(lambda: pub.connects == 2, timeout=15)
            for k in (9, 10):  # the gateway sends its buffered alarm readings after the restart
                for code in republished:
                    send(pub, code, k).wait_for_publish(10)
            wait_until(lambda: stored() == len(values) * E2E_SENSORS, timeout=30)
            wait_until(lambda: worker.stats["late"] == 2 * E2E_SENSORS)
            # and the gateway, unsure, sends them once more
            for k in (9, 10):
                for code in codes:
                    send(pub, code, k).wait_for_publish(10)
            wait_until(lambda: worker.stats["duplicate"] >= 2 * E2E_SENSORS)
    finally:
        worker.stop()
        thread.join(15)
        broker.stop()
        database.engine.dispose()
    assert not thread.is_alive() and worker.stats["connects"] >= 2
    assert count("SELECT count(*) FROM sensor_reading WHERE sensor_id = ANY(:ids) AND seq IN (41710, 41711)"
                 ) == 2 * E2E_SENSORS
    expected = 3 * E2E_SENSORS
    assert count("SELECT count(*) FROM sensor_alarm WHERE sensor_id = ANY(:ids)") == expected
    assert count("SELECT count(*) FROM sensor_alarm WHERE sensor_id = ANY(:ids) AND open_seq = 41710"
                 " AND clear_seq = 41712 AND event_id IS NOT NULL") == E2E_SENSORS
    assert count("SELECT count(*) FROM event WHERE sensor_id = ANY(:ids)") == expected
    assert count("SELECT count(*) FROM event_history h JOIN event e ON e.id = h.event_id"
                 " WHERE e.sensor_id = ANY(:ids) AND h.action = 'note'") == expected  # each cleared once
    assert count("SELECT count(*) FROM sensor WHERE id = ANY(:ids) AND status = 'normal'") == E2E_SENSORS
