"""Villagers' channel: public reports (待核实), me too, merges (合并), points, sensitive subclasses.

Revision ID: 0019
Revises: 0016

* ``event.state`` gains ``pending_verification`` (a villager's report before the grid
  worker checks it on site) and ``merged`` (a duplicate folded into another event):
  the CHECK and the two partial indexes over the open states are rebuilt from the
  literal lists below (compared with geodata.workflow by tests/unit/test_workflow.py
  and tests/unit/test_bigscreen.py).
* ``public_report`` — the event a villager's report created, the SHA-256 of its
  tracking code, the phone (personal) and its hash, the reporter's 评价.
* ``event_follower`` — 我也遇到了 (me too), one row per phone/device hash per event.
* ``event_merge`` — kept/merged event, by whom, when, what moved, and its undoing.
* ``citizen_points`` — 积分 per phone hash, month and village.
* ``sensitive_subclass`` — subclasses never shown publicly (seeded: disputes,
  elderly living alone, hardship assistance), reference data the app only reads.

Row-level security as for the event tables (``dvmap_village_visible(village_id)``);
the public service writes with the county scope of the role ``citizen`` and filters
what it returns itself.
"""
from alembic import op

revision = "0019"
down_revision = "0016"
branch_labels = None
depends_on = "0002"

# Literal copies of geodata.workflow (State order, then the open ones), as 0002/0008 keep theirs.
EVENT_STATES = ("pending_verification", "reported", "accepted", "rejected", "dispatched", "in_progress",
                "postponed", "handled", "verified", "closed", "evaluated", "merged")
OPEN_STATES = ("pending_verification", "reported", "accepted", "dispatched", "in_progress", "postponed",
               "handled", "verified")
OLD_STATES = ("reported", "accepted", "rejected", "dispatched", "in_progress", "postponed",
              "handled", "verified", "closed", "evaluated")
OLD_OPEN = ("reported", "accepted", "dispatched", "in_progress", "postponed", "handled", "verified")

#: (subclass, reason): a person's situation or a quarrel between named people.
SENSITIVE = [
    ("0701", "邻里纠纷涉及具体个人 / a neighbour dispute names people"),
    ("0702", "土地纠纷涉及具体个人 / a land dispute names people"),
    ("0703", "劳资纠纷涉及具体个人 / a wage dispute names people"),
    ("0801", "独居老人的住处和情况 / where an elderly person lives alone"),
    ("0802", "困难群众的家庭情况 / a family's hardship"),
]

SCOPED = ("public_report", "event_follower", "event_merge", "citizen_points")


def _in(values) -> str:
    return ", ".join(f"'{v}'" for v in values)


def _states(states, open_states) -> None:
    op.execute(
        f"""
        ALTER TABLE event DROP CONSTRAINT event_state_check;
        ALTER TABLE event ADD CONSTRAINT event_state_check CHECK (state IN ({_in(states)}));
        DROP INDEX event_open_due_idx;
        CREATE INDEX event_open_due_idx ON event (due_at) WHERE state IN ({_in(open_states)});
        DROP INDEX event_open_cover_idx;
        CREATE INDEX event_open_cover_idx ON event (state) INCLUDE (village_id, grid_uid)
            WHERE state IN ({_in(open_states)});
        """
    )


def upgrade() -> None:
    _states(EVENT_STATES, OPEN_STATES)
    op.execute(
        """
        CREATE TABLE public_report (
            id                 bigserial PRIMARY KEY,
            event_id           bigint NOT NULL,
            reported_at        timestamptz NOT NULL,
            tracking_code_hash char(64) NOT NULL UNIQUE,
            phone              text,
            phone_hash         char(64),
            client_ip_hash     char(64),
            village_id         integer REFERENCES village(id),
            created_at         timestamptz NOT NULL DEFAULT now(),
            rating_level       text CONSTRAINT public_report_rating_level_check
                                    CHECK (rating_level IN ('satisfied', 'basic', 'not')),
            rating_comment     text CONSTRAINT public_report_rating_comment_check
                                    CHECK (length(rating_comment) <= 500),
            rated_at           timestamptz,
            review_flagged_at  timestamptz,
            points_awarded     smallint NOT NULL DEFAULT 0,
            FOREIGN KEY (event_id, reported_at) REFERENCES event (id, reported_at)
        );
        CREATE INDEX public_report_event_idx ON public_report (event_id);
        CREATE INDEX public_report_phone_idx ON public_report (phone_hash, created_at);

        CREATE TABLE event_follower (
            id                  bigserial PRIMARY KEY,
            event_id            bigint NOT NULL,
            follower_key        char(64) NOT NULL,
            village_id          integer REFERENCES village(id),
            created_at          timestamptz NOT NULL DEFAULT now(),
            moved_from_event_id bigint,
            UNIQUE (event_id, follower_key)
        );
        CREATE INDEX event_follower_event_idx ON event_follower (event_id);

        CREATE TABLE event_merge (
            id              bigserial PRIMARY KEY,
            kept_event_id   bigint NOT NULL,
            merged_event_id bigint NOT NULL,
            village_id      integer REFERENCES village(id),
            previous_state  text NOT NULL,
            merged_by       text NOT NULL,
            merged_by_user_id integer,
            at              timestamptz NOT NULL DEFAULT now(),
            moved           jsonb NOT NULL DEFAULT '{}'::jsonb,
            undone_at       timestamptz,
            undone_by       text,
            CONSTRAINT event_merge_check CHECK (kept_event_id <> merged_event_id)
        );
        CREATE INDEX event_merge_kept_idx ON event_merge (kept_event_id);
        CREATE INDEX event_merge_merged_idx ON event_merge (merged_event_id);
        CREATE UNIQUE INDEX event_merge_active_key ON event_merge (merged_event_id) WHERE undone_at IS NULL;

        CREATE TABLE citizen_points (
            phone_hash char(64) NOT NULL,
            month      date NOT NULL,
            village_id integer NOT NULL REFERENCES village(id),
            points     integer NOT NULL DEFAULT 0 CONSTRAINT citizen_points_points_check CHECK (points >= 0),
            reports    integer NOT NULL DEFAULT 0,
            PRIMARY KEY (phone_hash, month, village_id)
        );
        CREATE INDEX citizen_points_month_idx ON citizen_points (month, village_id);

        CREATE TABLE sensitive_subclass (
            subclass_code text PRIMARY KEY REFERENCES event_subclass(code),
            reason        text NOT NULL
        );
        """
    )
    rows = ", ".join("('{}', '{}')".format(code, reason.replace("'", "''")) for code, reason in SENSITIVE)
    op.execute(f"INSERT INTO sensitive_subclass (subclass_code, reason) VALUES {rows}")

    for table in SCOPED:
        op.execute(
            f"""
            ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
            ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
            CREATE POLICY {table}_scope ON {table}
                USING (dvmap_village_visible(village_id)) WITH CHECK (dvmap_village_visible(village_id));
            GRANT SELECT, INSERT, UPDATE ON {table} TO dvmap_app_rw;
            REVOKE DELETE, TRUNCATE ON {table} FROM dvmap_app_rw;
            """
        )
    # an unmerge removes the follower row the merge made for the duplicate's reporter
    op.execute("GRANT DELETE ON event_follower TO dvmap_app_rw")
    op.execute(
        """
        GRANT USAGE, SELECT ON SEQUENCE public_report_id_seq, event_follower_id_seq, event_merge_id_seq
            TO dvmap_app_rw;
        GRANT SELECT ON sensitive_subclass TO dvmap_app_rw;
        REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON sensitive_subclass FROM dvmap_app_rw;
        """
    )


def downgrade() -> None:
    for table in ("sensitive_subclass", "citizen_points", "event_merge", "event_follower", "public_report"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
    op.execute("UPDATE event SET state = 'reported' WHERE state = 'pending_verification'")
    op.execute("UPDATE event SET state = 'rejected' WHERE state = 'merged'")
    _states(OLD_STATES, OLD_OPEN)
