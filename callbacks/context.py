"""How callbacks reach the database: through the Flask app, with the request's scope.

The scope comes from the server side (see map_app.app), never from callback inputs.
"""
from __future__ import annotations

from flask import current_app

from geodata.db import Database


def db() -> Database:
    return current_app.extensions["dvmap"]


def session():
    """A session bound to the current request's scope (use as a context manager)."""
    return db().session()
