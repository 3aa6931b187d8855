"""The Layer contract: one class per map layer, registered in layers/registry.py.

Every layer is drawn by the same component pattern (``{"type": "layer", "name": ...}``),
loaded by viewport through one set of callbacks, and styled by JS functions in
assets/dvmap.js through ``hideout``. Adding a layer = its module + one registry line.

The generic callbacks (callbacks/map.py) ask each layer, through optional hooks:

* :meth:`Layer.features` / :meth:`Layer.request_key` — what to draw for a view;
* :meth:`Layer.hideout_for` — restyle on a display option (no data re-sent);
* :meth:`Layer.select` — what a click on one of its features opens (a panel of this
  or another layer, a zoom to bounds, nothing); :meth:`Layer.details` — that panel;
  :attr:`Layer.link_key` — the ``?key=ID`` deep link opening the same panel;
* :meth:`Layer.live_patch` / :meth:`Layer.live_summary` — called on the shared clock
  (one ``dcc.Interval``): a ``Patch`` of the hideout, and top-bar counters;
* :attr:`Layer.reload_on` — signals (``callbacks.ids.signal``) after which the layer
  reloads its data in the current view, e.g. ``"events-changed"`` after a transition.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import dash_leaflet as dl
from dash import html

from geodata.i18n import pick, t
from geodata.queries.layers import BBox

EMPTY_FC: dict = {"type": "FeatureCollection", "features": []}


def js(path: str) -> dict:
    """Reference to a JS function in assets/dvmap.js, e.g. ``js("styles.village")``."""
    return {"variable": f"dvmap.{path}"}


@dataclass
class LegendItem:
    label_zh: str
    label_en: str
    color: str
    shape: str = "fill"  # fill | line | dashed | circle | ring | count | icon | title
    icon: str | None = None
    compact: bool = False  # short label: two to a row (e.g. the event states)

    def render(self, lang: str):
        swatch_class = f"legend-swatch legend-{self.shape}"
        style = {"--swatch": self.color}
        return html.Div(
            [html.Span(self.icon or "", className=swatch_class, style=style),
             html.Span(pick(self.label_zh, self.label_en, lang))],
            className="legend-item legend-compact" if self.compact else "legend-item",
        )


@dataclass
class SubType:
    code: str
    name_zh: str
    name_en: str
    color: str | None = None
    icon: str | None = None


@dataclass
class ViewRequest:
    """What the map asks of a layer: viewport, zoom and the layer's own options."""

    bbox: BBox
    zoom: float
    subtypes: list[str] | None = None
    options: dict = field(default_factory=dict)


@dataclass
class Selection:
    """What a click on a feature opens.

    ``layer`` names the layer whose :meth:`Layer.details` fills the panel (the clicked
    one, or another: a population unit opens its village or grid); ``zoom_to`` is a
    ``[[s, w], [n, e]]`` box to fly to instead (aggregate boxes).
    """

    layer: str
    feature: dict
    zoom_to: list | None = None

    @property
    def id(self):
        props = self.feature.get("properties") or {}
        return props.get("id", self.feature.get("id"))


def bounds_or_none(value) -> list | None:
    """``[[s, w], [n, e]]`` as floats, or None for anything else (it reaches the map)."""
    try:
        (s, w), (n, e) = value
        box = [[float(s), float(w)], [float(n), float(e)]]
    except (TypeError, ValueError):
        return None
    return box if all(math.isfinite(v) for pair in box for v in pair) else None


def padded_bbox(bounds: list[list[float]], zoom: float) -> tuple[BBox, str]:
    """Snap the view to a coarser grid so small pans reuse the data already sent.

    Returns the padded box and a key; a layer only reloads when the key changes.
    """
    (s, w), (n, e) = bounds
    step_x = max(e - w, 1e-6)
    step_y = max(n - s, 1e-6)
    x0 = math.floor(w / step_x - 0.5) * step_x
    x1 = math.ceil(e / step_x + 0.5) * step_x
    y0 = math.floor(s / step_y - 0.5) * step_y
    y1 = math.ceil(n / step_y + 0.5) * step_y
    key = f"{round(zoom)}:{x0:.5f}:{y0:.5f}:{x1:.5f}:{y1:.5f}"
    return (x0, y0, x1, y1), key


class Layer:
    """Base class of map layers.

    Subclasses set the class attributes and implement :meth:`features`.
    """

    name: str = ""
    title_zh: str = ""
    title_en: str = ""
    min_zoom: float = 0
    visible: bool = True          # on when the page opens
    static: bool = False          # whole layer once, not per viewport (small layers)
    toggleable: bool = True
    style: str | None = None      # JS function name in dvmap.styles
    point_to_layer: str | None = None
    on_each_feature: str | None = None
    cluster: bool = False
    interactive: bool = True
    z_index: int = 400            # Leaflet pane order; polygons below points
    #: option keys (from :meth:`controls`) whose change needs new data; the others
    #: only restyle through :meth:`hideout_for`.
    data_options: tuple[str, ...] = ()
    #: change generations (migration 0009) the layer's data is built from
    depends_on: tuple[str, ...] = ("admin", "grid")
    #: how long cached data may be served at most (time-dependent layers: short)
    cache_seconds: int = 600
    #: signals (callbacks.ids.signal names) after which the layer reloads its data
    reload_on: frozenset[str] = frozenset()
    #: ``?<link_key>=ID`` opens this layer's panel for feature ID (deep links, search)
    link_key: str | None = None
    #: its style reads ``hideout["selected"]``: a click or link highlights the feature
    highlight: bool = False

    # -- data -----------------------------------------------------------
    def features(self, session, req: ViewRequest) -> dict:
        raise NotImplementedError

    def request_key(self, req: ViewRequest, view_key: str) -> str:
        """Changes exactly when the layer's data must be reloaded."""
        if self.static:
            return "static"
        zoom_band = "in" if req.zoom >= self.min_zoom else "out"
        return f"{view_key}|{zoom_band}|{','.join(req.subtypes or [])}|{sorted(req.options.items())}"

    def subtypes(self, session) -> list[SubType]:
        return []

    def initial_hideout(self, session) -> dict:
        return {}

    def controls(self, session, lang: str) -> list:
        """Extra inputs under the layer's toggle (filters, measures); ids from :func:`option_id`."""
        return []

    def hideout_for(self, session, options: dict, hideout: dict) -> dict:
        """New hideout when the layer's display options change (no data re-sent)."""
        return hideout

    # -- presentation ---------------------------------------------------
    def title(self, lang: str) -> str:
        return pick(self.title_zh, self.title_en, lang)

    def legend(self, lang: str, hideout: dict) -> list[LegendItem]:
        return []

    def details(self, session, feature: dict, lang: str):
        """Panel content for a clicked feature, or None."""
        return None

    def select(self, feature: dict) -> Selection | None:
        """What a click on ``feature`` opens; None: nothing (e.g. a cluster, which zooms itself).

        Default: an aggregate box (``kind`` ending in ``_aggregate`` with ``bounds``)
        flies the map to its bounds; any other feature opens this layer's panel.
        """
        props = feature.get("properties") if isinstance(feature, dict) else None
        if not isinstance(props, dict):
            return None
        if props.get("cluster"):
            return None
        if str(props.get("kind") or "").endswith("_aggregate"):
            box = bounds_or_none(props.get("bounds"))
            return Selection(self.name, feature, zoom_to=box) if box else None
        return Selection(self.name, feature)

    def focus(self, session, feature_id: int) -> list | None:
        """Bounds ``[[s, w], [n, e]]`` the map flies to when a link opens this feature, or None."""
        return None

    # -- live (the shared clock) -------------------------------------------
    def live_patch(self, session, hideout: dict, subtypes: list[str] | None):
        """A ``dash.Patch`` of the layer's hideout with what changed since the last tick, or None.

        Called on every tick of the shared clock for layers that override it; return
        None on a quiet tick, so nothing is redrawn.
        """
        return None

    def live_summary(self, session, lang: str) -> list | None:
        """Components for the top bar's live counters (refreshed on the clock), or None."""
        return None

    @property
    def is_live(self) -> bool:
        """True when the layer takes part in the clock (overrides a live hook)."""
        cls = type(self)
        return cls.live_patch is not Layer.live_patch or cls.live_summary is not Layer.live_summary

    def component(self, hideout: dict):
        kw: dict[str, Any] = dict(
            id={"type": "layer", "name": self.name},
            data=EMPTY_FC,
            hideout={**hideout, "visible": self.visible},
            interactive=self.interactive,
            pane=f"pane-{self.name}",
            bubblingMouseEvents=False,
        )
        if self.style:
            kw["style"] = js(f"styles.{self.style}")
        if self.point_to_layer:
            kw["pointToLayer"] = js(f"points.{self.point_to_layer}")
        if self.on_each_feature:
            kw["onEachFeature"] = js(f"each.{self.on_each_feature}")
        kw["filter"] = js("filters.visible")
        if self.cluster:
            kw["cluster"] = True
            kw["clusterToLayer"] = js("points.cluster")
            kw["superClusterOptions"] = {"radius": 90, "maxZoom": 15}
            kw["zoomToBoundsOnClick"] = True
        return dl.Pane(dl.GeoJSON(**kw), name=f"pane-{self.name}", style={"zIndex": self.z_index})


def option_id(layer: str, key: str) -> dict:
    """Component id of a layer option; its ``value`` reaches the layer as ``options[key]``."""
    return {"type": "layer-option", "name": layer, "key": key}


def link_id(layer: str, feature_id: int) -> dict:
    """Component id of a button in a panel that opens ``layer``'s panel for ``feature_id``."""
    return {"type": "panel-link", "layer": layer, "fid": int(feature_id)}


def not_found(lang: str, feature_id) -> Any:
    """The panel message for an id that does not exist or is out of scope."""
    return html.Div(t("error.not_found", lang, id=feature_id), className="panel-error", role="alert")


def as_int(value) -> int | None:
    """Parse a feature id from a click or URL; None when it is not a positive integer."""
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 2**63 else None  # PostgreSQL ids are bigint at most
