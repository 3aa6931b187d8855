"""Analysis results leave the app: GeoJSON, GeoPackage, CSV and a standalone folium HTML map.

Writing an :class:`AnalysisResult` (a geodata value) to a file is a pure conversion of
that value — no database, no outside data — so it lives beside the result, where both the
analysis page's download callback and the CLI (``dvmap analyze … --out``) reach it.
Reading outside files for the CLI stays in :mod:`etl.analysis_export`.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from geodata.analysis.errors import AnalysisError
from geodata.analysis.result import AnalysisResult
from geodata.config import STORAGE_SRID

FORMATS = {"geojson": ".geojson", "gpkg": ".gpkg", "shp": ".zip", "csv": ".csv", "html": ".html"}
MEDIA_TYPES = {"geojson": "application/geo+json", "gpkg": "application/geopackage+sqlite3",
               "shp": "application/zip", "csv": "text/csv; charset=utf-8", "html": "text/html; charset=utf-8"}
#: A dBASE field name holds at most 10 bytes.
DBF_NAME_BYTES = 10
#: Width of the HTML export's legend panel, right of the map.
LEGEND_WIDTH_PX = 320


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
    """Write ``result`` as ``geojson``, ``gpkg``, ``shp``, ``csv`` or ``html`` to ``dest``.

    GeoJSON holds the main layer plus, under ``"dvmap"``, the parameters, summary and
    notes; the GeoPackage has one layer per feature set and a ``analysis_info`` table; the
    CSV lists the main layer's attributes with a WKT column (UTF-8 with BOM, for Excel);
    ``shp`` is a ZIP with one Shapefile per feature set (see :func:`_write_shapefile_zip`);
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
    elif fmt == "shp":
        _write_shapefile_zip(result, dest)
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


def dbf_names(names) -> dict[str, str]:
    """Short, unique dBASE field names (at most :data:`DBF_NAME_BYTES` bytes in UTF-8 and GBK).

    ``count_before`` and ``count_after`` would both be cut to ``count_befo``/``count_afte``
    by GDAL, and a Chinese name can exceed 10 bytes in mid-character; here every name is
    cut on a character boundary and made unique with a numeric suffix.
    """
    out: dict[str, str] = {}
    used: set[str] = set()
    for name in names:
        base = ""
        for ch in str(name):
            if max(len((base + ch).encode("utf-8")), len((base + ch).encode("gbk", "replace"))) > DBF_NAME_BYTES:
                break
            base += ch
        cand, n = base or "f", 1
        while cand.lower() in used:
            suffix = str(n)
            cand, n = (base[:DBF_NAME_BYTES - len(suffix)] if base.isascii() else base[:3]) + suffix, n + 1
        used.add(cand.lower())
        out[name] = cand
    return out


def _write_shapefile_zip(result: AnalysisResult, dest: Path) -> None:
    """One Shapefile per feature set (UTF-8 ``.cpg``, CGCS2000 ``.prj``) and ``fields.csv`` naming the short fields."""
    import tempfile
    import zipfile

    import pyogrio
    from pyproj import CRS

    with tempfile.TemporaryDirectory(prefix="dvmap-analysis-shp-") as tmp:
        rows = [("layer", "field", "name")]
        for name, feats in _layers(result):
            gdf = _frame(feats)
            names = dbf_names([c for c in gdf.columns if c != "geometry"])
            gdf = gdf.rename(columns=names)
            rows += [(name, short, full) for full, short in names.items()]
            shp = Path(tmp) / f"{name}.shp"
            kw = {"promote_to_multi": True} if len(gdf) and gdf.geom_type.nunique() > 1 else {}
            if not len(gdf):
                kw["geometry_type"] = "Polygon"
            pyogrio.write_dataframe(gdf, shp, driver="ESRI Shapefile", encoding="UTF-8", **kw)
            if not shp.with_suffix(".cpg").exists():
                shp.with_suffix(".cpg").write_text("UTF-8")
            shp.with_suffix(".prj").write_text(CRS.from_epsg(STORAGE_SRID).to_wkt("WKT1_ESRI"))
        with open(Path(tmp) / "fields.csv", "w", encoding="utf-8-sig", newline="") as fh:
            csv.writer(fh).writerows(rows)
        with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in sorted(Path(tmp).iterdir()):
                zf.write(f, f.name)


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
    Debian package is installed (see :func:`geodata.offline_html.inline_leaflet`), so the page opens
    without a network.
    """
    import html

    import folium
    import shapely
    from shapely.geometry import shape

    from geodata.config import get_settings
    from geodata.offline_html import inline_leaflet

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
    # The legend is a panel beside the map, not on it: over the map it hid the very cells it explains.
    fmap.get_root().header.add_child(folium.Element(
        f"<style>.folium-map{{position:absolute !important;left:0 !important;top:0 !important;"
        f"right:{LEGEND_WIDTH_PX}px !important;bottom:0 !important;width:auto !important;height:auto !important}}"
        f"#dvmap-legend{{position:absolute;top:0;right:0;bottom:0;width:{LEGEND_WIDTH_PX - 25}px;overflow:auto;"
        "background:#fff;padding:10px 12px;border-left:1px solid #ccc;font:13px sans-serif}</style>"))
    fmap.get_root().html.add_child(folium.Element(
        f'<div id="dvmap-legend"><b style="font-size:15px">{html.escape(title)}</b>'
        f'<div style="margin:4px 0;color:#333">{html.escape(summary)}</div>{legend}{notes}</div>'))
    page, _ = inline_leaflet(fmap.get_root().render())
    dest = Path(dest)
    dest.write_text(page, encoding="utf-8")
    return dest


__all__ = ["FORMATS", "MEDIA_TYPES", "dbf_names", "export_result", "folium_html"]
