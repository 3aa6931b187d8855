"""Callbacks of /bigscreen/admin: save weights/targets and manual values (administrators only).

The role comes from the server session (map_app's login), checked here and again
by the database's policies; every save is one transaction: all or nothing.
"""
from __future__ import annotations

import math

from dash import ALL, Input, Output, State, callback, ctx, html, no_update
from flask_login import current_user

from callbacks.context import session
from geodata import evaluation as ev
from geodata.i18n import pick

LANG = "bsa-lang"
ORIGINAL = "bsa-original"
SAVE_WEIGHTS = "bsa-save-weights"
WEIGHTS_MSG = "bsa-weights-msg"
WEIGHT_TOTAL = "bsa-weight-total"
PERIOD = "bsa-period"
GRID = "bsa-grid"
SAVE_VALUES = "bsa-save-values"
VALUES_MSG = "bsa-values-msg"


def weight_id(code: str) -> dict:
    return {"type": "bsa-weight", "code": code}


def target_id(code: str) -> dict:
    return {"type": "bsa-target", "code": code}


def _who() -> tuple[str, str]:
    """(username, role) of the logged-in user, from the server session."""
    if current_user and current_user.is_authenticated:
        return current_user.user.username, current_user.role
    return "anonymous", "anonymous"


def _msg(ok: bool, zh: str, en: str, lang: str):
    return html.Div(pick(zh, en, lang), className=f"bsa-msg {'ok' if ok else 'err'}", role="status" if ok else "alert")


@callback(
    Output(WEIGHT_TOTAL, "children"),
    Input(weight_id(ALL), "value"),
    State(LANG, "data"),
)
def show_total(weights, lang):
    total = sum(float(w) for w in weights if isinstance(w, (int, float)) and math.isfinite(w))
    note = "" if abs(total - 100) < 1e-6 else pick("(指数按权重之和归一)", " (the index divides by the sum)", lang)
    return pick(f"权重合计 {total:g}%", f"Total weight {total:g}%", lang) + note


@callback(
    Output(WEIGHTS_MSG, "children"),
    Input(SAVE_WEIGHTS, "n_clicks"),
    State(weight_id(ALL), "value"),
    State(target_id(ALL), "value"),
    State(LANG, "data"),
    prevent_initial_call=True,
)
def save_weights(_n, weights, targets, lang):
    username, role = _who()
    codes_w = [i["id"]["code"] for i in ctx.states_list[0]]
    codes_t = [i["id"]["code"] for i in ctx.states_list[1]]
    changes: dict[str, dict] = {}
    for code, value in zip(codes_w, weights):
        changes.setdefault(code, {})["weight"] = "" if value is None else value
    for code, value in zip(codes_t, targets):
        changes.setdefault(code, {})["target"] = "" if value is None else value
    try:
        with session() as s, s.begin():
            n = ev.update_indicators(s, changes, actor=username, role=role)
    except ev.EvaluationError as exc:
        return _msg(False, exc.message_zh, exc.message_en, lang)
    return _msg(True, f"已保存,{n} 项指标有改动。", f"Saved: {n} indicator(s) changed.", lang)


def _rows(s, period: str) -> tuple[list[dict], dict]:
    from sqlalchemy import text

    values = ev.manual_values(s, period)
    villages = s.execute(text(
        "SELECT v.id, v.code, v.name, t.name AS town FROM village v JOIN town t ON t.id = v.town_id ORDER BY v.code"))
    rows, original = [], {}
    for v in villages:
        row = {"village_id": str(v.id), "code": v.code.strip(), "village": v.name, "town": v.town}
        for code, by_village in values.items():
            if v.id in by_village:
                row[code] = by_village[v.id]
                original[f"{v.id}:{code}"] = by_village[v.id]
        rows.append(row)
    return rows, original


@callback(
    Output(GRID, "rowData"),
    Output(ORIGINAL, "data"),
    Input(PERIOD, "value"),
)
def load_values(period):
    if not period:
        return no_update, no_update
    with session() as s:
        rows, original = _rows(s, period)
    return rows, original


@callback(
    Output(VALUES_MSG, "children"),
    Output(ORIGINAL, "data", allow_duplicate=True),
    Input(SAVE_VALUES, "n_clicks"),
    State(GRID, "rowData"),
    State(ORIGINAL, "data"),
    State(PERIOD, "value"),
    State(LANG, "data"),
    prevent_initial_call=True,
)
def save_values(_n, rows, original, period, lang):
    username, role = _who()
    original = original or {}
    with session() as s:
        manual = [i.code for i in ev.definitions(s) if i.manual]
    changes = []
    for row in rows or []:
        for code in manual:
            value = row.get(code)
            if isinstance(value, str) and not value.strip():
                value = None
            before = original.get(f"{row['village_id']}:{code}")
            if value == before or (value is None and before is None):
                continue
            changes.append((int(row["village_id"]), code, value))
    if not changes:
        return _msg(True, "没有需要保存的改动。", "Nothing to save.", lang), no_update
    try:
        with session() as s, s.begin():
            result = ev.set_manual_values(s, period, changes, actor=username, role=role)
        with session() as s:
            _rows_now, original_now = _rows(s, period)
    except ev.EvaluationError as exc:
        return _msg(False, f"未保存:{exc.message_zh}", f"Nothing saved: {exc.message_en}", lang), no_update
    except (TypeError, ValueError):
        return _msg(False, "未保存:数据格式有误。", "Nothing saved: malformed data.", lang), no_update
    return (_msg(True, f"已保存 {result['saved']} 项,清除 {result['cleared']} 项。",
                 f"Saved {result['saved']}, cleared {result['cleared']}.", lang), original_now)
