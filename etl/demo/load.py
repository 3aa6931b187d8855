"""Load the generated county into a migrated database in one transaction (or replace it)."""
from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Iterable

import numpy as np
import pandas as pd
import shapely

from etl.demo.county import DemoAlreadyLoaded, DemoCounty, DemoReplaceBlocked
from etl.demo.generator import generate_county
from etl.demo.spec import COUNTY_CODE, COUNTY_NAME, ZONE
from etl.population_points import seed_population_points
from geodata.config import STORAGE_SRID

def load_demo(owner_url: str, seed: int = 42, replace: bool = False) -> dict:
    """Generate the demo county and load it into a migrated database.

    The whole load is one transaction, run with the system scope
    (:data:`geodata.db.SYSTEM`) because every village-scoped table has forced
    row-level security; on any error nothing is left behind.

    Parameters
    ----------
    owner_url : str
        SQLAlchemy/libpq URL of the schema owner (``dvmap db url --owner``).
    seed : int
        Seed of the generator (see :func:`generate_county`).
    replace : bool
        Delete the demo county (code 330521) and everything under it first,
        in the same transaction, instead of refusing.

    Returns
    -------
    dict
        Counts of what was loaded (county, towns, villages, grids, people,
        resources, population rows, sensors by type, readings), the seed and
        ``seconds`` taken.

    Raises
    ------
    DemoAlreadyLoaded
        If a county is already loaded and ``replace`` is False.
    DemoReplaceBlocked
        If ``replace`` is True but rows the demo did not load (events, real
        user accounts, imports…) still refer to the demo county's villages,
        towns, people, grids or sensors. Rows flagged ``is_demo`` (the demo
        accounts) are demo data and are deleted with the county.
    RuntimeError
        If the database has not been migrated.
    """
    from sqlalchemy import pool, text

    from geodata.db import SYSTEM, apply_scope, make_engine

    started = time.perf_counter()
    engine = make_engine(owner_url, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            if conn.execute(text("SELECT to_regclass('public.sensor_reading')")).scalar() is None:
                raise RuntimeError(
                    "数据库尚未迁移,请先运行 dvmap migrate / Database not migrated; run 'dvmap migrate' first"
                )
            # Two loaders at once would both see an empty county table.
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('dvmap.demo_county'))"))
            apply_scope(conn, SYSTEM)
            existing = conn.execute(text("SELECT id, code, name FROM county ORDER BY id")).all()
            if existing and not replace:
                row = next((r for r in existing if r.code == COUNTY_CODE), existing[0])
                raise DemoAlreadyLoaded(row.name, row.code)
            if replace:
                _delete_county(conn, COUNTY_CODE)
            densities = dict(
                conn.execute(text("SELECT code, per_100k FROM sensor_type ORDER BY sort, code")).all()
            )
            demo = generate_county(seed, now=datetime.now(ZONE).replace(microsecond=0),
                                   sensor_densities=densities)
            _write(conn, demo)
    finally:
        engine.dispose()
    summary = {"seed": seed, **demo.summary()}
    summary["seconds"] = round(time.perf_counter() - started, 2)
    return summary


def _ewkb(geoms: Iterable) -> list[str]:
    arr = shapely.set_srid(np.array(list(geoms), dtype=object), STORAGE_SRID)
    return list(shapely.to_wkb(arr, hex=True, include_srid=True))


def _alloc_ids(conn, table: str, n: int) -> list[int]:
    from sqlalchemy import text

    return list(conn.execute(
        text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
        {"t": table, "n": n},
    ).scalars())


def _copy(conn, table: str, columns: list[str], rows: Iterable[tuple]) -> None:
    """Bulk-insert ``rows`` into ``table`` with COPY through a temporary staging table.

    PostgreSQL refuses ``COPY ... FROM`` into tables with row-level security
    (and ours is forced, even for the owner), so rows are copied into an
    RLS-free temporary table of the same column types and moved over with one
    ``INSERT ... SELECT``, which the policies' WITH CHECK then sees.
    """
    from sqlalchemy import text

    cols = ", ".join(f'"{c}"' for c in columns)
    stage = f"_stage_{table}"
    conn.execute(text(f"CREATE TEMP TABLE {stage} ON COMMIT DROP AS SELECT {cols} FROM {table} WITH NO DATA"))
    with conn.connection.driver_connection.cursor() as cur:
        with cur.copy(f"COPY {stage} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    conn.execute(text(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage}"))
    conn.execute(text(f"DROP TABLE {stage}"))


def _dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


#: Tables the demo loads, children first: the order rows are deleted in.
_DEMO_TABLES = ("sensor_reading", "sensor", "population_point", "population", "resource", "grid", "person", "village",
                "town", "county")
#: The demo tables other data may point at, and how to find the demo county's ids in them.
_DEMO_ID_SETS = {
    "county": "SELECT id FROM county WHERE code = :code",
    "town": "SELECT t.id FROM town t JOIN county c ON c.id = t.county_id WHERE c.code = :code",
    "village": ("SELECT v.id FROM village v JOIN town t ON t.id = v.town_id "
                "JOIN county c ON c.id = t.county_id WHERE c.code = :code"),
    "person": "SELECT id FROM person WHERE village_id IN (SELECT id FROM _demo_ids WHERE tbl = 'village')",
    "grid": "SELECT id FROM grid WHERE village_id IN (SELECT id FROM _demo_ids WHERE tbl = 'village')",
    "sensor": "SELECT id FROM sensor WHERE village_id IN (SELECT id FROM _demo_ids WHERE tbl = 'village')",
}


def _delete_county(conn, code: str) -> None:
    """Delete a county and every row the demo loaded under it, children first.

    Foreign keys from other tables into the demo's rows are found in the
    catalogue. Referencing rows flagged ``is_demo`` (demo accounts) are deleted
    too; any other referencing row blocks the replacement
    (:class:`DemoReplaceBlocked`) before anything is deleted.
    """
    from sqlalchemy import text

    params = {"code": code}
    conn.execute(text("CREATE TEMP TABLE _demo_ids (tbl text NOT NULL, id bigint NOT NULL) ON COMMIT DROP"))
    for table, sql in _DEMO_ID_SETS.items():
        conn.execute(text(f"INSERT INTO _demo_ids SELECT '{table}', id FROM ({sql}) AS ids"), params)
    conn.execute(text("CREATE INDEX ON _demo_ids (tbl, id)"))
    conn.execute(text("ANALYZE _demo_ids"))

    blockers: dict[str, int] = {}
    for tbl, col, ref, has_demo_flag in _external_references(conn):
        ids = f"(SELECT id FROM _demo_ids WHERE tbl = '{ref}')"
        if has_demo_flag:
            conn.execute(text(f'DELETE FROM {tbl} WHERE is_demo AND "{col}" IN {ids}'))
        n = conn.execute(text(f'SELECT count(*) FROM {tbl} WHERE "{col}" IN {ids}')).scalar()
        if n:
            blockers[f"{tbl}.{col}"] = int(n)
    if blockers:
        name = conn.execute(text("SELECT name FROM county WHERE code = :code"), params).scalar() or COUNTY_NAME
        raise DemoReplaceBlocked(blockers, name, code)

    village_ids = "(SELECT id FROM _demo_ids WHERE tbl = 'village')"
    for table in _DEMO_TABLES:
        if table in ("town", "county"):
            conn.execute(text(f"DELETE FROM {table} WHERE id IN (SELECT id FROM _demo_ids WHERE tbl = '{table}')"))
        elif table == "village":
            conn.execute(text(f"DELETE FROM village WHERE id IN {village_ids}"))
        else:
            conn.execute(text(f"DELETE FROM {table} WHERE village_id IN {village_ids}"))
    conn.execute(text("DROP TABLE _demo_ids"))


def _external_references(conn) -> list[tuple[str, str, str, bool]]:
    """Single-column foreign keys from non-demo tables into the demo's tables.

    Returns (referencing table, column, referenced demo table, whether the
    referencing table has a boolean ``is_demo`` column). Partitions are
    reached through their partitioned parent.
    """
    from sqlalchemy import text

    rows = conn.execute(text(
        """
        SELECT c.conrelid::regclass::text AS tbl, a.attname AS col, c.confrelid::regclass::text AS ref,
               EXISTS (SELECT 1 FROM pg_attribute d WHERE d.attrelid = c.conrelid AND d.attname = 'is_demo'
                         AND d.atttypid = 'boolean'::regtype AND NOT d.attisdropped) AS has_demo_flag
          FROM pg_constraint c
          JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
         WHERE c.contype = 'f' AND c.conparentid = 0 AND cardinality(c.conkey) = 1
           AND c.confrelid = ANY (CAST(:refs AS regclass[]))
           AND NOT (c.conrelid = ANY (CAST(:own AS regclass[])))
         ORDER BY 1, 2
        """
    ), {"refs": list(_DEMO_ID_SETS), "own": list(_DEMO_TABLES)}).all()
    return [(r.tbl, r.col, r.ref, bool(r.has_demo_flag)) for r in rows]


def _write(conn, demo: DemoCounty) -> None:
    """Insert every frame of ``demo`` (ids from the tables' sequences, rows by COPY)."""
    from sqlalchemy import text

    county_id = _alloc_ids(conn, "county", 1)[0]
    c = demo.county.iloc[0]
    _copy(conn, "county", ["id", "code", "name", "geom", "source", "source_note"],
          [(county_id, c["code"], c["name"], _ewkb([c.geometry])[0], c["source"], c["source_note"])])

    town_ids = dict(zip(demo.towns["code"], _alloc_ids(conn, "town", len(demo.towns))))
    _copy(conn, "town", ["id", "county_id", "code", "name", "kind", "geom"],
          zip([town_ids[t] for t in demo.towns["code"]], [county_id] * len(demo.towns), demo.towns["code"],
              demo.towns["name"], demo.towns["kind"], _ewkb(demo.towns.geometry)))

    v = demo.villages
    village_ids = dict(zip(v["code"], _alloc_ids(conn, "village", len(v))))
    _copy(conn, "village", ["id", "town_id", "code", "name", "geom", "label_point"],
          zip([village_ids[x] for x in v["code"]], [town_ids[x] for x in v["town_code"]], v["code"], v["name"],
              _ewkb(v.geometry), _ewkb(v["label_point"])))

    p = demo.people
    person_ids = dict(zip(p["key"], _alloc_ids(conn, "person", len(p))))
    _copy(conn, "person", ["id", "village_id", "name", "duty", "phone", "active"],
          ((person_ids[r.key], village_ids[r.village_code], r.name, r.duty, r.phone, True)
           for r in p.itertuples()))

    g = demo.grids
    _copy(conn, "grid", ["uid", "version", "village_id", "code", "name", "geom", "worker_id", "valid_from",
                         "changed_by"],
          zip(g["uid"], g["version"].astype(int), [village_ids[x] for x in g["village_code"]], g["code"],
              g["name"], _ewkb(g.geometry), [person_ids[k] for k in g["worker_key"]], g["valid_from"],
              ["demo"] * len(g)))

    r = demo.resources
    _copy(conn, "resource", ["village_id", "type", "name", "capacity", "address", "geom", "attrs", "source"],
          zip([village_ids[x] for x in r["village_code"]], r["type"], r["name"],
              [None if pd.isna(x) else int(x) for x in r["capacity"]], r["address"], _ewkb(r.geometry),
              [_dumps(a) for a in r["attrs"]], r["source"]))

    pop = demo.population
    _copy(conn, "population", ["village_id", "grid_uid", "year", "total", "age_60_plus", "households"],
          ((village_ids[x.village_code], x.grid_uid, int(x.year), int(x.total), int(x.age_60_plus),
            int(x.households)) for x in pop.itertuples()))
    # Where the people live, so grid population follows grid edits (geodata.grids.population).
    seed_population_points(conn, village_ids=list(village_ids.values()))

    s = demo.sensors
    sensor_ids = dict(zip(s["code"], _alloc_ids(conn, "sensor", len(s))))
    _copy(conn, "sensor", ["id", "code", "type", "village_id", "geom", "status", "installed_at", "last_seen_at",
                           "last_seq", "last_values"],
          zip([sensor_ids[x] for x in s["code"]], s["code"], s["type"], [village_ids[x] for x in s["village_code"]],
              _ewkb(s.geometry), s["status"], s["installed_at"], s["last_seen_at"], s["last_seq"].astype(int),
              [_dumps(x) for x in s["last_values"]]))

    rd = demo.readings
    _copy(conn, "sensor_reading", ["sensor_id", "seq", "village_id", "measured_at", "received_at", "values"],
          zip([sensor_ids[x] for x in rd["sensor_code"]], rd["seq"].tolist(),
              [village_ids[x] for x in rd["village_code"]], rd["measured_at"], rd["received_at"],
              [_dumps(x) for x in rd["values"]]))

    for table in ("county", "town", "village", "person", "grid", "resource", "population", "population_point",
                  "sensor", "sensor_reading"):
        conn.execute(text(f"ANALYZE {table}"))
