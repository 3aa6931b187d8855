"""The grid service against the real PostGIS: validation, snapping, versions, undo, re-routing, locking.

Geography comes from :mod:`tests.integration.grid_world` (a small committed county,
removed afterwards). Most tests run in a transaction rolled back at the end; the
concurrency tests commit on separate connections and reset the world afterwards.
"""
from __future__ import annotations

import math
import threading

import pytest
from shapely.geometry import shape
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from geodata import events as ev
from geodata import grids as G
from geodata.db import SYSTEM, Scope, apply_scope, make_engine, make_sessionmaker, scoped
from geodata.events import Actor
from geodata.gridcodes import grid_codes
from tests.conftest import rolled_back_connection, session_for
from tests.integration.grid_world import (
    M1, M2, MID, N, S, W, box, box_gj, build_grid_world, destroy_grid_world, reset_grid_world,
)

MANAGER = Actor("网格管理员甲", "grid_manager", 31)
OFFICIAL = Actor("村干部", "village_official", 32)
SYS = Actor.system()
# At 29.1°N: metres → degrees.
DX = 1 / (111_320 * math.cos(math.radians(29.115)))
DY = 1 / 110_900


@pytest.fixture(scope="module")
def world(owner_engine, demo_db):  # the demo loader refuses to run once any county exists
    w = build_grid_world(owner_engine)
    yield w
    destroy_grid_world(owner_engine, w)


@pytest.fixture
def conn(app_engine, world):
    yield from rolled_back_connection(app_engine)


@pytest.fixture
def s(conn):
    session = session_for(conn)
    yield session
    session.close()


def counts(s, world) -> tuple[int, int, int]:
    row = s.execute(text(
        "SELECT (SELECT count(*) FROM grid WHERE village_id IN (:a, :b)),"
        " (SELECT count(*) FROM grid_change WHERE village_id IN (:a, :b)),"
        " (SELECT count(*) FROM event_history h JOIN event e ON e.id = h.event_id WHERE e.village_id IN (:a, :b))"
    ), {"a": world.village_a, "b": world.village_b}).one()
    return tuple(row)


def current(s, world, village=None) -> dict:
    fc = G.village_grids(s, village or world.village_a)
    return {f["properties"]["code"]: f["properties"] for f in fc["features"]}


def area_m2(s, geojson) -> float:
    import json

    return s.execute(text("SELECT ST_Area(ST_Transform(ST_SetSRID(ST_GeomFromGeoJSON(:g), 4490), 4549))"),
                     {"g": json.dumps(geojson)}).scalar()


def report(s, point, **kw):
    kw.setdefault("description", "测试事件")
    kw.setdefault("source", "patrol")
    return ev.create_event(s, lon=point[0], lat=point[1], subclass="0102", actor=SYS, **kw)


# -- the rules and the reading side ------------------------------------------------------

def test_rules_in_the_database_match_the_service(s):
    row = s.execute(text("SELECT * FROM dvmap_grid_rules()")).mappings().one()
    assert (row["min_area_m2"], row["max_vertices"], row["area_epsilon_m2"]) == (
        G.MIN_AREA_M2, G.MAX_VERTICES, G.AREA_EPSILON_M2)


def test_village_grids_carry_worker_population_and_events_and_gaps_are_measured(s, world):
    grids = current(s, world)
    assert set(grids) == {world.code_a + "001", world.code_a + "002"}
    a1 = grids[world.code_a + "001"]
    assert a1["worker"] == "格员a1" and a1["open_events"] == 0 and a1["version"] == 1
    gaps = G.village_gaps(s, world.village_a)
    quarter = area_m2(s, box_gj(*world.GAP))
    assert gaps["area_m2"] == pytest.approx(quarter, rel=1e-9)
    assert gaps["pct"] == pytest.approx(25.0, abs=0.05)
    assert shape(gaps["geometry"]).bounds == pytest.approx((M1, S, M2, MID))
    workers = {w["name"]: w["grids"] for w in G.grid_workers(s, world.village_a)}
    assert workers == {"格员a1": 1, "格员a2": 1, "格员a3": 0}


def test_a_polygon_filling_the_gap_validates_and_saves_with_the_next_code(s, world):
    v = G.validate(s, world.village_a, box_gj(*world.GAP))
    assert v.ok and not v.errors and v.gap_m2 == 0 and v.overlap_m2 == 0 and v.outside_m2 == 0
    before = counts(s, world)
    r = G.save_grid(s, MANAGER, village_id=world.village_a, geometry=box_gj(*world.GAP),
                    worker_id=world.workers["a3"])
    assert r.action == "create" and len(r.created) == 1
    new = r.created[0]
    assert new["code"] == world.code_a + "003" and new["version"] == 1 and new["worker_id"] == world.workers["a3"]
    assert counts(s, world)[:2] == (before[0] + 1, before[1] + 1)
    assert G.village_gaps(s, world.village_a)["area_m2"] == 0
    hist = G.change_history(s, world.village_a)
    assert hist[0]["action"] == "create" and hist[0]["actor"] == MANAGER.name and "003" in hist[0]["summary_zh"]
    assert hist[0]["created_ids"] == [new["id"]]


# -- bad input: a clear message, nothing saved ------------------------------------------------

def _ring(*pts):
    return {"type": "Polygon", "coordinates": [[list(p) for p in pts]]}


def _circle(n):
    cx, cy, r = 121.13, 29.1075, 0.004
    pts = [[cx + r * math.cos(2 * math.pi * i / n), cy + r * math.sin(2 * math.pi * i / n)] for i in range(n)]
    return {"type": "Polygon", "coordinates": [pts + pts[:1]]}


BAD = {
    # a bow-tie: two edges cross
    "self_intersecting": (_ring((121.125, 29.102), (121.135, 29.112), (121.135, 29.102), (121.125, 29.112),
                                (121.125, 29.102)), "invalid", "Self-intersection"),
    "outside_every_village": (box_gj(121.30, 29.30, 121.31, 29.31), "outside_all", "outside every village"),
    "other_village_only": (box_gj(121.145, 29.105, 121.15, 29.11), "other_village", "乙格村"),
    "spanning_two_villages": (box_gj(121.13, 29.102, 121.15, 29.112), "spanning", "spans two villages"),
    "zero_area": (_ring((121.13, 29.10), (121.131, 29.101), (121.132, 29.102), (121.13, 29.10)), "zero_area",
                  "zero area"),
    "three_vertex_duplicate": (_ring((121.13, 29.105), (121.131, 29.105), (121.131, 29.105), (121.13, 29.105)),
                               "duplicate_vertices", "distinct vertices"),
    "thousands_of_vertices": (_circle(5000), "too_many_vertices", "Too many vertices"),
    "overlap": (box_gj(121.115, 29.102, 121.13, 29.112), "overlap", "Overlaps existing grid"),
    "too_small": (box_gj(121.13, 29.105, 121.13 + 5 * DX, 29.105 + 5 * DY), "too_small", "Too small"),
    "not_a_polygon": ({"type": "LineString", "coordinates": [[121.13, 29.105], [121.131, 29.106]]}, "not_polygon",
                      "must be a polygon"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_polygons_are_refused_with_a_clear_message_and_nothing_saved(s, world, name):
    geometry, code, words = BAD[name]
    before = counts(s, world)
    with pytest.raises(G.GridInputError) as info:
        G.save_grid(s, MANAGER, village_id=world.village_a, geometry=geometry)
    err = info.value
    assert err.code == code
    assert words in err.message_en or words in err.message_zh
    assert err.message_zh and err.message_en and err.message_zh != err.message_en
    assert counts(s, world) == before
    s.execute(text("SELECT 1"))  # the caller's transaction is still usable


def test_validation_reports_reason_location_clip_and_overlap_geometry(s, world):
    bowtie = BAD["self_intersecting"][0]
    v = G.validate(s, world.village_a, bowtie)
    assert not v.valid and "Self-intersection" in v.reason and v.reason_location == pytest.approx([121.13, 29.107])
    span = G.validate(s, world.village_a, box_gj(121.13, 29.102, 121.15, 29.112))
    expected_out = area_m2(s, box_gj(121.14, 29.102, 121.15, 29.112))
    assert span.outside_m2 == pytest.approx(expected_out, rel=1e-6) and span.other_villages == ["乙格村"]
    assert shape(span.clipped).bounds == pytest.approx((121.13, 29.102, 121.14, 29.112))
    over = G.validate(s, world.village_a, box_gj(121.115, 29.102, 121.13, 29.112))
    assert [o["code"] for o in over.overlaps] == [world.code_a + "001"]
    assert over.overlap_m2 == pytest.approx(area_m2(s, box_gj(121.115, 29.102, 121.12, 29.112)), rel=1e-6)
    assert shape(over.overlap_geometry).bounds == pytest.approx((121.115, 29.102, 121.12, 29.112))


def test_spanning_polygon_can_be_saved_clipped_to_the_village(s, world):
    r = G.save_grid(s, MANAGER, village_id=world.village_a, geometry=box_gj(121.13, 29.102, 121.15, 29.112),
                    clip=True)
    assert r.created[0]["area_m2"] == pytest.approx(area_m2(s, box_gj(121.13, 29.102, 121.14, 29.112)), rel=1e-6)


def test_stale_version_is_refused_with_a_clear_message_and_nothing_saved(s, world):
    uid = world.grids["a2"]
    first = G.save_grid(s, MANAGER, uid=uid, expected_version=1, geometry=box_gj(M1, MID - 0.002, M2, N))
    assert first.created[0]["version"] == 2
    before = counts(s, world)
    with pytest.raises(G.StaleGrid) as info:
        G.save_grid(s, MANAGER, uid=uid, expected_version=1, geometry=box_gj(M1, MID - 0.004, M2, N))
    assert "version 1" in info.value.message_en and "第 1 版" in info.value.message_zh
    assert "Nothing was saved" in info.value.message_en
    assert counts(s, world) == before
    with pytest.raises(G.StaleGrid):
        G.delete_grid(s, MANAGER, uid, 1)
    with pytest.raises(G.StaleGrid):
        G.assign_worker(s, MANAGER, uid, 1, world.workers["a3"])


def test_permission_and_scope(conn, world):
    s = session_for(conn)
    with pytest.raises(G.GridPermissionDenied):
        G.save_grid(s, OFFICIAL, village_id=world.village_a, geometry=box_gj(*world.GAP))
    other = session_for(conn, Scope.villages([world.village_b], "grid_manager", 31))
    with pytest.raises(G.GridNotFound):
        G.save_grid(other, MANAGER, village_id=world.village_a, geometry=box_gj(*world.GAP))
    with pytest.raises(G.GridNotFound):
        G.delete_grid(other, MANAGER, world.grids["a1"], 1)


# -- versions and history -----------------------------------------------------------------

def test_redraw_makes_a_new_version_and_history_is_queryable_by_date(s, world):
    uid = world.grids["a2"]
    t0 = s.execute(text("SELECT clock_timestamp()")).scalar()
    r = G.save_grid(s, MANAGER, uid=uid, expected_version=1, geometry=box_gj(M1, S, M2, N))
    t1 = s.execute(text("SELECT clock_timestamp()")).scalar()
    versions = G.grid_versions(s, uid)
    assert [(v["version"], v["valid_to"] is None) for v in versions] == [(1, False), (2, True)]
    assert versions[0]["valid_to"] == versions[1]["valid_from"]
    assert versions[1]["code"] == world.code_a + "002" and versions[1]["change_id"] == r.change_id
    in_gap_before = G.grid_at(s, *world.P_GAP, t0)
    in_gap_after = G.grid_at(s, *world.P_GAP, t1)
    assert in_gap_before is None
    assert in_gap_after["uid"] == uid and in_gap_after["version"] == 2
    assert G.grid_at(s, *world.P_A2, t0)["version"] == 1
    assert G.grid_at(s, *world.P_A1, t1)["code"] == world.code_a + "001"


def test_split_keeps_the_larger_part_and_numbers_the_other(s, world):
    uid = world.grids["a1"]
    line = {"type": "LineString", "coordinates": [[W - 0.001, 29.11], [M1 + 0.001, 29.11]]}
    r = G.split_grid(s, MANAGER, uid, 1, line)
    assert r.action == "split" and len(r.created) == 2
    keep, other = r.created
    assert keep["uid"] == uid and keep["code"] == world.code_a + "001" and keep["version"] == 2
    assert other["code"] == world.code_a + "003" and other["worker_id"] == world.workers["a1"]
    assert keep["area_m2"] > other["area_m2"]
    # (projected areas of a 4-vertex box and its split halves differ by a hair: edges bend in EPSG:4549)
    assert keep["area_m2"] + other["area_m2"] == pytest.approx(area_m2(s, box_gj(W, S, M1, N)), rel=1e-7)
    with pytest.raises(G.GridInputError) as info:   # does not cross the grid
        G.split_grid(s, MANAGER, uid, 2, {"type": "LineString", "coordinates": [[121.105, 29.12], [121.11, 29.12]]})
    assert info.value.code == "line_not_across"


def test_merge_needs_adjacent_grids(s, world):
    island = G.save_grid(s, MANAGER, village_id=world.village_a,
                         geometry=box_gj(121.13, 29.102, 121.135, 29.105)).created[0]
    with pytest.raises(G.GridInputError) as info:
        G.merge_grids(s, MANAGER, {world.grids["a2"]: 1, island["uid"]: 1})
    assert info.value.code == "not_adjacent"
    with pytest.raises(G.GridInputError):
        G.merge_grids(s, MANAGER, {world.grids["a1"]: 1, world.grids["b1"]: 1})   # two villages
    r = G.merge_grids(s, MANAGER, {world.grids["a1"]: 1, world.grids["a2"]: 1})
    assert len(r.created) == 1 and r.created[0]["uid"] == world.grids["a1"]    # the larger keeps its identity
    assert set(current(s, world)) == {world.code_a + "001", island["code"]}


def test_delete_leaves_a_gap_and_assign_changes_the_worker(s, world):
    G.delete_grid(s, MANAGER, world.grids["a2"], 1)
    gaps = G.village_gaps(s, world.village_a)
    assert gaps["pct"] == pytest.approx(50.0, abs=0.05)
    r = G.assign_worker(s, MANAGER, world.grids["a1"], 1, world.workers["a3"])
    assert r.created[0]["worker_id"] == world.workers["a3"] and r.created[0]["version"] == 2
    with pytest.raises(G.GridInputError) as info:
        G.assign_worker(s, MANAGER, world.grids["a1"], 2, world.workers["b1"])   # a worker of village B
    assert info.value.code == "worker"


def test_undo_walks_back_and_history_says_who_when_what(s, world):
    G.save_grid(s, MANAGER, uid=world.grids["a2"], expected_version=1, geometry=box_gj(M1, S, M2, N))
    created = G.split_grid(s, MANAGER, world.grids["a1"], 1,
                           {"type": "LineString", "coordinates": [[W - 0.001, 29.11], [M1 + 0.001, 29.11]]})
    last = G.last_change(s, world.village_a)
    assert last["id"] == created.change_id
    with pytest.raises(G.StaleGrid):
        G.undo_last(s, MANAGER, world.village_a, expected_change_id=created.change_id - 1)
    G.undo_last(s, MANAGER, world.village_a, expected_change_id=created.change_id)   # the split
    assert set(current(s, world)) == {world.code_a + "001", world.code_a + "002"}
    assert current(s, world)[world.code_a + "001"]["version"] == 3
    G.undo_last(s, MANAGER, world.village_a)                                           # the redraw
    grids = current(s, world)
    assert grids[world.code_a + "002"]["version"] == 3
    assert grids[world.code_a + "002"]["area_m2"] == pytest.approx(area_m2(s, box_gj(M1, MID, M2, N)), abs=0.1)
    with pytest.raises(G.GridInputError) as info:
        G.undo_last(s, MANAGER, world.village_a)
    assert info.value.code == "nothing_to_undo"
    hist = G.change_history(s, world.village_a)
    assert [h["action"] for h in hist] == ["undo", "undo", "split", "edit"]
    assert [h["undone"] for h in hist] == [False, False, True, True]
    assert all(h["actor"] == MANAGER.name and h["at"] is not None for h in hist)


def test_renumbering_is_explicit_and_in_reading_order(s, world):
    G.save_grid(s, MANAGER, village_id=world.village_a, geometry=box_gj(*world.GAP))          # 003, south-east
    G.split_grid(s, MANAGER, world.grids["a1"], 1,
                 {"type": "LineString", "coordinates": [[W - 0.001, 29.12], [M1 + 0.001, 29.12]]})  # 004 north-west
    codes = set(current(s, world))
    assert codes == {world.code_a + c for c in ("001", "002", "003", "004")}   # nothing renumbered silently
    plan = G.renumber_plan(s, world.village_a)
    assert plan
    G.renumber_village(s, MANAGER, world.village_a)
    fc = G.village_grids(s, world.village_a)
    cents = [shape(f["geometry"]).centroid for f in fc["features"]]
    expected = grid_codes(world.code_a, [(c.x, c.y) for c in cents])
    assert [f["properties"]["code"] for f in fc["features"]] == expected
    with pytest.raises(G.GridInputError) as info:
        G.renumber_village(s, MANAGER, world.village_a)
    assert info.value.code == "already_numbered"


# -- snapping ------------------------------------------------------------------------------

def test_snap_makes_shared_edges_exact_and_removes_the_overlap(s, world):
    # The gap drawn by hand: every corner 3 m off, into the neighbours and outside the village.
    sloppy = box_gj(M1 - 3 * DX, S - 3 * DY, M2 + 3 * DX, MID + 3 * DY)
    v = G.validate(s, world.village_a, sloppy)
    assert {e.code for e in v.errors} == {"spanning", "overlap"}
    snapped = G.snap(s, world.village_a, sloppy, 5.0)
    assert snapped.moved == 4
    v2 = G.validate(s, world.village_a, snapped.geometry)
    assert v2.ok and v2.overlap_m2 == 0 and v2.outside_m2 == 0 and v2.gap_m2 == 0
    # Shared corners are the neighbours' vertices, bit for bit.
    corners = {tuple(p) for p in snapped.geometry["coordinates"][0][0]}
    assert {(M1, S), (M2, S), (M2, MID), (M1, MID)} <= corners
    r = G.save_grid(s, MANAGER, village_id=world.village_a, geometry=snapped.geometry)
    union = s.execute(text(
        "SELECT ST_Area(ST_Transform(ST_SymDifference(v.geom, (SELECT ST_Union(geom) FROM grid"
        " WHERE village_id = v.id AND valid_to IS NULL)), 4549)) FROM village v WHERE v.id = :v"
    ), {"v": world.village_a}).scalar()
    assert union < 1e-6 and r.created


def test_snap_moves_stray_vertices_onto_a_neighbour_edge_and_refuses_bad_tolerances(s, world):
    # Only the west edge strays: 2 m into grid A1, no vertex of A1 anywhere near.
    poly = _ring((M1 - 2 * DX, 29.103), (121.135, 29.103), (121.135, 29.112), (M1 - 2 * DX, 29.112),
                 (M1 - 2 * DX, 29.103))
    assert G.validate(s, world.village_a, poly).overlap_m2 > 1000
    snapped = G.snap(s, world.village_a, poly, 5.0)
    assert snapped.moved == 2
    v = G.validate(s, world.village_a, snapped.geometry)
    assert v.overlap_m2 == 0 and not v.errors
    for bad in (0, -1, 51, "x", float("nan")):
        with pytest.raises(G.GridInputError):
            G.snap(s, world.village_a, poly, bad)


def test_a_coarse_tracing_of_a_curvy_hole_snaps_to_an_exact_fit(db_session):
    """Demo county: warped grid edges, traced with every other vertex and 2 m off; snapping fits it."""
    s = db_session
    from pyproj import Transformer

    row = s.execute(text(
        "SELECT g.uid::text AS uid, g.version, g.village_id, ST_AsGeoJSON(g.geom, 15)::json AS gj"
        "  FROM grid g JOIN village v ON v.id = g.village_id"
        " WHERE g.valid_to IS NULL AND NOT ST_Intersects(ST_Boundary(v.geom), g.geom)"
        " ORDER BY ST_NPoints(g.geom), g.code LIMIT 1")).mappings().one()
    G.delete_grid(s, MANAGER, row["uid"], row["version"])
    hole = shape(row["gj"]).geoms[0]
    fw = Transformer.from_crs(4490, 4549, always_xy=True)
    bw = Transformer.from_crs(4549, 4490, always_xy=True)
    ring = list(hole.exterior.coords)[:-1][::2]
    cx, cy = fw.transform(hole.centroid.x, hole.centroid.y)
    traced = []
    for lon, lat in ring:
        x, y = fw.transform(lon, lat)
        d = math.hypot(x - cx, y - cy)
        traced.append(list(bw.transform(x + 2 * (x - cx) / d, y + 2 * (y - cy) / d)))
    coarse = {"type": "Polygon", "coordinates": [traced + traced[:1]]}
    before = G.validate(s, row["village_id"], coarse)
    assert before.overlap_m2 > 100
    snapped = G.snap(s, row["village_id"], coarse, 10.0)
    after = G.validate(s, row["village_id"], snapped.geometry)
    assert after.ok, after.messages("en")
    assert after.overlap_m2 == 0 and after.gap_m2 < 1.0
    G.save_grid(s, MANAGER, village_id=row["village_id"], geometry=snapped.geometry)


# -- events follow the grids -------------------------------------------------------------------

def _close(s, ref):
    version = ref.version
    for action, note in (("accept", None), ("dispatch", None), ("start", None), ("handle", "已处理"),
                         ("verify_pass", None), ("close", None)):
        version = ev.transition(s, ref.id, action, SYS, version, note).version


def test_open_events_are_rerouted_with_history_closed_ones_keep_their_grid(s, world):
    in_a1 = report(s, world.P_A1)
    done = report(s, (121.105, 29.12))
    _close(s, done)
    in_gap = report(s, world.P_GAP)
    assert in_gap.queue == "village" and in_gap.grid_uid is None
    before_hist = counts(s, world)[2]

    # Preview first: the list the manager confirms, nothing written.
    seen = G.preview(s, G.save_grid, MANAGER, village_id=world.village_a, geometry=box_gj(*world.GAP),
                     worker_id=world.workers["a3"])
    assert [e["id"] for e in seen.rerouted] == [in_gap.id]
    assert seen.rerouted[0]["to_worker"] == "格员a3" and seen.rerouted[0]["from_grid_code"] is None
    assert counts(s, world)[2] == before_hist and G.village_gaps(s, world.village_a)["area_m2"] > 0

    r = G.save_grid(s, MANAGER, village_id=world.village_a, geometry=box_gj(*world.GAP),
                    worker_id=world.workers["a3"])
    assert [e["id"] for e in r.rerouted] == [in_gap.id]
    e = ev.get_event(s, in_gap.id)
    assert (e["grid_uid"], e["worker_id"], e["queue"], e["outside_grid"], e["version"]) == (
        r.created[0]["uid"], world.workers["a3"], "grid", False, 2)
    h = ev.event_history(s, in_gap.id)[-1]
    assert h["action"] == "reroute" and h["from_state"] == h["to_state"] == "reported" and h["version"] == 2
    assert h["data"]["grid_change_id"] == r.change_id and h["data"]["to_grid_uid"] == r.created[0]["uid"]
    assert h["actor"] == MANAGER.name

    # Deleting A1: its open event goes to the village queue, the closed one keeps A1's version.
    closed_before = ev.get_event(s, done.id)
    r2 = G.delete_grid(s, MANAGER, world.grids["a1"], 1)
    assert [x["id"] for x in r2.rerouted] == [in_a1.id]
    e1 = ev.get_event(s, in_a1.id)
    assert (e1["grid_uid"], e1["worker_id"], e1["queue"], e1["outside_grid"]) == (None, None, "village", True)
    closed_after = ev.get_event(s, done.id)
    assert closed_after["grid_id"] == closed_before["grid_id"] == world.grid_ids["a1"]
    assert closed_after["version"] == closed_before["version"] and closed_after["state"] == "closed"
    assert counts(s, world)[2] == before_hist + 2
    # A dispatcher holding the old version is told it changed.
    with pytest.raises(ev.StaleVersion):
        ev.transition(s, in_a1.id, "accept", SYS, 1)

    # Re-staffing a grid moves its open events to the new worker.
    r3 = G.assign_worker(s, MANAGER, r.created[0]["uid"], 1, world.workers["a2"])
    assert [x["id"] for x in r3.rerouted] == [in_gap.id]
    assert ev.get_event(s, in_gap.id)["worker_id"] == world.workers["a2"]


# -- enforced in the database, under concurrency --------------------------------------------------

@pytest.fixture
def committed(world, owner_engine):
    yield world
    reset_grid_world(owner_engine, world)


def test_two_managers_saving_overlapping_grids_at_once_only_one_succeeds(pg, committed):
    world = committed
    engine = make_engine(pg.app_url, pool_size=4, max_overflow=0)
    factory = make_sessionmaker(engine)
    barrier = threading.Barrier(2)
    shapes = [box_gj(121.121, 29.101, 121.135, 29.113), box_gj(121.125, 29.102, 121.139, 29.114)]
    outcome: list = [None, None]

    def manager(i):
        actor = Actor(f"管理员{i}", "grid_manager", 40 + i)
        with scoped(factory, SYSTEM) as s:
            try:
                barrier.wait(timeout=10)
                G.save_grid(s, actor, village_id=world.village_a, geometry=shapes[i])
                s.commit()
                outcome[i] = "saved"
            except (G.GridInputError, G.GridTopologyError) as exc:
                s.rollback()
                outcome[i] = exc

    threads = [threading.Thread(target=manager, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    engine.dispose()
    assert sorted(o == "saved" for o in outcome) == [False, True], outcome
    refused = next(o for o in outcome if o != "saved")
    assert refused.code == "overlap" and "重叠" in refused.message_zh and "overlap" in refused.message_en.lower()
    with scoped(make_sessionmaker(make_engine(pg.app_url, pool_size=1)), SYSTEM) as s:
        assert len(current(s, world)) == 3


def test_the_database_alone_refuses_the_second_of_two_concurrent_overlapping_inserts(pg, committed):
    """Bypass the service: two raw transactions insert overlapping grids and commit together."""
    world = committed
    engine = make_engine(pg.app_url, pool_size=4, max_overflow=0)
    barrier = threading.Barrier(2)
    results: list = [None, None]
    geoms = [box(121.121, 29.101, 121.135, 29.113), box(121.125, 29.102, 121.139, 29.114)]

    def writer(i):
        with engine.connect() as c:
            tx = c.begin()
            apply_scope(c, SYSTEM)
            c.execute(text(
                "INSERT INTO grid (uid, village_id, code, name, geom) VALUES (gen_random_uuid(), :v, :c, 'raw',"
                " ST_GeomFromText(:g, 4490))"), {"v": world.village_a, "c": f"{world.code_a}{90 + i:03d}",
                                                "g": geoms[i]})
            barrier.wait(timeout=10)   # both rows written, neither committed
            try:
                tx.commit()
                results[i] = "committed"
            except DBAPIError as exc:
                results[i] = exc.orig.sqlstate

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    engine.dispose()
    assert sorted(results, key=str) == ["DG004", "committed"], results


def test_the_database_refuses_a_grid_outside_its_village_even_from_the_owner(owner_engine, world):
    with owner_engine.connect() as c:
        tx = c.begin()
        apply_scope(c, SYSTEM)
        c.execute(text("INSERT INTO grid (uid, village_id, code, name, geom) VALUES (gen_random_uuid(), :v, :c,"
                       " 'x', ST_GeomFromText(:g, 4490))"),
                  {"v": world.village_a, "c": world.code_a + "099", "g": box(121.13, 29.102, 121.15, 29.112)})
        with pytest.raises(DBAPIError) as info:
            c.execute(text("SET CONSTRAINTS grid_topology IMMEDIATE"))
        assert info.value.orig.sqlstate == "DG003" and "outside its village" in str(info.value.orig)
        tx.rollback()


def test_grid_change_history_is_append_only_for_the_app(conn, world):
    s = session_for(conn)
    G.delete_grid(s, MANAGER, world.grids["a2"], 1)
    s.flush()
    with pytest.raises(DBAPIError):
        with s.begin_nested():
            s.execute(text("DELETE FROM grid_change WHERE village_id = :v"), {"v": world.village_a})
