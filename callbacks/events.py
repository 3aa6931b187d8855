"""Event callbacks: report from a map click, act on an event, the table and the indicators.

Thin: parse the inputs, call :mod:`geodata.events` (the only writer of events),
render the result. The user, role and scope come from the server-side login
(``flask_login.current_user`` and the scoped session), never from an input.
Typed service errors are shown in the page language; a failed call writes
nothing because the transaction is rolled back.
"""
from __future__ import annotations

import base64
import binascii
import logging
import uuid
from datetime import date, datetime, timedelta

import dash_leaflet as dl
import dash_mantine_components as dmc
from dash import (ALL, MATCH, ClientsideFunction, Input, Output, State, callback, clientside_callback, ctx,
                  html, no_update)
from flask_login import current_user

from callbacks import ids
from callbacks.context import session
from callbacks.errors import error_alert, error_text
from geodata import events as ev
from geodata import public
from geodata import workflow as wf
from geodata.clock import day_start, fmt_local, local_today
from geodata.i18n import BilingualError, pick
from geodata.queries import event_list as el
from layers import event_panel
from layers.base import as_int
from layers.events import NOTE_ID, class_filter

log = logging.getLogger(__name__)

#: Default time window of the table and the indicators (days, today included).
DEFAULT_DAYS = 30
EVENTS_LAYER = ids.layer("events")


# -- who is acting ------------------------------------------------------------------

def _user():
    return current_user.user if current_user and current_user.is_authenticated else None


def current_actor() -> ev.Actor | None:
    """The logged-in user as an event actor (server side), or None."""
    user = _user()
    if user is None:
        return None
    return ev.Actor.for_user(user)


def _role() -> str:
    user = _user()
    return user.role if user else "anonymous"


def _scope():
    return current_user.scope if current_user and current_user.is_authenticated else None


def may_report() -> bool:
    """True when the logged-in user's role may report events (workflow.MAY_REPORT)."""
    return _role() in wf.MAY_REPORT


# -- small helpers --------------------------------------------------------------------

def decode_uploads(contents) -> list[bytes]:
    """Bytes of ``dcc.Upload`` contents (``data:…;base64,…`` strings).

    Raises
    ------
    ev.EventInputError
        When a file cannot be decoded (the service checks type and size).
    """
    out = []
    for i, item in enumerate(contents or [], 1):
        try:
            _, b64 = str(item).split(",", 1)
            out.append(base64.b64decode(b64, validate=True))
        except (ValueError, binascii.Error):
            raise ev.EventInputError(f"第 {i} 个文件无法读取。", f"File {i} could not be read.", "photos") from None
    return out


def _period(value) -> tuple[datetime, datetime]:
    """``[start, end)`` in the display zone from a DatePickerInput range (end date included)."""
    today = local_today()
    start, end = today - timedelta(days=DEFAULT_DAYS - 1), today
    if isinstance(value, (list, tuple)) and value and value[0]:
        try:
            start = date.fromisoformat(str(value[0])[:10])
            end = date.fromisoformat(str(value[1] or value[0])[:10]) if len(value) > 1 else start
        except ValueError:
            pass
    # Dates a person can pick: anything else (year 1, year 9999) falls back to the default window.
    if not (date(2000, 1, 1) <= start <= date(2100, 1, 1) and date(2000, 1, 1) <= end <= date(2100, 1, 1)):
        start, end = today - timedelta(days=DEFAULT_DAYS - 1), today
    if end < start:
        start, end = end, start
    return day_start(start), day_start(end + timedelta(days=1))


# -- 1. the clicked point -------------------------------------------------------------

# Where the user clicked: the map's own clickData, or — for a click on a feature,
# whose clickData is the feature only — the position recorded by the map's
# "preclick" hook in assets/dvmap.js. Aggregates and clusters are not places.
clientside_callback(
    ClientsideFunction("dvmapEvents", "clickedPoint"),
    Output(ids.EVENT_POINT, "data"),
    Input({"type": "layer", "name": ALL}, "n_clicks"),
    Input(ids.MAP, "clickData"),
    State({"type": "layer", "name": ALL}, "clickData"),
    prevent_initial_call=True,
)


def _point(data) -> tuple[float, float] | None:
    try:
        lon, lat = float(data["lon"]), float(data["lat"])
    except (TypeError, KeyError, ValueError):
        return None
    return lon, lat


def _place_line(place: dict, lon: float, lat: float, lang: str) -> list:
    where = [place.get("village"), place.get("town")]
    grid = f"{place['grid_code']} {place['grid_name']}" if place.get("grid_code") else None
    parts = [f"{lon:.6f}, {lat:.6f}", " · ".join(x for x in where if x)]
    if grid:
        parts.append(pick("网格 ", "grid ", lang) + grid + (f" · {place['worker']}" if place.get("worker") else ""))
    return [html.Span(className="evt-pin"), " · ".join(p for p in parts if p)]


@callback(
    Output(ids.EVENT_REPORT_BAR, "children"),
    Output(ids.EVENT_PICK, "children"),
    Input(ids.EVENT_POINT, "data"),
    State(ids.LANG, "data"),
    prevent_initial_call=True,
)
def offer_report(point, lang):
    pt = _point(point)
    if pt is None or not may_report():  # read-only roles never see the offer
        return [], []
    lon, lat = pt
    with session() as s:
        place = el.place_at(s, lon, lat)
    marker = [dl.CircleMarker(center=[lat, lon], radius=10, color="#d1242f", weight=3, fill=True,
                              fillColor="#ffffff", fillOpacity=0.6, dashArray="4 3", interactive=False)]
    scope = _scope()
    if not place["inside_county"]:
        note = pick("该位置不在本县范围内,不能上报。", "This point is outside the county; nothing to report here.", lang)
        return html.Div([html.Div(_place_line(place, lon, lat, lang), className="evt-where"),
                         html.Div(note, className="evt-note")], className="evt-offer"), marker
    if place["village_id"] is None and scope is not None and scope.village_ids is not None:
        note = pick("该位置不在您可以上报的村范围内。", "This point is outside the villages you may report into.", lang)
        return html.Div([html.Div(_place_line(place, lon, lat, lang), className="evt-where"),
                         html.Div(note, className="evt-note")], className="evt-offer"), marker
    return html.Div([
        html.Div(_place_line(place, lon, lat, lang), className="evt-where", **{"data-testid": "report-where"}),
        dmc.Button(pick("上报事件 / Report event", "Report event / 上报事件", lang), id=ids.EVENT_REPORT_OPEN,
                   color="red", size="sm", fullWidth=True, mt=6),
    ], className="evt-offer"), marker


# -- 2. the report form ------------------------------------------------------------------

_FORM_FIELDS = ("class", "subclass", "description", "urgency", "source", "reporter_name", "reporter_phone")


@callback(
    Output(ids.EVENT_MODAL, "opened"),
    Output(ids.EVENT_KEY, "data"),
    Output(ids.EVENT_LOCATION, "children"),
    Output(ids.EVENT_FORM, "style"),
    Output(ids.EVENT_RESULT, "children"),
    Output(ids.EVENT_SUBMIT, "disabled"),
    *[Output(ids.event_field(f), "value") for f in _FORM_FIELDS],
    Output(ids.EVENT_PHOTOS, "contents"),
    Output(ids.EVENT_PHOTOS, "filename"),
    Input(ids.EVENT_REPORT_OPEN, "n_clicks"),
    State(ids.EVENT_POINT, "data"),
    State(ids.LANG, "data"),
    prevent_initial_call=True,
)
def open_report_form(open_clicks, point, lang):
    keep = [no_update] * (5 + len(_FORM_FIELDS) + 2)
    pt = _point(point)
    if not open_clicks or pt is None or not may_report():
        return no_update, *keep
    lon, lat = pt
    with session() as s:
        place = el.place_at(s, lon, lat)
    # The idempotency key is made once per opened form: a double submit returns the same event.
    key = f"ui-{uuid.uuid4()}"
    location = html.Div(_place_line(place, lon, lat, lang), **{"data-testid": "report-location"})
    source = "patrol" if _role() == "grid_worker" else "hotline"
    return (True, key, location, {}, None, False,
            None, None, "", "normal", source, "", "", None, None)


@callback(
    Output(ids.EVENT_MODAL, "opened", allow_duplicate=True),
    Input(ids.EVENT_CANCEL, "n_clicks"),
    prevent_initial_call=True,
)
def close_report_form(n):
    # Its own callback: the open button is gone once a report succeeded.
    return False if n else no_update


@callback(
    Output(ids.event_field("subclass"), "data"),
    Output(ids.event_field("subclass"), "value", allow_duplicate=True),
    Input(ids.event_field("class"), "value"),
    State(ids.LANG, "data"),
    prevent_initial_call=True,
)
def subclass_options(class_code, lang):
    if not class_code:
        return [], None
    with session() as s:
        tree = ev.categories(s)
    subs = next((c["subclasses"] for c in tree if c["code"] == class_code), [])
    data = []
    for sub in subs:
        hours = sub["sla_hours"].get("normal")
        limit = pick(f"(时限 {hours:g} 小时)", f" ({hours:g} h limit)", lang) if hours else ""
        data.append({"value": sub["code"], "label": pick(sub["name_zh"], sub["name_en"], lang) + limit})
    return data, None


def _upload_list(filenames, contents, lang):
    if not filenames:
        return []
    items = []
    for name, item in zip(filenames, contents or []):
        size = len(str(item).split(",", 1)[-1]) * 3 // 4
        try:
            head = base64.b64decode(str(item).split(",", 1)[1][:24] + "==", validate=False)
        except (IndexError, binascii.Error):
            head = b""
        bad = ev.sniff_image(head) is None or size > ev.MAX_PHOTO_BYTES
        shown = f"{size} B" if size < 1024 else f"{size / 1024:.0f} KB"
        items.append(html.Li(f"{name} · {shown}" + (pick("(不是图片或过大)", " (not an image or too big)",
                                                                         lang) if bad else ""),
                             className="evt-file-bad" if bad else None))
    return html.Ul(items, className="evt-files")


@callback(
    Output(ids.EVENT_PHOTO_LIST, "children"),
    Input(ids.EVENT_PHOTOS, "filename"),
    State(ids.EVENT_PHOTOS, "contents"),
    State(ids.LANG, "data"),
    prevent_initial_call=True,
)
def list_report_photos(filenames, contents, lang):
    return _upload_list(filenames, contents, lang)


def _route_summary(session_, ref: ev.EventRef, lang: str):
    e = ev.get_event(session_, ref.id)
    title = pick(f"已上报 · 事件 #{ref.id}", f"Reported · event #{ref.id}", lang) if ref.created else \
        pick(f"该上报已提交过 · 同一事件 #{ref.id}", f"Already submitted · the same event #{ref.id}", lang)
    if e is None:  # e.g. a worker's report routed to a neighbour's grid, which RLS hides from them
        body = [html.Div(pick("事件已转交其他网格处理。", "The event went to another grid.", lang))]
        return dmc.Alert(body, title=title, color="green", **{"data-testid": "report-success"})
    queue = {"grid": pick("网格", "grid", lang), "village": pick("村级队列", "village queue", lang),
             "county": pick("县级队列", "county queue", lang)}[e["queue"]]
    rows = [
        (pick("责任网格", "Grid", lang), f"{str(e['grid_code']).strip()} {e['grid_name']}" if e["grid_code"] else "—",
         "grid"),
        (pick("网格员", "Grid worker", lang), e["worker"] or "—", "worker"),
        (pick("所属村", "Village", lang), " · ".join(x for x in (e["village"], e["town"]) if x) or "—", "village"),
        (pick("责任部门", "Department", lang), pick(e["department_zh"] or "—", e["department_en"] or "—", lang),
         "department"),
        (pick("队列", "Queue", lang), queue, "queue"),
    ]
    flags = []
    if e["boundary_pending"]:
        flags.append(dmc.Badge(pick("边界待确认", "Boundary: confirm grid", lang), color="yellow", variant="filled",
                               **{"data-flag": "boundary"}))
    if e["outside_grid"]:
        flags.append(dmc.Badge(pick("网格外", "Outside any grid", lang), color="gray", **{"data-flag": "outside"}))
    table = html.Table(html.Tbody([html.Tr([html.Th(k), html.Td(v, **{"data-field": f})]) for k, v, f in rows]),
                       className="facts")
    return dmc.Alert([table, dmc.Group(flags, gap=6, mt=6) if flags else None], title=title, color="green",
                     **{"data-testid": "report-success"})


@callback(
    Output(ids.EVENT_RESULT, "children", allow_duplicate=True),
    Output(ids.EVENT_FORM, "style", allow_duplicate=True),
    Output(ids.EVENT_SUBMIT, "disabled", allow_duplicate=True),
    Output(ids.DETAILS, "children", allow_duplicate=True),
    # The "events-changed" signal: the table, the indicators and the map layer reload on it.
    Output(ids.EVENT_REFRESH, "data", allow_duplicate=True),
    Output(ids.EVENT_REPORT_BAR, "children", allow_duplicate=True),
    Output(ids.EVENT_PICK, "children", allow_duplicate=True),
    Input(ids.EVENT_SUBMIT, "n_clicks"),
    State(ids.EVENT_POINT, "data"),
    State(ids.EVENT_KEY, "data"),
    *[State(ids.event_field(f), "value") for f in _FORM_FIELDS],
    State(ids.EVENT_PHOTOS, "contents"),
    State(ids.LANG, "data"),
    State(ids.EVENT_REFRESH, "data"),
    prevent_initial_call=True,
)
def submit_report(n, point, key, _class, subclass, description, urgency, source, reporter_name, reporter_phone,
                  photos, lang, refresh, *_unused):
    # ``_unused``: callers of the former signature also passed the map's view (bounds, zoom,
    # layer options, toggle); the events layer now reloads on the signal itself.
    if not n:
        return (no_update,) * 7
    fail = lambda msg: (dmc.Alert(msg, color="red", title=pick("未能上报", "Not reported", lang),  # noqa: E731
                                  **{"data-testid": "report-error"}),) + (no_update,) * 6
    actor = current_actor()
    if actor is None or not may_report():
        return fail(wf.PermissionDenied(f"您的角色({_role()})无权上报事件。",
                                        f"Your role ({_role()}) may not report events.").message(lang))
    pt = _point(point)
    if pt is None:
        return fail(pick("请先在地图上点击事件位置。", "Click the event's location on the map first.", lang))
    try:
        blobs = decode_uploads(photos)
        with session() as s:
            with s.begin():
                ref = ev.create_event(
                    s, lon=pt[0], lat=pt[1], subclass=subclass, description=description, urgency=urgency or "normal",
                    source=source, actor=actor, reporter_name=reporter_name or None,
                    reporter_phone=reporter_phone or None, photos=blobs, client_key=key or None,
                )
            summary = _route_summary(s, ref, lang)
            panel = event_panel.render(s, ref.id, lang)
    except BilingualError as exc:
        return fail(error_text(exc, lang))
    # The offer for this point is spent: the new event's own marker and panel take over.
    return (summary, {"display": "none"}, True, panel if panel is not None else no_update, (refresh or 0) + 1,
            [], [])


# -- 3. actions on an event ----------------------------------------------------------------

def _fields_for(event_id: int) -> dict:
    """Values of the panel's inputs for ``event_id``, by field name."""
    out = {}
    for group in ctx.states_list:
        if not isinstance(group, list):
            continue
        for item in group:
            cid = item.get("id")
            if isinstance(cid, dict) and cid.get("type") == "evt-field" and cid.get("event") == event_id:
                out[cid["field"]] = item.get("value")
            if isinstance(cid, dict) and cid.get("type") == "evt-upload" and cid.get("event") == event_id:
                out["photos"] = item.get("value")
            if isinstance(cid, dict) and cid.get("type") == "evt-panel" and cid.get("event") == event_id:
                out["panel"] = item.get("value")
    return out


def action_arguments(action: wf.Action, fields: dict) -> tuple[dict, list[bytes]]:
    """The service's keyword data and photos for ``action`` from the panel's inputs.

    Only what the action takes is passed; empty inputs are left out so the
    service answers with its own message (e.g. a missing due date).
    """
    data: dict = {}
    if action in (wf.Action.ACCEPT, wf.Action.DISPATCH, wf.Action.REASSIGN) and fields.get("grid"):
        data["grid_uid"] = fields["grid"]
    if action in (wf.Action.DISPATCH, wf.Action.REASSIGN):
        if fields.get("worker"):
            data["worker_id"] = as_int(fields["worker"]) or fields["worker"]
        if fields.get("department"):
            data["department"] = fields["department"]
    if action == wf.Action.POSTPONE and fields.get("until"):
        try:
            data["until"] = date.fromisoformat(str(fields["until"])[:10])  # end of that day, China time
        except ValueError:
            data["until"] = str(fields["until"])
    if action == wf.Action.RATE:
        rating = fields.get("rating")
        data["rating"] = int(rating) if isinstance(rating, (int, float)) and rating >= 1 else None
    photos = decode_uploads(fields.get("photos")) if action == wf.Action.HANDLE else []
    return data, photos


@callback(
    Output(ids.DETAILS, "children", allow_duplicate=True),
    Output(ids.EVENT_REFRESH, "data", allow_duplicate=True),  # the "events-changed" signal
    Input({"type": "evt-action", "event": ALL, "action": ALL}, "n_clicks"),
    State({"type": "evt-field", "event": ALL, "field": ALL}, "value"),
    State({"type": "evt-upload", "event": ALL}, "contents"),
    State({"type": "evt-panel", "event": ALL}, "children"),
    State(ids.LANG, "data"),
    State(ids.EVENT_REFRESH, "data"),
    prevent_initial_call=True,
)
def act_on_event(clicks, _fields, _uploads, _panels, lang, refresh):
    trig = ctx.triggered_id
    if not isinstance(trig, dict) or not any(c for c in clicks or []):
        return (no_update,) * 2
    if not next((t["value"] for t in ctx.triggered if t["value"]), None):
        return (no_update,) * 2  # a button was (re)rendered, not clicked
    event_id, action_name = trig["event"], trig["action"]
    fields = _fields_for(event_id)
    version = fields.get("panel")
    actor = current_actor()
    message, ok, changed = None, False, False
    try:
        if actor is None:
            raise wf.PermissionDenied("请先登录。", "Please sign in.")
        if action_name.startswith("merge:") or action_name == wf.Action.UNMERGE.value:  # 合并 (issue 17)
            with session() as s, s.begin():
                result = public.panel_action(s, event_id, action_name, actor, version, fields.get("note") or None)
            action = wf.Action(result.action)
        else:
            action = wf.Action(action_name)
            data, photos = action_arguments(action, fields)
            with session() as s, s.begin():
                result = ev.transition(s, event_id, action, actor, version, fields.get("note") or None,
                                       photos=photos, **data)
        changed = True
        message = pick(
            f"已{wf.label(action, 'zh')}:{wf.label(result.from_state, 'zh')} → {wf.label(result.to_state, 'zh')}",
            f"{wf.label(action, 'en')}: {wf.label(result.from_state, 'en')} → {wf.label(result.to_state, 'en')}",
            lang)
        ok = True
    except ValueError:
        message = pick(f"未知操作:{action_name}", f"Unknown action: {action_name}", lang)
    except BilingualError as exc:  # stale version, not allowed, bad input: the service's own words
        message = error_text(exc, lang)
    # Re-render from the database either way: after a stale version the panel shows what is current.
    with session() as s:
        panel = event_panel.render(s, event_id, lang, message=message, ok=ok)
    if panel is None:
        panel = error_alert(ev.EventNotFound(event_id), lang)
    if not changed:
        return panel, no_update
    return panel, (refresh or 0) + 1


@callback(
    Output({"type": "evt-field", "event": MATCH, "field": "worker"}, "value"),
    Input({"type": "evt-field", "event": MATCH, "field": "grid"}, "value"),
    prevent_initial_call=True,
)
def confirmed_grid_sets_worker(grid_uid):
    """Choosing the responsible grid (边界待确认) proposes that grid's worker for the dispatch."""
    if not grid_uid:
        return no_update
    with session() as s:
        found = el.grid_choices(s, [grid_uid])
    return str(found[0]["worker_id"]) if found and found[0]["worker_id"] else None


@callback(
    Output({"type": "evt-upload-list", "event": MATCH}, "children"),
    Input({"type": "evt-upload", "event": MATCH}, "filename"),
    State({"type": "evt-upload", "event": MATCH}, "contents"),
    State(ids.LANG, "data"),
    prevent_initial_call=True,
)
def list_action_photos(filenames, contents, lang):
    return _upload_list(filenames, contents, lang)


# -- 4. the table, the indicators, the drawer ------------------------------------------------

def column_defs(lang: str) -> list[dict]:
    """Columns of the events table; state colours come from the workflow."""
    state_styles = [
        {"condition": f"params.data.state == '{s.value}'",
         "style": {"color": "#fff", "backgroundColor": color, "fontWeight": 600}}
        for s, color in wf.STATE_COLORS.items()
    ]
    return [
        {"field": "id", "headerName": pick("编号", "No.", lang), "width": 76, "pinned": "left"},
        {"field": "state_label", "headerName": pick("状态", "State", lang), "width": 76 if lang == "zh" else 124,
         "cellStyle": {"styleConditions": state_styles}},
        {"field": "overdue_label", "headerName": pick("超期", "Overdue", lang), "width": 70 if lang == "zh" else 96,
         "cellClass": "evt-cell-overdue"},
        {"field": "category", "headerName": pick("类别", "Category", lang), "flex": 2, "minWidth": 170 if lang == "zh" else 300,
         "tooltipField": "category"},
        {"field": "village", "headerName": pick("村", "Village", lang), "flex": 1, "minWidth": 90},
        # The village is the column beside: the grid shows its 3-digit sequence, the full code on hover.
        {"field": "grid_seq", "headerName": pick("网格", "Grid", lang), "width": 64, "tooltipField": "grid_code"},
        {"field": "worker", "headerName": pick("网格员", "Worker", lang), "width": 90},
        {"field": "urgency_label", "headerName": pick("紧急", "Urgency", lang), "width": 70 if lang == "zh" else 96},
        {"field": "reported", "headerName": pick("上报时间", "Reported", lang), "width": 140, "sort": "desc"},
        {"field": "due", "headerName": pick("处置时限", "Due", lang), "width": 140},
        {"field": "rework_count", "headerName": pick("返工", "Rework", lang), "width": 66 if lang == "zh" else 84},
    ]


def table_rows(rows: list[dict], lang: str, urgencies: dict) -> list[dict]:
    """Rows as the grid shows them (labels in the page language, China time)."""
    out = []
    for r in rows:
        out.append({
            "id": r["id"], "rid": str(r["id"]), "state": r["state"], "state_label": wf.label(r["state"], lang),
            "overdue": bool(r["overdue"]), "overdue_label": pick("超期", "overdue", lang) if r["overdue"] else "",
            "category": pick(f"{r['class_zh']} › {r['subclass_zh']}", f"{r['class_en']} › {r['subclass_en']}", lang),
            "village": r["village"] or pick("县级队列", "County queue", lang),
            "grid_code": r["grid_code"].strip() if r["grid_code"] else "",
            "grid_seq": r["grid_code"].strip()[-3:] if r["grid_code"] else "",
            "worker": r["worker"] or "",
            "urgency_label": pick(*urgencies.get(r["urgency"], (r["urgency"], r["urgency"])), lang),
            "reported": fmt_local(r["reported_at"]),
            "due": fmt_local(r["due_at"]) if r["due_at"] else "",
            "rework_count": r["rework_count"],
        })
    return out


@callback(
    Output(ids.EVENT_TABLE, "rowData"),
    Output(ids.EVENT_TABLE_COUNT, "children"),
    Input(ids.EVENT_DRAWER_OPEN, "data"),
    Input(ids.event_filter("state"), "value"),
    Input(ids.event_filter("class"), "value"),
    Input(ids.event_filter("range"), "value"),
    Input(ids.event_filter("village"), "value"),
    Input(ids.EVENT_REFRESH, "data"),
    State(ids.LANG, "data"),
)
def load_table(is_open, state_group, class_code, period, village, _refresh, lang):
    if not is_open:
        return no_update, no_update  # nothing is fetched until the drawer is opened
    start, end = _period(period)
    group = state_group if state_group in el.STATE_GROUPS else "open"
    with session() as s:
        rows, total = el.event_rows(s, state_group=group, class_code=class_filter(class_code), start=start, end=end,
                                    village_id=as_int(village))
        urgencies = {u["code"]: (u["name_zh"], u["name_en"]) for u in ev.reference_lists(s)["urgencies"]}
    shown = len(rows)
    count = pick(f"共 {total:,} 件", f"Events: {total:,}", lang)
    if shown < total:
        count += pick(f"(显示最新 {shown:,} 件,请缩小筛选范围)", f" (newest {shown:,} shown; narrow the filters)", lang)
    return table_rows(rows, lang, urgencies), count


# The events layer's data carries its own note when a view was cut to the newest N
# (layers/events.py); the browser only picks the language, so the layer's GeoJSON is
# not sent back to the server on every pan.
clientside_callback(
    "function(data, lang) { return (data && data.note) ? (data.note[lang] || data.note.zh) : ''; }",
    Output(NOTE_ID, "children"),
    Input({"type": "layer", "name": "events"}, "data"),
    State(ids.LANG, "data"),
)


def _pct(value) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def indicator_chips(k: ev.Indicators, lang: str) -> list:
    """The KPI chips: 结案率, 按期结案率, 返工率, average handling time, open-overdue."""
    base = k.should_close - k.postponed
    hours = "—" if k.avg_handling_hours is None else f"{k.avg_handling_hours:.1f} h"
    chips = [
        ("closure", pick("结案率", "Closure rate", lang), _pct(k.closure_rate), f"{k.closed}/{base}",
         pick("结案数 ÷(应结案数 − 缓办数)", "closed ÷ (due − postponed)", lang)),
        ("on_time", pick("按期结案率", "On-time rate", lang), _pct(k.on_time_rate), f"{k.closed_on_time}/{base}",
         pick("按期结案数 ÷(应结案数 − 缓办数)", "closed on time ÷ (due − postponed)", lang)),
        ("rework", pick("返工率", "Rework rate", lang), _pct(k.rework_rate), f"{k.reworked}/{k.should_close}",
         pick("返工数 ÷ 应结案数", "reworked ÷ due", lang)),
        ("handling", pick("平均处置时长", "Avg. handling", lang), hours, "",
         pick("派遣到结案的平均小时数", "mean hours from dispatch to closing", lang)),
        ("overdue", pick("超期未结", "Open overdue", lang), f"{k.open_overdue:,}", "",
         pick("已过期限仍未结案(不论期间)", "past the deadline and still open (any period)", lang)),
    ]
    return [
        html.Div([html.Span(label, className="kpi-label"), html.B(value, className="kpi-value"),
                  html.Span(detail, className="kpi-detail") if detail else None],
                 className="kpi" + (" kpi-alert" if key == "overdue" and k.open_overdue else ""),
                 # The counts stay readable on hover where the strip hides them (narrow screens).
                 title=f"{tip}({detail})" if detail else tip, **{"data-kpi": key})
        for key, label, value, detail, tip in chips
    ]


@callback(
    Output(ids.EVENT_INDICATORS, "children"),
    Input(ids.event_filter("range"), "value"),
    Input(ids.event_filter("village"), "value"),
    Input(ids.EVENT_REFRESH, "data"),
    State(ids.LANG, "data"),
)
def show_indicators(period, village, _refresh, lang):
    start, end = _period(period)
    vid = as_int(village)
    with session() as s:
        k = ev.indicators(s, start, end, [vid] if vid else None)
        sat = public.satisfaction(s, start, end, [vid] if vid else None)
    return indicator_chips(k, lang) + [satisfaction_chip(sat, lang)]


def satisfaction_chip(sat: dict, lang: str):
    """满意率: ratings of the period that are 满意 or 基本满意 (reporters' own 评价 included, issue 17)."""
    detail = f"{sat['satisfied']}/{sat['rated']}"
    tip = pick(f"(满意 + 基本满意)÷ 评价数;其中报告人评价 {sat['by_reporter']} 条",
               f"(satisfied + basically) ÷ ratings; {sat['by_reporter']} by reporters", lang)
    return html.Div([html.Span(pick("满意率", "Satisfaction", lang), className="kpi-label"),
                     html.B(_pct(sat["rate"]), className="kpi-value"), html.Span(detail, className="kpi-detail")],
                    className="kpi", title=tip, **{"data-kpi": "satisfaction"})


# The drawer opens and closes in the browser; the map is told its new size.
clientside_callback(
    ClientsideFunction("dvmapEvents", "toggleDrawer"),
    Output(ids.EVENT_DRAWER_OPEN, "data"),
    Output(ids.EVENT_DRAWER, "className"),
    Input(ids.EVENT_DRAWER_TOGGLE, "n_clicks"),
    prevent_initial_call=True,
)


@callback(
    Output(ids.MAP, "viewport", allow_duplicate=True),
    Output(ids.DETAILS, "children", allow_duplicate=True),
    Input(ids.EVENT_TABLE, "cellClicked"),
    State(ids.MAP, "zoom"),
    State(ids.LANG, "data"),
    prevent_initial_call=True,
)
def table_row_to_map(cell, zoom, lang):
    event_id = as_int((cell or {}).get("rowId"))
    if event_id is None:
        return no_update, no_update
    with session() as s:
        e = ev.get_event(s, event_id)
        panel = event_panel.render(s, event_id, lang) if e else None
    if e is None:
        return no_update, error_alert(ev.EventNotFound(event_id), lang)
    target_zoom = max(16.0, float(zoom or 0))
    viewport = {"center": [e["lat"], e["lon"]], "zoom": target_zoom, "transition": "flyTo"}
    return viewport, panel


@callback(
    Output(ids.EVENT_TABLE, "selectedRows"),
    Output(ids.EVENT_TABLE, "scrollTo"),
    Input(EVENTS_LAYER, "clickData"),
    prevent_initial_call=True,
)
def map_point_to_table(feature):
    props = (feature or {}).get("properties") or {}
    event_id = as_int(props.get("id")) if props.get("kind") == "event" else None
    if event_id is None:
        return no_update, no_update
    return {"ids": [str(event_id)]}, {"rowId": str(event_id), "rowPosition": "middle"}
