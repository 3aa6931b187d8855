"""Issue 14: archive bombs, misnamed files, garbled GBK, overlapping parts, quadratic geometries.

No database: archive extraction, sniffing, encoding choice and geometry checks on small
generated files. The end-to-end versions (real import, the upload page) are in
tests/integration/test_import_limits.py.
"""
from __future__ import annotations

import time
import tracemalloc
import zipfile
import zlib

import pytest
import shapely

from etl.importers import ArchiveRejected, ImportRejected, Limits, check_archive, safe_extract, samples
from etl.importers.encoding import choose_dbf_encoding, decode_text
from etl.importers.geometry import budget_reject, check_geometry, metric_area
from etl.importers.readers import locate, sniff_format

GBK_VALID_AS_UTF8 = ["乾元小学", "乾元医院", "乾元学校"]  # their GBK bytes are valid UTF-8 too


# -- 1. sizes in headers are claims ---------------------------------------------------------------
def test_bzip2_entry_is_refused_by_method_before_anything_expands(tmp_path):
    bomb = samples.bzip2_bomb(tmp_path / "bomb.zip", 256 << 20)   # declares 4 KB, expands to 256 MiB
    assert bomb.stat().st_size < 2000
    (tmp_path / "out").mkdir()
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(ArchiveRejected) as err:
        safe_extract(bomb, tmp_path / "out")
    elapsed, peak = time.perf_counter() - t0, tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert err.value.code == "archive_method"
    assert "bzip2" in err.value.message_zh and "bzip2" in err.value.message_en
    assert elapsed < 1 and peak < (4 << 20)
    assert not any((tmp_path / "out").iterdir())


def _deflate_liar(path, actual: int, declared: int):
    """A Deflate entry of ``actual`` zeros whose headers declare ``declared`` bytes."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    data = b"".join(comp.compress(chunk[:min(len(chunk), actual - i)]) for i in range(0, actual, len(chunk)))
    data += comp.flush()
    return samples.zip_raw(path, [("a.csv", 8, data, zlib.crc32(bytes(declared)), declared)])


def test_deflate_entry_stops_at_its_declared_size_counted_on_bytes_produced(tmp_path):
    z = _deflate_liar(tmp_path / "liar.zip", 200 << 20, 4096)
    check_archive(z)  # the directory alone looks harmless: 4 KB
    (tmp_path / "out").mkdir()
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(ArchiveRejected) as err:
        safe_extract(z, tmp_path / "out")
    elapsed, peak = time.perf_counter() - t0, tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert err.value.code == "archive_size_mismatch", err.value.message_en
    assert "4096" in err.value.message_en
    assert elapsed < 1 and peak < (8 << 20)
    assert (tmp_path / "out" / "a.csv").stat().st_size <= 4096


def test_an_honest_deflate_entry_is_extracted_and_crc_checked(tmp_path):
    z = tmp_path / "ok.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.csv", "名称,经度,纬度\n" * 5000)
        zf.writestr("b.txt", b"stored", compress_type=zipfile.ZIP_STORED)
    (tmp_path / "out").mkdir()
    files = safe_extract(z, tmp_path / "out")
    assert sorted(f.name for f in files) == ["a.csv", "b.txt"]
    assert (tmp_path / "out" / "a.csv").read_text() == "名称,经度,纬度\n" * 5000
    data = bytearray(z.read_bytes())
    pos = data.index(b"stored")
    data[pos] = ord("S")  # same size, wrong CRC
    z.write_bytes(bytes(data))
    (tmp_path / "out2").mkdir()
    with pytest.raises(ArchiveRejected) as err:
        safe_extract(z, tmp_path / "out2")
    assert err.value.code == "bad_archive" and "CRC" in err.value.message_en


# -- 2. what one upload may expand to ----------------------------------------------------------------
def _many(path, entries: int, size: int):
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for e in range(entries):
            info = zipfile.ZipInfo(f"f{e}.csv")
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w") as fh:
                for i in range(0, size, len(chunk)):
                    fh.write(chunk[:min(len(chunk), size - i)])
    return path


def test_many_entries_under_the_per_entry_ratio_floor_add_up_to_a_refusal(tmp_path):
    # 40 entries of 7 MiB of zeros (each under the 8 MiB per-entry ratio floor): 280 MiB from ~300 KB
    z = _many(tmp_path / "many.zip", 40, 7 << 20)
    with pytest.raises(ArchiveRejected) as err:
        check_archive(z)
    assert err.value.code == "archive_total_ratio"
    assert "压缩炸弹" in err.value.message_zh and "zip bomb" in err.value.message_en


def test_expanded_total_and_entry_count_come_from_the_settings(tmp_path, monkeypatch):
    z = tmp_path / "plain.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_STORED) as zf:  # stored: no ratio to catch
        for e in range(12):
            zf.writestr(f"f{e}.csv", b"x" * (1 << 20))
    assert Limits().max_entries == 200 and Limits().max_total_bytes == 1 << 30
    assert len(check_archive(z)) == 12
    monkeypatch.setenv("DVMAP_IMPORT_MAX_EXPANDED_MB", "10")
    with pytest.raises(ArchiveRejected) as err:
        check_archive(z)
    assert err.value.code == "archive_too_large"
    monkeypatch.setenv("DVMAP_IMPORT_MAX_EXPANDED_MB", "1024")
    monkeypatch.setenv("DVMAP_IMPORT_MAX_ENTRIES", "10")
    with pytest.raises(ArchiveRejected) as err:
        check_archive(z)
    assert err.value.code == "archive_too_many_entries"


def test_the_total_limit_is_counted_on_bytes_produced(tmp_path):
    z = tmp_path / "plain.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_STORED) as zf:
        for e in range(3):
            zf.writestr(f"f{e}.csv", b"x" * 1000)
    # the declared total (3000) passes a 3000-byte limit; a producer that lies is caught by
    # the per-entry declared-size check above, an honest one by the running total
    (tmp_path / "out").mkdir()
    assert len(safe_extract(z, tmp_path / "out", Limits(max_total_bytes=3000))) == 3
    (tmp_path / "out2").mkdir()
    with pytest.raises(ArchiveRejected) as err:
        safe_extract(z, tmp_path / "out2", Limits(max_total_bytes=2999))
    assert err.value.code == "archive_too_large"


# -- 6. a file is what its bytes say ----------------------------------------------------------------
def test_zip_named_geojson_is_named_for_what_it_is(tmp_path):
    z = tmp_path / "村界.geojson"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a.csv", "x")
    with pytest.raises(ImportRejected) as err:
        sniff_format(z)
    assert err.value.code == "file_misnamed"
    assert err.value.message_zh.startswith("文件实为ZIP 压缩包,而扩展名为 .geojson")
    assert "ZIP archive" in err.value.message_en and ".geojson" in err.value.message_en
    with pytest.raises(ImportRejected) as err:
        locate(z, tmp_path, None, Limits())
    assert err.value.code == "file_misnamed"


@pytest.mark.parametrize("name,head,what", [
    ("a.xlsx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(8), "xls"),
    ("a.csv", b"\x89PNG\r\n\x1a\n" + bytes(8), "PNG"),
    ("a.gpkg", b"PK\x03\x04" + bytes(12), "ZIP"),
    ("a.zip", b"SQLite format 3\x00", "GeoPackage"),
    ("a.tif", b"%PDF-1.7\n", "PDF"),
])
def test_other_misnamed_files(tmp_path, name, head, what):
    (tmp_path / name).write_bytes(head)
    with pytest.raises(ImportRejected) as err:
        sniff_format(tmp_path / name)
    assert err.value.code == "file_misnamed" and what in err.value.message_en


def test_well_named_files_still_sniff(tmp_path):
    (tmp_path / "a.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    (tmp_path / "a.csv").write_bytes("名称,经度\n".encode("gbk"))
    (tmp_path / "a.gpkg").write_bytes(b"SQLite format 3\x00" + bytes(100))
    (tmp_path / "data").write_bytes(b"SQLite format 3\x00" + bytes(100))
    assert [sniff_format(tmp_path / n) for n in ("a.geojson", "a.csv", "a.gpkg", "data")] == [
        "geojson", "csv", "gpkg", "gpkg"]


# -- 5. encodings decided by plausible Chinese, over the whole file ----------------------------------------
def test_gbk_csv_that_is_also_valid_utf8_is_read_as_gbk():
    text = "name,lon,lat\n" + "".join(f"{n},120.4,30.8\n" for n in GBK_VALID_AS_UTF8)
    data = text.encode("gbk")
    data.decode("utf-8")  # the trap: strictly valid UTF-8
    decoded, choice = decode_text(data)
    assert choice.encoding == "GBK" and decoded == text
    code, detail = choice.note
    assert code == "encoding_implausible" and detail["other"] == "UTF-8"
    assert detail["sample"] == "乾元小学" and detail["other_sample"] == "ǬԪСѧ"
    # the same text in UTF-8 stays UTF-8, with nothing to say
    decoded, choice = decode_text(text.encode("utf-8"))
    assert (choice.encoding, choice.note, decoded) == ("UTF-8", None, text)


def test_gbk_shapefile_without_cpg_that_is_also_valid_utf8(tmp_path):
    z = samples.shapefile_zip(tmp_path / "s.zip", [(120.41, 30.82)] * 3, {"MC": GBK_VALID_AS_UTF8},
                              encoding="GBK", cpg=False)
    with zipfile.ZipFile(z) as zf:
        zf.extractall(tmp_path / "x")
    choice = choose_dbf_encoding(tmp_path / "x" / "s.dbf")
    assert (choice.encoding, choice.source) == ("GBK", "detected")
    assert choice.note[0] == "encoding_implausible"


def test_when_both_decodings_are_plausible_the_choice_says_so():
    _, choice = decode_text("name\nMüller\nJosé\n".encode("utf-8"))
    assert choice.encoding == "UTF-8"
    assert choice.note[0] == "encoding_ambiguous" and choice.note[1]["other"] == "GBK"


# -- 4. overlapping parts are merged; area-changing repairs are flagged ----------------------------------
def test_overlapping_parts_are_unioned_not_holed():
    a = shapely.box(120.40, 30.80, 120.42, 30.82)
    b = shapely.box(120.41, 30.81, 120.43, 30.83)
    union = shapely.union_all([a, b])
    assert shapely.make_valid(shapely.MultiPolygon([a, b])).area < 0.9 * union.area  # what went wrong
    out = check_geometry(shapely.MultiPolygon([a, b]), "polygon", promote_multi=True)
    assert out.geom.is_valid and out.geom.geom_type == "MultiPolygon"
    assert out.geom.area == pytest.approx(union.area) and out.geom.equals(union)
    assert out.flag is None
    (code, detail), = out.notes
    assert code == "parts_unioned" and detail["parts"] == 2
    assert detail["overlap"] == pytest.approx(metric_area(a.intersection(b)), rel=1e-3)


def test_a_repair_that_changes_the_area_is_flagged():
    bow = check_geometry(samples.bowtie(120.4, 30.8), "polygon")
    assert bow.flag[0] == "repair_area_changed" and bow.flag[1]["pct"] == 100.0
    touch = check_geometry(samples.self_touching(120.4, 30.8), "polygon")
    assert touch.repair is not None and touch.flag is None


# -- 3. a vertex and time budget per feature -------------------------------------------------------------
def test_quadratic_zigzag_is_refused_by_its_estimate_in_well_under_a_second():
    star = samples.star_polygon(100_000, 120.45, 30.85)
    t0 = time.perf_counter()
    code, detail = budget_reject(star, "锯齿地块", 200_000, 5.0)
    elapsed = time.perf_counter() - t0
    assert code == "too_complex" and detail["name"] == "锯齿地块" and detail["vertices"] == 100_001  # closed ring
    assert detail["estimate"] > 5 and elapsed < 2
    assert budget_reject(star, "x", 50_000, 5.0)[0] == "too_many_vertices"


def test_big_but_ordinary_polygons_are_within_budget():
    import numpy as np

    a = np.linspace(0, 2 * np.pi, 150_000, endpoint=False)
    r = 0.02 * (1 + 0.3 * np.sin(7 * a) + 0.1 * np.sin(53 * a))
    wavy = shapely.Polygon(np.column_stack([120.45 + r * np.cos(a), 30.85 + r * np.sin(a)]))
    assert budget_reject(wavy, "x", 200_000, 5.0) is None
    assert budget_reject(samples.star_polygon(10_000, 120.45, 30.85), "x", 200_000, 5.0) is None
