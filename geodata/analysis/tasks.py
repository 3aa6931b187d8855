"""From a hot spot to cases: one inspection task (排查任务) per grid of a hot cell.

A grid manager or an official looks at a Gi* hot cell and asks the workers of the
grids it touches to go and look. Each task is an ordinary event (source 上级交办,
the hot cell's most frequent subclass), reported at a point inside the grid and the
cell, opened (立案) and dispatched (派遣) to that grid, so it lands in the grid
worker's list through the normal workflow. The analysis run id is in the event's
description and in the notes of its history rows, and the ``client_key`` is derived
from run id + cell + grid: pressing the button twice creates nothing new.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.analysis.errors import AnalysisError
from geodata.config import STORAGE_SRID
from geodata.events import EventError, create_event, transition
from geodata.identity import Actor
from geodata.workflow import Action, InvalidTransition, PermissionDenied, check_may_report, check_permission

#: ``event_source`` of a task handed down by a manager (no separate 排查 source exists).
TASK_SOURCE = "superior"


@dataclass
class TaskResult:
    """Outcome per grid: created ``(event_id, grid_name)``, ``existing`` (idempotent replays), ``failed``."""

    created: list[tuple[int, str]] = field(default_factory=list)
    existing: list[tuple[int, str]] = field(default_factory=list)
    failed: list[tuple[str, str, str]] = field(default_factory=list)


def may_create_tasks(role: str) -> bool:
    """True when ``role`` may report, open and dispatch (grid managers, officials, admins)."""
    try:
        check_may_report(role)
        check_permission(role, Action.ACCEPT)
        check_permission(role, Action.DISPATCH)
    except PermissionDenied:
        return False
    return True


def dominant_subclass(events: list[dict], fallback: str | None = None) -> str | None:
    """The most frequent ``subclass_code`` of ``events`` (ties: the smaller code), else ``fallback``."""
    counts = Counter(e["subclass_code"] for e in events if e.get("subclass_code"))
    if not counts:
        return fallback
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]


def cell_polygon(unit: str, key: str):
    """The cell's polygon (EPSG:4490) for an H3 index; None for a grid (the grid itself is the cell)."""
    if unit != "h3":
        return None
    import h3

    if not h3.is_valid_cell(str(key)):
        raise AnalysisError("bad_cell", "无效的 H3 单元。", "Invalid H3 cell.")
    return shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(str(key))])


def grids_of_cell(session: Session, unit: str, key: str) -> list[dict]:
    """Current grids a hot cell touches (RLS applies), each with a point inside grid ∩ cell.

    Returns
    -------
    list of dict
        ``id``, ``uid`` (str), ``name``, ``code``, ``worker_id``, ``lon``, ``lat``.
    """
    if unit == "grid":
        try:
            gid = int(key)
        except (TypeError, ValueError):
            raise AnalysisError("bad_cell", "无效的网格编号。", "Invalid grid id.") from None
        cond, params, part = "g.id = :gid", {"gid": gid}, "g.geom"
    elif unit == "h3":
        poly = cell_polygon(unit, key)
        cond = f"ST_Intersects(g.geom, ST_GeomFromText(:wkt, {STORAGE_SRID}))"
        params = {"wkt": poly.wkt}
        part = f"ST_Intersection(g.geom, ST_GeomFromText(:wkt, {STORAGE_SRID}))"
    else:
        raise AnalysisError("bad_unit", f"未知的分析单元:{unit}", f"Unknown analysis unit: {unit}")
    rows = session.execute(text(
        f"""
        SELECT g.id, g.uid::text AS uid, g.name, g.code, g.worker_id,
               ST_X(p) AS lon, ST_Y(p) AS lat
          FROM grid g, LATERAL (SELECT ST_PointOnSurface({part}) AS p) pt
         WHERE g.valid_to IS NULL AND {cond} AND NOT ST_IsEmpty(p)
         ORDER BY g.code
        """), params).mappings()
    return [dict(r) for r in rows]


def create_inspection_tasks(session: Session, run_id: str, unit: str, key: str, subclass: str, actor: Actor,
                            label: str = "") -> TaskResult:
    """Create, open and dispatch one 排查任务 per grid of the hot cell ``key``.

    Parameters
    ----------
    session : Session
        A scoped session; the caller commits. Every grid is its own savepoint, so a grid
        that fails (e.g. outside the actor's villages) is reported and the others go on.
    run_id : str
        The analysis run the tasks come from (in the description, history notes, client_key).
    unit : {'h3', 'grid'}
    key : str
        The H3 index or grid id of the hot cell.
    subclass : str
        ``event_subclass.code`` of the tasks.
    actor : Actor
        Who asks (server-side session); must be allowed to report, open and dispatch.
    label : str
        How the cell is named in the description (e.g. its z-score and count).

    Returns
    -------
    TaskResult

    Raises
    ------
    PermissionDenied
        The role may not create tasks (planners, leaders, workers).
    AnalysisError
        Bad cell, or no grid in the cell.
    """
    if not may_create_tasks(actor.role):
        raise PermissionDenied("只有网格管理员和村/乡镇工作人员可以创建排查任务。",
                               "Only grid managers and village/town staff can create inspection tasks.")
    grids = grids_of_cell(session, unit, key)
    if not grids:
        raise AnalysisError("no_grids", "该单元内没有您可管理的网格。", "No grid you manage lies in this cell.")
    out = TaskResult()
    note = f"排查任务(空间分析 {run_id})/ Inspection task (analysis run {run_id})"
    for g in grids:
        ck = f"analysis:{run_id}:{key}:{g['uid']}"[:200]
        try:
            with session.begin_nested():
                ref = create_event(
                    session, lon=g["lon"], lat=g["lat"], subclass=subclass, source=TASK_SOURCE, actor=actor,
                    description=(f"排查任务:空间分析热点 {label or key},请到网格 {g['name']} 排查。"
                                 f"分析运行 {run_id}。"), client_key=ck, position_source="tap", boundary_m=0)
                if not ref.created:
                    out.existing.append((ref.id, g["name"]))
                    continue
                r1 = transition(session, ref.id, Action.ACCEPT, actor, ref.version, note, client_key=f"{ck}:a"[:200])
                transition(session, ref.id, Action.DISPATCH, actor, r1.version, note, grid_uid=g["uid"],
                           client_key=f"{ck}:d"[:200])
            out.created.append((ref.id, g["name"]))
        except (EventError, InvalidTransition, PermissionDenied) as exc:
            out.failed.append((g["name"], exc.message_zh, exc.message_en))
    return out


__all__ = ["TASK_SOURCE", "TaskResult", "create_inspection_tasks", "dominant_subclass", "grids_of_cell",
           "may_create_tasks"]
