"""A small, hand-measured county for the grid-editing tests (committed, removed afterwards).

Layout (lon/lat, CGCS2000; at 29.1°N one degree is ~97.3 km east-west, ~110.9 km north-south)::

    29.130 ┌──────────────┬──────────────┬──────────────┐
           │              │   grid A2    │              │
           │   grid A1    │  (worker a2) │   grid B1    │
    29.115 │  (worker a1) ├──────────────┤  (worker b1) │
           │              │  gap (no     │              │
           │   village A  │  grid)       │   village B  │
    29.100 └──────────────┴──────────────┴──────────────┘
         121.10         121.12         121.14         121.16

Worker a3 (village A) has no grid. Codes start with ``98`` (no real county has
them) and the county lies far from both the demo county and the event tests' one.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy import text

from geodata.db import SYSTEM, apply_scope

W, M1, M2, E = 121.10, 121.12, 121.14, 121.16
S, MID, N = 29.100, 29.115, 29.130


def box(w, s, e, n) -> str:
    return f"MULTIPOLYGON((({w} {s},{e} {s},{e} {n},{w} {n},{w} {s})))"


def box_gj(w, s, e, n) -> dict:
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


@dataclass
class GridWorld:
    county_id: int = 0
    town_id: int = 0
    village_a: int = 0
    village_b: int = 0
    code_a: str = "980001001001"
    code_b: str = "980001001002"
    grids: dict[str, str] = field(default_factory=dict)      # name → uid
    grid_ids: dict[str, int] = field(default_factory=dict)   # name → id of version 1
    workers: dict[str, int] = field(default_factory=dict)    # name → person id

    GAP = (M1, S, M2, MID)              # the uncovered south-east quarter of village A
    P_A1 = (121.11, 29.11)
    P_A2 = (121.13, 29.125)
    P_GAP = (121.13, 29.105)


def build_grid_world(owner_engine) -> GridWorld:
    """Insert the county above and return its ids (committed)."""
    w = GridWorld()
    with owner_engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        q = lambda sql, **p: conn.execute(text(sql), p).scalar_one()  # noqa: E731
        w.county_id = q("INSERT INTO county (code, name, geom, source) VALUES ('980001', '网格测试县',"
                        " ST_GeomFromText(:g, 4490), 'test') RETURNING id", g=box(W, S, E, N))
        w.town_id = q("INSERT INTO town (county_id, code, name, geom) VALUES (:c, '980001001000', '网格测试镇',"
                      " ST_GeomFromText(:g, 4490)) RETURNING id", c=w.county_id, g=box(W, S, E, N))
        vsql = ("INSERT INTO village (town_id, code, name, geom, label_point) VALUES (:t, :c, :n,"
                " ST_GeomFromText(:g, 4490), ST_PointOnSurface(ST_GeomFromText(:g, 4490))) RETURNING id")
        w.village_a = q(vsql, t=w.town_id, c=w.code_a, n="甲格村", g=box(W, S, M2, N))
        w.village_b = q(vsql, t=w.town_id, c=w.code_b, n="乙格村", g=box(M2, S, E, N))
        psql = "INSERT INTO person (village_id, name, duty, phone) VALUES (:v, :n, 'grid_worker', '13900000000')" \
               " RETURNING id"
        for name, village in (("a1", w.village_a), ("a2", w.village_a), ("a3", w.village_a), ("b1", w.village_b)):
            w.workers[name] = q(psql, v=village, n=f"格员{name}")
        gsql = ("INSERT INTO grid (uid, village_id, code, name, geom, worker_id, valid_from) VALUES"
                " (CAST(:u AS uuid), :v, :c, :n, ST_GeomFromText(:g, 4490), :wk, '2020-01-01') RETURNING id")
        for name, village, code, geom in (
            ("a1", w.village_a, w.code_a + "001", box(W, S, M1, N)),
            ("a2", w.village_a, w.code_a + "002", box(M1, MID, M2, N)),
            ("b1", w.village_b, w.code_b + "001", box(M2, S, E, N)),
        ):
            uid = str(uuid.uuid4())
            w.grid_ids[name] = q(gsql, u=uid, v=village, c=code, n=f"格{name}", g=geom, wk=w.workers[name])
            w.grids[name] = uid
    return w


def reset_grid_world(owner_engine, w: GridWorld) -> None:
    """Remove what committed tests added: events, changes and grid versions beyond the first three."""
    with owner_engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        p = {"a": w.village_a, "b": w.village_b, "keep": list(w.grid_ids.values())}
        # Deferred checks (topology trigger, grid.change_id FK) would otherwise block the ALTERs below.
        conn.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))
        conn.execute(text("ALTER TABLE event_history DISABLE TRIGGER event_history_append_only"))
        conn.execute(text("ALTER TABLE grid_change DISABLE TRIGGER grid_change_append_only"))
        ev = "SELECT id FROM event WHERE village_id IN (:a, :b)"
        for sql in (f"DELETE FROM event_photo WHERE event_id IN ({ev})",
                    f"DELETE FROM event_history WHERE event_id IN ({ev})",
                    f"DELETE FROM event_request WHERE event_id IN ({ev})",
                    "DELETE FROM event WHERE village_id IN (:a, :b)",
                    "DELETE FROM grid WHERE village_id IN (:a, :b) AND NOT (id = ANY(:keep))",
                    "UPDATE grid SET valid_to = NULL, change_id = NULL WHERE id = ANY(:keep)",
                    "DELETE FROM grid_change WHERE village_id IN (:a, :b)"):
            conn.execute(text(sql), p)
        conn.execute(text("ALTER TABLE grid_change ENABLE TRIGGER grid_change_append_only"))
        conn.execute(text("ALTER TABLE event_history ENABLE TRIGGER event_history_append_only"))


def destroy_grid_world(owner_engine, w: GridWorld) -> None:
    """Remove the county and everything in it."""
    reset_grid_world(owner_engine, w)
    with owner_engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        p = {"a": w.village_a, "b": w.village_b}
        conn.execute(text("DELETE FROM grid WHERE village_id IN (:a, :b)"), p)
        conn.execute(text("DELETE FROM person WHERE village_id IN (:a, :b)"), p)
        conn.execute(text("DELETE FROM village WHERE id IN (:a, :b)"), p)
        conn.execute(text("DELETE FROM town WHERE id = :t"), {"t": w.town_id})
        conn.execute(text("DELETE FROM county WHERE id = :c"), {"c": w.county_id})
