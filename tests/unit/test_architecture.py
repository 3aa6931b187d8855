"""Imports point one way: map_app → callbacks → layers → geodata, etl → geodata."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {
    "geodata": {"dash", "dash_leaflet", "dash_mantine_components", "dash_ag_grid", "layers", "callbacks", "map_app", "etl", "flask"},
    "etl": {"dash", "dash_leaflet", "layers", "callbacks", "map_app"},
    # layers and callbacks reach files and outside data through geodata, or map_app wires etl in
    "layers": {"callbacks", "map_app", "etl"},
    "callbacks": {"map_app", "etl"},
}


def _imports(path: Path) -> set[str]:
    return _imported(path.read_text(encoding="utf-8"))


def _imported(source: str) -> set[str]:
    """Top-level packages ``source`` imports (also inside functions: a lazy import is an import)."""
    tree = ast.parse(source)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package):
    offenders = []
    for path in (ROOT / package).rglob("*.py"):
        bad = _imports(path) & FORBIDDEN[package]
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, offenders


@pytest.mark.parametrize("snippet", [
    "from etl.analysis_export import export_result\n",
    "def export():\n    import etl.export\n",
])
def test_a_callbacks_to_etl_import_is_reported(snippet):
    assert _imported(snippet) & FORBIDDEN["callbacks"] == {"etl"}


def test_every_registered_layer_has_a_unique_name_and_titles():
    from layers.registry import LAYERS

    assert len(LAYERS) >= 6
    for name, layer in LAYERS.items():
        assert name == layer.name and layer.title_zh and layer.title_en
