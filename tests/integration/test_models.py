"""The models (geodata/models) declare the schema the migrations build, with no drift.

Alembic's autogenerate comparison (what ``alembic check`` / ``dvmap migrate --check``
runs) must find nothing between ``Base.metadata`` and the test database migrated by
the real migrations. Alembic does not compare CHECK constraints nor the WHERE of a
partial index, so a second test builds the models into a schema of their own (in a
transaction rolled back) and compares PostgreSQL's own rendering of every
constraint, index, column type and default with the migrated tables.
"""
from __future__ import annotations

import pprint
import warnings

import pytest
from sqlalchemy import inspect, text

from geodata import migrate
from geodata.models import Base
from geodata.models.autogen import POSTGIS_TABLES, partition_names, schema_drift

COPY_SCHEMA = "dvmap_models_copy"


@pytest.fixture
def owner_conn(owner_engine):
    """An owner connection inside a transaction that is rolled back (DDL included)."""
    with owner_engine.connect() as conn:
        trans = conn.begin()
        conn.execute(text("SET LOCAL lock_timeout = '10s'"))
        try:
            yield conn
        finally:
            trans.rollback()


def _drift(conn) -> list:
    # A changed generated expression is only a warning in Alembic: count it as drift.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return schema_drift(conn)


def test_models_match_the_migrated_database(owner_conn):
    diffs = _drift(owner_conn)
    assert diffs == [], "models and migrations differ:\n" + pprint.pformat(diffs, width=120)


def test_alembic_check_passes_through_env_py(pg):
    """``alembic check`` with the project's env.py (what ``dvmap migrate --check`` runs)."""
    assert migrate.check(pg.owner_url) == ""


def test_every_migrated_table_has_a_model(owner_conn):
    inspector = inspect(owner_conn)
    skip = partition_names(owner_conn) | POSTGIS_TABLES | {"alembic_version"}
    tables = set(inspector.get_table_names()) - skip
    assert tables, "no tables found: is the test database migrated?"
    assert sorted(tables - set(Base.metadata.tables)) == [], "tables without a model"
    assert sorted(set(Base.metadata.tables) - tables) == [], "models without a table"


def test_drift_is_reported(owner_conn):
    """The comparison is not blind: changes to the database show up as differences."""
    for sql in (
        "ALTER TABLE sensor ADD COLUMN unmodelled integer",
        "DROP INDEX event_open_due_idx",
        "ALTER TABLE town ALTER COLUMN kind SET DEFAULT 'township'",
        "ALTER TABLE event ALTER COLUMN id DROP DEFAULT",
        "ALTER TABLE resource ALTER COLUMN geom TYPE geometry(Point, 4326) USING ST_SetSRID(geom, 4326)",
        "ALTER TABLE event_history DROP CONSTRAINT event_history_event_id_event_reported_at_fkey",
        "CREATE TABLE unmodelled_table (id integer PRIMARY KEY)",
    ):
        owner_conn.execute(text(sql))
    found = {(d[0][0], d[0][2], d[0][3]) if isinstance(d, list) else (d[0],) for d in _drift(owner_conn)}
    assert {
        ("remove_column",), ("add_index",), ("add_fk",), ("remove_table",),
        ("modify_default", "town", "kind"), ("modify_default", "event", "id"),
        ("modify_type", "resource", "geom"),
    } <= found, pprint.pformat(found)


def _catalog(conn, schema: str) -> dict[str, set[tuple]]:
    """PostgreSQL's rendering of the constraints, indexes and columns of ``schema``'s tables."""
    conn.execute(text(f"SET LOCAL search_path = {schema}, public"))
    skip = partition_names(conn) | POSTGIS_TABLES | {"alembic_version"}
    params = {"s": schema}
    tables = "c.relnamespace = CAST(:s AS regnamespace) AND c.relkind IN ('r', 'p') AND NOT c.relispartition"

    def rows(sql: str) -> set[tuple]:
        return {tuple(str(v).replace(f"{schema}.", "") for v in r)
                for r in conn.execute(text(sql), params) if r[0] not in skip}

    return {
        # conparentid = 0: not the copies PostgreSQL makes for each partition; contype 't':
        # constraint triggers (grid_topology) are the migrations' own, like all triggers
        "constraints": rows(f"""
            SELECT c.relname, k.conname, pg_get_constraintdef(k.oid)
              FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
             WHERE {tables} AND k.conparentid = 0 AND k.contype <> 't'"""),
        "indexes": rows(f"""
            SELECT c.relname, i.relname, pg_get_indexdef(x.indexrelid)
              FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid
             WHERE {tables}"""),
        "columns": rows(f"""
            SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attgenerated,
                   pg_get_expr(d.adbin, d.adrelid)
              FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
              LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
             WHERE {tables} AND a.attnum > 0 AND NOT a.attisdropped"""),
        "partitioning": rows(f"""
            SELECT c.relname, pg_get_partkeydef(c.oid) FROM pg_class c WHERE {tables} AND c.relkind = 'p'"""),
    }


def _copy_differences(conn) -> dict[str, tuple[list, list]]:
    """Build the models into their own schema; per kind, what only the migrations / only the models have."""
    migrated = _catalog(conn, "public")
    conn.execute(text(f"CREATE SCHEMA {COPY_SCHEMA}"))
    conn.execute(text(f"SET LOCAL search_path = {COPY_SCHEMA}, public"))
    Base.metadata.create_all(conn.execution_options(schema_translate_map={None: COPY_SCHEMA}))
    built = _catalog(conn, COPY_SCHEMA)
    assert any(name == "event_state_check" for _t, name, _d in migrated["constraints"])
    return {kind: (sorted(migrated[kind] - built[kind]), sorted(built[kind] - migrated[kind]))
            for kind in migrated if migrated[kind] != built[kind]}


def test_checks_indexes_and_defaults_match(owner_conn):
    """The models built by SQLAlchemy give the same CHECKs, keys, indexes and defaults as the migrations."""
    differences = _copy_differences(owner_conn)
    assert differences == {}, "\n".join(
        f"{kind} differ\nmigrations only:\n{pprint.pformat(a, width=160)}\nmodels only:\n{pprint.pformat(b, width=160)}"
        for kind, (a, b) in differences.items())


def test_check_and_partial_index_drift_is_reported(owner_conn):
    """What Alembic cannot see (a CHECK, a partial index's WHERE) the copy comparison does."""
    owner_conn.execute(text(
        "ALTER TABLE town DROP CONSTRAINT town_kind_check;"
        " ALTER TABLE town ADD CONSTRAINT town_kind_check CHECK (kind IN ('town', 'subdistrict', 'township', 'district'));"
        " DROP INDEX grid_current_code_uq;"
        " CREATE UNIQUE INDEX grid_current_code_uq ON grid (code) WHERE valid_to IS NOT NULL"))
    assert _drift(owner_conn) == []  # Alembic alone misses both
    differences = _copy_differences(owner_conn)
    assert [c[:2] for c in differences["constraints"][0]] == [("town", "town_kind_check")]
    assert [i[:2] for i in differences["indexes"][0]] == [("grid", "grid_current_code_uq")]
