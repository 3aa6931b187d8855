"""``dvmap events check-overdue|watch`` and ``dvmap api-key add|list|disable``.

Both run as the schema owner with the county scope (``SYSTEM``), like the other
maintenance commands; row-level security still applies. ``events watch`` is the
periodic overdue check while the app serves (``make demo`` starts it as its own
process): one failed round (database restarting, say) is reported and the next
round tries again.
"""
from __future__ import annotations

import signal
import time
from datetime import timedelta

import click


def _factory():
    """A sessionmaker on the owner's URL; its engine is disposed when the command ends."""
    from geodata.db import make_engine, make_sessionmaker
    from map_app.cli import _check_db, _resolve

    url = _resolve("owner")
    _check_db(url)
    engine = make_engine(url, pool_size=1, max_overflow=1)
    click.get_current_context().call_on_close(engine.dispose)
    return make_sessionmaker(engine)


def _run_check(factory, village_hours: float, county_hours: float) -> dict:
    from geodata import events as ev
    from geodata.db import SYSTEM, scoped

    with scoped(factory, SYSTEM) as s, s.begin():
        return ev.check_overdue(s, village_after=timedelta(hours=village_hours),
                                county_after=timedelta(hours=county_hours))


def _line(counts: dict) -> str:
    return (f"超期标记 marked {counts['marked']} · 村级督办 escalated to village {counts['escalated_village']}"
            f" · 县级督办 escalated to county {counts['escalated_county']}")


_margins = [
    click.option("--village-after", "village_hours", default=24.0, show_default=True, type=click.FloatRange(0),
                 help="Hours past the deadline before 村级督办 (village-level escalation)."),
    click.option("--county-after", "county_hours", default=72.0, show_default=True, type=click.FloatRange(0),
                 help="Hours past the deadline before 县级督办 (county-level escalation)."),
]


def _with_margins(fn):
    for option in reversed(_margins):
        fn = option(fn)
    return fn


@click.group("events")
def events_group() -> None:
    """Events: overdue checks (超期/督办)."""


@events_group.command("check-overdue")
@_with_margins
def check_overdue(village_hours: float, county_hours: float) -> None:
    """Mark overdue events and escalate long-overdue ones, once."""
    from geodata.i18n import BilingualError

    if county_hours < village_hours:
        raise click.UsageError("--county-after must not be shorter than --village-after")
    try:
        counts = _run_check(_factory(), village_hours, county_hours)
    except BilingualError as exc:
        raise click.ClickException(f"{exc.message_zh} / {exc.message_en}") from None
    click.echo(_line(counts))


@events_group.command("watch")
@click.option("--every", default=300, show_default=True, type=click.IntRange(5, 86400),
              help="Seconds between two checks.")
@click.option("--rounds", default=0, type=click.IntRange(0), help="Stop after N rounds (0: run until stopped).")
@_with_margins
def watch(every: int, rounds: int, village_hours: float, county_hours: float) -> None:
    """Run the overdue check every N seconds until stopped (SIGTERM/SIGINT)."""
    if county_hours < village_hours:
        raise click.UsageError("--county-after must not be shorter than --village-after")
    factory = _factory()
    stop = {"now": False}

    def _stop(signum, frame):  # noqa: ARG001
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    done = 0
    purged_at = None  # patrol track retention (geodata/field/retention.py) rides along once a day
    click.echo(f"events watch: checking every {every} s", err=True)
    while not stop["now"]:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        try:
            click.echo(f"{stamp} {_line(_run_check(factory, village_hours, county_hours))}")
            if purged_at is None or time.monotonic() - purged_at >= 86400:
                from geodata.db import SYSTEM, scoped
                from geodata.field.retention import purge_tracks

                with scoped(factory, SYSTEM) as s, s.begin():
                    out = purge_tracks(s)
                purged_at = time.monotonic()
                click.echo(f"{stamp} purged {out['points']} track points older than {out['days']} days")
        except Exception as exc:  # keep watching: the next round may succeed
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            click.echo(f"{stamp} check failed: {reason}", err=True)
        done += 1
        if rounds and done >= rounds:
            break
        deadline = time.monotonic() + every
        while not stop["now"] and time.monotonic() < deadline:
            time.sleep(min(1.0, deadline - time.monotonic()))


# -- Open311 API keys ----------------------------------------------------------------

@click.group("api-key")
def api_key_group() -> None:
    """Open311 API keys of client systems (12345 hotline, …)."""


def _village_ids(session, codes: tuple[str, ...]) -> list[int] | None:
    from sqlalchemy import text

    if not codes:
        return None
    ids = []
    for code in codes:
        vid = session.execute(text("SELECT id FROM village WHERE code = :c"), {"c": code}).scalar()
        if vid is None:
            raise click.ClickException(f"村代码不存在 / no village with code {code}")
        ids.append(vid)
    return ids


@api_key_group.command("add")
@click.argument("name")
@click.option("--village", "villages", multiple=True, help="12-digit village code it may report into (repeat); "
              "default: the whole county.")
@click.option("--source", default="hotline", show_default=True, help="event_source code its events get.")
def api_key_add(name: str, villages: tuple[str, ...], source: str) -> None:
    """Issue a key to client system NAME (the key is shown only this once)."""
    from sqlalchemy.exc import IntegrityError

    from geodata import events as ev
    from geodata.db import SYSTEM, scoped
    from geodata.i18n import BilingualError

    try:
        with scoped(_factory(), SYSTEM) as s, s.begin():
            client_id, key = ev.create_api_client(s, name, _village_ids(s, villages), source)
    except BilingualError as exc:
        raise click.ClickException(f"{exc.message_zh} / {exc.message_en}") from None
    except IntegrityError:
        raise click.ClickException(f"名称已存在 / a client named {name!r} exists already") from None
    click.echo(f"client {client_id} {name}")
    click.echo(f"api_key: {key}")
    click.echo("请妥善保存:密钥只显示这一次 / keep it safe: the key is shown only once", err=True)


@api_key_group.command("list")
def api_key_list() -> None:
    """List client systems (key prefixes only)."""
    from sqlalchemy import text

    from geodata.clock import fmt_local
    from geodata.db import SYSTEM, scoped

    with scoped(_factory(), SYSTEM) as s:
        rows = s.execute(text(
            "SELECT id, name, key_prefix, village_ids, source, active, created_at FROM api_client ORDER BY id"
        )).mappings().all()
    if not rows:
        click.echo("no API clients / 没有接入系统")
    for r in rows:
        villages = "county" if r["village_ids"] is None else ",".join(str(v) for v in r["village_ids"])
        state = "active" if r["active"] else "disabled"
        click.echo(f"{r['id']:<5} {r['name']:<24} {r['key_prefix']}…  {r['source']:<9} {state:<8} "
                   f"villages={villages}  created={fmt_local(r['created_at'], '%Y-%m-%d')}")


@api_key_group.command("disable")
@click.argument("client_id", type=int)
def api_key_disable(client_id: int) -> None:
    """Revoke the key of client CLIENT_ID."""
    from geodata import events as ev
    from geodata.db import SYSTEM, scoped

    with scoped(_factory(), SYSTEM) as s, s.begin():
        changed = ev.deactivate_api_client(s, client_id)
    if not changed:
        raise click.ClickException(f"没有启用中的接入系统 {client_id} / no active client {client_id}")
    click.echo(f"disabled client {client_id}")


COMMANDS = [events_group, api_key_group]
