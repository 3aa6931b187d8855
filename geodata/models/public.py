"""Villagers' channel (0019): public reports, followers (me too), merges, points, sensitive subclasses.

A villager has no account. What ties them to their report is a tracking code,
kept only as its SHA-256; a phone number (optional) is personal data kept for
officials, with its SHA-256 (``phone_hash``) used for limits, points and "me too".
Rows are written by the app's services (geodata/public/), scoped by RLS per
village like every event table (migration 0019).
"""
from __future__ import annotations

import datetime
from typing import Any, Optional

from sqlalchemy import (CHAR, BigInteger, CheckConstraint, Date, ForeignKey, ForeignKeyConstraint, Index,
                        Integer, SmallInteger, Text, UniqueConstraint, text)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geodata.models.base import Base, in_list

#: public_report.rating_level values (满意 / 基本满意 / 不满意)
RATING_LEVELS = ("satisfied", "basic", "not")


class PublicReport(Base):
    """A villager's report: the event it created and how the reporter follows it."""

    __tablename__ = "public_report"
    __table_args__ = (
        ForeignKeyConstraint(["event_id", "reported_at"], ["event.id", "event.reported_at"]),
        CheckConstraint(in_list("rating_level", RATING_LEVELS), name="public_report_rating_level_check"),
        CheckConstraint("length(rating_comment) <= 500", name="public_report_rating_comment_check"),
        Index("public_report_event_idx", "event_id"),
        Index("public_report_phone_idx", "phone_hash", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[int] = mapped_column(BigInteger)
    reported_at: Mapped[datetime.datetime]
    #: SHA-256 of the tracking code (the code itself is shown once, to the reporter)
    tracking_code_hash: Mapped[str] = mapped_column(CHAR(64), unique=True)
    #: personal: officials of the village only, never in a public read
    phone: Mapped[Optional[str]] = mapped_column(Text)
    phone_hash: Mapped[Optional[str]] = mapped_column(CHAR(64))
    client_ip_hash: Mapped[Optional[str]] = mapped_column(CHAR(64))
    village_id: Mapped[Optional[int]] = mapped_column(ForeignKey("village.id"))
    created_at: Mapped[datetime.datetime] = mapped_column(server_default=text("now()"))
    #: the reporter's own 评价 (the event's rating holds the number)
    rating_level: Mapped[Optional[str]] = mapped_column(Text)
    rating_comment: Mapped[Optional[str]] = mapped_column(Text)
    rated_at: Mapped[Optional[datetime.datetime]]
    #: "not satisfied" soon after closing: flagged for 核查 (see geodata.public.tracking)
    review_flagged_at: Mapped[Optional[datetime.datetime]]
    points_awarded: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))


class EventFollower(Base):
    """我也遇到了 (me too): one row per person (phone hash or device key hash) per event."""

    __tablename__ = "event_follower"
    __table_args__ = (
        UniqueConstraint("event_id", "follower_key"),
        Index("event_follower_event_idx", "event_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[int] = mapped_column(BigInteger)
    #: SHA-256 of the phone number or of the browser's random device key
    follower_key: Mapped[str] = mapped_column(CHAR(64))
    village_id: Mapped[Optional[int]] = mapped_column(ForeignKey("village.id"))
    created_at: Mapped[datetime.datetime] = mapped_column(server_default=text("now()"))
    #: set while the row was moved to a kept event by a merge (undone with the merge)
    moved_from_event_id: Mapped[Optional[int]] = mapped_column(BigInteger)


class EventMerge(Base):
    """A duplicate folded into a kept event (合并), and its undoing by an admin."""

    __tablename__ = "event_merge"
    __table_args__ = (
        CheckConstraint("kept_event_id <> merged_event_id", name="event_merge_check"),
        Index("event_merge_kept_idx", "kept_event_id"),
        Index("event_merge_merged_idx", "merged_event_id"),
        Index("event_merge_active_key", "merged_event_id", unique=True,
              postgresql_where=text("undone_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kept_event_id: Mapped[int] = mapped_column(BigInteger)
    merged_event_id: Mapped[int] = mapped_column(BigInteger)
    village_id: Mapped[Optional[int]] = mapped_column(ForeignKey("village.id"))
    #: the merged event's state before the merge (where unmerge returns it)
    previous_state: Mapped[str] = mapped_column(Text)
    merged_by: Mapped[str] = mapped_column(Text)
    merged_by_user_id: Mapped[Optional[int]] = mapped_column(Integer)
    at: Mapped[datetime.datetime] = mapped_column(server_default=text("now()"))
    #: what moved (follower ids, copied photo ids), so an unmerge can move it back
    moved: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    undone_at: Mapped[Optional[datetime.datetime]]
    undone_by: Mapped[Optional[str]] = mapped_column(Text)


class CitizenPoints(Base):
    """积分: points a phone number earned in a month in a village (monthly cap: a setting)."""

    __tablename__ = "citizen_points"
    __table_args__ = (
        CheckConstraint("points >= 0", name="citizen_points_points_check"),
        Index("citizen_points_month_idx", "month", "village_id"),
    )

    phone_hash: Mapped[str] = mapped_column(CHAR(64), primary_key=True)
    month: Mapped[datetime.date] = mapped_column(Date, primary_key=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("village.id"), primary_key=True)
    points: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    reports: Mapped[int] = mapped_column(Integer, server_default=text("0"))


class SensitiveSubclass(Base):
    """Subclasses never shown in a public read (page, tracking, nearby, Open311): data, not code."""

    __tablename__ = "sensitive_subclass"

    subclass_code: Mapped[str] = mapped_column(Text, ForeignKey("event_subclass.code"), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
