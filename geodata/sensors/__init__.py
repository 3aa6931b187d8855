"""IoT sensors: validate readings, store them once, raise and clear alarms, detect silence.

The ingest service behind both the MQTT worker (etl/sensor_ingest.py) and the
gateways' HTTP batch endpoint. Like the event service it runs inside the
caller's session and transaction and never commits: the MQTT worker commits and
only then acknowledges the messages, so a crash between the two means a
redelivery, which the primary key (sensor, seq) turns into a no-op.

* :func:`ingest` — parse and validate raw payloads, store each reading once
  (``INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING``: COPY is refused on
  RLS tables), advance ``sensor.last_*`` only with newer measured times,
  evaluate the rules of ``sensor_rule`` with hysteresis in measured-time order
  (time, then seq), open one event per alarm episode through
  :func:`geodata.events.create_event` and note its clearing with
  :func:`geodata.events.add_note`, count outcomes and log rejections.
* Late readings (older than one the sensor already sent, e.g. redelivered after
  a broker restart) are evaluated too: the rules are run again over the
  sensor's stored readings from the episode open just before the late reading
  on, and the episodes are made to agree with the result (:func:`episode_spans`
  is that one state machine). A late alarm opens its episode and event, a late
  clearing reading closes or splits one; a rerun over the same readings changes
  nothing, so redeliveries never duplicate an episode or an event. Bounded:
  readings more than :data:`REEVALUATE_WINDOW` older than the sensor's newest,
  or a rerun of more than :data:`REPLAY_MAX_READINGS` readings, are stored and
  not evaluated (logged). Ingest locks the sensor rows (``FOR UPDATE``, in id
  order), so two batches for one sensor — two workers, a worker and a gateway —
  take turns, and the second sees the first's readings.
* :func:`check_offline` — sensors silent for longer than
  ``offline_after_reports × report_interval_s`` become offline (an episode of
  kind ``offline``); their next fresh reading clears it.
* Read helpers for the map: :func:`status_counts`, :func:`status_changes`,
  :func:`unit_counts`, :func:`reading_series`, :func:`sensor_alarms`.

Errors a person reads are bilingual (:class:`ReadingRejected`, :class:`SensorInputError`).

The package, by responsibility (the public names are all re-exported here):

* :mod:`~geodata.sensors.base` — limits, rejection reasons, errors, value types;
* :mod:`~geodata.sensors.parsing` — topics and payloads (pure);
* :mod:`~geodata.sensors.store` — :func:`ingest`: validate, store once, evaluate, count;
* :mod:`~geodata.sensors.evaluation` — the rules' state machine, late-reading reruns;
* :mod:`~geodata.sensors.alarms` — episodes → events, and :func:`check_offline`;
* :mod:`~geodata.sensors.counters` — ingest counters and the rejection log;
* :mod:`~geodata.sensors.read` — read helpers for the map and panels;
* :mod:`~geodata.sensors.gateways` — gateway keys.
"""
from __future__ import annotations

from geodata.sensors.alarms import check_offline
from geodata.sensors.base import (
    MAX_AGE,
    MAX_BATCH,
    MAX_FUTURE,
    MAX_PAYLOAD_BYTES,
    MAX_VALUES,
    REASONS,
    REEVALUATE_WINDOW,
    REJECTION_ROWS_PER_CALL,
    REPLAY_MAX_READINGS,
    SOURCES,
    TOPIC_PREFIX,
    EpisodeSpan,
    IngestResult,
    RawReading,
    Reading,
    ReadingRejected,
    Rejection,
    Rule,
    SensorInputError,
)
from geodata.sensors.counters import ingest_stats, prune_rejections, record_rejections
from geodata.sensors.evaluation import episode_spans, rules
from geodata.sensors.gateways import create_gateway_key, find_gateway
from geodata.sensors.parsing import parse_reading, reading_topic, topic_sensor_code
from geodata.sensors.read import (
    alarm_for_event,
    county_code,
    reading_series,
    sensor_alarms,
    status_changes,
    status_counts,
    unit_counts,
)
from geodata.sensors.store import ingest

__all__ = [
    "RawReading", "Reading", "Rejection", "IngestResult", "Rule", "ReadingRejected", "SensorInputError",
    "parse_reading", "topic_sensor_code", "reading_topic", "ingest", "check_offline", "status_counts",
    "status_changes", "unit_counts", "reading_series", "sensor_alarms", "alarm_for_event", "rules",
    "ingest_stats", "prune_rejections", "record_rejections", "county_code", "create_gateway_key", "find_gateway",
    "REASONS", "MAX_BATCH", "EpisodeSpan", "episode_spans", "REEVALUATE_WINDOW", "REPLAY_MAX_READINGS",
]

