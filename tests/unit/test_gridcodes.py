"""geodata.gridcodes: reading-order grid codes."""
import numpy as np
import pytest

from geodata.gridcodes import MAX_GRIDS, grid_codes, reading_order

VILLAGE = "330521100200"


def _lattice(rows=3, cols=3, spacing=0.01, jitter=0.15, seed=0, origin=(119.95, 30.55)):
    """Points of a rows×cols lattice (row 0 = north), jittered by ±jitter×spacing."""
    rng = np.random.default_rng(seed)
    pts, expected = [], []
    for r in range(rows):
        for c in range(cols):
            dx, dy = rng.uniform(-jitter, jitter, 2) * spacing
            pts.append((origin[0] + c * spacing + dx, origin[1] - r * spacing + dy))
            expected.append(r * cols + c + 1)
    return pts, expected


@pytest.mark.parametrize("seed", range(20))
def test_jittered_3x3_lattice_in_reading_order(seed):
    pts, expected = _lattice(seed=seed)
    order = np.random.default_rng(100 + seed).permutation(len(pts))
    shuffled = [pts[i] for i in order]
    codes = grid_codes(VILLAGE, shuffled)
    assert [int(codes[k][-3:]) for k in range(len(order))] == [expected[i] for i in order]


def test_row_tolerates_offsets_bigger_than_the_west_east_step():
    # A row whose east point sits lower than the next row's west point would be
    # misnumbered by a plain sort on latitude; the band keeps rows together.
    pts = [(120.000, 30.5000), (120.010, 30.4975), (120.020, 30.4970),
           (120.000, 30.4895), (120.010, 30.4900), (120.020, 30.4890)]
    assert [c[-3:] for c in grid_codes(VILLAGE, pts)] == ["001", "002", "003", "004", "005", "006"]


def test_codes_are_15_digits_with_village_prefix_and_unique():
    pts, _ = _lattice(rows=5, cols=7, seed=3)
    codes = grid_codes(VILLAGE, pts)
    assert all(len(c) == 15 and c.isdigit() and c.startswith(VILLAGE) for c in codes)
    assert sorted(codes) == [f"{VILLAGE}{i:03d}" for i in range(1, 36)]


def test_projected_metres_give_the_same_order():
    pts, expected = _lattice(rows=4, cols=4, spacing=800.0, seed=5, origin=(500_000.0, 3_380_000.0))
    assert [int(c[-3:]) for c in grid_codes(VILLAGE, pts)] == expected


def test_single_and_empty():
    assert grid_codes(VILLAGE, [(120.0, 30.5)]) == [VILLAGE + "001"]
    assert grid_codes(VILLAGE, []) == []
    assert reading_order([]) == []


def test_deterministic_with_ties():
    pts = [(120.0, 30.5), (120.0, 30.5), (119.99, 30.5)]
    assert grid_codes(VILLAGE, pts) == grid_codes(VILLAGE, pts)
    assert grid_codes(VILLAGE, pts)[2].endswith("001")


@pytest.mark.parametrize("code", ["33052110020", "3305211002000", "33052110020x", 330521100200, None, ""])
def test_bad_village_code(code):
    with pytest.raises(ValueError, match="12"):
        grid_codes(code, [(120.0, 30.5)])


def test_too_many_grids():
    pts = [(120.0 + i * 1e-4, 30.5) for i in range(MAX_GRIDS + 1)]
    with pytest.raises(ValueError, match="999"):
        grid_codes(VILLAGE, pts)
    assert len(grid_codes(VILLAGE, pts[:MAX_GRIDS])) == MAX_GRIDS


@pytest.mark.parametrize("bad", [[(120.0,)], [(120.0, float("nan"))], [("a", "b")], [(1, 2, 3)]])
def test_bad_centroids(bad):
    with pytest.raises(ValueError):
        grid_codes(VILLAGE, bad)
