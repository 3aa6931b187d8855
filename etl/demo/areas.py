"""Generator stages for the areas: county, towns, villages, grids, and their exact nesting."""
from __future__ import annotations

import uuid

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import MultiPolygon
from shapely.ops import nearest_points

from etl.demo.boundary import _county_boundary
from etl.demo.geometry import (
    _METRIC_GRID,
    _STORAGE_GRID,
    _apportion,
    _clean_coverage,
    _hilliness,
    _label_point,
    _merge_small,
    _multi,
    _spread_seeds,
    _to_metric,
    _to_storage,
    _voronoi_partition,
)
from etl.demo.names import _community_name, _village_name
from etl.demo.spec import (
    COMMUNITIES_PER_SUBDISTRICT,
    COUNTY_CODE,
    COUNTY_NAME,
    DEFAULT_COMMUNITIES_PER_SUBDISTRICT,
    GRID_UID_NAMESPACE,
    GRID_VALID_FROM,
    GRIDS_PER_VILLAGE,
    MIN_VILLAGES_PER_TOWN,
    N_VILLAGES,
    PEOPLE_PER_GRID,
    POPULATION_TOTAL,
    TOWNS,
)
from geodata.config import STORAGE_SRID
from geodata.gridcodes import grid_codes, reading_order


class _Areas:
    """Stages of :class:`etl.demo.generator._Generator` that draw the areas.

    Sets the metric geometries later stages sample in: ``county_m``,
    ``towns_m``, ``villages_m``, ``grids_m``, and ``village_pop``.
    """

    # -- county and towns ------------------------------------------------------
    def make_county(self) -> gpd.GeoDataFrame:
        """The county row; keeps its geometry (and a metric copy) for the towns."""
        geom, source, note = _county_boundary(self.rng_county, self.now.date())
        self.county_geom = geom
        self.county_m = shapely.set_precision(_to_metric(geom), _METRIC_GRID)
        return gpd.GeoDataFrame(
            {"code": [COUNTY_CODE], "name": [COUNTY_NAME], "source": [source], "source_note": [note]},
            geometry=[geom], crs=STORAGE_SRID,
        )

    def make_towns(self) -> gpd.GeoDataFrame:
        """The 12 real towns as a warped Voronoi partition of the county around their seats."""
        rng = self.rng_towns
        region = self.county_m
        shapely.prepare(region)
        seeds = self.seat_xy.copy()
        for i in range(len(seeds)):
            if not shapely.contains_xy(region, *seeds[i]):
                near = nearest_points(region.buffer(-500), shapely.Point(seeds[i]))[0]
                seeds[i] = (near.x, near.y)
            moved = seeds[i] + rng.normal(0, 400.0, 2)
            if shapely.contains_xy(region, *moved):
                seeds[i] = moved
        self.seat_xy = seeds
        cells = _voronoi_partition(region, seeds, rng)
        self.towns_m = cells
        return gpd.GeoDataFrame(
            {
                "code": [t[0] for t in TOWNS],
                "name": [t[1] for t in TOWNS],
                "kind": [t[2] for t in TOWNS],
            },
            geometry=[_to_storage(c) for c in cells], crs=STORAGE_SRID,
        )

    # -- villages --------------------------------------------------------------
    def make_villages(self, towns: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        """Villages and 社区 per town, smaller where people are dense, coded in reading order."""
        rng = self.rng_villages
        names_rng = self.rng_names
        town_area = np.array([c.area for c in self.towns_m])
        extra = _apportion(N_VILLAGES - MIN_VILLAGES_PER_TOWN * len(TOWNS), town_area)
        counts = extra + MIN_VILLAGES_PER_TOWN
        rows = []
        self.villages_m: list = []
        for t, (town, region, k) in enumerate(zip(TOWNS, self.towns_m, counts)):
            town_code, _, kind = town[0], town[1], town[2]
            seeds = _spread_seeds(region, int(k), rng, weight=lambda p: self.density(p) ** 1.5)
            cells = _voronoi_partition(region, seeds, rng)
            stored = [_to_storage(c) for c in cells]
            labels = [g.point_on_surface() for g in stored]
            lon = np.array([p.x for p in labels])
            lat = np.array([p.y for p in labels])
            hill = _hilliness(lon, lat)
            # 社区: the subdistrict's villages nearest its seat.
            n_comm = (COMMUNITIES_PER_SUBDISTRICT.get(town_code, DEFAULT_COMMUNITIES_PER_SUBDISTRICT)
                      if kind == "subdistrict" else 0)
            dist = np.hypot(*(seeds - self.seat_xy[t]).T)
            community = np.zeros(len(cells), dtype=bool)
            community[np.argsort(dist, kind="stable")[:n_comm]] = True
            seat = int(np.argmin(dist))
            rank = reading_order(list(zip(lon, lat)))
            comm_seq = vill_seq = 0
            for i in sorted(range(len(cells)), key=lambda j: rank[j]):
                if community[i]:
                    comm_seq += 1
                    code = f"{town_code[:9]}{comm_seq:03d}"
                    name = _community_name(names_rng, self.used_names)
                else:
                    vill_seq += 1
                    code = f"{town_code[:9]}{199 + vill_seq:03d}"
                    name = _village_name(names_rng, bool(hill[i] >= 0.3), self.used_names)
                rows.append({
                    "code": code, "town_code": town_code, "name": name,
                    "kind": "community" if community[i] else "village",
                    "terrain": "hill" if hill[i] >= 0.3 else "plain",
                    "is_seat": i == seat,
                    "label_point": _label_point(stored[i]), "geometry": stored[i], "_metric": cells[i],
                })
        rows.sort(key=lambda r: r["code"])
        self.villages_m = [r.pop("_metric") for r in rows]
        return gpd.GeoDataFrame(rows, geometry="geometry", crs=STORAGE_SRID)

    # -- grids -----------------------------------------------------------------
    def village_population(self, villages: gpd.GeoDataFrame) -> np.ndarray:
        """People per village: area × density × noise, summing to :data:`POPULATION_TOTAL`."""
        rng = self.rng_pop
        centres = np.array([[c.centroid.x, c.centroid.y] for c in self.villages_m])
        area_km2 = np.array([c.area for c in self.villages_m]) / 1e6
        weight = area_km2 * self.density(centres) * rng.lognormal(0.0, 0.3, len(centres))
        return _apportion(POPULATION_TOTAL, weight)

    def make_grids(self, villages: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        """Grids per village, as many as its people need (:data:`PEOPLE_PER_GRID`), coded by gridcodes."""
        rng = self.rng_grids
        self.village_pop = self.village_population(villages)
        lo, hi = GRIDS_PER_VILLAGE
        rows = []
        self.grids_m: list = []
        for v, (vrow, region, pop) in enumerate(zip(villages.itertuples(), self.villages_m, self.village_pop)):
            k = int(np.clip(round(pop / PEOPLE_PER_GRID), lo, hi))
            seeds = _spread_seeds(region, k, rng)
            cells = _voronoi_partition(region, seeds, rng)
            cells = _merge_small(cells, 0.2 * region.area / k, keep_at_least=lo)
            stored = [_to_storage(c) for c in cells]
            centroids = [(g.centroid.x, g.centroid.y) for g in stored]
            codes = grid_codes(vrow.code, centroids)
            for code, geom, metric in sorted(zip(codes, stored, cells), key=lambda t: t[0]):
                rows.append({
                    "uid": uuid.uuid5(GRID_UID_NAMESPACE, code),
                    "version": 1,
                    "code": code,
                    "village_code": vrow.code,
                    "name": f"{vrow.name}第{int(code[-3:]):02d}网格",
                    "worker_key": f"W{code}",
                    "valid_from": GRID_VALID_FROM,
                    "geometry": geom,
                })
                self.grids_m.append(metric)
        return gpd.GeoDataFrame(rows, geometry="geometry", crs=STORAGE_SRID)

    # -- exact nesting -----------------------------------------------------------
    def nest(self, county, towns, villages, grids):
        """Make the hierarchy exact: a clean grid coverage, parents as unions of children.

        Rounding every grid to 6 decimals on its own leaves neighbours' shared
        borders up to ~0.07 m apart where only one of them has a vertex. So all
        grid borders are noded together on the 6-decimal grid and polygonised;
        each face goes back to the grid holding it, and villages, towns and the
        county are rebuilt as unions of their children. Then every grid lies
        exactly within its village, neighbours share their borders exactly and
        no level has gaps or overlaps.
        """
        grids_geom = _clean_coverage(list(grids.geometry))
        grids["geometry"] = gpd.GeoSeries(grids_geom, index=grids.index, crs=STORAGE_SRID)

        def dissolve(children: gpd.GeoDataFrame, key: str, parents: pd.Series) -> list[MultiPolygon]:
            groups = children.groupby(key, sort=False).indices
            geoms = np.asarray(children.geometry.values, dtype=object)
            return [_multi(shapely.union_all(geoms[groups[k]], grid_size=_STORAGE_GRID)) for k in parents]

        villages = villages.copy()
        villages["geometry"] = gpd.GeoSeries(dissolve(grids, "village_code", villages["code"]),
                                             index=villages.index, crs=STORAGE_SRID)
        villages["label_point"] = [_label_point(g) for g in villages.geometry]
        towns = towns.copy()
        towns["geometry"] = gpd.GeoSeries(dissolve(villages, "town_code", towns["code"]),
                                          index=towns.index, crs=STORAGE_SRID)
        county = county.copy()
        county["geometry"] = gpd.GeoSeries(
            [_multi(shapely.union_all(np.asarray(towns.geometry.values), grid_size=_STORAGE_GRID))],
            index=county.index, crs=STORAGE_SRID)
        return county, towns, villages
