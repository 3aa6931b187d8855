"""Shared fixtures: a real PostGIS (the project's own cluster or DATABASE_URL).

Integration tests never skip: if PostGIS cannot be started the fixture fails.
Each pytest run gets a database of its own (``dvmap_test_<pid>``) on the embedded
cluster, migrated by Alembic, with the demo county loaded once when a test asks.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
from sqlalchemy import text

from geodata.config import get_settings


@dataclass
class TestDatabase:
    owner_url: str
    app_url: str
    superuser_url: str | None
    name: str


def make_test_database(prefix: str):
    """Generator: a migrated, empty database ``<prefix>_<pid>`` on a real PostgreSQL + PostGIS.

    With DATABASE_URL set, that server's database is used (and shared) instead.
    """
    from geodata import migrate
    from geodata.cluster import ClusterError, LocalCluster

    settings = get_settings()
    created = None
    if settings.database_url:
        from geodata.db import normalise_url, owner_url

        db = TestDatabase(owner_url(settings), normalise_url(settings.database_url), None, "external")
    else:
        cluster = LocalCluster(settings)
        try:
            cluster.start()
        except ClusterError as exc:
            pytest.fail(f"PostGIS could not be started: {exc}", pytrace=False)
        name = f"{prefix}_{os.getpid()}"
        cluster.drop_database(name)
        cluster.ensure_database(name)
        created = (cluster, name)
        urls = cluster.urls(name)
        db = TestDatabase(urls.owner, urls.app, urls.superuser, name)
    migrate.upgrade(db.owner_url)
    yield db
    if created and not os.environ.get("DVMAP_KEEP_TEST_DB"):
        from sqlalchemy.orm import close_all_sessions

        close_all_sessions()
        created[0].drop_database(created[1])


def make_engine_for(url: str):
    """Generator: an engine for ``url``, disposed afterwards."""
    from geodata.db import make_engine

    engine = make_engine(url)
    yield engine
    engine.dispose()


def load_demo_county(db: TestDatabase) -> dict:
    """Load the demo county (seed 42) and the demo accounts into ``db`` once."""
    from etl.demo_accounts import ensure_demo_accounts
    from etl.demo import DemoAlreadyLoaded, load_demo

    try:
        summary = load_demo(db.owner_url, seed=42)
    except DemoAlreadyLoaded:  # an external database loaded by an earlier run
        summary = {}
    summary["accounts"] = ensure_demo_accounts(db.owner_url)
    return summary


@pytest.fixture(scope="session")
def pg() -> TestDatabase:
    """A migrated, empty test database on a real PostgreSQL + PostGIS."""
    yield from make_test_database("dvmap_test")


@pytest.fixture(scope="session")
def owner_engine(pg):
    yield from make_engine_for(pg.owner_url)


@pytest.fixture(scope="session")
def app_engine(pg):
    yield from make_engine_for(pg.app_url)


@pytest.fixture(scope="session")
def demo_db(pg):
    """The test database with the demo county (seed 42) loaded once."""
    return load_demo_county(pg)


def session_for(conn, scope=None):
    """A session on the test's connection ``conn`` with ``scope`` (default: the county) applied.

    Its commits are savepoints: the connection's own transaction decides what stays.
    """
    from geodata.db import SYSTEM, ScopedSession, apply_scope

    scope = scope or SYSTEM
    apply_scope(conn, scope)
    return ScopedSession(bind=conn, join_transaction_mode="create_savepoint", info={"scope": scope})


def rolled_back_connection(engine):
    """Generator: a connection of ``engine`` inside a transaction rolled back afterwards."""
    c = engine.connect()
    t = c.begin()
    yield c
    t.rollback()
    c.close()


def rolled_back_session(engine):
    """Generator: a county-scoped app session in a transaction rolled back afterwards."""
    conn = engine.connect()
    trans = conn.begin()
    session = session_for(conn)
    try:
        yield session
    finally:
        session.close()
        trans.rollback()
        conn.close()


@pytest.fixture
def db_session(app_engine, demo_db):
    """A county-scoped app session inside a transaction rolled back afterwards."""
    yield from rolled_back_session(app_engine)


def scalar(engine, sql: str, **params):
    """Run ``sql`` with the county scope on ``engine`` and return the scalar."""
    from geodata.db import SYSTEM, apply_scope

    with engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        return conn.execute(text(sql), params).scalar()


def pytest_collection_modifyitems(session, config, items):
    """Run unit, then integration, then browser tests.

    Browser tests drive the app as people do and commit what they do (grids drawn,
    events reported), so they go last: the integration tests before them can count
    the demo county exactly. Within a folder the order stays as collected.
    """
    from pathlib import Path

    rank = {"unit": 0, "integration": 1, "browser": 2}
    items.sort(key=lambda item: rank.get(Path(str(item.fspath)).parent.name, 1))
