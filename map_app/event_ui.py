"""The events UI pieces of the map page: report form (modal), events table drawer, stores.

Built per request with the user's scope and language; the callbacks live in
callbacks/events.py. map_app/layout.py places :func:`event_stores` with the other
stores, :func:`report_bar` above the details panel and :func:`event_overlays`
(modal + drawer) at the end of the page.
"""
from __future__ import annotations

from datetime import timedelta

import dash_ag_grid as dag
import dash_mantine_components as dmc
from dash import dcc, html
from flask import current_app

from callbacks import ids
from callbacks.events import DEFAULT_DAYS, column_defs
from geodata import events as ev
from geodata.clock import local_today
from geodata.i18n import pick
from geodata.queries import layers as lq


def event_stores() -> list:
    """Client-side state of the events UI."""
    return [
        dcc.Store(id=ids.EVENT_POINT),
        dcc.Store(id=ids.EVENT_KEY),
        dcc.Store(id=ids.EVENT_REFRESH, data=0),
        dcc.Store(id=ids.EVENT_DRAWER_OPEN, data=False),
    ]


def report_bar() -> html.Div:
    """Where the "上报事件" offer for the clicked point appears (filled by a callback)."""
    return html.Div(id=ids.EVENT_REPORT_BAR, className="evt-report-bar")


def _report_modal(session, lang: str):
    classes = ev.categories(session)
    refs = ev.reference_lists(session)
    return dmc.Modal(
        id=ids.EVENT_MODAL, opened=False, size="lg", zIndex=3000, centered=True,
        title=html.Span(pick("上报事件", "Report an event", lang), className="evt-modal-title"),
        children=[
            html.Div(id=ids.EVENT_LOCATION, className="evt-location"),
            html.Div(id=ids.EVENT_FORM, className="evt-form", children=[
                dmc.SimpleGrid(cols=2, spacing="sm", children=[
                    dmc.Select(id=ids.event_field("class"), label=pick("事件大类", "Category", lang), required=True,
                               data=[{"value": c["code"], "label": pick(c["name_zh"], c["name_en"], lang)}
                                     for c in classes],
                               placeholder=pick("选择大类", "Choose a category", lang), comboboxProps={"zIndex": 3100}),
                    dmc.Select(id=ids.event_field("subclass"), label=pick("事件小类", "Subcategory", lang), required=True,
                               data=[], placeholder=pick("先选大类", "Choose the category first", lang),
                               comboboxProps={"zIndex": 3100}),
                ]),
                dmc.Textarea(id=ids.event_field("description"), label=pick("事件描述", "Description", lang),
                             required=True, autosize=True, minRows=3, maxRows=8, mt="sm",
                             placeholder=pick("看到了什么、在哪里、影响多大……", "What, where, how serious…", lang)),
                dmc.SimpleGrid(cols=2, spacing="sm", mt="sm", children=[
                    dmc.Select(id=ids.event_field("urgency"), label=pick("紧急程度", "Urgency", lang),
                               data=[{"value": u["code"], "label": pick(u["name_zh"], u["name_en"], lang)}
                                     for u in refs["urgencies"]],
                               value="normal", allowDeselect=False, comboboxProps={"zIndex": 3100}),
                    dmc.Select(id=ids.event_field("source"), label=pick("事件来源", "Source", lang),
                               data=[{"value": s["code"], "label": pick(s["name_zh"], s["name_en"], lang)}
                                     for s in refs["sources"]],
                               value="patrol", allowDeselect=False, comboboxProps={"zIndex": 3100}),
                    dmc.TextInput(id=ids.event_field("reporter_name"), label=pick("上报人姓名", "Reporter name", lang)),
                    dmc.TextInput(id=ids.event_field("reporter_phone"), label=pick("联系电话", "Contact phone", lang),
                                  placeholder="138…"),
                ]),
                html.Div(pick("现场照片", "Photos", lang), className="evt-label", style={"marginTop": "10px"}),
                dcc.Upload(id=ids.EVENT_PHOTOS, multiple=True, accept="image/jpeg,image/png,image/webp",
                           className="evt-upload",
                           children=html.Div(pick("拖放或点击选择照片(JPEG/PNG/WebP,每张≤5 MB,最多 9 张)",
                                                  "Drop or click to add photos (JPEG/PNG/WebP, ≤ 5 MB each, up to 9)",
                                                  lang))),
                html.Div(id=ids.EVENT_PHOTO_LIST, className="evt-upload-list"),
            ]),
            html.Div(id=ids.EVENT_RESULT, className="evt-result"),
            dmc.Group(justify="flex-end", mt="md", children=[
                dmc.Button(pick("关闭", "Close", lang), id=ids.EVENT_CANCEL, variant="default"),
                dmc.Button(pick("提交上报", "Submit", lang), id=ids.EVENT_SUBMIT, color="red"),
            ]),
        ],
    )


def _drawer(session, lang: str):
    classes = ev.categories(session)
    villages = lq.all_villages(session)
    today = local_today()
    start = today - timedelta(days=DEFAULT_DAYS - 1)
    filters = [
        dmc.SegmentedControl(
            id=ids.event_filter("state"), value="open", size="xs",
            data=[{"value": "open", "label": pick("未结", "Open", lang)},
                  {"value": "overdue", "label": pick("超期", "Overdue", lang)},
                  {"value": "closed", "label": pick("已结", "Closed", lang)},
                  {"value": "all", "label": pick("全部", "All", lang)}],
        ),
        dmc.Select(id=ids.event_filter("class"), value=None, size="xs", clearable=True, w=124,
                   placeholder=pick("全部类别", "All categories", lang),
                   data=[{"value": c["code"], "label": pick(c["name_zh"], c["name_en"], lang)} for c in classes]),
        dmc.DatePickerInput(id=ids.event_filter("range"), type="range", size="xs", w=196,
                            value=[start.isoformat(), today.isoformat()], valueFormat="YYYY-MM-DD",
                            allowSingleDateInRange=True, maxDate=today.isoformat(),
                            popoverProps={"zIndex": 3100}),
    ]
    # One village in scope: nothing to choose, the (hidden) filter stays empty.
    filters.append(dmc.Select(
        id=ids.event_filter("village"), value=None, size="xs", clearable=True, searchable=True, w=128,
        placeholder=pick("全部村", "All villages", lang), comboboxProps={"zIndex": 3100},
        data=[{"value": str(v["id"]), "label": f"{v['name']} · {v['town']}"} for v in villages],
        style=None if len(villages) > 1 else {"display": "none"},
    ))
    filters.append(html.Span(id=ids.EVENT_TABLE_COUNT, className="evt-count"))
    return html.Div(
        id=ids.EVENT_DRAWER, className="evt-drawer",
        children=[
            html.Div(className="evt-drawer-bar", children=[
                html.Button([html.Span("▲", className="evt-caret"), pick(" 事件列表", " Events", lang)],
                            id=ids.EVENT_DRAWER_TOGGLE, className="evt-drawer-toggle", n_clicks=0),
                html.Div(id=ids.EVENT_INDICATORS, className="evt-kpis"),
            ]),
            html.Div(className="evt-drawer-body", children=[
                html.Div(filters, className="evt-filters"),
                dag.AgGrid(
                    id=ids.EVENT_TABLE, rowData=[], columnDefs=column_defs(lang),
                    getRowId="params.data.rid",
                    defaultColDef={"sortable": True, "resizable": True, "filter": False, "minWidth": 60},
                    rowClassRules={"evt-row-overdue": "params.data.overdue"},
                    dashGridOptions={
                        "pagination": True, "paginationPageSize": 50, "paginationPageSizeSelector": [20, 50, 100],
                        "rowSelection": {"mode": "singleRow", "checkboxes": False, "enableClickSelection": True},
                        "animateRows": False, "rowHeight": 30, "headerHeight": 32,
                        "localeText": {"noRowsToShow": "No events match the filters"} if lang == "en" else {
                            "noRowsToShow": "没有符合条件的事件", "page": "页", "of": "/", "to": "–", "more": "更多",
                            "pageSizeSelectorLabel": "每页"},
                    },
                    className="evt-grid", style={"height": "100%", "width": "100%"},
                ),
            ]),
        ],
    )


def event_overlays(lang: str) -> list:
    """The report modal and the events drawer, built with the request's scope."""
    database = current_app.extensions["dvmap"]
    with database.session() as session:
        return [_report_modal(session, lang), _drawer(session, lang)]
