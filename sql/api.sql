-- The write side of the dashboard API. Each function is one transaction
-- (one statement from dashcache), checks that every id belongs to the
-- organization it is written for, writes an audit row, and returns what the
-- caller must invalidate and announce. Errors carry SQLSTATE P0002 (an id
-- that does not exist here: 404), P0403 (an item of an organization the
-- caller may not write: 403) or 22023 (a bad value: 400). Actors are the
-- callers' token subjects.
BEGIN;

-- Readings: p_devices[i], p_temps[i], p_times[i] (NULL: now), sent by
-- p_actor on behalf of the organizations p_orgs (every organization when
-- p_any_org, a platform service account). A device of any other
-- organization refuses the whole batch (SQLSTATE P0403: 403): nothing is
-- stored. Each time must be within [now - p_retention, now + p_max_future]
-- (the workers pass READINGS_RETENTION_DAYS and INGEST_MAX_FUTURE_SECONDS;
-- NULL: 30 days, 300 s). Returns one row per unit that received readings
-- ('unitUpdate') and per alert it opened ('alertCreated').
DROP FUNCTION IF EXISTS dc_ingest_readings(uuid[], numeric[], timestamptz[]);
DROP FUNCTION IF EXISTS dc_ingest_readings(uuid[], numeric[], timestamptz[], uuid[], boolean, text);
DROP FUNCTION IF EXISTS dc_ingest_readings(uuid[], numeric[], timestamptz[], interval, interval);
CREATE OR REPLACE FUNCTION dc_ingest_readings(p_devices uuid[], p_temps numeric[], p_times timestamptz[],
                                              p_orgs uuid[], p_any_org boolean, p_actor text,
                                              p_max_future interval DEFAULT NULL,
                                              p_retention interval DEFAULT NULL)
RETURNS TABLE (event text, org_id uuid, unit_id uuid, alert_id uuid)
LANGUAGE plpgsql AS $$
DECLARE
    bad bigint;
    horizon timestamptz := now() + coalesce(p_max_future, interval '300 seconds');
    oldest timestamptz := now() - coalesce(p_retention, interval '30 days');
BEGIN
    -- A clock far ahead would make its reading the unit's latest state for
    -- ever (that state only moves forward), hiding every later real reading
    -- and alarm; one far behind is outside what the dashboards keep.
    SELECT x.idx INTO bad
      FROM unnest(p_times) WITH ORDINALITY AS x(at, idx)
     WHERE x.at > horizon OR x.at < oldest ORDER BY x.idx LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = '22023',
            MESSAGE = format('readings[%s]: recordedAt %s is outside %s .. %s', bad - 1,
                             to_char(p_times[bad] AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                             to_char(oldest AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                             to_char(horizon AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'));
    END IF;

    -- A caller bound to some organizations learns nothing of other tenants:
    -- a device of another organization and one that does not exist get the
    -- same answer (403), so device ids cannot be probed through ingest.
    IF p_any_org IS NOT TRUE THEN
        SELECT x.idx INTO bad
          FROM unnest(p_devices) WITH ORDINALITY AS x(id, idx)
          LEFT JOIN devices d ON d.id = x.id
         WHERE d.id IS NULL OR NOT (d.org_id = ANY (coalesce(p_orgs, '{}'::uuid[]))) ORDER BY x.idx LIMIT 1;
        IF bad IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'P0403',
                MESSAGE = format('readings[%s]: device %s is not a device of the caller''s organizations; nothing was stored',
                                 bad - 1, p_devices[bad]);
        END IF;
    END IF;

    SELECT x.idx INTO bad
      FROM unnest(p_devices) WITH ORDINALITY AS x(id, idx)
      LEFT JOIN devices d ON d.id = x.id
     WHERE d.id IS NULL ORDER BY x.idx LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002',
            MESSAGE = format('readings[%s]: device %s does not exist', bad - 1, p_devices[bad]);
    END IF;

    IF to_regclass('pg_temp.dc_batch') IS NULL THEN
        CREATE TEMP TABLE dc_batch (device_id uuid, org_id uuid, unit_id uuid,
                                    temperature numeric(5,2), recorded_at timestamptz)
            ON COMMIT DELETE ROWS;
    END IF;
    INSERT INTO dc_batch
    SELECT x.device_id, d.org_id, d.unit_id, x.temperature, coalesce(x.recorded_at, now())
      FROM unnest(p_devices, p_temps, p_times) AS x(device_id, temperature, recorded_at)
      JOIN devices d ON d.id = x.device_id;

    INSERT INTO readings (org_id, unit_id, device_id, recorded_at, temperature)
    SELECT b.org_id, b.unit_id, b.device_id, b.recorded_at, b.temperature FROM dc_batch b;

    -- a last_seen_at beyond the horizon (stored before it was enforced) is replaced
    UPDATE devices d SET last_seen_at = CASE WHEN d.last_seen_at > horizon THEN m.seen
                                             ELSE GREATEST(d.last_seen_at, m.seen) END
      FROM (SELECT b.device_id, max(b.recorded_at) AS seen FROM dc_batch b GROUP BY b.device_id) m
     WHERE d.id = m.device_id;

    -- a late reading never moves a unit's latest state backwards; a latest
    -- state beyond the horizon (stored before it was enforced) never holds
    UPDATE units u SET last_temperature = l.temperature, last_reading_at = l.recorded_at
      FROM (SELECT DISTINCT ON (b.unit_id) b.unit_id, b.temperature, b.recorded_at
              FROM dc_batch b ORDER BY b.unit_id, b.recorded_at DESC) l
     WHERE u.id = l.unit_id
       AND (u.last_reading_at IS NULL OR l.recorded_at >= u.last_reading_at OR u.last_reading_at > horizon);

    RETURN QUERY
    WITH touched AS (SELECT DISTINCT b.org_id, b.unit_id FROM dc_batch b),
    opened AS (
        INSERT INTO alerts (id, org_id, unit_id, kind, message)
        SELECT gen_random_uuid(), u.org_id, u.id,
               CASE WHEN u.last_temperature > u.max_temp THEN 'temperature_high' ELSE 'temperature_low' END,
               format('%s at %s°C, outside %s..%s°C', u.name, u.last_temperature, u.min_temp, u.max_temp)
          FROM units u JOIN touched t ON t.unit_id = u.id
         WHERE (u.last_temperature > u.max_temp OR u.last_temperature < u.min_temp)
           AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.unit_id = u.id AND a.resolved_at IS NULL)
        RETURNING alerts.id, alerts.org_id, alerts.unit_id
    ),
    audited AS (
        INSERT INTO audit_log (org_id, actor, action, details)
        SELECT b.org_id, p_actor, 'readings.ingest', jsonb_build_object('readings', count(*))
          FROM dc_batch b GROUP BY b.org_id
        RETURNING 1
    )
    SELECT 'unitUpdate', t.org_id, t.unit_id, NULL::uuid FROM touched t
    UNION ALL
    SELECT 'alertCreated', o.org_id, o.unit_id, o.id FROM opened o;
END $$;

CREATE OR REPLACE FUNCTION dc_alert_create(p_org uuid, p_unit uuid, p_kind text, p_message text, p_actor text)
RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_id uuid := gen_random_uuid();
BEGIN
    IF NOT EXISTS (SELECT 1 FROM units WHERE id = p_unit AND org_id = p_org) THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002',
            MESSAGE = format('unit %s does not exist in organization %s', p_unit, p_org);
    END IF;
    INSERT INTO alerts (id, org_id, unit_id, kind, message) VALUES (v_id, p_org, p_unit, p_kind, p_message);
    INSERT INTO audit_log (org_id, actor, action, details)
    VALUES (p_org, p_actor, 'alert.create', jsonb_build_object('alertId', v_id, 'unitId', p_unit, 'kind', p_kind));
    RETURN v_id;
END $$;

-- 'resolved', or 'already_resolved' (nothing changed).
CREATE OR REPLACE FUNCTION dc_alert_resolve(p_org uuid, p_alert uuid, p_actor text)
RETURNS TABLE (status text, unit_id uuid, resolved_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    a alerts%ROWTYPE;
BEGIN
    SELECT * INTO a FROM alerts WHERE id = p_alert AND alerts.org_id = p_org FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002',
            MESSAGE = format('alert %s does not exist in organization %s', p_alert, p_org);
    END IF;
    IF a.resolved_at IS NOT NULL THEN
        RETURN QUERY SELECT 'already_resolved'::text, a.unit_id, a.resolved_at;
        RETURN;
    END IF;
    UPDATE alerts SET resolved_at = now() WHERE id = p_alert;
    INSERT INTO audit_log (org_id, actor, action, details)
    VALUES (p_org, p_actor, 'alert.resolve', jsonb_build_object('alertId', p_alert));
    RETURN QUERY SELECT 'resolved'::text, a.unit_id, now();
END $$;

-- Online: seen now. Offline: not seen (last_seen_at cleared).
CREATE OR REPLACE FUNCTION dc_device_status(p_org uuid, p_device uuid, p_online boolean, p_actor text)
RETURNS TABLE (unit_id uuid, last_seen_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    v_unit uuid;
BEGIN
    UPDATE devices d SET last_seen_at = CASE WHEN p_online THEN now() END
     WHERE d.id = p_device AND d.org_id = p_org
    RETURNING d.unit_id INTO v_unit;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'P0002',
            MESSAGE = format('device %s does not exist in organization %s', p_device, p_org);
    END IF;
    INSERT INTO audit_log (org_id, actor, action, details)
    VALUES (p_org, p_actor, 'device.status', jsonb_build_object('deviceId', p_device, 'online', p_online));
    RETURN QUERY SELECT v_unit, CASE WHEN p_online THEN now() END;
END $$;

-- The first answer of each write sent with an Idempotency-Key, stored in the
-- write's own transaction and replayed to retries of the same request.
-- Scoped per organization of the path (the nil UUID for ingest, which has
-- none) and per subject (the caller; '' until tokens name one). Rows live
-- IDEMPOTENCY_KEY_TTL_SECONDS (24 h); the claims purge expired ones in
-- small batches.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    org_id        uuid NOT NULL,
    subject       text NOT NULL,
    key           text NOT NULL,
    request_hash  text NOT NULL,  -- sha256 of the request (method, endpoint, ids, body)
    status        int,            -- NULL only inside the transaction that writes
    body          text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, subject, key)
);
CREATE INDEX IF NOT EXISTS idempotency_keys_created_idx ON idempotency_keys (created_at);

-- 'new' (the caller writes, then stores its answer, then commits), 'replay'
-- with the stored answer, or 'mismatch' (the key was used for another
-- request). A second request with the same key blocks on the first one's
-- uncommitted row and, once it commits, replays it (READ COMMITTED: each
-- statement here sees what committed before it).
CREATE OR REPLACE FUNCTION dc_idempotency_claim(p_org uuid, p_subject text, p_key text, p_hash text, p_ttl_s int)
RETURNS TABLE (state text, status int, body text)
LANGUAGE plpgsql AS $$
DECLARE
    cutoff timestamptz := now() - make_interval(secs => p_ttl_s);
    r idempotency_keys%ROWTYPE;
BEGIN
    DELETE FROM idempotency_keys k WHERE k.org_id = p_org AND k.subject = p_subject AND k.key = p_key
                                     AND k.created_at < cutoff;
    DELETE FROM idempotency_keys k WHERE k.ctid = ANY (ARRAY(
        SELECT x.ctid FROM idempotency_keys x WHERE x.created_at < cutoff LIMIT 100 FOR UPDATE SKIP LOCKED));
    INSERT INTO idempotency_keys (org_id, subject, key, request_hash) VALUES (p_org, p_subject, p_key, p_hash)
        ON CONFLICT DO NOTHING;
    IF FOUND THEN
        RETURN QUERY SELECT 'new'::text, NULL::int, NULL::text;
        RETURN;
    END IF;
    SELECT * INTO r FROM idempotency_keys k WHERE k.org_id = p_org AND k.subject = p_subject AND k.key = p_key;
    IF NOT FOUND OR r.status IS NULL THEN  -- gone meanwhile: the caller's retry starts afresh
        RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = 'the Idempotency-Key is being used concurrently';
    END IF;
    IF r.request_hash <> p_hash THEN
        RETURN QUERY SELECT 'mismatch'::text, NULL::int, NULL::text;
        RETURN;
    END IF;
    RETURN QUERY SELECT 'replay'::text, r.status, r.body;
END $$;

COMMIT;
