"""Grid codes: the village's 12-digit code plus a 3-digit sequence in reading order.

A village's grids are numbered west→east, north→south, the way a map is read
(in the style of CJ/T 349 and GB/T 30428.1): rows from north to south, within a
row from west to east. Grid centroids never sit on a perfect lattice, so a row
is a band of latitude whose height comes from the typical grid size — the median
nearest-neighbour distance between centroids — so that slightly offset
neighbours still fall into one row.

Pure functions: no database, no dash. Used by the demo county generator and when
grid managers redraw grids.
"""
from __future__ import annotations

import math
import re
from typing import Sequence

import numpy as np

__all__ = ["MAX_GRIDS", "ROW_BAND", "grid_codes", "reading_order"]

#: A 3-digit sequence allows at most 999 grids per village (001–999).
MAX_GRIDS = 999
#: Row band height as a fraction of the median nearest-neighbour distance.
ROW_BAND = 0.5

_VILLAGE_CODE = re.compile(r"^[0-9]{12}$")


def _validate_points(centroids: Sequence[Sequence[float]]) -> np.ndarray:
    try:
        pts = np.asarray(centroids, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            "网格中心点必须是 (经度, 纬度) 数对 / centroids must be (x, y) number pairs"
        ) from exc
    if pts.size == 0:
        return pts.reshape(0, 2)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(
            f"网格中心点必须是 (经度, 纬度) 数对 / centroids must be (x, y) pairs, got shape {pts.shape}"
        )
    if not np.isfinite(pts).all():
        raise ValueError("网格中心点含有无效数值 / centroids contain NaN or infinite values")
    return pts


def _is_geographic(pts: np.ndarray) -> bool:
    return bool((np.abs(pts[:, 0]) <= 180).all() and (np.abs(pts[:, 1]) <= 90).all())


def _median_nn_distance(xy: np.ndarray) -> float:
    """Median distance from each point to its nearest other point (0 for < 2 points)."""
    n = len(xy)
    if n < 2:
        return 0.0
    nearest = np.full(n, np.inf)
    # Blocks keep memory at O(block * n) for up to 999 points.
    block = 256
    for start in range(0, n, block):
        chunk = xy[start:start + block]
        d = np.hypot(chunk[:, None, 0] - xy[None, :, 0], chunk[:, None, 1] - xy[None, :, 1])
        idx = np.arange(start, start + len(chunk))
        d[np.arange(len(chunk)), idx] = np.inf
        nearest[idx] = d.min(axis=1)
    return float(np.median(nearest))


def reading_order(centroids: Sequence[Sequence[float]], geographic: bool | None = None) -> list[int]:
    """Rank points in map reading order: rows north→south, west→east within a row.

    Parameters
    ----------
    centroids : sequence of (x, y)
        Points with north as +y: lon/lat degrees or projected metres.
    geographic : bool or None
        Whether ``centroids`` are lon/lat degrees; then east-west distances are
        scaled by cos(latitude) when measuring the grid size. ``None`` (default)
        decides from the values (all within ±180, ±90 means degrees).

    Returns
    -------
    list of int
        ``rank[i]`` is the 0-based reading position of point ``i``.

    Raises
    ------
    ValueError
        If ``centroids`` are not finite (x, y) pairs.

    Notes
    -----
    Points are taken north to south; a row starts at its northernmost point
    and takes every further point less than ``ROW_BAND`` × the median
    nearest-neighbour distance south of it. Ties are broken by x, so the order
    is fully deterministic.
    """
    pts = _validate_points(centroids)
    n = len(pts)
    if n == 0:
        return []
    if geographic is None:
        geographic = _is_geographic(pts)
    xy = pts.copy()
    if geographic:
        xy[:, 0] *= math.cos(math.radians(float(np.mean(pts[:, 1]))))
    band = ROW_BAND * _median_nn_distance(xy)

    # North first; ties west first, so identical inputs give identical output.
    order = np.lexsort((xy[:, 0], -xy[:, 1]))
    rows: list[list[int]] = []
    top = math.inf
    for i in order:
        y = xy[i, 1]
        if not rows or top - y > band:
            rows.append([int(i)])
            top = y
        else:
            rows[-1].append(int(i))
    rank = [0] * n
    pos = 0
    for row in rows:
        for i in sorted(row, key=lambda j: (xy[j, 0], -xy[j, 1])):
            rank[i] = pos
            pos += 1
    return rank


def grid_codes(
    village_code: str,
    centroids: Sequence[Sequence[float]],
    geographic: bool | None = None,
) -> list[str]:
    """Give each grid of a village its 15-digit code.

    Parameters
    ----------
    village_code : str
        The village's 12-digit 统计用区划代码.
    centroids : sequence of (x, y)
        One point per grid (its centroid), lon/lat or projected; north is +y.
    geographic : bool or None
        Passed to :func:`reading_order`.

    Returns
    -------
    list of str
        ``codes[i]`` = village code + 3-digit sequence (001, 002, …) of grid
        ``i``, numbered in reading order (rows north→south, west→east in a row).

    Raises
    ------
    ValueError
        If the village code is not 12 digits, there are more than 999 grids,
        or the centroids are not finite (x, y) pairs.

    Examples
    --------
    >>> grid_codes("330521100200", [(120.01, 30.50), (120.00, 30.50), (120.00, 30.49)])
    ['330521100200002', '330521100200001', '330521100200003']
    """
    if not isinstance(village_code, str) or not _VILLAGE_CODE.match(village_code):
        raise ValueError(
            f"村级代码必须是12位数字 / village_code must be a 12-digit string, got {village_code!r}"
        )
    pts = _validate_points(centroids)
    if len(pts) > MAX_GRIDS:
        raise ValueError(
            f"一个村最多{MAX_GRIDS}个网格 / a village can have at most {MAX_GRIDS} grids, got {len(pts)}"
        )
    return [f"{village_code}{rank + 1:03d}" for rank in reading_order(pts, geographic)]
