"""Grid editing: live validation, snapping, a full save, and the database's topology trigger.

Run with ``python -m bench grids``. A throwaway database with the demo county is
created; the figures are for the village with the most grids (the editor's worst
case). Baselines, measured in the same run:

* validation in PostGIS (one session, GiST-prefiltered) vs. the same checks done
  in Python with shapely after fetching the village and its grids (what a
  browser-side or app-side validator would do);
* the topology trigger: re-versioning every grid of the county in one
  transaction with the trigger enabled vs. disabled (its cost per saved row).
"""
from __future__ import annotations

import time

from bench.common import bench_database, median, p95, timed
from geodata.config import METRIC_SRID, STORAGE_SRID


def _python_validate(s, village_id, uid, geom_wkb):
    """The baseline: fetch, then check validity, containment, overlaps and gaps with shapely."""
    import shapely
    from pyproj import Transformer
    from sqlalchemy import text

    fw = Transformer.from_crs(STORAGE_SRID, METRIC_SRID, always_xy=True)
    rows = s.execute(text(
        "SELECT uid::text, ST_AsBinary(geom) FROM grid WHERE village_id = :v AND valid_to IS NULL"
    ), {"v": village_id}).all()
    village = s.execute(text("SELECT ST_AsBinary(geom) FROM village WHERE id = :v"), {"v": village_id}).scalar()

    def metric(wkb):
        g = shapely.from_wkb(bytes(wkb))
        return shapely.transform(g, lambda xy: list(zip(*fw.transform(xy[:, 0], xy[:, 1]))))

    cand = metric(geom_wkb)
    v = metric(village)
    others = [metric(w) for u, w in rows if u != uid]
    assert cand.is_valid
    outside = cand.difference(v).area
    overlap = sum(cand.intersection(o).area for o in others)
    gaps = v.difference(shapely.union_all(others + [cand.intersection(v)])).area
    return outside, overlap, gaps


def run() -> list[dict]:
    from sqlalchemy import text

    from etl.demo import load_demo
    from geodata import grids as G
    from geodata.db import SYSTEM, Database, apply_scope, make_engine
    from geodata.events import Actor

    out = []
    with bench_database("dvmap_bench_grids") as urls:
        load_demo(urls["owner"], seed=42)
        db = Database(urls["app"])
        actor = Actor("bench", "grid_manager", None)
        with db.session(SYSTEM) as s:
            row = s.execute(text(
                """
                SELECT g.village_id, g.uid::text AS uid, g.version, ST_AsGeoJSON(g.geom, 15)::json AS gj,
                       ST_AsBinary(g.geom) AS wkb, ST_NPoints(g.geom) AS n,
                       (SELECT count(*) FROM grid x WHERE x.village_id = g.village_id AND x.valid_to IS NULL) AS k
                  FROM grid g WHERE g.valid_to IS NULL
                 ORDER BY (SELECT count(*) FROM grid x WHERE x.village_id = g.village_id AND x.valid_to IS NULL)
                          DESC, ST_NPoints(g.geom) DESC LIMIT 1
                """
            )).mappings().one()
            vid, uid, gj = row["village_id"], row["uid"], row["gj"]
            note = f"village with {row['k']} grids, grid of {row['n']} vertices"

            pg_ms = timed(lambda: G.validate(s, vid, gj, ignore_uids=[uid]), repeat=15)
            py_ms = timed(lambda: _python_validate(s, vid, uid, row["wkb"]), repeat=15)
            out.append(dict(name="validate (live check per edit)", value=median(pg_ms), baseline=median(py_ms),
                            unit="ms", note=f"median; baseline: fetch + shapely in Python; {note}"))
            out.append(dict(name="validate p95", value=p95(pg_ms), baseline=p95(py_ms), unit="ms", note=""))
            snap_ms = timed(lambda: G.snap(s, vid, gj, 5.0, ignore_uids=[uid]), repeat=9)
            out.append(dict(name="snap 5 m", value=median(snap_ms), baseline=median(pg_ms), unit="ms",
                            note="median; baseline: one validation"))
            save_ms = timed(lambda: G.preview(s, G.save_grid, actor, uid=uid, expected_version=row["version"],
                                              geometry=gj), repeat=9)
            out.append(dict(name="save (validate+version+trigger+reroute)", value=median(save_ms),
                            baseline=median(pg_ms), unit="ms", note="median, rolled back; baseline: validation"))

        # The trigger's own cost: re-version every current grid of the county in one transaction.
        owner = make_engine(urls["owner"], pool_size=1)

        def reversion(trigger_on: bool) -> tuple[float, int]:
            with owner.connect() as conn:
                tx = conn.begin()
                apply_scope(conn, SYSTEM)
                if not trigger_on:
                    conn.execute(text("ALTER TABLE grid DISABLE TRIGGER grid_topology"))
                t0 = time.perf_counter()
                n = conn.execute(text(
                    """
                    WITH old AS (
                        UPDATE grid SET valid_to = clock_timestamp() WHERE valid_to IS NULL
                        RETURNING uid, version, village_id, code, name, geom, worker_id
                    )
                    INSERT INTO grid (uid, version, village_id, code, name, geom, worker_id, valid_from)
                    SELECT uid, version + 1, village_id, code, name, geom, worker_id, clock_timestamp() FROM old
                    """
                )).rowcount
                conn.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))
                elapsed = (time.perf_counter() - t0) * 1000
                tx.rollback()
                return elapsed, n

        reversion(True)  # warm caches
        on = [reversion(True) for _ in range(3)]
        off = [reversion(False) for _ in range(3)]
        n = on[0][1]
        out.append(dict(name="re-version all grids, trigger on", value=median([e for e, _ in on]),
                        baseline=median([e for e, _ in off]), unit="ms",
                        note=f"{n} rows in one transaction; baseline: trigger disabled"))
        out.append(dict(name="topology check per saved grid",
                        value=(median([e for e, _ in on]) - median([e for e, _ in off])) / n, baseline=None,
                        unit="ms", note="trigger on − off, per row"))
        owner.dispose()
        db.engine.dispose()
    return out


if __name__ == "__main__":  # pragma: no cover - manual run
    for r in run():
        print(r)
