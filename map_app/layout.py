"""The one-map page layout, built per request (language, scope, county extent)."""
from __future__ import annotations

import dash_leaflet as dl
import dash_mantine_components as dmc
from dash import dcc, html
from flask import current_app, has_request_context, request

from callbacks import ids
from geodata.config import STORAGE_SRID, get_settings
from geodata.i18n import pick, t
from geodata.queries import layers as q
from layers.registry import layers_for
from map_app.event_ui import event_overlays, event_stores, report_bar

LANG_COOKIE = "dvmap_lang"
DEFAULT_BOUNDS = [[30.38, 119.70], [30.75, 120.30]]  # Deqing, used only while the DB is empty


def live_interval_ms() -> int:
    """How often live layers refresh (DVMAP_LIVE_SECONDS, default 15 s)."""
    import os

    return max(2, int(os.environ.get("DVMAP_LIVE_SECONDS", "15"))) * 1000


def tile_layers() -> list:
    """Basemap tiles when configured (OSM-style URL or Tianditu key); none by default."""
    s = get_settings()
    if s.tile_url:
        return [dl.TileLayer(url=s.tile_url, attribution=s.tile_attribution, maxZoom=18)]
    if s.tianditu_key:
        # Tianditu Web-Mercator (_w) tiles need no datum shift for CGCS2000 data.
        base = "https://t{s}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0" \
               "&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles&TILEMATRIX={{z}}&TILEROW={{y}}" \
               "&TILECOL={{x}}&tk=" + s.tianditu_key
        return [
            dl.TileLayer(url=base.format(s="{s}", layer="vec"), subdomains="01234567", maxZoom=18,
                         attribution="天地图 Tianditu"),
            dl.TileLayer(url=base.format(s="{s}", layer="cva"), subdomains="01234567", maxZoom=18),
        ]
    return []


def _layer_controls(session, lang: str, all_layers: dict):
    rows = []
    for layer in all_layers.values():
        if not layer.toggleable:
            continue
        rows.append(
            dmc.Checkbox(id=ids.toggle(layer.name), label=layer.title(lang), checked=layer.visible,
                         className="layer-row", size="sm")
        )
        subs = layer.subtypes(session)
        if subs:
            rows.append(
                dmc.CheckboxGroup(
                    id=ids.subtypes(layer.name),
                    value=[s.code for s in subs],
                    children=html.Div(
                        [dmc.Checkbox(value=s.code, label=pick(s.name_zh, s.name_en, lang), size="xs") for s in subs],
                        className="subtypes",
                    ),
                )
            )
        extra = layer.controls(session, lang)
        if extra:
            rows.append(html.Div(extra, className="layer-options", **{"data-options": layer.name}))
    return rows


def _user_box(lang: str) -> list:
    """Who is logged in, their role, admin link and the logout button."""
    from flask_login import current_user

    from geodata.users import ROLE_LABELS
    from map_app.auth import csrf_token

    if not has_request_context() or not current_user.is_authenticated:
        return []
    user = current_user.user
    role = pick(*ROLE_LABELS.get(user.role, (user.role, user.role)), lang)
    items = [html.Span([html.B(user.display_name), html.Span(f" · {role}", className="user-role")],
                       className="user", id="current-user", title=role)]
    from map_app.pages import may_open

    # Pages by role (map_app/pages.py, which also guards them): what each person's work needs.
    pages = [
        ("/bigscreen", "指挥大屏", "Big screen"),
        ("/analysis", "空间分析", "Analysis"),
        ("/grids", "网格划分", "Grids"),
        ("/admin/import/", "数据导入", "Import"),
        ("/admin/users", "用户管理", "Users"),
    ]
    nav = [html.A(pick(zh, en, lang), href=href, className="nav-link") for href, zh, en in pages
           if may_open(user.role, href)]
    if nav:
        items.append(html.Nav(nav, className="page-nav", id="page-nav"))
    items.append(
        html.Form(
            [dcc.Input(type="hidden", name="csrf", value=csrf_token()),
             html.Button(pick("退出", "Sign out", lang), type="submit", className="logout", id="logout")],
            action="/logout", method="POST", className="logout-form",
        )
    )
    return items


def page_language(query: dict) -> str:
    """Language of a page: ``?lang=`` first, then the cookie, Chinese by default.

    Page layouts are built inside Dash's routing callback, which does not see the
    page's own request: the choice also travels in a cookie set when the page loads.
    """
    lang = query.get("lang")
    if not lang and has_request_context():
        lang = request.args.get("lang") or request.cookies.get(LANG_COOKIE)
    return "en" if lang == "en" else "zh"


def serve_layout(**query):
    lang = page_language(query)
    database = current_app.extensions["dvmap"]
    with database.session() as session:
        # A village official's map opens on what they may see, not on the whole county.
        bounds = q.scope_extent(session) or q.county_extent(session) or DEFAULT_BOUNDS
        county = q.county_info(session) or {"name": "", "code": ""}
        villages = q.all_villages(session)
        all_layers = layers_for(session)  # built-in + imported (custom) layers in scope
        hideouts = {name: layer.initial_hideout(session) for name, layer in all_layers.items()}
        controls = _layer_controls(session, lang, all_layers)
        from callbacks.map import live_summaries

        counters = live_summaries(session, lang, all_layers)  # the clock refreshes them

    from callbacks.map import panel_for_query

    # Deep links (?village=ID, ?grid=ID …) open with the panel filled and the map on it.
    linked_panel, linked_view = panel_for_query(query, lang)
    other = "zh" if lang == "en" else "en"
    map_children = tile_layers() + [layer.component(hideouts[name]) for name, layer in all_layers.items()]
    map_children.append(dl.ScaleControl(position="bottomleft", imperial=False))
    map_children.append(dl.LayerGroup(id=ids.EVENT_PICK))  # marker of the point clicked to report

    return (
        html.Div(
            [
                dcc.Store(id=ids.LANG, data=lang),
                dcc.Store(id=ids.LAYER_KEYS, data={}),
                *event_stores(),
                # The shared clock of live layers (Layer.live_patch / live_summary, callbacks/map.py).
                dcc.Interval(id=ids.TICK, interval=live_interval_ms(), n_intervals=0),
                # Below 700 px (assets/dvmap.css) the three columns leave no map: point to the phone app.
                html.A([html.B(pick("手机请使用网格通 →", "On a phone, use the field app →", lang)),
                        html.Span(" /field")], href="/field", id="field-card", className="field-card"),
                html.Header(
                    [
                        html.H1(t("app.title", lang)),
                        html.Span(f"{county['name']} · {t('app.subtitle', lang)}", className="county"),
                        html.Div(counters, id=ids.LIVE_COUNTERS, className="live-counters"),
                        html.Div(className="spacer"),
                        dmc.Select(
                            id=ids.SEARCH, className="search-box", searchable=True, clearable=True,
                            placeholder=t("search.placeholder", lang), nothingFoundMessage=t("search.nothing", lang),
                            data=[{"value": str(v["id"]), "label": f"{v['name']} · {v['town']} · {v['code']}"}
                                  for v in villages],
                            limit=30,
                            # The list drops over the map: above Leaflet's panes and controls.
                            comboboxProps={"zIndex": 2000},
                        ),
                        *_user_box(lang),
                        html.A(t("lang.switch", lang), href=f"?lang={other}", className="lang", id="lang-switch"),
                    ],
                    className="topbar",
                ),
                html.Aside(
                    [
                        html.Div(t("panel.layers", lang), className="section-title"),
                        *controls,
                        html.Div(t("panel.legend", lang), className="section-title"),
                        html.Div(id=ids.LEGEND),
                        html.Div(
                            pick(f"坐标系:CGCS2000(EPSG:{STORAGE_SRID});未配置底图时以县、乡镇界为底。",
                                 f"CRS: CGCS2000 (EPSG:{STORAGE_SRID}); without basemap tiles the county and town "
                                 "boundaries form the base.", lang),
                            className="scale-note",
                        ),
                    ],
                    className="sidebar",
                ),
                html.Main(
                    dl.Map(
                        # dash-leaflet 1.1's `bounds` prop throws on first render; start from the centre
                        # and fit the bounds through `viewport`, which it handles.
                        id=ids.MAP, children=map_children,
                        center=[(bounds[0][0] + bounds[1][0]) / 2, (bounds[0][1] + bounds[1][1]) / 2], zoom=10,
                        viewport=linked_view or {"bounds": bounds, "transition": "fitBounds",
                                                 "options": {"padding": [10, 10]}},
                        minZoom=8, maxZoom=18, zoomSnap=0.5, preferCanvas=False, trackViewport=True,
                        maxBounds=[[bounds[0][0] - 0.5, bounds[0][1] - 0.5], [bounds[1][0] + 0.5, bounds[1][1] + 0.5]],
                        attributionControl=bool(tile_layers()),
                    ),
                    className="map-wrap",
                ),
                html.Aside(
                    [report_bar(), html.Div(
                        linked_panel or [html.Div(t("panel.details", lang), className="section-title"),
                                         html.Div(t("panel.hint", lang), className="panel-hint")],
                        id=ids.DETAILS,
                    )],
                    className="detailbar",
                ),
                *event_overlays(lang),
            ],
            className="app",
        )
    )
