"""Change generation for imported (custom) layers, for the layer cache.

Revision ID: 0011
Revises: 0009
"""
from alembic import op

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = "0003"  # custom_layer / custom_feature


def upgrade() -> None:
    op.execute("CREATE SEQUENCE dvmap_gen_custom AS bigint")
    op.execute("GRANT USAGE, SELECT ON SEQUENCE dvmap_gen_custom TO dvmap_app_rw")
    for table in ("custom_layer", "custom_feature"):
        op.execute(
            f"CREATE TRIGGER {table}_bump_custom AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}"
            " FOR EACH STATEMENT EXECUTE FUNCTION dvmap_bump_generation('dvmap_gen_custom')"
        )


def downgrade() -> None:
    for table in ("custom_layer", "custom_feature"):
        op.execute(f"DROP TRIGGER IF EXISTS {table}_bump_custom ON {table}")
    op.execute("DROP SEQUENCE IF EXISTS dvmap_gen_custom")
