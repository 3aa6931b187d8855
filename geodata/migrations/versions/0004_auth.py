"""Users, roles and the append-only audit log.

Revision ID: 0004
Revises: 0003

Users are not village-scoped rows (a login must find its user before any scope
exists), so ``app_user`` has no RLS; the app role may read it and change only the
columns login needs. ``audit_log`` is append-only for everybody: the app role has
no UPDATE/DELETE, and a trigger refuses them even for the owner.
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

USER_ROLES = ("county_leader", "town_official", "village_official", "grid_manager", "grid_worker",
              "planner", "admin")


def upgrade() -> None:
    roles = ", ".join(f"'{r}'" for r in USER_ROLES)
    op.execute(
        f"""
        CREATE TABLE app_user (
            id             serial PRIMARY KEY,
            username       text NOT NULL CHECK (username ~ '^[A-Za-z0-9_.@-]{{2,64}}$'),
            display_name   text NOT NULL,
            password_hash  text NOT NULL,
            role           text NOT NULL CHECK (role IN ({roles})),
            town_id        integer REFERENCES town(id),
            village_id     integer REFERENCES village(id),
            person_id      integer REFERENCES person(id),
            active         boolean NOT NULL DEFAULT true,
            is_demo        boolean NOT NULL DEFAULT false,
            failed_logins  integer NOT NULL DEFAULT 0,
            locked_until   timestamptz,
            last_login_at  timestamptz,
            created_at     timestamptz NOT NULL DEFAULT now(),
            CHECK (role <> 'village_official' OR village_id IS NOT NULL),
            CHECK (role <> 'town_official' OR town_id IS NOT NULL),
            CHECK (role <> 'grid_worker' OR person_id IS NOT NULL)
        );
        CREATE UNIQUE INDEX app_user_username_uq ON app_user (lower(username));

        CREATE TABLE audit_log (
            id        bigserial PRIMARY KEY,
            at        timestamptz NOT NULL DEFAULT clock_timestamp(),
            user_id   integer,
            username  text,
            action    text NOT NULL,
            target    text,
            detail    jsonb NOT NULL DEFAULT '{{}}'::jsonb,
            ip        text
        );
        CREATE INDEX audit_log_at_idx ON audit_log (at);
        CREATE INDEX audit_log_user_idx ON audit_log (user_id, at);

        CREATE FUNCTION dvmap_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
        END $$;
        CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
            FOR EACH STATEMENT EXECUTE FUNCTION dvmap_append_only();

        REVOKE ALL ON app_user, audit_log FROM dvmap_app_rw;
        GRANT SELECT, INSERT ON app_user TO dvmap_app_rw;
        GRANT UPDATE (display_name, password_hash, role, town_id, village_id, person_id, active,
                      failed_logins, locked_until, last_login_at, is_demo) ON app_user TO dvmap_app_rw;
        GRANT SELECT, INSERT ON audit_log TO dvmap_app_rw;
        GRANT USAGE ON SEQUENCE app_user_id_seq, audit_log_id_seq TO dvmap_app_rw;
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS audit_log, app_user CASCADE")
    op.execute("DROP FUNCTION IF EXISTS dvmap_append_only()")
