"""``dvmap grids …``: which grid a point was in on a date, a village's change history, renumbering."""
from __future__ import annotations

from datetime import datetime

import click

from geodata.clock import display_zone, fmt_local


def _base():
    # Imported lazily: map_app.cli imports this module while it is being built.
    from map_app import cli

    return cli


def _session():
    from geodata.db import SYSTEM, Database

    base = _base()
    url = base._resolve("owner")
    base._check_db(url)
    return Database(url).session(SYSTEM)


def _village_id(s, code: str) -> int:
    from sqlalchemy import text

    vid = s.execute(text("SELECT id FROM village WHERE code = :c"), {"c": code}).scalar()
    if vid is None:
        _base()._fail(f"村代码不存在 / no village with code {code}")
    return vid


@click.group("grids")
def grids_group() -> None:
    """网格:历史查询、修改记录、重新编号 / Grids: history queries, changes, renumbering."""


@grids_group.command("at")
@click.argument("lon", type=float)
@click.argument("lat", type=float)
@click.option("--at", "when", default=None,
              help="ISO date/time (China time unless a zone is given); default now. / 时间,默认现在")
def at_cmd(lon: float, lat: float, when: str | None):
    """某点在某时刻属于哪个网格 / Which grid a point was in at a time."""
    from geodata import grids as G

    try:
        at = datetime.fromisoformat(when) if when else datetime.now(display_zone())
    except ValueError:
        _base()._fail(f"时间格式无效 / invalid time: {when}")
    if at.tzinfo is None:
        at = at.replace(tzinfo=display_zone())
    with _session() as s:
        try:
            row = G.grid_at(s, lon, lat, at)
        except G.GridError as exc:
            _base()._fail(str(exc))
    if row is None:
        click.echo(f"{at.isoformat()}: 不在任何网格内 / in no grid")
        return
    until = fmt_local(row["valid_to"], "%Y-%m-%d %H:%M:%S")
    click.echo(f"{row['code']} v{row['version']} {row['name']} · 网格员/worker {row['worker'] or '—'}"
               f" · {fmt_local(row['valid_from'], '%Y-%m-%d %H:%M:%S')} → {until}")


@grids_group.command("history")
@click.argument("village_code")
@click.option("--limit", default=30, show_default=True)
def history_cmd(village_code: str, limit: int):
    """村的网格修改记录 / A village's grid changes (who, when, what)."""
    from geodata import grids as G

    with _session() as s:
        rows = G.change_history(s, _village_id(s, village_code), limit=limit)
    if not rows:
        click.echo("暂无修改记录 / no changes")
    for r in rows:
        undone = " (已撤销/undone)" if r["undone"] else ""
        click.echo(f"#{r['id']} {fmt_local(r['at'])} {r['actor']} [{r['action']}]"
                   f" {r['summary_zh']} / {r['summary_en']}{undone}")


@grids_group.command("renumber")
@click.argument("village_code")
@click.option("--apply", "apply_", is_flag=True, help="Write the new codes (default: only show them).")
def renumber_cmd(village_code: str, apply_: bool):
    """按自西向东、自北向南重新编号 / Renumber a village's grids in reading order (explicit)."""
    from geodata import grids as G
    from geodata.events import Actor

    with _session() as s:
        vid = _village_id(s, village_code)
        plan = G.renumber_plan(s, vid)
        if not plan:
            click.echo("编号已按顺序 / codes already in reading order")
            return
        for p in plan:
            click.echo(f"  {p['old']} → {p['new']}")
        if not apply_:
            click.echo("(未写入;加 --apply 执行 / not written; add --apply)")
            return
        result = G.renumber_village(s, Actor("cli", "system"), vid)
        s.commit()
        click.echo(f"{result.summary_zh} / {result.summary_en}")


COMMANDS = [grids_group]
