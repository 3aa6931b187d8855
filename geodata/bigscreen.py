"""What the leaders' big screen shows: KPIs, trends, breakdowns, live points, hotspots, towns.

Every function takes a scoped session (row-level security decides what counts)
and plain values, and returns plain data. The GB indicators (结案率, 按期结案率,
返工率, 平均处置时长, 超期未结, reported counts) all come from
:func:`geodata.events.indicators` — one implementation of the formulas; this module
only picks the periods (today and this month in the display zone, up to now).

Charts of the county scope read ``event_daily`` (migration 0008), a summary kept
current by a trigger, so a refresh reads a few thousand rows instead of a month
of events; narrower scopes (a town, a village) count from ``event`` under its own
row-level security, which is cheap for them.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Mapping, Sequence

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.clock import day_start, display_zone, zone_name
from geodata.config import DEFAULT_TIMEZONE, METRIC_SRID, STORAGE_SRID
from geodata.events import indicators
from geodata.workflow import OPEN, STATE_COLORS, STATE_LABELS, State

log = logging.getLogger(__name__)
#: The zone of ``event_daily``'s days: migration 0008's ``dvmap_local_day`` fixes it in
#: SQL, so with another ``DVMAP_TIMEZONE`` the charts count from ``event`` instead.
SUMMARY_ZONE = DEFAULT_TIMEZONE
#: Days in the trend chart and the breakdowns.
TREND_DAYS = 30
#: Hours of events drawn as live points.
LIVE_HOURS = 24
#: Events reported this recently pulse on the map.
PULSE_MINUTES = 30
#: Days and cell size (m) of the hotspot overlay.
HOTSPOT_DAYS = 7
HOTSPOT_CELL_M = 1000

#: Planner settings of a refresh: it is a handful of aggregates over index ranges, for
#: which starting parallel workers costs more than it saves — and on a busy server the
#: workers queue behind other work (bench_bigscreen: about 3× slower at a million events).
#: The benchmark empties it to measure the difference.
SERIAL = {"max_parallel_workers_per_gather": "0"}

# The open states as SQL literals (trusted constants from the workflow), so the
# planner can match the partial index on open events.
_OPEN_SQL = ", ".join(f"'{s.value}'" for s in sorted(OPEN, key=lambda s: s.value))


@dataclass(frozen=True)
class Periods:
    """The big screen's clock: now, and the starts of today and this month (display zone)."""

    now: datetime
    day_start: datetime
    month_start: datetime

    @property
    def today(self) -> date:
        return self.day_start.date()


def periods(now: datetime) -> Periods:
    """Today and this month in the display zone (``DVMAP_TIMEZONE``), for ``now`` (an aware datetime).

    Parameters
    ----------
    now : datetime

    Returns
    -------
    Periods
    """
    today = now.astimezone(display_zone()).date()
    # day_start: midnight as the zone has it that day (a DST zone's offset may differ from now's)
    return Periods(now=now, day_start=day_start(today), month_start=day_start(today.replace(day=1)))


def db_now(session: Session) -> datetime:
    """The database's ``now()`` (the transaction's clock)."""
    return session.execute(text("SELECT now()")).scalar()


def _scope_is_county(session: Session) -> bool:
    scope = session.info.get("scope")
    if scope is not None:
        return scope.village_ids is None and scope.role != "grid_worker"
    return bool(session.execute(text("SELECT dvmap_scope_all() AND NOT dvmap_is_grid_worker()")).scalar())


def use_summary(session: Session, village_ids: Sequence[int] | None, town_id: int | None = None) -> bool:
    """True when the county summary ``event_daily`` answers for this scope and filter.

    Only when its days are the display zone's days (:data:`SUMMARY_ZONE`).
    """
    return village_ids is None and zone_name() == SUMMARY_ZONE and _scope_is_county(session)


def _vids(village_ids) -> list[int] | None:
    return None if village_ids is None else [int(v) for v in village_ids]


# -- KPI tiles -------------------------------------------------------------------------------

def kpis(session: Session, *, now: datetime | None = None, village_ids: Sequence[int] | None = None) -> dict:
    """The numbers of the KPI tiles.

    Parameters
    ----------
    session : Session
        Scoped session.
    now : datetime, optional
        Reference time (default the database's ``now()``).
    village_ids : sequence of int, optional
        Restrict to these villages (a town on the carousel).

    Returns
    -------
    dict
        ``events_today``, ``events_month`` (reported), ``open`` (in the loop now),
        ``open_overdue``, ``closure_rate``, ``on_time_rate``, ``rework_rate``,
        ``avg_handling_hours`` (this month, GB definitions, rates None without cases),
        ``should_close``, ``closed`` (this month), ``sensors_online`` (normal or alarm),
        ``sensors_alarm``, ``sensors_offline``, ``sensors_total``,
        ``population_covered``, ``households_covered`` (grid-level population of
        current grids, latest year), ``population_total`` (village level), ``as_of``.
    """
    now = now or db_now(session)
    p = periods(now)
    # end just after now: a period is never empty, and "as of" stays now
    end = now + timedelta(microseconds=1)
    with planner(session, **SERIAL):
        today = indicators(session, p.day_start, end, village_ids, now=now)
        month = indicators(session, p.month_start, end, village_ids, now=now)
        with planner(session, enable_bitmapscan="off"):
            row = _tile_counts(session, village_ids)
    return {
        "events_today": today.reported,
        "events_month": month.reported,
        "open": int(row["open"]),
        "open_overdue": month.open_overdue,
        "closure_rate": month.closure_rate,
        "on_time_rate": month.on_time_rate,
        "rework_rate": month.rework_rate,
        "avg_handling_hours": month.avg_handling_hours,
        "should_close": month.should_close,
        "closed": month.closed,
        "sensors_online": int(row["online"]),
        "sensors_alarm": int(row["alarm"]),
        "sensors_offline": int(row["offline"]),
        "sensors_total": int(row["total"]),
        "population_covered": int(row["pop"]),
        "households_covered": int(row["hh"]),
        "population_total": int(row["pop_total"]),
        "as_of": now,
    }


@contextmanager
def planner(session: Session, **settings: str):
    """Planner settings for the statements inside, then the previous values again (transaction-local).

    The row-level-security functions hide the selectivity of scoped queries from the
    planner, which then prefers bitmap scans with heap visits where an index-only
    scan over a covering index is several times cheaper (the open count).
    """
    names = list(settings)
    assert all(n.replace("_", "").isalpha() for n in names), names  # names go into the SQL text
    if not names:
        yield
        return
    before = session.execute(text("SELECT " + ", ".join(f"current_setting('{n}')" for n in names))).one()
    session.execute(text("SELECT " + ", ".join(f"set_config('{n}', :v{i}, true)" for i, n in enumerate(names))),
                    {f"v{i}": v for i, v in enumerate(settings.values())})
    try:
        yield
    finally:
        session.execute(text("SELECT " + ", ".join(f"set_config('{n}', :v{i}, true)" for i, n in enumerate(names))),
                        {f"v{i}": v for i, v in enumerate(before)})


def _tile_counts(session: Session, village_ids) -> Mapping:
    return session.execute(text(
        f"""
        WITH yr AS (SELECT max(year) AS y FROM population)
        SELECT
          (SELECT count(*) FROM event e
            WHERE e.state IN ({_OPEN_SQL})
              AND (CAST(:vids AS integer[]) IS NULL OR e.village_id = ANY(CAST(:vids AS integer[])))) AS open,
          s.online, s.alarm, s.offline, s.total,
          (SELECT coalesce(sum(pp.total), 0) FROM population pp JOIN grid g ON g.uid = pp.grid_uid
            WHERE g.valid_to IS NULL AND pp.year = (SELECT y FROM yr)
              AND (CAST(:vids AS integer[]) IS NULL OR pp.village_id = ANY(CAST(:vids AS integer[])))) AS pop,
          (SELECT coalesce(sum(pp.households), 0) FROM population pp JOIN grid g ON g.uid = pp.grid_uid
            WHERE g.valid_to IS NULL AND pp.year = (SELECT y FROM yr)
              AND (CAST(:vids AS integer[]) IS NULL OR pp.village_id = ANY(CAST(:vids AS integer[])))) AS hh,
          (SELECT coalesce(sum(pv.total), 0) FROM population pv
            WHERE pv.grid_uid IS NULL AND pv.year = (SELECT y FROM yr)
              AND (CAST(:vids AS integer[]) IS NULL OR pv.village_id = ANY(CAST(:vids AS integer[])))) AS pop_total
          FROM (SELECT count(*) FILTER (WHERE status <> 'offline') AS online,
                       count(*) FILTER (WHERE status = 'alarm') AS alarm,
                       count(*) FILTER (WHERE status = 'offline') AS offline,
                       count(*) AS total
                  FROM sensor
                 WHERE CAST(:vids AS integer[]) IS NULL OR village_id = ANY(CAST(:vids AS integer[]))) s
        """), {"vids": _vids(village_ids)}).mappings().one()


# -- charts ------------------------------------------------------------------------------------

def trend(session: Session, days: int = TREND_DAYS, *, now: datetime | None = None,
          village_ids: Sequence[int] | None = None, summary: bool | None = None) -> list[dict]:
    """Events reported and closed per local day (display zone) over the last ``days`` days (today included).

    Parameters
    ----------
    summary : bool, optional
        Read ``event_daily`` (True) or ``event`` (False); default: the summary when
        the scope is the whole county and no villages are given.

    Returns
    -------
    list of dict
        ``{"day": date, "reported": int, "closed": int}`` for every day, oldest first.
    """
    now = now or db_now(session)
    last = periods(now).today
    first = last - timedelta(days=days - 1)
    if summary is None:
        summary = use_summary(session, village_ids)
    if summary:
        rows = session.execute(text(
            """
            SELECT day, sum(reported)::int AS reported, sum(closed)::int AS closed
              FROM event_daily WHERE day BETWEEN :first AND :last GROUP BY day
            """), {"first": first, "last": last}).mappings().all()
    else:
        rows = session.execute(text(
            """
            WITH b AS (
                SELECT (reported_at AT TIME ZONE :tz)::date AS day, 1 AS r, 0 AS c FROM event e
                 WHERE reported_at >= :t0 AND reported_at < :t1
                   AND (CAST(:vids AS integer[]) IS NULL OR e.village_id = ANY(CAST(:vids AS integer[])))
                UNION ALL
                SELECT (closed_at AT TIME ZONE :tz)::date, 0, 1 FROM event e
                 WHERE closed_at >= :t0 AND closed_at < :t1
                   AND (CAST(:vids AS integer[]) IS NULL OR e.village_id = ANY(CAST(:vids AS integer[])))
            )
            SELECT day, sum(r)::int AS reported, sum(c)::int AS closed FROM b GROUP BY day
            """), {"t0": day_start(first), "t1": day_start(last + timedelta(days=1)), "tz": zone_name(),
                   "vids": _vids(village_ids)}).mappings().all()
    by_day = {r["day"]: r for r in rows}
    out = []
    for i in range(days):
        d = first + timedelta(days=i)
        r = by_day.get(d)
        out.append({"day": d, "reported": int(r["reported"]) if r else 0, "closed": int(r["closed"]) if r else 0})
    return out


def breakdown(session: Session, days: int = TREND_DAYS, *, now: datetime | None = None,
              village_ids: Sequence[int] | None = None, summary: bool | None = None) -> dict[str, list[dict]]:
    """Events reported in the last ``days`` days by category (class), source and town.

    Returns
    -------
    dict
        ``{"category": [...], "source": [...], "town": [...]}``, each a list of
        ``{"code", "name_zh", "name_en", "n"}`` covering every class/source/visible town
        (zero counts included), in reference order.
    """
    now = now or db_now(session)
    last = periods(now).today
    first = last - timedelta(days=days - 1)
    if summary is None:
        summary = use_summary(session, village_ids)
    if summary:
        counted = session.execute(text(
            """
            SELECT class_code, source, town_id, GROUPING(class_code, source, town_id) AS g, sum(reported)::int AS n
              FROM event_daily WHERE day BETWEEN :first AND :last
             GROUP BY GROUPING SETS ((class_code), (source), (town_id))
            """), {"first": first, "last": last}).mappings().all()
    else:
        counted = session.execute(text(
            """
            SELECT class_code, source, town_id, GROUPING(class_code, source, town_id) AS g, count(*)::int AS n
              FROM event e
             WHERE reported_at >= :t0 AND reported_at < :t1
               AND (CAST(:vids AS integer[]) IS NULL OR e.village_id = ANY(CAST(:vids AS integer[])))
             GROUP BY GROUPING SETS ((class_code), (source), (town_id))
            """), {"t0": day_start(first), "t1": day_start(last + timedelta(days=1)),
                   "vids": _vids(village_ids)}).mappings().all()
    # GROUPING bits: class_code 4, source 2, town_id 1 (a bit is set when the column is rolled up)
    cls = {r["class_code"]: r["n"] for r in counted if r["g"] == 3}
    src = {r["source"]: r["n"] for r in counted if r["g"] == 5}
    twn = {r["town_id"]: r["n"] for r in counted if r["g"] == 6}
    ref = session.execute(text(
        """
        SELECT 'category' AS dim, code, name_zh, name_en, sort FROM event_class
        UNION ALL SELECT 'source', code, name_zh, name_en, sort FROM event_source
        UNION ALL SELECT 'town', t.id::text, t.name, t.name, 0 FROM town t
         WHERE EXISTS (SELECT 1 FROM village v WHERE v.town_id = t.id
                         AND (CAST(:vids AS integer[]) IS NULL OR v.id = ANY(CAST(:vids AS integer[]))))
        ORDER BY 1, 5, 2
        """), {"vids": _vids(village_ids)}).mappings().all()
    out: dict[str, list[dict]] = {"category": [], "source": [], "town": []}
    for r in ref:
        counts = {"category": cls, "source": src, "town": twn}[r["dim"]]
        key = int(r["code"]) if r["dim"] == "town" else r["code"]
        out[r["dim"]].append({"code": r["code"], "name_zh": r["name_zh"], "name_en": r["name_en"],
                              "n": int(counts.get(key, 0))})
    return out


# -- map data ----------------------------------------------------------------------------------

def _fc(session: Session, sql: str, params: dict) -> dict:
    wrapped = ("SELECT json_build_object('type', 'FeatureCollection', 'features', coalesce(json_agg(f), '[]'::json))"
               f" FROM ({sql}) AS f")
    return session.execute(text(wrapped), params).scalar_one()


def live_events(session: Session, *, now: datetime | None = None, hours: int = LIVE_HOURS,
                pulse_minutes: int = PULSE_MINUTES, limit: int = 1500) -> dict:
    """Events reported in the last ``hours`` hours as GeoJSON points, newest first.

    Properties: ``id``, ``state``, ``color`` (the workflow's state colour), ``label``
    (state, Chinese), ``name`` (subclass), ``village``, ``at`` (ISO time), ``new``
    (reported in the last ``pulse_minutes`` minutes: drawn pulsing) and ``overdue``.
    """
    now = now or db_now(session)
    colors = " ".join(f"WHEN '{s.value}' THEN '{c}'" for s, c in STATE_COLORS.items())
    labels = " ".join(f"WHEN '{s.value}' THEN '{STATE_LABELS[s][0]}'" for s in State)
    return _fc(session, f"""
        SELECT 'Feature' AS type, e.id AS id, ST_AsGeoJSON(e.geom, 6)::json AS geometry,
               json_build_object('id', e.id, 'kind', 'event', 'state', e.state,
                                 'color', CASE e.state {colors} ELSE '#888888' END,
                                 'label', CASE e.state {labels} ELSE e.state END,
                                 'name', s.name_zh, 'village', v.name,
                                 'at', to_char(e.reported_at AT TIME ZONE :tz, 'MM-DD HH24:MI'),
                                 'new', e.reported_at >= :pulse,
                                 'overdue', e.state IN ({_OPEN_SQL}) AND e.due_at < :now) AS properties
          FROM event e
          JOIN event_subclass s ON s.code = e.subclass_code
          LEFT JOIN village v ON v.id = e.village_id
         WHERE e.reported_at >= :since AND e.reported_at <= :now
         ORDER BY e.reported_at DESC, e.id DESC
         LIMIT :limit
        """, {"since": now - timedelta(hours=hours), "pulse": now - timedelta(minutes=pulse_minutes),
              "now": now, "limit": int(limit), "tz": zone_name()})


def alarm_sensors(session: Session, limit: int = 2000) -> dict:
    """Sensors in alarm as GeoJSON points (``id``, ``code``, ``type``, ``village``, ``seen``)."""
    return _fc(session, """
        SELECT 'Feature' AS type, s.id AS id, ST_AsGeoJSON(s.geom, 6)::json AS geometry,
               json_build_object('id', s.id, 'kind', 'sensor', 'code', s.code, 'type', t.name_zh,
                                 'village', v.name,
                                 'seen', to_char(s.last_seen_at AT TIME ZONE :tz, 'MM-DD HH24:MI'))
                   AS properties
          FROM sensor s JOIN sensor_type t ON t.code = s.type LEFT JOIN village v ON v.id = s.village_id
         WHERE s.status = 'alarm'
         ORDER BY s.id LIMIT :limit
        """, {"limit": int(limit), "tz": zone_name()})


def hotspots(session: Session, *, now: datetime | None = None, days: int = HOTSPOT_DAYS,
             cell_m: int = HOTSPOT_CELL_M, village_ids: Sequence[int] | None = None, method: str = "auto") -> dict:
    """The hotspot overlay: events reported in the last ``days`` days.

    ``method='gistar'`` (or ``'auto'`` when geodata.analysis is installed and there
    are enough events): the statistically significant hot spots of Getis-Ord Gi* on
    H3 hexagons (resolution 8, 199 permutations), from geodata.analysis.hotspots.
    Otherwise (``'cells'``, or Gi* unavailable): counts per ``cell_m`` square cell in
    EPSG:4549.

    Returns
    -------
    dict
        GeoJSON polygons (EPSG:4490) with ``n`` (events), ``level`` 1–5 (colour class:
        count quintile for cells; 3/4/5 for Gi* hot spots at 90/95/99 % confidence)
        and ``method`` (``gistar`` or ``cells``).
    """
    now = now or db_now(session)
    if method in ("auto", "gistar"):
        fc = _gistar(session, now, days, village_ids)
        if fc is not None or method == "gistar":
            return fc or {"type": "FeatureCollection", "features": []}
    m = int(cell_m)
    return _fc(session, f"""
        WITH p AS (
            SELECT ST_Transform(e.geom, {METRIC_SRID}) AS g FROM event e
             WHERE e.reported_at >= :since AND e.reported_at <= :now AND e.state <> :rejected
               AND (CAST(:vids AS integer[]) IS NULL OR e.village_id = ANY(CAST(:vids AS integer[])))
        ), c AS (
            SELECT floor(ST_X(g) / {m})::bigint AS ix, floor(ST_Y(g) / {m})::bigint AS iy, count(*) AS n
              FROM p GROUP BY 1, 2
        )
        SELECT 'Feature' AS type, ix || ':' || iy AS id,
               ST_AsGeoJSON(ST_Transform(ST_MakeEnvelope(ix * {m}, iy * {m}, (ix + 1) * {m}, (iy + 1) * {m},
                                                         {METRIC_SRID}), {STORAGE_SRID}), 6)::json AS geometry,
               json_build_object('kind', 'hotspot', 'method', 'cells', 'n', n,
                                 'level', ntile(5) OVER (ORDER BY n)) AS properties
          FROM c
        """, {"since": now - timedelta(days=days), "now": now, "vids": _vids(village_ids),
              "rejected": State.REJECTED.value})


def _gistar(session: Session, now: datetime, days: int, village_ids) -> dict | None:
    """Gi* hot spots from geodata.analysis, or None when it is missing or has too little to go on."""
    try:
        from geodata.analysis.errors import AnalysisError
        from geodata.analysis.hotspots import hotspots as gi_hotspots
        from geodata.analysis.selection import EventFilter
    except ImportError:
        return None
    flt = EventFilter.last_days(days, village_ids=tuple(village_ids or ()), now=now)
    try:
        result = gi_hotspots(session, flt, unit="h3", resolution=8, permutations=199, seed=42)
    except AnalysisError:   # too few events for Gi*: the plain cells say more
        return None
    except (TypeError, ValueError) as exc:   # another version of the analysis module: keep the screen up
        log.warning("Gi* hotspots unavailable, drawing cell counts instead: %s", exc)
        return None
    features = []
    for f in result.features:
        p = f.get("properties") or {}
        if int(p.get("cls", 0)) > 0:
            features.append({"type": "Feature", "id": f.get("id"), "geometry": f["geometry"],
                             "properties": {"kind": "hotspot", "method": "gistar", "n": int(p.get("count", 0)),
                                            "level": 2 + int(p["cls"]), "confidence": {1: 90, 2: 95, 3: 99}[int(p["cls"])]}})
    return {"type": "FeatureCollection", "features": features}


def towns(session: Session) -> list[dict]:
    """Towns with visible villages, for the carousel: id, name, bounds ``[[s, w], [n, e]]``, village ids."""
    rows = session.execute(text(
        """
        SELECT t.id, t.name, t.code, ST_XMin(x.e) AS w, ST_YMin(x.e) AS s, ST_XMax(x.e) AS e, ST_YMax(x.e) AS n,
               x.ids
          FROM town t
          JOIN LATERAL (SELECT ST_Extent(v.geom) AS e, array_agg(v.id ORDER BY v.id) AS ids
                          FROM village v WHERE v.town_id = t.id) x ON x.ids IS NOT NULL
         ORDER BY t.code
        """)).mappings().all()
    return [{"id": r["id"], "name": r["name"], "code": r["code"].strip(),
             "bounds": [[r["s"], r["w"]], [r["n"], r["e"]]], "village_ids": list(r["ids"])} for r in rows]


def snapshot(session: Session, *, now: datetime | None = None, village_ids: Sequence[int] | None = None) -> dict:
    """Everything one refresh of the screen shows (tiles, trend, breakdowns), at one ``now``.

    Parameters
    ----------
    session : Session
    now : datetime, optional
    village_ids : sequence of int, optional

    Returns
    -------
    dict
        ``kpis`` (:func:`kpis`), ``trend`` (:func:`trend`), ``breakdown`` (:func:`breakdown`).
    """
    now = now or db_now(session)
    return {
        "kpis": kpis(session, now=now, village_ids=village_ids),
        "trend": trend(session, now=now, village_ids=village_ids),
        "breakdown": breakdown(session, now=now, village_ids=village_ids),
    }


def refresh(session: Session, *, now: datetime | None = None) -> dict:
    """One tick of the big screen: :func:`snapshot` plus the live map layers, planned serially.

    Returns
    -------
    dict
        ``now``, ``snapshot`` (:func:`snapshot`), ``events`` (:func:`live_events`) and
        ``alarms`` (:func:`alarm_sensors`).
    """
    with planner(session, **SERIAL):
        now = now or db_now(session)
        return {"now": now, "snapshot": snapshot(session, now=now), "events": live_events(session, now=now),
                "alarms": alarm_sensors(session)}


def refresh_settings() -> dict[str, Any]:
    """Refresh and carousel timings from the environment (seconds).

    ``DVMAP_BIGSCREEN_SECONDS`` (default 15, at least 2): KPI/map refresh;
    ``DVMAP_BIGSCREEN_TOUR_SECONDS`` (default 20, at least 5): carousel step;
    ``DVMAP_BIGSCREEN_RANK_SECONDS`` (default 300, at least 10): ranking recomputation.
    """
    import os

    def read(name: str, default: int, floor: int) -> int:
        try:
            return max(floor, int(float(os.environ.get(name, default))))
        except ValueError:
            return default

    return {"refresh": read("DVMAP_BIGSCREEN_SECONDS", 15, 2),
            "tour": read("DVMAP_BIGSCREEN_TOUR_SECONDS", 20, 5),
            "rank": read("DVMAP_BIGSCREEN_RANK_SECONDS", 300, 10)}


__all__ = ["Periods", "periods", "db_now", "use_summary", "kpis", "trend", "breakdown", "live_events", "refresh",
           "planner", "SERIAL",
           "alarm_sensors", "hotspots", "towns", "snapshot", "refresh_settings", "TREND_DAYS", "LIVE_HOURS",
           "PULSE_MINUTES", "HOTSPOT_DAYS", "HOTSPOT_CELL_M"]
