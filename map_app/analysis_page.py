"""The planners' analysis page (/analysis): its own map, a form per analysis, results as layers.

Forms: event hot spots (Gi*; a hot cell → inspection tasks for managers/officials), two
chosen windows compared, heat, DBSCAN clusters, service coverage (with a what-if facility),
raster zonal statistics. Long analyses run as background callbacks (callbacks/analysis.py)
with a progress bar and a cancel button; results and the layers export from the side panel.
"""
from __future__ import annotations

import dash_leaflet as dl
import dash_mantine_components as dmc
from dash import dcc, html
from flask import current_app
from sqlalchemy import text

from callbacks import analysis_ids as aid
from geodata.analysis.cells import H3_RESOLUTIONS
from geodata.analysis.raster import list_rasters
from geodata.config import METRIC_SRID
from geodata.export import collections as export_collections
from geodata.events import categories
from geodata.i18n import pick
from geodata.queries import layers as q
from map_app.layout import DEFAULT_BOUNDS, _user_box, page_language, tile_layers

EMPTY_FC = {"type": "FeatureCollection", "features": []}


def _category_options(session, lang: str) -> list[dict]:
    out = []
    for c in categories(session):
        out.append({"value": c["code"], "label": f"{c['code']} {pick(c['name_zh'], c['name_en'], lang)}"})
        for s in c["subclasses"]:
            out.append({"value": s["code"], "label": f"  {s['code']} {pick(s['name_zh'], s['name_en'], lang)}"})
    return out


def _run_button(kind: str, lang: str):
    return dmc.Button(pick("运行分析", "Run analysis", lang), id=aid.run(kind), size="sm", mt=10, fullWidth=True,
                      color="indigo")


def _weights_controls(prefix: str, lang: str):
    return [
        dmc.Select(id=f"{prefix}-unit", label=pick("分析单元", "Cells", lang), value="h3", allowDeselect=False,
                   data=[{"value": "h3", "label": pick("H3 六边形", "H3 hexagons", lang)},
                         {"value": "grid", "label": pick("网格", "Grids", lang)}], size="xs"),
        dmc.Select(id=f"{prefix}-res", label=pick("H3 分辨率", "H3 resolution", lang), value="8", allowDeselect=False,
                   data=[{"value": str(r), "label": {6: "6 (~36 km²)", 7: "7 (~5 km²)", 8: "8 (~0.7 km²)",
                                                     9: "9 (~0.1 km²)"}[r]} for r in H3_RESOLUTIONS], size="xs"),
        dmc.Select(id=f"{prefix}-weights", label=pick("空间权重", "Spatial weights", lang), value="queen",
                   allowDeselect=False, size="xs",
                   data=[{"value": "queen", "label": pick("Queen 邻接", "Queen contiguity", lang)},
                         {"value": "distance", "label": pick("距离带", "Distance band", lang)}]),
        dmc.NumberInput(id=f"{prefix}-band", label=pick("距离带(米,空=自动)", "Distance band (m, empty = auto)", lang),
                        value=None, min=0, step=100, size="xs"),
        dmc.Select(id=f"{prefix}-transform", label=pick("权重标准化", "Weights transform", lang), value="R",
                   allowDeselect=False, size="xs",
                   data=[{"value": "R", "label": pick("行标准化 (R)", "Row-standardised (R)", lang)},
                         {"value": "B", "label": pick("二值 (B)", "Binary (B)", lang)}]),
        dmc.Group([
            dmc.NumberInput(id=f"{prefix}-perms", label=pick("置换次数", "Permutations", lang), value=999, min=0,
                            max=9999, step=100, size="xs", w=120),
            dmc.Checkbox(id=f"{prefix}-fdr", label=pick("FDR 校正", "FDR correction", lang), checked=False,
                         size="xs", mt=22),
        ]),
    ]


def _layer_exports(layers, lang: str):
    """Links to the scoped layer downloads (/export/<layer>.<fmt>), folded so they do not crowd the panel."""
    rows = [html.Li([html.Span(pick(zh, en, lang), className="an-layer-name"),
                     *[html.A(label, href=f"/export/{cid}.{fmt}", className="an-layer-link", download="")
                       for fmt, label in (("shp", "SHP"), ("gpkg", "GPKG"), ("geojson", "GeoJSON"), ("csv", "CSV"))]])
            for cid, zh, en in layers]
    return html.Details([html.Summary(pick("图层数据下载(本人权限范围)", "Layer downloads (your scope)", lang)),
                         html.Ul(rows, className="an-layer-list")], id=aid.LAYER_EXPORTS, className="an-layer-exports")


def layout(**query):
    lang = page_language(query)
    database = current_app.extensions["dvmap"]
    with database.session() as s:
        bounds = q.scope_extent(s) or q.county_extent(s) or DEFAULT_BOUNDS
        outline = q.base_outlines(s, 11)
        villages = q.all_villages(s)
        cats = _category_options(s, lang)
        rtypes = [dict(r) for r in s.execute(text(
            "SELECT code, name_zh, name_en FROM resource_type ORDER BY sort")).mappings()]
        rasters = list_rasters(s)
        layers = [(c.id, c.title_zh, c.title_en) for c in export_collections(s)]
    other = "zh" if lang == "en" else "en"
    village_data = [{"value": str(v["id"]), "label": f"{v['name']} · {v['town']}"} for v in villages]
    t = lambda zh, en: pick(zh, en, lang)  # noqa: E731

    selection = html.Div([
        html.Div(t("事件范围", "Events"), className="an-section"),
        dmc.MultiSelect(id=aid.CATEGORIES, label=t("事件类别(空=全部)", "Categories (empty = all)"), data=cats,
                        searchable=True, clearable=True, size="xs", maxDropdownHeight=260),
        dmc.Group([
            dmc.NumberInput(id=aid.DAYS, label=t("最近天数", "Last days"), value=90, min=1, max=3650, size="xs", w=110),
            dmc.MultiSelect(id=aid.VILLAGES, label=t("行政村(空=全部可见)", "Villages (empty = all visible)"),
                            data=village_data, searchable=True, clearable=True, size="xs", w=230),
        ], grow=False, gap=8),
    ])

    tabs = dmc.Tabs(
        id=aid.TABS, value="hotspots", variant="outline",
        children=[
            dmc.TabsList([
                dmc.TabsTab(t("热点", "Hot spots"), value="hotspots"),
                dmc.TabsTab(t("变化", "Change"), value="compare"),
                dmc.TabsTab(t("热力", "Heat"), value="heat"),
                dmc.TabsTab(t("聚类", "Clusters"), value="clusters"),
                dmc.TabsTab(t("覆盖", "Coverage"), value="coverage"),
                dmc.TabsTab(t("栅格", "Raster"), value="zonal"),
            ], grow=True),
            dmc.TabsPanel([
                html.Div(t("Getis-Ord Gi*:事件数在邻域内显著偏高(热点)或偏低(冷点)的单元。",
                           "Getis-Ord Gi*: cells whose neighbourhood has significantly more (hot) or fewer (cold) "
                           "events than the whole area."), className="an-note"),
                *_weights_controls("an-hot", lang), _run_button("hotspots", lang),
            ], value="hotspots", pt=6),
            dmc.TabsPanel([
                html.Div(t("比较两个时段(如本月与去年同月):各单元、各村的事件数及其增减;两段各有 30 件以上事件时,"
                           "再比较 95% 置信的 Gi* 热点:新出现、加剧、持续、消退。",
                           "Compare two windows (e.g. this month and the same month last year): events per cell and "
                           "village, and their change; with 30+ events in each, also Gi* hot spots at 95 %: new, "
                           "intensifying, persistent, fading."), className="an-note"),
                dmc.Select(id=aid.CMP_PRESET, label=t("快速选择", "Quick choice"), value="month_last_year",
                           allowDeselect=False, size="xs",
                           data=[{"value": "month_last_year", "label": t("本月 对比 去年同月", "This month vs same month "
                                                                         "last year")},
                                 {"value": "month_prev", "label": t("本月 对比 上月", "This month vs last month")},
                                 {"value": "30_30", "label": t("近30天 对比 前30天", "Last 30 days vs the 30 before")},
                                 {"value": "halves", "label": t("“最近天数”前后对半", "'Last days' split in halves")}]),
                dmc.DatePickerInput(id=aid.CMP_BEFORE, type="range", label=t("前一时段(起止日期)", "Earlier window"),
                                    valueFormat="YYYY-MM-DD", size="xs", allowSingleDateInRange=True),
                dmc.DatePickerInput(id=aid.CMP_AFTER, type="range", label=t("后一时段(起止日期)", "Later window"),
                                    valueFormat="YYYY-MM-DD", size="xs", allowSingleDateInRange=True),
                dmc.Select(id=aid.CMP_RES, label=t("H3 分辨率", "H3 resolution"), value="8", allowDeselect=False,
                           data=[str(r) for r in H3_RESOLUTIONS], size="xs"),
                _run_button("compare", lang),
            ], value="compare", pt=6),
            dmc.TabsPanel([
                html.Div(t("每个 H3 六边形内的事件数。", "Events per H3 hexagon."), className="an-note"),
                dmc.Select(id=aid.HEAT_RES, label=t("H3 分辨率", "H3 resolution"), value="8", allowDeselect=False,
                           data=[str(r) for r in H3_RESOLUTIONS], size="xs"),
                _run_button("heat", lang),
            ], value="heat", pt=6),
            dmc.TabsPanel([
                html.Div(t(f"DBSCAN 密度聚类(PostGIS,EPSG:{METRIC_SRID} 米制)。", f"DBSCAN density clusters (PostGIS, metres in "
                           f"EPSG:{METRIC_SRID})."), className="an-note"),
                dmc.NumberInput(id=aid.EPS, label=t("邻域半径 eps(米)", "Radius eps (m)"), value=300, size="xs"),
                dmc.NumberInput(id=aid.MINPTS, label=t("最少点数", "Min points"), value=10, min=1, size="xs"),
                _run_button("clusters", lang),
            ], value="clusters", pt=6),
            dmc.TabsPanel([
                html.Div(t("距最近设施 D 米内的人口(人口按网格面积均匀分布);红色虚线为服务盲区。",
                           "People within D metres of the nearest facility (population spread uniformly over each "
                           "grid's area); dashed red = service deserts."), className="an-note"),
                dmc.Select(id=aid.COV_TYPE, label=t("设施类型", "Facility type"), value="elderly_care",
                           allowDeselect=False, size="xs",
                           data=[{"value": r["code"], "label": pick(r["name_zh"], r["name_en"], lang)} for r in rtypes]),
                dmc.NumberInput(id=aid.COV_DIST, label=t("服务半径(米)", "Service distance (m)"), value=2000, min=1,
                                step=100, size="xs"),
                dmc.Select(id=aid.COV_MEASURE, label=t("人群", "People"), value="age_60_plus", allowDeselect=False,
                           size="xs", data=[{"value": "total", "label": t("全部人口", "Everybody")},
                                            {"value": "age_60_plus", "label": t("60岁以上老人", "Aged 60+")}]),
                dmc.Select(id=aid.COV_LEVEL, label=t("统计单元", "Units"), value="grid", allowDeselect=False,
                           size="xs", data=[{"value": "grid", "label": t("网格", "Grids")},
                                            {"value": "village", "label": t("行政村", "Villages")}]),
                _run_button("coverage", lang),
                dmc.Switch(id=aid.WHATIF_ON, label=t("假设新设施:点击地图放置", "What-if: click the map to place a "
                                                     "facility"), checked=False, mt=10, size="sm"),
                dmc.Button(t("清除假设设施", "Clear what-if facilities"), id=aid.WHATIF_CLEAR, size="xs",
                           variant="subtle", mt=4),
            ], value="coverage", pt=6),
            dmc.TabsPanel([
                html.Div(t("栅格分区统计(exactextract):每个行政村/网格的总和、均值、最大值,结果保存。",
                           "Zonal statistics (exactextract): sum, mean, max per village/grid, stored."),
                         className="an-note"),
                dmc.Select(id=aid.RASTER, label=t("栅格数据", "Raster"), allowDeselect=False, size="xs",
                           value=str(rasters[0]["id"]) if rasters else None,
                           data=[{"value": str(r["id"]), "label": pick(r["title_zh"], r["title_en"], lang)}
                                 for r in rasters],
                           placeholder=t("尚无栅格:运行 dvmap analyze demo-raster", "No raster yet: run dvmap analyze "
                                         "demo-raster")),
                dmc.Select(id=aid.ZONAL_LEVEL, label=t("统计单元", "Units"), value="village", allowDeselect=False,
                           size="xs", data=[{"value": "village", "label": t("行政村", "Villages")},
                                            {"value": "grid", "label": t("网格", "Grids")}]),
                dmc.Select(id=aid.ZONAL_STAT, label=t("着色统计量", "Colour by"), value="sum", allowDeselect=False,
                           size="xs", data=["sum", "mean", "max"]),
                dmc.Checkbox(id=aid.RASTER_SHOW, label=t("同时显示栅格图层", "Also show the raster layer"), checked=True,
                             size="xs", mt=8),
                _run_button("zonal", lang),
            ], value="zonal", pt=6),
        ],
    )

    side = html.Aside([
        selection,
        html.Div(t("分析", "Analysis"), className="an-section"),
        tabs,
        html.Div([
            dmc.Progress(id=aid.PROGRESS, value=0, size="lg", mt=10, animated=True, striped=True),
            html.Div(id=aid.PROGRESS_TEXT, className="an-note"),
            dmc.Button(t("取消", "Cancel"), id=aid.CANCEL, size="xs", color="red", variant="light", disabled=True),
        ], id=aid.PROGRESS_BOX),
        html.Div(id=aid.MESSAGE, role="status"),
        html.Div(id=aid.SUMMARY, className="an-summary"),
        html.Div(t("导出结果", "Export the result"), className="an-section"),
        dmc.Group([dmc.Button(label, id=aid.export(fmt), size="xs", variant="outline", disabled=True)
                   for fmt, label in (("geojson", "GeoJSON"), ("gpkg", "GeoPackage"), ("shp", "Shapefile"),
                                      ("csv", "CSV"), ("html", t("HTML 地图", "HTML map")))], gap=6),
        _layer_exports(layers, lang),
        dcc.Download(id=aid.DOWNLOAD),
    ], className="an-side")

    center = [(bounds[0][0] + bounds[1][0]) / 2, (bounds[0][1] + bounds[1][1]) / 2]
    amap = dl.Map(
        id=aid.MAP, center=center, zoom=10.5, minZoom=8, maxZoom=18, zoomSnap=0.5,
        viewport={"bounds": bounds, "transition": "fitBounds", "options": {"padding": [10, 10]}},
        attributionControl=bool(tile_layers()),
        children=tile_layers() + [
            dl.GeoJSON(data=outline, id=aid.OUTLINE, style={"variable": "dvmapAnalysis.outline"}, interactive=False),
            dl.GeoJSON(data=EMPTY_FC, id=aid.CHOSEN, style={"variable": "dvmapAnalysis.chosen"}, interactive=False),
            dl.ImageOverlay(id=aid.RASTER_LAYER, url="data:image/gif;base64,R0lGODlhAQABAAAAACw=",
                            bounds=bounds, opacity=0.0),
            dl.Pane(dl.GeoJSON(id=aid.RESULT, data=EMPTY_FC, style={"variable": "dvmapAnalysis.style"},
                               onEachFeature={"variable": "dvmapAnalysis.tooltip"}, hideout={},
                               bubblingMouseEvents=False), name="an-result", style={"zIndex": 420}),
            dl.Pane(dl.GeoJSON(id=aid.EXTRA, data=EMPTY_FC, style={"variable": "dvmapAnalysis.desert"},
                               onEachFeature={"variable": "dvmapAnalysis.tooltip"}, bubblingMouseEvents=False),
                    name="an-extra", style={"zIndex": 430}),
            dl.LayerGroup(id=aid.WHATIF_LAYER),
            dl.ScaleControl(position="bottomleft", imperial=False),
        ],
    )
    return html.Div([
        dcc.Store(id=aid.LANG, data=lang),
        dcc.Store(id=aid.JOB),
        dcc.Store(id=aid.RESULT_REF),
        dcc.Store(id=aid.EVENT_ITEMS),
        dcc.Store(id=aid.CELL),
        dcc.Store(id=aid.WHATIF_POINTS, data=[]),
        html.Header([
            html.H1(t("空间分析", "Spatial analysis")),
            html.Span(t("热点 · 聚类 · 服务覆盖 · 栅格统计", "Hot spots · clusters · coverage · rasters"),
                      className="county"),
            html.A(t("← 返回一张图", "← Back to the map"), href="/", className="lang"),
            html.Div(className="spacer"),
            *_user_box(lang),
            html.A(t("English", "中文"), href=f"?lang={other}", className="lang", id="an-lang-switch"),
        ], className="topbar"),
        side,
        html.Main([amap, html.Div(id=aid.MAP_LEGEND, className="an-map-legend")], className="an-map-wrap",
                  id="an-map-wrap"),
        html.Aside(html.Div([
            html.Div(t("详情", "Details"), className="an-section"),
            html.Div(t("运行分析后,点击地图上的热点单元或聚类查看其事件,并可批量立案或派遣;覆盖分析中可放置假设设施。",
                       "After a run, click a hot cell or a cluster to list its events and open or dispatch them in "
                       "bulk; in coverage, place a what-if facility."), className="an-note"),
        ], id=aid.DETAIL), className="an-detail"),
    ], className="an-app")
