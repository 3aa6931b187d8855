"""The dvmap command's answers to bad situations: one line, non-zero exit, no traceback."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

DVMAP = str(Path(sys.executable).with_name("dvmap"))


def _run(args, **env):
    full_env = {**os.environ, **env}
    return subprocess.run([DVMAP, *args], capture_output=True, text=True, env=full_env, timeout=120)


def test_serve_with_unreachable_database_says_so_in_one_line_with_password_masked():
    res = _run(["serve", "--port", "0"], DATABASE_URL="postgresql://alice:s3cret@127.0.0.1:1/nowhere")
    assert res.returncode != 0
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    assert "127.0.0.1:1/nowhere" in lines[0] and "s3cret" not in lines[0] and "***" in lines[0]
    assert "Traceback" not in res.stderr


def test_serve_on_a_port_in_use_is_a_clear_error(pg):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        res = _run(["serve", "--port", str(port)], DATABASE_URL=pg.app_url)
    assert res.returncode != 0
    assert "already in use" in res.stderr and "Traceback" not in res.stderr


def test_db_url_masks_the_password(pg):
    res = _run(["db", "url"], DATABASE_URL=pg.app_url)
    assert res.returncode == 0 and "***" in res.stdout


def test_demo_data_twice_does_not_duplicate(pg, demo_db, owner_engine):
    from tests.conftest import scalar

    before = scalar(owner_engine, "SELECT count(*) FROM village")
    res = _run(["demo-data"], DATABASE_URL=pg.owner_url)
    assert res.returncode == 0, res.stderr
    assert "already" in res.stdout.lower() or "已存在" in res.stdout
    assert scalar(owner_engine, "SELECT count(*) FROM village") == before == 137
