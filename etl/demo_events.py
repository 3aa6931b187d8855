"""Demo events: a deterministic set of reports over the last 180 days, clustered around hotspots.

:func:`generate_events` is pure: from the county outline, the villages' label points and a
seed it draws ``n`` event locations, categories, sources and report times. Some
hotspots are *persistent* (events all along), some *emerging* (mostly in the last 90
days) and some *fading* (mostly before that), so a hot-spot analysis and a comparison of
two time windows have something to find. Each hotspot favours one event class, so an
analysis for one category still finds it.

:func:`load_demo_events` reports them through :func:`geodata.events.create_event` — the
only way events are created — so routing (grid, worker, village, department), history
rows and RLS work exactly as for real reports. Each event has the idempotency key
``demo-<seed>-<i>``: loading twice adds nothing. :func:`advance_demo_events` then takes
them through the loop with :func:`geodata.events.transition` (dispatch, handling, some
late, some reworked, closing, ratings), so the indicators have something to measure.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np

from geodata.clock import display_zone
from geodata.config import METRIC_SRID, STORAGE_SRID
from geodata.workflow import State

#: Who reports the demo events (history ``actor``; also how :func:`remove_demo_events` finds them).
DEMO_REPORTER = "demo-events"
DAYS = 180

#: Subclasses a hotspot of each class produces, and background mix (code, weight).
CLASS_SUBCLASSES = {
    "01": ["0101", "0102", "0103", "0104"],
    "02": ["0201", "0202", "0203"],
    "03": ["0301", "0302", "0303", "0304"],
    "05": ["0503", "0504", "0505"],
    "07": ["0701", "0704"],
}
BACKGROUND = ["0101", "0102", "0103", "0201", "0203", "0303", "0304", "0401", "0504", "0701", "0704", "0801",
              "0803"]
SOURCES = ["patrol", "patrol", "patrol", "hotline", "citizen", "video_ai"]


@dataclass(frozen=True)
class DemoEvent:
    """One generated report (lon/lat in EPSG:4490)."""

    key: str
    lon: float
    lat: float
    subclass: str
    source: str
    urgency: str
    reported_at: datetime
    description: str
    hotspot: int | None  # index of the hotspot it belongs to, None = background


def generate_events(county_geom, anchors: list[tuple[float, float]], n: int = 1500, seed: int = 7,
                    now: datetime | None = None, hotspots: int = 6) -> list[DemoEvent]:
    """Draw ``n`` demo events inside ``county_geom``.

    Parameters
    ----------
    county_geom : shapely geometry
        The county in EPSG:4490.
    anchors : list of (lon, lat)
        Candidate hotspot centres (e.g. village label points), in a stable order.
    n : int
        Number of events.
    seed : int
        Same seed, same events.
    now : datetime, optional
        End of the 180-day window (default: now, rounded down to the hour).
    hotspots : int
        How many hotspots (kinds cycle persistent → emerging → fading).

    Returns
    -------
    list of DemoEvent
        In report-time order.
    """
    import shapely
    from pyproj import Transformer

    if n <= 0:
        return []
    rng = np.random.default_rng(seed)
    now = (now or datetime.now(timezone.utc)).astimezone(display_zone()).replace(minute=0, second=0, microsecond=0)
    fwd = Transformer.from_crs(STORAGE_SRID, METRIC_SRID, always_xy=True)
    inv = Transformer.from_crs(METRIC_SRID, STORAGE_SRID, always_xy=True)
    region = shapely.transform(county_geom, lambda xy: np.column_stack(fwd.transform(xy[:, 0], xy[:, 1])))
    inner = region.buffer(-150.0)
    shapely.prepare(inner)

    anchors_m = np.column_stack(fwd.transform(*np.asarray(anchors, dtype=float).T)) if anchors else np.empty((0, 2))
    anchors_m = anchors_m[shapely.contains_xy(inner, anchors_m[:, 0], anchors_m[:, 1])] if len(anchors_m) else anchors_m
    k = min(hotspots, len(anchors_m))
    chosen = anchors_m[rng.choice(len(anchors_m), size=k, replace=False)] if k else np.empty((0, 2))
    classes = list(CLASS_SUBCLASSES)
    kinds = ["persistent", "emerging", "fading"]
    spots = [{"xy": chosen[i], "cls": classes[i % len(classes)], "kind": kinds[i % 3],
              "sigma": float(rng.uniform(350, 700))} for i in range(k)]

    n_hot = int(round(0.6 * n)) if spots else 0
    share = rng.dirichlet(np.full(len(spots), 4.0)) if spots else np.array([])
    per_spot = np.floor(share * n_hot).astype(int)
    if spots:
        per_spot[: n_hot - per_spot.sum()] += 1
    xs, ys, spot_of = [], [], []
    for idx, (spot, m) in enumerate(zip(spots, per_spot)):
        got = 0
        while got < m:
            x = rng.normal(spot["xy"][0], spot["sigma"], 2 * (m - got) + 4)
            y = rng.normal(spot["xy"][1], spot["sigma"], 2 * (m - got) + 4)
            ok = shapely.contains_xy(inner, x, y)
            take = min(int(ok.sum()), m - got)
            xs.append(x[ok][:take]); ys.append(y[ok][:take]); spot_of += [idx] * take
            got += take
    rest = n - len(spot_of)
    minx, miny, maxx, maxy = inner.bounds
    got = 0
    while got < rest:
        x = rng.uniform(minx, maxx, 3 * (rest - got) + 16)
        y = rng.uniform(miny, maxy, 3 * (rest - got) + 16)
        ok = shapely.contains_xy(inner, x, y)
        take = min(int(ok.sum()), rest - got)
        xs.append(x[ok][:take]); ys.append(y[ok][:take]); spot_of += [None] * take
        got += take
    x = np.concatenate(xs) if xs else np.empty(0)
    y = np.concatenate(ys) if ys else np.empty(0)
    lon, lat = inv.transform(x, y)

    out = []
    for i in range(len(spot_of)):
        s = spot_of[i]
        if s is None:
            subclass = BACKGROUND[int(rng.integers(len(BACKGROUND)))]
            age = rng.uniform(0, DAYS)
        else:
            spot = spots[s]
            subclass = CLASS_SUBCLASSES[spot["cls"]][int(rng.integers(len(CLASS_SUBCLASSES[spot["cls"]])))]
            if spot["kind"] == "emerging":
                age = rng.uniform(0, 90) if rng.random() < 0.9 else rng.uniform(90, DAYS)
            elif spot["kind"] == "fading":
                age = rng.uniform(90, DAYS) if rng.random() < 0.9 else rng.uniform(0, 90)
            else:
                age = rng.uniform(0, DAYS)
        at = now - timedelta(seconds=float(age) * 86400.0)
        urgency = "urgent" if rng.random() < 0.1 else "normal"
        out.append(DemoEvent(
            key=f"demo-{seed}-{i}", lon=round(float(lon[i]), 6), lat=round(float(lat[i]), 6), subclass=subclass,
            source=SOURCES[int(rng.integers(len(SOURCES)))], urgency=urgency, reported_at=at,
            description=f"演示事件 #{i + 1}(自动生成) / demo event", hotspot=s,
        ))
    out.sort(key=lambda e: e.reported_at)
    return out


def _county_and_anchors(session):
    from shapely import wkb
    from sqlalchemy import text

    row = session.execute(text("SELECT ST_AsBinary(ST_Union(geom)) FROM county")).scalar()
    if row is None:
        raise ValueError("no county loaded: run `dvmap demo-data` first")
    anchors = session.execute(text(
        "SELECT ST_X(label_point), ST_Y(label_point) FROM village ORDER BY code")).all()
    return wkb.loads(bytes(row)), [(float(a), float(b)) for a, b in anchors]


def load_demo_events(session, n: int = 1500, seed: int = 7, now: datetime | None = None) -> dict:
    """Report the demo events through :func:`geodata.events.create_event` in ``session``.

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        A county-scoped session (e.g. ``SYSTEM``); the caller commits.
    n, seed, now
        As for :func:`generate_events`.

    Returns
    -------
    dict
        ``created`` (new events), ``existing`` (already loaded with the same key), ``total``.
    """
    from geodata.events import Actor, create_event

    county, anchors = _county_and_anchors(session)
    actor = Actor(DEMO_REPORTER, "system")
    created = existing = 0
    for e in generate_events(county, anchors, n, seed, now):
        ref = create_event(session, lon=e.lon, lat=e.lat, subclass=e.subclass, description=e.description,
                           urgency=e.urgency, source=e.source, actor=actor, client_key=e.key,
                           reported_at=e.reported_at)
        created += ref.created
        existing += not ref.created
    return {"created": created, "existing": existing, "total": created + existing}


def remove_demo_events(owner_connection) -> int:
    """Delete every demo event (and its history) — for tests and a fresh reload.

    History is append-only; as the schema owner this lifts its guard inside the
    caller's transaction only, as the test helpers do.

    Parameters
    ----------
    owner_connection : sqlalchemy.engine.Connection
        A connection of the schema owner, in a transaction, with the county scope applied.

    Returns
    -------
    int
        Number of events deleted.
    """
    from sqlalchemy import text

    ids = "SELECT id FROM event WHERE reported_by = :who"
    owner_connection.execute(text("ALTER TABLE event_history DISABLE TRIGGER event_history_append_only"))
    try:
        for sql in (f"DELETE FROM event_photo WHERE event_id IN ({ids})",
                    f"DELETE FROM event_history WHERE event_id IN ({ids})",
                    f"DELETE FROM event_request WHERE event_id IN ({ids})"):
            owner_connection.execute(text(sql), {"who": DEMO_REPORTER})
        deleted = owner_connection.execute(text("DELETE FROM event WHERE reported_by = :who"),
                                           {"who": DEMO_REPORTER}).rowcount
    finally:
        owner_connection.execute(text("ALTER TABLE event_history ENABLE TRIGGER event_history_append_only"))
    return int(deleted)


def hotspot_centres(county_geom, anchors, seed: int = 7, hotspots: int = 6) -> list[tuple[float, float]]:
    """The lon/lat of the hotspots :func:`generate_events` places (for tests and screenshots)."""
    evs = generate_events(county_geom, anchors, n=400, seed=seed, hotspots=hotspots)
    by = {}
    for e in evs:
        if e.hotspot is not None:
            by.setdefault(e.hotspot, []).append((e.lon, e.lat))
    return [tuple(np.mean(v, axis=0)) for _, v in sorted(by.items())]


# -- taking the demo events through the loop (for the big screen's KPIs) --------------------

class _Later(Exception):
    """The next step of an event's plan lies after ``now``: it stays where it is."""


def _hours(rng, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _advance_one(session, row, rng, now: datetime, actor) -> int:
    """Run one event's deterministic plan up to ``now``; return the number of transitions."""
    from geodata.events import transition

    state = {"t": row["reported_at"], "version": row["version"], "n": 0}

    def step(action: str, after_h: float, note: str | None = None, **data):
        when = state["t"] + timedelta(hours=max(after_h, 0.02))
        if when > now:
            raise _Later
        res = transition(session, row["id"], action, actor, state["version"], note, at=when, **data)
        state.update(t=when, version=res.version, n=state["n"] + 1)
        return res

    # Draw the whole plan first, so a later `now` only walks further along the same path.
    plan = {
        "reject": rng.random() < 0.04, "postpone": rng.random() < 0.03, "rework": rng.random() < 0.07,
        "rate": rng.random() < 0.6, "late": rng.random() < 0.22, "accept_h": _hours(rng, 0.1, 2.0),
        "dispatch_h": _hours(rng, 0.1, 1.5), "start_f": _hours(rng, 0.02, 0.15),
        "f_in": _hours(rng, 0.2, 0.9),
        "f_late": _hours(rng, 1.05, 2.2), "fail_h": _hours(rng, 0.5, 4.0), "rework_h": _hours(rng, 1.0, 10.0),
        "verify_h": _hours(rng, 0.3, 4.0), "close_h": _hours(rng, 0.1, 2.0), "rate_h": _hours(rng, 1.0, 48.0),
        "rating": int(rng.choice([5, 5, 5, 4, 4, 3, 2])), "resume_h": _hours(rng, 12.0, 48.0),
    }
    route = {"grid_uid": row["candidates"][0]} if row["boundary_pending"] and row["candidates"] else {}
    try:
        if plan["reject"]:
            step("reject", plan["accept_h"], "重复上报,已合并 / duplicate report, merged")
            return state["n"]
        step("accept", plan["accept_h"], **route)
        dispatched = step("dispatch", plan["dispatch_h"])
        start = state["t"]
        due = datetime.fromisoformat(dispatched.changes["due_at"])
        sla_h = max((due - start).total_seconds() / 3600.0, 0.5)
        step("start", plan["start_f"] * sla_h)
        if plan["postpone"]:
            step("postpone", 0.5, "等待配件 / waiting for parts", until=due + timedelta(hours=72))
            step("resume", plan["resume_h"])
            due = due + timedelta(hours=72)
            sla_h += 72
        target = start + timedelta(hours=(plan["f_late"] if plan["late"] else plan["f_in"]) * sla_h)
        step("handle", (target - state["t"]).total_seconds() / 3600.0, "已现场处置 / handled on site")
        if plan["rework"]:
            step("verify_fail", plan["fail_h"], "核查未通过,需返工 / failed on-site check, rework")
            step("handle", plan["rework_h"], "返工完成 / rework done")
        step("verify_pass", plan["verify_h"])
        step("close", plan["close_h"])
        if plan["rate"]:
            step("rate", plan["rate_h"], rating=plan["rating"])
    except _Later:
        pass
    return state["n"]


def advance_demo_events(session, seed: int = 7, now: datetime | None = None) -> dict:
    """Take the demo events still at 受理 (reported) through the workflow, up to ``now``.

    Every step goes through :func:`geodata.events.transition` (the only writer of an
    event's state), with its time set in the past: 立案, 派遣 (the SLA clock starts),
    开始处置, sometimes 缓办 and 恢复, 反馈 — about a fifth after the deadline —,
    sometimes a failed 核查 and rework, 核查通过, 结案, and for most a 评价. About 4 %
    are rejected (作废). Each event's plan is drawn from ``(seed, its index)``, so the
    same seed and ``now`` give the same history; a step after ``now`` is not taken,
    so recent events stay open. Events already moved are left alone (run it once,
    after :func:`load_demo_events`).

    Parameters
    ----------
    session : sqlalchemy.orm.Session
        A county-scoped session (e.g. ``SYSTEM``); the caller commits.
    seed : int
        Seed of the plans.
    now : datetime, optional
        Default: the database's ``now()``.

    Returns
    -------
    dict
        ``events`` advanced and ``transitions`` taken.
    """
    from sqlalchemy import text

    from geodata.events import Actor

    now = now or session.execute(text("SELECT now()")).scalar()
    rows = session.execute(text(
        """
        SELECT e.id, e.version, e.reported_at, e.boundary_pending, e.candidate_grid_uids::text[] AS candidates,
               r.client_key
          FROM event e LEFT JOIN event_request r ON r.event_id = e.id AND r.reported_at = e.reported_at
         WHERE e.reported_by = :who AND e.state = :reported AND e.version = 1
         ORDER BY e.reported_at, e.id
        """), {"who": DEMO_REPORTER, "reported": State.REPORTED.value}).mappings().all()
    actor = Actor(DEMO_REPORTER, "system")
    moved = steps = 0
    for row in rows:
        key = row["client_key"] or ""
        index = int(key.rsplit("-", 1)[1]) if key.rsplit("-", 1)[-1].isdigit() else int(row["id"])
        n = _advance_one(session, row, np.random.default_rng([seed, 1009, index]), now, actor)
        moved += n > 0
        steps += n
    return {"events": moved, "transitions": steps}


__all__ = ["DemoEvent", "generate_events", "load_demo_events", "remove_demo_events", "hotspot_centres",
           "advance_demo_events", "DEMO_REPORTER"]
