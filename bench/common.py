"""Helpers shared by the benchmark modules."""
from __future__ import annotations

import os
import platform
import statistics
import time
from contextlib import contextmanager


def machine() -> str:
    """One line describing this machine: CPU model, cores, memory, Python, PostgreSQL."""
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as fh:
            kb = int(next(line.split()[1] for line in fh if line.startswith("MemTotal")))
            mem = f", {kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}"


def timed(fn, repeat: int = 7, warmup: int = 1) -> list[float]:
    """Run ``fn`` ``warmup + repeat`` times; return the ``repeat`` durations in ms."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def median(values) -> float:
    return statistics.median(values)


def p95(values) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]


@contextmanager
def bench_database(prefix: str = "dvmap_bench"):
    """A throwaway migrated database on the embedded cluster (or DATABASE_URL's server)."""
    from geodata import migrate
    from geodata.cluster import LocalCluster
    from geodata.config import get_settings

    settings = get_settings()
    if settings.database_url:
        from geodata.db import normalise_url, owner_url

        yield {"owner": owner_url(settings), "app": normalise_url(settings.database_url)}
        return
    cluster = LocalCluster(settings)
    cluster.start()
    name = f"{prefix}_{os.getpid()}"
    cluster.drop_database(name)
    cluster.ensure_database(name)
    urls = cluster.urls(name)
    migrate.upgrade(urls.owner)
    try:
        yield {"owner": urls.owner, "app": urls.app, "superuser": urls.superuser, "name": name}
    finally:
        from sqlalchemy.orm import close_all_sessions

        close_all_sessions()
        cluster.drop_database(name)
