"""The grid editor page (/grids): grid managers draw, edit, split, merge and staff grids.

The layout is built per request from the server-side session (role, scope,
language); its callbacks live in callbacks/grids.py and its map functions in
assets/grid_editor.js. Roles other than grid manager and administrator get a
clear refusal instead of the editor.
"""
from __future__ import annotations

import dash_leaflet as dl
import dash_mantine_components as dmc
from dash import dcc, html
from flask import current_app, has_request_context

from callbacks import grid_ids as ids
from geodata import grids as G
from geodata.i18n import pick
from geodata.queries import layers as q
from map_app.layout import DEFAULT_BOUNDS, page_language, tile_layers

PATH = "/grids"
TITLE = "网格划分 · 数字乡村一张图"
_EMPTY = {"type": "FeatureCollection", "features": []}


def _js(name: str) -> dict:
    return {"variable": f"dvmap.gridEditor.{name}"}


def _user() -> tuple[str | None, str, str]:
    """(role, display name, role label) of the logged-in user, from the server session."""
    from flask_login import current_user

    from geodata.users import ROLE_LABELS

    if not has_request_context() or not current_user.is_authenticated:
        return None, "", ""
    user = current_user.user
    return user.role, user.display_name, ROLE_LABELS.get(user.role, (user.role, user.role))


def _user_id() -> int | None:
    from flask_login import current_user

    if not has_request_context() or not current_user.is_authenticated:
        return None
    return current_user.user.id


def _village_outlines(session, extent) -> dict:
    """Every village the manager may edit, with its name as tooltip."""
    (s, w), (n, e) = extent
    fc = q.villages(session, (w, s, e, n), 11)
    for f in fc["features"]:
        f["properties"]["tooltip"] = f"{f['properties']['name']} · {f['properties']['code']}"
    return fc


def _topbar(lang: str, name: str, role_label, query: dict) -> html.Header:
    other = "zh" if lang == "en" else "en"
    village = query.get("village")
    switch = f"?lang={other}" + (f"&village={village}" if village else "")
    return html.Header(
        [
            html.H1(pick("网格划分", "Grid editor", lang)),
            html.Span(pick("数字乡村一张图 · 网格管理", "Digital Village One Map · grid management", lang),
                      className="county"),
            html.Div(className="spacer"),
            html.Span([html.B(name), f" · {pick(*role_label, lang)}"] if name else [], className="user",
                      id="current-user"),
            html.A(pick("返回一张图", "Back to the map", lang), href="/", className="lang", id="grid-back"),
            html.A(pick("English", "中文", lang), href=switch, className="lang", id="lang-switch"),
        ],
        className="topbar",
    )


def _refusal(lang: str, name: str, role_label, query: dict):
    return html.Div(
        [
            _topbar(lang, name, role_label, query),
            html.Main(
                html.Div(
                    [
                        html.H2(pick("无权使用网格划分", "No access to the grid editor", lang)),
                        html.P(pick(
                            "网格划分仅限网格管理员和系统管理员使用。如需调整网格,请联系本县的网格管理员。",
                            "Only grid managers and administrators may use the grid editor. "
                            "To change a grid, ask your county's grid manager.", lang)),
                        html.A(pick("返回一张图", "Back to the map", lang), href="/"),
                    ],
                    className="ge-refusal", role="alert", id="grid-refusal",
                ),
            ),
        ],
        className="ge-app ge-refused",
    )


def _button(id_, zh, en, lang, color="blue", variant="light", **kw):
    return dmc.Button(pick(zh, en, lang), id=id_, color=color, variant=variant, size="xs", **kw)


def layout(**query):
    """The editor for the logged-in grid manager (or a refusal for other roles)."""
    lang = page_language(query)
    role, name, role_label = _user()
    if not G.may_edit(role):
        return _refusal(lang, name, role_label, query)
    database = current_app.extensions["dvmap"]
    with database.session() as session:
        villages = G.editable_villages(session)
        extent = q.scope_extent(session) or q.county_extent(session) or DEFAULT_BOUNDS
        chosen = None
        if str(query.get("village", "")).isdigit() and any(v["id"] == int(query["village"]) for v in villages):
            chosen = int(query["village"])
        else:  # the manager's village: the last one edited, or the first of a village scope
            chosen = G.default_village(session, _user_id())
        all_villages = _EMPTY
        if chosen:
            info = G.village_info(session, chosen)
            if info:
                extent = info["bounds"]
        else:  # county-wide: the county with every village drawn, a click opens one
            all_villages = _village_outlines(session, extent)

    options = [{"value": str(v["id"]), "label": f"{v['name']} · {v['town']} · {v['code']}"} for v in villages]
    tools = html.Div(
        [
            _button(ids.BTN_NEW, "新建网格", "New grid", lang, "teal", "filled"),
            _button(ids.BTN_EDIT, "编辑顶点", "Edit vertices", lang),
            _button(ids.BTN_SPLIT, "分割", "Split", lang),
            _button(ids.BTN_MERGE, "合并", "Merge", lang),
            _button(ids.BTN_DELETE, "删除", "Delete", lang, "red"),
            _button(ids.BTN_UNDO, "撤销上一步", "Undo last change", lang, "gray"),
            _button(ids.BTN_RENUMBER, "重新编号", "Renumber", lang, "gray"),
        ],
        className="ge-tools",
    )
    sketch_tools = html.Div(
        [
            html.Div(
                [
                    dmc.NumberInput(id=ids.TOLERANCE, value=G.DEFAULT_SNAP_M, min=0.5, max=G.MAX_SNAP_M, step=0.5,
                                    decimalScale=1, suffix=pick(" 米", " m", lang), size="xs", w=110,
                                    label=pick("吸附距离", "Snap distance", lang)),
                    _button(ids.BTN_SNAP, "吸附到相邻边界", "Snap to neighbours", lang, "indigo"),
                    _button(ids.BTN_CLIP, "裁剪到村界", "Clip to village", lang, "orange",
                            style={"display": "none"}),
                ],
                className="ge-row",
            ),
            html.Div(id=ids.VALIDATION, className="ge-validation", **{"aria-live": "polite"}),
            html.Div(
                [
                    _button(ids.BTN_SAVE, "保存", "Save", lang, "teal", "filled", disabled=True),
                    _button(ids.BTN_CANCEL, "取消", "Cancel", lang, "gray", "subtle"),
                ],
                className="ge-row",
            ),
        ],
        className="ge-sketch",
    )
    worker = html.Div(
        [
            dmc.Select(id=ids.WORKER, data=[], clearable=True, searchable=True, size="xs",
                       label=pick("网格员(新建或所选网格)", "Grid worker (new or selected grid)", lang),
                       placeholder=pick("选择网格员", "Choose a grid worker", lang),
                       nothingFoundMessage=pick("本村没有网格员", "No grid workers in this village", lang)),
            _button(ids.BTN_ASSIGN, "指派给所选网格", "Assign to selected grid", lang),
        ],
        className="ge-row ge-worker",
    )
    left = html.Aside(
        [
            dmc.Select(id=ids.VILLAGE, data=options, value=str(chosen) if chosen else None, searchable=True,
                       label=pick("选择村", "Village", lang), placeholder=pick("搜索村名或代码", "Search a village", lang),
                       nothingFoundMessage=pick("没有找到该村", "No village found", lang), limit=40, size="sm",
                       allowDeselect=False),
            html.Div(id=ids.STATS, className="ge-stats"),
            html.Div(pick("操作", "Tools", lang), className="section-title"),
            tools,
            html.Div(id=ids.MESSAGE, className="ge-message", role="status"),
            html.Div(pick("绘制与校验", "Drawing and checks", lang), className="section-title"),
            sketch_tools,
            html.Div(pick("网格员", "Grid worker", lang), className="section-title"),
            worker,
            html.Div(
                pick("提示:点击地图上的网格选中;拖动蓝色圆点移动顶点,点击白色小点增加顶点,右键圆点删除顶点。",
                     "Tip: click a grid on the map to select it; drag the blue dots to move vertices, click the "
                     "white dots to add one, right-click a dot to remove it.", lang),
                className="scale-note",
            ),
        ],
        className="sidebar ge-left",
    )
    right = html.Aside(
        [
            html.Div(id=ids.SELECTED_INFO),
            html.Div(pick("本村网格", "Grids of the village", lang), className="section-title"),
            html.Div(id=ids.TABLE),
            html.Div(pick("修改记录", "Change history", lang), className="section-title"),
            html.Div(id=ids.HISTORY),
        ],
        className="detailbar ge-right",
    )
    center = [(extent[0][0] + extent[1][0]) / 2, (extent[0][1] + extent[1][1]) / 2]
    map_children = tile_layers() + [
        dl.GeoJSON(id=ids.VILLAGES, data=all_villages,
                   style={"color": "#475569", "weight": 1.2, "fillColor": "#94a3b8", "fillOpacity": 0.08},
                   hoverStyle={"weight": 3, "color": "#0f766e", "fillOpacity": 0.2}),
        dl.GeoJSON(id=ids.OUTLINE, data=_EMPTY, style=_js("styles.outline"), interactive=False),
        dl.GeoJSON(id=ids.GAPS, data=_EMPTY, style=_js("styles.gap"), interactive=False),
        dl.GeoJSON(id=ids.GRIDS, data=_EMPTY, style=_js("styles.grid"), onEachFeature=_js("each.grid"),
                   hideout={"selected": None, "merge": [], "editing": None}, bubblingMouseEvents=False),
        dl.GeoJSON(id=ids.OVERLAP, data=_EMPTY, style=_js("styles.overlap"), pointToLayer=_js("points.overlap"),
                   interactive=False),
        dl.GeoJSON(id=ids.PROBLEM, data=_EMPTY, pointToLayer=_js("points.problem"), interactive=False),
        dl.FeatureGroup(dl.EditControl(
            id=ids.DRAW, position="topleft",
            draw={"polygon": {"allowIntersection": False, "showArea": False,
                              "shapeOptions": {"color": "#1d4ed8", "weight": 2}},
                  "polyline": {"shapeOptions": {"color": "#b91c1c", "weight": 3, "dashArray": "6 4"}},
                  "rectangle": False, "circle": False, "marker": False, "circlemarker": False},
            edit={"edit": False, "remove": False},
        )),
        dl.ScaleControl(position="bottomleft", imperial=False),
    ]
    return html.Div(
        [
            dcc.Store(id=ids.LANG, data=lang),
            dcc.Store(id=ids.SKETCH, data=None),
            dcc.Store(id=ids.JS_ACK, data=0),
            dcc.Store(id=ids.MODE, data={"mode": "idle"}),
            dcc.Store(id=ids.SELECTED, data=None),
            dcc.Store(id=ids.PENDING, data=None),
            dcc.Store(id=ids.REFRESH, data=0),
            dcc.Store(id=ids.VILLAGE_STATE, data={"village_id": chosen, "last_change_id": None}),
            _topbar(lang, name, role_label, query),
            left,
            html.Main(
                dl.Map(id=ids.MAP, children=map_children, center=center, zoom=13, minZoom=8, maxZoom=19,
                       zoomSnap=0.25,
                       viewport={"bounds": extent, "transition": "fitBounds", "options": {"padding": [20, 20]}},
                       attributionControl=bool(tile_layers()), doubleClickZoom=False),
                className="map-wrap ge-map",
            ),
            right,
            dmc.Modal(
                id=ids.CONFIRM, opened=False, size="xl", centered=True, zIndex=3000,
                title=pick("确认修改", "Confirm the change", lang),
                children=[
                    html.Div(id=ids.CONFIRM_BODY),
                    html.Div(
                        [
                            _button(ids.BTN_CONFIRM, "确认保存", "Confirm", lang, "teal", "filled"),
                            _button(ids.BTN_CONFIRM_CANCEL, "返回修改", "Go back", lang, "gray", "subtle"),
                        ],
                        className="ge-row ge-confirm-buttons",
                    ),
                ],
            ),
        ],
        className="app ge-app",
    )
