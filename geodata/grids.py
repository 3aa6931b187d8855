"""The grid service: draw, edit, split, merge, delete and staff a village's grids.

Grid managers (网格管理员) divide each village into grids. This module is the one
place that changes them; the editor page (callbacks/grids.py) only parses input,
calls it and renders the result.

* :func:`validate` — checks a candidate polygon in PostGIS: valid geometry (with
  ``ST_IsValidReason``), inside its village (else the clipped-away area in m² and
  the clipped geometry), no overlap with other current grids (area in m² and the
  overlap geometry to highlight), the village's uncovered area after the change
  (m², % and geometry), minimum area. Vertex count, zero-area and duplicate-vertex
  rings are caught before anything reaches the database (:func:`parse_polygon`).
* :func:`snap` — moves vertices onto the village boundary and neighbouring grid
  edges within a tolerance in metres (EPSG:4549), inserts the neighbours'
  vertices into the snapped edges, then makes coinciding vertices bit-identical
  to the neighbours' in the storage CRS, so shared edges are exact; slivers
  thinner than the tolerance are trimmed (overlaps, outside the village) or filled
  (gaps along the candidate).
* :func:`save_grid`, :func:`split_grid`, :func:`merge_grids`, :func:`delete_grid`,
  :func:`assign_worker`, :func:`renumber_village`, :func:`undo_last` — each is
  one *change*: old grid versions are closed (``valid_to``), new ones inserted
  (``valid_from``), one ``grid_change`` row says who, when and what, open events
  of the changed area are re-routed (:mod:`geodata.grid_reroute`). Every change
  takes the village's advisory lock, checks the caller's expected versions
  (optimistic locking → :class:`StaleGrid`), and runs in a savepoint: on any
  error nothing is written and the caller's transaction stays usable. The
  database re-checks the topology itself (migration 0006's ``grid_topology``
  trigger); :func:`preview` runs a change and rolls it back, to show which events
  would be re-routed before the manager confirms.
* :func:`grid_at` — which grid a point was in at a given time (versions).

Functions take a scoped session and never commit. Errors are typed and bilingual.
"""
from __future__ import annotations

import json
import math
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping, Sequence

import shapely
from shapely.geometry import LineString, MultiPolygon, Polygon
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from geodata.config import METRIC_SRID, STORAGE_SRID
from geodata.events import Actor
from geodata.grid_reroute import reroute_open_events
from geodata.gridcodes import MAX_GRIDS, grid_codes
from geodata.i18n import BilingualError, pick
from geodata.workflow import OPEN

__all__ = [
    "MIN_AREA_M2", "MAX_VERTICES", "AREA_EPSILON_M2", "DEFAULT_SNAP_M", "MAX_SNAP_M", "WRITE_ROLES",
    "Issue", "Validation", "SnapResult", "ChangeResult",
    "GridError", "GridInputError", "GridNotFound", "StaleGrid", "GridPermissionDenied", "GridTopologyError",
    "parse_polygon", "parse_line", "ring_issue", "ring_area", "count_vertices", "drop_specks", "may_edit",
    "validate", "snap", "save_grid", "split_grid", "merge_grids", "delete_grid", "assign_worker",
    "renumber_village", "renumber_plan", "undo_last", "last_change", "preview", "change_history",
    "village_grids", "village_gaps", "village_info", "editable_villages", "grid_workers", "grid_at",
    "grid_versions", "current_grid",
]

# -- rules (the database's copy lives in migration 0006: dvmap_grid_rules()) ----------

#: Smallest grid accepted (m²): anything smaller is a slip of the mouse or a sliver.
MIN_AREA_M2 = 100.0
#: Most vertices one grid may have; hand-drawn grids have tens, traced ones hundreds.
MAX_VERTICES = 2000
#: Overlaps / outside areas below this (m²) are floating-point noise of CRS round trips.
AREA_EPSILON_M2 = 0.5
#: Default and largest snapping tolerance (m).
DEFAULT_SNAP_M = 5.0
MAX_SNAP_M = 50.0
#: Roles that may change grids.
WRITE_ROLES = frozenset({"grid_manager", "admin", "system"})
#: Storage and metric CRS (see geodata.config).
_SRID = STORAGE_SRID
_METRIC = METRIC_SRID
#: Rings whose shoelace area (deg²) is below this are "zero-area" (~1e-3 m² at 30°N).
_ZERO_AREA_DEG2 = 1e-13
#: Coordinates go to the browser and back at full double precision, so vertices
#: shared with neighbours stay bit-identical.
_GJ_DIGITS = 15

_CANDIDATE = "ST_Multi(ST_GeomFromWKB(:wkb, 4490))"


# -- errors --------------------------------------------------------------------------

@dataclass(frozen=True)
class Issue:
    """One finding of a validation: a code and the text in both languages."""

    code: str
    zh: str
    en: str

    def text(self, lang: str = "zh") -> str:
        return pick(self.zh, self.en, lang)


class GridError(BilingualError):
    """Base of the grid service's errors."""

    code = "grid_error"


class GridInputError(GridError):
    """A candidate geometry or parameter that cannot be saved; ``issues`` lists why."""

    def __init__(self, message_zh: str, message_en: str, code: str = "invalid_input",
                 issues: Sequence[Issue] = (), location: list[float] | None = None):
        super().__init__(message_zh, message_en)
        self.code = code
        self.issues = list(issues) or [Issue(code, message_zh, message_en)]
        self.location = location

    @classmethod
    def of(cls, issue: Issue, **kw) -> "GridInputError":
        return cls(issue.zh, issue.en, issue.code, [issue], **kw)


class GridNotFound(GridError):
    """No such grid or village, or not in the caller's scope (the two look alike on purpose)."""

    code, http_status = "not_found", 404

    def __init__(self, what: str):
        super().__init__(f"未找到{what},可能不存在或不在您的权限范围内。",
                         f"{_WHAT_EN.get(what, what)} not found; it may not exist or is outside your scope.")


_WHAT_EN = {"网格": "Grid", "村": "Village", "网格员": "Grid worker"}


class StaleGrid(GridError):
    """The grid (or the village's grids) changed since the caller read them."""

    code, http_status = "stale", 409

    def __init__(self, message_zh: str | None = None, message_en: str | None = None, *, code: str = "",
                 expected: int | None = None, current: int | None = None):
        if message_zh is None:
            message_zh = (f"网格 {code} 已被他人修改(您看到的是第 {expected} 版,当前为第 {current} 版),"
                          "请刷新后重试。未保存任何内容。")
            message_en = (f"Grid {code} was changed by someone else (you saw version {expected}, it is now "
                          f"version {current}); reload and try again. Nothing was saved.")
        super().__init__(message_zh, message_en)
        self.expected = expected
        self.current = current


class GridPermissionDenied(GridError):
    """The caller's role may not change grids."""

    code, http_status = "permission", 403

    def __init__(self):
        super().__init__("只有网格管理员和系统管理员可以修改网格。",
                         "Only grid managers and administrators may change grids.")


class GridTopologyError(GridError):
    """The database refused the change (migration 0006's ``grid_topology`` trigger)."""

    code, http_status = "topology", 409

    def __init__(self, message_zh: str, message_en: str, sqlstate: str = "", detail: dict | None = None):
        super().__init__(message_zh, message_en)
        self.sqlstate = sqlstate
        self.detail = detail or {}


# -- value types -----------------------------------------------------------------------

@dataclass
class Validation:
    """What :func:`validate` found; ``ok`` means the candidate may be saved as it is."""

    ok: bool
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    geometry: dict | None = None          # the candidate, GeoJSON
    valid: bool = True
    reason: str | None = None             # ST_IsValidReason when invalid
    reason_location: list[float] | None = None
    area_m2: float | None = None
    vertices: int = 0
    outside_m2: float = 0.0
    other_villages: list[str] = field(default_factory=list)
    clipped: dict | None = None           # candidate ∩ village, offered when it sticks out
    overlap_m2: float = 0.0
    overlaps: list[dict] = field(default_factory=list)   # uid, code, name, area_m2
    overlap_geometry: dict | None = None
    gap_m2: float = 0.0
    gap_pct: float = 0.0
    gap_geometry: dict | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    def messages(self, lang: str = "zh") -> list[str]:
        return [i.text(lang) for i in self.errors + self.warnings]


@dataclass
class SnapResult:
    """What :func:`snap` did."""

    geometry: dict
    tolerance_m: float
    moved: int                 # vertices moved onto the village boundary or a neighbour (closing vertex not counted)
    vertices_before: int
    vertices_after: int
    trimmed_m2: float          # slivers cut off (overlaps, outside the village)
    filled_m2: float           # thin gaps along the candidate filled

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class ChangeResult:
    """One change to a village's grids."""

    change_id: int
    action: str
    village_id: int
    summary_zh: str
    summary_en: str
    closed_ids: list[int] = field(default_factory=list)
    created: list[dict] = field(default_factory=list)    # id, uid, code, version, name, worker_id, area_m2
    rerouted: list[dict] = field(default_factory=list)
    detail: dict = field(default_factory=dict)

    def summary(self, lang: str = "zh") -> str:
        return pick(self.summary_zh, self.summary_en, lang)

    def as_dict(self) -> dict:
        return asdict(self)


class _Keep:
    """Sentinel: leave the grid's worker as it is."""

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return "KEEP"


KEEP = _Keep()


# -- pure helpers (no database) -----------------------------------------------------------

def ring_area(coords: Sequence[Sequence[float]]) -> float:
    """Absolute shoelace area of a ring in its own units (deg² for lon/lat).

    Parameters
    ----------
    coords : sequence of (x, y)
        The ring, closed or not.

    Returns
    -------
    float
    """
    pts = list(coords)
    if len(pts) < 3:
        return 0.0
    s = 0.0
    x0, y0 = pts[0][0], pts[0][1]
    for (x1, y1), (x2, y2) in zip(((p[0] - x0, p[1] - y0) for p in pts),
                                  ((p[0] - x0, p[1] - y0) for p in pts[1:] + pts[:1])):
        s += x1 * y2 - x2 * y1
    return abs(s) / 2.0


def _dedupe(coords: Sequence[Sequence[float]]) -> list[tuple[float, float]]:
    """Drop consecutive repeated vertices and the closing vertex."""
    out: list[tuple[float, float]] = []
    for p in coords:
        xy = (float(p[0]), float(p[1]))
        if not out or xy != out[-1]:
            out.append(xy)
    while len(out) > 1 and out[0] == out[-1]:
        out.pop()
    return out


def ring_issue(coords: Sequence[Sequence[float]]) -> str | None:
    """What is wrong with one ring, before any topology check.

    Parameters
    ----------
    coords : sequence of (x, y)

    Returns
    -------
    str or None
        ``"duplicate_vertices"`` when fewer than 3 distinct vertices remain once
        repeated ones are dropped (e.g. a 3-vertex ring with a vertex doubled),
        ``"zero_area"`` when the vertices are all on one line (their convex hull
        has no area), else None.
    """
    distinct = _dedupe(coords)
    if len(set(distinct)) < 3:
        return "duplicate_vertices"
    # The hull, not the signed ring area: a symmetric bow-tie has signed area 0 but is
    # self-intersecting (PostGIS names that), whereas collinear vertices enclose nothing.
    if shapely.MultiPoint(distinct).convex_hull.area < _ZERO_AREA_DEG2:
        return "zero_area"
    return None


def count_vertices(geom) -> int:
    """Number of coordinates of a shapely geometry (closing vertices included, as ST_NPoints)."""
    return int(shapely.get_num_coordinates(geom))


def _as_geometry_dict(obj) -> dict:
    if isinstance(obj, (str, bytes)):
        try:
            obj = json.loads(obj)
        except ValueError:
            raise GridInputError("几何不是有效的 GeoJSON。", "The geometry is not valid GeoJSON.",
                                 "not_geojson") from None
    if not isinstance(obj, Mapping):
        raise GridInputError("请提供多边形(GeoJSON)。", "A polygon (GeoJSON) is required.", "not_geojson")
    kind = obj.get("type")
    if kind == "FeatureCollection":
        feats = [f for f in obj.get("features") or [] if isinstance(f, Mapping) and f.get("geometry")]
        if not feats:
            raise GridInputError("没有绘制任何图形。", "Nothing was drawn.", "empty")
        obj = feats[-1]
        kind = obj.get("type")
    if kind == "Feature":
        obj = obj.get("geometry") or {}
    if not isinstance(obj, Mapping):
        raise GridInputError("请提供多边形(GeoJSON)。", "A polygon (GeoJSON) is required.", "not_geojson")
    return dict(obj)


def _check_position(p) -> tuple[float, float]:
    if not isinstance(p, (list, tuple)) or len(p) < 2:
        raise GridInputError("坐标格式错误。", "A coordinate is malformed.", "bad_coordinates")
    try:
        x, y = float(p[0]), float(p[1])
    except (TypeError, ValueError):
        raise GridInputError("坐标不是数字。", "A coordinate is not a number.", "bad_coordinates") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise GridInputError("坐标无效(NaN 或无穷大)。", "A coordinate is NaN or infinite.", "bad_coordinates")
    if not (-180 <= x <= 180 and -90 <= y <= 90):
        raise GridInputError("坐标超出经纬度范围。", "A coordinate is outside the lon/lat range.",
                             "bad_coordinates")
    return x, y


_RING_MESSAGES = {
    "duplicate_vertices": ("多边形的环少于 3 个不同顶点(顶点重复)。",
                           "A ring has fewer than 3 distinct vertices (repeated vertices)."),
    "zero_area": ("多边形面积为零(顶点共线)。", "The polygon has zero area (its vertices are collinear)."),
}


def parse_polygon(obj, max_vertices: int = MAX_VERTICES) -> Polygon | MultiPolygon:
    """Turn drawn GeoJSON into a shapely (Multi)Polygon, refusing what cannot be a grid.

    Consecutive repeated vertices are dropped and open rings closed; topology
    (self-intersections) is left to :func:`validate` (PostGIS).

    Parameters
    ----------
    obj : dict or str
        A GeoJSON Polygon/MultiPolygon geometry, a Feature, or a FeatureCollection
        (its last feature with a geometry is used: the one drawn last).
    max_vertices : int
        Refuse more vertices than this (counted as drawn).

    Returns
    -------
    shapely.Polygon or shapely.MultiPolygon

    Raises
    ------
    GridInputError
        Not a polygon, malformed or out-of-range coordinates, too many vertices,
        a ring with fewer than 3 distinct vertices, or a zero-area ring.
    """
    geom = _as_geometry_dict(obj)
    kind = geom.get("type")
    coords = geom.get("coordinates")
    if kind == "Polygon":
        polys = [coords]
    elif kind == "MultiPolygon":
        polys = coords
    else:
        raise GridInputError(f"网格必须是多边形,收到的是 {kind}。", f"A grid must be a polygon, got {kind}.",
                             "not_polygon")
    if not isinstance(polys, (list, tuple)) or not polys or not all(isinstance(p, (list, tuple)) and p
                                                                      for p in polys):
        raise GridInputError("多边形没有坐标。", "The polygon has no coordinates.", "empty")
    total = sum(len(r) for p in polys for r in p if isinstance(r, (list, tuple)))
    if total > max_vertices:
        raise GridInputError(
            f"顶点过多:{total:,} 个(上限 {max_vertices:,} 个),请简化后再保存。",
            f"Too many vertices: {total:,} (limit {max_vertices:,}); simplify the polygon first.",
            "too_many_vertices",
        )
    parts = []
    for poly in polys:
        rings = []
        for ring in poly:
            if not isinstance(ring, (list, tuple)):
                raise GridInputError("坐标格式错误。", "A coordinate is malformed.", "bad_coordinates")
            pts = [_check_position(p) for p in ring]
            problem = ring_issue(pts)
            if problem:
                zh, en = _RING_MESSAGES[problem]
                raise GridInputError(zh, en, problem)
            clean = _dedupe(pts)
            rings.append(clean + clean[:1])
        parts.append(Polygon(rings[0], rings[1:]))
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def parse_line(obj) -> LineString:
    """The split line drawn by the manager, as a shapely LineString.

    Raises
    ------
    GridInputError
        Not a line, malformed coordinates, or fewer than 2 distinct points.
    """
    geom = _as_geometry_dict(obj)
    if geom.get("type") != "LineString":
        raise GridInputError("请画一条分割线。", "Draw a line to split with.", "not_line")
    pts = [_check_position(p) for p in geom.get("coordinates") or []]
    distinct = []
    for p in pts:
        if not distinct or p != distinct[-1]:
            distinct.append(p)
    if len(distinct) < 2:
        raise GridInputError("分割线至少需要两个不同的点。", "The split line needs two distinct points.",
                             "short_line")
    return LineString(distinct)


def drop_specks(geom, min_m2: float = AREA_EPSILON_M2):
    """Remove polygon parts and holes smaller than ``min_m2`` (lon/lat input, area estimated).

    Overlay operations leave such specks (zero-width parts, pin-hole rings) where
    edges nearly coincide; they are noise, not part of a grid.

    Parameters
    ----------
    geom : shapely Polygon or MultiPolygon
        In lon/lat degrees.
    min_m2 : float

    Returns
    -------
    shapely MultiPolygon
        Possibly empty.
    """
    parts = list(getattr(geom, "geoms", [geom])) if not geom.is_empty else []
    if not parts:
        return MultiPolygon()
    lat = geom.centroid.y if not geom.centroid.is_empty else 30.0
    deg2 = min_m2 / (111_320.0 ** 2 * max(math.cos(math.radians(lat)), 0.05))
    kept = []
    for part in parts:
        if not isinstance(part, Polygon) or ring_area(part.exterior.coords) < deg2:
            continue
        holes = [h.coords for h in part.interiors if ring_area(h.coords) >= deg2]
        kept.append(Polygon(part.exterior.coords, holes))
    return MultiPolygon(kept)


def may_edit(role: str | None) -> bool:
    """True if ``role`` may change grids."""
    return role in WRITE_ROLES


def _wkb(geom) -> bytes:
    return shapely.to_wkb(geom, output_dimension=2)


def _fmt_m2(value: float) -> str:
    return f"{value:,.1f}"


def _check_actor(actor: Actor) -> None:
    if not isinstance(actor, Actor) or not may_edit(actor.role):
        raise GridPermissionDenied()


def _check_uid(uid) -> str:
    try:
        return str(uuid.UUID(str(uid)))
    except (TypeError, ValueError):
        raise GridNotFound("网格") from None


def _check_version(version) -> int:
    try:
        v = int(version)
    except (TypeError, ValueError):
        raise GridInputError("缺少版本号,请刷新后重试。", "The version is missing; reload and try again.",
                             "version") from None
    if v < 1:
        raise GridInputError("版本号无效。", "Invalid version.", "version")
    return v


# -- reading --------------------------------------------------------------------------------

def editable_villages(session: Session) -> list[dict]:
    """Villages the caller can see (RLS), with town and grid count, by code."""
    rows = session.execute(text(
        """
        SELECT v.id, v.code, v.name, t.name AS town,
               (SELECT count(*) FROM grid g WHERE g.village_id = v.id AND g.valid_to IS NULL) AS grids
          FROM village v JOIN town t ON t.id = v.town_id ORDER BY v.code
        """
    )).mappings()
    return [dict(r) for r in rows]


def village_info(session: Session, village_id: int) -> dict | None:
    """One village: code, name, town, area, bounds ``[[s, w], [n, e]]`` and outline (GeoJSON)."""
    row = session.execute(text(
        f"""
        SELECT v.id, v.code, v.name, t.name AS town, v.area_m2,
               ST_XMin(v.geom) AS w, ST_YMin(v.geom) AS s, ST_XMax(v.geom) AS e, ST_YMax(v.geom) AS n,
               ST_AsGeoJSON(v.geom, {_GJ_DIGITS})::json AS geometry
          FROM village v JOIN town t ON t.id = v.town_id WHERE v.id = :id
        """
    ), {"id": _int(village_id)}).mappings().first()
    if row is None:
        return None
    out = dict(row)
    out["bounds"] = [[out.pop("s"), out.pop("w")], [out.pop("n"), out.pop("e")]]
    return out


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def village_grids(session: Session, village_id: int) -> dict:
    """The village's current grids as a GeoJSON FeatureCollection (full precision).

    Properties: ``id`` (version row), ``uid``, ``code``, ``name``, ``version``,
    ``worker_id``, ``worker``, ``population`` (latest year), ``open_events``,
    ``area_m2`` and ``label`` ([lon, lat] of a point inside, for the map label).
    """
    return session.execute(text(
        f"""
        SELECT json_build_object('type', 'FeatureCollection', 'features',
                                 coalesce(json_agg(json_build_object('type', 'Feature', 'id', f.id,
                                                                     'geometry', f.geometry,
                                                                     'properties', f.properties)
                                                   ORDER BY f.code), '[]'::json))
          FROM (
            SELECT g.id, g.code,
                   ST_AsGeoJSON(g.geom, {_GJ_DIGITS})::json AS geometry,
                   json_build_object(
                       'id', g.id, 'uid', g.uid, 'code', g.code, 'name', g.name, 'version', g.version,
                       'worker_id', g.worker_id, 'worker', p.name, 'population', pop.total,
                       'open_events', coalesce(ev.n, 0),
                       'area_m2', round(ST_Area(ST_Transform(g.geom, {_METRIC}))::numeric, 1),
                       'label', json_build_array(ST_X(lp.pt), ST_Y(lp.pt))) AS properties
              FROM grid g
              LEFT JOIN person p ON p.id = g.worker_id
              LEFT JOIN LATERAL (SELECT total FROM population x WHERE x.grid_uid = g.uid
                                  ORDER BY year DESC LIMIT 1) pop ON true
              LEFT JOIN LATERAL (SELECT count(*) AS n FROM event e
                                  WHERE e.village_id = g.village_id AND e.grid_uid = g.uid
                                    AND e.state = ANY(CAST(:open AS text[]))) ev ON true
              CROSS JOIN LATERAL (SELECT ST_PointOnSurface(g.geom) AS pt) lp
             WHERE g.village_id = :v AND g.valid_to IS NULL
          ) f
        """
    ), {"v": _int(village_id), "open": sorted(s.value for s in OPEN)}).scalar_one()


def current_grid(session: Session, uid) -> dict | None:
    """The current version of grid ``uid`` (no geometry), or None."""
    row = session.execute(text(
        f"""
        SELECT g.id, g.uid::text AS uid, g.version, g.village_id, g.code, g.name, g.worker_id,
               p.name AS worker, ST_Area(ST_Transform(g.geom, {_METRIC})) AS area_m2, g.valid_from
          FROM grid g LEFT JOIN person p ON p.id = g.worker_id
         WHERE g.uid = CAST(:u AS uuid) AND g.valid_to IS NULL
        """
    ), {"u": _check_uid(uid)}).mappings().first()
    return dict(row) if row else None


def village_gaps(session: Session, village_id: int) -> dict:
    """The village's area covered by no current grid: ``area_m2``, ``pct`` and ``geometry``."""
    row = session.execute(text(
        f"""
        WITH v AS (SELECT geom, ST_Area(ST_Transform(geom, {_METRIC})) AS area FROM village WHERE id = :v),
        cover AS (SELECT ST_Union(geom) AS geom FROM grid WHERE village_id = :v AND valid_to IS NULL),
        gap AS (
            SELECT ST_Collect(d.geom) AS geom
              FROM v, cover,
                   ST_Dump(ST_CollectionExtract(coalesce(ST_Difference(v.geom, cover.geom), v.geom), 3)) d
             WHERE ST_Area(ST_Transform(d.geom, {_METRIC})) > :eps
        )
        SELECT v.area, coalesce(ST_Area(ST_Transform(gap.geom, {_METRIC})), 0) AS gap_m2,
               ST_AsGeoJSON(gap.geom, 9)::json AS geometry
          FROM v, gap
        """
    ), {"v": _int(village_id), "eps": AREA_EPSILON_M2}).mappings().first()
    if row is None:
        raise GridNotFound("村")
    pct = 100.0 * row["gap_m2"] / row["area"] if row["area"] else 0.0
    return {"area_m2": float(row["gap_m2"]), "pct": pct, "geometry": row["geometry"]}


def grid_workers(session: Session, village_id: int) -> list[dict]:
    """Active people with duty ``grid_worker`` in the village, with how many current grids each has."""
    rows = session.execute(text(
        """
        SELECT p.id, p.name, p.phone,
               (SELECT count(*) FROM grid g WHERE g.worker_id = p.id AND g.valid_to IS NULL) AS grids
          FROM person p
         WHERE p.village_id = :v AND p.duty = 'grid_worker' AND p.active
         ORDER BY p.name, p.id
        """
    ), {"v": _int(village_id)}).mappings()
    return [dict(r) for r in rows]


def grid_versions(session: Session, uid) -> list[dict]:
    """Every version of grid ``uid``, oldest first (no geometry)."""
    rows = session.execute(text(
        f"""
        SELECT g.id, g.version, g.code, g.name, g.worker_id, g.valid_from, g.valid_to, g.changed_by, g.change_id,
               ST_Area(ST_Transform(g.geom, {_METRIC})) AS area_m2
          FROM grid g WHERE g.uid = CAST(:u AS uuid) ORDER BY g.version
        """
    ), {"u": _check_uid(uid)}).mappings()
    return [dict(r) for r in rows]


def grid_at(session: Session, lon: float, lat: float, at: datetime) -> dict | None:
    """Which grid (version) contained a point at time ``at``.

    Parameters
    ----------
    lon, lat : float
        CGCS2000 degrees.
    at : datetime
        A timezone-aware instant; versions valid at ``at`` satisfy
        ``valid_from <= at < valid_to`` (or ``valid_to`` open).

    Returns
    -------
    dict or None
        ``id``, ``uid``, ``version``, ``code``, ``name``, ``worker_id``, ``worker``,
        ``valid_from``, ``valid_to``; None when the point was in no grid then.
    """
    x, y = _check_position([lon, lat])
    if not isinstance(at, datetime) or at.tzinfo is None:
        raise GridInputError("请提供带时区的时间。", "A timezone-aware time is required.", "at")
    row = session.execute(text(
        """
        SELECT g.id, g.uid::text AS uid, g.version, g.code, g.name, g.worker_id, p.name AS worker,
               g.valid_from, g.valid_to
          FROM grid g LEFT JOIN person p ON p.id = g.worker_id
         WHERE g.geom && ST_SetSRID(ST_MakePoint(:x, :y), 4490)
           AND ST_Intersects(g.geom, ST_SetSRID(ST_MakePoint(:x, :y), 4490))
           AND g.valid_from <= :at AND (g.valid_to IS NULL OR g.valid_to > :at)
         ORDER BY g.id LIMIT 1
        """
    ), {"x": x, "y": y, "at": at}).mappings().first()
    return dict(row) if row else None


def change_history(session: Session, village_id: int, limit: int = 50) -> list[dict]:
    """The village's grid changes, newest first: who, when, what, and whether undone."""
    rows = session.execute(text(
        """
        SELECT c.id, c.at, c.actor, c.actor_role, c.action, c.summary_zh, c.summary_en, c.undoes,
               c.closed_ids, c.created_ids, c.detail,
               EXISTS (SELECT 1 FROM grid_change u WHERE u.undoes = c.id) AS undone
          FROM grid_change c WHERE c.village_id = :v ORDER BY c.id DESC LIMIT :n
        """
    ), {"v": _int(village_id), "n": max(1, min(int(limit), 500))}).mappings()
    return [dict(r) for r in rows]


def last_change(session: Session, village_id: int) -> dict | None:
    """The change :func:`undo_last` would revert (latest not undone, not itself an undo), or None."""
    row = session.execute(text(
        """
        SELECT c.id, c.at, c.actor, c.action, c.summary_zh, c.summary_en, c.closed_ids, c.created_ids
          FROM grid_change c
         WHERE c.village_id = :v AND c.action <> 'undo'
           AND NOT EXISTS (SELECT 1 FROM grid_change u WHERE u.undoes = c.id)
         ORDER BY c.id DESC LIMIT 1
        """
    ), {"v": _int(village_id)}).mappings().first()
    return dict(row) if row else None


# -- validation ------------------------------------------------------------------------------

def _village_row(session: Session, village_id) -> Mapping:
    row = session.execute(
        text("SELECT id, code, name FROM village WHERE id = :v"), {"v": _int(village_id)}
    ).mappings().first()
    if row is None:
        raise GridNotFound("村")
    return row


def validate(
    session: Session,
    village_id: int,
    geometry,
    *,
    ignore_uids: Iterable[str] = (),
) -> Validation:
    """Check a candidate grid polygon against its village and the current grids, in PostGIS.

    Parameters
    ----------
    session : Session
        A scoped session (RLS decides which villages and grids are seen).
    village_id : int
        The village the grid belongs to.
    geometry : dict, str or shapely geometry
        The candidate (see :func:`parse_polygon`).
    ignore_uids : iterable of str
        Grids the change replaces (the grid being edited, the grids being merged):
        they count neither as overlaps nor as cover for the gap figure.

    Returns
    -------
    Validation
        ``errors`` block saving (invalid geometry, outside the village or spanning two,
        overlap, too small); ``warnings`` do not (the village's remaining gaps).

    Raises
    ------
    GridInputError
        When the input cannot even be read as a polygon (see :func:`parse_polygon`).
    GridNotFound
        The village does not exist or is outside the caller's scope.
    """
    geom = geometry if isinstance(geometry, (Polygon, MultiPolygon)) else parse_polygon(geometry)
    village = _village_row(session, village_id)
    ignore = [_check_uid(u) for u in ignore_uids]
    params = {"wkb": _wkb(geom), "v": village["id"], "ignore": ignore, "eps": AREA_EPSILON_M2}
    base = session.execute(text(
        f"""
        SELECT ST_IsValid(c.g) AS valid, ST_IsValidReason(c.g) AS reason,
               ST_AsGeoJSON((ST_IsValidDetail(c.g)).location)::json AS location,
               ST_NPoints(c.g) AS vertices, ST_AsGeoJSON(c.g, {_GJ_DIGITS})::json AS geometry
          FROM (SELECT {_CANDIDATE} AS g) c
        """
    ), params).mappings().one()
    out = Validation(ok=False, geometry=base["geometry"], vertices=base["vertices"], valid=base["valid"])
    if not base["valid"]:
        out.reason = base["reason"]
        loc = base["location"]
        out.reason_location = loc["coordinates"][:2] if loc else None
        where = f" @ {out.reason_location[0]:.6f}, {out.reason_location[1]:.6f}" if out.reason_location else ""
        out.errors.append(Issue("invalid", f"几何无效(例如边自相交):{out.reason}{where}",
                                f"Invalid geometry (e.g. self-intersecting edges): {out.reason}{where}"))
        return out

    row = session.execute(text(
        f"""
        WITH c AS (SELECT {_CANDIDATE} AS g),
        v AS (SELECT geom FROM village WHERE id = :v),
        m0 AS (   -- covered by the village: the usual case needs no overlay at all
            SELECT c.g, ST_CoveredBy(c.g, v.geom) AS covered, ST_Area(ST_Transform(c.g, {_METRIC})) AS area
              FROM c, v
        ),
        m AS (
            SELECT m0.area,
                   CASE WHEN m0.covered THEN 0
                        ELSE ST_Area(ST_Transform(ST_Difference(m0.g, v.geom), {_METRIC})) END AS outside,
                   CASE WHEN m0.covered THEN m0.g
                        ELSE ST_Multi(ST_CollectionExtract(ST_Intersection(m0.g, v.geom), 3)) END AS inside
              FROM m0, v
        ),
        others AS (   -- only asked when the candidate sticks out
            SELECT coalesce(array_agg(o.name ORDER BY o.code), '{{}}') AS names
              FROM village o, c, m
             WHERE m.outside > :eps AND o.id <> :v AND o.geom && c.g AND ST_Intersects(o.geom, c.g)
               AND ST_Area(ST_Transform(ST_Intersection(o.geom, c.g), {_METRIC})) > :eps
        ),
        ov AS (
            SELECT g.uid::text AS uid, g.code, g.name, x.inter,
                   ST_Area(ST_Transform(x.inter, {_METRIC})) AS a
              FROM grid g, c,
                   LATERAL (SELECT ST_CollectionExtract(ST_Intersection(g.geom, c.g), 3) AS inter) x
             WHERE g.village_id = :v AND g.valid_to IS NULL
               AND NOT (g.uid = ANY(CAST(:ignore AS uuid[])))
               AND g.geom && c.g AND ST_Intersects(g.geom, c.g)
        ),
        ovk AS (SELECT * FROM ov WHERE a > :eps),
        cover AS (
            SELECT ST_Union(geom) AS geom FROM (
                SELECT g.geom FROM grid g
                 WHERE g.village_id = :v AND g.valid_to IS NULL
                   AND NOT (g.uid = ANY(CAST(:ignore AS uuid[])))
                UNION ALL SELECT m.inside FROM m WHERE NOT ST_IsEmpty(m.inside)
            ) u
        ),
        gap AS (
            SELECT ST_Collect(d.geom) AS geom
              FROM v, cover,
                   ST_Dump(ST_CollectionExtract(coalesce(ST_Difference(v.geom, cover.geom), v.geom), 3)) d
             WHERE ST_Area(ST_Transform(d.geom, {_METRIC})) > :eps
        )
        SELECT m.area, m.outside, ST_AsGeoJSON(m.inside, {_GJ_DIGITS})::json AS clipped,
               ST_IsEmpty(m.inside) AS inside_empty,
               ST_Area(ST_Transform(m.inside, {_METRIC})) AS inside_m2,
               others.names AS other_villages,
               (SELECT coalesce(json_agg(json_build_object('uid', uid, 'code', code, 'name', name,
                                                           'area_m2', a) ORDER BY a DESC), '[]'::json)
                  FROM ovk) AS overlaps,
               (SELECT coalesce(sum(a), 0) FROM ovk) AS overlap_m2,
               (SELECT ST_AsGeoJSON(ST_Collect(inter), 9)::json FROM ovk) AS overlap_geometry,
               (SELECT ST_Area(ST_Transform(geom, {_METRIC})) FROM v) AS village_m2,
               coalesce(ST_Area(ST_Transform(gap.geom, {_METRIC})), 0) AS gap_m2,
               ST_AsGeoJSON(gap.geom, 9)::json AS gap_geometry
          FROM m, others, gap
        """
    ), params).mappings().one()

    out.area_m2 = float(row["area"])
    out.outside_m2 = float(row["outside"] or 0.0)
    out.other_villages = list(row["other_villages"] or [])
    out.overlaps = [dict(o) for o in row["overlaps"]]
    out.overlap_m2 = float(row["overlap_m2"] or 0.0)
    out.overlap_geometry = row["overlap_geometry"]
    out.gap_m2 = float(row["gap_m2"] or 0.0)
    out.gap_pct = 100.0 * out.gap_m2 / row["village_m2"] if row["village_m2"] else 0.0
    out.gap_geometry = row["gap_geometry"]
    inside_m2 = float(row["inside_m2"] or 0.0)
    vname = village["name"]

    if inside_m2 <= AREA_EPSILON_M2:
        if out.other_villages:
            names = "、".join(out.other_villages)
            out.errors.append(Issue("other_village", f"多边形位于{names},不在{vname}范围内。",
                                    f"The polygon lies in {', '.join(out.other_villages)}, not in {vname}."))
        else:
            out.errors.append(Issue("outside_all", "多边形不在任何村的范围内。",
                                    "The polygon lies outside every village."))
    elif out.outside_m2 > AREA_EPSILON_M2:
        out.clipped = row["clipped"]
        m2 = _fmt_m2(out.outside_m2)
        if out.other_villages:
            names = "、".join(out.other_villages)
            out.errors.append(Issue(
                "spanning",
                f"多边形跨越两个村({vname}与{names}),超出{vname} {m2} 平方米;可裁剪到村界后保存。",
                f"The polygon spans two villages ({vname} and {', '.join(out.other_villages)}): {m2} m² lie "
                f"outside {vname}; clip it to the village boundary to save."))
        else:
            out.errors.append(Issue(
                "outside", f"多边形超出{vname}村界 {m2} 平方米;可裁剪到村界后保存。",
                f"The polygon extends {m2} m² outside {vname}; clip it to the village boundary to save."))
    if out.overlaps:
        codes = "、".join(o["code"] for o in out.overlaps)
        m2 = _fmt_m2(out.overlap_m2)
        out.errors.append(Issue(
            "overlap", f"与现有网格 {codes} 重叠 {m2} 平方米(地图上红色区域);可用“吸附”消除细小重叠。",
            f"Overlaps existing grid(s) {', '.join(o['code'] for o in out.overlaps)} by {m2} m² "
            "(red on the map); 'Snap' removes small overlaps."))
    if out.area_m2 < MIN_AREA_M2:
        out.errors.append(Issue(
            "too_small", f"面积过小:{_fmt_m2(out.area_m2)} 平方米(下限 {MIN_AREA_M2:,.0f} 平方米)。",
            f"Too small: {_fmt_m2(out.area_m2)} m² (minimum {MIN_AREA_M2:,.0f} m²)."))
    if out.gap_m2 > AREA_EPSILON_M2:
        out.warnings.append(Issue(
            "gaps", f"保存后村内仍有 {_fmt_m2(out.gap_m2)} 平方米({out.gap_pct:.2f}%)未划入网格(地图上斜线区域)。",
            f"After saving, {_fmt_m2(out.gap_m2)} m² ({out.gap_pct:.2f}%) of the village are in no grid "
            "(hatched on the map)."))
    out.ok = not out.errors
    return out


# -- snapping --------------------------------------------------------------------------------

_SNAP_SQL = f"""
WITH c AS (SELECT {_CANDIDATE} AS g),
refs AS (
    SELECT gr.geom FROM grid gr, c
     WHERE gr.village_id = :v AND gr.valid_to IS NULL
       AND NOT (gr.uid = ANY(CAST(:ignore AS uuid[])))
       AND gr.geom && ST_Expand(c.g, :deg)
    UNION ALL SELECT geom FROM village WHERE id = :v
),
ref AS (   -- every reference boundary, in the storage CRS and in metres
    SELECT ST_Collect(ST_Boundary(geom)) AS l4490,
           ST_Transform(ST_Collect(ST_Boundary(geom)), {_METRIC}) AS lm
      FROM refs
),
refpts AS (SELECT DISTINCT d.geom AS p FROM ref, ST_DumpPoints(ref.lm) d),
cv AS (
    SELECT d.path, d.geom AS p FROM c, ST_DumpPoints(ST_Transform(c.g, {_METRIC})) d
),
moved AS (   -- each vertex: to the nearest reference vertex, else onto the nearest edge, within tol
    SELECT cv.path, cv.p AS old,
           coalesce((SELECT r.p FROM refpts r WHERE ST_DWithin(r.p, cv.p, :tol) ORDER BY r.p <-> cv.p LIMIT 1),
                    (SELECT ST_ClosestPoint(ref.lm, cv.p) FROM ref WHERE ST_DWithin(ref.lm, cv.p, :tol)),
                    cv.p) AS p
      FROM cv
),
rings AS (
    SELECT path[1] AS part, path[2] AS ring,
           ST_RemoveRepeatedPoints(ST_MakeLine(p ORDER BY path[3])) AS line
      FROM moved GROUP BY path[1], path[2]
),
good AS (SELECT * FROM rings WHERE ST_NPoints(line) >= 4 AND ST_IsClosed(line)),
polys AS (
    SELECT s.part, ST_MakePolygon(s.line, coalesce(
               (SELECT array_agg(h.line ORDER BY h.ring) FROM good h WHERE h.part = s.part AND h.ring > 1),
               '{{}}')) AS poly
      FROM good s WHERE s.ring = 1
),
snapped AS (  -- then the neighbours' vertices along the snapped edges, so shared edges match
    SELECT ST_Snap(ST_MakeValid(ST_Collect(poly)), (SELECT ST_Collect(p) FROM refpts), :tol) AS gm FROM polys
),
back AS (     -- bit-identical vertices where they coincide with a neighbour's (within ~1 cm)
    SELECT ST_Snap(ST_Transform(snapped.gm, 4490), ref.l4490, 1e-7) AS g FROM snapped, ref
)
SELECT ST_AsBinary(ST_Multi(ST_CollectionExtract(ST_MakeValid(back.g), 3))) AS g,
       (SELECT count(*) FROM moved WHERE path[3] > 1 AND NOT ST_Equals(moved.p, moved.old)) AS moved
  FROM back
"""

_SLIVER_SQL = f"""
WITH s AS (SELECT ST_GeomFromWKB(:snapped, 4490) AS g),
v AS (SELECT geom FROM village WHERE id = :v),
nb AS (
    SELECT ST_Union(gr.geom) AS geom FROM grid gr, s
     WHERE gr.village_id = :v AND gr.valid_to IS NULL AND NOT (gr.uid = ANY(CAST(:ignore AS uuid[])))
       AND gr.geom && ST_Expand(s.g, :deg)
),
bad AS (     -- thin pieces over a neighbour or outside the village: trimmed
    SELECT d.geom FROM s, nb, ST_Dump(ST_CollectionExtract(ST_Intersection(s.g, nb.geom), 3)) d
     WHERE ST_IsEmpty(ST_Buffer(ST_Transform(d.geom, {_METRIC}), -:half))
    UNION ALL
    SELECT d.geom FROM s, v, ST_Dump(ST_CollectionExtract(ST_Difference(s.g, v.geom), 3)) d
     WHERE ST_IsEmpty(ST_Buffer(ST_Transform(d.geom, {_METRIC}), -:half))
),
trimmed AS (
    SELECT CASE WHEN EXISTS (SELECT 1 FROM bad)
                THEN ST_Difference(s.g, (SELECT ST_Union(geom) FROM bad)) ELSE s.g END AS g FROM s
),
holes AS (   -- thin gaps along the candidate, inside the village and in no grid: filled
    SELECT d.geom FROM trimmed, v, nb,
           ST_Dump(ST_CollectionExtract(
               ST_Difference(ST_Intersection(ST_Transform(ST_Buffer(ST_Transform(trimmed.g, {_METRIC}), :tol), 4490), v.geom),
                             ST_Union(trimmed.g, coalesce(nb.geom, 'GEOMETRYCOLLECTION EMPTY'::geometry))), 3)) d
     WHERE ST_IsEmpty(ST_Buffer(ST_Transform(d.geom, {_METRIC}), -:half))
       AND ST_Intersects(d.geom, ST_Transform(ST_Buffer(ST_Transform(trimmed.g, {_METRIC}), 0.01), 4490))
)
SELECT ST_AsBinary(ST_Multi(ST_CollectionExtract(ST_MakeValid(
           CASE WHEN EXISTS (SELECT 1 FROM holes)
                THEN ST_Union(trimmed.g, (SELECT ST_Union(geom) FROM holes)) ELSE trimmed.g END), 3))) AS g,
       coalesce((SELECT sum(ST_Area(ST_Transform(geom, {_METRIC}))) FROM bad), 0) AS trimmed_m2,
       coalesce((SELECT sum(ST_Area(ST_Transform(geom, {_METRIC}))) FROM holes), 0) AS filled_m2
  FROM trimmed
"""


def _deg(metres: float) -> float:
    """A generous bbox margin in degrees for ``metres`` (longitude degrees shrink with latitude)."""
    return 2.0 * metres / 111_000.0 / 0.5


def snap(
    session: Session,
    village_id: int,
    geometry,
    tolerance_m: float = DEFAULT_SNAP_M,
    *,
    ignore_uids: Iterable[str] = (),
) -> SnapResult:
    """Snap a candidate's vertices to the village boundary and neighbouring grid edges.

    In EPSG:4549 (metres): every vertex within ``tolerance_m`` of a reference
    vertex (neighbouring current grids, the village boundary) moves onto it, else
    onto the nearest reference edge if that is within the tolerance; then
    ``ST_Snap`` inserts the reference vertices that lie along the snapped edges.
    Back in EPSG:4490, vertices within ~1 cm of a reference vertex are made
    identical to it (``ST_Snap`` with 1e-7°), so shared edges match exactly.
    Finally slivers thinner than the tolerance are removed: thin overlaps with
    neighbours and thin parts outside the village are cut off, thin gaps between
    the candidate and its neighbours are filled.

    Parameters
    ----------
    session : Session
    village_id : int
    geometry : dict, str or shapely geometry
    tolerance_m : float
        Snapping distance in metres, 0 < tolerance ≤ :data:`MAX_SNAP_M`.
    ignore_uids : iterable of str
        Grids not to snap to (the grid being edited).

    Returns
    -------
    SnapResult

    Raises
    ------
    GridInputError
        Unreadable geometry or a tolerance out of range, or snapping collapsed the polygon.
    """
    geom = geometry if isinstance(geometry, (Polygon, MultiPolygon)) else parse_polygon(geometry)
    try:
        tol = float(tolerance_m)
    except (TypeError, ValueError):
        tol = float("nan")
    if not (math.isfinite(tol) and 0 < tol <= MAX_SNAP_M):
        raise GridInputError(f"吸附距离须在 0–{MAX_SNAP_M:g} 米之间。",
                             f"The snapping distance must be between 0 and {MAX_SNAP_M:g} m.", "tolerance")
    village = _village_row(session, village_id)
    ignore = [_check_uid(u) for u in ignore_uids]
    params = {"wkb": _wkb(geom), "v": village["id"], "ignore": ignore, "tol": tol, "deg": _deg(tol)}
    row = session.execute(text(_SNAP_SQL), params).mappings().one()
    if row["g"] is None:
        raise GridInputError("吸附后多边形退化,请减小吸附距离。",
                             "Snapping collapsed the polygon; use a smaller distance.", "snap_collapsed")
    fix = session.execute(text(_SLIVER_SQL), {
        "snapped": bytes(row["g"]), "v": village["id"], "ignore": ignore, "deg": _deg(tol), "tol": tol, "half": tol / 2,
    }).mappings().one()
    cleaned = drop_specks(shapely.from_wkb(bytes(fix["g"])))
    final = session.execute(text(
        f"SELECT ST_AsGeoJSON(g, {_GJ_DIGITS})::json AS gj, ST_NPoints(g) AS n, ST_IsEmpty(g) AS empty"
        " FROM (SELECT ST_Multi(ST_GeomFromWKB(:g, 4490)) AS g) x"
    ), {"g": _wkb(cleaned)}).mappings().one()
    if final["empty"]:
        raise GridInputError("吸附后多边形退化,请减小吸附距离。",
                             "Snapping collapsed the polygon; use a smaller distance.", "snap_collapsed")
    return SnapResult(
        geometry=final["gj"], tolerance_m=tol, moved=int(row["moved"]), vertices_before=count_vertices(geom),
        vertices_after=int(final["n"]), trimmed_m2=float(fix["trimmed_m2"]), filled_m2=float(fix["filled_m2"]),
    )


# -- changes ------------------------------------------------------------------------------------

def _lock(session: Session, village_id: int) -> None:
    session.execute(text("SELECT dvmap_grid_lock(:v)"), {"v": int(village_id)})


def _grid_row(session: Session, uid: str) -> Mapping:
    """The current version of ``uid``; StaleGrid if it was closed meanwhile, GridNotFound if unknown."""
    row = session.execute(text(
        """
        SELECT g.id, g.uid::text AS uid, g.version, g.village_id, g.code, g.name, g.worker_id, g.valid_from
          FROM grid g WHERE g.uid = CAST(:u AS uuid) AND g.valid_to IS NULL
        """
    ), {"u": uid}).mappings().first()
    if row is not None:
        return row
    last = session.execute(
        text("SELECT code, max(version) AS v FROM grid WHERE uid = CAST(:u AS uuid) GROUP BY code ORDER BY 2 DESC"),
        {"u": uid},
    ).first()
    if last is None:
        raise GridNotFound("网格")
    raise StaleGrid(f"网格 {last.code} 已被他人删除或合并,请刷新后重试。未保存任何内容。",
                    f"Grid {last.code} was deleted or merged by someone else; reload and try again. "
                    "Nothing was saved.")


def _locked_current(session: Session, expected: Mapping[str, int]) -> list[Mapping]:
    """Lock the village of the grids in ``expected`` (uid → version) and check their versions."""
    if not expected:
        raise GridInputError("未选择网格。", "No grid selected.", "no_grid")
    uids = {_check_uid(u): _check_version(v) for u, v in expected.items()}
    first = _grid_row(session, next(iter(uids)))
    _lock(session, first["village_id"])
    rows = []
    for uid, version in uids.items():
        row = _grid_row(session, uid)  # re-read after the lock: sees every committed change
        if row["village_id"] != first["village_id"]:
            raise GridInputError("所选网格不在同一个村。", "The selected grids are not in the same village.",
                                 "different_villages")
        if row["version"] != version:
            raise StaleGrid(code=row["code"], expected=version, current=row["version"])
        rows.append(row)
    return rows


def _next_codes(session: Session, village_id: int, n: int) -> list[str]:
    """``n`` fresh codes: one past the highest sequence the village ever used (codes are not reused)."""
    row = session.execute(text(
        "SELECT v.code, coalesce(max(substr(g.code, 13, 3)::integer), 0) AS top"
        "  FROM village v LEFT JOIN grid g ON g.village_id = v.id WHERE v.id = :v GROUP BY v.code"
    ), {"v": village_id}).first()
    if row is None:
        raise GridNotFound("村")
    if row.top + n > MAX_GRIDS:
        raise GridInputError(f"该村网格编号已用尽(最多 {MAX_GRIDS} 个),请先重新编号。",
                             f"The village has used all {MAX_GRIDS} grid numbers; renumber first.",
                             "codes_exhausted")
    return [f"{row.code}{row.top + i + 1:03d}" for i in range(n)]


def _default_name(village_name: str, code: str) -> str:
    return f"{village_name}第{int(code[-3:]):02d}网格"


def _check_worker(session: Session, village_id: int, worker_id) -> int | None:
    if worker_id is None or worker_id == "":
        return None
    try:
        wid = int(worker_id)
    except (TypeError, ValueError):
        wid = -1
    ok = session.execute(text(
        "SELECT EXISTS (SELECT 1 FROM person WHERE id = :p AND village_id = :v AND duty = 'grid_worker' AND active)"
    ), {"p": wid, "v": village_id}).scalar()
    if not ok:
        raise GridInputError(f"网格员不存在、已停用或不属于本村:{worker_id}",
                             f"Unknown or inactive grid worker, or not of this village: {worker_id}", "worker")
    return wid


@dataclass
class _New:
    """A grid version to insert: geometry from WKB or copied from an existing row."""

    uid: str
    code: str
    name: str
    worker_id: int | None
    wkb: bytes | None = None
    copy_of: int | None = None


_TOPOLOGY_CODES = {"DG001": "too_many_vertices", "DG002": "too_small", "DG003": "outside", "DG004": "overlap",
                   "DG005": "village"}


def _db_error(exc: DBAPIError) -> GridError | None:
    """Map the database's refusals (trigger, unique indexes) to typed errors."""
    orig = getattr(exc, "orig", None)
    diag = getattr(orig, "diag", None)
    state = getattr(orig, "sqlstate", None) or getattr(diag, "sqlstate", None) or ""
    if state in _TOPOLOGY_CODES:
        message = getattr(diag, "message_primary", "") or str(orig)
        zh, _, en = message.partition(" / ")
        try:
            detail = json.loads(getattr(diag, "message_detail", None) or "{}")
        except ValueError:
            detail = {}
        err = GridTopologyError(f"数据库拒绝保存:{zh}。未保存任何内容。",
                                f"The database refused the change: {en or zh}. Nothing was saved.", state, detail)
        err.code = _TOPOLOGY_CODES[state]
        return err
    if state == "23505":  # unique_violation
        constraint = getattr(diag, "constraint_name", "") or ""
        if "uid" in constraint:
            return StaleGrid("网格已被他人同时修改,请刷新后重试。未保存任何内容。",
                             "The grid was changed by someone else at the same time; reload and try again. "
                             "Nothing was saved.")
        if "code" in constraint:
            return GridTopologyError("网格编号已被占用,请刷新后重试。未保存任何内容。",
                                     "The grid code is already taken; reload and try again. Nothing was saved.",
                                     state)
    return None


def _apply(
    session: Session,
    actor: Actor,
    village_id: int,
    action: str,
    close: Sequence[Mapping],
    new: Sequence[_New],
    summary: tuple[str, str],
    detail: dict | None = None,
    undoes: int | None = None,
) -> ChangeResult:
    """Close ``close``, insert ``new``, check topology, re-route events, record the change."""
    ids = session.execute(text(
        "SELECT nextval('grid_change_id_seq') AS change_id,"
        " greatest(clock_timestamp(),"
        "          (SELECT max(valid_from) FROM grid WHERE id = ANY(CAST(:ids AS bigint[])))"
        "           + interval '1 microsecond') AS ts"
    ), {"ids": [r["id"] for r in close]}).mappings().one()
    change_id, ts = ids["change_id"], ids["ts"]
    closed_ids = [r["id"] for r in close]
    if closed_ids:
        n = session.execute(text(
            "UPDATE grid SET valid_to = :ts, changed_by = :by"
            " WHERE id = ANY(CAST(:ids AS bigint[])) AND valid_to IS NULL"
        ), {"ts": ts, "by": actor.name, "ids": closed_ids}).rowcount
        if n != len(closed_ids):
            raise StaleGrid("网格已被他人修改,请刷新后重试。未保存任何内容。",
                            "The grids were changed by someone else; reload and try again. Nothing was saved.")
    created = []
    for item in new:
        geom_sql = "ST_Multi(ST_GeomFromWKB(:wkb, 4490))" if item.wkb is not None else \
            "(SELECT geom FROM grid WHERE id = :copy)"
        row = session.execute(text(
            f"""
            INSERT INTO grid (uid, version, village_id, code, name, geom, worker_id, valid_from, changed_by,
                              change_id)
            VALUES (CAST(:uid AS uuid),
                    coalesce((SELECT max(version) FROM grid WHERE uid = CAST(:uid AS uuid)), 0) + 1,
                    :v, :code, :name, {geom_sql}, :worker, :ts, :by, :change)
            RETURNING id, uid::text AS uid, code, version, name, worker_id,
                      ST_Area(ST_Transform(geom, {_METRIC})) AS area_m2
            """
        ), {"uid": item.uid, "v": village_id, "code": item.code, "name": item.name, "wkb": item.wkb,
            "copy": item.copy_of, "worker": item.worker_id, "ts": ts, "by": actor.name,
            "change": change_id}).mappings().one()
        created.append(dict(row))
    # The database's own check (migration 0006), now rather than at commit.
    session.execute(text("SET CONSTRAINTS grid_topology IMMEDIATE"))
    session.execute(text("SET CONSTRAINTS grid_topology DEFERRED"))
    rerouted = reroute_open_events(session, village_id=village_id, closed_ids=closed_ids,
                                   created_ids=[c["id"] for c in created], actor=actor, change_id=change_id,
                                   at=ts)
    detail = dict(detail or {})
    detail.update(
        closed=[{"id": r["id"], "uid": str(r["uid"]), "code": r["code"], "version": r["version"]} for r in close],
        created=[{"id": c["id"], "uid": c["uid"], "code": c["code"], "version": c["version"],
                  "worker_id": c["worker_id"], "area_m2": round(float(c["area_m2"]), 1)} for c in created],
        rerouted=[e["id"] for e in rerouted],
    )
    zh, en = summary
    if rerouted:
        zh += f";改派 {len(rerouted)} 件未结事件"
        en += f"; {len(rerouted)} open event(s) re-routed"
    session.execute(text(
        """
        INSERT INTO grid_change (id, village_id, at, actor, actor_role, actor_user_id, action, closed_ids,
                                 created_ids, undoes, summary_zh, summary_en, detail)
        VALUES (:id, :v, :ts, :actor, :role, :uid, :action, CAST(:closed AS bigint[]), CAST(:created AS bigint[]),
                :undoes, :zh, :en, CAST(:detail AS jsonb))
        """
    ), {"id": change_id, "v": village_id, "ts": ts, "actor": actor.name, "role": actor.role,
        "uid": actor.user_id, "action": action, "closed": closed_ids, "created": [c["id"] for c in created],
        "undoes": undoes, "zh": zh, "en": en, "detail": json.dumps(detail, ensure_ascii=False, default=str)})
    for c in created:
        c["area_m2"] = float(c["area_m2"])
    return ChangeResult(change_id=change_id, action=action, village_id=village_id, summary_zh=zh, summary_en=en,
                        closed_ids=closed_ids, created=created, rerouted=rerouted, detail=detail)


def _run(session: Session, actor: Actor, body: Callable[[], ChangeResult]) -> ChangeResult:
    """Run one change in a savepoint; map database refusals to typed errors."""
    _check_actor(actor)
    try:
        with session.begin_nested():
            return body()
    except DBAPIError as exc:
        mapped = _db_error(exc)
        if mapped is not None:
            raise mapped from exc
        raise


def _candidate_for(session: Session, village_id: int, geometry, ignore: Sequence[str], clip: bool):
    """Validate ``geometry``; return the shapely geometry to save (clipped when asked and needed)."""
    geom = parse_polygon(geometry)
    check = validate(session, village_id, geom, ignore_uids=ignore)
    if clip and check.clipped and not check.overlaps and check.valid:
        geom = parse_polygon(check.clipped)
        check = validate(session, village_id, geom, ignore_uids=ignore)
    if not check.ok:
        first = check.errors[0]
        raise GridInputError(first.zh + " 未保存任何内容。", first.en + " Nothing was saved.", first.code,
                             check.errors, location=check.reason_location)
    return geom, check


def save_grid(
    session: Session,
    actor: Actor,
    *,
    geometry,
    village_id: int | None = None,
    uid: str | None = None,
    expected_version: int | None = None,
    worker_id: Any = KEEP,
    name: str | None = None,
    clip: bool = False,
) -> ChangeResult:
    """Create a grid, or save a new version of an existing grid's polygon.

    Parameters
    ----------
    session : Session
        A scoped session; the caller commits.
    actor : Actor
        Who saves; the role must be in :data:`WRITE_ROLES`.
    geometry : dict or str
        The polygon (GeoJSON), see :func:`parse_polygon`.
    village_id : int, optional
        Required for a new grid (``uid`` None); ignored for an edit.
    uid : str, optional
        The grid to redraw; None creates a grid with the next free code.
    expected_version : int, optional
        Required with ``uid``: the version the manager edited (optimistic lock).
    worker_id : int or None, optional
        The grid worker (a ``person`` with duty ``grid_worker`` in the village);
        None unassigns; omitted keeps the current one.
    name : str, optional
        New grid's name (default ``<village>第NN网格``); an edit keeps the name unless given.
    clip : bool
        Save the part inside the village when the polygon sticks out.

    Returns
    -------
    ChangeResult

    Raises
    ------
    GridInputError
        The polygon fails validation (every reason in ``issues``); nothing is saved.
    StaleGrid
        The grid changed since ``expected_version``.
    GridNotFound, GridPermissionDenied, GridTopologyError
    """
    def body() -> ChangeResult:
        if uid is None:
            village = _village_row(session, village_id)
            _lock(session, village["id"])
            geom, check = _candidate_for(session, village["id"], geometry, (), clip)
            code = _next_codes(session, village["id"], 1)[0]
            wid = _check_worker(session, village["id"], None if worker_id is KEEP else worker_id)
            label = _clean_name(name) or _default_name(village["name"], code)
            item = _New(str(uuid.uuid4()), code, label, wid, wkb=_wkb(geom))
            return _apply(session, actor, village["id"], "create", [], [item],
                          (f"新建网格 {code}({check.area_m2:,.0f} 平方米)",
                           f"Created grid {code} ({check.area_m2:,.0f} m²)"),
                          {"area_m2": check.area_m2})
        (row,) = _locked_current(session, {uid: expected_version})
        geom, check = _candidate_for(session, row["village_id"], geometry, [row["uid"]], clip)
        wid = row["worker_id"] if worker_id is KEEP else _check_worker(session, row["village_id"], worker_id)
        item = _New(row["uid"], row["code"], _clean_name(name) or row["name"], wid, wkb=_wkb(geom))
        return _apply(session, actor, row["village_id"], "edit", [row], [item],
                      (f"修改网格 {row['code']} 边界(第 {row['version'] + 1} 版,{check.area_m2:,.0f} 平方米)",
                       f"Redrew grid {row['code']} (version {row['version'] + 1}, {check.area_m2:,.0f} m²)"),
                      {"area_m2": check.area_m2})

    return _run(session, actor, body)


def _clean_name(name) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str):
        raise GridInputError("网格名称必须是文字。", "The grid name must be text.", "name")
    name = name.strip()
    if len(name) > 100 or "\x00" in name:
        raise GridInputError("网格名称过长或含非法字符。", "The grid name is too long or has invalid characters.",
                             "name")
    return name or None


def split_grid(session: Session, actor: Actor, uid: str, expected_version: int, line) -> ChangeResult:
    """Split a grid in two along a line drawn across it.

    The larger part keeps the grid's identity (a new version, same code and
    worker); the smaller part becomes a new grid with the next free code and the
    same worker.

    Parameters
    ----------
    uid : str
    expected_version : int
    line : dict or str
        GeoJSON LineString that crosses the grid completely.

    Raises
    ------
    GridInputError
        The line does not cut the grid into exactly two parts, or a part is below
        :data:`MIN_AREA_M2`.
    StaleGrid, GridNotFound, GridPermissionDenied, GridTopologyError
    """
    blade = parse_line(line)

    def body() -> ChangeResult:
        (row,) = _locked_current(session, {uid: expected_version})
        parts = session.execute(text(
            f"""
            SELECT ST_AsBinary(d.geom) AS wkb, ST_Area(ST_Transform(d.geom, {_METRIC})) AS a
              FROM grid g, ST_Dump(ST_CollectionExtract(ST_Split(g.geom, ST_GeomFromWKB(:line, 4490)), 3)) d
             WHERE g.id = :id ORDER BY a DESC
            """
        ), {"id": row["id"], "line": _wkb(blade)}).mappings().all()
        if len(parts) != 2:
            if len(parts) < 2:
                raise GridInputError("分割线必须完整穿过网格(两端都在网格外)。",
                                     "The split line must cross the grid completely (both ends outside it).",
                                     "line_not_across")
            raise GridInputError(f"分割线把网格分成了 {len(parts)} 块,请画一条只穿过一次的线。",
                                 f"The line cuts the grid into {len(parts)} pieces; draw one that crosses once.",
                                 "line_many_parts")
        small = [p for p in parts if p["a"] < MIN_AREA_M2]
        if small:
            raise GridInputError(
                f"分割后有一块面积过小({small[0]['a']:,.1f} 平方米,下限 {MIN_AREA_M2:,.0f})。",
                f"A piece would be too small ({small[0]['a']:,.1f} m², minimum {MIN_AREA_M2:,.0f}).", "too_small")
        code = _next_codes(session, row["village_id"], 1)[0]
        village = _village_row(session, row["village_id"])
        keep = _New(row["uid"], row["code"], row["name"], row["worker_id"], wkb=bytes(parts[0]["wkb"]))
        other = _New(str(uuid.uuid4()), code, _default_name(village["name"], code), row["worker_id"],
                     wkb=bytes(parts[1]["wkb"]))
        return _apply(session, actor, row["village_id"], "split", [row], [keep, other],
                      (f"分割网格 {row['code']}:保留 {row['code']}({parts[0]['a']:,.0f} 平方米),"
                       f"新建 {code}({parts[1]['a']:,.0f} 平方米)",
                       f"Split grid {row['code']}: kept {row['code']} ({parts[0]['a']:,.0f} m²), "
                       f"new {code} ({parts[1]['a']:,.0f} m²)"))

    return _run(session, actor, body)


def merge_grids(session: Session, actor: Actor, expected: Mapping[str, int]) -> ChangeResult:
    """Merge adjacent grids (sharing an edge) into one.

    The largest keeps its identity (code, name, worker) as a new version; the
    others are closed.

    Parameters
    ----------
    expected : mapping of str to int
        uid → the version the manager saw, for two or more grids of one village.

    Raises
    ------
    GridInputError
        Fewer than two grids, or they do not form one connected polygon (they must
        share an edge, not only touch at a point).
    StaleGrid, GridNotFound, GridPermissionDenied, GridTopologyError
    """
    def body() -> ChangeResult:
        if len(set(expected)) < 2:
            raise GridInputError("请至少选择两个相邻网格。", "Select at least two adjacent grids.", "merge_one")
        rows = _locked_current(session, expected)
        merged = session.execute(text(
            f"""
            WITH u AS (SELECT ST_UnaryUnion(ST_Collect(geom)) AS g FROM grid WHERE id = ANY(CAST(:ids AS bigint[])))
            SELECT ST_NumGeometries(ST_Multi(ST_CollectionExtract(g, 3))) AS parts, ST_AsBinary(g) AS wkb,
                   ST_Area(ST_Transform(g, {_METRIC})) AS a,
                   (SELECT uid::text FROM grid WHERE id = ANY(CAST(:ids AS bigint[]))
                     ORDER BY ST_Area(geom) DESC, code LIMIT 1) AS keep
              FROM u
            """
        ), {"ids": [r["id"] for r in rows]}).mappings().one()
        if merged["parts"] != 1:
            raise GridInputError("所选网格不相邻(须有共同边界),不能合并。",
                                 "The selected grids are not adjacent (they must share an edge).", "not_adjacent")
        keep = next(r for r in rows if r["uid"] == merged["keep"])
        others = [r for r in rows if r is not keep]
        item = _New(keep["uid"], keep["code"], keep["name"], keep["worker_id"], wkb=bytes(merged["wkb"]))
        codes = "、".join(r["code"] for r in others)
        return _apply(session, actor, keep["village_id"], "merge", rows, [item],
                      (f"合并网格 {codes} 到 {keep['code']}({merged['a']:,.0f} 平方米)",
                       f"Merged grid(s) {', '.join(r['code'] for r in others)} into {keep['code']} "
                       f"({merged['a']:,.0f} m²)"))

    return _run(session, actor, body)


def delete_grid(session: Session, actor: Actor, uid: str, expected_version: int) -> ChangeResult:
    """Delete a grid: its current version is closed and its area becomes a gap until covered."""
    def body() -> ChangeResult:
        (row,) = _locked_current(session, {uid: expected_version})
        return _apply(session, actor, row["village_id"], "delete", [row], [],
                      (f"删除网格 {row['code']}(区域成为未覆盖区)",
                       f"Deleted grid {row['code']} (its area is now a gap)"))

    return _run(session, actor, body)


def assign_worker(session: Session, actor: Actor, uid: str, expected_version: int, worker_id) -> ChangeResult:
    """Assign (or change, or with None remove) a grid's worker: a new version, same polygon.

    Open events of the grid follow to the new worker (re-routed, with history).
    """
    def body() -> ChangeResult:
        (row,) = _locked_current(session, {uid: expected_version})
        wid = _check_worker(session, row["village_id"], worker_id)
        if wid == row["worker_id"]:
            raise GridInputError("该网格员已负责此网格。", "That worker already has this grid.", "same_worker")
        name = None
        if wid is not None:
            name = session.execute(text("SELECT name FROM person WHERE id = :p"), {"p": wid}).scalar()
        item = _New(row["uid"], row["code"], row["name"], wid, copy_of=row["id"])
        return _apply(session, actor, row["village_id"], "assign", [row], [item],
                      (f"网格 {row['code']} 网格员改为 {name or '(无)'}",
                       f"Grid {row['code']}: worker set to {name or '(none)'}"),
                      {"from_worker_id": row["worker_id"], "to_worker_id": wid})

    return _run(session, actor, body)


def renumber_plan(session: Session, village_id: int) -> list[dict]:
    """What :func:`renumber_village` would change: ``uid``, ``old`` and ``new`` code per grid.

    Codes follow :func:`geodata.gridcodes.grid_codes` (west→east, north→south, by centroid).
    """
    village = _village_row(session, village_id)
    rows = session.execute(text(
        "SELECT uid::text AS uid, code, ST_X(ST_Centroid(geom)) AS x, ST_Y(ST_Centroid(geom)) AS y"
        "  FROM grid WHERE village_id = :v AND valid_to IS NULL ORDER BY code"
    ), {"v": village["id"]}).mappings().all()
    if not rows:
        return []
    codes = grid_codes(village["code"], [(r["x"], r["y"]) for r in rows])
    return [{"uid": r["uid"], "old": r["code"], "new": c} for r, c in zip(rows, codes) if r["code"] != c]


def renumber_village(session: Session, actor: Actor, village_id: int,
                     expected_change_id: int | None = None) -> ChangeResult:
    """Renumber the village's grids in reading order (explicit, never automatic).

    Grids whose code changes get a new version with the new code (and the default
    name for it when they had the default name of the old one).

    Parameters
    ----------
    expected_change_id : int, optional
        The village's last change the manager saw (:func:`last_change`); refused
        with :class:`StaleGrid` if another change came in between.
    """
    def body() -> ChangeResult:
        village = _village_row(session, village_id)
        _lock(session, village["id"])
        _check_last(session, village["id"], expected_change_id)
        plan = renumber_plan(session, village["id"])
        if not plan:
            raise GridInputError("网格编号已按顺序排列,无需重新编号。",
                                 "The grid codes are already in reading order.", "already_numbered")
        rows = [_grid_row(session, p["uid"]) for p in plan]
        new = []
        for row, p in zip(rows, plan):
            label = _default_name(village["name"], p["new"]) \
                if row["name"] == _default_name(village["name"], p["old"]) else row["name"]
            new.append(_New(row["uid"], p["new"], label, row["worker_id"], copy_of=row["id"]))
        pairs = ", ".join(f"{p['old'][-3:]}→{p['new'][-3:]}" for p in plan)
        return _apply(session, actor, village["id"], "renumber", rows, new,
                      (f"重新编号 {len(plan)} 个网格({pairs})", f"Renumbered {len(plan)} grid(s) ({pairs})"),
                      {"renumbered": plan})

    return _run(session, actor, body)


def _check_last(session: Session, village_id: int, expected_change_id) -> dict | None:
    last = last_change(session, village_id)
    if expected_change_id is not None:
        try:
            expected = int(expected_change_id)
        except (TypeError, ValueError):
            expected = -1
        if last is None or last["id"] != expected:
            raise StaleGrid("该村网格刚被他人修改,请刷新后再操作。未保存任何内容。",
                            "The village's grids were just changed by someone else; reload first. "
                            "Nothing was saved.")
    return last


def undo_last(session: Session, actor: Actor, village_id: int, expected_change_id: int | None = None) -> ChangeResult:
    """Revert the village's last change (not yet undone) by writing new versions.

    The grids the change created are closed and the versions it closed come
    back as new versions (history is never rewritten); the undo is itself a
    recorded change pointing at the one it reverts. Repeated undos walk back
    through the village's changes.

    Parameters
    ----------
    expected_change_id : int, optional
        The change the manager means to undo; :class:`StaleGrid` if it is no longer the last.

    Raises
    ------
    GridInputError
        Nothing to undo.
    StaleGrid, GridNotFound, GridPermissionDenied, GridTopologyError
    """
    def body() -> ChangeResult:
        village = _village_row(session, village_id)
        _lock(session, village["id"])
        last = _check_last(session, village["id"], expected_change_id)
        if last is None:
            raise GridInputError("没有可撤销的修改。", "There is nothing to undo.", "nothing_to_undo")
        created_uids = session.execute(text(
            "SELECT DISTINCT uid::text FROM grid WHERE id = ANY(CAST(:ids AS bigint[]))"
        ), {"ids": list(last["created_ids"])}).scalars().all()
        current = session.execute(text(
            "SELECT id, uid::text AS uid, version, code, valid_from FROM grid"
            " WHERE uid = ANY(CAST(:u AS uuid[])) AND valid_to IS NULL"
        ), {"u": created_uids}).mappings().all()
        if len(current) != len(created_uids):
            raise StaleGrid("该修改涉及的网格已被再次修改,无法撤销。未保存任何内容。",
                            "The grids of that change were changed again; it cannot be undone. Nothing was saved.")
        restore = session.execute(text(
            "SELECT id, uid::text AS uid, code, name, worker_id FROM grid"
            " WHERE id = ANY(CAST(:ids AS bigint[])) ORDER BY code"
        ), {"ids": list(last["closed_ids"])}).mappings().all()
        new = [_New(r["uid"], r["code"], r["name"], r["worker_id"], copy_of=r["id"]) for r in restore]
        return _apply(session, actor, village["id"], "undo", current, new,
                      (f"撤销:{last['summary_zh']}", f"Undo: {last['summary_en']}"),
                      {"undone_action": last["action"]}, undoes=last["id"])

    return _run(session, actor, body)


def preview(session: Session, change: Callable[..., ChangeResult], *args, **kwargs) -> ChangeResult:
    """Run a change and roll it back: what it would do, including the events it would re-route.

    Parameters
    ----------
    change : callable
        One of the change functions of this module (e.g. :func:`save_grid`).
    *args, **kwargs
        Its arguments.

    Returns
    -------
    ChangeResult
        As the change would return it; nothing stays written.
    """
    savepoint = session.begin_nested()
    try:
        return change(session, *args, **kwargs)
    finally:
        savepoint.rollback()
