"""Rasters: zonal statistics per village or grid (exactextract), stored; the raster drawn as a PNG.

Zonal statistics use exactextract, which weighs each pixel by the fraction of it the
polygon covers, so a pixel split between two grids is shared between them and sums
are preserved. The zones are reprojected into the raster's CRS (the pixels are never
resampled); a raster in another CRS than the storage CRS is therefore fine and the
result says so. For display the raster is warped to Web Mercator (EPSG:3857, what
Leaflet's image overlay stretches linearly) and coloured with a ramp.
"""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.analysis.errors import AnalysisError
from geodata.analysis.result import AnalysisResult, LegendEntry, sequential_colors
from geodata.config import METRIC_SRID, STORAGE_SRID, WEB_MERCATOR_SRID, WGS84_SRID

STATS = ("sum", "mean", "max")
RAMP = ["#ffffcc", "#c7e9b4", "#7fcdbb", "#41b6c4", "#1d91c0", "#225ea8", "#0c2c84"]
CHORO = ["#f7fcf0", "#ccebc5", "#7bccc4", "#2b8cbe", "#084081"]


def list_rasters(session: Session) -> list[dict]:
    """Registered rasters (``raster_dataset`` of 0003): id, name, titles, CRS, size."""
    return [dict(r) for r in session.execute(text(
        "SELECT id, name, title_zh, title_en, source_crs, width, height, band_count, path FROM raster_dataset"
        " ORDER BY name")).mappings()]


def raster_path(session: Session, raster_id: int) -> tuple[dict, Path]:
    """The metadata row and file of a registered raster.

    Raises
    ------
    AnalysisError
        ``raster_unknown`` or ``raster_missing`` (the file is gone).
    """
    row = session.execute(text("SELECT id, name, title_zh, title_en, path FROM raster_dataset WHERE id = :i"),
                          {"i": int(raster_id)}).mappings().first()
    if row is None:
        raise AnalysisError("raster_unknown", "未找到该栅格数据。", "No such raster dataset.")
    path = Path(row["path"])
    if not path.is_file():
        raise AnalysisError("raster_missing", f"栅格文件不存在:{path.name}", f"The raster file is missing: {path.name}")
    return dict(row), path


def _open(path: Path, crs: str | None = None):
    import rasterio
    from rasterio.errors import RasterioError

    try:
        ds = rasterio.open(path)
    except (RasterioError, OSError) as exc:
        raise AnalysisError("raster_unreadable", f"无法读取栅格文件:{exc}", f"Cannot read the raster: {exc}") from None
    if ds.crs is None and not crs:
        ds.close()
        raise AnalysisError("raster_no_crs", f"栅格文件没有坐标系,请指定其坐标系(例如 EPSG:{METRIC_SRID})。",
                            f"The raster has no coordinate reference system; name it (e.g. EPSG:{METRIC_SRID}).")
    return ds


def zonal_frame(raster: str | Path, zones, *, band: int = 1, crs: str | None = None):
    """Sum, mean and max of ``band`` over each polygon of ``zones`` (a GeoDataFrame with a CRS).

    Parameters
    ----------
    raster : path
        A GeoTIFF readable by rasterio.
    zones : geopandas.GeoDataFrame
        Polygons; reprojected into the raster's CRS here.
    band : int
        1-based band number.
    crs : str, optional
        The raster's CRS when the file has none.

    Returns
    -------
    (pandas.DataFrame, list of (zh, en))
        Columns ``sum``, ``mean``, ``max``, ``pixels`` (covered pixel count, fractional),
        aligned with ``zones``; and notes (reprojection, nodata).

    Raises
    ------
    AnalysisError
        ``raster_no_crs``, ``raster_outside`` (no overlap with the zones), ``bad_band``.
    """
    import geopandas as gpd
    import pandas as pd
    import shapely
    from exactextract import exact_extract
    from rasterio.crs import CRS

    if zones is None or len(zones) == 0:
        raise AnalysisError("empty_selection", "没有可统计的区域。", "No zones to summarise.")
    notes = []
    with _open(Path(raster), crs) as ds:
        rcrs = ds.crs or CRS.from_user_input(crs)
        if not 1 <= int(band) <= ds.count:
            raise AnalysisError("bad_band", f"波段须在 1–{ds.count} 之间。", f"The band must be 1–{ds.count}.")
        z = zones.to_crs(rcrs.to_wkt())
        footprint = shapely.box(*ds.bounds)
        if not footprint.intersects(shapely.box(*z.total_bounds)) or not z.intersects(footprint).any():
            raise AnalysisError("raster_outside", "栅格与所选区域(本县)不重叠,请检查其坐标系或范围。",
                                "The raster does not overlap the selected area (the county); check its CRS or extent.")
        epsg = rcrs.to_epsg()
        if epsg != STORAGE_SRID:
            notes.append((f"栅格坐标系为 {('EPSG:' + str(epsg)) if epsg else '自定义'},已将区域重投影到该坐标系统计(像元未重采样)。",
                          f"The raster is in {('EPSG:' + str(epsg)) if epsg else 'a custom CRS'}; the zones were "
                          "reprojected into it (pixels not resampled)."))
        src = ds if ds.crs is not None else None
        # exactextract reads the band through rasterio; a missing CRS is given via the zones' CRS match.
        frame = gpd.GeoDataFrame({"_i": np.arange(len(z))}, geometry=z.geometry.values, crs=z.crs)
        out = exact_extract(src if src is not None else str(raster), frame, ["sum", "mean", "max", "count"],
                            include_cols=["_i"], output="pandas")
    out = out.sort_values("_i").set_index("_i").reindex(range(len(z)))
    if out.shape[1] and any(c.startswith("band_") for c in out.columns):  # multi-band rasters: pick the band
        out = out[[c for c in out.columns if c.startswith(f"band_{band}_")]]
        out.columns = [c.split("_", 2)[2] for c in out.columns]
    frame = pd.DataFrame({"sum": out["sum"].astype(float), "mean": out["mean"].astype(float),
                          "max": out["max"].astype(float), "pixels": out["count"].astype(float)})
    return frame, notes


def _zones(session: Session, level: str, village_ids=()):
    import geopandas as gpd
    from shapely import wkb

    if level not in ("village", "grid"):
        raise AnalysisError("bad_level", "统计单元须为网格或行政村。", "The unit must be grid or village.")
    cond, params = "", {}
    if village_ids:
        cond = "AND village_id = ANY(:v)" if level == "grid" else "AND id = ANY(:v)"
        params["v"] = [int(v) for v in village_ids]
    if level == "village":
        sql = f"SELECT id AS village_id, NULL::text AS grid_uid, code, name, ST_AsBinary(geom) AS g FROM village WHERE true {cond} ORDER BY code"
    else:
        sql = (f"SELECT village_id, uid::text AS grid_uid, code, name, ST_AsBinary(geom) AS g FROM grid"
               f" WHERE valid_to IS NULL {cond} ORDER BY code")
    rows = session.execute(text(sql), params).mappings().all()
    if not rows:
        raise AnalysisError("empty_selection", "所选范围内没有可统计的区域。", "No zones in the selection.")
    return gpd.GeoDataFrame(
        {"village_id": [r["village_id"] for r in rows], "grid_uid": [r["grid_uid"] for r in rows],
         "code": [r["code"].strip() for r in rows], "name": [r["name"] for r in rows]},
        geometry=[wkb.loads(bytes(r["g"])) for r in rows], crs=STORAGE_SRID)


def zonal_stats(session: Session, raster_id: int, *, level: str = "village", band: int = 1, village_ids=(),
                color_by: str = "sum", store: bool = True, computed_by: str | None = None,
                progress=None) -> AnalysisResult:
    """Zonal statistics of a registered raster per village or grid; stored in ``zonal_stat``.

    Parameters
    ----------
    session : Session
        A scoped session; the zones are what the caller may see, and the stored rows
        carry their village (RLS). The caller commits.
    raster_id : int
        ``raster_dataset.id``.
    level : {'village', 'grid'}
    band : int
    village_ids : sequence of int
        Restrict to these villages.
    color_by : {'sum', 'mean', 'max'}
        The statistic the choropleth shows.
    store : bool
        Replace the stored rows of this raster, band, level and units.

    Returns
    -------
    AnalysisResult
    """
    report = progress or (lambda *a: None)
    if color_by not in STATS:
        raise AnalysisError("bad_stat", "统计量须为 sum、mean 或 max。", "The statistic must be sum, mean or max.")
    meta, path = raster_path(session, raster_id)
    report(0.1, "读取区域", "Reading zones")
    zones = _zones(session, level, village_ids)
    report(0.3, "计算分区统计", "Computing zonal statistics")
    frame, notes = zonal_frame(path, zones, band=band)
    if store:
        report(0.8, "保存结果", "Saving")
        store_zonal(session, int(raster_id), level, band, zones, frame, computed_by)
    values = frame[color_by].fillna(0).to_numpy()
    colors, bounds = sequential_colors(values, CHORO)
    feats = []
    import shapely

    for i, row in zones.reset_index(drop=True).iterrows():
        geom = shapely.simplify(row.geometry, 0.00005, preserve_topology=True)
        feats.append({"type": "Feature", "id": row["code"], "geometry": json.loads(shapely.to_geojson(
            shapely.set_precision(geom, 1e-6))), "properties": {
            "_key": row["code"], "_color": colors[i], "code": row["code"], "name": row["name"],
            "label": row["name"], **{k: _num(frame.iloc[i][k]) for k in (*STATS, "pixels")}}})
    legend, lower = [], 0.0
    for i, b in enumerate(bounds):
        c = CHORO[min(len(CHORO) - 1, round(i * (len(CHORO) - 1) / max(1, len(bounds) - 1)))]
        legend.append(LegendEntry(f"{color_by} {lower:,.1f}–{b:,.1f}", f"{color_by} {lower:,.1f}–{b:,.1f}", c))
        lower = b
    summary = {"zones": len(zones), "raster": meta["name"], "level": level, "band": band,
               "total_sum": _num(frame["sum"].sum()), "stored": bool(store)}
    notes.append(("统计量由 exactextract 按像元被覆盖比例加权计算。",
                  "Statistics by exactextract, each pixel weighted by the fraction the zone covers."))
    return AnalysisResult("zonal", f"分区统计:{meta['title_zh']}({'行政村' if level == 'village' else '网格'})",
                          f"Zonal statistics: {meta['title_en']} ({level})", feats, legend, summary, notes,
                          {"raster_id": int(raster_id), "level": level, "band": band, "color_by": color_by,
                           "village_ids": list(village_ids or ())})


def _num(v):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if not np.isfinite(f) else round(f, 4)


def store_zonal(session: Session, raster_id: int, level: str, band: int, zones, frame, computed_by=None) -> int:
    """Upsert zonal statistics rows (one per zone); returns the number written."""
    rows = [{"r": raster_id, "b": int(band), "l": level, "v": int(z.village_id), "g": z.grid_uid, "c": z.code,
             "s": _num(f["sum"]), "m": _num(f["mean"]), "x": _num(f["max"]), "p": _num(f["pixels"]) or 0.0,
             "by": computed_by}
            for z, (_, f) in zip(zones.itertuples(), frame.iterrows())]
    if rows:
        session.execute(text(
            """
            INSERT INTO zonal_stat (raster_id, band, level, village_id, grid_uid, unit_code, sum, mean, max, pixels,
                                    computed_by)
            VALUES (:r, :b, :l, :v, CAST(:g AS uuid), :c, :s, :m, :x, :p, :by)
            ON CONFLICT (raster_id, band, level, unit_code) DO UPDATE SET
                sum = EXCLUDED.sum, mean = EXCLUDED.mean, max = EXCLUDED.max, pixels = EXCLUDED.pixels,
                village_id = EXCLUDED.village_id, grid_uid = EXCLUDED.grid_uid,
                computed_at = now(), computed_by = EXCLUDED.computed_by
            """), rows)
    return len(rows)


def stored_zonal(session: Session, raster_id: int, level: str, band: int = 1) -> list[dict]:
    """The stored zonal statistics the caller may see."""
    return [dict(r) for r in session.execute(text(
        "SELECT unit_code, village_id, grid_uid::text AS grid_uid, sum, mean, max, pixels, computed_at"
        " FROM zonal_stat WHERE raster_id = :r AND level = :l AND band = :b ORDER BY unit_code"),
        {"r": int(raster_id), "l": level, "b": int(band)}).mappings()]


def _hex(c: str) -> tuple[int, int, int]:
    return int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16)


def render_overlay(path: str | Path, *, band: int = 1, max_size: int = 1200, crs: str | None = None) -> dict:
    """The raster as a coloured PNG (data URI) in Web Mercator, its bounds and a ramp legend.

    Values ≤ 0 and nodata are transparent; the ramp runs from 0 to the 99th percentile.

    Returns
    -------
    dict
        ``url`` (``data:image/png;base64,…``), ``bounds`` (``[[south, west], [north, east]]``),
        ``legend`` (list of LegendEntry), ``vmax``.
    """
    import rasterio
    from pyproj import Transformer
    from rasterio.io import MemoryFile
    from rasterio.warp import Resampling, calculate_default_transform, reproject
    from affine import Affine

    with _open(Path(path), crs) as ds:
        src_crs = ds.crs or rasterio.crs.CRS.from_user_input(crs)
        transform, w, h = calculate_default_transform(src_crs, f"EPSG:{WEB_MERCATOR_SRID}", ds.width, ds.height, *ds.bounds)
        scale = max(w / max_size, h / max_size, 1.0)
        w2, h2 = max(1, int(w / scale)), max(1, int(h / scale))
        transform = transform @ Affine.scale(w / w2, h / h2)
        data = np.full((h2, w2), np.nan, dtype="float32")
        src = ds.read(band, masked=True).astype("float32").filled(np.nan)
        reproject(src, data, src_transform=ds.transform, src_crs=src_crs, dst_transform=transform,
                  dst_crs=f"EPSG:{WEB_MERCATOR_SRID}", resampling=Resampling.average, src_nodata=np.nan, dst_nodata=np.nan)
    valid = np.isfinite(data) & (data > 0)
    vmax = float(np.nanpercentile(data[valid], 99)) if valid.any() else 1.0
    t = np.clip(np.where(valid, data, 0) / (vmax or 1.0), 0, 1)
    stops = np.linspace(0, 1, len(RAMP))
    rgb = np.array([_hex(c) for c in RAMP], dtype=float)
    img = np.zeros((4, h2, w2), dtype="uint8")
    for ch in range(3):
        img[ch] = np.interp(t, stops, rgb[:, ch]).astype("uint8")
    img[3] = np.where(valid, 215, 0).astype("uint8")
    import warnings

    with warnings.catch_warnings(), MemoryFile() as mem:
        # a PNG carries no georeference; the bounds travel beside it
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with mem.open(driver="PNG", width=w2, height=h2, count=4, dtype="uint8") as png:
            png.write(img)
        raw = mem.read()
    west, north = transform @ (0, 0)
    east, south = transform @ (w2, h2)
    to_ll = Transformer.from_crs(WEB_MERCATOR_SRID, WGS84_SRID, always_xy=True)
    (w_lon, e_lon), (s_lat, n_lat) = to_ll.transform([west, east], [south, north])
    legend = [LegendEntry(f"{vmax * f:,.1f}", f"{vmax * f:,.1f}", RAMP[round(f * (len(RAMP) - 1))], "ramp")
              for f in (0, 0.25, 0.5, 0.75, 1.0)]
    return {"url": "data:image/png;base64," + base64.b64encode(raw).decode("ascii"),
            "bounds": [[s_lat, w_lon], [n_lat, e_lon]], "legend": legend, "vmax": vmax,
            "size": [w2, h2]}
