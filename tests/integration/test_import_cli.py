"""``dvmap import`` / ``dvmap export`` through click's runner, against the test database."""
from __future__ import annotations

import json
import re

import click
import pyogrio
import pytest
from click.testing import CliRunner
from sqlalchemy import text

from etl.importers import samples
from geodata.db import SYSTEM, apply_scope
from map_app.cli_io import attach_io_commands


@pytest.fixture
def dvmap(pg, demo_db, monkeypatch):
    monkeypatch.setenv("DVMAP_OWNER_URL", pg.owner_url)

    @click.group()
    def main():
        """dvmap (test copy)."""

    attach_io_commands(main)
    runner = CliRunner()
    return lambda *args: runner.invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def points(owner_engine):
    with owner_engine.connect() as conn:
        apply_scope(conn, SYSTEM)
        return conn.execute(text("SELECT ST_X(label_point), ST_Y(label_point) FROM village ORDER BY code LIMIT 5")).all()


def test_import_then_again_then_refused(dvmap, points, tmp_path, owner_engine):
    names = ["新市镇中心卫生院", "乾元镇卫生院", "洛舍镇砂村卫生室", "钟管镇曲溪村卫生室", "禹越镇三林村卫生服务站"]
    z = samples.shapefile_zip(tmp_path / "卫生机构.zip", points, {"MC": names, "BH": list("abcde")}, cpg=False)
    try:
        r = dvmap("import", z, "--to", "custom", "--name", "cli_clinics", "--title-zh", "卫生机构")
        assert r.exit_code == 0, r.output
        assert "已导入" in r.output and "GBK" in r.output and "detected" in r.output
        report_id = int(re.search(r"^#(\d+) ", r.output, re.M).group(1))
        r = dvmap("import", z, "--to", "custom", "--name", "cli_clinics", "--lang", "en")
        assert r.exit_code == 0 and "already imported" in r.output and f"#{report_id}" in r.output
        r = dvmap("import", "--show", report_id, "--json")
        data = json.loads(r.output.strip().splitlines()[-1])
        assert data["rows_imported"] == 5 and data["encoding"] == "GBK"
        assert str(report_id) in dvmap("import", "--recent").output
        r = dvmap("export", "--list")
        assert "cli_clinics" in r.output and "卫生机构" in r.output
        out = tmp_path / "clinics.zip"
        r = dvmap("export", "cli_clinics", "--format", "shp", "-o", out)
        assert r.exit_code == 0, r.output
        assert sorted(pyogrio.read_dataframe(out)["MC"]) == sorted(names)
    finally:
        with owner_engine.begin() as conn:
            apply_scope(conn, SYSTEM)
            conn.execute(text("DELETE FROM custom_layer WHERE name = 'cli_clinics'"))
    gk = samples.shapefile_zip(tmp_path / "gk.zip", samples.to_gauss_kruger(points), {"MC": names}, prj=False,
                               crs="EPSG:4549")
    r = dvmap("import", gk, "--to", "custom", "--name", "cli_gk", "--lang", "en")
    assert r.exit_code == 2 and "EPSG:4549" in r.output


def test_export_a_village(dvmap, owner_engine, tmp_path):
    with owner_engine.connect() as conn:
        apply_scope(conn, SYSTEM)
        code, name = conn.execute(text("SELECT code, name FROM village ORDER BY code LIMIT 1")).one()
    r = dvmap("export", "--village", code, "--format", "gpkg", "-o", tmp_path / "v.gpkg")
    assert r.exit_code == 0, r.output
    assert "villages 1" in r.output
    r = dvmap("export", "--village", code, "--format", "html", "-o", tmp_path / "v.html")
    assert r.exit_code == 0 and name in (tmp_path / "v.html").read_text(encoding="utf-8")
    r = dvmap("export", "resources", "--village", code, "--format", "csv", "-o", tmp_path / "r.csv")
    assert r.exit_code == 0
    assert all(code in line for line in (tmp_path / "r.csv").read_text(encoding="utf-8-sig").splitlines()[1:])
    assert dvmap("export", "--village", "000000000000").exit_code != 0
    assert dvmap("export", "resources", "--format", "html").exit_code != 0
