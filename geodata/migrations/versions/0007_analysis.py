"""Analysis: stored zonal statistics, and facility locations for coverage across villages.

Revision ID: 0007
Revises: 0004

* ``zonal_stat`` — zonal statistics of a raster (``raster_dataset`` of 0003) per village or
  per grid: sum, mean, max and the number of (fractionally) covered pixels. Village-scoped
  with RLS as in 0001; a rerun replaces the rows of the same raster, level and unit.
* ``dvmap_facilities(type)`` — the locations of all public resources of a type, whatever
  the caller's scope. People use the clinic or elderly-care centre of the next village, so
  a village official's coverage analysis must see facilities beyond the village. Like
  ``dvmap_route_event`` (0002) it widens the scope to the county only while it runs and
  returns nothing but ids and points.
"""
from alembic import op

revision = "0007"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE zonal_stat (
            id          bigserial PRIMARY KEY,
            raster_id   integer NOT NULL REFERENCES raster_dataset(id) ON DELETE CASCADE,
            band        integer NOT NULL DEFAULT 1 CHECK (band >= 1),
            level       text NOT NULL CHECK (level IN ('village', 'grid')),
            village_id  integer NOT NULL REFERENCES village(id),
            grid_uid    uuid,
            unit_code   text NOT NULL,
            sum         double precision,
            mean        double precision,
            max         double precision,
            pixels      double precision NOT NULL DEFAULT 0,
            computed_at timestamptz NOT NULL DEFAULT now(),
            computed_by text,
            CHECK ((level = 'grid') = (grid_uid IS NOT NULL))
        );
        CREATE UNIQUE INDEX zonal_stat_unit_uq ON zonal_stat (raster_id, band, level, unit_code);
        CREATE INDEX zonal_stat_village_idx ON zonal_stat (village_id);

        ALTER TABLE zonal_stat ENABLE ROW LEVEL SECURITY;
        ALTER TABLE zonal_stat FORCE ROW LEVEL SECURITY;
        CREATE POLICY zonal_stat_scope ON zonal_stat USING (dvmap_village_visible(village_id))
            WITH CHECK (dvmap_village_visible(village_id));
        GRANT SELECT, INSERT, UPDATE, DELETE ON zonal_stat TO dvmap_app_rw;
        GRANT USAGE, SELECT ON SEQUENCE zonal_stat_id_seq TO dvmap_app_rw;
        """
    )
    op.execute(
        """
        CREATE FUNCTION dvmap_facilities(rtype text)
        RETURNS TABLE (id integer, geom geometry(Point, 4490))
        LANGUAGE plpgsql VOLATILE AS
        $fn$
        #variable_conflict use_column
        DECLARE
          caller_scope text := current_setting('dvmap.scope', true);
        BEGIN
          PERFORM set_config('dvmap.scope', '*', true);
          RETURN QUERY SELECT r.id, r.geom FROM resource r WHERE r.type = rtype ORDER BY r.id;
          PERFORM set_config('dvmap.scope', coalesce(caller_scope, ''), true);
        END
        $fn$;
        GRANT EXECUTE ON FUNCTION dvmap_facilities(text) TO dvmap_app_rw;
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS dvmap_facilities(text)")
    op.execute("DROP TABLE IF EXISTS zonal_stat CASCADE")
