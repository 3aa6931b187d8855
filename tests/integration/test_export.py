"""Exports: every layer in every format, scoped by RLS, and a village's map as HTML."""
from __future__ import annotations

import csv
import json
import zipfile

import pyogrio
import pytest
from sqlalchemy import text

from etl.export import FORMATS, export_layer, export_village, inline_leaflet, village_map_html
from geodata import export as gx
from geodata.db import Scope, make_sessionmaker, scoped


@pytest.fixture(scope="module")
def village(app_engine, demo_db):
    from geodata.db import SYSTEM

    with scoped(make_sessionmaker(app_engine), SYSTEM) as s:
        row = s.execute(text("SELECT v.id, v.code, v.name FROM village v WHERE EXISTS (SELECT 1 FROM resource r"
                             " WHERE r.village_id = v.id) ORDER BY v.code LIMIT 1")).mappings().one()
    return dict(row)


@pytest.mark.parametrize("layer", ["villages", "grids", "resources", "sensors", "population", "towns"])
@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "shp", "csv"])
def test_every_layer_in_every_format(db_session, tmp_path, layer, fmt):
    out = tmp_path / f"{layer}{FORMATS[fmt]}"
    result = export_layer(db_session, layer, fmt, out)
    coll = gx.get_collection(db_session, layer)
    _, expected = gx.items(db_session, coll, limit=1)
    assert result.counts == {layer: expected} and expected > 0
    if fmt == "csv":
        raw = out.read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel opens UTF-8
        rows = list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))
        assert len(rows) == expected and rows[0]["wkt"]
        return
    if fmt == "shp":
        with zipfile.ZipFile(out) as zf:
            names = set(zf.namelist())
            assert {f"{layer}.{e}" for e in ("shp", "shx", "dbf", "prj", "cpg")} <= names
            assert zf.read(f"{layer}.cpg").decode().strip().upper() in ("UTF-8", "UTF8")
            assert "China_2000" in zf.read(f"{layer}.prj").decode() or "CGCS2000" in zf.read(f"{layer}.prj").decode()
    df = pyogrio.read_dataframe(out)
    assert len(df) == expected
    assert df.crs.to_epsg() in (4490, 4326) if fmt != "geojson" else True
    name_col = "name" if "name" in df.columns else None
    if name_col:
        db_names = sorted(r["properties"]["name"] for r in gx.items(db_session, coll, limit=None)[0])
        assert sorted(df[name_col]) == db_names  # Chinese text exact in every format


def test_geojson_is_rfc7946(db_session, tmp_path):
    out = tmp_path / "r.geojson"
    export_layer(db_session, "resources", "geojson", out)
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["type"] == "FeatureCollection" and "crs" not in doc
    lon, lat = doc["features"][0]["geometry"]["coordinates"]
    assert 119 < lon < 121 and 30 < lat < 31  # lon/lat order


def test_export_follows_the_users_scope(app_engine, village, tmp_path):
    factory = make_sessionmaker(app_engine)
    with scoped(factory, Scope.villages([village["id"]], "village_official")) as s:
        export_layer(s, "resources", "geojson", tmp_path / "mine.geojson")
        export_layer(s, "villages", "gpkg", tmp_path / "mine.gpkg")
    feats = json.loads((tmp_path / "mine.geojson").read_text(encoding="utf-8"))["features"]
    assert feats and {f["properties"]["village_code"] for f in feats} == {village["code"]}
    assert list(pyogrio.read_dataframe(tmp_path / "mine.gpkg")["code"]) == [village["code"]]
    with scoped(factory, Scope(frozenset(), "anonymous")) as s:
        result = export_layer(s, "resources", "gpkg", tmp_path / "none.gpkg")
    assert result.counts == {"resources": 0}
    assert len(pyogrio.read_dataframe(tmp_path / "none.gpkg")) == 0


def test_village_geopackage(db_session, village, tmp_path):
    out = tmp_path / "v.gpkg"
    result = export_village(db_session, village["code"], "gpkg", out)
    layers = {str(r[0]) for r in pyogrio.list_layers(out)}
    assert {"villages", "grids", "resources", "sensors"} <= layers
    assert result.counts["villages"] == 1 and result.counts["resources"] > 0
    res = pyogrio.read_dataframe(out, layer="resources")
    assert set(res["village_code"]) == {village["code"]}


def test_village_html_map(db_session, village, tmp_path):
    out = tmp_path / "v.html"
    result = village_map_html(db_session, village["code"], out)
    page = out.read_text(encoding="utf-8")
    assert village["name"] in page and village["code"] in page
    assert "L.map(" in page or "L.map (" in page
    if result.offline:
        assert "cdn.jsdelivr.net" not in page and "code.jquery.com" not in page
    assert result.counts["villages"] == 1


def test_inline_leaflet_replaces_cdn_links(tmp_path):
    (tmp_path / "leaflet.js").write_text("var L = {};")
    (tmp_path / "leaflet.css").write_text(".leaflet{}")
    page = ('<html><head>\n    <script src="https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.js"></script>\n'
            '    <link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.css"/>\n'
            '</head><body></body></html>')
    out, ok = inline_leaflet(page, tmp_path)
    assert ok and "https://" not in out and "var L = {};" in out and ".leaflet{}" in out and "window.$" in out
    same, ok = inline_leaflet(page, tmp_path / "missing")
    assert not ok and same == page


def test_unknown_layer_and_village(db_session, tmp_path):
    from etl.export import ExportError

    with pytest.raises(ExportError) as err:
        export_layer(db_session, "nope", "gpkg", tmp_path / "x.gpkg")
    assert "nope" in err.value.message_zh and "nope" in err.value.message_en
    with pytest.raises(ExportError):
        export_village(db_session, "999999999999", "html", tmp_path / "x.html")
