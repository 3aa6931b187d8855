"""Live sensors on the shared clock: the top bar's counter and the layer's status patch.

Nothing here re-sends the sensor layer: the counter is three numbers, and the
layer gets a ``Patch`` of its ``hideout`` with only the sensors and aggregate
boxes whose status or counts changed (see layers/sensors.py).
"""
from __future__ import annotations

from dash import Input, Output, State, callback, no_update

from callbacks import ids
from callbacks.context import session
from geodata import sensors as sn
from layers.registry import LAYERS
from layers.sensors import live_counters


@callback(
    Output(ids.LIVE_COUNTERS, "children"),
    Input(ids.TICK, "n_intervals"),
    State(ids.LANG, "data"),
)
def render_counters(_n, lang):
    # Counted in the user's scope (RLS): the county for county roles, their villages otherwise.
    with session() as s:
        counts = sn.status_counts(s)
    return live_counters(counts, lang)


@callback(
    Output(ids.layer("sensors"), "hideout", allow_duplicate=True),
    Input(ids.TICK, "n_intervals"),
    Input(ids.subtypes("sensors"), "value"),
    State(ids.layer("sensors"), "hideout"),
    prevent_initial_call=True,
)
def patch_sensor_status(_n, types, hideout):
    with session() as s:
        patch = LAYERS["sensors"].live_patch(s, hideout, types)
    return no_update if patch is None else patch
