"""The field app's patrols (巡查), their track points, key points and check-ins (0018).

Track positions are personal data: row-level security (migration 0018) shows a
patrol and its points to the worker who walked it and to grid managers, village
and town officials, county leaders and administrators within their villages —
never to another grid worker. Grids are versioned, so patrols and key points
refer to a grid by its stable ``uid``, not by the id of one version.
"""
from __future__ import annotations

import datetime
import uuid
from typing import Optional

from geoalchemy2 import WKBElement
from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from geodata.models.base import Base, geometry


class Patrol(Base):
    """One patrol of one worker; ``geom``/``distance_m`` are built from its points on end/refresh."""

    __tablename__ = "patrol"
    __table_args__ = (
        CheckConstraint("ended_at IS NULL OR ended_at >= started_at", name="patrol_check"),
        CheckConstraint("distance_m IS NULL OR distance_m >= 0", name="patrol_distance_m_check"),
        Index("patrol_village_started_idx", "village_id", "started_at"),
        Index("patrol_user_started_idx", "user_id", "started_at"),
        Index("patrol_grid_started_idx", "grid_uid", "started_at"),
        Index("patrol_geom_gix", "geom", postgresql_using="gist"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    #: made by the phone (UUID), so a patrol can start offline and be sent twice safely
    patrol_key: Mapped[uuid.UUID] = mapped_column(unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    person_id: Mapped[Optional[int]] = mapped_column(ForeignKey("person.id"))
    village_id: Mapped[int] = mapped_column(ForeignKey("village.id"))
    grid_uid: Mapped[Optional[uuid.UUID]]
    started_at: Mapped[datetime.datetime]
    ended_at: Mapped[Optional[datetime.datetime]]
    #: last point's time: "on patrol now" without scanning the points
    last_point_at: Mapped[Optional[datetime.datetime]]
    distance_m: Mapped[Optional[float]]
    geom: Mapped[Optional[WKBElement]] = mapped_column(geometry("LINESTRING"))
    created_at: Mapped[datetime.datetime] = mapped_column(server_default=text("now()"))


class PatrolPoint(Base):
    """One position of a patrol; (patrol, t) is the key, so a resent batch stores nothing twice."""

    __tablename__ = "patrol_point"
    __table_args__ = (
        CheckConstraint("accuracy_m IS NULL OR accuracy_m >= 0", name="patrol_point_accuracy_m_check"),
        Index("patrol_point_t_idx", "t"),
        Index("patrol_point_geom_gix", "geom", postgresql_using="gist"),
    )

    patrol_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("patrol.id", ondelete="CASCADE"),
                                           primary_key=True)
    t: Mapped[datetime.datetime] = mapped_column(primary_key=True)
    geom: Mapped[WKBElement] = mapped_column(geometry("POINT"))
    accuracy_m: Mapped[Optional[float]]


class Checkpoint(Base):
    """A key point (关键点位) a grid manager marks in a grid; patrols check in within ``radius_m``."""

    __tablename__ = "checkpoint"
    __table_args__ = (
        CheckConstraint("radius_m > 0 AND radius_m <= 1000", name="checkpoint_radius_m_check"),
        Index("checkpoint_grid_idx", "grid_uid"),
        Index("checkpoint_village_idx", "village_id"),
        Index("checkpoint_geom_gix", "geom", postgresql_using="gist"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    grid_uid: Mapped[uuid.UUID]
    village_id: Mapped[int] = mapped_column(ForeignKey("village.id"))
    name: Mapped[str] = mapped_column(Text)
    geom: Mapped[WKBElement] = mapped_column(geometry("POINT"))
    radius_m: Mapped[float] = mapped_column(server_default=text("50"))
    active: Mapped[bool] = mapped_column(server_default=text("true"))
    created_at: Mapped[datetime.datetime] = mapped_column(server_default=text("now()"))


class Checkin(Base):
    """A check-in at a key point during a patrol; once per (patrol, key point)."""

    __tablename__ = "checkin"
    __table_args__ = (
        UniqueConstraint("patrol_id", "checkpoint_id"),
        CheckConstraint("distance_m >= 0", name="checkin_distance_m_check"),
        Index("checkin_checkpoint_idx", "checkpoint_id"),
        Index("checkin_geom_gix", "geom", postgresql_using="gist"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    patrol_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("patrol.id", ondelete="CASCADE"))
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoint.id"))
    t: Mapped[datetime.datetime]
    geom: Mapped[WKBElement] = mapped_column(geometry("POINT"))
    accuracy_m: Mapped[Optional[float]]
    distance_m: Mapped[float]
