-- Group roles that carry privileges. Login roles (the job's PGUSER, Superset's reader) are created
-- by `heartbeat-ops` with generated passwords and made members of these, so no secret lives in SQL.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'heartbeat_writer') THEN
        CREATE ROLE heartbeat_writer NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'heartbeat_readonly') THEN
        CREATE ROLE heartbeat_readonly NOLOGIN;
    END IF;
END
$$;

-- Nobody but the owner creates objects in public; the reader sees only what is granted.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO heartbeat_writer, heartbeat_readonly;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO heartbeat_readonly;
