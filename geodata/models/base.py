"""The declarative base every model shares, and the geometry column type.

The naming convention reproduces PostgreSQL's own default names
(``<table>_pkey``, ``<table>_<columns>_fkey``, ``<table>_<columns>_key``), which
the migrations written as SQL got implicitly; so a model and a migrated database
name their constraints alike, and a generated migration names new ones the same
way. CHECK constraints and indexes carry explicit names.
"""
from __future__ import annotations

import datetime

from geoalchemy2 import Geometry
from sqlalchemy import DateTime, Double, MetaData
from sqlalchemy.orm import DeclarativeBase

from geodata.config import STORAGE_SRID

NAMING_CONVENTION = {
    "pk": "%(table_name)s_pkey",
    "fk": "%(table_name)s_%(column_0_N_name)s_fkey",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
}


class Base(DeclarativeBase):
    """Declarative base: ``Base.metadata`` is the schema Alembic compares with the database."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # Times are stored UTC as timestamptz; floats are double precision.
    type_annotation_map = {datetime.datetime: DateTime(timezone=True), float: Double}


def geometry(kind: str = "GEOMETRY") -> Geometry:
    """A geometry column type of ``kind`` in the storage CRS.

    Parameters
    ----------
    kind : str
        PostGIS geometry type (``POINT``, ``MULTIPOLYGON``, …; ``GEOMETRY`` for any).

    Returns
    -------
    Geometry
        Without GeoAlchemy2's automatic ``idx_<table>_<column>`` index: every
        spatial index is declared by name in its table's ``__table_args__``, as
        the migrations created it.
    """
    return Geometry(kind, srid=STORAGE_SRID, spatial_index=False)


def in_list(column: str, values) -> str:
    """SQL ``column IN ('a', 'b', …)`` for a CHECK constraint or a partial index.

    Parameters
    ----------
    column : str
        Column name.
    values : iterable of str
        Code values (enum members are taken by value).
    """
    quoted = ", ".join("'" + str(getattr(v, "value", v)).replace("'", "''") + "'" for v in values)
    return f"{column} IN ({quoted})"
