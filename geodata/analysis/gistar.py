"""Getis-Ord Gi* with conditional-permutation pseudo p-values, in vectorised numpy/scipy.sparse.

The statistic (Getis & Ord 1992, Ord & Getis 1995), for cell *i* with weights ``w_ij``
that include the cell itself (``w_ii > 0``)::

    G*_i = Σ_j w_ij y_j / Σ_j y_j
    E[G*_i] = W_i / n,                 W_i = Σ_j w_ij
    V[G*_i] = W_i (n - W_i) / (n - 1) / n² · s² / ȳ²
    z_i = (G*_i - E[G*_i]) / sqrt(V[G*_i])

with ȳ and s² the mean and (population) variance of ``y``. These are the formulas of
PySAL's ``esda.G_Local(star=True)``; for the same weights the z-scores agree to
floating-point precision (tests compare them).

Weights are binary (``w_ij = 1`` for neighbours and for the cell itself) or
row-standardised (each row of the binary matrix divided by its sum, so
``w_ij = 1 / (k_i + 1)``).

Pseudo p-values come from conditional randomisation: for each cell, ``y_i`` stays and
its ``k_i`` neighbours' values are replaced by ``k_i`` values drawn without
replacement from the other ``n - 1`` cells. As in esda, one table of draws (seeded)
is shared by all cells, so a run is reproducible (``draws="esda"`` makes that table
from esda's own random stream, and the p-values then match esda's one to one); the p-value is "directed"
(the smaller tail): ``(min(#≥, #≤) + 1) / (P + 1)``. Without ties this is exactly
esda's value; with ties (counts!) esda's ``P − #≥`` makes an empty cell among empty
neighbours look "extreme", so here ties count in both tails.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.stats import norm

from geodata.analysis.errors import AnalysisError

#: Confidence levels → two-sided-style alpha on the directed pseudo p-value.
LEVELS = ((99, 0.01), (95, 0.05), (90, 0.10))
#: At least this many cells with a non-zero value for the statistic to mean anything.
MIN_NONZERO_CELLS = 3
#: At least this many cells overall.
MIN_CELLS = 10
TRANSFORMS = ("B", "R")


@dataclass(frozen=True)
class Weights:
    """A spatial weights structure: binary neighbour matrix (no diagonal) plus its description.

    Parameters
    ----------
    adjacency : scipy.sparse.csr_matrix
        n × n, symmetric, 1 where two cells are neighbours, 0 on the diagonal.
    kind : str
        ``queen`` (contiguity) or ``distance`` (distance band).
    threshold_m : float or None
        The band for ``distance`` weights, in metres.
    """

    adjacency: sparse.csr_matrix
    kind: str = "queen"
    threshold_m: float | None = None

    @property
    def n(self) -> int:
        return self.adjacency.shape[0]

    @property
    def cardinalities(self) -> np.ndarray:
        return np.diff(self.adjacency.indptr)

    @property
    def islands(self) -> np.ndarray:
        """Indices of cells without any neighbour."""
        return np.flatnonzero(self.cardinalities == 0)

    def star_matrix(self, transform: str) -> sparse.csr_matrix:
        """The Gi* weights: neighbours plus the cell itself, binary or row-standardised."""
        w = (self.adjacency + sparse.identity(self.n, format="csr")).tocsr()
        w.sort_indices()
        w.data = np.ones_like(w.data, dtype=float)
        if transform.upper() == "R":
            rows = np.asarray(w.sum(axis=1)).ravel()
            w = sparse.diags(1.0 / rows) @ w
            w = w.tocsr()
            w.sort_indices()
        return w


def weights_from_pairs(n: int, i: np.ndarray, j: np.ndarray, kind: str = "queen",
                       threshold_m: float | None = None) -> Weights:
    """Build :class:`Weights` from neighbour pairs (either direction; duplicates and self-pairs dropped).

    Parameters
    ----------
    n : int
        Number of cells.
    i, j : array of int
        Pairs of neighbouring cell indices.
    kind : str
        ``queen`` or ``distance``.
    threshold_m : float, optional
        Distance band in metres (distance weights).

    Returns
    -------
    Weights
    """
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    keep = i != j
    i, j = i[keep], j[keep]
    rows = np.concatenate([i, j])
    cols = np.concatenate([j, i])
    a = sparse.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n, n))
    a.sum_duplicates()
    a.data[:] = 1.0
    a.sort_indices()
    return Weights(a, kind, threshold_m)


def queen_weights(geoms, tolerance: float = 0.0) -> Weights:
    """Queen contiguity: polygons that share at least one point (within ``tolerance``).

    Parameters
    ----------
    geoms : array-like of shapely geometries
        Polygons, in a metric CRS when ``tolerance`` > 0.
    tolerance : float
        Gap still counted as touching (generated or digitised boundaries rarely meet
        exactly); 0 means shared points only.

    Returns
    -------
    Weights
    """
    import shapely

    geoms = np.asarray(geoms, dtype=object)
    tree = shapely.STRtree(geoms)
    if tolerance > 0:
        i, j = tree.query(geoms, predicate="dwithin", distance=tolerance)
    else:
        i, j = tree.query(geoms, predicate="intersects")
    return weights_from_pairs(len(geoms), i, j, "queen")


def distance_band_weights(xy: np.ndarray, threshold_m: float) -> Weights:
    """Binary distance band: cells whose centroids lie at most ``threshold_m`` apart.

    Parameters
    ----------
    xy : (n, 2) array
        Centroids in metres (EPSG:4549).
    threshold_m : float
        The band, > 0.

    Returns
    -------
    Weights
    """
    from scipy.spatial import cKDTree

    if not np.isfinite(threshold_m) or threshold_m <= 0:
        raise AnalysisError("bad_distance", "距离带必须大于 0 米。", "The distance band must be greater than 0 m.")
    pairs = cKDTree(np.asarray(xy, dtype=float)).query_pairs(float(threshold_m), output_type="ndarray")
    return weights_from_pairs(len(xy), pairs[:, 0], pairs[:, 1], "distance", float(threshold_m))


def min_band_for_neighbours(xy: np.ndarray) -> float:
    """The smallest distance band that gives every cell at least one neighbour (metres)."""
    from scipy.spatial import cKDTree

    if len(xy) < 2:
        return 0.0
    d, _ = cKDTree(np.asarray(xy, dtype=float)).query(xy, k=2)
    return float(d[:, 1].max())


@dataclass
class GiStarResult:
    """Gi* per cell, with pseudo p-values and hot/cold classes.

    ``classes`` hold +3/+2/+1 for hot spots at 99/95/90 % confidence, the negatives for
    cold spots, 0 for not significant.
    """

    gs: np.ndarray
    expected: np.ndarray
    variance: np.ndarray
    z: np.ndarray
    p_norm: np.ndarray
    p_sim: np.ndarray | None
    classes: np.ndarray
    transform: str
    permutations: int
    seed: int | None
    fdr: bool
    thresholds: dict = field(default_factory=dict)
    islands: int = 0
    draws: str = "fast"


def _observed(y: np.ndarray, w: sparse.csr_matrix):
    n = y.size
    total = y.sum()
    gs = (w @ y) / total
    mean = total / n
    variance = (y ** 2).sum() / n - mean ** 2
    card = np.asarray(w.sum(axis=1)).ravel()
    expected = card / n
    var_g = card * (n - card) / (n - 1) / n ** 2 * variance / mean ** 2
    z = (gs - expected) / np.sqrt(var_g)
    return gs, expected, var_g, z


#: How the table of draws is made: ``fast`` (NumPy's PCG64, default) or ``esda``
#: (the legacy Mersenne-Twister stream esda uses, to reproduce its pseudo p-values).
DRAWS = ("fast", "esda")


def permutation_ids(n: int, k: int, permutations: int, seed: int, draws: str = "fast") -> np.ndarray:
    """``permutations`` rows of ``k`` distinct indices drawn uniformly from ``range(n - 1)``.

    Parameters
    ----------
    n, k, permutations : int
        Cells, draws per row (the largest neighbour count) and rows.
    seed : int
        Same seed, same table.
    draws : {'fast', 'esda'}
        ``esda``: the legacy Mersenne-Twister stream (``RandomState(seed)``, one
        ``choice(n - 1, k, replace=False)`` per row, which is ``permutation(n - 1)[:k]``),
        the draws of esda's conditional randomisation without numba, so the pseudo
        p-values of both agree one to one. It shuffles all ``n - 1`` indices per row.
        ``fast``: the same distribution (every ordered k-tuple of distinct indices equally
        likely) from PCG64 in O(k) per row — i.i.d. draws, rows with a repeat drawn again.

    Returns
    -------
    numpy.ndarray
        ``(permutations, k)`` int64.
    """
    if draws == "esda":
        rs = np.random.RandomState(seed)
        out = np.empty((permutations, k), dtype=np.int64)
        base = np.arange(n - 1)
        for r in range(permutations):
            a = base.copy()
            rs.shuffle(a)  # what choice(n - 1, k, replace=False) does, without its checks
            out[r] = a[:k]
        return out
    if draws != "fast":
        raise ValueError(f"draws must be one of {DRAWS}")
    rng = np.random.default_rng(seed)
    m = n - 1
    if k * k > m:
        # Repeats would be common (birthday bound): rank random keys instead, O(m) per row.
        return np.argsort(rng.random((permutations, m)), axis=1)[:, :k].astype(np.int64)
    out = rng.integers(0, m, size=(permutations, k), dtype=np.int64)
    while True:
        srt = np.sort(out, axis=1)
        bad = np.flatnonzero((srt[:, 1:] == srt[:, :-1]).any(axis=1))
        if not bad.size:
            return out
        # Redrawing a whole row keeps each row uniform over tuples of distinct indices.
        out[bad] = rng.integers(0, m, size=(bad.size, k), dtype=np.int64)


def _pseudo_p(y: np.ndarray, w: sparse.csr_matrix, gs: np.ndarray, permutations: int, seed: int,
              progress=None, chunk_elems: int = 4_000_000, draws: str = "fast") -> np.ndarray:
    n = y.size
    total = y.sum()
    self_w = w.diagonal()
    off = (w - sparse.diags(self_w)).tocsr()
    off.eliminate_zeros()
    off.sort_indices()
    card = np.diff(off.indptr)
    kmax = int(card.max()) if n else 0
    if kmax == 0:
        return np.ones(n)
    ids = permutation_ids(n, kmax, permutations, seed, draws)      # (P, kmax)
    # Compare numerators, not ratios, with a tiny tolerance: equal sums of counts are
    # exact ties and must count as "at least as large" whatever the rounding.
    observed_num = gs * total
    eps = 1e-9 * np.maximum(np.abs(observed_num), 1e-300)
    # Binary and row-standardised weights are uniform within a row (w_ij = w_i): then
    # a permuted numerator is w_i · (sum of the first k_i drawn values) + w_ii y_i.
    wrow = np.zeros(n)
    has = card > 0
    wrow[has] = off.data[off.indptr[:-1][has]]
    if draws == "fast" and np.array_equal(off.data, np.repeat(wrow, card)):
        at_least, at_most = _tails_sorted(y, ids, card, wrow, self_w * y, observed_num, eps, progress)
    else:
        at_least, at_most = _tails_general(y, ids, off, card, kmax, self_w, observed_num, eps,
                                           chunk_elems, progress)
    # The smaller tail. Without ties (continuous data) at_most = P - at_least, which is
    # esda's "directed" value; with ties (counts: an empty cell among empty neighbours
    # equals most of its permutations) esda's P - at_least would call the cell extreme,
    # so ties count in both tails here.
    p = (np.minimum(at_least, at_most) + 1.0) / (permutations + 1.0)
    p[card == 0] = 1.0  # an island has no neighbours to permute: never significant
    return p


def _tails_sorted(y, ids, card, wrow, base, observed_num, eps, progress):
    """Tail counts for equal weights within each row, by sorting instead of gathering.

    Row i must draw from the other n − 1 cells. Here draw j stands for cell j, except
    that j = i stands for cell n − 1 (a fixed bijection per row, so the draws stay
    uniform). Then row i's sum of its first c draws is the row-independent
    ``S_c[p] = Σ_{k<c} y[ids[p, k]]``, corrected by ``y[n−1] − y[i]`` in the few
    permutations that drew i itself. Counting ``w_i S + b_i ≥ t_i`` over p is a binary
    search in the sorted ``S_c``; the corrections (at most P·k of them) are added after.
    O(P·k + P log P) instead of a (cells × P × k) gather.
    """
    n = y.size
    permutations, kmax = ids.shape
    at_least = np.zeros(n, dtype=np.int64)
    at_most = np.zeros(n, dtype=np.int64)
    csum = np.cumsum(y[ids], axis=1)                    # csum[p, c-1] = S_c[p]
    has = card > 0
    w = np.where(has, wrow, 1.0)
    # thresholds on S: w_i S + b_i ≥ obs_i − eps_i  ⇔  S ≥ lo_i  (w_i > 0)
    lo = (observed_num - eps - base) / w
    hi = (observed_num + eps - base) / w
    done = 0
    for c in np.unique(card[has]):
        rows = np.flatnonzero(card == c)
        s_c = np.sort(csum[:, c - 1])
        at_least[rows] = permutations - np.searchsorted(s_c, lo[rows], side="left")
        at_most[rows] = np.searchsorted(s_c, hi[rows], side="right")
        done += rows.size
        if progress is not None:
            progress(done, n)
    # Permutations whose first card_i draws include i itself: swap y[i] for y[n−1].
    p_idx, k_idx = np.nonzero(np.arange(kmax)[None, :] < card[ids])
    i_idx = ids[p_idx, k_idx]
    s_old = csum[p_idx, card[i_idx] - 1]
    s_new = s_old + (y[-1] - y[i_idx])
    at_least += np.bincount(i_idx, weights=(s_new >= lo[i_idx]).astype(float) - (s_old >= lo[i_idx]),
                            minlength=n).astype(np.int64)
    at_most += np.bincount(i_idx, weights=(s_new <= hi[i_idx]).astype(float) - (s_old <= hi[i_idx]),
                           minlength=n).astype(np.int64)
    return at_least, at_most


def _tails_general(y, ids, off, card, kmax, self_w, observed_num, eps, chunk_elems, progress):
    """Tail counts for any weights: gather every cell's permuted neighbours (cells × P × k).

    Draw j stands for cell j below i and for cell j + 1 from i on, as in esda, so with
    esda's draws the counts are esda's.
    """
    n = y.size
    permutations = ids.shape[0]
    # Each row's neighbour weights, left-aligned and zero-padded to kmax.
    wpad = np.zeros((n, kmax))
    pos = np.arange(off.nnz) - np.repeat(off.indptr[:-1], card)
    wpad[np.repeat(np.arange(n), card), pos] = off.data
    at_least = np.empty(n, dtype=np.int64)
    at_most = np.empty(n, dtype=np.int64)
    step = max(1, chunk_elems // max(1, permutations * kmax))
    for start in range(0, n, step):
        rows = np.arange(start, min(n, start + step))
        # index into "y without row i": j >= i shifts by one
        mapped = ids[None, :, :] + (ids[None, :, :] >= rows[:, None, None])  # (c, P, kmax)
        rnum = np.einsum("cpk,ck->cp", y[mapped], wpad[rows]) + (self_w[rows] * y[rows])[:, None]
        at_least[rows] = (rnum >= (observed_num[rows] - eps[rows])[:, None]).sum(axis=1)
        at_most[rows] = (rnum <= (observed_num[rows] + eps[rows])[:, None]).sum(axis=1)
        if progress is not None:
            progress(min(n, start + step), n)
    return at_least, at_most


def bh_threshold(p: np.ndarray, alpha: float) -> float:
    """Benjamini-Hochberg: the largest p-value still significant at false discovery rate ``alpha``.

    Returns 0 when nothing is significant.
    """
    p = np.sort(np.asarray(p, dtype=float))
    m = p.size
    if m == 0:
        return 0.0
    ok = p <= alpha * np.arange(1, m + 1) / m
    return float(p[np.flatnonzero(ok).max()]) if ok.any() else 0.0


def classify(z: np.ndarray, p: np.ndarray, fdr: bool = False) -> tuple[np.ndarray, dict]:
    """Hot (+) / cold (−) classes at 99/95/90 % confidence: 3/2/1, 0 = not significant.

    Parameters
    ----------
    z : array
        z-scores (their sign says hot or cold).
    p : array
        p-values.
    fdr : bool
        Use Benjamini-Hochberg thresholds per level instead of the plain alphas.

    Returns
    -------
    (classes, thresholds)
        ``thresholds`` maps the confidence level (99/95/90) to the p-value bound used.
    """
    classes = np.zeros(z.size, dtype=np.int8)
    thresholds = {}
    for level, alpha in reversed(LEVELS):  # 90, 95, 99: stronger levels overwrite
        bound = bh_threshold(p, alpha) if fdr else alpha
        thresholds[level] = bound
        sig = (p <= bound) & (bound > 0)
        strength = {90: 1, 95: 2, 99: 3}[level]
        classes[sig] = (np.sign(z[sig]) * strength).astype(np.int8)
    return classes, thresholds


def gi_star(y, weights: Weights, transform: str = "R", permutations: int = 999, seed: int | None = 42,
            fdr: bool = False, progress=None, draws: str = "fast") -> GiStarResult:
    """Getis-Ord Gi* of ``y`` on ``weights``: z-scores, pseudo p-values and hot/cold classes.

    Parameters
    ----------
    y : array-like of float
        The value per cell (e.g. number of events), aligned with ``weights``.
    weights : Weights
        Neighbours without the diagonal; the cell itself is added here (Gi*).
    transform : {'R', 'B'}
        Row-standardised or binary weights.
    permutations : int
        Conditional permutations for pseudo p-values (0 = use the normal approximation).
    seed : int, optional
        Seed of the permutations (same seed, same p-values).
    fdr : bool
        Benjamini-Hochberg false-discovery-rate correction of the class thresholds.
    progress : callable, optional
        ``progress(done, total)`` while permuting.
    draws : {'fast', 'esda'}
        How the table of permutation draws is made (see :func:`permutation_ids`):
        ``esda`` reproduces esda's pseudo p-values one to one, ``fast`` draws the same
        distribution far faster.

    Returns
    -------
    GiStarResult

    Raises
    ------
    AnalysisError
        Fewer than :data:`MIN_CELLS` cells, fewer than :data:`MIN_NONZERO_CELLS` with a
        value, no variation, or a bad transform/permutation count.
    """
    y = np.asarray(y, dtype=float).ravel()
    transform = str(transform).upper()
    if transform not in TRANSFORMS:
        raise AnalysisError("bad_transform", "权重标准化方式只能是 B(二值)或 R(行标准化)。",
                            "The weights transform must be B (binary) or R (row-standardised).")
    if y.size != weights.n:
        raise ValueError(f"{y.size} values for {weights.n} cells")
    if not np.all(np.isfinite(y)) or (y < 0).any():
        raise AnalysisError("bad_values", "数值必须为非负有限数。", "Values must be finite and non-negative.")
    if y.size < MIN_CELLS:
        raise AnalysisError("too_few_cells", f"单元太少:{y.size} 个,至少需要 {MIN_CELLS} 个。",
                            f"Too few cells: {y.size}; at least {MIN_CELLS} are needed.", cells=int(y.size))
    nonzero = int((y > 0).sum())
    if nonzero < MIN_NONZERO_CELLS or np.ptp(y) == 0:
        raise AnalysisError(
            "too_few_events",
            f"只有 {nonzero} 个单元有事件,热点分析至少需要 {MIN_NONZERO_CELLS} 个有事件的单元且数值有差异。",
            f"Only {nonzero} cells have events; hot-spot analysis needs at least {MIN_NONZERO_CELLS} cells "
            "with events and some variation.", nonzero=nonzero)
    if draws not in DRAWS:
        raise ValueError(f"draws must be one of {DRAWS}")
    permutations = int(permutations)
    if permutations < 0 or permutations > 99_999:
        raise AnalysisError("bad_permutations", "置换次数须在 0–99999 之间。", "Permutations must be 0–99,999.")
    w = weights.star_matrix(transform)
    gs, expected, var_g, z = _observed(y, w)
    p_norm = norm.sf(np.abs(z))
    p_sim = None
    if permutations:
        p_sim = _pseudo_p(y, w, gs, permutations, 0 if seed is None else int(seed), progress, draws=draws)
    classes, thresholds = classify(z, p_sim if p_sim is not None else p_norm, fdr)
    return GiStarResult(gs, expected, var_g, z, p_norm, p_sim, classes, transform, permutations, seed, fdr,
                        thresholds, int(weights.islands.size), draws)


CLASS_LABELS = {
    3: ("热点(99% 置信)", "Hot spot, 99 % confidence"),
    2: ("热点(95% 置信)", "Hot spot, 95 % confidence"),
    1: ("热点(90% 置信)", "Hot spot, 90 % confidence"),
    0: ("不显著", "Not significant"),
    -1: ("冷点(90% 置信)", "Cold spot, 90 % confidence"),
    -2: ("冷点(95% 置信)", "Cold spot, 95 % confidence"),
    -3: ("冷点(99% 置信)", "Cold spot, 99 % confidence"),
}
#: Diverging reds/blues in the ArcGIS/PySAL convention.
CLASS_COLORS = {3: "#b2182b", 2: "#ef8a62", 1: "#fddbc7", 0: "#f7f7f7",
                -1: "#d1e5f0", -2: "#67a9cf", -3: "#2166ac"}


def describe_weights(weights: Weights, transform: str, unit: str = "cells") -> tuple[str, str]:
    """How the weights were built, in Chinese and English, for the UI and exports."""
    if weights.kind == "distance":
        kind_zh = f"距离带 {weights.threshold_m:,.0f} 米(单元中心距离)"
        kind_en = f"distance band {weights.threshold_m:,.0f} m (between cell centroids)"
    else:
        kind_zh = "Queen 邻接(共点即相邻)"
        kind_en = "queen contiguity (sharing a point)"
    tr_zh = "行标准化" if transform.upper() == "R" else "二值"
    tr_en = "row-standardised" if transform.upper() == "R" else "binary"
    card = weights.cardinalities
    mean_k = float(card.mean()) if card.size else 0.0
    zh = f"空间权重:{kind_zh},{tr_zh};Gi* 含单元自身;平均邻居数 {mean_k:.1f}"
    en = f"Spatial weights: {kind_en}, {tr_en}; Gi* includes the cell itself; mean neighbours {mean_k:.1f}"
    if weights.islands.size:
        zh += f";{weights.islands.size} 个单元无邻居(不判定显著)"
        en += f"; {weights.islands.size} cells without neighbours (never significant)"
    return zh, en
