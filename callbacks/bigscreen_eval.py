"""The big screen's evaluation index: the cached ranking, a village's breakdown and trend.

* :func:`cached_ranking` — :func:`geodata.evaluation.ranking` kept for the slow tick's
  seconds (``DVMAP_BIGSCREEN_RANK_SECONDS``) per scope and period, and renewed at once
  when an administrator changes weights, targets or manual values: the page's first
  paint carries the ranking (map_app.bigscreen renders it server-side) without paying
  for it on every load.
* a ranking row opens the village's card: the four dimensions (治理效能, 民生福祉, 社会协同,
  创新突破) with their indicators' values, targets and scores, and the index over the
  last evaluation periods (quarters), drawn as plain bars (no chart library needed).

Scope comes from the server session: a village outside it is simply not in the ranking.
"""
from __future__ import annotations

import hashlib

from dash import ALL, Input, Output, State, callback, clientside_callback, ctx, html, no_update
from sqlalchemy import text

from callbacks.cache import cached
from callbacks.context import session
from geodata import bigscreen as bs
from geodata import evaluation as ev
from geodata.i18n import pick

RANK_ROW = "bs-rank-row"          # pattern id {"type": RANK_ROW, "village": id} of a ranking row
VILLAGE_EVAL = "bs-village-eval"  # the overlay
VILLAGE_EVAL_BODY = "bs-village-eval-body"
VILLAGE_EVAL_CLOSE = "bs-village-eval-close"
TREND_PERIODS = 4
#: Short column heads of the four dimensions (the full names are in the card and the formula).
SHORT = {"governance": ("治理", "Gov."), "wellbeing": ("民生", "Wellb."), "collaboration": ("协同", "Collab."),
         "innovation": ("创新", "Innov.")}


def _definitions_stamp(s, period: str) -> str:
    """Changes to weights, targets or the period's manual values make a new cache key."""
    row = s.execute(text(
        """
        SELECT (SELECT string_agg(code || ':' || weight || ':' || target, ',' ORDER BY code) FROM eval_indicator),
               (SELECT count(*) || ':' || coalesce(max(entered_at)::text, '') FROM eval_manual_value
                 WHERE period = :p)
        """), {"p": period}).one()
    return hashlib.sha1(f"{row[0]}|{row[1]}".encode()).hexdigest()[:16]


def cached_ranking(s, period: str | None = None) -> dict:
    """:func:`geodata.evaluation.ranking` for ``period`` (default: the current quarter), cached.

    Cached per scope (RLS decides the villages), period and index definitions for the
    ranking's refresh interval: a fresh number at most that old, as the slow tick shows.
    """
    period = period or ev.period_of(bs.db_now(s))
    key = f"{period}:{_definitions_stamp(s, period)}"

    def compute():
        with bs.planner(s, **bs.SERIAL):
            return ev.ranking(s, period)

    # a little under the tick, so each slow tick computes afresh rather than reading an entry about to expire
    ttl = max(1, int(bs.refresh_settings()["rank"] * 0.9))
    return cached(s, "bs-ranking", key, ("admin",), compute, timeout=ttl)


def dim_class(score) -> str:
    """CSS class of a 0–100 score: good (≥ 85), fair (≥ 60), weak, or none."""
    if score is None:
        return "bs-dim-none"
    score = round(score)   # the colour follows the number shown
    return "bs-dim-good" if score >= 85 else "bs-dim-fair" if score >= 60 else "bs-dim-weak"


def _fmt_score(score) -> str:
    return "—" if score is None else f"{score:.0f}"


def dimension_heads(groups: list[dict], lang: str) -> list:
    """Column heads of the ranking table for the four dimensions: short name and weight."""
    out = []
    for g in groups:
        zh, en = SHORT.get(g["code"], (g["name_zh"][:2], g["name_en"][:6]))
        out.append(html.Th([html.Span(pick(zh, en, lang)), html.Span(f"{g['weight']:g}%", className="bs-th-w")],
                           className="bs-th-dim", title=pick(g["name_zh"], g["name_en"], lang)))
    return out


def dimension_cells(row: dict, groups: list[dict]) -> list:
    """The four dimension scores of one ranking row."""
    dims = row.get("dimensions") or {}
    return [html.Td(_fmt_score(dims.get(g["code"])), className=f"bs-rank-dim {dim_class(dims.get(g['code']))}",
                    **{"data-dim": g["code"]}) for g in groups]


# -- the village card -------------------------------------------------------------------------------

def _fmt_value(value, ind: ev.Indicator, lang: str) -> str:
    if value is None:
        return "—"
    if ind.unit_en == "ratio":
        return f"{value * 100:.1f}%"
    if ind.unit_en == "%":
        return f"{value:g}%"
    return f"{value:g} {pick(ind.unit_zh, ind.unit_en, lang)}"


def _missing(ind: ev.Indicator, lang: str) -> str:
    return pick("未填报,计 0 分", "not entered: scores 0", lang) if ind.manual else \
        pick("本期无案件,不计入", "no cases: left out", lang)


def _indicator_row(item: dict, lang: str) -> html.Tr:
    ind, value, score = item["indicator"], item["value"], item["score"]
    if value is None:
        score_cell = html.Td(_missing(ind, lang), className="bs-ve-missing", colSpan=2)
    else:
        score_cell = [html.Td(html.Span(className="bs-ve-bar", style={"width": f"{score or 0:.0f}%"}),
                              className="bs-ve-barcell"),
                      html.Td(_fmt_score(score), className=f"bs-ve-score {dim_class(score)}")]
    return html.Tr([
        html.Td(pick(ind.name_zh, ind.name_en, lang), className="bs-ve-name"),
        html.Td(f"{ind.weight:g}%", className="bs-ve-num"),
        html.Td(_fmt_value(value, ind, lang), className="bs-ve-num", **{"data-value": ind.code}),
        html.Td(_fmt_value(ind.target, ind, lang), className="bs-ve-num bs-ve-dim"),
        *(score_cell if isinstance(score_cell, list) else [score_cell]),
    ], **{"data-indicator": ind.code})


def _trend(trend: list[dict], lang: str) -> html.Div:
    bars = []
    for t in trend:
        idx = t["index"]
        bars.append(html.Div([
            html.Div("—" if idx is None else f"{idx:.1f}", className="bs-ve-tval"),
            html.Div(html.Div(className="bs-ve-tbar", style={"height": f"{idx or 0:.0f}%"}), className="bs-ve-tcol"),
            html.Div(t["period"], className="bs-ve-tlabel"),
            html.Div(pick(f"第 {t['rank']}/{t['of']} 名", f"#{t['rank']} of {t['of']}", lang),
                     className="bs-ve-trank"),
        ], className="bs-ve-titem", **{"data-period": t["period"]}))
    return html.Div([html.Div(pick("综合指数 · 近四个考核周期(季度)", "Index · last four periods (quarters)", lang),
                              className="bs-ve-subtitle"),
                     html.Div(bars, className="bs-ve-trend")], className="bs-ve-right")


def village_card(report: dict | None, lang: str) -> list:
    """The overlay's content for :func:`geodata.evaluation.village_report`'s result."""
    if report is None:
        return [html.H3(pick("没有该村的考核数据", "No evaluation data for this village", lang))]
    v = report["village"]
    rows = []
    for g in report["groups"]:
        rows.append(html.Tr([
            html.Th(pick(g["name_zh"], g["name_en"], lang), className="bs-ve-gname"),
            html.Th(f"{g['weight']:g}%", className="bs-ve-num"),
            html.Th(pick("得分", "score", lang), colSpan=3, className="bs-ve-num bs-ve-dim"),
            html.Th(_fmt_score(g["score"]), className=f"bs-ve-score {dim_class(g['score'])}"),
        ], className="bs-ve-group", **{"data-group": g["code"]}))
        rows += [_indicator_row(item, lang) for item in g["indicators"]]
    head = html.Tr([html.Th(pick("指标", "Indicator", lang)), html.Th(pick("权重", "Weight", lang)),
                    html.Th(pick("实际值", "Value", lang)), html.Th(pick("目标值", "Target", lang)),
                    html.Th(""), html.Th(pick("得分", "Score", lang))], className="bs-ve-head")
    index = "—" if v.index is None else f"{v.index:.1f}"
    return [
        html.Div([
            html.H3([html.Span(v.name, id="bs-ve-village"), html.Span(f" · {v.town}", className="bs-ve-town")]),
            html.Div([html.Span(pick("综合指数", "Index", lang), className="bs-ve-dim"),
                      html.Span(index, className="bs-ve-index", id="bs-ve-index"),
                      html.Span(pick(f"第 {v.rank} 名 · {report['period']} · 数据完整度 {v.completeness * 100:.0f}%",
                                     f"rank {v.rank} · {report['period']} · completeness {v.completeness * 100:.0f}%",
                                     lang), className="bs-ve-dim")], className="bs-ve-summary"),
        ], className="bs-ve-top"),
        html.Div([html.Table([html.Thead(head), html.Tbody(rows)], className="bs-ve-table"),
                  _trend(report["trend"], lang)], className="bs-ve-main"),
        html.A(pick("在地图中查看本村 →", "Open the village on the map →", lang), href=f"/?village={v.village_id}",
               target="dvmap-village", className="bs-btn bs-ve-map", **{"data-village": v.village_id}),
    ]


def report_for(s, village_id: int, periods: int = TREND_PERIODS) -> dict | None:
    """The village's breakdown (current quarter) and trend over ``periods`` quarters, from the cache."""
    now = bs.db_now(s)
    results = [cached_ranking(s, p) for p in ev.recent_periods(now, periods)]
    return ev.village_report(results, int(village_id))


@callback(
    Output(VILLAGE_EVAL_BODY, "children"),
    Output(VILLAGE_EVAL, "className"),
    Input({"type": RANK_ROW, "village": ALL}, "n_clicks"),
    State("bs-lang", "data"),   # callbacks.bigscreen.LANG
    prevent_initial_call=True,
)
def open_village(clicks, lang):
    """A click on a ranking row: that village's card (the rows are re-rendered as the table pages)."""
    trig = ctx.triggered_id
    if not trig or not any(clicks or []) or not (ctx.triggered and ctx.triggered[0].get("value")):
        return no_update, no_update
    with session() as s:
        report = report_for(s, trig["village"])
    return village_card(report, lang), "bs-formula bs-village-eval bs-open"


clientside_callback(
    "function(n) { return n ? 'bs-formula bs-village-eval' : window.dash_clientside.no_update; }",
    Output(VILLAGE_EVAL, "className", allow_duplicate=True),
    Input(VILLAGE_EVAL_CLOSE, "n_clicks"),
    prevent_initial_call=True,
)


__all__ = ["cached_ranking", "report_for", "village_card", "dimension_heads", "dimension_cells", "dim_class",
           "RANK_ROW", "VILLAGE_EVAL", "VILLAGE_EVAL_BODY", "VILLAGE_EVAL_CLOSE"]
