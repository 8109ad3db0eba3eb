/*
 * Writes that can be trusted, against the real Redis and PostgreSQL: a
 * device with a wrong clock cannot freeze a unit's latest state (neither
 * through the API nor through the SQL function), recordedAt bounds, form
 * posts refused on every write route, and Idempotency-Key retries that
 * apply once, replay the first answer without invalidating again, refuse
 * another body with the same key, and let exactly one of concurrent
 * requests apply.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "dc_test.h"
#include "dc_write.h"

#define DC_TEST_LONG_KEY (DC_IDEMPOTENCY_KEY_MAX + 2)

typedef struct {
    dc_config_t cfg;
    dc_app_t   *app;
    char        org[37], unit[37], device[37];
} fixture_t;

typedef struct {
    int   status;
    int   replayed;
    char  x_cache[8];
    char *body;
} resp_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));

    dc_test_config(&f->cfg);
    f->app = dc_app_new(&f->cfg);
    assert_non_null(f->app);
    dc_test_org(6, f->org);
    dc_test_unit_of(f->org, f->unit);
    dc_test_device_of(f->unit, f->device);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    dc_app_free(f->app);
    free(f);
    return 0;
}

static void request(dc_app_t *app, const dc_input_t *in, resp_t *r)
{
    dc_response_t resp;

    dc_app_handle(app, in, &resp);
    r->status = resp.status;
    r->replayed = resp.replayed;
    snprintf(r->x_cache, sizeof(r->x_cache), "%s", resp.x_cache ? resp.x_cache : "");
    r->body = strndup(resp.body ? resp.body : "", resp.body_len);
    dc_app_done(app);
}

/* POST as the caller auth (NULL: the default one) with a Content-Type and an Idempotency-Key (both may be NULL). */
static void post_as(dc_app_t *app, const char *auth, const char *path, const char *ctype, const char *key,
                    const char *body, resp_t *r)
{
    dc_input_t in = { .method = "POST",
                      .path = path,
                      .content_type = ctype,
                      .idempotency_key = key,
                      .authorization = auth ? auth : dc_test_default_auth(),
                      .body = body,
                      .body_len = body ? strlen(body) : 0 };
    request(app, &in, r);
}

static void post_key(dc_app_t *app, const char *path, const char *ctype, const char *key, const char *body,
                     resp_t *r)
{
    post_as(app, NULL, path, ctype, key, body, r);
    dc_test_outbox_applied(); /* as the invalidator would: the worker invalidated already */
}

static void post(dc_app_t *app, const char *path, const char *ctype, const char *body, resp_t *r)
{
    post_key(app, path, ctype, NULL, body, r);
}

static void get(dc_app_t *app, const char *path, resp_t *r)
{
    dc_input_t in = { .method = "GET", .path = path, .authorization = dc_test_default_auth() };
    request(app, &in, r);
}

/* A key no earlier run used. */
static void fresh_key(char *buf, size_t cap, const char *what)
{
    static int n;
    snprintf(buf, cap, "%s-%ld-%d-%d", what, (long)time(NULL), (int)getpid(), n++);
}

static long long count_sql(const char *sql, const char *arg)
{
    const char *p[] = { arg };
    char       *v = dc_test_sql(sql, 1, p);
    long long   n = v ? atoll(v) : -1;
    free(v);
    return n;
}

/* Runs sql on a connection of its own; returns the SQLSTATE of its error, or "" (static). */
static const char *sql_state(const char *sql, int n, const char *const *params)
{
    static char state[8];
    dc_config_t cfg;
    PGconn     *c;
    PGresult   *r;
    const char *s;

    dc_test_config(&cfg);
    c = PQconnectdb(cfg.database_url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    snprintf(state, sizeof(state), "%s", s ? s : "");
    PQclear(r);
    PQfinish(c);
    return state;
}

static void resolve_unit_alerts(const char *unit)
{
    const char *p[] = { unit };
    free(dc_test_sql(
        "WITH r AS (UPDATE alerts SET resolved_at = now() WHERE unit_id = $1 AND resolved_at IS NULL"
        " RETURNING 1) SELECT count(*) FROM r",
        1, p));
}

static void ingest_one(fixture_t *f, double t, const char *at, resp_t *r)
{
    char body[256];
    if (at != NULL)
        snprintf(body, sizeof(body), "{\"deviceId\":\"%s\",\"temperature\":%.2f,\"recordedAt\":\"%s\"}",
                 f->device, t, at);
    else
        snprintf(body, sizeof(body), "{\"deviceId\":\"%s\",\"temperature\":%.2f}", f->device, t);
    post(f->app, "/api/ingest/readings", "application/json", body, r);
}

/*
 * A reading dated 9999 used to become the unit's latest state for ever: no
 * later real reading moved it, and no alert opened when the unit left its
 * range. Through the API it is now a 400 naming the variable; a future
 * reading that reaches the SQL function some other way is refused there
 * too; and a unit already frozen by one (stored before this fix) is taken
 * over by the next real reading.
 */
static void test_future_reading_cannot_freeze_a_unit(void **state)
{
    fixture_t  *f = *state;
    resp_t      r;
    const char *p[] = { f->device };
    const char *u[] = { f->unit };
    char       *v;

    resolve_unit_alerts(f->unit);
    ingest_one(f, 5, NULL, &r);
    assert_int_equal(r.status, 200);
    free(r.body);

    ingest_one(f, 5, "9999-01-01T00:00:00Z", &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "INGEST_MAX_FUTURE_SECONDS"));
    free(r.body);
    assert_int_equal(count_sql("SELECT count(*) FROM readings WHERE device_id = $1 AND recorded_at > now() + "
                               "interval '1 day'",
                               f->device),
                     0);

    /* the database function refuses it as well (another writer, an older worker) */
    assert_string_equal(
        sql_state("SELECT count(*) FROM dc_ingest_readings(ARRAY[$1]::uuid[], ARRAY[5]::numeric[],"
                  " ARRAY['9999-01-01T00:00:00Z']::timestamptz[], NULL, true, 'another-writer')",
                  1, p),
        "22023");

    /* a unit frozen before the fix: the next real reading takes over, and its alarm opens */
    free(dc_test_sql(
        "WITH x AS (UPDATE units SET last_temperature = 5, last_reading_at = '9999-01-01' WHERE id = $1"
        " RETURNING 1) SELECT count(*) FROM x",
        1, u));
    ingest_one(f, 60, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"alertsOpened\":1"));
    free(r.body);
    v = dc_test_sql(
        "SELECT last_temperature::text || ' ' || (last_reading_at <= now())::text FROM units WHERE id = $1",
        1, u);
    assert_string_equal(v, "60.00 true");
    free(v);
    resolve_unit_alerts(f->unit);
    ingest_one(f, 5, NULL, &r);
    free(r.body);
}

static void test_recorded_at_too_old_is_400_and_stores_nothing(void **state)
{
    fixture_t *f = *state;
    resp_t     r;
    long long  before = count_sql("SELECT count(*) FROM readings WHERE device_id = $1", f->device);

    ingest_one(f, 5, "2000-01-01T00:00:00Z", &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "READINGS_RETENTION_DAYS"));
    free(r.body);
    assert_int_equal(count_sql("SELECT count(*) FROM readings WHERE device_id = $1", f->device), before);
}

/* No write route takes a form: a cross-site form post changes nothing. */
static void test_form_posts_are_415_on_every_write(void **state)
{
    fixture_t  *f = *state;
    char        paths[4][160], sfx[120];
    const char *ctypes[] = { "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                             "text/plain", NULL };
    long long   audit = count_sql("SELECT count(*) FROM audit_log WHERE org_id = $1", f->org);
    char       *alert;
    const char *p[] = { f->org };
    resp_t      r;

    alert = dc_test_sql("SELECT id::text FROM alerts WHERE org_id = $1 LIMIT 1", 1, p);
    assert_non_null(alert);
    snprintf(paths[0], sizeof(paths[0]), "/api/ingest/readings");
    dc_test_org_path(paths[1], sizeof(paths[1]), f->org, "alerts");
    snprintf(sfx, sizeof(sfx), "alerts/%s/resolve", alert);
    dc_test_org_path(paths[2], sizeof(paths[2]), f->org, sfx);
    snprintf(sfx, sizeof(sfx), "devices/%s/status", f->device);
    dc_test_org_path(paths[3], sizeof(paths[3]), f->org, sfx);
    for (size_t i = 0; i < 4; i++)
        for (size_t c = 0; c < sizeof(ctypes) / sizeof(ctypes[0]); c++) {
            post(f->app, paths[i], ctypes[c], "a=1", &r);
            if (r.status != 415)
                fail_msg("%s with %s: %d %s", paths[i], ctypes[c] ? ctypes[c] : "no Content-Type", r.status,
                         r.body);
            assert_non_null(strstr(r.body, "unsupported_media_type"));
            free(r.body);
        }
    free(alert);
    assert_int_equal(count_sql("SELECT count(*) FROM audit_log WHERE org_id = $1", f->org), audit);
}

static void alert_body(char *buf, size_t cap, const char *unit, const char *message)
{
    snprintf(buf, cap, "{\"unitId\":\"%s\",\"kind\":\"door_open\",\"message\":\"%s\"}", unit, message);
}

/*
 * A retry with the same key and body: one row, the first answer again
 * (status and body byte for byte, Idempotency-Replayed), and no second
 * invalidation (the cached count stays a hit). The same key in another
 * organization is another key.
 */
static void test_idempotency_key_retry_applies_once(void **state)
{
    fixture_t *f = *state;
    char       key[64], path[160], cpath[160], body[256], other_org[37], other_unit[37], ibody[256];
    resp_t     a, b, c;
    long long  readings;

    fresh_key(key, sizeof(key), "retry");
    dc_test_org_path(path, sizeof(path), f->org, "alerts");
    alert_body(body, sizeof(body), f->unit, key);
    post_key(f->app, path, "application/json", key, body, &a);
    assert_int_equal(a.status, 201);
    assert_int_equal(a.replayed, 0);
    /* read, then hit, the alert count */
    dc_test_org_path(cpath, sizeof(cpath), f->org, "alerts/count");
    get(f->app, cpath, &c);
    free(c.body);
    get(f->app, cpath, &c);
    assert_string_equal(c.x_cache, "HIT");
    free(c.body);

    post_key(f->app, path, "application/json", key, body, &b);
    assert_int_equal(b.status, 201);
    assert_int_equal(b.replayed, 1);
    assert_string_equal(b.body, a.body);
    free(b.body);
    assert_int_equal(count_sql("SELECT count(*) FROM alerts WHERE message = $1", key), 1);
    get(f->app, cpath, &c);
    assert_string_equal(c.x_cache, "HIT"); /* a replay does not invalidate again */
    free(c.body);

    /* the same key in another organization is not the same key */
    dc_test_org(7, other_org);
    dc_test_unit_of(other_org, other_unit);
    dc_test_org_path(path, sizeof(path), other_org, "alerts");
    alert_body(body, sizeof(body), other_unit, key);
    post_key(f->app, path, "application/json", key, body, &b);
    assert_int_equal(b.status, 201);
    assert_int_equal(b.replayed, 0);
    free(b.body);
    assert_int_equal(count_sql("SELECT count(*) FROM alerts WHERE message = $1", key), 2);
    free(a.body);

    /* the same key from another caller (another token sub) is not the same key either */
    {
        char *bob = dc_test_bearer("bob", f->org, "write", 300);
        dc_test_org_path(path, sizeof(path), f->org, "alerts");
        alert_body(body, sizeof(body), f->unit, key);
        post_as(f->app, bob, path, "application/json", key, body, &b);
        assert_int_equal(b.status, 201);
        assert_int_equal(b.replayed, 0);
        free(b.body);
        assert_int_equal(count_sql("SELECT count(*) FROM alerts WHERE message = $1", key), 3);
        post_as(f->app, bob, path, "application/json", key, body, &b);
        assert_int_equal(b.replayed, 1); /* bob's own retry replays bob's answer */
        free(b.body);
        free(bob);
    }

    /* ingest: one reading however often it is sent */
    readings = count_sql("SELECT count(*) FROM readings WHERE device_id = $1", f->device);
    snprintf(ibody, sizeof(ibody), "{\"deviceId\":\"%s\",\"temperature\":4.25}", f->device);
    for (int i = 0; i < 3; i++) {
        post_key(f->app, "/api/ingest/readings", "application/json", key, ibody, &a);
        assert_int_equal(a.status, 200);
        assert_int_equal(a.replayed, i > 0);
        free(a.body);
    }
    assert_int_equal(count_sql("SELECT count(*) FROM readings WHERE device_id = $1", f->device),
                     readings + 1);
}

/* The same key with another body or on another endpoint is a 422, and writes nothing. */
static void test_idempotency_key_with_another_request_is_422(void **state)
{
    fixture_t *f = *state;
    char       key[64], path[160], body[256], other[256], sfx[120];
    resp_t     r;
    long long  audit;

    fresh_key(key, sizeof(key), "other");
    dc_test_org_path(path, sizeof(path), f->org, "alerts");
    alert_body(body, sizeof(body), f->unit, key);
    post_key(f->app, path, "application/json", key, body, &r);
    assert_int_equal(r.status, 201);
    free(r.body);
    audit = count_sql("SELECT count(*) FROM audit_log WHERE org_id = $1", f->org);

    alert_body(other, sizeof(other), f->unit, "another message");
    post_key(f->app, path, "application/json", key, other, &r);
    assert_int_equal(r.status, 422);
    assert_non_null(strstr(r.body, "idempotency_key_reused"));
    free(r.body);
    snprintf(sfx, sizeof(sfx), "devices/%s/status", f->device);
    dc_test_org_path(path, sizeof(path), f->org, sfx);
    post_key(f->app, path, "application/json", key, "{\"online\":true}", &r);
    assert_int_equal(r.status, 422);
    free(r.body);
    assert_int_equal(count_sql("SELECT count(*) FROM audit_log WHERE org_id = $1", f->org), audit);
}

/* A refused write is not stored: the corrected request with the same key applies. Bad keys are 400s. */
static void test_idempotency_errors_are_not_stored_and_keys_are_checked(void **state)
{
    fixture_t  *f = *state;
    char        key[64], path[160], body[256], longkey[DC_TEST_LONG_KEY];
    const char *bad[] = { "", "has space", "quote\"", "semi;colon", "nl\n", "\xc3\xa9", longkey };
    resp_t      r;

    memset(longkey, 'k', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = '\0';
    fresh_key(key, sizeof(key), "errors");
    dc_test_org_path(path, sizeof(path), f->org, "alerts");
    alert_body(body, sizeof(body), "00000000-0000-4000-8000-000000000000", key);
    post_key(f->app, path, "application/json", key, body, &r);
    assert_int_equal(r.status, 404);
    free(r.body);
    alert_body(body, sizeof(body), f->unit, key);
    post_key(f->app, path, "application/json", key, body, &r);
    assert_int_equal(r.status, 201);
    assert_int_equal(r.replayed, 0);
    free(r.body);

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        post_key(f->app, path, "application/json", bad[i], body, &r);
        if (r.status != 400 || strstr(r.body, "invalid_idempotency_key") == NULL)
            fail_msg("key \"%s\": %d %s", bad[i], r.status, r.body);
        free(r.body);
    }
    assert_int_equal(count_sql("SELECT count(*) FROM alerts WHERE message = $1", key), 1);
}

/*
 * Concurrent requests with one key: exactly one applies; the others wait
 * for its transaction and replay its answer.
 */
static void test_idempotency_concurrent_requests_apply_once(void **state)
{
    enum { N = 4 };
    fixture_t *f = *state;
    char       key[64], path[160], body[256];
    int        go[2], res[2];
    pid_t      pids[N];
    int        applied = 0, replayed = 0;

    fresh_key(key, sizeof(key), "race");
    dc_test_org_path(path, sizeof(path), f->org, "alerts");
    alert_body(body, sizeof(body), f->unit, key);
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(res), 0);
    for (int i = 0; i < N; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            dc_app_t *app = dc_app_new(&f->cfg);
            char      c, line[8];
            resp_t    r;
            close(go[1]);
            if (app == NULL || read(go[0], &c, 1) != 0) /* EOF: all start together */
                _exit(2);
            post_key(app, path, "application/json", key, body, &r);
            snprintf(line, sizeof(line), "%03d%d", r.status, r.replayed);
            if (write(res[1], line, 4) != 4)
                _exit(2);
            _exit(0);
        }
    }
    close(go[0]);
    close(res[1]);
    usleep(200000); /* every child connected nothing yet: they connect on their first request */
    close(go[1]);
    for (int i = 0; i < N; i++) {
        char line[5] = { 0 };
        int  st;
        assert_int_equal(read(res[0], line, 4), 4);
        if (strncmp(line, "201", 3) != 0)
            fail_msg("a concurrent request answered %s", line);
        applied += line[3] == '0';
        replayed += line[3] == '1';
        assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
    }
    close(res[0]);
    assert_int_equal(applied, 1);
    assert_int_equal(replayed, N - 1);
    assert_int_equal(count_sql("SELECT count(*) FROM alerts WHERE message = $1", key), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_future_reading_cannot_freeze_a_unit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recorded_at_too_old_is_400_and_stores_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_form_posts_are_415_on_every_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_key_retry_applies_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_key_with_another_request_is_422, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_errors_are_not_stored_and_keys_are_checked, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_concurrent_requests_apply_once, setup, teardown),
    };
    return cmocka_run_group_tests_name("integration_writes", tests, NULL, NULL);
}
