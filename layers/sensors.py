"""物联感知: sensors coloured by status; counts per village when zoomed out."""
from geodata.i18n import t
from geodata.queries import details as d
from geodata.queries import layers as q
from layers.base import Layer, LegendItem, SubType, ViewRequest, as_int, not_found
from layers.panel import facts, fmt_time, header

STATUS_COLORS = {"normal": "#16a34a", "alarm": "#dc2626", "offline": "#6b7280"}
TYPE_COLORS = {"manhole": "#0f766e", "trash_bin": "#a16207", "environment": "#2563eb",
               "camera": "#7c3aed", "smoke": "#ea580c", "geohazard": "#92400e"}


class SensorLayer(Layer):
    name = "sensors"
    title_zh, title_en = "物联感知设备", "IoT sensors"
    depends_on = ("sensor",)
    cache_seconds = 60
    min_zoom = 14
    village_zoom = 12   # below: counts per town; from here: counts per village
    point_to_layer = "sensor"
    z_index = 620

    def features(self, session, req: ViewRequest) -> dict:
        if req.zoom < self.village_zoom:
            return q.sensors_by_unit(session, "town", (-180.0, -90.0, 180.0, 90.0), req.subtypes)
        if req.zoom < self.min_zoom:
            return q.sensors_by_unit(session, "village", (-180.0, -90.0, 180.0, 90.0), req.subtypes)
        return q.sensors(session, req.bbox, req.subtypes)

    def request_key(self, req, view_key):
        base = super().request_key(req, view_key)
        # Zoomed out: per-village counts for the whole county, independent of panning.
        if req.zoom >= self.min_zoom:
            return base
        level = "town" if req.zoom < self.village_zoom else "village"
        return f"agg-{level}|" + ",".join(req.subtypes or ["*"])

    def subtypes(self, session):
        return [SubType(r["code"], r["name_zh"], r["name_en"], TYPE_COLORS.get(r["code"], "#333"))
                for r in q.sensor_types(session)]

    def initial_hideout(self, session):
        return {"status_colors": STATUS_COLORS,
                "type_icons": {"manhole": "井", "trash_bin": "桶", "environment": "环", "camera": "摄",
                               "smoke": "烟", "geohazard": "地"}}

    def legend(self, lang, hideout):
        items = [LegendItem(t(f"status.{k}", "zh"), t(f"status.{k}", "en"), c, "circle")
                 for k, c in STATUS_COLORS.items()]
        items.append(LegendItem("方框数字:乡镇/村内设备数,红色角标为告警数(放大至14级显示单个设备)",
                                "Boxed numbers: sensors per town/village, red badge = alarms (zoom ≥ 14 for each sensor)",
                                "#16a34a", "count"))
        return items

    def details(self, session, feature, lang):
        props = feature.get("properties", {})
        if props.get("kind") == "sensor_aggregate":
            return None  # handled by zooming in
        sid = as_int(props.get("id", feature.get("id")))
        s = d.sensor(session, sid) if sid else None
        if s is None:
            return not_found(lang, feature.get("id"))
        values = s["last_values"] or {}
        main = values.get(s["main_value"])
        latest = f"{main} {s['unit']}" if main is not None else "—"
        return [
            header(s["code"], s["type_en"] if lang == "en" else s["type_zh"], "感知设备", "Sensor", lang),
            facts([
                ("field.type", s["type_en"] if lang == "en" else s["type_zh"]),
                ("field.status", t(f"status.{s['status']}", lang)),
                ("field.latest", latest),
                ("field.time", fmt_time(s["last_seen_at"])),
                ("field.village", s["village"]),
            ], lang, test_id="sensor-facts"),
        ]
