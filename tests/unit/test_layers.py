import math

import pytest

from geodata.queries.layers import pixel_tolerance
from layers.base import as_int, padded_bbox
from layers.population import class_breaks


def test_padded_bbox_contains_view_and_is_stable_under_small_pans():
    view = [[30.50, 119.90], [30.60, 120.10]]
    (w, s, e, n), key = padded_bbox(view, 12)
    assert w <= 119.90 and s <= 30.50 and e >= 120.10 and n >= 30.60
    nudged = [[30.505, 119.905], [30.605, 120.105]]
    assert padded_bbox(nudged, 12)[1] == key          # a small pan reuses the data
    assert padded_bbox(view, 14)[1] != key            # zooming reloads


def test_pixel_tolerance_halves_per_zoom_level():
    assert math.isclose(pixel_tolerance(10) / pixel_tolerance(11), 2.0)


def test_class_breaks_are_fisher_jenks_upper_bounds():
    values = [1, 2, 3, 10, 11, 12, 50, 51, 52, 100, 101, 300]
    breaks = class_breaks(values, k=5)
    assert len(breaks) == 5 and breaks == sorted(breaks)
    assert breaks[-1] == 300
    assert class_breaks([5, 5, 5]) == [5.0]
    assert class_breaks([]) == []


@pytest.mark.parametrize("raw,expected", [("12", 12), (7, 7), ("0", None), ("-3", None), ("abc", None),
                                          (None, None), ("1; DROP TABLE village", None)])
def test_feature_ids_are_parsed_strictly(raw, expected):
    assert as_int(raw) == expected
