/*
 * Batches (dc_db_exec_all, libpq's pipeline mode) against the real
 * PostgreSQL of the test stack (DATABASE_URL): the statements of a batch go
 * with one sync, so they share one implicit transaction, where the same
 * statements one by one do not; their results come back in order; a
 * statement that fails or that the server cancels aborts the rest and
 * leaves the connection serving; and a read through dc_query_run checks
 * the organization before the unit when neither exists.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "dc_db.h"
#include "dc_query.h"
#include "dc_test.h"

enum { S_NOW, S_INT, S_DIVIDE, S_SETTING, S_SLEEP, S_BACKEND, S_COUNT };

static const dc_db_stmt_t stmts[S_COUNT] = {
    /* the start of the transaction it runs in */
    [S_NOW] = { "t_now", "SELECT now()::text", 0 },
    [S_INT] = { "t_int", "SELECT $1::int", 1 },
    [S_DIVIDE] = { "t_divide", "SELECT (10 / $1::int)::text", 1 },
    [S_SETTING] = { "t_setting", "SELECT current_setting($1)", 1 },
    [S_SLEEP] = { "t_sleep", "SELECT pg_sleep($1::float8)::text", 1 },
    [S_BACKEND] = { "t_backend", "SELECT pg_backend_pid()::text", 0 },
};
static const dc_db_set_t        set = { stmts, S_COUNT, DC_DB_SLOTS_READ };
static const dc_db_set_t *const sets[] = { &set };

typedef struct {
    dc_config_t cfg;
    dc_db_t    *db;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    dc_test_config(&f->cfg);
    f->db = dc_db_new(&f->cfg, sets, 1);
    assert_non_null(f->db);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;

    dc_db_free(f->db);
    free(f);
    return 0;
}

static void call(dc_db_call_t *c, int s, const char *const *params)
{
    c->stmt = &stmts[s];
    c->params = params;
    c->res = NULL;
}

/* The text of the first column of the one row of c (asserted). */
static const char *value(const dc_db_call_t *c)
{
    assert_non_null(c->res);
    assert_int_equal(PQresultStatus(c->res), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(c->res), 1);
    return PQgetvalue(c->res, 0, 0);
}

/* The server process of the handle's connection (connecting if needed). */
static char *backend_of(dc_db_t *db)
{
    dc_db_call_t c;
    char        *pid;

    call(&c, S_BACKEND, NULL);
    assert_int_equal(dc_db_exec_all(db, &c, 1), DC_OK);
    pid = strdup(value(&c));
    dc_db_calls_clear(&c, 1);
    return pid;
}

static void test_one_sync_one_transaction(void **state)
{
    fixture_t         *f = *state;
    static const char *seven[] = { "7" }, *eight[] = { "8" };
    dc_db_call_t       c[4];
    PGresult          *a = NULL, *b = NULL;

    call(&c[0], S_NOW, NULL);
    call(&c[1], S_INT, seven);
    call(&c[2], S_NOW, NULL);
    call(&c[3], S_INT, eight);
    assert_int_equal(dc_db_exec_all(f->db, c, 4), DC_OK);
    assert_string_equal(value(&c[1]), "7");
    assert_string_equal(value(&c[3]), "8");
    assert_string_equal(value(&c[0]), value(&c[2]));
    dc_db_calls_clear(c, 4);

    /* one by one, each is a transaction of its own */
    assert_int_equal(dc_db_exec(f->db, &stmts[S_NOW], NULL, &a), DC_OK);
    assert_int_equal(dc_db_exec(f->db, &stmts[S_NOW], NULL, &b), DC_OK);
    assert_string_not_equal(PQgetvalue(a, 0, 0), PQgetvalue(b, 0, 0));
    PQclear(a);
    PQclear(b);
}

/* A failed statement: its class decides the result, the rest are aborted, the connection stays. */
static void test_failure_aborts_the_rest(void **state)
{
    fixture_t         *f = *state;
    static const char *one[] = { "1" }, *zero[] = { "0" }, *ghost[] = { "dashcache.no_such_setting" };
    char              *pid = backend_of(f->db), *again;
    unsigned           epoch = dc_db_epoch(f->db);
    dc_db_call_t       c[3];

    call(&c[0], S_INT, one);
    call(&c[1], S_SETTING, ghost); /* 42704: a bug */
    call(&c[2], S_INT, one);
    assert_int_equal(dc_db_exec_all(f->db, c, 3), DC_ERROR);
    assert_string_equal(value(&c[0]), "1");
    assert_null(c[1].res);
    assert_null(c[2].res);
    dc_db_calls_clear(c, 3);

    call(&c[0], S_INT, one);
    call(&c[1], S_DIVIDE, zero); /* 22012: refused, the caller's answer */
    call(&c[2], S_INT, one);
    assert_int_equal(dc_db_exec_all(f->db, c, 3), DC_EQUERY);
    assert_non_null(c[1].res);
    assert_string_equal(PQresultErrorField(c[1].res, PG_DIAG_SQLSTATE), "22012");
    assert_null(c[2].res);
    dc_db_calls_clear(c, 3);

    again = backend_of(f->db);
    assert_string_equal(again, pid);
    assert_int_equal(dc_db_epoch(f->db), epoch);
    free(again);
    free(pid);
}

/* statement_timeout cancels the statement in the middle: DC_UNAVAILABLE, the connection stays. */
static void test_cancelled_in_the_middle(void **state)
{
    fixture_t         *f = *state;
    static const char *one[] = { "1" }, *long_sleep[] = { "30" };
    dc_db_t           *db;
    dc_config_t        cfg = f->cfg;
    dc_db_call_t       c[3];
    char              *pid, *again;
    int64_t            t0;

    cfg.db_statement_timeout_ms = 300;
    db = dc_db_new(&cfg, sets, 1);
    assert_non_null(db);
    pid = backend_of(db);
    call(&c[0], S_INT, one);
    call(&c[1], S_SLEEP, long_sleep);
    call(&c[2], S_INT, one);
    t0 = dc_now_ms();
    assert_int_equal(dc_db_exec_all(db, c, 3), DC_UNAVAILABLE);
    assert_true(dc_now_ms() - t0 < 1300);
    assert_string_equal(value(&c[0]), "1");
    assert_null(c[1].res);
    assert_null(c[2].res);
    dc_db_calls_clear(c, 3);
    again = backend_of(db);
    assert_string_equal(again, pid);
    free(again);
    free(pid);
    dc_db_free(db);
}

/* Neither the organization nor the unit exists: the organization's 404, as when checked one after the other. */
static void test_missing_org_before_missing_unit(void **state)
{
    fixture_t         *f = *state;
    const dc_db_set_t *qsets[] = { dc_query_statements() };
    dc_db_t           *db = dc_db_new(&f->cfg, qsets, 1);
    dc_request_t       req;
    dc_error_t         err;
    dc_buf_t           body = DC_BUF_INIT;

    assert_non_null(db);
    memset(&req, 0, sizeof(req));
    req.qtype = DC_Q_TEMPERATURE;
    req.hours = 24;
    snprintf(req.org_id, sizeof(req.org_id), "00000000-0000-4000-8000-0000000000ab");
    snprintf(req.unit_id, sizeof(req.unit_id), "00000000-0000-4000-8000-0000000000ac");
    memset(&err, 0, sizeof(err));
    assert_int_equal(dc_query_run(db, &f->cfg, &req, &body, &err), DC_DECLINED);
    assert_int_equal(err.status, 404);
    assert_string_equal(err.code, "org_not_found");

    snprintf(req.org_id, sizeof(req.org_id), "%s", DEMO_ORG);
    memset(&err, 0, sizeof(err));
    assert_int_equal(dc_query_run(db, &f->cfg, &req, &body, &err), DC_DECLINED);
    assert_int_equal(err.status, 404);
    assert_string_equal(err.code, "unit_not_found");

    snprintf(req.unit_id, sizeof(req.unit_id), "%s", DEMO_UNIT);
    assert_int_equal(dc_query_run(db, &f->cfg, &req, &body, &err), DC_OK);
    assert_non_null(strstr(body.data, "\"points\""));
    dc_buf_free(&body);
    dc_db_free(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_sync_one_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_aborts_the_rest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancelled_in_the_middle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_org_before_missing_unit, setup, teardown),
    };
    return cmocka_run_group_tests_name("integration_pipeline", tests, NULL, NULL);
}
