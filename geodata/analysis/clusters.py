"""Density clusters of events: DBSCAN in PostGIS (``ST_ClusterDBSCAN``) on EPSG:4549 metres.

``eps`` is a distance in metres and ``min_points`` counts the point itself, in PostGIS
as in scikit-learn (``min_samples``), and both use "within eps" inclusively; core
points and noise therefore come out the same in both. They differ only for a *border*
point (not core itself) within eps of core points of two different clusters: DBSCAN
lets it join whichever cluster reaches it first, and the two implementations visit
points in different orders. :func:`compare_labels` checks exactly this: identical
clusters of core points (up to numbering), identical noise, and every border point in a
cluster that has a core point within eps.
"""
from __future__ import annotations

import math

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.analysis.errors import AnalysisError
from geodata.analysis.result import AnalysisResult, LegendEntry
from geodata.analysis.selection import EventFilter, require_events
from geodata.config import METRIC_SRID, STORAGE_SRID

CLUSTER_COLORS = ["#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#a65628", "#f781bf", "#999999",
                  "#66c2a5", "#fc8d62", "#8da0cb", "#e78ac3"]
MAX_POINTS = 2_000_000


def check_params(eps_m, min_points) -> tuple[float, int]:
    """Validate DBSCAN parameters: eps > 0 metres, min_points ≥ 1.

    Raises
    ------
    AnalysisError
        ``bad_eps`` or ``bad_min_points``.
    """
    try:
        eps = float(eps_m)
    except (TypeError, ValueError):
        eps = float("nan")
    if not math.isfinite(eps) or eps <= 0:
        raise AnalysisError("bad_eps", "邻域半径 eps 必须是大于 0 的米数。",
                            "The neighbourhood radius eps must be a number of metres greater than 0.")
    if eps > 50_000:
        raise AnalysisError("bad_eps", "邻域半径 eps 不能超过 50 公里。", "eps cannot exceed 50 km.")
    try:
        mp = int(min_points)
    except (TypeError, ValueError):
        mp = 0
    if mp < 1 or mp > 10_000:
        raise AnalysisError("bad_min_points", "最少点数须在 1–10000 之间。", "min points must be 1–10,000.")
    return eps, mp


def dbscan_xy(session: Session, xy: np.ndarray, eps_m: float, min_points: int) -> np.ndarray:
    """DBSCAN labels of metric points computed by PostGIS (−1 = noise).

    Parameters
    ----------
    session : Session
    xy : (n, 2) array
        Coordinates in EPSG:4549 metres.
    eps_m, min_points
        See :func:`check_params`.

    Returns
    -------
    ndarray of int
        One label per point, clusters numbered from 0 as PostGIS numbers them.
    """
    eps, mp = check_params(eps_m, min_points)
    xy = np.asarray(xy, dtype=float)
    if len(xy) > MAX_POINTS:
        raise AnalysisError("too_many_points", f"点太多(超过 {MAX_POINTS:,})。", f"Too many points (over {MAX_POINTS:,}).")
    if len(xy) == 0:
        return np.empty(0, dtype=np.int64)
    rows = session.execute(text(
        f"""
        SELECT p.i, ST_ClusterDBSCAN(ST_SetSRID(ST_MakePoint(p.x, p.y), {METRIC_SRID}), eps => :eps,
                                     minpoints => :mp) OVER () AS cid
          FROM unnest(CAST(:xs AS float8[]), CAST(:ys AS float8[])) WITH ORDINALITY AS p(x, y, i)
        """), {"xs": xy[:, 0].tolist(), "ys": xy[:, 1].tolist(), "eps": eps, "mp": mp}).all()
    labels = np.full(len(xy), -1, dtype=np.int64)
    for i, cid in rows:
        if cid is not None:
            labels[int(i) - 1] = int(cid)
    return labels


def core_mask(xy: np.ndarray, eps_m: float, min_points: int) -> np.ndarray:
    """True for DBSCAN core points: at least ``min_points`` points (itself included) within ``eps_m``."""
    from scipy.spatial import cKDTree

    tree = cKDTree(np.asarray(xy, dtype=float))
    counts = np.array([len(n) for n in tree.query_ball_point(xy, r=eps_m)])
    return counts >= min_points


def compare_labels(a: np.ndarray, b: np.ndarray, xy: np.ndarray, eps_m: float, min_points: int) -> dict:
    """Compare two DBSCAN labelings of the same points (−1 = noise), up to cluster numbering.

    Returns
    -------
    dict
        ``core_same`` (core points partitioned identically), ``noise_same``,
        ``border_valid`` (each border point sits in a cluster with a core point within eps
        in both labelings), ``identical`` (the whole partition is the same),
        ``ambiguous_border`` (border points the two put in different clusters).
    """
    from scipy.spatial import cKDTree

    a, b = np.asarray(a), np.asarray(b)
    core = core_mask(xy, eps_m, min_points)

    def same_partition(mask) -> bool:
        pairs = set(zip(a[mask].tolist(), b[mask].tolist()))
        left = {p[0] for p in pairs}
        right = {p[1] for p in pairs}
        return len(pairs) == len(left) == len(right)

    noise_same = bool(np.array_equal(a == -1, b == -1))
    core_same = same_partition(core) and not (a[core] == -1).any() and not (b[core] == -1).any()
    border = ~core & (a != -1)
    tree = cKDTree(xy)
    ok = True
    for i in np.flatnonzero(border | (~core & (b != -1))):
        near = [j for j in tree.query_ball_point(xy[i], r=eps_m) if core[j]]
        ok &= a[i] in set(a[near].tolist()) and b[i] in set(b[near].tolist())
    # A bijection between a's and b's core clusters tells which border labels disagree.
    mapping = dict(zip(a[core].tolist(), b[core].tolist()))
    ambiguous = int(sum(1 for i in np.flatnonzero(border) if mapping.get(int(a[i])) != int(b[i])))
    identical = same_partition(np.ones(len(a), dtype=bool)) and noise_same
    return {"core_same": bool(core_same), "noise_same": noise_same, "border_valid": bool(ok),
            "identical": bool(identical), "ambiguous_border": ambiguous, "core_points": int(core.sum())}


def event_clusters(session: Session, flt: EventFilter, eps_m: float, min_points: int) -> AnalysisResult:
    """DBSCAN clusters of the selected events, with hulls and counts, computed in PostGIS.

    Parameters
    ----------
    session : Session
        A scoped session (RLS decides which events count).
    flt : EventFilter
    eps_m : float
        Neighbourhood radius in metres (> 0).
    min_points : int
        Minimum points within eps (the point itself included) for a core point.

    Returns
    -------
    AnalysisResult
        One hull per cluster (convex hull; clusters of two points or on a line get a
        10 m buffer so they can be seen and clicked), properties ``cluster``, ``count``,
        ``event_ids``; the clustered events as ``points``.
    """
    eps, mp = check_params(eps_m, min_points)
    where, params = flt.validate().where("e")
    rows = session.execute(text(
        f"""
        WITH e AS (
            SELECT e.id, e.geom, ST_Transform(e.geom, {METRIC_SRID}) AS g FROM event e WHERE {where}
        ), c AS (
            SELECT id, geom, g, ST_ClusterDBSCAN(g, eps => :eps, minpoints => :mp) OVER () AS cid FROM e
        ), hulls AS (
            SELECT cid, count(*) AS n, array_agg(id ORDER BY id) AS ids, ST_ConvexHull(ST_Collect(g)) AS h
              FROM c WHERE cid IS NOT NULL GROUP BY cid
        )
        SELECT cid, n, ids,
               ST_AsGeoJSON(ST_Transform(CASE WHEN ST_Dimension(h) < 2 THEN ST_Buffer(h, 10) ELSE h END, {STORAGE_SRID}), 6)
                   AS geojson,
               ST_Area(CASE WHEN ST_Dimension(h) < 2 THEN ST_Buffer(h, 10) ELSE h END) AS area_m2,
               (SELECT count(*) FROM e) AS total
          FROM hulls ORDER BY n DESC, cid
        """), {**params, "eps": eps, "mp": mp}).mappings().all()
    total = rows[0]["total"] if rows else session.execute(
        text(f"SELECT count(*) FROM event e WHERE {where}"), params).scalar_one()
    require_events(int(total), mp, "DBSCAN 聚类", "DBSCAN clustering")
    import json

    feats, points = [], []
    for rank, r in enumerate(rows):
        color = CLUSTER_COLORS[rank % len(CLUSTER_COLORS)]
        feats.append({"type": "Feature", "id": f"c{r['cid']}", "geometry": json.loads(r["geojson"]),
                      "properties": {"_key": f"c{r['cid']}", "_color": color, "cluster": int(r["cid"]),
                                     "rank": rank + 1, "count": int(r["n"]), "area_km2": round(r["area_m2"] / 1e6, 3),
                                     "event_ids": [int(i) for i in r["ids"]],
                                     "label": f"#{rank + 1} · {int(r['n'])}"}})
    clustered = sum(int(r["n"]) for r in rows)
    legend = [LegendEntry(f"聚类 #{i + 1}({int(r['n'])} 件)", f"Cluster #{i + 1} ({int(r['n'])} events)",
                          CLUSTER_COLORS[i % len(CLUSTER_COLORS)]) for i, r in enumerate(rows[:8])]
    if len(rows) > 8:
        legend.append(LegendEntry(f"另有 {len(rows) - 8} 个聚类", f"{len(rows) - 8} more clusters", "#cccccc"))
    summary = {"events": int(total), "clusters": len(rows), "clustered": clustered, "noise": int(total) - clustered}
    notes = [(f"DBSCAN(PostGIS ST_ClusterDBSCAN,EPSG:{METRIC_SRID}):eps = {eps:g} 米,最少点数 {mp}(含自身);"
              "外包多边形为凸包。",
              f"DBSCAN (PostGIS ST_ClusterDBSCAN, EPSG:{METRIC_SRID}): eps = {eps:g} m, min points {mp} (itself included); "
              "hulls are convex hulls."),
             ("两个聚类之间的边界点归属任一聚类均属正确(与 scikit-learn 可能不同)。",
              "A border point reachable from two clusters may join either (scikit-learn may choose the other).")]
    return AnalysisResult("clusters", "事件密度聚类(DBSCAN)", "Event density clusters (DBSCAN)", feats, legend,
                          summary, notes, {"eps_m": eps, "min_points": mp, **flt.describe()}, points)
