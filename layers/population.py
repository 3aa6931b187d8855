"""Population choropleth per village or per grid, classed by Fisher-Jenks (mapclassify).

Breaks are computed county-wide (not per viewport) so colours mean the same thing
wherever the map is; all three measures travel with the data, so switching the
measure only changes ``hideout``.
"""
from __future__ import annotations

import warnings

import numpy as np

with warnings.catch_warnings():  # mapclassify suggests numba; the pure path is fast enough here
    warnings.simplefilter("ignore")
    import mapclassify

import dash_mantine_components as dmc

from geodata.i18n import pick, t
from geodata.queries import layers as q
from layers.base import Layer, LegendItem, Selection, ViewRequest, option_id

COLORS = ["#ffffcc", "#a1dab4", "#41b6c4", "#2c7fb8", "#253494"]
METRICS = ("total", "share60", "households")
LEVELS = ("village", "grid")


def class_breaks(values: list[float], k: int = 5) -> list[float]:
    """Upper bounds of ``k`` Fisher-Jenks classes (fewer when there are few distinct values)."""
    arr = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    distinct = np.unique(arr)
    if distinct.size == 0:
        return []
    if distinct.size <= k:
        return [float(v) for v in distinct]
    if arr.size > 250:
        # Fisher-Jenks is O(k·n²) without numba: classify 250 evenly spaced order
        # statistics instead — deterministic, and the breaks move by < 1 class width.
        arr = np.quantile(arr, np.linspace(0, 1, 250))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [float(b) for b in mapclassify.FisherJenks(arr, k=k).bins]


class PopulationLayer(Layer):
    name = "population"
    title_zh, title_en = "人口分布", "Population"
    depends_on = ("grid",)
    visible = False
    style = "choropleth"
    on_each_feature = "populationTooltip"
    z_index = 280
    data_options = ("level",)

    def controls(self, session, lang):
        return [
            dmc.SegmentedControl(
                id=option_id(self.name, "level"), value="village", size="xs", fullWidth=True,
                data=[{"value": "village", "label": t("level.village", lang)},
                      {"value": "grid", "label": t("level.grid", lang)}],
            ),
            dmc.Select(
                id=option_id(self.name, "metric"), value="total", size="xs", allowDeselect=False, mt=6,
                data=[{"value": m, "label": t(f"population.{m}", lang)} for m in METRICS],
            ),
        ]

    def _level(self, req: ViewRequest) -> str:
        level = req.options.get("level", "village")
        return level if level in LEVELS else "village"

    def features(self, session, req: ViewRequest) -> dict:
        return q.population(session, self._level(req), req.bbox, req.zoom)

    def request_key(self, req, view_key):
        level = self._level(req)
        # Village level: the whole county at once; grid level follows the viewport.
        return f"village|z{int(req.zoom) // 2}" if level == "village" else f"grid|{view_key}"

    def initial_hideout(self, session) -> dict:
        return self.hideout_for(session, {"level": "village", "metric": "total"}, {})

    def hideout_for(self, session, options, hideout):
        level = options.get("level") if options.get("level") in LEVELS else "village"
        metric = options.get("metric") if options.get("metric") in METRICS else "total"
        out = dict(hideout)
        if out.get("level") != level or "classes" not in out:
            out["classes"] = {m: class_breaks(q.population_values(session, level, m)) for m in METRICS}
        out.update(level=level, metric=metric, colors=COLORS)
        return out

    def select(self, feature):
        """A unit of the choropleth opens its own panel: the village's or the grid's."""
        chosen = super().select(feature)
        if chosen is None or chosen.zoom_to:
            return chosen
        kind = (feature.get("properties") or {}).get("kind")
        return Selection("grids" if kind == "grid" else "villages", feature)

    def legend(self, lang, hideout):
        metric = hideout.get("metric", "total")
        breaks = hideout.get("classes", {}).get(metric, [])
        items, lower = [], None
        for i, upper in enumerate(breaks):
            fmt = (lambda v: f"{100 * v:.0f}%") if metric == "share60" else (lambda v: f"{v:,.0f}")
            label = f"≤ {fmt(upper)}" if lower is None else f"{fmt(lower)} – {fmt(upper)}"
            items.append(LegendItem(label, label, COLORS[min(i, len(COLORS) - 1)], "fill"))
            lower = upper
        title = {"total": ("总人口", "Total population"), "share60": ("60岁以上占比", "Share aged 60+"),
                 "households": ("户数", "Households")}[metric]
        items.insert(0, LegendItem(pick(*title, "zh") + "(Fisher-Jenks 分级)",
                                   pick(*title, "en") + " (Fisher-Jenks classes)", "transparent", "title"))
        return items
