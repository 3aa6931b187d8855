"""Issue 14, end to end: archive bombs, quadratic geometries, overlapping parts, garbled GBK,
misnamed files — through the real import pipeline, the real upload page and the CLI.

The bomb tests run the app (``create_app`` with its login guard) or ``dvmap import`` in a
subprocess of their own and read that process's peak RSS before and after the upload:
the figure the issue asks for (target: < 300 MiB over idle). The peak is the kernel's
``VmHWM``, not ``ru_maxrss``: Linux carries ``ru_maxrss`` over from the forking pytest
process (~400 MiB) across exec, which would hide growth below that.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import zipfile

import pytest
import shapely
from sqlalchemy import text

from etl.importers import ImportOptions, Limits, run_import, samples
from tests.integration.test_import_world import INSIDE, snapshot, world  # noqa: F401

GBK_VALID_AS_UTF8 = ["乾元小学", "乾元医院", "乾元学校"]
BOMB_BYTES = 1 << 30        # 1 GiB of zeros in ~800 bytes of ZIP, declaring 4 KB
RSS_GROWTH_LIMIT_MIB = 300


def _opts(tmp_path, **kw):
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return ImportOptions(work_dir=work, raster_dir=tmp_path / "rasters", **kw)


# -- 3. a quadratic geometry is refused by its budget, named, in seconds ------------------------------
def test_zigzag_feature_over_its_budget_is_rejected_by_name_fast(world, tmp_path):
    conn, _ = world
    (x, y), (x2, y2) = INSIDE[0], INSIDE[1]
    star = samples.star_polygon(100_000, x + 0.02, y + 0.02, outer=0.015)
    gj = samples.geojson(tmp_path / "zigzag.geojson", [
        (shapely.box(x2, y2, x2 + 0.01, y2 + 0.01), {"id": "ok", "名称": "普通地块"}),
        (star, {"id": "zz", "名称": "锯齿地块"})])
    t0 = time.perf_counter()
    report = run_import(gj, "custom", conn, options=_opts(tmp_path, layer_name="zigzag"))
    elapsed = time.perf_counter() - t0
    print(f"\n100k-vertex zigzag import: {elapsed:.1f} s ({gj.stat().st_size / 1e6:.1f} MB GeoJSON)")
    assert report.status == "imported", report.lines()
    assert (report.rows_read, report.rows_imported, report.rows_rejected) == (2, 1, 1)
    issue, = report.issues_of("rejected")
    assert (issue.row, issue.fid, issue.code) == (2, "zz", "too_complex")
    assert "锯齿地块" in issue.message_zh and "锯齿地块" in issue.message_en
    assert "100001" in issue.message_zh and "budget" in issue.message_en
    assert elapsed < 15  # was 98 s on this machine (23 s shapely, 30 s county test, 44 s CHECK)


def test_vertex_budget_names_the_feature(world, tmp_path, monkeypatch):
    conn, _ = world
    monkeypatch.setenv("DVMAP_IMPORT_MAX_VERTICES", "1000")
    x, y = INSIDE[0]
    ring = shapely.Point(x + 0.01, y + 0.01).buffer(0.005, quad_segs=500)  # 2001 vertices, cheap to check
    gj = samples.geojson(tmp_path / "round.geojson", [(ring, {"名称": "圆形鱼塘"})])
    report = run_import(gj, "custom", conn, options=_opts(tmp_path, layer_name="round"))
    assert (report.status, report.reason_code) == ("refused", "no_valid_features")
    issue, = report.issues_of("rejected")
    assert issue.code == "too_many_vertices" and "圆形鱼塘" in issue.message_zh and "1000" in issue.message_en


def test_time_budget_is_also_checked_on_the_time_actually_spent(world, tmp_path):
    conn, _ = world
    x, y = INSIDE[0]
    gj = samples.geojson(tmp_path / "one.geojson", [(shapely.box(x, y, x + 0.01, y + 0.01), {"名称": "小地块"})])
    report = run_import(gj, "custom", conn, options=_opts(tmp_path, layer_name="one"),
                        limits=Limits(max_feature_seconds=0.0))  # any measurable time is over it
    issue, = report.issues_of("rejected")
    assert issue.code == "too_slow" and "小地块" in issue.message_zh and "budget" in issue.message_en


# -- 4. overlapping parts are unioned; area-changing repairs are flagged -------------------------------
def test_overlapping_parts_are_unioned_and_area_is_kept(world, tmp_path):
    conn, _ = world
    x, y = INSIDE[0]
    a = shapely.box(x, y, x + 0.02, y + 0.02)
    b = shapely.box(x + 0.01, y + 0.01, x + 0.03, y + 0.03)
    gj = samples.geojson(tmp_path / "parcels.geojson", [
        (shapely.MultiPolygon([a, b]), {"id": "P", "名称": "两块重叠"}),
        (samples.bowtie(*INSIDE[3]), {"id": "B", "名称": "蝴蝶结"})])
    report = run_import(gj, "custom", conn, options=_opts(tmp_path, layer_name="parcels"))
    assert report.status == "imported", report.lines()
    stored = conn.execute(text(
        "SELECT f.source_id, ST_Area(f.geom::geography), ST_Area(ST_GeomFromText(:u, 4490)::geography)"
        "  FROM custom_feature f JOIN custom_layer l ON l.id = f.layer_id WHERE l.name = 'parcels'"
        " ORDER BY f.source_id"), {"u": shapely.union_all([a, b]).wkt}).all()
    (_, bow_area, _), (pid, area, union_area) = stored
    assert pid == "P" and area == pytest.approx(union_area, rel=1e-6)  # nothing cut out
    notes = [i for i in report.issues if i.row == 1 and i.kind == "note"]
    assert [n.code for n in notes] == ["parts_unioned"] and "并集" in notes[0].message_zh
    # the bowtie's repair changed its area: imported, but flagged with the change named
    assert report.rows_flagged == 1
    flag, = report.issues_of("flagged")
    assert (flag.row, flag.code) == (2, "repair_area_changed")
    assert "%" in flag.message_zh and "area" in flag.message_en


# -- 5. GBK that is also valid UTF-8 ---------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["shapefile", "csv"])
def test_gbk_names_that_are_valid_utf8_arrive_intact(world, tmp_path, kind):
    conn, _ = world
    if kind == "shapefile":
        f = samples.shapefile_zip(tmp_path / "学校.zip", INSIDE[:3], {"MC": GBK_VALID_AS_UTF8, "BH": ["1", "2", "3"]},
                                  encoding="GBK", cpg=False)
    else:
        f = samples.csv_points(tmp_path / "学校.csv", ["name", "lon", "lat", "id"],
                               [[n, x, y, i] for i, (n, (x, y)) in enumerate(zip(GBK_VALID_AS_UTF8, INSIDE))],
                               encoding="gbk")
    report = run_import(f, "resources", conn, options=_opts(tmp_path, source=f"gbk-{kind}", resource_type="school"))
    assert report.status == "imported", report.lines()
    assert report.encoding == "GBK"
    names = conn.execute(text("SELECT name FROM resource WHERE source = :s ORDER BY name"),
                         {"s": f"import:gbk-{kind}"}).scalars().all()
    assert sorted(names) == sorted(GBK_VALID_AS_UTF8)
    note, = [n for n in report.notes if n.code == "encoding_implausible"]
    assert "ǬԪСѧ" in note.message_zh and "UTF-8" in note.message_en


# -- 6. a ZIP named .geojson --------------------------------------------------------------------------------
def test_zip_named_geojson_is_refused_saying_what_it_is(world, tmp_path):
    conn, _ = world
    z = tmp_path / "村界.geojson"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a.geojson", '{"type": "FeatureCollection", "features": []}')
    before = snapshot(conn)
    report = run_import(z, "custom", conn, options=_opts(tmp_path, layer_name="misnamed"))
    assert (report.status, report.reason_code) == ("refused", "file_misnamed")
    assert "ZIP 压缩包" in report.message_zh and ".geojson" in report.message_zh
    assert "ZIP archive" in report.message_en
    assert snapshot(conn) == before


# -- 1. the bzip2 bomb through the real upload page and the CLI, peak RSS measured ------------------------------
_PAGE_SCRIPT = textwrap.dedent('''
    import io, json, re, sys, time
    url, bomb = sys.argv[1], sys.argv[2]

    def hwm():  # peak RSS of this process, KiB
        return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))

    from etl.demo_accounts import demo_password
    from map_app.app import create_app

    server = create_app(url).server
    c = server.test_client()
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").get_data(as_text=True)).group(1)
    r = c.post("/login", data={"csrf": token, "username": "admin", "password": demo_password("admin"), "next": "/"})
    assert r.status_code == 302, r.status_code

    def upload(name, data):
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/admin/import/").get_data(as_text=True)).group(1)
        r = c.post("/admin/import/upload", content_type="multipart/form-data", data={
            "csrf": token, "target": "custom", "layer_name": "bomb", "file": (io.BytesIO(data), name)})
        assert r.status_code == 202, r.get_data(as_text=True)
        job = r.get_json()["job"]
        for _ in range(1200):
            state = c.get(f"/admin/import/jobs/{job}").get_json()
            if state.get("finished"):
                return state
            time.sleep(0.05)
        raise SystemExit("job did not finish")

    # warm up: the same path with a small harmless refusal, so that idle includes the import code
    upload("warm.geojson", b"PK\\x05\\x06" + bytes(18))
    idle = hwm()
    state = upload("村界.zip", open(bomb, "rb").read())
    peak = hwm()
    print(json.dumps({"idle_kib": idle, "peak_kib": peak, "status": state["status"], "lines": state["lines"]}))
''')

_CLI_SCRIPT = textwrap.dedent('''
    import json, re, sys
    from map_app.cli import main
    import etl.importers, etl.importers.loader  # idle includes the import code

    def hwm():  # peak RSS of this process, KiB
        return int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))

    idle = hwm()
    try:
        main(["import", sys.argv[1], "--to", "custom", "--name", "bomb", "--quiet"], standalone_mode=False)
        code = 0
    except SystemExit as exc:
        code = exc.code
    peak = hwm()
    print(json.dumps({"idle_kib": idle, "peak_kib": peak, "exit": code}), file=sys.stderr)
''')


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    path = samples.bzip2_bomb(tmp_path_factory.mktemp("bomb") / "村界.zip", BOMB_BYTES)
    assert path.stat().st_size < 2000
    return path


def test_bzip2_bomb_upload_through_the_page_stays_small(pg, demo_db, bomb, tmp_path):
    out = subprocess.run([sys.executable, "-c", _PAGE_SCRIPT, pg.app_url, str(bomb)], capture_output=True,
                         text=True, timeout=120, cwd=os.getcwd())
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    growth = (result["peak_kib"] - result["idle_kib"]) / 1024
    print(f"\nupload page, {bomb.stat().st_size} B bzip2 bomb expanding to {BOMB_BYTES >> 20} MiB: idle "
          f"{result['idle_kib'] / 1024:.0f} MiB, peak {result['peak_kib'] / 1024:.0f} MiB, growth {growth:.1f} MiB")
    assert result["status"] == "refused"
    assert any("bzip2" in line for line in result["lines"])
    assert growth < RSS_GROWTH_LIMIT_MIB


def test_bzip2_bomb_through_the_cli_stays_small(pg, demo_db, bomb):
    env = {**os.environ, "DVMAP_OWNER_URL": pg.owner_url}
    out = subprocess.run([sys.executable, "-c", _CLI_SCRIPT, str(bomb)], capture_output=True, text=True,
                         timeout=120, env=env, cwd=os.getcwd())
    result = json.loads(out.stderr.strip().splitlines()[-1])
    growth = (result["peak_kib"] - result["idle_kib"]) / 1024
    print(f"\ndvmap import, same bomb: idle {result['idle_kib'] / 1024:.0f} MiB, peak "
          f"{result['peak_kib'] / 1024:.0f} MiB, growth {growth:.1f} MiB")
    assert result["exit"] == 2, out.stdout + out.stderr[-2000:]
    assert "bzip2" in out.stdout
    assert growth < RSS_GROWTH_LIMIT_MIB
