"""House rules the import check cannot see: one home for states, SRIDs and the display zone.

* **States** — event states are named only in ``geodata/workflow.py`` (and the
  migrations, whose CHECK constraint is compared with :class:`State` by a test). Elsewhere
  code reads ``OPEN``/``CLOSED``/``SETTLED``/``State.X`` and binds them as SQL parameters
  (``= ANY(:open_states)``) or builds SQL from them.
* **SRIDs** — 4490/4549/4326/3857 are written once, in ``geodata/config.py``
  (``STORAGE_SRID``, ``METRIC_SRID``, ``WGS84_SRID``, ``WEB_MERCATOR_SRID``).
* **Display zone** — no fixed +8 h: local days follow ``DVMAP_TIMEZONE`` through
  ``geodata/clock.py`` (``display_zone()``, ``zone_name()``).

The scan reads code, not prose: comments and docstrings may mention ``EPSG:4490`` or
``Asia/Shanghai``. Each rule has a self-test that feeds it a violation.
"""
from __future__ import annotations

import ast
import fnmatch
import re
from pathlib import Path

import pytest

from geodata.workflow import State

ROOT = Path(__file__).resolve().parents[2]
#: Source folders scanned (tests and migrations are exempt everywhere).
SCANNED = ("geodata", "etl", "layers", "callbacks", "map_app", "bench")
EXEMPT = ("geodata/migrations/*",)

STATES = frozenset(s.value for s in State)
SRIDS = (4490, 4549, 4326, 3857)

# -- allow-lists: (path glob, value) → why it is not what the rule hunts -------------------
STATE_ALLOWED: dict[tuple[str, str], str] = {
    ("etl/importers/*", "rejected"): "an import issue kind (a refused feature), not an event state",
    ("geodata/sensors*", "rejected"): "a sensor-ingest outcome (a refused reading)",
    ("geodata/models/sensors.py", "rejected"): "a sensor-ingest outcome (CHECK list of sensor_ingest_daily)",
    ("bench/bench_sensors.py", "rejected"): "a sensor-ingest outcome",
    ("map_app/event_ui.py", "closed"): "the event table's filter group (open/overdue/closed/all) = workflow.CLOSED",
    ("layers/events.py", "closed"): "the event layer's filter group (open/overdue/closed/all) = workflow.CLOSED",
    ("callbacks/events.py", "reported"): "the event table's column id (report time), not a state",
}
SRID_ALLOWED: dict[tuple[str, int], str] = {}
ZONE_ALLOWED: dict[str, str] = {
    "geodata/config.py": "the default of DVMAP_TIMEZONE",
    "geodata/clock.py": "the one reader of DVMAP_TIMEZONE",
}
#: Known debt in files another helper owned this round; the test fails once the file is clean,
#: so the entry is removed with the debt.
ZONE_PENDING: dict[str, str] = {
}


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _sources(skip: tuple[str, ...] = ()) -> list[Path]:
    out = []
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = _rel(path)
            if any(fnmatch.fnmatch(rel, g) for g in EXEMPT + skip):
                continue
            out.append(path)
    return out


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                ids.add(id(body[0].value))
    return ids


def _key_constants(tree: ast.AST) -> set[int]:
    """String constants used as mapping keys (``{"closed": n}``, ``row["closed"]``, ``row.get("closed")``).

    Those name columns and counters (a KPI called ``closed``), not states.
    """
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            ids |= {id(k) for k in node.keys if isinstance(k, ast.Constant)}
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            ids.add(id(node.slice))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in ("get", "pop", "setdefault") and node.args
              and isinstance(node.args[0], ast.Constant)):
            ids.add(id(node.args[0]))
    return ids


def _strings(tree: ast.AST):
    """(node, text) of every string constant that is code, not a docstring."""
    docs = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            yield node, node.value


_SQL_QUOTED = re.compile(r"'([a-z_]+)'")


def state_literals(source: str) -> list[tuple[int, str]]:
    """(line, state) of every event state written as a literal in ``source``.

    A Python string equal to a state (not used as a mapping key), or a single-quoted
    state inside a string (SQL: ``state IN ('closed', …)``, ``THEN 'rejected'``).
    """
    tree = ast.parse(source)
    keys = _key_constants(tree)
    hits = []
    for node, value in _strings(tree):
        if value in STATES:
            if id(node) not in keys:
                hits.append((node.lineno, value))
            continue
        hits += [(node.lineno, m.group(1)) for m in _SQL_QUOTED.finditer(value) if m.group(1) in STATES]
    return hits


_SRID_IN_TEXT = re.compile(r"(?<![\d.])(" + "|".join(map(str, SRIDS)) + r")(?![\d])")


def srid_literals(source: str) -> list[tuple[int, int]]:
    """(line, srid) of every SRID written as a number: an int constant, or digits in a code string."""
    tree = ast.parse(source)
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and type(node.value) is int and node.value in SRIDS:
            hits.append((node.lineno, node.value))
    for node, value in _strings(tree):
        hits += [(node.lineno, int(m.group(1))) for m in _SRID_IN_TEXT.finditer(value)]
    return hits


def fixed_zone_literals(source: str) -> list[tuple[int, str]]:
    """(line, what) of a fixed China offset: ``timedelta(hours=8)``, ``'Asia/Shanghai'``, ``+08:00`` in code."""
    tree = ast.parse(source)
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "timedelta":
            for kw in node.keywords:
                if kw.arg == "hours" and isinstance(kw.value, ast.Constant) and kw.value.value == 8:
                    hits.append((node.lineno, "timedelta(hours=8)"))
    for node, value in _strings(tree):
        if "Asia/Shanghai" in value:
            hits.append((node.lineno, "Asia/Shanghai"))
    return hits


def _allowed(table: dict, rel: str, value) -> bool:
    return any(v == value and fnmatch.fnmatch(rel, g) for (g, v) in table)


# -- the rules ---------------------------------------------------------------------------------

def test_no_state_literal_outside_the_workflow():
    offenders = []
    for path in _sources(skip=("geodata/workflow.py",)):
        rel = _rel(path)
        for line, value in state_literals(path.read_text(encoding="utf-8")):
            if not _allowed(STATE_ALLOWED, rel, value):
                offenders.append(f"{rel}:{line} '{value}'")
    assert not offenders, "state literals outside geodata/workflow.py (use OPEN/CLOSED/State.X):\n" + \
        "\n".join(offenders)


def test_no_srid_literal_outside_config():
    offenders = []
    for path in _sources(skip=("geodata/config.py",)):
        rel = _rel(path)
        for line, srid in srid_literals(path.read_text(encoding="utf-8")):
            if not _allowed(SRID_ALLOWED, rel, srid):
                offenders.append(f"{rel}:{line} {srid}")
    assert not offenders, "SRID literals outside geodata/config.py (use STORAGE_SRID, METRIC_SRID, …):\n" + \
        "\n".join(offenders)


def test_no_fixed_china_offset_outside_the_clock():
    offenders = []
    for path in _sources(skip=tuple(ZONE_ALLOWED)):
        rel = _rel(path)
        hits = fixed_zone_literals(path.read_text(encoding="utf-8"))
        if rel in ZONE_PENDING:
            assert hits, f"{rel} no longer has a fixed offset: remove it from ZONE_PENDING"
            continue
        offenders += [f"{rel}:{line} {what}" for line, what in hits]
    assert not offenders, "fixed +8 h outside geodata/clock.py (use display_zone() / zone_name()):\n" + \
        "\n".join(offenders)


def test_allow_lists_are_explained_and_still_needed():
    for table in (STATE_ALLOWED, SRID_ALLOWED, ZONE_ALLOWED, ZONE_PENDING):
        assert all(isinstance(why, str) and len(why) > 10 for why in table.values())
    for (glob, value) in STATE_ALLOWED:
        used = any(value == v for p in _sources() if fnmatch.fnmatch(_rel(p), glob)
                   for _, v in state_literals(p.read_text(encoding="utf-8")))
        assert used, f"allow-list entry {glob!r}/{value!r} matches nothing any more: remove it"


# -- self-tests: each rule reports a violation fed to it ------------------------------------

@pytest.mark.parametrize("snippet, expected", [
    ("x = 'closed'\n", [(1, "closed")]),
    ("if e.state == 'in_progress':\n    pass\n", [(1, "in_progress")]),
    ("sql = \"SELECT 1 FROM event WHERE state IN ('handled', 'verified')\"\n", [(1, "handled"), (1, "verified")]),
    ("sql = f\"SELECT 1 FROM event e WHERE e.state <> 'rejected' AND e.id = {n}\"\n", [(1, "rejected")]),
    ("rng.choice(['reported', 'accepted'])\n", [(1, "reported"), (1, "accepted")]),
])
def test_state_rule_reports_a_violation(snippet, expected):
    assert sorted(state_literals(snippet)) == sorted(expected)


@pytest.mark.parametrize("snippet", [
    '"""Events that are closed or \'rejected\' in prose."""\n',
    "row = {'closed': 1}\nn = row['closed'] + row.get('reported', 0)\n",
    "from geodata.workflow import OPEN\nparams = {'open_states': [s.value for s in OPEN]}\n",
    "status = 'closing'\n",
])
def test_state_rule_leaves_non_states_alone(snippet):
    assert state_literals(snippet) == []


@pytest.mark.parametrize("snippet, expected", [
    ("gdf.to_crs(4326)\n", [(1, 4326)]),
    ("sql = 'SELECT ST_Transform(geom, 4549) FROM grid'\n", [(1, 4549)]),
    ("crs = 'EPSG:4490'\n", [(1, 4490)]),
    ("sql = f'ST_SetSRID(ST_MakePoint(:x, :y), 3857) {w}'\n", [(1, 3857)]),
])
def test_srid_rule_reports_a_violation(snippet, expected):
    assert srid_literals(snippet) == expected


@pytest.mark.parametrize("snippet", [
    "from geodata.config import STORAGE_SRID\ncrs = f'EPSG:{STORAGE_SRID}'\n",
    '"""Stored in EPSG:4490."""\n',
    "x = 120.4490  # EPSG:4490 in a comment\ny = 44900\n",
])
def test_srid_rule_leaves_config_names_and_prose_alone(snippet):
    assert srid_literals(snippet) == []


@pytest.mark.parametrize("snippet", [
    "from datetime import timedelta, timezone\nCST = timezone(timedelta(hours=8))\n",
    "sql = \"SELECT (t AT TIME ZONE 'Asia/Shanghai')::date\"\n",
    "import datetime\nz = datetime.timezone(datetime.timedelta(hours=8))\n",
])
def test_zone_rule_reports_a_violation(snippet):
    assert fixed_zone_literals(snippet)


def test_zone_rule_leaves_other_durations_alone():
    assert fixed_zone_literals("from datetime import timedelta\nd = timedelta(hours=24)\n") == []
