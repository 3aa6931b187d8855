"""Sensors: readings ingested per second and alarm → event latency, at 10,000 readings.

A throwaway database with the demo county, a private Mosquitto on a free port and
the ingest worker as its own process (``dvmap sensors ingest``), as in a deployment.
Four phases, each with 10,000 fresh readings for 2,000 demo sensors (five each, in
time order) of which 100 raise an alarm and clear it again (100 events, 100 notes):

A. baseline — plain batched ``INSERT … SELECT FROM unnest`` of the same rows (1,000 a
   transaction): what the table takes with no validation, rules or state;
B. the ingest service alone (:func:`geodata.sensors.ingest`, 1,000 a call);
C. MQTT end to end, published as one burst: first publish → last reading committed;
D. MQTT at a steady rate (30 % of C's, at most 500/s; ``DVMAP_BENCH_SENSOR_RATE``
   overrides): alarm → event latency,
   publish → the event's row committed and visible, beside the same latency of 100
   ordinary readings (publish → reading visible) measured in the same stream.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone

from sqlalchemy import text

from bench.common import bench_database, median, p95

N_SENSORS = 2000
PER_SENSOR = 5
N = N_SENSORS * PER_SENSOR
N_ALARMS = 100
N_SAMPLES = 100

NORMAL = {"trash_bin": {"fill_pct": 30}, "smoke": {"smoke_obscura": 0.3},
          "manhole": {"tilt_deg": 1.0, "cover_open": False}, "environment": {"pm25": 30, "noise_db": 50.0},
          "camera": {"detections": 10}, "geohazard": {"displacement_mm": 5.0, "rain_mm": 0.0}}
ALARM = {"trash_bin": {"fill_pct": 95}, "smoke": {"smoke_obscura": 20.0},
         "manhole": {"tilt_deg": 30.0, "cover_open": False}, "environment": {"pm25": 150, "noise_db": 50.0},
         "camera": {"detections": 90}, "geohazard": {"displacement_mm": 30.0, "rain_mm": 0.0}}


class Stream:
    """10,000 readings: (code, sensor id, seq, measured_at, values, kind) in publish order."""

    def __init__(self, sensors, seq0: dict, start: datetime, offset: int):
        self.rows = []
        # alarms (and the sampled ordinary readings) spread evenly through the stream
        step = len(sensors) // N_ALARMS
        alarm_ids = {s[0] for s in sensors[::step][:N_ALARMS]}
        sample_ids = {s[0] for s in sensors[step // 2::step][:N_SAMPLES]}
        for k in range(PER_SENSOR):   # round after round: every sensor's readings in time order
            for sid, code, type_ in sensors:
                values, kind = NORMAL[type_], "normal"
                if sid in alarm_ids and k == 2:
                    values, kind = ALARM[type_], "alarm"
                elif sid in sample_ids and k == 2:
                    kind = "sample"
                at = start + timedelta(seconds=k * 60 + sid % 60)
                self.rows.append((code, sid, seq0[sid] + offset + k + 1, at, values, kind))

    def payload(self, row) -> bytes:
        _, _, seq, at, values, _ = row
        return json.dumps({"seq": seq, "measured_at": at.isoformat(), "values": values}).encode()


def _setup(urls):
    from etl.demo_accounts import ensure_demo_accounts
    from etl.demo import load_demo
    from geodata.db import SYSTEM, Database

    load_demo(urls["owner"], seed=42)
    ensure_demo_accounts(urls["owner"])
    owner = Database(urls["owner"])
    with owner.session(SYSTEM) as s, s.begin():
        # The demo's readings end now; move them a day back so the streams below are news.
        s.execute(text("UPDATE sensor SET last_seen_at = last_seen_at - interval '1 day'"))
    owner.engine.dispose()
    db = Database(urls["app"])
    with db.session(SYSTEM) as s:
        county = s.execute(text("SELECT code FROM county")).scalar_one()
        sensors = [tuple(r) for r in s.execute(text(
            "SELECT id, code, type FROM sensor ORDER BY (id * 7919) % 10007 LIMIT :n"), {"n": N_SENSORS})]
        seq0 = dict(s.execute(text("SELECT id, coalesce(last_seq, 0) FROM sensor")).all())
    return db, county, sensors, seq0


def _baseline_insert(db, stream) -> float:
    from geodata.db import SYSTEM

    rows = stream.rows
    t0 = time.perf_counter()
    for i in range(0, len(rows), 1000):
        chunk = rows[i:i + 1000]
        with db.session(SYSTEM) as s, s.begin():
            s.execute(text(
                'INSERT INTO sensor_reading (sensor_id, seq, village_id, measured_at, "values")'
                " SELECT u.sid, u.seq, s.village_id, u.at, u.vals FROM unnest(CAST(:sid AS integer[]),"
                " CAST(:seq AS bigint[]), CAST(:at AS timestamptz[]), CAST(:vals AS jsonb[])) AS u(sid, seq, at, vals)"
                " JOIN sensor s ON s.id = u.sid ON CONFLICT DO NOTHING"),
                {"sid": [r[1] for r in chunk], "seq": [r[2] for r in chunk], "at": [r[3] for r in chunk],
                 "vals": [json.dumps(r[4]) for r in chunk]})
    return len(rows) / (time.perf_counter() - t0)


def _service_ingest(db, stream, county) -> float:
    from geodata import sensors as sn
    from geodata.db import SYSTEM

    items = [sn.RawReading(stream.payload(r), sn.reading_topic(county, r[0])) for r in stream.rows]
    t0 = time.perf_counter()
    for i in range(0, len(items), 1000):
        with db.session(SYSTEM) as s, s.begin():
            result = sn.ingest(s, items[i:i + 1000], county=county)
            assert not result.rejected, result.rejected[:3]
    return len(items) / (time.perf_counter() - t0)


def _count(db, sql, **params) -> int:
    from geodata.db import SYSTEM

    with db.session(SYSTEM) as s:
        return s.execute(text(sql), params).scalar()


def _handled(db) -> int:
    return _count(db, "SELECT coalesce(sum(count), 0) FROM sensor_ingest_counter WHERE source = 'mqtt'"
                      " AND outcome IN ('stored', 'late', 'duplicate', 'rejected')")


def _mqtt_run(db, broker, county, stream, rate: float | None):
    """Publish the stream; return (seconds to the last commit, alarm latencies, sample latencies) in ms."""
    from etl.mqtt import make_client
    from geodata.db import SYSTEM
    from geodata.sensors import reading_topic

    handled0 = _handled(db)
    want_alarm = {(r[1], r[2]) for r in stream.rows if r[5] == "alarm"}
    want_sample = {(r[1], r[2]) for r in stream.rows if r[5] == "sample"}
    sent_at: dict = {}
    seen_alarm: dict = {}
    seen_sample: dict = {}
    done = threading.Event()
    max_alarm = _count(db, "SELECT coalesce(max(id), 0) FROM sensor_alarm")

    def poll():
        nonlocal max_alarm
        with db.session(SYSTEM) as s:
            while not done.is_set():
                now = time.perf_counter()
                for aid, sid, seq in s.execute(text(
                        "SELECT id, sensor_id, open_seq FROM sensor_alarm WHERE id > :m AND event_id IS NOT NULL"),
                        {"m": max_alarm}):
                    max_alarm = max(max_alarm, aid)
                    if (sid, seq) in want_alarm:
                        seen_alarm.setdefault((sid, seq), now)
                pending = [k for k in want_sample if k not in seen_sample]
                if pending:
                    for sid, seq in s.execute(text(
                            "SELECT sensor_id, seq FROM sensor_reading WHERE (sensor_id, seq) IN"
                            " (SELECT * FROM unnest(CAST(:a AS integer[]), CAST(:b AS bigint[])))"),
                            {"a": [p[0] for p in pending], "b": [p[1] for p in pending]}):
                        seen_sample.setdefault((sid, seq), now)
                s.rollback()
                time.sleep(0.01)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    client = make_client(broker.address, "bench-publisher", clean_session=True)
    client.max_inflight_messages_set(1000)
    client.connect(broker.address.host, broker.address.port)
    client.loop_start()
    t0 = time.perf_counter()
    for i, row in enumerate(stream.rows):
        if rate:
            wait = t0 + i / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        key = (row[1], row[2])
        if key in want_alarm or key in want_sample:
            sent_at[key] = time.perf_counter()
        client.publish(reading_topic(county, row[0]), stream.payload(row), qos=1)
    # finished when the worker's committed counters have grown by the whole stream
    # (a cheap query: polling the readings themselves would slow the worker down)
    while _handled(db) < handled0 + len(stream.rows):
        time.sleep(0.02)
    elapsed = time.perf_counter() - t0
    time.sleep(0.2)
    done.set()
    poller.join(5)
    client.disconnect()
    client.loop_stop()
    alarm = [(seen_alarm[k] - sent_at[k]) * 1000 for k in want_alarm if k in seen_alarm]
    sample = [(seen_sample[k] - sent_at[k]) * 1000 for k in want_sample if k in seen_sample]
    return elapsed, alarm, sample


def run() -> list[dict]:
    from etl.mqtt import LocalBroker

    rows = []
    with bench_database("dvmap_bench_sensors") as urls, tempfile.TemporaryDirectory() as folder:
        db, county, sensors, seq0 = _setup(urls)
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        broker = LocalBroker(folder, port)
        broker.start()
        env = {**os.environ, "DATABASE_URL": urls["app"], "MQTT_URL": f"mqtt://127.0.0.1:{port}"}
        worker = subprocess.Popen([sys.executable, "-m", "map_app.cli", "sensors", "ingest", "--county", county,
                                   "--client-id", "bench-ingest", "--offline-every", "0"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            base = datetime.now(timezone.utc) - timedelta(minutes=50)
            a = _baseline_insert(db, Stream(sensors, seq0, base, 1000))
            b = _service_ingest(db, Stream(sensors, seq0, base + timedelta(minutes=10), 0), county)
            events_b = _count(db, "SELECT count(*) FROM event WHERE sensor_id IS NOT NULL")
            # wait for the worker: a probe reading must come through
            _wait_worker(db, broker, county, sensors[-1], seq0)
            elapsed_c, _, _ = _mqtt_run(db, broker, county, Stream(sensors, seq0, base + timedelta(minutes=20), 100),
                                        None)
            c = N / elapsed_c
            # well below saturation, so the latency is the path's, not a backlog's
            rate = float(os.environ.get("DVMAP_BENCH_SENSOR_RATE", 0)) or min(0.3 * c, 500.0)
            elapsed_d, alarm, sample = _mqtt_run(db, broker, county,
                                                 Stream(sensors, seq0, base + timedelta(minutes=30), 200), rate)
            events = _count(db, "SELECT count(*) FROM event WHERE sensor_id IS NOT NULL")
        finally:
            worker.terminate()
            worker.wait(20)
            broker.stop()
            db.engine.dispose()
    note = f"{N:,} readings, {N_SENSORS:,} sensors, {N_ALARMS} alarms each phase"
    rows.append(dict(name="ingest service (readings/s)", value=b, baseline=a, unit="/s",
                     note=f"{note}; baseline: plain batched INSERT of the same rows; {events_b} events"))
    rows.append(dict(name="MQTT end to end burst (readings/s)", value=c, baseline=a, unit="/s",
                     note="QoS 1, worker process, ack after commit; baseline: plain INSERT"))
    if alarm and sample:
        rows.append(dict(name=f"alarm→event latency p50 @{rate:,.0f}/s", value=median(alarm),
                         baseline=median(sample), unit="ms",
                         note=f"n={len(alarm)}; baseline: ordinary reading publish→visible, same stream"))
        rows.append(dict(name=f"alarm→event latency p95 @{rate:,.0f}/s", value=p95(alarm), baseline=p95(sample),
                         unit="ms", note=f"{events} sensor events in the database after the run"))
    return rows


def _wait_worker(db, broker, county, sensor, seq0, timeout=30.0):
    from etl.mqtt import make_client
    from geodata.sensors import reading_topic

    sid, code, type_ = sensor
    client = make_client(broker.address, "bench-probe", clean_session=True)
    client.connect(broker.address.host, broker.address.port)
    client.loop_start()
    seq = seq0[sid] + 10_000
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            body = json.dumps({"seq": seq, "measured_at": datetime.now(timezone.utc).isoformat(),
                               "values": NORMAL[type_]})
            client.publish(reading_topic(county, code), body, qos=1)
            time.sleep(0.5)
            if _count(db, "SELECT count(*) FROM sensor_reading WHERE sensor_id = :id AND seq = :s", id=sid, s=seq):
                return
        raise RuntimeError("the ingest worker did not start")
    finally:
        client.disconnect()
        client.loop_stop()
