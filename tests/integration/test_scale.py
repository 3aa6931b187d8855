"""A million events: the bulk loader routes them in SQL, and the map's queries use the indexes.

Runs in a database of its own (the other tests count events in theirs).
"""
from __future__ import annotations

import json
import os

import pytest
from sqlalchemy import text

N = int(os.environ.get("DVMAP_SCALE_EVENTS", "1000000"))


@pytest.fixture(scope="module")
def million(pg):
    from etl.bulk_events import load_synthetic
    from etl.demo import load_demo
    from geodata import migrate
    from geodata.cluster import LocalCluster
    from geodata.config import get_settings
    from geodata.db import make_engine

    if pg.superuser_url is None:
        pytest.fail("the scale test needs the embedded cluster (or a server where it may create databases)")
    cluster = LocalCluster(get_settings())
    name = f"dvmap_scale_{os.getpid()}"
    cluster.drop_database(name)
    cluster.ensure_database(name)
    urls = cluster.urls(name)
    migrate.upgrade(urls.owner)
    load_demo(urls.owner, seed=42)
    summary = load_synthetic(urls.owner, N, seed=11, years=3)
    engine = make_engine(urls.app)
    yield {"engine": engine, "summary": summary, "owner": make_engine(urls.owner)}
    engine.dispose()
    from sqlalchemy.orm import close_all_sessions

    close_all_sessions()
    cluster.drop_database(name)


def _plan(engine, sql: str, params: dict) -> str:
    from geodata.db import SYSTEM, apply_scope

    with engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        rows = conn.execute(text("EXPLAIN (FORMAT JSON) " + sql), params).scalar()
    return json.dumps(rows)


def test_every_event_is_routed_to_a_grid_in_set_based_sql(million):
    from geodata.db import SYSTEM, apply_scope

    assert million["summary"]["events"] == N
    with million["engine"].begin() as conn:
        apply_scope(conn, SYSTEM)
        total, unrouted, wrong = conn.execute(text(
            """SELECT count(*), count(*) FILTER (WHERE grid_id IS NULL),
                      count(*) FILTER (WHERE grid_id IS NOT NULL AND NOT EXISTS (
                          SELECT 1 FROM grid g WHERE g.id = e.grid_id AND ST_Intersects(g.geom, e.geom)))
                 FROM (SELECT * FROM event TABLESAMPLE SYSTEM (1)) e""")).one()
        history = conn.execute(text("SELECT count(*) FROM event_history WHERE action = 'import'")).scalar()
    assert total > 0 and unrouted == 0 and wrong == 0
    assert history == N


def test_viewport_query_uses_the_spatial_index_at_a_million_rows(million):
    """The map's own points query (all slices, widest filter) reads every filled partition by GiST."""
    from geodata.db import SYSTEM, Database
    from geodata.queries import events_map

    db = Database(million["engine"].url.render_as_string(hide_password=False))
    with db.session(SYSTEM) as s:
        x, y = s.execute(text("SELECT ST_X(label_point), ST_Y(label_point) FROM village LIMIT 1")).one()
        sql, params = events_map.points_query(s, (x - 0.01, y - 0.005, x + 0.01, y + 0.005),
                                              state_group="all", days=3650)
    db.engine.dispose()
    plan = json.loads(_plan(million["engine"], sql, params))
    with million["owner"].begin() as conn:
        from geodata.db import apply_scope

        apply_scope(conn, SYSTEM)
        filled = {r[0] for r in conn.execute(text(
            "SELECT tableoid::regclass::text FROM event GROUP BY 1 HAVING count(*) > 1000"))}
    scans = []

    def walk(node):
        if node.get("Relation Name", "").startswith("event"):
            index = node.get("Index Name") or next(
                (c.get("Index Name") for c in node.get("Plans", []) if c.get("Index Name")), None)
            scans.append((node["Relation Name"], node["Node Type"], index))
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    read = {rel for rel, _, _ in scans if rel != "event_subclass"}
    assert filled and filled <= read, (filled, scans)
    # Every partition holding data is read through its (geom, reported_at) GiST index.
    for rel, node_type, index in scans:
        if rel in filled:
            assert node_type in ("Bitmap Heap Scan", "Index Scan") and "geom_reported_at" in (index or ""), scans


def test_recent_window_counts_prune_partitions(million):
    from geodata.queries import events_map

    where, params = events_map._filters("open", None, 30)
    plan = _plan(million["engine"], f"SELECT e.village_id, count(*) FROM event e WHERE {where} GROUP BY 1", params)
    # Only the current year's partition (and the default one) may be read for a 30-day window.
    years = {p for p in ("event_y2021", "event_y2022", "event_y2023", "event_y2024") if p in plan}
    assert not years, years


def test_province_job_on_dask_matches_the_database(million):
    from etl.province_job import bin_in_database, bin_with_dask, hotspots, last_months

    owner_url = million["owner"].url.render_as_string(hide_password=False)
    window = last_months(3)
    in_db = bin_in_database(owner_url, window, 1000.0)
    with_dask = bin_with_dask(owner_url, window, 1000.0)  # dask's local threaded scheduler
    merged = in_db.merge(with_dask, on=["county", "ix", "iy"], how="outer", suffixes=("_db", "_dask")).fillna(0)
    assert len(in_db) > 50 and (merged.n_db == merged.n_dask).all()
    hot = hotspots(with_dask)
    assert (hot.z > 1.96).any()  # the synthetic data has hotspots, and Gi* finds them
