"""公共资源: schools, kindergartens, clinics, elderly care, service stations, halls.

Icons by type; clustered where dense (supercluster in the browser — a county has
hundreds, not millions, of facilities).
"""
from geodata.queries import details as d
from geodata.queries import layers as q
from layers.base import Layer, LegendItem, SubType, ViewRequest, as_int, not_found
from layers.panel import facts, header


class ResourceLayer(Layer):
    name = "resources"
    title_zh, title_en = "公共资源", "Public resources"
    depends_on = ("resource",)
    point_to_layer = "resource"
    cluster = True
    z_index = 600
    link_key = "resource"

    def request_key(self, req, view_key):
        # Small layer: load the whole county once per sub-type selection.
        return "all|" + ",".join(sorted(req.subtypes)) if req.subtypes is not None else "all"

    def features(self, session, req: ViewRequest) -> dict:
        return q.resources(session, (-180.0, -90.0, 180.0, 90.0), req.subtypes)

    def subtypes(self, session):
        return [SubType(r["code"], r["name_zh"], r["name_en"], r["color"], r["icon"]) for r in q.resource_types(session)]

    def legend(self, lang, hideout):
        return [LegendItem(s["zh"], s["en"], s["color"], "icon", s["icon"]) for s in hideout.get("types", [])]

    def initial_hideout(self, session):
        return {"types": [{"code": s.code, "zh": s.name_zh, "en": s.name_en, "color": s.color, "icon": s.icon}
                          for s in self.subtypes(session)]}

    def details(self, session, feature, lang):
        rid = as_int(feature.get("properties", {}).get("id", feature.get("id")))
        r = d.resource(session, rid) if rid else None
        if r is None:
            return not_found(lang, feature.get("id"))
        unit = r["capacity_unit_en"] if lang == "en" else r["capacity_unit_zh"]
        return [
            header(r["name"], r["type_en"] if lang == "en" else r["type_zh"], "公共资源", "Public resource", lang),
            facts([
                ("field.type", r["type_en"] if lang == "en" else r["type_zh"]),
                ("field.capacity", f"{r['capacity']} {unit or ''}" if r["capacity"] is not None else None),
                ("field.village", r["village"]),
            ], lang, test_id="resource-facts"),
        ]
