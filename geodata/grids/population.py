"""Grid population that follows grid edits: recomputed from where people live.

Every grid change (:func:`geodata.grids.write._apply`) calls :func:`recompute_village`
in the same transaction, so a split, merge, redraw, delete or undo never changes a
village's total: people are counted in the grid that now contains them, or in no grid
while their dwelling lies in a gap.

* With population points (``population_point``, 0021) for the village, each current
  grid's row of the points' latest year is the sum of the points inside it
  (``source = 'points'``, ``as_of`` = the points' date). A point on a shared edge
  counts once, in the grid with the lowest code.
* Without points (a village whose figures came only as a table), the people not in
  an unchanged grid — the village row minus the unchanged grids' rows — are split
  over the changed grids by their share of the area not covered by unchanged grids
  (``source = 'area_share'``); the remainder belongs to gaps.
"""
from __future__ import annotations

from typing import Iterable

from sqlalchemy import text
from sqlalchemy.orm import Session

from geodata.config import METRIC_SRID

#: how the grid panel names a figure's source
SOURCE_LABELS = {
    "points": ("人口点位", "population points"),
    "area_share": ("按面积分摊", "split by area"),
    "table": ("人口统计表", "population table"),
}

_UPSERT = """
    INSERT INTO population AS p (village_id, grid_uid, year, total, age_60_plus, households, source, as_of)
    SELECT :v, CAST(s.uid AS uuid), :y, s.t, least(s.o, s.t), s.h, :source, CAST(:as_of AS date)
      FROM {rows}
    ON CONFLICT (village_id, grid_uid, year) DO UPDATE
       SET total = EXCLUDED.total, age_60_plus = EXCLUDED.age_60_plus, households = EXCLUDED.households,
           source = EXCLUDED.source, as_of = EXCLUDED.as_of
"""

_FROM_POINTS = _UPSERT.format(rows="""(
    WITH cur AS (SELECT uid, code, geom FROM grid WHERE village_id = :v AND valid_to IS NULL),
    pts AS (SELECT DISTINCT ON (pp.id) pp.id, c.uid, pp.total, pp.age_60_plus, pp.households
              FROM population_point pp JOIN cur c ON ST_Intersects(c.geom, pp.geom)
             WHERE pp.village_id = :v AND pp.year = :y
             ORDER BY pp.id, c.code)
    SELECT c.uid::text AS uid, coalesce(sum(pts.total), 0) AS t, coalesce(sum(pts.age_60_plus), 0) AS o,
           coalesce(sum(pts.households), 0) AS h
      FROM cur c LEFT JOIN pts ON pts.uid = c.uid GROUP BY c.uid) AS s""")

_FROM_VALUES = _UPSERT.format(
    rows="unnest(CAST(:uids AS text[]), CAST(:ts AS int[]), CAST(:os AS int[]), CAST(:hs AS int[])) AS s(uid, t, o, h)")


def recompute_village(session: Session, village_id: int, changed_uids: Iterable[str] = ()) -> str | None:
    """Recompute the population rows of a village's current grids.

    Parameters
    ----------
    session : Session
        A scoped session; the caller commits (a grid change's savepoint).
    village_id : int
    changed_uids : iterable of str
        The grids the change created or redrew; used only without population points.

    Returns
    -------
    str or None
        The source used (``points`` or ``area_share``), None when the village has no
        population figures at all.
    """
    pts = session.execute(text(
        "SELECT year, max(as_of) AS as_of FROM population_point WHERE village_id = :v"
        " GROUP BY year ORDER BY year DESC LIMIT 1"), {"v": village_id}).first()
    if pts is not None:
        session.execute(text(_FROM_POINTS), {"v": village_id, "y": pts.year, "source": "points",
                                             "as_of": pts.as_of})
        return "points"
    return _area_share(session, village_id, [str(u) for u in changed_uids])


def _area_share(session: Session, village_id: int, changed: list[str]) -> str | None:
    """Split the people not in unchanged grids over ``changed`` by area (largest remainder)."""
    if not changed:
        return None
    base = session.execute(text(
        f"""
        WITH yr AS (SELECT max(year) AS y FROM population WHERE village_id = :v AND grid_uid IS NULL),
        cur AS (SELECT uid, geom FROM grid WHERE village_id = :v AND valid_to IS NULL),
        kept AS (SELECT * FROM cur WHERE uid::text <> ALL(CAST(:changed AS text[])))
        SELECT (SELECT y FROM yr) AS y, pv.total, pv.age_60_plus, pv.households, pv.as_of,
               (SELECT coalesce(sum(p.total), 0) FROM population p JOIN kept k ON k.uid = p.grid_uid
                 WHERE p.year = (SELECT y FROM yr)) AS kept_t,
               (SELECT coalesce(sum(p.age_60_plus), 0) FROM population p JOIN kept k ON k.uid = p.grid_uid
                 WHERE p.year = (SELECT y FROM yr)) AS kept_o,
               (SELECT coalesce(sum(p.households), 0) FROM population p JOIN kept k ON k.uid = p.grid_uid
                 WHERE p.year = (SELECT y FROM yr)) AS kept_h,
               ST_Area(ST_Transform(ST_Difference(v.geom, coalesce((SELECT ST_Union(geom) FROM kept),
                                                                   'GEOMETRYCOLLECTION EMPTY'::geometry)),
                                    {METRIC_SRID})) AS free_m2
          FROM village v JOIN population pv ON pv.village_id = v.id AND pv.grid_uid IS NULL
         WHERE v.id = :v AND pv.year = (SELECT y FROM yr)
        """), {"v": village_id, "changed": changed}).mappings().first()
    if base is None:
        return None
    areas = session.execute(text(
        f"SELECT uid::text AS uid, ST_Area(ST_Transform(geom, {METRIC_SRID})) AS a FROM grid"
        " WHERE village_id = :v AND valid_to IS NULL AND uid::text = ANY(CAST(:changed AS text[])) ORDER BY code"),
        {"v": village_id, "changed": changed}).all()
    if not areas:
        return None
    free = max(float(base["free_m2"] or 0.0), sum(a.a for a in areas), 1e-9)
    shares = [a.a / free for a in areas]
    cols = [_apportion(max(int(base[k]) - int(base[f"kept_{s}"]), 0), shares)
            for k, s in (("total", "t"), ("age_60_plus", "o"), ("households", "h"))]
    session.execute(text(_FROM_VALUES), {"v": village_id, "y": base["y"], "source": "area_share",
                                         "as_of": base["as_of"], "uids": [a.uid for a in areas],
                                         "ts": cols[0], "os": cols[1], "hs": cols[2]})
    return "area_share"


def _apportion(total: int, shares: list[float]) -> list[int]:
    """Integers proportional to ``shares`` (summing to ≤ 1) whose sum is ``round(total * sum(shares))``."""
    want = round(total * min(sum(shares), 1.0))
    raw = [total * s for s in shares]
    out = [int(r) for r in raw]
    rest = sorted(range(len(raw)), key=lambda i: raw[i] - out[i], reverse=True)
    for i in rest[:max(want - sum(out), 0)]:
        out[i] += 1
    return out


def source_label(source: str | None, as_of, lang: str = "zh") -> str:
    """"来源: 人口点位 2026-12-05" — where a grid's figure comes from, for the grid panel."""
    zh, en = SOURCE_LABELS.get(source or "table", (source or "", source or ""))
    date = as_of.isoformat() if hasattr(as_of, "isoformat") else (as_of or "")
    if lang == "en":
        return f"Source: {en} {date}".rstrip()
    return f"来源: {zh} {date}".rstrip()
