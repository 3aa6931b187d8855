"""Big screen (0008): the evaluation index (groups, indicators, manual values) and the daily event summary.

``event_daily`` is kept current by statement-level triggers on ``event`` (0008);
only the county scope may read it (a policy, also in the migration).
"""
from __future__ import annotations

import datetime
import decimal
from typing import Optional

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, Numeric, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from geodata.models.base import Base, in_list

#: eval_indicator.source: 'manual' or a computed measure (geodata.evaluation.AUTO_SOURCES)
INDICATOR_SOURCES = ("manual", "on_time_rate", "closure_rate", "satisfaction", "dispute_resolution",
                     "service_coverage")
_CODE = "'^[a-z_]{2,40}$'"


class EvalGroup(Base):
    __tablename__ = "eval_group"
    __table_args__ = (CheckConstraint(f"code ~ {_CODE}", name="eval_group_code_check"),)

    code: Mapped[str] = mapped_column(Text, primary_key=True)
    name_zh: Mapped[str] = mapped_column(Text)
    name_en: Mapped[str] = mapped_column(Text)
    sort: Mapped[int] = mapped_column(Integer, server_default=text("0"))


class EvalIndicator(Base):
    """A sub-indicator; score = min(value / target, 1) × 100, weighted in percentage points."""

    __tablename__ = "eval_indicator"
    __table_args__ = (
        CheckConstraint(f"code ~ {_CODE}", name="eval_indicator_code_check"),
        CheckConstraint("weight >= 0 AND weight <= 100", name="eval_indicator_weight_check"),
        CheckConstraint(in_list("source", INDICATOR_SOURCES), name="eval_indicator_source_check"),
        CheckConstraint("target > 0", name="eval_indicator_target_check"),
    )

    code: Mapped[str] = mapped_column(Text, primary_key=True)
    group_code: Mapped[str] = mapped_column(Text, ForeignKey("eval_group.code"))
    name_zh: Mapped[str] = mapped_column(Text)
    name_en: Mapped[str] = mapped_column(Text)
    weight: Mapped[decimal.Decimal] = mapped_column(Numeric(6, 2))
    source: Mapped[str] = mapped_column(Text)
    target: Mapped[decimal.Decimal] = mapped_column(Numeric(14, 4))
    unit_zh: Mapped[str] = mapped_column(Text)
    unit_en: Mapped[str] = mapped_column(Text)
    note_zh: Mapped[str] = mapped_column(Text)
    note_en: Mapped[str] = mapped_column(Text)
    sort: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    updated_at: Mapped[datetime.datetime] = mapped_column(server_default=text("now()"))
    updated_by: Mapped[Optional[str]] = mapped_column(Text)


class EvalManualValue(Base):
    """A value entered by an administrator, per quarter (``2025Q3``), village and indicator."""

    __tablename__ = "eval_manual_value"
    __table_args__ = (
        CheckConstraint("period ~ '^[0-9]{4}Q[1-4]$'", name="eval_manual_value_period_check"),
        CheckConstraint("value BETWEEN -1000000 AND 1000000", name="eval_manual_value_value_check"),
        CheckConstraint("note IS NULL OR length(note) <= 500", name="eval_manual_value_note_check"),
        Index("eval_manual_value_village_idx", "village_id"),
    )

    period: Mapped[str] = mapped_column(Text, primary_key=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("village.id"), primary_key=True)
    indicator_code: Mapped[str] = mapped_column(Text, ForeignKey("eval_indicator.code"), primary_key=True)
    value: Mapped[decimal.Decimal] = mapped_column(Numeric(14, 4))
    note: Mapped[Optional[str]] = mapped_column(Text)
    entered_by: Mapped[str] = mapped_column(Text)
    entered_at: Mapped[datetime.datetime] = mapped_column(server_default=text("now()"))


class EventDaily(Base):
    """Events reported and closed per China-time day, town, class and source (county totals).

    The table has no primary key (a NULL town is a key value): the mapper uses the
    unique key ``event_daily_key`` as its identity.
    """

    __tablename__ = "event_daily"
    __table_args__ = (
        UniqueConstraint("day", "town_id", "class_code", "source", name="event_daily_key",
                         postgresql_nulls_not_distinct=True),
    )

    day: Mapped[datetime.date] = mapped_column()
    town_id: Mapped[Optional[int]] = mapped_column(ForeignKey("town.id"))
    class_code: Mapped[str] = mapped_column(Text, ForeignKey("event_class.code"))
    source: Mapped[str] = mapped_column(Text, ForeignKey("event_source.code"))
    reported: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    closed: Mapped[int] = mapped_column(Integer, server_default=text("0"))

    __mapper_args__ = {"primary_key": [day, town_id, class_code, source]}
