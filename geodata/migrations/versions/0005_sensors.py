"""Sensors: alarm rules as data, alarm episodes, ingest counters and rejections.

Revision ID: 0005
Revises: 0004

* ``sensor_rule`` — thresholds per sensor type with hysteresis: an episode opens
  when a value passes ``raise_level`` and clears only once it is back past
  ``clear_level``, so a value hovering at the threshold does not flap. Each rule
  names the event subclass (and so the department) its alarms open. Reference
  data: the app role reads it, never writes it.
* ``sensor_type.offline_after_reports`` — a sensor silent for longer than that
  many reporting intervals is offline (an episode of kind ``offline``).
* ``sensor_alarm`` — one row per alarm episode (threshold or offline), with the
  event it opened and the sequence numbers of the readings it covers.
  Village-scoped (RLS like 0001).
* ``sensor.status_changed_at`` — lets the live map ask "what changed since …".
* ``sensor_ingest_counter`` / ``sensor_ingest_rejection`` — what the ingest saw:
  exact counts per day, source and outcome, and a (sampled) log of rejected
  payloads with their reason. Not village-scoped: a rejected payload may name no
  known sensor at all.
"""
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# (sensor_type, code, value_key, comparison, raise_level, clear_level, subclass, urgency, source,
#  label_zh, label_en). Levels follow the demo generator's ALARM_THRESHOLDS
# (etl/demo/spec.py) where it has one; clear levels sit far enough below the
# raise level to be outside the value's noise.
RULES = [
    ("trash_bin", "fill", "fill_pct", ">=", 80, 70, "0102", "normal", "sensor",
     "垃圾桶满溢", "Trash bin full"),
    ("manhole", "tilt", "tilt_deg", ">=", 15, 10, "0302", "urgent", "sensor",
     "井盖倾斜", "Manhole cover tilted"),
    # A flag: true counts as 1. Raised while open, cleared once closed again.
    ("manhole", "open", "cover_open", ">=", 1, 1, "0301", "urgent", "sensor",
     "井盖开启/缺失", "Manhole cover open or missing"),
    ("smoke", "smoke", "smoke_obscura", ">", 10, 5, "0501", "emergency", "sensor",
     "烟雾浓度超限", "Smoke above limit"),
    # GB 3095-2012 grade II 24-hour limit for PM2.5.
    ("environment", "pm25", "pm25", ">", 75, 60, "0503", "normal", "sensor",
     "PM2.5 超标", "PM2.5 above limit"),
    # GB 3096-2008 class 4a daytime limit.
    ("environment", "noise", "noise_db", ">", 70, 65, "0506", "normal", "sensor",
     "噪声超标", "Noise above limit"),
    ("geohazard", "displacement", "displacement_mm", ">", 20, 15, "0502", "urgent", "sensor",
     "地表位移超限", "Ground displacement above limit"),
    ("geohazard", "rain", "rain_mm", ">=", 30, 10, "0502", "urgent", "sensor",
     "小时降雨量超限", "Hourly rainfall above limit"),
    # AI cameras count people in view; a crowd is a public-order matter, and
    # their events are 视频AI by source.
    ("camera", "crowd", "detections", ">=", 60, 45, "0705", "normal", "video_ai",
     "人员聚集", "Crowd gathering"),
]


def _q(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def upgrade() -> None:
    # -- a subclass the sensors need that 0002 lacks --------------------------------
    op.execute(
        """
        INSERT INTO event_subclass (code, class_code, name_zh, name_en, sensor_type, sort)
        VALUES ('0506', '05', '噪声超标', 'Noise above limit', 'environment', 506);
        INSERT INTO event_routing VALUES ('0506', 'ecology');
        INSERT INTO event_sla VALUES ('0506', 'normal', 24), ('0506', 'urgent', 12), ('0506', 'emergency', 6);
        """
    )

    # -- rules ----------------------------------------------------------------------
    values = ",\n".join("(" + ", ".join(_q(v) for v in row) + ")" for row in RULES)
    op.execute(
        f"""
        CREATE TABLE sensor_rule (
            id            serial PRIMARY KEY,
            sensor_type   text NOT NULL REFERENCES sensor_type(code),
            code          text NOT NULL CHECK (code ~ '^[a-z][a-z0-9_]{{0,39}}$'),
            value_key     text NOT NULL CHECK (value_key ~ '^[a-z][a-z0-9_]{{0,39}}$'),
            comparison    text NOT NULL CHECK (comparison IN ('>=', '>', '<=', '<')),
            raise_level   double precision NOT NULL,
            clear_level   double precision NOT NULL,
            subclass_code text NOT NULL REFERENCES event_subclass(code),
            urgency       text NOT NULL REFERENCES event_urgency(code),
            event_source  text NOT NULL DEFAULT 'sensor' REFERENCES event_source(code),
            label_zh      text NOT NULL,
            label_en      text NOT NULL,
            active        boolean NOT NULL DEFAULT true,
            UNIQUE (sensor_type, code),
            -- hysteresis: the clear level lies on the normal side of the raise level
            CHECK (CASE WHEN comparison IN ('>=', '>') THEN clear_level <= raise_level
                        ELSE clear_level >= raise_level END)
        );
        INSERT INTO sensor_rule (sensor_type, code, value_key, comparison, raise_level, clear_level,
                                 subclass_code, urgency, event_source, label_zh, label_en)
        VALUES {values};

        ALTER TABLE sensor_type ADD COLUMN offline_after_reports integer NOT NULL DEFAULT 3
            CHECK (offline_after_reports >= 1);
        ALTER TABLE sensor ADD COLUMN status_changed_at timestamptz NOT NULL DEFAULT now();
        CREATE INDEX sensor_status_changed_idx ON sensor (status_changed_at);
        """
    )

    # -- alarm episodes ---------------------------------------------------------------
    op.execute(
        """
        CREATE TABLE sensor_alarm (
            id                bigserial PRIMARY KEY,
            sensor_id         integer NOT NULL REFERENCES sensor(id),
            village_id        integer NOT NULL REFERENCES village(id),
            kind              text NOT NULL CHECK (kind IN ('threshold', 'offline')),
            rule_id           integer REFERENCES sensor_rule(id),
            opened_at         timestamptz NOT NULL,   -- measured time of the raising reading / silence limit
            cleared_at        timestamptz,            -- measured time of the clearing reading
            open_seq          bigint,
            clear_seq         bigint,
            open_value        double precision,
            peak_value        double precision,
            clear_value       double precision,
            reading_seqs      bigint[] NOT NULL DEFAULT '{}',   -- readings of the episode, in time order
            event_id          bigint,
            event_reported_at timestamptz,
            created_at        timestamptz NOT NULL DEFAULT now(),
            updated_at        timestamptz NOT NULL DEFAULT now(),
            CHECK ((kind = 'threshold') = (rule_id IS NOT NULL)),
            CHECK (cleared_at IS NULL OR cleared_at >= opened_at),
            CHECK ((event_id IS NULL) = (event_reported_at IS NULL)),
            FOREIGN KEY (event_id, event_reported_at) REFERENCES event (id, reported_at)
        );
        -- one open episode per sensor and rule, and one open offline episode per sensor
        CREATE UNIQUE INDEX sensor_alarm_open_rule_uq ON sensor_alarm (sensor_id, rule_id)
            WHERE cleared_at IS NULL AND kind = 'threshold';
        CREATE UNIQUE INDEX sensor_alarm_open_offline_uq ON sensor_alarm (sensor_id)
            WHERE cleared_at IS NULL AND kind = 'offline';
        CREATE INDEX sensor_alarm_sensor_idx ON sensor_alarm (sensor_id, opened_at DESC);
        CREATE INDEX sensor_alarm_event_idx ON sensor_alarm (event_id) WHERE event_id IS NOT NULL;
        CREATE INDEX sensor_alarm_village_idx ON sensor_alarm (village_id);

        ALTER TABLE sensor_alarm ENABLE ROW LEVEL SECURITY;
        ALTER TABLE sensor_alarm FORCE ROW LEVEL SECURITY;
        CREATE POLICY sensor_alarm_scope ON sensor_alarm
            USING (dvmap_village_visible(village_id)) WITH CHECK (dvmap_village_visible(village_id));
        -- episodes are history: cleared, never deleted by the app
        REVOKE DELETE ON sensor_alarm FROM dvmap_app_rw;
        """
    )

    # -- what the ingest saw -------------------------------------------------------------
    op.execute(
        """
        CREATE TABLE sensor_ingest_counter (
            day     date NOT NULL,
            source  text NOT NULL CHECK (source IN ('mqtt', 'http', 'cli')),
            outcome text NOT NULL CHECK (outcome IN ('stored', 'duplicate', 'late', 'rejected',
                                                     'alarm_opened', 'alarm_cleared',
                                                     'offline_opened', 'offline_cleared')),
            reason  text NOT NULL DEFAULT '',
            count   bigint NOT NULL DEFAULT 0 CHECK (count >= 0),
            PRIMARY KEY (day, source, outcome, reason)
        );

        CREATE TABLE sensor_ingest_rejection (
            id          bigserial PRIMARY KEY,
            at          timestamptz NOT NULL DEFAULT now(),
            source      text NOT NULL CHECK (source IN ('mqtt', 'http', 'cli')),
            client      text,
            topic       text,
            sensor_code text,
            reason      text NOT NULL,
            detail      text,
            payload     text CHECK (length(payload) <= 1000)
        );
        CREATE INDEX sensor_ingest_rejection_at_idx ON sensor_ingest_rejection (at);

        REVOKE DELETE ON sensor_ingest_counter FROM dvmap_app_rw;
        REVOKE UPDATE ON sensor_ingest_rejection FROM dvmap_app_rw;
        REVOKE INSERT, UPDATE, DELETE ON sensor_rule FROM dvmap_app_rw;
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS sensor_ingest_rejection, sensor_ingest_counter, sensor_alarm CASCADE")
    op.execute("DROP INDEX IF EXISTS sensor_status_changed_idx")
    op.execute("ALTER TABLE sensor DROP COLUMN IF EXISTS status_changed_at")
    op.execute("ALTER TABLE sensor_type DROP COLUMN IF EXISTS offline_after_reports")
    op.execute("DROP TABLE IF EXISTS sensor_rule CASCADE")
    op.execute("DELETE FROM event_sla WHERE subclass_code = '0506'")
    op.execute("DELETE FROM event_routing WHERE subclass_code = '0506'")
    op.execute("DELETE FROM event_subclass WHERE code = '0506'")
