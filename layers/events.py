"""事件: the event loop on the map — counts per village/grid zoomed out, points zoomed in.

Colours come from geodata.workflow (one source for states); overdue open events get
a red ring. Filters (state group, class, time window) are layer options, so they
reuse the generic map callbacks. A clicked event opens the full event panel
(layers/event_panel.py: details, route, photos, allowed actions, timeline).
"""
from __future__ import annotations

import dash_mantine_components as dmc

from geodata import workflow as wf
from geodata.i18n import BilingualError, pick
from geodata.queries import events_map as q
from layers import event_panel
from layers.base import Layer, LegendItem, ViewRequest, as_int, not_found, option_id


#: Where the layer says that a view's points were cut to the newest N.
NOTE_ID = {"type": "layer-note", "name": "events"}


def truncation_note(data: dict, lang: str) -> str:
    """The notice for a view whose points were cut to the newest N ('' when not cut)."""
    limit = (data or {}).get("truncated") if isinstance(data, dict) else None
    if not limit:
        return ""
    return pick(f"本视图事件较多,仅显示最新 {int(limit):,} 件;放大或缩小时间范围可看全部。",
                f"Many events here: the newest {int(limit):,} are shown; zoom in or shorten the time window "
                "to see all.", lang)


def class_filter(raw) -> str | None:
    """An event class filter: a short code, or None for every class."""
    if raw in (None, ""):
        return None
    if not isinstance(raw, str) or len(raw) > 16 or not raw.isalnum():
        raise BilingualError("事件类别无效", "invalid event category", code="bad_option")
    return raw


def shown_states() -> list[wf.State]:
    """The states the map can show, in workflow order: the open ones, then the closed ones."""
    return [s for s in wf.State if s in wf.OPEN] + [s for s in wf.State if s in wf.CLOSED]


class EventLayer(Layer):
    name = "events"
    title_zh, title_en = "事件", "Events"
    depends_on = ("event", "grid")
    cache_seconds = 60
    min_zoom = 14
    grid_zoom = 12
    point_to_layer = "event"
    z_index = 640
    data_options = ("state", "class", "days")
    link_key = "event"
    #: a report or a transition (callbacks/events.py) reloads the layer in the current view
    reload_on = frozenset({"events-changed"})

    #: The longest time window a request may ask for (days).
    MAX_DAYS = 3660

    def _opts(self, req: ViewRequest) -> dict:
        o = req.options
        state = o.get("state") if o.get("state") in q.STATE_GROUPS else "open"
        return {"state_group": state, "class_code": class_filter(o.get("class")), "days": self._days(o.get("days"))}

    def _days(self, raw) -> int:
        if raw in (None, ""):
            return 30
        try:
            days = int(str(raw).strip())
        except ValueError:
            days = 0
        if isinstance(raw, bool) or not 1 <= days <= self.MAX_DAYS:
            raise BilingualError(f"时间范围无效(1–{self.MAX_DAYS} 天)", f"invalid time window (1–{self.MAX_DAYS} days)",
                                 code="bad_option")
        return days

    #: Most points drawn per zoom level (the newest; the layer says when a view holds more).
    #: Each SVG point costs the browser ~0.15 ms on a 2-core machine and the view is padded
    #: to ~6 screens, so 3,000 points at street level kept the main thread busy ~460 ms
    #: (bench/bench_scale.py, item 6); at z14–15 they are a solid blob anyway.
    POINT_LIMITS = {14: 1000, 15: 1500, 16: 2000}
    MAX_POINTS = 3000

    def point_limit(self, zoom: float) -> int:
        return self.POINT_LIMITS.get(int(zoom), self.MAX_POINTS)

    def features(self, session, req: ViewRequest) -> dict:
        o = self._opts(req)
        if req.zoom >= self.min_zoom:
            fc = q.event_points(session, req.bbox, limit=self.point_limit(req.zoom), **o)
            if fc.get("truncated"):
                fc["note"] = {lang: truncation_note(fc, lang) for lang in ("zh", "en")}
            return fc
        return q.event_counts(session, "grid" if req.zoom >= self.grid_zoom else "village", **o)

    def request_key(self, req, view_key):
        o = self._opts(req)
        opts = f"{o['state_group']}|{o['class_code']}|{o['days']}"
        if req.zoom >= self.min_zoom:
            return f"pts|{view_key}|{opts}"
        return f"agg-{'grid' if req.zoom >= self.grid_zoom else 'village'}|{opts}"

    def initial_hideout(self, session):
        return {"state_colors": {s.value: c for s, c in wf.STATE_COLORS.items()}, "overdue": wf.OVERDUE_COLOR}

    def controls(self, session, lang):
        classes = q.event_classes(session)
        return [
            dmc.SegmentedControl(
                id=option_id(self.name, "state"), value="open", size="xs", fullWidth=True,
                data=[{"value": "open", "label": pick("未结", "Open", lang)},
                      {"value": "overdue", "label": pick("超期", "Overdue", lang)},
                      {"value": "closed", "label": pick("已结", "Closed", lang)},
                      {"value": "all", "label": pick("全部", "All", lang)}],
            ),
            dmc.Select(
                id=option_id(self.name, "class"), value=None, size="xs", clearable=True, mt=6,
                placeholder=pick("全部类别", "All categories", lang),
                data=[{"value": c["code"], "label": pick(c["name_zh"], c["name_en"], lang)} for c in classes],
            ),
            dmc.Select(
                id=option_id(self.name, "days"), value="30", size="xs", allowDeselect=False, mt=6,
                data=[{"value": str(d), "label": pick(f"近 {d} 天", f"Last {d} days", lang)}
                      for d in (7, 30, 90, 365)],
            ),
            # "newest N shown" when a street-level view holds more (callbacks/events.py)
            dmc.Text(id=NOTE_ID, size="xs", c="orange.8", mt=4),
        ]

    def legend(self, lang, hideout):
        """Every state the layer can draw (open, then closed, as the state filter groups them)."""
        items = [LegendItem(wf.label(s, "zh"), wf.label(s, "en"), wf.STATE_COLORS[s], "circle", compact=True)
                 for s in shown_states()]
        items.append(LegendItem("超期(红圈)", "Overdue (red ring)", wf.OVERDUE_COLOR, "ring"))
        items.append(LegendItem("数字:事件数(放大至14级显示单个事件)", "Numbers: events (zoom ≥ 14 for each)",
                                "#7c2d12", "count"))
        return items

    def details(self, session, feature, lang):
        props = feature.get("properties", {})
        if props.get("kind") == "event_aggregate":
            return None
        eid = as_int(props.get("id", feature.get("id")))
        panel = event_panel.render(session, eid, lang) if eid else None
        return panel if panel is not None else not_found(lang, feature.get("id"))
