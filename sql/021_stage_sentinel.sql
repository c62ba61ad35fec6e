-- The stage's rows of a batch must still be there when its transaction moves them. Since the
-- commit overlaps the next batch's stage (README, "Exactly once, through crashes"), Spark records a batch
-- as done before PostgreSQL commits it, so a stage a crash emptied in between can no longer be
-- replayed by Spark: the commit must notice it. This table is UNLOGGED like the stage, so a
-- crash empties both together: each job start writes a token of its own here before it stages
-- anything, and every batch transaction checks that its token is still here.
CREATE UNLOGGED TABLE stage_sentinel (
    sink_id  text        PRIMARY KEY,
    token    text        NOT NULL,
    set_at   timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT, INSERT, UPDATE ON stage_sentinel TO heartbeat_writer;
REVOKE ALL ON stage_sentinel FROM heartbeat_readonly;
