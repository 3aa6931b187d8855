"""Events: one GiST index on (geom, reported_at), for the map's viewport + time-window queries.

A viewport at street level over three years of a county's events holds tens of
thousands of rows; the map asks for those of the last N days. With a GiST index on
geom alone every event in the view was fetched from the heap and then filtered by
date. With ``reported_at`` in the same GiST index (``btree_gist``) the window is
checked in the index and only the rows in view *and* in the window are read
(bench/bench_scale.py, item 2). The index keeps serving geometry-only queries (its
tree is built on its first column), so it replaces the geometry-only one.

The zoomed-out counts (per village / grid, by state group, class and window) read
0008's covering index on ``reported_at``; with ``state``, ``due_at`` and
``class_code`` included too they are index-only scans (after VACUUM), whatever the
heap order.

Revision ID: 0013
Revises: 0012
"""
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = "0008"  # replaces 0008's covering index


def upgrade() -> None:
    # btree_gist is a trusted extension: the schema owner may create it (PostgreSQL ≥ 13).
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    op.execute("CREATE INDEX event_geom_time_gix ON event USING gist (geom, reported_at)")
    op.execute("DROP INDEX IF EXISTS event_geom_gix")
    op.execute("DROP INDEX IF EXISTS event_reported_cover_idx")
    op.execute("CREATE INDEX event_reported_cover_idx ON event (reported_at)"
               " INCLUDE (village_id, grid_uid, state, due_at, class_code)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS event_reported_cover_idx")
    op.execute("CREATE INDEX event_reported_cover_idx ON event (reported_at) INCLUDE (village_id, grid_uid)")
    op.execute("CREATE INDEX event_geom_gix ON event USING gist (geom)")
    op.execute("DROP INDEX IF EXISTS event_geom_time_gix")
