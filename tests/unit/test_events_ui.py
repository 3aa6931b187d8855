"""Pure parts of the events UI: uploads, per-action arguments, periods, table rows, KPI chips."""
from __future__ import annotations

import base64
from datetime import date, datetime, timedelta, timezone

import pytest

from callbacks import events as ce
from geodata import events as ev
from geodata import workflow as wf

CST = timezone(timedelta(hours=8))


def test_uploads_are_decoded_and_garbage_is_a_bilingual_error():
    blob = b"\x89PNG\r\n\x1a\nrest"
    assert ce.decode_uploads(["data:image/png;base64," + base64.b64encode(blob).decode()]) == [blob]
    assert ce.decode_uploads(None) == []
    with pytest.raises(ev.EventInputError) as err:
        ce.decode_uploads(["data:image/png;base64,ok", "no comma here"])
    assert "第 1 个文件无法读取" in err.value.message("zh") and "File 1" in err.value.message("en")


@pytest.mark.parametrize("action, fields, expected", [
    (wf.Action.DISPATCH, {"worker": "12", "department": "sanitation", "grid": None}, {"worker_id": 12,
                                                                                        "department": "sanitation"}),
    (wf.Action.ACCEPT, {"grid": "6f1c…uid", "worker": "12"}, {"grid_uid": "6f1c…uid"}),
    (wf.Action.REASSIGN, {"worker": None, "department": None, "grid": None}, {}),
    (wf.Action.POSTPONE, {"until": "2026-12-01"}, {"until": date(2026, 12, 1)}),
    (wf.Action.POSTPONE, {"until": "2026-12-01T00:00:00"}, {"until": date(2026, 12, 1)}),
    (wf.Action.RATE, {"rating": 4.0}, {"rating": 4}),
    (wf.Action.RATE, {"rating": 0}, {"rating": None}),   # no stars: the service says 1–5
    (wf.Action.START, {"worker": "12", "rating": 5, "until": "2026-12-01"}, {}),  # nothing it does not take
])
def test_action_arguments_pass_only_what_the_action_takes(action, fields, expected):
    data, photos = ce.action_arguments(action, fields)
    assert data == expected and photos == []


def test_only_handle_takes_photos():
    url = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
    assert len(ce.action_arguments(wf.Action.HANDLE, {"photos": [url]})[1]) == 1
    assert ce.action_arguments(wf.Action.CLOSE, {"photos": [url]})[1] == []


def test_period_includes_the_end_date_in_china_time():
    start, end = ce._period(["2026-11-01", "2026-11-23"])
    assert start == datetime(2026, 11, 1, tzinfo=CST) and end == datetime(2026, 11, 24, tzinfo=CST)
    start, end = ce._period(["2026-11-23", "2026-11-01"])  # reversed: swapped
    assert (start.day, end.day) == (1, 24)
    start, end = ce._period(["2026-11-05", None])  # one day picked so far
    assert end - start == timedelta(days=1)
    start, end = ce._period(None)  # the default window: 30 days up to today
    assert end - start == timedelta(days=ce.DEFAULT_DAYS)


def test_table_rows_and_columns_speak_the_page_language():
    row = {"id": 7, "state": "in_progress", "overdue": True, "class_zh": "市容环境", "class_en": "City appearance",
           "subclass_zh": "垃圾满溢", "subclass_en": "Overflowing bin", "village": None, "grid_code": "330521001001001",
           "worker": None, "urgency": "urgent", "reported_at": datetime(2026, 11, 23, 2, 0, tzinfo=timezone.utc),
           "due_at": None, "rework_count": 1}
    urg = {"urgent": ("紧急", "Urgent")}
    zh = ce.table_rows([row], "zh", urg)[0]
    en = ce.table_rows([row], "en", urg)[0]
    assert zh["rid"] == "7" and zh["state_label"] == "处置" and en["state_label"] == "In progress"
    assert zh["overdue_label"] == "超期" and zh["village"] == "县级队列" and en["village"] == "County queue"
    assert zh["reported"] == "2026-11-23 10:00"  # China time
    assert en["category"] == "City appearance › Overflowing bin" and zh["urgency_label"] == "紧急"
    # Every state's colour in the table comes from the workflow.
    state_col = next(c for c in ce.column_defs("zh") if c["field"] == "state_label")
    conditions = state_col["cellStyle"]["styleConditions"]
    assert len(conditions) == len(wf.State)
    assert all(wf.STATE_COLORS[wf.State(c["condition"].split("'")[1])] == c["style"]["backgroundColor"]
               for c in conditions)


def _kpis(**kw):
    base = dict(start=datetime(2026, 11, 1), end=datetime(2026, 12, 1), as_of=datetime(2026, 11, 23), reported=10,
                should_close=8, closed=5, closed_on_time=4, postponed=1, reworked=2, closure_rate=5 / 7,
                on_time_rate=4 / 7, rework_rate=2 / 8, avg_handling_hours=30.25, open_overdue=3)
    base.update(kw)
    return ev.Indicators(**base)


def _chip_text(chip) -> str:
    return " ".join(str(c.children) for c in chip.children if c is not None)


def test_indicator_chips_show_rates_with_their_fractions():
    chips = {c.to_plotly_json()["props"]["data-kpi"]: c for c in ce.indicator_chips(_kpis(), "zh")}
    assert "71.4%" in _chip_text(chips["closure"]) and "5/7" in _chip_text(chips["closure"])
    assert "57.1%" in _chip_text(chips["on_time"]) and "25.0%" in _chip_text(chips["rework"])
    assert "30.2 h" in _chip_text(chips["handling"]) and "3" in _chip_text(chips["overdue"])
    assert "kpi-alert" in chips["overdue"].className
    empty = {c.to_plotly_json()["props"]["data-kpi"]: c for c in ce.indicator_chips(
        _kpis(should_close=0, closed=0, closed_on_time=0, postponed=0, reworked=0, closure_rate=None,
              on_time_rate=None, rework_rate=None, avg_handling_hours=None, open_overdue=0), "en")}
    assert "—" in _chip_text(empty["closure"]) and "kpi-alert" not in empty["overdue"].className
    assert "Closure rate" in _chip_text(empty["closure"])
