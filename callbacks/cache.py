"""Caching of layer data (and other repeated queries) with correct invalidation.

Flask-Caching with Redis when ``REDIS_URL`` is set (shared by all gunicorn workers),
an in-process cache otherwise. An entry's key holds the caller's scope (RLS makes
results user-dependent) and the change generations of the data it was built from
(migration 0009): any committed change to those tables makes a new key, so a
stale entry is never served; old entries just expire.
"""
from __future__ import annotations

import hashlib
import os
from typing import Callable

from flask import current_app
from flask_caching import Cache

from geodata.db import Scope
from geodata.queries.generation import generations

EXT = "dvmap_cache"


def init_cache(server) -> Cache:
    """Attach the cache to the Flask app (called by map_app.app.create_app)."""
    redis_url = os.environ.get("REDIS_URL")
    config = {"CACHE_DEFAULT_TIMEOUT": 600, "CACHE_KEY_PREFIX": "dvmap:"}
    if redis_url:
        config.update(CACHE_TYPE="RedisCache", CACHE_REDIS_URL=redis_url)
    else:
        config.update(CACHE_TYPE="SimpleCache", CACHE_THRESHOLD=2000)
    cache = Cache(server, config=config)
    server.extensions[EXT] = cache
    return cache


def scope_key(scope: Scope | None) -> str:
    """A stable, process-independent digest of a scope."""
    if scope is None:
        return "none"
    grids = "*" if scope.grid_uids is None else ",".join(sorted(scope.grid_uids))
    raw = f"{scope.setting()}|{scope.role}|{grids}"
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


def cached(session, kind: str, key: str, depends_on: tuple[str, ...], compute: Callable[[], object],
           timeout: int = 600):
    """Return ``compute()``, cached under ``kind/key`` for the session's scope and data generations."""
    cache: Cache | None = current_app.extensions.get(EXT)
    if cache is None:
        return compute()
    gens = generations(session)
    stamp = ".".join(str(gens.get(name, 0)) for name in sorted(depends_on))
    full = f"{kind}:{scope_key(session.info.get('scope'))}:{stamp}:{hashlib.sha1(key.encode()).hexdigest()}"
    hit = cache.get(full)
    if hit is not None:
        return hit
    value = compute()
    try:
        cache.set(full, value, timeout=timeout)
    except Exception:  # a cache outage must never break the map
        current_app.logger.warning("cache set failed for %s", kind, exc_info=True)
    return value
