"""Users, roles and the append-only audit log (0004); session epochs and login throttling (0016).

``app_user`` has no row-level security: a login must find its user before any
scope exists. ``audit_log`` refuses UPDATE/DELETE/TRUNCATE by a trigger (0004).
"""
from __future__ import annotations

import datetime
from typing import Any, Optional

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geodata.models.base import Base, in_list

#: app_user.role values; the same tuple as geodata.users.USER_ROLES (a unit test compares them)
USER_ROLES = ("county_leader", "town_official", "village_official", "grid_manager", "grid_worker",
              "planner", "admin")


class AppUser(Base):
    __tablename__ = "app_user"
    __table_args__ = (
        CheckConstraint("username ~ '^[A-Za-z0-9_.@-]{2,64}$'", name="app_user_username_check"),
        CheckConstraint(in_list("role", USER_ROLES), name="app_user_role_check"),
        CheckConstraint("role <> 'village_official' OR village_id IS NOT NULL", name="app_user_check"),
        CheckConstraint("role <> 'town_official' OR town_id IS NOT NULL", name="app_user_check1"),
        CheckConstraint("role <> 'grid_worker' OR person_id IS NOT NULL", name="app_user_check2"),
        # user names are unique whatever their case
        Index("app_user_username_uq", text("lower(username)"), unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(Text)
    display_name: Mapped[str] = mapped_column(Text)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    town_id: Mapped[Optional[int]] = mapped_column(ForeignKey("town.id"))
    village_id: Mapped[Optional[int]] = mapped_column(ForeignKey("village.id"))
    person_id: Mapped[Optional[int]] = mapped_column(ForeignKey("person.id"))
    active: Mapped[bool] = mapped_column(server_default=text("true"))
    is_demo: Mapped[bool] = mapped_column(server_default=text("false"))
    failed_logins: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    locked_until: Mapped[Optional[datetime.datetime]]
    last_login_at: Mapped[Optional[datetime.datetime]]
    created_at: Mapped[datetime.datetime] = mapped_column(server_default=text("now()"))
    #: bumped by logout, password/role changes: ends every session of the user (0016)
    session_epoch: Mapped[int] = mapped_column(Integer, server_default=text("0"))


class LoginThrottle(Base):
    """Fixed-window login failure counters shared by every worker (0016, geodata/login_throttle.py)."""

    __tablename__ = "login_throttle"
    __table_args__ = (Index("login_throttle_expires_idx", "expires_at"),)

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    hits: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime.datetime]


class AuditLog(Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("audit_log_at_idx", "at"),
        Index("audit_log_user_idx", "user_id", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # clock_timestamp(): rows of one transaction keep their order
    at: Mapped[datetime.datetime] = mapped_column(server_default=text("clock_timestamp()"))
    user_id: Mapped[Optional[int]] = mapped_column(Integer)
    username: Mapped[Optional[str]] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    target: Mapped[Optional[str]] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    ip: Mapped[Optional[str]] = mapped_column(Text)
