"""A small county of its own for import tests, inside a transaction rolled back afterwards.

The demo county (Deqing) may or may not be loaded in the test database, so the test
county lies beside it (north-east, still in Gauss-Krüger zone CM 120E) with codes of
its own; everything is inserted in the test's transaction and rolled back.
"""
from __future__ import annotations

import pytest
import shapely
from sqlalchemy import text

from geodata.db import SYSTEM, apply_scope

COUNTY_BOX = (120.40, 30.80, 120.60, 30.95)
WEST_BOX = (120.40, 30.80, 120.50, 30.95)
EAST_BOX = (120.50, 30.80, 120.60, 30.95)
COUNTY_CODE = "330599"
TOWN_CODE = "330599100000"
WEST_CODE = "330599100001"
EAST_CODE = "330599100002"
INSIDE = [(120.41, 30.82), (120.44, 30.86), (120.47, 30.90), (120.52, 30.83), (120.57, 30.92)]

DATA_TABLES = ("village", "grid", "resource", "population", "sensor", "custom_layer", "custom_feature",
               "raster_dataset")


def _wkt_box(b):
    return shapely.box(*b).wkt


def make_world(conn) -> dict:
    """Insert the tiny county (in the caller's transaction)."""
    apply_scope(conn, SYSTEM)
    conn.execute(text("INSERT INTO county (code, name, geom, source) VALUES "
                      "(:code, '测试县', ST_Multi(ST_GeomFromText(:g, 4490)), 'test')"), {"g": _wkt_box(COUNTY_BOX), "code": COUNTY_CODE})
    town = conn.execute(text("INSERT INTO town (county_id, code, name, geom) SELECT id, :c, '测试镇', geom FROM county"
                             " WHERE code = :k RETURNING id"), {"c": TOWN_CODE, "k": COUNTY_CODE}).scalar_one()
    ids = {}
    for code, name, box in ((WEST_CODE, "西村", WEST_BOX), (EAST_CODE, "东村", EAST_BOX)):
        ids[code] = conn.execute(text(
            "INSERT INTO village (town_id, code, name, geom, label_point) VALUES (:t, :c, :n,"
            " ST_Multi(ST_GeomFromText(:g, 4490)), ST_PointOnSurface(ST_GeomFromText(:g, 4490))) RETURNING id"),
            {"t": town, "c": code, "n": name, "g": _wkt_box(box)}).scalar_one()
    return {"town_id": town, "villages": ids}


def snapshot(conn) -> dict:
    """A fingerprint of every data table and of the successful imports."""
    apply_scope(conn, SYSTEM)
    out = {}
    for t in DATA_TABLES:
        out[t] = conn.execute(text(f"SELECT count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), ''))"
                                   f" FROM {t} x")).one()
    out["imported"] = conn.execute(text("SELECT count(*) FROM import_report WHERE status = 'imported'")).scalar_one()
    return out


@pytest.fixture
def world(owner_engine):
    """(connection, ids): an owner connection in a transaction with the tiny county, rolled back after."""
    conn = owner_engine.connect()
    trans = conn.begin()
    try:
        ids = make_world(conn)
        yield conn, ids
    finally:
        trans.rollback()
        conn.close()


def test_world_has_two_villages_and_snapshot_is_stable(world):
    conn, ids = world
    assert len(ids["villages"]) == 2
    assert snapshot(conn) == snapshot(conn)
