"""Coordinate reference systems on the way in: declared, given, missing, swapped, GCJ-02/BD-09.

Rules (see the design guide, "Data conventions"):

* the CRS comes from the file (.prj, GeoPackage/GeoTIFF metadata, GeoJSON ``crs``) or
  from the person importing (``crs=...``), which wins and is noted;
* a missing CRS is never guessed silently: coordinates that cannot be degrees are
  refused with a request for the CRS (and a Gauss-Krüger zone suggested when the
  numbers look like one); degree-range coordinates inside the county are taken as
  CGCS2000 and the report says so;
* lon/lat (or X/Y) swapped is detected by checking which order puts the data in the
  county, and refused until the person confirms with ``swap_axes``;
* data declared GCJ-02 or BD-09 is converted to CGCS2000 with :mod:`etl.coords`, and
  the report marks it converted.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from pyproj import CRS, Transformer
from pyproj.exceptions import CRSError

from etl import coords
from etl.importers.errors import CrsRequired, ImportRejected
from geodata.config import STORAGE_SRID, WGS84_SRID

STORAGE_CRS = CRS.from_epsg(STORAGE_SRID)
#: China's rough box (lon/lat), for plausibility when no county is loaded.
CHINA_BOX = (73.0, 3.0, 136.0, 54.0)
DATUMS = {"gcj02": "GCJ-02", "bd09": "BD-09"}
_DATUM_ALIASES = {"gcj02": "gcj02", "gcj-02": "gcj02", "gcj": "gcj02", "mars": "gcj02", "amap": "gcj02",
                  "高德": "gcj02", "火星": "gcj02", "腾讯": "gcj02", "bd09": "bd09", "bd-09": "bd09",
                  "baidu": "bd09", "百度": "bd09", "bd09ll": "bd09"}


def parse_datum(value: str | None) -> str | None:
    """Canonical datum key ('gcj02' / 'bd09') for a label, or None for none/WGS84/CGCS2000."""
    if not value:
        return None
    key = value.strip().lower()
    if key in ("", "none", "wgs84", "cgcs2000", str(WGS84_SRID), str(STORAGE_SRID)):
        return None
    if key in _DATUM_ALIASES:
        return _DATUM_ALIASES[key]
    raise ImportRejected("crs_invalid", crs=value)


def parse_crs(value) -> CRS:
    """A pyproj CRS from an EPSG code, ``EPSG:nnnn``, WKT or PROJ string.

    Raises
    ------
    ImportRejected
        ``crs_invalid`` when pyproj cannot read it.
    """
    if isinstance(value, CRS):
        return value
    text = str(value).strip()
    if text.isdigit():
        text = f"EPSG:{text}"
    try:
        return CRS.from_user_input(text)
    except (CRSError, TypeError, ValueError):
        raise ImportRejected("crs_invalid", crs=text[:80]) from None


def crs_label(crs: CRS | None) -> str | None:
    """Short label: ``EPSG:4549`` when the CRS has a code, else its name."""
    if crs is None:
        return None
    try:
        code = crs.to_epsg(min_confidence=70)
    except CRSError:
        code = None
    return f"EPSG:{code}" if code else (crs.name or "custom")


@dataclass
class Region:
    """Where the data should be: the county's bounds (lon/lat), or China when unknown."""

    bbox: tuple[float, float, float, float]
    known: bool = True
    margin: float = 0.1

    @classmethod
    def china(cls) -> "Region":
        """China's box, used when no county is loaded."""
        return cls(CHINA_BOX, known=False, margin=0.0)

    def share_inside(self, xy: np.ndarray) -> float:
        """Share (0–1) of the points inside the region (with its margin)."""
        if xy.size == 0:
            return 0.0
        w, s, e, n = self.bbox
        m = self.margin
        ok = np.isfinite(xy).all(axis=1)
        inside = ok & (xy[:, 0] >= w - m) & (xy[:, 0] <= e + m) & (xy[:, 1] >= s - m) & (xy[:, 1] <= n + m)
        return float(inside.mean())

    def centre_lon(self) -> float:
        """Longitude of the region's centre."""
        return (self.bbox[0] + self.bbox[2]) / 2


def sample_coords(geoms, limit: int = 5000) -> np.ndarray:
    """Up to ``limit`` finite (x, y) pairs, one per geometry first, from ``geoms``."""
    pts = []
    for g in geoms:
        if g is None or g.is_empty:
            continue
        c = shapely.get_coordinates(g)
        if len(c):
            pts.append(c[0])
        if len(pts) >= limit:
            break
    if not pts:
        return np.empty((0, 2))
    xy = np.asarray(pts, dtype=float)
    return xy[np.isfinite(xy).all(axis=1)]


def _degree_range(xy: np.ndarray) -> bool:
    return bool(xy.size) and bool((np.abs(xy[:, 0]) <= 180).all() and (np.abs(xy[:, 1]) <= 90).all())


def gk_suggestion(xy: np.ndarray, region: Region) -> tuple[str, str]:
    """A hint naming the likely CGCS2000 Gauss-Krüger CRS for metre coordinates."""
    if xy.size == 0:
        return "", ""
    x, y = float(np.median(xy[:, 0])), float(np.median(xy[:, 1]))
    if abs(x) > 1e6 and abs(y) < 1e6 and abs(y) > 1e4:  # X/Y in survey order: swap for the hint
        x, y = y, x
    if 1e7 < x < 1e8:
        zone = int(x // 1e6)
        if 25 <= zone <= 45:
            code = 4513 + zone - 25
            return (f"(看起来是带带号的 3 度带坐标,第 {zone} 带:例如 EPSG:{code})",
                    f" (looks like 3-degree Gauss-Krüger with zone prefix {zone}: e.g. EPSG:{code})")
        if 13 <= zone <= 23:
            code = 4491 + zone - 13
            return (f"(看起来是带带号的 6 度带坐标,第 {zone} 带:例如 EPSG:{code})",
                    f" (looks like 6-degree Gauss-Krüger with zone prefix {zone}: e.g. EPSG:{code})")
    if 1e5 < x < 1e6 and 1e6 < y < 1e7:
        cm = int(round(region.centre_lon() / 3.0) * 3) if region.known else 120
        code = 4534 + (cm - 75) // 3
        return (f"(看起来是 3 度带高斯-克吕格坐标:例如 EPSG:{code},CGCS2000 中央经线 {cm}°E)",
                f" (looks like 3-degree Gauss-Krüger metres: e.g. EPSG:{code}, CGCS2000 CM {cm}E)")
    return "", ""


def _sample_text(xy: np.ndarray) -> str:
    if xy.size == 0:
        return "—"
    return f"{xy[0, 0]:.6g}, {xy[0, 1]:.6g}"


@dataclass
class CrsPlan:
    """How to bring coordinates to the storage CRS.

    Apply with :meth:`apply` (swap → reproject → datum shift, in that order).
    """

    source: CRS | None
    label: str | None
    swap: bool = False
    datum: str | None = None
    assumed: bool = False
    notes: list[tuple[str, dict]] = field(default_factory=list)
    _transformer: Transformer | None = None

    def __post_init__(self):
        if self.source is not None and not self.source.equals(STORAGE_CRS, ignore_axis_order=True):
            self._transformer = Transformer.from_crs(self.source, STORAGE_CRS, always_xy=True)

    def transform_xy(self, xy: np.ndarray) -> np.ndarray:
        """Coordinates (n, 2) to the storage CRS: swap, reproject, datum shift."""
        xy = np.asarray(xy, dtype=float)
        if self.swap:
            xy = xy[:, ::-1]
        if self._transformer is not None:
            with np.errstate(all="ignore"):
                x, y = self._transformer.transform(xy[:, 0], xy[:, 1], errcheck=False)
            xy = np.column_stack([np.asarray(x, dtype=float), np.asarray(y, dtype=float)])
        if self.datum == "gcj02":
            x, y = coords.gcj02_to_wgs84(xy[:, 0], xy[:, 1])
            xy = np.column_stack([x, y])
        elif self.datum == "bd09":
            x, y = coords.bd09_to_wgs84(xy[:, 0], xy[:, 1])
            xy = np.column_stack([x, y])
        return xy

    @property
    def identity(self) -> bool:
        """True when the coordinates need no change at all."""
        return not self.swap and self._transformer is None and self.datum is None

    def apply(self, geom):
        """Return ``geom`` in the storage CRS (None stays None)."""
        if geom is None or self.identity:
            return geom
        return shapely.transform(geom, self.transform_xy)


def plan(declared: CRS | None, given: str | None, datum: str | None, xy: np.ndarray, region: Region,
         swap_axes: bool = False) -> CrsPlan:
    """Decide how the coordinates reach CGCS2000, or refuse.

    Parameters
    ----------
    declared : pyproj.CRS or None
        The CRS the file declares (None when it has none).
    given : str or None
        The CRS named by the person importing (wins over ``declared``); ``gcj02``/``bd09``
        are accepted here too as shorthands.
    datum : str or None
        ``gcj02`` or ``bd09`` when the data is declared in one of those.
    xy : numpy.ndarray
        A sample of the input coordinates, shape (n, 2).
    region : Region
        The county's bounds (or China's, when no county is loaded).
    swap_axes : bool
        The person confirmed the axes are swapped.

    Returns
    -------
    CrsPlan

    Raises
    ------
    CrsRequired
        No CRS and the coordinates cannot be degrees, or are degrees but nowhere near.
    ImportRejected
        ``crs_invalid``, ``crs_datum_needs_degrees`` or ``axes_swapped``.
    """
    notes: list[tuple[str, dict]] = []
    datum = parse_datum(datum)
    source = declared
    if given:
        as_datum = None
        try:
            as_datum = parse_datum(given)
        except ImportRejected:
            pass
        if as_datum:
            datum, source = as_datum, STORAGE_CRS
        else:
            source = parse_crs(given)
        if declared is not None and not declared.equals(source, ignore_axis_order=True):
            notes.append(("crs_override", {"crs": crs_label(source), "declared": crs_label(declared)}))
    if datum and source is not None and not source.is_geographic:
        raise ImportRejected("crs_datum_needs_degrees", datum=DATUMS[datum], crs=crs_label(source))

    assumed = False
    if source is None:
        if not _degree_range(xy) and not (swap_axes and _degree_range(xy[:, ::-1])):
            if xy.size and _degree_range(xy[:, ::-1]) and region.share_inside(xy[:, ::-1]) >= 0.5:
                raise ImportRejected("axes_swapped", share=region.share_inside(xy[:, ::-1]))
            zh, en = gk_suggestion(xy, region)
            raise CrsRequired("crs_required", sample=_sample_text(xy), hint=zh, hint_en=en)
        source, assumed = STORAGE_CRS, True

    candidate = CrsPlan(source, crs_label(source), swap=swap_axes, datum=datum, assumed=assumed, notes=notes)
    if xy.size:
        share = region.share_inside(candidate.transform_xy(xy))
        if share < 0.5:
            other = CrsPlan(source, crs_label(source), swap=not swap_axes, datum=datum)
            other_share = region.share_inside(other.transform_xy(xy))
            if not swap_axes and other_share >= 0.5 and share < 0.1:
                raise ImportRejected("axes_swapped", share=other_share)
            if assumed:
                raise CrsRequired("crs_unplaced", sample=_sample_text(xy))
    if assumed:
        candidate.notes.append(("crs_assumed", {}))
    if swap_axes:
        candidate.notes.append(("axis_swap_applied", {}))
    if datum:
        candidate.notes.append(("converted", {"datum": DATUMS[datum]}))
    return candidate
