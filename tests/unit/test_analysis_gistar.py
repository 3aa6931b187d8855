"""Gi* (geodata.analysis.gistar) against PySAL esda.G_Local(star=True) with the same weights."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from geodata.analysis import gistar as gs
from geodata.analysis.errors import AnalysisError

esda = pytest.importorskip("esda")
libpysal = pytest.importorskip("libpysal")


def _esda(y, w_pysal, transform, seed, perms=999):
    from esda.getisord import G_Local

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return G_Local(y, w_pysal, transform=transform, star=True, permutations=perms, seed=seed)


def _to_pysal(weights: gs.Weights):
    from libpysal.weights import WSP

    return WSP(weights.adjacency.tocsr()).to_W(silence_warnings=True)


def _numba() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def columbus():
    import geopandas as gpd
    from libpysal import examples

    # columbus ships inside libpysal (no download): 49 neighbourhoods, CRIME per 1,000 households
    return gpd.read_file(examples.get_path("columbus.shp"))


def test_own_queen_weights_equal_libpysal_queen_on_columbus(columbus):
    from libpysal.weights import Queen

    mine = gs.queen_weights(columbus.geometry.values)
    theirs = Queen.from_dataframe(columbus, use_index=False).sparse.tocsr()
    assert (abs(mine.adjacency - theirs)).sum() == 0


@pytest.mark.parametrize("transform", ["R", "B"])
def test_z_scores_equal_esda_on_columbus(columbus, transform):
    y = columbus["CRIME"].to_numpy()
    w = gs.queen_weights(columbus.geometry.values)
    ours = gs.gi_star(y, w, transform, permutations=999, seed=7, draws="esda")
    theirs = _esda(y, _to_pysal(w), transform, seed=7)
    assert np.abs(ours.z - theirs.Zs).max() <= 1e-6
    assert np.abs(ours.gs - theirs.Gs).max() <= 1e-12
    assert np.abs(ours.expected - theirs.EGs).max() <= 1e-12
    # Same permutation draws as esda: the pseudo p-values agree, except that an exact tie
    # (a random neighbour set with the same sum) counts in both tails here, never fewer.
    diff = ours.p_sim - theirs.p_sim
    assert diff.min() >= -1e-6
    if not _numba():
        assert diff.max() <= 5 / 1000
        assert (np.abs(diff) <= 1e-6).mean() >= 0.9


@pytest.mark.parametrize("transform", ["R", "B"])
@pytest.mark.parametrize("kind", ["queen", "distance"])
def test_z_scores_equal_esda_on_generated_lattice(transform, kind):
    """1,500 cells on a 30×50 lattice, counts with a planted hot spot."""
    rng = np.random.default_rng(3)
    ny, nx = 30, 50
    xx, yy = np.meshgrid(np.arange(nx) * 500.0, np.arange(ny) * 500.0)
    xy = np.column_stack([xx.ravel(), yy.ravel()])
    lam = 1 + 6 * np.exp(-((xx - 8000) ** 2 + (yy - 6000) ** 2).ravel() / (2 * 1500.0 ** 2))
    y = rng.poisson(lam).astype(float)
    if kind == "queen":
        import shapely

        cells = shapely.box(xy[:, 0], xy[:, 1], xy[:, 0] + 500, xy[:, 1] + 500)
        w = gs.queen_weights(cells)
        assert set(np.unique(w.cardinalities)) == {3, 5, 8}
    else:
        w = gs.distance_band_weights(xy, 1200.0)
    ours = gs.gi_star(y, w, transform, permutations=199, seed=1)
    theirs = _esda(y, _to_pysal(w), transform, seed=1, perms=199)
    assert np.abs(ours.z - theirs.Zs).max() <= 1e-6
    assert ours.p_sim.min() >= 1 / 200
    hot = ours.classes > 0
    assert hot.sum() > 10 and np.all(ours.z[hot] > 0)


def test_esda_draws_are_esdas_stream():
    """draws='esda' is RandomState(seed).choice(n - 1, k, replace=False) row after row."""
    rs = np.random.RandomState(11)
    expected = np.stack([rs.choice(99, size=6, replace=False) for _ in range(50)])
    assert np.array_equal(gs.permutation_ids(100, 6, 50, 11, draws="esda"), expected)


@pytest.mark.parametrize("n, k", [(1500, 8), (12, 8)])
def test_fast_draws_are_distinct_and_uniform(n, k):
    ids = gs.permutation_ids(n, k, 4000, 3)
    assert ids.shape == (4000, k) and ids.min() >= 0 and ids.max() <= n - 2
    srt = np.sort(ids, axis=1)
    assert not (srt[:, 1:] == srt[:, :-1]).any()  # without replacement
    # every index equally likely in every position: a chi-square test on the counts
    from scipy.stats import chisquare

    for col in (0, k - 1):
        counts = np.bincount(ids[:, col], minlength=n - 1)
        assert chisquare(counts).pvalue > 1e-4
    assert np.array_equal(ids, gs.permutation_ids(n, k, 4000, 3))


@pytest.mark.parametrize("transform", ["R", "B"])
def test_sorted_tail_counts_equal_a_brute_force_gather(transform):
    """The sort-and-search shortcut counts what a direct gather of every row's draws counts."""
    rng = np.random.default_rng(8)
    n = 300
    xy = rng.uniform(0, 3000, (n, 2))
    xy[0] = (9000, 9000)  # an island
    y = rng.poisson(2, n).astype(float)  # counts: plenty of exact ties
    w = gs.distance_band_weights(xy, 400).star_matrix(transform)
    g = gs._observed(y, w)[0]
    from scipy import sparse

    self_w = w.diagonal()
    off = (w - sparse.diags(self_w)).tocsr()
    off.eliminate_zeros()
    off.sort_indices()
    card = np.diff(off.indptr)
    assert len(set(card)) > 3 and (card == 0).any()
    ids = gs.permutation_ids(n, int(card.max()), 199, 5)
    num = g * y.sum()
    eps = 1e-9 * np.maximum(np.abs(num), 1e-300)
    wrow = np.where(card > 0, off.data[np.minimum(off.indptr[:-1], off.nnz - 1)], 0.0)
    fast = gs._tails_sorted(y, ids, card, wrow, self_w * y, num, eps, None)
    # brute force: row i's draw j is cell j, except j = i, which is cell n - 1
    for i in np.flatnonzero(card > 0):
        cells = np.where(ids[:, :card[i]] == i, n - 1, ids[:, :card[i]])
        assert not (cells == i).any()
        rnum = wrow[i] * y[cells].sum(axis=1) + self_w[i] * y[i]
        assert fast[0][i] == (rnum >= num[i] - eps[i]).sum()
        assert fast[1][i] == (rnum <= num[i] + eps[i]).sum()


def test_fast_draws_give_esdas_p_values_within_monte_carlo_error(columbus):
    y = columbus["CRIME"].to_numpy()
    w = gs.queen_weights(columbus.geometry.values)
    ours = gs.gi_star(y, w, "R", permutations=9999, seed=1)
    theirs = _esda(y, _to_pysal(w), "R", seed=1, perms=9999)
    # two independent estimates of the same p: standard error sqrt(p(1-p)/P) each
    se = np.sqrt(2 * theirs.p_sim * (1 - theirs.p_sim) / 9999) + 1e-4
    assert (np.abs(ours.p_sim - theirs.p_sim) <= 5 * se + 2 / 10000).all()


def test_pseudo_p_values_are_seeded():
    rng = np.random.default_rng(0)
    y = rng.gamma(2.0, size=100)
    w = gs.distance_band_weights(rng.uniform(0, 1000, (100, 2)), 250)
    a = gs.gi_star(y, w, "R", 499, seed=5)
    b = gs.gi_star(y, w, "R", 499, seed=5)
    c = gs.gi_star(y, w, "R", 499, seed=6)
    assert np.array_equal(a.p_sim, b.p_sim)
    assert not np.array_equal(a.p_sim, c.p_sim)


def test_empty_cells_among_empty_neighbours_are_not_cold_spots():
    """With counts most cells are 0; a tie with the permutations is not significance."""
    y = np.zeros(400)
    y[[10, 11, 30, 31, 50]] = [9, 7, 8, 6, 5]
    import shapely

    xy = np.column_stack([np.tile(np.arange(20), 20), np.repeat(np.arange(20), 20)]).astype(float)
    w = gs.queen_weights(shapely.box(xy[:, 0], xy[:, 1], xy[:, 0] + 1, xy[:, 1] + 1))
    res = gs.gi_star(y, w, "R", 999, seed=2)
    assert (res.classes < 0).sum() == 0
    assert res.classes[10] > 0


def test_fdr_is_stricter_than_plain_thresholds():
    rng = np.random.default_rng(4)
    p = np.concatenate([rng.uniform(0, 0.0005, 10), rng.uniform(0, 1, 490)])
    assert 0 < gs.bh_threshold(p, 0.05) < 0.05
    z = np.ones_like(p)
    plain, _ = gs.classify(z, p, fdr=False)
    fdr, thresholds = gs.classify(z, p, fdr=True)
    assert (fdr != 0).sum() < (plain != 0).sum()
    assert thresholds[95] <= 0.05


def test_classes_at_the_three_confidence_levels():
    z = np.array([3.0, 2.0, 1.7, 0.1, -1.7, -2.0, -3.0])
    p = np.array([0.005, 0.03, 0.08, 0.5, 0.08, 0.03, 0.005])
    classes, _ = gs.classify(z, p)
    assert classes.tolist() == [3, 2, 1, 0, -1, -2, -3]


@pytest.mark.parametrize("y, code", [
    (np.zeros(50), "too_few_events"),
    (np.r_[np.zeros(48), 1, 1], "too_few_events"),
    (np.ones(5), "too_few_cells"),
    (np.r_[-1, np.ones(49)], "bad_values"),
])
def test_bad_input_says_why(y, code):
    w = gs.distance_band_weights(np.column_stack([np.arange(len(y)), np.zeros(len(y))]), 1.5)
    with pytest.raises(AnalysisError) as info:
        gs.gi_star(y, w)
    assert info.value.code == code and info.value.message_zh and info.value.message_en


def test_distance_band_must_be_positive():
    with pytest.raises(AnalysisError) as info:
        gs.distance_band_weights(np.zeros((3, 2)), 0)
    assert info.value.code == "bad_distance"


def test_weights_are_described_in_both_languages():
    w = gs.distance_band_weights(np.column_stack([np.arange(10.0) * 100, np.zeros(10)]), 150)
    zh, en = gs.describe_weights(w, "B")
    assert "距离带 150 米" in zh and "二值" in zh
    assert "distance band 150 m" in en and "binary" in en
