"""The app's pages: one registration each (Dash pages, registered explicitly).

A page is a layout function taking the query-string parameters; its callbacks live
in callbacks/. Adding a page = its layout module + one line here.
"""
from __future__ import annotations

import dash

from map_app.layout import serve_layout
from map_app.bigscreen import serve_bigscreen
from map_app.bigscreen_admin import serve_bigscreen_admin
from map_app.grid_editor import layout as grid_editor_layout
from map_app.analysis_page import layout as analysis_layout


def register_pages() -> None:
    dash.register_page("map", path="/", layout=serve_layout, title="数字乡村一张图")
    dash.register_page("bigscreen", path="/bigscreen", layout=serve_bigscreen, title="指挥中心大屏 · 数字乡村一张图")
    dash.register_page("bigscreen-admin", path="/bigscreen/admin", layout=serve_bigscreen_admin, title="考核指标管理 · 数字乡村一张图")
    dash.register_page("analysis", path="/analysis", layout=analysis_layout, title="空间分析 · 数字乡村一张图")
    dash.register_page("grids", path="/grids", layout=grid_editor_layout, title="网格划分 · 数字乡村一张图")
