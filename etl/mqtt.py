"""MQTT plumbing shared by the ingest worker and the simulator: the broker's URL,
clients configured the project's way, and a private Mosquitto for demos and tests.

``MQTT_URL`` (default ``mqtt://127.0.0.1:1883``) names the broker:
``mqtt://[user:password@]host[:port]``, or ``mqtts://`` for TLS (port 8883 by default).
"""
from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

DEFAULT_URL = "mqtt://127.0.0.1:1883"


@dataclass(frozen=True)
class BrokerAddress:
    """Where the broker is and how to log in."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False

    def masked(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}:***@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}"


def mqtt_url() -> str:
    """The broker URL from ``MQTT_URL`` (default :data:`DEFAULT_URL`)."""
    return os.environ.get("MQTT_URL") or DEFAULT_URL


def parse_mqtt_url(url: str | None = None) -> BrokerAddress:
    """Parse ``mqtt://[user:pw@]host[:port]`` (or ``mqtts://``).

    Raises
    ------
    ValueError
        Another scheme, or no host.
    """
    url = url or mqtt_url()
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError(f"MQTT_URL 须以 mqtt:// 或 mqtts:// 开头 / MQTT_URL must start with mqtt:// or mqtts://: {url}")
    if not parts.hostname:
        raise ValueError(f"MQTT_URL 缺少主机 / MQTT_URL has no host: {url}")
    tls = parts.scheme in ("mqtts", "ssl")
    return BrokerAddress(
        host=parts.hostname, port=parts.port or (8883 if tls else 1883),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None, tls=tls,
    )


def make_client(address: BrokerAddress, client_id: str, *, clean_session: bool, manual_ack: bool = False):
    """A paho-mqtt 2 client (MQTT 3.1.1) that reconnects with backoff (1 s doubling to 30 s).

    Parameters
    ----------
    address : BrokerAddress
    client_id : str
        Fixed for the ingest worker, so the broker keeps its session (subscription
        and queued QoS 1 messages) while it is away.
    clean_session : bool
        False for a persistent session.
    manual_ack : bool
        Acknowledge QoS 1 messages only when :meth:`Client.ack` is called.
    """
    import paho.mqtt.client as mqtt

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session,
        protocol=mqtt.MQTTv311, manual_ack=manual_ack,
    )
    if address.username:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        client.tls_set()
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    # Outgoing QoS 1 messages wait in memory while the broker is away, however many.
    client.max_queued_messages_set(0)
    client.max_inflight_messages_set(100)
    return client


def broker_reachable(address: BrokerAddress, timeout: float = 1.0) -> bool:
    """True when something accepts TCP connections at the broker's address."""
    try:
        with socket.create_connection((address.host, address.port), timeout=timeout):
            return True
    except OSError:
        return False


def probe_broker(address: BrokerAddress, timeout: float = 3.0) -> str:
    """What listens at the broker's address: an MQTT CONNECT must be answered by a CONNACK.

    Returns
    -------
    str
        ``"mqtt"`` (a CONNACK came back, even one refusing our credentials),
        ``"none"`` (nothing accepts connections) or ``"other"`` (something else holds the port).
    """
    import secrets
    import threading

    if not broker_reachable(address, min(timeout, 1.0)):
        return "none"
    answered = threading.Event()
    client = make_client(address, f"dvmap-probe-{os.getpid()}-{secrets.token_hex(3)}", clean_session=True)
    client.on_connect = lambda *_: answered.set()
    try:
        client.connect(address.host, address.port, keepalive=max(5, int(timeout) + 1))
        deadline = time.monotonic() + timeout
        while not answered.is_set() and time.monotonic() < deadline:
            if client.loop(timeout=0.1) != 0:  # the peer hung up or spoke no MQTT
                break
    except (OSError, ValueError):  # TLS handshake refused, garbage instead of a packet
        pass
    finally:
        try:
            client.disconnect()
        except Exception:  # noqa: BLE001 - already gone
            pass
    return "mqtt" if answered.is_set() else "other"


def mosquitto_binary() -> str | None:
    """Path of Debian's ``mosquitto`` (package ``mosquitto``), or None."""
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
    )


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie nobody has reaped yet counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


class LocalBroker:
    """A private Mosquitto: its configuration, persistence and log in one folder.

    Persistence keeps the ingest worker's session and its queued QoS 1 messages
    across a broker restart. The queue per client is unbounded in count (the
    default of 1000 would drop readings while the worker is away) and up to 1000
    messages may be in flight to one client (default 20), so the worker can batch.

    Parameters
    ----------
    folder : Path
    port : int
    host : str
    """

    def __init__(self, folder: Path, port: int, host: str = "127.0.0.1"):
        self.folder = Path(folder)
        self.port = int(port)
        self.host = host

    @property
    def conf_path(self) -> Path:
        return self.folder / "mosquitto.conf"

    @property
    def pid_path(self) -> Path:
        return self.folder / "mosquitto.pid"

    @property
    def log_path(self) -> Path:
        return self.folder / "mosquitto.log"

    @property
    def address(self) -> BrokerAddress:
        return BrokerAddress(self.host, self.port)

    def config(self) -> str:
        """The mosquitto.conf text."""
        return "\n".join([
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {self.folder}/",
            "persistence_file mosquitto.db",
            "autosave_interval 5",
            "max_queued_messages 0",
            "max_queued_bytes 0",
            "max_inflight_messages 1000",
            "persistent_client_expiration 14d",
            f"pid_file {self.pid_path}",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            # When started as root, mosquitto would switch to user 'mosquitto', who cannot
            # write this folder; stay the user who started it.
            f"user {getpass.getuser()}",
            "",
        ])

    def pid(self) -> int | None:
        """The running broker's process id (from its pid file), or None."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def running(self) -> bool:
        return self.pid() is not None and broker_reachable(self.address, 0.5)

    def start(self, timeout: float = 10.0) -> None:
        """Start the broker as a daemon and wait until it accepts connections.

        Raises
        ------
        RuntimeError
            Mosquitto is not installed, or did not come up (its log is quoted).
        """
        if self.running():
            return
        binary = mosquitto_binary()
        if binary is None:
            raise RuntimeError("未安装 mosquitto(apt-get install mosquitto)/ mosquitto is not installed "
                               "(apt-get install mosquitto)")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(self.config())
        subprocess.run([binary, "-c", str(self.conf_path), "-d"], check=False, timeout=timeout,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid() is not None and broker_reachable(self.address, 0.2):
                return
            time.sleep(0.05)
        tail = self.log_path.read_text(errors="replace")[-800:] if self.log_path.exists() else ""
        raise RuntimeError(f"mosquitto did not start on {self.host}:{self.port}: {tail}")

    def stop(self, timeout: float = 10.0, *, kill: bool = False) -> None:
        """Stop the broker (SIGTERM saves its persistence file; ``kill`` is a crash)."""
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if kill:
            self.pid_path.unlink(missing_ok=True)
