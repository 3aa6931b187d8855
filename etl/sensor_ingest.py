"""The MQTT ingest worker: broker → :func:`geodata.sensors.ingest` → commit → acknowledge.

It subscribes to ``dvmap/<county>/+/reading`` with QoS 1 under a fixed client id
and a persistent session (``clean_session=False``), so the broker queues readings
while the worker is away. Messages are acknowledged by hand (paho's
``manual_ack``), and only after the transaction that stored them has committed:
a crash in between means a redelivery, which the readings' primary key turns
into a no-op. Whatever arrives while the worker commits forms the next batch, so
batches grow with the load and a lone alarm is handled at once.

The worker never dies of its input: malformed payloads are rejected, counted and
logged by the ingest service; a payload that makes the service itself fail is
retried alone and then rejected as ``internal_error``; a database outage is
waited out with backoff, keeping the batch unacknowledged. paho reconnects to
the broker with backoff by itself.

Every ``offline_every`` seconds it also runs :func:`geodata.sensors.check_offline`.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass

from sqlalchemy.exc import InterfaceError, OperationalError

from etl.mqtt import BrokerAddress, make_client, parse_mqtt_url
from geodata import sensors
from geodata.db import SYSTEM, Database

log = logging.getLogger("dvmap.sensors.ingest")

#: Most messages handled in one transaction.
BATCH_SIZE = 1000
#: Seconds between offline checks and between summary lines in the log.
OFFLINE_EVERY = 30.0
STATS_EVERY = 60.0
PRUNE_EVERY = 3600.0


@dataclass(frozen=True)
class _Message:
    generation: int   # which connection it came in on
    mid: int
    qos: int
    topic: str
    payload: bytes


def default_client_id(county: str) -> str:
    """The worker's fixed MQTT client id: the broker keeps its session under this name."""
    return f"dvmap-ingest-{county}"


class IngestWorker:
    """Subscribe, ingest, commit, acknowledge — until :meth:`stop`.

    Parameters
    ----------
    database : Database
        The app role's database (RLS applies; the worker runs with the county scope).
    address : BrokerAddress, optional
        Default: ``MQTT_URL``.
    county : str, optional
        County code of the topics (default: the database's county).
    client_id : str, optional
        Default :func:`default_client_id`. Run one worker per client id: a second
        connection under the same id takes the session over.
    batch_size : int
    offline_every : float
        Seconds between offline checks (0 = never).
    """

    def __init__(self, database: Database, address: BrokerAddress | None = None, *, county: str | None = None,
                 client_id: str | None = None, batch_size: int = BATCH_SIZE, offline_every: float = OFFLINE_EVERY):
        self.database = database
        self.address = address or parse_mqtt_url()
        self.county = county
        self.client_id = client_id
        self.batch_size = max(1, int(batch_size))
        self.offline_every = offline_every
        self.stats: Counter = Counter()
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._queue: queue.Queue[_Message] = queue.Queue()
        self._generation = 0
        self._client = None

    # -- control -------------------------------------------------------------------
    def stop(self) -> None:
        """Ask :meth:`run` to finish its current batch and return."""
        self._stop.set()

    @property
    def topic(self) -> str:
        return sensors.reading_topic(self.county, "+")

    def run(self) -> None:
        """Run until :meth:`stop`; never raises for bad input, broker or database trouble."""
        if self.county is None:
            self.county = self._wait_for(self._county_from_db, "county code")
            if self.county is None:
                return
        client_id = self.client_id or default_client_id(self.county)
        client = make_client(self.address, client_id, clean_session=False, manual_ack=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client
        log.info("ingest worker %s: %s, topic %s", client_id, self.address.masked(), self.topic)
        client.connect_async(self.address.host, self.address.port, keepalive=30)
        client.loop_start()
        next_offline = time.monotonic() + (self.offline_every or 0)
        next_stats = time.monotonic() + STATS_EVERY
        next_prune = time.monotonic()
        try:
            while not self._stop.is_set():
                batch = self._next_batch(0.5)
                if batch:
                    self._process(batch)
                now = time.monotonic()
                if self.offline_every and now >= next_offline:
                    self._maintenance(prune=now >= next_prune)
                    next_offline = now + self.offline_every
                    if now >= next_prune:
                        next_prune = now + PRUNE_EVERY
                if now >= next_stats:
                    self.log_stats()
                    next_stats = now + STATS_EVERY
        finally:
            client.disconnect()
            client.loop_stop()
            self.log_stats()

    # -- paho callbacks (network thread) -----------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties=None):
        if reason_code.is_failure:
            log.warning("broker refused the connection: %s", reason_code)
            return
        self._generation += 1
        self.stats["connects"] += 1
        # The persistent session keeps the subscription; subscribing again is harmless
        # and covers a broker that lost its state.
        client.subscribe(self.topic, qos=1)
        log.info("connected to %s (session present: %s)", self.address.masked(), flags.session_present)
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None):
        self.connected.clear()
        if not self._stop.is_set():
            self.stats["disconnects"] += 1
            log.warning("disconnected from the broker (%s); reconnecting", reason_code)

    def _on_message(self, client, userdata, msg):
        self._queue.put(_Message(self._generation, msg.mid, msg.qos, msg.topic, bytes(msg.payload)))

    # -- work (main thread) ----------------------------------------------------------------
    def _next_batch(self, timeout: float) -> list[_Message]:
        try:
            batch = [self._queue.get(timeout=timeout)]
        except queue.Empty:
            return []
        while len(batch) < self.batch_size:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _ingest(self, messages: list[_Message]) -> sensors.IngestResult:
        items = [sensors.RawReading(m.payload, m.topic) for m in messages]
        with self.database.session(SYSTEM) as session, session.begin():
            return sensors.ingest(session, items, source="mqtt", county=self.county)

    def _process(self, batch: list[_Message]) -> None:
        results = self._with_db_retry(lambda: self._ingest_or_isolate(batch))
        if results is None:  # stopping while the database is away: leave them unacknowledged
            return
        for result in results:
            self._tally(result)
        self._ack(batch)

    def _ingest_or_isolate(self, batch: list[_Message]) -> list[sensors.IngestResult]:
        try:
            return [self._ingest(batch)]
        except (OperationalError, InterfaceError):
            raise
        except Exception:  # a bug or a payload the service chokes on: find it, keep the rest
            log.exception("batch of %d failed; retrying its messages one by one", len(batch))
        out = []
        for m in batch:
            try:
                out.append(self._ingest([m]))
            except (OperationalError, InterfaceError):
                raise
            except Exception as exc:
                log.error("poison message on %s rejected: %r", m.topic, exc)
                rejection = sensors.Rejection(0, "internal_error", *sensors.REASONS["internal_error"], m.topic,
                                              None, m.payload[:1000].decode("utf-8", "replace"))
                with self.database.session(SYSTEM) as session, session.begin():
                    sensors.record_rejections(session, [rejection], source="mqtt")
                out.append(sensors.IngestResult(received=1, rejected=[rejection]))
        return out

    def _with_db_retry(self, fn):
        delay = 1.0
        while True:
            try:
                return fn()
            except (OperationalError, InterfaceError) as exc:
                self.stats["db_errors"] += 1
                log.warning("database unavailable (%s); retrying in %.0f s", str(exc).splitlines()[0], delay)
                if self._stop.wait(delay):
                    return None
                delay = min(delay * 2, 30.0)

    def _ack(self, batch: list[_Message]) -> None:
        # Only messages of the current connection: after a reconnect the broker has
        # sent the older ones again (same ids), and those copies get acknowledged in
        # their turn. Acknowledging an id twice could acknowledge a newer message.
        generation = self._generation
        for m in batch:
            if m.qos and m.generation == generation:
                self._client.ack(m.mid, m.qos)
                self.stats["acked"] += 1

    def _tally(self, result: sensors.IngestResult) -> None:
        self.stats["received"] += result.received
        self.stats["stored"] += result.stored
        self.stats["late"] += result.late
        self.stats["duplicate"] += result.duplicates
        self.stats["rejected"] += len(result.rejected)
        for r in result.rejected:
            self.stats[f"rejected:{r.reason}"] += 1
        self.stats["alarm_opened"] += result.alarms_opened
        self.stats["alarm_cleared"] += result.alarms_cleared
        self.stats["offline_cleared"] += result.offline_cleared
        self.stats["batches"] += 1

    def _maintenance(self, prune: bool) -> None:
        try:
            with self.database.session(SYSTEM) as session, session.begin():
                opened = sensors.check_offline(session)["opened"]
                if prune:
                    sensors.prune_rejections(session)
            self.stats["offline_opened"] += opened
            if opened:
                log.info("%d sensor(s) went offline", opened)
        except Exception as exc:  # the next round tries again
            log.warning("offline check failed: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    def _county_from_db(self) -> str | None:
        with self.database.session(SYSTEM) as session:
            return sensors.county_code(session)

    def _wait_for(self, fn, what: str):
        delay = 1.0
        while not self._stop.is_set():
            try:
                value = fn()
            except (OperationalError, InterfaceError) as exc:
                log.warning("database unavailable (%s); retrying in %.0f s", str(exc).splitlines()[0], delay)
            else:
                if value is not None:
                    return value
                log.warning("no %s in the database yet (load the county first); retrying in %.0f s", what, delay)
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, 30.0)
        return None

    def log_stats(self) -> None:
        """One line with the counts so far (the database keeps the exact daily counters)."""
        s = self.stats
        reasons = ", ".join(f"{k.split(':', 1)[1]} {v}" for k, v in sorted(s.items()) if k.startswith("rejected:"))
        log.info(
            "ingest: received %d, stored %d, late %d, duplicate %d, rejected %d%s; alarms opened %d, cleared %d; "
            "offline opened %d, cleared %d; batches %d, db errors %d, reconnects %d",
            s["received"], s["stored"], s["late"], s["duplicate"], s["rejected"], f" ({reasons})" if reasons else "",
            s["alarm_opened"], s["alarm_cleared"], s["offline_opened"], s["offline_cleared"], s["batches"],
            s["db_errors"], max(0, s["connects"] - 1),
        )
