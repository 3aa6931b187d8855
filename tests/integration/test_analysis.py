"""Planners' analyses on the real PostGIS with the demo county and demo events.

The demo events are reported once per module inside an outer transaction that is rolled
back at the end; each test runs in a savepoint of it.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from sqlalchemy import text

from geodata.analysis.errors import AnalysisError
from geodata.analysis.selection import EventFilter
from geodata.db import SYSTEM, Scope, apply_scope
from tests.conftest import session_for


@pytest.fixture(scope="module")
def events_conn(app_engine, demo_db):
    from etl.demo_events import load_demo_events

    conn = app_engine.connect()
    trans = conn.begin()
    s = session_for(conn)
    summary = load_demo_events(s, n=700, seed=7)
    s.commit()  # releases the savepoint into the outer transaction, which is rolled back at the end
    s.close()
    assert summary["created"] == 700
    yield conn
    trans.rollback()
    conn.close()


@pytest.fixture
def s(events_conn):
    session = session_for(events_conn)
    yield session
    session.close()
    apply_scope(events_conn, SYSTEM)


# -- hot spots ---------------------------------------------------------------------------------------
def test_hotspots_on_h3_find_the_generated_hotspots_and_equal_esda(s):
    from esda.getisord import G_Local
    from libpysal.weights import WSP

    from etl.demo_events import _county_and_anchors, hotspot_centres
    from geodata.analysis import gistar as gs
    from geodata.analysis.cells import area_of, h3_cells
    from geodata.analysis.hotspots import hotspots
    from geodata.analysis.selection import event_points

    flt = EventFilter.last_days(180)
    res = hotspots(s, flt, unit="h3", resolution=8, permutations=199)
    assert res.summary["events"] == 700 and res.summary["hot"] > 0
    assert "Queen" in res.notes[0][0] and "row-standardised" in res.notes[0][1]
    hot_cells = {f["properties"]["_key"] for f in res.features if f["properties"]["cls"] >= 2}
    import h3

    county, anchors = _county_and_anchors(s)
    centres = hotspot_centres(county, anchors, seed=7)
    found = sum(any(c in hot_cells for c in h3.grid_disk(h3.latlng_to_cell(lat, lon, 8), 1)) for lon, lat in centres)
    assert found >= len(centres) - 1

    # the same numbers from esda on the same cells and weights
    pts = event_points(s, flt)
    cells = h3_cells(area_of(s), 8, (pts.lon, pts.lat))
    y = cells.counts(cells.assign(pts.lon, pts.lat, pts.x, pts.y))
    w = cells.weights("queen")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = G_Local(y, WSP(w.adjacency).to_W(silence_warnings=True), transform="R", star=True,
                         permutations=0)
    z = np.array([f["properties"]["z"] for f in res.features])
    assert np.abs(z - np.round(theirs.Zs, 4)).max() <= 1e-9
    assert np.abs(gs.gi_star(y, w, "R", 0).z - theirs.Zs).max() <= 1e-6


def test_hotspots_on_grids_with_distance_band(s):
    from geodata.analysis.hotspots import hotspots

    res = hotspots(s, EventFilter.last_days(180), unit="grid", weights="distance", band_m=2500, transform="B",
                   permutations=99, fdr=True)
    assert res.summary["cells"] == s.execute(text("SELECT count(*) FROM grid WHERE valid_to IS NULL")).scalar()
    assert "2,500" in res.notes[0][1] and "binary" in res.notes[0][1]
    assert "FDR" in res.notes[1][1]


def test_category_and_window_filters(s):
    from geodata.analysis.selection import event_points

    all_ = len(event_points(s, EventFilter.last_days(180)))
    cls01 = len(event_points(s, EventFilter.last_days(180, ["01"])))
    recent = len(event_points(s, EventFilter.last_days(90, ["01"])))
    assert all_ == 700 and 0 < recent < cls01 < all_


def test_compare_windows_and_heat(s):
    from datetime import datetime, timedelta

    from geodata.analysis.hotspots import compare_windows, heat
    from geodata.clock import display_zone

    now = datetime.now(display_zone())
    res = compare_windows(s, EventFilter(), (now - timedelta(days=180), now - timedelta(days=90)),
                          (now - timedelta(days=90), now), resolution=8, permutations=99)
    assert res.summary["new"] + res.summary["intensifying"] + res.summary["persistent"] > 0
    assert res.summary["fading"] > 0  # the generator has fading hotspots
    h = heat(s, EventFilter.last_days(180), resolution=8)
    assert sum(f["properties"]["count"] for f in h.features) == 700


@pytest.mark.parametrize("flt, code", [
    (EventFilter.last_days(90, ["0602"]), "empty_selection"),   # no demo event of this subclass
    (EventFilter.last_days(90, ["0801"]), "too_few_events"),    # a handful only
    (EventFilter.last_days(90, ["1x"]), "bad_category"),
])
def test_bad_hotspot_requests_say_why(s, flt, code):
    from geodata.analysis.hotspots import hotspots

    with pytest.raises(AnalysisError) as info:
        hotspots(s, flt)
    assert info.value.code == code
    if code == "too_few_events":
        assert "30" in info.value.message_zh and "at least 30" in info.value.message_en


def test_events_of_a_hot_cell(s):
    from geodata.analysis.hotspots import events_in_cell, hotspots

    flt = EventFilter.last_days(180)
    res = hotspots(s, flt, permutations=99)
    top = max(res.features, key=lambda f: f["properties"]["count"])
    events = events_in_cell(s, flt, "h3", top["properties"]["_key"])
    assert len(events) == top["properties"]["count"] and {"id", "version", "state"} <= set(events[0])


# -- DBSCAN --------------------------------------------------------------------------------------------
def test_postgis_dbscan_equals_scikit_learn_on_the_events(s):
    from sklearn.cluster import DBSCAN

    from geodata.analysis.clusters import compare_labels, dbscan_xy, event_clusters
    from geodata.analysis.selection import event_points

    pts = event_points(s, EventFilter.last_days(180))
    xy = np.column_stack([pts.x, pts.y])
    ours = dbscan_xy(s, xy, 400, 8)
    theirs = DBSCAN(eps=400, min_samples=8).fit(xy).labels_
    cmp = compare_labels(ours, theirs, xy, 400, 8)
    assert cmp["core_same"] and cmp["noise_same"] and cmp["border_valid"]
    assert ours.max() >= 2
    res = event_clusters(s, EventFilter.last_days(180), 400, 8)
    assert res.summary["clusters"] == ours.max() + 1
    assert res.summary["clustered"] == int((ours >= 0).sum())
    assert sum(f["properties"]["count"] for f in res.features) == res.summary["clustered"]


def test_a_border_point_between_two_clusters(s):
    """Two clusters 2·eps apart and one point in the middle, within eps of a core point of each.

    It is a border point reachable from both: either assignment is right, cores and noise agree.
    """
    from sklearn.cluster import DBSCAN

    from geodata.analysis.clusters import compare_labels, dbscan_xy

    a = np.array([[0, 0], [0, 10], [10, 0], [-10, 0], [0, -10]], dtype=float) + [500000, 3300000]
    b = a + [200, 0]
    mid = np.array([[500100, 3300000]])
    xy = np.vstack([a, b, mid])
    ours = dbscan_xy(s, xy, 95, 5)
    theirs = DBSCAN(eps=95, min_samples=5).fit(xy).labels_
    cmp = compare_labels(ours, theirs, xy, 95, 5)
    assert cmp["core_same"] and cmp["noise_same"] and cmp["border_valid"]
    assert ours[-1] in (ours[0], ours[5]) and ours[0] != ours[5]


@pytest.mark.parametrize("eps", [0, -5, "abc", None])
def test_eps_must_be_positive(s, eps):
    from geodata.analysis.clusters import event_clusters

    with pytest.raises(AnalysisError) as info:
        event_clusters(s, EventFilter.last_days(90), eps, 5)
    assert info.value.code == "bad_eps" and "eps" in info.value.message_en


# -- coverage -----------------------------------------------------------------------------------------
def test_coverage_elderly_care_and_deserts(s):
    from geodata.analysis.coverage import coverage

    res = coverage(s, "elderly_care", 2000, measure="age_60_plus")
    total = s.execute(text("SELECT sum(age_60_plus) FROM population WHERE grid_uid IS NOT NULL AND year ="
                           " (SELECT max(year) FROM population)")).scalar()
    assert res.summary["people"] == pytest.approx(total, abs=2)
    assert 0 < res.summary["covered"] < res.summary["people"]
    assert res.summary["uncovered"] == res.summary["people"] - res.summary["covered"]
    assert res.points and all(p["properties"]["uncovered"] > 0 for p in res.points)
    assert all(0 <= f["properties"]["share"] <= 1.0001 for f in res.features)
    wider = coverage(s, "elderly_care", 4000, measure="age_60_plus")
    assert wider.summary["covered"] > res.summary["covered"]
    villages = coverage(s, "elderly_care", 2000, measure="age_60_plus", level="village")
    assert villages.summary["covered"] == res.summary["covered"] and len(villages.features) == 137


def test_what_if_gains_people_and_writes_nothing(s):
    import shapely.geometry as sg

    from geodata.analysis.coverage import coverage, what_if

    res = coverage(s, "elderly_care", 2000, measure="age_60_plus")
    desert = max(res.points, key=lambda f: f["properties"]["uncovered"])
    spot = sg.shape(desert["geometry"]).representative_point()
    before = s.execute(text("SELECT count(*) FROM resource")).scalar()
    gain = what_if(s, "elderly_care", 2000, [(spot.x, spot.y)], measure="age_60_plus")
    assert gain["gain"] > 0 and gain["after"] == gain["before"] + gain["gain"]
    assert gain["share_after"] > gain["share_before"]
    assert s.execute(text("SELECT count(*) FROM resource")).scalar() == before
    again = coverage(s, "elderly_care", 2000, measure="age_60_plus", hypothetical=[(spot.x, spot.y)])
    assert again.summary["covered"] == pytest.approx(gain["after"], abs=2)


def test_village_scope_still_counts_the_neighbours_facilities(events_conn):
    from geodata.analysis.coverage import coverage

    vid = events_conn.execute(text("SELECT min(id) FROM village")).scalar()
    scoped = session_for(events_conn, Scope.villages([vid], "village_official"))
    try:
        res = coverage(scoped, "clinic", 1500)
        assert res.summary["facilities"] == 126  # all clinics of the county
        assert {f["properties"]["village"] for f in res.features} == {
            scoped.execute(text("SELECT name FROM village")).scalar()}
    finally:
        scoped.close()
        apply_scope(events_conn, SYSTEM)


@pytest.mark.parametrize("args, code", [
    (("nope", 2000), "bad_type"), (("clinic", 0), "bad_distance"), (("clinic", -1), "bad_distance"),
])
def test_bad_coverage_requests(s, args, code):
    from geodata.analysis.coverage import coverage

    with pytest.raises(AnalysisError) as info:
        coverage(s, *args)
    assert info.value.code == code


# -- rasters ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def raster_file(tmp_path_factory, app_engine, demo_db):
    from sqlalchemy.orm import Session

    from etl.demo_raster import _grids_and_population, generate_population_raster

    with app_engine.connect() as conn:
        apply_scope(conn, SYSTEM)
        grids, pops = _grids_and_population(Session(bind=conn))
    return generate_population_raster(grids, pops, tmp_path_factory.mktemp("r") / "pop.tif", pixel_m=200)


def _register(s, path, name="test_raster"):
    import rasterio

    with rasterio.open(path) as ds:
        crs = ds.crs.to_string() if ds.crs else "none"
        w, h = ds.width, ds.height
    return s.execute(text(
        "INSERT INTO raster_dataset (name, title_zh, title_en, file_sha256, path, driver, width, height, band_count,"
        " dtypes, source_crs, res_x, res_y, transform, footprint) VALUES (:n, '测试栅格', 'Test raster', :sha, :p,"
        " 'GTiff', :w, :h, 1, ARRAY['float32'], :crs, 200, 200, ARRAY[0,0,0,0,0,0]::float8[],"
        " ST_GeomFromText('POLYGON((119 30,121 30,121 31,119 31,119 30))', 4490)) RETURNING id"),
        {"n": name, "sha": "0" * 64, "p": str(path), "w": w, "h": h, "crs": crs}).scalar()


def test_zonal_statistics_add_up_to_the_population_and_are_stored(s, raster_file):
    from geodata.analysis.raster import stored_zonal, zonal_stats

    rid = _register(s, raster_file)
    res = zonal_stats(s, rid, level="village")
    pop = dict(s.execute(text("SELECT v.code, p.total FROM population p JOIN village v ON v.id = p.village_id"
                              " WHERE p.grid_uid IS NULL")).all())
    sums = {f["properties"]["code"]: f["properties"]["sum"] for f in res.features}
    big = [c for c in pop if pop[c] > 2000]
    rel = [abs(sums[c] - pop[c]) / pop[c] for c in big]
    assert np.median(rel) < 0.06  # 200 m pixels split across village edges
    assert abs(res.summary["total_sum"] - sum(pop.values())) / sum(pop.values()) < 0.01
    rows = stored_zonal(s, rid, "village")
    assert len(rows) == 137 and all(r["max"] >= r["mean"] for r in rows)
    grids = zonal_stats(s, rid, level="grid", color_by="max")
    assert len(stored_zonal(s, rid, "grid")) == len(grids.features)


def test_zonal_rows_follow_the_village_scope(events_conn, raster_file):
    from geodata.analysis.raster import stored_zonal, zonal_stats

    sys_s = session_for(events_conn)
    rid = _register(sys_s, raster_file, "scope_raster")
    zonal_stats(sys_s, rid, level="village")
    sys_s.commit()
    vid = events_conn.execute(text("SELECT min(id) FROM village")).scalar()
    scoped = session_for(events_conn, Scope.villages([vid], "village_official"))
    try:
        assert [r["village_id"] for r in stored_zonal(scoped, rid, "village")] == [vid]
    finally:
        scoped.close()
        sys_s.close()
        apply_scope(events_conn, SYSTEM)


def test_raster_in_another_crs_is_reprojected(s, raster_file, tmp_path):
    import rasterio
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    from geodata.analysis.raster import zonal_stats

    dest = tmp_path / "pop4326.tif"
    with rasterio.open(raster_file) as src:
        tr, w, h = calculate_default_transform(src.crs, "EPSG:4326", src.width, src.height, *src.bounds)
        prof = src.profile | {"crs": "EPSG:4326", "transform": tr, "width": w, "height": h}
        with rasterio.open(dest, "w", **prof) as dst:
            reproject(rasterio.band(src, 1), rasterio.band(dst, 1), resampling=Resampling.nearest)
    a = zonal_stats(s, _register(s, raster_file, "a_raster"), level="village")
    b = zonal_stats(s, _register(s, dest, "b_raster"), level="village")
    assert any("EPSG:4326" in zh for zh, _ in b.notes)
    # nearest-neighbour resampling moves people a little; the mean per village stays close
    ma = np.array([f["properties"]["mean"] for f in a.features])
    mb = np.array([f["properties"]["mean"] for f in b.features])
    assert np.median(np.abs(ma - mb) / np.maximum(ma, 1e-9)) < 0.15


def test_raster_outside_the_county_and_without_crs(s, raster_file, tmp_path):
    import rasterio
    from rasterio.transform import Affine

    from geodata.analysis.raster import zonal_stats

    far = tmp_path / "far.tif"
    nocrs = tmp_path / "nocrs.tif"
    with rasterio.open(raster_file) as src:
        data = src.read(1)
        prof = src.profile
    t = prof["transform"]
    with rasterio.open(far, "w", **(prof | {"transform": Affine(t.a, t.b, t.c + 3_000_000, t.d, t.e, t.f)})) as d:
        d.write(data, 1)
    with rasterio.open(nocrs, "w", **{k: v for k, v in prof.items() if k != "crs"}) as d:
        d.write(data, 1)
    with pytest.raises(AnalysisError) as info:
        zonal_stats(s, _register(s, far, "far_raster"))
    assert info.value.code == "raster_outside"
    with pytest.raises(AnalysisError) as info:
        zonal_stats(s, _register(s, nocrs, "nocrs_raster"))
    assert info.value.code == "raster_no_crs" and "坐标系" in info.value.message_zh


def test_raster_overlay_png(raster_file):
    import base64

    from geodata.analysis.raster import render_overlay

    o = render_overlay(raster_file, max_size=400)
    raw = base64.b64decode(o["url"].split(",", 1)[1])
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and max(o["size"]) <= 400
    (s_, w), (n, e) = o["bounds"]
    assert 119.5 < w < e < 120.6 and 30.2 < s_ < n < 30.9
    assert len(o["legend"]) == 5


# -- bulk actions ----------------------------------------------------------------------------------------
def test_bulk_accept_and_dispatch_through_the_workflow(events_conn):
    from geodata.analysis.actions import bulk_transition
    from geodata.events import Actor
    from geodata.workflow import PermissionDenied

    sys_s = session_for(events_conn)
    rows = sys_s.execute(text("SELECT id, version, village_id FROM event WHERE reported_by = 'demo-events'"
                              " AND state = 'reported' ORDER BY id LIMIT 40")).all()
    sys_s.close()
    vid = rows[0].village_id
    official = session_for(events_conn, Scope.villages([vid], "village_official"))
    try:
        with pytest.raises(PermissionDenied):
            bulk_transition(official, [(r.id, r.version) for r in rows], "accept", Actor("p", "planner"))
        res = bulk_transition(official, [(r.id, r.version) for r in rows], "accept", Actor("v", "village_official"))
        mine = [r.id for r in rows if r.village_id == vid]
        assert sorted(res.done) == sorted(mine) and len(res.failed) == len(rows) - len(mine)
        assert all(en for _, _, en in res.failed)
        res2 = bulk_transition(official, [(i, 2) for i in mine], "dispatch", Actor("v", "village_official"))
        assert sorted(res2.done) == sorted(mine)
        states = official.execute(text("SELECT DISTINCT state FROM event WHERE id = ANY(:i)"), {"i": mine}).scalars()
        assert set(states) == {"dispatched"}
        hist = official.execute(text("SELECT count(*) FROM event_history WHERE event_id = ANY(:i)"),
                                {"i": mine}).scalar()
        assert hist == 3 * len(mine)  # report, accept, dispatch
    finally:
        official.close()
        apply_scope(events_conn, SYSTEM)


# -- the background job's entry point and the CLI ---------------------------------------------------
def test_job_spec_runs_with_the_scope_it_carries(pg, demo_db):
    from callbacks.analysis import execute

    spec = {"kind": "coverage", "filter": {"categories": [], "days": 90, "village_ids": []},
            "params": {"resource_type": "elderly_care", "distance_m": 2000, "measure": "total", "level": "village",
                       "hypothetical": []},
            "lang": "zh", "scope": {"village_ids": None, "role": "planner", "user_id": None, "grid_uids": None},
            "user_id": 0, "username": "t", "database_url": pg.app_url}
    assert len(execute(spec).features) == 137
    spec["scope"] = {"village_ids": [], "role": "anonymous", "user_id": None, "grid_uids": None}
    with pytest.raises(AnalysisError) as info:
        execute(spec)  # no villages visible: nothing to cover
    assert info.value.code == "empty_selection"


def test_cli_analyze(pg, demo_db, tmp_path):
    import geopandas as gpd
    from click.testing import CliRunner

    from map_app.cli import main

    runner = CliRunner(env={"DATABASE_URL": pg.app_url})
    out = tmp_path / "cov.gpkg"
    r = runner.invoke(main, ["analyze", "coverage", "--type", "elderly_care", "--distance", "2000", "--measure",
                             "age_60_plus", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert len(gpd.read_file(out, layer="coverage")) > 100 and len(gpd.read_file(out, layer="coverage_deserts")) > 0
    r = runner.invoke(main, ["analyze", "clusters", "--eps", "0", "--out", str(tmp_path / "c.geojson")])
    assert r.exit_code == 2 and "eps" in r.output
    rng = np.random.default_rng(0)
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(rng.normal(120.0, 0.01, 200), rng.normal(30.55, 0.01, 200)),
                           crs=4490)
    pts.to_file(tmp_path / "p.gpkg")
    r = runner.invoke(main, ["analyze", "clusters", "--input", str(tmp_path / "p.gpkg"), "--eps", "300",
                             "--min-points", "5", "--out", str(tmp_path / "c.csv")])
    assert r.exit_code == 0, r.output
    nogeom = tmp_path / "t.csv"
    nogeom.write_text("a,b\n1,2\n", encoding="utf-8")
    r = runner.invoke(main, ["analyze", "hotspots", "--input", str(nogeom), "--out", str(tmp_path / "h.geojson")])
    assert r.exit_code == 2 and "geometry" in r.output
