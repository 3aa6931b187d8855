"""Events (0002): reference data, the partitioned event table, requests, history, photos, API clients.

``event`` is partitioned by range of ``reported_at``; the yearly partitions
(``event_y2020`` … ``event_y2030``) and ``event_default`` are made by migration
0002 and are not models (new partitions are a migration's job, not a column's).
Its primary key is ``(id, reported_at)`` because a partitioned table's keys must
hold the partition column; ``id`` comes from one sequence.
"""
from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Any, Optional

from geoalchemy2 import WKBElement
from sqlalchemy import (CHAR, REAL, BigInteger, CheckConstraint, ForeignKey, ForeignKeyConstraint, Index, Integer,
                        LargeBinary, Numeric, Sequence, SmallInteger, Text, UniqueConstraint, Uuid, text)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geodata.models.base import Base, geometry, in_list
from geodata.workflow import OPEN, State

#: the open states in the workflow's order, as the partial indexes list them
OPEN_STATES = tuple(s for s in State if s in OPEN)
#: event.queue values
QUEUES = ("grid", "village", "county")
#: event_photo.content_type values
PHOTO_TYPES = ("image/jpeg", "image/png", "image/webp")
#: event_photo.step values (0017): 上报 / 处置前 / 处置后 / 核查
PHOTO_STEPS = ("report", "before", "after", "verify")
#: event.position_source values (0017): phone GPS, tapped on the map, geocoded address, sensor site
POSITION_SOURCES = ("gps", "tap", "address", "sensor")


# -- reference data: rows inserted by the migrations; the app role reads, never writes ----------

class Department(Base):
    __tablename__ = "department"

    code: Mapped[str] = mapped_column(Text, primary_key=True)
    name_zh: Mapped[str] = mapped_column(Text)
    name_en: Mapped[str] = mapped_column(Text)


class EventClass(Base):
    """大类: kind ``event`` (事件) or ``component`` (部件)."""

    __tablename__ = "event_class"
    __table_args__ = (
        CheckConstraint("code ~ '^[0-9]{2}$'", name="event_class_code_check"),
        CheckConstraint(in_list("kind", ("event", "component")), name="event_class_kind_check"),
    )

    code: Mapped[str] = mapped_column(Text, primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    name_zh: Mapped[str] = mapped_column(Text)
    name_en: Mapped[str] = mapped_column(Text)
    sort: Mapped[int] = mapped_column(Integer, server_default=text("0"))


class EventSubclass(Base):
    """小类, coded as its class code plus two digits."""

    __tablename__ = "event_subclass"
    __table_args__ = (
        CheckConstraint("code ~ '^[0-9]{4}$'", name="event_subclass_code_check"),
        CheckConstraint("left(code, 2) = class_code", name="event_subclass_check"),
    )

    code: Mapped[str] = mapped_column(Text, primary_key=True)
    class_code: Mapped[str] = mapped_column(Text, ForeignKey("event_class.code"))
    name_zh: Mapped[str] = mapped_column(Text)
    name_en: Mapped[str] = mapped_column(Text)
    sensor_type: Mapped[Optional[str]] = mapped_column(Text, ForeignKey("sensor_type.code"))
    active: Mapped[bool] = mapped_column(server_default=text("true"))
    sort: Mapped[int] = mapped_column(Integer, server_default=text("0"))


class EventUrgency(Base):
    __tablename__ = "event_urgency"

    code: Mapped[str] = mapped_column(Text, primary_key=True)
    name_zh: Mapped[str] = mapped_column(Text)
    name_en: Mapped[str] = mapped_column(Text)
    sort: Mapped[int] = mapped_column(Integer)


class EventSource(Base):
    __tablename__ = "event_source"

    code: Mapped[str] = mapped_column(Text, primary_key=True)
    name_zh: Mapped[str] = mapped_column(Text)
    name_en: Mapped[str] = mapped_column(Text)
    sort: Mapped[int] = mapped_column(Integer)


class EventRouting(Base):
    """The department a subclass is routed to."""

    __tablename__ = "event_routing"

    subclass_code: Mapped[str] = mapped_column(Text, ForeignKey("event_subclass.code"), primary_key=True)
    department: Mapped[str] = mapped_column(Text, ForeignKey("department.code"))


class EventSla(Base):
    """Time limit from dispatch, per subclass and urgency."""

    __tablename__ = "event_sla"
    __table_args__ = (CheckConstraint("hours > 0", name="event_sla_hours_check"),)

    subclass_code: Mapped[str] = mapped_column(Text, ForeignKey("event_subclass.code"), primary_key=True)
    urgency: Mapped[str] = mapped_column(Text, ForeignKey("event_urgency.code"), primary_key=True)
    hours: Mapped[decimal.Decimal] = mapped_column(Numeric(7, 2))


# -- events ---------------------------------------------------------------------------------------

#: ``event.id``'s sequence (the table is partitioned, so no bigserial)
event_id_seq = Sequence("event_id_seq", data_type=BigInteger, metadata=Base.metadata)


class Event(Base):
    """One event (事件) through the loop; RLS per village and, for grid workers, per grid."""

    __tablename__ = "event"
    __table_args__ = (
        CheckConstraint(in_list("queue", QUEUES), name="event_queue_check"),
        CheckConstraint("length(btrim(description)) BETWEEN 1 AND 2000", name="event_description_check"),
        CheckConstraint(in_list("state", State), name="event_state_check"),
        CheckConstraint("version >= 1", name="event_version_check"),
        CheckConstraint("postpone_count >= 0", name="event_postpone_count_check"),
        CheckConstraint("rating BETWEEN 1 AND 5", name="event_rating_check"),
        CheckConstraint("rework_count >= 0", name="event_rework_count_check"),
        CheckConstraint("escalation_level BETWEEN 0 AND 2", name="event_escalation_level_check"),
        CheckConstraint(f"(closed_at IS NOT NULL) = ({in_list('state', (State.CLOSED, State.EVALUATED))})",
                        name="event_check"),
        CheckConstraint(f"(rating IS NOT NULL) = (state = '{State.EVALUATED.value}')", name="event_check1"),
        CheckConstraint("queue <> 'grid' OR grid_uid IS NOT NULL", name="event_check2"),
        CheckConstraint("(queue = 'county') = (village_id IS NULL)", name="event_check3"),
        CheckConstraint("position_accuracy_m BETWEEN 0 AND 100000", name="event_position_accuracy_m_check"),
        CheckConstraint(in_list("position_source", POSITION_SOURCES), name="event_position_source_check"),
        # (geom, reported_at): viewport + time window in one GiST index (btree_gist, 0013)
        Index("event_geom_time_gix", "geom", "reported_at", postgresql_using="gist"),
        Index("event_id_idx", "id"),
        Index("event_state_idx", "state", "reported_at"),
        Index("event_reported_idx", "reported_at"),
        Index("event_village_idx", "village_id", "reported_at"),
        Index("event_grid_idx", "grid_uid"),
        Index("event_closed_idx", "closed_at", postgresql_where=text("closed_at IS NOT NULL")),
        Index("event_sla_due_idx", "sla_due_at", postgresql_where=text("sla_due_at IS NOT NULL")),
        Index("event_open_due_idx", "due_at", postgresql_where=text(in_list("state", OPEN_STATES))),
        Index("event_subclass_idx", "subclass_code"),
        Index("event_unclosed_due_idx", "due_at",
              postgresql_where=text("closed_at IS NULL AND sla_due_at IS NOT NULL")),
        # covering indexes: the zoomed-out counts are index-only scans (0008, 0013)
        Index("event_reported_cover_idx", "reported_at",
              postgresql_include=["village_id", "grid_uid", "state", "due_at", "class_code"]),
        Index("event_open_cover_idx", "state", postgresql_include=["village_id", "grid_uid"],
              postgresql_where=text(in_list("state", OPEN_STATES))),
        {"postgresql_partition_by": "RANGE (reported_at)"},
    )

    id: Mapped[int] = mapped_column(BigInteger, event_id_seq, primary_key=True,
                                    server_default=event_id_seq.next_value())
    reported_at: Mapped[datetime.datetime] = mapped_column(primary_key=True, server_default=text("now()"))
    # route: NULL village = county queue (visible to the county scope only)
    village_id: Mapped[Optional[int]] = mapped_column(ForeignKey("village.id"))
    town_id: Mapped[Optional[int]] = mapped_column(ForeignKey("town.id"))
    grid_uid: Mapped[Optional[uuid.UUID]]
    grid_id: Mapped[Optional[int]] = mapped_column(BigInteger, ForeignKey("grid.id"))
    worker_id: Mapped[Optional[int]] = mapped_column(ForeignKey("person.id"))
    department: Mapped[Optional[str]] = mapped_column(Text, ForeignKey("department.code"))
    queue: Mapped[str] = mapped_column(Text)
    outside_grid: Mapped[bool] = mapped_column(server_default=text("false"))
    boundary_pending: Mapped[bool] = mapped_column(server_default=text("false"))
    candidate_grid_uids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(Uuid), server_default=text("'{}'::uuid[]"))
    # what
    class_code: Mapped[str] = mapped_column(Text, ForeignKey("event_class.code"))
    subclass_code: Mapped[str] = mapped_column(Text, ForeignKey("event_subclass.code"))
    description: Mapped[str] = mapped_column(Text)
    urgency: Mapped[str] = mapped_column(Text, ForeignKey("event_urgency.code"))
    source: Mapped[str] = mapped_column(Text, ForeignKey("event_source.code"))
    address: Mapped[Optional[str]] = mapped_column(Text)
    media_url: Mapped[Optional[str]] = mapped_column(Text)
    geom: Mapped[WKBElement] = mapped_column(geometry("POINT"))
    #: accuracy radius (m) of ``geom`` as the reporter's device gave it (0017)
    position_accuracy_m: Mapped[Optional[float]] = mapped_column(REAL)
    #: where ``geom`` came from: gps, tap, address, sensor (0017; NULL = not said)
    position_source: Mapped[Optional[str]] = mapped_column(Text)
    # who reported (personal data: never public)
    reporter_name: Mapped[Optional[str]] = mapped_column(Text)
    reporter_phone: Mapped[Optional[str]] = mapped_column(Text)
    reporter_email: Mapped[Optional[str]] = mapped_column(Text)
    reported_by: Mapped[str] = mapped_column(Text)
    #: app_user.id of who reported (0020: set from ``dvmap.user_id`` on insert); RLS lets
    #: them read their report wherever it was routed
    reporter_user_id: Mapped[Optional[int]] = mapped_column(Integer)
    api_client_id: Mapped[Optional[int]] = mapped_column(ForeignKey("api_client.id", name="event_api_client_fk"))
    sensor_id: Mapped[Optional[int]] = mapped_column(ForeignKey("sensor.id"))
    # the loop
    state: Mapped[str] = mapped_column(Text, server_default=text(f"'{State.REPORTED.value}'::text"))
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    dispatched_at: Mapped[Optional[datetime.datetime]]
    #: dispatch + SLA hours, never moved
    sla_due_at: Mapped[Optional[datetime.datetime]]
    #: effective deadline (moved by an approved 缓办)
    due_at: Mapped[Optional[datetime.datetime]]
    postponed_until: Mapped[Optional[datetime.datetime]]
    postpone_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    handled_at: Mapped[Optional[datetime.datetime]]
    verified_at: Mapped[Optional[datetime.datetime]]
    closed_at: Mapped[Optional[datetime.datetime]]
    evaluated_at: Mapped[Optional[datetime.datetime]]
    result: Mapped[Optional[str]] = mapped_column(Text)
    rating: Mapped[Optional[int]] = mapped_column(SmallInteger)
    rework_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    escalation_level: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    overdue_at: Mapped[Optional[datetime.datetime]]
    updated_at: Mapped[datetime.datetime] = mapped_column(server_default=text("now()"))


class EventRequest(Base):
    """Idempotency: a repeated submission (same client key) finds its event here."""

    __tablename__ = "event_request"
    __table_args__ = (
        CheckConstraint("length(client_key) BETWEEN 1 AND 200", name="event_request_client_key_check"),
        # deferred: the key is claimed first (INSERT … ON CONFLICT), the event follows
        ForeignKeyConstraint(["event_id", "reported_at"], ["event.id", "event.reported_at"],
                             deferrable=True, initially="DEFERRED"),
        Index("event_request_event_idx", "event_id"),
    )

    client_key: Mapped[str] = mapped_column(Text, primary_key=True)
    event_id: Mapped[int] = mapped_column(BigInteger)
    reported_at: Mapped[datetime.datetime]
    village_id: Mapped[Optional[int]] = mapped_column(ForeignKey("village.id"))
    created_at: Mapped[datetime.datetime] = mapped_column(server_default=text("now()"))


class EventHistory(Base):
    """Append-only (trigger in 0002): one row per change of an event."""

    __tablename__ = "event_history"
    __table_args__ = (
        ForeignKeyConstraint(["event_id", "event_reported_at"], ["event.id", "event.reported_at"]),
        UniqueConstraint("event_id", "version"),
        CheckConstraint("length(client_key) BETWEEN 1 AND 200", name="event_history_client_key_check"),
        Index("event_history_at_idx", "at"),
        Index("event_history_action_idx", "action", "at"),
        # an offline replay of a transition finds its first attempt here (0017)
        Index("event_history_client_key_idx", "event_id", "client_key", unique=True,
              postgresql_where=text("client_key IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[int] = mapped_column(BigInteger)
    event_reported_at: Mapped[datetime.datetime]
    village_id: Mapped[Optional[int]] = mapped_column(ForeignKey("village.id"))
    at: Mapped[datetime.datetime] = mapped_column(server_default=text("now()"))
    actor: Mapped[str] = mapped_column(Text)
    actor_role: Mapped[str] = mapped_column(Text)
    actor_user_id: Mapped[Optional[int]] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(Text)
    from_state: Mapped[Optional[str]] = mapped_column(Text)
    to_state: Mapped[str] = mapped_column(Text)
    #: the event's version after this change
    version: Mapped[int] = mapped_column(Integer)
    note: Mapped[Optional[str]] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    #: idempotency key of the transition that wrote this row (offline replays, 0017)
    client_key: Mapped[Optional[str]] = mapped_column(Text)


class EventPhoto(Base):
    """A photo of an event; ``data`` is stored out of line uncompressed (STORAGE EXTERNAL, 0002)."""

    __tablename__ = "event_photo"
    __table_args__ = (
        CheckConstraint(in_list("content_type", PHOTO_TYPES), name="event_photo_content_type_check"),
        CheckConstraint("size BETWEEN 1 AND 5242880", name="event_photo_size_check"),
        CheckConstraint("octet_length(data) = size", name="event_photo_check"),
        CheckConstraint(in_list("step", PHOTO_STEPS), name="event_photo_step_check"),
        CheckConstraint("accuracy_m BETWEEN 0 AND 100000", name="event_photo_accuracy_m_check"),
        ForeignKeyConstraint(["event_id", "event_reported_at"], ["event.id", "event.reported_at"]),
        UniqueConstraint("event_id", "sha256"),
        Index("event_photo_history_idx", "history_id"),
        Index("event_photo_geom_gix", "geom", postgresql_using="gist"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[int] = mapped_column(BigInteger)
    event_reported_at: Mapped[datetime.datetime]
    village_id: Mapped[Optional[int]] = mapped_column(ForeignKey("village.id"))
    history_id: Mapped[Optional[int]] = mapped_column(BigInteger, ForeignKey("event_history.id"))
    content_type: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(CHAR(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime.datetime] = mapped_column(server_default=text("now()"))
    # the server's stamp (0017): which step of the loop, where, by whom; the time is the history row's
    step: Mapped[Optional[str]] = mapped_column(Text)
    geom: Mapped[Optional[WKBElement]] = mapped_column(geometry("POINT"))
    accuracy_m: Mapped[Optional[float]] = mapped_column(REAL)
    uploaded_by: Mapped[Optional[str]] = mapped_column(Text)


class ApiClient(Base):
    """An Open311 / gateway client; the key is stored as the SHA-256 of a 256-bit random key."""

    __tablename__ = "api_client"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    key_prefix: Mapped[str] = mapped_column(Text)
    key_hash: Mapped[str] = mapped_column(CHAR(64), unique=True)
    #: NULL = the whole county
    village_ids: Mapped[Optional[list[int]]] = mapped_column(ARRAY(Integer))
    source: Mapped[str] = mapped_column(Text, ForeignKey("event_source.code"), server_default=text("'hotline'::text"))
    active: Mapped[bool] = mapped_column(server_default=text("true"))
    created_at: Mapped[datetime.datetime] = mapped_column(server_default=text("now()"))
