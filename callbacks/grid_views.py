"""What the grid editor shows: the grid table, the change history, check notes, the confirm dialogue.

Pure rendering for callbacks/grids.py: values in, Dash components out; no session, no service calls.
"""
from __future__ import annotations

from dash import html

from callbacks import grid_ids as ids
from geodata import grids as G
from geodata.clock import fmt_local
from geodata.grids.population import source_label
from geodata.i18n import pick
from geodata.workflow import STATE_LABELS, State as EventState

EMPTY = {"type": "FeatureCollection", "features": []}


def fmt_m2(v) -> str:
    """An area in m², whole numbers with thousands separators; a dash when unknown."""
    return "—" if v is None else f"{float(v):,.0f}"


def grid_table(grids: dict, lang: str):
    """The village's grids as a table; each row selects its grid when clicked."""
    if not grids["features"]:
        return html.Div(pick("本村还没有网格。", "No grids in this village yet.", lang), className="panel-hint")
    head = html.Tr([html.Th(pick("编号", "Code", lang)), html.Th(pick("网格员", "Worker", lang)),
                    html.Th(pick("人口", "People", lang)), html.Th(pick("未结事件", "Open events", lang)),
                    html.Th(pick("版本", "Ver.", lang))])
    rows = []
    for f in grids["features"]:
        p = f["properties"]
        rows.append(html.Tr(
            [html.Td([html.Span(p["code"][:12], className="ge-code-prefix"), html.B(p["code"][12:])],
                     title=p["name"]),
             html.Td(p.get("worker") or "—"),
             html.Td("—" if p.get("population") is None else f"{p['population']:,}"),
             html.Td(str(p.get("open_events", 0)), className="ge-events" if p.get("open_events") else None),
             html.Td(str(p["version"]))],
            id=ids.row(p["uid"]), n_clicks=0, className="ge-grid-row", **{"data-code": p["code"]},
        ))
    return html.Table([html.Thead(head), html.Tbody(rows)], className="ge-table", id="grid-table-el")


def history_list(history: list[dict], lang: str):
    """The village's changes as a timeline, newest first, undone ones marked."""
    if not history:
        return html.Div(pick("暂无修改记录。", "No changes yet.", lang), className="panel-hint")
    items = []
    for h in history:
        when = fmt_local(h["at"], "%m-%d %H:%M")
        text = pick(h["summary_zh"], h["summary_en"], lang)
        items.append(html.Li(
            [html.Span(when, className="tl-time"), html.B(h["actor"]), " ",
             html.Span(text, className="tl-note"),
             html.Span(pick("(已撤销)", " (undone)", lang), className="ge-undone") if h["undone"] else None],
            className="ge-history-item", **{"data-action": h["action"]},
        ))
    return html.Ul(items, className="timeline ge-history")


def feature_collection(geometry) -> dict:
    """``geometry`` as a one-feature FeatureCollection (empty when None)."""
    if not geometry:
        return EMPTY
    return {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": geometry, "properties": {}}]}


def overlap_fc(geometry) -> dict:
    """The overlap polygons plus a ring marker on each: a sliver of a few m² is invisible at village zoom."""
    out = feature_collection(geometry)
    if geometry:
        from shapely.geometry import mapping, shape

        for part in getattr(shape(geometry), "geoms", [shape(geometry)]):
            p = part.representative_point()
            out["features"].append({"type": "Feature", "geometry": mapping(p), "properties": {"marker": True}})
    return out


def note(kind: str, text: str, code: str = ""):
    """One line of the check list (``kind``: ok, error, warning)."""
    return html.Li(text, className=f"ge-check ge-{kind}", **{"data-code": code})


def msg(kind: str, text: str):
    """The message bar's content (an alert when ``kind`` is error)."""
    return html.Div(text, className=f"ge-msg ge-msg-{kind}", role="alert" if kind == "error" else None)


def confirm_body(r: G.ChangeResult, lang: str):
    """The confirm dialogue: the change's summary and the open events it would re-route."""
    parts = [html.P(r.summary(lang), className="ge-confirm-summary", id="grid-confirm-summary")]
    if r.action == "renumber":
        rows = [html.Tr([html.Td(p["old"]), html.Td("→"), html.Td(p["new"])]) for p in r.detail.get("renumbered", [])]
        parts.append(html.Table(html.Tbody(rows), className="ge-table"))
    n = len(r.rerouted)
    if n:
        parts.append(html.H4(pick(f"将改派以下 {n} 件未结事件(每件记入事件历史):",
                                  f"These {n} open event(s) will be re-routed (each with a history entry):", lang)))
        head = html.Tr([html.Th(pick("事件", "Event", lang)), html.Th(pick("类别", "Category", lang)),
                        html.Th(pick("状态", "State", lang)), html.Th(pick("原网格 → 新网格", "Grid: from → to", lang)),
                        html.Th(pick("原网格员 → 新网格员", "Worker: from → to", lang))])
        rows = []
        for e in r.rerouted:
            state = pick(*STATE_LABELS[EventState(e["state"])], lang)
            rows.append(html.Tr([
                html.Td(f"#{e['id']}"), html.Td(pick(e["subclass_zh"], e["subclass_en"], lang)), html.Td(state),
                html.Td(f"{e['from_grid_code'] or pick('无', 'none', lang)} → "
                        f"{e['to_grid_code'] or pick('村待办', 'village queue', lang)}"),
                html.Td(f"{e['from_worker'] or '—'} → {e['to_worker'] or '—'}"),
            ], className="ge-reroute-row"))
        parts.append(html.Table([html.Thead(head), html.Tbody(rows)], className="ge-table ge-reroute",
                                id="grid-reroute-table"))
    else:
        parts.append(html.P(pick("没有未结事件需要改派。", "No open events need re-routing.", lang),
                            className="panel-hint", id="grid-reroute-none"))
    return parts


def village_stats(info: dict, grids: dict, gaps: dict, lang: str):
    """The village's name, grid count, area and uncovered area (flagged when above the noise floor)."""
    return html.Div(
        [
            html.Div([html.B(info["name"]), f" · {info['town']} · {info['code']}"]),
            html.Div(pick(f"网格 {len(grids['features'])} 个 · 面积 {info['area_m2'] / 1e6:.2f} 平方公里",
                          f"{len(grids['features'])} grids · {info['area_m2'] / 1e6:.2f} km²", lang)),
            html.Div(
                pick(f"未覆盖 {fmt_m2(gaps['area_m2'])} 平方米({gaps['pct']:.2f}%)",
                     f"Uncovered {fmt_m2(gaps['area_m2'])} m² ({gaps['pct']:.2f}%)", lang),
                className="ge-gap-figure" + (" ge-has-gap" if gaps["area_m2"] > G.AREA_EPSILON_M2 else ""),
                id="grid-gap-figure",
            ),
        ]
    )


def selected_panel(p: dict, lang: str):
    """The facts of the selected grid (its feature's properties)."""
    rows = [
        (pick("编号", "Code", lang), p["code"]),
        (pick("名称", "Name", lang), p["name"]),
        (pick("网格员", "Worker", lang), p.get("worker") or "—"),
        (pick("人口", "Population", lang), _population(p, lang)),
        (pick("未结事件", "Open events", lang), str(p.get("open_events", 0))),
        (pick("面积", "Area", lang), f"{p['area_m2'] / 1e6:.3f} " + pick("平方公里", "km²", lang)),
        (pick("版本", "Version", lang), str(p["version"])),
    ]
    return html.Div([
        html.Div([html.Span(pick("网格", "Grid", lang), className="panel-kind"),
                  html.H3(p["code"], className="panel-title")], className="panel-header"),
        html.Table(html.Tbody([html.Tr([html.Th(k), html.Td(v)]) for k, v in rows]), className="facts",
                   id="grid-selected-facts"),
    ])


def _population(p: dict, lang: str):
    """The grid's people and where the figure comes from ("来源: 人口点位 2026-12-05")."""
    if p.get("population") is None:
        return "—"
    return [f"{p['population']:,}",
            html.Div(source_label(p.get("population_source"), p.get("population_as_of"), lang),
                     className="ge-pop-source", id="grid-pop-source")]
