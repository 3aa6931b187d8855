"""A tiny, hand-measured county for the event tests (committed, removed afterwards).

Layout (lon/lat, CGCS2000; at 29°N one degree is ~97.4 km east-west, ~110.9 km north-south)::

    29.06 ┌──────────────┬──────────────┬──────────────────────────┐
          │              │  village A,  │                          │
          │              │  no grid     │   no village             │
    29.04 │   grid A1    ├──────────────┤   (county queue)         │
          │  (worker a1) │   grid A2    ├──────────────────────────┤ 29.03
          │              │  (worker a2) │   grid B1 (worker b1),   │
          │  village A   │              │   village B              │
    29.00 └──────────────┴──────────────┴──────────────────────────┘
        120.90        120.925        120.95                     121.00

It sits far from the demo county, so both can be loaded at once. Its codes start
with ``99`` (no real county has them).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy import text

from geodata.db import SYSTEM, apply_scope


def box(w, s, e, n) -> str:
    return f"MULTIPOLYGON((({w} {s},{e} {s},{e} {n},{w} {n},{w} {s})))"


@dataclass
class World:
    prefix: str
    county_id: int = 0
    town_id: int = 0
    village_a: int = 0
    village_b: int = 0
    grids: dict[str, str] = field(default_factory=dict)      # name → uid
    grid_ids: dict[str, int] = field(default_factory=dict)   # name → id (version row)
    workers: dict[str, int] = field(default_factory=dict)    # name → person id
    official_a: int = 0

    # points
    P_A1 = (120.91, 29.02)            # deep inside A1
    P_EDGE = (120.9248, 29.02)        # in A1, ~19.5 m from A2
    P_EDGE_FAR = (120.9245, 29.02)    # in A1, ~48.7 m from A2
    P_CROSS = (120.9499, 29.02)       # in A2 (village A), ~9.7 m from B1 (village B)
    P_VILLAGE_QUEUE = (120.94, 29.05)  # village A, no grid, >1 km from any grid
    P_COUNTY_QUEUE = (120.97, 29.05)   # no village, >2 km from any grid
    P_NEAR_OUTSIDE = (120.94, 29.0402)  # village A, no grid, ~22 m north of A2
    P_B1 = (120.98, 29.01)
    P_OUTSIDE = (121.5, 29.02)         # outside the county


def build_world(owner_engine, prefix: str = "99") -> World:
    """Insert the county above and return its ids (committed)."""
    w = World(prefix)
    code6 = f"{prefix}0001"
    with owner_engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        q = lambda sql, **p: conn.execute(text(sql), p).scalar_one()  # noqa: E731
        w.county_id = q(
            "INSERT INTO county (code, name, geom, source) VALUES (:c, '测试县', ST_GeomFromText(:g, 4490), 'test')"
            " RETURNING id", c=code6, g=box(120.90, 29.00, 121.00, 29.06))
        w.town_id = q(
            "INSERT INTO town (county_id, code, name, geom) VALUES (:cid, :c, '测试镇', ST_GeomFromText(:g, 4490))"
            " RETURNING id", cid=w.county_id, c=f"{code6}001000", g=box(120.90, 29.00, 121.00, 29.06))
        village_sql = (
            "INSERT INTO village (town_id, code, name, geom, label_point) VALUES"
            " (:t, :c, :n, ST_GeomFromText(:g, 4490), ST_PointOnSurface(ST_GeomFromText(:g, 4490))) RETURNING id"
        )
        w.village_a = q(village_sql, t=w.town_id, c=f"{code6}001001", n="甲村", g=box(120.90, 29.00, 120.95, 29.06))
        w.village_b = q(village_sql, t=w.town_id, c=f"{code6}001002", n="乙村", g=box(120.95, 29.00, 121.00, 29.03))
        person_sql = (
            "INSERT INTO person (village_id, name, duty, phone) VALUES (:v, :n, :d, '13800000000') RETURNING id"
        )
        w.workers["a1"] = q(person_sql, v=w.village_a, n="网格员甲一", d="grid_worker")
        w.workers["a2"] = q(person_sql, v=w.village_a, n="网格员甲二", d="grid_worker")
        w.workers["b1"] = q(person_sql, v=w.village_b, n="网格员乙一", d="grid_worker")
        w.official_a = q(person_sql, v=w.village_a, n="村干部甲", d="village_official")
        grid_sql = (
            "INSERT INTO grid (uid, village_id, code, name, geom, worker_id) VALUES"
            " (CAST(:u AS uuid), :v, :c, :n, ST_GeomFromText(:g, 4490), :wk) RETURNING id"
        )
        for name, village, seq, geom in (
            ("a1", w.village_a, "001", box(120.90, 29.00, 120.925, 29.06)),
            ("a2", w.village_a, "002", box(120.925, 29.00, 120.95, 29.04)),
            ("b1", w.village_b, "001", box(120.95, 29.00, 121.00, 29.03)),
        ):
            uid = str(uuid.uuid4())
            vcode = f"{code6}001001" if village == w.village_a else f"{code6}001002"
            w.grid_ids[name] = q(grid_sql, u=uid, v=village, c=f"{vcode}{seq}", n=f"网格{name}", g=geom,
                                 wk=w.workers[name])
            w.grids[name] = uid
    return w


def destroy_world(owner_engine, w: World) -> None:
    """Remove the county and every event in it (history's guard lifted inside the transaction)."""
    with owner_engine.begin() as conn:
        apply_scope(conn, SYSTEM)
        ev = "SELECT id FROM event WHERE town_id = :t OR village_id IN (:a, :b)"
        p = {"t": w.town_id, "a": w.village_a, "b": w.village_b}
        conn.execute(text("ALTER TABLE event_history DISABLE TRIGGER event_history_append_only"))
        for sql in (
            f"DELETE FROM event_photo WHERE event_id IN ({ev})",
            f"DELETE FROM event_history WHERE event_id IN ({ev})",
            f"DELETE FROM event_request WHERE event_id IN ({ev})",
            "DELETE FROM event WHERE town_id = :t OR village_id IN (:a, :b)",
        ):
            conn.execute(text(sql), p)
        conn.execute(text("ALTER TABLE event_history ENABLE TRIGGER event_history_append_only"))
        conn.execute(text("DELETE FROM api_client WHERE name LIKE 'test-%'"))
        conn.execute(text("DELETE FROM grid WHERE village_id IN (:a, :b)"), p)
        conn.execute(text("DELETE FROM person WHERE village_id IN (:a, :b)"), p)
        conn.execute(text("DELETE FROM village WHERE id IN (:a, :b)"), p)
        # The big screen's daily summary (0008) keeps per-town rows, even at zero counts.
        if conn.execute(text("SELECT to_regclass('event_daily') IS NOT NULL")).scalar():
            conn.execute(text("DELETE FROM event_daily WHERE town_id = :t"), p)
        conn.execute(text("DELETE FROM town WHERE id = :t"), p)
        conn.execute(text("DELETE FROM county WHERE id = :c"), {"c": w.county_id})
