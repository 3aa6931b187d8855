"""Analysis units: H3 hexagons (resolution chosen by the user) or the current grids.

H3 indexes WGS84 lon/lat; CGCS2000 (EPSG:4490, our storage CRS) differs from WGS84 by
centimetres, far below the size of any hexagon used here, so stored coordinates go to
H3 unchanged. Centroids for distance weights are projected to EPSG:4549 (metres).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from pyproj import Transformer
from shapely import wkb
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.analysis.errors import AnalysisError
from geodata.analysis.gistar import Weights, distance_band_weights, queen_weights, weights_from_pairs
from geodata.config import METRIC_SRID, STORAGE_SRID

H3_RESOLUTIONS = (6, 7, 8, 9)
MAX_CELLS = 20_000
#: Gap between generated/digitised grid polygons still counted as touching (metres).
GRID_TOUCH_TOLERANCE_M = 1.0

_TO_METRIC = Transformer.from_crs(STORAGE_SRID, METRIC_SRID, always_xy=True)


@dataclass
class Cells:
    """The units of an analysis, in a fixed order.

    ``ids`` are H3 indexes or grid ids (as strings); ``geoms`` are shapely polygons in
    EPSG:4490; ``xy`` the centroids in EPSG:4549 metres.
    """

    kind: str
    ids: list[str]
    geoms: list
    xy: np.ndarray
    resolution: int | None = None
    labels: list[str] = field(default_factory=list)
    village_ids: list[int | None] = field(default_factory=list)
    metric_geoms: list | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def assign(self, lon: np.ndarray, lat: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Index of the cell holding each point, −1 when none does."""
        if self.kind == "h3":
            import h3

            where = {c: i for i, c in enumerate(self.ids)}
            return np.array([where.get(h3.latlng_to_cell(la, lo, self.resolution), -1)
                             for lo, la in zip(lon, lat)], dtype=np.int64)
        tree = shapely.STRtree(self.metric_geoms)
        pts = shapely.points(x, y)
        pi, ci = tree.query(pts, predicate="intersects")
        out = np.full(len(pts), -1, dtype=np.int64)
        # A point on a shared edge goes to the first grid (lowest index), like routing does.
        order = np.lexsort((ci, pi))
        pi, ci = pi[order], ci[order]
        first = np.r_[True, pi[1:] != pi[:-1]] if pi.size else np.array([], dtype=bool)
        out[pi[first]] = ci[first]
        return out

    def counts(self, index: np.ndarray) -> np.ndarray:
        """Number of points per cell from :meth:`assign`'s result."""
        return np.bincount(index[index >= 0], minlength=len(self)).astype(float)

    def weights(self, kind: str = "queen", band_m: float | None = None) -> Weights:
        """Spatial weights between the cells: ``queen`` contiguity or a ``distance`` band (metres)."""
        if kind == "distance":
            return distance_band_weights(self.xy, float(band_m) if band_m is not None else float("nan"))
        if kind != "queen":
            raise AnalysisError("bad_weights", f"未知的权重类型:{kind}", f"Unknown weights: {kind}")
        if self.kind == "h3":
            import h3

            where = {c: i for i, c in enumerate(self.ids)}
            ii, jj = [], []
            for i, c in enumerate(self.ids):
                for nb in h3.grid_ring(c, 1):
                    j = where.get(nb)
                    if j is not None:
                        ii.append(i)
                        jj.append(j)
            return weights_from_pairs(len(self), np.array(ii), np.array(jj), "queen")
        return queen_weights(self.metric_geoms, tolerance=GRID_TOUCH_TOLERANCE_M)


def _metric(geom):
    return shapely.transform(geom, lambda xy: np.column_stack(_TO_METRIC.transform(xy[:, 0], xy[:, 1])))


def area_of(session: Session, village_ids=()) -> object:
    """The union of the villages the caller may see (or of ``village_ids``), EPSG:4490."""
    params = {}
    cond = ""
    if village_ids:
        cond = "WHERE id = ANY(:v)"
        params["v"] = [int(v) for v in village_ids]
    raw = session.execute(text(f"SELECT ST_AsBinary(ST_Union(geom)) FROM village {cond}"), params).scalar()
    if raw is None:
        raise AnalysisError("empty_selection", "所选范围内没有可见的行政村。", "No visible village in the selection.")
    return wkb.loads(bytes(raw))


def h3_cells(area, resolution: int, extra_lonlat: tuple[np.ndarray, np.ndarray] | None = None) -> Cells:
    """H3 cells whose centre lies in ``area``, plus the cells of ``extra_lonlat`` points.

    Adding the points' own cells keeps events near the edge in the analysis (a hexagon
    whose centre lies just outside the county still holds them).

    Parameters
    ----------
    area : shapely geometry
        EPSG:4490 polygon(s).
    resolution : int
        H3 resolution, one of :data:`H3_RESOLUTIONS` (6: ~36 km², 7: ~5 km², 8: ~0.7 km²,
        9: ~0.1 km² per cell).
    extra_lonlat : (lon, lat) arrays, optional

    Returns
    -------
    Cells
    """
    import h3

    try:
        resolution = int(resolution)
    except (TypeError, ValueError):
        resolution = -1
    if resolution not in H3_RESOLUTIONS:
        raise AnalysisError("bad_resolution", f"H3 分辨率须为 {H3_RESOLUTIONS[0]}–{H3_RESOLUTIONS[-1]}。",
                            f"The H3 resolution must be {H3_RESOLUTIONS[0]}–{H3_RESOLUTIONS[-1]}.")
    est = area.area / max(h3.average_hexagon_area(resolution, "km^2"), 1e-9) * (111.0 * 96.0)
    if est > MAX_CELLS:
        raise AnalysisError("too_many_cells", f"该分辨率下单元过多(约 {est:,.0f} 个),请选择更低的分辨率或更小的范围。",
                            f"Too many cells at this resolution (about {est:,.0f}); choose a lower resolution "
                            "or a smaller area.")
    cells = set(h3.geo_to_cells(shapely.geometry.mapping(area), resolution))
    if extra_lonlat is not None:
        lon, lat = extra_lonlat
        cells.update(h3.latlng_to_cell(la, lo, resolution) for lo, la in zip(lon, lat))
    ids = sorted(cells)
    geoms = [shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(c)]) for c in ids]
    centre = np.array([h3.cell_to_latlng(c) for c in ids]).reshape(-1, 2)
    x, y = _TO_METRIC.transform(centre[:, 1], centre[:, 0])
    return Cells("h3", ids, geoms, np.column_stack([x, y]), resolution=resolution, labels=list(ids))


def grid_cells(session: Session, village_ids=()) -> Cells:
    """The current grids the caller may see (or those of ``village_ids``), ordered by code."""
    params = {}
    cond = ""
    if village_ids:
        cond = "AND village_id = ANY(:v)"
        params["v"] = [int(v) for v in village_ids]
    rows = session.execute(text(
        f"SELECT id, code, name, village_id, ST_AsBinary(geom) FROM grid WHERE valid_to IS NULL {cond} ORDER BY code"),
        params).all()
    if not rows:
        raise AnalysisError("empty_selection", "所选范围内没有网格。", "No grids in the selection.")
    geoms = [wkb.loads(bytes(r[4])) for r in rows]
    metric = [_metric(g) for g in geoms]
    cent = shapely.centroid(np.asarray(metric, dtype=object))
    xy = np.column_stack([shapely.get_x(cent), shapely.get_y(cent)])
    return Cells("grid", [str(r[0]) for r in rows], geoms, xy, labels=[f"{r[2]} {r[1]}" for r in rows],
                 village_ids=[int(r[3]) for r in rows], metric_geoms=metric)
