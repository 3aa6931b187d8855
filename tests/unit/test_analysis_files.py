"""File analyses and exports without the database: H3 cells, coverage, exports, bad files."""
from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import shapely

from etl.analysis_export import read_features
from geodata.analysis.export import export_result
from etl.analysis_files import coverage_file, hotspots_file
from geodata.analysis.cells import h3_cells
from geodata.analysis.errors import AnalysisError


def _points(n=400, seed=1):
    rng = np.random.default_rng(seed)
    hot = rng.normal([120.0, 30.55], 0.004, (n // 2, 2))
    bg = np.column_stack([rng.uniform(119.95, 120.05, n - n // 2), rng.uniform(30.5, 30.6, n - n // 2)])
    xy = np.vstack([hot, bg])
    return gpd.GeoDataFrame(geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=4490)


def test_h3_cells_are_hexagon_neighbours():
    area = shapely.box(119.95, 30.5, 120.05, 30.6)
    cells = h3_cells(area, 8)
    w = cells.weights("queen")
    assert len(cells) > 100
    # interior hexagons have 6 neighbours, none more
    assert w.cardinalities.max() == 6 and (w.cardinalities == 6).mean() > 0.7


def test_bad_h3_resolution():
    with pytest.raises(AnalysisError) as info:
        h3_cells(shapely.box(0, 0, 1, 1), 12)
    assert info.value.code == "bad_resolution"


def test_point_file_hot_spot_finds_the_planted_cluster(tmp_path):
    res = hotspots_file(_points(), resolution=8, permutations=199)
    hot = [f for f in res.features if f["properties"]["cls"] >= 2]
    assert hot
    centre = shapely.MultiPolygon([shapely.geometry.shape(f["geometry"]) for f in hot]).centroid
    assert abs(centre.x - 120.0) < 0.01 and abs(centre.y - 30.55) < 0.01


def test_exports_in_four_formats(tmp_path):
    import pyogrio

    res = hotspots_file(_points(), resolution=8, permutations=99)
    for fmt, suffix in (("geojson", ".geojson"), ("gpkg", ".gpkg"), ("csv", ".csv"), ("html", ".html")):
        path = export_result(res, fmt, tmp_path / f"r{suffix}")
        assert path.stat().st_size > 0
    doc = json.loads((tmp_path / "r.geojson").read_text(encoding="utf-8"))
    assert len(doc["features"]) == len(res.features) and "weights" in doc["dvmap"]["params"]
    assert "_color" not in doc["features"][0]["properties"]
    layers = [name for name, _ in pyogrio.list_layers(tmp_path / "r.gpkg")]
    assert "hotspots" in layers and "analysis_info" in layers
    assert (tmp_path / "r.csv").read_text(encoding="utf-8-sig").splitlines()[0].endswith("wkt")
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "L.map" in html or "L.Map" in html
    assert "dvmap-legend" in html and "热点" in html


def test_coverage_file_uniform_population(tmp_path):
    # two 1 km squares of 1,000 people; one facility in the middle of the first, 500 m reach
    from pyproj import Transformer

    inv = Transformer.from_crs(4549, 4490, always_xy=True)
    sq = [shapely.box(500000, 3300000, 501000, 3301000), shapely.box(501000, 3300000, 502000, 3301000)]
    pop = gpd.GeoDataFrame({"people": [1000, 1000]}, geometry=sq, crs=4549).to_crs(4490)
    fac = gpd.GeoDataFrame(geometry=[shapely.Point(*inv.transform(500500, 3300500))], crs=4490)
    res = coverage_file(pop, "people", fac, 500)
    share = np.pi * 500 ** 2 / 1e6  # the circle lies inside the first square
    assert res.summary["covered"] == pytest.approx(1000 * share, abs=3)
    assert res.features[1]["properties"]["covered"] == 0
    assert len(res.points) == 2  # both squares have uncovered parts


def test_file_without_geometry_is_refused(tmp_path):
    p = tmp_path / "no_geom.csv"
    p.write_text("name,count\na,1\n", encoding="utf-8")
    with pytest.raises(AnalysisError) as info:
        read_features(p)
    assert info.value.code == "no_geometry" and "几何" in info.value.message_zh


def test_csv_with_lon_lat_columns_is_read(tmp_path):
    p = tmp_path / "pts.csv"
    p.write_text("lon,lat,kind\n120.0,30.5,a\n120.1,30.6,b\n", encoding="utf-8")
    gdf = read_features(p)
    assert len(gdf) == 2 and gdf.crs.to_epsg() == 4490


def test_too_few_points_says_how_many_are_needed():
    with pytest.raises(AnalysisError) as info:
        hotspots_file(_points(20))
    assert info.value.code == "too_few_events" and info.value.details["needed"] == 30
