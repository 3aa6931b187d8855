"""Grid editing: change history, undo, and topology enforced in the saving transaction.

Revision ID: 0006
Revises: 0004

* ``grid_change`` — one row per change a grid manager makes to a village's grids
  (create, edit, split, merge, delete, assign, renumber, undo): who, when, what,
  which grid rows (versions) it closed and which it created. Append-only; an
  undo is a new row pointing at the change it reverts (``undoes``, unique, so a
  change is undone at most once).
* ``grid.change_id`` — the change that created a grid version.
* ``dvmap_grid_lock(village)`` — the per-village advisory lock every grid writer
  takes (transaction-scoped), so checks and writes of one village are serialised.
* ``grid_topology`` — a deferred constraint trigger on ``grid``: when the
  transaction commits (or the writer runs ``SET CONSTRAINTS grid_topology
  IMMEDIATE``) every grid row written and still current must lie inside its
  village, overlap no other current grid of the village, be at least
  ``MIN_AREA_M2`` and have at most ``MAX_VERTICES`` vertices. The trigger takes the
  village lock first: under READ COMMITTED each statement after the lock sees
  every grid committed before it, so of two managers saving overlapping grids at
  the same time the second is refused — whatever code wrote the rows.

Areas are measured in EPSG:4549 (metres). ``AREA_EPSILON_M2`` absorbs the
floating-point noise of CRS round trips (a shared edge re-computed through
EPSG:4549 can leave overlaps of 1e-9 m²); anything larger counts.
"""
from alembic import op

revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None

# The one literal copy of the rules in SQL; geodata.grids holds the Python copy and a
# test compares them (dvmap_grid_rules()).
MIN_AREA_M2 = 100.0
MAX_VERTICES = 2000
AREA_EPSILON_M2 = 0.5
#: First key of the per-village advisory lock (second key: the village id).
LOCK_CLASS = 4906
ACTIONS = ("create", "edit", "split", "merge", "delete", "assign", "renumber", "undo")


def upgrade() -> None:
    actions = ", ".join(f"'{a}'" for a in ACTIONS)
    op.execute(
        f"""
        CREATE TABLE grid_change (
            id            bigserial PRIMARY KEY,
            village_id    integer NOT NULL REFERENCES village(id),
            at            timestamptz NOT NULL DEFAULT clock_timestamp(),
            actor         text NOT NULL,
            actor_role    text NOT NULL,
            actor_user_id integer,
            action        text NOT NULL CHECK (action IN ({actions})),
            closed_ids    bigint[] NOT NULL DEFAULT '{{}}',   -- grid versions this change closed
            created_ids   bigint[] NOT NULL DEFAULT '{{}}',   -- grid versions it inserted
            undoes        bigint UNIQUE REFERENCES grid_change(id),
            summary_zh    text NOT NULL,
            summary_en    text NOT NULL,
            detail        jsonb NOT NULL DEFAULT '{{}}'::jsonb,
            CHECK ((action = 'undo') = (undoes IS NOT NULL))
        );
        CREATE INDEX grid_change_village_idx ON grid_change (village_id, id DESC);

        -- Deferred: the change row is written last, when its rerouted events are known.
        ALTER TABLE grid ADD COLUMN change_id bigint
            REFERENCES grid_change(id) DEFERRABLE INITIALLY DEFERRED;
        CREATE INDEX grid_change_id_idx ON grid (change_id);
        CREATE INDEX grid_uid_version_idx ON grid (uid, version);
        CREATE INDEX grid_current_village_idx ON grid (village_id) WHERE valid_to IS NULL;

        ALTER TABLE grid_change ENABLE ROW LEVEL SECURITY;
        ALTER TABLE grid_change FORCE ROW LEVEL SECURITY;
        CREATE POLICY grid_change_scope ON grid_change
            USING (dvmap_village_visible(village_id)) WITH CHECK (dvmap_village_visible(village_id));

        CREATE TRIGGER grid_change_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON grid_change
            FOR EACH STATEMENT EXECUTE FUNCTION dvmap_append_only();
        REVOKE UPDATE, DELETE, TRUNCATE ON grid_change FROM dvmap_app_rw;
        """
    )

    op.execute(
        f"""
        CREATE FUNCTION dvmap_grid_rules(OUT min_area_m2 double precision, OUT max_vertices integer,
                                         OUT area_epsilon_m2 double precision)
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
        $$ SELECT {MIN_AREA_M2}::double precision, {MAX_VERTICES}, {AREA_EPSILON_M2}::double precision $$;

        CREATE FUNCTION dvmap_grid_lock(village integer) RETURNS void
        LANGUAGE sql VOLATILE AS
        $$ SELECT pg_advisory_xact_lock({LOCK_CLASS}, village) $$;
        """
    )

    # The trigger raises SQLSTATEs of its own class 'DG' so the service can map
    # each to a typed, bilingual error: DG001 vertices, DG002 area, DG003 outside
    # the village, DG004 overlap, DG005 village not visible.
    op.execute(
        r"""
        CREATE FUNCTION dvmap_grid_topology_check() RETURNS trigger
        LANGUAGE plpgsql AS
        $fn$
        DECLARE
          g       record;
          rules   record;
          n       integer;
          area    double precision;
          outside double precision;
          hit     record;
        BEGIN
          SELECT * INTO rules FROM dvmap_grid_rules();
          -- Deferred to commit: only rows still current then are the village's grids.
          SELECT id, village_id, code, geom INTO g FROM grid WHERE id = NEW.id AND valid_to IS NULL;
          IF NOT FOUND THEN
            RETURN NULL;
          END IF;
          -- Serialise with every other writer of this village; the statements below
          -- then see all grids committed before the lock was granted.
          PERFORM dvmap_grid_lock(g.village_id);

          n := ST_NPoints(g.geom);
          IF n > rules.max_vertices THEN
            RAISE EXCEPTION '网格 % 顶点过多(% 个,上限 %) / grid % has too many vertices (%, limit %)',
                  g.code, n, rules.max_vertices, g.code, n, rules.max_vertices
              USING ERRCODE = 'DG001', DETAIL = json_build_object('code', g.code, 'vertices', n)::text;
          END IF;
          area := ST_Area(ST_Transform(g.geom, 4549));
          IF area < rules.min_area_m2 THEN
            RAISE EXCEPTION '网格 % 面积过小(% 平方米,下限 %) / grid % is too small (% m², minimum %)',
                  g.code, round(area::numeric, 1), rules.min_area_m2, g.code, round(area::numeric, 1),
                  rules.min_area_m2
              USING ERRCODE = 'DG002', DETAIL = json_build_object('code', g.code, 'area_m2', area)::text;
          END IF;
          SELECT ST_Area(ST_Transform(ST_Difference(g.geom, v.geom), 4549)) INTO outside
            FROM village v WHERE v.id = g.village_id;
          IF NOT FOUND THEN
            RAISE EXCEPTION '网格 % 所属村不存在或无权限 / the village of grid % is missing or not in scope',
                  g.code, g.code USING ERRCODE = 'DG005';
          END IF;
          IF outside > rules.area_epsilon_m2 THEN
            RAISE EXCEPTION '网格 % 超出所属村界 % 平方米 / grid % extends % m² outside its village',
                  g.code, round(outside::numeric, 1), g.code, round(outside::numeric, 1)
              USING ERRCODE = 'DG003', DETAIL = json_build_object('code', g.code, 'outside_m2', outside)::text;
          END IF;
          SELECT o.code, o.uid, x.a INTO hit
            FROM grid o
            CROSS JOIN LATERAL (SELECT ST_Area(ST_Transform(ST_Intersection(o.geom, g.geom), 4549)) AS a) x
           WHERE o.village_id = g.village_id AND o.valid_to IS NULL AND o.id <> g.id
             AND o.geom && g.geom AND ST_Intersects(o.geom, g.geom)
             AND x.a > rules.area_epsilon_m2
           ORDER BY x.a DESC LIMIT 1;
          IF FOUND THEN
            RAISE EXCEPTION '网格 % 与网格 % 重叠 % 平方米 / grid % overlaps grid % by % m²',
                  g.code, hit.code, round(hit.a::numeric, 1), g.code, hit.code, round(hit.a::numeric, 1)
              USING ERRCODE = 'DG004',
                    DETAIL = json_build_object('code', g.code, 'other_code', hit.code,
                                               'other_uid', hit.uid, 'overlap_m2', hit.a)::text;
          END IF;
          RETURN NULL;
        END
        $fn$;

        CREATE CONSTRAINT TRIGGER grid_topology
            AFTER INSERT OR UPDATE OF geom, village_id, valid_to ON grid
            DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW EXECUTE FUNCTION dvmap_grid_topology_check();
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS grid_topology ON grid")
    op.execute("DROP FUNCTION IF EXISTS dvmap_grid_topology_check()")
    op.execute("DROP FUNCTION IF EXISTS dvmap_grid_lock(integer)")
    op.execute("DROP FUNCTION IF EXISTS dvmap_grid_rules()")
    op.execute("DROP INDEX IF EXISTS grid_current_village_idx")
    op.execute("DROP INDEX IF EXISTS grid_uid_version_idx")
    op.execute("DROP INDEX IF EXISTS grid_change_id_idx")
    op.execute("ALTER TABLE grid DROP COLUMN IF EXISTS change_id")
    op.execute("DROP TABLE IF EXISTS grid_change CASCADE")
