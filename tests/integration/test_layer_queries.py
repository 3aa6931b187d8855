"""Viewport queries and details against the demo county."""
from __future__ import annotations

from sqlalchemy import text

from geodata.queries import details, layers as q


def test_villages_viewport_returns_geojson_with_every_village(db_session):
    extent = q.county_extent(db_session)
    (s, w), (n, e) = extent
    fc = q.villages(db_session, (w, s, e, n), zoom=10)
    assert fc["type"] == "FeatureCollection"
    assert len(fc["features"]) == 137
    f = fc["features"][0]
    assert f["geometry"]["type"] in ("Polygon", "MultiPolygon")
    lon, lat = f["geometry"]["coordinates"][0][0][0] if f["geometry"]["type"] == "MultiPolygon" else f["geometry"]["coordinates"][0][0]
    assert 119 < lon < 121 and 30 < lat < 31  # lon/lat order


def test_a_small_viewport_returns_only_nearby_features(db_session):
    extent = q.county_extent(db_session)
    (s, w), (n, e) = extent
    x, y = db_session.execute(text("SELECT ST_X(label_point), ST_Y(label_point) FROM village LIMIT 1")).one()
    small = (x - 0.01, y - 0.01, x + 0.01, y + 0.01)
    grids_small = q.grids(db_session, small, zoom=14)["features"]
    grids_all = q.grids(db_session, (w, s, e, n), zoom=14)["features"]
    assert 0 < len(grids_small) < len(grids_all)


def test_sensor_counts_per_village_add_up(db_session):
    extent = q.county_extent(db_session)
    (s, w), (n, e) = extent
    agg = q.sensors_by_unit(db_session, "village", (w - 1, s - 1, e + 1, n + 1), None)["features"]
    towns = q.sensors_by_unit(db_session, "town", (w - 1, s - 1, e + 1, n + 1), None)["features"]
    assert len(towns) == 12 and sum(f["properties"]["count"] for f in towns) == sum(
        f["properties"]["count"] for f in agg)
    total = db_session.execute(text("SELECT count(*) FROM sensor")).scalar()
    assert sum(f["properties"]["count"] for f in agg) == total
    only_smoke = q.sensors_by_unit(db_session, "village", (w - 1, s - 1, e + 1, n + 1), ["smoke"])["features"]
    smoke = db_session.execute(text("SELECT count(*) FROM sensor WHERE type = 'smoke'")).scalar()
    assert sum(f["properties"]["count"] for f in only_smoke) == smoke


def test_details_match_the_tables_and_unknown_ids_are_none(db_session):
    vid, total = db_session.execute(text(
        "SELECT village_id, total FROM population WHERE grid_uid IS NULL ORDER BY village_id LIMIT 1")).one()
    v = details.village(db_session, vid)
    assert v["total"] == total and v["grids"] >= 3 and len(v["resources"]) == 6
    assert details.village(db_session, 10**8) is None
    assert details.grid(db_session, 10**8) is None
    assert details.sensor(db_session, 10**8) is None
    assert details.resource(db_session, 10**8) is None


def test_search_finds_by_name_and_code_and_escapes_wildcards(db_session):
    name, code = db_session.execute(text("SELECT name, code FROM village ORDER BY code LIMIT 1")).one()
    assert any(r["code"] == code for r in q.search_villages(db_session, name))
    assert q.search_villages(db_session, code)[0]["code"] == code
    assert q.search_villages(db_session, "%") == []
    assert q.search_villages(db_session, "") == []


def test_population_values_cover_every_unit(db_session):
    assert len(q.population_values(db_session, "village", "total")) == 137
    grids = db_session.execute(text("SELECT count(*) FROM grid WHERE valid_to IS NULL")).scalar()
    assert len(q.population_values(db_session, "grid", "share60")) == grids
