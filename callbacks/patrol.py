"""The patrol statistics page (/patrol): the week's table and its CSV export. Thin: the
numbers come from geodata.field.coverage with the request's scope (roles: map_app/pages.py)."""
from __future__ import annotations

from dash import Input, Output, State, callback

from callbacks import patrol_ids as pid
from callbacks.context import session
from geodata.field.common import iso_week
from geodata.field.coverage import weekly_coverage
from geodata.i18n import pick


@callback(
    Output(pid.TABLE, "rowData"),
    Output(pid.SUMMARY, "children"),
    Input(pid.WEEK, "value"),
    State(pid.LANG, "data"),
)
def load_week(week, lang):
    chosen = iso_week(week)  # a bad value is a bilingual 400 (map_app/errors.py)
    with session() as s:
        rows = weekly_coverage(s, chosen)
    flag = pick("需加强", "flagged", lang)
    for r in rows:
        r["flag"] = flag if r["flagged"] else ""
    flagged = sum(r["flagged"] for r in rows)
    summary = pick(f"{len(rows)} 个网格,{flagged} 个需加强", f"{len(rows)} grids, {flagged} flagged", lang)
    return rows, summary


@callback(
    Output(pid.TABLE, "exportDataAsCsv"),
    Input(pid.EXPORT, "n_clicks"),
    prevent_initial_call=True,
)
def export_csv(_n):
    return True
