"""What the field app needs from the events service: position facts, stamped photos, replayable transitions.

Revision ID: 0017
Revises: 0016

* ``event.position_accuracy_m`` / ``event.position_source``: how good the reported
  point is (the phone's accuracy radius) and where it came from (gps, tap, address,
  sensor). Added to the partitioned table, so every partition gets them.
* ``event_photo.step`` (report/before/after/verify), ``geom``, ``accuracy_m``,
  ``uploaded_by``: the server's stamp on each photo (its time is its history row's).
  Existing photos get the step their history row's action implies and its actor.
* ``event_history.client_key``: the idempotency key of an offline replay; unique per
  event, so a transition sent twice is written once. ``dvmap_record_history`` (0014)
  learns the new field; its checks are unchanged.
"""
import importlib.util
from pathlib import Path

from alembic import op

from geodata.config import STORAGE_SRID

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = "0014"  # dvmap_record_history, replaced here (0014 is not an ancestor of 0016)

PHOTO_STEPS = ("report", "before", "after", "verify")
POSITION_SOURCES = ("gps", "tap", "address", "sensor")


def _in(column: str, values) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


RECORD_HISTORY = """
CREATE OR REPLACE FUNCTION dvmap_record_history(p_rows jsonb) RETURNS SETOF bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS
$fn$
DECLARE
  caller_grids text := coalesce(current_setting('dvmap.grids', true), '');
  bad record;
BEGIN
  IF p_rows IS NULL OR jsonb_typeof(p_rows) <> 'array' THEN
    RAISE EXCEPTION 'dvmap_record_history: rows must be a JSON array (历史记录参数无效)'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM set_config('dvmap.grids', '*', true);

  SELECT r.event_id, r.version, r.to_state, e.id AS found, e.version AS ev_version, e.state AS ev_state,
         last.version AS last_version, last.to_state AS last_state
    INTO bad
    FROM jsonb_to_recordset(p_rows) AS r(event_id bigint, event_reported_at timestamptz, at timestamptz,
                                          action text, from_state text, to_state text, version integer)
    LEFT JOIN event e ON e.id = r.event_id AND e.reported_at = r.event_reported_at
    LEFT JOIN LATERAL (SELECT h.version, h.to_state FROM event_history h
                        WHERE h.event_id = r.event_id ORDER BY h.version DESC LIMIT 1) last ON true
   WHERE e.id IS NULL OR NOT dvmap_village_visible(e.village_id)
      OR r.action IS NULL OR r.to_state IS NULL OR r.version IS NULL
      OR e.version <> r.version OR e.state <> r.to_state
      OR (last.version IS NULL AND (r.version <> 1 OR r.from_state IS NOT NULL))
      OR (last.version IS NOT NULL AND (last.version <> r.version - 1
                                        OR last.to_state IS DISTINCT FROM r.from_state))
      OR coalesce(r.at, now()) < e.reported_at
   LIMIT 1;
  IF FOUND THEN
    IF bad.found IS NULL THEN
      RAISE EXCEPTION 'history refused: event % not found in scope (事件不存在或无权访问,历史记录被拒绝)',
        bad.event_id USING ERRCODE = 'insufficient_privilege';
    END IF;
    RAISE EXCEPTION 'history refused: row (version %, state %) does not match event % (version %, state %, last recorded version % state %) (历史记录与事件状态不符)',
      bad.version, bad.to_state, bad.event_id, bad.ev_version, bad.ev_state, bad.last_version, bad.last_state
      USING ERRCODE = 'check_violation';
  END IF;

  RETURN QUERY
  INSERT INTO event_history (id, event_id, event_reported_at, village_id, at, actor, actor_role, actor_user_id,
                             action, from_state, to_state, version, note, data, client_key)
  SELECT coalesce(r.id, nextval('event_history_id_seq')), r.event_id, r.event_reported_at, e.village_id,
         coalesce(r.at, now()), r.actor, r.actor_role, r.actor_user_id, r.action, r.from_state, r.to_state,
         r.version, r.note, coalesce(r.data, '{}'::jsonb), r.client_key
    FROM jsonb_to_recordset(p_rows) AS r(id bigint, event_id bigint, event_reported_at timestamptz, at timestamptz,
                                          actor text, actor_role text, actor_user_id integer, action text,
                                          from_state text, to_state text, version integer, note text, data jsonb,
                                          client_key text)
    JOIN event e ON e.id = r.event_id AND e.reported_at = r.event_reported_at
  RETURNING event_history.id;

  PERFORM set_config('dvmap.grids', caller_grids, true);
END
$fn$;
"""


def _record_history_0014() -> str:
    """0014's function text (for the downgrade), read from that migration itself."""
    spec = importlib.util.spec_from_file_location("dvmap_migration_0014", Path(__file__).with_name("0014_trust_doors.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.RECORD_HISTORY.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


def upgrade() -> None:
    op.execute(
        f"""
        ALTER TABLE event ADD COLUMN position_accuracy_m real, ADD COLUMN position_source text;
        ALTER TABLE event ADD CONSTRAINT event_position_accuracy_m_check
            CHECK (position_accuracy_m BETWEEN 0 AND 100000);
        ALTER TABLE event ADD CONSTRAINT event_position_source_check CHECK ({_in("position_source", POSITION_SOURCES)});

        ALTER TABLE event_photo ADD COLUMN step text, ADD COLUMN geom geometry(Point, {STORAGE_SRID}),
            ADD COLUMN accuracy_m real, ADD COLUMN uploaded_by text;
        ALTER TABLE event_photo ADD CONSTRAINT event_photo_step_check CHECK ({_in("step", PHOTO_STEPS)});
        ALTER TABLE event_photo ADD CONSTRAINT event_photo_accuracy_m_check CHECK (accuracy_m BETWEEN 0 AND 100000);
        CREATE INDEX event_photo_geom_gix ON event_photo USING gist (geom);

        ALTER TABLE event_history ADD COLUMN client_key text;
        ALTER TABLE event_history ADD CONSTRAINT event_history_client_key_check
            CHECK (length(client_key) BETWEEN 1 AND 200);
        CREATE UNIQUE INDEX event_history_client_key_idx ON event_history (event_id, client_key)
            WHERE client_key IS NOT NULL;
        """
    )
    # Existing photos: the step their history row's action implies, its actor as uploader.
    # (event_photo forces RLS even for its owner: widen the scope for this statement's transaction.)
    op.execute(
        """
        SELECT set_config('dvmap.scope', '*', true), set_config('dvmap.grids', '*', true);
        UPDATE event_photo p
           SET step = CASE h.action WHEN 'start' THEN 'before' WHEN 'handle' THEN 'after'
                                    WHEN 'verify_pass' THEN 'verify' WHEN 'verify_fail' THEN 'verify'
                                    ELSE 'report' END,
               uploaded_by = h.actor
          FROM event_history h
         WHERE h.id = p.history_id AND p.step IS NULL;
        UPDATE event_photo SET step = 'report' WHERE step IS NULL;
        SELECT set_config('dvmap.scope', '', true), set_config('dvmap.grids', '', true);
        """
    )
    op.execute(RECORD_HISTORY)


def downgrade() -> None:
    op.execute(_record_history_0014())
    op.execute(
        """
        DROP INDEX IF EXISTS event_history_client_key_idx;
        ALTER TABLE event_history DROP CONSTRAINT IF EXISTS event_history_client_key_check,
            DROP COLUMN IF EXISTS client_key;
        DROP INDEX IF EXISTS event_photo_geom_gix;
        ALTER TABLE event_photo DROP CONSTRAINT IF EXISTS event_photo_step_check,
            DROP CONSTRAINT IF EXISTS event_photo_accuracy_m_check,
            DROP COLUMN IF EXISTS step, DROP COLUMN IF EXISTS geom, DROP COLUMN IF EXISTS accuracy_m,
            DROP COLUMN IF EXISTS uploaded_by;
        ALTER TABLE event DROP CONSTRAINT IF EXISTS event_position_accuracy_m_check,
            DROP CONSTRAINT IF EXISTS event_position_source_check,
            DROP COLUMN IF EXISTS position_accuracy_m, DROP COLUMN IF EXISTS position_source;
        """
    )
