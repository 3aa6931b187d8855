"""Change generations: cheap "has this data changed?" counters for caches.

Revision ID: 0009
Revises: 0004

A statement-level trigger bumps a sequence whenever a table changes. Sequences are
not transactional and take no row locks, so concurrent writers never queue on the
counter; a cache keys its entries by the current values and is right as soon as a
change commits (a bump seen before its commit only costs one extra recomputation).
"""
from alembic import op

revision = "0009"
down_revision = "0004"
branch_labels = None
depends_on = None

#: generation name → tables whose changes bump it
GENERATIONS = {
    "admin": ("county", "town", "village"),
    "grid": ("grid", "person", "population"),
    "resource": ("resource",),
    "sensor": ("sensor",),
    "event": ("event",),
}


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION dvmap_bump_generation() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          PERFORM nextval(TG_ARGV[0]::regclass);
          RETURN NULL;
        END $$;
        """
    )
    for name, tables in GENERATIONS.items():
        seq = f"dvmap_gen_{name}"
        op.execute(f"CREATE SEQUENCE {seq} AS bigint")
        op.execute(f"GRANT USAGE, SELECT ON SEQUENCE {seq} TO dvmap_app_rw")
        for table in tables:
            op.execute(
                f"CREATE TRIGGER {table}_bump_{name} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}"
                f" FOR EACH STATEMENT EXECUTE FUNCTION dvmap_bump_generation('{seq}')"
            )


def downgrade() -> None:
    for name, tables in GENERATIONS.items():
        for table in tables:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_bump_{name} ON {table}")
        op.execute(f"DROP SEQUENCE IF EXISTS dvmap_gen_{name}")
    op.execute("DROP FUNCTION IF EXISTS dvmap_bump_generation()")
