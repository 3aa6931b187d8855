"""Analysis page, continued: what-if facilities, exports, hot spot → inspection tasks, windows, map framing.

* :func:`task_box` / :func:`create_tasks` — a grid manager or official turns a hot cell into
  one 排查任务 per grid (:func:`geodata.analysis.tasks.create_inspection_tasks`); read-only
  roles see the button disabled with the reason.
* :func:`window_preset` — fills the two date ranges (this month vs the same month last year …).
* :func:`frame_villages` — the map flies to the villages chosen in the selection.
* :func:`place_facility` — what-if facilities on the coverage map (the summary counts them).
* :func:`export` — the current result as GeoJSON, GeoPackage, Shapefile, CSV or HTML.
"""
from __future__ import annotations

import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path

import dash_leaflet as dl
import dash_mantine_components as dmc
from dash import ALL, Input, Output, State, callback, ctx, dcc, html, no_update

from callbacks import analysis_ids as aid
from callbacks.analysis import _error, _int_list, _summary, _user, load_result
from callbacks.errors import error_alert
from geodata.analysis.errors import AnalysisError
from geodata.analysis.result import AnalysisResult
from geodata.clock import display_zone
from geodata.i18n import pick


def task_box(role: str, cell: dict, lang: str):
    """The 排查任务 block of a hot cell: a button, or the button disabled with the reason."""
    from geodata.analysis.tasks import may_create_tasks

    t = lambda zh, en: pick(zh, en, lang)  # noqa: E731
    reason = None
    if not may_create_tasks(role):
        reason = t("您的角色只能查看;排查任务由网格管理员或村/乡镇工作人员创建。",
                   "Your role can only view; inspection tasks are created by grid managers or village/town staff.")
    elif not cell.get("subclass"):
        reason = t("该单元没有事件,请先选择一个事件小类。", "This cell has no events: choose an event subclass first.")
    elif not cell.get("run_id"):
        reason = t("请重新运行分析。", "Run the analysis again.")
    return html.Div([
        html.Div(t("热点 → 排查任务", "Hot spot → inspection tasks"), className="an-section"),
        html.Div(t("为该热点单元涉及的每个网格创建一件排查任务,派给网格员,并记录本次分析。",
                   "Creates one inspection task per grid of this hot cell, dispatched to its grid worker and "
                   "linked to this analysis run."), className="an-note"),
        dmc.Button(t("创建排查任务", "Create inspection tasks"), id=aid.TASK_BUTTON, size="xs", color="orange",
                   disabled=reason is not None),
        html.Div(reason, className="an-note", id="an-task-reason") if reason else None,
        html.Div(id=aid.TASK_MSG, role="status"),
    ], className="an-task-box")


@callback(
    Output(aid.TASK_MSG, "children"),
    Output(aid.TASK_BUTTON, "disabled"),
    Input(aid.TASK_BUTTON, "n_clicks"),
    State(aid.CELL, "data"),
    State(aid.LANG, "data"),
    prevent_initial_call=True,
)
def create_tasks(clicks, cell, lang):
    from callbacks.context import session
    from geodata.analysis.errors import AnalysisError
    from geodata.analysis.tasks import create_inspection_tasks
    from geodata.identity import Actor
    from geodata.workflow import PermissionDenied

    user = _user()
    if not clicks or not cell or user is None:
        return no_update, no_update
    t = lambda zh, en: pick(zh, en, lang)  # noqa: E731
    with session() as s:
        try:
            res = create_inspection_tasks(s, cell["run_id"], cell["unit"], cell["key"], cell["subclass"],
                                          Actor.for_user(user.user), label=cell.get("label", ""))
            s.commit()
        except (AnalysisError, PermissionDenied) as exc:
            s.rollback()
            return error_alert(exc, lang, "an-msg-error"), no_update
    lines = []
    if res.created:
        ids = "、".join(f"#{i} {g}" for i, g in res.created)
        lines.append(html.Div(t(f"已创建并派遣 {len(res.created)} 件排查任务:{ids}",
                                f"{len(res.created)} inspection tasks created and dispatched: {ids}"),
                              className="an-msg-ok"))
    if res.existing:
        ids = "、".join(f"#{i} {g}" for i, g in res.existing)
        lines.append(html.Div(t(f"本次分析已为这些网格创建过任务:{ids}", f"Already created from this run: {ids}"),
                              className="an-note"))
    for g, zh, en in res.failed[:10]:
        lines.append(html.Div(f"{g}: {pick(zh, en, lang)}", className="an-msg-error"))
    return lines, True


def preset_windows(preset: str, today: date) -> tuple[list[str], list[str]] | None:
    """The two windows (first and last day, ISO dates) of a quick choice; None for 'halves'."""
    month_start = today.replace(day=1)
    if preset == "month_last_year":
        try:
            last = month_start.replace(year=month_start.year - 1)
            end_last = today.replace(year=today.year - 1)
        except ValueError:  # 29 February
            last, end_last = month_start.replace(year=month_start.year - 1), today - timedelta(days=366)
        return [last.isoformat(), end_last.isoformat()], [month_start.isoformat(), today.isoformat()]
    if preset == "month_prev":
        prev_end = month_start - timedelta(days=1)
        prev_start = prev_end.replace(day=1)
        end = min(prev_end, prev_start + timedelta(days=(today - month_start).days))
        return [prev_start.isoformat(), end.isoformat()], [month_start.isoformat(), today.isoformat()]
    if preset == "30_30":
        return ([(today - timedelta(days=59)).isoformat(), (today - timedelta(days=30)).isoformat()],
                [(today - timedelta(days=29)).isoformat(), today.isoformat()])
    return None


@callback(
    Output(aid.CMP_BEFORE, "value"),
    Output(aid.CMP_AFTER, "value"),
    Output(aid.CMP_BEFORE, "disabled"),
    Output(aid.CMP_AFTER, "disabled"),
    Input(aid.CMP_PRESET, "value"),
)
def window_preset(preset):
    from geodata.clock import local_today

    wins = preset_windows(preset, local_today())
    if wins is None:
        return None, None, True, True
    return wins[0], wins[1], False, False


@callback(
    Output(aid.MAP, "viewport", allow_duplicate=True),
    Output(aid.CHOSEN, "data"),
    Input(aid.VILLAGES, "value"),
    prevent_initial_call=True,
)
def frame_villages(villages):
    """Fly to the chosen villages and outline them; with none chosen, back to the whole visible area."""
    import json

    from sqlalchemy import text

    from callbacks.context import session
    from geodata.queries import layers as q

    ids = []
    for v in villages or []:
        try:
            ids.append(int(v))
        except (TypeError, ValueError):
            continue
    with session() as s:
        rows = s.execute(text(
            "SELECT id, name, ST_AsGeoJSON(geom, 6) AS g, ST_YMin(geom) AS s, ST_XMin(geom) AS w,"
            " ST_YMax(geom) AS n, ST_XMax(geom) AS e FROM village WHERE id = ANY(:ids)"), {"ids": ids}).mappings().all()
        whole = None if rows else (q.scope_extent(s) or q.county_extent(s))
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": r["id"], "geometry": json.loads(r["g"]), "properties": {"name": r["name"]}}
        for r in rows]}
    if rows:
        bounds = [[min(r["s"] for r in rows), min(r["w"] for r in rows)],
                  [max(r["n"] for r in rows), max(r["e"] for r in rows)]]
    elif whole:
        bounds = whole
    else:
        return no_update, fc
    return {"bounds": bounds, "transition": "flyToBounds", "options": {"padding": [20, 20]}}, fc


# -- 5. what-if facility --------------------------------------------------------------------------
@callback(
    Output("an-map-wrap", "className"),
    Input(aid.WHATIF_ON, "checked"),
)
def whatif_mode(on):
    return "an-map-wrap an-whatif-mode" if on else "an-map-wrap"


def _latlng(click) -> tuple[float, float] | None:
    ll = (click or {}).get("latlng")
    if isinstance(ll, dict):
        return float(ll["lat"]), float(ll["lng"])
    if isinstance(ll, (list, tuple)) and len(ll) == 2:
        return float(ll[0]), float(ll[1])
    return None


@callback(
    Output(aid.WHATIF_LAYER, "children"),
    Output(aid.DETAIL, "children", allow_duplicate=True),
    Output(aid.WHATIF_POINTS, "data"),
    Output(aid.SUMMARY, "children", allow_duplicate=True),
    Input(aid.MAP, "clickData"),
    Input(aid.WHATIF_CLEAR, "n_clicks"),
    State(aid.WHATIF_ON, "checked"),
    State(aid.COV_TYPE, "value"), State(aid.COV_DIST, "value"), State(aid.COV_MEASURE, "value"),
    State(aid.VILLAGES, "value"), State(aid.WHATIF_POINTS, "data"), State(aid.RESULT_REF, "data"),
    State(aid.LANG, "data"),
    prevent_initial_call=True,
)
def place_facility(click, _clear, on, rtype, dist, measure, villages, points, ref, lang):
    from callbacks.context import session
    from geodata.analysis.coverage import what_if

    t = lambda zh, en: pick(zh, en, lang)  # noqa: E731
    if ctx.triggered_id == aid.WHATIF_CLEAR:
        result = load_result(ref)
        summary = _summary(result, lang) if result is not None else no_update
        return [], [html.Div(t("已清除假设设施。", "What-if facilities cleared."), className="an-note")], [], summary
    if not on or _user() is None:
        return no_update, no_update, no_update, no_update
    ll = _latlng(click)
    if ll is None:
        return no_update, no_update, no_update, no_update
    points = list(points or []) + [[ll[1], ll[0]]]
    try:
        with session() as s:
            gain = what_if(s, rtype, dist, points, measure=measure or "total", village_ids=_int_list(villages))
    except AnalysisError as exc:
        return no_update, [_error(lang, exc)], no_update, no_update
    d = float(gain["distance_m"])
    layer = []
    for lon, lat in points:
        layer.append(dl.Circle(center=[lat, lon], radius=d, color="#7c3aed", weight=2, dashArray="6 4",
                               fillOpacity=0.08))
        layer.append(dl.CircleMarker(center=[lat, lon], radius=7, color="#ffffff", weight=2, fillColor="#7c3aed",
                                     fillOpacity=1.0, children=dl.Tooltip(t("假设设施", "What-if facility"))))
    who = t("60岁以上老人", "people aged 60+") if gain["measure"] == "age_60_plus" else t("人", "people")
    pct = lambda v: "—" if v is None else f"{100 * v:.1f} %"  # noqa: E731
    box = html.Div([
        html.Div(t("假设设施效果(未写入数据库)", "What-if facilities (nothing saved)"), className="an-section"),
        html.Div([html.B(f"+{gain['gain']:,} "), who, f" (+{pct(gain['gain_share'])})"], id="an-whatif-gain",
                 style={"fontSize": "18px", "color": "#5b21b6"}),
        html.Div(t(f"覆盖 {gain['before']:,} → {gain['after']:,}(共 {gain['people']:,});覆盖率 {pct(gain['share_before'])} → {pct(gain['share_after'])}",
                   f"Covered {gain['before']:,} → {gain['after']:,} of {gain['people']:,}; share "
                   f"{pct(gain['share_before'])} → {pct(gain['share_after'])}"), className="an-note"),
        html.Div(t(f"假设设施 {len(points)} 处,服务半径 {d:,.0f} 米。", f"{len(points)} hypothetical facilities, "
                   f"{d:,.0f} m service distance."), className="an-note"),
        html.Ul([html.Li(f"{g['name']}({g['village']}) +{g['gain']:,}") for g in gain["top"]]),
    ], className="an-whatif-box")
    return layer, [box], points, _whatif_summary(load_result(ref), gain, villages, lang)


def _whatif_summary(result: AnalysisResult | None, gain: dict, villages, lang: str):
    """The coverage summary with the what-if facilities counted in, when it is the same question."""
    if result is None or result.kind != "coverage":
        return no_update
    p = result.params
    same = (p.get("resource_type") == gain["resource_type"] and float(p.get("distance_m") or 0) == gain["distance_m"]
            and p.get("measure") == gain["measure"] and sorted(p.get("village_ids") or []) == sorted(_int_list(villages)))
    if not same:
        return no_update
    people = gain["people"]
    result.summary.update(hypothetical=len(gain["points"]), covered=gain["after"], uncovered=people - gain["after"],
                          share=gain["share_after"])
    result.notes = list(result.notes) + [(f"含 {len(gain['points'])} 处假设设施(未写入数据库)。",
                                          f"Includes {len(gain['points'])} what-if facilities (nothing saved).")]
    return _summary(result, lang)


# -- 6. exports -------------------------------------------------------------------------------------
@callback(
    Output(aid.DOWNLOAD, "data"),
    Input({"type": "an-export", "fmt": ALL}, "n_clicks"),
    State(aid.RESULT_REF, "data"),
    State(aid.LANG, "data"),
    prevent_initial_call=True,
)
def export(clicks, ref, lang):
    from geodata.analysis.export import FORMATS, export_result

    trig = ctx.triggered_id
    if not isinstance(trig, dict) or not any(c for c in clicks or []):
        return no_update
    result = load_result(ref)
    if result is None:
        return no_update
    fmt = trig["fmt"]
    stamp = datetime.now(display_zone()).strftime("%Y%m%d-%H%M")
    with tempfile.TemporaryDirectory(prefix="dvmap-analysis-") as tmp:
        path = export_result(result, fmt, Path(tmp) / f"dvmap-{result.kind}-{stamp}{FORMATS[fmt]}")
        return dcc.send_bytes(path.read_bytes(), path.name)
