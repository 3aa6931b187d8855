"""Map callbacks: one set for every layer in the registry (MATCH/ALL patterns).

* load by viewport: each visible layer reloads only when its request key changes;
* toggles and display options patch ``hideout`` (no data re-sent);
* clicks open the details panel; search and sensor counts fly the map.
"""
from __future__ import annotations

import logging

from dash import ALL, Input, Output, Patch, State, callback, ctx, html, no_update

from callbacks import ids
from callbacks.cache import cached
from callbacks.context import session
from geodata.i18n import t
from geodata.queries import layers as q
from layers.base import ViewRequest, as_int, not_found, padded_bbox
from layers.registry import layers_for, resolve

log = logging.getLogger(__name__)

PANEL_KINDS = {"village": "villages", "grid": "grids", "resource": "resources", "sensor": "sensors",
               "event": "events"}


def _by_name(id_list: list[dict], values: list) -> dict:
    return {i["id"]["name"] if isinstance(i, dict) and "id" in i else i["name"]: v for i, v in zip(id_list, values)}


@callback(
    Output({"type": "layer", "name": ALL}, "data"),
    Output(ids.LAYER_KEYS, "data"),
    Input(ids.MAP, "bounds"),
    Input(ids.MAP, "zoom"),
    Input({"type": "layer-toggle", "name": ALL}, "checked"),
    Input({"type": "subtype-toggle", "name": ALL}, "value"),
    Input({"type": "layer-option", "name": ALL, "key": ALL}, "value"),
    State(ids.LAYER_KEYS, "data"),
)
def load_layers(bounds, zoom, checked, subtype_values, option_values, keys):
    outputs = ctx.outputs_list[0]
    names = [o["id"]["name"] for o in outputs]
    if not bounds or zoom is None:
        return [no_update] * len(names), no_update
    visible = {i["id"]["name"]: bool(v) for i, v in zip(ctx.inputs_list[2], checked)}
    subtypes = {i["id"]["name"]: list(v or []) for i, v in zip(ctx.inputs_list[3], subtype_values)}
    options = _options(ctx.inputs_list[4], option_values)
    try:
        bbox, view_key = padded_bbox(bounds, float(zoom))
    except (TypeError, ValueError):
        return [no_update] * len(names), no_update
    keys = dict(keys or {})
    results = []
    with session() as s:
        for name in names:
            layer = resolve(name, s)
            if layer is None:
                results.append(no_update)
                continue
            if not visible.get(name, layer.visible or not layer.toggleable):
                results.append(no_update)
                continue
            data_opts = {k: v for k, v in options.get(name, {}).items() if k in layer.data_options}
            req = ViewRequest(bbox=bbox, zoom=float(zoom), subtypes=subtypes.get(name), options=data_opts)
            key = layer.request_key(req, view_key)
            if keys.get(name) == key:
                results.append(no_update)
                continue
            results.append(cached(s, f"layer:{name}", key, layer.depends_on,
                                  lambda layer=layer, req=req: layer.features(s, req), layer.cache_seconds))
            keys[name] = key
    return results, keys


def _options(id_list: list[dict], values: list) -> dict[str, dict]:
    """Layer options from the ``layer-option`` inputs, grouped by layer name."""
    grouped: dict[str, dict] = {}
    for item, value in zip(id_list, values):
        grouped.setdefault(item["id"]["name"], {})[item["id"]["key"]] = value
    return grouped


@callback(
    Output({"type": "layer", "name": ALL}, "hideout"),
    Input({"type": "layer-toggle", "name": ALL}, "checked"),
    Input({"type": "layer-option", "name": ALL, "key": ALL}, "value"),
    State({"type": "layer", "name": ALL}, "hideout"),
    prevent_initial_call=True,
)
def restyle_layers(checked, option_values, hideouts):
    names = [o["id"]["name"] for o in ctx.outputs_list]
    visible = {i["id"]["name"]: bool(v) for i, v in zip(ctx.inputs_list[0], checked)}
    options = _options(ctx.inputs_list[1], option_values)
    trig = ctx.triggered_id
    changed_layer = trig.get("name") if isinstance(trig, dict) and trig.get("type") == "layer-option" else None
    out = []
    for name, hideout in zip(names, hideouts):
        if name == changed_layer:
            with session() as s:
                layer = resolve(name, s)
                new = layer.hideout_for(s, options.get(name, {}), hideout or {}) if layer else dict(hideout or {})
            new["visible"] = visible.get(name, layer.visible if layer else False)
            out.append(new)
        elif name in visible and (hideout or {}).get("visible") != visible[name]:
            patch = Patch()
            patch["visible"] = visible[name]
            out.append(patch)
        else:
            out.append(no_update)
    return out


@callback(
    Output(ids.LEGEND, "children"),
    Input({"type": "layer-toggle", "name": ALL}, "checked"),
    Input({"type": "layer", "name": ALL}, "hideout"),
    State(ids.LANG, "data"),
)
def render_legend(checked, hideouts, lang):
    visible = {i["id"]["name"]: bool(v) for i, v in zip(ctx.inputs_list[0], checked)}
    hide = {i["id"]["name"]: h for i, h in zip(ctx.inputs_list[1], hideouts)}
    groups = []
    with session() as s:
        all_layers = layers_for(s)
    for name, layer in all_layers.items():
        if layer.toggleable and not visible.get(name, layer.visible):
            continue
        items = layer.legend(lang, hide.get(name) or {})
        if not items:
            continue
        title = next((i for i in items if i.shape == "title"), None)
        heading = (title.label_en if lang == "en" else title.label_zh) if title else layer.title(lang)
        groups.append(html.Div([html.H5(heading), *[i.render(lang) for i in items if i.shape != "title"]],
                               className="legend-group", **{"data-layer": name}))
    return groups


def panel_for_query(query: dict, lang: str):
    """Details panel and viewport for ``?village=ID`` (or grid/resource/sensor) links.

    Returns ``(panel, viewport)``; ``panel`` is None when the query names no feature.
    """
    kind = next((k for k in PANEL_KINDS if query.get(k) not in (None, "")), None)
    if kind is None:
        return None, None
    raw = query[kind]
    fid = as_int(raw)
    if fid is None:
        return html.Div(t("error.bad_id", lang, id=str(raw)[:40]), className="panel-error", role="alert"), None
    panel = _details_for(PANEL_KINDS[kind], {"id": fid, "properties": {"id": fid}}, lang)
    viewport = None
    if kind == "village":
        with session() as s:
            b = q.village_bounds(s, fid)
        if b:
            viewport = {"bounds": b, "transition": "flyToBounds", "options": {"padding": [40, 40]}}
    return panel, viewport


def _details_for(kind_layer: str, feature: dict, lang: str):
    with session() as s:
        layer = resolve(kind_layer, s)
        if layer is None:
            return not_found(lang, feature.get("id"))
        return layer.details(s, feature, lang)


@callback(
    Output(ids.DETAILS, "children"),
    Output(ids.MAP, "viewport"),
    Output({"type": "layer", "name": "villages"}, "hideout", allow_duplicate=True),
    Input({"type": "layer", "name": ALL}, "clickData"),
    Input(ids.SEARCH, "value"),
    State(ids.LANG, "data"),
    prevent_initial_call=True,
)
def open_details(click_data, search_value, lang):
    trig = ctx.triggered_id
    selected = Patch()
    if trig == ids.SEARCH:
        if search_value in (None, ""):
            return no_update, no_update, no_update
        panel, viewport = panel_for_query({"village": search_value}, lang)
        if viewport is not None:
            selected["selected"] = as_int(search_value)
            return panel, viewport, selected
        return panel, no_update, no_update

    if not isinstance(trig, dict) or trig.get("type") != "layer":
        return no_update, no_update, no_update
    name = trig["name"]
    feature = next((v for i, v in zip(ctx.inputs_list[0], click_data) if i["id"]["name"] == name), None)
    if not feature:
        return no_update, no_update, no_update
    props = feature.get("properties") or {}
    if props.get("kind") in ("sensor_aggregate", "event_aggregate") and props.get("bounds"):
        return no_update, {"bounds": props["bounds"], "transition": "flyToBounds"}, no_update
    if props.get("cluster"):
        return no_update, no_update, no_update
    if name == "population":  # the choropleth opens the unit's own panel
        name = "grids" if props.get("kind") == "grid" else "villages"
    panel = _details_for(name, feature, lang)
    if panel is None:
        return no_update, no_update, no_update
    if name == "villages":
        selected["selected"] = props.get("id")
        return panel, no_update, selected
    return panel, no_update, no_update
