"""Sensors (0001, 0005): types, devices, readings, alarm rules and episodes, ingest counters."""
from __future__ import annotations

import datetime
from typing import Any, Optional

from geoalchemy2 import WKBElement
from sqlalchemy import (BigInteger, CheckConstraint, ForeignKey, ForeignKeyConstraint, Index, Integer, Text,
                        UniqueConstraint, text)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geodata.models.base import Base, geometry, in_list

#: sensor.status values
SENSOR_STATUSES = ("normal", "alarm", "offline")
#: sensor_alarm.kind values
ALARM_KINDS = ("threshold", "offline")
#: where a reading came in
INGEST_SOURCES = ("mqtt", "http", "cli")
#: sensor_ingest_counter.outcome values
INGEST_OUTCOMES = ("stored", "duplicate", "late", "rejected", "alarm_opened", "alarm_cleared",
                   "offline_opened", "offline_cleared")
#: sensor_rule.comparison values
COMPARISONS = (">=", ">", "<=", "<")
_KEY = "'^[a-z][a-z0-9_]{0,39}$'"


class SensorType(Base):
    """Reference data (densities per 100k people, reporting interval)."""

    __tablename__ = "sensor_type"
    __table_args__ = (
        CheckConstraint("report_interval_s > 0", name="sensor_type_report_interval_s_check"),
        CheckConstraint("offline_after_reports >= 1", name="sensor_type_offline_after_reports_check"),
    )

    code: Mapped[str] = mapped_column(Text, primary_key=True)
    name_zh: Mapped[str] = mapped_column(Text)
    name_en: Mapped[str] = mapped_column(Text)
    per_100k: Mapped[int] = mapped_column(Integer)
    report_interval_s: Mapped[int] = mapped_column(Integer)
    main_value: Mapped[str] = mapped_column(Text)
    unit: Mapped[str] = mapped_column(Text)
    sort: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    #: silent for longer than this many intervals = offline
    offline_after_reports: Mapped[int] = mapped_column(Integer, server_default=text("3"))


class Sensor(Base):
    __tablename__ = "sensor"
    __table_args__ = (
        CheckConstraint(in_list("status", SENSOR_STATUSES), name="sensor_status_check"),
        Index("sensor_geom_gix", "geom", postgresql_using="gist"),
        Index("sensor_village_idx", "village_id"),
        Index("sensor_status_idx", "status"),
        Index("sensor_status_changed_idx", "status_changed_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(Text, unique=True)
    type: Mapped[str] = mapped_column(Text, ForeignKey("sensor_type.code"))
    village_id: Mapped[int] = mapped_column(ForeignKey("village.id"))
    geom: Mapped[WKBElement] = mapped_column(geometry("POINT"))
    status: Mapped[str] = mapped_column(Text, server_default=text("'normal'::text"))
    installed_at: Mapped[datetime.datetime] = mapped_column(server_default=text("now()"))
    last_seen_at: Mapped[Optional[datetime.datetime]]
    last_seq: Mapped[Optional[int]] = mapped_column(BigInteger)
    last_values: Mapped[Optional[dict[str, Any]]] = mapped_column(JSONB)
    status_changed_at: Mapped[datetime.datetime] = mapped_column(server_default=text("now()"))


class SensorReading(Base):
    """A reading; the key (sensor, seq) makes QoS 1 redeliveries and retries harmless."""

    __tablename__ = "sensor_reading"
    __table_args__ = (Index("sensor_reading_time_idx", "sensor_id", text("measured_at DESC")),)

    sensor_id: Mapped[int] = mapped_column(ForeignKey("sensor.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    village_id: Mapped[int] = mapped_column(Integer)
    measured_at: Mapped[datetime.datetime]
    received_at: Mapped[datetime.datetime] = mapped_column(server_default=text("now()"))
    values: Mapped[dict[str, Any]] = mapped_column(JSONB)


class SensorRule(Base):
    """An alarm threshold with hysteresis; reference data."""

    __tablename__ = "sensor_rule"
    __table_args__ = (
        CheckConstraint(f"code ~ {_KEY}", name="sensor_rule_code_check"),
        CheckConstraint(f"value_key ~ {_KEY}", name="sensor_rule_value_key_check"),
        CheckConstraint(in_list("comparison", COMPARISONS), name="sensor_rule_comparison_check"),
        UniqueConstraint("sensor_type", "code"),
        # hysteresis: the clear level lies on the normal side of the raise level
        CheckConstraint("CASE WHEN comparison IN ('>=', '>') THEN clear_level <= raise_level"
                        " ELSE clear_level >= raise_level END", name="sensor_rule_check"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sensor_type: Mapped[str] = mapped_column(Text, ForeignKey("sensor_type.code"))
    code: Mapped[str] = mapped_column(Text)
    value_key: Mapped[str] = mapped_column(Text)
    comparison: Mapped[str] = mapped_column(Text)
    raise_level: Mapped[float]
    clear_level: Mapped[float]
    subclass_code: Mapped[str] = mapped_column(Text, ForeignKey("event_subclass.code"))
    urgency: Mapped[str] = mapped_column(Text, ForeignKey("event_urgency.code"))
    event_source: Mapped[str] = mapped_column(Text, ForeignKey("event_source.code"),
                                              server_default=text("'sensor'::text"))
    label_zh: Mapped[str] = mapped_column(Text)
    label_en: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(server_default=text("true"))


class SensorAlarm(Base):
    """One alarm episode (threshold or offline) and the event it opened."""

    __tablename__ = "sensor_alarm"
    __table_args__ = (
        CheckConstraint(in_list("kind", ALARM_KINDS), name="sensor_alarm_kind_check"),
        CheckConstraint("(kind = 'threshold') = (rule_id IS NOT NULL)", name="sensor_alarm_check"),
        CheckConstraint("cleared_at IS NULL OR cleared_at >= opened_at", name="sensor_alarm_check1"),
        CheckConstraint("(event_id IS NULL) = (event_reported_at IS NULL)", name="sensor_alarm_check2"),
        ForeignKeyConstraint(["event_id", "event_reported_at"], ["event.id", "event.reported_at"]),
        # one open episode per sensor and rule, and one open offline episode per sensor
        Index("sensor_alarm_open_rule_uq", "sensor_id", "rule_id", unique=True,
              postgresql_where=text("cleared_at IS NULL AND kind = 'threshold'")),
        Index("sensor_alarm_open_offline_uq", "sensor_id", unique=True,
              postgresql_where=text("cleared_at IS NULL AND kind = 'offline'")),
        Index("sensor_alarm_sensor_idx", "sensor_id", text("opened_at DESC")),
        Index("sensor_alarm_event_idx", "event_id", postgresql_where=text("event_id IS NOT NULL")),
        Index("sensor_alarm_village_idx", "village_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    sensor_id: Mapped[int] = mapped_column(ForeignKey("sensor.id"))
    village_id: Mapped[int] = mapped_column(ForeignKey("village.id"))
    kind: Mapped[str] = mapped_column(Text)
    rule_id: Mapped[Optional[int]] = mapped_column(ForeignKey("sensor_rule.id"))
    #: measured time of the raising reading / of the silence limit
    opened_at: Mapped[datetime.datetime]
    #: measured time of the clearing reading
    cleared_at: Mapped[Optional[datetime.datetime]]
    open_seq: Mapped[Optional[int]] = mapped_column(BigInteger)
    clear_seq: Mapped[Optional[int]] = mapped_column(BigInteger)
    open_value: Mapped[Optional[float]]
    peak_value: Mapped[Optional[float]]
    clear_value: Mapped[Optional[float]]
    #: readings of the episode, in time order
    reading_seqs: Mapped[list[int]] = mapped_column(ARRAY(BigInteger), server_default=text("'{}'::bigint[]"))
    event_id: Mapped[Optional[int]] = mapped_column(BigInteger)
    event_reported_at: Mapped[Optional[datetime.datetime]]
    created_at: Mapped[datetime.datetime] = mapped_column(server_default=text("now()"))
    updated_at: Mapped[datetime.datetime] = mapped_column(server_default=text("now()"))


class SensorIngestCounter(Base):
    """Exact counts per day, source, outcome and reason of what the ingest saw."""

    __tablename__ = "sensor_ingest_counter"
    __table_args__ = (
        CheckConstraint(in_list("source", INGEST_SOURCES), name="sensor_ingest_counter_source_check"),
        CheckConstraint(in_list("outcome", INGEST_OUTCOMES), name="sensor_ingest_counter_outcome_check"),
        CheckConstraint("count >= 0", name="sensor_ingest_counter_count_check"),
    )

    day: Mapped[datetime.date] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(Text, primary_key=True)
    outcome: Mapped[str] = mapped_column(Text, primary_key=True)
    reason: Mapped[str] = mapped_column(Text, primary_key=True, server_default=text("''::text"))
    count: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))


class SensorIngestRejection(Base):
    """A (sampled) log of rejected payloads; not village-scoped (may name no known sensor)."""

    __tablename__ = "sensor_ingest_rejection"
    __table_args__ = (
        CheckConstraint(in_list("source", INGEST_SOURCES), name="sensor_ingest_rejection_source_check"),
        CheckConstraint("length(payload) <= 1000", name="sensor_ingest_rejection_payload_check"),
        Index("sensor_ingest_rejection_at_idx", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime.datetime] = mapped_column(server_default=text("now()"))
    source: Mapped[str] = mapped_column(Text)
    client: Mapped[Optional[str]] = mapped_column(Text)
    topic: Mapped[Optional[str]] = mapped_column(Text)
    sensor_code: Mapped[Optional[str]] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    detail: Mapped[Optional[str]] = mapped_column(Text)
    payload: Mapped[Optional[str]] = mapped_column(Text)
