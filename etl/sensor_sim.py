"""Simulated sensor streams for the demo county, published to the broker like real devices.

Each sensor reports on its type's interval (``sensor_type.report_interval_s``),
its values following the demo generator's model (etl/demo/spec.py: a daily
cycle around a per-sensor level, noise, an alarm range). On top of that:

* occasional alarm episodes — a few readings in the alarm range, then back to
  normal — on average one every ``alarm_every`` seconds county-wide;
* some silent sensors — a share never reports (they go offline), and now and
  then one drops out for several intervals and comes back.

``rate`` sets the total messages per second: the natural rate of the county
(Σ 1/interval, about 12/s for the demo) when omitted; a higher rate shortens
every sensor's interval in proportion (a load test), a lower one lengthens it.
Measured times are always the wall clock, so the ingest's offline check sees
what a real county would.
"""
from __future__ import annotations

import heapq
import json
import logging
import math
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import text

from etl.demo.spec import ALARM_THRESHOLDS, SENSOR_TYPES, SensorSpec
from geodata.clock import display_zone
from geodata.sensors import reading_topic

log = logging.getLogger("dvmap.sensors.simulate")


@dataclass
class SimSensor:
    """One simulated device."""

    code: str
    type: str
    interval_s: float
    seq: int = 0            # last sequence number used
    level: float = 0.0
    silent: bool = False    # never reports
    alarm_left: int = 0     # readings still to send in the alarm range
    alarm_kind: str = ""
    down_until: float = 0.0  # monotonic time an outage ends
    displacement: float = 0.0
    extra: dict = field(default_factory=dict)


def load_sensors(session) -> list[SimSensor]:
    """Every sensor of the database with its type's interval and the highest sequence number used so far."""
    rows = session.execute(
        text(
            """
            SELECT s.code, s.type, st.report_interval_s,
                   coalesce((SELECT max(r.seq) FROM sensor_reading r WHERE r.sensor_id = s.id), s.last_seq, 0) AS seq
              FROM sensor s JOIN sensor_type st ON st.code = s.type
             ORDER BY s.id
            """
        )
    ).all()
    return [SimSensor(r.code, r.type, float(r.report_interval_s), int(r.seq)) for r in rows]


class Simulator:
    """Generate and publish readings for ``sensors``.

    Parameters
    ----------
    sensors : list of SimSensor
    county : str
        County code for the topics.
    rate : float, optional
        Messages per second in total (default: the natural rate).
    alarm_every : float
        Mean seconds between new alarm episodes, county-wide.
    silent_share : float
        Share of sensors that never report.
    outage_every : float
        Mean seconds between temporary outages, county-wide.
    seed : int, optional
    """

    def __init__(self, sensors: list[SimSensor], county: str, *, rate: float | None = None,
                 alarm_every: float = 30.0, silent_share: float = 0.01, outage_every: float = 120.0,
                 seed: int | None = None):
        self.sensors = [s for s in sensors if s.type in SENSOR_TYPES]
        self.county = county
        self.rng = random.Random(seed)
        for s in self.sensors:
            spec = SENSOR_TYPES[s.type]
            s.level = self.rng.uniform(*spec.level)
            s.silent = self.rng.random() < silent_share
            s.displacement = s.level if s.type == "geohazard" else 0.0
        self.active = [s for s in self.sensors if not s.silent]
        natural = sum(1.0 / s.interval_s for s in self.active) or 1.0
        self.rate = float(rate) if rate else natural
        #: interval multiplier: 1 at the natural rate, smaller when faster
        self.scale = natural / self.rate
        self.p_alarm = 1.0 / max(self.rate * alarm_every, 1.0)
        self.p_outage = 1.0 / max(self.rate * outage_every, 1.0) if outage_every > 0 else 0.0
        self.sent = 0
        self.alarms = 0

    # -- values ----------------------------------------------------------------------
    def values(self, s: SimSensor, when: datetime) -> dict:
        """One reading's values for ``s`` at ``when`` (normal or, during an episode, alarming)."""
        spec: SensorSpec = SENSOR_TYPES[s.type]
        rng = self.rng
        local = when.astimezone(display_zone())   # the daily cycle follows the county's clock
        hour = local.hour + local.minute / 60.0
        threshold = ALARM_THRESHOLDS[spec.main_value]
        amp = spec.amp * (s.level if spec.relative_amp else 1.0)
        value = s.level + amp * math.cos(2 * math.pi * (hour - spec.peak_hour) / 24.0) + rng.gauss(0, spec.noise)
        # Normal readings stay clear of the alarm band, as in the demo's history.
        value = min(max(value, 0.0), 0.85 * threshold)
        out: dict = {}
        alarming = s.alarm_left > 0
        if alarming:
            s.alarm_left -= 1
        kind = s.alarm_kind if alarming else ""
        if kind == "main":
            value = rng.uniform(*spec.alarm)
        if s.type == "geohazard":
            s.displacement = min(s.displacement + abs(rng.gauss(0, 0.01)), 0.85 * threshold)
            value = rng.uniform(*spec.alarm) if kind == "main" else s.displacement
            rain = round(rng.gammavariate(1.5, 2.0), 1) if rng.random() < 0.1 else 0.0
            if kind == "rain":
                rain = round(rng.uniform(30, 60), 1)
            out["rain_mm"] = rain
        out[spec.main_value] = round(value, spec.decimals) if spec.decimals else int(round(value))
        if s.type == "manhole":
            out["cover_open"] = kind == "open"
        elif s.type == "environment":
            out["pm10"] = int(round(value * 1.5))
            noise = 47 + 8 * math.cos(2 * math.pi * (hour - 13) / 24.0) + rng.gauss(0, 1.5)
            out["noise_db"] = round(rng.uniform(72, 85) if kind == "noise" else noise, 1)
            out["temp_c"] = round(24 + 5 * math.cos(2 * math.pi * (hour - 14) / 24.0) + rng.gauss(0, 0.4), 1)
        elif s.type == "camera" and kind:
            out["event"] = "crowd"
        if spec.battery:
            out["battery_pct"] = s.extra.setdefault("battery", rng.randint(35, 100))
        if s.type != "camera":
            out["rssi_dbm"] = int(rng.gauss(s.extra.setdefault("rssi", rng.uniform(-110, -72)), 2))
        return out

    def _maybe_start_episode(self, s: SimSensor, now_mono: float) -> None:
        rng = self.rng
        if s.alarm_left == 0 and rng.random() < self.p_alarm:
            s.alarm_left = rng.randint(3, 6)
            kinds = {"manhole": ["main", "open"], "environment": ["main", "noise"],
                     "geohazard": ["main", "rain"]}.get(s.type, ["main"])
            s.alarm_kind = rng.choice(kinds)
            self.alarms += 1
        if self.p_outage and rng.random() < self.p_outage:
            # Silent for 4–8 intervals: long enough to be seen offline (after 3), then back.
            s.down_until = now_mono + rng.uniform(4, 8) * s.interval_s * self.scale

    def message(self, s: SimSensor, when: datetime | None = None) -> tuple[str, bytes]:
        """The next (topic, payload) of sensor ``s``."""
        when = when or datetime.now(timezone.utc)
        s.seq += 1
        payload = {"seq": s.seq, "measured_at": when.isoformat(timespec="milliseconds"),
                   "values": self.values(s, when)}
        return reading_topic(self.county, s.code), json.dumps(payload, separators=(",", ":")).encode()

    # -- publishing ------------------------------------------------------------------------
    def run(self, client, duration: float | None = None, stop: threading.Event | None = None) -> int:
        """Publish on schedule until ``duration`` seconds have passed or ``stop`` is set.

        Returns the number of messages published.
        """
        stop = stop or threading.Event()
        start = time.monotonic()
        end = start + duration if duration else math.inf
        heap = []
        for i, s in enumerate(self.active):
            period = s.interval_s * self.scale
            heapq.heappush(heap, (start + self.rng.uniform(0, period), i))
        next_log = start + 30
        while heap and not stop.is_set():
            due, i = heapq.heappop(heap)
            if due >= end:
                break
            wait = due - time.monotonic()
            if wait > 0 and stop.wait(min(wait, end - time.monotonic())):
                break
            s = self.active[i]
            now_mono = time.monotonic()
            if now_mono >= s.down_until:
                self._maybe_start_episode(s, now_mono)
                if now_mono >= s.down_until:
                    topic, payload = self.message(s)
                    client.publish(topic, payload, qos=1)
                    self.sent += 1
            heapq.heappush(heap, (due + s.interval_s * self.scale, i))
            if now_mono >= next_log:
                log.info("simulator: %d readings published (%.1f/s), %d alarm episodes started",
                         self.sent, self.sent / (now_mono - start), self.alarms)
                next_log = now_mono + 30
        return self.sent
