"""Imports point one way: map_app → callbacks → layers → geodata, etl → geodata."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {
    "geodata": {"dash", "dash_leaflet", "dash_mantine_components", "dash_ag_grid", "layers", "callbacks", "map_app", "etl", "flask"},
    "etl": {"dash", "dash_leaflet", "layers", "callbacks", "map_app"},
    "layers": {"callbacks", "map_app"},
    "callbacks": {"map_app"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
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


def test_every_registered_layer_has_a_unique_name_and_titles():
    from layers.registry import LAYERS

    assert len(LAYERS) >= 6
    for name, layer in LAYERS.items():
        assert name == layer.name and layer.title_zh and layer.title_en
