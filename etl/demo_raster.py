"""The demo county's population raster: 100 m pixels in EPSG:4549, people per pixel.

Each grid's population (latest year) is spread over the pixels whose centre lies in the
grid, in proportion to a smooth random "settlement" field (seeded), so the pixels of a
grid add up exactly to its population while the picture looks like villages rather than
flat polygons. Pixels outside every grid but inside the raster are 0; the file's nodata
is −9999. :func:`load_demo_raster` writes the GeoTIFF and registers it through the
importer (``raster_dataset``, 0003) as ``population_demo``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from geodata.config import METRIC_SRID, STORAGE_SRID, get_settings

NAME = "population_demo"
TITLE_ZH, TITLE_EN = "人口密度栅格(演示,100 米)", "Population raster (demo, 100 m)"
NODATA = -9999.0


def generate_population_raster(grids, populations, dest: str | Path, *, pixel_m: float = 100.0,
                               seed: int = 11) -> Path:
    """Write a population GeoTIFF for ``grids``.

    Parameters
    ----------
    grids : sequence of shapely polygons
        Grid polygons in EPSG:4490.
    populations : sequence of float
        People per grid, aligned with ``grids``.
    dest : path
        The .tif to write.
    pixel_m : float
        Pixel size in metres.
    seed : int
        Seed of the settlement texture.

    Returns
    -------
    Path
    """
    import rasterio
    import shapely
    from pyproj import Transformer
    from rasterio.features import rasterize
    from rasterio.transform import from_origin
    from scipy.ndimage import gaussian_filter

    fwd = Transformer.from_crs(STORAGE_SRID, METRIC_SRID, always_xy=True)
    metric = [shapely.transform(g, lambda xy: np.column_stack(fwd.transform(xy[:, 0], xy[:, 1]))) for g in grids]
    minx, miny, maxx, maxy = shapely.total_bounds(np.asarray(metric, dtype=object))
    minx, miny = np.floor(minx / pixel_m) * pixel_m - pixel_m, np.floor(miny / pixel_m) * pixel_m - pixel_m
    maxx, maxy = np.ceil(maxx / pixel_m) * pixel_m + pixel_m, np.ceil(maxy / pixel_m) * pixel_m + pixel_m
    width, height = int(round((maxx - minx) / pixel_m)), int(round((maxy - miny) / pixel_m))
    transform = from_origin(minx, maxy, pixel_m, pixel_m)
    zone = rasterize(((g, i + 1) for i, g in enumerate(metric)), out_shape=(height, width), transform=transform,
                     fill=0, dtype="int32")
    rng = np.random.default_rng(seed)
    field = gaussian_filter(rng.normal(size=(height, width)), sigma=4.0)
    field = np.exp(3.0 * field / (field.std() or 1.0))  # lumpy: settlements and empty fields
    weights = np.where(zone > 0, field, 0.0)
    sums = np.bincount(zone.ravel(), weights=weights.ravel(), minlength=len(metric) + 1)
    pops = np.concatenate([[0.0], np.asarray(populations, dtype=float)])
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(zone > 0, weights * pops[zone] / sums[zone], 0.0)
    # Grids too small to hold a pixel centre: their people go to the pixel under their centroid.
    present = np.bincount(zone.ravel(), minlength=len(metric) + 1) > 0
    inv = ~transform
    for i in np.flatnonzero(~present[1:]):
        c = metric[i].representative_point()
        col, row = (int(v) for v in inv @ (c.x, c.y))
        if 0 <= row < height and 0 <= col < width:
            values[row, col] += pops[i + 1]
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(dest, "w", driver="GTiff", width=width, height=height, count=1, dtype="float32",
                       crs=f"EPSG:{METRIC_SRID}", transform=transform, nodata=NODATA, compress="deflate",
                       tiled=True, blockxsize=256, blockysize=256) as out:
        out.write(values.astype("float32"), 1)
        out.set_band_description(1, "people per pixel")
    return dest


def _grids_and_population(session):
    from shapely import wkb
    from sqlalchemy import text

    rows = session.execute(text(
        """
        SELECT ST_AsBinary(g.geom), p.total FROM grid g
          JOIN population p ON p.grid_uid = g.uid AND p.year = (SELECT max(year) FROM population)
         WHERE g.valid_to IS NULL ORDER BY g.code
        """)).all()
    return [wkb.loads(bytes(r[0])) for r in rows], [float(r[1]) for r in rows]


def load_demo_raster(connection, *, seed: int = 11, work_dir: Path | None = None) -> dict:
    """Generate the demo population raster and register it (idempotent: same seed, same file).

    Parameters
    ----------
    connection : sqlalchemy.engine.Connection
        A connection (app or owner role) not inside a transaction; the import commits.
    seed : int
    work_dir : Path, optional
        Where the GeoTIFF is written before import (default ``DVMAP_DATA_DIR/demo``).

    Returns
    -------
    dict
        ``raster_id``, ``status`` of the import, ``path`` of the generated file.
    """
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from etl.importers.loader import ImportOptions, run_import
    from geodata.db import SYSTEM, apply_scope

    with Session(bind=connection) as s:
        with s.begin():
            apply_scope(s.connection(), SYSTEM)
            grids, pops = _grids_and_population(s)
    if not grids:
        raise ValueError("no grids with population: load the demo county first (dvmap demo-data)")
    work_dir = Path(work_dir or get_settings().data_dir / "demo")
    path = generate_population_raster(grids, pops, work_dir / f"{NAME}_{seed}.tif", seed=seed)
    report = run_import(path, "raster", connection, scope=SYSTEM,
                        options=ImportOptions(layer_name=NAME, title_zh=TITLE_ZH, title_en=TITLE_EN,
                                              created_by="demo-raster"))
    with connection.begin():
        apply_scope(connection, SYSTEM)
        rid = connection.execute(text("SELECT id FROM raster_dataset WHERE name = :n"), {"n": NAME}).scalar()
    return {"raster_id": rid, "status": report.status, "path": str(path),
            "message": f"{report.message_zh or ''} {report.message_en or ''}".strip()}
