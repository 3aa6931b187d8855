"""Events: categories, routing, SLA, the partitioned event table, history, photos, API clients.

Revision ID: 0002
Revises: 0001

Reference data (categories in the style of GB/T 30428.2 / CJ/T 214, routing to
departments, SLA hours, sources, urgencies) lives in tables so it can change
without code. The app role may read it, never write it.

``event`` is partitioned by year of ``reported_at`` (2020-2030 in Beijing time,
plus a DEFAULT partition) so that a million events a year stay cheap to scan by
period; its primary key is therefore ``(id, reported_at)``, with ``id`` alone
unique in practice because it comes from one sequence.

Row-level security follows 0001 (``dvmap_village_visible(village_id)``) with one
addition: when ``dvmap.role`` is ``grid_worker`` an event is visible only if its
grid is in ``dvmap.grids`` ('*' or a comma list of grid uids). Inserts check the
village only, so a worker on patrol may report an event that routes to a
neighbour's grid.
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# The one literal copy of the workflow's states (geodata.workflow.State); a test
# compares the two so they cannot drift apart silently.
EVENT_STATES = ("reported", "accepted", "rejected", "dispatched", "in_progress", "postponed",
                "handled", "verified", "closed", "evaluated")

DEPARTMENTS = [
    ("village_committee", "村民委员会", "Village committee"),
    ("town_center", "乡镇社会治理中心", "Town governance centre"),
    ("law_enforcement", "综合行政执法局", "Law enforcement bureau"),
    ("sanitation", "环境卫生管理所", "Sanitation office"),
    ("housing", "住房和城乡建设局", "Housing and construction bureau"),
    ("transport", "交通运输局", "Transport bureau"),
    ("natural_resources", "自然资源和规划局", "Natural resources and planning bureau"),
    ("ecology", "生态环境分局", "Ecology and environment branch"),
    ("emergency", "应急管理局", "Emergency management bureau"),
    ("fire", "消防救援大队", "Fire and rescue brigade"),
    ("water", "水利局", "Water resources bureau"),
    ("agriculture", "农业农村局", "Agriculture and rural affairs bureau"),
    ("civil_affairs", "民政局", "Civil affairs bureau"),
    ("justice", "司法所", "Justice office"),
    ("public_security", "派出所", "Police station"),
    ("power", "供电公司", "Power supply company"),
    ("water_supply", "供水公司", "Water supply company"),
]

# (code, kind, name_zh, name_en); kind: 'event' (事件) or 'component' (部件).
CLASSES = [
    ("01", "event", "市容环境", "City appearance"),
    ("02", "event", "街面秩序", "Street order"),
    ("03", "component", "公用设施", "Public facilities"),
    ("04", "component", "园林绿化", "Greenery"),
    ("05", "event", "环境保护", "Environmental protection"),
    ("06", "event", "施工管理", "Construction management"),
    ("07", "event", "社会治理", "Social governance"),
    ("08", "event", "民生服务", "Public services"),
]

# (code, class, name_zh, name_en, department, hours for 'normal', sensor_type or None)
SUBCLASSES = [
    ("0101", "01", "暴露垃圾", "Exposed rubbish", "sanitation", 24, None),
    ("0102", "01", "垃圾满溢", "Overflowing bin", "sanitation", 12, "trash_bin"),
    ("0103", "01", "道路不洁", "Dirty road", "sanitation", 24, None),
    ("0104", "01", "乱堆物料", "Materials piled in public space", "law_enforcement", 48, None),
    ("0105", "01", "私搭乱建", "Illegal structure", "law_enforcement", 168, None),
    ("0106", "01", "违规张贴小广告", "Illegal flyers", "law_enforcement", 48, None),
    ("0201", "02", "占道经营", "Street vending on the road", "law_enforcement", 24, None),
    ("0202", "02", "店外经营", "Trading outside the shop", "law_enforcement", 24, None),
    ("0203", "02", "乱停放车辆", "Illegal parking", "public_security", 12, None),
    ("0204", "02", "流浪乞讨", "Vagrancy and begging", "civil_affairs", 24, None),
    ("0301", "03", "井盖缺失", "Missing manhole cover", "housing", 4, "manhole"),
    ("0302", "03", "井盖破损", "Damaged manhole cover", "housing", 24, "manhole"),
    ("0303", "03", "路灯损坏", "Broken street light", "housing", 72, None),
    ("0304", "03", "道路破损", "Damaged road surface", "transport", 72, None),
    ("0305", "03", "护栏损坏", "Damaged guardrail", "transport", 72, None),
    ("0306", "03", "供水管道漏水", "Water main leak", "water_supply", 12, None),
    ("0401", "04", "绿地脏乱", "Untidy green space", "sanitation", 48, None),
    ("0402", "04", "树木倒伏", "Fallen tree", "agriculture", 12, None),
    ("0403", "04", "毁绿占绿", "Damage to green space", "law_enforcement", 72, None),
    ("0501", "05", "烟雾报警", "Smoke alarm", "fire", 1, "smoke"),
    ("0502", "05", "地质灾害隐患", "Geological hazard", "natural_resources", 4, "geohazard"),
    ("0503", "05", "空气污染", "Air pollution", "ecology", 24, "environment"),
    ("0504", "05", "河道污染", "River pollution", "water", 48, None),
    ("0505", "05", "焚烧秸秆垃圾", "Burning straw or rubbish", "ecology", 4, None),
    ("0601", "06", "施工扰民", "Construction nuisance", "housing", 24, None),
    ("0602", "06", "渣土撒漏", "Spilled construction muck", "law_enforcement", 24, None),
    ("0701", "07", "邻里纠纷", "Neighbour dispute", "village_committee", 72, None),
    ("0702", "07", "土地纠纷", "Land dispute", "justice", 168, None),
    ("0703", "07", "劳资纠纷", "Wage dispute", "justice", 120, None),
    ("0704", "07", "安全隐患", "Safety hazard", "emergency", 24, None),
    ("0705", "07", "治安隐患", "Public-order risk", "public_security", 24, None),
    ("0801", "08", "独居老人关爱", "Elderly person living alone needs help", "civil_affairs", 48, None),
    ("0802", "08", "困难群众帮扶", "Hardship assistance", "civil_affairs", 120, None),
    ("0803", "08", "停水停电", "Water or power outage", "power", 8, None),
]

URGENCIES = [("normal", "一般", "Normal", 1), ("urgent", "紧急", "Urgent", 2), ("emergency", "特急", "Emergency", 3)]
# SLA hours per urgency as a share of the 'normal' limit, never below the floor.
URGENCY_FACTOR = {"normal": (1.0, 1.0), "urgent": (0.5, 1.0), "emergency": (0.25, 0.5)}

SOURCES = [
    ("patrol", "网格员巡查", "Grid-worker patrol", 1),
    ("hotline", "12345热线", "12345 hotline", 2),
    ("citizen", "群众随手拍", "Citizen snapshot", 3),
    ("video_ai", "视频AI", "Video AI", 4),
    ("sensor", "传感器", "Sensor", 5),
    ("superior", "上级交办", "Assigned by higher level", 6),
]

PARTITION_YEARS = range(2020, 2031)
SCOPED = ("event", "event_request", "event_history", "event_photo")
REFERENCE = ("department", "event_class", "event_subclass", "event_urgency", "event_source",
             "event_routing", "event_sla")


def _q(value) -> str:
    """SQL literal for the small reference lists above (trusted constants)."""
    if value is None:
        return "NULL"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _values(rows) -> str:
    return ",\n".join("(" + ", ".join(_q(v) for v in row) + ")" for row in rows)


# The first routing function; 0012 replaces it with a faster one (and puts this back on downgrade).
ROUTE_EVENT_FUNCTION = """
        -- Each ST_Intersects is paired with an explicit `&&`: under row-level security only
        -- leakproof operators may use an index, and ST_Intersects itself is not one.

        CREATE FUNCTION dvmap_route_event(lon double precision, lat double precision,
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
        BEGIN
          PERFORM set_config('dvmap.scope', '*', true);
          RETURN QUERY
          WITH p AS (
            SELECT ST_SetSRID(ST_MakePoint(lon, lat), 4490) AS geom
          ), g AS (
            SELECT gr.id, gr.uid, gr.village_id, pe.id AS worker_id
              FROM grid gr CROSS JOIN p
              LEFT JOIN person pe ON pe.id = gr.worker_id AND pe.active
             WHERE gr.valid_to IS NULL AND gr.geom && p.geom AND ST_Intersects(gr.geom, p.geom)
             ORDER BY gr.id LIMIT 1
          ), v AS (
            SELECT vv.id, vv.town_id FROM village vv CROSS JOIN p
             WHERE vv.id = (SELECT g.village_id FROM g)
                OR (NOT EXISTS (SELECT 1 FROM g) AND vv.geom && p.geom AND ST_Intersects(vv.geom, p.geom))
             ORDER BY vv.id LIMIT 1
          ), t AS (
            SELECT coalesce((SELECT v.town_id FROM v),
                            (SELECT tt.id FROM town tt CROSS JOIN p
                              WHERE tt.geom && p.geom AND ST_Intersects(tt.geom, p.geom) ORDER BY tt.id LIMIT 1)) AS id
          ), near AS (
            -- other current grids within boundary_m metres: a bbox prefilter on the GiST
            -- index (degrees of longitude shrink with cos(lat); 20 % margin), then the
            -- exact distance on the spheroid
            SELECT coalesce(array_agg(gr.uid ORDER BY ST_Distance(gr.geom::geography, p.geom::geography),
                                      gr.uid), '{}') AS uids
              FROM grid gr CROSS JOIN p
             WHERE gr.valid_to IS NULL
               AND gr.geom && ST_Expand(p.geom, 1.2 * boundary_m / (111000.0 * greatest(cos(radians(lat)), 0.05)))
               AND gr.uid IS DISTINCT FROM (SELECT g.uid FROM g)
               AND ST_DWithin(gr.geom::geography, p.geom::geography, boundary_m)
          ), cand AS (
            SELECT CASE WHEN EXISTS (SELECT 1 FROM g)
                        THEN array_prepend((SELECT g.uid FROM g), near.uids)
                        ELSE near.uids END AS uids
              FROM near
          )
          SELECT EXISTS (SELECT 1 FROM county c CROSS JOIN p WHERE c.geom && p.geom AND ST_Intersects(c.geom, p.geom)),
                 (SELECT v.id FROM v),
                 (SELECT t.id FROM t),
                 (SELECT g.id FROM g),
                 (SELECT g.uid FROM g),
                 (SELECT g.worker_id FROM g),
                 (SELECT r.department FROM event_routing r WHERE r.subclass_code = subclass),
                 CASE WHEN EXISTS (SELECT 1 FROM g) THEN 'grid'
                      WHEN EXISTS (SELECT 1 FROM v) THEN 'village' ELSE 'county' END,
                 NOT EXISTS (SELECT 1 FROM g),
                 cardinality(cand.uids) > 1 OR (NOT EXISTS (SELECT 1 FROM g) AND cardinality(cand.uids) > 0),
                 cand.uids
            FROM cand;
          PERFORM set_config('dvmap.scope', coalesce(caller_scope, ''), true);
        END
        $fn$;
        """


def upgrade() -> None:
    # -- reference data ---------------------------------------------------------
    op.execute(
        f"""
        CREATE TABLE department (
            code    text PRIMARY KEY,
            name_zh text NOT NULL,
            name_en text NOT NULL
        );
        INSERT INTO department VALUES {_values(DEPARTMENTS)};

        CREATE TABLE event_class (
            code    text PRIMARY KEY CHECK (code ~ '^[0-9]{{2}}$'),
            kind    text NOT NULL CHECK (kind IN ('event', 'component')),
            name_zh text NOT NULL,
            name_en text NOT NULL,
            sort    integer NOT NULL DEFAULT 0
        );
        INSERT INTO event_class (code, kind, name_zh, name_en)
        VALUES {_values(CLASSES)};
        UPDATE event_class SET sort = code::integer;

        -- Subclass codes are the Open311 service_code.
        CREATE TABLE event_subclass (
            code        text PRIMARY KEY CHECK (code ~ '^[0-9]{{4}}$'),
            class_code  text NOT NULL REFERENCES event_class(code),
            name_zh     text NOT NULL,
            name_en     text NOT NULL,
            sensor_type text REFERENCES sensor_type(code),
            active      boolean NOT NULL DEFAULT true,
            sort        integer NOT NULL DEFAULT 0,
            CHECK (left(code, 2) = class_code)
        );
        INSERT INTO event_subclass (code, class_code, name_zh, name_en, sensor_type)
        VALUES {_values([(c, k, zh, en, st) for c, k, zh, en, _d, _h, st in SUBCLASSES])};
        UPDATE event_subclass SET sort = code::integer;

        CREATE TABLE event_urgency (
            code    text PRIMARY KEY,
            name_zh text NOT NULL,
            name_en text NOT NULL,
            sort    integer NOT NULL
        );
        INSERT INTO event_urgency VALUES {_values(URGENCIES)};

        CREATE TABLE event_source (
            code    text PRIMARY KEY,
            name_zh text NOT NULL,
            name_en text NOT NULL,
            sort    integer NOT NULL
        );
        INSERT INTO event_source VALUES {_values(SOURCES)};

        -- Which department answers for a subclass (category → department).
        CREATE TABLE event_routing (
            subclass_code text PRIMARY KEY REFERENCES event_subclass(code),
            department    text NOT NULL REFERENCES department(code)
        );
        INSERT INTO event_routing VALUES {_values([(c, d) for c, _k, _zh, _en, d, _h, _st in SUBCLASSES])};

        -- Time limit from dispatch, per subclass and urgency.
        CREATE TABLE event_sla (
            subclass_code text NOT NULL REFERENCES event_subclass(code),
            urgency       text NOT NULL REFERENCES event_urgency(code),
            hours         numeric(7, 2) NOT NULL CHECK (hours > 0),
            PRIMARY KEY (subclass_code, urgency)
        );
        INSERT INTO event_sla VALUES {_values([
            (c, u, round(max(h * f, floor), 2))
            for c, _k, _zh, _en, _d, h, _st in SUBCLASSES
            for u, (f, floor) in URGENCY_FACTOR.items()
        ])};
        """
    )

    # -- scope helpers for grid workers -----------------------------------------
    op.execute(
        """
        CREATE FUNCTION dvmap_is_grid_worker() RETURNS boolean
        LANGUAGE sql STABLE PARALLEL SAFE AS
        $$ SELECT coalesce(current_setting('dvmap.role', true), '') = 'grid_worker' $$;

        -- True unless the caller is a grid worker whose grid list lacks g.
        CREATE FUNCTION dvmap_grid_visible(g uuid) RETURNS boolean
        LANGUAGE sql STABLE PARALLEL SAFE AS
        $$ SELECT NOT dvmap_is_grid_worker()
                  OR coalesce(current_setting('dvmap.grids', true), '') = '*'
                  OR coalesce(g::text = ANY (string_to_array(nullif(current_setting('dvmap.grids', true), ''), ',')),
                              false) $$;
        """
    )

    # -- events, partitioned by year of report ------------------------------------
    states = ", ".join(_q(s) for s in EVENT_STATES)
    op.execute(
        f"""
        CREATE SEQUENCE event_id_seq AS bigint;

        CREATE TABLE event (
            id                  bigint NOT NULL DEFAULT nextval('event_id_seq'),
            reported_at         timestamptz NOT NULL DEFAULT now(),
            -- route: NULL village = county queue (visible to county scope only)
            village_id          integer REFERENCES village(id),
            town_id             integer REFERENCES town(id),
            grid_uid            uuid,
            grid_id             bigint REFERENCES grid(id),
            worker_id           integer REFERENCES person(id),
            department          text REFERENCES department(code),
            queue               text NOT NULL CHECK (queue IN ('grid', 'village', 'county')),
            outside_grid        boolean NOT NULL DEFAULT false,
            boundary_pending    boolean NOT NULL DEFAULT false,
            candidate_grid_uids uuid[] NOT NULL DEFAULT '{{}}',
            -- what
            class_code          text NOT NULL REFERENCES event_class(code),
            subclass_code       text NOT NULL REFERENCES event_subclass(code),
            description         text NOT NULL CHECK (length(btrim(description)) BETWEEN 1 AND 2000),
            urgency             text NOT NULL REFERENCES event_urgency(code),
            source              text NOT NULL REFERENCES event_source(code),
            address             text,
            media_url           text,
            geom                geometry(Point, 4490) NOT NULL,
            -- who reported (personal data: never public)
            reporter_name       text,
            reporter_phone      text,
            reporter_email      text,
            reported_by         text NOT NULL,
            api_client_id       integer,
            sensor_id           integer REFERENCES sensor(id),
            -- the loop
            state               text NOT NULL DEFAULT 'reported' CHECK (state IN ({states})),
            version             integer NOT NULL DEFAULT 1 CHECK (version >= 1),
            dispatched_at       timestamptz,
            sla_due_at          timestamptz,   -- dispatch + SLA hours, never moved
            due_at              timestamptz,   -- effective deadline (moved by an approved 缓办)
            postponed_until     timestamptz,
            postpone_count      integer NOT NULL DEFAULT 0 CHECK (postpone_count >= 0),
            handled_at          timestamptz,
            verified_at         timestamptz,
            closed_at           timestamptz,
            evaluated_at        timestamptz,
            result              text,
            rating              smallint CHECK (rating BETWEEN 1 AND 5),
            rework_count        integer NOT NULL DEFAULT 0 CHECK (rework_count >= 0),
            escalation_level    smallint NOT NULL DEFAULT 0 CHECK (escalation_level BETWEEN 0 AND 2),
            overdue_at          timestamptz,
            updated_at          timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (id, reported_at),
            CHECK ((closed_at IS NOT NULL) = (state IN ('closed', 'evaluated'))),
            CHECK ((rating IS NOT NULL) = (state = 'evaluated')),
            CHECK (queue <> 'grid' OR grid_uid IS NOT NULL),
            CHECK ((queue = 'county') = (village_id IS NULL))
        ) PARTITION BY RANGE (reported_at);
        ALTER SEQUENCE event_id_seq OWNED BY event.id;
        """
    )
    for year in PARTITION_YEARS:
        op.execute(
            f"CREATE TABLE event_y{year} PARTITION OF event"
            f" FOR VALUES FROM ('{year}-01-01 00:00:00+08') TO ('{year + 1}-01-01 00:00:00+08')"
        )
    op.execute("CREATE TABLE event_default PARTITION OF event DEFAULT")
    open_states = ", ".join(_q(s) for s in EVENT_STATES if s not in ("closed", "evaluated", "rejected"))
    op.execute(
        f"""
        CREATE INDEX event_geom_gix ON event USING gist (geom);
        CREATE INDEX event_id_idx ON event (id);
        CREATE INDEX event_state_idx ON event (state, reported_at);
        CREATE INDEX event_reported_idx ON event (reported_at);
        CREATE INDEX event_village_idx ON event (village_id, reported_at);
        CREATE INDEX event_grid_idx ON event (grid_uid);
        CREATE INDEX event_closed_idx ON event (closed_at) WHERE closed_at IS NOT NULL;
        CREATE INDEX event_sla_due_idx ON event (sla_due_at) WHERE sla_due_at IS NOT NULL;
        CREATE INDEX event_open_due_idx ON event (due_at) WHERE state IN ({open_states});
        CREATE INDEX event_subclass_idx ON event (subclass_code);
        """
    )

    # -- idempotency: a repeated submission finds its event here --------------------
    op.execute(
        """
        CREATE TABLE event_request (
            client_key  text PRIMARY KEY CHECK (length(client_key) BETWEEN 1 AND 200),
            event_id    bigint NOT NULL,
            reported_at timestamptz NOT NULL,
            village_id  integer REFERENCES village(id),
            created_at  timestamptz NOT NULL DEFAULT now(),
            -- deferred: the key is claimed first (INSERT ... ON CONFLICT), the event follows
            FOREIGN KEY (event_id, reported_at) REFERENCES event (id, reported_at)
                DEFERRABLE INITIALLY DEFERRED
        );
        CREATE INDEX event_request_event_idx ON event_request (event_id);
        """
    )

    # -- history: append-only ------------------------------------------------------
    op.execute(
        """
        CREATE TABLE event_history (
            id                bigserial PRIMARY KEY,
            event_id          bigint NOT NULL,
            event_reported_at timestamptz NOT NULL,
            village_id        integer REFERENCES village(id),
            at                timestamptz NOT NULL DEFAULT now(),
            actor             text NOT NULL,
            actor_role        text NOT NULL,
            actor_user_id     integer,
            action            text NOT NULL,
            from_state        text,
            to_state          text NOT NULL,
            version           integer NOT NULL,   -- the event's version after this change
            note              text,
            data              jsonb NOT NULL DEFAULT '{}'::jsonb,
            FOREIGN KEY (event_id, event_reported_at) REFERENCES event (id, reported_at),
            UNIQUE (event_id, version)
        );
        CREATE INDEX event_history_at_idx ON event_history (at);
        CREATE INDEX event_history_action_idx ON event_history (action, at);

        CREATE FUNCTION dvmap_reject_history_change() RETURNS trigger
        LANGUAGE plpgsql AS
        $$
        BEGIN
          RAISE EXCEPTION 'event_history is append-only: % is not allowed (历史记录只可追加)', TG_OP
            USING ERRCODE = 'insufficient_privilege';
        END
        $$;
        CREATE TRIGGER event_history_append_only
            BEFORE UPDATE OR DELETE ON event_history
            FOR EACH ROW EXECUTE FUNCTION dvmap_reject_history_change();
        CREATE TRIGGER event_history_no_truncate
            BEFORE TRUNCATE ON event_history
            FOR EACH STATEMENT EXECUTE FUNCTION dvmap_reject_history_change();
        """
    )

    # -- photos: type and size checked in the service, bounded here too ------------
    op.execute(
        """
        CREATE TABLE event_photo (
            id                bigserial PRIMARY KEY,
            event_id          bigint NOT NULL,
            event_reported_at timestamptz NOT NULL,
            village_id        integer REFERENCES village(id),
            history_id        bigint REFERENCES event_history(id),
            content_type      text NOT NULL CHECK (content_type IN ('image/jpeg', 'image/png', 'image/webp')),
            size              integer NOT NULL CHECK (size BETWEEN 1 AND 5242880),
            sha256            char(64) NOT NULL,
            data              bytea NOT NULL CHECK (octet_length(data) = size),
            created_at        timestamptz NOT NULL DEFAULT now(),
            FOREIGN KEY (event_id, event_reported_at) REFERENCES event (id, reported_at),
            UNIQUE (event_id, sha256)
        );
        -- JPEG/PNG/WebP are compressed already: store out of line without recompressing.
        ALTER TABLE event_photo ALTER COLUMN data SET STORAGE EXTERNAL;
        CREATE INDEX event_photo_history_idx ON event_photo (history_id);
        """
    )

    # -- API clients (Open311): keys stored as SHA-256 of a 256-bit random key ----
    op.execute(
        """
        CREATE TABLE api_client (
            id          serial PRIMARY KEY,
            name        text NOT NULL UNIQUE,
            key_prefix  text NOT NULL,
            key_hash    char(64) NOT NULL UNIQUE,
            village_ids integer[],              -- NULL = the whole county
            source      text NOT NULL DEFAULT 'hotline' REFERENCES event_source(code),
            active      boolean NOT NULL DEFAULT true,
            created_at  timestamptz NOT NULL DEFAULT now()
        );
        ALTER TABLE event ADD CONSTRAINT event_api_client_fk
            FOREIGN KEY (api_client_id) REFERENCES api_client(id);
        """
    )

    # -- routing: one statement, over all grids whatever the caller's scope -------
    # The function returns only ids and flags for the given point. It widens the
    # scope to the county while it runs, so a village official reporting near the
    # village edge still sees the neighbour's grid as a candidate, then puts the
    # caller's scope back. (A function-level SET clause would be cleaner but needs
    # a superuser for placeholder settings; set_config is transactional, so an
    # error inside rolls the widened scope back with the statement's savepoint
    # or transaction.)
    op.execute(ROUTE_EVENT_FUNCTION)

    # -- row-level security ----------------------------------------------------------
    partitions = [f"event_y{y}" for y in PARTITION_YEARS] + ["event_default"]
    for table in ("event", *partitions):
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"""
            CREATE POLICY {table}_scope_read ON {table} FOR SELECT
                USING (dvmap_village_visible(village_id) AND dvmap_grid_visible(grid_uid));
            CREATE POLICY {table}_scope_insert ON {table} FOR INSERT
                WITH CHECK (dvmap_village_visible(village_id));
            CREATE POLICY {table}_scope_update ON {table} FOR UPDATE
                USING (dvmap_village_visible(village_id) AND dvmap_grid_visible(grid_uid))
                WITH CHECK (dvmap_village_visible(village_id));
            CREATE POLICY {table}_scope_delete ON {table} FOR DELETE
                USING (dvmap_village_visible(village_id));
            """
        )
    op.execute(
        """
        ALTER TABLE event_request ENABLE ROW LEVEL SECURITY;
        ALTER TABLE event_request FORCE ROW LEVEL SECURITY;
        CREATE POLICY event_request_scope ON event_request
            USING (dvmap_village_visible(village_id)) WITH CHECK (dvmap_village_visible(village_id));
        """
    )
    # History and photos: visible with their village, and for grid workers only
    # when the event itself is visible to them (the sub-select runs under event's RLS).
    for table in ("event_history", "event_photo"):
        op.execute(
            f"""
            ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
            ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
            CREATE POLICY {table}_scope ON {table}
                USING (dvmap_village_visible(village_id)
                       AND (NOT dvmap_is_grid_worker()
                            OR EXISTS (SELECT 1 FROM event e
                                        WHERE e.id = {table}.event_id
                                          AND e.reported_at = {table}.event_reported_at)))
                WITH CHECK (dvmap_village_visible(village_id));
            """
        )

    # -- privileges (SELECT/INSERT/UPDATE/DELETE came by default privileges) -------
    op.execute(
        f"""
        REVOKE INSERT, UPDATE, DELETE ON {", ".join(REFERENCE)} FROM dvmap_app_rw;
        -- events are rejected (作废), never deleted; history, photos and keys are kept
        REVOKE DELETE ON event FROM dvmap_app_rw;
        REVOKE UPDATE, DELETE ON event_request, event_history, event_photo FROM dvmap_app_rw;
        REVOKE DELETE ON api_client FROM dvmap_app_rw;
        -- partitions are reached through event only (and are RLS-forced anyway)
        REVOKE ALL ON {", ".join(partitions)} FROM dvmap_app_rw;
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS dvmap_route_event(double precision, double precision, text, double precision)")
    for table in ("event_photo", "event_history", "event_request", "event", "api_client", "event_sla",
                  "event_routing", "event_source", "event_urgency", "event_subclass", "event_class",
                  "department"):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    op.execute("DROP FUNCTION IF EXISTS dvmap_reject_history_change()")
    op.execute("DROP FUNCTION IF EXISTS dvmap_grid_visible(uuid), dvmap_is_grid_worker()")
