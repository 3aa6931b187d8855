"""Grid editor callbacks (/grids): thin wrappers around geodata.grids.

* :func:`load_village` — the village's grids, outline, table, history, workers.
* :func:`interact` — the editor's state (mode, selection, sketch, pending change)
  for the tools, map clicks, drawing, snapping and the save/confirm dialogue: it
  dispatches on the component that fired to one small handler
  (:data:`_HANDLERS`). Every change is previewed first
  (:func:`geodata.grids.preview`): the manager sees the summary and the open events
  that will be re-routed, and only "confirm" writes.
* :func:`check_sketch` — live validation of the polygon being drawn or edited
  (overlaps in red, the village's gaps hatched, messages in words).
* what they show is built in callbacks/grid_views.py.
* a clientside callback hands the sketch to ``dvmap.gridEditor.render``
  (assets/grid_editor.js), whose vertex edits come back into the sketch store.

User and scope come from the server session (Flask-Login, the session's RLS
scope), never from callback inputs; write actions check the role.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from dash import ALL, Input, Output, State, callback, clientside_callback, ctx, html, no_update

from callbacks import grid_ids as ids
from callbacks import grid_views as V
from callbacks.grid_calls import call as _call
from callbacks.context import session
from callbacks.errors import error_text
from geodata import grids as G
from geodata.identity import Actor
from geodata.i18n import BilingualError, pick

def _actor() -> Actor | None:
    """The logged-in user as the actor of a change (server side)."""
    from flask_login import current_user

    if current_user and current_user.is_authenticated:
        return Actor.for_user(current_user)
    return None


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
    Output(ids.VILLAGES, "data"),
    Input(ids.VILLAGE, "value"),
    Input(ids.REFRESH, "data"),
    State(ids.LANG, "data"),
)
def load_village(village, _refresh, lang):
    if not village:
        hint = html.Div(pick("请选择一个村开始划分网格(或在地图上点击一个村)。",
                             "Choose a village to start (or click one on the map).", lang), className="panel-hint")
        return V.EMPTY, V.EMPTY, no_update, hint, [], [], [], {"village_id": None, "last_change_id": None}, \
            no_update
    return _load_village(int(village), lang) + (V.EMPTY,)


@callback(Output(ids.VILLAGE, "value", allow_duplicate=True), Input(ids.VILLAGES, "clickData"),
          prevent_initial_call=True)
def pick_village_on_map(click):
    """A click on a village of the county view opens it."""
    vid = ((click or {}).get("properties") or {}).get("id")
    return str(vid) if vid else no_update


def _load_village(vid: int, lang: str) -> tuple:
    with session() as s:
        info = G.village_info(s, vid)
        if info is None:
            err = html.Div(pick("未找到该村,或不在您的权限范围内。", "Village not found or outside your scope.", lang),
                           className="panel-error", role="alert")
            return V.EMPTY, V.EMPTY, no_update, err, [], [], [], {"village_id": None, "last_change_id": None}
        grids = G.village_grids(s, vid)
        gaps = G.village_gaps(s, vid)
        history = G.change_history(s, vid, limit=30)
        last = G.last_change(s, vid)
        workers = G.grid_workers(s, vid)
    outline = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": info["geometry"], "properties": {"name": info["name"]}}]}
    viewport = no_update
    if ctx.triggered_id in (ids.VILLAGE, ids.VILLAGES):
        viewport = {"bounds": info["bounds"], "transition": "flyToBounds", "options": {"padding": [20, 20]}}
    options = [{"value": str(w["id"]), "label": f"{w['name']}({pick('负责', 'grids', lang)} {w['grids']})"}
               for w in workers]
    stats = V.village_stats(info, grids, gaps, lang)
    state = {"village_id": vid, "last_change_id": last["id"] if last else None,
             "last_summary": pick(last["summary_zh"], last["summary_en"], lang) if last else None}
    return grids, outline, viewport, V.grid_table(grids, lang), V.history_list(history, lang), options, stats, state


# -- validation of the sketch ---------------------------------------------------------------

@callback(
    Output(ids.OVERLAP, "data"),
    Output(ids.GAPS, "data"),
    Output(ids.PROBLEM, "data"),
    Output(ids.VALIDATION, "children"),
    Output(ids.BTN_SAVE, "disabled"),
    Output(ids.BTN_CLIP, "style"),
    Output(ids.BTN_CLIP, "children"),
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
        return V.EMPTY, V.EMPTY, V.EMPTY, [], True, hidden, no_update
    vid = int(village)
    geometry = (sketch or {}).get("geometry")
    with session() as s:
        if not geometry:
            gaps = G.village_gaps(s, vid)
            return V.EMPTY, V.feature_collection(gaps["geometry"]), V.EMPTY, [], mode != "merge", hidden, no_update
        try:
            v = G.validate(s, vid, geometry, ignore_uids=[sketch["uid"]] if sketch.get("uid") else [])
        except BilingualError as exc:
            return (V.EMPTY, no_update, V.EMPTY, [V.note("error", error_text(exc, lang))], True, hidden,
                    no_update)
    problem = V.EMPTY
    if v.reason_location:
        problem = V.feature_collection({"type": "Point", "coordinates": v.reason_location})
    items = [V.note("error", i.text(lang), i.code) for i in v.errors]
    items += [V.note("warning", i.text(lang), i.code) for i in v.warnings]
    if v.ok:
        items.insert(0, V.note("ok", pick("校验通过,可以保存。", "Checks passed: ready to save.", lang), "ok"))
    facts = []
    if v.area_m2 is not None:
        facts.append(pick(f"面积 {V.fmt_m2(v.area_m2)} 平方米 · 顶点 {v.vertices} 个",
                          f"Area {V.fmt_m2(v.area_m2)} m² · {v.vertices} vertices", lang))
    clip_style = {"display": "inline-block"} if (v.clipped or v.free) else hidden
    clip_label = pick("裁剪到空白区", "Clip to free area", lang) if v.free else pick("裁剪到村界", "Clip to village", lang)
    body = [html.Div(f, className="ge-facts") for f in facts] + [html.Ul(items, className="ge-checks")]
    return (V.overlap_fc(v.overlap_geometry), V.feature_collection(v.gap_geometry), problem, body, not v.ok,
            clip_style, clip_label)


# -- the tools: one small handler per user action ---------------------------------------------------
#
# One callback owns the editor's state (mode, selection, sketch, pending change, dialogue):
# every action writes several of these outputs, so split callbacks would fight over them.
# Instead the callback only normalises what it received and dispatches on the component
# that fired (:data:`_HANDLERS`); each handler reads the few values it needs from :class:`_Act`.

_OUTPUTS = {
    "mode": Output(ids.MODE, "data"),
    "selected": Output(ids.SELECTED, "data"),
    "sketch": Output(ids.SKETCH, "data"),
    "pending": Output(ids.PENDING, "data"),
    "confirm_open": Output(ids.CONFIRM, "opened"),
    "confirm_body": Output(ids.CONFIRM_BODY, "children"),
    "message": Output(ids.MESSAGE, "children"),
    "refresh": Output(ids.REFRESH, "data"),
    "toolbar": Output(ids.DRAW, "drawToolbar"),
    "hideout": Output(ids.GRIDS, "hideout"),
    "worker": Output(ids.WORKER, "value"),
    # A refused save speaks in the checks panel too (check_sketch owns it otherwise).
    "checks": Output(ids.VALIDATION, "children", allow_duplicate=True),
    "save_disabled": Output(ids.BTN_SAVE, "disabled", allow_duplicate=True),
}

_NO_HIDEOUT = {"selected": None, "merge": [], "editing": None}


class _Out(dict):
    """Updates of :func:`interact`'s outputs by name; everything else stays as it is."""

    def as_dict(self) -> dict:
        """Every output, ``no_update`` where no handler set it."""
        return {k: self.get(k, no_update) for k in _OUTPUTS}


@dataclass
class _Act:
    """What a handler may read: the component that fired and the page's state."""

    trig: Any
    village: Any
    click: dict | None
    drawn: dict | None
    grids: dict | None
    hideout: dict
    mode: dict
    selected: dict | None
    sketch: dict | None
    pending: dict | None
    tolerance: Any
    worker: Any
    vstate: dict | None
    refresh: int | None
    lang: str

    @property
    def vid(self) -> int | None:
        return int(self.village) if self.village else None

    @property
    def by_uid(self) -> dict:
        return {f["properties"]["uid"]: f for f in (self.grids or V.EMPTY)["features"]}

    @property
    def worker_id(self) -> int | None:
        return int(self.worker) if self.worker else None


def _idle(out: _Out) -> _Out:
    out.update(mode={"mode": "idle"}, sketch=None, pending=None, confirm_open=False, hideout=dict(_NO_HIDEOUT))
    return out


_COUNTER = [0]


def _n() -> int:
    """A fresh n_clicks value for the EditControl's toolbar actions."""
    _COUNTER[0] += 1
    return _COUNTER[0]


def _on_village(out: _Out, a: _Act) -> None:
    _idle(out)
    out.update(selected=None, message=None, worker=None,
               toolbar={"mode": "polygon", "action": "cancel", "n_clicks": (a.refresh or 0) + 1})


def _on_map_click(out: _Out, a: _Act) -> None:
    _select(out, a, (a.click or {}).get("properties", {}).get("uid"))


def _on_row_click(out: _Out, a: _Act) -> None:
    _select(out, a, a.trig["uid"])


def _select(out: _Out, a: _Act, uid) -> None:
    """A grid clicked on the map or in the table: add it to a merge, or select it."""
    feature = a.by_uid.get(uid)
    if feature is None:
        return
    p, mode, hideout, lang = feature["properties"], a.mode, a.hideout, a.lang
    if mode.get("mode") == "merge":
        merge = list(hideout.get("merge") or [])
        if p["uid"] in merge and len(merge) > 1 and p["uid"] != merge[0]:
            merge.remove(p["uid"])
        elif p["uid"] not in merge:
            merge.append(p["uid"])
        versions = dict(mode.get("versions") or {})
        versions[p["uid"]] = p["version"]
        out.update(mode={**mode, "merge": merge, "versions": versions}, hideout={**hideout, "merge": merge},
                   message=V.msg("info", pick(f"已选 {len(merge)} 个网格,点击“保存”预览合并。",
                                             f"{len(merge)} grids selected; press Save to preview the merge.", lang)))
        return
    if mode.get("mode") in ("new", "edit") and mode.get("uid") != p["uid"]:
        out["message"] = V.msg("info", pick("请先保存或取消当前绘制。", "Save or cancel the current drawing first.",
                                           lang))
        return
    out.update(selected={"uid": p["uid"], "version": p["version"], "code": p["code"]},
               hideout={**hideout, "selected": p["uid"]},
               worker=str(p["worker_id"]) if p.get("worker_id") else None)


def _on_new(out: _Out, a: _Act) -> None:
    with session() as s:
        full = G.village_gaps(s, a.vid)["full"]
    if full:  # say why before the manager draws something that can never be saved
        out["message"] = V.msg("warning", pick(*G.VILLAGE_FULL, a.lang))
        return
    out.update(mode={"mode": "new"}, sketch=None, pending=None,
               toolbar={"mode": "polygon", "n_clicks": _n()},
               hideout={**a.hideout, "editing": None, "merge": []},
               message=V.msg("info", pick("在地图上逐点单击绘制新网格,单击第一个点结束。",
                                         "Click on the map to draw the new grid; click the first point "
                                         "to finish.", a.lang)))


def _on_selected_grid(tool: Callable[[_Out, _Act, dict, str, int], None]) -> Callable[[_Out, _Act], None]:
    """A tool acting on the selected grid: asks for a selection first."""
    def handler(out: _Out, a: _Act) -> None:
        if not a.selected or a.selected.get("uid") not in a.by_uid:
            out["message"] = V.msg("info", pick("请先在地图或列表中点击选择一个网格。",
                                               "Select a grid first (click it on the map or in the list).", a.lang))
            return
        feature = a.by_uid[a.selected["uid"]]
        tool(out, a, feature, feature["properties"]["uid"], a.selected["version"])

    return handler


@_on_selected_grid
def _on_edit(out: _Out, a: _Act, feature: dict, uid: str, version: int) -> None:
    code = feature["properties"]["code"]
    out.update(mode={"mode": "edit", "uid": uid, "version": version},
               sketch={"geometry": feature["geometry"], "editable": True, "uid": uid, "rev": _n(),
                       "from": "server"},
               hideout={**a.hideout, "editing": uid, "merge": []},
               message=V.msg("info", pick(f"正在编辑网格 {code} 的顶点:拖动圆点移动,完成后点击“保存”。",
                                         f"Editing grid {code}: drag the dots, then press Save.", a.lang)))


@_on_selected_grid
def _on_split(out: _Out, a: _Act, feature: dict, uid: str, version: int) -> None:
    code = feature["properties"]["code"]
    out.update(mode={"mode": "split", "uid": uid, "version": version}, sketch=None,
               toolbar={"mode": "polyline", "n_clicks": _n()},
               message=V.msg("info", pick(f"画一条完整穿过网格 {code} 的分割线,单击最后一个点结束。",
                                         f"Draw a line right across grid {code}; click the last point "
                                         "again to finish.", a.lang)))


@_on_selected_grid
def _on_merge(out: _Out, a: _Act, feature: dict, uid: str, version: int) -> None:
    out.update(mode={"mode": "merge", "merge": [uid], "versions": {uid: version}}, sketch=None,
               hideout={**a.hideout, "merge": [uid], "editing": None},
               message=V.msg("info", pick("点击与之相邻的网格加入合并,然后点击“保存”。",
                                         "Click the adjacent grid(s) to merge with, then press Save.", a.lang)))


@_on_selected_grid
def _on_delete(out: _Out, a: _Act, feature: dict, uid: str, version: int) -> None:
    _ask(out, {"op": "delete", "uid": uid, "version": version}, a.lang)


@_on_selected_grid
def _on_assign(out: _Out, a: _Act, feature: dict, uid: str, version: int) -> None:
    _ask(out, {"op": "assign", "uid": uid, "version": version, "worker_id": a.worker_id}, a.lang)


def _village_op(op: str) -> Callable[[_Out, _Act], None]:
    """Undo / renumber: a change of the whole village, against the last change the manager saw."""
    def handler(out: _Out, a: _Act) -> None:
        _ask(out, {"op": op, "village_id": a.vid, "expected_change_id": (a.vstate or {}).get("last_change_id")},
             a.lang)

    return handler


def _last_feature(drawn) -> dict | None:
    feats = [f for f in (drawn or {}).get("features") or [] if f.get("geometry")]
    return feats[-1] if feats else None


def _on_drawn(out: _Out, a: _Act) -> None:
    feature = _last_feature(a.drawn)
    if feature is None:
        return
    kind, mode = feature["geometry"].get("type"), a.mode
    if kind == "Polygon" and mode.get("mode") in ("new", "idle"):
        out.update(mode={"mode": "new"},
                   sketch={"geometry": feature["geometry"], "editable": True, "uid": None, "rev": _n(),
                           "from": "server"},
                   message=V.msg("info", pick("已绘制。可拖动顶点调整、吸附,校验通过后点击“保存”。",
                                             "Drawn. Drag vertices, snap, and press Save once the checks pass.",
                                             a.lang)))
    elif kind == "LineString" and mode.get("mode") == "split":
        out["sketch"] = {"line": feature["geometry"], "rev": _n(), "from": "server"}
        _ask(out, {"op": "split", "uid": mode["uid"], "version": mode["version"], "line": feature["geometry"]},
             a.lang)


def _on_snap(out: _Out, a: _Act) -> None:
    sketch, lang = a.sketch, a.lang
    if not sketch or not sketch.get("geometry"):
        out["message"] = V.msg("info", pick("请先绘制或选择要编辑的网格。", "Draw or edit a grid first.", lang))
        return
    ignore = [sketch["uid"]] if sketch.get("uid") else []
    with session() as s:
        r = G.snap(s, a.vid, sketch["geometry"], a.tolerance if a.tolerance is not None else G.DEFAULT_SNAP_M,
                   ignore_uids=ignore)
    out["sketch"] = {**sketch, "geometry": r.geometry, "rev": _n(), "from": "server"}
    extra = ""
    if r.trimmed_m2 or r.filled_m2:
        extra = pick(f",去除细小重叠 {r.trimmed_m2:,.1f} 平方米,补齐细缝 {r.filled_m2:,.1f} 平方米",
                     f", trimmed {r.trimmed_m2:,.1f} m² of slivers, filled {r.filled_m2:,.1f} m² of gaps", lang)
    out["message"] = V.msg("ok", pick(f"已吸附:{r.moved} 个顶点移到 {r.tolerance_m:g} 米内的村界或相邻网格边上{extra}。",
                                     f"Snapped: {r.moved} vertices moved onto the village boundary or a neighbour "
                                     f"within {r.tolerance_m:g} m{extra}.", lang))


def _on_clip(out: _Out, a: _Act) -> None:
    sketch = a.sketch
    if not sketch or not sketch.get("geometry"):
        return
    with session() as s:
        v = G.validate(s, a.vid, sketch["geometry"], ignore_uids=[sketch["uid"]] if sketch.get("uid") else [])
    if v.free:  # minus the grids it overlaps (and anything outside the village)
        out["sketch"] = {**sketch, "geometry": v.free, "rev": _n(), "from": "server"}
        out["message"] = V.msg("ok", pick(f"已裁剪到空白区:保留 {v.free_m2:,.0f} 平方米,去掉与相邻网格的重叠。",
                                         f"Clipped to the free area: {v.free_m2:,.0f} m² kept, the overlap with "
                                         "neighbouring grids removed.", a.lang))
    elif v.clipped:
        out["sketch"] = {**sketch, "geometry": v.clipped, "rev": _n(), "from": "server"}
        out["message"] = V.msg("ok", pick(f"已裁剪到村界,去掉 {v.outside_m2:,.1f} 平方米。",
                                         f"Clipped to the village: {v.outside_m2:,.1f} m² removed.", a.lang))


def _on_save(out: _Out, a: _Act) -> None:
    """Save: preview the merge, the new grid or the redrawn one."""
    mode, sketch, wid, lang = a.mode, a.sketch, a.worker_id, a.lang
    kind = mode.get("mode")
    if kind == "merge":
        versions = mode.get("versions") or {}
        _ask(out, {"op": "merge", "expected": {u: versions[u] for u in mode.get("merge") or []}}, lang)
    elif kind == "new" and sketch and sketch.get("geometry"):
        _ask(out, {"op": "save", "village_id": a.vid, "geometry": sketch["geometry"], "worker_id": wid}, lang)
    elif kind == "edit" and sketch and sketch.get("geometry"):
        op = {"op": "save", "uid": mode["uid"], "version": mode["version"], "geometry": sketch["geometry"]}
        current = a.by_uid.get(mode["uid"], {}).get("properties", {})
        if wid != current.get("worker_id"):
            op["worker_id"] = wid
        _ask(out, op, lang)
    else:
        out["message"] = V.msg("info", pick("没有可保存的内容。", "Nothing to save.", lang))


def _on_cancel(out: _Out, a: _Act) -> None:
    _idle(out)
    out.update(message=None, toolbar={"mode": "polygon", "action": "cancel", "n_clicks": _n()})


def _on_confirm_cancel(out: _Out, a: _Act) -> None:
    out.update(confirm_open=False, pending=None)


#: The handler of each component that can fire :func:`interact` (table rows by their id's type).
_HANDLERS: dict[str, Callable[[_Out, _Act], None]] = {
    ids.VILLAGE: _on_village,
    ids.GRIDS: _on_map_click,
    "grid-row": _on_row_click,
    ids.BTN_NEW: _on_new,
    ids.DRAW: _on_drawn,
    ids.BTN_EDIT: _on_edit,
    ids.BTN_SPLIT: _on_split,
    ids.BTN_MERGE: _on_merge,
    ids.BTN_DELETE: _on_delete,
    ids.BTN_UNDO: _village_op("undo"),
    ids.BTN_RENUMBER: _village_op("renumber"),
    ids.BTN_ASSIGN: _on_assign,
    ids.BTN_SNAP: _on_snap,
    ids.BTN_CLIP: _on_clip,
    ids.BTN_SAVE: _on_save,
    ids.BTN_CANCEL: _on_cancel,
    ids.BTN_CONFIRM: lambda out, a: _on_confirm(out, a) if a.pending else None,
    ids.BTN_CONFIRM_CANCEL: _on_confirm_cancel,
}
#: Buttons only say "clicked"; their n_clicks values are not read.
_BUTTONS = [k for k in _HANDLERS if k.startswith("grid-btn-")]


@callback(
    output=_OUTPUTS,
    inputs={
        "village": Input(ids.VILLAGE, "value"),
        "_grid_clicks": Input(ids.GRIDS, "n_clicks"),
        "_row_clicks": Input({"type": "grid-row", "uid": ALL}, "n_clicks"),
        **{"_" + b.replace("-", "_"): Input(b, "n_clicks") for b in _BUTTONS},
        "drawn": Input(ids.DRAW, "geojson"),
    },
    state={
        "click": State(ids.GRIDS, "clickData"),
        "grids": State(ids.GRIDS, "data"),
        "hideout": State(ids.GRIDS, "hideout"),
        "mode": State(ids.MODE, "data"),
        "selected": State(ids.SELECTED, "data"),
        "sketch": State(ids.SKETCH, "data"),
        "pending": State(ids.PENDING, "data"),
        "tolerance": State(ids.TOLERANCE, "value"),
        "worker": State(ids.WORKER, "value"),
        "vstate": State(ids.VILLAGE_STATE, "data"),
        "refresh": State(ids.REFRESH, "data"),
        "lang": State(ids.LANG, "data"),
    },
    prevent_initial_call=True,
)
def interact(**values):
    """Tools, map and table clicks, drawing, snapping and the confirm dialogue: dispatch to one handler."""
    trig = ctx.triggered_id
    out = _Out()
    fired = ctx.triggered[0].get("value") if ctx.triggered else None
    if trig != ids.VILLAGE and trig != ids.DRAW and not fired:
        # A button or table row just rendered (n_clicks 0/None), not clicked.
        return out.as_dict()
    a = _Act(trig=trig, **{k: v for k, v in values.items() if not k.startswith("_")})
    a.mode = a.mode or {"mode": "idle"}
    a.hideout = dict(a.hideout or _NO_HIDEOUT)
    handler = _HANDLERS.get(trig["type"] if isinstance(trig, dict) else trig)
    if handler is None:
        return out.as_dict()
    if trig != ids.VILLAGE and a.vid is None:
        out["message"] = V.msg("info", pick("请先选择一个村。", "Choose a village first.", a.lang))
        return out.as_dict()
    try:
        handler(out, a)
    except BilingualError as exc:
        out["message"] = V.msg("error", error_text(exc, a.lang))
        out["confirm_open"] = False
        if trig in (ids.BTN_SAVE, ids.BTN_CONFIRM) and a.mode.get("mode") in ("new", "edit"):
            # The checks passed but the service refused: the panel says so, and Save waits for
            # the geometry to change (check_sketch runs again on every sketch change).
            out["checks"] = html.Ul([V.note("error", pick("保存被拒绝:", "Save refused: ", a.lang)
                                            + error_text(exc, a.lang), "refused")],
                                    className="ge-checks", id="grid-refusal-note")
            out["save_disabled"] = True
    return out.as_dict()


# -- previewing and confirming a change ------------------------------------------------------------

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
    out.update(pending=op, confirm_open=True, confirm_body=V.confirm_body(result, lang))


def _on_confirm(out: _Out, a: _Act) -> None:
    """Confirm: write the pending change, select what it created, reload the village."""
    actor, lang = _check_role(), a.lang
    with session() as s:
        try:
            result = _call(s, actor, a.pending, preview=False)
            s.commit()
        except BilingualError:
            s.rollback()
            raise
    _idle(out)
    out.update(refresh=(a.refresh or 0) + 1, toolbar={"mode": "polygon", "action": "cancel", "n_clicks": _n()})
    created = result.created[0] if result.created else None
    if created:
        out["selected"] = {"uid": created["uid"], "version": created["version"], "code": created["code"]}
        out["hideout"] = {"selected": created["uid"], "merge": [], "editing": None}
        out["worker"] = str(created["worker_id"]) if created.get("worker_id") else None
    else:
        out.update(selected=None, worker=None)
    # The summary already counts the re-routed events.
    out["message"] = V.msg("ok", pick("已保存:", "Saved: ", lang) + result.summary(lang))


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
    feature = next((f for f in (grids or V.EMPTY)["features"] if f["properties"]["uid"] == selected["uid"]), None)
    if feature is None:
        return []
    return V.selected_panel(feature["properties"], lang)


# The sketch is drawn and edited by assets/grid_editor.js; its edits come back through set_props.
clientside_callback(
    "function (sketch) { return window.dvmap.gridEditor.render(sketch); }",
    Output(ids.JS_ACK, "data"),
    Input(ids.SKETCH, "data"),
)
