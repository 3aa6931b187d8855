"""Pure geometry helpers: read drawn GeoJSON and refuse what cannot be a grid, before PostGIS.

Vertex count, zero-area and duplicate-vertex rings are caught here; topology
(self-intersections, overlaps) is left to :mod:`geodata.grids.validate`.
"""
from __future__ import annotations

import json
import math
from typing import Mapping, Sequence

import shapely
from shapely.geometry import LineString, MultiPolygon, Polygon

from geodata.grids.errors import GridInputError
from geodata.grids.rules import AREA_EPSILON_M2, MAX_VERTICES

#: Rings whose shoelace area (deg²) is below this are "zero-area" (~1e-3 m² at 30°N).
_ZERO_AREA_DEG2 = 1e-13

def ring_area(coords: Sequence[Sequence[float]]) -> float:
    """Absolute shoelace area of a ring in its own units (deg² for lon/lat).

    Parameters
    ----------
    coords : sequence of (x, y)
        The ring, closed or not.

    Returns
    -------
    float
    """
    pts = list(coords)
    if len(pts) < 3:
        return 0.0
    s = 0.0
    x0, y0 = pts[0][0], pts[0][1]
    for (x1, y1), (x2, y2) in zip(((p[0] - x0, p[1] - y0) for p in pts),
                                  ((p[0] - x0, p[1] - y0) for p in pts[1:] + pts[:1])):
        s += x1 * y2 - x2 * y1
    return abs(s) / 2.0


def _dedupe(coords: Sequence[Sequence[float]]) -> list[tuple[float, float]]:
    """Drop consecutive repeated vertices and the closing vertex."""
    out: list[tuple[float, float]] = []
    for p in coords:
        xy = (float(p[0]), float(p[1]))
        if not out or xy != out[-1]:
            out.append(xy)
    while len(out) > 1 and out[0] == out[-1]:
        out.pop()
    return out


def ring_issue(coords: Sequence[Sequence[float]]) -> str | None:
    """What is wrong with one ring, before any topology check.

    Parameters
    ----------
    coords : sequence of (x, y)

    Returns
    -------
    str or None
        ``"duplicate_vertices"`` when fewer than 3 distinct vertices remain once
        repeated ones are dropped (e.g. a 3-vertex ring with a vertex doubled),
        ``"zero_area"`` when the vertices are all on one line (their convex hull
        has no area), else None.
    """
    distinct = _dedupe(coords)
    if len(set(distinct)) < 3:
        return "duplicate_vertices"
    # The hull, not the signed ring area: a symmetric bow-tie has signed area 0 but is
    # self-intersecting (PostGIS names that), whereas collinear vertices enclose nothing.
    if shapely.MultiPoint(distinct).convex_hull.area < _ZERO_AREA_DEG2:
        return "zero_area"
    return None


def count_vertices(geom) -> int:
    """Number of coordinates of a shapely geometry (closing vertices included, as ST_NPoints)."""
    return int(shapely.get_num_coordinates(geom))


def _as_geometry_dict(obj) -> dict:
    if isinstance(obj, (str, bytes)):
        try:
            obj = json.loads(obj)
        except ValueError:
            raise GridInputError("几何不是有效的 GeoJSON。", "The geometry is not valid GeoJSON.",
                                 "not_geojson") from None
    if not isinstance(obj, Mapping):
        raise GridInputError("请提供多边形(GeoJSON)。", "A polygon (GeoJSON) is required.", "not_geojson")
    kind = obj.get("type")
    if kind == "FeatureCollection":
        feats = [f for f in obj.get("features") or [] if isinstance(f, Mapping) and f.get("geometry")]
        if not feats:
            raise GridInputError("没有绘制任何图形。", "Nothing was drawn.", "empty")
        obj = feats[-1]
        kind = obj.get("type")
    if kind == "Feature":
        obj = obj.get("geometry") or {}
    if not isinstance(obj, Mapping):
        raise GridInputError("请提供多边形(GeoJSON)。", "A polygon (GeoJSON) is required.", "not_geojson")
    return dict(obj)


def _check_position(p) -> tuple[float, float]:
    if not isinstance(p, (list, tuple)) or len(p) < 2:
        raise GridInputError("坐标格式错误。", "A coordinate is malformed.", "bad_coordinates")
    try:
        x, y = float(p[0]), float(p[1])
    except (TypeError, ValueError):
        raise GridInputError("坐标不是数字。", "A coordinate is not a number.", "bad_coordinates") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise GridInputError("坐标无效(NaN 或无穷大)。", "A coordinate is NaN or infinite.", "bad_coordinates")
    if not (-180 <= x <= 180 and -90 <= y <= 90):
        raise GridInputError("坐标超出经纬度范围。", "A coordinate is outside the lon/lat range.",
                             "bad_coordinates")
    return x, y


_RING_MESSAGES = {
    "duplicate_vertices": ("多边形的环少于 3 个不同顶点(顶点重复)。",
                           "A ring has fewer than 3 distinct vertices (repeated vertices)."),
    "zero_area": ("多边形面积为零(顶点共线)。", "The polygon has zero area (its vertices are collinear)."),
}


def parse_polygon(obj, max_vertices: int = MAX_VERTICES) -> Polygon | MultiPolygon:
    """Turn drawn GeoJSON into a shapely (Multi)Polygon, refusing what cannot be a grid.

    Consecutive repeated vertices are dropped and open rings closed; topology
    (self-intersections) is left to :func:`validate` (PostGIS).

    Parameters
    ----------
    obj : dict or str
        A GeoJSON Polygon/MultiPolygon geometry, a Feature, or a FeatureCollection
        (its last feature with a geometry is used: the one drawn last).
    max_vertices : int
        Refuse more vertices than this (counted as drawn).

    Returns
    -------
    shapely.Polygon or shapely.MultiPolygon

    Raises
    ------
    GridInputError
        Not a polygon, malformed or out-of-range coordinates, too many vertices,
        a ring with fewer than 3 distinct vertices, or a zero-area ring.
    """
    geom = _as_geometry_dict(obj)
    kind = geom.get("type")
    coords = geom.get("coordinates")
    if kind == "Polygon":
        polys = [coords]
    elif kind == "MultiPolygon":
        polys = coords
    else:
        raise GridInputError(f"网格必须是多边形,收到的是 {kind}。", f"A grid must be a polygon, got {kind}.",
                             "not_polygon")
    if not isinstance(polys, (list, tuple)) or not polys or not all(isinstance(p, (list, tuple)) and p
                                                                      for p in polys):
        raise GridInputError("多边形没有坐标。", "The polygon has no coordinates.", "empty")
    total = sum(len(r) for p in polys for r in p if isinstance(r, (list, tuple)))
    if total > max_vertices:
        raise GridInputError(
            f"顶点过多:{total:,} 个(上限 {max_vertices:,} 个),请简化后再保存。",
            f"Too many vertices: {total:,} (limit {max_vertices:,}); simplify the polygon first.",
            "too_many_vertices",
        )
    parts = []
    for poly in polys:
        rings = []
        for ring in poly:
            if not isinstance(ring, (list, tuple)):
                raise GridInputError("坐标格式错误。", "A coordinate is malformed.", "bad_coordinates")
            pts = [_check_position(p) for p in ring]
            problem = ring_issue(pts)
            if problem:
                zh, en = _RING_MESSAGES[problem]
                raise GridInputError(zh, en, problem)
            clean = _dedupe(pts)
            rings.append(clean + clean[:1])
        parts.append(Polygon(rings[0], rings[1:]))
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def parse_line(obj) -> LineString:
    """The split line drawn by the manager, as a shapely LineString.

    Raises
    ------
    GridInputError
        Not a line, malformed coordinates, or fewer than 2 distinct points.
    """
    geom = _as_geometry_dict(obj)
    if geom.get("type") != "LineString":
        raise GridInputError("请画一条分割线。", "Draw a line to split with.", "not_line")
    pts = [_check_position(p) for p in geom.get("coordinates") or []]
    distinct = []
    for p in pts:
        if not distinct or p != distinct[-1]:
            distinct.append(p)
    if len(distinct) < 2:
        raise GridInputError("分割线至少需要两个不同的点。", "The split line needs two distinct points.",
                             "short_line")
    return LineString(distinct)


def drop_specks(geom, min_m2: float = AREA_EPSILON_M2):
    """Remove polygon parts and holes smaller than ``min_m2`` (lon/lat input, area estimated).

    Overlay operations leave such specks (zero-width parts, pin-hole rings) where
    edges nearly coincide; they are noise, not part of a grid.

    Parameters
    ----------
    geom : shapely Polygon or MultiPolygon
        In lon/lat degrees.
    min_m2 : float

    Returns
    -------
    shapely MultiPolygon
        Possibly empty.
    """
    parts = list(getattr(geom, "geoms", [geom])) if not geom.is_empty else []
    if not parts:
        return MultiPolygon()
    lat = geom.centroid.y if not geom.centroid.is_empty else 30.0
    deg2 = min_m2 / (111_320.0 ** 2 * max(math.cos(math.radians(lat)), 0.05))
    kept = []
    for part in parts:
        if not isinstance(part, Polygon) or ring_area(part.exterior.coords) < deg2:
            continue
        holes = [h.coords for h in part.interiors if ring_area(h.coords) >= deg2]
        kept.append(Polygon(part.exterior.coords, holes))
    return MultiPolygon(kept)



def as_shape(geometry) -> Polygon | MultiPolygon:
    """``geometry`` as shapely: taken as it is when already a (Multi)Polygon, else :func:`parse_polygon`."""
    return geometry if isinstance(geometry, (Polygon, MultiPolygon)) else parse_polygon(geometry)


def _wkb(geom) -> bytes:
    return shapely.to_wkb(geom, output_dimension=2)


def _fmt_m2(value: float) -> str:
    return f"{value:,.1f}"
