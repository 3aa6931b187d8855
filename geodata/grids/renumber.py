"""Renumbering a village's grids in reading order (explicit, never automatic)."""
from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.identity import Actor
from geodata.gridcodes import grid_codes
from geodata.grids.errors import GridInputError
from geodata.grids.read import _village_row
from geodata.grids.results import ChangeResult
from geodata.grids.write import _apply, _check_last, _default_name, _grid_row, _lock, _New, _run


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
