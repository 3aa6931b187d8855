"""The evaluation index per dimension (治理效能 40 / 民生福祉 35 / 社会协同 15 / 创新突破 10) and a
village's breakdown and trend over periods, against hand computation on the real PostGIS."""
from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import text

from geodata import evaluation as ev
from geodata.clock import display_zone

NOW = datetime(2031, 5, 1, tzinfo=display_zone())   # 2031Q2 running, 2031Q1 over; no events then


def _enter(s, period, entries):
    ev.set_manual_values(s, period, entries, actor="t", role="admin")


def test_dimension_scores_and_the_index_agree_with_hand_computation(db_session):
    s = db_session
    inds = {i.code: i for i in ev.definitions(s)}
    by_group = {}
    for i in inds.values():
        by_group.setdefault(i.group_code, []).append(i)
    assert {g: sum(i.weight for i in v) for g, v in by_group.items()} == {
        "governance": 40, "wellbeing": 35, "collaboration": 15, "innovation": 10}
    v1, v2 = s.execute(text("SELECT id FROM village ORDER BY code LIMIT 2")).scalars()
    manual = [i for i in inds.values() if i.manual]
    # v1: every manual indicator at half its target (score 50); v2: only income growth, at target
    _enter(s, "2031Q2", [(v1, i.code, i.target / 2) for i in manual] + [(v2, "income_growth", 8.0)])
    result = ev.ranking(s, "2031Q2", now=NOW, village_ids=[v1, v2])
    rows = {r.village_id: r for r in result["rows"]}
    cov = {v: ev.score(ev.service_coverage(s).get(v), inds["service_coverage"].target) for v in (v1, v2)}

    r1 = rows[v1]
    assert r1.dimensions["governance"] is None                  # no cases in 2031: left out
    assert r1.dimensions["wellbeing"] == pytest.approx((15 * cov[v1] + 10 * 50 + 10 * 50) / 35)
    assert r1.dimensions["collaboration"] == pytest.approx(50.0)
    assert r1.dimensions["innovation"] == pytest.approx(50.0)
    # the index is the weight-average of the dimensions that have a value
    weights = {"wellbeing": 35, "collaboration": 15, "innovation": 10}
    assert r1.index == pytest.approx(sum(w * r1.dimensions[g] for g, w in weights.items()) / sum(weights.values()))

    r2 = rows[v2]
    assert r2.dimensions["wellbeing"] == pytest.approx((15 * cov[v2] + 10 * 100 + 0) / 35)   # missing manual = 0
    assert r2.dimensions["collaboration"] == 0.0 and r2.dimensions["innovation"] == 0.0
    assert r2.as_dict()["dimensions"] == r2.dimensions


def test_village_report_has_every_indicator_and_the_trend_over_periods(db_session):
    s = db_session
    v1, v2 = s.execute(text("SELECT id FROM village ORDER BY code LIMIT 2")).scalars()
    manual = [i for i in ev.definitions(s) if i.manual]
    _enter(s, "2031Q1", [(v1, i.code, i.target) for i in manual] + [(v2, i.code, i.target / 4) for i in manual])
    _enter(s, "2031Q2", [(v1, i.code, i.target / 2) for i in manual] + [(v2, i.code, i.target) for i in manual])
    q2 = ev.ranking(s, "2031Q2", now=NOW, village_ids=[v1, v2])
    q1 = ev.ranking(s, "2031Q1", now=NOW, village_ids=[v1, v2])

    report = ev.village_report([q2, q1], v1)
    assert report["period"] == "2031Q2" and report["village"].village_id == v1
    assert [g["code"] for g in report["groups"]] == ["governance", "wellbeing", "collaboration", "innovation"]
    assert [len(g["indicators"]) for g in report["groups"]] == [3, 3, 2, 2]
    income = next(x for g in report["groups"] for x in g["indicators"] if x["indicator"].code == "income_growth")
    assert income["value"] == pytest.approx(4.0) and income["score"] == pytest.approx(50.0)
    assert report["groups"][2]["score"] == pytest.approx(50.0)
    # oldest first; v1 led in Q1 and fell behind v2 in Q2
    assert [t["period"] for t in report["trend"]] == ["2031Q1", "2031Q2"]
    assert [t["rank"] for t in report["trend"]] == [1, 2] and all(t["of"] == 2 for t in report["trend"])
    assert report["trend"][0]["index"] > report["trend"][1]["index"]
    assert report["trend"][1]["index"] == pytest.approx(report["village"].index)
    assert report["trend"][0]["dimensions"]["innovation"] == pytest.approx(100.0)
    # a village the ranking does not hold (outside the scope, or unknown): no report
    assert ev.village_report([q2, q1], -1) is None
    assert ev.village_report([], v1) is None
