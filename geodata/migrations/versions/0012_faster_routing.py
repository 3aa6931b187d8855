"""Faster event routing: one statement of lateral joins, the boundary guard only near an edge.

Same inputs, same outputs as 0002's ``dvmap_route_event`` (a test routes thousands of
points with both and compares every column). What changed, measured in bench/bench_scale:

* The boundary guard (other grids within ``boundary_m`` metres, 边界待确认) runs only
  when the point is near its own grid's edge. Grids do not overlap, so no other grid
  can be nearer than the point's distance to its own grid's boundary; when that
  distance (in degrees, against a reach that surely covers ``boundary_m``) is larger,
  the spheroid distances are skipped. Most points are far from an edge.
* Candidates are pre-filtered with a planar ``ST_DWithin`` in degrees before the one
  spheroid distance per candidate (0002 computed it twice, for the test and the order).
* The village is looked up by primary key when the grid is known, instead of a
  filtered scan, and county/town containment only run when no grid/village contains
  the point.

Revision ID: 0012
Revises: 0010
"""
import importlib.util
from pathlib import Path

from alembic import op

revision = "0012"
down_revision = "0010"
branch_labels = None
depends_on = None

ROUTE_EVENT_FUNCTION = """
-- Each ST_Intersects is paired with an explicit `&&`: under row-level security only
-- leakproof operators may use an index, and ST_Intersects itself is not one.
CREATE OR REPLACE FUNCTION dvmap_route_event(lon double precision, lat double precision,
                                             subclass text, boundary_m double precision)
RETURNS TABLE (inside_county boolean, village_id integer, town_id integer,
               grid_id bigint, grid_uid uuid, worker_id integer, department text,
               queue text, outside_grid boolean, boundary_pending boolean,
               candidate_grid_uids uuid[])
LANGUAGE plpgsql VOLATILE AS
$fn$
#variable_conflict use_column
DECLARE
  caller_scope text := current_setting('dvmap.scope', true);
  -- degrees that surely cover boundary_m metres: a degree of longitude shrinks with
  -- cos(lat), and 20 % margin
  reach double precision := 1.2 * boundary_m / (111000.0 * greatest(cos(radians(lat)), 0.05));
BEGIN
  -- Routing looks at all grids whatever the caller's scope (a report near the village
  -- edge must see the neighbour's grid); the caller's scope is put back after.
  PERFORM set_config('dvmap.scope', '*', true);
  RETURN QUERY
  WITH p AS (SELECT ST_SetSRID(ST_MakePoint(lon, lat), 4490) AS geom)
  SELECT (g.id IS NOT NULL
          OR EXISTS (SELECT 1 FROM county c WHERE c.geom && p.geom AND ST_Intersects(c.geom, p.geom))),
         v.id, coalesce(v.town_id, t.id), g.id, g.uid, g.worker_id,
         (SELECT r.department FROM event_routing r WHERE r.subclass_code = subclass),
         CASE WHEN g.id IS NOT NULL THEN 'grid' WHEN v.id IS NOT NULL THEN 'village' ELSE 'county' END,
         g.id IS NULL,
         cardinality(near.uids) > 0,
         CASE WHEN g.id IS NOT NULL THEN array_prepend(g.uid, near.uids) ELSE near.uids END
    FROM p
    LEFT JOIN LATERAL (
      SELECT gr.id, gr.uid, gr.village_id, pe.id AS worker_id,
             ST_Distance(ST_Boundary(gr.geom), p.geom) AS edge_deg
        FROM grid gr LEFT JOIN person pe ON pe.id = gr.worker_id AND pe.active
       WHERE gr.valid_to IS NULL AND gr.geom && p.geom AND ST_Intersects(gr.geom, p.geom)
       ORDER BY gr.id LIMIT 1) g ON true
    LEFT JOIN LATERAL (
      SELECT vv.id, vv.town_id FROM village vv WHERE vv.id = g.village_id) vg ON true
    LEFT JOIN LATERAL (
      SELECT vv.id, vv.town_id FROM village vv
       WHERE g.id IS NULL AND vv.geom && p.geom AND ST_Intersects(vv.geom, p.geom)
       ORDER BY vv.id LIMIT 1) vp ON true
    CROSS JOIN LATERAL (SELECT coalesce(vg.id, vp.id) AS id, coalesce(vg.town_id, vp.town_id) AS town_id) v
    LEFT JOIN LATERAL (
      SELECT tt.id FROM town tt
       WHERE v.id IS NULL AND tt.geom && p.geom AND ST_Intersects(tt.geom, p.geom)
       ORDER BY tt.id LIMIT 1) t ON true
    LEFT JOIN LATERAL (
      -- Other current grids within boundary_m metres, nearest first. Grids do not
      -- overlap, so when the point is farther than `reach` from its own grid's edge
      -- there are none and this is skipped.
      SELECT coalesce(array_agg(c.uid ORDER BY c.metres, c.uid), '{}') AS uids
        FROM (SELECT gr.uid, ST_Distance(gr.geom::geography, p.geom::geography) AS metres
                FROM grid gr
               WHERE (g.id IS NULL OR g.edge_deg <= reach)
                 AND gr.valid_to IS NULL
                 AND gr.geom && ST_Expand(p.geom, reach)
                 AND gr.uid IS DISTINCT FROM g.uid
                 AND ST_DWithin(gr.geom, p.geom, reach)) c
       WHERE c.metres <= boundary_m) near ON true;
  PERFORM set_config('dvmap.scope', coalesce(caller_scope, ''), true);
END
$fn$;
"""


def upgrade() -> None:
    op.execute(ROUTE_EVENT_FUNCTION)


def downgrade() -> None:
    # 0002's function, from 0002 itself (one copy of it).
    path = Path(__file__).with_name("0002_events.py")
    spec = importlib.util.spec_from_file_location("dvmap_migration_0002", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    op.execute(module.ROUTE_EVENT_FUNCTION.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
