"""Conversions between WGS84/CGCS2000 and China's obfuscated GCJ-02 and BD-09 datums.

Data from AMap, Tencent and Google China arrives in GCJ-02 ("Mars coordinates"),
data from Baidu in BD-09. The project stores CGCS2000 (EPSG:4490), which is the
same as WGS84 to centimetres, so such data is converted on import with these
functions and marked as converted (see the design guide, "Data conventions").

The forward transform is the widely published one (Krasovsky ellipsoid constants,
polynomial + sine offsets); it is not invertible in closed form, so
:func:`gcj02_to_wgs84` inverts it by fixed-point iteration to better than 1e-7°.
Points outside China's rough bounding box are returned unchanged, as the
standard algorithm does.

Every function accepts scalars or numpy arrays (any shape, broadcast together)
and returns floats for scalar input, arrays otherwise.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import shapely

__all__ = [
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "convert_geometry",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "out_of_china",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]

_A = 6378245.0  # Krasovsky 1940 semi-major axis used by GCJ-02
_EE = 0.00669342162296594323  # its first eccentricity squared
_X_PI = np.pi * 3000.0 / 180.0  # BD-09 constant

#: Largest coordinate change between two iterations at which the inverse stops (degrees).
_INVERSE_TOLERANCE = 1e-10
_INVERSE_MAX_ITER = 30


def _as_arrays(lon, lat):
    scalar = np.ndim(lon) == 0 and np.ndim(lat) == 0
    lon_a, lat_a = np.broadcast_arrays(np.asarray(lon, dtype=float), np.asarray(lat, dtype=float))
    return lon_a, lat_a, scalar


def _result(lon, lat, scalar):
    if scalar:
        return float(lon), float(lat)
    return lon, lat


def out_of_china(lon, lat):
    """Tell whether points lie outside the box where GCJ-02 applies.

    Parameters
    ----------
    lon, lat : float or array_like
        Longitude and latitude in degrees.

    Returns
    -------
    bool or numpy.ndarray of bool
        True where the point is outside China's rough bounding box
        (72.004–137.8347 E, 0.8293–55.8271 N), where no shift is applied.
    """
    lon_a, lat_a, scalar = _as_arrays(lon, lat)
    out = (lon_a < 72.004) | (lon_a > 137.8347) | (lat_a < 0.8293) | (lat_a > 55.8271)
    return bool(out) if scalar else out


def _offset(lon, lat):
    """GCJ-02 offset (dlon, dlat) in degrees at WGS84 ``lon``, ``lat`` (arrays)."""
    x = lon - 105.0
    y = lat - 35.0
    common = (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    sqrt_abs_x = np.sqrt(np.abs(x))
    dlat = (
        -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt_abs_x
        + common
        + (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
        + (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    )
    dlon = (
        300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt_abs_x
        + common
        + (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
        + (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    )
    radlat = lat / 180.0 * np.pi
    magic = 1.0 - _EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1.0 - _EE)) / (magic * sqrtmagic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * np.cos(radlat) * np.pi)
    outside = out_of_china(lon, lat)
    return np.where(outside, 0.0, dlon), np.where(outside, 0.0, dlat)


def wgs84_to_gcj02(lon, lat):
    """Convert WGS84 (or CGCS2000) coordinates to GCJ-02.

    Parameters
    ----------
    lon, lat : float or array_like
        WGS84 longitude and latitude in degrees; arrays are broadcast together.

    Returns
    -------
    tuple of (float, float) or tuple of numpy.ndarray
        GCJ-02 longitude and latitude. Points outside China are unchanged.

    Examples
    --------
    >>> lon, lat = wgs84_to_gcj02(119.97, 30.55)
    >>> round(lon - 119.97, 4), round(lat - 30.55, 4)
    (0.0046, -0.0025)
    """
    lon_a, lat_a, scalar = _as_arrays(lon, lat)
    dlon, dlat = _offset(lon_a, lat_a)
    return _result(lon_a + dlon, lat_a + dlat, scalar)


def gcj02_to_wgs84(lon, lat):
    """Convert GCJ-02 coordinates to WGS84 by iterating the forward transform.

    Starting from the GCJ-02 point as a guess, the guess is moved by the
    residual of its forward transform until it changes by less than 1e-10°
    (usually 3–5 iterations). The result is accurate to better than 1e-7°
    (about 1 cm), unlike the common one-step approximation (off by 1–5 m).

    Parameters
    ----------
    lon, lat : float or array_like
        GCJ-02 longitude and latitude in degrees; arrays are broadcast together.

    Returns
    -------
    tuple of (float, float) or tuple of numpy.ndarray
        WGS84 longitude and latitude. Points outside China are unchanged.
    """
    lon_a, lat_a, scalar = _as_arrays(lon, lat)
    wlon = lon_a.copy()
    wlat = lat_a.copy()
    for _ in range(_INVERSE_MAX_ITER):
        dlon, dlat = _offset(wlon, wlat)
        step_lon = (wlon + dlon) - lon_a
        step_lat = (wlat + dlat) - lat_a
        wlon = wlon - step_lon
        wlat = wlat - step_lat
        if step_lon.size == 0 or max(np.max(np.abs(step_lon)), np.max(np.abs(step_lat))) < _INVERSE_TOLERANCE:
            break
    return _result(wlon, wlat, scalar)


def gcj02_to_bd09(lon, lat):
    """Convert GCJ-02 coordinates to Baidu's BD-09.

    Parameters
    ----------
    lon, lat : float or array_like
        GCJ-02 longitude and latitude in degrees.

    Returns
    -------
    tuple of (float, float) or tuple of numpy.ndarray
        BD-09 longitude and latitude.
    """
    lon_a, lat_a, scalar = _as_arrays(lon, lat)
    z = np.sqrt(lon_a * lon_a + lat_a * lat_a) + 0.00002 * np.sin(lat_a * _X_PI)
    theta = np.arctan2(lat_a, lon_a) + 0.000003 * np.cos(lon_a * _X_PI)
    return _result(z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006, scalar)


def bd09_to_gcj02(lon, lat):
    """Convert Baidu BD-09 coordinates to GCJ-02.

    Parameters
    ----------
    lon, lat : float or array_like
        BD-09 longitude and latitude in degrees.

    Returns
    -------
    tuple of (float, float) or tuple of numpy.ndarray
        GCJ-02 longitude and latitude (the standard closed-form inverse, ~1e-6° exact).
    """
    lon_a, lat_a, scalar = _as_arrays(lon, lat)
    x = lon_a - 0.0065
    y = lat_a - 0.006
    z = np.sqrt(x * x + y * y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    return _result(z * np.cos(theta), z * np.sin(theta), scalar)


def bd09_to_wgs84(lon, lat):
    """Convert Baidu BD-09 coordinates to WGS84 (BD-09 → GCJ-02 → WGS84).

    Parameters
    ----------
    lon, lat : float or array_like
        BD-09 longitude and latitude in degrees.

    Returns
    -------
    tuple of (float, float) or tuple of numpy.ndarray
        WGS84 longitude and latitude.
    """
    glon, glat = bd09_to_gcj02(lon, lat)
    return gcj02_to_wgs84(glon, glat)


def wgs84_to_bd09(lon, lat):
    """Convert WGS84 coordinates to Baidu BD-09 (WGS84 → GCJ-02 → BD-09).

    Parameters
    ----------
    lon, lat : float or array_like
        WGS84 longitude and latitude in degrees.

    Returns
    -------
    tuple of (float, float) or tuple of numpy.ndarray
        BD-09 longitude and latitude.
    """
    glon, glat = wgs84_to_gcj02(lon, lat)
    return gcj02_to_bd09(glon, glat)


def convert_geometry(geom, func: Callable):
    """Apply a coordinate conversion to every coordinate of a shapely geometry.

    Parameters
    ----------
    geom : shapely.Geometry or array_like of shapely.Geometry
        Any geometry (or array of geometries); Z values are dropped.
    func : callable
        A vectorised conversion ``func(lon_array, lat_array) -> (lon_array, lat_array)``,
        e.g. :func:`gcj02_to_wgs84`.

    Returns
    -------
    shapely.Geometry or numpy.ndarray of shapely.Geometry
        The converted geometry; the same type and structure as ``geom``.

    Examples
    --------
    >>> from shapely import Point
    >>> p = convert_geometry(Point(119.97, 30.55), wgs84_to_gcj02)
    >>> round(p.x, 4), round(p.y, 4)
    (119.9746, 30.5475)
    """

    def _apply(coords: np.ndarray) -> np.ndarray:
        lon, lat = func(coords[:, 0], coords[:, 1])
        return np.column_stack([np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)])

    return shapely.transform(geom, _apply)
