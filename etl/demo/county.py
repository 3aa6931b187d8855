"""The generated county (:class:`DemoCounty`) and the loader's refusals."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Mapping

import geopandas as gpd
import pandas as pd

from etl.demo.spec import COUNTY_CODE, COUNTY_NAME


class DemoAlreadyLoaded(Exception):
    """A county is already in the database and ``replace`` was not asked for."""

    def __init__(self, name: str = COUNTY_NAME, code: str = COUNTY_CODE):
        self.name = name
        self.code = code
        super().__init__(
            f"演示数据已存在({name} {code});使用 --replace 重新生成 / "
            f"Demo county already loaded ({name} {code}); use --replace to regenerate"
        )


class DemoReplaceBlocked(DemoAlreadyLoaded):
    """``replace`` was asked for, but other data still refers to the demo county.

    Nothing is deleted; ``references`` maps ``table.column`` to the number of
    rows that refer to the demo county's rows.
    """

    def __init__(self, references: Mapping[str, int], name: str = COUNTY_NAME, code: str = COUNTY_CODE):
        self.references = dict(references)
        listing = ", ".join(f"{k}: {v}" for k, v in self.references.items())
        Exception.__init__(
            self,
            f"演示数据({name} {code})仍被其他数据引用({listing} 行),未做替换;请先删除这些数据 / "
            f"Demo county ({name} {code}) is still referenced by other data ({listing} rows); "
            f"nothing was replaced; delete those rows first",
        )
        self.name = name
        self.code = code


@dataclass(frozen=True)
class DemoCounty:
    """The generated county, ready to inspect or load.

    Polygons are MultiPolygons and points Points in the storage CRS
    (:data:`geodata.config.STORAGE_SRID`), 6 decimals.
    Rows refer to each other by code (``town_code``, ``village_code``,
    ``sensor_code``, ``worker_key``), not by database ids.

    Attributes
    ----------
    seed : int
    now : datetime
        The moment the sensor readings end at.
    county : GeoDataFrame
        One row: code, name, source, source_note, geometry.
    towns : GeoDataFrame
        code, name, kind ('subdistrict' or 'town'), geometry.
    villages : GeoDataFrame
        code, town_code, name, kind ('community' 社区 or 'village' 村), terrain
        ('hill' or 'plain'), is_seat (holds the town's seat and its town-level
        facilities), label_point, geometry.
    grids : GeoDataFrame
        uid, version, code, village_code, name, worker_key, valid_from, geometry.
    people : DataFrame
        key, village_code, name, duty ('grid_worker' or 'village_official'), phone.
    population : DataFrame
        village_code, grid_uid (None for the village's own row), year, total,
        age_60_plus, households.
    resources : GeoDataFrame
        village_code, type, name, capacity, address, attrs (dict), source, geometry.
    sensors : GeoDataFrame
        code, type, village_code, grid_code, status, installed_at, last_seen_at,
        last_seq, last_values (dict), geometry.
    readings : DataFrame
        sensor_code, seq, village_code, measured_at, received_at, values (dict).
    """

    seed: int
    now: datetime
    county: gpd.GeoDataFrame
    towns: gpd.GeoDataFrame
    villages: gpd.GeoDataFrame
    grids: gpd.GeoDataFrame
    people: pd.DataFrame
    population: pd.DataFrame
    resources: gpd.GeoDataFrame
    sensors: gpd.GeoDataFrame
    readings: pd.DataFrame
    sensor_densities: Mapping[str, int] = field(default_factory=dict)

    def summary(self) -> dict:
        """Counts of what the county holds, as :func:`load_demo` reports them."""
        by_type = self.sensors["type"].value_counts()
        return {
            "county": len(self.county),
            "towns": len(self.towns),
            "villages": len(self.villages),
            "grids": len(self.grids),
            "people": len(self.people),
            "resources": len(self.resources),
            "population_rows": len(self.population),
            "population_total": int(self.population.loc[self.population["grid_uid"].isna(), "total"].sum()),
            "sensors": len(self.sensors),
            "sensors_by_type": {t: int(by_type.get(t, 0)) for t in self.sensor_densities},
            "readings": len(self.readings),
        }
