"""Readers, encodings, CRS decisions and geometry checks — no database."""
from __future__ import annotations

import numpy as np
import pytest
import shapely

from etl.coords import wgs84_to_gcj02
from etl.importers import ImportRejected, samples
from etl.importers import crs as crsmod
from etl.importers.encoding import choose_dbf_encoding, decode_text, normalise_name
from etl.importers.geometry import check_geometry, metric_area
from etl.importers.readers import find_xy_columns, open_vector, parse_geojson, read_csv_text
from etl.importers.targets import resolve_fields

PTS = [(120.41, 30.82), (120.44, 30.86), (120.47, 30.90)]
REGION = crsmod.Region((120.40, 30.80, 120.60, 30.95))


# -- encodings ---------------------------------------------------------------------------
@pytest.mark.parametrize("label,expected", [("UTF-8", "UTF-8"), ("utf8", "UTF-8"), ("65001", "UTF-8"),
                                            ("GBK", "GBK"), ("936", "GBK"), ("ANSI 936", "GBK"), ("CP936", "GBK"),
                                            ("GB2312", "GBK"), ("GB18030", "GB18030"), ("big5", "BIG5")])
def test_cpg_labels(label, expected):
    assert normalise_name(label) == expected


def test_unknown_cpg_label_is_refused():
    with pytest.raises(ImportRejected) as err:
        normalise_name("KLINGON-1")
    assert err.value.code == "encoding_unknown"


def _dbf(tmp_path, names, encoding, cpg=False):
    import zipfile

    z = samples.shapefile_zip(tmp_path / "t.zip", PTS[: len(names)], {"MC": names}, encoding=encoding, cpg=cpg)
    with zipfile.ZipFile(z) as zf:
        zf.extractall(tmp_path / "x")
    return tmp_path / "x" / "t.dbf", (tmp_path / "x" / "t.cpg")


@pytest.mark.parametrize("names,encoding,expected", [
    (["新市镇卫生院", "乾元镇"], "GBK", ("GBK", "detected")),
    (["新市镇卫生院", "乾元镇"], "UTF-8", ("UTF-8", "detected")),
    (["䶮村", "乾元镇"], "GB18030", ("GB18030", "detected")),
    (["Xinshi", "Qianyuan"], "GBK", ("UTF-8", "ascii")),
])
def test_dbf_encoding_detection(tmp_path, names, encoding, expected):
    dbf, _ = _dbf(tmp_path, names, encoding)
    choice = choose_dbf_encoding(dbf)
    assert (choice.encoding, choice.source) == expected


def test_cpg_is_honoured_and_checked(tmp_path):
    dbf, cpg = _dbf(tmp_path, ["新市镇卫生院"], "GBK", cpg=True)
    assert choose_dbf_encoding(dbf, cpg).source == "cpg"
    cpg.write_text("UTF-8")
    with pytest.raises(ImportRejected) as err:
        choose_dbf_encoding(dbf, cpg)
    assert err.value.code == "encoding_mismatch"
    assert choose_dbf_encoding(dbf, cpg, given="GBK").source == "given"


def test_text_decoding():
    assert decode_text("名称".encode("gbk"))[1].encoding == "GBK"
    assert decode_text("\ufeff名称".encode("utf-8"))[1].source == "bom"
    assert decode_text(b"plain")[1].source == "ascii"
    with pytest.raises(ImportRejected):
        decode_text("名称".encode("gbk"), given="UTF-8")


# -- tables ----------------------------------------------------------------------------------
@pytest.mark.parametrize("headers,expected", [
    (["名称", "经度", "纬度"], (1, 2, None, True)),
    (["name", "LNG", "Lat"], (1, 2, None, True)),
    (["x", "y", "name"], (0, 1, None, False)),
    (["名称", "经度(°)", "纬度（度）"], (1, 2, None, True)),
    (["名称", "高德经度", "高德纬度"], (1, 2, "gcj02", True)),
    (["bd09_lng", "bd09_lat"], (0, 1, "bd09", True)),
    (["POINT_X", "POINT_Y"], (0, 1, None, False)),
    (["名称", "地址"], (None, None, None, False)),
])
def test_coordinate_columns(headers, expected):
    assert find_xy_columns(headers) == expected


def test_csv_delimiters():
    assert read_csv_text("a;b;c\n1;2;3\n")[0] == ["a", "b", "c"]
    assert read_csv_text("a\tb\n1\t2\n")[1] == [["1", "2"]]


def test_field_aliases():
    fields = resolve_fields(["MC", "LX", "CWS", "BH", "地址"])
    assert fields == {"name": "MC", "type": "LX", "id": "BH", "address": "地址", "capacity": "CWS"}
    assert resolve_fields(["机构名称", "床位数"])["capacity"] == "床位数"
    assert resolve_fields(["a", "b"], {"name": "b"}) == {"name": "b"}


def test_csv_source_reads_rows(tmp_path):
    f = samples.csv_points(tmp_path / "a.csv", ["名称", "经度", "纬度"],
                           [["甲", 120.41, 30.82], ["乙", "", ""], ["丙", "abc", 30.8]], encoding="gbk")
    src = open_vector("csv", f, None, None, None)
    feats = [x for b in src.features() for x in b]
    assert [x.row for x in feats] == [2, 3, 4]
    assert feats[0].geom.equals(shapely.Point(120.41, 30.82)) and feats[0].props == {"名称": "甲"}
    assert feats[1].geom is None and feats[1].error is None
    assert feats[2].error[0] == "bad_coordinate"


# -- GeoJSON ------------------------------------------------------------------------------------
def test_geojson_shapes_and_legacy_crs():
    feats, crs = parse_geojson('{"type":"FeatureCollection","crs":{"type":"name","properties":'
                               '{"name":"urn:ogc:def:crs:EPSG::4549"}},"features":[]}')
    assert feats == [] and crs.endswith("4549")
    assert parse_geojson('{"type":"Point","coordinates":[1,2]}')[0][0]["geometry"]["type"] == "Point"
    for bad in ("[]", "{}", "nonsense", '{"type":"FeatureCollection","features":3}'):
        with pytest.raises(ImportRejected):
            parse_geojson(bad)


# -- CRS ------------------------------------------------------------------------------------------
def test_swapped_axes_detected_and_applied():
    xy = np.array([(y, x) for x, y in PTS])
    with pytest.raises(ImportRejected) as err:
        crsmod.plan(None, None, None, xy, REGION)
    assert err.value.code == "axes_swapped"
    plan = crsmod.plan(None, None, None, xy, REGION, swap_axes=True)
    assert np.allclose(plan.transform_xy(xy), np.array(PTS))


def test_metres_without_crs_ask_for_it_with_a_suggestion():
    gk = np.array(samples.to_gauss_kruger(PTS, 4549))
    with pytest.raises(crsmod.CrsRequired) as err:
        crsmod.plan(None, None, None, gk, REGION)
    assert "EPSG:4549" in err.value.message_zh
    with_zone = gk + np.array([40_000_000, 0])  # zone-prefixed false easting (zone 40 = CM 120E)
    with pytest.raises(crsmod.CrsRequired) as err:
        crsmod.plan(None, None, None, with_zone, REGION)
    assert "EPSG:4528" in err.value.message_en
    plan = crsmod.plan(None, "EPSG:4549", None, gk, REGION)
    assert np.allclose(plan.transform_xy(gk), np.array(PTS), atol=1e-8)


def test_degrees_far_away_are_not_assumed():
    with pytest.raises(crsmod.CrsRequired) as err:
        crsmod.plan(None, None, None, np.array([(100.0, 25.0)]), REGION)
    assert err.value.code == "crs_unplaced"


def test_gcj02_conversion_plan():
    g = np.column_stack(wgs84_to_gcj02(np.array([p[0] for p in PTS]), np.array([p[1] for p in PTS])))
    plan = crsmod.plan(None, None, "gcj02", g, REGION)
    assert plan.datum == "gcj02" and any(code == "converted" for code, _ in plan.notes)
    assert np.allclose(plan.transform_xy(g), np.array(PTS), atol=1e-7)
    assert crsmod.plan(None, "gcj02", None, g, REGION).datum == "gcj02"
    with pytest.raises(ImportRejected) as err:
        crsmod.plan(crsmod.parse_crs("EPSG:4549"), None, "gcj02", g, REGION)
    assert err.value.code == "crs_datum_needs_degrees"


def test_invalid_crs():
    with pytest.raises(ImportRejected) as err:
        crsmod.parse_crs("EPSG:999999")
    assert err.value.code == "crs_invalid"


# -- geometry -----------------------------------------------------------------------------------------
def test_geometry_checks():
    assert check_geometry(None, "point").reject[0] == "empty_geometry"
    assert check_geometry(shapely.Point(float("nan"), 1), "point").reject[0] == "non_finite"
    assert check_geometry(shapely.LineString([(0, 0), (1, 1)]), "polygon").reject[0] == "wrong_type"
    assert check_geometry(shapely.MultiPoint([(120, 30), (120.1, 30)]), "point", single_point=True).reject[0] \
        == "multi_part_point"
    assert check_geometry(shapely.MultiPoint([(120, 30)]), "point", single_point=True).geom.geom_type == "Point"
    out = check_geometry(samples.bowtie(120.4, 30.8), "polygon", promote_multi=True)
    assert out.geom.geom_type == "MultiPolygon" and out.geom.is_valid
    assert out.repair["reason"].startswith("Self-intersection") and out.repair["after"] > out.repair["before"]
    poly = check_geometry(shapely.box(120.4, 30.8, 120.41, 30.81), "polygon", promote_multi=True)
    assert poly.repair is None and poly.geom.geom_type == "MultiPolygon"
    collection = shapely.GeometryCollection([shapely.Point(120, 30), shapely.box(0, 0, 1, 1)])
    assert check_geometry(collection, None).reject[0] == "wrong_type"


def test_metric_area_is_square_metres():
    # 0.01° x 0.01° near 30.8°N ≈ 1.113 km × 0.956 km
    assert metric_area(shapely.box(120.4, 30.8, 120.41, 30.81)) == pytest.approx(1.064e6, rel=0.01)
