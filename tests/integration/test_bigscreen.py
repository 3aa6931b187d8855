"""The big screen's numbers on the real PostGIS: KPIs against independent SQL, the daily
summary against the event table, its row-level security, and the evaluation index."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import text

from geodata import bigscreen as bs
from geodata import evaluation as ev
from geodata.clock import display_zone
from geodata.db import SYSTEM, ScopedSession, Scope, apply_scope
from geodata.events import Actor, create_event, transition

SYS = Actor("bigscreen-test", "system")


def _points(s, n):
    return s.execute(text(
        """
        SELECT ST_X(ST_PointOnSurface(g.geom)) AS lon, ST_Y(ST_PointOnSurface(g.geom)) AS lat, g.village_id
          FROM grid g WHERE g.valid_to IS NULL ORDER BY g.code LIMIT :n
        """), {"n": n}).mappings().all()


def _run(s, ref, steps, start):
    """Apply ``[(action, hours after the previous step, note, data)]`` to a new event."""
    version, t = ref.version, start
    for action, hours, note, data in steps:
        t = t + timedelta(hours=hours)
        version = transition(s, ref.id, action, SYS, version, note, at=t, **data).version
    return version


def _life(closed_after_h=None, rework=False, postpone_until=None, rate=None):
    steps = [("accept", 0.2, None, {}), ("dispatch", 0.2, None, {}), ("start", 0.5, None, {})]
    if postpone_until is not None:
        steps.append(("postpone", 0.2, "等待 / waiting", {"until": postpone_until}))
        return steps
    if closed_after_h is None:
        return steps
    steps.append(("handle", closed_after_h, "已处置 / done", {}))
    if rework:
        steps += [("verify_fail", 0.5, "返工 / rework", {}), ("handle", 1.0, "返工完成 / redone", {})]
    steps += [("verify_pass", 0.2, None, {}), ("close", 0.1, None, {})]
    if rate is not None:
        steps.append(("rate", 0.5, None, {"rating": rate}))
    return steps


@pytest.fixture
def world(db_session):
    """A dozen events with known histories around now (rolled back after the test)."""
    s = db_session
    now = bs.db_now(s)
    # "Today" must hold the events of the last 3 h: in the small hours (local time) the world is
    # built at the end of the previous local day instead, so the test does not depend on the clock.
    from geodata.clock import day_start, local_today, to_local
    if to_local(now).hour < 4:
        now = day_start(local_today(now)) - timedelta(minutes=1)
    pts = _points(s, 12)
    plans = [
        (timedelta(minutes=30), []),                                     # reported just now
        (timedelta(hours=3), _life(closed_after_h=1, rate=5)),            # closed on time today
        (timedelta(days=2), _life(closed_after_h=30, rate=2)),            # 0102: 12 h SLA → late
        (timedelta(days=3), _life(closed_after_h=2, rework=True, rate=4)),
        (timedelta(days=9), _life()),                                     # open, overdue
        (timedelta(days=12), _life(postpone_until=now + timedelta(days=20))),
        (timedelta(days=40), _life(closed_after_h=3, rate=4)),            # previous month
        (timedelta(days=1), [("reject", 0.3, "重复 / duplicate", {})]),
        (timedelta(hours=5), _life()),                                    # open, not yet due
        (timedelta(days=15), _life(closed_after_h=5)),
    ]
    refs = []
    for (ago, steps), p in zip(plans, pts):
        at = now - ago
        ref = create_event(s, lon=p["lon"], lat=p["lat"], subclass="0102", description="大屏测试 / big screen test",
                           source="patrol" if len(refs) % 2 else "hotline", actor=SYS, reported_at=at)
        _run(s, ref, steps, at)
        refs.append(ref)
    return {"now": now, "refs": refs}


INDEPENDENT = """
WITH cohort AS (
    SELECT * FROM event
     WHERE dispatched_at IS NOT NULL AND sla_due_at IS NOT NULL AND state <> 'rejected'
       AND least(closed_at, sla_due_at) >= :start AND least(closed_at, sla_due_at) < :end
)
SELECT (SELECT count(*) FROM event WHERE reported_at >= :start AND reported_at < :end) AS reported,
       (SELECT count(*) FROM cohort) AS n,
       (SELECT count(*) FROM cohort WHERE closed_at < :end) AS c,
       (SELECT count(*) FROM cohort WHERE closed_at < :end AND closed_at <= due_at) AS t,
       (SELECT count(*) FROM cohort WHERE postpone_count > 0 AND due_at >= :end
                                     AND (closed_at IS NULL OR closed_at >= :end)) AS p,
       (SELECT count(*) FROM cohort WHERE rework_count > 0) AS w,
       (SELECT avg(extract(epoch FROM closed_at - dispatched_at)) / 3600 FROM cohort WHERE closed_at < :end) AS h,
       (SELECT count(*) FROM event WHERE sla_due_at IS NOT NULL AND state <> 'rejected' AND due_at < :now
                                    AND (closed_at IS NULL OR closed_at >= :now)) AS overdue,
       (SELECT count(*) FROM event WHERE state NOT IN ('closed', 'evaluated', 'rejected')) AS open
"""


def _expected(s, start, now):
    r = s.execute(text(INDEPENDENT), {"start": start, "end": now + timedelta(microseconds=1), "now": now}).mappings().one()
    den = r["n"] - r["p"]
    return {
        "reported": r["reported"], "open": r["open"], "open_overdue": r["overdue"],
        "closure_rate": r["c"] / den if den else None, "on_time_rate": r["t"] / den if den else None,
        "rework_rate": r["w"] / r["n"] if r["n"] else None,
        "avg_handling_hours": None if r["h"] is None else float(r["h"]),
    }


def test_kpi_tiles_equal_independent_sql(db_session, world):
    s, now = db_session, world["now"]
    k = bs.kpis(s, now=now)
    p = bs.periods(now)
    month = _expected(s, p.month_start, now)
    today = _expected(s, p.day_start, now)
    assert k["events_today"] == today["reported"] >= 2          # two of the world's events are today's
    assert k["events_month"] == month["reported"]
    assert k["open"] == month["open"] >= 4
    assert k["open_overdue"] == month["open_overdue"] >= 1
    for key in ("closure_rate", "on_time_rate", "rework_rate", "avg_handling_hours"):
        assert k[key] == pytest.approx(month[key], rel=1e-9), key
    sensors = s.execute(text("SELECT status, count(*) FROM sensor GROUP BY status")).all()
    by = dict(sensors)
    assert k["sensors_alarm"] == by.get("alarm", 0) and k["sensors_offline"] == by.get("offline", 0)
    assert k["sensors_online"] == by.get("normal", 0) + by.get("alarm", 0)
    pop = s.execute(text(
        """
        SELECT sum(p.total), sum(p.households) FROM population p
         WHERE p.grid_uid IN (SELECT uid FROM grid WHERE valid_to IS NULL)
           AND p.year = (SELECT max(year) FROM population)
        """)).one()
    assert (k["population_covered"], k["households_covered"]) == (pop[0], pop[1])
    assert k["population_covered"] > 0


def test_a_new_event_moves_the_tiles_by_exactly_one(db_session, world):
    s, now = db_session, world["now"]
    before = bs.kpis(s, now=now)
    p = _points(s, 20)[-1]
    create_event(s, lon=p["lon"], lat=p["lat"], subclass="0301", description="井盖缺失", source="citizen", actor=SYS,
                 reported_at=now - timedelta(seconds=5))
    after = bs.kpis(s, now=now)
    assert after["events_today"] == before["events_today"] + 1
    assert after["events_month"] == before["events_month"] + 1
    assert after["open"] == before["open"] + 1


def test_town_kpis_count_only_the_towns_villages(db_session, world):
    s, now = db_session, world["now"]
    town = bs.towns(s)[0]
    local = bs.kpis(s, now=now, village_ids=town["village_ids"])
    n = s.execute(text(
        "SELECT count(*) FROM event WHERE state NOT IN ('closed', 'evaluated', 'rejected') AND village_id = ANY(:v)"),
        {"v": town["village_ids"]}).scalar()
    assert local["open"] == n
    assert local["sensors_total"] == s.execute(text("SELECT count(*) FROM sensor WHERE village_id = ANY(:v)"),
                                               {"v": town["village_ids"]}).scalar()


def test_daily_summary_is_kept_exactly_by_the_trigger(db_session, world):
    """After inserts, transitions (closing moves counts) and multi-row updates, event_daily equals a
    fresh aggregate of the events."""
    from geodata.events import check_overdue

    s, now = db_session, world["now"]
    check_overdue(s, now)                       # many rows at once, no counted column changes
    ids = [r.id for r in world["refs"][:4]]     # one statement moving four events to another source/class
    s.execute(text("UPDATE event SET source = 'superior', class_code = '05', subclass_code = '0503'"
                   " WHERE id = ANY(:ids)"), {"ids": ids})
    diff = s.execute(text(
        """
        WITH fresh AS (
            SELECT day, town_id, class_code, source, sum(r) AS reported, sum(c) AS closed
              FROM (SELECT dvmap_local_day(reported_at) AS day, town_id, class_code, source, 1 AS r, 0 AS c FROM event
                    UNION ALL
                    SELECT dvmap_local_day(closed_at), town_id, class_code, source, 0, 1 FROM event
                     WHERE closed_at IS NOT NULL) x
             GROUP BY 1, 2, 3, 4
        ), kept AS (SELECT day, town_id, class_code, source, reported, closed FROM event_daily
                     WHERE reported <> 0 OR closed <> 0)
        SELECT (SELECT count(*) FROM (SELECT * FROM fresh EXCEPT SELECT * FROM kept) a)
             + (SELECT count(*) FROM (SELECT * FROM kept EXCEPT SELECT * FROM fresh) b)
        """)).scalar()
    assert diff == 0
    # and the charts read the same from the summary as from the events
    assert bs.trend(s, now=now, summary=True) == bs.trend(s, now=now, summary=False)
    assert bs.breakdown(s, now=now, summary=True) == bs.breakdown(s, now=now, summary=False)
    today = bs.trend(s, now=now)[-1]
    assert today["reported"] >= 2 and today["day"] == bs.periods(now).today


def test_scoped_screens_count_their_scope_and_never_read_county_totals(db_session, world):
    """Village and grid-worker scopes read nothing from event_daily; their charts count their events."""
    s, now = db_session, world["now"]
    vid = world["refs"][1].village_id
    conn = s.connection()
    assert conn.execute(text("SELECT count(*) FROM event_daily")).scalar() > 0
    try:
        apply_scope(conn, Scope(None, "grid_worker", None, frozenset()))
        assert conn.execute(text("SELECT count(*) FROM event_daily")).scalar() == 0
        apply_scope(conn, Scope.villages([vid], "village_official"))
        assert conn.execute(text("SELECT count(*) FROM event_daily")).scalar() == 0
        scoped = ScopedSession(bind=conn, join_transaction_mode="create_savepoint")  # scope read from SQL
        assert not bs.use_summary(scoped, None)
        first = bs.periods(now).today - timedelta(days=bs.TREND_DAYS - 1)
        expected = conn.execute(text(
            "SELECT count(*) FROM event WHERE village_id = :v AND dvmap_local_day(reported_at) >= :d"
            " AND reported_at <= :now"), {"v": vid, "d": first, "now": now}).scalar()
        assert sum(d["reported"] for d in bs.trend(scoped, now=now)) == expected >= 1
        towns = bs.breakdown(scoped, now=now)["town"]
        assert len(towns) == 1 and towns[0]["n"] == expected
        scoped.close()
    finally:
        apply_scope(conn, SYSTEM)
    assert bs.use_summary(s, None)


@pytest.mark.parametrize("zone, local_day_shift", [("Asia/Shanghai", 1), ("UTC", 0), ("Asia/Urumqi", 0)])
def test_trend_days_follow_dvmap_timezone(db_session, monkeypatch, zone, local_day_shift):
    """An event reported at 17:30 UTC is counted on the next day in China (UTC+8), on the same
    day in UTC and in Urumqi (UTC+6): the day buckets follow DVMAP_TIMEZONE, and the county
    summary (whose days migration 0008 fixes to China time) is only read when they agree."""
    s = db_session
    monkeypatch.setenv("DVMAP_TIMEZONE", zone)
    now = bs.db_now(s)
    utc_day = (now - timedelta(days=3)).date()
    at = datetime.combine(utc_day, datetime.min.time(), now.tzinfo) + timedelta(hours=17, minutes=30)
    p = _points(s, 1)[0]
    cls = "0102"
    before = {d["day"]: d["reported"] for d in bs.trend(s, now=now, summary=False)}
    create_event(s, lon=p["lon"], lat=p["lat"], subclass=cls, description="时区测试 / zone test",
                 source="patrol", actor=SYS, reported_at=at)
    after = {d["day"]: d["reported"] for d in bs.trend(s, now=now, summary=False)}
    moved = {d: after[d] - before.get(d, 0) for d in after if after[d] != before.get(d, 0)}
    assert moved == {utc_day + timedelta(days=local_day_shift): 1}
    assert bs.use_summary(s, None) == (zone == bs.SUMMARY_ZONE)
    # the default path (summary or not) agrees with the event table in every zone
    assert bs.trend(s, now=now) == bs.trend(s, now=now, summary=False)


def test_nobody_writes_the_county_totals(app_engine, demo_db):
    from sqlalchemy.exc import ProgrammingError

    with app_engine.connect() as conn:
        with pytest.raises(ProgrammingError):
            with conn.begin():
                apply_scope(conn, Scope.county("admin"))
                conn.execute(text("INSERT INTO event_daily (day, class_code, source, reported) VALUES"
                                  " (current_date, '01', 'patrol', 1000)"))
        with pytest.raises(ProgrammingError):
            with conn.begin():
                apply_scope(conn, Scope.county("admin"))
                conn.execute(text("SELECT dvmap_event_daily_rebuild()"))


# -- evaluation index -----------------------------------------------------------------------------

def test_ranking_index_equals_hand_computation(db_session):
    s = db_session
    inds = ev.definitions(s)
    assert [round(g["weight"]) for g in ev.groups(inds)] == [40, 35, 15, 10]
    assert sum(i.weight for i in inds) == 100
    # Only the manual indicators count in this test: computed weights to 0.
    ev.update_indicators(s, {i.code: {"weight": 0} for i in inds if not i.manual}, actor="t", role="admin")
    manual = [i for i in inds if i.manual]
    v1, v2, v3 = s.execute(text("SELECT id FROM village ORDER BY code LIMIT 3")).scalars()
    period = "2031Q2"
    entries = [(v1, i.code, i.target) for i in manual]                        # all at target → 100
    entries += [(v2, i.code, i.target / 2) for i in manual]                   # all half → 50
    entries += [(v3, manual[0].code, manual[0].target * 3)]                   # one capped at 100, rest missing
    assert ev.set_manual_values(s, period, entries, actor="t", role="admin") == {"saved": len(entries), "cleared": 0}
    result = ev.ranking(s, period, now=datetime(2031, 5, 1, tzinfo=display_zone()), village_ids=[v1, v2, v3])
    rows = {r.village_id: r for r in result["rows"]}
    total = sum(i.weight for i in manual)
    assert rows[v1].index == pytest.approx(100.0) and rows[v1].rank == 1
    assert rows[v2].index == pytest.approx(50.0) and rows[v2].rank == 2
    assert rows[v3].index == pytest.approx(100.0 * manual[0].weight / total)
    assert rows[v3].completeness == pytest.approx(manual[0].weight / total)
    assert rows[v3].values[manual[0].code] == pytest.approx(manual[0].target * 3)
    # clearing a value
    assert ev.set_manual_values(s, period, [(v3, manual[0].code, "")], actor="t", role="admin")["cleared"] == 1


def test_auto_values_use_the_one_indicator_implementation(db_session, world):
    from geodata.events import indicators_by_village

    s, now = db_session, world["now"]
    period = ev.period_of(now)
    start, _end = ev.period_bounds(period)
    auto = ev.auto_values(s, period, now=now)
    gb = indicators_by_village(s, start, now, now=now)
    for vid, value in auto["on_time_rate"].items():
        assert value == gb[vid].on_time_rate
    assert auto["service_coverage"] and all(0 <= v <= 1 for v in auto["service_coverage"].values())
    rated = s.execute(text(
        "SELECT village_id, avg((rating >= 4)::int) FROM event WHERE rating IS NOT NULL AND evaluated_at >= :s"
        " AND evaluated_at < :e GROUP BY 1"), {"s": start, "e": now}).all()
    for vid, share in rated:
        assert auto["satisfaction"][vid] == pytest.approx(float(share))


def test_only_admins_change_the_index_and_bad_input_changes_nothing(db_session, app_engine):
    s = db_session
    before = {i.code: (i.weight, i.target) for i in ev.definitions(s)}
    with pytest.raises(ev.EvaluationError):
        ev.update_indicators(s, {"income_growth": {"weight": 20}}, actor="leader", role="county_leader")
    with pytest.raises(ev.EvaluationError) as exc:
        ev.update_indicators(s, {"income_growth": {"weight": 20}, "social_org_growth": {"weight": 150}},
                             actor="a", role="admin")
    assert "0" in exc.value.message_zh and exc.value.field == "weight:social_org_growth"
    with pytest.raises(ev.EvaluationError):
        ev.update_indicators(s, {"income_growth": {"target": "abc"}}, actor="a", role="admin")
    with pytest.raises(ev.EvaluationError):
        ev.update_indicators(s, {i: {"weight": 0} for i in before}, actor="a", role="admin")
    assert {i.code: (i.weight, i.target) for i in ev.definitions(s)} == before
    vid = s.execute(text("SELECT id FROM village ORDER BY code LIMIT 1")).scalar()
    with pytest.raises(ev.EvaluationError):  # computed indicators are not entered by hand
        ev.set_manual_values(s, "2031Q1", [(vid, "grid_event_handling", 0.5)], actor="a", role="admin")
    with pytest.raises(ev.EvaluationError):
        ev.set_manual_values(s, "2031-1", [(vid, "income_growth", 5)], actor="a", role="admin")
    with pytest.raises(ev.EvaluationError):  # one bad value: nothing of the batch is written
        ev.set_manual_values(s, "2031Q1", [(vid, "income_growth", 5), (vid, "social_org_growth", "x")],
                             actor="a", role="admin")
    assert ev.manual_values(s, "2031Q1") == {}
    # the database refuses too: a leader's transaction cannot update the weights
    with app_engine.connect() as conn, conn.begin() as tx:
        apply_scope(conn, Scope.county("county_leader"))
        assert conn.execute(text("UPDATE eval_indicator SET weight = 99")).rowcount == 0
        tx.rollback()


def test_manual_values_follow_the_village_scope(app_engine, demo_db):
    with app_engine.connect() as conn:
        trans = conn.begin()
        try:
            apply_scope(conn, Scope.county("admin"))
            v1, v2 = conn.execute(text("SELECT id FROM village ORDER BY code LIMIT 2")).scalars()
            s = ScopedSession(bind=conn, join_transaction_mode="create_savepoint", info={"scope": Scope.county("admin")})
            ev.set_manual_values(s, "2031Q3", [(v1, "income_growth", 6), (v2, "income_growth", 7)], actor="a",
                                 role="admin")
            s.flush()
            apply_scope(conn, Scope.villages([v1], "village_official"))
            seen = conn.execute(text("SELECT village_id FROM eval_manual_value WHERE period = '2031Q3'")).scalars().all()
            assert seen == [v1]
            # a village official cannot write (the policy wants an admin)
            assert conn.execute(text("UPDATE eval_manual_value SET value = 1 WHERE period = '2031Q3'")).rowcount == 0
        finally:
            trans.rollback()


def test_demo_events_advance_deterministically(db_session):
    """The demo generator takes events through the loop: same seed and time, same states."""
    from etl.demo_events import advance_demo_events, load_demo_events

    s = db_session
    now = bs.db_now(s)
    mine = ("SELECT e.state, count(*) FROM event e JOIN event_request r ON r.event_id = e.id"
            " WHERE r.client_key LIKE 'demo-99-%' GROUP BY 1 ORDER BY 1")
    runs = []
    for _ in range(2):
        sp = s.begin_nested()
        load_demo_events(s, n=40, seed=99, now=now)
        moved = advance_demo_events(s, seed=99, now=now)
        runs.append((moved, s.execute(text(mine)).all()))
        sp.rollback()
    (moved, states), (_moved2, again) = runs
    assert moved["transitions"] > 150
    by = dict(states)
    assert sum(by.values()) == 40 and by.get("closed", 0) + by.get("evaluated", 0) >= 20
    assert by.get("reported", 0) < 40
    assert again == states
