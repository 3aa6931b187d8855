"""The leaders' big screen (/bigscreen): a full-screen, dark, self-refreshing county picture.

Laid out for 1920×1080 and 3840×2160 (assets/bigscreen.css sizes everything in
viewport units, so 4K is the same picture at twice the size). The first paint
already carries every number (built here, server-side); callbacks/bigscreen.py then
refreshes only what changes.
"""
from __future__ import annotations

import dash_leaflet as dl
from dash import dcc, html
from flask import current_app

from callbacks import bigscreen as cb
from callbacks import bigscreen_eval as bse
from geodata import bigscreen as bs
from geodata.clock import fmt_local
from geodata.i18n import pick
from geodata.queries import layers as q
from layers.base import js
from map_app.layout import DEFAULT_BOUNDS, page_language, tile_layers

#: (key, Chinese label, English label, unit zh, unit en) of the main tiles, in screen order.
TILES = [
    ("events_today", "今日上报", "Reported today", "件", ""),
    ("events_month", "本月上报", "Reported this month", "件", ""),
    ("open", "在办事件", "Open now", "件", ""),
    ("open_overdue", "超期未结", "Open overdue", "件", ""),
    ("closure_rate", "结案率", "Closure rate", "本月", "month"),
    ("on_time_rate", "按期结案率", "On-time closure", "本月", "month"),
    ("rework_rate", "返工率", "Rework rate", "本月", "month"),
    ("avg_handling_hours", "平均处置时长", "Avg. handling time", "小时", "hours"),
]
#: Tiles holding several numbers: (title zh, title en, [(key, label zh, label en, css class)]).
WIDE_TILES = [
    ("物联感知设备", "IoT sensors", [("sensors_online", "在线", "online", "ok"),
                                  ("sensors_alarm", "告警", "alarm", "alarm"),
                                  ("sensors_offline", "离线", "offline", "off")]),
    ("网格覆盖", "Covered by grids", [("population_covered", "人口(人)", "people", ""),
                                   ("households_covered", "户数(户)", "households", "")]),
]


def _tile(key, label, unit, text, warn=False):
    return html.Div(
        [html.Div(label, className="bs-tile-label"),
         html.Div([html.Span(text, id=cb.kpi_id(key), className="bs-value", **{"data-kpi": key}),
                   html.Span(unit, className="bs-unit")], className="bs-tile-num")],
        className="bs-tile" + (" bs-warn" if warn else ""), **{"data-tile": key},
    )


def _wide_tile(title, parts, texts):
    return html.Div(
        [html.Div(title, className="bs-tile-label"),
         html.Div([html.Div([html.Span(texts[k], id=cb.kpi_id(k), className=f"bs-value bs-v-{cls}" if cls else "bs-value",
                                       **{"data-kpi": k}),
                             html.Span(lab, className="bs-sub")], className="bs-part")
                   for k, lab, cls in parts], className="bs-parts")],
        className="bs-tile bs-wide", **{"data-tile": parts[0][0]},
    )


def _panel(title, body, cls="", extra=None):
    head = [html.Span(title, className="bs-panel-title")]
    if extra is not None:
        head.append(extra)
    return html.Section([html.Div(head, className="bs-panel-head"), html.Div(body, className="bs-panel-body")],
                        className=f"bs-panel {cls}".strip())


def _graph(key, figure):
    return dcc.Graph(id=cb.CHARTS[key], figure=figure, className="bs-graph",
                     config={"displayModeBar": False, "responsive": True, "staticPlot": False},
                     style={"height": "100%", "width": "100%"})


def _legend(lang):
    items = [("bs-lg-new", pick("新上报(闪烁)", "New (pulsing)", lang)),
             ("bs-lg-open", pick("在办", "Open", lang)),
             ("bs-lg-overdue", pick("超期", "Overdue", lang)),
             ("bs-lg-closed", pick("已结案", "Closed", lang)),
             ("bs-lg-alarm", pick("设备告警", "Sensor alarm", lang)),
             ("bs-lg-hot", pick(f"近{bs.HOTSPOT_DAYS}天事件热点", f"Hotspots, last {bs.HOTSPOT_DAYS} days", lang))]
    from flask_login import current_user

    from geodata.field.patrol import LEADER_ROLES

    if getattr(current_user, "role", None) in LEADER_ROLES:  # the dots are the leaders' only
        items.append(("bs-lg-patrol", pick("巡查中网格员", "Worker on patrol", lang)))
    return html.Div([html.Div([html.I(className=c), html.Span(t)], className="bs-lg-item") for c, t in items],
                    className="bs-legend")


def serve_bigscreen(**query):
    """Layout of /bigscreen for the logged-in user's scope (numbers filled in server-side)."""
    lang = page_language(query)
    timing = bs.refresh_settings()
    database = current_app.extensions["dvmap"]
    with database.session() as s:
        data = cb.refresh_data(s, lang, 1.0)
        bounds = q.scope_extent(s) or q.county_extent(s) or DEFAULT_BOUNDS
        county = q.county_info(s) or {"name": ""}
        (south, west), (north, east) = bounds
        villages = q.villages(s, (west - 0.01, south - 0.01, east + 0.01, north + 0.01), 11)
        outlines = q.base_outlines(s, 11)
        towns = bs.towns(s)
        county_scope = bs.use_summary(s, None)
        # the first paint carries the ranking (cached for the slow tick): no round trip after the page
        rank = cb.ranking_payload(bse.cached_ranking(s))
    places = {"county": bounds, "towns": towns, "county_scope": county_scope}
    tiles = data["tiles"]
    figs = data["figures"]
    other = "zh" if lang == "en" else "en"
    title = pick(f"{county['name']} · 数字乡村一张图 · 指挥中心", f"{county['name']} · Digital Village One Map · "
                 "Command centre", lang)

    header = html.Header([
        html.Div([html.H1(title, className="bs-title"),
                  html.Span(pick("县域基层治理态势", "County governance at a glance", lang), className="bs-subtitle")],
                 className="bs-head-left"),
        html.Div([html.Div("", id=cb.CLOCK, className="bs-clock"),
                  html.Div(pick("数据更新 ", "Updated ", lang) + fmt_local(data["now"], "%H:%M:%S"),
                           id=cb.UPDATED, className="bs-updated")], className="bs-head-mid"),
        html.Div([
            html.Button(pick("指标公式", "Formula", lang), id=cb.FORMULA_BTN, className="bs-btn", n_clicks=0),
            html.Button(pick("暂停巡航", "Pause tour", lang), id=cb.TOUR_PAUSE, className="bs-btn", n_clicks=0),
            html.A(pick("English", "中文", lang), href=f"/bigscreen?lang={other}", className="bs-btn bs-lang"),
            html.A(pick("返回地图", "Map", lang), href="/", className="bs-btn"),
        ], className="bs-head-right"),
    ], className="bs-header")

    tile_grid = html.Div(
        [_tile(k, pick(zh, en, lang), pick(uz, ue, lang), tiles[k], warn=(k == "open_overdue"))
         for k, zh, en, uz, ue in TILES]
        + [_wide_tile(pick(zh, en, lang), [(k, pick(lz, le, lang), c) for k, lz, le, c in parts], tiles)
           for zh, en, parts in WIDE_TILES],
        className="bs-tiles",
    )
    left = html.Div([
        _panel(pick("事件与处置 · 本月(GB 口径)", "Events and handling · this month (GB)", lang), tile_grid, "bs-kpis"),
        _panel(pick(f"近{bs.TREND_DAYS}天上报与结案", f"Reported vs closed, last {bs.TREND_DAYS} days", lang),
               _graph("trend", figs["trend"]), "bs-chart"),
    ], className="bs-col bs-left")

    map_children = tile_layers() + [
        dl.Pane(dl.GeoJSON(id=cb.VILLAGES, data=villages, style=js("bs.village"), onEachFeature=js("bs.villageTip"),
                           hoverStyle=js("bs.villageHover"), bubblingMouseEvents=False),
                name="bs-pane-villages", style={"zIndex": 300}),
        dl.Pane(dl.GeoJSON(id=cb.OUTLINES, data=outlines, style=js("bs.outline"), interactive=False,
                           hideout={"selected": None}), name="bs-pane-outlines", style={"zIndex": 350}),
        dl.Pane(dl.GeoJSON(id=cb.HOT, data=q.EMPTY_FC, style=js("bs.hot"), interactive=False),
                name="bs-pane-hot", style={"zIndex": 380}),
        dl.Pane(dl.GeoJSON(id=cb.EVENTS, data=data["layers"]["events"], pointToLayer=js("bs.event"),
                           onEachFeature=js("bs.eventTip")), name="bs-pane-events", style={"zIndex": 620}),
        dl.Pane(dl.GeoJSON(id=cb.ALARMS, data=data["layers"]["alarms"], pointToLayer=js("bs.alarm"),
                           onEachFeature=js("bs.alarmTip")), name="bs-pane-alarms", style={"zIndex": 640}),
        dl.Pane(dl.GeoJSON(id=cb.PATROLS, data=q.EMPTY_FC, pointToLayer=js("bs.patrol"), interactive=False),
                name="bs-pane-patrols", style={"zIndex": 630}),  # workers on patrol now (leaders only)
    ]
    centre = html.Div([
        html.Div([
            dl.Map(id=cb.MAP, children=map_children,
                   center=[(south + north) / 2, (west + east) / 2], zoom=10,
                   viewport={"bounds": bounds, "transition": "fitBounds", "options": {"padding": [20, 20]}},
                   zoomSnap=0.1, zoomControl=False, attributionControl=bool(tile_layers()), minZoom=8, maxZoom=16,
                   className="bs-leaflet"),
            html.Div(cb.local_card(cb.area_title(places, lang), data["kpis"], lang), id=cb.LOCAL,
                     className="bs-local"),
            _legend(lang),
        ], className="bs-map"),
        html.Div([
            _panel(pick(f"事件类别 · 近{bs.TREND_DAYS}天", f"By category · {bs.TREND_DAYS} days", lang),
                   _graph("category", figs["category"]), "bs-chart"),
            _panel(pick(f"事件来源 · 近{bs.TREND_DAYS}天", f"By source · {bs.TREND_DAYS} days", lang),
                   _graph("source", figs["source"]), "bs-chart"),
        ], className="bs-bottom"),
    ], className="bs-col bs-centre")

    rank_rows, rank_caption = cb.rank_rows(rank, 0, lang)
    ranking = html.Table([
        html.Thead(cb.rank_head(rank, lang)),
        html.Tbody(rank_rows, id=cb.RANK),
    ], className="bs-rank-table")
    right = html.Div([
        _panel(pick("村级综合考核排名", "Village ranking · evaluation index", lang), ranking, "bs-ranking",
               extra=html.Span(f"{rank['period']} · {rank_caption}" if rank_caption else rank["period"],
                               id=cb.RANK_META, className="bs-rank-meta")),
        _panel(pick(f"各乡镇上报 · 近{bs.TREND_DAYS}天", f"By town · {bs.TREND_DAYS} days", lang),
               _graph("town", figs["town"]), "bs-chart"),
    ], className="bs-col bs-right")

    formula = html.Div(html.Div([html.Button("×", id=cb.FORMULA_CLOSE, className="bs-close", n_clicks=0),
                                 html.Div(cb.formula_panel(rank["indicators"], lang, rank["period"]),
                                          id=cb.FORMULA_BODY)], className="bs-formula-card"),
                       id=cb.FORMULA, className="bs-formula")
    village_eval = html.Div(html.Div([html.Button("×", id=bse.VILLAGE_EVAL_CLOSE, className="bs-close", n_clicks=0),
                                      html.Div(id=bse.VILLAGE_EVAL_BODY)], className="bs-formula-card bs-ve-card"),
                            id=bse.VILLAGE_EVAL, className="bs-formula bs-village-eval")
    stores = [
        dcc.Store(id=cb.LANG, data=lang),
        dcc.Store(id=cb.SCALE),
        dcc.Store(id=cb.LAST, data={"tiles": tiles, "digests": data["digests"]}),
        dcc.Store(id=cb.TOUR, data=0),
        dcc.Store(id=cb.TOWNS, data=places),
        dcc.Store(id=cb.RANK_DATA, data=rank),
        dcc.Store(id=cb.OPENED),
        dcc.Interval(id=cb.TICK, interval=timing["refresh"] * 1000),
        dcc.Interval(id=cb.TOUR_TICK, interval=timing["tour"] * 1000),
        dcc.Interval(id=cb.RANK_TICK, interval=timing["rank"] * 1000),
        dcc.Interval(id=cb.CLOCK_TICK, interval=1000),
    ]
    return html.Div([*stores, header, left, centre, right, formula, village_eval], id=cb.ROOT, className="bs-root",
                    **{"data-refresh": timing["refresh"], "lang": "en" if lang == "en" else "zh-CN"})
