"""Analysis results leave the app: GeoJSON, GeoPackage, CSV and a standalone folium HTML map.

Also reads the point/polygon files the CLI analyses (any format GDAL reads, or a CSV
with lon/lat columns), refusing a file without geometry with a clear message.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from geodata.analysis.errors import AnalysisError
from geodata.analysis.result import AnalysisResult
from geodata.config import STORAGE_SRID

FORMATS = {"geojson": ".geojson", "gpkg": ".gpkg", "csv": ".csv", "html": ".html"}
MEDIA_TYPES = {"geojson": "application/geo+json", "gpkg": "application/geopackage+sqlite3",
               "csv": "text/csv; charset=utf-8", "html": "text/html; charset=utf-8"}
_LON = ("lon", "lng", "longitude", "x", "经度")
_LAT = ("lat", "latitude", "y", "纬度")


def _clean_props(props: dict) -> dict:
    out = {}
    for k, v in props.items():
        if k.startswith("_") and k not in ("_key",):
            continue
        out[k.lstrip("_")] = json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v
    return out


def _layers(result: AnalysisResult) -> list[tuple[str, list[dict]]]:
    layers = [(result.kind, result.features)]
    if result.points:
        layers.append((f"{result.kind}_{'deserts' if result.kind == 'coverage' else 'points'}", result.points))
    return layers


def export_result(result: AnalysisResult, fmt: str, dest: str | Path) -> Path:
    """Write ``result`` as ``geojson``, ``gpkg``, ``csv`` or ``html`` to ``dest``.

    GeoJSON holds the main layer plus, under ``"dvmap"``, the parameters, summary and
    notes; the GeoPackage has one layer per feature set and a ``analysis_info`` table; the
    CSV lists the main layer's attributes with a WKT column (UTF-8 with BOM, for Excel);
    the HTML is a folium map that works offline when Debian's libjs-leaflet is installed.

    Parameters
    ----------
    result : AnalysisResult
    fmt : str
    dest : str or Path

    Returns
    -------
    Path
    """
    dest = Path(dest)
    if fmt == "geojson":
        doc = {"type": "FeatureCollection", "name": result.kind,
               "features": [{**f, "properties": _clean_props(f["properties"])} for f in result.features],
               "dvmap": {"title_zh": result.title_zh, "title_en": result.title_en, "params": result.params,
                         "summary": result.summary, "notes": [list(n) for n in result.notes]}}
        dest.write_text(json.dumps(doc, ensure_ascii=False, default=str), encoding="utf-8")
    elif fmt == "csv":
        _write_csv(result.features, dest)
    elif fmt == "gpkg":
        _write_gpkg(result, dest)
    elif fmt == "html":
        folium_html(result, dest)
    else:
        raise AnalysisError("bad_format", f"不支持的导出格式:{fmt}", f"Unsupported export format: {fmt}")
    return dest


def _frame(features: list[dict]):
    import geopandas as gpd

    rows = [{**_clean_props(f["properties"]), "geometry": f["geometry"]} for f in features]
    if not rows:
        return gpd.GeoDataFrame({"key": []}, geometry=gpd.GeoSeries([], crs=STORAGE_SRID), crs=STORAGE_SRID)
    return gpd.GeoDataFrame.from_features(
        [{"type": "Feature", "geometry": f["geometry"], "properties": _clean_props(f["properties"])}
         for f in features], crs=STORAGE_SRID)


def _write_gpkg(result: AnalysisResult, dest: Path) -> None:
    import pandas as pd
    import pyogrio

    dest.unlink(missing_ok=True)
    for name, feats in _layers(result):
        gdf = _frame(feats)
        kw = {"promote_to_multi": True} if len(gdf) and gdf.geom_type.nunique() > 1 else {}
        if not len(gdf):
            kw["geometry_type"] = "Unknown"
        pyogrio.write_dataframe(gdf, dest, layer=name, driver="GPKG", append=dest.exists(), **kw)
    info = pd.DataFrame([
        {"key": "title", "zh": result.title_zh, "en": result.title_en},
        *[{"key": "note", "zh": zh, "en": en} for zh, en in result.notes],
        {"key": "params", "zh": json.dumps(result.params, ensure_ascii=False, default=str), "en": ""},
        {"key": "summary", "zh": json.dumps(result.summary, ensure_ascii=False, default=str), "en": ""},
    ])
    pyogrio.write_dataframe(info, dest, layer="analysis_info", driver="GPKG", append=True)


def _write_csv(features: list[dict], dest: Path) -> None:
    import shapely
    from shapely.geometry import shape

    keys: list[str] = []
    for f in features:
        for k in _clean_props(f["properties"]):
            if k not in keys:
                keys.append(k)
    with open(dest, "w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([*keys, "wkt"])
        for f in features:
            props = _clean_props(f["properties"])
            geom = shape(f["geometry"]) if f.get("geometry") else None
            w.writerow([props.get(k) for k in keys] + [shapely.to_wkt(geom, rounding_precision=6) if geom else ""])


def folium_html(result: AnalysisResult, dest: str | Path, lang: str = "zh") -> Path:
    """A standalone HTML map of ``result`` (folium): layers, legend, title, notes.

    Uses no basemap tiles unless ``DVMAP_TILE_URL`` is set, and embeds Leaflet when the
    Debian package is installed (see :func:`etl.export.inline_leaflet`), so the page opens
    without a network.
    """
    import html

    import folium
    import shapely
    from shapely.geometry import shape

    from etl.export import inline_leaflet
    from geodata.config import get_settings

    geoms = [shape(f["geometry"]) for f in (result.features + result.points) if f.get("geometry")]
    if geoms:
        minx, miny, maxx, maxy = shapely.total_bounds(geoms)
    else:
        minx, miny, maxx, maxy = 119.7, 30.38, 120.3, 30.75
    settings = get_settings()
    fmap = folium.Map(location=[(miny + maxy) / 2, (minx + maxx) / 2], zoom_start=11, tiles=None,
                      control_scale=True, prefer_canvas=True)
    if settings.tile_url:
        folium.TileLayer(tiles=settings.tile_url, attr=settings.tile_attribution or " ", name="底图 Basemap").add_to(fmap)
    title = f"{result.title_zh} / {result.title_en}"
    fmap.get_root().header.add_child(folium.Element(f"<title>{html.escape(title)}</title>"))
    keys = [k for k in (result.features[0]["properties"] if result.features else {})
            if not k.startswith("_") and k not in ("event_ids",)][:8]
    style = lambda f: {"color": "#555555", "weight": 0.6, "fillColor": f["properties"].get("_color", "#999"),  # noqa: E731
                       "fillOpacity": 0.75}
    if result.features:
        folium.GeoJson(result.feature_collection(), name=html.escape(result.title_zh), style_function=style,
                       tooltip=folium.GeoJsonTooltip(fields=keys) if keys else None).add_to(fmap)
    if result.points:
        pkeys = [k for k in result.points[0]["properties"] if not k.startswith("_")][:6]
        folium.GeoJson(result.points_collection(), name="服务盲区 / deserts" if result.kind == "coverage" else "points",
                       style_function=lambda f: {"color": f["properties"].get("_color", "#7f0000"), "weight": 1.5,
                                                 "fillColor": f["properties"].get("_color", "#7f0000"),
                                                 "fillOpacity": 0.35},
                       tooltip=folium.GeoJsonTooltip(fields=pkeys) if pkeys else None).add_to(fmap)
    if result.overlay:
        o = result.overlay
        folium.raster_layers.ImageOverlay(o["url"], bounds=o["bounds"], opacity=0.8, name="栅格 Raster").add_to(fmap)
    fmap.fit_bounds([[miny, minx], [maxy, maxx]])
    folium.LayerControl(collapsed=False).add_to(fmap)
    legend = "".join(
        f'<div><span style="display:inline-block;width:14px;height:14px;margin-right:6px;vertical-align:middle;'
        f'background:{html.escape(e.color)};border:1px solid #888"></span>{html.escape(e.label_zh)} · '
        f'{html.escape(e.label_en)}</div>' for e in result.legend)
    notes = "".join(f"<div style='margin-top:4px;color:#444'>{html.escape(zh)}<br><i>{html.escape(en)}</i></div>"
                    for zh, en in result.notes)
    summary = ", ".join(f"{k}: {v}" for k, v in result.summary.items()
                        if not isinstance(v, (dict, list)) and not k.endswith(("_zh", "_en")))
    fmap.get_root().html.add_child(folium.Element(
        '<div id="dvmap-legend" style="position:absolute;top:10px;left:50px;z-index:1000;background:#fff;'
        'padding:8px 12px;border-radius:6px;box-shadow:0 1px 4px rgba(0,0,0,.3);font:13px sans-serif;'
        f'max-width:420px"><b style="font-size:15px">{html.escape(title)}</b>'
        f'<div style="margin:4px 0;color:#333">{html.escape(summary)}</div>{legend}{notes}</div>'))
    page, _ = inline_leaflet(fmap.get_root().render())
    dest = Path(dest)
    dest.write_text(page, encoding="utf-8")
    return dest


# -- reading files for the CLI ---------------------------------------------------------------------
def read_features(path: str | Path, *, layer: str | None = None, lon: str | None = None, lat: str | None = None):
    """Read a point/polygon file into a GeoDataFrame in EPSG:4490.

    GeoPackage, GeoJSON, Shapefile (or anything pyogrio reads); a CSV needs lon/lat
    columns (``lon``/``lng``/``longitude``/``x`` and ``lat``/``latitude``/``y``, or named).

    Raises
    ------
    AnalysisError
        ``no_geometry`` (no geometry column and no lon/lat columns), ``unreadable``,
        ``no_crs`` (a spatial file without a CRS).
    """
    import geopandas as gpd
    import pandas as pd

    path = Path(path)
    try:
        if path.suffix.lower() in (".csv", ".txt"):
            df = pd.read_csv(path, encoding="utf-8-sig")
            cols = {c.lower(): c for c in df.columns}
            xc = lon or next((cols[c] for c in _LON if c in cols), None)
            yc = lat or next((cols[c] for c in _LAT if c in cols), None)
            if xc is None or yc is None or xc not in df.columns or yc not in df.columns:
                raise AnalysisError("no_geometry", f"文件 {path.name} 没有几何列,也没有经纬度列(lon/lat)。",
                                    f"{path.name} has no geometry column and no lon/lat columns.")
            return gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(df[xc], df[yc]), crs=STORAGE_SRID)
        gdf = gpd.read_file(path, layer=layer)
    except AnalysisError:
        raise
    except Exception as exc:  # any reader failure is one message
        raise AnalysisError("unreadable", f"无法读取文件 {path.name}:{exc}", f"Cannot read {path.name}: {exc}") from None
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.geometry is None or gdf.geometry.isna().all():
        raise AnalysisError("no_geometry", f"文件 {path.name} 没有几何列。", f"{path.name} has no geometry column.")
    if gdf.crs is None:
        raise AnalysisError("no_crs", f"文件 {path.name} 没有坐标系。", f"{path.name} has no coordinate reference system.")
    return gdf.to_crs(STORAGE_SRID)
