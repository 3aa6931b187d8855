"""The changes a grid manager makes: draw, redraw, split, merge, delete, staff, undo.

Each is one *change* (see :mod:`geodata.grids.write`): the village's advisory
lock, the caller's expected versions checked (optimistic locking →
:class:`~geodata.grids.errors.StaleGrid`), a savepoint so that on any error
nothing is written and the caller's transaction stays usable. :func:`preview`
runs a change and rolls it back.
"""
from __future__ import annotations

import uuid
from typing import Any, Callable, Mapping

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from geodata.config import METRIC_SRID, STORAGE_SRID
from geodata.identity import Actor
from geodata.grids.errors import VILLAGE_FULL, GridInputError
from geodata.grids.geometry import _wkb, parse_line
from geodata.grids.read import _village_row, village_gaps
from geodata.grids.results import KEEP, ChangeResult
from geodata.grids.rules import MIN_AREA_M2
from geodata.grids.write import (_apply, _candidate_for, _check_last, _check_worker, _clean_name, _default_name,
                                 _lock, _locked_current, _New, _next_codes, _run)
from geodata.models.admin import Person

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
    if uid is None:
        return _run(session, actor, lambda: _create(session, actor, village_id, geometry, worker_id, name, clip))
    return _run(session, actor,
                lambda: _redraw(session, actor, uid, expected_version, geometry, worker_id, name, clip))


def _create(session: Session, actor: Actor, village_id, geometry, worker_id, name, clip: bool) -> ChangeResult:
    """:func:`save_grid` for a new grid: the next free code, the default name unless given."""
    village = _village_row(session, village_id)
    _lock(session, village["id"])
    if village_gaps(session, village["id"])["full"]:
        zh, en = VILLAGE_FULL
        raise GridInputError(zh + "未保存任何内容。", en + " Nothing was saved.", "village_full")
    geom, check = _candidate_for(session, village["id"], geometry, (), clip)
    code = _next_codes(session, village["id"], 1)[0]
    wid = _check_worker(session, village["id"], None if worker_id is KEEP else worker_id)
    label = _clean_name(name) or _default_name(village["name"], code)
    item = _New(str(uuid.uuid4()), code, label, wid, wkb=_wkb(geom))
    return _apply(session, actor, village["id"], "create", [], [item],
                  (f"新建网格 {code}({check.area_m2:,.0f} 平方米)",
                   f"Created grid {code} ({check.area_m2:,.0f} m²)"),
                  {"area_m2": check.area_m2})


def _redraw(session: Session, actor: Actor, uid, expected_version, geometry, worker_id, name,
            clip: bool) -> ChangeResult:
    """:func:`save_grid` for an existing grid: a new version with the new polygon."""
    (row,) = _locked_current(session, {uid: expected_version})
    geom, check = _candidate_for(session, row["village_id"], geometry, [row["uid"]], clip)
    wid = row["worker_id"] if worker_id is KEEP else _check_worker(session, row["village_id"], worker_id)
    item = _New(row["uid"], row["code"], _clean_name(name) or row["name"], wid, wkb=_wkb(geom))
    return _apply(session, actor, row["village_id"], "edit", [row], [item],
                  (f"修改网格 {row['code']} 边界(第 {row['version'] + 1} 版,{check.area_m2:,.0f} 平方米)",
                   f"Redrew grid {row['code']} (version {row['version'] + 1}, {check.area_m2:,.0f} m²)"),
                  {"area_m2": check.area_m2})


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
            SELECT ST_AsBinary(d.geom) AS wkb, ST_Area(ST_Transform(d.geom, {METRIC_SRID})) AS a
              FROM grid g, ST_Dump(ST_CollectionExtract(ST_Split(g.geom, ST_GeomFromWKB(:line, {STORAGE_SRID})), 3)) d
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
                   ST_Area(ST_Transform(g, {METRIC_SRID})) AS a,
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
            name = session.execute(select(Person.name).where(Person.id == wid)).scalar()
        item = _New(row["uid"], row["code"], row["name"], wid, copy_of=row["id"])
        return _apply(session, actor, row["village_id"], "assign", [row], [item],
                      (f"网格 {row['code']} 网格员改为 {name or '(无)'}",
                       f"Grid {row['code']}: worker set to {name or '(none)'}"),
                      {"from_worker_id": row["worker_id"], "to_worker_id": wid})

    return _run(session, actor, body)



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
