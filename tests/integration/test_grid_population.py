"""Population follows grid edits (demo county): split, merge, delete + redraw keep every total.

The demo county's people live at population points (etl/population_points.py); every
grid change recomputes the village's grid rows from them in the same transaction
(geodata/grids/population.py). Before, a split left the new grid without a row ("—"),
and delete + redraw lost the deleted grid's people (big screen 440,000 → 439,725).
"""
from __future__ import annotations

import json

import pytest
from shapely.geometry import LineString, shape
from sqlalchemy import text

from geodata import bigscreen
from geodata import grids as G
from geodata.analysis.coverage import coverage
from geodata.grids.population import recompute_village, source_label
from geodata.identity import Actor

MANAGER = Actor("网格管理员甲", "grid_manager", 31)


def grid_pop(s, village_id) -> dict:
    """code → (total, source, as_of) of the village's current grids (None when the grid has no row)."""
    rows = s.execute(text(
        "SELECT g.code, p.total, p.source, p.as_of FROM grid g"
        "  LEFT JOIN population p ON p.grid_uid = g.uid AND p.year = (SELECT max(year) FROM population)"
        " WHERE g.village_id = :v AND g.valid_to IS NULL"), {"v": village_id}).all()
    return {r.code: (r.total, r.source, r.as_of) for r in rows}


def totals(s, village_id) -> dict:
    k = bigscreen.kpis(s)
    cov = coverage(s, "clinic", 1500, village_ids=[village_id])
    people = sum(f["properties"]["people"] for f in cov.features if f["properties"]["level"] == "grid")
    return {"covered": k["population_covered"], "county": k["population_total"],
            "households": k["households_covered"], "coverage_people": people}


@pytest.fixture
def village(db_session):
    """A demo village with at least three grids, and its grids (uid, version, code, geojson), largest first."""
    s = db_session
    vid = s.execute(text(
        "SELECT village_id FROM grid WHERE valid_to IS NULL GROUP BY village_id HAVING count(*) >= 3"
        " ORDER BY village_id LIMIT 1")).scalar_one()
    return vid


def _grids(s, vid):
    return s.execute(text(
        "SELECT uid::text AS uid, version, code, ST_AsGeoJSON(geom, 15)::json AS gj FROM grid"
        " WHERE village_id = :v AND valid_to IS NULL ORDER BY ST_Area(geom) DESC, code"), {"v": vid}).mappings().all()


def test_demo_grid_rows_come_from_points_and_say_so(db_session, village):
    s = db_session
    pops = grid_pop(s, village)
    assert pops and all(p[0] is not None and p[0] > 0 for p in pops.values())
    assert {p[1] for p in pops.values()} == {"points"}
    n_points = s.execute(text("SELECT count(*) FROM population_point WHERE village_id = :v"),
                         {"v": village}).scalar()
    assert n_points >= len(pops)
    before = dict(pops)
    assert recompute_village(s, village) == "points"  # the points reproduce the demo's rows exactly
    assert grid_pop(s, village) == before
    date = next(iter(pops.values()))[2]
    assert source_label("points", date) == f"来源: 人口点位 {date.isoformat()}"
    assert source_label("points", date, "en") == f"Source: population points {date.isoformat()}"


def test_split_merge_delete_and_redraw_keep_every_total(db_session, village):
    s = db_session
    start = totals(s, village)
    start_village = sum(p[0] for p in grid_pop(s, village).values())

    # split the largest grid through its middle, north-south
    big = _grids(s, village)[0]
    poly = shape(big["gj"])
    minx, miny, maxx, maxy = poly.bounds
    cx = poly.representative_point().x
    line = LineString([(cx, miny - 0.01), (cx, maxy + 0.01)])
    res = G.split_grid(s, MANAGER, big["uid"], big["version"], json.loads(json.dumps(line.__geo_interface__)))
    new_code = next(c["code"] for c in res.created if c["code"] != big["code"])
    pops = grid_pop(s, village)
    assert pops[new_code][0] is not None and pops[new_code][0] > 0, pops
    assert 0 < pops[big["code"]][0] < start_village
    assert pops[new_code][1] == "points"
    assert sum(p[0] for p in pops.values()) == start_village
    assert totals(s, village) == start

    # merge the two halves back
    halves = {g["uid"]: g["version"] for g in _grids(s, village) if g["code"] in (big["code"], new_code)}
    G.merge_grids(s, MANAGER, halves)
    pops = grid_pop(s, village)
    assert new_code not in pops and sum(p[0] for p in pops.values()) == start_village
    assert totals(s, village) == start

    # delete a grid: its people are in a gap now (not covered), the county total stays
    victim = _grids(s, village)[-1]
    lost = grid_pop(s, village)[victim["code"]][0]
    assert lost > 0
    G.delete_grid(s, MANAGER, victim["uid"], victim["version"])
    mid = totals(s, village)
    assert mid["county"] == start["county"]
    assert mid["covered"] == start["covered"] - lost
    # … and redraw it: a new grid with the same people, every total as before
    res = G.save_grid(s, MANAGER, village_id=village, geometry=shape(victim["gj"]).geoms[0].__geo_interface__)
    redrawn = res.created[0]["code"]
    assert grid_pop(s, village)[redrawn][0] == lost
    assert totals(s, village) == start


def test_without_points_the_changed_grids_share_the_free_people_by_area(db_session, village):
    s = db_session
    s.execute(text("DELETE FROM population_point WHERE village_id = :v"), {"v": village})
    start = totals(s, village)
    start_village = sum(p[0] for p in grid_pop(s, village).values())
    big = _grids(s, village)[0]
    poly = shape(big["gj"])
    cx = poly.representative_point().x
    line = LineString([(cx, poly.bounds[1] - 0.01), (cx, poly.bounds[3] + 0.01)])
    res = G.split_grid(s, MANAGER, big["uid"], big["version"], line.__geo_interface__)
    assert res.detail["population_source"] == "area_share"
    pops = grid_pop(s, village)
    new_code = next(c["code"] for c in res.created if c["code"] != big["code"])
    assert pops[new_code][0] > 0 and pops[new_code][1] == "area_share"
    assert sum(p[0] for p in pops.values()) == start_village
    assert totals(s, village) == start
