"""geodata.grids: the pure geometry helpers that run before anything reaches PostGIS."""
from __future__ import annotations

import json
import math

import pytest
import shapely
from shapely.geometry import MultiPolygon, Polygon

from geodata import grids as G

SQUARE = [[120.0, 30.0], [120.01, 30.0], [120.01, 30.01], [120.0, 30.01], [120.0, 30.0]]


def poly(*rings):
    return {"type": "Polygon", "coordinates": [list(map(list, r)) for r in rings]}


def test_ring_area_is_the_shoelace_area_closed_or_not():
    assert G.ring_area(SQUARE) == pytest.approx(1e-4)
    assert G.ring_area(SQUARE[:-1]) == pytest.approx(1e-4)
    assert G.ring_area(list(reversed(SQUARE))) == pytest.approx(1e-4)
    assert G.ring_area(SQUARE[:2]) == 0


@pytest.mark.parametrize("ring, issue", [
    (SQUARE, None),
    ([[0, 0], [1, 0], [1, 0], [0, 0]], "duplicate_vertices"),           # 3 vertices, one doubled
    ([[0, 0], [0, 0], [0, 0], [0, 0]], "duplicate_vertices"),
    ([[0, 0], [1, 1], [0, 0], [1, 1], [0, 0]], "duplicate_vertices"),   # back and forth
    ([[0, 0], [1, 1], [2, 2], [0, 0]], "zero_area"),                    # collinear
    ([[0, 0], [1, 0], [2, 0], [3, 0], [0, 0]], "zero_area"),
    ([[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]], None),                   # bow-tie: left to ST_IsValid
])
def test_ring_issue(ring, issue):
    assert G.ring_issue(ring) == issue


def test_parse_polygon_accepts_geometry_feature_collection_and_json_text():
    g = G.parse_polygon(poly(SQUARE))
    assert isinstance(g, Polygon) and g.area == pytest.approx(1e-4)
    feature = {"type": "Feature", "properties": {}, "geometry": poly(SQUARE)}
    assert G.parse_polygon(feature).equals(g)
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": poly([[0, 0], [1, 0], [1, 1], [0, 0]])}, feature]}
    assert G.parse_polygon(fc).equals(g)    # the last drawn
    assert G.parse_polygon(json.dumps(poly(SQUARE))).equals(g)
    multi = {"type": "MultiPolygon", "coordinates": [poly(SQUARE)["coordinates"],
                                                     poly([[121, 30], [121.01, 30], [121, 30.01], [121, 30]])
                                                     ["coordinates"]]}
    assert isinstance(G.parse_polygon(multi), MultiPolygon)


def test_parse_polygon_drops_repeated_vertices_and_closes_open_rings():
    ring = [[120.0, 30.0], [120.0, 30.0], [120.01, 30.0], [120.01, 30.01], [120.01, 30.01], [120.0, 30.01]]
    g = G.parse_polygon(poly(ring))
    assert list(g.exterior.coords) == [(120.0, 30.0), (120.01, 30.0), (120.01, 30.01), (120.0, 30.01), (120.0, 30.0)]


def test_parse_polygon_keeps_holes_and_exact_coordinates():
    hole = [[120.002, 30.002], [120.004, 30.002], [120.004, 30.004], [120.002, 30.002]]
    exact = 120.12345678901234
    outer = [[exact, 30.0], [120.2, 30.0], [120.2, 30.1], [exact, 30.0]]
    g = G.parse_polygon(poly(outer, hole))
    assert len(g.interiors) == 1 and g.exterior.coords[0][0] == exact


@pytest.mark.parametrize("obj, code", [
    ("not json", "not_geojson"),
    (42, "not_geojson"),
    ({"type": "FeatureCollection", "features": []}, "empty"),
    ({"type": "Point", "coordinates": [120, 30]}, "not_polygon"),
    ({"type": "LineString", "coordinates": [[120, 30], [121, 30]]}, "not_polygon"),
    ({"type": "Polygon", "coordinates": []}, "empty"),
    (poly([[120, 30], [float("nan"), 30], [120, 31], [120, 30]]), "bad_coordinates"),
    (poly([[120, 30], [200, 30], [120, 31], [120, 30]]), "bad_coordinates"),
    (poly([[120, 30], ["a", 30], [120, 31], [120, 30]]), "bad_coordinates"),
    (poly([[120, 30], [121], [120, 31], [120, 30]]), "bad_coordinates"),
    (poly([[120, 30], [121, 30], [121, 30], [120, 30]]), "duplicate_vertices"),
    (poly([[120, 30], [121, 31], [122, 32], [120, 30]]), "zero_area"),
])
def test_parse_polygon_refuses_with_a_typed_bilingual_error(obj, code):
    with pytest.raises(G.GridInputError) as info:
        G.parse_polygon(obj)
    assert info.value.code == code
    assert info.value.message_zh and info.value.message_en and info.value.issues[0].code == code


def test_thousands_of_vertices_are_refused_before_the_database():
    n = 5000
    ring = [[120 + 0.01 * math.cos(2 * math.pi * i / n), 30 + 0.01 * math.sin(2 * math.pi * i / n)] for i in range(n)]
    with pytest.raises(G.GridInputError) as info:
        G.parse_polygon(poly(ring + ring[:1]))
    assert info.value.code == "too_many_vertices" and "5,001" in info.value.message_en
    assert G.parse_polygon(poly(ring[:1500] + ring[:1])) is not None


def test_parse_line():
    line = G.parse_line({"type": "LineString", "coordinates": [[120, 30], [120, 30], [121, 31]]})
    assert list(line.coords) == [(120, 30), (121, 31)]
    for bad in ({"type": "LineString", "coordinates": [[120, 30], [120, 30]]},
                poly(SQUARE), {"type": "LineString", "coordinates": [[120, 30], [None, 1]]}):
        with pytest.raises(G.GridInputError):
            G.parse_line(bad)


def test_drop_specks_removes_tiny_parts_and_pinholes_only():
    big = shapely.box(120.0, 30.0, 120.01, 30.01)
    sliver = Polygon([(120.02, 30.0), (120.03, 30.0), (120.03, 30.0 + 1e-12), (120.02, 30.0)])
    pinhole = [(120.005, 30.005), (120.005 + 1e-7, 30.005), (120.005, 30.005 + 1e-7), (120.005, 30.005)]
    hole = [(120.002, 30.002), (120.004, 30.002), (120.004, 30.004), (120.002, 30.002)]
    g = MultiPolygon([Polygon(big.exterior.coords, [pinhole, hole]), sliver])
    out = G.drop_specks(g)
    assert len(out.geoms) == 1 and len(out.geoms[0].interiors) == 1
    assert G.drop_specks(MultiPolygon()).is_empty


def test_count_vertices_matches_st_npoints_convention():
    assert G.count_vertices(G.parse_polygon(poly(SQUARE))) == 5


def test_only_grid_managers_and_admins_may_edit():
    assert G.may_edit("grid_manager") and G.may_edit("admin") and G.may_edit("system")
    for role in ("county_leader", "village_official", "town_official", "grid_worker", "planner", None, "x"):
        assert not G.may_edit(role)


def test_rules_are_sane():
    assert 0 < G.AREA_EPSILON_M2 < G.MIN_AREA_M2
    assert 0 < G.DEFAULT_SNAP_M <= G.MAX_SNAP_M
    assert G.MAX_VERTICES >= 1000


def test_migration_carries_the_same_rules():
    import importlib.util
    from pathlib import Path

    import geodata

    path = Path(geodata.__file__).parent / "migrations" / "versions" / "0006_grids.py"
    spec = importlib.util.spec_from_file_location("m0006", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert (mod.MIN_AREA_M2, mod.MAX_VERTICES, mod.AREA_EPSILON_M2) == (G.MIN_AREA_M2, G.MAX_VERTICES,
                                                                         G.AREA_EPSILON_M2)
    assert mod.revision == "0006" and mod.down_revision == "0004"
