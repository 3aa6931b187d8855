"""Grids, versioned (0001), and the grid managers' change log (0006).

The topology rules (inside the village, no overlap, minimum area, vertex limit)
are a deferred constraint trigger in migration 0006, not declared here.
"""
from __future__ import annotations

import datetime
import uuid
from typing import Any, Optional

from geoalchemy2 import WKBElement
from sqlalchemy import (CHAR, BigInteger, CheckConstraint, ForeignKey, Index, Integer, Text,
                        UniqueConstraint, text)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geodata.models.base import Base, geometry, in_list

#: grid_change.action values
CHANGE_ACTIONS = ("create", "edit", "split", "merge", "delete", "assign", "renumber", "undo")

_CURRENT = text("valid_to IS NULL")


class Grid(Base):
    """One version of a grid: a redraw closes this row (``valid_to``) and inserts the next."""

    __tablename__ = "grid"
    __table_args__ = (
        CheckConstraint("version >= 1", name="grid_version_check"),
        CheckConstraint("code ~ '^[0-9]{15}$'", name="grid_code_check"),
        CheckConstraint("ST_IsValid(geom)", name="grid_geom_check"),
        CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="grid_check"),
        UniqueConstraint("uid", "version"),
        Index("grid_current_code_uq", "code", unique=True, postgresql_where=_CURRENT),
        Index("grid_current_uid_uq", "uid", unique=True, postgresql_where=_CURRENT),
        Index("grid_geom_gix", "geom", postgresql_using="gist"),
        Index("grid_current_geom_gix", "geom", postgresql_using="gist", postgresql_where=_CURRENT),
        Index("grid_village_idx", "village_id"),
        Index("grid_change_id_idx", "change_id"),
        Index("grid_uid_version_idx", "uid", "version"),
        Index("grid_current_village_idx", "village_id", postgresql_where=_CURRENT),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    uid: Mapped[uuid.UUID]
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    village_id: Mapped[int] = mapped_column(ForeignKey("village.id"))
    code: Mapped[str] = mapped_column(CHAR(15))
    name: Mapped[str] = mapped_column(Text)
    geom: Mapped[WKBElement] = mapped_column(geometry("MULTIPOLYGON"))
    worker_id: Mapped[Optional[int]] = mapped_column(ForeignKey("person.id"))
    valid_from: Mapped[datetime.datetime] = mapped_column(server_default=text("now()"))
    valid_to: Mapped[Optional[datetime.datetime]]
    changed_by: Mapped[Optional[str]] = mapped_column(Text)
    # Deferred: the change row is written last, once its rerouted events are known.
    change_id: Mapped[Optional[int]] = mapped_column(
        BigInteger, ForeignKey("grid_change.id", deferrable=True, initially="DEFERRED")
    )


class GridChange(Base):
    """One change a grid manager made to a village's grids; append-only (trigger in 0006)."""

    __tablename__ = "grid_change"
    __table_args__ = (
        CheckConstraint(in_list("action", CHANGE_ACTIONS), name="grid_change_action_check"),
        CheckConstraint("(action = 'undo') = (undoes IS NOT NULL)", name="grid_change_check"),
        Index("grid_change_village_idx", "village_id", text("id DESC")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("village.id"))
    at: Mapped[datetime.datetime] = mapped_column(server_default=text("clock_timestamp()"))
    actor: Mapped[str] = mapped_column(Text)
    actor_role: Mapped[str] = mapped_column(Text)
    actor_user_id: Mapped[Optional[int]] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(Text)
    closed_ids: Mapped[list[int]] = mapped_column(ARRAY(BigInteger), server_default=text("'{}'::bigint[]"))
    created_ids: Mapped[list[int]] = mapped_column(ARRAY(BigInteger), server_default=text("'{}'::bigint[]"))
    undoes: Mapped[Optional[int]] = mapped_column(BigInteger, ForeignKey("grid_change.id"), unique=True)
    summary_zh: Mapped[str] = mapped_column(Text)
    summary_en: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
