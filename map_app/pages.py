"""The app's pages: one registration each (Dash pages, registered explicitly), and who may open them.

A page is a layout function taking the query-string parameters; its callbacks live
in callbacks/. Adding a page = its layout module + one line here (+ its roles in
:data:`PAGE_ROLES` and, for its callback module, :data:`CALLBACK_PAGES`).

Access is checked at three doors, all from the same table: the page's URL (a 403 page
in both languages), Dash's page routing (the refusal instead of the layout, for
in-app navigation) and the callback endpoint (a callback of a page's module runs only
for that page's roles, whatever a client posts).
"""
from __future__ import annotations

import html as _html
import json

import dash
from dash import html
from flask import Flask, Response, jsonify, request
from flask_login import current_user

from geodata.i18n import pick
from geodata.users import ROLE_LABELS
from map_app.layout import page_language, serve_layout
from map_app.bigscreen import serve_bigscreen
from map_app.bigscreen_admin import serve_bigscreen_admin
from map_app.grid_editor import layout as grid_editor_layout
from map_app.analysis_page import layout as analysis_layout
from map_app.patrol_page import layout as patrol_layout

#: Who may open each page (README "Pages and APIs"); a path also covers what lies
#: under it (``/admin`` → ``/admin/users``, ``/admin/import/``), the longest match wins.
#: Pages not listed (the map ``/``, ``/export/…``) are every logged-in user's.
PAGE_ROLES: dict[str, frozenset[str]] = {
    "/bigscreen": frozenset({"county_leader", "town_official", "planner", "admin"}),
    "/bigscreen/admin": frozenset({"admin"}),
    # grid managers and officials: hot spot → inspection tasks (issue 18); planners and leaders only look
    "/analysis": frozenset({"planner", "county_leader", "grid_manager", "village_official", "town_official", "admin"}),
    "/grids": frozenset({"grid_manager", "admin"}),
    "/patrol": frozenset({"grid_manager", "village_official", "town_official", "county_leader", "admin"}),
    "/admin": frozenset({"admin"}),
}

#: Names of the guarded pages, for the refusal (Chinese, English).
PAGE_NAMES: dict[str, tuple[str, str]] = {
    "/bigscreen": ("指挥大屏", "the big screen"),
    "/bigscreen/admin": ("考核指标管理", "the evaluation index"),
    "/analysis": ("空间分析", "spatial analysis"),
    "/grids": ("网格划分", "the grid editor"),
    "/patrol": ("巡查统计", "patrol statistics"),
    "/admin": ("系统管理页面", "the administration pages"),
}

#: Callback modules that serve one page only: their callbacks run for that page's roles.
CALLBACK_PAGES: dict[str, str] = {
    "callbacks.bigscreen": "/bigscreen",
    "callbacks.bigscreen_eval": "/bigscreen",
    "callbacks.bigscreen_admin": "/bigscreen/admin",
    "callbacks.analysis": "/analysis",
    "callbacks.analysis_actions": "/analysis",
    "callbacks.grids": "/grids",
    "callbacks.patrol": "/patrol",
}

#: Component-id prefixes of those pages (callbacks/*_ids.py): callbacks Dash adds by itself
#: for a page's components (e.g. the cancel of a background callback) are guarded by these.
ID_PAGES: dict[str, str] = {"an-": "/analysis", "bs-": "/bigscreen", "bsa-": "/bigscreen/admin", "grid-": "/grids",
                             "pt-": "/patrol"}

_PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>403 · 无权访问 / No access</title>
<link rel="icon" href="data:,"><style>body{{font-family:"Noto Sans CJK SC","WenQuanYi Micro Hei",system-ui,sans-serif;
margin:48px auto;max-width:600px;color:#1f2937;padding:0 16px}} .en{{color:#64748b}} a{{color:#12355b}}</style></head>
<body><div id="page-refusal" role="alert"><h1>无权访问{name_zh}</h1><p>{text_zh}</p>
<h2 class="en">No access to {name_en}</h2><p class="en">{text_en}</p>
<p><a href="/">← 返回一张图 <span class="en">Back to the map</span></a></p></div></body></html>"""


def page_for(path: str) -> str | None:
    """The guarded page ``path`` belongs to (a key of :data:`PAGE_ROLES`), or None."""
    path = path.rstrip("/") or "/"
    found = None
    for prefix in PAGE_ROLES:
        if (path == prefix or path.startswith(prefix + "/")) and (found is None or len(prefix) > len(found)):
            found = prefix
    return found


def may_open(role: str | None, path: str) -> bool:
    """True if ``role`` may open the page at ``path``."""
    page = page_for(path)
    return page is None or role in PAGE_ROLES[page]


def refusal_texts(page: str) -> dict[str, str]:
    """Why the page is refused, in both languages: the page and the roles that may use it."""
    roles = sorted(PAGE_ROLES[page], key=list(ROLE_LABELS).index)
    zh = [ROLE_LABELS[r][0] for r in roles]
    en = [ROLE_LABELS[r][1].lower() + "s" for r in roles]
    name_zh, name_en = PAGE_NAMES[page]
    return {
        "name_zh": name_zh, "name_en": name_en,
        "text_zh": f"{name_zh}仅限{_joined(zh, '、', '和')}使用。如需使用,请联系系统管理员。",
        "text_en": f"Only {_joined(en, ', ', ' and ')} may use {name_en}. Ask your administrator if you need it.",
    }


def _joined(items: list[str], sep: str, last: str) -> str:
    return items[0] if len(items) == 1 else sep.join(items[:-1]) + last + items[-1]


def _role() -> str | None:
    return current_user.role if current_user and current_user.is_authenticated else None


def _refusal_layout(page: str, lang: str):
    t = refusal_texts(page)
    return html.Div(
        html.Div([
            html.H2(pick(f"无权访问{t['name_zh']}", f"No access to {t['name_en']}", lang)),
            html.P(pick(t["text_zh"], t["text_en"], lang)),
            html.A(pick("返回一张图", "Back to the map", lang), href="/"),
        ], id="page-refusal", role="alert"),
        style={"maxWidth": "600px", "margin": "48px auto", "padding": "0 16px"},
    )


def _guarded(path: str, layout):
    """``layout`` for the page at ``path``, or its refusal for a role that may not open it.

    Dash renders a page's layout in its routing callback, also when the app navigates
    without loading the URL: the check has to be here too, not only on the URL.
    """
    def guarded_layout(**query):
        if not may_open(_role(), path):
            return _refusal_layout(page_for(path), page_language(query))
        return layout(**query)

    guarded_layout.__name__ = getattr(layout, "__name__", "layout")
    return guarded_layout


def _register(name: str, path: str, layout, title: str) -> None:
    """One page: a page listed in :data:`PAGE_ROLES` gets its role check around the layout."""
    dash.register_page(name, path=path, title=title,
                       layout=_guarded(path, layout) if page_for(path) else layout)


def register_pages() -> None:
    _register("map", "/", serve_layout, "数字乡村一张图")
    _register("bigscreen", "/bigscreen", serve_bigscreen, "指挥中心大屏 · 数字乡村一张图")
    _register("bigscreen-admin", "/bigscreen/admin", serve_bigscreen_admin, "考核指标管理 · 数字乡村一张图")
    _register("analysis", "/analysis", analysis_layout, "空间分析 · 数字乡村一张图")
    _register("grids", "/grids", grid_editor_layout, "网格划分 · 数字乡村一张图")
    _register("patrol", "/patrol", patrol_layout, "巡查统计 · 数字乡村一张图")


def _callback_page(app: dash.Dash) -> str | None:
    """The guarded page whose callback module the posted callback belongs to, or None."""
    from dash import _callback

    body = request.get_json(silent=True)
    output = body.get("output") if isinstance(body, dict) else None
    if not isinstance(output, str):
        return None  # malformed: Dash (and map_app.errors) refuse it
    entry = app.callback_map.get(output) or _callback.GLOBAL_CALLBACK_MAP.get(output) or {}
    module = getattr(entry.get("callback"), "__module__", None)
    if module in CALLBACK_PAGES:
        return CALLBACK_PAGES[module]
    for spec in output.strip(".").split("..."):
        cid = spec.rsplit(".", 1)[0]
        if cid.startswith("{"):
            try:
                cid = str(json.loads(cid).get("type", ""))
            except (ValueError, AttributeError):
                continue
        hits = [p for p in ID_PAGES if cid.startswith(p)]
        if hits:
            return ID_PAGES[max(hits, key=len)]
    return None


def init_page_access(app: dash.Dash) -> None:
    """Refuse guarded pages and their callbacks to roles the README does not give them.

    Install after the login guard (``map_app.auth.init_auth``): anonymous requests are
    answered there; this one sees only logged-in users.
    """
    server: Flask = app.server

    @server.before_request
    def check_page_role():
        if not (current_user and current_user.is_authenticated):
            return None
        role = current_user.role
        if request.path.endswith("/_dash-update-component") and request.method == "POST":
            page = _callback_page(app)
            if page is None or role in PAGE_ROLES[page]:
                return None
            t = refusal_texts(page)
            return jsonify(code="forbidden", message_zh=t["text_zh"], message_en=t["text_en"],
                           error=f"{t['text_zh']} / {t['text_en']}"), 403
        page = page_for(request.path)
        if page is None or role in PAGE_ROLES[page]:
            return None
        t = refusal_texts(page)
        body = _PAGE.format(**{k: _html.escape(v) for k, v in t.items()})
        return Response(body, status=403, content_type="text/html; charset=utf-8")
