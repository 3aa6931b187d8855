"""Foundation: administrative units, grids, resources, population, sensors, scope.

Revision ID: 0001
Revises:
"""
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Storage CRS is CGCS2000 (EPSG:4490); metric work goes through EPSG:4549.
SCOPED_TABLES = ("village", "person", "grid", "resource", "population", "sensor", "sensor_reading")


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")

    # -- roles: a NOLOGIN group the app's login role is made a member of -------
    op.execute(
        """
        DO $$
        BEGIN
          IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dvmap_app_rw') THEN
            CREATE ROLE dvmap_app_rw NOLOGIN NOSUPERUSER NOBYPASSRLS;
          END IF;
          IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dvmap_app') THEN
            GRANT dvmap_app_rw TO dvmap_app;
          END IF;
        END $$;
        """
    )

    # -- scope functions read by every row-level-security policy ---------------
    # The scope is a transaction-local setting: '*' = whole county, '1,2,3' =
    # those village ids, unset or '' = nothing.
    op.execute(
        """
        CREATE FUNCTION dvmap_scope_all() RETURNS boolean
        LANGUAGE sql STABLE PARALLEL SAFE AS
        $$ SELECT coalesce(current_setting('dvmap.scope', true), '') = '*' $$;

        CREATE FUNCTION dvmap_scope_villages() RETURNS integer[]
        LANGUAGE sql STABLE PARALLEL SAFE AS
        $$ SELECT CASE WHEN coalesce(current_setting('dvmap.scope', true), '') IN ('', '*') THEN NULL
                       ELSE string_to_array(current_setting('dvmap.scope', true), ',')::integer[] END $$;

        CREATE FUNCTION dvmap_village_visible(v integer) RETURNS boolean
        LANGUAGE sql STABLE PARALLEL SAFE AS
        $$ SELECT dvmap_scope_all() OR v = ANY (dvmap_scope_villages()) $$;
        """
    )

    # -- administrative units ---------------------------------------------------
    op.execute(
        """
        CREATE TABLE county (
            id          serial PRIMARY KEY,
            code        char(6) NOT NULL UNIQUE CHECK (code ~ '^[0-9]{6}$'),
            name        text NOT NULL,
            geom        geometry(MultiPolygon, 4490) NOT NULL,
            source      text NOT NULL,
            source_note text
        );
        CREATE INDEX county_geom_gix ON county USING gist (geom);

        CREATE TABLE town (
            id        serial PRIMARY KEY,
            county_id integer NOT NULL REFERENCES county(id),
            code      char(12) NOT NULL UNIQUE CHECK (code ~ '^[0-9]{9}000$'),
            name      text NOT NULL,
            kind      text NOT NULL DEFAULT 'town' CHECK (kind IN ('town', 'subdistrict', 'township')),
            geom      geometry(MultiPolygon, 4490) NOT NULL
        );
        CREATE INDEX town_geom_gix ON town USING gist (geom);

        CREATE TABLE village (
            id          serial PRIMARY KEY,
            town_id     integer NOT NULL REFERENCES town(id),
            code        char(12) NOT NULL UNIQUE CHECK (code ~ '^[0-9]{12}$'),
            name        text NOT NULL,
            geom        geometry(MultiPolygon, 4490) NOT NULL CHECK (ST_IsValid(geom)),
            label_point geometry(Point, 4490) NOT NULL,
            area_m2     double precision GENERATED ALWAYS AS (ST_Area(ST_Transform(geom, 4549))) STORED
        );
        CREATE INDEX village_geom_gix ON village USING gist (geom);
        CREATE INDEX village_label_gix ON village USING gist (label_point);
        CREATE INDEX village_town_idx ON village (town_id);
        CREATE INDEX village_name_idx ON village (name);
        """
    )

    # -- people: grid workers and officials -------------------------------------
    op.execute(
        """
        CREATE TABLE person (
            id         serial PRIMARY KEY,
            village_id integer REFERENCES village(id),
            name       text NOT NULL,
            duty       text NOT NULL CHECK (duty IN ('grid_worker', 'village_official', 'town_official',
                                                      'county_staff', 'department_staff')),
            phone      text,
            active     boolean NOT NULL DEFAULT true
        );
        CREATE INDEX person_village_idx ON person (village_id);
        """
    )

    # -- grids, versioned: a redraw closes the old row and inserts a new one -----
    op.execute(
        """
        CREATE TABLE grid (
            id         bigserial PRIMARY KEY,
            uid        uuid NOT NULL,
            version    integer NOT NULL DEFAULT 1 CHECK (version >= 1),
            village_id integer NOT NULL REFERENCES village(id),
            code       char(15) NOT NULL CHECK (code ~ '^[0-9]{15}$'),
            name       text NOT NULL,
            geom       geometry(MultiPolygon, 4490) NOT NULL CHECK (ST_IsValid(geom)),
            worker_id  integer REFERENCES person(id),
            valid_from timestamptz NOT NULL DEFAULT now(),
            valid_to   timestamptz,
            changed_by text,
            CHECK (valid_to IS NULL OR valid_to > valid_from),
            UNIQUE (uid, version)
        );
        CREATE UNIQUE INDEX grid_current_code_uq ON grid (code) WHERE valid_to IS NULL;
        CREATE UNIQUE INDEX grid_current_uid_uq ON grid (uid) WHERE valid_to IS NULL;
        CREATE INDEX grid_geom_gix ON grid USING gist (geom);
        CREATE INDEX grid_current_geom_gix ON grid USING gist (geom) WHERE valid_to IS NULL;
        CREATE INDEX grid_village_idx ON grid (village_id);
        """
    )

    # -- public resources -------------------------------------------------------
    op.execute(
        """
        CREATE TABLE resource_type (
            code     text PRIMARY KEY,
            name_zh  text NOT NULL,
            name_en  text NOT NULL,
            icon     text NOT NULL,
            color    text NOT NULL,
            capacity_unit_zh text,
            capacity_unit_en text,
            sort     integer NOT NULL DEFAULT 0
        );
        INSERT INTO resource_type VALUES
          ('school',          '学校',         'School',            '校', '#1f6feb', '学位', 'seats', 1),
          ('kindergarten',    '幼儿园',       'Kindergarten',      '幼', '#8957e5', '学位', 'places', 2),
          ('clinic',          '卫生院/卫生室', 'Clinic',            '医', '#d1242f', '床位', 'beds', 3),
          ('elderly_care',    '养老服务中心',  'Elderly care',      '老', '#bf8700', '床位', 'beds', 4),
          ('service_station', '便民服务站',    'Service station',   '服', '#1a7f37', '窗口', 'desks', 5),
          ('cultural_hall',   '文化礼堂',      'Cultural hall',     '文', '#0969da', '座位', 'seats', 6);

        CREATE TABLE resource (
            id         serial PRIMARY KEY,
            village_id integer NOT NULL REFERENCES village(id),
            type       text NOT NULL REFERENCES resource_type(code),
            name       text NOT NULL,
            capacity   integer CHECK (capacity IS NULL OR capacity >= 0),
            address    text,
            geom       geometry(Point, 4490) NOT NULL,
            attrs      jsonb NOT NULL DEFAULT '{}'::jsonb,
            source     text NOT NULL DEFAULT 'demo'
        );
        CREATE INDEX resource_geom_gix ON resource USING gist (geom);
        CREATE INDEX resource_village_idx ON resource (village_id);
        CREATE INDEX resource_type_idx ON resource (type);
        """
    )

    # -- population per village (grid_uid NULL) and per grid --------------------
    op.execute(
        """
        CREATE TABLE population (
            id          serial PRIMARY KEY,
            village_id  integer NOT NULL REFERENCES village(id),
            grid_uid    uuid,
            year        integer NOT NULL CHECK (year BETWEEN 1949 AND 2100),
            total       integer NOT NULL CHECK (total >= 0),
            age_60_plus integer NOT NULL CHECK (age_60_plus >= 0 AND age_60_plus <= total),
            households  integer NOT NULL CHECK (households >= 0),
            UNIQUE NULLS NOT DISTINCT (village_id, grid_uid, year)
        );
        CREATE INDEX population_grid_idx ON population (grid_uid);
        """
    )

    # -- sensors ----------------------------------------------------------------
    op.execute(
        """
        CREATE TABLE sensor_type (
            code              text PRIMARY KEY,
            name_zh           text NOT NULL,
            name_en           text NOT NULL,
            per_100k          integer NOT NULL,
            report_interval_s integer NOT NULL CHECK (report_interval_s > 0),
            main_value        text NOT NULL,
            unit              text NOT NULL,
            sort              integer NOT NULL DEFAULT 0
        );
        -- Densities per 100k people from the 一网统管 material.
        INSERT INTO sensor_type VALUES
          ('manhole',     '智能井盖',   'Manhole cover',       500,  600, 'tilt_deg',     '°',    1),
          ('trash_bin',   '垃圾桶满溢', 'Trash-bin fill',      200,  900, 'fill_pct',     '%',    2),
          ('environment', '环境监测',   'Environment monitor',  50,  300, 'pm25',         'µg/m³', 3),
          ('camera',      'AI摄像头',   'AI camera',           300,  300, 'detections',   '次',   4),
          ('smoke',       '烟感探测器', 'Smoke detector',     1000, 1800, 'smoke_obscura','%/m',  5),
          ('geohazard',   '地灾监测',   'Geohazard monitor',    20,  600, 'displacement_mm', 'mm', 6);

        CREATE TABLE sensor (
            id                serial PRIMARY KEY,
            code              text NOT NULL UNIQUE,
            type              text NOT NULL REFERENCES sensor_type(code),
            village_id        integer NOT NULL REFERENCES village(id),
            geom              geometry(Point, 4490) NOT NULL,
            status            text NOT NULL DEFAULT 'normal' CHECK (status IN ('normal', 'alarm', 'offline')),
            installed_at      timestamptz NOT NULL DEFAULT now(),
            last_seen_at      timestamptz,
            last_seq          bigint,
            last_values       jsonb
        );
        CREATE INDEX sensor_geom_gix ON sensor USING gist (geom);
        CREATE INDEX sensor_village_idx ON sensor (village_id);
        CREATE INDEX sensor_status_idx ON sensor (status);

        -- UNIQUE (sensor, seq): QoS 1 redeliveries and retries never duplicate.
        CREATE TABLE sensor_reading (
            sensor_id   integer NOT NULL REFERENCES sensor(id),
            seq         bigint NOT NULL,
            village_id  integer NOT NULL,
            measured_at timestamptz NOT NULL,
            received_at timestamptz NOT NULL DEFAULT now(),
            "values"    jsonb NOT NULL,
            PRIMARY KEY (sensor_id, seq)
        );
        CREATE INDEX sensor_reading_time_idx ON sensor_reading (sensor_id, measured_at DESC);
        """
    )

    # -- row-level security: forced, so even the owner goes through the scope ---
    for table in SCOPED_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        column = "id" if table == "village" else "village_id"
        op.execute(
            f"CREATE POLICY {table}_scope ON {table} USING (dvmap_village_visible({column}))"
            f" WITH CHECK (dvmap_village_visible({column}))"
        )
    # person rows without a village (county staff) are visible to county scope only;
    # dvmap_village_visible(NULL) is true only for '*'.

    op.execute(
        """
        GRANT USAGE ON SCHEMA public TO dvmap_app_rw;
        GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO dvmap_app_rw;
        GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO dvmap_app_rw;
        -- Reference data is not the app's to change.
        REVOKE INSERT, UPDATE, DELETE ON county, town, resource_type, sensor_type
            FROM dvmap_app_rw;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public
            GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO dvmap_app_rw;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public
            GRANT USAGE, SELECT ON SEQUENCES TO dvmap_app_rw;
        """
    )


def downgrade() -> None:
    for table in ("sensor_reading", "sensor", "sensor_type", "population", "resource", "resource_type",
                  "grid", "person", "village", "town", "county"):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    op.execute("DROP FUNCTION IF EXISTS dvmap_village_visible(integer), dvmap_scope_villages(), dvmap_scope_all()")
