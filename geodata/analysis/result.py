"""The common shape of every analysis result: features to draw, a legend, numbers and notes.

A result is plain data (JSON-serialisable via :meth:`AnalysisResult.to_dict`), so it can
be kept in a server-side cache between the background job that computes it and the
callbacks that draw and export it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from geodata.i18n import pick


@dataclass
class LegendEntry:
    label_zh: str
    label_en: str
    color: str
    shape: str = "fill"   # fill | line | circle | ramp

    def label(self, lang: str) -> str:
        return pick(self.label_zh, self.label_en, lang)


@dataclass
class AnalysisResult:
    """One analysis run.

    Attributes
    ----------
    kind : str
        ``hotspots``, ``compare``, ``heat``, ``clusters``, ``coverage`` or ``zonal``.
    title_zh, title_en : str
    features : list of dict
        GeoJSON features (lon/lat, EPSG:4490 numbers); ``properties['_color']`` is the fill
        colour, ``properties['_key']`` identifies the cell/cluster/unit.
    legend : list of LegendEntry
    summary : dict
        Headline numbers (counts per class, people covered ...).
    notes : list of (zh, en)
        How it was computed: weights, method, assumptions, warnings.
    params : dict
        The inputs, for the record and for exports.
    points : list of dict
        Optional point features (e.g. the clustered events).
    overlay : dict, optional
        A raster image overlay: ``{"url": data-URI PNG, "bounds": [[s, w], [n, e]]}``.
    """

    kind: str
    title_zh: str
    title_en: str
    features: list = field(default_factory=list)
    legend: list = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    params: dict = field(default_factory=dict)
    points: list = field(default_factory=list)
    overlay: dict | None = None

    def title(self, lang: str) -> str:
        return pick(self.title_zh, self.title_en, lang)

    def feature_collection(self) -> dict:
        return {"type": "FeatureCollection", "features": self.features}

    def points_collection(self) -> dict:
        return {"type": "FeatureCollection", "features": self.points}

    def to_dict(self) -> dict:
        d = asdict(self)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "AnalysisResult":
        d = dict(d)
        d["legend"] = [LegendEntry(**e) if isinstance(e, dict) else e for e in d.get("legend", [])]
        d["notes"] = [tuple(n) for n in d.get("notes", [])]
        return cls(**d)


def feature(geom, key, color: str, **props) -> dict:
    """A GeoJSON feature from a shapely geometry (EPSG:4490), coordinates rounded to ~0.1 m."""
    import shapely

    geom = shapely.set_precision(geom, 1e-6) if geom is not None else None
    return {"type": "Feature", "id": str(key),
            "geometry": shapely.geometry.mapping(geom) if geom is not None else None,
            "properties": {"_key": str(key), "_color": color, **props}}


def sequential_colors(values, colors: list[str], k: int | None = None) -> tuple[list[str], list[float]]:
    """Colour each value by quantile class (zeros stay uncoloured); returns (colours, upper bounds)."""
    import numpy as np

    v = np.asarray(values, dtype=float)
    k = k or len(colors)
    pos = v[v > 0]
    if pos.size == 0:
        return ["#00000000"] * v.size, []
    bounds = sorted(set(float(b) for b in np.quantile(pos, np.linspace(0, 1, k + 1)[1:])))
    out = []
    for val in v:
        if not val > 0:
            out.append("#00000000")
            continue
        idx = next(i for i, b in enumerate(bounds) if val <= b + 1e-12)
        out.append(colors[min(len(colors) - 1, round(idx * (len(colors) - 1) / max(1, len(bounds) - 1)))])
    return out, bounds


HEAT_COLORS = ["#fff5eb", "#fdd0a2", "#fd8d3c", "#d94801", "#7f2704"]


def count_classes(values, colors: list[str]) -> tuple[list[str], list[tuple[int, int]]]:
    """Classes of event counts for a heat map: Fisher-Jenks natural breaks on the non-zero counts.

    Counts of events are heavily skewed (most cells hold one or two events, a few hold
    dozens); quantile classes then spend every colour on 1, 2 and 3 and lump the hot cells
    with them (1–1 / 2–2 / 3–44). Natural breaks (Fisher-Jenks, as mapclassify's
    ``FisherJenks``) minimise the spread inside each class, so the few hot cells get
    classes of their own. Computed exactly on the distinct counts weighted by how often
    they occur (:func:`_jenks_uppers`), which is fast for any number of cells. With no
    more distinct counts than colours, each count is its own class.

    Parameters
    ----------
    values : array-like of int
        Counts per cell (zeros stay uncoloured).
    colors : list of str
        One colour per class, light to dark; its length is the largest number of classes.

    Returns
    -------
    (list of str, list of (int, int))
        The colour of each value, and each class's lowest and highest count.
    """
    import numpy as np

    v = np.asarray(values, dtype=float)
    pos = v[v > 0]
    if pos.size == 0:
        return ["#00000000"] * v.size, []
    distinct = np.unique(pos)
    k = len(colors)
    if distinct.size <= k:
        uppers = [float(d) for d in distinct]
    else:
        uppers = _jenks_uppers(distinct, np.array([(pos == d).sum() for d in distinct], dtype=float), k)
    classes, lower = [], 0.0
    for b in uppers:
        inside = pos[(pos > lower) & (pos <= b)]
        if inside.size:
            classes.append((int(inside.min()), int(inside.max())))
        lower = b
    n = len(classes)
    # spread the classes over the ramp so the darkest colour always marks the hottest class
    ramp = [colors[round(i * (k - 1) / max(1, n - 1))] if n > 1 else colors[-1] for i in range(n)]
    out = []
    for val in v:
        if not val > 0:
            out.append("#00000000")
            continue
        idx = next(i for i, (_lo, hi) in enumerate(classes) if val <= hi)
        out.append(ramp[idx])
    return out, classes


def _jenks_uppers(x, w, k: int) -> list[float]:
    """Fisher's exact optimal partition of sorted distinct values ``x`` (weights ``w``) into ``k`` classes.

    Dynamic programming over the m distinct values (O(m² k)); returns each class's upper value.
    """
    import numpy as np

    m = x.size
    cw, cx, cxx = (np.concatenate([[0.0], np.cumsum(a)]) for a in (w, w * x, w * x * x))

    def sse(i, j):  # values i..j inclusive
        ww = cw[j + 1] - cw[i]
        sx = cx[j + 1] - cx[i]
        return (cxx[j + 1] - cxx[i]) - sx * sx / ww

    cost = np.full((k + 1, m), np.inf)
    back = np.zeros((k + 1, m), dtype=int)
    for j in range(m):
        cost[1, j] = sse(0, j)
    for c in range(2, k + 1):
        for j in range(c - 1, m):
            best, arg = np.inf, c - 1
            for i in range(c - 1, j + 1):  # class c holds values i..j
                v = cost[c - 1, i - 1] + sse(i, j)
                if v < best:
                    best, arg = v, i
            cost[c, j], back[c, j] = best, arg
    uppers, j = [], m - 1
    for c in range(k, 0, -1):
        uppers.append(float(x[j]))
        j = back[c, j] - 1
    return sorted(uppers)
