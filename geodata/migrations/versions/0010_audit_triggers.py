"""Data changes into the audit log, whoever makes them.

Revision ID: 0010
Revises: 0004

One audit row per changing statement and table (statement-level triggers with
transition tables), carrying the acting user from the transaction's scope, the
operation, the row count and up to 50 row ids — so a bulk load of a million events
writes one audit row, not a million. Sensor status and readings are machine data and
are not audited here (the ingest keeps its own counters).
"""
from alembic import op

revision = "0010"
down_revision = "0004"
branch_labels = None
depends_on = None

AUDITED = ("county", "town", "village", "person", "grid", "resource", "population", "event")


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION dvmap_audit_statement() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
          n bigint;
          ids jsonb;
        BEGIN
          IF TG_OP = 'DELETE' THEN
            SELECT count(*), jsonb_agg(id) FILTER (WHERE rn <= 50) INTO n, ids
              FROM (SELECT id, row_number() OVER () AS rn FROM old_rows) x;
          ELSE
            SELECT count(*), jsonb_agg(id) FILTER (WHERE rn <= 50) INTO n, ids
              FROM (SELECT id, row_number() OVER () AS rn FROM new_rows) x;
          END IF;
          IF n > 0 THEN
            INSERT INTO audit_log (user_id, username, action, target, detail)
            VALUES (nullif(current_setting('dvmap.user_id', true), '')::integer,
                    coalesce((SELECT u.username FROM app_user u
                               WHERE u.id = nullif(current_setting('dvmap.user_id', true), '')::integer),
                             nullif(current_setting('dvmap.role', true), ''), current_user),
                    TG_TABLE_NAME || '.' || lower(TG_OP), TG_TABLE_NAME,
                    jsonb_build_object('rows', n, 'ids', ids));
          END IF;
          RETURN NULL;
        END $$;
        """
    )
    for table in AUDITED:
        for op_name, ref in (("INSERT", "NEW TABLE AS new_rows"), ("UPDATE", "NEW TABLE AS new_rows"),
                             ("DELETE", "OLD TABLE AS old_rows")):
            op.execute(
                f"CREATE TRIGGER {table}_audit_{op_name.lower()} AFTER {op_name} ON {table}"
                f" REFERENCING {ref} FOR EACH STATEMENT EXECUTE FUNCTION dvmap_audit_statement()"
            )


def downgrade() -> None:
    for table in AUDITED:
        for op_name in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_audit_{op_name} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS dvmap_audit_statement()")
