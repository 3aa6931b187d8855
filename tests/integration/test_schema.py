"""The migrated schema: indexes, CRS, row-level security, the app role's powers."""
from __future__ import annotations

from sqlalchemy import text

SCOPED = {"village", "person", "grid", "resource", "population", "sensor", "sensor_reading"}


def test_every_geometry_column_has_a_gist_index_and_the_storage_srid(owner_engine):
    with owner_engine.connect() as conn:
        cols = conn.execute(text(
            "SELECT f_table_name, f_geometry_column, srid FROM geometry_columns WHERE f_table_schema = 'public'"
        )).all()
        assert cols, "no geometry columns"
        for table, column, srid in cols:
            assert srid == 4490, (table, column, srid)
            n = conn.execute(text(
                """
                SELECT count(*) FROM pg_index i
                  JOIN pg_class c ON c.oid = i.indexrelid
                  JOIN pg_am am ON am.oid = c.relam
                  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                 WHERE i.indrelid = CAST(:t AS regclass) AND a.attname = :c AND am.amname = 'gist'
                """
            ), {"t": table, "c": column}).scalar()
            assert n >= 1, f"{table}.{column} has no GiST index"


def test_scoped_tables_have_forced_rls(owner_engine):
    with owner_engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
            "WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p') AND relname = ANY(:names)"
        ), {"names": list(SCOPED)}).all()
    assert {r[0] for r in rows} == SCOPED
    assert all(r[1] and r[2] for r in rows), rows


def test_app_role_is_not_owner_superuser_or_bypassrls(app_engine):
    with app_engine.connect() as conn:
        su, bypass = conn.execute(text(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")).one()
        owned = conn.execute(text(
            "SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)"
        )).scalar()
    assert not su and not bypass and owned == 0


def test_no_scope_means_no_rows_and_a_village_scope_means_that_village(app_engine, demo_db):
    from geodata.db import Scope, apply_scope

    with app_engine.begin() as conn:  # no set_config at all
        assert conn.execute(text("SELECT count(*) FROM village")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM sensor")).scalar() == 0
    with app_engine.begin() as conn:
        apply_scope(conn, Scope.county())
        ids = [r[0] for r in conn.execute(text("SELECT id FROM village ORDER BY id LIMIT 2"))]
    with app_engine.begin() as conn:
        apply_scope(conn, Scope.villages([ids[0]], "village_official"))
        assert conn.execute(text("SELECT array_agg(DISTINCT id) FROM village")).scalar() == [ids[0]]
        assert conn.execute(text("SELECT count(DISTINCT village_id) FROM grid")).scalar() == 1
        # Writing into another village is refused by the policy's WITH CHECK.
        import pytest
        from sqlalchemy.exc import ProgrammingError

        with pytest.raises(ProgrammingError):
            conn.execute(text("UPDATE resource SET village_id = :other WHERE village_id = :mine"),
                         {"other": ids[1], "mine": ids[0]})


def test_app_role_cannot_change_reference_data(app_engine, demo_db):
    import pytest
    from sqlalchemy.exc import ProgrammingError

    from geodata.db import SYSTEM, apply_scope

    with pytest.raises(ProgrammingError):
        with app_engine.begin() as conn:
            apply_scope(conn, SYSTEM)
            conn.execute(text("UPDATE county SET name = 'x'"))


def test_postgis_bbox_operators_are_leakproof_so_rls_tables_can_use_gist(owner_engine):
    # Without this every viewport query on an RLS table is a sequential scan.
    with owner_engine.connect() as conn:
        rows = conn.execute(text(
            """SELECT p.proname, p.proleakproof FROM pg_operator o JOIN pg_proc p ON p.oid = o.oprcode
                WHERE o.oprname IN ('&&', '~', '@') AND o.oprleft = 'geometry'::regtype
                  AND o.oprright = 'geometry'::regtype""")).all()
    assert rows and all(leak for _, leak in rows), rows
