"""Callbacks of the analysis page (/analysis).

Flow: a Run button → :func:`prepare_job` (foreground) validates the request, takes the
user and scope from the server-side session and files a job spec under a random id in
a server-side cache → :func:`run_job` (a Dash background callback on a
``DiskcacheManager``, so the UI never freezes; progress bar, cancel) runs the analysis
in its own process and keeps the result in the cache → :func:`render_result` draws it.
Exports, cell clicks and bulk actions read the result from the cache by id, and only
for the user who ran it. The cache lives in the data folder, so every gunicorn worker
sees every job and result.
"""
from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dash_mantine_components as dmc
from dash import ALL, DiskcacheManager, Input, Output, State, callback, ctx, html, no_update

from callbacks import analysis_ids as aid
from callbacks.errors import error_alert
from geodata.analysis.errors import AnalysisError
from geodata.analysis.result import AnalysisResult
from geodata.analysis.selection import EventFilter
from geodata.clock import display_zone
from geodata.config import get_settings
from geodata.i18n import BilingualError, pick

log = logging.getLogger(__name__)
RESULT_TTL_S = 6 * 3600
_CACHES: dict = {}


def _cache(name: str):
    """A diskcache in the data folder, one per process (created lazily: forks reopen it)."""
    import diskcache

    key = (name, __import__("os").getpid())
    if key not in _CACHES:
        folder = Path(get_settings().data_dir) / name
        folder.mkdir(parents=True, exist_ok=True)
        _CACHES[key] = diskcache.Cache(str(folder))
    return _CACHES[key]


def _manager() -> DiskcacheManager:
    import diskcache

    folder = Path(get_settings().data_dir) / "dash-background"
    folder.mkdir(parents=True, exist_ok=True)
    return DiskcacheManager(diskcache.Cache(str(folder)), expire=3600)


MANAGER = _manager()


# -- who is asking (server side only) ----------------------------------------------------------
def _user():
    from flask_login import current_user

    if not current_user or not current_user.is_authenticated:
        return None
    return current_user


def _scope_dict(scope) -> dict:
    return {"village_ids": None if scope.village_ids is None else sorted(scope.village_ids), "role": scope.role,
            "user_id": scope.user_id, "grid_uids": None if scope.grid_uids is None else sorted(scope.grid_uids)}


def _scope_from(d: dict):
    from geodata.db import Scope

    return Scope(None if d["village_ids"] is None else frozenset(d["village_ids"]), d["role"], d["user_id"],
                 None if d["grid_uids"] is None else frozenset(d["grid_uids"]))


def _error(lang: str, exc: BaseException | str):
    return error_alert(exc, lang, "an-msg-error")


def _ok(text: str):
    return html.Div(text, className="an-msg-ok")


# -- 1. run button → job spec ---------------------------------------------------------------------
def _int_list(values) -> list[int]:
    out = []
    for v in values or []:
        try:
            out.append(int(v))
        except (TypeError, ValueError):
            continue
    return out


@callback(
    Output(aid.JOB, "data"),
    Output(aid.MESSAGE, "children"),
    Input({"type": "an-run", "kind": ALL}, "n_clicks"),
    State(aid.CATEGORIES, "value"), State(aid.DAYS, "value"), State(aid.VILLAGES, "value"),
    *[State(i, "checked" if i.endswith("fdr") else "value") for i in aid.HOT],
    State(aid.CMP_RES, "value"), State(aid.CMP_PRESET, "value"), State(aid.CMP_BEFORE, "value"),
    State(aid.CMP_AFTER, "value"), State(aid.HEAT_RES, "value"), State(aid.EPS, "value"), State(aid.MINPTS, "value"),
    State(aid.COV_TYPE, "value"), State(aid.COV_DIST, "value"), State(aid.COV_MEASURE, "value"),
    State(aid.COV_LEVEL, "value"), State(aid.WHATIF_POINTS, "data"),
    State(aid.RASTER, "value"), State(aid.ZONAL_LEVEL, "value"), State(aid.ZONAL_STAT, "value"),
    State(aid.RASTER_SHOW, "checked"), State(aid.LANG, "data"),
    prevent_initial_call=True,
)
def prepare_job(_clicks, cats, days, villages, unit, res, weights, band, transform, perms, fdr, cmp_res, cmp_preset,
                cmp_before, cmp_after, heat_res,
                eps, minpts, cov_type, cov_dist, cov_measure, cov_level, whatif_points, raster, zlevel, zstat,
                raster_show, lang):
    trig = ctx.triggered_id
    if not isinstance(trig, dict) or not any(ctx.triggered[i]["value"] for i in range(len(ctx.triggered))):
        return no_update, no_update
    user = _user()
    if user is None:
        return no_update, _error(lang, pick("请先登录。", "Please sign in.", lang))
    kind = trig["kind"]
    try:
        days_i = int(days)
        if days_i < 1:
            raise ValueError
    except (TypeError, ValueError):
        return no_update, _error(lang, pick("“最近天数”须为正整数。", "'Last days' must be a positive whole number.",
                                            lang))
    flt = {"categories": [str(c) for c in (cats or [])], "days": days_i, "village_ids": _int_list(villages)}
    params = {}
    if kind == "hotspots":
        params = {"unit": unit, "resolution": res, "weights": weights, "band_m": band, "transform": transform,
                  "permutations": perms, "fdr": bool(fdr)}
    elif kind == "compare":
        params = {"resolution": cmp_res, "preset": cmp_preset, "before": list(cmp_before or []),
                  "after": list(cmp_after or [])}
    elif kind == "heat":
        params = {"resolution": heat_res}
    elif kind == "clusters":
        params = {"eps_m": eps, "min_points": minpts}
    elif kind == "coverage":
        params = {"resource_type": cov_type, "distance_m": cov_dist, "measure": cov_measure, "level": cov_level,
                  "hypothetical": whatif_points or []}
    elif kind == "zonal":
        if not raster:
            return no_update, _error(lang, pick("请先选择栅格数据(可运行 dvmap analyze demo-raster 生成演示栅格)。",
                                                "Choose a raster first (dvmap analyze demo-raster makes the demo one).",
                                                lang))
        params = {"raster_id": raster, "level": zlevel, "color_by": zstat, "show": bool(raster_show)}
    job_id = secrets.token_urlsafe(18)
    spec = {"kind": kind, "filter": flt, "params": params, "lang": lang, "scope": _scope_dict(user.scope),
            "user_id": user.user.id, "username": user.user.username,
            "database_url": _database_url(), "created": datetime.now(timezone.utc).isoformat()}
    _cache("analysis-cache").set(f"job:{job_id}", spec, expire=3600)
    return {"job": job_id, "kind": kind}, html.Div(pick("已提交,正在计算……", "Submitted, computing…", lang),
                                                  className="an-note")


def _database_url() -> str:
    from flask import current_app

    return current_app.extensions["dvmap"].url


# -- 2. the background job ----------------------------------------------------------------------
def _flt(spec: dict) -> EventFilter:
    f = spec["filter"]
    return EventFilter.last_days(f["days"], f["categories"], f["village_ids"])


def execute(spec: dict, progress=None) -> AnalysisResult:
    """Run one job spec (also used by tests and the CLI-like tools); returns the result."""
    from sqlalchemy.pool import NullPool

    from geodata.analysis import clusters, coverage, hotspots, raster
    from geodata.db import Database

    report = progress or (lambda *a: None)
    # A fresh engine: a forked process must never reuse its parent's pooled connections.
    database = Database(spec["database_url"], poolclass=NullPool)
    try:
        with database.session(_scope_from(spec["scope"])) as s:
            kind, p = spec["kind"], spec["params"]
            if kind == "hotspots":
                return hotspots.hotspots(s, _flt(spec), unit=p["unit"], resolution=_int(p["resolution"], 8),
                                         weights=p["weights"], band_m=p["band_m"], transform=p["transform"],
                                         permutations=_int(p["permutations"], 999), fdr=p["fdr"], progress=report)
            if kind == "compare":
                before, after = compare_windows_of(spec)
                return hotspots.compare_windows(s, _flt(spec), before, after,
                                                resolution=_int(p["resolution"], 8), progress=report)
            if kind == "heat":
                return hotspots.heat(s, _flt(spec), resolution=_int(p["resolution"], 8))
            if kind == "clusters":
                return clusters.event_clusters(s, _flt(spec), p["eps_m"], p["min_points"])
            if kind == "coverage":
                return coverage.coverage(s, p["resource_type"], p["distance_m"], measure=p["measure"],
                                         level=p["level"], village_ids=spec["filter"]["village_ids"],
                                         hypothetical=p.get("hypothetical") or (), progress=report)
            if kind == "zonal":
                res = raster.zonal_stats(s, _int(p["raster_id"], 0), level=p["level"], color_by=p["color_by"],
                                         village_ids=spec["filter"]["village_ids"], computed_by=spec["username"],
                                         progress=report)
                s.commit()
                if p.get("show"):
                    _meta, path = raster.raster_path(s, _int(p["raster_id"], 0))
                    ov = raster.render_overlay(path)
                    res.overlay = {"url": ov["url"], "bounds": ov["bounds"]}
                    res.legend = res.legend + [e for e in ov["legend"]]
                return res
            raise AnalysisError("bad_kind", "未知的分析。", "Unknown analysis.")
    finally:
        database.engine.dispose()


def compare_windows_of(spec: dict) -> tuple[tuple[datetime, datetime], tuple[datetime, datetime]]:
    """The two ``[start, end)`` windows of a compare job: the chosen dates (end day included), or halves."""
    from datetime import date

    from geodata.clock import day_start

    p = spec["params"]
    if p.get("preset") != "halves" and len(p.get("before") or []) == 2 and len(p.get("after") or []) == 2:
        try:
            (b0, b1), (a0, a1) = ([date.fromisoformat(str(d)[:10]) for d in w] for w in (p["before"], p["after"]))
        except (TypeError, ValueError):
            raise AnalysisError("bad_window", "日期无效。", "Invalid date.") from None
        return ((day_start(min(b0, b1)), day_start(max(b0, b1) + timedelta(days=1))),
                (day_start(min(a0, a1)), day_start(max(a0, a1) + timedelta(days=1))))
    end = datetime.now(display_zone())
    days = spec["filter"]["days"]
    mid = end - timedelta(days=days / 2)
    return (end - timedelta(days=days), mid), (mid, end)


def _int(v, default: int) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return default


@callback(
    Output(aid.RESULT_REF, "data"),
    Output(aid.MESSAGE, "children", allow_duplicate=True),
    Input(aid.JOB, "data"),
    background=True,
    manager=MANAGER,
    progress=[Output(aid.PROGRESS, "value"), Output(aid.PROGRESS_TEXT, "children")],
    progress_default=[0, ""],
    running=[(Output(aid.CANCEL, "disabled"), False, True),
             (Output({"type": "an-run", "kind": ALL}, "loading"), True, False)],
    cancel=[Input(aid.CANCEL, "n_clicks")],
    prevent_initial_call=True,
)
def run_job(set_progress, job):
    if not job or not job.get("job"):
        return no_update, no_update
    cache = _cache("analysis-cache")
    spec = cache.get(f"job:{job['job']}")
    lang = (spec or {}).get("lang", "zh")
    if spec is None:
        return no_update, _error(lang, pick("任务已过期,请重新运行。", "The job expired; run it again.", lang))

    def report(fraction, zh, en):
        set_progress([int(max(0.0, min(1.0, fraction)) * 100), pick(zh, en, lang)])

    try:
        result = execute(spec, report)
    except AnalysisError as exc:
        set_progress([0, ""])
        return None, _error(lang, exc)
    except BilingualError as exc:
        set_progress([0, ""])
        return None, _error(lang, exc)
    except Exception:  # an unexpected failure is logged, the person gets one line
        log.exception("analysis job %s failed", spec.get("kind"))
        set_progress([0, ""])
        return None, _error(lang, pick("分析失败(内部错误),已记录日志。", "The analysis failed (internal error); "
                                                                       "it has been logged.", lang))
    rid = secrets.token_urlsafe(18)
    result.params["run_id"] = rid  # tasks created from this result name the run they came from
    cache.set(f"result:{rid}", {"user_id": spec["user_id"], "result": result.to_dict()}, expire=RESULT_TTL_S)
    cache.delete(f"job:{job['job']}")
    set_progress([100, pick("完成", "Done", lang)])
    return {"id": rid, "kind": result.kind}, _ok(pick(f"完成:{result.title_zh}", f"Done: {result.title_en}", lang))


def load_result(ref) -> AnalysisResult | None:
    """The cached result ``ref`` points at, if it belongs to the current user."""
    if not ref or not ref.get("id"):
        return None
    user = _user()
    entry = _cache("analysis-cache").get(f"result:{ref['id']}")
    if entry is None or user is None or entry["user_id"] != user.user.id:
        return None
    return AnalysisResult.from_dict(entry["result"])


# -- 3. drawing a result --------------------------------------------------------------------------
def _tip(kind: str, p: dict, lang: str) -> str:
    t = lambda zh, en: pick(zh, en, lang)  # noqa: E731
    if kind == "hotspots":
        return (f"{p.get('label', '')}\n{t('事件', 'Events')} {p.get('count')} · z = {p.get('z')} · p = {p.get('p')}\n"
                f"{pick(p.get('cls_zh', ''), p.get('cls_en', ''), lang)}")
    if kind == "compare":
        return (f"{pick(p.get('change_zh', ''), p.get('change_en', ''), lang)}\n"
                f"{t('前', 'Before')} {p.get('count_before')} (z {p.get('z_before')}) → "
                f"{t('后', 'After')} {p.get('count_after')} (z {p.get('z_after')})")
    if kind == "heat":
        return f"{t('事件', 'Events')} {p.get('count')}"
    if kind == "clusters":
        return f"{t('聚类', 'Cluster')} #{p.get('rank')}\n{t('事件', 'Events')} {p.get('count')} · {p.get('area_km2')} km²"
    if kind == "coverage":
        if "uncovered" in p and "share" not in p:
            return f"{t('服务盲区', 'Service desert')} · {p.get('name', '')}\n{t('未覆盖', 'Uncovered')} {p.get('uncovered')} {t('人', 'people')}"
        return (f"{p.get('name', '')}\n{t('覆盖', 'Covered')} {p.get('covered')} / {p.get('people')} "
                f"({round(100 * (p.get('share') or 0))} %)")
    if kind == "zonal":
        return f"{p.get('name', '')}\nsum {p.get('sum')} · mean {p.get('mean')} · max {p.get('max')}"
    return str(p.get("label", ""))


def _with_tips(features: list[dict], kind: str, lang: str) -> dict:
    out = []
    for f in features:
        props = dict(f["properties"])
        props["_tip"] = _tip(kind, props, lang)
        out.append({**f, "properties": props})
    return {"type": "FeatureCollection", "features": out}


def _legend(result: AnalysisResult, lang: str):
    items = []
    for e in result.legend:
        cls = "an-swatch line" if e.shape == "line" else "an-swatch"
        style = {"background": e.color, "color": e.color}
        items.append(html.Div([html.Span(className=cls, style=style), html.Span(e.label(lang))],
                              className="an-legend-item"))
    if result.kind == "hotspots" and result.notes:  # the weights, stated where the map is read
        items.append(html.Div(pick(*result.notes[0], lang), className="an-note", id="an-legend-weights"))
    return [html.H5(result.title(lang)), *items]


def _summary(result: AnalysisResult, lang: str):
    t = lambda zh, en: pick(zh, en, lang)  # noqa: E731
    s = result.summary
    rows = []
    labels = {
        "events": t("事件数", "Events"), "cells": t("单元数", "Cells"), "cells_with_events": t("有事件的单元", "Cells with events"),
        "hot": t("热点单元", "Hot cells"), "cold": t("冷点单元", "Cold cells"), "clusters": t("聚类数", "Clusters"),
        "clustered": t("聚类内事件", "Clustered events"), "noise": t("噪声点", "Noise"),
        "people": t("人数", "People"), "covered": t("已覆盖", "Covered"), "uncovered": t("未覆盖", "Uncovered"),
        "share": t("覆盖率", "Share covered"), "facilities": t("设施数", "Facilities"),
        "hypothetical": t("假设设施", "What-if facilities"), "desert_areas": t("盲区块数", "Desert areas"),
        "zones": t("统计单元", "Zones"), "total_sum": t("总和", "Total sum"), "max": t("最大值", "Maximum"),
        "new": t("新出现", "New"), "intensifying": t("加剧", "Intensifying"), "persistent": t("持续", "Persistent"),
        "fading": t("消退", "Fading"), "events_before": t("前一时段事件", "Events, earlier"),
        "events_after": t("后一时段事件", "Events, later"), "more": t("事件增多的单元", "Cells with more events"),
        "fewer": t("事件减少的单元", "Cells with fewer events"),
    }
    for key, label in labels.items():
        if key in s and not isinstance(s[key], (dict, list)):
            v = s[key]
            if key == "share" and v is not None:
                v = f"{100 * v:.1f} %"
            elif isinstance(v, (int, float)):
                v = f"{v:,}"
            rows.append(html.Tr([html.Td(label), html.Td(html.B(v))]))
    notes = [html.Div(pick(zh, en, lang), className="an-note") for zh, en in result.notes]
    return [html.Div(result.title(lang), className="an-section"), html.Table(html.Tbody(rows)),
            *_village_table(s.get("by_village"), lang), *notes]


def _village_table(rows, lang: str, limit: int = 8):
    """Events per village in the two windows of a comparison, biggest change first."""
    if not rows:
        return []
    t = lambda zh, en: pick(zh, en, lang)  # noqa: E731
    head = html.Tr([html.Th(t("行政村", "Village")), html.Th(t("前", "Before")), html.Th(t("后", "After")),
                    html.Th(t("增减", "Change"))])
    body = [html.Tr([html.Td(r["village"]), html.Td(f"{r['before']:,}"), html.Td(f"{r['after']:,}"),
                     html.Td(f"{r['delta']:+,}")]) for r in rows[:limit]]
    return [html.Div(t("各村事件数", "Events per village"), className="an-section"),
            html.Table([html.Thead(head), html.Tbody(body)], className="an-village-table", id="an-village-table")]


@callback(
    Output(aid.RESULT, "data"),
    Output(aid.EXTRA, "data"),
    Output(aid.RASTER_LAYER, "url"),
    Output(aid.RASTER_LAYER, "bounds"),
    Output(aid.RASTER_LAYER, "opacity"),
    Output(aid.MAP_LEGEND, "children"),
    Output(aid.SUMMARY, "children"),
    Output({"type": "an-export", "fmt": ALL}, "disabled"),
    Output(aid.MAP, "viewport", allow_duplicate=True),
    Output(aid.DETAIL, "children", allow_duplicate=True),
    Input(aid.RESULT_REF, "data"),
    State(aid.LANG, "data"),
    prevent_initial_call=True,
)
def render_result(ref, lang):
    n_exports = len(ctx.outputs_list[-3])
    empty = {"type": "FeatureCollection", "features": []}
    result = load_result(ref)
    if result is None:
        return empty, empty, no_update, no_update, 0.0, [], [], [True] * n_exports, no_update, no_update
    extra = _with_tips(result.points, result.kind, lang) if result.kind == "coverage" else empty
    url, bounds, opacity = no_update, no_update, 0.0
    if result.overlay:
        url, bounds, opacity = result.overlay["url"], result.overlay["bounds"], 0.85
    return (_with_tips(result.features, result.kind, lang), extra, url, bounds, opacity, _legend(result, lang),
            _summary(result, lang), [False] * n_exports, result_viewport(result), detail_intro(lang))


def detail_intro(lang: str):
    """The details panel before a cell is clicked (a new result clears the last run's cell)."""
    t = lambda zh, en: pick(zh, en, lang)  # noqa: E731
    return [html.Div(t("详情", "Details"), className="an-section"),
            html.Div(t("点击地图上的热点单元或聚类查看其事件;网格管理员和村/乡镇工作人员可为热点创建排查任务。",
                       "Click a hot cell or a cluster to list its events; grid managers and village/town staff can "
                       "turn a hot spot into inspection tasks."), className="an-note")]


def result_viewport(result: AnalysisResult):
    """Fit the map to what the result draws (its features, or the raster), or leave it."""
    import shapely
    from shapely.geometry import shape

    geoms = [shape(f["geometry"]) for f in result.features + result.points if f.get("geometry")]
    if geoms:
        w, s_, e, n = shapely.total_bounds(geoms)
        bounds = [[float(s_), float(w)], [float(n), float(e)]]
    elif result.overlay:
        bounds = result.overlay["bounds"]
    else:
        return no_update
    return {"bounds": bounds, "transition": "flyToBounds", "options": {"padding": [16, 16]}}


# -- 4. a cell or cluster: its events, bulk actions ---------------------------------------------------
def _may_bulk(role: str) -> list[str]:
    from geodata.analysis.actions import BULK_ACTIONS
    from geodata.workflow import may

    return [a.value for a in BULK_ACTIONS if may(role, a)]


def _event_list(events: list[dict], lang: str, role: str):
    from geodata.workflow import STATE_LABELS, State as St

    t = lambda zh, en: pick(zh, en, lang)  # noqa: E731
    options = []
    for e in events:
        st = STATE_LABELS.get(St(e["state"]), (e["state"], e["state"]))
        when = e["reported_at"].astimezone(display_zone()).strftime("%Y-%m-%d")
        label = f"#{e['id']} {pick(e['subclass_zh'], e['subclass_en'], lang)} · {pick(*st, lang)} · {when} · {e['village'] or ''}"
        options.append(dmc.Checkbox(value=str(e["id"]), label=label, size="xs", mt=3))
    actions = _may_bulk(role)
    buttons = []
    labels = {"accept": t("批量立案", "Accept selected"), "dispatch": t("批量派遣", "Dispatch selected")}
    for a in ("accept", "dispatch"):
        if a in actions:
            buttons.append(dmc.Button(labels[a], id=aid.bulk(a), size="xs", mr=6))
    hint = [] if actions else [html.Div(t("您的角色只能查看事件;立案、派遣由村/乡镇工作人员操作。",
                                          "Your role can view events; accepting and dispatching is done by "
                                          "village/town staff."), className="an-note")]
    return [
        html.Div(t(f"共 {len(events)} 件事件", f"{len(events)} events"), className="an-section"),
        dmc.CheckboxGroup(id=aid.EVENT_CHECKS, value=[str(e["id"]) for e in events],
                          children=html.Div(options, className="an-events")),
        html.Div(buttons, style={"marginTop": "8px"}), *hint,
        html.Div(id=aid.BULK_MSG),
    ]


@callback(
    Output(aid.DETAIL, "children"),
    Output(aid.EVENT_ITEMS, "data"),
    Output(aid.RESULT, "hideout"),
    Output(aid.CELL, "data"),
    Input(aid.RESULT, "clickData"),
    State(aid.RESULT_REF, "data"),
    State(aid.LANG, "data"),
    prevent_initial_call=True,
)
def open_cell(feature, ref, lang):
    from callbacks.context import session
    from geodata.analysis.hotspots import events_by_ids, events_in_cell

    result = load_result(ref)
    user = _user()
    if result is None or not feature or user is None:
        return no_update, no_update, no_update, no_update
    props = feature.get("properties") or {}
    key = props.get("_key")
    t = lambda zh, en: pick(zh, en, lang)  # noqa: E731
    head = [html.Div(t("详情", "Details"), className="an-section"),
            html.Div(_tip(result.kind, props, lang).replace("\n", " · "), className="an-note")]
    try:
        with session() as s:
            if result.kind in ("hotspots", "compare", "heat"):
                p = result.params
                unit = p.get("unit", "h3")
                flt = EventFilter(tuple(p.get("categories") or ()),
                                  datetime.fromisoformat(p["start"]) if p.get("start") else None,
                                  datetime.fromisoformat(p["end"]) if p.get("end") else None,
                                  tuple(p.get("village_ids") or ()))
                if result.kind == "compare":
                    flt = EventFilter(flt.categories, datetime.fromisoformat(p["before"][0]),
                                      datetime.fromisoformat(p["after"][1]), flt.village_ids)
                events = events_in_cell(s, flt, unit, key)
            elif result.kind == "clusters":
                events = events_by_ids(s, props.get("event_ids") or [])
            else:
                return head, [], {"selected": key}, None
    except AnalysisError as exc:
        return head + [_error(lang, exc)], [], {"selected": key}, None
    items = [[e["id"], e["version"]] for e in events]
    cell, tasks = None, []
    if result.kind == "hotspots" and int(props.get("cls") or 0) > 0:
        from callbacks.analysis_actions import task_box
        from geodata.analysis.tasks import dominant_subclass

        cats = [c for c in result.params.get("categories") or () if len(c) == 4]
        cell = {"unit": result.params.get("unit", "h3"), "key": key, "run_id": result.params.get("run_id"),
                "label": f"{props.get('label', key)} (z {props.get('z')}, {props.get('count')})",
                "subclass": dominant_subclass(events, cats[0] if cats else None)}
        tasks = [task_box(user.role, cell, lang)]
    return (head + tasks + [html.Div(_event_list(events, lang, user.role), id="an-event-block")], items,
            {"selected": key}, cell)


@callback(
    Output("an-event-block", "children"),
    Output(aid.EVENT_ITEMS, "data", allow_duplicate=True),
    Input({"type": "an-bulk", "action": ALL}, "n_clicks"),
    State(aid.EVENT_CHECKS, "value"),
    State(aid.EVENT_ITEMS, "data"),
    State(aid.LANG, "data"),
    prevent_initial_call=True,
)
def bulk_action(clicks, checked, items, lang):
    from callbacks.context import session
    from geodata.analysis.actions import bulk_transition
    from geodata.analysis.hotspots import events_by_ids
    from geodata.identity import Actor
    from geodata.workflow import PermissionDenied

    trig = ctx.triggered_id
    if not isinstance(trig, dict) or not any(c for c in clicks or []):
        return no_update, no_update
    user = _user()
    if user is None:
        return no_update, no_update
    chosen = {int(c) for c in checked or []}
    versions = {int(i): int(v) for i, v in items or []}
    todo = [(i, versions[i]) for i in sorted(chosen) if i in versions]
    t = lambda zh, en: pick(zh, en, lang)  # noqa: E731
    if not todo:
        return no_update, no_update
    actor = Actor.for_user(user.user)
    with session() as s:
        try:
            res = bulk_transition(s, todo, trig["action"], actor)
            s.commit()
        except PermissionDenied as exc:
            s.rollback()
            block = _event_list(events_by_ids(s, list(versions)), lang, user.role)
            block[-1] = html.Div(_error(lang, exc), id=aid.BULK_MSG)
            return block, no_update
        events = events_by_ids(s, list(versions))
    block = _event_list(events, lang, user.role)
    msg = [_ok(t(f"已处理 {len(res.done)} 件", f"{len(res.done)} events done"))]
    for eid, zh, en in res.failed[:10]:
        msg.append(html.Div(f"#{eid}: {pick(zh, en, lang)}", className="an-msg-error"))
    block[-1] = html.Div(msg, id=aid.BULK_MSG)
    return block, [[e["id"], e["version"]] for e in events]


# the what-if facility, exports, hot spot → inspection tasks, window presets and map framing live in
# callbacks/analysis_actions.py (imported last: it uses this module's helpers)
from callbacks import analysis_actions  # noqa: E402,F401  (registers its callbacks)
