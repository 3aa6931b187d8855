"""Public resources (schools, clinics, …) and population per village and grid (0001), population points (0021)."""
from __future__ import annotations

import uuid
import datetime as dt
from typing import Any, Optional

from geoalchemy2 import WKBElement
from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geodata.models.base import Base, geometry


class ResourceType(Base):
    """Reference data (rows inserted by 0001): the app role reads it, never writes it."""

    __tablename__ = "resource_type"

    code: Mapped[str] = mapped_column(Text, primary_key=True)
    name_zh: Mapped[str] = mapped_column(Text)
    name_en: Mapped[str] = mapped_column(Text)
    icon: Mapped[str] = mapped_column(Text)
    color: Mapped[str] = mapped_column(Text)
    capacity_unit_zh: Mapped[Optional[str]] = mapped_column(Text)
    capacity_unit_en: Mapped[Optional[str]] = mapped_column(Text)
    sort: Mapped[int] = mapped_column(Integer, server_default=text("0"))


class Resource(Base):
    __tablename__ = "resource"
    __table_args__ = (
        CheckConstraint("capacity IS NULL OR capacity >= 0", name="resource_capacity_check"),
        Index("resource_geom_gix", "geom", postgresql_using="gist"),
        Index("resource_village_idx", "village_id"),
        Index("resource_type_idx", "type"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("village.id"))
    type: Mapped[str] = mapped_column(Text, ForeignKey("resource_type.code"))
    name: Mapped[str] = mapped_column(Text)
    capacity: Mapped[Optional[int]] = mapped_column(Integer)
    address: Mapped[Optional[str]] = mapped_column(Text)
    geom: Mapped[WKBElement] = mapped_column(geometry("POINT"))
    attrs: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    source: Mapped[str] = mapped_column(Text, server_default=text("'demo'::text"))


class Population(Base):
    """Population of a village (``grid_uid`` NULL) or of one of its grids, per year."""

    __tablename__ = "population"
    __table_args__ = (
        CheckConstraint("year BETWEEN 1949 AND 2100", name="population_year_check"),
        CheckConstraint("total >= 0", name="population_total_check"),
        CheckConstraint("age_60_plus >= 0 AND age_60_plus <= total", name="population_check"),
        CheckConstraint("households >= 0", name="population_households_check"),
        UniqueConstraint("village_id", "grid_uid", "year", postgresql_nulls_not_distinct=True),
        Index("population_grid_idx", "grid_uid"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("village.id"))
    grid_uid: Mapped[Optional[uuid.UUID]]
    year: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    age_60_plus: Mapped[int] = mapped_column(Integer)
    households: Mapped[int] = mapped_column(Integer)
    #: where the figure comes from: ``table`` (an imported/census table), ``points`` (summed
    #: from :class:`PopulationPoint` by geodata.grids.population), ``area_share`` (split by area)
    source: Mapped[str] = mapped_column(Text, server_default=text("'table'::text"))
    #: the date the figure describes (the points' date for ``points``)
    as_of: Mapped[Optional[dt.date]] = mapped_column(Date)


class PopulationPoint(Base):
    """Where people live (0021): a dwelling or household cluster with its head count.

    Grid population rows are recomputed from these points whenever grids change, so
    editing grids never changes a village's total.
    """

    __tablename__ = "population_point"
    __table_args__ = (
        CheckConstraint("total >= 0 AND age_60_plus >= 0 AND households >= 0", name="population_point_check"),
        Index("population_point_geom_gix", "geom", postgresql_using="gist"),
        Index("population_point_village_idx", "village_id", "year"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("village.id"))
    year: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    age_60_plus: Mapped[int] = mapped_column(Integer)
    households: Mapped[int] = mapped_column(Integer)
    geom: Mapped[WKBElement] = mapped_column(geometry("POINT"))
    #: ``demo``, ``import:<file>`` …
    source: Mapped[str] = mapped_column(Text, server_default=text("'demo'::text"))
    as_of: Mapped[dt.date] = mapped_column(Date)
