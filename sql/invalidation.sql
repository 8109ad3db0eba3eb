-- Database-originated invalidation. Any write to a table the dashboards read,
-- by dashcache or by any other service, records the organizations it touched
-- in cache_outbox in the same transaction and NOTIFYs dashcache_invalidate.
-- The outbox is the durable record (NOTIFY is only the wake-up: it is lost
-- when nobody listens); dashcache-invalidator applies pending rows and marks
-- them processed, and drains whatever is pending every time it (re)connects.
SET client_min_messages = warning;
BEGIN;

CREATE TABLE IF NOT EXISTS cache_outbox (
    id            bigserial PRIMARY KEY,
    org_id        uuid,                 -- NULL: every organization (TRUNCATE)
    source        text NOT NULL,        -- the table written
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    processed_at  timestamptz
);
CREATE INDEX IF NOT EXISTS cache_outbox_pending_idx ON cache_outbox (id) WHERE processed_at IS NULL;

-- One outbox row per organization per statement, however many rows it wrote.
CREATE OR REPLACE FUNCTION dc_outbox_record() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    col text := CASE WHEN TG_TABLE_NAME = 'organizations' THEN 'id' ELSE 'org_id' END;
BEGIN
    IF TG_OP = 'INSERT' THEN
        EXECUTE format('INSERT INTO cache_outbox (org_id, source) SELECT DISTINCT %I, $1 FROM new_rows', col)
            USING TG_TABLE_NAME;
    ELSIF TG_OP = 'UPDATE' THEN
        EXECUTE format('INSERT INTO cache_outbox (org_id, source)
                        SELECT %1$I, $1 FROM new_rows UNION SELECT %1$I, $1 FROM old_rows', col)
            USING TG_TABLE_NAME;
    ELSIF TG_OP = 'DELETE' THEN
        EXECUTE format('INSERT INTO cache_outbox (org_id, source) SELECT DISTINCT %I, $1 FROM old_rows', col)
            USING TG_TABLE_NAME;
    ELSE
        INSERT INTO cache_outbox (org_id, source) VALUES (NULL, TG_TABLE_NAME);
    END IF;
    -- identical notifications within a transaction are folded into one
    PERFORM pg_notify('dashcache_invalidate', '');
    RETURN NULL;
END $$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['organizations', 'sites', 'units', 'devices', 'readings', 'alerts'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS dc_outbox_ins ON %I', t);
        EXECUTE format('DROP TRIGGER IF EXISTS dc_outbox_upd ON %I', t);
        EXECUTE format('DROP TRIGGER IF EXISTS dc_outbox_del ON %I', t);
        EXECUTE format('DROP TRIGGER IF EXISTS dc_outbox_trunc ON %I', t);
        EXECUTE format('CREATE TRIGGER dc_outbox_ins AFTER INSERT ON %I REFERENCING NEW TABLE AS new_rows
                        FOR EACH STATEMENT EXECUTE FUNCTION dc_outbox_record()', t);
        EXECUTE format('CREATE TRIGGER dc_outbox_upd AFTER UPDATE ON %I REFERENCING OLD TABLE AS old_rows
                        NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dc_outbox_record()', t);
        EXECUTE format('CREATE TRIGGER dc_outbox_del AFTER DELETE ON %I REFERENCING OLD TABLE AS old_rows
                        FOR EACH STATEMENT EXECUTE FUNCTION dc_outbox_record()', t);
        EXECUTE format('CREATE TRIGGER dc_outbox_trunc AFTER TRUNCATE ON %I
                        FOR EACH STATEMENT EXECUTE FUNCTION dc_outbox_record()', t);
    END LOOP;
END $$;

COMMIT;
