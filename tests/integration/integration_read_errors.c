/*
 * Every read path (dc_query_run, one per query type) against statement
 * errors of the real PostgreSQL of the test stack: a statement refused for
 * a bad value (DC_EQUERY, whose result goes up to the caller) first in the
 * round trip and as the fetch's own statement, and a statement that the
 * server cancels at statement_timeout (DC_UNAVAILABLE) because another
 * session holds its table locked, after the existence checks answered.
 * Each must give its documented code and leave the handle serving; run by
 * the san suite under LeakSanitizer, which fails it when any PGresult of
 * these paths is not cleared.
 */
#include <limits.h>
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

#define STATEMENT_TIMEOUT_MS 200

/* One read path, and the table its own statement reads that no existence check reads. */
typedef struct {
    dc_qtype_t  q;
    int         unit;  /* with the demo unit */
    const char *table; /* locked: only the fetch's own statement waits */
} read_path_t;

static const read_path_t paths[] = {
    { DC_Q_STATS, 0, "readings" },      { DC_Q_UNITS, 0, "readings" },       { DC_Q_ALERTS, 0, "alerts" },
    { DC_Q_ALERTS, 1, "alerts" },       { DC_Q_TEMPERATURE, 1, "readings" }, { DC_Q_DEVICES, 0, "devices" },
    { DC_Q_COMPLIANCE, 0, "readings" }, { DC_Q_AUDIT, 0, "audit_log" },
};

typedef struct {
    dc_config_t cfg;
    dc_db_t    *db;
} fixture_t;

static int setup(void **state)
{
    fixture_t         *f = calloc(1, sizeof(*f));
    const dc_db_set_t *sets[] = { dc_query_statements() };

    assert_non_null(f);
    dc_test_config(&f->cfg);
    f->cfg.db_statement_timeout_ms = STATEMENT_TIMEOUT_MS;
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

static void request_of(dc_request_t *req, const read_path_t *p, const char *org)
{
    memset(req, 0, sizeof(*req));
    req->qtype = p->q;
    req->hours = 24;
    req->limit = 10;
    snprintf(req->org_id, sizeof(req->org_id), "%s", org);
    if (p->unit)
        snprintf(req->unit_id, sizeof(req->unit_id), "%s", DEMO_UNIT);
}

/* dc_query_run on req: its result code; the body is released here. */
static int read_once(fixture_t *f, const dc_request_t *req)
{
    dc_buf_t   body = DC_BUF_INIT;
    dc_error_t err;
    int        rc;

    memset(&err, 0, sizeof(err));
    rc = dc_query_run(f->db, &f->cfg, req, &body, &err);
    dc_buf_free(&body);
    return rc;
}

static void assert_path_serves(fixture_t *f, const read_path_t *p)
{
    dc_request_t req;

    request_of(&req, p, DEMO_ORG);
    assert_int_equal(read_once(f, &req), DC_OK);
}

/* An organization id the server cannot read as a uuid (22P02): the first statement is refused. */
static void test_refused_first(void **state)
{
    fixture_t   *f = *state;
    dc_request_t req;

    for (size_t i = 0; i < DC_ARRAY_LEN(paths); i++) {
        request_of(&req, &paths[i], "not-a-uuid");
        assert_int_equal(read_once(f, &req), DC_EQUERY);
        assert_path_serves(f, &paths[i]);
    }
}

/* The fetch's own statement refused after the existence checks answered: a range no timestamp holds, a negative LIMIT. */
static void test_refused_last(void **state)
{
    fixture_t        *f = *state;
    const read_path_t trends = { DC_Q_TEMPERATURE, 1, NULL }, audit = { DC_Q_AUDIT, 0, NULL };
    dc_request_t      req;

    request_of(&req, &trends, DEMO_ORG);
    req.hours = INT_MAX;
    assert_int_equal(read_once(f, &req), DC_EQUERY);
    request_of(&req, &audit, DEMO_ORG);
    req.limit = -1;
    assert_int_equal(read_once(f, &req), DC_EQUERY);
    assert_path_serves(f, &trends);
    assert_path_serves(f, &audit);
}

static PGconn *locker(const fixture_t *f)
{
    PGconn *c = PQconnectdb(f->cfg.database_url);

    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("test database connect failed: %s", PQerrorMessage(c));
    return c;
}

static void command(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);

    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
}

/* The fetch's own statement waits on a lock until statement_timeout cancels it (57014). */
static void test_cancelled_last(void **state)
{
    fixture_t *f = *state;
    PGconn    *c = locker(f);

    for (size_t i = 0; i < DC_ARRAY_LEN(paths); i++) {
        char         sql[96];
        dc_request_t req;
        int64_t      t0;

        assert_path_serves(f, &paths[i]); /* connected and prepared before the lock */
        snprintf(sql, sizeof(sql), "LOCK TABLE %s IN ACCESS EXCLUSIVE MODE", paths[i].table);
        command(c, "BEGIN");
        command(c, sql);
        request_of(&req, &paths[i], DEMO_ORG);
        t0 = dc_now_ms();
        assert_int_equal(read_once(f, &req), DC_UNAVAILABLE);
        assert_true(dc_now_ms() - t0 < STATEMENT_TIMEOUT_MS + 1000);
        command(c, "ROLLBACK");
        assert_path_serves(f, &paths[i]);
    }
    PQfinish(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_refused_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_last, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancelled_last, setup, teardown),
    };
    return cmocka_run_group_tests_name("integration_read_errors", tests, NULL, NULL);
}
