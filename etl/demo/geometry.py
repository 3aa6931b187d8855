"""Geometry helpers of the generator (metric CRS unless said otherwise).

Partitions (Voronoi cells, bent by a smooth warp), sampling, tidying and the
exact 6-decimal coverage the stored polygons end up on. Work happens in
:data:`geodata.config.METRIC_SRID`, storage is :data:`geodata.config.STORAGE_SRID`.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import MultiPolygon, Polygon

from geodata.config import METRIC_SRID, STORAGE_SRID

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
    """Metric polygon → storage-CRS MultiPolygon snapped to 6 decimals, valid."""
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
        """The displacement D(p) of each point."""
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
    """Turn nearly-matching polygons (storage CRS) into an exact coverage on the 6-decimal grid.

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


def _hilliness(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """0 on the eastern plain, 1 in the western hills (莫干山), in between."""
    del lat  # Deqing's hills are simply its west
    return np.clip((119.95 - np.asarray(lon)) / 0.10, 0.0, 1.0)
