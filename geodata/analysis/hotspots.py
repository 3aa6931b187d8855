"""Hot spots of events: Getis-Ord Gi* on H3 hexagons or grids, heat counts, and two windows compared.

Counts of events per cell are the variable; every cell of the area takes part (cells
without events count 0), so the statistic compares each neighbourhood with the whole
area the caller may see. The event selection runs under the caller's scope (RLS).
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import numpy as np
from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.analysis import gistar as gs
from geodata.analysis.cells import Cells, area_of, grid_cells, h3_cells
from geodata.analysis.errors import AnalysisError
from geodata.analysis.result import HEAT_COLORS, AnalysisResult, LegendEntry, count_classes, feature
from geodata.analysis.selection import EventFilter, event_points, require_events
from geodata.config import STORAGE_SRID

#: Gi* on fewer events is noise: the usual rule of thumb (ArcGIS asks for 30 features).
MIN_EVENTS = 30


def _cells(session: Session, unit: str, resolution, flt: EventFilter, pts) -> Cells:
    if unit == "h3":
        return h3_cells(area_of(session, flt.village_ids), resolution, (pts.lon, pts.lat))
    if unit == "grid":
        return grid_cells(session, flt.village_ids)
    raise AnalysisError("bad_unit", f"未知的分析单元:{unit}", f"Unknown analysis unit: {unit}")


def _weights(cells: Cells, weights: str, band_m):
    if weights == "distance" and (band_m in (None, "") or float(band_m) <= 0):
        if band_m not in (None, ""):
            raise AnalysisError("bad_distance", "距离带必须大于 0 米。", "The distance band must be greater than 0 m.")
        band_m = gs.min_band_for_neighbours(cells.xy) * 1.0001
    return cells.weights(weights, band_m)


def hotspots(session: Session, flt: EventFilter, *, unit: str = "h3", resolution: int = 8,
             weights: str = "queen", band_m: float | None = None, transform: str = "R",
             permutations: int = 999, seed: int = 42, fdr: bool = False, progress=None) -> AnalysisResult:
    """Gi* hot and cold spots of the selected events.

    Parameters
    ----------
    session : Session
        A scoped session (RLS decides which events and villages count).
    flt : EventFilter
        Category, time window, villages.
    unit : {'h3', 'grid'}
        H3 hexagons at ``resolution`` or the current grids.
    resolution : int
        H3 resolution (6–9).
    weights : {'queen', 'distance'}
        Contiguity or distance band (``band_m`` metres between centroids; empty = the
        smallest band that gives every cell a neighbour).
    transform : {'R', 'B'}
        Row-standardised or binary.
    permutations, seed, fdr
        See :func:`geodata.analysis.gistar.gi_star`.
    progress : callable, optional
        ``progress(fraction, message_zh, message_en)``.

    Returns
    -------
    AnalysisResult

    Raises
    ------
    AnalysisError
        Empty selection, fewer than :data:`MIN_EVENTS` events, bad parameters.
    """
    report = progress or (lambda *a: None)
    report(0.05, "读取事件", "Reading events")
    pts = event_points(session, flt.validate())
    require_events(len(pts), MIN_EVENTS, "Gi* 热点分析", "Gi* hot-spot analysis")
    report(0.15, "构建分析单元", "Building cells")
    cells = _cells(session, unit, resolution, flt, pts)
    idx = cells.assign(pts.lon, pts.lat, pts.x, pts.y)
    y = cells.counts(idx)
    w = _weights(cells, weights, band_m)
    report(0.3, "计算 Gi* 与置换检验", "Computing Gi* and permutations")
    res = gs.gi_star(y, w, transform, permutations, seed, fdr,
                     progress=lambda d, n: report(0.3 + 0.6 * d / max(n, 1), "置换检验", "Permutations"))
    report(0.92, "整理结果", "Preparing the result")
    feats = []
    p = res.p_sim if res.p_sim is not None else res.p_norm
    for i in range(len(cells)):
        c = int(res.classes[i])
        feats.append(feature(cells.geoms[i], cells.ids[i], gs.CLASS_COLORS[c], label=cells.labels[i],
                             count=int(y[i]), z=round(float(res.z[i]), 4), p=round(float(p[i]), 4),
                             gi=float(res.gs[i]), cls=c, cls_zh=gs.CLASS_LABELS[c][0], cls_en=gs.CLASS_LABELS[c][1]))
    counts = {int(k): int((res.classes == k).sum()) for k in gs.CLASS_LABELS}
    wzh, wen = gs.describe_weights(w, transform)
    notes = [(wzh, wen), _p_note(res)]
    outside = int((idx < 0).sum())
    if outside:
        notes.append((f"{outside} 件事件不在任何分析单元内,未计入。", f"{outside} events lie in no cell and were left out."))
    unit_zh = f"H3 六边形(分辨率 {cells.resolution})" if unit == "h3" else "网格"
    unit_en = f"H3 hexagons (resolution {cells.resolution})" if unit == "h3" else "grids"
    summary = {"events": len(pts), "cells": len(cells), "cells_with_events": int((y > 0).sum()),
               "hot": sum(v for k, v in counts.items() if k > 0), "cold": sum(v for k, v in counts.items() if k < 0),
               "by_class": counts, "unit_zh": unit_zh, "unit_en": unit_en,
               "weights_zh": wzh, "weights_en": wen}
    params = {"unit": unit, "resolution": cells.resolution, "weights": w.kind, "band_m": w.threshold_m,
              "transform": transform, "permutations": permutations, "seed": seed, "fdr": fdr, **flt.describe()}
    legend = [LegendEntry(*gs.CLASS_LABELS[k], gs.CLASS_COLORS[k]) for k in (3, 2, 1, 0, -1, -2, -3)]
    return AnalysisResult("hotspots", f"事件热点(Gi*,{unit_zh})", f"Event hot spots (Gi*, {unit_en})",
                          feats, legend, summary, notes, params)


def _p_note(res: gs.GiStarResult) -> tuple[str, str]:
    if res.permutations:
        zh = f"伪 p 值:{res.permutations} 次条件置换(种子 {res.seed}),方向性单尾;"
        en = f"Pseudo p-values: {res.permutations} conditional permutations (seed {res.seed}), directed one-tailed; "
    else:
        zh, en = "p 值:正态近似;", "p-values: normal approximation; "
    if res.fdr:
        b = res.thresholds
        zh += f"FDR(Benjamini-Hochberg)校正后阈值 99%≤{b[99]:.4f}、95%≤{b[95]:.4f}、90%≤{b[90]:.4f}"
        en += f"FDR (Benjamini-Hochberg) thresholds 99%≤{b[99]:.4f}, 95%≤{b[95]:.4f}, 90%≤{b[90]:.4f}"
    else:
        zh += "未做 FDR 校正(阈值 0.01/0.05/0.10)"
        en += "no FDR correction (thresholds 0.01/0.05/0.10)"
    return zh, en


def heat(session: Session, flt: EventFilter, *, resolution: int = 8) -> AnalysisResult:
    """Event counts per H3 hexagon (cells with events only), in natural-breaks classes (:func:`count_classes`)."""
    pts = event_points(session, flt.validate())
    require_events(len(pts), 1, "热力图", "The heat view")
    cells = h3_cells(area_of(session, flt.village_ids), resolution, (pts.lon, pts.lat))
    y = cells.counts(cells.assign(pts.lon, pts.lat, pts.x, pts.y))
    colors, classes = count_classes(y, HEAT_COLORS)
    feats = [feature(cells.geoms[i], cells.ids[i], colors[i], label=cells.ids[i], count=int(y[i]))
             for i in range(len(cells)) if y[i] > 0]
    ramp = {c: colors[int(np.flatnonzero((y >= lo) & (y <= hi))[0])] for c, (lo, hi) in enumerate(classes)}
    legend = [LegendEntry(f"{lo}–{hi} 件" if lo != hi else f"{lo} 件", f"{lo}–{hi} events" if lo != hi
                          else f"{lo} events", ramp[c]) for c, (lo, hi) in enumerate(classes)]
    summary = {"events": len(pts), "cells_with_events": len(feats), "max": int(y.max()) if y.size else 0}
    return AnalysisResult("heat", f"事件热力(H3 分辨率 {cells.resolution})",
                          f"Event density (H3 resolution {cells.resolution})", feats, legend, summary,
                          [("每个六边形内的事件数,按自然断点(Fisher-Jenks)分级,热点单独成级。",
                            "Events per hexagon, natural-breaks (Fisher-Jenks) classes: hot cells get their own.")],
                          {"resolution": cells.resolution, **flt.describe()})


CHANGE_LABELS = {
    "new": ("新出现热点", "New hot spot", "#b2182b"),
    "intensifying": ("加剧热点", "Intensifying hot spot", "#e34a33"),
    "persistent": ("持续热点", "Persistent hot spot", "#fdae6b"),
    "fading": ("消退热点", "Fading hot spot", "#74add1"),
}


def compare_windows(session: Session, flt: EventFilter, before: tuple[datetime, datetime],
                    after: tuple[datetime, datetime], *, progress=None, **kw) -> AnalysisResult:
    """Two time windows the planner chose, on the same cells: counts per cell and village, and Gi* change.

    Every cell gets its event count in both windows and the difference. When both windows
    hold at least :data:`MIN_EVENTS` events, Gi* runs in each and a cell is classed:
    *new* (hot after, not before), *intensifying* (hot in both, higher z after),
    *persistent* (hot in both, z not higher), *fading* (hot before, not after); *hot* means
    a hot spot at 95 % confidence or more. With fewer events (e.g. this month against the
    same month of a quiet year) the cells are coloured by more/fewer events instead, and a
    note says why.

    Parameters
    ----------
    session : Session
    flt : EventFilter
        Category and villages (its own window is ignored).
    before, after : (start, end)
        The two windows, ``[start, end)``; they may be far apart or overlap.
    **kw
        Passed to the Gi* runs (unit, resolution, weights, transform, permutations, seed, fdr).

    Returns
    -------
    AnalysisResult
        ``summary['by_village']``: ``[{village_id, village, before, after, delta}]``.
    """
    report = progress or (lambda *a: None)
    kw.setdefault("unit", "h3")
    wins = [replace(flt, start=start, end=end).validate() for start, end in (before, after)]
    report(0.05, "读取事件", "Reading events")
    pts = [event_points(session, w) for w in wins]
    require_events(len(pts[0]) + len(pts[1]), 1, "两时段对比", "The two-window comparison")
    if kw["unit"] == "h3":
        lon = np.concatenate([p.lon for p in pts])
        lat = np.concatenate([p.lat for p in pts])
        cells = h3_cells(area_of(session, flt.village_ids), kw.get("resolution", 8), (lon, lat))
        kw["resolution"] = cells.resolution
    else:
        cells = grid_cells(session, flt.village_ids)
    y0, y1 = (cells.counts(cells.assign(p.lon, p.lat, p.x, p.y)) for p in pts)
    gistar = min(len(pts[0]), len(pts[1])) >= MIN_EVENTS
    change = np.full(len(cells), "", dtype=object)
    z0 = z1 = np.zeros(len(cells))
    if gistar:
        w = _weights(cells, kw.get("weights", "queen"), kw.get("band_m"))
        runs = []
        for i, y in enumerate((y0, y1)):
            runs.append(gs.gi_star(y, w, kw.get("transform", "R"), kw.get("permutations", 999), kw.get("seed", 42),
                                   kw.get("fdr", False), progress=lambda d, n, i=i: report(
                                       0.1 + 0.4 * i + 0.4 * d / max(n, 1), "置换检验", "Permutations")))
        (r0, r1), (z0, z1) = runs, (runs[0].z, runs[1].z)
        hot0, hot1 = r0.classes >= 2, r1.classes >= 2
        change[hot1 & ~hot0] = "new"
        change[hot1 & hot0 & (r1.z > r0.z)] = "intensifying"
        change[hot1 & hot0 & ~(r1.z > r0.z)] = "persistent"
        change[hot0 & ~hot1] = "fading"
    report(0.92, "整理结果", "Preparing the result")
    feats = [_change_feature(cells, i, change[i], int(y0[i]), int(y1[i]), float(z0[i]), float(z1[i]), gistar)
             for i in range(len(cells)) if gistar or y0[i] or y1[i]]
    labels = CHANGE_LABELS if gistar else COUNT_CHANGE_LABELS
    legend = [LegendEntry(zh, en, c) for zh, en, c in labels.values()]
    legend.append(LegendEntry("无热点", "No hot spot", "#f7f7f7") if gistar else LegendEntry("持平", "Same", "#f7f7f7"))
    if gistar:
        summary = {k: int((change == k).sum()) for k in CHANGE_LABELS}
    else:
        summary = {"more": int((y1 > y0).sum()), "fewer": int((y1 < y0).sum())}
    summary.update(events_before=len(pts[0]), events_after=len(pts[1]), cells=len(cells),
                   by_village=village_counts(session, wins[0], wins[1]))
    notes = [_window_note(before, after)]
    if gistar:
        notes.append(("热点指 95% 及以上置信度的 Gi* 热点;两个时段使用相同单元与权重。",
                      "Hot = Gi* hot spot at 95 % confidence or more; both windows use the same cells and weights."))
    else:
        notes.append((f"有一个时段事件少于 {MIN_EVENTS} 件,不做 Gi* 热点对比,仅比较各单元事件数。",
                      f"One window has fewer than {MIN_EVENTS} events: no Gi* comparison, event counts per cell "
                      "only."))
    params = {"before": [before[0].isoformat(), before[1].isoformat()],
              "after": [after[0].isoformat(), after[1].isoformat()], "gistar": gistar, **dict(kw),
              **flt.describe()}
    return AnalysisResult("compare", "两时段对比", "Two windows compared", feats, legend, summary, notes, params)


COUNT_CHANGE_LABELS = {
    "more": ("事件增多", "More events", "#e34a33"),
    "fewer": ("事件减少", "Fewer events", "#74add1"),
}


def _change_feature(cells: Cells, i: int, ch: str, c0: int, c1: int, z0: float, z1: float, gistar: bool) -> dict:
    if not gistar:
        ch = "more" if c1 > c0 else "fewer" if c1 < c0 else ""
    labels = CHANGE_LABELS if gistar else COUNT_CHANGE_LABELS
    zh, en, color = labels[ch] if ch else (("无变化/不显著", "No hot spot", "#f7f7f7") if gistar
                                           else ("持平", "Same", "#f7f7f7"))
    return feature(cells.geoms[i], cells.ids[i], color, label=cells.labels[i], change=ch or "none",
                   change_zh=zh, change_en=en, count_before=c0, count_after=c1, delta=c1 - c0,
                   z_before=round(z0, 3), z_after=round(z1, 3))


def _window_note(before, after) -> tuple[str, str]:
    from datetime import timedelta

    from geodata.clock import fmt_local

    def span(w):  # the end is exclusive: show the last day that counts
        return f"{fmt_local(w[0], '%Y-%m-%d')} – {fmt_local(w[1] - timedelta(seconds=1), '%Y-%m-%d')}"
    return (f"前一时段 {span(before)},后一时段 {span(after)}。",
            f"Earlier window {span(before)}, later window {span(after)}.")


def village_counts(session: Session, before: EventFilter, after: EventFilter) -> list[dict]:
    """Events per village in two windows (RLS applies), biggest change first.

    Returns
    -------
    list of dict
        ``village_id``, ``village``, ``before``, ``after``, ``delta`` (after − before).
    """
    w0, p0 = before.where("e")
    w1, p1 = after.where("e")
    params = {**{f"b_{k}": v for k, v in p0.items()}, **{f"a_{k}": v for k, v in p1.items()}}
    for k in p0:
        w0 = w0.replace(f":{k}", f":b_{k}")
    for k in p1:
        w1 = w1.replace(f":{k}", f":a_{k}")
    rows = session.execute(text(
        f"""
        SELECT v.id AS village_id, v.name AS village,
               count(*) FILTER (WHERE {w0}) AS before, count(*) FILTER (WHERE {w1}) AS after
          FROM event e JOIN village v ON v.id = e.village_id
         WHERE ({w0}) OR ({w1})
         GROUP BY v.id, v.name
        """), params).mappings()
    out = [{**dict(r), "delta": int(r["after"]) - int(r["before"])} for r in rows]
    return sorted(out, key=lambda r: (-abs(r["delta"]), r["village"]))


def events_in_cell(session: Session, flt: EventFilter, unit: str, key: str, resolution: int | None = None,
                   limit: int = 500) -> list[dict]:
    """The selected events inside one H3 cell or grid, newest first (the caller's scope applies).

    Parameters
    ----------
    unit : {'h3', 'grid'}
    key : str
        The H3 index or the grid id.
    resolution : int, optional
        Ignored for grids; for H3 it is read from the index.

    Returns
    -------
    list of dict
        ``id``, ``version``, ``state``, ``subclass_zh``, ``subclass_en``, ``reported_at``,
        ``village``, ``grid_uid``, ``worker_id``, ``boundary_pending``, ``lon``, ``lat``.
    """
    where, params = flt.validate().where("e")
    if unit == "h3":
        import h3

        if not h3.is_valid_cell(str(key)):
            raise AnalysisError("bad_cell", "无效的 H3 单元。", "Invalid H3 cell.")
        import shapely

        poly = shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(str(key))])
        cond = f"ST_Intersects(e.geom, ST_GeomFromText(:cellwkt, {STORAGE_SRID}))"
        params["cellwkt"] = poly.buffer(1e-6).wkt
        res = h3.get_resolution(str(key))
        extra = lambda rows: [r for r in rows if h3.latlng_to_cell(r["lat"], r["lon"], res) == str(key)]  # noqa: E731
    elif unit == "grid":
        try:
            gid = int(key)
        except (TypeError, ValueError):
            raise AnalysisError("bad_cell", "无效的网格编号。", "Invalid grid id.") from None
        cond = "ST_Intersects(e.geom, (SELECT geom FROM grid WHERE id = :gid))"
        params["gid"] = gid
        extra = lambda rows: rows  # noqa: E731
    else:
        raise AnalysisError("bad_unit", f"未知的分析单元:{unit}", f"Unknown analysis unit: {unit}")
    return extra(_event_rows(session, f"{where} AND {cond}", params, limit))


def events_by_ids(session: Session, ids, limit: int = 2000) -> list[dict]:
    """Events by id (e.g. the members of a cluster), newest first; RLS applies."""
    return _event_rows(session, "e.id = ANY(:ids)", {"ids": [int(i) for i in ids]}, limit)


def _event_rows(session: Session, where: str, params: dict, limit: int) -> list[dict]:
    params = {**params, "limit": int(limit)}
    return [dict(r) for r in session.execute(text(
        f"""
        SELECT e.id, e.version, e.state, e.subclass_code, s.name_zh AS subclass_zh, s.name_en AS subclass_en, e.reported_at,
               v.name AS village, e.grid_uid::text AS grid_uid, e.worker_id, e.boundary_pending,
               ST_X(e.geom) AS lon, ST_Y(e.geom) AS lat, e.description
          FROM event e JOIN event_subclass s ON s.code = e.subclass_code
          LEFT JOIN village v ON v.id = e.village_id
         WHERE {where}
         ORDER BY e.reported_at DESC, e.id DESC LIMIT :limit
        """), params).mappings()]
