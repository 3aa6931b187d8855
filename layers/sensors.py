"""物联感知: sensors coloured by status; counts per village when zoomed out.

Live (:meth:`SensorLayer.live_patch`, called on the map's shared clock by
callbacks/map.py like any layer's): the clock patches ``hideout`` only — ``live`` ({sensor id: status}
for sensors whose status changed since the page was built) and ``agg``
({aggregate feature id: [count, alarm, offline]}) — which the JS point function
reads in preference to the loaded data, so the layer is never re-sent.
"""
from datetime import datetime

import plotly.graph_objects as go
from dash import Patch, dcc, html

from geodata import sensors as sn
from geodata.clock import fmt_local, to_local
from geodata.i18n import pick, t
from geodata.queries import details as d
from geodata.queries import layers as q
from layers.base import Layer, LegendItem, SubType, ViewRequest, as_int, not_found
from layers.panel import facts, header


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
    link_key = "sensor"

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
        since, _ = sn.status_changes(session, None)
        return {"status_colors": STATUS_COLORS,
                "type_icons": {"manhole": "井", "trash_bin": "桶", "environment": "环", "camera": "摄",
                               "smoke": "烟", "geohazard": "地"},
                # live state, patched by live_patch on the shared clock
                "live": {}, "agg": {}, "agg_types": None, "live_since": since.isoformat()}

    def live_summary(self, session, lang):
        # Counted in the user's scope (RLS): the county for county roles, their villages otherwise.
        return live_counters(sn.status_counts(session), lang)

    def live_patch(self, session, hideout: dict, types: list[str] | None):
        """A ``Patch`` of ``hideout`` with what changed since its ``live_since``, or None.

        Only statuses that differ from the hideout's own are sent, and ``live_since``
        moves only with them: a quiet tick changes nothing (no redraw).
        """
        hideout = hideout or {}
        try:
            since = datetime.fromisoformat(hideout["live_since"])
        except (KeyError, TypeError, ValueError):
            since = None
        now, changes = sn.status_changes(session, since)
        counts = sn.unit_counts(session, types)
        patch, changed = Patch(), False
        live = hideout.get("live") or {}
        fresh = {str(sid): status for sid, status in changes.items() if live.get(str(sid)) != status}
        for sid, status in fresh.items():
            patch["live"][sid] = status
        types_key = None if types is None else sorted(types)
        agg = hideout.get("agg") or {}
        if not agg or hideout.get("agg_types") != types_key:
            patch["agg"] = counts
            patch["agg_types"] = types_key
            changed = True
        else:
            for key in set(agg) | set(counts):
                value = counts.get(key, [0, 0, 0])
                if agg.get(key) != value:
                    patch["agg"][key] = value
                    changed = True
        if since is None or fresh:
            patch["live_since"] = now.isoformat()
            changed = True
        return patch if changed else None

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
                ("field.time", fmt_local(s["last_seen_at"])),
                ("field.village", s["village"]),
            ], lang, test_id="sensor-facts"),
            *_chart(sn.reading_series(session, sid), lang),
            *_alarms(sn.sensor_alarms(session, sid), lang),
        ]


def _chart(series: dict | None, lang: str) -> list:
    """The last 24 hours of the main value, with the alarm and clear levels."""
    title = pick("近24小时读数", "Last 24 hours", lang)
    if not series or not series["times"]:
        return [html.Div(title, className="panel-section"),
                html.Div(pick("近24小时没有读数。", "No readings in the last 24 hours.", lang),
                         className="panel-hint", **{"data-testid": "sensor-chart-empty"})]
    unit = series["unit"]
    fig = go.Figure(go.Scatter(
        x=[to_local(x) for x in series["times"]], y=series["values"], mode="lines+markers",
        line={"color": "#1f6feb", "width": 2}, marker={"size": 4}, name=series["main_value"],
        hovertemplate="%{x|%m-%d %H:%M}<br>%{y} " + unit + "<extra></extra>",
    ))
    for rule in series["rules"]:
        fig.add_hline(y=rule["raise_level"], line={"color": STATUS_COLORS["alarm"], "dash": "dash", "width": 1.5},
                      annotation_text=pick(f"告警 {rule['raise_level']:g}", f"alarm {rule['raise_level']:g}", lang),
                      annotation_position="top left", annotation_font={"size": 11, "color": STATUS_COLORS["alarm"]})
        if rule["clear_level"] != rule["raise_level"]:
            fig.add_hline(y=rule["clear_level"], line={"color": "#d97706", "dash": "dot", "width": 1},
                          annotation_text=pick(f"解除 {rule['clear_level']:g}", f"clear {rule['clear_level']:g}", lang),
                          annotation_position="bottom left", annotation_font={"size": 11, "color": "#b45309"})
    fig.update_layout(
        height=230, margin={"l": 44, "r": 8, "t": 8, "b": 32}, showlegend=False,
        paper_bgcolor="#ffffff", plot_bgcolor="#f8fafc",
        font={"family": "Noto Sans CJK SC, WenQuanYi Micro Hei, sans-serif", "size": 11},
        xaxis={"tickformat": "%H:%M", "gridcolor": "#e5e7eb"},
        yaxis={"title": {"text": f"{series['main_value']} ({unit})"}, "gridcolor": "#e5e7eb", "rangemode": "tozero"},
    )
    return [html.Div(title, className="panel-section"),
            dcc.Graph(figure=fig, config={"displayModeBar": False, "responsive": True}, className="sensor-chart",
                      id="sensor-chart", style={"height": "230px"})]


def _alarms(episodes: list[dict], lang: str) -> list:
    """The sensor's latest alarm episodes and the events they opened."""
    if not episodes:
        return []
    items = []
    for a in episodes:
        what = (pick(a["label_zh"], a["label_en"], lang) if a["kind"] == "threshold"
                else pick("离线", "Offline", lang))
        until = (fmt_local(a["cleared_at"]) if a["cleared_at"] else pick("进行中", "ongoing", lang))
        parts = [html.B(what), f" · {fmt_local(a['opened_at'])} → {until}"]
        if a["event_id"]:
            parts += [" · ", html.A(pick(f"事件 #{a['event_id']}", f"Event #{a['event_id']}", lang),
                                    href=f"?event={a['event_id']}")]
        items.append(html.Li(parts, className="alarm-open" if not a["cleared_at"] else None))
    return [html.Div(pick("告警记录", "Alarms", lang), className="panel-section"),
            html.Ul(items, className="panel-list", **{"data-testid": "sensor-alarms"})]


def live_counters(counts: dict, lang: str):
    """The top bar's online / alarm / offline counter of the sensors in the user's scope."""
    def chip(key: str, zh: str, en: str):
        return html.Span(
            [html.I(className=f"live-dot live-{key}"), pick(zh, en, lang), html.B(f"{counts[key]:,}")],
            className=f"live-chip live-chip-{key}", title=pick(f"物联感知设备{zh}数", f"Sensors {en.lower()}", lang),
            **{"data-testid": f"counter-{key}", "data-value": counts[key]},
        )

    return [chip("online", "在线", "Online"), chip("alarm", "告警", "Alarm"), chip("offline", "离线", "Offline")]
