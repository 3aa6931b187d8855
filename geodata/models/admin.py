"""Administrative units (county → town → village) and the people who work in them (0001)."""
from __future__ import annotations

from typing import Optional

from geoalchemy2 import WKBElement
from sqlalchemy import CHAR, CheckConstraint, Computed, Double, ForeignKey, Index, Integer, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from geodata.config import METRIC_SRID
from geodata.models.base import Base, geometry, in_list

#: person.duty values
DUTIES = ("grid_worker", "village_official", "town_official", "county_staff", "department_staff")
#: town.kind values
TOWN_KINDS = ("town", "subdistrict", "township")


class County(Base):
    __tablename__ = "county"
    __table_args__ = (
        CheckConstraint("code ~ '^[0-9]{6}$'", name="county_code_check"),
        Index("county_geom_gix", "geom", postgresql_using="gist"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(CHAR(6), unique=True)
    name: Mapped[str] = mapped_column(Text)
    geom: Mapped[WKBElement] = mapped_column(geometry("MULTIPOLYGON"))
    source: Mapped[str] = mapped_column(Text)
    source_note: Mapped[Optional[str]] = mapped_column(Text)


class Town(Base):
    __tablename__ = "town"
    __table_args__ = (
        CheckConstraint("code ~ '^[0-9]{9}000$'", name="town_code_check"),
        CheckConstraint(in_list("kind", TOWN_KINDS), name="town_kind_check"),
        Index("town_geom_gix", "geom", postgresql_using="gist"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    county_id: Mapped[int] = mapped_column(ForeignKey("county.id"))
    code: Mapped[str] = mapped_column(CHAR(12), unique=True)
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text, server_default=text("'town'::text"))
    geom: Mapped[WKBElement] = mapped_column(geometry("MULTIPOLYGON"))


class Village(Base):
    __tablename__ = "village"
    __table_args__ = (
        CheckConstraint("code ~ '^[0-9]{12}$'", name="village_code_check"),
        CheckConstraint("ST_IsValid(geom)", name="village_geom_check"),
        Index("village_geom_gix", "geom", postgresql_using="gist"),
        Index("village_label_gix", "label_point", postgresql_using="gist"),
        Index("village_town_idx", "town_id"),
        Index("village_name_idx", "name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    town_id: Mapped[int] = mapped_column(ForeignKey("town.id"))
    code: Mapped[str] = mapped_column(CHAR(12), unique=True)
    name: Mapped[str] = mapped_column(Text)
    geom: Mapped[WKBElement] = mapped_column(geometry("MULTIPOLYGON"))
    label_point: Mapped[WKBElement] = mapped_column(geometry("POINT"))
    #: square metres in the metric CRS, kept by PostgreSQL
    area_m2: Mapped[Optional[float]] = mapped_column(
        Double, Computed(f"ST_Area(ST_Transform(geom, {METRIC_SRID}))", persisted=True)
    )


class Person(Base):
    """Grid workers and officials; a NULL village is county staff."""

    __tablename__ = "person"
    __table_args__ = (
        CheckConstraint(in_list("duty", DUTIES), name="person_duty_check"),
        Index("person_village_idx", "village_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    village_id: Mapped[Optional[int]] = mapped_column(ForeignKey("village.id"))
    name: Mapped[str] = mapped_column(Text)
    duty: Mapped[str] = mapped_column(Text)
    phone: Mapped[Optional[str]] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(server_default=text("true"))
