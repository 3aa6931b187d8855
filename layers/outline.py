"""County and town outlines: the base that makes the map readable without tiles.

Two static layers: the county's fill sits under everything (the land), the town
boundaries are drawn above the village boundaries so they stay legible.
"""
from geodata.queries import layers as q
from layers.base import Layer, LegendItem, ViewRequest


class CountyLayer(Layer):
    name = "county"
    title_zh, title_en = "县域", "County"
    static = True
    toggleable = False
    interactive = False
    style = "outline"
    z_index = 250

    def features(self, session, req: ViewRequest) -> dict:
        return q.base_outlines(session, zoom=12, kinds=("county",))

    def legend(self, lang, hideout):
        return [LegendItem("县界", "County boundary", "#1c3d5a", "line")]


class TownLayer(Layer):
    name = "towns"
    title_zh, title_en = "乡镇界", "Town boundaries"
    static = True
    toggleable = False
    interactive = False
    style = "outline"
    z_index = 340

    def features(self, session, req: ViewRequest) -> dict:
        return q.base_outlines(session, zoom=12, kinds=("town",))

    def legend(self, lang, hideout):
        return [LegendItem("乡镇(街道)界", "Town boundary", "#1e3a5f", "dashed")]
