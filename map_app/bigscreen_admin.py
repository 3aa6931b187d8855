"""/bigscreen/admin: administrators edit the evaluation index (weights, targets, manual values)."""
from __future__ import annotations

import dash_ag_grid as dag
from dash import dcc, html
from flask import current_app

from callbacks import bigscreen_admin as cb
from geodata import bigscreen as bs
from geodata import evaluation as ev
from geodata.i18n import pick
from map_app.auth import current_role
from map_app.layout import page_language


def _weights_table(indicators: list[ev.Indicator], lang: str):
    rows = []
    for g in ev.groups(indicators):
        rows.append(html.Tr(html.Td(f"{pick(g['name_zh'], g['name_en'], lang)}", colSpan=5), className="bsa-group"))
        for ind in g["indicators"]:
            rows.append(html.Tr([
                html.Td(pick(ind.name_zh, ind.name_en, lang)),
                html.Td(pick("手工填报", "entered", lang) if ind.manual else pick("系统计算", "computed", lang)),
                html.Td(dcc.Input(id=cb.weight_id(ind.code), type="number", value=ind.weight, step=0.5)),
                html.Td([dcc.Input(id=cb.target_id(ind.code), type="number", value=ind.target, step="any"), f" {pick(ind.unit_zh, ind.unit_en, lang)}"]),
                html.Td(pick(ind.note_zh, ind.note_en, lang), className="bsa-hint"),
            ]))
    head = html.Thead(html.Tr([html.Th(pick("指标", "Indicator", lang)), html.Th(pick("来源", "Source", lang)),
                               html.Th(pick("权重(%)", "Weight (%)", lang)),
                               html.Th(pick("目标值(得满分)", "Target (full score)", lang)),
                               html.Th(pick("说明", "Notes", lang))]))
    return html.Table([head, html.Tbody(rows)], className="bsa-table")


def serve_bigscreen_admin(**query):
    """Layout of /bigscreen/admin; administrators only (others see why not)."""
    lang = page_language(query)
    if current_role() != "admin":
        return html.Div([
            html.H1(pick("考核指标管理", "Evaluation index", lang)),
            html.Div(pick("只有管理员可以修改考核指标的权重和手工填报值。",
                          "Only administrators may change the weights and manual values of the evaluation index.",
                          lang), className="bsa-msg err", role="alert", id="bsa-denied"),
            html.A(pick("← 返回大屏", "← Back to the big screen", lang), href="/bigscreen"),
        ], className="bsa-root")
    database = current_app.extensions["dvmap"]
    with database.session() as s:
        indicators = ev.definitions(s)
        periods = ev.recent_periods(bs.db_now(s), 4)
    manual = [i for i in indicators if i.manual]
    columns = [
        {"field": "town", "headerName": pick("乡镇", "Town", lang), "width": 120, "pinned": "left"},
        {"field": "village", "headerName": pick("村", "Village", lang), "width": 130, "pinned": "left"},
        {"field": "code", "headerName": pick("区划代码", "Code", lang), "width": 140},
    ] + [{"field": i.code, "headerName": f"{pick(i.name_zh, i.name_en, lang)}({pick(i.unit_zh, i.unit_en, lang)})",
          "editable": True, "cellDataType": "number", "width": 150} for i in manual]
    return html.Div([
        dcc.Store(id=cb.LANG, data=lang),
        dcc.Store(id=cb.ORIGINAL),
        html.P([html.A(pick("← 返回大屏", "← Back to the big screen", lang), href="/bigscreen"), " · ",
                html.A(pick("地图", "Map", lang), href="/")]),
        html.H1(pick("考核指标管理", "Evaluation index", lang)),
        html.P(pick(ev.FORMULA_ZH, ev.FORMULA_EN, lang), className="bsa-hint"),
        html.H2(pick("权重与目标值", "Weights and targets", lang)),
        _weights_table(indicators, lang),
        html.Div([html.Button(pick("保存权重", "Save weights", lang), id=cb.SAVE_WEIGHTS, className="bsa-btn",
                              n_clicks=0),
                  html.Span(id=cb.WEIGHT_TOTAL, className="bsa-hint")], className="bsa-row"),
        html.Div(id=cb.WEIGHTS_MSG),
        html.H2(pick("手工填报值", "Manual values", lang)),
        html.P(pick("系统无法自动计算的指标,按季度逐村填报;清空单元格即删除该值。",
                    "Indicators the system cannot compute, per quarter and village; clearing a cell deletes the value.",
                    lang), className="bsa-hint"),
        html.Div([html.Label(pick("考核周期", "Period", lang), htmlFor=cb.PERIOD),
                  dcc.Dropdown(id=cb.PERIOD, options=periods, value=periods[0], clearable=False,
                               style={"width": "160px"})], className="bsa-row"),
        dag.AgGrid(id=cb.GRID, columnDefs=columns, rowData=[], getRowId="params.data.village_id",
                   defaultColDef={"resizable": True, "sortable": True},
                   dashGridOptions={"singleClickEdit": True, "stopEditingWhenCellsLoseFocus": True},
                   style={"height": "460px", "width": "100%"}, className="ag-theme-alpine"),
        html.Div([html.Button(pick("保存填报值", "Save values", lang), id=cb.SAVE_VALUES, className="bsa-btn",
                              n_clicks=0)], className="bsa-row"),
        html.Div(id=cb.VALUES_MSG),
    ], className="bsa-root", id="bsa-root")
