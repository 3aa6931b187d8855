"""Grid editor callbacks (/grids): thin wrappers around geodata.grids.

* :func:`load_village` — the village's grids, outline, table, history, workers.
* :func:`interact` — one state machine for the tools, map clicks, drawing, snapping
  and the save/confirm dialogue. Every change is previewed first
  (:func:`geodata.grids.preview`): the manager sees the summary and the open events
  that will be re-routed, and only "confirm" writes.
* :func:`check_sketch` — live validation of the polygon being drawn or edited
  (overlaps in red, the village's gaps hatched, messages in words).
* a clientside callback hands the sketch to ``dvmap.gridEditor.render``
  (assets/grid_editor.js), whose vertex edits come back into the sketch store.

User and scope come from the server session (Flask-Login, the session's RLS
scope), never from callback inputs; write actions check the role.
"""
from __future__ import annotations

import logging

from dash import ALL, Input, Output, State, callback, clientside_callback, ctx, html, no_update

from callbacks import grid_ids as ids
from callbacks.context import session
from callbacks.errors import error_text
from geodata import grids as G
from geodata.clock import fmt_local
from geodata.events import Actor
from geodata.i18n import BilingualError, pick
from geodata.workflow import STATE_LABELS, State as EventState

log = logging.getLogger(__name__)
_EMPTY = {"type": "FeatureCollection", "features": []}


def _actor() -> Actor | None:
    """The logged-in user as the actor of a change (server side)."""
    from flask_login import current_user

    if current_user and current_user.is_authenticated:
        u = current_user.user
        return Actor(u.username, u.role, u.id)
    return None


def _fmt_m2(v) -> str:
    return "—" if v is None else f"{float(v):,.0f}"


# -- loading a village ------------------------------------------------------------------------

@callback(
    Output(ids.GRIDS, "data"),
    Output(ids.OUTLINE, "data"),
    Output(ids.MAP, "viewport"),
    Output(ids.TABLE, "children"),
    Output(ids.HISTORY, "children"),
    Output(ids.WORKER, "data"),
    Output(ids.STATS, "children"),
    Output(ids.VILLAGE_STATE, "data"),
    Input(ids.VILLAGE, "value"),
    Input(ids.REFRESH, "data"),
    State(ids.LANG, "data"),
)
def load_village(village, _refresh, lang):
    if not village:
        hint = html.Div(pick("请选择一个村开始划分网格。", "Choose a village to start.", lang), className="panel-hint")
        return _EMPTY, _EMPTY, no_update, hint, [], [], [], {"village_id": None, "last_change_id": None}
    vid = int(village)
    with session() as s:
        info = G.village_info(s, vid)
        if info is None:
            err = html.Div(pick("未找到该村,或不在您的权限范围内。", "Village not found or outside your scope.", lang),
                           className="panel-error", role="alert")
            return _EMPTY, _EMPTY, no_update, err, [], [], [], {"village_id": None, "last_change_id": None}
        grids = G.village_grids(s, vid)
        gaps = G.village_gaps(s, vid)
        history = G.change_history(s, vid, limit=30)
        last = G.last_change(s, vid)
        workers = G.grid_workers(s, vid)
    outline = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": info["geometry"], "properties": {"name": info["name"]}}]}
    viewport = no_update
    if ctx.triggered_id == ids.VILLAGE:
        viewport = {"bounds": info["bounds"], "transition": "flyToBounds", "options": {"padding": [20, 20]}}
    options = [{"value": str(w["id"]), "label": f"{w['name']}({pick('负责', 'grids', lang)} {w['grids']})"}
               for w in workers]
    stats = html.Div(
        [
            html.Div([html.B(info["name"]), f" · {info['town']} · {info['code']}"]),
            html.Div(pick(f"网格 {len(grids['features'])} 个 · 面积 {info['area_m2'] / 1e6:.2f} 平方公里",
                          f"{len(grids['features'])} grids · {info['area_m2'] / 1e6:.2f} km²", lang)),
            html.Div(
                pick(f"未覆盖 {_fmt_m2(gaps['area_m2'])} 平方米({gaps['pct']:.2f}%)",
                     f"Uncovered {_fmt_m2(gaps['area_m2'])} m² ({gaps['pct']:.2f}%)", lang),
                className="ge-gap-figure" + (" ge-has-gap" if gaps["area_m2"] > G.AREA_EPSILON_M2 else ""),
                id="grid-gap-figure",
            ),
        ]
    )
    state = {"village_id": vid, "last_change_id": last["id"] if last else None,
             "last_summary": pick(last["summary_zh"], last["summary_en"], lang) if last else None}
    return grids, outline, viewport, _table(grids, lang), _history(history, lang), options, stats, state


def _table(grids: dict, lang: str):
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


def _history(history: list[dict], lang: str):
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


# -- validation of the sketch ---------------------------------------------------------------

def _fc(geometry) -> dict:
    if not geometry:
        return _EMPTY
    return {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": geometry, "properties": {}}]}


@callback(
    Output(ids.OVERLAP, "data"),
    Output(ids.GAPS, "data"),
    Output(ids.PROBLEM, "data"),
    Output(ids.VALIDATION, "children"),
    Output(ids.BTN_SAVE, "disabled"),
    Output(ids.BTN_CLIP, "style"),
    Input(ids.SKETCH, "data"),
    Input(ids.REFRESH, "data"),
    Input(ids.VILLAGE, "value"),
    State(ids.MODE, "data"),
    State(ids.LANG, "data"),
)
def check_sketch(sketch, _refresh, village, mode, lang):
    hidden = {"display": "none"}
    mode = (mode or {}).get("mode", "idle")
    if not village:
        return _EMPTY, _EMPTY, _EMPTY, [], True, hidden
    vid = int(village)
    geometry = (sketch or {}).get("geometry")
    with session() as s:
        if not geometry:
            gaps = G.village_gaps(s, vid)
            return _EMPTY, _fc(gaps["geometry"]), _EMPTY, [], mode != "merge", hidden
        try:
            v = G.validate(s, vid, geometry, ignore_uids=[sketch["uid"]] if sketch.get("uid") else [])
        except BilingualError as exc:
            return _EMPTY, no_update, _EMPTY, [_note("error", error_text(exc, lang))], True, hidden
    problem = _EMPTY
    if v.reason_location:
        problem = _fc({"type": "Point", "coordinates": v.reason_location})
    items = [_note("error", i.text(lang), i.code) for i in v.errors]
    items += [_note("warning", i.text(lang), i.code) for i in v.warnings]
    if v.ok:
        items.insert(0, _note("ok", pick("校验通过,可以保存。", "Checks passed: ready to save.", lang), "ok"))
    facts = []
    if v.area_m2 is not None:
        facts.append(pick(f"面积 {_fmt_m2(v.area_m2)} 平方米 · 顶点 {v.vertices} 个",
                          f"Area {_fmt_m2(v.area_m2)} m² · {v.vertices} vertices", lang))
    clip_style = {"display": "inline-block"} if v.clipped else hidden
    body = [html.Div(f, className="ge-facts") for f in facts] + [html.Ul(items, className="ge-checks")]
    return _overlap_fc(v.overlap_geometry), _fc(v.gap_geometry), problem, body, not v.ok, clip_style


def _overlap_fc(geometry) -> dict:
    """The overlap polygons plus a ring marker on each: a sliver of a few m² is invisible at village zoom."""
    fc = _fc(geometry)
    if geometry:
        from shapely.geometry import mapping, shape

        for part in getattr(shape(geometry), "geoms", [shape(geometry)]):
            p = part.representative_point()
            fc["features"].append({"type": "Feature", "geometry": mapping(p), "properties": {"marker": True}})
    return fc


def _note(kind: str, text: str, code: str = ""):
    return html.Li(text, className=f"ge-check ge-{kind}", **{"data-code": code})


# -- the state machine ---------------------------------------------------------------------------

_OUTPUTS = ("mode", "selected", "sketch", "pending", "confirm_open", "confirm_body", "message", "refresh",
            "toolbar", "hideout", "worker")


class _Out(dict):
    """Updates of :func:`interact`'s outputs by name; everything else stays as it is."""

    def as_list(self) -> list:
        """The values in callback output order."""
        return [self.get(k, no_update) for k in _OUTPUTS]


def _msg(kind: str, text: str):
    return html.Div(text, className=f"ge-msg ge-msg-{kind}", role="alert" if kind == "error" else None)


def _idle(out: _Out) -> _Out:
    out.update(mode={"mode": "idle"}, sketch=None, pending=None, confirm_open=False,
               hideout={"selected": None, "merge": [], "editing": None})
    return out


@callback(
    Output(ids.MODE, "data"),
    Output(ids.SELECTED, "data"),
    Output(ids.SKETCH, "data"),
    Output(ids.PENDING, "data"),
    Output(ids.CONFIRM, "opened"),
    Output(ids.CONFIRM_BODY, "children"),
    Output(ids.MESSAGE, "children"),
    Output(ids.REFRESH, "data"),
    Output(ids.DRAW, "drawToolbar"),
    Output(ids.GRIDS, "hideout"),
    Output(ids.WORKER, "value"),
    Input(ids.VILLAGE, "value"),
    Input(ids.GRIDS, "n_clicks"),
    Input({"type": "grid-row", "uid": ALL}, "n_clicks"),
    Input(ids.BTN_NEW, "n_clicks"),
    Input(ids.BTN_EDIT, "n_clicks"),
    Input(ids.BTN_SPLIT, "n_clicks"),
    Input(ids.BTN_MERGE, "n_clicks"),
    Input(ids.BTN_DELETE, "n_clicks"),
    Input(ids.BTN_UNDO, "n_clicks"),
    Input(ids.BTN_RENUMBER, "n_clicks"),
    Input(ids.BTN_ASSIGN, "n_clicks"),
    Input(ids.BTN_SNAP, "n_clicks"),
    Input(ids.BTN_CLIP, "n_clicks"),
    Input(ids.BTN_SAVE, "n_clicks"),
    Input(ids.BTN_CANCEL, "n_clicks"),
    Input(ids.BTN_CONFIRM, "n_clicks"),
    Input(ids.BTN_CONFIRM_CANCEL, "n_clicks"),
    Input(ids.DRAW, "geojson"),
    State(ids.GRIDS, "clickData"),
    State(ids.GRIDS, "data"),
    State(ids.GRIDS, "hideout"),
    State(ids.MODE, "data"),
    State(ids.SELECTED, "data"),
    State(ids.SKETCH, "data"),
    State(ids.PENDING, "data"),
    State(ids.TOLERANCE, "value"),
    State(ids.WORKER, "value"),
    State(ids.VILLAGE_STATE, "data"),
    State(ids.REFRESH, "data"),
    State(ids.LANG, "data"),
    prevent_initial_call=True,
)
def interact(village, _grid_clicks, _row_clicks, *args):
    (_new, _edit, _split, _merge, _delete, _undo, _renumber, _assign, _snap, _clip, _save, _cancel, _confirm,
     _confirm_cancel, drawn, click, grids, hideout, mode, selected, sketch, pending, tolerance, worker,
     vstate, refresh, lang) = args
    trig = ctx.triggered_id
    out = _Out()
    fired = ctx.triggered[0].get("value") if ctx.triggered else None
    if trig != ids.VILLAGE and trig != ids.DRAW and not fired:
        # A button or table row just rendered (n_clicks 0/None), not clicked.
        return out.as_list()
    mode = mode or {"mode": "idle"}
    hideout = dict(hideout or {"selected": None, "merge": [], "editing": None})
    vid = int(village) if village else None
    by_uid = {f["properties"]["uid"]: f for f in (grids or _EMPTY)["features"]}
    try:
        if trig == ids.VILLAGE:
            _idle(out)
            out.update(selected=None, message=None, worker=None,
                       toolbar={"mode": "polygon", "action": "cancel", "n_clicks": (refresh or 0) + 1})
        elif vid is None:
            out["message"] = _msg("info", pick("请先选择一个村。", "Choose a village first.", lang))
        elif trig == ids.GRIDS or (isinstance(trig, dict) and trig.get("type") == "grid-row"):
            uid = (click or {}).get("properties", {}).get("uid") if trig == ids.GRIDS else trig["uid"]
            if uid in by_uid:
                _on_grid(out, by_uid[uid], mode, hideout, lang)
        elif trig == ids.BTN_NEW:
            out.update(mode={"mode": "new"}, sketch=None, pending=None,
                       toolbar={"mode": "polygon", "n_clicks": _n()},
                       hideout={**hideout, "editing": None, "merge": []},
                       message=_msg("info", pick("在地图上逐点单击绘制新网格,单击第一个点结束。",
                                                 "Click on the map to draw the new grid; click the first point "
                                                 "to finish.", lang)))
        elif trig in (ids.BTN_EDIT, ids.BTN_SPLIT, ids.BTN_MERGE, ids.BTN_DELETE, ids.BTN_ASSIGN):
            _on_grid_tool(out, trig, selected, by_uid, worker, hideout, lang)
        elif trig in (ids.BTN_UNDO, ids.BTN_RENUMBER):
            op = {"op": "undo" if trig == ids.BTN_UNDO else "renumber", "village_id": vid,
                  "expected_change_id": (vstate or {}).get("last_change_id")}
            _ask(out, op, lang)
        elif trig == ids.DRAW:
            _on_drawn(out, drawn, mode, vid, lang)
        elif trig == ids.BTN_SNAP:
            _on_snap(out, sketch, vid, tolerance, lang)
        elif trig == ids.BTN_CLIP:
            _on_clip(out, sketch, vid, lang)
        elif trig == ids.BTN_SAVE:
            _on_save(out, mode, sketch, vid, worker, by_uid, lang)
        elif trig == ids.BTN_CANCEL:
            _idle(out)
            out.update(message=None, toolbar={"mode": "polygon", "action": "cancel", "n_clicks": _n()})
        elif trig == ids.BTN_CONFIRM and pending:
            _on_confirm(out, pending, refresh, lang)
        elif trig == ids.BTN_CONFIRM_CANCEL:
            out.update(confirm_open=False, pending=None)
    except BilingualError as exc:
        out["message"] = _msg("error", error_text(exc, lang))
        out["confirm_open"] = False
    return out.as_list()


_COUNTER = [0]


def _n() -> int:
    """A fresh n_clicks value for the EditControl's toolbar actions."""
    _COUNTER[0] += 1
    return _COUNTER[0]


def _on_grid(out: _Out, feature: dict, mode: dict, hideout: dict, lang: str) -> None:
    p = feature["properties"]
    if mode.get("mode") == "merge":
        merge = list(hideout.get("merge") or [])
        if p["uid"] in merge and len(merge) > 1 and p["uid"] != merge[0]:
            merge.remove(p["uid"])
        elif p["uid"] not in merge:
            merge.append(p["uid"])
        versions = dict(mode.get("versions") or {})
        versions[p["uid"]] = p["version"]
        out.update(mode={**mode, "merge": merge, "versions": versions}, hideout={**hideout, "merge": merge},
                   message=_msg("info", pick(f"已选 {len(merge)} 个网格,点击“保存”预览合并。",
                                             f"{len(merge)} grids selected; press Save to preview the merge.", lang)))
        return
    if mode.get("mode") in ("new", "edit") and mode.get("uid") != p["uid"]:
        out["message"] = _msg("info", pick("请先保存或取消当前绘制。", "Save or cancel the current drawing first.",
                                           lang))
        return
    out.update(selected={"uid": p["uid"], "version": p["version"], "code": p["code"]},
               hideout={**hideout, "selected": p["uid"]},
               worker=str(p["worker_id"]) if p.get("worker_id") else None)


def _on_grid_tool(out: _Out, trig, selected, by_uid, worker, hideout, lang) -> None:
    if not selected or selected.get("uid") not in by_uid:
        out["message"] = _msg("info", pick("请先在地图或列表中点击选择一个网格。",
                                           "Select a grid first (click it on the map or in the list).", lang))
        return
    feature = by_uid[selected["uid"]]
    p = feature["properties"]
    uid, version = p["uid"], selected["version"]
    if trig == ids.BTN_EDIT:
        out.update(mode={"mode": "edit", "uid": uid, "version": version},
                   sketch={"geometry": feature["geometry"], "editable": True, "uid": uid, "rev": _n(),
                           "from": "server"},
                   hideout={**hideout, "editing": uid, "merge": []},
                   message=_msg("info", pick(f"正在编辑网格 {p['code']} 的顶点:拖动圆点移动,完成后点击“保存”。",
                                             f"Editing grid {p['code']}: drag the dots, then press Save.", lang)))
    elif trig == ids.BTN_SPLIT:
        out.update(mode={"mode": "split", "uid": uid, "version": version}, sketch=None,
                   toolbar={"mode": "polyline", "n_clicks": _n()},
                   message=_msg("info", pick(f"画一条完整穿过网格 {p['code']} 的分割线,单击最后一个点结束。",
                                             f"Draw a line right across grid {p['code']}; click the last point "
                                             "again to finish.", lang)))
    elif trig == ids.BTN_MERGE:
        out.update(mode={"mode": "merge", "merge": [uid], "versions": {uid: version}}, sketch=None,
                   hideout={**hideout, "merge": [uid], "editing": None},
                   message=_msg("info", pick("点击与之相邻的网格加入合并,然后点击“保存”。",
                                             "Click the adjacent grid(s) to merge with, then press Save.", lang)))
    elif trig == ids.BTN_DELETE:
        _ask(out, {"op": "delete", "uid": uid, "version": version}, lang)
    elif trig == ids.BTN_ASSIGN:
        _ask(out, {"op": "assign", "uid": uid, "version": version,
                   "worker_id": int(worker) if worker else None}, lang)


def _last_feature(drawn) -> dict | None:
    feats = [f for f in (drawn or {}).get("features") or [] if f.get("geometry")]
    return feats[-1] if feats else None


def _on_drawn(out: _Out, drawn, mode: dict, vid: int, lang: str) -> None:
    feature = _last_feature(drawn)
    if feature is None:
        return
    kind = feature["geometry"].get("type")
    if kind == "Polygon" and mode.get("mode") in ("new", "idle"):
        out.update(mode={"mode": "new"},
                   sketch={"geometry": feature["geometry"], "editable": True, "uid": None, "rev": _n(),
                           "from": "server"},
                   message=_msg("info", pick("已绘制。可拖动顶点调整、吸附,校验通过后点击“保存”。",
                                             "Drawn. Drag vertices, snap, and press Save once the checks pass.",
                                             lang)))
    elif kind == "LineString" and mode.get("mode") == "split":
        out["sketch"] = {"line": feature["geometry"], "rev": _n(), "from": "server"}
        _ask(out, {"op": "split", "uid": mode["uid"], "version": mode["version"], "line": feature["geometry"]},
             lang)


def _on_snap(out: _Out, sketch, vid: int, tolerance, lang: str) -> None:
    if not sketch or not sketch.get("geometry"):
        out["message"] = _msg("info", pick("请先绘制或选择要编辑的网格。", "Draw or edit a grid first.", lang))
        return
    ignore = [sketch["uid"]] if sketch.get("uid") else []
    with session() as s:
        r = G.snap(s, vid, sketch["geometry"], tolerance if tolerance is not None else G.DEFAULT_SNAP_M,
                   ignore_uids=ignore)
    out["sketch"] = {**sketch, "geometry": r.geometry, "rev": _n(), "from": "server"}
    extra = ""
    if r.trimmed_m2 or r.filled_m2:
        extra = pick(f",去除细小重叠 {r.trimmed_m2:,.1f} 平方米,补齐细缝 {r.filled_m2:,.1f} 平方米",
                     f", trimmed {r.trimmed_m2:,.1f} m² of slivers, filled {r.filled_m2:,.1f} m² of gaps", lang)
    out["message"] = _msg("ok", pick(f"已吸附:{r.moved} 个顶点移到 {r.tolerance_m:g} 米内的村界或相邻网格边上{extra}。",
                                     f"Snapped: {r.moved} vertices moved onto the village boundary or a neighbour "
                                     f"within {r.tolerance_m:g} m{extra}.", lang))


def _on_clip(out: _Out, sketch, vid: int, lang: str) -> None:
    if not sketch or not sketch.get("geometry"):
        return
    with session() as s:
        v = G.validate(s, vid, sketch["geometry"], ignore_uids=[sketch["uid"]] if sketch.get("uid") else [])
    if v.clipped:
        out["sketch"] = {**sketch, "geometry": v.clipped, "rev": _n(), "from": "server"}
        out["message"] = _msg("ok", pick(f"已裁剪到村界,去掉 {v.outside_m2:,.1f} 平方米。",
                                         f"Clipped to the village: {v.outside_m2:,.1f} m² removed.", lang))


def _on_save(out: _Out, mode: dict, sketch, vid: int, worker, by_uid, lang: str) -> None:
    kind = mode.get("mode")
    wid = int(worker) if worker else None
    if kind == "merge":
        versions = mode.get("versions") or {}
        _ask(out, {"op": "merge", "expected": {u: versions[u] for u in mode.get("merge") or []}}, lang)
    elif kind == "new" and sketch and sketch.get("geometry"):
        _ask(out, {"op": "save", "village_id": vid, "geometry": sketch["geometry"], "worker_id": wid}, lang)
    elif kind == "edit" and sketch and sketch.get("geometry"):
        op = {"op": "save", "uid": mode["uid"], "version": mode["version"], "geometry": sketch["geometry"]}
        current = by_uid.get(mode["uid"], {}).get("properties", {})
        if wid != current.get("worker_id"):
            op["worker_id"] = wid
        _ask(out, op, lang)
    else:
        out["message"] = _msg("info", pick("没有可保存的内容。", "Nothing to save.", lang))


def _call(s, actor: Actor, op: dict, preview: bool) -> G.ChangeResult:
    """Run (or preview) one pending change described by ``op``."""
    kind = op["op"]
    if kind == "save":
        kw = {"geometry": op["geometry"]}
        if op.get("uid"):
            kw.update(uid=op["uid"], expected_version=op["version"])
        else:
            kw["village_id"] = op["village_id"]
        if "worker_id" in op:
            kw["worker_id"] = op["worker_id"]
        fn, args = G.save_grid, ()
    elif kind == "split":
        fn, args, kw = G.split_grid, (op["uid"], op["version"], op["line"]), {}
    elif kind == "merge":
        fn, args, kw = G.merge_grids, (op["expected"],), {}
    elif kind == "delete":
        fn, args, kw = G.delete_grid, (op["uid"], op["version"]), {}
    elif kind == "assign":
        fn, args, kw = G.assign_worker, (op["uid"], op["version"], op["worker_id"]), {}
    elif kind == "undo":
        fn, args, kw = G.undo_last, (op["village_id"],), {"expected_change_id": op.get("expected_change_id")}
    elif kind == "renumber":
        fn, args, kw = G.renumber_village, (op["village_id"],), {"expected_change_id": op.get("expected_change_id")}
    else:  # pragma: no cover - ops are built above
        raise ValueError(kind)
    if preview:
        return G.preview(s, fn, actor, *args, **kw)
    return fn(s, actor, *args, **kw)


def _check_role() -> Actor:
    actor = _actor()
    if actor is None or not G.may_edit(actor.role):
        raise G.GridPermissionDenied()
    return actor


def _ask(out: _Out, op: dict, lang: str) -> None:
    """Preview ``op`` and open the confirmation dialogue with what it would do."""
    actor = _check_role()
    with session() as s:
        result = _call(s, actor, op, preview=True)
    out.update(pending=op, confirm_open=True, confirm_body=_confirm_body(result, lang))


def _confirm_body(r: G.ChangeResult, lang: str):
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


def _on_confirm(out: _Out, op: dict, refresh, lang: str) -> None:
    actor = _check_role()
    with session() as s:
        try:
            result = _call(s, actor, op, preview=False)
            s.commit()
        except BilingualError:
            s.rollback()
            raise
    _idle(out)
    out.update(refresh=(refresh or 0) + 1, toolbar={"mode": "polygon", "action": "cancel", "n_clicks": _n()})
    created = result.created[0] if result.created else None
    if created:
        out["selected"] = {"uid": created["uid"], "version": created["version"], "code": created["code"]}
        out["hideout"] = {"selected": created["uid"], "merge": [], "editing": None}
        out["worker"] = str(created["worker_id"]) if created.get("worker_id") else None
    else:
        out.update(selected=None, worker=None)
    # The summary already counts the re-routed events.
    out["message"] = _msg("ok", pick("已保存:", "Saved: ", lang) + result.summary(lang))


@callback(
    Output(ids.SELECTED_INFO, "children"),
    Input(ids.SELECTED, "data"),
    Input(ids.GRIDS, "data"),
    State(ids.LANG, "data"),
)
def show_selected(selected, grids, lang):
    if not selected:
        return html.Div(pick("点击地图上的网格查看详情。", "Click a grid on the map to see it.", lang),
                        className="panel-hint")
    feature = next((f for f in (grids or _EMPTY)["features"] if f["properties"]["uid"] == selected["uid"]), None)
    if feature is None:
        return []
    p = feature["properties"]
    rows = [
        (pick("编号", "Code", lang), p["code"]),
        (pick("名称", "Name", lang), p["name"]),
        (pick("网格员", "Worker", lang), p.get("worker") or "—"),
        (pick("人口", "Population", lang), "—" if p.get("population") is None else f"{p['population']:,}"),
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


# The sketch is drawn and edited by assets/grid_editor.js; its edits come back through set_props.
clientside_callback(
    "function (sketch) { return window.dvmap.gridEditor.render(sketch); }",
    Output(ids.JS_ACK, "data"),
    Input(ids.SKETCH, "data"),
)
