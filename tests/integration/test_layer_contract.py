"""The generic map callbacks through the real Dash endpoint (callbacks/map.py).

A signal ("events-changed", bumped by the events UI after a report or a transition)
reloads exactly the layers whose ``reload_on`` names it — the events layer and a
layer registered at run time alike — in the current view, even when their request
key did not change; a hidden listener forgets its key so it reloads when shown.
"""
from __future__ import annotations

import json

import pytest

from layers import registry
from layers.base import Layer
from tests.event_support import login_client

BOUNDS = [[30.50, 119.90], [30.56, 119.98]]
SIGNAL = {"name": "events-changed", "type": "signal"}


class Listener(Layer):
    """Reloads on "events-changed"; its request key never changes."""

    name = "listener"
    depends_on = ()
    reload_on = frozenset({"events-changed"})

    def __init__(self):
        self.loads = 0

    def features(self, session, req):
        self.loads += 1
        return {"type": "FeatureCollection", "features": [], "load": self.loads}

    def request_key(self, req, view_key):
        return "always-the-same"


@pytest.fixture(scope="module")
def app(pg, demo_db):
    from map_app.app import create_app

    return create_app(pg.app_url)


@pytest.fixture
def client(app):
    c = app.server.test_client()
    login_client(c, "village")
    return c


@pytest.fixture
def listener(monkeypatch):
    layer = Listener()
    monkeypatch.setitem(registry.LAYERS, layer.name, layer)
    return layer


def item(cid, prop, value=None):
    return {"id": cid, "property": prop, "value": value}


def _dep(client, first_input: str) -> dict:
    """The callback writing every layer's data whose first input's id contains ``first_input``."""
    deps = client.get("/_dash-dependencies").get_json()
    return next(d for d in deps if d["output"].startswith('..{"name":["ALL"],"type":"layer"}.data')
                and first_input in d["inputs"][0]["id"])


def _outputs(names):
    return [[{"id": {"name": n, "type": "layer"}, "property": "data"} for n in names],
            {"id": "layer-keys", "property": "data"}]


def _view_state(names, shown, keys):
    toggles = [item({"name": n, "type": "layer-toggle"}, "checked", shown.get(n, True)) for n in names]
    return [item("map", "bounds", BOUNDS), item("map", "zoom", 13), toggles, [], [], item("layer-keys", "data", keys)]


def _post(client, body) -> dict:
    r = client.post("/_dash-update-component", json=body)
    assert r.status_code in (200, 204), r.get_data(as_text=True)[:300]
    return r.get_json()["response"] if r.status_code == 200 else {}


def _layer_data(response: dict, name: str):
    key = json.dumps({"name": name, "type": "layer"}, separators=(",", ":"))
    return (response.get(key) or {}).get("data")


def test_a_signal_reloads_exactly_the_layers_that_listen_to_it(client, listener):
    names = ["villages", "events", "listener"]
    # The first load, by viewport: every visible layer once, with its request key.
    load = _dep(client, "map")  # load_layers: Input(map.bounds) first
    toggles = [item({"name": n, "type": "layer-toggle"}, "checked", True) for n in names]
    first = _post(client, {
        "output": load["output"], "outputs": _outputs(names),
        "inputs": [item("map", "bounds", BOUNDS), item("map", "zoom", 13), toggles, [], []],
        "state": [item("layer-keys", "data", {})], "changedPropIds": ["map.zoom"]})
    keys = first["layer-keys"]["data"]
    assert set(names) <= set(keys) and listener.loads == 1
    assert _layer_data(first, "events")["type"] == "FeatureCollection"

    # The signal: same view, same keys — the listeners reload anyway, the others do not.
    reload = _dep(client, '"type":"signal"')
    body = {"output": reload["output"], "outputs": _outputs(names),
            "inputs": [[item(SIGNAL, "data", 1)]], "state": _view_state(names, {}, keys),
            "changedPropIds": [json.dumps(SIGNAL, separators=(",", ":"), sort_keys=True) + ".data"]}
    again = _post(client, body)
    # Re-sent (from the cache here: nothing it depends on changed; a changed event bumps
    # the "event" generation the events layer depends on, so it is built anew then).
    assert _layer_data(again, "listener") == {"type": "FeatureCollection", "features": [], "load": 1}
    assert _layer_data(again, "events")["type"] == "FeatureCollection"
    assert _layer_data(again, "villages") is None  # not a listener: not re-sent
    assert again["layer-keys"]["data"] == keys

    # A hidden listener is not loaded, but loses its key: showing it later reloads it.
    hidden = _post(client, dict(body, state=_view_state(names, {"listener": False}, keys)))
    assert _layer_data(hidden, "listener") is None
    assert "listener" not in hidden["layer-keys"]["data"] and "events" in hidden["layer-keys"]["data"]


def test_the_sensors_layer_is_live_through_the_shared_clock_only(client):
    """The clock's one callback patches live layers' hideouts and renders the top-bar counters."""
    deps = client.get("/_dash-dependencies").get_json()
    on_clock = [d for d in deps if any(i["id"] == "map-tick" for i in d["inputs"])]
    assert len(on_clock) == 1
    assert '"type":"layer"}.hideout' in on_clock[0]["output"] and "live-counters.children" in on_clock[0]["output"]
    # No callback names a layer any more: every layer is served through the ALL patterns.
    assert not [d["output"] for d in deps if '"name":"sensors"' in d["output"] or '"name":"villages"' in d["output"]]
