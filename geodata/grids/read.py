"""Reading a village's grids: outlines, current grids, gaps, workers, versions, history.

Everything here is a query under the caller's RLS scope; nothing writes.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Mapping

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.config import METRIC_SRID, STORAGE_SRID
from geodata.grids.errors import GridInputError, GridNotFound
from geodata.grids.geometry import _check_position
from geodata.grids.rules import AREA_EPSILON_M2, GJ_DIGITS, MIN_AREA_M2
from geodata.workflow import OPEN


def _check_uid(uid) -> str:
    try:
        return str(uuid.UUID(str(uid)))
    except (TypeError, ValueError):
        raise GridNotFound("网格") from None


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


def default_village(session: Session, user_id: int | None) -> int | None:
    """The village /grids opens on: the user's last edited one, else the first of a limited scope.

    A county-wide manager without edits gets None: the page opens on the county with
    every village drawn.
    """
    last = session.execute(text(
        "SELECT c.village_id FROM grid_change c JOIN village v ON v.id = c.village_id"
        " WHERE c.actor_user_id = :u ORDER BY c.at DESC LIMIT 1"), {"u": _int(user_id)}).scalar()
    if last is not None:
        return int(last)
    if session.execute(text("SELECT dvmap_scope_all()")).scalar():
        return None
    return session.execute(text("SELECT id FROM village ORDER BY code LIMIT 1")).scalar()


def village_info(session: Session, village_id: int) -> dict | None:
    """One village: code, name, town, area, bounds ``[[s, w], [n, e]]`` and outline (GeoJSON)."""
    row = session.execute(text(
        f"""
        SELECT v.id, v.code, v.name, t.name AS town, v.area_m2,
               ST_XMin(v.geom) AS w, ST_YMin(v.geom) AS s, ST_XMax(v.geom) AS e, ST_YMax(v.geom) AS n,
               ST_AsGeoJSON(v.geom, {GJ_DIGITS})::json AS geometry
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
    ``worker_id``, ``worker``, ``population`` (latest year) with ``population_source``
    and ``population_as_of`` (see :mod:`geodata.grids.population`), ``open_events``,
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
                   ST_AsGeoJSON(g.geom, {GJ_DIGITS})::json AS geometry,
                   json_build_object(
                       'id', g.id, 'uid', g.uid, 'code', g.code, 'name', g.name, 'version', g.version,
                       'worker_id', g.worker_id, 'worker', p.name, 'population', pop.total,
                       'population_source', pop.source, 'population_as_of', pop.as_of,
                       'open_events', coalesce(ev.n, 0),
                       'area_m2', round(ST_Area(ST_Transform(g.geom, {METRIC_SRID}))::numeric, 1),
                       'label', json_build_array(ST_X(lp.pt), ST_Y(lp.pt))) AS properties
              FROM grid g
              LEFT JOIN person p ON p.id = g.worker_id
              LEFT JOIN LATERAL (SELECT total, source, as_of FROM population x WHERE x.grid_uid = g.uid
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
               p.name AS worker, ST_Area(ST_Transform(g.geom, {METRIC_SRID})) AS area_m2, g.valid_from
          FROM grid g LEFT JOIN person p ON p.id = g.worker_id
         WHERE g.uid = CAST(:u AS uuid) AND g.valid_to IS NULL
        """
    ), {"u": _check_uid(uid)}).mappings().first()
    return dict(row) if row else None


def village_gaps(session: Session, village_id: int) -> dict:
    """The village's area covered by no current grid: ``area_m2``, ``pct``, ``geometry`` and ``full``."""
    row = session.execute(text(
        f"""
        WITH v AS (SELECT geom, ST_Area(ST_Transform(geom, {METRIC_SRID})) AS area FROM village WHERE id = :v),
        cover AS (SELECT ST_Union(geom) AS geom FROM grid WHERE village_id = :v AND valid_to IS NULL),
        gap AS (
            SELECT ST_Collect(d.geom) AS geom
              FROM v, cover,
                   ST_Dump(ST_CollectionExtract(coalesce(ST_Difference(v.geom, cover.geom), v.geom), 3)) d
             WHERE ST_Area(ST_Transform(d.geom, {METRIC_SRID})) > :eps
        )
        SELECT v.area, coalesce(ST_Area(ST_Transform(gap.geom, {METRIC_SRID})), 0) AS gap_m2,
               ST_AsGeoJSON(gap.geom, 9)::json AS geometry
          FROM v, gap
        """
    ), {"v": _int(village_id), "eps": AREA_EPSILON_M2}).mappings().first()
    if row is None:
        raise GridNotFound("村")
    pct = 100.0 * row["gap_m2"] / row["area"] if row["area"] else 0.0
    # "full": no room left for even the smallest grid — a new grid can never be saved.
    return {"area_m2": float(row["gap_m2"]), "pct": pct, "geometry": row["geometry"],
            "full": float(row["gap_m2"]) < MIN_AREA_M2}


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
               ST_Area(ST_Transform(g.geom, {METRIC_SRID})) AS area_m2
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
        f"""
        SELECT g.id, g.uid::text AS uid, g.version, g.code, g.name, g.worker_id, p.name AS worker,
               g.valid_from, g.valid_to
          FROM grid g LEFT JOIN person p ON p.id = g.worker_id
         WHERE g.geom && ST_SetSRID(ST_MakePoint(:x, :y), {STORAGE_SRID})
           AND ST_Intersects(g.geom, ST_SetSRID(ST_MakePoint(:x, :y), {STORAGE_SRID}))
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


# -- shared by validation, snapping and changes ---------------------------------------------

def _village_row(session: Session, village_id) -> Mapping:
    row = session.execute(
        text("SELECT id, code, name FROM village WHERE id = :v"), {"v": _int(village_id)}
    ).mappings().first()
    if row is None:
        raise GridNotFound("村")
    return row

