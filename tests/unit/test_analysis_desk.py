"""Heat classes on skewed counts, analysis results as a zipped Shapefile, compare presets (issue 18)."""
from __future__ import annotations

import zipfile
from datetime import date

import numpy as np
import pytest

from geodata.analysis.result import HEAT_COLORS, AnalysisResult, LegendEntry, count_classes

SKEWED = [1] * 200 + [2] * 60 + [3] * 25 + [4] * 10 + [5] * 6 + [7] * 4 + [9, 11, 14, 18, 25, 31, 44] + [0] * 100


def test_skewed_counts_get_classes_where_the_hot_cells_stand_out():
    colors, classes = count_classes(SKEWED, HEAT_COLORS)
    assert classes == [(1, 2), (3, 7), (9, 18), (25, 31), (44, 44)]
    assert not any(lo <= 3 and hi >= 44 for lo, hi in classes)   # was 1–1 / 2–2 / 3–44
    by_value = dict(zip(SKEWED, colors))
    assert by_value[44] == HEAT_COLORS[-1] and by_value[1] == HEAT_COLORS[0]
    assert by_value[0] == "#00000000"
    assert len({by_value[v] for v in (1, 3, 9, 25, 44)}) == 5


def test_natural_breaks_equal_mapclassify_fisher_jenks():
    import warnings

    import mapclassify

    rng = np.random.default_rng(3)
    v = np.ceil(rng.pareto(1.3, 400) + 0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = mapclassify.FisherJenks(v, k=5).bins
    _, classes = count_classes(v, HEAT_COLORS)
    assert [hi for _, hi in classes] == [int(b) for b in theirs]


def test_few_distinct_counts_are_one_class_each():
    _, classes = count_classes([0, 1, 1, 2, 5], HEAT_COLORS)
    assert classes == [(1, 1), (2, 2), (5, 5)]
    assert count_classes([0, 0], HEAT_COLORS) == (["#00000000"] * 2, [])


def _result():
    import shapely
    import shapely.geometry as sg

    feats = []
    for i in range(3):
        poly = sg.box(120.0 + i * 0.01, 30.5, 120.01 + i * 0.01, 30.51)
        feats.append({"type": "Feature", "id": str(i), "geometry": sg.mapping(shapely.set_precision(poly, 1e-6)),
                      "properties": {"_key": f"c{i}", "_color": "#fff", "label": f"网格{i}", "count_before": i,
                                     "count_after": 10 + i, "change_zh": "事件增多", "人口总数统计值": 100 * i,
                                     "人口总数统计表": 7}})
    return AnalysisResult("compare", "两时段对比", "Two windows compared", feats,
                          [LegendEntry("增多", "More", "#e34a33")], {"events_before": 3}, [("说明", "note")],
                          {"run_id": "r1"})


def test_shapefile_zip_has_cpg_prj_and_short_unique_field_names(tmp_path):
    import pyogrio

    from geodata.analysis.export import export_result

    out = export_result(_result(), "shp", tmp_path / "r.zip")
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        assert {"compare.shp", "compare.shx", "compare.dbf", "compare.prj", "compare.cpg", "fields.csv"} <= names
        assert zf.read("compare.cpg").decode().strip().upper() in ("UTF-8", "UTF8")
        assert "CGCS2000" in zf.read("compare.prj").decode()
        fields = zf.read("fields.csv").decode("utf-8-sig")
        zf.extractall(tmp_path / "x")
    df = pyogrio.read_dataframe(tmp_path / "x" / "compare.shp")
    cols = [c for c in df.columns if c != "geometry"]
    assert len(cols) == len(set(c.lower() for c in cols)) == 7
    assert all(len(c.encode("utf-8")) <= 10 and len(c.encode("gbk")) <= 10 for c in cols)
    assert list(df["count_befo"]) == [0, 1, 2] and list(df["count_afte"]) == [10, 11, 12]
    assert list(df["label"]) == ["网格0", "网格1", "网格2"] and df["change_zh"][0] == "事件增多"
    assert "count_before" in fields and "人口总数统计值" in fields
    assert df.crs.to_epsg() == 4490


def test_compare_presets():
    from callbacks.analysis_actions import preset_windows

    today = date(2026, 12, 5)
    assert preset_windows("month_last_year", today) == (["2025-12-01", "2025-12-05"], ["2026-12-01", "2026-12-05"])
    assert preset_windows("month_prev", today) == (["2026-11-01", "2026-11-05"], ["2026-12-01", "2026-12-05"])
    assert preset_windows("30_30", today) == (["2026-10-07", "2026-11-05"], ["2026-11-06", "2026-12-05"])
    assert preset_windows("halves", today) is None
    assert preset_windows("month_last_year", date(2028, 2, 29))[0][1] == "2027-02-28"


@pytest.mark.parametrize("names", [["count_before", "count_after"], ["人口总数统计值", "人口总数统计表"]])
def test_dbf_names_unique_and_short(names):
    from geodata.analysis.export import dbf_names

    short = dbf_names(names)
    assert len(set(short.values())) == len(names)
    assert all(len(v.encode("utf-8")) <= 10 and len(v.encode("gbk")) <= 10 for v in short.values())
