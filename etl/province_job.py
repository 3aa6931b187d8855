"""Province-wide event binning + hotspots as a batch job on a Dask cluster.

When hundreds of counties share one database (or its read replicas), the nightly
"where do problems concentrate" job should not run inside PostgreSQL. This job reads
the same ``event`` table in (county, month) partitions — each task touches one
time partition of one county — bins points into square cells in the metric CRS
(CGCS2000 / 3-degree GK CM 120E, EPSG:4549), adds the counts up per county and
cell, and runs Getis-Ord Gi* per county on the binned counts.

:func:`bin_in_database` does the same binning with one GROUP BY in PostGIS, so the
two can be compared cell by cell (they must agree exactly).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
from sqlalchemy import text

from geodata.config import METRIC_SRID, STORAGE_SRID
from geodata.db import SYSTEM, apply_scope, make_engine

_COUNTY_OF_EVENT = """
    SELECT c.code AS county FROM village v JOIN town t ON t.id = v.town_id JOIN county c ON c.id = t.county_id
     WHERE v.id = e.village_id
"""


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def months(self) -> list[tuple[datetime, datetime]]:
        """Calendar-month slices covering the window (the tasks' time partitions)."""
        out, cur = [], self.start
        while cur < self.end:
            nxt = (cur.replace(day=1) + timedelta(days=32)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            out.append((cur, min(nxt, self.end)))
            cur = nxt
        return out


def last_months(n: int, now: datetime | None = None) -> Window:
    """The window of the last ``n`` months up to ``now``."""
    now = now or datetime.now(timezone.utc)
    return Window(now - timedelta(days=30.44 * n), now)


def bin_in_database(url: str, window: Window, cell_m: float = 1000.0) -> pd.DataFrame:
    """Counts per (county, cell) computed by PostGIS in one statement.

    Parameters
    ----------
    url : str
        Owner URL (a batch job reads the whole province).
    window : Window
        Reported-at time window.
    cell_m : float
        Cell size in metres.
    """
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            apply_scope(conn, SYSTEM)
            frame = pd.DataFrame(conn.execute(text(f"""
                SELECT ({_COUNTY_OF_EVENT}) AS county,
                       floor(ST_X(ST_Transform(e.geom, {METRIC_SRID})) / :cell)::bigint AS ix,
                       floor(ST_Y(ST_Transform(e.geom, {METRIC_SRID})) / :cell)::bigint AS iy,
                       count(*) AS n
                  FROM event e
                 WHERE e.reported_at >= :start AND e.reported_at < :end AND e.village_id IS NOT NULL
                 GROUP BY 1, 2, 3"""), {"cell": cell_m, "start": window.start, "end": window.end}).all(),
                columns=["county", "ix", "iy", "n"])
    finally:
        engine.dispose()
    return frame.sort_values(["county", "ix", "iy"]).reset_index(drop=True)


def _counties(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(text("SELECT code FROM county ORDER BY code"))]
    finally:
        engine.dispose()


def _bin_partition(url: str, county: str, start: datetime, end: datetime, cell_m: float) -> pd.DataFrame:
    """One task: read one county-month of events and bin it (runs on a Dask worker)."""
    from pyproj import Transformer

    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        with engine.begin() as conn:
            apply_scope(conn, SYSTEM)
            rows = conn.execute(text("""
                SELECT ST_X(e.geom), ST_Y(e.geom) FROM event e
                  JOIN village v ON v.id = e.village_id JOIN town t ON t.id = v.town_id
                  JOIN county c ON c.id = t.county_id
                 WHERE c.code = :county AND e.reported_at >= :start AND e.reported_at < :end"""),
                {"county": county, "start": start, "end": end}).all()
    finally:
        engine.dispose()
    if not rows:
        return pd.DataFrame({"county": pd.Series(dtype=object), "ix": pd.Series(dtype="int64"),
                             "iy": pd.Series(dtype="int64"), "n": pd.Series(dtype="int64")})
    xy = np.asarray(rows, dtype=float)
    to_metric = Transformer.from_crs(STORAGE_SRID, METRIC_SRID, always_xy=True)
    x, y = to_metric.transform(xy[:, 0], xy[:, 1])
    frame = pd.DataFrame({"county": county, "ix": np.floor(x / cell_m).astype("int64"),
                          "iy": np.floor(y / cell_m).astype("int64")})
    out = frame.groupby(["county", "ix", "iy"], as_index=False).size().rename(columns={"size": "n"})
    return out.astype({"county": object, "n": "int64"})


def bin_with_dask(url: str, window: Window, cell_m: float = 1000.0, client=None) -> pd.DataFrame:
    """Counts per (county, cell) computed by Dask tasks, one per county-month.

    Parameters
    ----------
    client : distributed.Client, optional
        An existing Dask client; a local one is used when omitted.
    """
    import dask
    import dask.dataframe as dd

    parts = [dask.delayed(_bin_partition)(url, county, a, b, cell_m)
             for county in _counties(url) for a, b in window.months()]
    meta = pd.DataFrame({"county": pd.Series(dtype=object), "ix": pd.Series(dtype="int64"),
                         "iy": pd.Series(dtype="int64"), "n": pd.Series(dtype="int64")})
    frame = dd.from_delayed(parts, meta=meta, verify_meta=False)
    summed = frame.groupby(["county", "ix", "iy"]).n.sum().reset_index()
    result = summed.compute() if client is None else client.compute(summed).result()
    return result.sort_values(["county", "ix", "iy"]).reset_index(drop=True)


def hotspots(bins: pd.DataFrame, cell_m: float = 1000.0, permutations: int = 199, seed: int = 1) -> pd.DataFrame:
    """Gi* per county on the binned counts (distance band = 1.5 cells: the 8 neighbours)."""
    from geodata.analysis.gistar import distance_band_weights, gi_star

    out = []
    for county, group in bins.groupby("county"):
        if len(group) < 3:
            continue
        xy = np.column_stack([(group.ix.to_numpy() + 0.5) * cell_m, (group.iy.to_numpy() + 0.5) * cell_m])
        weights = distance_band_weights(xy, 1.5 * cell_m)
        res = gi_star(group.n.to_numpy(dtype=float), weights, transform="B", permutations=permutations, seed=seed)
        p = res.p_sim if res.p_sim is not None else res.p_norm
        out.append(group.assign(z=np.asarray(res.z), p=np.asarray(p)))
    return pd.concat(out, ignore_index=True) if out else bins.assign(z=[], p=[])


def run(url: str, months: int = 12, cell_m: float = 1000.0, workers: int = 2) -> dict:
    """Run the job on a local Dask cluster and compare it with the in-database binning."""
    import logging
    import time

    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.ERROR)  # shuffle chatter is not news
    window = last_months(months)
    t0 = time.perf_counter()
    db_bins = bin_in_database(url, window, cell_m)
    t1 = time.perf_counter()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        dask_bins = bin_with_dask(url, window, cell_m, client=client)
    t2 = time.perf_counter()
    merged = db_bins.merge(dask_bins, on=["county", "ix", "iy"], how="outer", suffixes=("_db", "_dask")).fillna(0)
    mismatched = int((merged.n_db != merged.n_dask).sum())
    hot = hotspots(dask_bins, cell_m)
    return {
        "cells": len(db_bins), "events": int(db_bins.n.sum()), "mismatched_cells": mismatched,
        "database_s": round(t1 - t0, 2), "dask_s": round(t2 - t1, 2),
        "hot_cells_95": int(((hot.z > 1.96) & (hot.p < 0.05)).sum()) if len(hot) else 0,
        "tasks": len(_counties(url)) * len(window.months()),
    }
