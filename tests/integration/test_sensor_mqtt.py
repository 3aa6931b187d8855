"""The MQTT path against a real Mosquitto (a private one on a free port, started here)
and the real PostGIS: redeliveries, a broker restart mid-stream, a malformed flood,
alarms end to end, offline detection, and the CLI worker as its own process."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
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
from tests.integration.event_world import build_world, destroy_world
from tests.integration.sensor_world import add_sensor, free_port, remove_sensors, scalar

COUNTY = "950001"
STREAM = 20  # sensors of the restart stream


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = LocalBroker(tmp_path_factory.mktemp("mosquitto"), free_port())
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def world(owner_engine):
    w = build_world(owner_engine, prefix="95")
    x, y = w.P_A1
    w.sensors = {"TB": add_sensor(owner_engine, "T95-TB-1", "trash_bin", w.village_a, x, y),
                 "OFF": add_sensor(owner_engine, "T95-SM-OFF", "smoke", w.village_a, x + 0.001, y),
                 "CLI": add_sensor(owner_engine, "T95-SM-CLI", "smoke", w.village_a, x + 0.002, y)}
    for i in range(STREAM):
        w.sensors[f"S{i}"] = add_sensor(owner_engine, f"T95-SM-{i:02d}", "smoke", w.village_a,
                                        x + 0.0001 * i, y + 0.003)
    yield w
    remove_sensors(owner_engine, w.sensors.values())
    with owner_engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        conn.execute(text("DELETE FROM event_daily WHERE town_id = :t"), {"t": w.town_id})
    destroy_world(owner_engine, w)


@pytest.fixture(scope="module")
def database(pg, world):
    db = Database(pg.app_url)
    yield db
    db.engine.dispose()


def wait_until(predicate, timeout: float = 20.0, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s")


@contextmanager
def running(worker: IngestWorker):
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    assert worker.connected.wait(10), "worker did not connect"
    try:
        yield thread
    finally:
        worker.stop()
        thread.join(15)
        assert not thread.is_alive()


def make_worker(database, broker, cls=IngestWorker, **kw):
    kw.setdefault("offline_every", 0)
    return cls(database, broker.address, county=COUNTY, client_id=kw.pop("client_id", "t95-ingest"), **kw)


@contextmanager
def publisher(broker, name="t95-pub"):
    client = make_client(broker.address, name, clean_session=False)
    connected = threading.Event()
    client.on_connect = lambda *a: connected.set()
    client.connect_async(broker.address.host, broker.address.port, keepalive=10)
    client.loop_start()
    assert connected.wait(10)
    try:
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


def payload(seq: int, values: dict, at: datetime | None = None) -> bytes:
    at = at or datetime.now(timezone.utc)
    return json.dumps({"seq": seq, "measured_at": at.isoformat(), "values": values}).encode()


def send(client, code: str, seq: int, values: dict, at=None):
    return client.publish(sn.reading_topic(COUNTY, code), payload(seq, values, at), qos=1)


def readings(app_engine, sid) -> int:
    return scalar(app_engine, "SELECT count(*) FROM sensor_reading WHERE sensor_id = :id", id=sid)


class CrashBeforeAck(IngestWorker):
    """Commits, then 'dies' before acknowledging: the broker must send everything again."""

    def _ack(self, batch):
        self.stats["not_acked"] += len(batch)


def test_redelivered_messages_store_nothing_twice(database, broker, world, app_engine):
    sid = world.sensors["TB"]
    values = [40, 45, 92, 93, 60, 50, 55, 58, 61, 62]   # one alarm episode: 92 … 60
    crashing = make_worker(database, broker, CrashBeforeAck)
    with running(crashing), publisher(broker) as pub:
        for seq, v in enumerate(values, 1):
            send(pub, "T95-TB-1", seq, {"fill_pct": v}).wait_for_publish(5)
        wait_until(lambda: readings(app_engine, sid) == len(values))
    assert crashing.stats["stored"] == len(values) and crashing.stats["acked"] == 0
    events = scalar(app_engine, "SELECT count(*) FROM event WHERE sensor_id = :id", id=sid)
    assert events == 1

    # The next start under the same client id gets every unacknowledged message again.
    again = make_worker(database, broker)
    with running(again):
        wait_until(lambda: again.stats["duplicate"] >= len(values))
    assert again.stats["stored"] == 0 and again.stats["duplicate"] == len(values)
    assert again.stats["acked"] == len(values)
    assert readings(app_engine, sid) == len(values)
    assert scalar(app_engine, "SELECT count(*) FROM event WHERE sensor_id = :id", id=sid) == events
    assert scalar(app_engine, "SELECT count(*) FROM sensor_alarm WHERE sensor_id = :id", id=sid) == 1

    # Acknowledged now: a third start receives nothing.
    third = make_worker(database, broker)
    with running(third):
        time.sleep(1.0)
    assert third.stats["received"] == 0


def test_broker_restart_mid_stream_loses_nothing(database, broker, world, app_engine):
    per_sensor, codes = 30, [f"T95-SM-{i:02d}" for i in range(STREAM)]
    total = per_sensor * STREAM
    ids = [world.sensors[f"S{i}"] for i in range(STREAM)]
    count = lambda: scalar(app_engine, "SELECT count(*) FROM sensor_reading WHERE sensor_id = ANY(:ids)",  # noqa: E731
                           ids=ids)
    worker = make_worker(database, broker)
    t0 = datetime.now(timezone.utc) - timedelta(minutes=10)
    with running(worker), publisher(broker, "t95-stream") as pub:
        sent = 0
        for seq in range(1, per_sensor + 1):
            for code in codes:
                send(pub, code, seq, {"smoke_obscura": 0.2}, t0 + timedelta(seconds=seq))
                sent += 1
                if sent == total // 3:
                    wait_until(lambda: count() > 0)
                    broker.stop()          # SIGTERM: Mosquitto saves its sessions and queues
                    time.sleep(1.5)        # the publisher keeps publishing into its own queue
                    broker.start()
                time.sleep(0.002)
        wait_until(lambda: count() == total, timeout=45)
    assert worker.stats["connects"] >= 2  # it reconnected by itself
    rows = scalar(app_engine, "SELECT count(DISTINCT (sensor_id, seq)) FROM sensor_reading WHERE sensor_id = ANY(:ids)",
                  ids=ids)
    assert rows == total == count()
    assert worker.stats["stored"] + worker.stats["late"] == total


def test_a_malformed_flood_leaves_the_worker_alive_and_counted(database, broker, world, app_engine, monkeypatch):
    real_ingest = sn.ingest

    def ingest_that_chokes(session, items, **kw):  # a bug triggered by one payload
        if any(b"POISON" in bytes(i.payload) for i in items):
            raise RuntimeError("boom")
        return real_ingest(session, items, **kw)

    monkeypatch.setattr(sn, "ingest", ingest_that_chokes)
    garbage = [b"not json", b"{\"seq\": -1}", b"[]", b"{" + b" " * 6000 + b"}",
               payload(1, {"Bad Key": 1}), payload(1, {"x": 1}, datetime(2001, 1, 1, tzinfo=timezone.utc))]
    before = scalar(app_engine, "SELECT coalesce(sum(count), 0) FROM sensor_ingest_counter"
                                " WHERE source = 'mqtt' AND outcome = 'rejected'")
    worker = make_worker(database, broker, client_id="t95-flood")
    n_bad, n_good = 1200, 12
    with running(worker) as thread, publisher(broker, "t95-flooder") as pub:
        for i in range(n_bad):
            pub.publish(sn.reading_topic(COUNTY, "T95-NOPE" if i % 7 == 0 else "T95-SM-CLI"),
                        garbage[i % len(garbage)], qos=1)
            if i % 100 == 0:
                send(pub, "T95-SM-OFF", 1000 + i // 100, {"smoke_obscura": 0.1})
        pub.publish(sn.reading_topic(COUNTY, "T95-SM-CLI"), b"POISON", qos=1)
        wait_until(lambda: worker.stats["received"] >= n_bad + n_good + 1, timeout=30)
        assert thread.is_alive()
    assert worker.stats["rejected"] == n_bad + 1
    assert worker.stats["rejected:internal_error"] == 1 and worker.stats["stored"] == n_good
    after = scalar(app_engine, "SELECT coalesce(sum(count), 0) FROM sensor_ingest_counter"
                               " WHERE source = 'mqtt' AND outcome = 'rejected'")
    assert after - before == n_bad + 1
    assert worker.stats["acked"] == n_bad + n_good + 1  # refused ones are acknowledged: no redelivery loop


def test_alarm_end_to_end_and_offline_detection(database, broker, world, app_engine):
    sid, off = world.sensors["TB"], world.sensors["OFF"]
    with app_engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        conn.execute(text("UPDATE sensor SET last_seen_at = now() - interval '1 day' WHERE id = :id"), {"id": off})
    worker = make_worker(database, broker, offline_every=0.2)
    status = lambda i: scalar(app_engine, "SELECT status FROM sensor WHERE id = :id", id=i)  # noqa: E731
    with running(worker), publisher(broker, "t95-e2e") as pub:
        wait_until(lambda: status(off) == "offline", timeout=10)
        start = 100
        for k, v in enumerate([50, 85, 79, 81, 72, 65]):   # hovering inside the band: one episode
            send(pub, "T95-TB-1", start + k, {"fill_pct": v})
        send(pub, "T95-SM-OFF", 5000, {"smoke_obscura": 0.1})
        wait_until(lambda: worker.stats["received"] >= 7)
        wait_until(lambda: status(off) == "normal")
    row = scalar(app_engine,
                 "SELECT json_build_object('event', e.id, 'worker', e.worker_id, 'source', e.source,"
                 " 'cleared', a.cleared_at IS NOT NULL, 'notes', (SELECT count(*) FROM event_history h"
                 "   WHERE h.event_id = e.id AND h.action = 'note'))"
                 " FROM sensor_alarm a JOIN event e ON e.id = a.event_id WHERE a.sensor_id = :id AND a.open_seq = 101",
                 id=sid)
    assert row["worker"] == world.workers["a1"] and row["source"] == "sensor"
    assert row["cleared"] and row["notes"] == 1
    assert scalar(app_engine, "SELECT count(*) FROM sensor_alarm WHERE sensor_id = :id AND open_seq >= 100",
                  id=sid) == 1
    assert scalar(app_engine, "SELECT count(*) FROM sensor_alarm WHERE sensor_id = :id AND kind = 'offline'"
                              " AND cleared_at IS NOT NULL", id=off) == 1


def test_the_cli_worker_runs_as_its_own_process(pg, broker, world, app_engine):
    env = {**os.environ, "DATABASE_URL": pg.app_url, "MQTT_URL": f"mqtt://127.0.0.1:{broker.port}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "map_app.cli", "sensors", "ingest", "--county", COUNTY, "--client-id", "t95-cli"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        sid = world.sensors["CLI"]
        with publisher(broker, "t95-cli-pub") as pub:
            # QoS 1 into the worker's persistent session: queued even if it is still starting
            deadline = time.monotonic() + 20
            seq = 1
            while readings(app_engine, sid) == 0 and time.monotonic() < deadline:
                send(pub, "T95-SM-CLI", seq, {"smoke_obscura": 0.5}).wait_for_publish(5)
                seq += 1
                time.sleep(0.5)
        assert readings(app_engine, sid) >= 1
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert "ingest: received" in out  # the summary it logs when it stops


def test_a_database_outage_keeps_messages_unacknowledged(database, broker, world, app_engine):
    sid = world.sensors["CLI"]
    # A database nobody answers at: the worker must wait, not crash, and acknowledge nothing.
    down = Database(f"postgresql+psycopg://nobody:x@127.0.0.1:{free_port()}/none", pool_pre_ping=False)
    stuck = make_worker(down, broker, client_id="t95-outage")
    with running(stuck) as thread, publisher(broker, "t95-outage-pub") as pub:
        send(pub, "T95-SM-CLI", 900, {"smoke_obscura": 0.4}).wait_for_publish(5)
        wait_until(lambda: stuck.stats["db_errors"] >= 1)
        assert thread.is_alive()
    assert stuck.stats["acked"] == 0 and stuck.stats["stored"] == 0
    # The database is back (the real one): the broker hands the message over again.
    back = make_worker(database, broker, client_id="t95-outage")
    with running(back):
        wait_until(lambda: back.stats["stored"] == 1)
    assert scalar(app_engine, "SELECT count(*) FROM sensor_reading WHERE sensor_id = :id AND seq = 900", id=sid) == 1
