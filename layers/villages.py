"""行政村 boundaries with hover tooltip; click opens the village panel, which lists its grids."""
from dash import html

from geodata.i18n import pick, t
from geodata.queries import details as d
from geodata.queries import layers as q
from layers.base import Layer, LegendItem, ViewRequest, as_int, not_found
from layers.panel import facts, fmt_area, fmt_int, fmt_pct, header, link_button


class VillageLayer(Layer):
    name = "villages"
    title_zh, title_en = "行政村", "Villages"
    style = "village"
    on_each_feature = "villageTooltip"
    z_index = 300
    link_key = "village"
    highlight = True

    def request_key(self, req, view_key):
        # 137 polygons: reload only when the zoom (and so the simplification) changes a lot.
        return f"z{int(req.zoom) // 2}"

    def features(self, session, req: ViewRequest) -> dict:
        county = q.county_extent(session)
        if county is None:
            return q.EMPTY_FC
        (s, w), (n, e) = county
        return q.villages(session, (w - 0.01, s - 0.01, e + 0.01, n + 0.01), req.zoom)

    def legend(self, lang, hideout):
        return [LegendItem("行政村界", "Village boundary", "#2f6f4f", "line")]

    def focus(self, session, feature_id):
        return q.village_bounds(session, feature_id)

    def details(self, session, feature, lang):
        vid = as_int(feature.get("properties", {}).get("id", feature.get("id")))
        if vid is None:
            return not_found(lang, feature.get("id"))
        v = d.village(session, vid)
        if v is None:
            return not_found(lang, vid)
        share = (v["age_60_plus"] / v["total"]) if v.get("total") else None
        res_rows = [
            html.Li(f"{(r['name_en'] if lang == 'en' else r['name_zh'])}: {r['n']}") for r in v["resources"]
        ]
        sensors = f"{fmt_int(v['sensors'])} ({t('status.alarm', lang)} {v['sensors_alarm']}, " \
                  f"{t('status.offline', lang)} {v['sensors_offline']})"
        return html.Div([
            header(v["name"], v["code"], "行政村", "Village", lang),
            facts([
                ("field.code", v["code"]),
                ("field.town", v["town"]),
                ("field.population", fmt_int(v["total"])),
                ("field.age60", f"{fmt_int(v['age_60_plus'])} ({fmt_pct(share)})"),
                ("field.households", fmt_int(v["households"])),
                ("field.area", fmt_area(v["area_m2"], lang)),
                ("field.grids", fmt_int(v["grids"])),
                ("field.sensors", sensors),
            ], lang, test_id="village-facts"),
            *_grid_links(d.village_grids(session, vid), lang),
            html.H4(t("field.resources", lang), className="panel-section"),
            html.Ul(res_rows, className="panel-list"),
            html.H4(pick("导出本村", "Export this village", lang), className="panel-section"),
            html.Div(
                [html.A(label, href=f"/export/village/{v['code']}.{ext}", className="export-link", target="_blank")
                 for ext, label in (("gpkg", "GeoPackage"), ("html", pick("离线地图 HTML", "Offline map (HTML)", lang)))],
                className="export-links",
            ),
        ])


def _grid_links(grids: list[dict], lang: str) -> list:
    """The village's grids, each a button down to the grid's own panel."""
    if not grids:
        return []
    return [html.H4(pick(f"本村网格({len(grids)})", f"Grids of this village ({len(grids)})", lang),
                    className="panel-section"),
            html.Div([link_button("grids", g["id"], f"{g['code'][-3:]} {g['name']}", title=g["code"])
                      for g in grids], className="panel-links", **{"data-testid": "village-grids"})]
