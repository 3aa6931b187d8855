"""The village evaluation index (考核指标体系 of the 一网统管 material) and its ranking.

The index tree, weights and targets are rows of ``eval_group``/``eval_indicator``
(migration 0008), editable by administrators. Each sub-indicator gets a value per
village and period (a quarter, ``2025Q3``): either computed from the app's data or
entered by an administrator (``eval_manual_value``). Then::

    score_i = min(max(value_i / target_i, 0), 1) × 100
    index   = Σ w_i · score_i / Σ w_i

A manual indicator nobody entered for the period scores 0 (未填报不得分), so a
village cannot climb by not reporting. A computed indicator with no cases in the
period (e.g. no dispute reported) has no value and is left out of both sums, so a
quiet village is neither rewarded nor punished for it. *Completeness* is the share
of the total weight that had a value (computed or entered).

Computed measures (``eval_indicator.source``):

* ``on_time_rate`` / ``closure_rate`` — 按期结案率 / 结案率 of
  :func:`geodata.events.indicators_by_village` (the one implementation of the GB formulas);
* ``satisfaction`` — share of the period's ratings (评价, 1–5) that are 4 or 5;
* ``dispute_resolution`` — share of the period's dispute events (subclasses named
  “…纠纷”) that are closed (结案), rejected ones left out;
* ``service_coverage`` — mean over the public-resource types of the share of the
  village's grid population within 3 km (EPSG:4549) of a facility of that type.

Access: reads follow the session's scope (RLS); writes check the role here and
again in PostgreSQL (policies on ``dvmap.role``).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Iterable, Mapping

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata import audit
from geodata.clock import day_start, display_zone
from geodata.events import indicators_by_village
from geodata.i18n import BilingualError
from geodata.workflow import SETTLED, State

#: Computed measures an indicator may use (the rest are ``manual``).
AUTO_SOURCES = ("on_time_rate", "closure_rate", "satisfaction", "dispute_resolution", "service_coverage")
#: Reach (metres) of a public facility for ``service_coverage``.
COVERAGE_REACH_M = 3000.0
#: Roles allowed to change weights, targets and manual values.
EDITOR_ROLES = frozenset({"admin", "system"})
_PERIOD = re.compile(r"^(\d{4})Q([1-4])$")

FORMULA_ZH = (
    "综合指数 = Σ(权重ᵢ × 得分ᵢ) ÷ Σ权重ᵢ,得分ᵢ = min(实际值ᵢ ÷ 目标值ᵢ, 1) × 100。"
    "手工指标本期未填报按 0 分计;自动指标本期无案件时不计入(其权重不进分母)。"
    "数据完整度 = 有数值指标的权重之和 ÷ 全部权重。"
)
FORMULA_EN = (
    "Index = Σ(weightᵢ × scoreᵢ) ÷ Σweightᵢ, scoreᵢ = min(valueᵢ ÷ targetᵢ, 1) × 100. "
    "A manual indicator not entered for the period scores 0; a computed one with no cases in the period "
    "is left out (its weight leaves the denominator). Completeness = weight with values ÷ total weight."
)


class EvaluationError(BilingualError):
    """Input the evaluation service refuses; ``field`` names the culprit."""

    code = "invalid_evaluation"

    def __init__(self, message_zh: str, message_en: str, field: str | None = None, **kw):
        super().__init__(message_zh, message_en, **kw)
        self.field = field


@dataclass(frozen=True)
class Indicator:
    """One sub-indicator of the index (a row of ``eval_indicator`` with its group)."""

    code: str
    group_code: str
    group_zh: str
    group_en: str
    name_zh: str
    name_en: str
    weight: float
    source: str
    target: float
    unit_zh: str
    unit_en: str
    note_zh: str
    note_en: str

    @property
    def manual(self) -> bool:
        return self.source == "manual"


@dataclass
class VillageScore:
    """A village's place in the ranking."""

    rank: int
    village_id: int
    code: str
    name: str
    town: str
    index: float | None
    completeness: float
    values: dict[str, float | None] = field(default_factory=dict)
    scores: dict[str, float | None] = field(default_factory=dict)
    #: group (dimension) code → its score 0–100, or None (see :func:`dimension_scores`)
    dimensions: dict[str, float | None] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"rank": self.rank, "village_id": self.village_id, "code": self.code, "name": self.name,
                "town": self.town, "index": self.index, "completeness": self.completeness,
                "values": dict(self.values), "scores": dict(self.scores), "dimensions": dict(self.dimensions)}


# -- periods ---------------------------------------------------------------------------------

def period_of(moment: datetime) -> str:
    """The quarter (``YYYYQn``, display zone) that ``moment`` falls in (naive: local wall time)."""
    local = moment.astimezone(display_zone()) if moment.tzinfo else moment
    return f"{local.year}Q{(local.month - 1) // 3 + 1}"


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """``[start, end)`` of a quarter in the display zone (``DVMAP_TIMEZONE``).

    Raises
    ------
    EvaluationError
        When ``period`` is not ``YYYYQn``.
    """
    m = _PERIOD.match(str(period or "").strip())
    if not m:
        raise EvaluationError(f"考核周期格式应为 2025Q3:{period}", f"A period looks like 2025Q3: {period}", "period")
    year, q = int(m.group(1)), int(m.group(2))
    if not 2000 <= year <= 2100:
        raise EvaluationError(f"考核周期年份无效:{period}", f"Invalid period year: {period}", "period")
    start = day_start(date(year, 3 * q - 2, 1))
    end = day_start(date(year + (q == 4), 1 if q == 4 else 3 * q + 1, 1))
    return start, end


def recent_periods(now: datetime, n: int = 4) -> list[str]:
    """The current quarter and the ``n - 1`` before it, newest first."""
    local = now.astimezone(display_zone())
    year, q = local.year, (local.month - 1) // 3 + 1
    out = []
    for _ in range(n):
        out.append(f"{year}Q{q}")
        q -= 1
        if q == 0:
            year, q = year - 1, 4
    return out


# -- definitions -----------------------------------------------------------------------------

def definitions(session: Session) -> list[Indicator]:
    """The sub-indicators with their groups, weights and targets, in display order."""
    rows = session.execute(text(
        """
        SELECT i.code, i.group_code, g.name_zh AS group_zh, g.name_en AS group_en, i.name_zh, i.name_en,
               i.weight, i.source, i.target, i.unit_zh, i.unit_en, i.note_zh, i.note_en
          FROM eval_indicator i JOIN eval_group g ON g.code = i.group_code
         ORDER BY g.sort, i.sort, i.code
        """
    )).mappings()
    return [Indicator(**{**r, "weight": float(r["weight"]), "target": float(r["target"])}) for r in rows]


def groups(indicators: Iterable[Indicator]) -> list[dict]:
    """Group totals of ``indicators``: ``[{code, name_zh, name_en, weight, indicators}]``."""
    out: dict[str, dict] = {}
    for ind in indicators:
        g = out.setdefault(ind.group_code, {"code": ind.group_code, "name_zh": ind.group_zh,
                                            "name_en": ind.group_en, "weight": 0.0, "indicators": []})
        g["weight"] += ind.weight
        g["indicators"].append(ind)
    return list(out.values())


def score(value: float | None, target: float) -> float | None:
    """Score 0–100 of ``value`` against ``target`` (``None`` stays ``None``)."""
    if value is None or not math.isfinite(value) or target <= 0:
        return None
    return max(0.0, min(value / target, 1.0)) * 100.0


def composite(scores: Mapping[str, float | None], weights: Mapping[str, float],
              zero_if_missing: Iterable[str] = ()) -> tuple[float | None, float]:
    """``(index, completeness)`` from per-indicator scores and weights (see the module docstring).

    Parameters
    ----------
    scores : mapping
        indicator code → score 0–100, or None when there is no value.
    weights : mapping
        indicator code → weight.
    zero_if_missing : iterable of str
        Codes whose missing score counts as 0 (manual indicators); other missing
        scores are left out.
    """
    zero = set(zero_if_missing)
    total = sum(w for w in weights.values() if w > 0)
    counted, have = [], 0.0
    for code, w in weights.items():
        if w <= 0:
            continue
        s = scores.get(code)
        if s is not None:
            have += w
            counted.append((w, s))
        elif code in zero:
            counted.append((w, 0.0))
    wsum = sum(w for w, _ in counted)
    if wsum <= 0 or have <= 0:
        return None, 0.0
    return sum(w * s for w, s in counted) / wsum, (have / total if total > 0 else 0.0)


def dimension_scores(scores: Mapping[str, float | None], indicators: Iterable[Indicator]) -> dict[str, float | None]:
    """Score 0–100 of each group (dimension: 治理效能, 民生福祉 …) from its indicators' scores.

    The index's rule within the group: the weighted mean of its indicators, a missing
    manual one counting 0, a computed one without cases left out; None when the
    group has no value at all. A group of manual indicators none of which was entered
    scores 0 as the index counts it (None only when the village has no value anywhere),
    so the index is the weight-average of the groups that are not None.
    """
    anything = any(v is not None for v in scores.values())
    out: dict[str, float | None] = {}
    for g in groups(indicators):
        inds = g["indicators"]
        value = composite({i.code: scores.get(i.code) for i in inds}, {i.code: i.weight for i in inds},
                          [i.code for i in inds if i.manual])[0]
        if value is None and anything and any(i.manual and i.weight > 0 for i in inds):
            value = 0.0
        out[g["code"]] = value
    return out


def village_report(results: Iterable[Mapping[str, Any]], village_id: int) -> dict | None:
    """One village's breakdown and trend from :func:`ranking` results of several periods.

    Parameters
    ----------
    results : iterable of dict
        :func:`ranking` results, the current period first.
    village_id : int

    Returns
    -------
    dict or None
        ``village`` (:class:`VillageScore` of the first period), ``period``, ``groups``
        (``[{code, name_zh, name_en, weight, score, indicators: [{indicator, value, score}]}]``)
        and ``trend`` (``[{period, index, rank, of, completeness, dimensions}]``, oldest
        first); None when the village is not in the first result (outside the scope).
    """
    results = list(results)
    if not results:
        return None
    first = results[0]
    row = next((r for r in first["rows"] if r.village_id == village_id), None)
    if row is None:
        return None
    out_groups = [{"code": g["code"], "name_zh": g["name_zh"], "name_en": g["name_en"], "weight": g["weight"],
                   "score": row.dimensions.get(g["code"]),
                   "indicators": [{"indicator": i, "value": row.values.get(i.code), "score": row.scores.get(i.code)}
                                  for i in g["indicators"]]}
                  for g in groups(first["indicators"])]
    trend = []
    for res in reversed(results):
        r = next((x for x in res["rows"] if x.village_id == village_id), None)
        if r is not None:
            trend.append({"period": res["period"], "index": r.index, "rank": r.rank, "of": len(res["rows"]),
                          "completeness": r.completeness, "dimensions": dict(r.dimensions)})
    return {"village": row, "period": first["period"], "groups": out_groups, "trend": trend}


# -- values ------------------------------------------------------------------------------------

def _effective_end(session: Session, end: datetime, now: datetime | None) -> datetime:
    now = now or session.execute(text("SELECT now()")).scalar()
    return min(end, now)


def auto_values(session: Session, period: str, *, now: datetime | None = None,
                sources: Iterable[str] = AUTO_SOURCES) -> dict[str, dict[int, float]]:
    """Computed measures per village for ``period`` (up to ``now`` for the running quarter).

    Parameters
    ----------
    session : Session
        Scoped session; only visible villages and events count.
    period : str
        ``YYYYQn``.
    now : datetime, optional
        Reference time (default the database's ``now()``).
    sources : iterable of str
        Which measures to compute (default all of :data:`AUTO_SOURCES`).

    Returns
    -------
    dict
        measure → {village_id: value}; villages without cases are absent.
    """
    start, end = period_bounds(period)
    end = _effective_end(session, end, now)
    wanted = set(sources)
    out: dict[str, dict[int, float]] = {s: {} for s in wanted}
    if end <= start:
        return out
    if wanted & {"on_time_rate", "closure_rate"}:
        for vid, ind in indicators_by_village(session, start, end, now=now).items():
            if vid is None:
                continue
            if "on_time_rate" in wanted and ind.on_time_rate is not None:
                out["on_time_rate"][vid] = ind.on_time_rate
            if "closure_rate" in wanted and ind.closure_rate is not None:
                out["closure_rate"][vid] = ind.closure_rate
    if "satisfaction" in wanted:
        rows = session.execute(text(
            """
            SELECT village_id, count(*) FILTER (WHERE rating >= 4)::float8 / count(*) AS v
              FROM event
             WHERE rating IS NOT NULL AND evaluated_at >= :s AND evaluated_at < :e AND village_id IS NOT NULL
             GROUP BY village_id
            """), {"s": start, "e": end})
        out["satisfaction"] = {r.village_id: r.v for r in rows}
    if "dispute_resolution" in wanted:
        rows = session.execute(text(
            """
            SELECT e.village_id, count(*) FILTER (WHERE e.state = ANY(:settled))::float8 / count(*) AS v
              FROM event e
             WHERE e.reported_at >= :s AND e.reported_at < :e AND e.state <> :rejected
               AND e.village_id IS NOT NULL
               AND e.subclass_code IN (SELECT code FROM event_subclass WHERE name_zh LIKE '%纠纷%')
             GROUP BY e.village_id
            """), {"s": start, "e": end, "settled": [s.value for s in SETTLED],
                   "rejected": State.REJECTED.value})
        out["dispute_resolution"] = {r.village_id: r.v for r in rows}
    if "service_coverage" in wanted:
        out["service_coverage"] = service_coverage(session)
    return out


def service_coverage(session: Session, reach_m: float = COVERAGE_REACH_M) -> dict[int, float]:
    """Per village: mean over resource types of the grid-population share within ``reach_m`` of one.

    A grid's population counts as at its point on surface; distances are metres on
    the spheroid (geography), after a bounding-box test.
    """
    rows = session.execute(text(
        """
        WITH pop AS MATERIALIZED (
            SELECT g.village_id, g.uid, x.pt, ST_Expand(x.pt, :deg) AS box, p.total
              FROM grid g
              JOIN population p ON p.grid_uid = g.uid AND p.year = (SELECT max(year) FROM population)
              CROSS JOIN LATERAL (SELECT ST_PointOnSurface(g.geom) AS pt) x
             WHERE g.valid_to IS NULL AND p.total > 0
        ), res AS MATERIALIZED (
            SELECT r.type, r.geom FROM resource r
        ), reach AS MATERIALIZED (
            -- (materialised: row-level security hides the row counts from the planner)
            -- bounding boxes first (a degree of longitude is ~96 km at 30°N; 25 % margin),
            -- then the exact distance in metres on the spheroid
            SELECT pop.uid, count(DISTINCT res.type) AS types
              FROM pop JOIN res ON res.geom && pop.box
                               AND ST_DWithin(res.geom::geography, pop.pt::geography, :m)
             GROUP BY pop.uid
        )
        SELECT pop.village_id,
               sum(pop.total * coalesce(reach.types, 0))::float8
                 / (sum(pop.total) * (SELECT count(*) FROM resource_type)) AS v
          FROM pop LEFT JOIN reach ON reach.uid = pop.uid
         GROUP BY pop.village_id
        """), {"m": float(reach_m), "deg": 1.25 * float(reach_m) / 96000.0})
    return {r.village_id: r.v for r in rows}


def manual_values(session: Session, period: str) -> dict[str, dict[int, float]]:
    """Entered values of ``period``: indicator code → {village_id: value} (visible villages only)."""
    period_bounds(period)
    rows = session.execute(text(
        "SELECT indicator_code, village_id, value FROM eval_manual_value WHERE period = :p"), {"p": period})
    out: dict[str, dict[int, float]] = {}
    for r in rows:
        out.setdefault(r.indicator_code, {})[r.village_id] = float(r.value)
    return out


def ranking(session: Session, period: str | None = None, *, now: datetime | None = None,
            village_ids: Iterable[int] | None = None) -> dict[str, Any]:
    """Villages ranked by the evaluation index for ``period`` (default: the current quarter).

    Parameters
    ----------
    session : Session
        Scoped session: villages and values outside the scope do not appear.
    period : str, optional
        ``YYYYQn``.
    now : datetime, optional
        Reference time (default the database's ``now()``).
    village_ids : iterable of int, optional
        Restrict to these villages (ranks are within them).

    Returns
    -------
    dict
        ``period``, ``indicators`` (list of :class:`Indicator`), ``rows`` (list of
        :class:`VillageScore`, best first; villages with no value at all last).
    """
    now = now or session.execute(text("SELECT now()")).scalar()
    period = period or period_of(now)
    inds = definitions(session)
    auto = auto_values(session, period, now=now, sources={i.source for i in inds if not i.manual})
    manual = manual_values(session, period)
    villages = session.execute(text(
        """
        SELECT v.id, v.code, v.name, t.name AS town FROM village v JOIN town t ON t.id = v.town_id
         WHERE CAST(:ids AS integer[]) IS NULL OR v.id = ANY(CAST(:ids AS integer[]))
         ORDER BY v.code
        """), {"ids": None if village_ids is None else [int(v) for v in village_ids]}).mappings().all()
    weights = {i.code: i.weight for i in inds}
    manual_codes = [i.code for i in inds if i.manual]
    rows: list[VillageScore] = []
    for v in villages:
        values: dict[str, float | None] = {}
        scores: dict[str, float | None] = {}
        for ind in inds:
            source = manual.get(ind.code, {}) if ind.manual else auto.get(ind.source, {})
            value = source.get(v["id"])
            values[ind.code] = value
            scores[ind.code] = score(value, ind.target)
        idx, complete = composite(scores, weights, manual_codes)
        rows.append(VillageScore(0, v["id"], v["code"].strip(), v["name"], v["town"], idx, complete, values, scores,
                                 dimension_scores(scores, inds)))
    rows.sort(key=lambda r: (r.index is None, -(r.index or 0.0), -r.completeness, r.code))
    for i, r in enumerate(rows, 1):
        r.rank = i
    return {"period": period, "indicators": inds, "rows": rows}


# -- editing (administrators) --------------------------------------------------------------------

def _require_editor(role: str) -> None:
    if role not in EDITOR_ROLES:
        raise EvaluationError("只有管理员可以修改考核指标。", "Only administrators may change the evaluation index.",
                              "role", http_status=403)


def _number(raw, what_zh: str, what_en: str, field: str, lo: float, hi: float) -> float:
    try:
        value = float(str(raw).strip()) if not isinstance(raw, (int, float)) or isinstance(raw, bool) else float(raw)
    except (TypeError, ValueError):
        raise EvaluationError(f"{what_zh}必须是数字:{raw}", f"{what_en} must be a number: {raw}", field) from None
    if isinstance(raw, bool) or not math.isfinite(value):
        raise EvaluationError(f"{what_zh}必须是数字:{raw}", f"{what_en} must be a number: {raw}", field)
    if not lo <= value <= hi:
        raise EvaluationError(f"{what_zh}应在 {lo:g} 到 {hi:g} 之间:{raw}",
                              f"{what_en} must be between {lo:g} and {hi:g}: {raw}", field)
    return value


def update_indicators(session: Session, changes: Mapping[str, Mapping[str, Any]], *, actor: str, role: str) -> int:
    """Change weights and/or targets of sub-indicators, all or nothing, in the caller's transaction.

    Parameters
    ----------
    changes : mapping
        indicator code → ``{"weight": w, "target": t}`` (either key optional).
    actor, role : str
        Who edits; ``role`` must be ``admin`` (or ``system``).

    Returns
    -------
    int
        Number of indicators changed.

    Raises
    ------
    EvaluationError
        Not an administrator, unknown code, a weight outside 0–100, a target ≤ 0,
        or all weights zero. Nothing is written then.
    """
    _require_editor(role)
    current = {i.code: i for i in definitions(session)}
    clean: dict[str, dict[str, float]] = {}
    for code, ch in changes.items():
        ind = current.get(code)
        if ind is None:
            raise EvaluationError(f"指标不存在:{code}", f"Unknown indicator: {code}", "code")
        row = {}
        if ch.get("weight") is not None:
            row["weight"] = round(_number(ch["weight"], f"“{ind.name_zh}”的权重", f"The weight of '{ind.name_en}'",
                                          f"weight:{code}", 0, 100), 2)
        if ch.get("target") is not None:
            row["target"] = _number(ch["target"], f"“{ind.name_zh}”的目标值", f"The target of '{ind.name_en}'",
                                    f"target:{code}", 1e-6, 1e6)
        if row and any(row[k] != getattr(ind, k) for k in row):
            clean[code] = row
    weights = {c: clean.get(c, {}).get("weight", i.weight) for c, i in current.items()}
    if sum(weights.values()) <= 0:
        raise EvaluationError("权重不能全部为 0。", "The weights cannot all be zero.", "weight")
    for code, row in clean.items():
        sets = ", ".join(f"{k} = :{k}" for k in row)
        changed = session.execute(text(
            f"UPDATE eval_indicator SET {sets}, updated_at = now(), updated_by = :who WHERE code = :code"),
            {**row, "who": actor, "code": code}).rowcount
        if changed != 1:  # the policy refused (role not admin in the database's view)
            raise EvaluationError("没有修改考核指标的权限。", "Not allowed to change the evaluation index.", "role",
                                  http_status=403)
    if clean:
        audit.record(session, "evaluation.indicators", target="eval_indicator", detail={"changes": clean},
                     username=actor)
    return len(clean)


def set_manual_values(session: Session, period: str, values: Iterable[tuple[int, str, Any]], *, actor: str,
                      role: str) -> dict[str, int]:
    """Enter (or clear) manual indicator values of one period, all or nothing.

    Parameters
    ----------
    period : str
        ``YYYYQn``.
    values : iterable of (village_id, indicator_code, value)
        ``value`` None or ``""`` clears the entry.
    actor, role : str
        Who enters; ``role`` must be ``admin`` (or ``system``).

    Returns
    -------
    dict
        ``{"saved": n, "cleared": n}``.

    Raises
    ------
    EvaluationError
        Not an administrator, bad period, unknown or computed indicator, a village
        outside the scope, a value that is not a number. Nothing is written then.
    """
    _require_editor(role)
    period_bounds(period)
    inds = {i.code: i for i in definitions(session)}
    items = list(values)
    vids = {int(v) for v, _c, _x in items} if items else set()
    visible = set(session.execute(text("SELECT id FROM village WHERE id = ANY(:ids)"),
                                  {"ids": sorted(vids)}).scalars()) if vids else set()
    upserts, clears = [], []
    for village_id, code, raw in items:
        ind = inds.get(code)
        if ind is None:
            raise EvaluationError(f"指标不存在:{code}", f"Unknown indicator: {code}", "indicator")
        if not ind.manual:
            raise EvaluationError(f"“{ind.name_zh}”由系统自动计算,不能手工填报。",
                                  f"'{ind.name_en}' is computed by the system and cannot be entered.", "indicator")
        if int(village_id) not in visible:
            raise EvaluationError(f"村不存在或不在您的权限范围内:{village_id}",
                                  f"Village {village_id} does not exist or is outside your scope.", "village")
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            clears.append({"p": period, "v": int(village_id), "c": code})
            continue
        value = _number(raw, f"“{ind.name_zh}”的数值", f"The value of '{ind.name_en}'", f"value:{village_id}:{code}",
                        -1_000_000, 1_000_000)
        upserts.append({"p": period, "v": int(village_id), "c": code, "x": value, "who": actor})
    for row in upserts:
        session.execute(text(
            """
            INSERT INTO eval_manual_value (period, village_id, indicator_code, value, entered_by)
            VALUES (:p, :v, :c, :x, :who)
            ON CONFLICT (period, village_id, indicator_code)
            DO UPDATE SET value = excluded.value, entered_by = excluded.entered_by, entered_at = now()
            """), row)
    cleared = 0
    for row in clears:
        cleared += session.execute(text(
            "DELETE FROM eval_manual_value WHERE period = :p AND village_id = :v AND indicator_code = :c"),
            row).rowcount
    if upserts or cleared:
        audit.record(session, "evaluation.manual_values", target=f"period:{period}",
                     detail={"saved": len(upserts), "cleared": cleared}, username=actor)
    return {"saved": len(upserts), "cleared": cleared}


__all__ = [
    "AUTO_SOURCES", "COVERAGE_REACH_M", "FORMULA_ZH", "FORMULA_EN", "EvaluationError", "Indicator", "VillageScore",
    "period_of", "period_bounds", "recent_periods", "definitions", "groups", "score", "composite", "auto_values",
    "dimension_scores", "village_report",
    "service_coverage", "manual_values", "ranking", "update_indicators", "set_manual_values",
]
