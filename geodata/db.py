"""Engines, sessions and the per-transaction access scope.

Every transaction opened through :func:`make_sessionmaker` first writes the
caller's scope into transaction-local settings (``set_config(..., true)``), which the
row-level-security policies of the migrations read. A pooled connection therefore
never carries one request's scope into the next, and a session without a scope
sees no village-scoped rows at all.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

import orjson
from psycopg.types.json import set_json_loads
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from geodata.config import Settings, get_settings

# Layer queries return GeoJSON built in PostGIS as one json value (up to a few MB at
# street level); orjson parses it several times faster than the standard library.
set_json_loads(orjson.loads)


@dataclass(frozen=True)
class Scope:
    """What one user may see: all villages, or a set of village ids.

    Parameters
    ----------
    village_ids : frozenset of int or None
        ``None`` means the whole county.
    role : str
        The user's role, readable by policies as ``dvmap.role``.
    user_id : int or None
        The user's id, readable as ``dvmap.user_id`` (audit, grid-worker rules).
    grid_uids : frozenset of str or None
        For grid workers: the grids whose events they handle (``None``: no limit).
    """

    village_ids: frozenset[int] | None = None
    role: str = "system"
    user_id: int | None = None
    grid_uids: frozenset[str] | None = None

    @classmethod
    def county(cls, role: str = "system", user_id: int | None = None) -> "Scope":
        return cls(None, role, user_id)

    @classmethod
    def villages(cls, ids: Iterable[int], role: str, user_id: int | None = None) -> "Scope":
        return cls(frozenset(int(i) for i in ids), role, user_id)

    def setting(self) -> str:
        if self.village_ids is None:
            return "*"
        # An empty set must stay distinguishable from "everything".
        return ",".join(str(i) for i in sorted(self.village_ids)) or "-1"

    def allows_village(self, village_id: int | None) -> bool:
        return self.village_ids is None or (village_id is not None and village_id in self.village_ids)


#: The scope of system jobs (demo loader, migrations' data steps, ingest worker).
SYSTEM = Scope.county("system")


def normalise_url(url: str) -> str:
    """Return ``url`` with the psycopg 3 driver, accepting ``postgres://`` forms."""
    url = re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", url)
    return url.replace("postgresql+psycopg2://", "postgresql+psycopg://")


def mask_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # a malformed URL: mask whatever sits between ':' and '@'
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def app_url(settings: Settings | None = None) -> str:
    """URL the web app connects with (the RLS-restricted app role)."""
    settings = settings or get_settings()
    if settings.database_url:
        return normalise_url(settings.database_url)
    from geodata.cluster import LocalCluster

    return LocalCluster(settings).urls().app


def owner_url(settings: Settings | None = None) -> str:
    """URL migrations and loaders connect with (owner of the schema)."""
    import os

    settings = settings or get_settings()
    if os.environ.get("DVMAP_OWNER_URL"):
        return normalise_url(os.environ["DVMAP_OWNER_URL"])
    if settings.database_url:
        return normalise_url(settings.database_url)
    from geodata.cluster import LocalCluster

    return LocalCluster(settings).urls().owner


def make_engine(url: str, **kw) -> Engine:
    """Create an engine for ``url`` with sane pool settings."""
    kw.setdefault("pool_pre_ping", True)
    if "poolclass" not in kw:
        kw.setdefault("pool_size", 5)
        kw.setdefault("max_overflow", 5)
    connect_args = dict(kw.pop("connect_args", {}))
    connect_args.setdefault("connect_timeout", 5)
    connect_args.setdefault("application_name", "dvmap")
    url = normalise_url(url)
    connect_args["options"] = durable_options(connect_args.get("options") or make_url(url).query.get("options"))
    return create_engine(url, connect_args=connect_args, **kw)


def durable_options(options: str | tuple | None) -> str:
    """libpq ``options`` with ``-c synchronous_commit=on`` added unless they set it already.

    What the app acknowledges (201, an MQTT ack) must not depend on how the server
    is configured; only an explicit ``synchronous_commit`` in the URL's own options
    (or a loader's ``SET LOCAL``) opts out.
    """
    if isinstance(options, tuple):  # the same key given twice in the URL
        options = " ".join(options)
    options = (options or "").strip()
    if "synchronous_commit" in options:
        return options
    return f"{options} -c synchronous_commit=on".strip()


def apply_scope(connection, scope: Scope) -> None:
    """Write ``scope`` into the current transaction's settings (transaction-local)."""
    connection.execute(
        text(
            "SELECT set_config('dvmap.scope', :scope, true),"
            " set_config('dvmap.role', :role, true),"
            " set_config('dvmap.user_id', :uid, true),"
            " set_config('dvmap.grids', :grids, true)"
        ),
        {
            "scope": scope.setting(),
            "role": scope.role,
            "uid": "" if scope.user_id is None else str(scope.user_id),
            "grids": "*" if scope.grid_uids is None else ",".join(sorted(scope.grid_uids)),
        },
    )


class ScopedSession(Session):
    """A Session whose every transaction starts by applying ``info['scope']``."""


@event.listens_for(ScopedSession, "after_begin")
def _set_scope(session: Session, transaction, connection) -> None:  # noqa: ARG001
    scope = session.info.get("scope")
    if scope is not None:
        apply_scope(connection, scope)


def make_sessionmaker(engine: Engine) -> sessionmaker:
    """Sessionmaker whose sessions apply the scope given as ``info={'scope': ...}``."""
    return sessionmaker(engine, class_=ScopedSession, expire_on_commit=False)


def scoped(factory: sessionmaker, scope: Scope) -> Session:
    """Open a session bound to ``scope`` (use as a context manager)."""
    return factory(info={"scope": scope})


class Database:
    """The app's engine and session factory, plus how to find the caller's scope.

    Parameters
    ----------
    url : str
        URL of the app role (RLS applies).
    scope_provider : callable
        Returns the :class:`Scope` of the current request; the web layer supplies it
        from the server-side session, never from request input.
    """

    def __init__(self, url: str, scope_provider=None, **engine_kw):
        self.url = url
        self.engine = make_engine(url, **engine_kw)
        self.sessionmaker = make_sessionmaker(self.engine)
        self.scope_provider = scope_provider or (lambda: Scope())

    def session(self, scope: Scope | None = None) -> Session:
        """A session scoped to ``scope`` or, by default, to the current request's scope."""
        return scoped(self.sessionmaker, scope if scope is not None else self.scope_provider())
