"""巡查覆盖: grids coloured by this week's patrol coverage, low-coverage grids outlined (managers only).

Coverage is computed in PostGIS by :func:`geodata.field.coverage.weekly_coverage`
(share of the grid within ``DVMAP_PATROL_BUFFER_M`` of the week's tracks). Tracks are
personal data: the layer draws grids, never tracks, and only for the roles that
manage patrols; for anyone else :meth:`PatrolCoverageLayer.features` is empty.
"""
from __future__ import annotations

from geodata.config import get_settings
from geodata.field.common import iso_week
from geodata.field.coverage import weekly_coverage
from geodata.i18n import pick
from geodata.queries import layers as q
from layers.base import Layer, LegendItem, ViewRequest, not_found
from layers.panel import facts, fmt_pct, header

#: roles that see patrol coverage (the grid manager and above)
MANAGER_ROLES = frozenset({"grid_manager", "town_official", "village_official", "county_leader", "admin"})
#: upper bounds of the colour classes (share covered) and their colours, low → high
BREAKS = (0.2, 0.4, 0.6, 0.8)
COLORS = ("#b91c1c", "#f97316", "#facc15", "#84cc16", "#15803d")


def _role(session) -> str:
    scope = session.info.get("scope")
    return scope.role if scope is not None else "anonymous"


class PatrolCoverageLayer(Layer):
    name = "patrol"
    title_zh, title_en = "巡查覆盖(本周)", "Patrol coverage (this week)"
    depends_on = ("grid", "patrol")
    cache_seconds = 300  # the week moves on and tracks arrive all day
    min_zoom = 12  # like the grids
    visible = False
    style = "patrolCoverage"
    z_index = 330

    def features(self, session, req: ViewRequest) -> dict:
        if req.zoom < self.min_zoom or _role(session) not in MANAGER_ROLES:
            return q.EMPTY_FC
        rows = weekly_coverage(session, iso_week(), bbox=tuple(req.bbox), with_geometry=True)
        feats = []
        for r in rows:
            geometry = r.pop("geometry")
            feats.append({"type": "Feature", "id": r["grid_uid"], "geometry": geometry,
                          "properties": {**r, "id": r["grid_uid"]}})
        return {"type": "FeatureCollection", "features": feats}

    def initial_hideout(self, session) -> dict:
        return {"breaks": list(BREAKS), "colors": list(COLORS)}

    def legend(self, lang, hideout):
        floor = get_settings().patrol_min_coverage
        bounds = (0.0, *BREAKS, 1.0)
        items = [LegendItem(f"{bounds[i] * 100:.0f}–{bounds[i + 1] * 100:.0f}%", f"{bounds[i] * 100:.0f}–"
                            f"{bounds[i + 1] * 100:.0f}%", COLORS[i], compact=True) for i in range(len(COLORS))]
        items.append(LegendItem(f"低于 {floor * 100:.0f}%(需加强巡查)", f"Below {floor * 100:.0f}% (flagged)",
                                "#7f1d1d", "line"))
        return items

    def details(self, session, feature, lang):
        props = feature.get("properties") or {}
        uid = str(props.get("id") or feature.get("id") or "")
        if _role(session) not in MANAGER_ROLES or len(uid) != 36:
            return not_found(lang, uid or "?")
        week = iso_week()
        rows = weekly_coverage(session, week, grid_uid=uid)
        if not rows:
            return not_found(lang, uid)
        r = rows[0]
        flag = pick("是,低于阈值", "yes, below the threshold", lang) if r["flagged"] else pick("否", "no", lang)
        return [
            header(r["name"], f"{r['code']} · {week.label}", "巡查覆盖", "Patrol coverage", lang),
            facts([
                (pick("网格员", "Grid worker", lang), r["worker"]),
                (pick("巡查次数", "Patrols", lang), r["patrols"]),
                (pick("里程(公里)", "Distance (km)", lang), f"{r['km']:.2f}"),
                (pick("时长(小时)", "Hours", lang), f"{r['hours']:.1f}"),
                (pick("覆盖率", "Coverage", lang), fmt_pct(r["coverage"])),
                (pick("关键点位签到", "Key points checked", lang),
                 f"{r['key_points_checked']}/{r['key_points']} ({fmt_pct(r['key_point_share'])})"),
                (pick("需加强", "Flagged", lang), flag),
            ], lang, test_id="patrol-facts"),
        ]
