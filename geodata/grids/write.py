"""The machinery every grid change shares: lock, check versions, close and insert rows, record.

A change (:mod:`geodata.grids.changes`) decides *what* to close and insert;
:func:`_apply` writes it — old versions closed (``valid_to``), new ones inserted
(``valid_from``), the topology trigger checked at once, open events re-routed,
one ``grid_change`` row — and :func:`_run` wraps it in a savepoint and maps the
database's refusals to typed errors. Single-row writes use SQLAlchemy Core
against :mod:`geodata.models.grids`.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from sqlalchemy import Text, cast, exists, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from geodata.config import METRIC_SRID, STORAGE_SRID
from geodata.identity import Actor
from geodata.grid_reroute import reroute_open_events
from geodata.gridcodes import MAX_GRIDS
from geodata.grids.errors import GridError, GridInputError, GridNotFound, GridPermissionDenied, GridTopologyError, \
    StaleGrid
from geodata.grids.geometry import parse_polygon
from geodata.grids.population import recompute_village
from geodata.grids.read import _check_uid, last_change
from geodata.grids.results import ChangeResult
from geodata.grids.rules import may_edit
from geodata.grids.validate import validate
from geodata.models.admin import Person
from geodata.models.grids import Grid, GridChange

_GRID = Grid.__table__
_CHANGE = GridChange.__table__


# -- checks -------------------------------------------------------------------------------------

def _check_actor(actor: Actor) -> None:
    if not isinstance(actor, Actor) or not may_edit(actor.role):
        raise GridPermissionDenied()


def _check_version(version) -> int:
    try:
        v = int(version)
    except (TypeError, ValueError):
        raise GridInputError("缺少版本号,请刷新后重试。", "The version is missing; reload and try again.",
                             "version") from None
    if v < 1:
        raise GridInputError("版本号无效。", "Invalid version.", "version")
    return v


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


def _check_worker(session: Session, village_id: int, worker_id) -> int | None:
    if worker_id is None or worker_id == "":
        return None
    try:
        wid = int(worker_id)
    except (TypeError, ValueError):
        wid = -1
    ok = session.execute(select(exists().where(
        Person.id == wid, Person.village_id == village_id, Person.duty == "grid_worker", Person.active,
    ))).scalar()
    if not ok:
        raise GridInputError(f"网格员不存在、已停用或不属于本村:{worker_id}",
                             f"Unknown or inactive grid worker, or not of this village: {worker_id}", "worker")
    return wid


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


# -- locking and reading what a change replaces -------------------------------------------------

def _lock(session: Session, village_id: int) -> None:
    session.execute(text("SELECT dvmap_grid_lock(:v)"), {"v": int(village_id)})


def _grid_row(session: Session, uid: str) -> Mapping:
    """The current version of ``uid``; StaleGrid if it was closed meanwhile, GridNotFound if unknown."""
    g = _GRID.c
    row = session.execute(
        select(g.id, cast(g.uid, Text).label("uid"), g.version, g.village_id, g.code, g.name, g.worker_id,
               g.valid_from)
        .where(g.uid == uuid.UUID(uid), g.valid_to.is_(None))
    ).mappings().first()
    if row is not None:
        return row
    last = session.execute(
        select(g.code, func.max(g.version).label("v")).where(g.uid == uuid.UUID(uid))
        .group_by(g.code).order_by(func.max(g.version).desc())
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


# -- writing -------------------------------------------------------------------------------------

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


def _start(session: Session, close: Sequence[Mapping]):
    """The change's id and time: after every version it closes (so ``valid_to > valid_from`` holds)."""
    ids = session.execute(text(
        "SELECT nextval('grid_change_id_seq') AS change_id,"
        " greatest(clock_timestamp(),"
        "          (SELECT max(valid_from) FROM grid WHERE id = ANY(CAST(:ids AS bigint[])))"
        "           + interval '1 microsecond') AS ts"
    ), {"ids": [r["id"] for r in close]}).mappings().one()
    return ids["change_id"], ids["ts"]


def _close_versions(session: Session, closed_ids: list[int], ts, by: str) -> None:
    if not closed_ids:
        return
    n = session.execute(
        update(_GRID).where(_GRID.c.id.in_(closed_ids), _GRID.c.valid_to.is_(None))
        .values(valid_to=ts, changed_by=by)
    ).rowcount
    if n != len(closed_ids):
        raise StaleGrid("网格已被他人修改,请刷新后重试。未保存任何内容。",
                        "The grids were changed by someone else; reload and try again. Nothing was saved.")


def _insert_version(session: Session, item: _New, village_id: int, ts, by: str, change_id: int) -> dict:
    """Insert the next version of ``item.uid`` (version 1 for a new grid)."""
    g = _GRID.c
    uid = uuid.UUID(item.uid)
    if item.wkb is not None:
        geom = func.ST_Multi(func.ST_GeomFromWKB(item.wkb, STORAGE_SRID))
    else:
        geom = select(g.geom).where(g.id == item.copy_of).scalar_subquery()
    version = select(func.coalesce(func.max(g.version), 0) + 1).where(g.uid == uid).scalar_subquery()
    row = session.execute(
        insert(_GRID).values(uid=uid, version=version, village_id=village_id, code=item.code, name=item.name,
                             geom=geom, worker_id=item.worker_id, valid_from=ts, changed_by=by,
                             change_id=change_id)
        .returning(g.id, cast(g.uid, Text).label("uid"), g.code, g.version, g.name, g.worker_id,
                   func.ST_Area(func.ST_Transform(g.geom, METRIC_SRID)).label("area_m2"))
    ).mappings().one()
    return dict(row)


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
    """Close ``close``, insert ``new``, check topology, re-route events, recompute population, record."""
    change_id, ts = _start(session, close)
    closed_ids = [r["id"] for r in close]
    _close_versions(session, closed_ids, ts, actor.name)
    created = [_insert_version(session, item, village_id, ts, actor.name, change_id) for item in new]
    # The database's own check (migration 0006), now rather than at commit.
    session.execute(text("SET CONSTRAINTS grid_topology IMMEDIATE"))
    session.execute(text("SET CONSTRAINTS grid_topology DEFERRED"))
    rerouted = reroute_open_events(session, village_id=village_id, closed_ids=closed_ids,
                                   created_ids=[c["id"] for c in created], actor=actor, change_id=change_id,
                                   at=ts)
    # Population follows the grids in the same transaction: the village total never changes.
    population_source = recompute_village(session, village_id, [c["uid"] for c in created])
    detail = dict(detail or {})
    detail["population_source"] = population_source
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
    session.execute(insert(_CHANGE).values(
        id=change_id, village_id=village_id, at=ts, actor=actor.name, actor_role=actor.role,
        actor_user_id=actor.user_id, action=action, closed_ids=closed_ids, created_ids=[c["id"] for c in created],
        undoes=undoes, summary_zh=zh, summary_en=en,
        # Through JSON text once, as before: values such as Decimal or datetime become strings.
        detail=json.loads(json.dumps(detail, ensure_ascii=False, default=str)),
    ))
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
