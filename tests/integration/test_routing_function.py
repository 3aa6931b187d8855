"""0012's faster ``dvmap_route_event`` answers exactly what 0002's did, on the demo county."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from sqlalchemy import text

from geodata.db import Scope, apply_scope

VERSIONS = Path(__file__).parents[2] / "geodata" / "migrations" / "versions"


def _first_function() -> str:
    spec = importlib.util.spec_from_file_location("dvmap_migration_0002_test", VERSIONS / "0002_events.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ROUTE_EVENT_FUNCTION.replace("dvmap_route_event(", "dvmap_route_event_0002(", 1)


@pytest.fixture
def conn(owner_engine, demo_db):
    """An owner connection with 0002's function beside 0012's, rolled back afterwards."""
    c = owner_engine.connect()
    trans = c.begin()
    apply_scope(c, Scope.county())
    c.execute(text(_first_function()))
    yield c
    trans.rollback()
    c.close()


def _points(conn) -> list[tuple[float, float]]:
    inside = conn.execute(text(
        "SELECT ST_X(g), ST_Y(g) FROM (SELECT (ST_Dump(ST_GeneratePoints(geom, 600, 3))).geom g FROM county) q"
    )).all()
    # points within a few tens of metres of grid edges and corners: the boundary guard's cases
    edges = conn.execute(text(
        """
        SELECT ST_X(d.geom) + (random() - 0.5) * 6e-4, ST_Y(d.geom) + (random() - 0.5) * 6e-4
          FROM (SELECT geom FROM grid WHERE valid_to IS NULL ORDER BY id LIMIT 16) g,
               LATERAL ST_DumpPoints(ST_Boundary(g.geom)) d
        """
    )).all()
    box = conn.execute(text("SELECT ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom) FROM county")).one()
    outside = [(box[0] - 0.01, box[1] - 0.01), (box[2] + 0.2, box[3]), ((box[0] + box[2]) / 2, box[1] - 0.003)]
    return [tuple(p) for p in inside] + [tuple(p) for p in edges] + outside


@pytest.mark.parametrize("metres", [30.0, 0.0, 150.0])
def test_faster_routing_answers_like_the_first_on_thousands_of_points(conn, metres):
    conn.execute(text("SELECT setseed(0.25)"))
    points = _points(conn)
    assert len(points) > 2000
    seen = {"grid": 0, "village": 0, "county": 0, "pending": 0}
    for x, y in points:
        args = {"x": x, "y": y, "m": metres}
        new = conn.execute(text("SELECT * FROM dvmap_route_event(:x, :y, '0101', :m)"), args).one()
        old = conn.execute(text("SELECT * FROM dvmap_route_event_0002(:x, :y, '0101', :m)"), args).one()
        assert tuple(new) == tuple(old), (x, y)
        seen[new.queue] += 1
        seen["pending"] += new.boundary_pending
    # the sample covers every branch: in a grid, outside the county, and near edges
    assert seen["grid"] > 500 and seen["county"] >= 3
    if metres:
        assert seen["pending"] > 100


def test_routing_puts_the_callers_scope_back(conn):
    village = conn.execute(text("SELECT id FROM village ORDER BY id LIMIT 1")).scalar()
    x, y = conn.execute(text("SELECT ST_X(label_point), ST_Y(label_point) FROM village ORDER BY id DESC LIMIT 1")).one()
    apply_scope(conn, Scope.villages([village], "village_official"))
    before = conn.execute(text("SELECT current_setting('dvmap.scope')")).scalar()
    row = conn.execute(text("SELECT * FROM dvmap_route_event(:x, :y, '0101', 30)"), {"x": x, "y": y}).one()
    assert row.village_id != village and row.grid_id is not None  # routing saw the other village's grid
    assert conn.execute(text("SELECT current_setting('dvmap.scope')")).scalar() == before == str(village)
