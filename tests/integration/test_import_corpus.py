"""The import corpus, generated here: each file's outcome, and the database unchanged on refusal."""
from __future__ import annotations

import json
import os
import time
import tracemalloc

import numpy as np
import pytest
import shapely
from sqlalchemy import text

from etl.coords import wgs84_to_bd09, wgs84_to_gcj02
from etl.importers import ImportOptions, Limits, get_report, run_import, samples
from tests.integration.test_import_world import INSIDE, snapshot, world  # noqa: F401 (fixture)

NAMES = ["新市镇中心卫生院", "乾元镇卫生院", "洛舍镇砂村卫生室", "钟管镇曲溪村卫生室", "禹越镇三林村卫生服务站"]


def _clinic_props(names=NAMES):
    n = len(names)
    return {"MC": list(names), "LX": ["卫生院"] * n, "CWS": list(range(10, 10 + n)), "BH": [f"WS{i:03d}" for i in range(n)]}


def _opts(tmp_path, **kw):
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return ImportOptions(work_dir=work, raster_dir=tmp_path / "rasters", **kw)


def _refused(conn, tmp_path, path, target, code, **kw):
    """Import that must be refused with ``code``, leaving every data table as it was."""
    before = snapshot(conn)
    report = run_import(path, target, conn, options=_opts(tmp_path, **kw))
    assert report.status == "refused", report.lines()
    assert report.reason_code == code, report.lines()
    assert report.message_zh and report.message_en
    assert snapshot(conn) == before
    assert not any((tmp_path / "work").iterdir()), "temporary files left behind"
    saved = get_report(conn, report.id)
    assert saved is not None and saved.status == "refused" and saved.reason_code == code
    return report


def _names_in_db(conn, source):
    return conn.execute(text("SELECT name FROM resource WHERE source = :s ORDER BY attrs->>'_source_id'"),
                        {"s": "import:" + source}).scalars().all()


# -- encodings ----------------------------------------------------------------------------------
@pytest.mark.parametrize("cpg", [True, False], ids=["with-cpg", "without-cpg"])
def test_gbk_shapefile_round_trips_chinese_names(world, tmp_path, cpg):
    conn, _ = world
    z = samples.shapefile_zip(tmp_path / "卫生机构.zip", INSIDE, _clinic_props(), encoding="GBK", cpg=cpg)
    report = run_import(z, "resources", conn, options=_opts(tmp_path))
    assert report.status == "imported", report.lines()
    assert report.encoding == "GBK"
    assert report.encoding_source == ("cpg" if cpg else "detected")
    assert report.rows_imported == 5 and report.rows_rejected == 0
    names = _names_in_db(conn, "卫生机构")
    assert names == NAMES
    assert not any("\ufffd" in n for n in names)
    assert conn.execute(text("SELECT count(DISTINCT type) FROM resource WHERE source = 'import:卫生机构'")).scalar() == 1
    assert not any((tmp_path / "work").iterdir())


def test_gb18030_only_characters_are_detected(world, tmp_path):
    conn, _ = world
    names = ["䶮村卫生室", "𠀀号卫生院"] + NAMES[:3]  # outside GBK, inside GB18030
    z = samples.shapefile_zip(tmp_path / "rare.zip", INSIDE, _clinic_props(names), encoding="GB18030", cpg=False)
    report = run_import(z, "resources", conn, options=_opts(tmp_path))
    assert report.status == "imported", report.lines()
    assert (report.encoding, report.encoding_source) == ("GB18030", "detected")
    assert _names_in_db(conn, "rare") == names


def test_utf8_shapefile_with_cpg(world, tmp_path):
    conn, _ = world
    z = samples.shapefile_zip(tmp_path / "utf8.zip", INSIDE, _clinic_props(), encoding="UTF-8", cpg=True)
    report = run_import(z, "resources", conn, options=_opts(tmp_path))
    assert (report.status, report.encoding, report.encoding_source) == ("imported", "UTF-8", "cpg")
    assert _names_in_db(conn, "utf8") == NAMES


def test_cpg_that_lies_is_refused_instead_of_garbling(world, tmp_path):
    conn, _ = world
    z = samples.shapefile_zip(tmp_path / "liar.zip", INSIDE, _clinic_props(), encoding="GBK", cpg=False)
    import zipfile

    with zipfile.ZipFile(z, "a") as zf:
        zf.writestr("liar.cpg", "UTF-8")
    _refused(conn, tmp_path, z, "resources", "encoding_mismatch")


# -- geometry ---------------------------------------------------------------------------------------
def test_bowtie_and_self_touching_rings_are_repaired_and_reported(world, tmp_path):
    conn, _ = world
    (x0, y0), (x1, y1) = INSIDE[0], INSIDE[3]
    bow, touch = samples.bowtie(x0, y0), samples.self_touching(x1, y1)
    gj = samples.geojson(tmp_path / "polys.geojson", [(bow, {"id": "A", "名称": "蝴蝶结地块"}),
                                                       (touch, {"id": "B", "名称": "自接触地块"}),
                                                       (shapely.box(x0, y0 + 0.05, x0 + 0.01, y0 + 0.06),
                                                        {"id": "C", "名称": "正常地块"})])
    report = run_import(gj, "custom", conn, options=_opts(tmp_path, layer_name="plots", title_zh="地块"))
    assert report.status == "imported", report.lines()
    assert (report.rows_read, report.rows_imported, report.rows_repaired) == (3, 3, 2)
    repairs = {i.fid: i for i in report.issues_of("repaired")}
    assert set(repairs) == {"A", "B"}
    assert repairs["A"].detail["reason"].startswith("Self-intersection")
    assert repairs["B"].detail["reason"].startswith("Ring Self-intersection")
    # the bowtie's signed area is 0 before; two triangles after
    assert repairs["A"].detail["before"] == pytest.approx(0, abs=1)
    assert repairs["A"].detail["after"] > 1000
    assert repairs["B"].detail["delta"] == pytest.approx(0, abs=1)
    assert "面积" in repairs["A"].message_zh and "area" in repairs["A"].message_en
    # PostGIS agrees with the reasons (both are GEOS), and everything stored is valid
    pg_reason = conn.execute(text("SELECT ST_IsValidReason(ST_GeomFromText(:w, 4490))"), {"w": bow.wkt}).scalar()
    assert pg_reason.split("[")[0] == repairs["A"].detail["reason"].split("[")[0]
    assert conn.execute(text("SELECT bool_and(ST_IsValid(geom)), count(*) FROM custom_feature f"
                             " JOIN custom_layer l ON l.id = f.layer_id WHERE l.name = 'plots'")).one() == (True, 3)


def test_nan_empty_and_null_geometries_are_rejected_per_feature(world, tmp_path):
    conn, _ = world
    good = [(shapely.Point(*p), {"id": i, "name": f"点{i}"}) for i, p in enumerate(INSIDE[:3])]
    feats = good + [(shapely.Point(0, 0), {"id": 10, "name": "NaN"}), (None, {"id": 11, "name": "空"}),
                    (shapely.Point(0, 0), {"id": 12, "name": "empty"}), (shapely.Point(0, 0), {"id": 13, "name": "inf"})]
    raw = [None] * 3 + [{"type": "Point", "coordinates": [float("nan"), 30.5]}, None,
                        {"type": "Point", "coordinates": []}, {"type": "Point", "coordinates": [float("inf"), 30.5]}]
    gj = samples.geojson(tmp_path / "bad.geojson", feats, raw_geometries=raw)
    report = run_import(gj, "custom", conn, options=_opts(tmp_path, layer_name="bad_points"))
    assert report.status == "imported", report.lines()
    assert (report.rows_read, report.rows_imported, report.rows_rejected) == (7, 3, 4)
    reasons = {i.fid: i.code for i in report.issues_of("rejected")}
    assert reasons["10"] == "non_finite" and reasons["13"] == "non_finite"
    assert reasons["11"] == "empty_geometry"
    assert reasons["12"] in ("empty_geometry", "bad_geometry")


def test_csv_with_nan_and_text_coordinates(world, tmp_path):
    conn, _ = world
    rows = [["卫生室甲", "卫生室", INSIDE[0][0], INSIDE[0][1]], ["卫生室乙", "卫生室", "nan", "30.5"],
            ["卫生室丙", "卫生室", "东经120度", "30.5"], ["卫生室丁", "卫生室", INSIDE[1][0], INSIDE[1][1]]]
    f = samples.csv_points(tmp_path / "clinics.csv", ["名称", "类型", "经度", "纬度"], rows, encoding="gbk")
    report = run_import(f, "resources", conn, options=_opts(tmp_path))
    assert report.status == "imported", report.lines()
    assert report.encoding == "GBK"
    assert {i.row: i.code for i in report.issues_of("rejected")} == {3: "non_finite", 4: "bad_coordinate"}
    assert _names_in_db(conn, "clinics") == ["卫生室甲", "卫生室丁"] or sorted(_names_in_db(conn, "clinics")) == sorted(
        ["卫生室甲", "卫生室丁"])


def test_mixed_geometry_types(world, tmp_path):
    conn, _ = world
    p = [shapely.Point(*xy) for xy in INSIDE]
    feats = [(p[0], {"id": 1, "名称": "点一", "类型": "学校"}), (p[1], {"id": 2, "名称": "点二", "类型": "学校"}),
             (p[2], {"id": 3, "名称": "点三", "类型": "学校"}),
             (shapely.box(120.41, 30.81, 120.42, 30.82), {"id": 4, "名称": "面", "类型": "学校"}),
             (shapely.LineString([INSIDE[0], INSIDE[1]]), {"id": 5, "名称": "线", "类型": "学校"}),
             (shapely.MultiPoint([INSIDE[3]]), {"id": 6, "名称": "单点多点", "类型": "学校"}),
             (shapely.MultiPoint(INSIDE[3:5]), {"id": 7, "名称": "两点多点", "类型": "学校"})]
    gj = samples.geojson(tmp_path / "mixed.geojson", feats)
    report = run_import(gj, "resources", conn, options=_opts(tmp_path))
    assert report.status == "imported", report.lines()
    rejected = {i.fid: i.code for i in report.issues_of("rejected")}
    assert rejected == {"4": "wrong_type", "5": "wrong_type", "7": "multi_part_point"}
    assert report.rows_imported == 4  # the single-part MultiPoint became a Point
    # a custom layer keeps the majority family and reports the others
    report = run_import(gj, "custom", conn, options=_opts(tmp_path, layer_name="mixed"))
    assert report.status == "imported"
    assert any(n.code == "geometry_family_mixed" for n in report.notes)
    assert {i.fid for i in report.issues_of("rejected")} == {"4", "5"}
    fam = conn.execute(text("SELECT geom_family FROM custom_layer WHERE name = 'mixed'")).scalar()
    assert fam == "point"


def test_multipolygons_are_kept_whole(world, tmp_path):
    conn, _ = world
    mp = shapely.MultiPolygon([shapely.box(120.41, 30.81, 120.42, 30.82), shapely.box(120.43, 30.81, 120.44, 30.82)])
    gj = samples.geojson(tmp_path / "mp.geojson", [(mp, {"id": "m", "name": "两块"})])
    report = run_import(gj, "custom", conn, options=_opts(tmp_path, layer_name="multi"))
    assert report.status == "imported"
    assert conn.execute(text("SELECT ST_NumGeometries(geom) FROM custom_feature f JOIN custom_layer l"
                             " ON l.id = f.layer_id WHERE l.name = 'multi'")).scalar() == 2


# -- coordinate systems ----------------------------------------------------------------------------------
def test_missing_prj_in_metres_is_refused_then_imported_with_the_crs(world, tmp_path):
    conn, _ = world
    gk = samples.to_gauss_kruger(INSIDE, 4549)
    z = samples.shapefile_zip(tmp_path / "gk.zip", gk, _clinic_props(), prj=False, crs="EPSG:4549")
    report = _refused(conn, tmp_path, z, "resources", "crs_required")
    assert "EPSG:4549" in report.message_zh and "EPSG:4549" in report.message_en
    report = run_import(z, "resources", conn, options=_opts(tmp_path, crs="EPSG:4549"))
    assert report.status == "imported", report.lines()
    assert report.source_crs == "EPSG:4549"
    got = conn.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM resource WHERE source = 'import:gk'"
                            " ORDER BY attrs->>'_source_id'")).all()
    assert np.allclose(np.array(got), np.array(INSIDE), atol=1e-7)


def test_degrees_without_crs_are_taken_as_cgcs2000_and_said_so(world, tmp_path):
    conn, _ = world
    z = samples.shapefile_zip(tmp_path / "noprj.zip", INSIDE, _clinic_props(), prj=False)
    report = run_import(z, "resources", conn, options=_opts(tmp_path))
    assert report.status == "imported"
    assert "assumed" in report.source_crs
    assert any(n.code == "crs_assumed" for n in report.notes)


def test_swapped_axes_are_detected_and_imported_when_confirmed(world, tmp_path):
    conn, _ = world
    rows = [[n, "卫生室", lat, lon] for n, (lon, lat) in zip(NAMES, INSIDE)]  # lon/lat swapped
    f = samples.csv_points(tmp_path / "swapped.csv", ["名称", "类型", "经度", "纬度"], rows)
    report = _refused(conn, tmp_path, f, "resources", "axes_swapped")
    assert "交换" in report.message_zh and "swap" in report.message_en
    report = run_import(f, "resources", conn, options=_opts(tmp_path, swap_axes=True))
    assert report.status == "imported", report.lines()
    got = conn.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM resource WHERE source = 'import:swapped'"
                            " ORDER BY id")).all()
    assert np.allclose(np.array(got), np.array(INSIDE), atol=1e-9)


def test_gcj02_columns_are_converted_and_marked(world, tmp_path):
    conn, _ = world
    glon, glat = wgs84_to_gcj02(np.array([p[0] for p in INSIDE]), np.array([p[1] for p in INSIDE]))
    rows = [[n, "便民服务站", x, y] for n, x, y in zip(NAMES, glon, glat)]
    f = samples.csv_points(tmp_path / "amap.csv", ["名称", "类型", "高德经度", "高德纬度"], rows)
    report = run_import(f, "resources", conn, options=_opts(tmp_path))
    assert report.status == "imported", report.lines()
    assert report.converted_from == "gcj02"
    assert any(n.code == "converted" for n in report.notes)
    got = conn.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM resource WHERE source = 'import:amap' ORDER BY id")).all()
    assert np.allclose(np.array(got), np.array(INSIDE), atol=1e-6)  # ~10 cm
    saved = get_report(conn, report.id)
    assert saved.converted_from == "gcj02"


def test_bd09_declared_by_option(world, tmp_path):
    conn, _ = world
    blon, blat = wgs84_to_bd09(np.array([p[0] for p in INSIDE]), np.array([p[1] for p in INSIDE]))
    feats = [(shapely.Point(x, y), {"name": n, "type": "school"}) for n, x, y in zip(NAMES, blon, blat)]
    gj = samples.geojson(tmp_path / "baidu.geojson", feats)
    report = run_import(gj, "resources", conn, options=_opts(tmp_path, datum="bd09"))
    assert report.status == "imported" and report.converted_from == "bd09"
    got = conn.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM resource WHERE source = 'import:baidu' ORDER BY id")).all()
    assert np.allclose(np.array(got), np.array(INSIDE), atol=2e-5)  # BD-09's inverse is the ~1 m one


def test_features_outside_the_county(world, tmp_path):
    conn, _ = world
    far = (100.0, 25.0)  # Yunnan: in China, far from the county
    feats = [(shapely.Point(*p), {"name": f"点{i}", "type": "school", "id": i}) for i, p in enumerate(INSIDE)]
    feats.append((shapely.Point(*far), {"name": "远处", "type": "school", "id": 99}))
    gj = samples.geojson(tmp_path / "far.geojson", feats)
    report = run_import(gj, "resources", conn, options=_opts(tmp_path))
    assert report.status == "imported"
    assert {i.fid: i.code for i in report.issues_of("rejected")} == {"99": "outside_county"}
    report = run_import(gj, "custom", conn, options=_opts(tmp_path, layer_name="far"))
    assert report.status == "imported" and report.rows_imported == 6 and report.rows_flagged == 1
    assert report.issues_of("flagged")[0].fid == "99"


def test_nothing_in_the_county_is_refused(world, tmp_path):
    conn, _ = world
    gj = samples.geojson(tmp_path / "elsewhere.geojson",
                         [(shapely.Point(100 + i / 10, 25), {"name": "x", "type": "school"}) for i in range(5)])
    _refused(conn, tmp_path, gj, "custom", "nothing_in_county", layer_name="elsewhere")


# -- archives ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("entry,symlink,code", [
    ("../../evil.geojson", False, "archive_unsafe_path"),
    ("/tmp/evil.geojson", False, "archive_unsafe_path"),
    ("C:\\evil.geojson", False, "archive_unsafe_path"),
    ("data/../../evil.geojson", False, "archive_unsafe_path"),
    ("link.geojson", True, "archive_symlink"),
], ids=["dotdot", "absolute", "drive", "nested-dotdot", "symlink"])
def test_unsafe_archives_are_refused(world, tmp_path, entry, symlink, code):
    conn, _ = world
    z = samples.zip_with_entry(tmp_path / "evil.zip", entry, b'{"type":"FeatureCollection","features":[]}'
                               if not symlink else b"/etc/passwd", symlink=symlink)
    _refused(conn, tmp_path, z, "custom", code, layer_name="evil")
    assert not (tmp_path / "evil.geojson").exists() and not (tmp_path.parent / "evil.geojson").exists()


def test_zip_bomb_is_refused_quickly_in_bounded_memory(world, tmp_path):
    conn, _ = world
    bomb = samples.zip_bomb(tmp_path / "bomb.zip", uncompressed=64 << 20)
    assert bomb.stat().st_size < (1 << 20)
    before = snapshot(conn)
    tracemalloc.start()
    t0 = time.perf_counter()
    report = run_import(bomb, "custom", conn, options=_opts(tmp_path, layer_name="bomb"))
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert report.status == "refused" and report.reason_code == "archive_ratio", report.lines()
    assert elapsed < 2.0
    assert peak < 16 << 20
    assert snapshot(conn) == before
    assert not any((tmp_path / "work").iterdir())


def test_archive_size_and_count_limits(world, tmp_path):
    conn, _ = world
    z = samples.shapefile_zip(tmp_path / "small.zip", INSIDE, _clinic_props())
    for limits, code in ((Limits(max_total_bytes=500), "archive_too_large"),
                         (Limits(max_entries=2), "archive_too_many_entries"),
                         (Limits(max_entry_bytes=100), "archive_entry_too_large"),
                         (Limits(max_file_bytes=100), "file_too_large")):
        before = snapshot(conn)
        report = run_import(z, "resources", conn, options=_opts(tmp_path), limits=limits)
        assert (report.status, report.reason_code) == ("refused", code)
        assert snapshot(conn) == before


# -- ids, idempotency, all-or-nothing -------------------------------------------------------------------------
def test_duplicate_ids_are_reported(world, tmp_path):
    conn, _ = world
    props = _clinic_props()
    props["BH"] = ["WS1", "WS2", "WS1", "WS3", "WS2"]
    z = samples.shapefile_zip(tmp_path / "dups.zip", INSIDE, props)
    report = run_import(z, "resources", conn, options=_opts(tmp_path))
    assert report.status == "imported"
    dups = [(i.row, i.detail["id"], i.detail["first"]) for i in report.issues_of("rejected")]
    assert dups == [(3, "WS1", 1), (5, "WS2", 2)]
    assert "重复" in report.issues_of("rejected")[0].message_zh


def test_same_file_twice_is_already_imported(world, tmp_path):
    conn, _ = world
    z = samples.shapefile_zip(tmp_path / "twice.zip", INSIDE, _clinic_props())
    first = run_import(z, "resources", conn, options=_opts(tmp_path))
    assert first.status == "imported"
    before = snapshot(conn)
    again = run_import(z, "resources", conn, options=_opts(tmp_path))
    assert again.status == "already_imported" and again.duplicate_of == first.id
    assert "已导入" in again.message_zh and "already imported" in again.message_en
    assert snapshot(conn) == before


def test_reimport_of_a_changed_file_replaces_the_source(world, tmp_path):
    conn, _ = world
    (tmp_path / "v1").mkdir()
    z = samples.shapefile_zip(tmp_path / "v1" / "卫健局.zip", INSIDE, _clinic_props())
    assert run_import(z, "resources", conn, options=_opts(tmp_path)).status == "imported"
    ids_before = dict(conn.execute(text("SELECT attrs->>'_source_id', id FROM resource WHERE source = 'import:卫健局'")).all())
    (tmp_path / "v2").mkdir()
    props = _clinic_props(NAMES[:4])
    props["MC"][0] = "新市镇中心卫生院(新址)"
    z2 = samples.shapefile_zip(tmp_path / "v2" / "卫健局.zip", INSIDE[:4], props)
    report = run_import(z2, "resources", conn, options=_opts(tmp_path))
    assert report.status == "imported"
    assert report.counts == {"inserted": 0, "updated": 4, "deleted": 1}
    rows = dict(conn.execute(text("SELECT attrs->>'_source_id', id FROM resource WHERE source = 'import:卫健局'")).all())
    assert rows == {k: v for k, v in ids_before.items() if k != "WS004"}  # ids kept for the same source ids


def test_strict_mode_refuses_the_whole_file(world, tmp_path):
    conn, _ = world
    props = _clinic_props()
    props["LX"][2] = "不知道什么"
    z = samples.shapefile_zip(tmp_path / "strict.zip", INSIDE, props)
    report = _refused(conn, tmp_path, z, "resources", "strict_rejected", strict=True)
    assert "1" in report.message_en


def test_all_rejected_is_refused(world, tmp_path):
    conn, _ = world
    props = _clinic_props()
    props["LX"] = ["外星基地"] * 5
    z = samples.shapefile_zip(tmp_path / "allbad.zip", INSIDE, props)
    report = _refused(conn, tmp_path, z, "resources", "no_valid_features")
    assert report.rows_rejected == 5
    assert all(i.code == "unknown_type" for i in report.issues_of("rejected"))


def test_a_database_error_rolls_everything_back(world, tmp_path, monkeypatch):
    conn, _ = world
    from etl.importers import targets

    def boom(self, conn, import_id):
        conn.execute(text("INSERT INTO custom_layer (name, title_zh, title_en, geom_family) VALUES ('half', 'x', 'x', 'point')"))
        conn.execute(text("SELECT 1/0"))

    monkeypatch.setattr(targets.CustomTarget, "merge", boom)
    gj = samples.geojson(tmp_path / "err.geojson", [(shapely.Point(*INSIDE[0]), {"name": "a"})])
    before = snapshot(conn)
    with pytest.raises(Exception):
        run_import(gj, "custom", conn, options=_opts(tmp_path, layer_name="half"))
    assert snapshot(conn) == before
    failed = conn.execute(text("SELECT status, reason_code FROM import_report ORDER BY id DESC LIMIT 1")).one()
    assert tuple(failed) == ("failed", "internal_error")
    assert not any((tmp_path / "work").iterdir())


def test_unsupported_and_empty_files(world, tmp_path):
    conn, _ = world
    (tmp_path / "notes.docx").write_bytes(b"PK\x03\x04 not really")
    _refused(conn, tmp_path, tmp_path / "notes.docx", "custom", "bad_archive", layer_name="doc")
    (tmp_path / "empty.geojson").write_bytes(b"")
    _refused(conn, tmp_path, tmp_path / "empty.geojson", "custom", "empty_file", layer_name="empty")
    (tmp_path / "photo.png").write_bytes(b"\x89PNG\r\n")
    _refused(conn, tmp_path, tmp_path / "photo.png", "custom", "unsupported_format", layer_name="png")


def test_report_is_saved_with_issues(world, tmp_path):
    conn, _ = world
    props = _clinic_props()
    props["BH"][1] = props["BH"][0]
    z = samples.shapefile_zip(tmp_path / "saved.zip", INSIDE, props)
    report = run_import(z, "resources", conn, options=_opts(tmp_path, created_by="tester"))
    saved = get_report(conn, report.id)
    assert saved.status == "imported" and saved.rows_rejected == 1 and saved.created_by == "tester"
    assert saved.issues[0].code == "duplicate_id" and saved.issues[0].row == 2
    assert saved.encoding == "GBK"
    assert json.loads(report.to_json())["rows_read"] == 5
    assert any("WS000" in line for line in saved.lines("en"))


def test_progress_is_reported(world, tmp_path):
    conn, _ = world
    n = 3000
    rng = np.random.default_rng(1)
    xs = rng.uniform(120.41, 120.59, n)
    ys = rng.uniform(30.81, 30.94, n)
    rows = [[f"点{i}", "学校", x, y] for i, (x, y) in enumerate(zip(xs, ys))]
    f = samples.csv_points(tmp_path / "many.csv", ["name", "type", "lon", "lat"], rows)
    seen = []
    report = run_import(f, "custom", conn, options=_opts(tmp_path, layer_name="many"),
                        progress=lambda stage, done, total: seen.append((stage, done, total)))
    assert report.status == "imported" and report.rows_imported == n
    stages = [s for s, _, _ in seen]
    assert stages[0] == "hash" and stages[-1] == "done" and "read" in stages and "merge" in stages
    reads = [d for s, d, _ in seen if s == "read"]
    assert reads == sorted(reads) and reads[-1] == n


def test_temp_dir_default_is_cleaned(world, tmp_path, monkeypatch):
    conn, _ = world
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    z = samples.shapefile_zip(tmp_path / "tmpclean.zip", INSIDE, _clinic_props())
    report = run_import(z, "resources", conn, options=ImportOptions())
    assert report.status == "imported"
    assert not [p for p in os.listdir(tmp_path) if p.startswith("dvmap-import-")]
