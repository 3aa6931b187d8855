"""Bulk loading of events: years of history in one set-based pass.

Rows arrive by COPY into a temporary staging table (PostgreSQL refuses COPY into
tables with row-level security), then ONE ``INSERT … SELECT`` routes every event
to its current grid, village and town with the GiST indexes, sets department and
SLA from the reference tables, and writes one ``import`` history row per event.

Used by ``dvmap demo-data --events N`` (synthetic events, deterministic by seed) and
by :func:`load_historical` for a department's CSV of past cases.
"""
from __future__ import annotations

import io
import time
from datetime import datetime, timezone
from typing import Callable

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import text

from geodata.config import STORAGE_SRID
from geodata.db import SYSTEM, apply_scope, make_engine
from geodata.workflow import SETTLED
from geodata.workflow import State as S

STAGE_COLUMNS = ("lon", "lat", "reported_at", "subclass_code", "urgency", "source", "state", "description",
                 "dispatch_h", "handle_h", "close_h", "rating", "rework")

# Routing runs polygons-outer / points-inner: each grid polygon probes the GiST index
# of the staged points, and consecutive tests against the same polygon reuse PostGIS's
# prepared geometry. (Points-outer lookups of 1M points cost ~100 µs each here.)
_PREPARE_SQL = (
    "DROP TABLE IF EXISTS dvmap_event_pts",
    f"""CREATE TEMP TABLE dvmap_event_pts ON COMMIT DROP AS
       SELECT row_number() OVER () AS rid, s.*, ST_SetSRID(ST_MakePoint(s.lon, s.lat), {STORAGE_SRID}) AS geom
         FROM dvmap_event_stage s""",
    "CREATE INDEX ON dvmap_event_pts USING gist (geom)",
    "ANALYZE dvmap_event_pts",
    "DROP TABLE IF EXISTS dvmap_event_hit",
    """CREATE TEMP TABLE dvmap_event_hit ON COMMIT DROP AS
       SELECT DISTINCT ON (p.rid) p.rid, g.id AS grid_id, g.uid AS grid_uid, g.worker_id, g.village_id
         FROM grid g JOIN dvmap_event_pts p ON ST_Intersects(g.geom, p.geom)
        WHERE g.valid_to IS NULL
        ORDER BY p.rid, g.id""",
    "CREATE UNIQUE INDEX ON dvmap_event_hit (rid)",
)

_ROUTE_SQL = """
WITH routed AS (
    SELECT p.*, h.grid_id, h.grid_uid, h.worker_id, coalesce(h.village_id, v.id) AS village_id,
           nextval('event_id_seq') AS new_id, sub.class_code, r.department,
           coalesce(sla.hours, 72) AS sla_hours
      FROM dvmap_event_pts p
      JOIN event_subclass sub ON sub.code = p.subclass_code
      LEFT JOIN event_routing r ON r.subclass_code = p.subclass_code
      LEFT JOIN event_sla sla ON sla.subclass_code = p.subclass_code AND sla.urgency = p.urgency
      LEFT JOIN dvmap_event_hit h ON h.rid = p.rid
      -- Outside every grid (rare): the containing village, if any.
      LEFT JOIN LATERAL (
            SELECT v.id FROM village v
             WHERE h.rid IS NULL AND ST_Intersects(v.geom, p.geom) LIMIT 1) v ON true
),
timed AS (
    SELECT rt.*, t.town_id,
           CASE WHEN rt.state = ANY(:undispatched) THEN NULL
                ELSE rt.reported_at + make_interval(secs => rt.dispatch_h * 3600) END AS dispatched_at
      FROM routed rt
      LEFT JOIN village t ON t.id = rt.village_id
),
ins AS (
    INSERT INTO event (id, reported_at, village_id, town_id, grid_uid, grid_id, worker_id, department, queue,
                       outside_grid, class_code, subclass_code, description, urgency, source, geom, reported_by,
                       state, version, dispatched_at, sla_due_at, due_at, handled_at, verified_at, closed_at,
                       evaluated_at, result, rating, rework_count, updated_at)
    SELECT new_id, reported_at, village_id, town_id, grid_uid, grid_id, worker_id, department,
           CASE WHEN grid_id IS NOT NULL THEN 'grid' WHEN village_id IS NOT NULL THEN 'village' ELSE 'county' END,
           grid_id IS NULL, class_code, subclass_code, description, urgency, source, geom, :reported_by,
           state, 1, dispatched_at,
           dispatched_at + make_interval(secs => sla_hours * 3600),
           dispatched_at + make_interval(secs => sla_hours * 3600),
           CASE WHEN state = ANY(:handled) THEN dispatched_at + make_interval(secs => handle_h * 3600) END,
           CASE WHEN state = ANY(:verified) THEN dispatched_at + make_interval(secs => (handle_h + 1) * 3600) END,
           CASE WHEN state = ANY(:settled) THEN dispatched_at + make_interval(secs => close_h * 3600) END,
           CASE WHEN state = :evaluated THEN dispatched_at + make_interval(secs => (close_h + 24) * 3600) END,
           CASE WHEN state = ANY(:handled) THEN '已处置' END,
           CASE WHEN state = :evaluated THEN rating END,
           rework, now()
      FROM timed
     -- Stored month by month, in space order (geohash, ~40 m cells) within a month: a
     -- time window reads whole months of neighbouring pages, and a street-level view
     -- reads one short run of pages per month instead of one page per event.
     ORDER BY date_trunc('month', reported_at), ST_GeoHash(geom, 8), reported_at
    RETURNING id, reported_at, village_id, state
)
INSERT INTO event_history (event_id, event_reported_at, village_id, at, actor, actor_role, action,
                           from_state, to_state, version, note)
SELECT id, reported_at, village_id, now(), :reported_by, 'system', 'import', NULL, state, 1, :note FROM ins
"""


def _values(states) -> list[str]:
    return [s.value for s in states]


#: The milestones a loaded event has passed, by the state it arrives in (a closed event
#: was dispatched, handled and verified), as the parameters of :data:`_ROUTE_SQL`.
_MILESTONES = {
    "undispatched": _values((S.REPORTED, S.ACCEPTED, S.REJECTED)),
    "handled": _values((S.HANDLED, S.VERIFIED, *sorted(SETTLED))),
    "verified": _values((S.VERIFIED, *sorted(SETTLED))),
    "settled": _values(sorted(SETTLED)),
    "evaluated": S.EVALUATED.value,
}


def synthetic_events(engine, n: int, *, seed: int = 7, years: float = 3.0,
                     now: datetime | None = None) -> pd.DataFrame:
    """Generate ``n`` plausible events over the last ``years`` years, deterministically.

    Points fall inside current grids in proportion to population, with a third of
    them around a few hotspots; older events are mostly closed, recent ones open.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        Owner or app engine of a database holding the demo county.
    n : int
        Number of events.
    seed : int
        Random seed.
    """
    if n <= 0:
        raise ValueError("n must be positive")
    rng = np.random.default_rng(seed)
    now = now or datetime.now(timezone.utc)
    with engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        grids = conn.execute(text(
            """SELECT ST_AsBinary(g.geom) AS wkb, coalesce(p.total, 1) AS pop
                 FROM grid g LEFT JOIN population p ON p.grid_uid = g.uid
                WHERE g.valid_to IS NULL ORDER BY g.id""")).all()
        subclasses = conn.execute(text(
            "SELECT code FROM event_subclass WHERE active AND sensor_type IS NULL ORDER BY sort, code")).scalars().all()
        urgencies = conn.execute(text("SELECT code FROM event_urgency ORDER BY sort")).scalars().all()
        sources = conn.execute(text(
            "SELECT code FROM event_source WHERE code <> 'sensor' ORDER BY sort")).scalars().all()
    if not grids:
        raise ValueError("no grids: load the demo county first (dvmap demo-data)")
    polys = shapely.from_wkb([bytes(g[0]) for g in grids])
    weights = np.array([float(g[1]) for g in grids])
    weights /= weights.sum()

    # Which grid each event falls in; a third concentrate in 8 hotspot grids.
    choice = rng.choice(len(polys), size=n, p=weights)
    hot = rng.choice(len(polys), size=8, replace=False, p=weights)
    hot_mask = rng.random(n) < 0.33
    choice[hot_mask] = hot[rng.integers(0, len(hot), hot_mask.sum())]
    lon = np.empty(n)
    lat = np.empty(n)
    for gi in np.unique(choice):
        idx = np.flatnonzero(choice == gi)
        poly = polys[gi]
        minx, miny, maxx, maxy = poly.bounds
        got = np.empty(0), np.empty(0)
        while got[0].size < idx.size:  # rejection sampling inside the polygon
            k = max(16, 2 * (idx.size - got[0].size))
            xs = rng.uniform(minx, maxx, k)
            ys = rng.uniform(miny, maxy, k)
            inside = shapely.contains_xy(poly, xs, ys)
            got = np.concatenate([got[0], xs[inside]]), np.concatenate([got[1], ys[inside]])
        lon[idx] = got[0][: idx.size]
        lat[idx] = got[1][: idx.size]

    # Time: uniform over the window with a weekday rhythm.
    span_s = years * 365.25 * 86400
    age_s = rng.uniform(0, span_s, n)
    reported = pd.to_datetime(now) - pd.to_timedelta(age_s, unit="s")
    age_days = age_s / 86400
    states = np.where(
        age_days > 30,
        rng.choice(_values((S.CLOSED, S.EVALUATED, S.REJECTED)), size=n, p=[0.80, 0.15, 0.05]),
        rng.choice(_values((S.REPORTED, S.ACCEPTED, S.DISPATCHED, S.IN_PROGRESS, S.HANDLED, S.VERIFIED, S.CLOSED,
                            S.EVALUATED)), size=n, p=[0.08, 0.07, 0.15, 0.2, 0.1, 0.05, 0.25, 0.10]),
    )
    # Events that cannot be done yet (reported a few hours ago) stay early in the loop.
    dispatch_h = rng.uniform(0.3, 6, n)
    handle_h = rng.gamma(2.0, 12.0, n)
    close_h = handle_h + rng.uniform(2, 30, n)
    young = age_days * 24 < close_h + 30
    states = np.where(young & np.isin(states, _values(SETTLED)), S.IN_PROGRESS.value, states)
    desc = np.array(["网格员巡查发现", "群众反映", "12345热线转办", "视频AI识别", "上级交办"])[rng.integers(0, 5, n)]
    return pd.DataFrame({
        "lon": np.round(lon, 6), "lat": np.round(lat, 6), "reported_at": reported,
        "subclass_code": np.array(subclasses)[rng.integers(0, len(subclasses), n)],
        "urgency": np.array(urgencies)[rng.choice(len(urgencies), n, p=_urgency_p(len(urgencies)))],
        "source": np.array(sources)[rng.integers(0, len(sources), n)],
        "state": states, "description": desc,
        "dispatch_h": np.round(dispatch_h, 3), "handle_h": np.round(handle_h, 3), "close_h": np.round(close_h, 3),
        "rating": rng.integers(3, 6, n), "rework": (rng.random(n) < 0.05).astype(int),
    })


def _urgency_p(k: int) -> list[float]:
    base = np.array([0.7, 0.25, 0.05, 0.0, 0.0][:k], dtype=float)
    base[base == 0] = 0.01
    return list(base / base.sum())


def copy_and_route(engine, frame: pd.DataFrame, *, reported_by: str = "bulk-import",
                   note: str = "历史事件批量导入 / bulk import", batch: int = 250_000,
                   progress: Callable[[int, int], None] | None = None) -> int:
    """COPY ``frame`` into staging and route it into ``event`` in set-based SQL.

    All batches run in ONE transaction: a failure leaves the table as it was.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        The schema owner's engine.
    frame : pandas.DataFrame
        Columns :data:`STAGE_COLUMNS`; ``reported_at`` timezone-aware.
    batch : int
        Rows per COPY + INSERT round.

    Returns
    -------
    int
        Number of events inserted.
    """
    missing = [c for c in STAGE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"missing columns: {missing}")
    total = 0
    # Batches in time order, so that the month-then-space order of the rows holds across batches.
    frame = frame.sort_values("reported_at", kind="stable")
    with engine.begin() as conn:
        # Nothing is acknowledged before this function returns, and the synchronous
        # commit of the VACUUM (ANALYZE) below flushes the WAL past this commit first.
        conn.execute(text("SET LOCAL synchronous_commit = off"))
        apply_scope(conn, SYSTEM)
        conn.execute(text(
            """CREATE TEMP TABLE dvmap_event_stage (
                 lon float8, lat float8, reported_at timestamptz, subclass_code text, urgency text, source text,
                 state text, description text, dispatch_h float8, handle_h float8, close_h float8,
                 rating smallint, rework integer) ON COMMIT DROP"""))
        raw = conn.connection.driver_connection
        for start in range(0, len(frame), batch):
            part = frame.iloc[start:start + batch]
            buf = io.StringIO()
            part[list(STAGE_COLUMNS)].to_csv(buf, index=False, header=False, date_format="%Y-%m-%d %H:%M:%S%z")
            buf.seek(0)
            with raw.cursor() as cur:
                with cur.copy(f"COPY dvmap_event_stage ({', '.join(STAGE_COLUMNS)}) FROM STDIN WITH (FORMAT csv)") as cp:
                    while chunk := buf.read(1 << 20):
                        cp.write(chunk)
            for statement in _PREPARE_SQL:
                conn.execute(text(statement))
            conn.execute(text(_ROUTE_SQL), {"reported_by": reported_by, "note": note, **_MILESTONES})
            conn.execute(text("TRUNCATE dvmap_event_stage"))
            total += len(part)
            if progress:
                progress(total, len(frame))
    with engine.connect() as conn:
        # VACUUM too: it marks the new pages all-visible, so counts per village/grid can be
        # answered from the covering indexes alone (index-only scans).
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM (ANALYZE) event"))
    return total


def load_synthetic(owner_url: str, n: int, *, seed: int = 7, years: float = 3.0,
                   progress: Callable[[int, int], None] | None = None) -> dict:
    """Generate and bulk-load ``n`` synthetic events into the database at ``owner_url``.

    Returns a summary with counts and timings.
    """
    engine = make_engine(owner_url)
    try:
        t0 = time.perf_counter()
        frame = synthetic_events(engine, n, seed=seed, years=years)
        t1 = time.perf_counter()
        inserted = copy_and_route(engine, frame, reported_by="demo-data", progress=progress)
        t2 = time.perf_counter()
    finally:
        engine.dispose()
    return {"events": inserted, "generate_s": round(t1 - t0, 1), "load_and_route_s": round(t2 - t1, 1)}


def load_historical(owner_url: str, path: str, *, progress: Callable[[int, int], None] | None = None) -> dict:
    """Load a CSV of past cases (columns :data:`STAGE_COLUMNS`, lon/lat in CGCS2000/WGS84).

    Rows with missing or non-finite coordinates are refused before anything is written.
    """
    frame = pd.read_csv(path)
    frame["reported_at"] = pd.to_datetime(frame["reported_at"], utc=True)
    bad = ~(np.isfinite(frame["lon"]) & np.isfinite(frame["lat"]))
    if bad.any():
        raise ValueError(f"{int(bad.sum())} rows have missing coordinates (first: line {int(np.flatnonzero(bad)[0]) + 2})")
    engine = make_engine(owner_url)
    try:
        n = copy_and_route(engine, frame, reported_by="historical-import", progress=progress)
    finally:
        engine.dispose()
    return {"events": n}

