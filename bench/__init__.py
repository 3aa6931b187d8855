"""Benchmarks: each bench/bench_*.py module defines ``run() -> list[dict]``.

A row is ``{"name", "value", "baseline", "unit", "note"}``: the figure, and a
baseline measured in the same run, so the ratio means something on any machine.
"""
