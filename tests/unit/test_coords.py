"""etl.coords: GCJ-02 / BD-09 conversions."""
import math

import numpy as np
import pytest
import shapely
from shapely.geometry import MultiPolygon, Point, Polygon

from etl.coords import (
    bd09_to_gcj02,
    bd09_to_wgs84,
    convert_geometry,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    out_of_china,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

DEQING = (119.97, 30.55)


def _metres(dlon, dlat, lat):
    return math.hypot(dlon * 111_320 * math.cos(math.radians(lat)), dlat * 110_574)


def test_round_trip_at_deqing_is_below_1e7_degrees():
    glon, glat = wgs84_to_gcj02(*DEQING)
    lon, lat = gcj02_to_wgs84(glon, glat)
    assert abs(lon - DEQING[0]) < 1e-7
    assert abs(lat - DEQING[1]) < 1e-7


def test_round_trip_over_the_county_box_vectorised():
    rng = np.random.default_rng(0)
    lon = rng.uniform(119.7, 120.4, 5000)
    lat = rng.uniform(30.4, 30.75, 5000)
    back_lon, back_lat = gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat))
    assert np.abs(back_lon - lon).max() < 1e-7
    assert np.abs(back_lat - lat).max() < 1e-7


def test_inverse_beats_the_one_step_approximation():
    # The common shortcut subtracts the offset taken at the GCJ-02 point: ~1.5 m off here.
    glon, glat = wgs84_to_gcj02(*DEQING)
    flon, flat = wgs84_to_gcj02(glon, glat)
    one_step = (2 * glon - flon, 2 * glat - flat)
    assert _metres(one_step[0] - DEQING[0], one_step[1] - DEQING[1], DEQING[1]) > 0.5
    lon, lat = gcj02_to_wgs84(glon, glat)
    assert _metres(lon - DEQING[0], lat - DEQING[1], DEQING[1]) < 0.001


def test_known_offset_magnitude_at_deqing():
    glon, glat = wgs84_to_gcj02(*DEQING)
    shift = _metres(glon - DEQING[0], glat - DEQING[1], DEQING[1])
    assert 300 < shift < 700, shift
    # GCJ-02 moves points east and south around here.
    assert glon > DEQING[0] and glat < DEQING[1]


def test_published_reference_values():
    # Values printed by the widely used coordtransform libraries for (116.404, 39.915).
    assert wgs84_to_gcj02(116.404, 39.915) == pytest.approx((116.41024449916938, 39.91640428150164), abs=1e-9)
    assert gcj02_to_bd09(116.404, 39.915) == pytest.approx((116.41036949371029, 39.92133699351021), abs=1e-9)
    assert bd09_to_gcj02(116.404, 39.915) == pytest.approx((116.39762729119315, 39.90865673957631), abs=1e-9)
    # The libraries' one-step inverse is ~3e-7 degrees off; ours is exact.
    lon, lat = gcj02_to_wgs84(116.404, 39.915)
    assert wgs84_to_gcj02(lon, lat) == pytest.approx((116.404, 39.915), abs=1e-10)


@pytest.mark.parametrize("func", [wgs84_to_gcj02, gcj02_to_wgs84])
@pytest.mark.parametrize("point", [(2.35, 48.86), (-74.0, 40.7), (140.0, 35.0), (100.0, 60.0)])
def test_outside_china_unchanged(func, point):
    assert out_of_china(*point)
    assert func(*point) == point


def test_scalars_give_floats_and_arrays_give_arrays():
    lon, lat = wgs84_to_gcj02(120, 30)
    assert type(lon) is float and type(lat) is float
    alon, alat = wgs84_to_gcj02(np.array([[120.0, 121.0]]), np.array([[30.0, 31.0]]))
    assert isinstance(alon, np.ndarray) and alon.shape == (1, 2)
    assert alon[0, 0] == pytest.approx(lon)
    # Mixed inside/outside points in one array.
    mlon, mlat = wgs84_to_gcj02(np.array([120.0, 10.0]), np.array([30.0, 50.0]))
    assert mlon[0] != 120.0 and mlon[1] == 10.0 and mlat[1] == 50.0


def test_bd09_round_trips():
    blon, blat = wgs84_to_bd09(*DEQING)
    assert _metres(blon - DEQING[0], blat - DEQING[1], DEQING[1]) > 500  # BD-09 shifts further
    lon, lat = bd09_to_wgs84(blon, blat)
    assert abs(lon - DEQING[0]) < 2e-6 and abs(lat - DEQING[1]) < 2e-6
    glon, glat = gcj02_to_bd09(*bd09_to_gcj02(blon, blat))
    assert abs(glon - blon) < 2e-6 and abs(glat - blat) < 2e-6


def test_convert_geometry_moves_every_vertex_and_keeps_structure():
    poly = Polygon([(119.9, 30.5), (120.0, 30.5), (120.0, 30.6), (119.9, 30.6)],
                   holes=[[(119.94, 30.54), (119.96, 30.54), (119.96, 30.56)]])
    geom = MultiPolygon([poly, Polygon([(120.1, 30.5), (120.2, 30.5), (120.2, 30.6)])])
    out = convert_geometry(geom, wgs84_to_gcj02)
    assert out.geom_type == "MultiPolygon" and len(out.geoms) == 2
    assert len(out.geoms[0].interiors) == 1
    src = shapely.get_coordinates(geom)
    dst = shapely.get_coordinates(out)
    exp_lon, exp_lat = wgs84_to_gcj02(src[:, 0], src[:, 1])
    np.testing.assert_allclose(dst, np.column_stack([exp_lon, exp_lat]), atol=1e-12)
    back = convert_geometry(out, gcj02_to_wgs84)
    np.testing.assert_allclose(shapely.get_coordinates(back), src, atol=1e-7)


def test_convert_geometry_on_arrays_and_points():
    pts = np.array([Point(119.97, 30.55), Point(2.35, 48.86)], dtype=object)
    out = convert_geometry(pts, wgs84_to_gcj02)
    assert out[1].equals(pts[1])
    assert not out[0].equals(pts[0])
