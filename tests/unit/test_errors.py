"""Typed errors carry a code and an HTTP status; the callback envelope check refuses what Dash cannot dispatch."""
from __future__ import annotations

import pytest

from geodata.i18n import BilingualError


def test_every_domain_error_has_a_code_and_the_status_the_edge_answers_with():
    from etl.export import ExportError
    from etl.importers.errors import ImportRejected
    from geodata import events as ev
    from geodata import grids as G
    from geodata import workflow as wf
    from geodata.analysis.errors import AnalysisError
    from geodata.evaluation import EvaluationError
    from geodata.sensors import ReadingRejected, SensorInputError

    cases = [
        (ev.EventNotFound(7), "not_found", 404),
        (ev.StaleVersion(7, 1, 2), "stale", 409),
        (ev.EventInputError("坏", "bad", "description"), "invalid_input", 400),
        (wf.PermissionDenied("不行", "no"), "permission", 403),
        (wf.InvalidTransition("reported", "close"), "invalid_transition", 409),
        (G.GridNotFound("网格"), "not_found", 404),
        (G.StaleGrid(code="330521100200001", expected=1, current=2), "stale", 409),
        (G.GridPermissionDenied(), "permission", 403),
        (ImportRejected("empty_file"), "empty_file", 422),
        (ExportError("无", "none"), "export_not_found", 404),
        (AnalysisError("too_few_events", "太少", "too few"), "too_few_events", 400),
        (ReadingRejected("unknown_sensor"), "unknown_sensor", 400),
        (SensorInputError("坏", "bad"), "bad_batch", 400),
        (EvaluationError("坏", "bad", "weight"), "invalid_evaluation", 400),
        (EvaluationError("不行", "no", "role", http_status=403), "invalid_evaluation", 403),
        (BilingualError("坏", "bad"), "bad_request", 400),
        (BilingualError("坏", "bad", code="x", http_status=418), "x", 418),
    ]
    for exc, code, status in cases:
        assert (exc.code, exc.http_status) == (code, status), type(exc).__name__
        body = exc.as_dict()
        assert body["code"] == code and body["error"] == f"{exc.message_zh} / {exc.message_en}"
        assert body["message_zh"] and body["message_en"]


CALLBACK_MAP = {
    "legend.children": {"inputs": [{}, {}], "state": [{}]},
    "..a.b...c.d..": {"inputs": [{}], "state": []},
    "ping.n": {"inputs": [{}], "state": [], "no_output": True},
}
ITEM = {"id": "x", "property": "value", "value": 1}


@pytest.mark.parametrize("body", [
    [], "x", None, 1, {}, {"output": 5}, {"output": "nope.children"},
    {"output": "legend.children"},
    {"output": "legend.children", "inputs": [ITEM, ITEM], "state": []},
    {"output": "legend.children", "inputs": [ITEM, "x"], "state": [ITEM]},
    {"output": "legend.children", "inputs": [ITEM, {"id": 5, "property": "v"}], "state": [ITEM]},
    {"output": "legend.children", "inputs": [ITEM, [ITEM, {"id": "y"}]], "state": [ITEM]},
    {"output": "legend.children", "inputs": [ITEM, []], "state": [ITEM]},  # no outputs
    {"output": "legend.children", "inputs": [ITEM, []], "state": [ITEM], "outputs": "legend.children"},
    {"output": "..a.b...c.d..", "inputs": [ITEM], "outputs": {"id": "a", "property": "b"}},
    {"output": "..a.b...c.d..", "inputs": [ITEM], "outputs": [ITEM, ITEM], "changedPropIds": [1]},
])
def test_malformed_callback_requests_are_refused(body):
    from map_app.errors import CallbackRequestError, check_envelope

    with pytest.raises(CallbackRequestError) as info:
        check_envelope(body, CALLBACK_MAP)
    assert info.value.http_status == 400 and info.value.message_zh and info.value.message_en


@pytest.mark.parametrize("body", [
    {"output": "legend.children", "inputs": [ITEM, []], "state": [ITEM], "outputs": {"id": "l", "property": "c"}},
    {"output": "legend.children", "inputs": [[ITEM, ITEM], ITEM], "state": [ITEM], "outputs": [ITEM]},
    {"output": "..a.b...c.d..", "inputs": [ITEM], "outputs": [[ITEM], ITEM], "changedPropIds": ["x.value"]},
    {"output": "ping.n", "inputs": [ITEM], "outputs": []},
])
def test_what_the_renderer_sends_passes(body):
    from map_app.errors import check_envelope

    assert check_envelope(body, CALLBACK_MAP) == body["output"]
