"""Event history is written only through ``dvmap_record_history``, never by the app role directly.

Revision ID: 0014
Revises: 0013

Until now ``dvmap_app_rw`` could ``INSERT INTO event_history``: a compromised app could
append rows telling of actions that never happened (a "closed" step for an open event,
a step for an old version, a row for a village it cannot see). The app role keeps
``SELECT`` only; history rows come from one function, owned by the schema owner and
``SECURITY DEFINER`` with its ``search_path`` pinned, which checks each row against the
event it describes, as the caller's own statements left it just before:

* the event exists and lies in the caller's village scope (``village_id`` is taken
  from the event, never from the caller);
* the row's ``version`` and ``to_state`` are the event's current ones;
* the row continues the event's history: it is the first (version 1, no ``from_state``)
  or it follows the last row (version − 1) and starts from that row's ``to_state``;
* its time is not before the event's report.

So a history row can only record a change the event really went through, once (the
``(event_id, version)`` key), right after it. The workflow writers (geodata/events.py,
geodata/grid_reroute.py) call it after their ``UPDATE``/``INSERT`` of ``event``, in the
same transaction; the bulk loaders run as the schema owner and insert directly.

Rows are given as a JSON array, so set-based writers (overdue marking, re-routing)
record thousands of rows in one call. Grid workers see only their grids' events; the
function widens that (never the village scope) while it checks, so a worker's report
routed to a neighbour's grid still gets its first row, and puts the caller's back.
"""
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

RECORD_HISTORY = """
CREATE FUNCTION dvmap_record_history(p_rows jsonb) RETURNS SETOF bigint
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
                             action, from_state, to_state, version, note, data)
  SELECT coalesce(r.id, nextval('event_history_id_seq')), r.event_id, r.event_reported_at, e.village_id,
         coalesce(r.at, now()), r.actor, r.actor_role, r.actor_user_id, r.action, r.from_state, r.to_state,
         r.version, r.note, coalesce(r.data, '{}'::jsonb)
    FROM jsonb_to_recordset(p_rows) AS r(id bigint, event_id bigint, event_reported_at timestamptz, at timestamptz,
                                          actor text, actor_role text, actor_user_id integer, action text,
                                          from_state text, to_state text, version integer, note text, data jsonb)
    JOIN event e ON e.id = r.event_id AND e.reported_at = r.event_reported_at
  RETURNING event_history.id;

  PERFORM set_config('dvmap.grids', caller_grids, true);
END
$fn$;
"""


def upgrade() -> None:
    op.execute(RECORD_HISTORY)
    op.execute(
        """
        REVOKE ALL ON FUNCTION dvmap_record_history(jsonb) FROM PUBLIC;
        GRANT EXECUTE ON FUNCTION dvmap_record_history(jsonb) TO dvmap_app_rw;
        REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON event_history FROM dvmap_app_rw;
        """
    )


def downgrade() -> None:
    op.execute("GRANT INSERT ON event_history TO dvmap_app_rw")
    op.execute("DROP FUNCTION IF EXISTS dvmap_record_history(jsonb)")
