"""Property-based tests: the CSV and GeoJSON readers never raise anything but ImportRejected."""
from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etl.importers import ImportRejected
from etl.importers.geometry import check_geometry, precheck
from etl.importers.readers import Feature, geojson_feature, open_vector, parse_geojson

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**20, 10**20),
                    st.sampled_from([120.4, 30.8, 0, -0.0]))
cells = st.one_of(st.text(max_size=12), numbers.map(str), st.sampled_from(["", "nan", "inf", "120.5°", "１２０"]))
GEOM_TYPES = ["Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon",
              "GeometryCollection", "Feature", "Nope", None]
coords = st.recursive(numbers, lambda inner: st.lists(inner, max_size=5), max_leaves=25)
geometries = st.recursive(
    st.fixed_dictionaries({"type": st.sampled_from(GEOM_TYPES)}, optional={"coordinates": coords}),
    lambda inner: st.fixed_dictionaries({"type": st.just("GeometryCollection")},
                                        optional={"geometries": st.lists(inner, max_size=3)}),
    max_leaves=6)
json_values = st.recursive(st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=8)),
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                           max_leaves=10)
features = st.fixed_dictionaries(
    {"type": st.just("Feature")},
    optional={"geometry": st.one_of(st.none(), geometries, json_values),
              "properties": st.one_of(st.none(), st.dictionaries(st.text(max_size=6), json_values, max_size=4),
                                      json_values),
              "id": json_values})


def _consume(src) -> list[Feature]:
    out = []
    for batch in src.features(batch=7):
        for f in batch:
            assert isinstance(f, Feature)
            if f.error is None and f.geom is not None and precheck(f.geom) is None:
                check_geometry(f.geom, None)
            out.append(f)
    return out


def _read(data: bytes, suffix: str, fmt: str):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"input{suffix}"
        path.write_bytes(data)
        try:
            return _consume(open_vector(fmt, path, None, None, None))
        except ImportRejected:
            return None


@SETTINGS
@given(st.lists(st.lists(cells, min_size=0, max_size=5), min_size=0, max_size=8),
       st.sampled_from([",", ";", "\t"]), st.sampled_from(["utf-8", "gbk", "utf-8-sig"]))
def test_csv_reader_never_crashes(rows, delimiter, encoding):
    header = [["名称", "经度", "纬度"], ["x", "y"], ["a"]][len(rows) % 3]
    text = "\n".join(delimiter.join(r) for r in [header, *rows])
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        data = text.encode("utf-8")
    feats = _read(data, ".csv", "csv")
    if feats is not None:
        assert all(f.row >= 2 for f in feats)


@SETTINGS
@given(st.binary(max_size=300))
def test_csv_reader_on_arbitrary_bytes(data):
    _read(data, ".csv", "csv")


@SETTINGS
@given(st.lists(features, max_size=6), st.one_of(st.none(), st.just({"type": "name", "properties": {"name": "EPSG:4490"}}),
                                                 json_values))
def test_geojson_reader_never_crashes(feats, crs):
    doc = {"type": "FeatureCollection", "features": feats}
    if crs is not None:
        doc["crs"] = crs
    data = json.dumps(doc, allow_nan=True).encode("utf-8")
    got = _read(data, ".geojson", "geojson")
    if got is not None:
        assert len(got) == len(feats)


@SETTINGS
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(lambda t: t.encode("utf-8")),
                 json_values.map(lambda v: json.dumps(v, allow_nan=True).encode())))
def test_geojson_reader_on_arbitrary_input(data):
    _read(data, ".geojson", "geojson")


@SETTINGS
@given(features)
def test_one_feature_never_raises(item):
    f = geojson_feature(1, item)
    assert f.error is None or isinstance(f.error[0], str)
    for v in f.props.values():
        assert not (isinstance(v, float) and not math.isfinite(v))


def test_parse_geojson_refuses_deep_nesting():
    deep = "[" * 100000 + "]" * 100000
    try:
        parse_geojson(deep)
    except ImportRejected as exc:
        assert exc.code == "unreadable"
