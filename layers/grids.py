"""网格: current grid polygons with code and grid worker.

Grids lie above the villages, so a click inside a village opens its grid; the grid's
panel links up to its village ("所属村"), whose panel lists its grids.
"""
from dash import html

from geodata.clock import fmt_local
from geodata.i18n import pick
from geodata.queries import details as d
from geodata.queries import layers as q
from geodata.users import mask_phone
from layers.base import Layer, LegendItem, ViewRequest, as_int, not_found
from layers.panel import facts, fmt_area, fmt_int, fmt_pct, header, link_button


class GridLayer(Layer):
    name = "grids"
    title_zh, title_en = "网格", "Grids"
    depends_on = ("grid",)
    min_zoom = 12
    style = "grid"
    on_each_feature = "gridTooltip"
    z_index = 320
    link_key = "grid"
    highlight = True

    def features(self, session, req: ViewRequest) -> dict:
        if req.zoom < self.min_zoom:
            return q.EMPTY_FC
        return q.grids(session, req.bbox, req.zoom)

    def legend(self, lang, hideout):
        return [LegendItem("网格界(放大至12级显示)", "Grid boundary (zoom ≥ 12)", "#c2410c", "dashed")]

    def details(self, session, feature, lang):
        gid = as_int(feature.get("properties", {}).get("id", feature.get("id")))
        g = d.grid(session, gid) if gid else None
        if g is None:
            return not_found(lang, feature.get("id"))
        share = (g["age_60_plus"] / g["total"]) if g.get("total") else None
        return [
            header(g["name"], g["code"], "网格", "Grid", lang),
            link_button("villages", g["village_id"],
                        [html.Span(pick("所属村:", "Village: ", lang), className="panel-link-kind"), g["village"],
                         html.Span(" ›", **{"aria-hidden": "true"})],
                        test_id="grid-village-link", title=pick("打开所属村", "Open the village", lang)),
            facts([
                ("field.code", g["code"]),
                ("field.village", g["village"]),
                ("field.worker", g["worker"]),
                # Personal data: masked for roles that do not need to call the worker.
                ("field.phone", mask_phone(g["worker_phone"], session.info.get("scope").role
                                           if session.info.get("scope") else "anonymous")),
                ("field.population", fmt_int(g["total"])),
                ("field.age60", f"{fmt_int(g['age_60_plus'])} ({fmt_pct(share)})"),
                ("field.households", fmt_int(g["households"])),
                ("field.area", fmt_area(g["area_m2"], lang)),
                ("field.version", g["version"]),
                ("field.valid_from", fmt_local(g["valid_from"])),
            ], lang, test_id="grid-facts"),
        ]
