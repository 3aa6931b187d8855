"""Population points for the demo county: where its people live.

The demo's population comes per grid; grid edits must move people with the land, so
each grid's people are placed at a few dwelling clusters inside it (one per household
up to :data:`MAX_POINTS_PER_GRID`, seeded, so the same seed gives the same points). A
grid's points add up exactly to its row; the grid rows are then marked as computed
from the points (``source = 'points'``, ``as_of`` = today in the display zone), as
:func:`geodata.grids.population.recompute_village` would compute them.
"""
from __future__ import annotations

from sqlalchemy import text

from geodata.clock import local_today

#: dwelling clusters per grid at most (one per household below that)
MAX_POINTS_PER_GRID = 12

# Point i of k gets floor(T·i/k) − floor(T·(i−1)/k): integers that add up to T exactly.
_SEED_SQL = f"""
WITH src AS (
    SELECT g.village_id, g.geom, p.year, p.total, p.age_60_plus, p.households,
           greatest(1, least(p.households, {MAX_POINTS_PER_GRID})) AS k, g.id AS gid
      FROM grid g JOIN population p ON p.grid_uid = g.uid
     WHERE g.valid_to IS NULL AND p.total > 0 AND g.village_id = ANY(CAST(:vids AS integer[]))
       AND p.year = (SELECT max(year) FROM population x WHERE x.village_id = g.village_id)
)
INSERT INTO population_point (village_id, year, total, age_60_plus, households, geom, source, as_of)
SELECT s.village_id, s.year,
       (s.total * d.path[1]) / s.k - (s.total * (d.path[1] - 1)) / s.k,
       (s.age_60_plus * d.path[1]) / s.k - (s.age_60_plus * (d.path[1] - 1)) / s.k,
       (s.households * d.path[1]) / s.k - (s.households * (d.path[1] - 1)) / s.k,
       d.geom, 'demo', :as_of
  FROM src s
  CROSS JOIN LATERAL ST_Dump(ST_GeneratePoints(s.geom, s.k, CAST(:seed + s.gid AS integer))) d
"""


def seed_population_points(conn, village_ids, seed: int = 42) -> int:
    """Place the grids' people of ``village_ids`` at seeded points inside their grids.

    Parameters
    ----------
    conn : Connection
        With a scope that sees the villages (the demo load runs with the system scope).
    village_ids : list of int
    seed : int
        Seed of the point positions (ST_GeneratePoints).

    Returns
    -------
    int
        The number of points written.
    """
    today = local_today()
    n = conn.execute(text(_SEED_SQL), {"vids": list(village_ids), "seed": seed, "as_of": today}).rowcount
    conn.execute(text(
        "UPDATE population SET source = 'points', as_of = :as_of WHERE village_id = ANY(CAST(:vids AS integer[]))"
    ), {"vids": list(village_ids), "as_of": today})
    return int(n)
