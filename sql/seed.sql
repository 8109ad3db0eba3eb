-- Deterministic demo data. dc_seed(orgs, days, step_minutes) fills an empty
-- database; the same arguments always give the same organizations, ids,
-- thresholds and readings (timestamps are anchored to the minute of loading, so
-- that "latest", "online" and "last 24 hours" mean something on a fresh stack).
-- Organization 1 is always 550e8400-e29b-41d4-a716-446655440000 and its first
-- unit (site 1, unit 1) is 6ba7b810-9dad-11d1-80b4-00c04fd430c8.

CREATE OR REPLACE FUNCTION dc_uuid(kind text, n bigint) RETURNS uuid
LANGUAGE sql IMMUTABLE AS $$ SELECT md5(kind || ':' || n)::uuid $$;

CREATE OR REPLACE FUNCTION dc_seed(p_orgs int, p_days int DEFAULT 3, p_step_min int DEFAULT 5)
RETURNS TABLE (organizations bigint, units bigint, devices bigint, readings bigint)
LANGUAGE plpgsql AS $$
DECLARE
    anchor  timestamptz := date_trunc('minute', now());
    steps   int := p_days * 24 * 60 / p_step_min;
BEGIN
    IF EXISTS (SELECT 1 FROM organizations) THEN
        RAISE EXCEPTION 'dc_seed: database already holds data; drop it first';
    END IF;

    CREATE TEMP TABLE seed_org ON COMMIT DROP AS
    SELECT o, CASE WHEN o = 1 THEN '550e8400-e29b-41d4-a716-446655440000'::uuid
                   ELSE dc_uuid('org', o) END AS org_id
    FROM generate_series(1, p_orgs) o;

    CREATE TEMP TABLE seed_site ON COMMIT DROP AS
    SELECT o, org_id, s, dc_uuid('site', o * 10 + s) AS site_id
    FROM seed_org, generate_series(1, 1 + o % 3) s;

    CREATE TEMP TABLE seed_unit ON COMMIT DROP AS
    SELECT o, org_id, s, site_id, u, (o * 100 + s * 10 + u) AS n,
           CASE WHEN o = 1 AND s = 1 AND u = 1 THEN '6ba7b810-9dad-11d1-80b4-00c04fd430c8'::uuid
                ELSE dc_uuid('unit', o * 100 + s * 10 + u) END AS unit_id,
           (u % 3 = 0) AS freezer
    FROM seed_site, generate_series(1, 2 + (o + s) % 3) u;

    CREATE TEMP TABLE seed_device ON COMMIT DROP AS
    SELECT su.*, (su.n * 10 + d) AS dn, dc_uuid('device', su.n * 10 + d) AS device_id
    FROM seed_unit su, generate_series(1, 1 + (su.n % 3 = 0)::int) d;

    INSERT INTO organizations (id, name)
    SELECT org_id, CASE WHEN o = 1 THEN 'Acme Cold Storage' ELSE format('Organization %s', lpad(o::text, 4, '0')) END
    FROM seed_org;

    INSERT INTO sites (id, org_id, name)
    SELECT site_id, org_id, format('Site %s', s) FROM seed_site;

    INSERT INTO units (id, org_id, site_id, name, kind, min_temp, max_temp)
    SELECT unit_id, org_id, site_id, format('Unit %s-%s', s, u),
           CASE WHEN freezer THEN 'freezer' ELSE 'fridge' END,
           CASE WHEN freezer THEN -25 ELSE 2 END,
           CASE WHEN freezer THEN -15 ELSE 8 END
    FROM seed_unit;

    -- every fifth device has been silent for three hours (offline)
    INSERT INTO devices (id, org_id, unit_id, serial, last_seen_at)
    SELECT device_id, org_id, unit_id, format('SN-%s', lpad(dn::text, 8, '0')),
           anchor - CASE WHEN dn % 5 = 4 THEN interval '3 hours' ELSE interval '0' END
    FROM seed_device;

    -- Readings oscillate around the middle of the range. Some units end their
    -- series too hot or too cold, and rare spikes leave the range, so status
    -- and compliance figures are not trivially 100%.
    INSERT INTO readings (org_id, unit_id, device_id, recorded_at, temperature)
    SELECT d.org_id, d.unit_id, d.device_id,
           anchor - (k * p_step_min) * interval '1 minute',
           round((CASE
               WHEN d.n % 7 = 3 AND k < 6 THEN (CASE WHEN d.freezer THEN -15 ELSE 8 END) + 3
               WHEN d.n % 11 = 5 AND k < 6 THEN (CASE WHEN d.freezer THEN -25 ELSE 2 END) - 2
               WHEN (k + d.dn) % 97 = 0 THEN (CASE WHEN d.freezer THEN -15 ELSE 8 END) + 1.5
               ELSE (CASE WHEN d.freezer THEN -20 ELSE 5 END) + 2.4 * sin((k + d.dn) / 20.0)
           END)::numeric, 2)
    FROM seed_device d, generate_series(0, steps - 1) k
    WHERE NOT (d.dn % 5 = 4 AND k < 180 / p_step_min);

    UPDATE units u SET (last_temperature, last_reading_at) =
        (SELECT r.temperature, r.recorded_at FROM readings r
          WHERE r.unit_id = u.id ORDER BY r.recorded_at DESC LIMIT 1);

    INSERT INTO alerts (id, org_id, unit_id, kind, message, created_at, resolved_at)
    SELECT dc_uuid('alert', n * 10 + 1), org_id, unit_id, 'temperature_high',
           format('Unit %s-%s above its maximum', s, u), anchor - interval '40 minutes', NULL
    FROM seed_unit WHERE n % 4 = 0
    UNION ALL
    SELECT dc_uuid('alert', n * 10 + 2), org_id, unit_id, 'door_open',
           format('Unit %s-%s door left open', s, u), anchor - interval '2 days',
           anchor - interval '2 days' + interval '15 minutes'
    FROM seed_unit WHERE n % 3 = 0;

    INSERT INTO audit_log (org_id, actor, action, details, created_at)
    SELECT org_id, format('user%s@example.com', a), (ARRAY['login', 'threshold.update', 'alert.resolve', 'report.export', 'device.register'])[a],
           jsonb_build_object('seq', a), anchor - (a * interval '6 hours')
    FROM seed_org, generate_series(1, 5) a;

    RETURN QUERY SELECT (SELECT count(*) FROM organizations), (SELECT count(*) FROM units),
                        (SELECT count(*) FROM devices), (SELECT count(*) FROM readings);
END $$;
