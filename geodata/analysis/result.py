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
