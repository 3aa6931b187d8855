"""Sessions that end on the server, and login throttling shared by every worker.

Revision ID: 0016
Revises: 0013

``app_user.session_epoch``: the session cookie is signed, not stored, so a copy of
it taken before logout stayed valid for its whole lifetime. The login stores the
user's epoch in the session and every request compares it with the row; logout,
a password change, disabling the user and a role/unit change bump it, which ends
every session of that user at once.

``login_throttle``: fixed-window failure counters (for the ``limits`` library,
geodata/login_throttle.py) keyed by client address, by (account, address) and
by account. They live in PostgreSQL, not in a worker's memory, so the limits
hold whatever number of gunicorn workers or app instances share the database.
"""
from alembic import op

revision = "0016"
down_revision = "0013"
branch_labels = None
depends_on = "0004"  # app_user


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE app_user ADD COLUMN session_epoch integer NOT NULL DEFAULT 0;
        GRANT UPDATE (session_epoch) ON app_user TO dvmap_app_rw;

        CREATE TABLE login_throttle (
            key         text PRIMARY KEY,
            hits        integer NOT NULL,
            expires_at  timestamptz NOT NULL
        );
        CREATE INDEX login_throttle_expires_idx ON login_throttle (expires_at);
        GRANT SELECT, INSERT, UPDATE, DELETE ON login_throttle TO dvmap_app_rw;
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS login_throttle")
    op.execute("ALTER TABLE app_user DROP COLUMN IF EXISTS session_epoch")
