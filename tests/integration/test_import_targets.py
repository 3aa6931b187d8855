"""Every import target: villages, grids, population, sensors, custom layers, rasters; GeoPackage and XLSX."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely
from sqlalchemy import text

from etl.importers import ImportOptions, list_layers, run_import, samples
from geodata.db import Scope
from tests.integration.test_import_world import (EAST_BOX, EAST_CODE, INSIDE, TOWN_CODE, WEST_BOX, WEST_CODE,
                                                 snapshot, world)  # noqa: F401


def _opts(tmp_path, **kw):
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return ImportOptions(work_dir=work, raster_dir=tmp_path / "rasters", **kw)


def test_villages_upsert_by_code(world, tmp_path):
    conn, ids = world
    new_code = TOWN_CODE[:9] + "003"
    moved = shapely.box(WEST_BOX[0], WEST_BOX[1], WEST_BOX[2] - 0.01, WEST_BOX[3])
    feats = [(moved, {"code": WEST_CODE, "name": "西村(新界)"}),
             (shapely.box(EAST_BOX[0], EAST_BOX[1], EAST_BOX[2], EAST_BOX[1] + 0.05), {"code": new_code, "name": "南村"}),
             (shapely.box(120.41, 30.81, 120.42, 30.82), {"code": "339999999001", "name": "无乡镇村"}),
             (shapely.box(120.41, 30.81, 120.42, 30.82), {"code": "12345", "name": "坏代码"})]
    gj = samples.geojson(tmp_path / "villages.geojson", feats)
    report = run_import(gj, "villages", conn, options=_opts(tmp_path))
    assert report.status == "imported", report.lines()
    assert report.counts == {"inserted": 1, "updated": 1}
    assert {i.row: i.code for i in report.issues_of("rejected")} == {3: "unknown_town", 4: "bad_value"}
    row = conn.execute(text("SELECT id, name, ST_XMax(geom) FROM village WHERE code = :c"), {"c": WEST_CODE}).one()
    assert row[0] == ids["villages"][WEST_CODE] and row[1] == "西村(新界)" and row[2] == pytest.approx(WEST_BOX[2] - 0.01)
    assert conn.execute(text("SELECT name FROM village WHERE code = :c"), {"c": new_code}).scalar() == "南村"


def test_villages_need_county_scope(world, tmp_path):
    conn, ids = world
    gj = samples.geojson(tmp_path / "v.geojson", [(shapely.box(*WEST_BOX), {"code": WEST_CODE, "name": "x"})])
    before = snapshot(conn)
    scope = Scope.villages([ids["villages"][WEST_CODE]], "village_official", 7)
    report = run_import(gj, "villages", conn, scope=scope, options=_opts(tmp_path))
    assert (report.status, report.reason_code) == ("refused", "scope_required")
    assert snapshot(conn) == before


def test_grids_are_versioned(world, tmp_path):
    conn, ids = world
    code1, code2 = WEST_CODE + "001", WEST_CODE + "002"
    g1 = shapely.box(120.40, 30.80, 120.45, 30.95)
    g2 = shapely.box(120.45, 30.80, 120.50, 30.95)
    gj = samples.geojson(tmp_path / "grids1.geojson", [(g1, {"网格编码": code1, "网格名称": "一格"}),
                                                       (g2, {"网格编码": code2, "网格名称": "二格"})])
    r1 = run_import(gj, "grids", conn, options=_opts(tmp_path))
    assert r1.status == "imported" and r1.counts == {"inserted": 2, "new_versions": 0, "unchanged": 0}
    uid1 = conn.execute(text("SELECT uid FROM grid WHERE code = :c AND valid_to IS NULL"), {"c": code1}).scalar()
    g1b = shapely.box(120.40, 30.80, 120.46, 30.95)
    gj2 = samples.geojson(tmp_path / "grids2.geojson", [(g1b, {"网格编码": code1, "网格名称": "一格"}),
                                                        (g2, {"网格编码": code2, "网格名称": "二格"}),
                                                        (g2, {"网格编码": "330599100009001", "网格名称": "无村"})])
    r2 = run_import(gj2, "grids", conn, options=_opts(tmp_path))
    assert r2.status == "imported" and r2.counts == {"inserted": 0, "new_versions": 1, "unchanged": 1}
    assert [i.code for i in r2.issues_of("rejected")] == ["unknown_village"]
    versions = conn.execute(text("SELECT version, valid_to IS NULL, uid FROM grid WHERE code = :c ORDER BY version"),
                            {"c": code1}).all()
    assert [(v, cur) for v, cur, _ in versions] == [(1, False), (2, True)]
    assert {u for _, _, u in versions} == {uid1}


def test_population_from_xlsx_by_code(world, tmp_path):
    conn, ids = world
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "人口"
    ws.append(["区划代码", "年份", "总人口", "60岁以上人口", "户数"])
    ws.append([int(WEST_CODE), 2024, 1200, 300, 410])   # a code typed as a number in Excel
    ws.append([EAST_CODE, 2024, 900, 950, 300])          # more elderly than people
    ws.append(["330599100009", 2024, 10, 1, 3])          # no such village
    ws.append([EAST_CODE, 2024, 800, 200, 290])
    wb.create_sheet("空表")
    path = tmp_path / "人口.xlsx"
    wb.save(path)
    report = run_import(path, "population", conn, options=_opts(tmp_path))
    assert report.status == "imported", report.lines()
    assert report.counts == {"inserted": 2, "updated": 0}
    assert {i.row: i.code for i in report.issues_of("rejected")} == {3: "bad_value", 4: "unknown_village"}
    got = conn.execute(text("SELECT v.code, p.total, p.age_60_plus, p.households FROM population p"
                            " JOIN village v ON v.id = p.village_id WHERE p.year = 2024 AND v.code LIKE '330599%'"
                            " ORDER BY v.code")).all()
    assert [tuple(r) for r in got] == [(WEST_CODE, 1200, 300, 410), (EAST_CODE, 800, 200, 290)]


def test_sensors_upsert_by_code_from_csv(world, tmp_path):
    conn, ids = world
    rows = [["DQ-MH-0001", "智能井盖", INSIDE[0][0], INSIDE[0][1], "正常"],
            ["DQ-MH-0002", "manhole", INSIDE[3][0], INSIDE[3][1], "告警"],
            ["DQ-MH-0003", "火星探测器", INSIDE[1][0], INSIDE[1][1], ""]]
    f = samples.csv_points(tmp_path / "sensors.csv", ["设备编号", "设备类型", "经度", "纬度", "状态"], rows)
    report = run_import(f, "sensors", conn, options=_opts(tmp_path))
    assert report.status == "imported", report.lines()
    assert report.counts == {"inserted": 2, "updated": 0}
    assert [i.code for i in report.issues_of("rejected")] == ["unknown_type"]
    got = dict(conn.execute(text("SELECT code, village_id FROM sensor WHERE code LIKE 'DQ-MH-%'")).all())
    assert got == {"DQ-MH-0001": ids["villages"][WEST_CODE], "DQ-MH-0002": ids["villages"][EAST_CODE]}
    assert conn.execute(text("SELECT status FROM sensor WHERE code = 'DQ-MH-0002'")).scalar() == "alarm"


def test_geopackage_layer_choice(world, tmp_path):
    conn, _ = world
    path = tmp_path / "dept.gpkg"
    pts = gpd.GeoDataFrame({"名称": ["甲", "乙"], "类型": ["学校", "幼儿园"]},
                           geometry=[shapely.Point(*INSIDE[0]), shapely.Point(*INSIDE[1])], crs="EPSG:4490")
    polys = gpd.GeoDataFrame({"名称": ["地块"]}, geometry=[shapely.box(120.41, 30.81, 120.42, 30.82)], crs="EPSG:4326")
    pyogrio.write_dataframe(pts, path, layer="schools")
    pyogrio.write_dataframe(polys, path, layer="plots", append=False)
    assert sorted(list_layers(path, tmp_path / "w1")) == ["plots", "schools"]
    before = snapshot(conn)
    report = run_import(path, "resources", conn, options=_opts(tmp_path))
    assert (report.status, report.reason_code) == ("refused", "choose_layer")
    assert "schools" in report.message_en and "plots" in report.message_en
    assert snapshot(conn) == before
    report = run_import(path, "resources", conn, options=_opts(tmp_path, layer="schools"))
    assert report.status == "imported" and report.rows_imported == 2
    assert report.format == "gpkg" and report.source_crs == "EPSG:4490"
    report = run_import(path, "custom", conn, options=_opts(tmp_path, layer="nope", layer_name="x_layer"))
    assert report.reason_code == "layer_not_found"


def test_custom_layer_swap_and_reserved_names(world, tmp_path):
    conn, _ = world
    gj = samples.geojson(tmp_path / "a.geojson", [(shapely.Point(*p), {"名称": f"井{i}"}) for i, p in enumerate(INSIDE)])
    r1 = run_import(gj, "custom", conn, options=_opts(tmp_path, layer_name="wells", title_zh="水井", title_en="Wells"))
    assert r1.status == "imported" and r1.counts["inserted"] == 5
    gj2 = samples.geojson(tmp_path / "b.geojson", [(shapely.Point(*INSIDE[0]), {"名称": "新井"})])
    r2 = run_import(gj2, "custom", conn, options=_opts(tmp_path, layer_name="wells", title_zh="水井", title_en="Wells"))
    assert r2.counts["inserted"] == 1 and r2.counts["replaced"] == 5
    props = conn.execute(text("SELECT f.props FROM custom_feature f JOIN custom_layer l ON l.id = f.layer_id"
                              " WHERE l.name = 'wells'")).scalars().all()
    assert props == [{"名称": "新井"}]
    for bad, code in (("villages", "layer_name_reserved"), ("Bad Name", "layer_name_required"), (None, "layer_name_required")):
        report = run_import(gj, "custom", conn, options=_opts(tmp_path, layer_name=bad))
        assert report.reason_code == code


def test_village_scoped_custom_import_keeps_to_its_villages(world, tmp_path):
    conn, ids = world
    west = ids["villages"][WEST_CODE]
    gj = samples.geojson(tmp_path / "mine.geojson", [(shapely.Point(*p), {"name": str(i)}) for i, p in enumerate(INSIDE)])
    report = run_import(gj, "custom", conn, scope=Scope.villages([west], "village_official", 5),
                        options=_opts(tmp_path, layer_name="mine"))
    assert report.status == "imported", report.lines()
    assert report.rows_imported == 3 and {i.code for i in report.issues_of("rejected")} == {"no_village"}
    assert set(conn.execute(text("SELECT village_id FROM custom_feature")).scalars()) == {west}


def test_geotiff_is_kept_with_metadata(world, tmp_path):
    conn, _ = world
    import rasterio
    from rasterio.transform import from_origin

    path = tmp_path / "dem.tif"
    data = np.arange(100 * 80, dtype="float32").reshape(1, 80, 100)
    with rasterio.open(path, "w", driver="GTiff", width=100, height=80, count=1, dtype="float32", crs="EPSG:4549",
                       transform=from_origin(540000, 3420000, 30, 30), nodata=-9999) as ds:
        ds.write(data)
    report = run_import(path, "raster", conn, options=_opts(tmp_path, layer_name="dem", title_zh="高程"))
    assert report.status == "imported", report.lines()
    row = conn.execute(text("SELECT width, height, band_count, source_crs, nodata, path, file_sha256,"
                            " ST_XMin(footprint), ST_YMin(footprint) FROM raster_dataset WHERE name = 'dem'")).one()
    assert row[:5] == (100, 80, 1, "EPSG:4549", -9999.0)
    stored = tmp_path / "rasters" / f"{report.file_sha256}.tif"
    assert row[5] == str(stored) and stored.read_bytes() == path.read_bytes()
    assert 120.40 < row[7] < 120.45 and 30.85 < row[8] < 30.95
    # same file again: already imported; a vector file cannot go to 'raster'
    assert run_import(path, "raster", conn, options=_opts(tmp_path, layer_name="dem")).status == "already_imported"
    gj = samples.geojson(tmp_path / "p.geojson", [(shapely.Point(*INSIDE[0]), {})])
    assert run_import(gj, "raster", conn, options=_opts(tmp_path, layer_name="dem2")).reason_code == "target_format"


def test_geotiff_without_crs_is_refused_and_leaves_no_file(world, tmp_path):
    conn, _ = world
    import rasterio
    from rasterio.transform import from_origin

    path = tmp_path / "nocrs.tif"
    with rasterio.open(path, "w", driver="GTiff", width=10, height=10, count=1, dtype="uint8",
                       transform=from_origin(540000, 3420000, 30, 30)) as ds:
        ds.write(np.zeros((1, 10, 10), dtype="uint8"))
    before = snapshot(conn)
    report = run_import(path, "raster", conn, options=_opts(tmp_path, layer_name="nocrs"))
    assert (report.status, report.reason_code) == ("refused", "raster_no_crs")
    assert snapshot(conn) == before
    assert not (tmp_path / "rasters").exists() or not any((tmp_path / "rasters").iterdir())
    report = run_import(path, "raster", conn, options=_opts(tmp_path, layer_name="nocrs", crs="EPSG:4549"))
    assert report.status == "imported"


def test_an_imported_custom_layer_appears_among_the_map_layers(world, tmp_path):
    from sqlalchemy.orm import Session

    from layers.base import ViewRequest
    from layers.registry import layers_for, resolve

    conn, _ = world
    gj = samples.geojson(tmp_path / "c.geojson", [(shapely.Point(*p), {"名称": f"站{i}"}) for i, p in enumerate(INSIDE)])
    report = run_import(gj, "custom", conn, options=_opts(tmp_path, layer_name="stations", title_zh="站点",
                                                          title_en="Stations"))
    assert report.status == "imported"
    session = Session(bind=conn)
    layers = layers_for(session)
    assert "custom:stations" in layers and layers["custom:stations"].title_zh == "站点"
    layer = resolve("custom:stations", session)
    fc = layer.features(session, ViewRequest((-180, -90, 180, 90), 12))
    assert len(fc["features"]) == len(INSIDE)
    assert {f["properties"]["名称"] for f in fc["features"]} == {f"站{i}" for i in range(len(INSIDE))}
    assert resolve("custom:nope", session) is None


def test_overlapping_grids_are_refused_by_the_topology_check(world, tmp_path):
    conn, _ = world
    # The topology trigger is deferred to commit; the world's transaction never commits,
    # so make it fire at once, as a real import's commit would.
    conn.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))
    before = conn.execute(text("SELECT count(*) FROM grid WHERE valid_to IS NULL")).scalar()
    a = shapely.box(120.40, 30.80, 120.46, 30.95)
    b = shapely.box(120.45, 30.80, 120.50, 30.95)  # overlaps a by ~1 km
    gj = samples.geojson(tmp_path / "overlap.geojson", [(a, {"网格编码": WEST_CODE + "011", "网格名称": "甲"}),
                                                        (b, {"网格编码": WEST_CODE + "012", "网格名称": "乙"})])
    report = run_import(gj, "grids", conn, options=_opts(tmp_path))
    assert report.status == "refused" and report.reason_code == "grid_topology", (report.status, report.reason_code)
    assert "网格拓扑" in report.message_zh and "topology" in report.message_en
    assert conn.execute(text("SELECT count(*) FROM grid WHERE valid_to IS NULL")).scalar() == before
