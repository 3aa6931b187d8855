"""A checkout the postgres user cannot enter (root's ``mktemp -d`` clone) still starts.

The checkout is copied into a fresh ``mktemp -d`` folder (mode 0700), and the
project's own venv runs ``dvmap db start`` and ``dvmap migrate`` from there. As
root the embedded cluster must land in ``/var/lib/dvmap/<hash of the checkout>``
(named in one line); as another user the checkout's ``.dvmap`` is used as is.
This starts a second cluster; only that one is stopped and removed.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import pytest

from geodata.config import PROJECT_ROOT

PACKAGES = ("geodata", "map_app", "callbacks", "layers", "etl", "assets")
ENV_DROP = ("DVMAP_DATA_DIR", "DVMAP_PG_PORT", "DATABASE_URL", "DVMAP_OWNER_URL")


def _port_busy(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def private_clone():
    base = Path(tempfile.mkdtemp(prefix="dvmap-clone-"))
    base.chmod(0o700)  # what mktemp -d gives root
    clone = base / "dvmap"
    clone.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in PACKAGES:
        shutil.copytree(PROJECT_ROOT / name, clone / name, ignore=ignore)
    shutil.copy2(PROJECT_ROOT / "pyproject.toml", clone / "pyproject.toml")
    yield clone
    shutil.rmtree(base, ignore_errors=True)


def _run(clone: Path, env: dict, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    # cwd first on sys.path: the copy's packages, the shared venv's libraries.
    return subprocess.run([sys.executable, *args], cwd=clone, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_cluster_of_an_unreachable_checkout_lands_where_postgres_can_reach_it(private_clone):
    clone = private_clone
    env = {k: v for k, v in os.environ.items() if k not in ENV_DROP}
    probe = _run(clone, env, "-c", "import geodata.config as c; print(c.__file__); print(c.get_settings().data_dir)")
    assert probe.returncode == 0, probe.stderr
    module_file, data_dir = probe.stdout.split()
    assert Path(module_file).is_relative_to(clone)  # the copy's code runs, not /work/main's

    relocated = os.geteuid() == 0
    if relocated:
        expected = Path("/var/lib/dvmap") / hashlib.sha256(str(clone.resolve()).encode()).hexdigest()[:12]
    else:
        expected = clone / ".dvmap"
    assert Path(data_dir) == expected
    port = 54330 + zlib.crc32(str(expected).encode()) % 900
    if _port_busy(port):  # 1 in 900: another cluster owns the derived port
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env["DVMAP_PG_PORT"] = str(port)
    assert not expected.exists()
    try:
        started = _run(clone, env, "-m", "map_app.cli", "db", "start")
        assert started.returncode == 0, started.stdout + started.stderr
        if relocated:
            lines = [ln for ln in started.stdout.splitlines() if "data folder" in ln]
            assert len(lines) == 1 and str(expected) in lines[0] and str(clone.parent) in lines[0], started.stdout
            assert (expected / "checkout").read_text().strip() == str(clone.resolve())
            assert not (clone / ".dvmap").exists()
        assert (expected / "pg" / "PG_VERSION").exists()
        assert (expected / "pg-secrets").exists()
        assert f"running on 127.0.0.1:{port}" in started.stdout
        migrated = _run(clone, env, "-m", "map_app.cli", "migrate")
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        assert "schema at revision" in migrated.stdout
        url = _run(clone, env, "-m", "map_app.cli", "db", "url")
        assert f":{port}/dvmap" in url.stdout
    finally:
        stopped = _run(clone, env, "-m", "map_app.cli", "db", "stop", timeout=60)
        if stopped.returncode != 0 and (expected / "pg" / "postmaster.pid").exists():
            # Only this test's cluster: its own data folder.
            pre = ["runuser", "-u", "postgres", "--"] if relocated else []
            subprocess.run([*pre, "/usr/lib/postgresql/15/bin/pg_ctl", "stop", "-D", str(expected / "pg"),
                            "-m", "immediate", "-w"], capture_output=True, timeout=60)
        shutil.rmtree(expected, ignore_errors=True)
        if relocated:
            try:
                expected.parent.rmdir()  # only when no other checkout keeps data there
            except OSError:
                pass
    assert stopped.returncode == 0, stopped.stderr
    assert not _port_busy(port)
