"""Start-up faults answered in one line: a read-only data folder, a port held by
something that is not an MQTT broker, and two ``dvmap serve`` side by side.

Root ignores permission bits, so the read-only folder is a tmpfs mounted read-only
(EROFS refuses root too); without root a folder of mode 0555 does the same.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
DVMAP = str(Path(sys.executable).parent / "dvmap")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture
def readonly_data_dir():
    """A data folder (with a mosquitto/ inside) on a file system that refuses every write."""
    base = Path(tempfile.mkdtemp(prefix="dvmap-ro-"))
    mounted = os.geteuid() == 0 and _mount("-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(base))
    if os.geteuid() == 0:
        assert mounted, "root could not mount a tmpfs: the read-only case cannot be exercised"
    data = base / "data"
    (data / "mosquitto").mkdir(parents=True)
    if mounted:
        assert _mount("-o", "remount,ro", str(base))
    else:
        for folder in (data / "mosquitto", data):
            folder.chmod(0o555)
    with pytest.raises(OSError):
        (data / "probe").write_text("x")  # really refused, root or not
    try:
        yield data
    finally:
        if mounted:
            subprocess.run(["umount", str(base)], check=True)
        else:
            for folder in (data, data / "mosquitto"):
                folder.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)


def _one_clear_line(res: subprocess.CompletedProcess, folder: Path) -> None:
    out = res.stdout + res.stderr
    assert res.returncode != 0, out
    assert "Traceback" not in out and "Errno" not in out and "Worker failed to boot" not in out, out
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, out
    assert "数据目录不可写" in lines[0] and "not writable" in lines[0] and str(folder) in lines[0], out


def test_read_only_data_folder_is_one_line_for_db_broker_and_serve(readonly_data_dir, pg):
    data = readonly_data_dir
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DVMAP_OWNER_URL", "DVMAP_SECRET_KEY")}
    base["DVMAP_DATA_DIR"] = str(data)

    db = subprocess.run([DVMAP, "db", "start"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                        env={**base, "DVMAP_PG_PORT": str(_free_port())})
    _one_clear_line(db, data)

    broker = subprocess.run([DVMAP, "sensors", "broker", "start"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, env={**base, "MQTT_URL": f"mqtt://127.0.0.1:{_free_port()}"})
    _one_clear_line(broker, data / "mosquitto")

    # A reachable database, so only the folder can fail: the workers would write the session key there.
    serve = subprocess.run([DVMAP, "serve", "--port", str(_free_port()), "--workers", "1"], cwd=ROOT,
                           capture_output=True, text=True, timeout=90,
                           env={**base, "DATABASE_URL": pg.app_url, "DVMAP_OWNER_URL": pg.owner_url})
    _one_clear_line(serve, data)


def test_broker_start_refuses_a_port_held_by_something_else(tmp_path):
    from etl.mqtt import LocalBroker, mosquitto_binary

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    held = []
    stop = threading.Event()

    def accept():  # a plain TCP service: accepts and says nothing
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    env = {**os.environ, "MQTT_URL": f"mqtt://127.0.0.1:{port}", "DVMAP_DATA_DIR": str(tmp_path)}
    try:
        res = subprocess.run([DVMAP, "sensors", "broker", "start"], cwd=ROOT, capture_output=True, text=True,
                             timeout=60, env=env)
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()
    assert res.returncode != 0, res.stdout + res.stderr
    assert "already running" not in res.stdout
    assert "not an MQTT broker" in res.stderr and str(port) in res.stderr
    assert held, "the probe never connected"
    assert not (tmp_path / "mosquitto" / "mosquitto.pid").exists()  # nothing was started

    # A real broker there is still recognised as one.
    assert mosquitto_binary(), "mosquitto is a project dependency (Makefile DEB_PACKAGES)"
    own = LocalBroker(tmp_path / "own-broker", _free_port())
    own.start()
    try:
        res = subprocess.run([DVMAP, "sensors", "broker", "start"], cwd=ROOT, capture_output=True, text=True,
                             timeout=60, env={**env, "MQTT_URL": f"mqtt://127.0.0.1:{own.port}"})
        assert res.returncode == 0 and "already running" in res.stdout, res.stdout + res.stderr
    finally:
        own.stop()


def _serve(port: int, env: dict, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen([DVMAP, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _up(base: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            if requests.get(base + "/healthz", timeout=10).status_code == 200:
                return
        except requests.RequestException:  # refused, or the worker still booting
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail("dvmap serve did not come up:\n" + log.read_text(errors="replace")[-3000:])
        time.sleep(0.5)


def test_two_serve_instances_do_not_share_a_control_socket(pg, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    env.update(HOME=str(home), DATABASE_URL=pg.app_url, DVMAP_OWNER_URL=pg.owner_url,
               DVMAP_DATA_DIR=str(tmp_path / "data"))
    ports = [_free_port(), _free_port()]
    logs = [tmp_path / f"serve-{p}.log" for p in ports]
    procs = [_serve(p, env, log) for p, log in zip(ports, logs)]
    try:
        for p, proc, log in zip(ports, procs, logs):
            _up(f"http://127.0.0.1:{p}", proc, log)
        # gunicorn's default is one per user (~/.gunicorn/gunicorn.ctl); dvmap opens none.
        assert not list(home.rglob("*.ctl")), "a control socket shared by every instance"
        procs[0].send_signal(signal.SIGTERM)
        procs[0].wait(30)
        assert not list(home.rglob("*.ctl"))
        assert requests.get(f"http://127.0.0.1:{ports[1]}/healthz", timeout=30).status_code == 200
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
