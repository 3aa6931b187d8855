"""Per-feature geometry checks and repairs (pure shapely; no database).

Each feature's geometry is rejected with a reason (empty, NaN/inf coordinates, wrong
type) or accepted, possibly repaired with ``make_valid``. A repair is reported with
GEOS's validity reason — the same text PostGIS's ``ST_IsValidReason`` gives, since both
come from GEOS — and the area before and after, in square metres.
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
    if not geom.is_valid:
        reason = explain_validity(geom)
        before = metric_area(geom)
        fixed = shapely.make_valid(geom)
        keep, dropped = _parts_of_family(fixed, fam)
        fixed = _combine(keep, fam)
        if fixed is None or fixed.is_empty or not fixed.is_valid:
            return Checked(reject=("unrepairable", {"reason": reason}))
        after = metric_area(fixed)
        repair = {"reason": reason, "before": round(before, 2), "after": round(after, 2),
                  "delta": round(after - before, 1) + 0.0}  # no "-0.0"
        if dropped:
            notes.append(("repair_dropped_parts", {"dropped": dropped, "family": fam}))
        geom = fixed
    if fam == "point" and single_point and geom.geom_type == "MultiPoint":
        n = shapely.get_num_geometries(geom)
        if n != 1:
            return Checked(reject=("multi_part_point", {"parts": int(n)}))
        geom = shapely.get_geometry(geom, 0)
    if fam == "polygon" and promote_multi and geom.geom_type == "Polygon":
        geom = shapely.MultiPolygon([geom])
    return Checked(geom=geom, repair=repair, notes=notes)
