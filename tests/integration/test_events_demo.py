"""Event routing on the demo county (a module of its own: the small test county of
test_events.py must be gone before the demo loader runs, since it refuses a second county)."""
from __future__ import annotations

from sqlalchemy import text

from geodata import events as ev
from geodata.events import Actor


# -- on the demo county ---------------------------------------------------------------------------

def test_routing_on_the_demo_county_matches_each_grid(db_session, demo_db):
    """Inside points of 25 demo grids route to that grid, its worker, village and town."""
    rows = db_session.execute(text(
        """
        SELECT g.uid::text AS uid, g.id, g.worker_id, g.village_id, v.town_id,
               ST_X(ST_PointOnSurface(g.geom)) AS lon, ST_Y(ST_PointOnSurface(g.geom)) AS lat
          FROM grid g JOIN village v ON v.id = g.village_id
         WHERE g.valid_to IS NULL ORDER BY g.code LIMIT 25
        """)).mappings().all()
    assert len(rows) == 25
    for row in rows:
        ref = ev.create_event(db_session, lon=row["lon"], lat=row["lat"], subclass="0102", description="测试",
                              source="patrol", actor=Actor.system())
        assert (ref.grid_uid, ref.grid_id, ref.village_id, ref.town_id) == (
            row["uid"], row["id"], row["village_id"], row["town_id"])
        assert ref.worker_id == row["worker_id"] and ref.queue == "grid" and not ref.outside_grid
        assert ref.candidate_grid_uids[0] == row["uid"]
