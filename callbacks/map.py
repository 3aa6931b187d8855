"""Map callbacks: one set for every layer in the registry (MATCH/ALL patterns).

Nothing here names a layer; each callback asks the layers through the hooks of
layers/base.py ``Layer``:

* load by viewport: each visible layer reloads only when its request key changes,
  or when a signal it listens to (``Layer.reload_on``) fires;
* toggles and display options patch ``hideout`` (no data re-sent);
* clicks, panel links and deep links open the panel the layer selects
  (``Layer.select`` → ``Layer.details``) and highlight the feature;
* the shared clock (``ids.TICK``) patches live layers' hideouts and the top-bar counters.
"""
from __future__ import annotations

from dash import ALL, Input, Output, Patch, State, callback, ctx, html, no_update

from callbacks import ids
from callbacks.cache import cached
from callbacks.context import session
from geodata.i18n import t
from layers.base import Layer, Selection, ViewRequest, as_int, not_found, padded_bbox
from layers.registry import LAYERS, layers_for, resolve

ALL_LAYERS = {"type": "layer", "name": ALL}


def _named(items: list, values: list) -> dict:
    """``{name: value}`` of an ALL pattern's items (``ctx.inputs_list[i]``) and their values."""
    return {i["id"]["name"]: v for i, v in zip(items, values)}


def _options(id_list: list[dict], values: list) -> dict[str, dict]:
    """Layer options from the ``layer-option`` inputs, grouped by layer name."""
    grouped: dict[str, dict] = {}
    for item, value in zip(id_list, values):
        grouped.setdefault(item["id"]["name"], {})[item["id"]["key"]] = value
    return grouped


def _layers(s, names) -> dict[str, Layer]:
    """The layers called ``names`` (built-in ones without a query; imported ones looked up once)."""
    if all(n in LAYERS for n in names):
        return {n: LAYERS[n] for n in names}
    found = layers_for(s)
    return {n: found[n] for n in names if n in found}


# -- data ------------------------------------------------------------------------------------

def _load(names, bounds, zoom, visible, subtypes, options, keys, force=frozenset()):
    """New data (or ``no_update``) for each of ``names`` and the new request keys.

    A layer reloads when it is visible and its request key changed, or it is in
    ``force`` (a signal it listens to fired). A forced layer that is hidden loses
    its key, so it reloads when shown.
    """
    if not bounds or zoom is None:
        return [no_update] * len(names), no_update
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
                if name in force:
                    keys.pop(name, None)
                results.append(no_update)
                continue
            data_opts = {k: v for k, v in options.get(name, {}).items() if k in layer.data_options}
            req = ViewRequest(bbox=bbox, zoom=float(zoom), subtypes=subtypes.get(name), options=data_opts)
            key = layer.request_key(req, view_key)
            if keys.get(name) == key and name not in force:
                results.append(no_update)
                continue
            results.append(cached(s, f"layer:{name}", key, layer.depends_on,
                                  lambda layer=layer, req=req: layer.features(s, req), layer.cache_seconds))
            keys[name] = key
    return results, keys


@callback(
    Output(ALL_LAYERS, "data"),
    Output(ids.LAYER_KEYS, "data"),
    Input(ids.MAP, "bounds"),
    Input(ids.MAP, "zoom"),
    Input({"type": "layer-toggle", "name": ALL}, "checked"),
    Input({"type": "subtype-toggle", "name": ALL}, "value"),
    Input({"type": "layer-option", "name": ALL, "key": ALL}, "value"),
    State(ids.LAYER_KEYS, "data"),
)
def load_layers(bounds, zoom, checked, subtype_values, option_values, keys):
    names = [o["id"]["name"] for o in ctx.outputs_list[0]]
    visible = {k: bool(v) for k, v in _named(ctx.inputs_list[2], checked).items()}
    subtypes = {k: list(v or []) for k, v in _named(ctx.inputs_list[3], subtype_values).items()}
    return _load(names, bounds, zoom, visible, subtypes, _options(ctx.inputs_list[4], option_values), keys)


@callback(
    Output(ALL_LAYERS, "data", allow_duplicate=True),
    Output(ids.LAYER_KEYS, "data", allow_duplicate=True),
    Input({"type": "signal", "name": ALL}, "data"),
    State(ids.MAP, "bounds"),
    State(ids.MAP, "zoom"),
    State({"type": "layer-toggle", "name": ALL}, "checked"),
    State({"type": "subtype-toggle", "name": ALL}, "value"),
    State({"type": "layer-option", "name": ALL, "key": ALL}, "value"),
    State(ids.LAYER_KEYS, "data"),
    prevent_initial_call=True,
)
def reload_on_signal(_signals, bounds, zoom, checked, subtype_values, option_values, keys):
    """After a signal (e.g. "events-changed"), reload the layers that listen to it in the current view."""
    names = [o["id"]["name"] for o in ctx.outputs_list[0]]
    fired = {cid.get("name") for cid in ctx.triggered_prop_ids.values() if isinstance(cid, dict)}
    with session() as s:
        force = frozenset(n for n, layer in _layers(s, names).items() if layer.reload_on & fired)
    if not force:
        return [no_update] * len(names), no_update
    visible = {k: bool(v) for k, v in _named(ctx.states_list[2], checked).items()}
    subtypes = {k: list(v or []) for k, v in _named(ctx.states_list[3], subtype_values).items()}
    return _load(names, bounds, zoom, visible, subtypes, _options(ctx.states_list[4], option_values), keys, force)


# -- style -----------------------------------------------------------------------------------

@callback(
    Output(ALL_LAYERS, "hideout"),
    Input({"type": "layer-toggle", "name": ALL}, "checked"),
    Input({"type": "layer-option", "name": ALL, "key": ALL}, "value"),
    State(ALL_LAYERS, "hideout"),
    prevent_initial_call=True,
)
def restyle_layers(checked, option_values, hideouts):
    names = [o["id"]["name"] for o in ctx.outputs_list]
    visible = {k: bool(v) for k, v in _named(ctx.inputs_list[0], checked).items()}
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


def _legend_items(items: list, lang: str) -> list:
    """Rendered legend items; runs of compact ones share rows two by two."""
    out, run = [], []
    for item in items + [None]:
        if item is not None and item.compact:
            run.append(item.render(lang))
            continue
        if run:
            out.append(html.Div(run, className="legend-cols"))
            run = []
        if item is not None:
            out.append(item.render(lang))
    return out


@callback(
    Output(ids.LEGEND, "children"),
    Input({"type": "layer-toggle", "name": ALL}, "checked"),
    Input(ALL_LAYERS, "hideout"),
    State(ids.LANG, "data"),
)
def render_legend(checked, hideouts, lang):
    visible = {k: bool(v) for k, v in _named(ctx.inputs_list[0], checked).items()}
    hide = _named(ctx.inputs_list[1], hideouts)
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
        groups.append(html.Div([html.H5(heading), *_legend_items([i for i in items if i.shape != "title"], lang)],
                               className="legend-group", **{"data-layer": name}))
    return groups


# -- the details panel -----------------------------------------------------------------------

def _panel(s, chosen: Selection, lang: str):
    layer = resolve(chosen.layer, s)
    if layer is None:
        return not_found(lang, chosen.id)
    return layer.details(s, chosen.feature, lang)


def _linked(query: dict, lang: str):
    """``(selection, panel, viewport)`` for a query naming a feature by a layer's ``link_key``."""
    with session() as s:
        layer = next((layer for layer in layers_for(s).values()
                      if layer.link_key and query.get(layer.link_key) not in (None, "")), None)
        if layer is None:
            return None, None, None
        raw = query[layer.link_key]
        fid = as_int(raw)
        if fid is None:
            return None, html.Div(t("error.bad_id", lang, id=str(raw)[:40]), className="panel-error",
                                  role="alert"), None
        chosen = Selection(layer.name, {"id": fid, "properties": {"id": fid}})
        panel = layer.details(s, chosen.feature, lang)
        bounds = layer.focus(s, fid)
    viewport = {"bounds": bounds, "transition": "flyToBounds", "options": {"padding": [40, 40]}} if bounds else None
    return chosen, panel, viewport


def panel_for_query(query: dict, lang: str):
    """Details panel and viewport for ``?village=ID`` (or any layer's ``link_key``) links.

    Returns ``(panel, viewport)``; ``panel`` is None when the query names no feature.
    """
    _, panel, viewport = _linked(query, lang)
    return panel, viewport


def _highlight(chosen: Selection | None, hideouts: dict) -> list:
    """Hideout patches: the selected feature in its layer, none elsewhere (only where it changes)."""
    out = []
    with session() as s:
        layers = _layers(s, list(hideouts))
    for name, hideout in hideouts.items():
        layer = layers.get(name)
        want = chosen.id if chosen is not None and chosen.layer == name else None
        if layer is None or not layer.highlight or (hideout or {}).get("selected") == want:
            out.append(no_update)
            continue
        patch = Patch()
        patch["selected"] = want
        out.append(patch)
    return out


def _clicked(click_data: list) -> Selection | None:
    """What the clicked feature's layer selects for it."""
    trig = ctx.triggered_id
    name = trig.get("name")
    feature = next((v for i, v in zip(ctx.inputs_list[0], click_data) if i["id"]["name"] == name), None)
    if not isinstance(feature, dict):
        return None
    with session() as s:
        layer = resolve(name, s)
    return layer.select(feature) if layer is not None else None


@callback(
    Output(ids.DETAILS, "children"),
    Output(ids.MAP, "viewport"),
    Output(ALL_LAYERS, "hideout", allow_duplicate=True),
    Input(ALL_LAYERS, "clickData"),
    Input(ids.SEARCH, "value"),
    Input({"type": "panel-link", "layer": ALL, "fid": ALL}, "n_clicks"),
    State(ids.LANG, "data"),
    State(ALL_LAYERS, "hideout"),
    prevent_initial_call=True,
)
def open_details(click_data, search_value, _links, lang, hideouts):
    trig = ctx.triggered_id
    hideouts = _named(ctx.states_list[1], hideouts)
    nothing = no_update, no_update, [no_update] * len(hideouts)
    if trig == ids.SEARCH:
        if search_value in (None, ""):
            return nothing
        chosen, panel, viewport = _linked({"village": search_value}, lang)  # the search box lists villages
        if viewport is None:
            return panel, no_update, [no_update] * len(hideouts)
        return panel, viewport, _highlight(chosen, hideouts)
    if not isinstance(trig, dict):
        return nothing
    if trig.get("type") == "panel-link":
        if not any(t.get("value") for t in ctx.triggered):
            return nothing  # the button was (re)drawn, not clicked
        fid = as_int(trig.get("fid"))
        chosen = Selection(str(trig.get("layer")), {"id": fid, "properties": {"id": fid}}) if fid else None
    elif trig.get("type") == "layer":
        chosen = _clicked(click_data)
    else:
        return nothing
    if chosen is None:
        return nothing
    if chosen.zoom_to:
        return no_update, {"bounds": chosen.zoom_to, "transition": "flyToBounds"}, [no_update] * len(hideouts)
    with session() as s:
        panel = _panel(s, chosen, lang)
    if panel is None:
        return nothing
    return panel, no_update, _highlight(chosen, hideouts)


# -- the shared clock ------------------------------------------------------------------------

def live_summaries(s, lang: str, layers=None) -> list:
    """The top bar's live counters: every layer's :meth:`Layer.live_summary`, in registry order."""
    out = []
    for layer in (layers or LAYERS).values():
        if layer.is_live:
            out.extend(layer.live_summary(s, lang) or [])
    return out


@callback(
    Output(ALL_LAYERS, "hideout", allow_duplicate=True),
    Output(ids.LIVE_COUNTERS, "children"),
    Input(ids.TICK, "n_intervals"),
    Input({"type": "subtype-toggle", "name": ALL}, "value"),
    State(ALL_LAYERS, "hideout"),
    State(ids.LANG, "data"),
    prevent_initial_call=True,
)
def live_tick(_n, subtype_values, hideouts, lang):
    """One tick for every live layer: a hideout ``Patch`` each (data is never re-sent)."""
    names = [o["id"]["name"] for o in ctx.outputs_list[0]]
    subtypes = {k: (list(v) if v is not None else None) for k, v in _named(ctx.inputs_list[1], subtype_values).items()}
    out = []
    with session() as s:
        layers = _layers(s, names)
        for name, hideout in zip(names, hideouts):
            layer = layers.get(name)
            patch = layer.live_patch(s, hideout or {}, subtypes.get(name)) if layer is not None and layer.is_live \
                else None
            out.append(no_update if patch is None else patch)
        counters = live_summaries(s, lang, layers)
    return out, counters
