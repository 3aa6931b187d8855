"""Composition root: creates the Flask server and the Dash app, wires everything."""
from __future__ import annotations

import gc
import logging
import os
import secrets
from pathlib import Path

import dash
import dash_mantine_components as dmc
from flask import Flask, jsonify, request

from geodata.config import PROJECT_ROOT, get_settings
from geodata.db import Database, app_url

log = logging.getLogger("dvmap")

ASSETS = PROJECT_ROOT / "assets"


_CALLBACKS: tuple | None = None


def _register_callbacks() -> None:
    """Make the ``dash.callback`` registrations of callbacks/ available to this app.

    Dash moves global callbacks into the first app that starts serving; tests and
    tools create several apps in one process, so the registrations are remembered
    once and handed again to every new app.
    """
    global _CALLBACKS
    from dash import _callback

    if _CALLBACKS is None:
        import callbacks.map  # noqa: F401  (registers the callbacks)
        import callbacks.bigscreen  # noqa: F401  (the /bigscreen wall screen and its admin page)
        import callbacks.grids  # noqa: F401  (the /grids editor)
        import callbacks.analysis  # noqa: F401  (the /analysis page)
        import callbacks.patrol  # noqa: F401  (the /patrol statistics page)
        import callbacks.events  # noqa: F401  (report form, event actions, table)

        # Clientside callbacks also leave their JS in GLOBAL_INLINE_SCRIPTS: keep it too.
        _CALLBACKS = (list(_callback.GLOBAL_CALLBACK_LIST), dict(_callback.GLOBAL_CALLBACK_MAP),
                      list(_callback.GLOBAL_INLINE_SCRIPTS))
        return
    for item in _CALLBACKS[0]:
        if item not in _callback.GLOBAL_CALLBACK_LIST:
            _callback.GLOBAL_CALLBACK_LIST.append(item)
    _callback.GLOBAL_CALLBACK_MAP.update(_CALLBACKS[1])
    for script in _CALLBACKS[2]:
        if script not in _callback.GLOBAL_INLINE_SCRIPTS:
            _callback.GLOBAL_INLINE_SCRIPTS.append(script)


def _persistent_secret(data_dir: Path) -> str:
    """A secret key kept in the data folder, so every gunicorn worker signs sessions alike."""
    path = Path(data_dir) / "flask-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{secrets.token_hex(4)}")
        tmp.write_text(secrets.token_hex(32))
        tmp.chmod(0o600)
        try:
            os.link(tmp, path)  # atomic: the first worker wins, the others read its key
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


def create_app(database_url: str | None = None) -> dash.Dash:
    """Create the Dash app (``app.server`` is the Flask WSGI app).

    Parameters
    ----------
    database_url : str, optional
        URL of the app role; defaults to DATABASE_URL or the embedded cluster.
    """
    settings = get_settings()
    server = Flask("dvmap")
    server.config.update(
        SECRET_KEY=settings.secret_key or _persistent_secret(settings.data_dir),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SECURE=settings.secure_cookies,
        PERMANENT_SESSION_LIFETIME=8 * 3600,
        MAX_CONTENT_LENGTH=64 * 1024 * 1024,
    )
    database = Database(database_url or app_url(settings))
    server.extensions["dvmap"] = database
    from map_app.errors import guard_dash_dispatch, init_errors

    init_errors(server)  # one bilingual 4xx shape for every route (map_app/errors.py)
    from map_app.auth import init_auth

    init_auth(server, database)
    from callbacks.cache import init_cache

    init_cache(server)
    from map_app.import_page import init_import_page
    from map_app.ogc import api_client_token_scope, init_ogc

    # OGC API – Features: a session or an API client's key (Authorization: Bearer …).
    init_ogc(server, token_scope=api_client_token_scope(database))
    init_import_page(server)  # /admin/import/ (administrators) and /export/… (anyone, own scope)
    from map_app.admin import blueprint as admin_blueprint
    from map_app.open311 import init_open311

    server.register_blueprint(admin_blueprint)
    # Open311 GeoReport v2: public reads by default (DVMAP_OPEN311_READ_KEY=1 requires a key).
    init_open311(server, database.sessionmaker, require_key_for_reads=settings.open311_read_key)
    from map_app.sensor_api import init_sensor_api

    init_sensor_api(server)  # POST /api/sensors/readings for gateways (X-API-Key)
    from map_app.event_routes import init_event_routes; init_event_routes(server)  # noqa: E702  event photos
    from map_app.field_api import init_field_api; init_field_api(server)  # noqa: E702  /api/field/ (phone)
    from map_app.field_page import init_field_page; init_field_page(server)  # noqa: E702  /field phone app (网格通)
    from map_app.public_report import init_public_report; init_public_report(server)  # noqa: E702  /report 随手拍

    @server.get("/healthz")
    def healthz():
        from sqlalchemy import text

        try:
            with database.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # health check reports, never raises
            return jsonify(status="error", database=type(exc).__name__), 503
        return jsonify(status="ok")

    _register_callbacks()
    from map_app.layout import LANG_COOKIE

    app = dash.Dash(
        __name__,
        server=server,
        assets_folder=str(ASSETS),
        title="数字乡村一张图",
        update_title=None,
        serve_locally=True,
        compress=True,  # gzip/brotli for the JS bundles and GeoJSON (flask-compress)
        use_pages=True,
        pages_folder="",  # pages are registered explicitly in map_app/pages.py
        # Each page has its own components; callbacks of other pages are valid.
        suppress_callback_exceptions=True,
    )
    guard_dash_dispatch(app)  # malformed callback requests are 400s, not 500s
    from map_app.pages import init_page_access, register_pages

    register_pages()
    init_page_access(app)  # pages and their callbacks by role (README "Pages and APIs")
    app.layout = dmc.MantineProvider(dash.page_container)

    @server.after_request
    def remember_language(response):
        chosen = request.args.get("lang")
        if chosen in ("zh", "en") and request.path in ("/", "/bigscreen"):
            response.set_cookie(LANG_COOKIE, chosen, max_age=365 * 86400, samesite="Lax", httponly=True)
        return response

    # The ~130,000 objects made at start-up (Dash, SQLAlchemy, pandas, the layout) live as
    # long as the process: move them out of the collector's reach. Otherwise every full
    # collection, triggered by the many dicts of a street-level GeoJSON response, rescans
    # them all: 50–90 ms pauses in 1 of ~20 viewport requests (bench/bench_scale.py, item 2).
    gc.freeze()
    return app
