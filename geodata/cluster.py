"""The embedded PostgreSQL + PostGIS cluster used when ``DATABASE_URL`` is unset.

The cluster lives in ``<data_dir>/pg`` (git-ignored), listens on 127.0.0.1 at a
private port, and is started and stopped by ``dvmap db start|stop``. It runs from
Debian's ``postgresql-15`` binaries with ``postgresql-15-postgis-3``. When the CLI
runs as root, the server runs as the ``postgres`` system user, because PostgreSQL
refuses to run as root.

Three roles are made, so that the app never connects as the owner of its tables:

* ``postgres`` – superuser, only for creating databases and extensions;
* ``dvmap_owner`` – owns the schema and runs the migrations;
* ``dvmap_app`` – what the web app uses: not owner, not superuser, no BYPASSRLS.
"""
from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from geodata.config import (
    PROJECT_ROOT, RELOCATED_DATA_ROOT, DataDirError, Settings, ensure_writable_dir, postgres_blocked_folder,
)

PG_MAJOR = "15"
APP_ROLE = "dvmap_app"
OWNER_ROLE = "dvmap_owner"
DB_NAME = "dvmap"

INSTALL_HINT = (
    "PostgreSQL 15 with PostGIS 3 is needed. On Debian install it with:\n"
    "    apt-get update && apt-get install -y postgresql-15 postgresql-15-postgis-3\n"
    "or set DATABASE_URL to a PostgreSQL server that has PostGIS 3."
)


#: Row-level security only lets an index serve a user's WHERE clause when the
#: operator is LEAKPROOF; PostGIS does not mark its bounding-box operators so, and
#: then every viewport query on an RLS table is a sequential scan (seen at 1M
#: events). These three compare bounding boxes and raise no data-dependent errors
#: (columns are typmod-constrained to one SRID), so marking them is safe. Needs a
#: superuser: the embedded cluster does it; on another server run it once (README).
LEAKPROOF_SQL = """
ALTER FUNCTION geometry_overlaps(geometry, geometry) LEAKPROOF;
ALTER FUNCTION geometry_contains(geometry, geometry) LEAKPROOF;
ALTER FUNCTION geometry_within(geometry, geometry) LEAKPROOF;
"""


#: A commit acknowledged to a person, a client or the broker must survive a crash of
#: the server: with ``off`` a kill -9 lost events that had been answered 201. Bulk
#: loaders that want the speed use ``SET LOCAL synchronous_commit = off`` in their
#: own transaction. Clusters initialised with ``off`` are corrected at start.
DURABLE_COMMIT_LINE = "synchronous_commit = on"
_ASYNC_COMMIT_RE = re.compile(r"^[ \t]*synchronous_commit[ \t]*=[ \t]*'?off'?[ \t]*(#.*)?$", re.M)


class ClusterError(RuntimeError):
    """The embedded cluster could not be found, created or started."""


@dataclass(frozen=True)
class ClusterUrls:
    superuser: str
    owner: str
    app: str


def _url(user: str, password: str, port: int, db: str) -> str:
    return f"postgresql+psycopg://{quote(user)}:{quote(password)}@127.0.0.1:{port}/{db}"


class LocalCluster:
    """A private PostgreSQL cluster in a data folder of the project's own.

    Parameters
    ----------
    settings : Settings
        Supplies ``data_dir``, ``pg_port`` and optionally ``pg_bindir``.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self.root = Path(settings.data_dir)
        self.pgdata = self.root / "pg"
        self.secrets_file = self.root / "pg-secrets"
        self.logfile = self.root / "pg.log"
        self.port = settings.pg_port

    # -- binaries -------------------------------------------------------
    def bindir(self) -> Path:
        """Locate the PostgreSQL server binaries, or raise with what to install."""
        candidates = [self.settings.pg_bindir, f"/usr/lib/postgresql/{PG_MAJOR}/bin"]
        for cand in candidates:
            if cand and (Path(cand) / "postgres").exists() and (Path(cand) / "initdb").exists():
                return Path(cand)
        raise ClusterError("PostgreSQL 15 server binaries not found.\n" + INSTALL_HINT)

    def check_postgis(self) -> None:
        """Raise a ClusterError naming the package when PostGIS is not installed."""
        sharedir = Path(f"/usr/share/postgresql/{PG_MAJOR}/extension")
        if not list(sharedir.glob("postgis.control")):
            raise ClusterError(f"PostGIS extension not found in {sharedir}.\n" + INSTALL_HINT)

    # -- running as the postgres user when root -------------------------
    def _run_as(self) -> str | None:
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam("postgres")
        except KeyError as exc:  # pragma: no cover - Debian's package makes the user
            raise ClusterError("Running as root but no 'postgres' system user.\n" + INSTALL_HINT) from exc
        return "postgres"

    def _cmd(self, args: list[str], **kw) -> subprocess.CompletedProcess:
        user = self._run_as()
        if user:
            args = ["runuser", "-u", user, "--", *args]
        return subprocess.run(args, capture_output=True, text=True, **kw)

    def _unreachable_parent(self) -> Path | None:
        """The first folder above the data folder that the postgres user may not enter (as root)."""
        return postgres_blocked_folder(self.root)

    def _prepare_root(self) -> None:
        try:
            ensure_writable_dir(self.root)
        except DataDirError as exc:
            raise ClusterError(str(exc)) from exc

    def _chown(self, path: Path) -> None:
        user = self._run_as()
        if user:
            pw = pwd.getpwnam(user)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    # -- secrets --------------------------------------------------------
    def _secrets(self) -> dict[str, str]:
        if not self.secrets_file.exists():
            return {}
        pairs = (line.split("=", 1) for line in self.secrets_file.read_text().splitlines() if "=" in line)
        return {k: v for k, v in pairs}

    def _write_secrets(self, values: dict[str, str]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.secrets_file.with_suffix(".tmp")
        tmp.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        tmp.chmod(0o600)
        tmp.replace(self.secrets_file)

    def urls(self, db: str = DB_NAME) -> ClusterUrls:
        """Connection URLs of the three roles for database ``db``."""
        s = self._secrets()
        if not s:
            raise ClusterError(f"No local cluster in {self.root}; run 'dvmap db start'.")
        return ClusterUrls(
            superuser=_url("postgres", s["postgres"], self.port, db),
            owner=_url(OWNER_ROLE, s[OWNER_ROLE], self.port, db),
            app=_url(APP_ROLE, s[APP_ROLE], self.port, db),
        )

    # -- lifecycle ------------------------------------------------------
    def initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def running(self) -> bool:
        if not self.initialized():
            return False
        res = self._cmd([str(self.bindir() / "pg_ctl"), "status", "-D", str(self.pgdata)])
        return res.returncode == 0

    def init(self) -> None:
        """Create the data folder with initdb (idempotent)."""
        bindir = self.bindir()
        self.check_postgis()
        if self.initialized():
            return
        self._prepare_root()
        # The postgres user must be able to reach the folder when we are root.
        os.chmod(self.root, 0o755)
        if self.root.parent == RELOCATED_DATA_ROOT:
            # Moved out of a checkout postgres cannot enter: say whose data this is.
            os.chmod(RELOCATED_DATA_ROOT, 0o755)
            (self.root / "checkout").write_text(f"{PROJECT_ROOT}\n")
        blocked = self._unreachable_parent()
        if blocked is not None:
            raise ClusterError(
                f"The postgres user cannot enter {blocked}, so it cannot reach the data folder {self.root}.\n"
                f"Run 'chmod o+x {blocked}', or set DVMAP_DATA_DIR to a folder it can reach "
                "(e.g. /var/tmp/dvmap)."
            )
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        self._chown(self.pgdata)
        values = {name: secrets.token_urlsafe(18) for name in ("postgres", OWNER_ROLE, APP_ROLE)}
        pwfile = self.root / ".pwfile"
        pwfile.write_text(values["postgres"] + "\n")
        self._chown(pwfile)
        pwfile.chmod(0o600)
        try:
            res = self._cmd([
                str(bindir / "initdb"), "-D", str(self.pgdata), "-U", "postgres",
                "--auth-host=scram-sha-256", "--auth-local=peer", f"--pwfile={pwfile}",
                "-E", "UTF8", "--locale=C.UTF-8",
            ])
        finally:
            pwfile.unlink(missing_ok=True)
        if res.returncode != 0:
            raise ClusterError(f"initdb failed:\n{res.stderr.strip()}")
        conf = self.pgdata / "postgresql.conf"
        with conf.open("a") as fh:
            fh.write(
                "\n# dvmap embedded cluster\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.pgdata}'\n"
                "shared_buffers = 256MB\n"
                "work_mem = 32MB\n"
                "maintenance_work_mem = 256MB\n"
                "max_connections = 100\n"
                "fsync = on\n"
                f"{DURABLE_COMMIT_LINE}\n"
                "jit = off\n"
            )
        self._write_secrets(values)

    def start(self, timeout: float = 30.0) -> None:
        """Start the cluster (initialising it first if needed) and create roles and database."""
        import fcntl

        self._prepare_root()
        # Two processes starting at once (parallel test runs, CLI) must not race.
        with open(self.root / "start.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._start_locked(timeout)

    def _start_locked(self, timeout: float) -> None:
        self.init()
        corrected = self.ensure_durable_commits()
        if not self.running():
            corrected = False  # the server reads the corrected file as it starts
            self._check_port_free()
            logfile = self.logfile
            logfile.touch(exist_ok=True)
            self._chown(logfile)
            res = self._cmd([
                str(self.bindir() / "pg_ctl"), "start", "-D", str(self.pgdata),
                "-l", str(logfile), "-w", "-t", str(int(timeout)), "-o", f"-p {self.port}",
            ])
            if res.returncode != 0:
                tail = logfile.read_text(errors="replace")[-2000:] if logfile.exists() else ""
                raise ClusterError(f"PostgreSQL did not start: {res.stderr.strip()}\n{tail}")
        self._wait_ready(timeout)
        if corrected:
            self._reload()
        self.ensure_roles()
        self.ensure_database(DB_NAME)

    def ensure_durable_commits(self) -> bool:
        """Turn a ``synchronous_commit = off`` line of postgresql.conf into ``on``.

        Returns
        -------
        bool
            True when the file was changed (a running server must reload it).
        """
        conf = self.pgdata / "postgresql.conf"
        if not conf.exists():
            return False
        text_ = conf.read_text()
        fixed = _ASYNC_COMMIT_RE.sub(DURABLE_COMMIT_LINE, text_)
        if fixed == text_:
            return False
        conf.write_text(fixed)  # in place: owner and mode stay the server's
        return True

    def _reload(self) -> None:
        import psycopg

        with psycopg.connect(self._dsn("postgres", "postgres"), autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")

    def stop(self) -> None:
        if self.running():
            res = self._cmd([str(self.bindir() / "pg_ctl"), "stop", "-D", str(self.pgdata), "-m", "fast", "-w"])
            if res.returncode != 0:
                raise ClusterError(f"pg_ctl stop failed: {res.stderr.strip()}")

    def _check_port_free(self) -> None:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", self.port)) == 0:
                raise ClusterError(
                    f"Port {self.port} is in use by another program; set DVMAP_PG_PORT to a free port."
                )

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        dsn = self._dsn("postgres", "postgres")
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(dsn, connect_timeout=3):
                    return
            except psycopg.OperationalError as exc:
                last = exc
                time.sleep(0.3)
        raise ClusterError(f"PostgreSQL on port {self.port} not ready: {last}")

    def _dsn(self, user: str, db: str) -> str:
        pw = self._secrets()[user]
        return f"host=127.0.0.1 port={self.port} user={user} password={pw} dbname={db}"

    def ensure_roles(self) -> None:
        """Create the owner and app roles with their passwords (idempotent)."""
        import psycopg
        from psycopg import sql

        s = self._secrets()
        with psycopg.connect(self._dsn("postgres", "postgres"), autocommit=True) as conn:
            for role, extra in ((OWNER_ROLE, "CREATEROLE"), (APP_ROLE, "")):
                exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
                verb = "ALTER" if exists else "CREATE"
                conn.execute(
                    sql.SQL(verb + " ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS " + extra + " PASSWORD {}").format(
                        sql.Identifier(role), sql.Literal(s[role])
                    )
                )

    def ensure_database(self, name: str) -> None:
        """Create database ``name`` owned by the owner role, with PostGIS (idempotent)."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self._dsn("postgres", "postgres"), autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(name), sql.Identifier(OWNER_ROLE)))
        with psycopg.connect(self._dsn("postgres", name), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            conn.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")  # event (geom, reported_at) index
            conn.execute(LEAKPROOF_SQL)
            # The app role may connect; table privileges come from the migrations.
            conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(name), sql.Identifier(APP_ROLE)))

    def drop_database(self, name: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self._dsn("postgres", "postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def status(self) -> str:
        if not self.initialized():
            return f"not initialised ({self.pgdata})"
        return f"{'running' if self.running() else 'stopped'} on 127.0.0.1:{self.port} ({self.pgdata})"


def which_missing() -> list[str]:
    """Debian packages the embedded cluster needs that are not installed."""
    missing = []
    if not Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin/postgres").exists():
        missing.append(f"postgresql-{PG_MAJOR}")
    if not Path(f"/usr/share/postgresql/{PG_MAJOR}/extension/postgis.control").exists():
        missing.append(f"postgresql-{PG_MAJOR}-postgis-3")
    if shutil.which("runuser") is None and os.geteuid() == 0:
        missing.append("util-linux")
    return missing
