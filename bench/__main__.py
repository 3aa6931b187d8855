"""``make bench``: run every bench/bench_*.py and print one table.

    python -m bench              all benchmarks
    python -m bench map sensors  only bench_map.py and bench_sensors.py
"""
from __future__ import annotations

import importlib
import pkgutil
import sys
import time
import traceback

import bench
from bench.common import machine


def _fmt(value, unit):
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.3g} {unit}".strip() if abs(value) < 1000 else f"{value:,.0f} {unit}".strip()
    return f"{value} {unit}".strip()


def main(argv: list[str]) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_"))
    if argv:
        names = [n for n in names if n.removeprefix("bench_") in argv]
    print(f"machine: {machine()}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    rows, failed = [], []
    for name in names:
        t0 = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.{name}")
            for row in module.run():
                rows.append((name.removeprefix("bench_"), row))
        except Exception:  # one broken benchmark must not hide the others' figures
            failed.append(name)
            traceback.print_exc()
        print(f"  ran {name} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    w = max([len(r["name"]) for _, r in rows] + [10])
    print()
    print(f"{'group':<10} {'benchmark':<{w}} {'value':>16} {'baseline':>16} {'ratio':>9}  note")
    print("-" * (w + 70))
    for group, r in rows:
        # ratio = value / baseline: below 1 means less time (or bytes) than the baseline.
        ratio = ""
        if r.get("baseline") not in (None, 0) and r.get("value") is not None:
            ratio = f"{r['value'] / r['baseline']:.3g}×"
        print(f"{group:<10} {r['name']:<{w}} {_fmt(r.get('value'), r.get('unit', '')):>16} "
              f"{_fmt(r.get('baseline'), r.get('unit', '')):>16} {ratio:>9}  {r.get('note', '')}")
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
