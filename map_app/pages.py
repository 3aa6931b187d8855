"""The app's pages: one registration each (Dash pages, registered explicitly).

A page is a layout function taking the query-string parameters; its callbacks live
in callbacks/. Adding a page = its layout module + one line here.
"""
from __future__ import annotations

import dash

from map_app.layout import serve_layout


def register_pages() -> None:
    dash.register_page("map", path="/", layout=serve_layout, title="数字乡村一张图")
