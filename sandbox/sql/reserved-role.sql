-- The responder's way in when every ordinary connection slot is taken: the role that
-- environments.yml names as the sandbox's `postgres_reserved`. Run once, as a superuser,
-- when the cluster is made (native driver at `up`, compose image at build time).
--
-- The least privilege that gets in: on PostgreSQL 16+ with reserved_connections above 0,
-- a plain role granted pg_use_reserved_connections, plus pg_monitor (to see every session's
-- query) and pg_signal_backend (to terminate them). Before 16, or with no such slots, only
-- the superuser reserve (superuser_reserved_connections) is left, so a superuser.
DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 160000
       AND current_setting('reserved_connections')::int > 0 THEN
        CREATE ROLE drillbook_reserved LOGIN;
        GRANT pg_use_reserved_connections, pg_monitor, pg_signal_backend TO drillbook_reserved;
    ELSE
        CREATE ROLE drillbook_reserved LOGIN SUPERUSER;
    END IF;
END
$$;
