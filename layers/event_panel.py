"""The event panel: details, route, photos, the actions the user may take, the timeline.

Rendered by :meth:`layers.events.EventLayer.details` when an event is clicked and by
callbacks/events.py after an action. Only the actions that
:func:`geodata.workflow.allowed_actions` gives for the event's state and the
user's role are offered, each with the inputs it needs. Component ids are
pattern-matching dicts (``evt-action``, ``evt-field``, ``evt-upload``, ``evt-panel``)
so that one callback serves every action of every event.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import dash_mantine_components as dmc
from dash import dcc, html

from geodata import events as ev
from geodata import public
from geodata import workflow as wf
from geodata.clock import display_zone, fmt_local
from geodata.i18n import pick
from geodata.queries import event_list as el
from geodata.users import mask_phone
from layers.panel import header

A = wf.Action
#: URL of one photo (served by map_app/event_routes.py with the user's scope).
PHOTO_URL = "/events/{event_id}/photos/{photo_id}"

# -- component ids -----------------------------------------------------------------


def action_id(event_id: int, action: str) -> dict:
    return {"type": "evt-action", "event": event_id, "action": action}


def field_id(event_id: int, field: str) -> dict:
    return {"type": "evt-field", "event": event_id, "field": field}


def upload_id(event_id: int) -> dict:
    return {"type": "evt-upload", "event": event_id}


def panel_store_id(event_id: int) -> dict:
    return {"type": "evt-panel", "event": event_id}


# -- formatting ----------------------------------------------------------------------

def state_badge(state: str, lang: str):
    color = wf.STATE_COLORS.get(wf.State(state), "#64748b")
    return dmc.Badge(wf.label(state, lang), color=color, variant="filled", size="lg", radius="sm",
                     className="evt-state", **{"data-state": state})


#: Which actions need which extra inputs (the note is shared by all).
_ROUTE_ACTIONS = (A.DISPATCH, A.REASSIGN)
_GRID_ACTIONS = (A.ACCEPT, A.DISPATCH, A.REASSIGN)
#: Actions whose note is required (the service checks; the form says so up front).
_BUTTON_COLORS = {A.REJECT: "red", A.VERIFY_FAIL: "red", A.SEND_BACK: "gray", A.ESCALATE: "orange",
                  A.POSTPONE: "violet"}


def _facts(rows, test_id: str | None = None):
    body = [html.Tr([html.Th(k), html.Td(v if v not in (None, "") else "—", **({"data-field": f} if f else {}))])
            for k, v, f in rows]
    return html.Table(html.Tbody(body), className="facts", **({"data-testid": test_id} if test_id else {}))


def _labels(session) -> dict:
    refs = ev.reference_lists(session)
    return {key: {r["code"]: (r["name_zh"], r["name_en"]) for r in rows} for key, rows in refs.items()}


def _flag_badges(e: dict, lang: str) -> list:
    badges = []
    if e["overdue"]:
        badges.append(dmc.Badge(pick("超期", "Overdue", lang), color="red", variant="outline", className="evt-flag"))
    if e["escalation_level"]:
        zh, en = wf.ESCALATION_LABELS.get(e["escalation_level"], ("督办", "Escalated"))
        badges.append(dmc.Badge(pick(zh, en, lang), color="orange", variant="light", className="evt-flag"))
    if e["rework_count"]:
        badges.append(dmc.Badge(pick(f"返工 {e['rework_count']} 次", f"Reworked ×{e['rework_count']}", lang),
                                color="grape", variant="light", className="evt-flag", **{"data-flag": "rework"}))
    if e["boundary_pending"]:
        badges.append(dmc.Badge(pick("边界待确认", "Boundary: confirm grid", lang), color="yellow",
                                variant="filled", className="evt-flag", **{"data-flag": "boundary"}))
    if e["outside_grid"]:
        badges.append(dmc.Badge(pick("网格外", "Outside any grid", lang), color="gray", variant="light",
                                className="evt-flag", **{"data-flag": "outside"}))
    return badges


def _route(session, e: dict, lang: str):
    queue = {"grid": ("网格", "Grid"), "village": ("村级队列", "Village queue"),
             "county": ("县级队列", "County queue")}.get(e["queue"], (e["queue"], e["queue"]))
    grid = f"{str(e['grid_code']).strip()} {e['grid_name'] or ''}".strip() if e["grid_code"] else None
    rows = [
        (pick("所属村", "Village", lang), " · ".join(x for x in (e["village"], e["town"]) if x) or None, "village"),
        (pick("责任网格", "Grid", lang), grid, "grid"),
        (pick("网格员", "Grid worker", lang), e["worker"], "worker"),
        (pick("责任部门", "Department", lang), pick(e["department_zh"] or "", e["department_en"] or "", lang) or None,
         "department"),
        (pick("队列", "Queue", lang), pick(*queue, lang), "queue"),
    ]
    out = [_facts(rows, "event-route")]
    if e["boundary_pending"] and e["candidate_grid_uids"]:
        cands = el.grid_choices(session, e["candidate_grid_uids"])
        hidden = len(e["candidate_grid_uids"]) - len(cands)
        items = [html.Li(f"{c['code']} {c['name']} · {c['village']}" + (f" · {c['worker']}" if c["worker"] else ""))
                 for c in cands]
        if hidden:
            items.append(html.Li(pick(f"另有 {hidden} 个相邻网格不在您的权限范围内", f"{hidden} more neighbouring "
                                      "grid(s) outside your scope", lang)))
        out.append(html.Div([html.Div(pick("候选网格(距网格边界过近,请确认责任网格):",
                                           "Candidate grids (close to a grid edge; confirm the route):", lang),
                                      className="evt-cand-title"), html.Ul(items, className="panel-list")],
                            className="evt-candidates"))
    return out


def _photos(session, e: dict, lang: str):
    photos = ev.event_photos(session, e["id"])
    if not photos:
        return []
    thumbs = [
        html.A(html.Img(src=PHOTO_URL.format(event_id=e["id"], photo_id=p["id"]), className="evt-photo",
                        alt=pick(f"照片 {i}", f"Photo {i}", lang)),
               href=PHOTO_URL.format(event_id=e["id"], photo_id=p["id"]), target="_blank")
        for i, p in enumerate(photos, 1)
    ]
    return [html.H4(pick(f"照片({len(photos)})", f"Photos ({len(photos)})", lang), className="panel-section"),
            html.Div(thumbs, className="evt-photos", **{"data-testid": "event-photos"})]


def _actions(session, e: dict, role: str, lang: str, labels: dict):
    allowed = wf.allowed_actions(e["state"], role)
    if not allowed:
        return []
    eid = e["id"]
    need_note = [a for a in allowed if a in wf.NOTE_REQUIRED]
    hint = pick("说明 / 原因 / 处置结果", "Note / reason / result", lang)
    if need_note:
        names = pick("、", ", ", lang).join(wf.label(a, lang) for a in need_note)
        hint += pick(f"({names}时必填)", f" (required for {names})", lang)
    blocks = [dmc.Textarea(id=field_id(eid, "note"), placeholder=hint, autosize=True, minRows=2, maxRows=6,
                           size="sm", label=pick("说明", "Note", lang))]
    # MERGE needs the kept event: offered per duplicate suggestion (see _duplicates)
    simple = [a for a in allowed if a not in (*_ROUTE_ACTIONS, A.POSTPONE, A.RATE, A.HANDLE, A.MERGE)]

    def button(a):
        return dmc.Button(wf.label(a, lang), id=action_id(eid, a.value), size="xs",
                          color=_BUTTON_COLORS.get(a, "blue"), variant="filled" if a not in (A.ESCALATE, A.SEND_BACK)
                          else "light", className="evt-btn", **{"data-action": a.value})

    if e["boundary_pending"] and any(a in allowed for a in _GRID_ACTIONS):
        cands = el.grid_choices(session, e["candidate_grid_uids"])
        blocks.append(dmc.Select(
            id=field_id(eid, "grid"), label=pick("确认责任网格(边界待确认)", "Confirm the grid (boundary)", lang),
            data=[{"value": c["uid"],
                   "label": f"{c['code']} {c['name']}" + (f" · {c['worker']}" if c["worker"] else "")}
                  for c in cands],
            value=None, size="xs", clearable=True, placeholder=pick("选择网格", "Choose a grid", lang),
        ))
    route_actions = [a for a in allowed if a in _ROUTE_ACTIONS]
    if route_actions:
        workers = el.village_workers(session, e["village_id"])
        blocks.append(html.Div([
            dmc.Select(id=field_id(eid, "worker"), label=pick("网格员", "Grid worker", lang), size="xs",
                       data=[{"value": str(w["id"]), "label": w["name"] + (f" ({', '.join(w['grids'])})" if w["grids"]
                                                                            else "")} for w in workers],
                       value=str(e["worker_id"]) if e["worker_id"] else None, clearable=True, searchable=True,
                       placeholder=pick("无网格员", "No grid worker", lang)),
            dmc.Select(id=field_id(eid, "department"), label=pick("责任部门", "Department", lang), size="xs",
                       data=[{"value": k, "label": pick(*v, lang)} for k, v in labels["departments"].items()],
                       value=e["department"], clearable=True, searchable=True),
            dmc.Group([button(a) for a in route_actions], gap=6, mt=6),
        ], className="evt-action-block", **{"data-block": "route"}))
    if A.POSTPONE in allowed:
        tomorrow = (datetime.now(display_zone()) + timedelta(days=1)).date()
        blocks.append(html.Div([
            dmc.DatePickerInput(id=field_id(eid, "until"), label=pick("新的办结期限", "New due date", lang),
                                minDate=tomorrow.isoformat(), size="xs", valueFormat="YYYY-MM-DD",
                                placeholder=pick("选择日期", "Pick a date", lang), clearable=True),
            dmc.Group([button(A.POSTPONE)], gap=6, mt=6),
        ], className="evt-action-block", **{"data-block": "postpone"}))
    if A.HANDLE in allowed:
        blocks.append(html.Div([
            dcc.Upload(id=upload_id(eid), multiple=True, accept="image/jpeg,image/png,image/webp",
                       children=html.Div(pick("处置照片:拖放或点击选择(JPEG/PNG/WebP,≤5 MB)",
                                              "Result photos: drop or click (JPEG/PNG/WebP, ≤ 5 MB)", lang)),
                       className="evt-upload"),
            html.Div(id={"type": "evt-upload-list", "event": eid}, className="evt-upload-list"),
            dmc.Group([button(A.HANDLE)], gap=6, mt=6),
        ], className="evt-action-block", **{"data-block": "handle"}))
    if A.RATE in allowed:
        blocks.append(html.Div([
            html.Div(pick("评价(1–5 星)", "Rating (1–5 stars)", lang), className="evt-label"),
            dmc.Rating(id=field_id(eid, "rating"), value=0, count=5, size="lg"),
            dmc.Group([button(A.RATE)], gap=6, mt=6),
        ], className="evt-action-block", **{"data-block": "rate"}))
    if simple:
        blocks.append(dmc.Group([button(a) for a in simple], gap=6, mt=8, className="evt-simple-actions"))
    blocks += _duplicates(session, e, A.MERGE in allowed, lang)
    return [html.H4(pick("处置操作", "Actions", lang), className="panel-section"),
            html.Div(blocks, className="evt-actions", **{"data-testid": "event-actions"})]


def _read_only(lang: str) -> list:
    """In place of the actions: a report routed outside the reporter's scope is shown, not handled."""
    return [html.Div(pick("您上报的事件已转交其他网格处理,此处只读,可查看处理进度。",
                          "You reported this event; another grid handles it. Read-only: follow its progress here.",
                          lang), className="panel-hint", **{"data-testid": "event-read-only"})]


def _duplicates(session, e: dict, may_merge: bool, lang: str) -> list:
    """可能重复 #N: open events of the same subclass nearby (issue 17), each with a merge button."""
    found = public.duplicate_candidates(session, e["id"])
    if not found:
        return []
    items = []
    for d in found:
        text = pick(f"可能重复 #{d['id']} · 相距 {d['metres']} 米 · {wf.label(d['state'], 'zh')}",
                    f"Possible duplicate #{d['id']} · {d['metres']} m · {wf.label(d['state'], 'en')}", lang)
        merge = dmc.Button(pick(f"合并到 #{d['id']}", f"Merge into #{d['id']}", lang), size="xs", color="gray",
                           id=action_id(e["id"], f"merge:{d['id']}"), className="evt-btn",
                           **{"data-action": f"merge:{d['id']}"}) if may_merge else None
        items.append(html.Div([html.Span(text), merge], className="evt-duplicate", **{"data-duplicate": str(d["id"])}))
    return [html.Div(items, className="evt-action-block", **{"data-block": "duplicates"})]


def _history_detail(h: dict, lang: str, workers: dict) -> str:
    data = h.get("data") or {}
    bits = []
    if h["action"] in (A.DISPATCH.value, A.REASSIGN.value) and data.get("worker_id"):
        bits.append(pick("网格员 ", "worker ", lang) + workers.get(int(data["worker_id"]), f"#{data['worker_id']}"))
    if data.get("until") or (h["action"] == A.POSTPONE.value and data.get("due_at")):
        bits.append(pick("期限至 ", "due ", lang) + fmt_local(_parse(data.get("until") or data.get("due_at"))))
    if data.get("rating"):
        bits.append("★" * int(data["rating"]))
    if data.get("rework_count") and h["action"] == A.VERIFY_FAIL.value:
        bits.append(pick(f"第 {data['rework_count']} 次返工", f"rework #{data['rework_count']}", lang))
    if isinstance(data.get("chosen_grid"), dict):  # a boundary case's candidate chosen at 立案/派遣
        chosen = " ".join(str(x) for x in (data["chosen_grid"].get("code"), data["chosen_grid"].get("name")) if x)
        bits.append(pick("选定网格: ", "Chosen grid: ", lang) + chosen)
    if data.get("photos") or data.get("photos_duplicate"):
        n, dup = int(data.get("photos") or 0), int(data.get("photos_duplicate") or 0)
        bits.append(pick(f"{n} 张照片" + (f"({dup} 张重复已忽略)" if dup else ""),
                         f"{n} photo(s)" + (f" ({dup} duplicate(s) ignored)" if dup else ""), lang))
    if h["action"] == wf.REPORT and data.get("queue"):
        bits.append(pick("进入", "queue: ", lang) + {"grid": pick("网格", "grid", lang),
                                                      "village": pick("村级队列", "village", lang),
                                                      "county": pick("县级队列", "county", lang)}[data["queue"]])
    return " · ".join(bits)


def _parse(value):
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


def _action_label(action: str, lang: str) -> str:
    if action == wf.REPORT:
        return pick("上报", "Reported", lang)
    if action == "note":
        return pick("备注", "Note", lang)
    if action == "reroute":
        return pick("网格调整改派", "Re-routed after a grid change", lang)
    if action == "import":
        return pick("历史导入", "Imported history", lang)
    try:
        return wf.label(wf.Action(action), lang)
    except ValueError:
        return action


def _timeline(session, e: dict, lang: str):
    history = ev.event_history(session, e["id"])
    workers = {w["id"]: w["name"] for w in el.village_workers(session, e["village_id"])}
    items = []
    for h in history:
        moved = h["from_state"] and h["from_state"] != h["to_state"]
        detail = _history_detail(h, lang, workers)
        items.append(html.Li([
            html.Span(fmt_local(h["at"]), className="tl-time"),
            html.B(_action_label(h["action"], lang)),
            html.Span(f" · {h['actor']}", className="tl-actor"),
            html.Span(f" {wf.label(h['from_state'], lang)} → {wf.label(h['to_state'], lang)}" if moved else "",
                      className="tl-move"),
            html.Div(detail, className="tl-detail") if detail else None,
            html.Div(h["note"], className="tl-note") if h["note"] else None,
        ], **{"data-action": h["action"]}))
    return [html.H4(pick(f"流转记录({len(history)})", f"Timeline ({len(history)})", lang), className="panel-section"),
            html.Ol(items, className="timeline", **{"data-testid": "event-timeline"})]


def render(session, event_id: int, lang: str, *, message: str | None = None, ok: bool = False):
    """The whole panel for one event, or None when it is not visible in the session's scope.

    Parameters
    ----------
    session : Session
        Scoped to the logged-in user (its ``info['scope'].role`` decides the actions).
    event_id : int
    lang : str
    message : str, optional
        A result or error to show above the actions (e.g. a stale version).
    ok : bool
        Whether ``message`` reports success.
    """
    e = ev.get_event(session, event_id)
    if e is None:
        return None
    scope = session.info.get("scope")
    role = scope.role if scope else "anonymous"
    labels = _labels(session)
    urgency = labels["urgencies"].get(e["urgency"], (e["urgency"], e["urgency"]))
    source = labels["sources"].get(e["source"], (e["source"], e["source"]))
    category = f"{pick(e['class_zh'], e['class_en'], lang)} › {pick(e['subclass_zh'], e['subclass_en'], lang)}"
    reporter = " · ".join(x for x in (e["reported_by"], e.get("reporter_name"),
                                     mask_phone(e.get("reporter_phone"), role)) if x)
    rows = [
        (pick("类别", "Category", lang), category, "category"),
        (pick("描述", "Description", lang), e["description"], "description"),
        (pick("紧急程度", "Urgency", lang), pick(*urgency, lang), "urgency"),
        (pick("来源", "Source", lang), pick(*source, lang), "source"),
        (pick("上报时间", "Reported", lang), fmt_local(e["reported_at"]), "reported_at"),
        (pick("上报人", "Reported by", lang), reporter, "reporter"),
        (pick("关注人数", "Followers (me too)", lang), str(public.followers(session, e["id"])), "followers"),
        (pick("位置", "Location", lang), f"{e['lon']:.6f}, {e['lat']:.6f}" + (f" · {e['address']}" if e["address"]
                                                                            else ""), "location"),
        (pick("处置时限", "Due", lang), fmt_local(e["due_at"]), "due_at"),
    ]
    if e["result"]:
        rows.append((pick("处置结果", "Result", lang), e["result"], "result"))
    if e["rating"]:
        rows.append((pick("评价", "Rating", lang), "★" * e["rating"] + "☆" * (5 - e["rating"]), "rating"))
    flash = None
    if message:
        flash = html.Div(message, className="evt-msg " + ("evt-msg-ok" if ok else "evt-msg-error"),
                         role="status" if ok else "alert", **{"data-testid": "event-message"})
    return html.Div([
        # The version this panel shows; actions send it as expected_version. (Not a dcc.Store:
        # a memory store keeps its old data when re-rendered with the same id.)
        html.Div(str(e["version"]), id=panel_store_id(e["id"]), hidden=True),
        header(pick(e["subclass_zh"], e["subclass_en"], lang),
               f"#{e['id']} · " + pick(f"第 {e['version']} 版", f"version {e['version']}", lang), "事件", "Event", lang),
        html.Div([state_badge(e["state"], lang), *_flag_badges(e, lang)], className="evt-badges",
                 **{"data-testid": "event-state", "data-state": e["state"]}),
        flash,
        _facts(rows, "event-facts"),
        html.H4(pick("责任路由", "Route", lang), className="panel-section"),
        *_route(session, e, lang),
        *_photos(session, e, lang),
        *(_actions(session, e, role, lang, labels) if el.in_own_scope(session, e["id"]) else _read_only(lang)),
        *_timeline(session, e, lang),
    ], className="evt-panel", **{"data-event": str(e["id"]), "data-version": str(e["version"])})
