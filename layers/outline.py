"""County and town outlines: the base that makes the map readable without tiles."""
from geodata.queries import layers as q
from layers.base import Layer, LegendItem, ViewRequest


class OutlineLayer(Layer):
    name = "outline"
    title_zh, title_en = "县界与乡镇界", "County and town boundaries"
    static = True
    toggleable = False
    interactive = False
    style = "outline"
    z_index = 250

    def features(self, session, req: ViewRequest) -> dict:
        # Simplified once for the county view; outlines are thin, so this stays light.
        return q.base_outlines(session, zoom=12)

    def legend(self, lang, hideout):
        return [LegendItem("县界", "County boundary", "#1c3d5a", "line"),
                LegendItem("乡镇界", "Town boundary", "#4a6a85", "dashed")]
