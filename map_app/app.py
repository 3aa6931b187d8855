"""Composition root: creates the Flask server and the Dash app, wires everything."""
from __future__ import annotations

import logging
import secrets
from pathlib import Path

import dash
from flask import Flask, jsonify

from geodata.config import PROJECT_ROOT, get_settings
from geodata.db import Database, Scope, app_url

log = logging.getLogger("dvmap")

ASSETS = PROJECT_ROOT / "assets"


def _county_scope() -> Scope:
    # Until login exists (issue 3) every request sees the county, read through RLS.
    return Scope.county("viewer")


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
        SECRET_KEY=settings.secret_key or secrets.token_hex(32),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    database = Database(database_url or app_url(settings), scope_provider=_county_scope)
    server.extensions["dvmap"] = database

    @server.get("/healthz")
    def healthz():
        from sqlalchemy import text

        try:
            with database.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # health check reports, never raises
            return jsonify(status="error", database=type(exc).__name__), 503
        return jsonify(status="ok")

    import callbacks.map  # noqa: F401  (registers the callbacks)
    from map_app.layout import serve_layout

    app = dash.Dash(
        __name__,
        server=server,
        assets_folder=str(ASSETS),
        title="数字乡村一张图",
        update_title=None,
        serve_locally=True,
        suppress_callback_exceptions=False,
    )
    with server.app_context():
        app.layout = serve_layout
    return app
