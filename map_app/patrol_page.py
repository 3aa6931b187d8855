"""The managers' patrol statistics page (/patrol): per grid and ISO week — patrols, km, hours,
coverage, key points checked, flagged grids — in a table with a CSV export.

Grid managers, village and town officials, county leaders and administrators
(map_app/pages.py); the numbers come from :func:`geodata.field.coverage.weekly_coverage`
with the user's scope, filled in by callbacks/patrol.py.
"""
from __future__ import annotations

from datetime import timedelta

import dash_ag_grid as dag
import dash_mantine_components as dmc
from dash import dcc, html

from callbacks import patrol_ids as pid
from geodata.config import get_settings
from geodata.field.common import iso_week
from geodata.i18n import pick
from map_app.layout import page_language

#: weeks offered in the picker (this one and the ones before it)
WEEKS_BACK = 12


def week_options(lang: str) -> list[dict]:
    """This ISO week and the previous ones, newest first, labelled with their Monday."""
    this = iso_week()
    out = []
    for i in range(WEEKS_BACK):
        monday = (this.start + timedelta(days=1) - timedelta(weeks=i))  # UTC time inside that week
        label = iso_week(monday.strftime("%G-W%V")).label
        text = pick(f"{label}(本周)", f"{label} (this week)", lang) if i == 0 else label
        out.append({"value": label, "label": text})
    return out


def column_defs(lang: str) -> list[dict]:
    pct = {"function": "params.value == null ? '—' : d3.format('.1%')(params.value)"}
    return [
        {"field": "code", "headerName": pick("网格编码", "Grid code", lang), "minWidth": 150, "pinned": "left"},
        {"field": "name", "headerName": pick("网格", "Grid", lang), "minWidth": 120},
        {"field": "village", "headerName": pick("所属村", "Village", lang), "minWidth": 100},
        {"field": "worker", "headerName": pick("网格员", "Grid worker", lang), "minWidth": 90},
        {"field": "patrols", "headerName": pick("巡查次数", "Patrols", lang), "type": "numericColumn", "width": 100},
        {"field": "km", "headerName": pick("里程(公里)", "km", lang), "type": "numericColumn", "width": 110},
        {"field": "hours", "headerName": pick("时长(小时)", "Hours", lang), "type": "numericColumn", "width": 110},
        {"field": "coverage", "headerName": pick("覆盖率", "Coverage", lang), "type": "numericColumn",
         "width": 100, "valueFormatter": pct},
        {"field": "key_point_share", "headerName": pick("关键点签到率", "Key points", lang), "type": "numericColumn",
         "width": 120, "valueFormatter": pct},
        {"field": "flag", "headerName": pick("预警", "Flag", lang), "width": 110},
    ]


def layout(**query):
    lang = page_language(query)
    floor = get_settings().patrol_min_coverage
    buffer_m = get_settings().patrol_buffer_m
    options = week_options(lang)
    return html.Div([
        dcc.Store(id=pid.LANG, data=lang),
        html.P([html.A(pick("← 返回一张图", "← Back to the map", lang), href="/")], style={"margin": "0"}),
        html.H1(pick("巡查统计", "Patrol statistics", lang), style={"margin": "4px 0"}),
        html.P(pick(f"覆盖率 = 网格面积中距本周巡查轨迹 {buffer_m:g} 米以内的比例;低于 {floor:.0%} 的网格标为“需加强”。",
                    f"Coverage = share of the grid's area within {buffer_m:g} m of the week's patrol tracks; "
                    f"grids below {floor:.0%} are flagged.", lang), className="pt-hint"),
        html.Div([
            dmc.Select(id=pid.WEEK, label=pick("周次", "Week", lang), data=options, value=options[0]["value"],
                       allowDeselect=False, w=220, size="sm"),
            dmc.Button(pick("导出 CSV", "Export CSV", lang), id=pid.EXPORT, n_clicks=0, size="sm",
                       variant="light", mt=24),
            html.Span(id=pid.SUMMARY, className="pt-summary", style={"marginTop": "30px"}),
        ], style={"display": "flex", "gap": "16px", "alignItems": "flex-start", "flexWrap": "wrap"}),
        dag.AgGrid(id=pid.TABLE, columnDefs=column_defs(lang), rowData=[], getRowId="params.data.grid_uid",
                   columnSize="responsiveSizeToFit",
                   defaultColDef={"resizable": True, "sortable": True, "filter": True},
                   rowClassRules={"pt-row-flagged": "params.data.flagged"},
                   csvExportParams={"fileName": "patrol-coverage.csv"},
                   dashGridOptions={"pagination": True, "paginationPageSize": 50, "animateRows": False},
                   style={"height": "calc(100vh - 280px)", "minHeight": "320px", "width": "100%"},
                   className="ag-theme-alpine"),
    ], id="pt-root",
        style={"padding": "12px 20px", "fontFamily": '"Noto Sans CJK SC","WenQuanYi Micro Hei",sans-serif'})
