"""GeoTIFF import: check the raster, keep the file, record its metadata.

The pixels are not loaded into PostgreSQL: the file is kept content-addressed under
``DVMAP_DATA_DIR/rasters/<sha256>.tif`` and ``raster_dataset`` records its footprint
(in CGCS2000), size, bands, data types, nodata and geotransform — what the raster
analysis issue needs to run zonal statistics with rasterio.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from etl.importers.archive import Limits
from etl.importers.crs import crs_label, parse_crs
from etl.importers.errors import ImportRejected
from geodata.config import STORAGE_SRID


@dataclass
class RasterInfo:
    """What :func:`inspect_raster` found."""

    driver: str
    width: int
    height: int
    band_count: int
    dtypes: list[str]
    nodata: float | None
    crs_label: str
    res: tuple[float, float]
    transform: list[float]
    descriptions: list[str | None]
    footprint_wkt: str  # in the storage CRS


def inspect_raster(path: Path, given_crs: str | None, limits: Limits | None = None) -> RasterInfo:
    """Open a GeoTIFF with rasterio and describe it; refuse when it cannot be placed.

    Parameters
    ----------
    path : Path
        The GeoTIFF.
    given_crs : str or None
        CRS named by the person importing (needed when the file has none).
    limits : Limits
        ``max_raster_pixels`` bounds width × height × bands.

    Returns
    -------
    RasterInfo

    Raises
    ------
    ImportRejected
        ``raster_unreadable``, ``raster_no_crs`` or ``raster_too_large``.
    """
    import rasterio
    from rasterio.errors import RasterioError
    from rasterio.warp import transform_geom
    from shapely.geometry import box, mapping, shape

    try:
        with rasterio.open(path) as ds:
            if ds.driver != "GTiff":
                raise ImportRejected("raster_unreadable", error=f"driver {ds.driver}")
            pixels = ds.width * ds.height * ds.count
            limits = limits or Limits()
            if pixels > limits.max_raster_pixels:
                raise ImportRejected("raster_too_large", pixels=pixels, limit=limits.max_raster_pixels)
            crs = parse_crs(given_crs) if given_crs else None
            if crs is None:
                if ds.crs is None:
                    raise ImportRejected("raster_no_crs")
                crs = parse_crs(ds.crs.to_wkt())
            footprint = transform_geom(crs.to_wkt(), f"EPSG:{STORAGE_SRID}", mapping(box(*ds.bounds)), precision=-1)
            t = ds.transform
            return RasterInfo(
                driver=ds.driver, width=ds.width, height=ds.height, band_count=ds.count,
                dtypes=list(ds.dtypes), nodata=None if ds.nodata is None else float(ds.nodata),
                crs_label=crs_label(crs) or "custom", res=(float(ds.res[0]), float(ds.res[1])),
                transform=[t.a, t.b, t.c, t.d, t.e, t.f], descriptions=list(ds.descriptions),
                footprint_wkt=shape(footprint).wkt,
            )
    except ImportRejected:
        raise
    except (RasterioError, OSError, ValueError) as exc:
        raise ImportRejected("raster_unreadable", error=str(exc)[:200]) from None


def store_raster(conn, path: Path, sha256: str, name: str, title_zh: str, title_en: str, info: RasterInfo,
                 raster_dir: Path, import_id: int) -> tuple[int, Path, bool]:
    """Copy the file into ``raster_dir`` and upsert its ``raster_dataset`` row.

    Returns
    -------
    tuple
        (dataset id, stored path, whether this call created the file — the caller removes
        it again if the transaction is rolled back).
    """
    raster_dir.mkdir(parents=True, exist_ok=True)
    dest = raster_dir / f"{sha256}.tif"
    created = False
    if not dest.exists():
        tmp = dest.with_suffix(".part")
        shutil.copyfile(path, tmp)
        tmp.replace(dest)
        created = True
    outside = conn.execute(text(f"""
        SELECT EXISTS (SELECT 1 FROM county) AND NOT EXISTS (
            SELECT 1 FROM county c WHERE ST_Intersects(c.geom, ST_GeomFromText(:wkt, {STORAGE_SRID})))
    """), {"wkt": info.footprint_wkt}).scalar_one()
    if outside:
        if created:
            dest.unlink(missing_ok=True)
        raise ImportRejected("raster_outside")
    rid = conn.execute(text(f"""
        INSERT INTO raster_dataset (name, title_zh, title_en, file_sha256, path, driver, width, height, band_count,
                                    dtypes, nodata, source_crs, res_x, res_y, transform, band_descriptions,
                                    footprint, import_id)
        VALUES (:name, :zh, :en, :sha, :path, :driver, :w, :h, :n, :dtypes, :nodata, :crs, :rx, :ry, :tf, :desc,
                ST_GeomFromText(:wkt, {STORAGE_SRID}), :imp)
        ON CONFLICT (name) DO UPDATE SET
            title_zh = EXCLUDED.title_zh, title_en = EXCLUDED.title_en, file_sha256 = EXCLUDED.file_sha256,
            path = EXCLUDED.path, driver = EXCLUDED.driver, width = EXCLUDED.width, height = EXCLUDED.height,
            band_count = EXCLUDED.band_count, dtypes = EXCLUDED.dtypes, nodata = EXCLUDED.nodata,
            source_crs = EXCLUDED.source_crs, res_x = EXCLUDED.res_x, res_y = EXCLUDED.res_y,
            transform = EXCLUDED.transform, band_descriptions = EXCLUDED.band_descriptions,
            footprint = EXCLUDED.footprint, import_id = EXCLUDED.import_id, created_at = now()
        RETURNING id
    """), {"name": name, "zh": title_zh, "en": title_en, "sha": sha256, "path": str(dest), "driver": info.driver,
           "w": info.width, "h": info.height, "n": info.band_count, "dtypes": info.dtypes, "nodata": info.nodata,
           "crs": info.crs_label, "rx": info.res[0], "ry": info.res[1], "tf": info.transform,
           "desc": [d for d in info.descriptions], "wkt": info.footprint_wkt, "imp": import_id}).scalar_one()
    return rid, dest, created


def describe(info: RasterInfo) -> dict:
    """The metadata as a plain dict (for the report)."""
    return json.loads(json.dumps(info.__dict__, default=str))
