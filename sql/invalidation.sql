-- Database-originated invalidation. Any write to a table the dashboards read,
-- by dashcache or by any other service, records the organizations it touched
-- in cache_outbox in the same transaction and NOTIFYs dashcache_invalidate.
-- The outbox is the durable record (NOTIFY is only the wake-up: it is lost
-- when nobody listens); dashcache-invalidator applies pending rows and marks
-- them processed, and drains whatever is pending every time it (re)connects.
--
-- Each row also says what kind of data changed, and the invalidator moves
-- only the generations of the query types that read it (DC_API_CHANGES in
-- fcgi-app/dc_api.h names the kinds it knows: readings, alerts,
-- units.latest, devices.seen). The kind is the table's name, except for an
-- update of units or devices that changed nothing but their hot columns
-- (the latest state ingest keeps on units, a device's last_seen_at):
-- units.latest, devices.seen. A kind the invalidator does not know (sites,
-- units, devices, organizations, a row without kind) moves every type.
SET client_min_messages = warning;
BEGIN;

CREATE TABLE IF NOT EXISTS cache_outbox (
    id            bigserial PRIMARY KEY,
    org_id        uuid,                 -- NULL: every organization (TRUNCATE)
    source        text NOT NULL,        -- the table written
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    processed_at  timestamptz
);
-- what changed (see above); NULL in rows written before kinds were: everything
ALTER TABLE cache_outbox ADD COLUMN IF NOT EXISTS kind text;
CREATE INDEX IF NOT EXISTS cache_outbox_pending_idx ON cache_outbox (id) WHERE processed_at IS NULL;

-- The events of API writes whose invalidation Redis did not take at once
-- (dashcache's workers insert them after the commit): the invalidator
-- publishes them on dashboard:events once no outbox row is pending, that is
-- once the write's invalidation has been applied, and deletes them after.
CREATE TABLE IF NOT EXISTS cache_deferred_events (
    id          bigserial PRIMARY KEY,
    payload     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- One outbox row per organization and kind per statement, however many rows it wrote.
CREATE OR REPLACE FUNCTION dc_outbox_record() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    col text := CASE WHEN TG_TABLE_NAME = 'organizations' THEN 'id' ELSE 'org_id' END;
    -- the columns an update may change and still be of the narrow kind
    hot text[] := CASE TG_TABLE_NAME WHEN 'units' THEN ARRAY['last_temperature', 'last_reading_at']
                                     WHEN 'devices' THEN ARRAY['last_seen_at'] END;
    narrow text := CASE TG_TABLE_NAME WHEN 'units' THEN 'units.latest' WHEN 'devices' THEN 'devices.seen' END;
BEGIN
    IF TG_OP = 'INSERT' THEN
        EXECUTE format('INSERT INTO cache_outbox (org_id, source, kind) SELECT DISTINCT %I, $1, $1 FROM new_rows',
                       col)
            USING TG_TABLE_NAME;
    ELSIF TG_OP = 'UPDATE' AND hot IS NOT NULL THEN
        -- row by row (by id): narrow when everything but the hot columns is the
        -- same; a row without its pair (its id changed) or with another column
        -- changed is of the table's kind, for its old and its new organization
        EXECUTE format('INSERT INTO cache_outbox (org_id, source, kind)
                        SELECT DISTINCT x.org, $1, CASE WHEN p.same THEN $2 ELSE $1 END
                          FROM (SELECT o.%1$I AS old_org, n.%1$I AS new_org,
                                       (to_jsonb(o) - $3) = (to_jsonb(n) - $3) AS same
                                  FROM old_rows o FULL JOIN new_rows n ON n.id = o.id) p
                         CROSS JOIN LATERAL (VALUES (p.old_org), (p.new_org)) x(org)
                         WHERE x.org IS NOT NULL', col)
            USING TG_TABLE_NAME, narrow, hot;
    ELSIF TG_OP = 'UPDATE' THEN
        EXECUTE format('INSERT INTO cache_outbox (org_id, source, kind)
                        SELECT %1$I, $1, $1 FROM new_rows UNION SELECT %1$I, $1, $1 FROM old_rows', col)
            USING TG_TABLE_NAME;
    ELSIF TG_OP = 'DELETE' THEN
        EXECUTE format('INSERT INTO cache_outbox (org_id, source, kind) SELECT DISTINCT %I, $1, $1 FROM old_rows',
                       col)
            USING TG_TABLE_NAME;
    ELSE
        INSERT INTO cache_outbox (org_id, source, kind) VALUES (NULL, TG_TABLE_NAME, TG_TABLE_NAME);
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
