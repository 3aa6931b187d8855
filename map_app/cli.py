"""The ``dvmap`` command line: database, migrations, demo data, serving."""
from __future__ import annotations

import os
import socket
import sys

import click

from geodata.config import get_settings


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"dvmap: {message}", err=True)
    sys.exit(code)


def _cluster():
    from geodata.cluster import LocalCluster

    return LocalCluster(get_settings())


def _check_db(url: str) -> None:
    """Fail with one line naming the (masked) URL when the database is unreachable."""
    import psycopg
    from sqlalchemy.engine import make_url

    from geodata.db import mask_url

    try:
        u = make_url(url)
        with psycopg.connect(
            host=u.host or "127.0.0.1", port=u.port or 5432, user=u.username, password=u.password,
            dbname=u.database, connect_timeout=5,
        ) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # any failure here is reported in one line
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        _fail(f"cannot connect to database {mask_url(url)}: {reason}")


def _resolve(kind: str) -> str:
    from geodata.cluster import ClusterError
    from geodata.db import app_url, owner_url

    try:
        return app_url() if kind == "app" else owner_url()
    except ClusterError as exc:
        _fail(str(exc))
    raise AssertionError  # unreachable


@click.group()
def main() -> None:
    """数字乡村一张图 — Digital Village One Map."""


# -- db -----------------------------------------------------------------------
@main.group()
def db() -> None:
    """The embedded PostgreSQL/PostGIS cluster (used when DATABASE_URL is unset)."""


@db.command("start")
def db_start() -> None:
    """Initialise (first time) and start the local cluster."""
    from geodata.cluster import ClusterError

    s = get_settings()
    if not s.embedded:
        click.echo("DATABASE_URL is set: using that server, no local cluster to start.")
        return
    from geodata.config import PROJECT_ROOT, postgres_blocked_folder

    local = PROJECT_ROOT / ".dvmap"
    if s.data_dir != local and not os.environ.get("DVMAP_DATA_DIR"):
        blocked = postgres_blocked_folder(local)
        click.echo(f"数据目录 / data folder: {s.data_dir} (postgres 用户无法进入 / the postgres user cannot "
                   f"enter {blocked}; DVMAP_DATA_DIR overrides)")
    try:
        c = _cluster()
        c.start()
    except ClusterError as exc:
        _fail(str(exc))
    click.echo(f"PostgreSQL {c.status()}")


@db.command("stop")
def db_stop() -> None:
    """Stop the local cluster."""
    from geodata.cluster import ClusterError

    try:
        _cluster().stop()
    except ClusterError as exc:
        _fail(str(exc))
    click.echo("stopped")


@db.command("status")
def db_status() -> None:
    """Say whether the local cluster runs."""
    s = get_settings()
    if not s.embedded:
        from geodata.db import mask_url

        click.echo(f"external server: {mask_url(s.database_url)}")
        return
    click.echo(_cluster().status())


@db.command("url")
@click.option("--owner", is_flag=True, help="The schema owner's URL (migrations) instead of the app's.")
@click.option("--show-password", is_flag=True, help="Print the password instead of masking it.")
def db_url(owner: bool, show_password: bool) -> None:
    """Print the database URL in use."""
    from geodata.db import mask_url

    url = _resolve("owner" if owner else "app")
    click.echo(url if show_password else mask_url(url))


# -- schema and data ------------------------------------------------------------
@main.command()
@click.option("--check", "check_only", is_flag=True,
              help="Change nothing: compare the database with the models (alembic check); exit 1 on drift.")
@click.option("--autogenerate", "message", default=None,
              help="Write a new migration from what the models add (alembic revision --autogenerate).")
@click.option("--rev-id", default=None, help="With --autogenerate: the new revision's number, e.g. 0017.")
@click.option("--head", default="head", show_default=True, help="With --autogenerate: the revision it follows.")
def migrate(check_only: bool, message: str | None, rev_id: str | None, head: str) -> None:
    """Upgrade the schema to the newest migration (or, with --check, compare it with geodata/models)."""
    from geodata import migrate as m

    url = _resolve("owner")
    _check_db(url)
    if message is not None:
        if not rev_id:
            raise click.UsageError("--autogenerate needs --rev-id (the next number, e.g. 0017)")
        click.echo(f"wrote {m.revision(url, message, rev_id, head)}")
        return
    if check_only:
        from alembic.util.exc import CommandError

        try:
            diffs = m.check(url)
        except CommandError as exc:  # e.g. not at the newest revision: nothing to compare yet
            raise click.ClickException(f"无法比较,请先运行 dvmap migrate / cannot compare: {exc}") from exc
        if diffs:
            raise click.ClickException("模型与数据库不一致 / models and database differ:\n" + diffs)
        click.echo(f"models match the database at revision {m.current(url)}")
        return
    m.upgrade(url)
    click.echo(f"schema at revision {m.current(url)}")


@main.command("demo-data")
@click.option("--seed", default=42, show_default=True, help="Random seed; same seed, same county.")
@click.option("--replace", is_flag=True, help="Replace an existing demo county instead of refusing.")
@click.option("--events", "n_events", default=0, show_default=True, type=click.IntRange(0, 50_000_000),
              help="Also bulk-load this many synthetic events (COPY + set-based routing).")
def demo_data(seed: int, replace: bool, n_events: int) -> None:
    """Generate and load the demo county (137 villages), optionally with N events."""
    from etl.demo import DemoAlreadyLoaded, load_demo

    url = _resolve("owner")
    _check_db(url)
    try:
        summary = load_demo(url, seed=seed, replace=replace)
    except DemoAlreadyLoaded as exc:
        click.echo(str(exc))
    else:
        for key, value in summary.items():
            click.echo(f"  {key}: {value}")
    from etl.demo_accounts import ensure_demo_accounts

    if n_events:
        from etl.bulk_events import load_synthetic

        def progress(done, total):
            click.echo(f"  events: {done:,}/{total:,}", err=True)

        click.echo(f"  {load_synthetic(url, n_events, seed=seed, progress=progress)}")
    accounts = ensure_demo_accounts(url)
    if accounts:
        click.echo("\n演示账户 / demo accounts (refused when DVMAP_ENV=production until the password is changed):")
        for a in accounts:
            click.echo(f"  {a['username']:<10} {a['password']:<26} {a['role']:<17} {a['unit']}")


# -- users ----------------------------------------------------------------------
@main.group("users")
def users_group() -> None:
    """User accounts and roles."""


def _user_session():
    from geodata.db import SYSTEM, make_engine, make_sessionmaker, scoped

    url = _resolve("owner")
    _check_db(url)
    return scoped(make_sessionmaker(make_engine(url)), SYSTEM)


def _users_call(fn) -> None:
    from geodata.users import AuthError

    try:
        with _user_session() as s, s.begin():
            fn(s)
    except AuthError as exc:
        _fail(f"{exc.message_zh} / {exc.message_en}")


@users_group.command("add")
@click.argument("username")
@click.option("--role", required=True, help="county_leader|town_official|village_official|grid_manager|grid_worker|planner|admin")
@click.option("--name", "display_name", default=None, help="Display name.")
@click.option("--village", "village_code", default=None, help="12-digit village code (village officials).")
@click.option("--town", "town_code", default=None, help="12-digit town code (town officials).")
@click.option("--person", "person_id", default=None, type=int, help="person id (grid workers).")
@click.password_option(help="Password (asked for when omitted).")
def users_add(username, role, display_name, village_code, town_code, person_id, password):
    """Add a user."""
    from geodata import users

    _users_call(lambda s: users.create_user(s, username, password, role, display_name=display_name,
                                            village_code=village_code, town_code=town_code,
                                            person_id=person_id, actor="cli"))
    click.echo(f"added {username} ({role})")


@users_group.command("list")
def users_list():
    """List users."""
    from geodata import users

    def show(s):
        for u in users.list_users(s):
            unit = u.village_id or u.town_id or u.person_id or "-"
            flags = ("" if u.active else " disabled") + (" demo" if u.is_demo else "")
            click.echo(f"{u.username:<16} {u.role:<17} {str(unit):<6} {u.display_name}{flags}")

    _users_call(show)


@users_group.command("set-role")
@click.argument("username")
@click.argument("role")
@click.option("--village", "village_code", default=None)
@click.option("--town", "town_code", default=None)
@click.option("--person", "person_id", default=None, type=int)
def users_set_role(username, role, village_code, town_code, person_id):
    """Change a user's role; the user's open sessions end."""
    from geodata import users

    _users_call(lambda s: users.set_role(s, username, role, village_code=village_code, town_code=town_code,
                                         person_id=person_id, actor="cli"))
    click.echo(f"{username}: {role}")


@users_group.command("disable")
@click.argument("username")
def users_disable(username):
    """Disable a user (cannot log in; open sessions end)."""
    from geodata import users

    _users_call(lambda s: users.set_active(s, username, False, actor="cli"))
    click.echo(f"disabled {username}")


@users_group.command("set-password")
@click.argument("username")
@click.password_option()
def users_set_password(username, password):
    """Set a user's password (a demo account stops being one); the user's open sessions end."""
    from geodata import users

    _users_call(lambda s: users.set_password(s, username, password, actor="cli"))
    click.echo(f"password changed for {username}")


# -- serving --------------------------------------------------------------------
def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


@main.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default 8050).")
@click.option("--workers", default=2, show_default=True, help="gunicorn worker processes.")
@click.option("--dev", is_flag=True, help="Dash's development server with debug tools (never in production).")
def serve(host: str | None, port: int | None, workers: int, dev: bool) -> None:
    """Serve the app with gunicorn."""
    from geodata.config import DataDirError, ensure_writable_dir

    s = get_settings()
    host = host or s.host
    port = port or s.port
    try:
        # Workers write the session key, import jobs and analysis results here; a
        # read-only folder would otherwise end as gunicorn's "Worker failed to boot".
        ensure_writable_dir(s.data_dir)
    except DataDirError as exc:
        _fail(str(exc))
    url = _resolve("app")
    _check_db(url)
    if not _port_free(host, port):
        _fail(f"port {port} on {host} is already in use; choose another with --port or DVMAP_PORT")
    if dev:
        from map_app.app import create_app

        create_app().run(host=host, port=port, debug=True)
        return
    from gunicorn.app.base import BaseApplication

    class _App(BaseApplication):
        def load_config(self):
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("timeout", 120)
            self.cfg.set("accesslog", "-")
            # gunicorn >= 23 opens a control socket at one path per user
            # (~/.gunicorn/gunicorn.ctl): a second serve would take it over and the first
            # to stop would delete the other's. dvmap does not use it.
            if "control_socket_disable" in self.cfg.settings:
                self.cfg.set("control_socket_disable", True)

        def load(self):
            from map_app.app import create_app

            return create_app().server

    click.echo(f"serving on http://{host}:{port}")
    _App().run()


def _attach_feature_commands() -> None:
    """Feature modules (map_app/cli_*.py) export ``COMMANDS``: click commands or groups."""
    import importlib
    import pkgutil

    import map_app

    for info in pkgutil.iter_modules(map_app.__path__):
        if info.name.startswith("cli_"):
            module = importlib.import_module(f"map_app.{info.name}")
            for command in getattr(module, "COMMANDS", []):
                main.add_command(command)


_attach_feature_commands()


if __name__ == "__main__":  # pragma: no cover
    main()
