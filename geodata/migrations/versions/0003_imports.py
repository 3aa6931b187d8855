"""Imports: saved import reports, custom layers (with their features) and raster datasets.

Revision ID: 0003
Revises: 0002

* ``import_report`` — one row per import attempt (imported, refused, failed, already
  imported), with counts and per-feature issues. A successful import's row is written in
  the same transaction as the data it merged; a partial unique index on
  ``(file_sha256, target, layer)`` for ``status = 'imported'`` makes imports idempotent
  even when two run at once.
* ``custom_layer`` / ``custom_feature`` — layers that departments bring which have no
  table of their own. Features are village-scoped (``village_id`` from containment;
  NULL = outside every village, visible to the county scope only) and carry RLS like
  the tables of 0001.
* ``raster_dataset`` — GeoTIFF metadata (footprint, size, bands) and where the file is
  kept (under ``DVMAP_DATA_DIR/rasters``), for the raster analysis issue.
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

NAME_CHECK = r"^[a-z][a-z0-9_]{1,39}$"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE import_report (
            id               bigserial PRIMARY KEY,
            file_sha256      char(64) NOT NULL CHECK (file_sha256 ~ '^[0-9a-f]{{64}}$'),
            file_name        text NOT NULL,
            file_size        bigint,
            format           text,
            target           text NOT NULL CHECK (target IN ('villages', 'grids', 'resources', 'population',
                                                             'sensors', 'custom', 'raster')),
            -- custom layer / raster name, or the resource source; '' when the target has none
            layer            text NOT NULL DEFAULT '',
            status           text NOT NULL CHECK (status IN ('imported', 'refused', 'failed', 'already_imported')),
            reason_code      text,
            message_zh       text,
            message_en       text,
            encoding         text,
            encoding_source  text,
            source_crs       text,
            converted_from   text CHECK (converted_from IN ('gcj02', 'bd09')),
            rows_read        integer NOT NULL DEFAULT 0,
            rows_imported    integer NOT NULL DEFAULT 0,
            rows_repaired    integer NOT NULL DEFAULT 0,
            rows_rejected    integer NOT NULL DEFAULT 0,
            rows_flagged     integer NOT NULL DEFAULT 0,
            counts           jsonb NOT NULL DEFAULT '{{}}'::jsonb,
            issues           jsonb NOT NULL DEFAULT '[]'::jsonb,
            issues_truncated boolean NOT NULL DEFAULT false,
            notes            jsonb NOT NULL DEFAULT '[]'::jsonb,
            options          jsonb NOT NULL DEFAULT '{{}}'::jsonb,
            village_id       integer REFERENCES village(id),
            user_id          integer,
            created_by       text,
            duplicate_of     bigint REFERENCES import_report(id),
            started_at       timestamptz NOT NULL DEFAULT now(),
            finished_at      timestamptz
        );
        CREATE UNIQUE INDEX import_report_once_uq ON import_report (file_sha256, target, layer)
            WHERE status = 'imported';
        CREATE INDEX import_report_time_idx ON import_report (started_at DESC);

        CREATE TABLE custom_layer (
            id          serial PRIMARY KEY,
            name        text NOT NULL UNIQUE CHECK (name ~ '{NAME_CHECK}'),
            title_zh    text NOT NULL,
            title_en    text NOT NULL,
            geom_family text NOT NULL CHECK (geom_family IN ('point', 'line', 'polygon')),
            fields      jsonb NOT NULL DEFAULT '[]'::jsonb,
            style       jsonb NOT NULL DEFAULT '{{}}'::jsonb,
            import_id   bigint REFERENCES import_report(id),
            created_at  timestamptz NOT NULL DEFAULT now(),
            updated_at  timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE custom_feature (
            id         bigserial PRIMARY KEY,
            layer_id   integer NOT NULL REFERENCES custom_layer(id) ON DELETE CASCADE,
            village_id integer REFERENCES village(id),
            source_id  text,
            name       text,
            props      jsonb NOT NULL DEFAULT '{{}}'::jsonb,
            geom       geometry(Geometry, 4490) NOT NULL CHECK (ST_IsValid(geom) AND NOT ST_IsEmpty(geom)),
            import_id  bigint REFERENCES import_report(id)
        );
        CREATE INDEX custom_feature_geom_gix ON custom_feature USING gist (geom);
        CREATE INDEX custom_feature_layer_idx ON custom_feature (layer_id);
        CREATE INDEX custom_feature_village_idx ON custom_feature (village_id);

        CREATE TABLE raster_dataset (
            id                serial PRIMARY KEY,
            name              text NOT NULL UNIQUE CHECK (name ~ '{NAME_CHECK}'),
            title_zh          text NOT NULL,
            title_en          text NOT NULL,
            file_sha256       char(64) NOT NULL,
            path              text NOT NULL,
            driver            text NOT NULL,
            width             integer NOT NULL CHECK (width > 0),
            height            integer NOT NULL CHECK (height > 0),
            band_count        integer NOT NULL CHECK (band_count > 0),
            dtypes            text[] NOT NULL,
            nodata            double precision,
            source_crs        text NOT NULL,
            res_x             double precision NOT NULL,
            res_y             double precision NOT NULL,
            transform         double precision[] NOT NULL,
            band_descriptions text[],
            footprint         geometry(Polygon, 4490) NOT NULL,
            import_id         bigint REFERENCES import_report(id),
            created_at        timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX raster_dataset_footprint_gix ON raster_dataset USING gist (footprint);
        """
    )

    # -- row-level security, as in 0001 --------------------------------------------
    # custom features: village-scoped; NULL village (outside every village) is county-only.
    op.execute("ALTER TABLE custom_feature ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE custom_feature FORCE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY custom_feature_scope ON custom_feature USING (dvmap_village_visible(village_id))"
        " WITH CHECK (dvmap_village_visible(village_id))"
    )
    # import reports: county scope sees all; a village-scoped user sees the reports of
    # their villages and their own.
    op.execute("ALTER TABLE import_report ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE import_report FORCE ROW LEVEL SECURITY")
    op.execute(
        """
        CREATE POLICY import_report_scope ON import_report
          USING (dvmap_village_visible(village_id)
                 OR (user_id IS NOT NULL AND user_id::text = current_setting('dvmap.user_id', true)))
          WITH CHECK (dvmap_village_visible(village_id)
                 OR (user_id IS NOT NULL AND user_id::text = current_setting('dvmap.user_id', true)))
        """
    )

    op.execute(
        """
        GRANT SELECT, INSERT, UPDATE, DELETE ON import_report, custom_layer, custom_feature, raster_dataset
            TO dvmap_app_rw;
        GRANT USAGE, SELECT ON SEQUENCE import_report_id_seq, custom_layer_id_seq, custom_feature_id_seq,
            raster_dataset_id_seq TO dvmap_app_rw;
        """
    )


def downgrade() -> None:
    for table in ("raster_dataset", "custom_feature", "custom_layer", "import_report"):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
