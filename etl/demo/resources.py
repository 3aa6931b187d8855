"""Generator stage for public resources: village service points and town-level facilities."""
from __future__ import annotations

import geopandas as gpd
import numpy as np

from etl.demo.geometry import _TO_STORAGE, _round_point, _sample_clustered
from etl.demo.spec import COUNTY_NAME
from geodata.config import STORAGE_SRID


class _Resources:
    """The resources stage of :class:`etl.demo.generator._Generator`."""

    def make_resources(self, towns: gpd.GeoDataFrame, villages: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        """Service points of every village, then the clinic, schools and kindergartens of each town seat."""
        rng = self.rng_res
        town_name = dict(zip(towns["code"], towns["name"]))
        rows = []

        def add(v: int, vrow, type_: str, name: str, capacity: int | None, attrs: dict, xy) -> None:
            lon, lat = _TO_STORAGE.transform(xy[0], xy[1])
            rows.append({
                "village_code": vrow.code, "type": type_, "name": name,
                "capacity": None if capacity is None else int(capacity),
                "address": f"浙江省湖州市{COUNTY_NAME}{town_name[vrow.town_code]}{vrow.name}",
                "attrs": attrs, "source": "demo", "geometry": _round_point(lon, lat),
            })

        for v, vrow in enumerate(villages.itertuples()):
            region = self.villages_m[v]
            community = vrow.kind == "community"
            pts = _sample_clustered(region, 4, rng)
            add(v, vrow, "service_station",
                f"{vrow.name}{'党群服务中心' if community else '便民服务站'}", int(rng.integers(2, 7)),
                {"level": "village"}, pts[0])
            add(v, vrow, "cultural_hall", f"{vrow.name}文化礼堂", int(rng.integers(15, 61)) * 10,
                {"level": "village"}, pts[1])
            if rng.random() < 0.85:
                add(v, vrow, "clinic", f"{vrow.name}{'卫生服务站' if community else '卫生室'}",
                    int(rng.integers(0, 5)), {"level": "village", "doctors": int(rng.integers(1, 4))}, pts[2])
            if rng.random() < 0.6:
                add(v, vrow, "elderly_care", f"{vrow.name}居家养老服务照料中心", int(rng.integers(2, 9)) * 5,
                    {"level": "village", "day_care": True}, pts[3])

        seat_rows = villages[villages["is_seat"]]
        for town in towns.itertuples():
            seat = seat_rows[seat_rows["town_code"] == town.code].iloc[0]
            v = int(np.flatnonzero(villages["code"].to_numpy() == seat["code"])[0])
            n_school = int(rng.integers(1, 4))
            n_kinder = int(rng.integers(1, 4))
            pts = _sample_clustered(self.villages_m[v], 1 + n_school + n_kinder, rng)
            health = "社区卫生服务中心" if town.kind == "subdistrict" else "卫生院"
            add(v, seat, "clinic", f"{town.name}{health}", int(rng.integers(2, 9)) * 10,
                {"level": "township", "doctors": int(rng.integers(12, 60))}, pts[0])
            school_names = [("中心小学", "primary"), ("中学", "junior_middle"), ("第二小学", "primary")]
            for j in range(n_school):
                suffix, level = school_names[j]
                seats = int(rng.integers(12, 49)) * 50 if level == "primary" else int(rng.integers(16, 37)) * 50
                add(v, seat, "school", f"{town.name}{suffix}", seats, {"level": level}, pts[1 + j])
            for j, suffix in enumerate(["中心幼儿园", "第二幼儿园", "第三幼儿园"][:n_kinder]):
                add(v, seat, "kindergarten", f"{town.name}{suffix}", int(rng.integers(6, 19)) * 30,
                    {"level": "public" if j == 0 else "inclusive_private"}, pts[1 + n_school + j])
        return gpd.GeoDataFrame(rows, geometry="geometry", crs=STORAGE_SRID)
