"""Planners' analyses: our Gi* beside esda's G_Local, PostGIS DBSCAN beside scikit-learn's.

* Gi* (999 permutations) on 1,500 lattice cells and on the demo county's H3 cells
  (resolution 8, the dev database's events of the last 180 days), each beside
  ``esda.G_Local(star=True)`` with the same weights in the same run, both warmed up; the
  note gives the largest |Δz|, and the time and |Δp| with esda's own permutation draws.
* DBSCAN on 100,000 points (eps 100 m, min 8): PostGIS ``ST_ClusterDBSCAN`` (as the app
  runs it, points sent as arrays) beside ``sklearn.cluster.DBSCAN``; the note says
  whether the labels agree up to numbering (cores, noise, borders).

Medians of several runs. Needs the dev database with the demo county (``make demo``).
"""
from __future__ import annotations

import warnings

import numpy as np

from bench.common import median, timed


def _esda(y, w, transform="R", perms=999):
    from esda.getisord import G_Local
    from libpysal.weights import WSP

    wp = WSP(w.adjacency).to_W(silence_warnings=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return G_Local(y, wp, transform=transform, star=True, permutations=perms, seed=42)


def _gi_rows(label: str, y, w, repeat: int) -> list[dict]:
    from geodata.analysis.gistar import gi_star

    ours_ms = timed(lambda: gi_star(y, w, "R", 999, 42), repeat=repeat, warmup=2)
    same_draws_ms = timed(lambda: gi_star(y, w, "R", 999, 42, draws="esda"), repeat=repeat, warmup=1)
    # esda is warmed up too: its first calls in a process are several times slower.
    theirs_ms = timed(lambda: _esda(y, w), repeat=repeat, warmup=2)
    ours, theirs = gi_star(y, w, "R", 999, 42), _esda(y, w)
    dz = float(np.abs(ours.z - theirs.Zs).max())
    dp = float(np.median(np.abs(ours.p_sim - theirs.p_sim)))
    # With esda's draws the p-values are esda's one to one, where no permuted sum ties the
    # observed one (with counts most do, and ties count in both tails here, see gistar.py):
    # shown on the same counts plus a jitter below 0.001, which leaves no ties.
    yj = y + np.random.default_rng(1).uniform(0, 1e-3, len(y))
    same, theirs_j = gi_star(yj, w, "R", 999, 42, draws="esda"), _esda(yj, w)
    # (esda keeps p_sim as float32, hence 1e-6)
    same_share = float((np.abs(same.p_sim - theirs_j.p_sim) <= 1e-6).mean())
    return [dict(name=f"3 Gi* {label} (p50)", value=median(ours_ms), baseline=median(theirs_ms), unit="ms",
                 note=f"baseline esda.G_Local(star=True); {len(y)} cells, 999 permutations; max |Δz| = {dz:.1e}; "
                      f"median |Δp| {dp:.3f} (other draws); with esda's own draws {median(same_draws_ms):.0f} ms, "
                      f"and on jittered counts (no ties) p identical in {same_share:.1%} of cells; "
                      "target ≥ 10× faster")]


def run() -> list[dict]:
    import shapely

    from geodata.analysis.gistar import queen_weights

    rows = []
    # -- 1,500 lattice cells (30 × 50), counts with a planted hot spot ---------------------------
    rng = np.random.default_rng(3)
    xx, yy = np.meshgrid(np.arange(50) * 500.0, np.arange(30) * 500.0)
    lam = 1 + 6 * np.exp(-((xx - 8000) ** 2 + (yy - 6000) ** 2).ravel() / (2 * 1500.0 ** 2))
    y = rng.poisson(lam).astype(float)
    w = queen_weights(shapely.box(xx.ravel(), yy.ravel(), xx.ravel() + 500, yy.ravel() + 500))
    rows += _gi_rows("1,500 lattice cells", y, w, repeat=7)

    # -- the demo county's H3 cells ------------------------------------------------------------
    from geodata.analysis.cells import area_of, h3_cells
    from geodata.analysis.selection import EventFilter, event_points
    from geodata.db import SYSTEM, Database, app_url

    db = Database(app_url())
    with db.session(SYSTEM) as s:
        pts = event_points(s, EventFilter.last_days(180))
        cells = h3_cells(area_of(s), 8, (pts.lon, pts.lat))
        yh = cells.counts(cells.assign(pts.lon, pts.lat, pts.x, pts.y))
        wh = cells.weights("queen")
        rows += _gi_rows(f"demo H3 r8 ({len(pts):,} events)", yh, wh, repeat=5)

        # -- DBSCAN on 100k points -------------------------------------------------------------
        from sklearn.cluster import DBSCAN

        from geodata.analysis.clusters import compare_labels, dbscan_xy

        centres = rng.uniform(0, 40_000, (60, 2))
        xy = np.concatenate([rng.normal(c, 250, (1_000, 2)) for c in centres]
                            + [rng.uniform(0, 40_000, (40_000, 2))]) + [400_000, 3_350_000]
        pg_ms = timed(lambda: dbscan_xy(s, xy, 100, 8), repeat=3, warmup=1)
        sk_ms = timed(lambda: DBSCAN(eps=100, min_samples=8).fit(xy), repeat=3, warmup=0)
        cmp = compare_labels(dbscan_xy(s, xy, 100, 8), DBSCAN(eps=100, min_samples=8).fit(xy).labels_, xy, 100, 8)
        same = cmp["core_same"] and cmp["noise_same"] and cmp["border_valid"]
        rows.append(dict(name="4 DBSCAN 100k points PostGIS (p50)", value=median(pg_ms), baseline=median(sk_ms),
                         unit="ms", note=f"baseline sklearn DBSCAN; labels agree up to numbering: {same} "
                                         f"(identical={cmp['identical']}, ambiguous border points "
                                         f"{cmp['ambiguous_border']})"))
    db.engine.dispose()
    return rows
