"""The grid editor's pending change (``op`` dict in the page's store) → the grid service call.

Split out of callbacks/grids.py, which keeps the editor's state machine.
"""
from __future__ import annotations

from geodata import grids as G
from geodata.identity import Actor


def _save_call(op: dict):
    kw = {"geometry": op["geometry"]}
    if op.get("uid"):
        kw.update(uid=op["uid"], expected_version=op["version"])
    else:
        kw["village_id"] = op["village_id"]
    if "worker_id" in op:
        kw["worker_id"] = op["worker_id"]
    return G.save_grid, (), kw


#: Each pending ``op`` as (service function, positional args after the actor, keyword args).
_CALLS = {
    "save": _save_call,
    "split": lambda op: (G.split_grid, (op["uid"], op["version"], op["line"]), {}),
    "merge": lambda op: (G.merge_grids, (op["expected"],), {}),
    "delete": lambda op: (G.delete_grid, (op["uid"], op["version"]), {}),
    "assign": lambda op: (G.assign_worker, (op["uid"], op["version"], op["worker_id"]), {}),
    "undo": lambda op: (G.undo_last, (op["village_id"],), {"expected_change_id": op.get("expected_change_id")}),
    "renumber": lambda op: (G.renumber_village, (op["village_id"],),
                            {"expected_change_id": op.get("expected_change_id")}),
}


def call(s, actor: Actor, op: dict, preview: bool) -> G.ChangeResult:
    """Run (or preview) one pending change described by ``op``."""
    fn, args, kw = _CALLS[op["op"]](op)
    if preview:
        return G.preview(s, fn, actor, *args, **kw)
    return fn(s, actor, *args, **kw)
