"""The big screen without a database: formulas, periods, formatting, paging, migration constants."""
from __future__ import annotations

import importlib.util
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from geodata import evaluation as ev
from geodata import workflow as wf

MIGRATION = Path(__file__).resolve().parents[2] / "geodata" / "migrations" / "versions" / "0008_bigscreen.py"


def _migration():
    spec = importlib.util.spec_from_file_location("m0008", MIGRATION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)   # imports alembic.op, calls nothing
    return module


def test_migration_seeds_the_index_of_the_material():
    m = _migration()
    weights: dict[str, float] = {}
    for row in m.INDICATORS:
        weights[row[1]] = weights.get(row[1], 0) + row[4]
    assert weights == {"governance": 40, "wellbeing": 35, "collaboration": 15, "innovation": 10}
    names = {row[2]: row[4] for row in m.INDICATORS}
    assert names["网格事件处置率"] == 15 and names["政务服务满意度"] == 15 and names["矛盾纠纷化解率"] == 10
    assert set(ev.AUTO_SOURCES) | {"manual"} == set(m.SOURCES)
    assert {row[5] for row in m.INDICATORS} <= set(m.SOURCES)


def test_migration_open_states_are_the_workflows():
    # 0019 (public reports) rebuilt the open-state partial indexes with 待核实 added
    later = MIGRATION.parent / "0019_public_reports.py"
    if later.exists():
        spec = importlib.util.spec_from_file_location("m0019", later)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert set(module.OPEN_STATES) == {s.value for s in wf.OPEN}
    else:
        assert set(_migration().OPEN_STATES) == {s.value for s in wf.OPEN}


def test_score_is_capped_and_missing_stays_missing():
    assert ev.score(0.475, 0.95) == pytest.approx(50.0)
    assert ev.score(2.0, 1.0) == 100.0
    assert ev.score(-1, 1.0) == 0.0
    assert ev.score(None, 1.0) is None and ev.score(float("nan"), 1.0) is None


def test_composite_counts_missing_manual_as_zero_and_leaves_out_computed_without_cases():
    weights = {"a": 15, "b": 10, "m": 5}
    idx, complete = ev.composite({"a": 80.0, "b": None, "m": None}, weights, zero_if_missing=["m"])
    assert idx == pytest.approx((15 * 80 + 5 * 0) / 20)
    assert complete == pytest.approx(15 / 30)
    idx, complete = ev.composite({"a": 80.0, "b": 40.0, "m": 100.0}, weights, zero_if_missing=["m"])
    assert idx == pytest.approx((15 * 80 + 10 * 40 + 5 * 100) / 30) and complete == 1.0
    assert ev.composite({"a": None}, {"a": 10}) == (None, 0.0)
    # zero weights take no part
    assert ev.composite({"a": 50.0, "z": 0.0}, {"a": 10, "z": 0})[0] == pytest.approx(50.0)


CST = ZoneInfo("Asia/Shanghai")


def test_periods_are_china_time_quarters(monkeypatch):
    monkeypatch.delenv("DVMAP_TIMEZONE", raising=False)
    assert ev.period_of(datetime(2025, 3, 31, 20, tzinfo=CST)) == "2025Q1"
    # 2025-03-31 17:00 UTC is already April 1st in China
    from datetime import timezone

    assert ev.period_of(datetime(2025, 3, 31, 17, tzinfo=timezone.utc)) == "2025Q2"
    assert ev.period_bounds("2025Q4") == (datetime(2025, 10, 1, tzinfo=CST), datetime(2026, 1, 1, tzinfo=CST))
    assert ev.recent_periods(datetime(2026, 2, 1, tzinfo=CST), 3) == ["2026Q1", "2025Q4", "2025Q3"]
    for bad in ("2025Q5", "2025-Q1", "", None, "1999Q1"):
        with pytest.raises(ev.EvaluationError):
            ev.period_bounds(bad)


def test_screen_periods_today_and_month():
    from datetime import timezone

    from geodata import bigscreen as bs

    p = bs.periods(datetime(2026, 3, 31, 17, 30, tzinfo=timezone.utc))   # 01:30 on April 1st in China
    assert p.today == date(2026, 4, 1) and p.month_start.month == 4 and p.month_start.day == 1


@pytest.mark.parametrize("zone, today, quarter", [
    ("Asia/Shanghai", date(2026, 4, 1), "2026Q2"),   # 01:30 on April 1st
    ("Asia/Urumqi", date(2026, 3, 31), "2026Q1"),    # UTC+6: 23:30 on March 31st
    ("UTC", date(2026, 3, 31), "2026Q1"),
])
def test_day_and_quarter_boundaries_follow_dvmap_timezone(monkeypatch, zone, today, quarter):
    """The KPI periods and the evaluation quarter move with DVMAP_TIMEZONE (no fixed +8 h)."""
    from datetime import timezone

    from geodata import bigscreen as bs

    monkeypatch.setenv("DVMAP_TIMEZONE", zone)
    moment = datetime(2026, 3, 31, 17, 30, tzinfo=timezone.utc)
    p = bs.periods(moment)
    assert p.today == today
    assert p.day_start == datetime.combine(today, datetime.min.time(), ZoneInfo(zone))
    assert p.day_start <= moment < p.day_start + timedelta(days=1)
    assert ev.period_of(moment) == quarter
    start, end = ev.period_bounds(quarter)
    assert start <= moment < end and start.utcoffset() == ZoneInfo(zone).utcoffset(start.replace(tzinfo=None))


def test_tile_formatting():
    from callbacks.bigscreen import fmt_hours, fmt_int, fmt_pct, tile_texts

    assert fmt_int(1234567) == "1,234,567" and fmt_int(None) == "—"
    assert fmt_pct(0.4567) == "45.7%" and fmt_pct(None) == "—"
    assert fmt_hours(36.06) == "36.1" and fmt_hours(None) == "—"
    texts = tile_texts({"events_today": 3, "closure_rate": 1.0, "avg_handling_hours": None})
    assert texts["events_today"] == "3" and texts["closure_rate"] == "100.0%" and texts["avg_handling_hours"] == "—"
    assert texts["open"] == "—"


def test_ranking_pages_through_ten_rows_at_a_time():
    from callbacks.bigscreen import RANK_ROWS, rank_rows

    data = {"period": "2026Q4", "rows": [
        {"rank": i, "village_id": 100 + i, "name": f"村{i}", "town": "镇", "index": 100 - i, "completeness": 1.0}
        for i in range(1, 26)]}
    rows, caption = rank_rows(data, 1, "zh")
    assert caption == "2/3" and len(rows) == RANK_ROWS
    assert [r.to_plotly_json()["props"]["data-rank"] for r in rows] == list(range(11, 21))
    rows, caption = rank_rows(data, 5, "zh")     # wraps around
    assert caption == "3/3" and len(rows) == 5
    rows, caption = rank_rows(None, 0, "en")
    assert caption == "" and "No evaluation data" in str(rows[0].to_plotly_json())


def test_chart_refresh_sends_only_the_data_arrays():
    from callbacks.bigscreen import _data_patch, trend_figure

    trend = [{"day": date(2026, 11, d), "reported": d, "closed": d // 2} for d in range(1, 31)]
    fig = trend_figure(trend, "zh", 2.0)
    assert [t["name"] for t in fig["data"]] == ["上报", "结案"] and len(fig["data"][0]["x"]) == 30
    assert fig["layout"]["font"]["size"] == 28.0          # 4K: twice the 1080p size
    ops = _data_patch(fig).to_plotly_json()["operations"]
    touched = {tuple(op["location"][:3]) for op in ops}
    assert touched and all(loc[0] == "data" for loc in touched)


def test_demo_manual_values_are_deterministic_and_manual_only():
    from etl.demo_evaluation import demo_manual_values

    inds = [ev.Indicator("income_growth", "wellbeing", "", "", "", "", 10, "manual", 8.0, "%", "%", "", ""),
            ev.Indicator("innovation_projects", "innovation", "", "", "", "", 5, "manual", 3.0, "项", "projects", "",
                         ""),
            ev.Indicator("grid_event_handling", "governance", "", "", "", "", 15, "on_time_rate", 0.95, "", "", "",
                         "")]
    villages = [(1, "330521001001"), (2, "330521001002")]
    a = demo_manual_values(villages, inds, "2026Q4", seed=7)
    assert a == demo_manual_values(villages, inds, "2026Q4", seed=7)
    assert a != demo_manual_values(villages, inds, "2026Q3", seed=7)
    assert {code for _v, code, _x in a} == {"income_growth", "innovation_projects"}
    assert all(float(x).is_integer() for _v, code, x in a if code == "innovation_projects")


def test_ranking_rows_carry_the_four_dimensions_and_open_the_village():
    from callbacks.bigscreen import rank_head, rank_rows
    from callbacks.bigscreen_eval import RANK_ROW

    groups = [{"code": c, "name_zh": z, "name_en": c, "weight": w}
              for c, z, w in (("governance", "治理效能", 40), ("wellbeing", "民生福祉", 35),
                              ("collaboration", "社会协同", 15), ("innovation", "创新突破", 10))]
    data = {"period": "2026Q4", "groups": groups, "rows": [
        {"rank": 1, "village_id": 7, "name": "村", "town": "镇", "index": 81.25, "completeness": 0.9,
         "dimensions": {"governance": None, "wellbeing": 92.4, "collaboration": 59.6, "innovation": 0.0}}]}
    (row,), _ = rank_rows(data, 0, "zh")
    props = row.to_plotly_json()["props"]
    assert props["id"] == {"type": RANK_ROW, "village": 7} and props["n_clicks"] == 0
    dims = [c for c in props["children"] if "data-dim" in c.to_plotly_json()["props"]]
    assert [(c.children, c.className.split()[-1]) for c in dims] == [
        ("—", "bs-dim-none"), ("92", "bs-dim-good"), ("60", "bs-dim-fair"), ("0", "bs-dim-weak")]
    heads = [th for th in rank_head(data, "zh").children if "bs-th-dim" in getattr(th, "className", "")]
    assert [[s.children for s in th.children] for th in heads] == [["治理", "40%"], ["民生", "35%"], ["协同", "15%"],
                                                                     ["创新", "10%"]]
