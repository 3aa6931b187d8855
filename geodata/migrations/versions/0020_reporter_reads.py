"""Reporters always see what they reported.

Revision ID: 0020
Revises: 0016

A grid worker who reports into a neighbour's grid (or village) used to lose sight of the
report: the event's row-level security follows its village and grid only. Now:

* ``event.reporter_user_id`` — the reporting app user, filled on insert from the
  session's ``dvmap.user_id`` by a trigger (every intake path: desk, field app, CLI),
  back-filled from the ``report`` history rows that carry ``actor_user_id``;
* one more permissive SELECT policy on ``event`` (and each partition) and on
  ``event_history`` / ``event_photo``: the reporter reads the event, its timeline and
  photos. Only reading: the update policies are unchanged, so the reporter cannot act
  on an event outside their scope.
"""
import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0016"
branch_labels = None
depends_on = "0002"

ME = "nullif(current_setting('dvmap.user_id', true), '')::integer"


def _tables() -> list[str]:
    """``event`` and its partitions (they carry their own policies, see 0002)."""
    rows = op.get_bind().execute(sa.text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'event'::regclass ORDER BY 1")).scalars().all()
    return ["event", *rows]


def upgrade() -> None:
    op.add_column("event", sa.Column("reporter_user_id", sa.Integer(), nullable=True))
    op.execute(
        f"""
        CREATE FUNCTION dvmap_event_reporter() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.reporter_user_id := coalesce(NEW.reporter_user_id, {ME});
            RETURN NEW;
        END $$;
        CREATE TRIGGER event_reporter BEFORE INSERT ON event
            FOR EACH ROW EXECUTE FUNCTION dvmap_event_reporter();
        """
    )
    # event forces RLS even for its owner: widen the scope for this transaction's back-fill.
    op.execute(
        """
        SELECT set_config('dvmap.scope', '*', true), set_config('dvmap.grids', '*', true);
        UPDATE event e SET reporter_user_id = h.actor_user_id
          FROM event_history h
         WHERE h.event_id = e.id AND h.event_reported_at = e.reported_at AND h.action = 'report'
           AND h.actor_user_id IS NOT NULL AND e.reporter_user_id IS NULL;
        SELECT set_config('dvmap.scope', '', true), set_config('dvmap.grids', '', true);
        """
    )
    for table in _tables():
        op.execute(
            f"CREATE POLICY {table}_reporter_read ON {table} FOR SELECT"
            f" USING (reporter_user_id IS NOT NULL AND reporter_user_id = {ME})"
        )
    for table in ("event_history", "event_photo"):
        # The sub-select runs under event's RLS, which now lets the reporter through.
        op.execute(
            f"""
            CREATE POLICY {table}_reporter_read ON {table} FOR SELECT
                USING (EXISTS (SELECT 1 FROM event e
                                WHERE e.id = {table}.event_id AND e.reported_at = {table}.event_reported_at
                                  AND e.reporter_user_id = {ME}))
            """
        )


def downgrade() -> None:
    for table in ("event_history", "event_photo"):
        op.execute(f"DROP POLICY {table}_reporter_read ON {table}")
    for table in _tables():
        op.execute(f"DROP POLICY {table}_reporter_read ON {table}")
    op.execute("DROP TRIGGER event_reporter ON event; DROP FUNCTION dvmap_event_reporter()")
    op.drop_column("event", "reporter_user_id")
