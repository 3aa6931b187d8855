"""Population points: where people live, so grid population follows grid edits.

Revision ID: 0021
Revises: 0016

* ``population_point`` — a dwelling or household cluster with its head count,
  over 60s and households, its year, source and date. Village-scoped (RLS as
  0001's tables).
* ``population.source`` / ``population.as_of`` — where a figure comes from
  (``table`` imported/census table, ``points`` summed from the points,
  ``area_share`` split by area) and the date it describes.

geodata.grids.population recomputes a village's grid rows from the points in the
same transaction as every grid change.
"""
from alembic import op

revision = "0021"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE population ADD COLUMN source text NOT NULL DEFAULT 'table';
        ALTER TABLE population ADD COLUMN as_of date;

        CREATE TABLE population_point (
            id          serial PRIMARY KEY,
            village_id  integer NOT NULL REFERENCES village(id),
            year        integer NOT NULL,
            total       integer NOT NULL,
            age_60_plus integer NOT NULL,
            households  integer NOT NULL,
            geom        geometry(Point, 4490) NOT NULL,
            source      text NOT NULL DEFAULT 'demo',
            as_of       date NOT NULL,
            CONSTRAINT population_point_check CHECK (total >= 0 AND age_60_plus >= 0 AND households >= 0)
        );
        CREATE INDEX population_point_geom_gix ON population_point USING gist (geom);
        CREATE INDEX population_point_village_idx ON population_point (village_id, year);

        ALTER TABLE population_point ENABLE ROW LEVEL SECURITY;
        ALTER TABLE population_point FORCE ROW LEVEL SECURITY;
        CREATE POLICY population_point_scope ON population_point
            USING (dvmap_village_visible(village_id)) WITH CHECK (dvmap_village_visible(village_id));
        GRANT SELECT, INSERT, UPDATE, DELETE ON population_point TO dvmap_app_rw;
        GRANT USAGE, SELECT ON SEQUENCE population_point_id_seq TO dvmap_app_rw;
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS population_point")
    op.execute("ALTER TABLE population DROP COLUMN IF EXISTS as_of, DROP COLUMN IF EXISTS source")
