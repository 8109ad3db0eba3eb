-- dashcache schema: the cold-chain monitoring domain the dashboards aggregate.
-- org_id is carried down to units, devices, readings and alerts so that every
-- dashboard query filters on one indexed column and no join can cross tenants.
BEGIN;

CREATE TABLE IF NOT EXISTS organizations (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS sites (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name        text NOT NULL
);

CREATE TABLE IF NOT EXISTS units (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    site_id     uuid NOT NULL REFERENCES sites(id) ON DELETE CASCADE,
    name        text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('fridge', 'freezer')),
    min_temp    numeric(5,2) NOT NULL,
    max_temp    numeric(5,2) NOT NULL,
    -- latest state, kept by the ingest endpoint
    last_temperature numeric(5,2),
    last_reading_at  timestamptz,
    CHECK (min_temp < max_temp)
);

CREATE TABLE IF NOT EXISTS devices (
    id            uuid PRIMARY KEY,
    org_id        uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    unit_id       uuid NOT NULL REFERENCES units(id) ON DELETE CASCADE,
    serial        text NOT NULL UNIQUE,
    last_seen_at  timestamptz
);

CREATE TABLE IF NOT EXISTS readings (
    id           bigserial PRIMARY KEY,
    org_id       uuid NOT NULL,
    unit_id      uuid NOT NULL,
    device_id    uuid NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    recorded_at  timestamptz NOT NULL,
    temperature  numeric(5,2) NOT NULL
);

CREATE TABLE IF NOT EXISTS alerts (
    id           uuid PRIMARY KEY,
    org_id       uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    unit_id      uuid NOT NULL REFERENCES units(id) ON DELETE CASCADE,
    kind         text NOT NULL,
    message      text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz
);

CREATE TABLE IF NOT EXISTS audit_log (
    id          bigserial PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    actor       text NOT NULL,
    action      text NOT NULL,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Indexes fit the dashboard queries in fcgi-app/dc_query.c.
CREATE INDEX IF NOT EXISTS sites_org_idx          ON sites (org_id);
CREATE INDEX IF NOT EXISTS units_org_idx          ON units (org_id);
CREATE INDEX IF NOT EXISTS devices_org_idx        ON devices (org_id);
CREATE INDEX IF NOT EXISTS devices_unit_idx       ON devices (unit_id);
-- latest reading per unit, hourly trends per unit
CREATE INDEX IF NOT EXISTS readings_unit_time_idx ON readings (unit_id, recorded_at DESC);
-- 30-day compliance per organization (covering, so it can run index-only)
CREATE INDEX IF NOT EXISTS readings_org_time_idx  ON readings (org_id, recorded_at) INCLUDE (unit_id, temperature);
CREATE INDEX IF NOT EXISTS alerts_open_idx        ON alerts (org_id, unit_id) WHERE resolved_at IS NULL;
CREATE INDEX IF NOT EXISTS audit_org_time_idx     ON audit_log (org_id, created_at DESC, id DESC);

COMMIT;

\ir invalidation.sql
\ir api.sql
