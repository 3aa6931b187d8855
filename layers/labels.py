"""Place-name labels: towns when zoomed out, villages when zoomed in."""
from geodata.queries import layers as q
from layers.base import Layer, ViewRequest


class LabelLayer(Layer):
    name = "labels"
    title_zh, title_en = "地名标注", "Place names"
    point_to_layer = "label"
    interactive = False
    village_zoom = 12
    z_index = 650

    def request_key(self, req, view_key):
        return f"town|z{int(req.zoom) // 3}" if req.zoom < self.village_zoom else f"village|{view_key}"

    def features(self, session, req: ViewRequest) -> dict:
        if req.zoom < self.village_zoom:
            return q.labels(session, "town", (-180.0, -90.0, 180.0, 90.0))  # 12 towns: all at once
        return q.labels(session, "village", req.bbox)
