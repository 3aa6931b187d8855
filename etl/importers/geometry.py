"""Per-feature geometry checks and repairs (pure shapely; no database).

Each feature's geometry is rejected with a reason (empty, NaN/inf coordinates, wrong
type) or accepted, possibly repaired with ``make_valid``. A repair is reported with
GEOS's validity reason — the same text PostGIS's ``ST_IsValidReason`` gives, since both
come from GEOS — and the area before and after, in square metres.

The parts of a MultiPolygon that overlap are merged (their union: what a GIS user
means; ``make_valid`` alone would cut the overlap out as a hole). A repair that changes
the area by more than :data:`AREA_TOLERANCE` is flagged, naming the change.

Validity checking is quadratic for some shapes (a 100k-vertex star-like "zigzag" takes
half a minute in GEOS, and PostGIS checks it again): :func:`budget_reject` estimates the
cost from the segments' overlapping extents before any check runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from pyproj import Transformer
from shapely.validation import explain_validity

from geodata.config import METRIC_SRID, STORAGE_SRID

FAMILY_OF = {
    "Point": "point", "MultiPoint": "point",
    "LineString": "line", "MultiLineString": "line", "LinearRing": "line",
    "Polygon": "polygon", "MultiPolygon": "polygon",
}
FAMILY_NAMES = {"point": ("点", "point"), "line": ("线", "line"), "polygon": ("面", "polygon")}

_TO_METRIC = Transformer.from_crs(STORAGE_SRID, METRIC_SRID, always_xy=True)


def family(geom) -> str | None:
    """'point', 'line' or 'polygon' for a shapely geometry; None for collections/None."""
    if geom is None:
        return None
    return FAMILY_OF.get(geom.geom_type)


def metric_area(geom) -> float:
    """Area in m² of a geometry in the storage CRS (CGCS2000 degrees), via EPSG:4549."""
    if geom is None or geom.is_empty:
        return 0.0

    def _tx(coords):
        x, y = _TO_METRIC.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return float(shapely.transform(geom, _tx).area)


def finite(geom) -> bool:
    """True when every coordinate (x, y and any z) is a finite number."""
    coords = shapely.get_coordinates(geom, include_z=shapely.has_z(geom))
    return bool(np.isfinite(coords).all())


@dataclass
class Checked:
    """Outcome of :func:`check_geometry`.

    ``geom`` is the accepted geometry (None when rejected); ``reject`` is an issue code
    with its details; ``repair`` holds the details of a repair when one was made.
    """

    geom: object = None
    reject: tuple[str, dict] | None = None
    repair: dict | None = None
    notes: list[tuple[str, dict]] = field(default_factory=list)
    flag: tuple[str, dict] | None = None


def _parts_of_family(geom, fam: str) -> tuple[list, int]:
    parts = list(shapely.get_parts(geom)) if geom.geom_type.startswith(("Multi", "Geometry")) else [geom]
    flat = []
    for p in parts:
        if p.geom_type == "GeometryCollection":
            flat.extend(shapely.get_parts(p))
        else:
            flat.append(p)
    keep = [p for p in flat if family(p) == fam and not p.is_empty]
    return keep, len(flat) - len(keep)


def _combine(parts: list, fam: str):
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    if fam == "polygon":
        polys = [q for p in parts for q in (shapely.get_parts(p) if p.geom_type == "MultiPolygon" else [p])]
        return shapely.MultiPolygon(polys)
    if fam == "line":
        lines = [q for p in parts for q in (shapely.get_parts(p) if p.geom_type == "MultiLineString" else [p])]
        return shapely.MultiLineString(lines)
    pts = [q for p in parts for q in (shapely.get_parts(p) if p.geom_type == "MultiPoint" else [p])]
    return shapely.MultiPoint(pts)


#: A repair may change a polygon's area by this share (or AREA_TOLERANCE_M2) unflagged.
AREA_TOLERANCE = 0.01
AREA_TOLERANCE_M2 = 1.0


def _repair_multipolygon(geom) -> tuple[object, int, int | None]:
    """Repair each part on its own, then merge the parts (overlaps become one area).

    Returns the repaired geometry, the number of non-polygon pieces dropped, and the
    number of parts when every part was valid alone (the union then preserves the area
    covered), else None.
    """
    parts = list(shapely.get_parts(geom))
    ok = shapely.is_valid(parts)
    fixed, dropped = [], 0
    for part, valid in zip(parts, ok):
        if valid:
            fixed.append(part)
            continue
        keep, d = _parts_of_family(shapely.make_valid(part), "polygon")
        fixed.extend(keep)
        dropped += d
    if not fixed:
        return None, dropped, None
    merged = shapely.union_all(fixed)
    keep, d = _parts_of_family(merged, "polygon")
    return _combine(keep, "polygon"), dropped + d, (len(parts) if bool(ok.all()) else None)


# -- the cost of a feature ---------------------------------------------------------------------------
#: Segment pairs with overlapping extents that GEOS tests per second (measured: 7–8e7 on
#: one core of the 2-core CI machine; taken lower, so estimates err long).
PAIRS_PER_SECOND = 5e7


def _segment_extents(geom) -> tuple[np.ndarray, np.ndarray]:
    """Lower-left and upper-right corners of every segment of a line/polygon geometry."""
    rings = []
    for part in shapely.get_parts(geom):
        if part.geom_type == "Polygon":
            rings.extend(shapely.get_rings(part))
        elif part.geom_type in ("LineString", "LinearRing"):
            rings.append(part)
    if not rings:
        return np.empty((0, 2)), np.empty((0, 2))
    coords, idx = shapely.get_coordinates(rings, return_index=True)
    same = idx[1:] == idx[:-1]
    a, b = coords[:-1][same], coords[1:][same]
    return np.minimum(a, b), np.maximum(a, b)


def _overlapping_pairs_1d(lo: np.ndarray, hi: np.ndarray) -> int:
    """Number of pairs of intervals [lo, hi] that overlap, in O(n log n)."""
    starts, ends = np.sort(lo), np.sort(hi)
    per = np.searchsorted(starts, hi, "right") - np.searchsorted(ends, lo, "left")
    return (int(per.sum()) - len(lo)) // 2


def _sampled_pairs(lo: np.ndarray, hi: np.ndarray, k: int = 32) -> float:
    """Pairs of segments with overlapping extents, estimated from ``k`` sampled segments."""
    boxes = shapely.box(lo[:, 0], lo[:, 1], hi[:, 0], hi[:, 1])
    tree = shapely.STRtree(boxes)
    pick = np.random.default_rng(0).choice(len(boxes), size=min(k, len(boxes)), replace=False)
    hits = [len(tree.query(boxes[i])) - 1 for i in pick]
    return float(np.mean(hits)) * len(boxes) / 2


def check_seconds(geom) -> float:
    """Estimated seconds GEOS needs to check ``geom``'s validity (0 for small geometries).

    The cost of GEOS's validity check is the number of segment pairs whose extents
    overlap (a ring is noded against itself). Bounded cheaply by the pairs overlapping
    in x and in y separately, refined by sampling when that bound is high.
    """
    if geom is None or shapely.get_num_coordinates(geom) < 2000:
        return 0.0
    lo, hi = _segment_extents(geom)
    if len(lo) < 2:
        return 0.0
    pairs = float(min(_overlapping_pairs_1d(lo[:, 0], hi[:, 0]), _overlapping_pairs_1d(lo[:, 1], hi[:, 1])))
    if pairs / PAIRS_PER_SECOND > 0.5:
        pairs = min(pairs, _sampled_pairs(lo, hi))
    return pairs / PAIRS_PER_SECOND


def budget_reject(geom, name: str, max_vertices: int, max_seconds: float) -> tuple[str, dict] | None:
    """The reason a feature is over its vertex or time budget, or None when it is within.

    Parameters
    ----------
    geom : shapely.Geometry
        The feature's geometry.
    name : str
        How the report names the feature (its name, id or row).
    max_vertices : int
        Most vertices of one feature.
    max_seconds : float
        Time budget of one feature's checks.

    Returns
    -------
    tuple of (str, dict) or None
        ``("too_many_vertices", ...)`` or ``("too_complex", ...)`` with the figures.
    """
    n = int(shapely.get_num_coordinates(geom))
    if n > max_vertices:
        return "too_many_vertices", {"name": name, "vertices": n, "limit": max_vertices}
    estimate = check_seconds(geom)
    if estimate > max_seconds:
        return "too_complex", {"name": name, "vertices": n, "estimate": round(estimate, 1), "limit": max_seconds}
    return None


def precheck(geom) -> tuple[str, dict] | None:
    """Reject reasons that do not depend on the CRS: missing/empty geometry, NaN/inf."""
    if geom is None or geom.is_empty:
        return ("empty_geometry", {})
    if not finite(geom):
        return ("non_finite", {})
    return None


def check_geometry(geom, want: str | None, single_point: bool = False, promote_multi: bool = False) -> Checked:
    """Validate one geometry (already in the storage CRS) for a layer of family ``want``.

    Parameters
    ----------
    geom : shapely.Geometry or None
        The feature's geometry.
    want : {'point', 'line', 'polygon'} or None
        The family the target holds; None accepts any single family.
    single_point : bool
        For point targets: a MultiPoint must have exactly one point (returned as Point).
    promote_multi : bool
        Return polygons as MultiPolygon (the village and grid tables' type).

    Returns
    -------
    Checked
        The geometry to load, or the reason it was rejected; repairs described with
        ``reason``, ``before`` and ``after`` areas (m²) and ``delta``.
    """
    pre = precheck(geom)
    if pre:
        return Checked(reject=pre)
    geom = shapely.force_2d(geom)
    fam = family(geom)
    notes: list[tuple[str, dict]] = []
    if fam is None:  # a GeometryCollection: keep the parts of the wanted (or majority) family
        parts = [p for p in shapely.get_parts(geom) if family(p)]
        fams = [family(p) for p in parts]
        target = want or (max(set(fams), key=fams.count) if fams else None)
        keep = [p for p in parts if family(p) == target]
        if not keep:
            return Checked(reject=("wrong_type", {"got": geom.geom_type, "want": want or "point/line/polygon"}))
        if len(keep) < len(parts):
            return Checked(reject=("wrong_type", {"got": "GeometryCollection", "want": want or target}))
        geom, fam = _combine(keep, target), target
    if want and fam != want:
        return Checked(reject=("wrong_type", {"got": geom.geom_type, "want": FAMILY_NAMES[want][1]}))
    repair = None
    flag = None
    if not geom.is_valid:
        reason = explain_validity(geom)
        before = metric_area(geom)
        unioned = None
        if geom.geom_type == "MultiPolygon":
            fixed, dropped, unioned = _repair_multipolygon(geom)
        else:
            keep, dropped = _parts_of_family(shapely.make_valid(geom), fam)
            fixed = _combine(keep, fam)
        if fixed is None or fixed.is_empty or not fixed.is_valid:
            return Checked(reject=("unrepairable", {"reason": reason}))
        after = metric_area(fixed)
        repair = {"reason": reason, "before": round(before, 2), "after": round(after, 2),
                  "delta": round(after - before, 1) + 0.0}  # no "-0.0"
        if dropped:
            notes.append(("repair_dropped_parts", {"dropped": dropped, "family": fam}))
        if unioned is not None:
            # every part was valid alone: the union covers exactly what the parts covered,
            # and the sum of the parts' areas counted the overlaps twice
            notes.append(("parts_unioned", {"parts": unioned, "overlap": round(before - after, 1) + 0.0,
                                            "before": round(before, 1), "after": round(after, 1)}))
        elif fam == "polygon":
            change = abs(after - before)
            if change > max(AREA_TOLERANCE * max(before, after), AREA_TOLERANCE_M2):
                flag = ("repair_area_changed", {"before": round(before, 1), "after": round(after, 1),
                                                "pct": round(100 * change / max(before, after), 1),
                                                "tol": AREA_TOLERANCE * 100})
        geom = fixed
    if fam == "point" and single_point and geom.geom_type == "MultiPoint":
        n = shapely.get_num_geometries(geom)
        if n != 1:
            return Checked(reject=("multi_part_point", {"parts": int(n)}))
        geom = shapely.get_geometry(geom, 0)
    if fam == "polygon" and promote_multi and geom.geom_type == "Polygon":
        geom = shapely.MultiPolygon([geom])
    return Checked(geom=geom, repair=repair, notes=notes, flag=flag)
