"""``dvmap bigscreen-demo`` and ``dvmap bigscreen-rebuild``: data for the leaders' big screen."""
from __future__ import annotations

import time

import click


def _owner_session():
    from geodata.db import SYSTEM, make_engine, make_sessionmaker, scoped
    from map_app.cli import _check_db, _resolve

    url = _resolve("owner")
    _check_db(url)
    engine = make_engine(url)
    return engine, scoped(make_sessionmaker(engine), SYSTEM)


@click.command("bigscreen-demo")
@click.option("--events", "n_events", default=1500, show_default=True, type=click.IntRange(0, 100_000),
              help="Demo events to report (180 days, idempotent) before taking them through the loop.")
@click.option("--seed", default=7, show_default=True, help="Seed of the events and their handling.")
def bigscreen_demo(n_events: int, seed: int) -> None:
    """Demo events taken through the workflow, overdue marks, and manual evaluation values."""
    from etl.demo_evaluation import load_demo_manual_values
    from etl.demo_events import advance_demo_events, load_demo_events
    from geodata.events import check_overdue

    engine, session = _owner_session()
    t0 = time.perf_counter()
    try:
        with session, session.begin():
            if n_events:
                click.echo(f"  reported: {load_demo_events(session, n=n_events, seed=seed)}")
            click.echo(f"  advanced: {advance_demo_events(session, seed=seed)}")
            click.echo(f"  overdue:  {check_overdue(session)}")
            click.echo(f"  manual values: {load_demo_manual_values(session, seed=seed)}")
            from etl.demo_patrol import load_demo_patrols

            click.echo(f"  patrols: {load_demo_patrols(session, seed=seed)}")  # field app: coverage layer
    finally:
        engine.dispose()
    click.echo(f"  {time.perf_counter() - t0:.1f} s")


@click.command("bigscreen-rebuild")
def bigscreen_rebuild() -> None:
    """Recompute the big screen's daily event summary from the event table (after a bulk load)."""
    from sqlalchemy import text

    engine, session = _owner_session()
    try:
        with session, session.begin():
            rows = session.execute(text("SELECT dvmap_event_daily_rebuild()")).scalar()
    finally:
        engine.dispose()
    click.echo(f"event_daily: {rows} rows")


COMMANDS = [bigscreen_demo, bigscreen_rebuild]
