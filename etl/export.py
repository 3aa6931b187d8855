"""Exports: any layer as GeoJSON, GeoPackage, zipped Shapefile or CSV, and a village's map as HTML.

Features come from :mod:`geodata.export` through the caller's scoped session, so an
export holds exactly what that user may see on the map. Shapefiles are written with a
UTF-8 ``.cpg`` and a ``.prj`` (CGCS2000), so QGIS/ArcGIS read the Chinese text and the
CRS without guessing; CSV is UTF-8 with a BOM so that Excel opens it correctly.
"""
from __future__ import annotations

import json
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

from geodata import export as gx
from geodata.config import STORAGE_SRID, get_settings
from geodata.i18n import BilingualError
from geodata.offline_html import LEAFLET_DIR, inline_leaflet  # noqa: F401  (re-exported: callers and tests)

FORMATS = {"geojson": ".geojson", "gpkg": ".gpkg", "shp": ".zip", "csv": ".csv"}
MEDIA_TYPES = {"geojson": "application/geo+json", "gpkg": "application/geopackage+sqlite3",
               "shp": "application/zip", "csv": "text/csv; charset=utf-8", "html": "text/html; charset=utf-8"}


class ExportError(BilingualError):
    """An export that cannot be made (unknown layer or format, village not visible)."""

    code, http_status = "export_not_found", 404


@dataclass
class ExportResult:
    """What was written: the file, and how many features per collection."""

    path: Path
    counts: dict[str, int]
    offline: bool | None = None  # HTML: Leaflet embedded (True) or loaded from a CDN (False)


def _collection(session, collection_id: str) -> gx.Collection:
    coll = gx.get_collection(session, collection_id)
    if coll is None:
        raise ExportError(f"没有名为“{collection_id}”的图层。", f"No layer called '{collection_id}'.")
    return coll


def _frame(features: list[dict], coll: gx.Collection):
    import geopandas as gpd
    import pandas as pd

    if not features:
        return gpd.GeoDataFrame({"id": pd.Series([], dtype="int64")}, geometry=gpd.GeoSeries([], crs=STORAGE_SRID),
                                crs=STORAGE_SRID)
    gdf = gpd.GeoDataFrame.from_features(features, crs=STORAGE_SRID)
    gdf.insert(0, "id", [f["id"] for f in features])
    for col in gdf.columns:
        if col == "geometry":
            continue
        if gdf[col].map(lambda v: isinstance(v, (dict, list))).any():
            gdf[col] = gdf[col].map(lambda v: json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v)
    return gdf


_EMPTY_TYPES = {"Point": "Point", "LineString": "MultiLineString", "Polygon": "MultiPolygon",
                "MultiPolygon": "MultiPolygon"}


def _geometry_type(coll: gx.Collection, gdf) -> str | None:
    """The layer's geometry type when there are no features to infer it from."""
    return _EMPTY_TYPES.get(coll.geometry_type, "Unknown") if len(gdf) == 0 else None


def _write_layer(gdf, coll: gx.Collection, path: Path, driver: str, layer: str, append: bool = False) -> None:
    import pyogrio

    kwargs = {}
    if len(gdf) and gdf.geom_type.nunique() > 1:
        kwargs["promote_to_multi"] = True  # Polygon + MultiPolygon (etc.) in one layer
    geometry_type = _geometry_type(coll, gdf)
    if geometry_type:
        kwargs["geometry_type"] = geometry_type
    if driver == "ESRI Shapefile":
        kwargs["encoding"] = "UTF-8"
    with warnings.catch_warnings():
        # Shapefile field names are cut to 10 characters (village_code -> village_co): expected.
        warnings.filterwarnings("ignore", message=".*[Ll]aundered field name.*")
        pyogrio.write_dataframe(gdf, path, layer=layer, driver=driver, append=append, **kwargs)


def export_layer(session, collection_id: str, fmt: str, dest: str | Path, *, bbox=None, when=None,
                 village_id: int | None = None) -> ExportResult:
    """Write one layer to a file.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        A scoped session: the export holds what this scope may see.
    collection_id : str
        A collection of :func:`geodata.export.collections` (``villages``, ``grids``,
        ``resources``, ``sensors``, ``population``, ``towns``, ``events`` or a custom layer).
    fmt : {'geojson', 'gpkg', 'shp', 'csv'}
        Output format; ``shp`` writes a ZIP with .shp/.shx/.dbf/.prj/.cpg.
    dest : str or Path
        The file to write (its directory must exist).
    bbox, when, village_id
        Optional filters, as for :func:`geodata.export.items`.

    Returns
    -------
    ExportResult

    Raises
    ------
    ExportError
        Unknown layer or format.
    """
    if fmt not in FORMATS:
        raise ExportError(f"不支持的导出格式:{fmt}", f"Unsupported export format: {fmt}")
    coll = _collection(session, collection_id)
    features, _ = gx.items(session, coll, bbox=bbox, when=when, limit=None, village_id=village_id)
    dest = Path(dest)
    if fmt == "geojson":
        _write_geojson(features, coll, dest)
    elif fmt == "csv":
        _write_csv(features, dest)
    elif fmt == "gpkg":
        dest.unlink(missing_ok=True)
        _write_layer(_frame(features, coll), coll, dest, "GPKG", coll.id)
    else:
        _write_shapefile_zip(_frame(features, coll), coll, dest)
    return ExportResult(dest, {coll.id: len(features)})


def _write_geojson(features: list[dict], coll: gx.Collection, dest: Path) -> None:
    doc = {"type": "FeatureCollection", "name": coll.id, "features": features}
    with open(dest, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, ensure_ascii=False, separators=(",", ":"))


def _write_csv(features: list[dict], dest: Path) -> None:
    import csv

    import shapely
    from shapely.geometry import shape

    keys: list[str] = []
    for f in features:
        for k in (f.get("properties") or {}):
            if k not in keys:
                keys.append(k)
    points = bool(features) and all((f.get("geometry") or {}).get("type") == "Point" for f in features)
    header = ["id", *keys, *(["lon", "lat"] if points else []), "wkt"]
    with open(dest, "w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for f in features:
            props = f.get("properties") or {}
            geom = shape(f["geometry"]) if f.get("geometry") else None
            row = [f.get("id")] + [json.dumps(props[k], ensure_ascii=False) if isinstance(props.get(k), (dict, list))
                                   else props.get(k) for k in keys]
            if points:
                row += [geom.x, geom.y]
            row.append(shapely.to_wkt(geom, rounding_precision=7) if geom is not None else "")
            w.writerow(row)


def _write_shapefile_zip(gdf, coll: gx.Collection, dest: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="dvmap-export-") as tmp:
        shp = Path(tmp) / f"{coll.id}.shp"
        _write_layer(gdf, coll, shp, "ESRI Shapefile", coll.id)
        cpg = shp.with_suffix(".cpg")
        if not cpg.exists():
            cpg.write_text("UTF-8")
        prj = shp.with_suffix(".prj")
        if not prj.exists():
            from pyproj import CRS

            prj.write_text(CRS.from_epsg(STORAGE_SRID).to_wkt("WKT1_ESRI"))
        with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in sorted(Path(tmp).iterdir()):
                zf.write(f, f.name)


VILLAGE_LAYERS = ("villages", "grids", "population", "resources", "sensors", "events")


def _village(session, code: str) -> dict:
    v = gx.village_by_code(session, code)
    if v is None:
        raise ExportError(f"未找到代码为 {code} 的行政村(或无权查看)。",
                          f"No village with code {code} (or it is outside your scope).")
    return v


def export_village(session, village_code: str, fmt: str, dest: str | Path) -> ExportResult:
    """Write everything of one village: a GeoPackage with one layer per collection, or an HTML map.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        A scoped session (typically scoped to that village).
    village_code : str
        The village's 12-digit code.
    fmt : {'gpkg', 'html'}
    dest : str or Path

    Returns
    -------
    ExportResult
    """
    v = _village(session, village_code)
    if fmt == "html":
        return village_map_html(session, village_code, dest)
    if fmt != "gpkg":
        raise ExportError("村级导出支持 gpkg 和 html。", "A village export is gpkg or html.")
    dest = Path(dest)
    dest.unlink(missing_ok=True)
    counts = {}
    first = True
    for coll in gx.collections(session):
        if coll.id not in VILLAGE_LAYERS and coll.kind != "custom":
            continue
        feats, _ = gx.items(session, coll, limit=None, village_id=v["id"])
        if not feats and not first and coll.kind == "custom":
            continue
        _write_layer(_frame(feats, coll), coll, dest, "GPKG", coll.id, append=not first)
        first = False
        counts[coll.id] = len(feats)
    return ExportResult(dest, counts)


STATUS_COLORS = {"normal": "#16a34a", "alarm": "#dc2626", "offline": "#6b7280"}


def village_map_html(session, village_code: str, dest: str | Path, tile_url: str | None = None,
                     attribution: str | None = None) -> ExportResult:
    """A standalone HTML page (folium) with the village, its grids, resources, sensors and events.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        A scoped session.
    village_code : str
        The village's 12-digit code.
    dest : str or Path
        The .html file to write.
    tile_url, attribution : str, optional
        Basemap tiles; defaults to ``DVMAP_TILE_URL``. Without tiles the page draws the
        data on a plain background.

    Returns
    -------
    ExportResult
    """
    import folium

    v = _village(session, village_code)
    settings = get_settings()
    tile_url = tile_url or settings.tile_url
    fmap = folium.Map(location=[(v["s"] + v["n"]) / 2, (v["w"] + v["e"]) / 2], zoom_start=14,
                      tiles=None, control_scale=True, prefer_canvas=True)
    if tile_url:
        folium.TileLayer(tiles=tile_url, attr=attribution or settings.tile_attribution or " ", name="底图 Basemap",
                         max_zoom=18).add_to(fmap)
    title = f"{v['name']}({v['town']}){v['code']}"
    fmap.get_root().header.add_child(folium.Element(f"<title>{_esc(title)} · 数字乡村一张图</title>"))
    fmap.get_root().html.add_child(folium.Element(
        f'<div style="position:absolute;top:10px;left:50px;z-index:1000;background:#fff;padding:6px 12px;'
        f'border-radius:6px;box-shadow:0 1px 4px rgba(0,0,0,.3);font:15px sans-serif">{_esc(title)}</div>'))
    counts = {}
    styles = {
        "villages": lambda f: {"color": "#2f6f4f", "weight": 3, "fillOpacity": 0.05},
        "grids": lambda f: {"color": "#b45309", "weight": 1.5, "dashArray": "4 4", "fillOpacity": 0},
    }
    for coll in gx.collections(session):
        if coll.id not in ("villages", "grids", "resources", "sensors", "events") and coll.kind != "custom":
            continue
        feats, _ = gx.items(session, coll, limit=None, village_id=v["id"], precision=6)
        counts[coll.id] = len(feats)
        if not feats:
            continue
        group = folium.FeatureGroup(name=f"{coll.title_zh} {coll.title_en} ({len(feats)})")
        fc = {"type": "FeatureCollection", "features": feats}
        keys = [k for k in (feats[0].get("properties") or {}) if k not in ("uid",)][:6]
        if coll.geometry_type in ("Point",):
            for f in feats:
                lon, lat = f["geometry"]["coordinates"][:2]
                props = f.get("properties") or {}
                color = STATUS_COLORS.get(props.get("status"), "#1f6feb")
                label = props.get("name") or props.get("code") or props.get("subclass") or coll.title_zh
                folium.CircleMarker([lat, lon], radius=6, color=color, fill=True, fill_opacity=0.9,
                                    tooltip=str(label), popup=folium.Popup(_popup(props), max_width=320)).add_to(group)
        else:
            folium.GeoJson(fc, style_function=styles.get(coll.id, lambda f: {"color": "#7c3aed", "weight": 2}),
                           tooltip=folium.GeoJsonTooltip(fields=keys) if keys else None).add_to(group)
        group.add_to(fmap)
    fmap.fit_bounds([[v["s"], v["w"]], [v["n"], v["e"]]])
    folium.LayerControl(collapsed=False).add_to(fmap)
    dest = Path(dest)
    page = fmap.get_root().render()
    page, inlined = inline_leaflet(page)
    dest.write_text(page, encoding="utf-8")
    return ExportResult(dest, counts, offline=inlined)


def _esc(text: str) -> str:
    import html

    return html.escape(str(text))


def _popup(props: dict) -> str:
    rows = "".join(f"<tr><th style='text-align:left;padding-right:8px'>{_esc(k)}</th><td>{_esc(v)}</td></tr>"
                   for k, v in props.items() if v not in (None, ""))
    return f"<table>{rows}</table>"
