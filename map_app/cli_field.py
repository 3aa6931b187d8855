"""``dvmap field purge-tracks``: delete patrol track points past the retention period.

Runs as the schema owner with the county scope (``SYSTEM``), like the other
maintenance commands; row-level security lets only system jobs delete positions.
"""
from __future__ import annotations

import click


@click.group("field")
def field_group() -> None:
    """The field app's maintenance (patrol tracks)."""


@field_group.command("purge-tracks")
@click.option("--days", type=click.IntRange(min=1), default=None,
              help="Keep this many days (default DVMAP_TRACK_RETENTION_DAYS, 180).")
def purge_tracks(days: int | None) -> None:
    """Delete track points older than the retention period and clear old track lines."""
    from geodata.db import SYSTEM, make_engine, make_sessionmaker, scoped
    from geodata.field.retention import purge_tracks as purge
    from map_app.cli import _check_db, _resolve

    url = _resolve("owner")
    _check_db(url)
    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        with scoped(make_sessionmaker(engine), SYSTEM) as s, s.begin():
            out = purge(s, days)
    finally:
        engine.dispose()
    click.echo(f"purged {out['points']} track points, cleared {out['tracks']} track lines "
               f"(older than {out['days']} days)")


COMMANDS = [field_group]
