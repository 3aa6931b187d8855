"""Layers that departments import (custom_layer): they appear in the layer panel.

The registry of built-in layers is static; custom ones are read per request from
the database (geodata.export's collection catalogue, the same one OGC API uses).
"""
from __future__ import annotations

from dash import html

from geodata import export as gx
from geodata.i18n import pick
from layers.base import Layer, LegendItem, ViewRequest

PREFIX = "custom:"


class CustomLayer(Layer):
    """One imported layer, drawn with a neutral style and a properties panel."""

    visible = False
    style = "custom"
    point_to_layer = "custom"
    depends_on = ("custom",)
    z_index = 560

    def __init__(self, collection: gx.Collection):
        self.collection = collection
        self.name = PREFIX + collection.id
        self.title_zh = collection.title_zh
        self.title_en = collection.title_en

    def features(self, session, req: ViewRequest) -> dict:
        feats, _ = gx.items(session, self.collection, bbox=req.bbox, limit=5000, precision=6)
        for f in feats:
            f.setdefault("properties", {})
            f["properties"] = {**(f["properties"] or {}), "id": f.get("id"), "kind": "custom"}
        return {"type": "FeatureCollection", "features": feats}

    def legend(self, lang, hideout):
        return [LegendItem("导入图层", "Imported layer", "#0e7490", "circle")]

    def details(self, session, feature, lang):
        props = {k: v for k, v in (feature.get("properties") or {}).items() if k not in ("id", "kind", "bounds")}
        rows = [html.Tr([html.Th(str(k)), html.Td(str(v))]) for k, v in list(props.items())[:30]]
        return [
            html.Div([html.Span(pick("导入图层", "Imported layer", lang), className="panel-kind"),
                      html.H3(self.title(lang), className="panel-title")], className="panel-header"),
            html.Table(html.Tbody(rows), className="facts"),
        ]


def custom_layers(session) -> list[CustomLayer]:
    """The imported layers the caller's scope can see."""
    return [CustomLayer(c) for c in gx.collections(session) if c.kind == "custom"]
