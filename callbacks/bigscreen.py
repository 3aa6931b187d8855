"""The leaders' big screen (/bigscreen): renderers and callbacks.

* one server callback per refresh tick: every KPI tile, chart and live map layer
  is recomputed, and only what changed goes to the browser (tiles and layers get
  ``no_update`` when equal; charts get a ``Patch`` of their data arrays, so Plotly
  redraws in place: no flicker, no reload);
* a carousel tick tours the towns: the map flies to the town and the local card
  swaps to that town's KPIs; the ranking table pages along;
* the ranking (evaluation index) and the 7-day hotspot cells are recomputed on a slower tick;
* clicking a village opens its own view (``/?village=ID``) in a named tab.

User and scope come from the server session (callbacks.context.session); no
callback input carries them.
"""
from __future__ import annotations

import hashlib
import json
import math

from dash import ALL, Input, Output, Patch, State, callback, clientside_callback, ctx, html, no_update

from callbacks import bigscreen_eval as bse
from callbacks.context import session
from geodata import bigscreen as bs
from geodata import evaluation as ev
from geodata.clock import fmt_local, zone_name
from geodata.i18n import pick


# -- component ids --------------------------------------------------------------------------
ROOT = "bs-root"
LANG = "bs-lang"
SCALE = "bs-scale"
LAST = "bs-last"
TICK = "bs-tick"
TOUR_TICK = "bs-tour-tick"
RANK_TICK = "bs-rank-tick"
CLOCK_TICK = "bs-clock-tick"
CLOCK = "bs-clock"
UPDATED = "bs-updated"
MAP = "bs-map"
VILLAGES = "bs-villages"
OUTLINES = "bs-outlines"
EVENTS = "bs-events"
ALARMS = "bs-alarms"
PATROLS = "bs-patrols"  # workers on patrol now (leaders only; geodata/field/patrol.py)
HOT = "bs-hot"
TOWNS = "bs-towns"
TOUR = "bs-tour"
TOUR_PAUSE = "bs-tour-pause"
LOCAL = "bs-local"
RANK_DATA = "bs-rank-data"
RANK = "bs-rank"
RANK_META = "bs-rank-meta"
FORMULA_BTN = "bs-formula-btn"
FORMULA_CLOSE = "bs-formula-close"
FORMULA = "bs-formula"
FORMULA_BODY = "bs-formula-body"
OPENED = "bs-opened"
CHARTS = {"trend": "bs-trend", "category": "bs-category", "source": "bs-source", "town": "bs-town"}
RANK_ROWS = 10


def kpi_id(key: str) -> dict:
    return {"type": "bs-kpi", "key": key}


# -- formatting --------------------------------------------------------------------------------

def fmt_int(value) -> str:
    return "—" if value is None else f"{int(value):,}"


def fmt_pct(value) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value * 100:.1f}%"


def fmt_hours(value) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.1f}"


#: tile key → formatter; the order of the tiles on screen is map_app.bigscreen's.
FORMATS = {
    "events_today": fmt_int, "events_month": fmt_int, "open": fmt_int, "open_overdue": fmt_int,
    "closure_rate": fmt_pct, "on_time_rate": fmt_pct, "rework_rate": fmt_pct, "avg_handling_hours": fmt_hours,
    "sensors_online": fmt_int, "sensors_alarm": fmt_int, "sensors_offline": fmt_int,
    "population_covered": fmt_int, "households_covered": fmt_int,
}


def tile_texts(kpis: dict) -> dict[str, str]:
    """The text of every KPI tile."""
    return {key: fmt(kpis.get(key)) for key, fmt in FORMATS.items()}


def _digest(value) -> str:
    return hashlib.md5(json.dumps(value, sort_keys=True, default=str, ensure_ascii=False).encode()).hexdigest()


# -- charts (plotly, dark) -----------------------------------------------------------------------

COLORS = ["#38bdf8", "#34d399", "#fbbf24", "#f472b6", "#a78bfa", "#fb923c", "#22d3ee", "#f87171"]
FONT = "WenQuanYi Micro Hei, Noto Sans CJK SC, Microsoft YaHei, sans-serif"


def _layout(scale: float, **extra) -> dict:
    """A dark, transparent Plotly layout with fonts sized for the screen (``scale`` = height / 1080)."""
    s = max(0.5, float(scale or 1))
    axis = {"gridcolor": "rgba(120,170,230,0.14)", "linecolor": "rgba(120,170,230,0.35)", "zeroline": False,
            "tickfont": {"size": round(13 * s, 1)}, "automargin": True}
    layout = {
        "template": "plotly_dark", "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)",
        "font": {"family": FONT, "color": "#cfe3ff", "size": round(14 * s, 1)}, "colorway": COLORS,
        "margin": {"l": round(8 * s), "r": round(10 * s), "t": round(6 * s), "b": round(6 * s)},
        "xaxis": dict(axis), "yaxis": dict(axis), "showlegend": False, "autosize": True,
        "hoverlabel": {"font": {"size": round(13 * s, 1)}}, "uirevision": "keep",
    }
    layout.update(extra)
    return layout


def trend_figure(trend: list[dict], lang: str, scale: float = 1.0) -> dict:
    x = [d["day"].isoformat() if hasattr(d["day"], "isoformat") else str(d["day"]) for d in trend]
    s = max(0.5, float(scale or 1))
    return {
        "data": [
            {"type": "scatter", "mode": "lines", "name": pick("上报", "Reported", lang), "x": x,
             "y": [d["reported"] for d in trend], "line": {"color": "#38bdf8", "width": 2.5 * s},
             "fill": "tozeroy", "fillcolor": "rgba(56,189,248,0.15)"},
            {"type": "scatter", "mode": "lines", "name": pick("结案", "Closed", lang), "x": x,
             "y": [d["closed"] for d in trend], "line": {"color": "#34d399", "width": 2.5 * s}},
        ],
        "layout": _layout(scale, showlegend=True,
                          xaxis={"type": "date", "tickformat": "%m-%d", "gridcolor": "rgba(120,170,230,0.14)",
                                 "tickfont": {"size": round(13 * s, 1)}, "automargin": True},
                          legend={"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom",
                                  "font": {"size": round(13 * s, 1)}, "bgcolor": "rgba(0,0,0,0)"},
                          margin={"l": round(8 * s), "r": round(10 * s), "t": round(30 * s), "b": round(6 * s)}),
    }


def _names(rows: list[dict], lang: str) -> list[str]:
    return [r["name_en"] if lang == "en" else r["name_zh"] for r in rows]


def bar_figure(rows: list[dict], lang: str, scale: float = 1.0, color: str = "#38bdf8") -> dict:
    """Horizontal bars, largest on top."""
    rows = sorted(rows, key=lambda r: r["n"])
    s = max(0.5, float(scale or 1))
    return {
        "data": [{"type": "bar", "orientation": "h", "x": [r["n"] for r in rows], "y": _names(rows, lang),
                  "marker": {"color": color}, "text": [f"{r['n']:,}" for r in rows], "textposition": "outside",
                  "cliponaxis": False, "textfont": {"size": round(13 * s, 1)}}],
        "layout": _layout(scale, bargap=0.28, xaxis={"visible": False, "automargin": True},
                          margin={"l": round(6 * s), "r": round(44 * s), "t": round(4 * s), "b": round(4 * s)}),
    }


def pie_figure(rows: list[dict], lang: str, scale: float = 1.0) -> dict:
    s = max(0.5, float(scale or 1))
    return {
        "data": [{"type": "pie", "hole": 0.55, "labels": _names(rows, lang), "values": [r["n"] for r in rows],
                  "sort": False, "direction": "clockwise", "textinfo": "percent", "textposition": "inside",
                  "insidetextfont": {"size": round(12 * s, 1)}, "marker": {"colors": COLORS},
                  "domain": {"x": [0, 0.5], "y": [0, 1]}}],
        "layout": _layout(scale, showlegend=True,
                          legend={"x": 0.54, "y": 0.5, "yanchor": "middle", "font": {"size": round(13 * s, 1)},
                                  "bgcolor": "rgba(0,0,0,0)"}),
    }


def figures(snap: dict, lang: str, scale: float = 1.0) -> dict[str, dict]:
    """The four charts of a snapshot (:func:`geodata.bigscreen.snapshot`)."""
    b = snap["breakdown"]
    return {
        "trend": trend_figure(snap["trend"], lang, scale),
        "category": bar_figure(b["category"], lang, scale, "#38bdf8"),
        "source": pie_figure(b["source"], lang, scale),
        "town": bar_figure(b["town"], lang, scale, "#a78bfa"),
    }


def _data_patch(new_fig: dict) -> Patch:
    """Only the data arrays of a chart (same traces, new numbers): Plotly redraws in place."""
    patch = Patch()
    for i, trace in enumerate(new_fig["data"]):
        for key in ("x", "y", "labels", "values", "text", "name"):
            if key in trace:
                patch["data"][i][key] = trace[key]
    return patch


# -- local (carousel) card and ranking rows --------------------------------------------------------

def area_title(places: dict | None, lang: str) -> str:
    """Name of the carousel's first stop: the whole county, or the viewer's own area."""
    if (places or {}).get("county_scope", True):
        return pick("全县", "Whole county", lang)
    return pick("本辖区", "My area", lang)


def local_card(title: str, kpis: dict, lang: str) -> list:
    items = [
        ("events_month", pick("本月上报", "This month", lang), fmt_int(kpis.get("events_month"))),
        ("open", pick("在办", "Open", lang), fmt_int(kpis.get("open"))),
        ("open_overdue", pick("超期未结", "Overdue", lang), fmt_int(kpis.get("open_overdue"))),
        ("closure_rate", pick("结案率", "Closure", lang), fmt_pct(kpis.get("closure_rate"))),
        ("on_time_rate", pick("按期结案率", "On time", lang), fmt_pct(kpis.get("on_time_rate"))),
    ]
    return [
        html.Div([html.Span(pick("巡航", "Tour", lang), className="bs-local-tag"),
                  html.Span(title, className="bs-local-title", id="bs-local-title")], className="bs-local-head"),
        html.Div([html.Div([html.Div(v, className="bs-local-value", **{"data-kpi": k}),
                            html.Div(label, className="bs-local-label")], className="bs-local-item")
                  for k, label, v in items], className="bs-local-grid"),
    ]


def rank_head(data: dict | None, lang: str) -> html.Tr:
    """Head of the ranking table: rank, village (and town), index, then the four dimensions with weights."""
    return html.Tr([html.Th(pick("名次", "#", lang)), html.Th(pick("村 · 乡镇", "Village · town", lang)),
                    html.Th(pick("综合指数", "Index", lang)),
                    *bse.dimension_heads((data or {}).get("groups") or [], lang)])


def rank_rows(data: dict | None, page: int, lang: str) -> tuple[list, str]:
    """Rows of one page of the ranking table and the page caption.

    A row shows the index and the four dimension scores; a click opens the village's
    card (callbacks.bigscreen_eval).
    """
    groups = (data or {}).get("groups") or []
    if not data or not data.get("rows"):
        return [html.Tr(html.Td(pick("暂无考核数据", "No evaluation data yet", lang), colSpan=3 + len(groups),
                                className="bs-empty"))], ""
    rows = data["rows"]
    pages = max(1, math.ceil(len(rows) / RANK_ROWS))
    page = page % pages
    out = []
    for r in rows[page * RANK_ROWS:(page + 1) * RANK_ROWS]:
        idx = "—" if r["index"] is None else f"{r['index']:.1f}"
        medal = f" bs-top{r['rank']}" if r["rank"] <= 3 else ""
        out.append(html.Tr([
            html.Td(str(r["rank"]), className="bs-rank-no" + medal),
            html.Td([html.Div(r["name"], className="bs-rank-village"), html.Div(r["town"], className="bs-rank-town")],
                    className="bs-rank-place"),
            html.Td([html.Span(idx, className="bs-rank-index"),
                     html.Span(className="bs-rank-bar", style={"width": f"{(r['index'] or 0):.0f}%"})],
                    className="bs-rank-cell", title=pick(f"数据完整度 {r['completeness'] * 100:.0f}%",
                                                         f"completeness {r['completeness'] * 100:.0f}%", lang)),
            *bse.dimension_cells(r, groups),
        ], id={"type": bse.RANK_ROW, "village": r["village_id"]}, n_clicks=0, className="bs-rank-row",
            title=pick("点击查看分项得分与趋势", "Click for the breakdown and trend", lang),
            **{"data-rank": r["rank"], "data-village": r["village_id"]}))
    caption = f"{page + 1}/{pages}"
    return out, caption


def formula_panel(indicators: list[dict], lang: str, period: str) -> list:
    """The formula and the weights, shown on demand."""
    grouped: dict[str, dict] = {}
    for ind in indicators:
        g = grouped.setdefault(ind["group_code"], {"zh": ind["group_zh"], "en": ind["group_en"], "w": 0.0, "rows": []})
        g["w"] += ind["weight"]
        g["rows"].append(ind)
    body = [html.H3(pick("综合考核指数 · 计算公式", "Evaluation index · formula", lang)),
            html.P(pick(ev.FORMULA_ZH, ev.FORMULA_EN, lang), className="bs-formula-text"),
            html.P(pick(f"考核周期:{period}(季度,至今)", f"Period: {period} (quarter to date)", lang),
                   className="bs-formula-period")]
    rows = []
    for g in grouped.values():
        rows.append(html.Tr([html.Th(f"{pick(g['zh'], g['en'], lang)}", colSpan=2),
                             html.Th(f"{g['w']:g}%"), html.Th("")], className="bs-formula-group"))
        for ind in g["rows"]:
            source = pick("手工填报", "entered", lang) if ind["source"] == "manual" else pick("系统计算", "computed", lang)
            rows.append(html.Tr([
                html.Td(pick(ind["name_zh"], ind["name_en"], lang)),
                html.Td(source, className="bs-formula-src"),
                html.Td(f"{ind['weight']:g}%"),
                html.Td(pick(ind["note_zh"], ind["note_en"], lang), className="bs-formula-note"),
            ]))
    body.append(html.Table(html.Tbody(rows), className="bs-formula-table"))
    return body


def ranking_payload(result: dict) -> dict:
    """JSON-able ranking for the browser store."""
    return {
        "period": result["period"],
        "rows": [{k: v for k, v in r.as_dict().items() if k not in ("values", "scores")} for r in result["rows"]],
        "groups": [{k: g[k] for k in ("code", "name_zh", "name_en", "weight")}
                   for g in ev.groups(result["indicators"])],
        "indicators": [{"code": i.code, "group_code": i.group_code, "group_zh": i.group_zh, "group_en": i.group_en,
                        "name_zh": i.name_zh, "name_en": i.name_en, "weight": i.weight, "source": i.source,
                        "note_zh": i.note_zh, "note_en": i.note_en} for i in result["indicators"]],
    }


# -- refresh ---------------------------------------------------------------------------------------

def refresh_data(s, lang: str, scale: float) -> dict:
    """Everything one tick shows, rendered, plus digests to compare with the last tick."""
    tick = bs.refresh(s)
    now, snap = tick["now"], tick["snapshot"]
    layers = {"events": tick["events"], "alarms": tick["alarms"]}
    figs = figures(snap, lang, scale)
    return {
        "now": now, "kpis": snap["kpis"], "tiles": tile_texts(snap["kpis"]), "figures": figs, "layers": layers,
        "digests": {**{k: _digest(f["data"]) for k, f in figs.items()}, **{k: _digest(v) for k, v in layers.items()}},
    }


@callback(
    Output(kpi_id(ALL), "children"),
    Output(CHARTS["trend"], "figure"),
    Output(CHARTS["category"], "figure"),
    Output(CHARTS["source"], "figure"),
    Output(CHARTS["town"], "figure"),
    Output(EVENTS, "data"),
    Output(ALARMS, "data"),
    Output(UPDATED, "children"),
    Output(LAST, "data"),
    Input(TICK, "n_intervals"),
    State(LAST, "data"),
    State(LANG, "data"),
    State(SCALE, "data"),
    prevent_initial_call=True,
)
def refresh(_n, last, lang, scale):
    keys = [o["id"]["key"] for o in ctx.outputs_list[0]]
    last = last or {}
    with session() as s:
        data = refresh_data(s, lang, scale or 1.0)
    old_tiles = last.get("tiles", {})
    tiles = [data["tiles"][k] if data["tiles"].get(k) != old_tiles.get(k) else no_update for k in keys]
    old = last.get("digests", {})
    changed = {k for k, d in data["digests"].items() if old.get(k) != d}
    charts = [_data_patch(data["figures"][k]) if k in changed else no_update
              for k in ("trend", "category", "source", "town")]
    layers = [data["layers"][k] if k in changed else no_update for k in ("events", "alarms")]
    stamp = fmt_local(data["now"], "%H:%M:%S")
    return (tiles, *charts, *layers, pick(f"数据更新 {stamp}", f"Updated {stamp}", lang),
            {"tiles": data["tiles"], "digests": data["digests"]})


@callback(Output(PATROLS, "data"), Input(TICK, "n_intervals"))
def patrols_now(_n):
    """A dot per active patrol (last position only, no track); empty for roles other than leaders."""
    from geodata.field.patrol import active_patrols

    with session() as s:
        rows = active_patrols(s)
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [r["lon"], r["lat"]]},
         "properties": {"village": r["village"], "grid_code": r["grid_code"]}} for r in rows]}


@callback(
    Output(CHARTS["trend"], "figure", allow_duplicate=True),
    Output(CHARTS["category"], "figure", allow_duplicate=True),
    Output(CHARTS["source"], "figure", allow_duplicate=True),
    Output(CHARTS["town"], "figure", allow_duplicate=True),
    Input(SCALE, "data"),
    State(LANG, "data"),
    prevent_initial_call=True,
)
def rescale_charts(scale, lang):
    """Fonts and margins for the actual screen (4K gets twice the 1080p sizes)."""
    if not scale or abs(float(scale) - 1.0) < 0.05:
        return no_update, no_update, no_update, no_update
    with session() as s:
        snap = bs.snapshot(s)
    figs = figures(snap, lang, float(scale))
    return figs["trend"], figs["category"], figs["source"], figs["town"]


# -- carousel ----------------------------------------------------------------------------------------

@callback(
    Output(MAP, "viewport"),
    Output(LOCAL, "children"),
    Output(OUTLINES, "hideout"),
    Output(TOUR, "data"),
    Input(TOUR_TICK, "n_intervals"),
    State(TOUR, "data"),
    State(TOWNS, "data"),
    State(LANG, "data"),
    prevent_initial_call=True,
)
def tour(_n, step, places, lang):
    """Next stop: the whole county, then each town in turn (map, local KPIs, highlighted outline)."""
    towns = (places or {}).get("towns") or []
    if not towns:
        return no_update, no_update, no_update, no_update
    step = ((step or 0) + 1) % (len(towns) + 1)
    hideout = Patch()
    with session() as s:
        if step == 0:
            extent = places["county"]
            card = local_card(area_title(places, lang), bs.kpis(s), lang)
            hideout["selected"] = None
            return ({"bounds": extent, "transition": "flyToBounds", "options": {"padding": [20, 20]}},
                    card, hideout, step)
        town = towns[step - 1]
        card = local_card(town["name"], bs.kpis(s, village_ids=town["village_ids"]), lang)
    hideout["selected"] = town["id"]
    return ({"bounds": town["bounds"], "transition": "flyToBounds", "options": {"padding": [30, 30]}},
            card, hideout, step)


@callback(
    Output(TOUR_TICK, "disabled"),
    Output(TOUR_PAUSE, "children"),
    Input(TOUR_PAUSE, "n_clicks"),
    State(TOUR_TICK, "disabled"),
    State(LANG, "data"),
    prevent_initial_call=True,
)
def pause_tour(_clicks, disabled, lang):
    paused = not disabled
    return paused, pick("继续巡航", "Resume tour", lang) if paused else pick("暂停巡航", "Pause tour", lang)


# -- ranking -----------------------------------------------------------------------------------------

@callback(
    Output(RANK_DATA, "data"),
    Output(FORMULA_BODY, "children"),
    Input(RANK_TICK, "n_intervals"),
    State(LANG, "data"),
    prevent_initial_call=True,
)
def recompute_ranking(_n, lang):
    """The slow tick: the evaluation ranking (the page's layout already carries the first one)."""
    with session() as s:
        payload = ranking_payload(bse.cached_ranking(s))
    return payload, formula_panel(payload["indicators"], lang, payload["period"])


@callback(Output(HOT, "data"), Input(RANK_TICK, "n_intervals"))
def recompute_hotspots(_n):
    """The slow tick and right after the page loads: the 7-day hotspots (a request of its own, so
    Gi*'s permutations never hold up the ranking)."""
    with session() as s:
        return bs.hotspots(s)


@callback(
    Output(RANK, "children"),
    Output(RANK_META, "children"),
    Input(RANK_DATA, "data"),
    Input(TOUR_TICK, "n_intervals"),
    State(LANG, "data"),
    prevent_initial_call=True,
)
def show_ranking(data, n, lang):
    rows, caption = rank_rows(data, n or 0, lang)
    period = (data or {}).get("period", "")
    return rows, f"{period} · {caption}" if caption else period


# -- browser-only behaviour -----------------------------------------------------------------------------

# Font scale of the charts: the screen height over 1080 (the design size), or the
# width over 1920 when the screen is narrower than 16:9.
clientside_callback(
    "function(lang) { return Math.max(0.5, Math.min(window.innerHeight / 1080, window.innerWidth / 1920)); }",
    Output(SCALE, "data"),
    Input(LANG, "data"),
)

clientside_callback(
    """function(n, lang) {
        // The county's clock (DVMAP_TIMEZONE) whatever the browser's zone: the screen's periods are its days.
        const parts = {};
        new Intl.DateTimeFormat('en-GB', {timeZone: """ + json.dumps(zone_name()) + """, year: 'numeric', month: '2-digit',
            day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', weekday: 'short',
            hour12: false}).formatToParts(new Date()).forEach(function (p) { parts[p.type] = p.value; });
        const zh = {Mon: '一', Tue: '二', Wed: '三', Thu: '四', Fri: '五', Sat: '六', Sun: '日'};
        const day = lang === 'en' ? parts.weekday : '星期' + zh[parts.weekday];
        return parts.year + '-' + parts.month + '-' + parts.day + ' ' + day + ' ' +
               parts.hour + ':' + parts.minute + ':' + parts.second;
    }""",
    Output(CLOCK, "children"),
    Input(CLOCK_TICK, "n_intervals"),
    State(LANG, "data"),
)

clientside_callback(
    """function(n, closed, cls) {
        const trig = (window.dash_clientside.callback_context.triggered[0] || {}).prop_id || '';
        if (trig.indexOf('close') >= 0) { return 'bs-formula'; }
        if (!n) { return window.dash_clientside.no_update; }
        return (cls || '').indexOf('bs-open') >= 0 ? 'bs-formula' : 'bs-formula bs-open';
    }""",
    Output(FORMULA, "className"),
    Input(FORMULA_BTN, "n_clicks"),
    Input(FORMULA_CLOSE, "n_clicks"),
    State(FORMULA, "className"),
    prevent_initial_call=True,
)

# Once the page has its final size, fit the map to the area again (the first fit can
# run before the grid layout has sized the map).
clientside_callback(
    """function(scale, places) {
        if (!places || !places.county) { return window.dash_clientside.no_update; }
        return new Promise(function (resolve) {
            setTimeout(function () {
                ((window.dvmap || {}).maps || []).forEach(function (m) { m.invalidateSize(); });
                resolve({bounds: places.county, transition: 'fitBounds', options: {padding: [20, 20], animate: false}});
            }, 400);
        });
    }""",
    Output(MAP, "viewport", allow_duplicate=True),
    Input(SCALE, "data"),
    State(TOWNS, "data"),
    prevent_initial_call=True,
)

# A click on a village opens its own view for an official following along on a laptop
# (a named tab, so repeated clicks reuse it); the URL is kept for tests.
clientside_callback(
    """function(feature) {
        if (!feature || !feature.properties || !feature.properties.id) { return window.dash_clientside.no_update; }
        const url = '/?village=' + encodeURIComponent(feature.properties.id);
        window.open(url, 'dvmap-village');
        return url;
    }""",
    Output(OPENED, "data"),
    Input(VILLAGES, "clickData"),
    prevent_initial_call=True,
)


# The administrator's page registers its callbacks with this module.
from callbacks import bigscreen_admin  # noqa: E402,F401
