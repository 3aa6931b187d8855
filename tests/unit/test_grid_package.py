"""geodata.grids as a package and the grid editor's action dispatch (no database needed)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from dash import no_update
from dash._callback_context import context_value
from dash._utils import AttributeDict

from geodata import grids as G

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "geodata" / "grids"


def test_every_exported_name_resolves():
    assert len(G.__all__) == len(set(G.__all__)) >= 40
    assert [n for n in G.__all__ if not hasattr(G, n)] == []
    assert G.KEEP is not None and G.save_grid.__module__ == "geodata.grids.changes"


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")) + [ROOT / "callbacks" / "grids.py"],
                         ids=lambda p: p.name)
def test_modules_and_functions_stay_small(path):
    source = path.read_text(encoding="utf-8")
    assert source.count("\n") < 600
    long = [f"{n.name}: {n.end_lineno - n.lineno + 1}" for n in ast.walk(ast.parse(source))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 80]
    assert long == []


def test_srids_come_from_config():
    files = [*PACKAGE.glob("*.py"), ROOT / "geodata" / "grid_reroute.py", ROOT / "callbacks" / "grids.py"]
    hits = [f"{p.name}:{i}" for p in files for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
            if re.search(r"\b(4490|4549)\b", line)]
    assert hits == []


# -- the editor's dispatch -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def cb():
    import callbacks.grids as cb

    return cb


def _fire(cb, prop_id: str, value, **values):
    """Call ``interact`` as Dash would when ``prop_id`` fired with ``value``."""
    context_value.set(AttributeDict(triggered_inputs=[{"prop_id": prop_id, "value": value}]))
    state = {k: None for k in ("village", "click", "drawn", "grids", "hideout", "mode", "selected", "sketch",
                               "pending", "tolerance", "worker", "vstate", "refresh")}
    state["lang"] = "en"
    state.update(values)
    return cb.interact(**state)


def test_every_input_of_the_editor_has_a_handler(cb):
    dependencies = [c for c in __import__("dash")._callback.GLOBAL_CALLBACK_LIST
                    if "grid-mode.data" in c["output"]]
    assert len(dependencies) == 1
    inputs = [i["id"] for i in dependencies[0]["inputs"]]
    keys = {i if not i.startswith("{") else "grid-row" for i in inputs}
    assert keys == set(cb._HANDLERS)


def test_a_button_that_only_rendered_changes_nothing(cb):
    out = _fire(cb, "grid-btn-save.n_clicks", 0, village="5")
    assert set(out) == set(cb._OUTPUTS) and all(v is no_update for v in out.values())


def test_without_a_village_each_tool_asks_for_one(cb):
    for button in ("grid-btn-new", "grid-btn-save", "grid-btn-delete", "grid-btn-undo"):
        out = _fire(cb, f"{button}.n_clicks", 1)
        assert "Choose a village first" in str(out["message"])
        assert out["mode"] is no_update and out["pending"] is no_update


def test_choosing_a_village_resets_the_editor(cb):
    out = _fire(cb, "grid-village.value", "5", village="5", refresh=3,
                mode={"mode": "edit", "uid": "x", "version": 2})
    assert out["mode"] == {"mode": "idle"} and out["sketch"] is None and out["confirm_open"] is False
    assert out["toolbar"]["n_clicks"] == 4 and out["selected"] is None


def test_save_with_nothing_drawn_says_so_and_a_tool_needs_a_selection(cb):
    out = _fire(cb, "grid-btn-save.n_clicks", 1, village="5", mode={"mode": "idle"})
    assert "Nothing to save" in str(out["message"]) and out["pending"] is no_update
    out = _fire(cb, "grid-btn-edit.n_clicks", 1, village="5", grids={"features": []})
    assert "Select a grid first" in str(out["message"]) and out["mode"] is no_update


def test_merge_mode_collects_clicked_grids(cb):
    feats = [{"type": "Feature", "geometry": None,
              "properties": {"uid": u, "version": v, "code": f"33052100120000{i}", "worker_id": None}}
             for i, (u, v) in enumerate([("a", 1), ("b", 3)], 1)]
    out = _fire(cb, '{"type":"grid-row","uid":"b"}.n_clicks', 1, village="5", grids={"features": feats},
                mode={"mode": "merge", "merge": ["a"], "versions": {"a": 1}},
                hideout={"selected": None, "merge": ["a"], "editing": None})
    assert out["mode"] == {"mode": "merge", "merge": ["a", "b"], "versions": {"a": 1, "b": 3}}
    assert out["hideout"]["merge"] == ["a", "b"] and "2 grids selected" in str(out["message"])
