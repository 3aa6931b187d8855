"""Viewport queries that feed the map layers.

Each function takes a session (already scoped by RLS) and plain values and
returns a GeoJSON FeatureCollection as a dict, built inside PostGIS with
``json_build_object`` so no geometry passes through Python objects. Polygons are
simplified to about one screen pixel at the requested zoom, and features are
cut to the (padded) viewport with the GiST index (``&&``).
"""
from __future__ import annotations

import math
from typing import Sequence

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.config import STORAGE_SRID

BBox = tuple[float, float, float, float]  # west, south, east, north (lon/lat)

EMPTY_FC = {"type": "FeatureCollection", "features": []}


def pixel_tolerance(zoom: float) -> float:
    """Degrees per screen pixel (256-px Web Mercator tiles) at ``zoom``, at ~30°N.

    Parameters
    ----------
    zoom : float
        Map zoom level.

    Returns
    -------
    float
        Simplification tolerance in degrees: about half a pixel, so simplified
        outlines are indistinguishable from the stored ones on screen.
    """
    return 360.0 / (256 * 2 ** max(0.0, zoom)) * 0.5


def _fc(session: Session, sql: str, params: dict) -> dict:
    wrapped = (
        "SELECT json_build_object('type', 'FeatureCollection', 'features',"
        f" coalesce(json_agg(f), '[]'::json)) FROM ({sql}) AS f"
    )
    return session.execute(text(wrapped), params).scalar_one()


def _bbox_params(bbox: BBox) -> dict:
    w, s, e, n = (float(v) for v in bbox)
    if not all(math.isfinite(v) for v in (w, s, e, n)) or w >= e or s >= n:
        raise ValueError(f"invalid bbox {bbox!r}")
    return {"w": w, "s": s, "e": e, "n": n}


_ENVELOPE = f"ST_MakeEnvelope(:w, :s, :e, :n, {STORAGE_SRID})"


def county_extent(session: Session) -> list[list[float]] | None:
    """Bounds ``[[south, west], [north, east]]`` of the county, or None if empty."""
    row = session.execute(
        text("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(geom) e FROM county) x")
    ).one()
    if row[0] is None:
        return None
    return [[row[1], row[0]], [row[3], row[2]]]


def scope_extent(session: Session) -> list[list[float]] | None:
    """Bounds of the villages the caller may see (RLS applies), or None."""
    row = session.execute(
        text("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(geom) e FROM village) x")
    ).one()
    if row[0] is None:
        return None
    return [[row[1], row[0]], [row[3], row[2]]]


def county_info(session: Session) -> dict | None:
    """Name, code and provenance of the county."""
    row = session.execute(text("SELECT code, name, source, source_note FROM county ORDER BY id LIMIT 1")).mappings().first()
    return dict(row) if row else None


def base_outlines(session: Session, zoom: float, kinds: Sequence[str] = ("county", "town")) -> dict:
    """County and/or town outlines: the map's base when no tiles are reachable."""
    tol = pixel_tolerance(zoom)
    return _fc(
        session,
        """
        SELECT 'Feature' AS type, 'county-' || id AS id,
               ST_AsGeoJSON(ST_SimplifyPreserveTopology(geom, :tol), 6)::json AS geometry,
               json_build_object('kind', 'county', 'name', name, 'code', code) AS properties
          FROM county WHERE 'county' = ANY (CAST(:kinds AS text[]))
        UNION ALL
        SELECT 'Feature', 'town-' || id,
               ST_AsGeoJSON(ST_SimplifyPreserveTopology(geom, :tol), 6)::json,
               json_build_object('kind', 'town', 'name', name, 'code', code)
          FROM town WHERE 'town' = ANY (CAST(:kinds AS text[]))
        """,
        {"tol": tol, "kinds": list(kinds)},
    )


def villages(session: Session, bbox: BBox, zoom: float) -> dict:
    """Village polygons in ``bbox`` with name, code, town and population totals."""
    return _fc(
        session,
        f"""
        SELECT 'Feature' AS type, v.id AS id,
               ST_AsGeoJSON(ST_SimplifyPreserveTopology(v.geom, :tol), 6)::json AS geometry,
               json_build_object('id', v.id, 'kind', 'village', 'name', v.name, 'code', v.code,
                                 'town', t.name, 'population', p.total) AS properties
          FROM village v
          JOIN town t ON t.id = v.town_id
          LEFT JOIN population p ON p.village_id = v.id AND p.grid_uid IS NULL
               AND p.year = (SELECT max(year) FROM population)
         WHERE v.geom && {_ENVELOPE}
        """,
        {**_bbox_params(bbox), "tol": pixel_tolerance(zoom)},
    )


def grids(session: Session, bbox: BBox, zoom: float) -> dict:
    """Current grid polygons in ``bbox`` with code, name and worker."""
    return _fc(
        session,
        f"""
        SELECT 'Feature' AS type, g.id AS id,
               ST_AsGeoJSON(ST_SimplifyPreserveTopology(g.geom, :tol), 6)::json AS geometry,
               json_build_object('id', g.id, 'kind', 'grid', 'code', g.code, 'name', g.name,
                                 'worker', pe.name) AS properties
          FROM grid g
          LEFT JOIN person pe ON pe.id = g.worker_id
         WHERE g.valid_to IS NULL AND g.geom && {_ENVELOPE}
        """,
        {**_bbox_params(bbox), "tol": pixel_tolerance(zoom)},
    )


def population(session: Session, level: str, bbox: BBox, zoom: float) -> dict:
    """Population polygons (village or grid level) with total, 60+ share and households."""
    params = {**_bbox_params(bbox), "tol": pixel_tolerance(zoom)}
    year = "(SELECT max(year) FROM population)"
    if level == "grid":
        sql = f"""
        SELECT 'Feature' AS type, g.id AS id,
               ST_AsGeoJSON(ST_SimplifyPreserveTopology(g.geom, :tol), 6)::json AS geometry,
               json_build_object('id', g.id, 'kind', 'grid', 'name', g.name, 'code', g.code,
                                 'total', p.total, 'households', p.households,
                                 'share60', round(p.age_60_plus::numeric / nullif(p.total, 0), 4)) AS properties
          FROM grid g
          JOIN population p ON p.grid_uid = g.uid AND p.year = {year}
         WHERE g.valid_to IS NULL AND g.geom && {_ENVELOPE}
        """
    elif level == "village":
        sql = f"""
        SELECT 'Feature' AS type, v.id AS id,
               ST_AsGeoJSON(ST_SimplifyPreserveTopology(v.geom, :tol), 6)::json AS geometry,
               json_build_object('id', v.id, 'kind', 'village', 'name', v.name, 'code', v.code,
                                 'total', p.total, 'households', p.households,
                                 'share60', round(p.age_60_plus::numeric / nullif(p.total, 0), 4)) AS properties
          FROM village v
          JOIN population p ON p.village_id = v.id AND p.grid_uid IS NULL AND p.year = {year}
         WHERE v.geom && {_ENVELOPE}
        """
    else:
        raise ValueError(f"unknown population level {level!r}")
    return _fc(session, sql, params)


def population_values(session: Session, level: str, metric: str) -> list[float]:
    """All values of ``metric`` at ``level`` in scope (for county-wide class breaks)."""
    expr = {
        "total": "p.total::float",
        "households": "p.households::float",
        "share60": "p.age_60_plus::float / nullif(p.total, 0)",
    }[metric]
    cond = "p.grid_uid IS NOT NULL" if level == "grid" else "p.grid_uid IS NULL"
    if level == "grid":  # only grids that are current
        cond += " AND EXISTS (SELECT 1 FROM grid g WHERE g.uid = p.grid_uid AND g.valid_to IS NULL)"
    rows = session.execute(
        text(f"SELECT {expr} FROM population p WHERE {cond} AND p.year = (SELECT max(year) FROM population)")
    ).scalars()
    return [float(v) for v in rows if v is not None]


def labels(session: Session, level: str, bbox: BBox) -> dict:
    """Label points: town names when zoomed out, village names when zoomed in."""
    if level == "town":
        sql = f"""
        SELECT 'Feature' AS type, 'town-' || id AS id,
               ST_AsGeoJSON(ST_PointOnSurface(geom), 6)::json AS geometry,
               json_build_object('label', name, 'level', 'town') AS properties
          FROM town WHERE geom && {_ENVELOPE}
        """
    else:
        sql = f"""
        SELECT 'Feature' AS type, 'village-' || id AS id,
               ST_AsGeoJSON(label_point, 6)::json AS geometry,
               json_build_object('label', name, 'level', 'village') AS properties
          FROM village WHERE label_point && {_ENVELOPE}
        """
    return _fc(session, sql, _bbox_params(bbox))


def resources(session: Session, bbox: BBox, types: Sequence[str] | None) -> dict:
    """Resource points in ``bbox`` of the given types (all types when None)."""
    return _fc(
        session,
        f"""
        SELECT 'Feature' AS type, r.id AS id, ST_AsGeoJSON(r.geom, 6)::json AS geometry,
               json_build_object('id', r.id, 'kind', 'resource', 'type', r.type, 'name', r.name,
                                 'icon', rt.icon, 'color', rt.color) AS properties
          FROM resource r JOIN resource_type rt ON rt.code = r.type
         WHERE r.geom && {_ENVELOPE}
           AND (CAST(:types AS text[]) IS NULL OR r.type = ANY (CAST(:types AS text[])))
        """,
        {**_bbox_params(bbox), "types": list(types) if types is not None else None},
    )


def sensors(session: Session, bbox: BBox, types: Sequence[str] | None, limit: int = 5000) -> dict:
    """Individual sensor points in ``bbox`` (zoomed-in view)."""
    return _fc(
        session,
        f"""
        SELECT 'Feature' AS type, s.id AS id, ST_AsGeoJSON(s.geom, 6)::json AS geometry,
               json_build_object('id', s.id, 'kind', 'sensor', 'type', s.type, 'code', s.code,
                                 'status', s.status) AS properties
          FROM sensor s
         WHERE s.geom && {_ENVELOPE}
           AND (CAST(:types AS text[]) IS NULL OR s.type = ANY (CAST(:types AS text[])))
         LIMIT :limit
        """,
        {**_bbox_params(bbox), "types": list(types) if types is not None else None, "limit": limit},
    )


def sensors_by_unit(session: Session, level: str, bbox: BBox, types: Sequence[str] | None) -> dict:
    """Sensor counts (all/alarm/offline) per town or per village, at a point inside the unit.

    Used when zoomed out: one small feature per unit instead of thousands of points.
    """
    if level == "town":
        unit = """SELECT t.id, t.name, t.geom, ST_PointOnSurface(t.geom) AS pt, v.id AS village_id
                    FROM town t JOIN village v ON v.town_id = t.id"""
    elif level == "village":
        unit = "SELECT v.id, v.name, v.geom, v.label_point AS pt, v.id AS village_id FROM village v"
    else:
        raise ValueError(f"unknown level {level!r}")
    return _fc(
        session,
        f"""
        WITH unit AS ({unit}),
        counts AS (
            SELECT u.id, count(*) AS n,
                   count(*) FILTER (WHERE s.status = 'alarm') AS alarm,
                   count(*) FILTER (WHERE s.status = 'offline') AS offline
              FROM sensor s JOIN unit u ON u.village_id = s.village_id
             WHERE CAST(:types AS text[]) IS NULL OR s.type = ANY (CAST(:types AS text[]))
             GROUP BY u.id)
        SELECT DISTINCT ON (u.id) 'Feature' AS type, :level || '-' || u.id AS id,
               ST_AsGeoJSON(u.pt, 6)::json AS geometry,
               json_build_object('kind', 'sensor_aggregate', 'level', CAST(:level AS text), 'unit_id', u.id,
                                 'name', u.name, 'count', c.n, 'alarm', c.alarm, 'offline', c.offline,
                                 'bounds', json_build_array(
                                     json_build_array(ST_YMin(u.geom), ST_XMin(u.geom)),
                                     json_build_array(ST_YMax(u.geom), ST_XMax(u.geom)))) AS properties
          FROM unit u JOIN counts c ON c.id = u.id
         WHERE u.pt && {_ENVELOPE}
         ORDER BY u.id
        """,
        {**_bbox_params(bbox), "types": list(types) if types is not None else None, "level": level},
    )


def resource_types(session: Session) -> list[dict]:
    """Resource sub-types (code, names, icon, colour) in display order."""
    rows = session.execute(text("SELECT code, name_zh, name_en, icon, color FROM resource_type ORDER BY sort"))
    return [dict(r._mapping) for r in rows]


def sensor_types(session: Session) -> list[dict]:
    """Sensor sub-types (code, names, unit, main value key) in display order."""
    rows = session.execute(
        text("SELECT code, name_zh, name_en, unit, main_value, report_interval_s FROM sensor_type ORDER BY sort")
    )
    return [dict(r._mapping) for r in rows]


def search_villages(session: Session, query: str, limit: int = 10) -> list[dict]:
    """Villages whose name contains ``query`` or whose code starts with it.

    Returns
    -------
    list of dict
        ``id``, ``name``, ``code``, ``town`` and ``bounds`` ([[s, w], [n, e]]).
    """
    q = (query or "").strip()
    if not q:
        return []
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    like = "%" + escaped + "%"
    rows = session.execute(
        text(
            """
            SELECT v.id, v.name, v.code, t.name AS town,
                   ST_YMin(v.geom) AS s, ST_XMin(v.geom) AS w, ST_YMax(v.geom) AS n, ST_XMax(v.geom) AS e
              FROM village v JOIN town t ON t.id = v.town_id
             WHERE v.name LIKE :like OR v.code LIKE :prefix
             ORDER BY (v.name = :q OR v.code = :q) DESC, v.code
             LIMIT :limit
            """
        ),
        {"like": like, "prefix": escaped + "%", "q": q, "limit": limit},
    ).mappings()
    return [
        {"id": r["id"], "name": r["name"], "code": r["code"], "town": r["town"],
         "bounds": [[r["s"], r["w"]], [r["n"], r["e"]]]}
        for r in rows
    ]


def all_villages(session: Session) -> list[dict]:
    """Every village in scope: id, name, code, town (for the search list)."""
    rows = session.execute(
        text("SELECT v.id, v.name, v.code, t.name AS town FROM village v JOIN town t ON t.id = v.town_id ORDER BY v.code")
    ).mappings()
    return [dict(r) for r in rows]


def village_bounds(session: Session, village_id: int) -> list[list[float]] | None:
    """Bounds of one village, or None when it does not exist (or is out of scope)."""
    row = session.execute(
        text("SELECT ST_YMin(geom), ST_XMin(geom), ST_YMax(geom), ST_XMax(geom) FROM village WHERE id = :id"),
        {"id": village_id},
    ).first()
    return [[row[0], row[1]], [row[2], row[3]]] if row else None
