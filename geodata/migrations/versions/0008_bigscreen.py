"""Big screen: the evaluation index (indicators, weights, manual values) and a daily event summary.

Revision ID: 0008
Revises: 0004

* ``eval_group`` / ``eval_indicator`` — the 考核指标体系 of the 一网统管 material as
  data: four groups (治理效能 40 %, 民生福祉 35 %, 社会协同 15 %, 创新突破 10 %) and
  their ten sub-indicators with weights, targets and where each value comes from
  (computed from the app's data, or ``manual``). Weights and targets are editable
  by administrators only (a policy checks ``dvmap.role``; the app role may update
  only those columns).
* ``eval_manual_value`` — per period (quarter, ``2025Q3``) and village, the values of
  the indicators the app has no data for, entered by an administrator. Village-scoped
  like the tables of 0001 (``dvmap_village_visible``), written by admins only.
* ``event_daily`` — events reported and closed per China-time day, town, class and
  source: the charts of the big screen read a few thousand rows instead of scanning
  the event table. Kept current incrementally by statement-level triggers on
  ``event`` (the inserted, deleted or changed rows of each statement move their
  counts, set-based), so it never needs a full refresh; :sql:`dvmap_event_daily_rebuild()`
  recomputes it set-based after a bulk load. Rows are county totals, so only the
  county scope (``dvmap.scope = '*'``) may read them; narrower scopes count from
  ``event`` itself, under its own row-level security. It is a table, not a
  materialised view, because a materialised view cannot carry row-level security.
* Three indexes that keep a refresh cheap at a million events (see the comment below).
"""
from alembic import op

revision = "0008"
down_revision = "0004"
branch_labels = None
depends_on = None

GROUPS = [
    ("governance", "治理效能", "Governance effectiveness", 1),
    ("wellbeing", "民生福祉", "People's wellbeing", 2),
    ("collaboration", "社会协同", "Social collaboration", 3),
    ("innovation", "创新突破", "Innovation", 4),
]

# (code, group, name_zh, name_en, weight %, source, target, unit_zh, unit_en, note_zh, note_en)
# source: 'manual' or the name of a computed measure (geodata.evaluation.AUTO_SOURCES).
INDICATORS = [
    ("grid_event_handling", "governance", "网格事件处置率", "Grid event handling rate", 15, "on_time_rate", 0.95,
     "比率", "ratio",
     "本期按期结案率(GB 口径,与事件统计同一实现),目标 95%",
     "On-time closure rate of the period (GB definition, the events module's implementation); target 95 %"),
    ("service_satisfaction", "governance", "政务服务满意度", "Service satisfaction", 15, "satisfaction", 1.0,
     "比率", "ratio",
     "本期评价中“满意”(4–5 分)所占比例",
     "Share of the period's ratings that are satisfied (4–5 of 5)"),
    ("dispute_resolution", "governance", "矛盾纠纷化解率", "Dispute resolution rate", 10, "dispute_resolution", 0.95,
     "比率", "ratio",
     "本期上报的矛盾纠纷类事件(邻里/土地/劳资纠纷)中已结案的比例,目标 95%",
     "Share of the period's dispute events (neighbour, land, wage) that are closed; target 95 %"),
    ("service_coverage", "wellbeing", "公共服务覆盖率", "Public service coverage", 15, "service_coverage", 1.0,
     "比率", "ratio",
     "六类公共服务设施 3 公里内可达的网格人口占比(平均)",
     "Share of grid population within 3 km of each of the six public service types (mean)"),
    ("income_growth", "wellbeing", "居民收入增长率", "Resident income growth", 10, "manual", 8.0,
     "%", "%", "手工填报,目标 8%", "Entered by an administrator; target 8 %"),
    ("environment_improvement", "wellbeing", "环境质量改善率", "Environmental quality improvement", 10, "manual", 5.0,
     "%", "%", "手工填报,目标 5%", "Entered by an administrator; target 5 %"),
    ("social_org_growth", "collaboration", "社会组织增长率", "Growth of social organisations", 8, "manual", 10.0,
     "%", "%", "手工填报,目标 10%", "Entered by an administrator; target 10 %"),
    ("public_participation", "collaboration", "公众参与度", "Public participation", 7, "manual", 80.0,
     "%", "%", "手工填报(村民参与村务决策率),目标 80%",
     "Entered by an administrator (share of villagers taking part in village decisions); target 80 %"),
    ("innovation_projects", "innovation", "创新项目数量", "Innovation projects", 5, "manual", 3.0,
     "项", "projects", "手工填报,目标 3 项", "Entered by an administrator; target 3"),
    ("experience_promotion", "innovation", "典型经验推广", "Good practice promoted", 5, "manual", 2.0,
     "次", "times", "手工填报(被上级推广的典型经验),目标 2 次",
     "Entered by an administrator (practices promoted by higher levels); target 2"),
]

# The open states of geodata.workflow.OPEN (a migration keeps its own literal copy, like 0002).
OPEN_STATES = ("reported", "accepted", "dispatched", "in_progress", "postponed", "handled", "verified")

SOURCES = ("manual", "on_time_rate", "closure_rate", "satisfaction", "dispute_resolution", "service_coverage")


def _q(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _values(rows) -> str:
    return ",\n".join("(" + ", ".join(_q(v) for v in row) + ")" for row in rows)


def upgrade() -> None:
    sources = ", ".join(_q(s) for s in SOURCES)
    # -- the evaluation index as data --------------------------------------------------
    op.execute(
        f"""
        CREATE TABLE eval_group (
            code    text PRIMARY KEY CHECK (code ~ '^[a-z_]{{2,40}}$'),
            name_zh text NOT NULL,
            name_en text NOT NULL,
            sort    integer NOT NULL DEFAULT 0
        );
        INSERT INTO eval_group VALUES {_values(GROUPS)};

        CREATE TABLE eval_indicator (
            code       text PRIMARY KEY CHECK (code ~ '^[a-z_]{{2,40}}$'),
            group_code text NOT NULL REFERENCES eval_group(code),
            name_zh    text NOT NULL,
            name_en    text NOT NULL,
            -- percentage points of the whole index; the index divides by their sum
            weight     numeric(6, 2) NOT NULL CHECK (weight >= 0 AND weight <= 100),
            source     text NOT NULL CHECK (source IN ({sources})),
            -- the value that scores 100 (score = min(value / target, 1) x 100)
            target     numeric(14, 4) NOT NULL CHECK (target > 0),
            unit_zh    text NOT NULL,
            unit_en    text NOT NULL,
            note_zh    text NOT NULL,
            note_en    text NOT NULL,
            sort       integer NOT NULL DEFAULT 0,
            updated_at timestamptz NOT NULL DEFAULT now(),
            updated_by text
        );
        INSERT INTO eval_indicator (code, group_code, name_zh, name_en, weight, source, target, unit_zh, unit_en,
                                    note_zh, note_en)
        VALUES {_values(INDICATORS)};
        UPDATE eval_indicator i SET sort = g.sort * 100 + x.n
          FROM eval_group g,
               (SELECT code, row_number() OVER () AS n FROM (VALUES {", ".join(f"({_q(r[0])})" for r in INDICATORS)})
                 AS v(code)) x
         WHERE g.code = i.group_code AND x.code = i.code;

        CREATE TABLE eval_manual_value (
            period         text NOT NULL CHECK (period ~ '^[0-9]{{4}}Q[1-4]$'),
            village_id     integer NOT NULL REFERENCES village(id),
            indicator_code text NOT NULL REFERENCES eval_indicator(code),
            value          numeric(14, 4) NOT NULL CHECK (value BETWEEN -1000000 AND 1000000),
            note           text CHECK (note IS NULL OR length(note) <= 500),
            entered_by     text NOT NULL,
            entered_at     timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (period, village_id, indicator_code)
        );
        CREATE INDEX eval_manual_value_village_idx ON eval_manual_value (village_id);
        """
    )

    # -- who may change the index: administrators (and system jobs) -----------------------
    op.execute(
        """
        CREATE FUNCTION dvmap_eval_admin() RETURNS boolean
        LANGUAGE sql STABLE PARALLEL SAFE AS
        $$ SELECT coalesce(current_setting('dvmap.role', true), '') IN ('admin', 'system') $$;

        ALTER TABLE eval_group ENABLE ROW LEVEL SECURITY;
        ALTER TABLE eval_group FORCE ROW LEVEL SECURITY;
        CREATE POLICY eval_group_read ON eval_group FOR SELECT USING (true);

        ALTER TABLE eval_indicator ENABLE ROW LEVEL SECURITY;
        ALTER TABLE eval_indicator FORCE ROW LEVEL SECURITY;
        CREATE POLICY eval_indicator_read ON eval_indicator FOR SELECT USING (true);
        CREATE POLICY eval_indicator_admin ON eval_indicator FOR UPDATE
            USING (dvmap_eval_admin()) WITH CHECK (dvmap_eval_admin());

        ALTER TABLE eval_manual_value ENABLE ROW LEVEL SECURITY;
        ALTER TABLE eval_manual_value FORCE ROW LEVEL SECURITY;
        CREATE POLICY eval_manual_value_scope ON eval_manual_value FOR SELECT
            USING (dvmap_village_visible(village_id));
        CREATE POLICY eval_manual_value_insert ON eval_manual_value FOR INSERT
            WITH CHECK (dvmap_village_visible(village_id) AND dvmap_eval_admin());
        CREATE POLICY eval_manual_value_update ON eval_manual_value FOR UPDATE
            USING (dvmap_village_visible(village_id) AND dvmap_eval_admin())
            WITH CHECK (dvmap_village_visible(village_id) AND dvmap_eval_admin());
        CREATE POLICY eval_manual_value_delete ON eval_manual_value FOR DELETE
            USING (dvmap_village_visible(village_id) AND dvmap_eval_admin());

        REVOKE INSERT, UPDATE, DELETE ON eval_group, eval_indicator FROM dvmap_app_rw;
        GRANT UPDATE (weight, target, updated_at, updated_by) ON eval_indicator TO dvmap_app_rw;
        """
    )

    # -- daily event summary, maintained incrementally ------------------------------------
    # Days are China-time calendar days, like the periods of the indicators.
    op.execute(
        """
        CREATE TABLE event_daily (
            day        date NOT NULL,
            town_id    integer REFERENCES town(id),
            class_code text NOT NULL REFERENCES event_class(code),
            source     text NOT NULL REFERENCES event_source(code),
            reported   integer NOT NULL DEFAULT 0,
            closed     integer NOT NULL DEFAULT 0,
            CONSTRAINT event_daily_key UNIQUE NULLS NOT DISTINCT (day, town_id, class_code, source)
        );

        CREATE FUNCTION dvmap_local_day(t timestamptz) RETURNS date
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
        $$ SELECT (t AT TIME ZONE 'Asia/Shanghai')::date $$;

        -- The triggers write county totals whatever the caller's scope: they run as the
        -- owner and widen the scope to the county while they work, then put the caller's
        -- back (set_config is transactional, so an error rolls it back too). They are
        -- statement-level with transition tables: one upsert per statement, so a bulk
        -- INSERT … SELECT of a million events is counted set-based, and a transition
        -- (one row) costs one small upsert — or nothing when no counted column changed.
        CREATE FUNCTION dvmap_event_daily_apply() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS
        $fn$
        DECLARE
          caller_scope text := current_setting('dvmap.scope', true);
          caller_role  text := current_setting('dvmap.role', true);
        BEGIN
          PERFORM set_config('dvmap.scope', '*', true);
          PERFORM set_config('dvmap.role', 'system', true);
          -- one row per key (ON CONFLICT may touch a row once), in key order (two
          -- transactions lock shared rows in the same order); keys whose counts did not
          -- move are skipped
          IF TG_OP = 'INSERT' THEN
            INSERT INTO event_daily AS d (day, town_id, class_code, source, reported, closed)
            SELECT day, town_id, class_code, source, sum(r), sum(c) FROM (
                SELECT dvmap_local_day(reported_at) AS day, town_id, class_code, source, 1 AS r, 0 AS c FROM new_rows
                UNION ALL
                SELECT dvmap_local_day(closed_at), town_id, class_code, source, 0, 1 FROM new_rows
                 WHERE closed_at IS NOT NULL) x
              GROUP BY 1, 2, 3, 4 HAVING sum(r) <> 0 OR sum(c) <> 0
              ORDER BY 1, 2, 3, 4
            ON CONFLICT ON CONSTRAINT event_daily_key
            DO UPDATE SET reported = d.reported + excluded.reported, closed = d.closed + excluded.closed;
          ELSIF TG_OP = 'DELETE' THEN
            INSERT INTO event_daily AS d (day, town_id, class_code, source, reported, closed)
            SELECT day, town_id, class_code, source, sum(r), sum(c) FROM (
                SELECT dvmap_local_day(reported_at) AS day, town_id, class_code, source, -1 AS r, 0 AS c FROM old_rows
                UNION ALL
                SELECT dvmap_local_day(closed_at), town_id, class_code, source, 0, -1 FROM old_rows
                 WHERE closed_at IS NOT NULL) x
              GROUP BY 1, 2, 3, 4 HAVING sum(r) <> 0 OR sum(c) <> 0
              ORDER BY 1, 2, 3, 4
            ON CONFLICT ON CONSTRAINT event_daily_key
            DO UPDATE SET reported = d.reported + excluded.reported, closed = d.closed + excluded.closed;

            -- keys that fell to zero go, so the table holds only what exists (and a town
            -- without events can be deleted)
            DELETE FROM event_daily d
             USING (SELECT dvmap_local_day(reported_at) AS day, town_id, class_code, source FROM old_rows
                    UNION
                    SELECT dvmap_local_day(closed_at), town_id, class_code, source FROM old_rows
                     WHERE closed_at IS NOT NULL) k
             WHERE d.reported = 0 AND d.closed = 0 AND d.day = k.day AND d.town_id IS NOT DISTINCT FROM k.town_id
               AND d.class_code = k.class_code AND d.source = k.source;
          ELSE
            INSERT INTO event_daily AS d (day, town_id, class_code, source, reported, closed)
            SELECT day, town_id, class_code, source, sum(r), sum(c) FROM (
                SELECT dvmap_local_day(reported_at) AS day, town_id, class_code, source, 1 AS r, 0 AS c FROM new_rows
                UNION ALL
                SELECT dvmap_local_day(closed_at), town_id, class_code, source, 0, 1 FROM new_rows
                 WHERE closed_at IS NOT NULL
                UNION ALL
                SELECT dvmap_local_day(reported_at) AS day, town_id, class_code, source, -1 AS r, 0 AS c FROM old_rows
                UNION ALL
                SELECT dvmap_local_day(closed_at), town_id, class_code, source, 0, -1 FROM old_rows
                 WHERE closed_at IS NOT NULL) x
              GROUP BY 1, 2, 3, 4 HAVING sum(r) <> 0 OR sum(c) <> 0
              ORDER BY 1, 2, 3, 4
            ON CONFLICT ON CONSTRAINT event_daily_key
            DO UPDATE SET reported = d.reported + excluded.reported, closed = d.closed + excluded.closed;

            -- keys that fell to zero go, so the table holds only what exists (and a town
            -- without events can be deleted)
            DELETE FROM event_daily d
             USING (SELECT dvmap_local_day(reported_at) AS day, town_id, class_code, source FROM old_rows
                    UNION
                    SELECT dvmap_local_day(closed_at), town_id, class_code, source FROM old_rows
                     WHERE closed_at IS NOT NULL) k
             WHERE d.reported = 0 AND d.closed = 0 AND d.day = k.day AND d.town_id IS NOT DISTINCT FROM k.town_id
               AND d.class_code = k.class_code AND d.source = k.source;
          END IF;
          PERFORM set_config('dvmap.scope', coalesce(caller_scope, ''), true);
          PERFORM set_config('dvmap.role', coalesce(caller_role, ''), true);
          RETURN NULL;
        END
        $fn$;

        CREATE TRIGGER event_daily_insert AFTER INSERT ON event
            REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION dvmap_event_daily_apply();
        CREATE TRIGGER event_daily_update AFTER UPDATE ON event
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION dvmap_event_daily_apply();
        CREATE TRIGGER event_daily_delete AFTER DELETE ON event
            REFERENCING OLD TABLE AS old_rows
            FOR EACH STATEMENT EXECUTE FUNCTION dvmap_event_daily_apply();

        -- Full recomputation, set-based: after a bulk load with the triggers disabled,
        -- or to check the incremental counts (they must be equal).
        CREATE FUNCTION dvmap_event_daily_rebuild() RETURNS bigint
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS
        $fn$
        DECLARE
          caller_scope text := current_setting('dvmap.scope', true);
          caller_role  text := current_setting('dvmap.role', true);
          n bigint;
        BEGIN
          PERFORM set_config('dvmap.scope', '*', true);
          PERFORM set_config('dvmap.role', 'system', true);
          DELETE FROM event_daily;
          INSERT INTO event_daily (day, town_id, class_code, source, reported, closed)
          SELECT day, town_id, class_code, source, sum(r), sum(c)
            FROM (SELECT dvmap_local_day(reported_at) AS day, town_id, class_code, source, 1 AS r, 0 AS c
                    FROM event
                  UNION ALL
                  SELECT dvmap_local_day(closed_at), town_id, class_code, source, 0, 1
                    FROM event WHERE closed_at IS NOT NULL) x
           GROUP BY 1, 2, 3, 4;
          GET DIAGNOSTICS n = ROW_COUNT;
          PERFORM set_config('dvmap.scope', coalesce(caller_scope, ''), true);
          PERFORM set_config('dvmap.role', coalesce(caller_role, ''), true);
          RETURN n;
        END
        $fn$;
        REVOKE EXECUTE ON FUNCTION dvmap_event_daily_rebuild() FROM PUBLIC;

        ALTER TABLE event_daily ENABLE ROW LEVEL SECURITY;
        ALTER TABLE event_daily FORCE ROW LEVEL SECURITY;
        -- County totals: readable by the county scope only (never by grid workers).
        CREATE POLICY event_daily_county ON event_daily
            USING (dvmap_scope_all() AND NOT dvmap_is_grid_worker())
            WITH CHECK (dvmap_scope_all() AND NOT dvmap_is_grid_worker());
        REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON event_daily FROM dvmap_app_rw;

        SELECT dvmap_event_daily_rebuild();
        """
    )

    # -- indexes that keep a refresh cheap at a million events ---------------------------------
    # * open-overdue (geodata.events.indicators): only the not-yet-closed events with a
    #   deadline, instead of every dispatched event ever;
    # * reported counts: index-only scans (the row-level-security columns are included);
    # * the open count: index-only over the open events.
    open_states = ", ".join(_q(s) for s in OPEN_STATES)
    op.execute(
        f"""
        CREATE INDEX event_unclosed_due_idx ON event (due_at)
            WHERE closed_at IS NULL AND sla_due_at IS NOT NULL;
        CREATE INDEX event_reported_cover_idx ON event (reported_at) INCLUDE (village_id, grid_uid);
        CREATE INDEX event_open_cover_idx ON event (state) INCLUDE (village_id, grid_uid)
            WHERE state IN ({open_states});
        """
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS event_unclosed_due_idx, event_reported_cover_idx, event_open_cover_idx")
    for trigger in ("event_daily_insert", "event_daily_update", "event_daily_delete"):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON event")
    op.execute("DROP TABLE IF EXISTS event_daily, eval_manual_value, eval_indicator, eval_group CASCADE")
    op.execute("DROP FUNCTION IF EXISTS dvmap_event_daily_rebuild(), dvmap_event_daily_apply(),"
               " dvmap_local_day(timestamptz), dvmap_eval_admin()")
