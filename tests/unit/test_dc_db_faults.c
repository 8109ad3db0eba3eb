/*
 * dc_db against a fake libpq, for the failures a real PostgreSQL cannot be
 * made to produce at the right moment: a PGconn that could not be
 * allocated, a connect that fails or never ends, a statement that does not
 * prepare, a server that stops answering a ping, a
 * PGRES_FATAL_ERROR of each class (bug, busy, refused), a connection found
 * bad in the middle of a query, a send that fails, a query with no result;
 * and for a batch in pipeline mode: a send, a sync, an enter or an exit
 * that fails, a statement that aborts the rest, a server that stops
 * answering in the middle or stops reading what is sent. Each must give the
 * documented result code, clear every PGresult and finish every PGconn
 * (counted here; the SAN build checks leaks too), count each statement
 * that ran in the metrics, and leave the handle able to serve the next
 * call.
 *
 * The calls dc_db.c makes on this path are wrapped at link time
 * (WRAP_test_dc_db_faults in the Makefile), and so are poll(), the clock
 * dc_db reads deadlines from (dc_now_ms) and the metrics. The fake answers
 * at once unless told to hang: then PQisBusy (or PQflush) stays stuck and
 * poll() moves the fake clock by its whole timeout.
 */
#include <poll.h>
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

typedef struct {
    ExecStatusType status;
    char           state[6];
    int            breaks; /* the connection is found bad when this result is read */
    int            closes; /* the server closes the connection after this result */
} fake_item_t;

#define QUEUE_MAX 32

typedef struct {
    int            magic;
    ConnStatusType status;
    int            pipeline;         /* in pipeline mode */
    int            aborted;          /* a query failed since the last sync: the rest are PIPELINE_ABORTED */
    int            owes_null;        /* the NULL that ends a query's results */
    int            given;            /* results given since the pipeline began */
    int            closed;           /* the server closed it: nothing more comes */
    fake_item_t    queue[QUEUE_MAX]; /* the results to come, in order (a sync is one) */
    size_t         head, tail;
} fake_conn_t;

typedef struct {
    int            magic;
    ExecStatusType status;
    char           state[6];
} fake_result_t;

#define CONN_MAGIC   0x636f6e6e
#define RESULT_MAGIC 0x72657375
#define CLOCK_START  1000000

static struct {
    /* injection, each for the next matching call */
    int            connect_null; /* PQconnectStartParams returns NULL */
    int            connect_bad;  /* the handshake fails (PQconnectPoll: PGRES_POLLING_FAILED) */
    int            connect_hang; /* this many handshakes never end: the server does not answer */
    int            prepare_fail; /* the next prepare answers PGRES_FATAL_ERROR */
    int            send_fail;    /* this many sends fail (the connection is lost) ... */
    int            send_skip;    /* ... after this many that succeed */
    int            no_result;    /* the next query gives no PGresult at all */
    int            exec_faults;  /* how many executions fail as below ... */
    int            exec_skip;    /* ... after this many that succeed */
    ExecStatusType exec_status;
    const char    *exec_state;  /* SQLSTATE of the failure */
    int            breaks_conn; /* the failure also leaves the connection CONNECTION_BAD */
    int            closes_conn; /* the server closes the connection after the failure */
    int            enter_fail;  /* PQenterPipelineMode refuses */
    int            sync_fail;   /* PQpipelineSync fails (the connection is lost) */
    int            exit_fail;   /* PQexitPipelineMode refuses */
    int            unflushed;   /* PQflush answers "more to send" this many times */
    int            flush_stuck; /* PQflush never gets everything out: the server reads nothing */
    int            hang;        /* the server stops answering ... */
    int            hang_at;     /* ... once a pipeline has given this many results */
    int            hang_plain;  /* the server answers no query outside pipeline mode */
    /* observation */
    int          connects, conns, results, prepares, execs, syncs, pipelines;
    int          queued_at_first_get; /* what a pipeline had sent when its first result was read */
    int          polls, pollouts, max_poll_ms, connect_polls;
    int          stalled; /* the last PQisBusy or PQflush was stuck: poll() times out */
    int64_t      now_ms;  /* the clock dc_db reads */
    fake_conn_t *live;    /* the connection not yet finished */
    int          metric_n[DC_DB_SLOTS], metric_fail[DC_DB_SLOTS];
} fk;

static fake_conn_t *conn_of(const PGconn *c)
{
    fake_conn_t *f = (fake_conn_t *)(uintptr_t)c;
    assert_non_null(f);
    assert_int_equal(f->magic, CONN_MAGIC);
    return f;
}

PGconn *__wrap_PQconnectStartParams(const char *const *keys, const char *const *vals, int expand);
PGconn *__wrap_PQconnectStartParams(const char *const *keys, const char *const *vals, int expand)
{
    fake_conn_t *f;

    (void)keys;
    (void)vals;
    (void)expand;
    fk.connects++;
    if (fk.connect_null) {
        fk.connect_null--;
        return NULL;
    }
    f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->magic = CONN_MAGIC;
    f->status = CONNECTION_STARTED;
    fk.stalled = 0;
    fk.conns++;
    fk.live = f;
    return (PGconn *)f;
}

PostgresPollingStatusType __wrap_PQconnectPoll(PGconn *c);
PostgresPollingStatusType __wrap_PQconnectPoll(PGconn *c)
{
    fake_conn_t *f = conn_of(c);

    assert_int_equal(f->status, CONNECTION_STARTED); /* not polled after its end */
    if (fk.connect_hang) {
        fk.stalled = 1;
        return PGRES_POLLING_READING;
    }
    if (fk.connect_bad) {
        fk.connect_bad--;
        f->status = CONNECTION_BAD;
        return PGRES_POLLING_FAILED;
    }
    f->status = CONNECTION_OK;
    return PGRES_POLLING_OK;
}

void __wrap_PQfinish(PGconn *c);
void __wrap_PQfinish(PGconn *c)
{
    if (c == NULL)
        return;
    conn_of(c)->magic = 0;
    if (fk.live == (fake_conn_t *)(uintptr_t)c)
        fk.live = NULL;
    fk.conns--;
    free(c);
}

ConnStatusType __wrap_PQstatus(const PGconn *c);
ConnStatusType __wrap_PQstatus(const PGconn *c)
{
    return c == NULL ? CONNECTION_BAD : conn_of(c)->status;
}

char *__wrap_PQerrorMessage(const PGconn *c);
char *__wrap_PQerrorMessage(const PGconn *c)
{
    static char msg[] = "fake libpq error\n";
    (void)c;
    return msg;
}

int __wrap_PQsetnonblocking(PGconn *c, int arg);
int __wrap_PQsetnonblocking(PGconn *c, int arg)
{
    (void)conn_of(c);
    assert_int_equal(arg, 1); /* every send is flushed under a deadline */
    return 0;
}

static fake_item_t *push(fake_conn_t *f, ExecStatusType status)
{
    fake_item_t *it;

    assert_true(f->tail < QUEUE_MAX);
    it = &f->queue[f->tail++];
    memset(it, 0, sizeof(*it));
    it->status = status;
    return it;
}

/* One query sent: its result to come, or none (no_result). */
static fake_item_t *send_query(PGconn *c, ExecStatusType ok)
{
    fake_conn_t *f = conn_of(c);

    assert_int_equal(f->status, CONNECTION_OK); /* a bad connection is never used again */
    if (!f->pipeline)
        assert_true(f->head == f->tail && !f->owes_null); /* one query at a time */
    if (fk.no_result) {
        fk.no_result--;
        return NULL;
    }
    return push(f, ok);
}

int __wrap_PQsendPrepare(PGconn *c, const char *name, const char *sql, int n, const Oid *types);
int __wrap_PQsendPrepare(PGconn *c, const char *name, const char *sql, int n, const Oid *types)
{
    fake_item_t *it;

    (void)name;
    (void)sql;
    (void)n;
    (void)types;
    fk.prepares++;
    assert_false(conn_of(c)->pipeline);
    it = send_query(c, PGRES_COMMAND_OK);
    if (fk.prepare_fail && it != NULL) {
        fk.prepare_fail--;
        it->status = PGRES_FATAL_ERROR;
        snprintf(it->state, sizeof(it->state), "42601");
    }
    return 1;
}

static int send_exec(PGconn *c)
{
    fake_item_t *it;

    fk.execs++;
    if (fk.send_fail > 0 && fk.send_skip-- <= 0) {
        fk.send_fail--;
        conn_of(c)->status = CONNECTION_BAD;
        return 0;
    }
    it = send_query(c, PGRES_TUPLES_OK);
    if (fk.exec_faults > 0 && fk.exec_skip-- <= 0 && it != NULL) {
        fk.exec_faults--;
        it->status = fk.exec_status;
        snprintf(it->state, sizeof(it->state), "%s", fk.exec_state ? fk.exec_state : "");
        it->breaks = fk.breaks_conn;
        it->closes = fk.closes_conn;
    }
    return 1;
}

int __wrap_PQsendQueryPrepared(PGconn *c, const char *name, int n, const char *const *values,
                               const int *lengths, const int *formats, int result_format);
int __wrap_PQsendQueryPrepared(PGconn *c, const char *name, int n, const char *const *values,
                               const int *lengths, const int *formats, int result_format)
{
    (void)name;
    (void)n;
    (void)values;
    (void)lengths;
    (void)formats;
    (void)result_format;
    return send_exec(c);
}

int __wrap_PQsendQueryParams(PGconn *c, const char *sql, int n, const Oid *types, const char *const *values,
                             const int *lengths, const int *formats, int result_format);
int __wrap_PQsendQueryParams(PGconn *c, const char *sql, int n, const Oid *types, const char *const *values,
                             const int *lengths, const int *formats, int result_format)
{
    (void)sql;
    (void)n;
    (void)types;
    (void)values;
    (void)lengths;
    (void)formats;
    (void)result_format;
    assert_false(conn_of(c)->pipeline); /* a batch always leaves pipeline mode */
    return send_exec(c);
}

int __wrap_PQsendQuery(PGconn *c, const char *sql);
int __wrap_PQsendQuery(PGconn *c, const char *sql)
{
    (void)sql;
    assert_false(conn_of(c)->pipeline);
    return send_exec(c);
}

int __wrap_PQenterPipelineMode(PGconn *c);
int __wrap_PQenterPipelineMode(PGconn *c)
{
    fake_conn_t *f = conn_of(c);

    if (fk.enter_fail) {
        fk.enter_fail--;
        return 0;
    }
    assert_false(f->pipeline);
    assert_true(f->head == f->tail && !f->owes_null);
    f->pipeline = 1;
    f->aborted = 0;
    f->given = 0;
    fk.queued_at_first_get = -1;
    fk.pipelines++;
    return 1;
}

int __wrap_PQpipelineSync(PGconn *c);
int __wrap_PQpipelineSync(PGconn *c)
{
    fake_conn_t *f = conn_of(c);

    assert_true(f->pipeline);
    assert_int_equal(f->status, CONNECTION_OK);
    fk.syncs++;
    if (fk.sync_fail) {
        fk.sync_fail--;
        f->status = CONNECTION_BAD;
        return 0;
    }
    push(f, PGRES_PIPELINE_SYNC);
    return 1;
}

int __wrap_PQexitPipelineMode(PGconn *c);
int __wrap_PQexitPipelineMode(PGconn *c)
{
    fake_conn_t *f = conn_of(c);

    assert_true(f->pipeline);
    if (f->head != f->tail || f->owes_null) /* libpq: uncollected results */
        return 0;
    if (fk.exit_fail) {
        fk.exit_fail--;
        return 0;
    }
    f->pipeline = 0;
    return 1;
}

int __wrap_PQflush(PGconn *c);
int __wrap_PQflush(PGconn *c)
{
    (void)conn_of(c);
    fk.stalled = fk.flush_stuck;
    if (fk.flush_stuck)
        return 1;
    if (fk.unflushed > 0) {
        fk.unflushed--;
        return 1;
    }
    return 0;
}

int __wrap_PQisBusy(PGconn *c);
int __wrap_PQisBusy(PGconn *c)
{
    fake_conn_t *f = conn_of(c);

    fk.stalled = (fk.hang && f->pipeline && !f->owes_null && f->head != f->tail && f->given >= fk.hang_at) ||
                 (fk.hang_plain && !f->pipeline && !f->owes_null && f->head != f->tail);
    return fk.stalled;
}

int __wrap_PQsocket(const PGconn *c);
int __wrap_PQsocket(const PGconn *c)
{
    (void)c;
    return -1;
}

int __wrap_PQconsumeInput(PGconn *c);
int __wrap_PQconsumeInput(PGconn *c)
{
    return conn_of(c)->status == CONNECTION_OK;
}

int __wrap_poll(struct pollfd *fds, nfds_t n, int timeout);
int __wrap_poll(struct pollfd *fds, nfds_t n, int timeout)
{
    assert_int_equal(n, 1);
    assert_true(timeout >= 0); /* never a wait without an end */
    if (fk.live != NULL && fk.live->status == CONNECTION_STARTED) {
        fk.connect_polls++; /* the handshake's: the tests count the queries' */
    } else {
        fk.polls++;
        if (timeout > fk.max_poll_ms)
            fk.max_poll_ms = timeout;
        if (fds[0].events & POLLOUT)
            fk.pollouts++;
    }
    if (fk.stalled) {
        fk.now_ms += timeout;
        fds[0].revents = 0;
        return 0;
    }
    fds[0].revents = (fds[0].events & POLLOUT) ? POLLOUT : POLLIN;
    return 1;
}

int64_t __wrap_dc_now_ms(void);
int64_t __wrap_dc_now_ms(void)
{
    return fk.now_ms;
}

void __wrap_dc_metrics_db_query(int stmt, int ok, int64_t ns);
void __wrap_dc_metrics_db_query(int stmt, int ok, int64_t ns)
{
    assert_true(stmt >= 0 && stmt < DC_DB_SLOTS);
    assert_true(ns >= 0);
    fk.metric_n[stmt]++;
    fk.metric_fail[stmt] += !ok;
}

PGresult *__wrap_PQgetResult(PGconn *c);
PGresult *__wrap_PQgetResult(PGconn *c)
{
    fake_conn_t   *f = conn_of(c);
    fake_item_t    it;
    fake_result_t *r;

    if (f->owes_null) {
        f->owes_null = 0;
        return NULL;
    }
    if (f->closed) { /* libpq found the end of the connection */
        f->status = CONNECTION_BAD;
        return NULL;
    }
    if (f->head == f->tail)
        return NULL;
    if (f->pipeline && f->given == 0)
        fk.queued_at_first_get = (int)(f->tail - f->head);
    it = f->queue[f->head++];
    if (f->pipeline) {
        f->given++;
        if (it.status == PGRES_PIPELINE_SYNC) {
            f->aborted = 0;
        } else {
            if (f->aborted) {
                it.status = PGRES_PIPELINE_ABORTED;
                it.state[0] = '\0';
            } else if (it.status == PGRES_FATAL_ERROR) {
                f->aborted = 1;
            }
            f->owes_null = 1;
        }
    } else {
        f->owes_null = 1;
    }
    if (it.breaks)
        f->status = CONNECTION_BAD;
    f->closed = it.closes;
    r = calloc(1, sizeof(*r));
    assert_non_null(r);
    r->magic = RESULT_MAGIC;
    r->status = it.status;
    memcpy(r->state, it.state, sizeof(r->state));
    fk.results++;
    return (PGresult *)r;
}

static fake_result_t *result_of(const PGresult *res)
{
    fake_result_t *r = (fake_result_t *)(uintptr_t)res;
    assert_non_null(r);
    assert_int_equal(r->magic, RESULT_MAGIC);
    return r;
}

ExecStatusType __wrap_PQresultStatus(const PGresult *res);
ExecStatusType __wrap_PQresultStatus(const PGresult *res)
{
    return res == NULL ? PGRES_FATAL_ERROR : result_of(res)->status;
}

char *__wrap_PQresStatus(ExecStatusType status);
char *__wrap_PQresStatus(ExecStatusType status)
{
    static char name[] = "PGRES_(fake)";
    (void)status;
    return name;
}

char *__wrap_PQresultErrorField(const PGresult *res, int field);
char *__wrap_PQresultErrorField(const PGresult *res, int field)
{
    fake_result_t *r = result_of(res);
    return field == PG_DIAG_SQLSTATE && r->state[0] != '\0' ? r->state : NULL;
}

char *__wrap_PQresultErrorMessage(const PGresult *res);
char *__wrap_PQresultErrorMessage(const PGresult *res)
{
    static char msg[] = "ERROR:  fake failure\n";
    (void)result_of(res);
    return msg;
}

void __wrap_PQclear(PGresult *res);
void __wrap_PQclear(PGresult *res)
{
    if (res == NULL)
        return;
    result_of(res)->magic = 0;
    fk.results--;
    free(res);
}

/* ------------------------------------------------------------------ tests */

static const dc_db_stmt_t stmts[] = {
    { "one", "SELECT 1", 0 },
    { "two", "SELECT $1::int", 1 },
    { "three", "SELECT $1::int + 1", 1 },
    { "four", "SELECT $1::int + 2", 1 },
};
static const dc_db_set_t        stmt_set = { stmts, sizeof(stmts) / sizeof(stmts[0]), DC_DB_SLOTS_READ };
static const dc_db_set_t *const sets[] = { &stmt_set };

typedef struct {
    dc_config_t cfg;
    dc_db_t    *db;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));

    memset(&fk, 0, sizeof(fk));
    fk.now_ms = CLOCK_START;
    snprintf(f->cfg.database_url, sizeof(f->cfg.database_url), "postgresql://fake/fake");
    f->cfg.db_connect_timeout_s = 1;
    f->cfg.db_statement_timeout_ms = 1000;
    f->cfg.db_retry_interval_ms = 0; /* no back-off unless a test asks for one */
    f->db = dc_db_new(&f->cfg, sets, 1);
    assert_non_null(f->db);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;

    dc_db_free(f->db);
    assert_int_equal(fk.conns, 0);   /* every PGconn finished */
    assert_int_equal(fk.results, 0); /* every PGresult cleared */
    free(f);
    return 0;
}

static int exec(fixture_t *f, PGresult **out)
{
    const char *params[] = { "1" };
    return dc_db_exec(f->db, &stmts[1], params, out);
}

/* A query through the fake succeeds: the module works again. */
static void assert_serves(fixture_t *f)
{
    PGresult *r = NULL;

    assert_int_equal(exec(f, &r), DC_OK);
    assert_non_null(r);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    assert_int_equal(fk.results, 0);
}

static void fail_exec(ExecStatusType status, const char *state, int breaks_conn)
{
    fk.exec_faults = 1;
    fk.exec_status = status;
    fk.exec_state = state;
    fk.breaks_conn = breaks_conn;
}

static void test_healthy_fake_serves(void **state)
{
    fixture_t *f = *state;

    assert_serves(f);
    assert_serves(f);
    assert_int_equal(fk.connects, 1);
    assert_int_equal(fk.prepares, 4);
    assert_int_equal(dc_db_epoch(f->db), 1);
}

/* PQconnectStartParams could not allocate the PGconn. */
static void test_conn_allocation_failure(void **state)
{
    fixture_t *f = *state;
    PGresult  *r = (PGresult *)f; /* must be reset */
    double     ms;

    fk.connect_null = 1;
    assert_int_equal(exec(f, &r), DC_UNAVAILABLE);
    assert_null(r);
    fk.connect_null = 1;
    assert_int_equal(dc_db_ping(f->db, 100, &ms), DC_UNAVAILABLE);
    fk.connect_null = 1;
    assert_int_equal(dc_db_ensure(f->db), DC_UNAVAILABLE);
    assert_int_equal(dc_db_fd(f->db), -1);
    assert_serves(f);
}

static void test_connect_bad_status(void **state)
{
    fixture_t *f = *state;
    PGresult  *r;

    fk.connect_bad = 1;
    assert_int_equal(exec(f, &r), DC_UNAVAILABLE);
    assert_int_equal(fk.conns, 0); /* the failed PGconn was finished */
    assert_serves(f);
}

/* A failed connect closes the database for the retry interval. */
static void test_failed_connect_backs_off(void **state)
{
    fixture_t *f = *state;
    PGresult  *r;

    f->cfg.db_retry_interval_ms = 60000;
    fk.connect_bad = 1;
    assert_int_equal(exec(f, &r), DC_UNAVAILABLE);
    assert_int_equal(exec(f, &r), DC_UNAVAILABLE);
    assert_int_equal(fk.connects, 1);
}

/* A statement that does not prepare: no connection is kept half set up. */
static void test_prepare_fatal_error(void **state)
{
    fixture_t *f = *state;
    PGresult  *r;

    fk.prepare_fail = 1;
    assert_int_equal(exec(f, &r), DC_UNAVAILABLE);
    assert_null(r);
    assert_int_equal(fk.conns, 0);
    assert_int_equal(dc_db_fd(f->db), -1);
    assert_serves(f);
    assert_int_equal(fk.connects, 2);
}

/* A failing statement (a bug: undefined table) is DC_ERROR; the connection stays. */
static void test_fatal_error_is_an_error(void **state)
{
    fixture_t *f = *state;
    PGresult  *r;

    assert_serves(f);
    fail_exec(PGRES_FATAL_ERROR, "42P01", 0);
    assert_int_equal(exec(f, &r), DC_ERROR);
    assert_null(r);
    assert_int_equal(fk.results, 0);
    assert_serves(f);
    assert_int_equal(fk.connects, 1);
}

/* Cancelled by statement_timeout (57014) or out of resources (53xxx): try later. */
static void test_fatal_error_busy_is_unavailable(void **state)
{
    fixture_t  *f = *state;
    PGresult   *r;
    const char *states[] = { "57014", "53300" };

    for (size_t i = 0; i < 2; i++) {
        fail_exec(PGRES_FATAL_ERROR, states[i], 0);
        assert_int_equal(exec(f, &r), DC_UNAVAILABLE);
        assert_null(r);
        assert_int_equal(fk.results, 0);
    }
    assert_serves(f);
}

/* Raised by our functions (P0), a bad value (22) or a constraint (23): the caller's answer. */
static void test_fatal_error_refused_is_equery(void **state)
{
    fixture_t  *f = *state;
    PGresult   *r;
    const char *states[] = { "P0001", "22P02", "23505" };

    for (size_t i = 0; i < 3; i++) {
        r = NULL;
        fail_exec(PGRES_FATAL_ERROR, states[i], 0);
        assert_int_equal(exec(f, &r), DC_EQUERY);
        assert_non_null(r);
        assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), states[i]);
        PQclear(r);
    }
    assert_int_equal(fk.results, 0);
    assert_serves(f);
}

/* No SQLSTATE at all is a failure, not a refusal. */
static void test_fatal_error_without_sqlstate(void **state)
{
    fixture_t *f = *state;
    PGresult  *r;

    fail_exec(PGRES_FATAL_ERROR, NULL, 0);
    assert_int_equal(exec(f, &r), DC_ERROR);
    assert_null(r);
    assert_serves(f);
}

/* The connection went bad mid-request: reconnect and retry the query once. */
static void test_connection_bad_mid_request_retries_once(void **state)
{
    fixture_t *f = *state;
    PGresult  *r = NULL;

    assert_serves(f);
    fail_exec(PGRES_FATAL_ERROR, "57P01", 1);
    assert_int_equal(exec(f, &r), DC_OK);
    assert_non_null(r);
    PQclear(r);
    assert_int_equal(fk.connects, 2);
    assert_int_equal(dc_db_epoch(f->db), 2);
    assert_int_equal(fk.conns, 1);
}

/* Bad again on the retry: DC_UNAVAILABLE, nothing left open, and the next call recovers. */
static void test_connection_bad_twice_is_unavailable(void **state)
{
    fixture_t *f = *state;
    PGresult  *r;

    assert_serves(f);
    fail_exec(PGRES_FATAL_ERROR, "57P01", 1);
    fk.exec_faults = 2;
    assert_int_equal(exec(f, &r), DC_UNAVAILABLE);
    assert_null(r);
    assert_int_equal(fk.conns, 0);
    assert_int_equal(fk.results, 0);
    assert_serves(f);
}

static void test_send_failure_reconnects(void **state)
{
    fixture_t *f = *state;

    assert_serves(f);
    fk.send_fail = 1;
    assert_serves(f);
    assert_int_equal(fk.connects, 2);
    assert_int_equal(fk.conns, 1);
}

/*
 * A write whose connection breaks after it was sent is not sent again on a
 * new connection (the server may have committed it): DC_UNAVAILABLE, the
 * client is told it is not acknowledged. Not sent at all: sent once more.
 * Inside a transaction nothing reconnects.
 */
static void test_write_is_never_resent(void **state)
{
    static const dc_db_stmt_t       wstmts[] = { { "w", "SELECT $1::int", 1 } };
    static const dc_db_set_t        wset = { wstmts, 1, DC_DB_SLOTS_WRITE };
    static const dc_db_set_t *const wsets[] = { &stmt_set, &wset };
    fixture_t                      *f = *state;
    dc_db_t                        *db = dc_db_new(&f->cfg, wsets, 2);
    const char                     *params[] = { "1" };
    PGresult                       *r = NULL;

    assert_non_null(db);
    assert_int_equal(dc_db_exec(db, &wstmts[0], params, &r), DC_OK);
    PQclear(r);
    fail_exec(PGRES_FATAL_ERROR, "57P01", 1);
    assert_int_equal(dc_db_exec(db, &wstmts[0], params, &r), DC_UNAVAILABLE);
    assert_null(r);
    assert_int_equal(fk.connects, 1); /* no second connection to send it again */
    fk.exec_faults = 0;
    fk.send_fail = 1; /* never left: sent on a new connection */
    assert_int_equal(dc_db_exec(db, &wstmts[0], params, &r), DC_OK);
    PQclear(r);

    assert_int_equal(dc_db_begin(db), DC_OK);
    fail_exec(PGRES_FATAL_ERROR, "57P01", 1);
    assert_int_equal(dc_db_exec(db, &stmts[1], params, &r), DC_UNAVAILABLE); /* even a read */
    fk.exec_faults = 0;
    assert_int_equal(dc_db_commit(db), DC_ERROR); /* the transaction is over */
    assert_int_equal(dc_db_exec(db, &stmts[1], params, &r), DC_OK);
    PQclear(r);
    dc_db_free(db);
    assert_int_equal(fk.conns, 0);
    assert_int_equal(fk.results, 0);
}

/* A query that ends without any result is a broken connection, not a success. */
static void test_no_result_reconnects(void **state)
{
    fixture_t *f = *state;
    PGresult  *r;

    assert_serves(f);
    fk.no_result = 1;
    assert_int_equal(exec(f, &r), DC_OK);
    PQclear(r);
    assert_int_equal(fk.connects, 2);
}

static void test_ping_faults(void **state)
{
    fixture_t *f = *state;
    double     ms;

    assert_int_equal(dc_db_ping(f->db, 100, &ms), DC_OK);
    fail_exec(PGRES_FATAL_ERROR, "42P01", 0);
    assert_int_equal(dc_db_ping(f->db, 100, &ms), DC_UNAVAILABLE);
    fail_exec(PGRES_FATAL_ERROR, "57P01", 1);
    fk.exec_faults = 2;
    assert_int_equal(dc_db_ping(f->db, 100, &ms), DC_UNAVAILABLE);
    assert_int_equal(fk.results, 0);
    assert_int_equal(dc_db_ping(f->db, 100, &ms), DC_OK);
}

/* ------------------------------------------------------------ batches */

#define NB 4 /* statements of the batches below: stmts[0..3], metric slots 0..3 */

/* A batch of stmts[0..3]; res holds garbage that dc_db_exec_all must reset. */
static void batch_of(dc_db_call_t *c)
{
    static const char *const params[] = { "1" };

    for (size_t i = 0; i < NB; i++) {
        c[i].stmt = &stmts[i];
        c[i].params = params;
        c[i].res = (PGresult *)(uintptr_t)c;
    }
}

/* How many of the batch's results are set, and that those set come first. */
static size_t results_set(const dc_db_call_t *c)
{
    size_t n = 0;

    while (n < NB && c[n].res != NULL)
        n++;
    for (size_t i = n; i < NB; i++)
        assert_null(c[i].res);
    return n;
}

/* Statement i counted ok times without failing and fail times failing in the metrics. */
static void assert_counted(size_t i, int ok, int fail)
{
    assert_int_equal(fk.metric_n[i] - fk.metric_fail[i], ok);
    assert_int_equal(fk.metric_fail[i], fail);
}

static void forget_metrics(void)
{
    memset(fk.metric_n, 0, sizeof(fk.metric_n));
    memset(fk.metric_fail, 0, sizeof(fk.metric_fail));
}

static void assert_idle(void)
{
    assert_true(fk.live == NULL || !fk.live->pipeline);
}

static void assert_batch_serves(fixture_t *f)
{
    dc_db_call_t c[NB];

    batch_of(c);
    assert_int_equal(dc_db_exec_all(f->db, c, NB), DC_OK);
    assert_int_equal(results_set(c), NB);
    dc_db_calls_clear(c, NB);
    assert_int_equal(fk.results, 0);
    assert_idle();
}

/* Every statement and the sync are sent before the first result is read: one round trip. */
static void test_batch_is_one_round_trip(void **state)
{
    fixture_t   *f = *state;
    dc_db_call_t c[NB];
    double       ms;

    batch_of(c);
    assert_int_equal(dc_db_exec_all(f->db, c, NB), DC_OK);
    assert_int_equal(results_set(c), NB);
    for (size_t i = 0; i < NB; i++) {
        assert_int_equal(PQresultStatus(c[i].res), PGRES_TUPLES_OK);
        assert_counted(i, 1, 0);
    }
    assert_int_equal(fk.pipelines, 1);
    assert_int_equal(fk.syncs, 1);
    assert_int_equal(fk.queued_at_first_get, NB + 1);
    assert_int_equal(fk.polls, 0); /* nothing to wait for: the fake answers at once */
    dc_db_calls_clear(c, NB);
    assert_int_equal(fk.results, 0);
    assert_idle();
    /* the connection serves single statements again */
    assert_serves(f);
    assert_int_equal(dc_db_ping(f->db, 100, &ms), DC_OK);
    assert_int_equal(fk.connects, 1);
}

/* Statement 2 of 4 fails: the rest are aborted, not run, not counted; the connection stays. */
static void test_batch_failure_aborts_the_rest(void **state)
{
    fixture_t   *f = *state;
    dc_db_call_t c[NB];

    batch_of(c);
    fk.exec_skip = 1;
    fail_exec(PGRES_FATAL_ERROR, "42P01", 0);
    assert_int_equal(dc_db_exec_all(f->db, c, NB), DC_ERROR);
    assert_int_equal(results_set(c), 1);
    assert_int_equal(PQresultStatus(c[0].res), PGRES_TUPLES_OK);
    assert_counted(0, 1, 0);
    assert_counted(1, 0, 1);
    assert_counted(2, 0, 0);
    assert_counted(3, 0, 0);
    dc_db_calls_clear(c, NB);
    assert_int_equal(fk.results, 0);
    assert_idle();
    assert_batch_serves(f);
    assert_int_equal(fk.connects, 1);
}

/* A statement cancelled (57014) is DC_UNAVAILABLE; one refused (P0001) DC_EQUERY with its error result. */
static void test_batch_busy_and_refused(void **state)
{
    fixture_t   *f = *state;
    dc_db_call_t c[NB];

    batch_of(c);
    fk.exec_skip = 2;
    fail_exec(PGRES_FATAL_ERROR, "57014", 0);
    assert_int_equal(dc_db_exec_all(f->db, c, NB), DC_UNAVAILABLE);
    assert_int_equal(results_set(c), 2);
    assert_counted(2, 0, 1);
    dc_db_calls_clear(c, NB);

    forget_metrics();
    batch_of(c);
    fk.exec_skip = 1;
    fail_exec(PGRES_FATAL_ERROR, "P0001", 0);
    assert_int_equal(dc_db_exec_all(f->db, c, NB), DC_EQUERY);
    assert_int_equal(results_set(c), 2);
    assert_int_equal(PQresultStatus(c[1].res), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(c[1].res, PG_DIAG_SQLSTATE), "P0001");
    assert_counted(1, 1, 0); /* refused is a client's answer, not a failure */
    assert_counted(3, 0, 0);
    dc_db_calls_clear(c, NB);
    assert_int_equal(fk.results, 0);
    assert_batch_serves(f);
    assert_int_equal(fk.connects, 1);
}

/* A send fails in the middle: the whole batch goes again on a new connection, once. */
static void test_batch_send_failure(void **state)
{
    fixture_t   *f = *state;
    dc_db_call_t c[NB];

    batch_of(c);
    fk.send_skip = 1;
    fk.send_fail = 1;
    assert_int_equal(dc_db_exec_all(f->db, c, NB), DC_OK);
    assert_int_equal(results_set(c), NB);
    dc_db_calls_clear(c, NB);
    assert_int_equal(fk.connects, 2);
    assert_int_equal(fk.conns, 1);
    assert_int_equal(fk.pipelines, 2);
    for (size_t i = 0; i < NB; i++)
        assert_counted(i, 1, 0);

    forget_metrics();
    batch_of(c);
    fk.send_skip = 0;
    fk.send_fail = 2;
    assert_int_equal(dc_db_exec_all(f->db, c, NB), DC_UNAVAILABLE);
    assert_int_equal(results_set(c), 0);
    assert_int_equal(fk.conns, 0);
    assert_int_equal(fk.connects, 3);
    assert_counted(0, 0, 1);
    assert_counted(1, 0, 0);
    assert_batch_serves(f);
}

/* PQpipelineSync fails: the batch goes again on a new connection; twice is DC_UNAVAILABLE. */
static void test_batch_sync_failure(void **state)
{
    fixture_t   *f = *state;
    dc_db_call_t c[NB];

    batch_of(c);
    fk.sync_fail = 1;
    assert_int_equal(dc_db_exec_all(f->db, c, NB), DC_OK);
    assert_int_equal(results_set(c), NB);
    dc_db_calls_clear(c, NB);
    assert_int_equal(fk.connects, 2);
    assert_int_equal(fk.syncs, 2);

    batch_of(c);
    fk.sync_fail = 2;
    assert_int_equal(dc_db_exec_all(f->db, c, NB), DC_UNAVAILABLE);
    assert_int_equal(results_set(c), 0);
    assert_int_equal(fk.conns, 0);
    assert_int_equal(fk.results, 0);
    assert_batch_serves(f);
}

/* The connection is lost with statement 2's result: sent again on a new connection. */
static void test_batch_connection_lost_in_the_middle(void **state)
{
    fixture_t   *f = *state;
    dc_db_call_t c[NB];

    assert_batch_serves(f);
    batch_of(c);
    fk.exec_skip = 1;
    fail_exec(PGRES_FATAL_ERROR, "57P01", 1);
    assert_int_equal(dc_db_exec_all(f->db, c, NB), DC_OK);
    assert_int_equal(results_set(c), NB);
    dc_db_calls_clear(c, NB);
    assert_int_equal(fk.connects, 2);
    assert_int_equal(fk.conns, 1);
    assert_int_equal(fk.results, 0);
}

/*
 * A server shutting down answers the first statement with an error (57P01)
 * while the connection still looks fine, then closes it: found while the
 * rest is read, that is the connection's end, not a failed statement; the
 * batch goes again on a new connection.
 */
static void test_batch_server_shutting_down(void **state)
{
    fixture_t   *f = *state;
    dc_db_call_t c[NB];

    assert_batch_serves(f);
    forget_metrics();
    batch_of(c);
    fail_exec(PGRES_FATAL_ERROR, "57P01", 0);
    fk.closes_conn = 1;
    assert_int_equal(dc_db_exec_all(f->db, c, NB), DC_OK);
    assert_int_equal(results_set(c), NB);
    dc_db_calls_clear(c, NB);
    assert_int_equal(fk.connects, 2);
    assert_int_equal(fk.conns, 1);
    assert_int_equal(fk.results, 0);
    for (size_t i = 0; i < NB; i++)
        assert_counted(i, 1, 0);

    /* the same at the last statement: found while the sync is awaited */
    batch_of(c);
    fk.exec_skip = NB - 1;
    fail_exec(PGRES_FATAL_ERROR, "57P01", 0);
    assert_int_equal(dc_db_exec_all(f->db, c, NB), DC_OK);
    assert_int_equal(results_set(c), NB);
    dc_db_calls_clear(c, NB);
    assert_int_equal(fk.connects, 3);

    /* closed after every result came: they stand, the connection is not reused */
    batch_of(c);
    fk.exec_skip = NB - 1;
    fail_exec(PGRES_TUPLES_OK, NULL, 0);
    assert_int_equal(dc_db_exec_all(f->db, c, NB), DC_OK);
    assert_int_equal(results_set(c), NB);
    dc_db_calls_clear(c, NB);
    assert_int_equal(fk.conns, 0);
    assert_int_equal(fk.connects, 3);
    assert_int_equal(fk.results, 0);
    assert_batch_serves(f);
}

/*
 * The server stops answering after two results: the wait ends at the
 * deadline (DB_STATEMENT_TIMEOUT_MS + 1 s from the last result), the
 * connection is closed, the two results are kept and counted, the third
 * counts as failed, the fourth not at all.
 */
static void test_batch_timeout_in_the_middle(void **state)
{
    fixture_t   *f = *state;
    dc_db_call_t c[NB];
    int          deadline = f->cfg.db_statement_timeout_ms + 1000;

    batch_of(c);
    fk.hang = 1;
    fk.hang_at = 2;
    assert_int_equal(dc_db_exec_all(f->db, c, NB), DC_UNAVAILABLE);
    assert_int_equal(fk.now_ms - CLOCK_START, deadline);
    assert_true(fk.max_poll_ms <= deadline);
    assert_int_equal(results_set(c), 2);
    assert_int_equal(fk.conns, 0);
    assert_counted(0, 1, 0);
    assert_counted(1, 1, 0);
    assert_counted(2, 0, 1);
    assert_counted(3, 0, 0);
    dc_db_calls_clear(c, NB);
    fk.hang = 0;
    assert_batch_serves(f);
    assert_int_equal(fk.connects, 2);
}

/*
 * Sends are flushed under the deadline too: a slow reader is waited for
 * (POLLOUT), one that reads nothing costs the deadline, not a hung worker;
 * for a single statement as for a batch.
 */
static void test_send_is_bounded(void **state)
{
    fixture_t   *f = *state;
    dc_db_call_t c[NB];
    PGresult    *r;
    int          deadline = f->cfg.db_statement_timeout_ms + 1000;

    batch_of(c);
    fk.unflushed = 3;
    assert_int_equal(dc_db_exec_all(f->db, c, NB), DC_OK);
    assert_int_equal(fk.pollouts, 3);
    dc_db_calls_clear(c, NB);

    batch_of(c);
    fk.flush_stuck = 1;
    assert_int_equal(dc_db_exec_all(f->db, c, NB), DC_UNAVAILABLE);
    assert_int_equal(fk.now_ms - CLOCK_START, deadline);
    assert_int_equal(results_set(c), 0);
    assert_int_equal(fk.conns, 0);
    assert_counted(0, 1, 1);

    fk.flush_stuck = 0;
    assert_serves(f);
    fk.flush_stuck = 1;
    assert_int_equal(exec(f, &r), DC_UNAVAILABLE);
    assert_null(r);
    assert_int_equal(fk.now_ms - CLOCK_START, 2 * deadline);
    assert_int_equal(fk.conns, 0);
    fk.flush_stuck = 0;
    assert_batch_serves(f);
    assert_int_equal(fk.connects, 3);
}

/* PQenterPipelineMode refuses: a connection in an unknown state, replaced. */
static void test_batch_enter_failure(void **state)
{
    fixture_t *f = *state;

    assert_batch_serves(f);
    fk.enter_fail = 1;
    assert_batch_serves(f);
    assert_int_equal(fk.connects, 2);
    assert_int_equal(fk.conns, 1);
}

/* PQexitPipelineMode refuses after the sync: the answers stand, the connection is not reused. */
static void test_batch_exit_failure(void **state)
{
    fixture_t   *f = *state;
    dc_db_call_t c[NB];

    batch_of(c);
    fk.exit_fail = 1;
    assert_int_equal(dc_db_exec_all(f->db, c, NB), DC_OK);
    assert_int_equal(results_set(c), NB);
    assert_int_equal(fk.conns, 0);
    dc_db_calls_clear(c, NB);
    assert_batch_serves(f);
    assert_int_equal(fk.connects, 2);
}

/* No connection: the first statement counts as failed, as it would alone; the rest never ran. */
static void test_batch_without_connection(void **state)
{
    fixture_t   *f = *state;
    dc_db_call_t c[NB];

    f->cfg.db_retry_interval_ms = 60000;
    batch_of(c);
    fk.connect_bad = 1;
    assert_int_equal(dc_db_exec_all(f->db, c, NB), DC_UNAVAILABLE);
    assert_int_equal(results_set(c), 0);
    assert_counted(0, 0, 1);
    for (size_t i = 1; i < NB; i++)
        assert_counted(i, 0, 0);
    assert_int_equal(fk.execs, 0);
}

/* Inside a transaction a broken batch is not sent again. */
static void test_batch_in_transaction_is_not_resent(void **state)
{
    fixture_t   *f = *state;
    dc_db_call_t c[NB];

    assert_int_equal(dc_db_begin(f->db), DC_OK);
    batch_of(c);
    fk.exec_skip = 1;
    fail_exec(PGRES_FATAL_ERROR, "57P01", 1);
    assert_int_equal(dc_db_exec_all(f->db, c, NB), DC_UNAVAILABLE);
    assert_int_equal(results_set(c), 0);
    assert_int_equal(fk.connects, 1);
    assert_int_equal(dc_db_commit(f->db), DC_ERROR);
    assert_batch_serves(f);
}

/* A write, a statement of no set, no statement or too many: a bug, nothing sent. */
static void test_batch_refuses_what_it_must_not_send(void **state)
{
    static const dc_db_stmt_t       wstmts[] = { { "w", "SELECT $1::int", 1 } };
    static const dc_db_set_t        wset = { wstmts, 1, DC_DB_SLOTS_WRITE };
    static const dc_db_set_t *const wsets[] = { &stmt_set, &wset };
    static const dc_db_stmt_t       stray = { "stray", "SELECT 1", 0 };
    fixture_t                      *f = *state;
    dc_db_t                        *db = dc_db_new(&f->cfg, wsets, 2);
    dc_db_call_t                    c[DC_DB_BATCH_MAX + 1];

    assert_non_null(db);
    for (size_t i = 0; i < DC_ARRAY_LEN(c); i++) {
        c[i].stmt = &stmts[0];
        c[i].params = NULL;
        c[i].res = NULL;
    }
    c[1].stmt = &wstmts[0];
    assert_int_equal(dc_db_exec_all(db, c, 2), DC_ERROR);
    c[1].stmt = &stray;
    assert_int_equal(dc_db_exec_all(db, c, 2), DC_ERROR);
    c[1].stmt = &stmts[0];
    assert_int_equal(dc_db_exec_all(db, c, 0), DC_ERROR);
    assert_int_equal(dc_db_exec_all(db, c, DC_DB_BATCH_MAX + 1), DC_ERROR);
    assert_int_equal(fk.connects, 0);
    assert_int_equal(fk.execs, 0);
    assert_int_equal(dc_db_exec_all(db, c, DC_DB_BATCH_MAX), DC_OK);
    dc_db_calls_clear(c, DC_DB_BATCH_MAX);
    assert_int_equal(fk.metric_n[0], DC_DB_BATCH_MAX);
    dc_db_free(db);
    assert_int_equal(fk.conns, 0);
    assert_int_equal(fk.results, 0);
}

/*
 * A handshake the server never answers (libpq's asynchronous connect) ends
 * at DB_CONNECT_TIMEOUT_SECONDS, finished, and closes the database for the
 * retry interval.
 */
static void test_connect_is_bounded(void **state)
{
    fixture_t *f = *state;
    PGresult  *r;

    f->cfg.db_connect_timeout_s = 2;
    f->cfg.db_retry_interval_ms = 60000;
    fk.connect_hang = 1;
    assert_int_equal(exec(f, &r), DC_UNAVAILABLE);
    assert_null(r);
    assert_int_equal(fk.now_ms - CLOCK_START, 2000);
    assert_true(fk.connect_polls > 0);
    assert_int_equal(fk.conns, 0);
    assert_int_equal(fk.prepares, 0);
    fk.connect_hang = 0;
    assert_int_equal(exec(f, &r), DC_UNAVAILABLE); /* the back-off */
    assert_int_equal(fk.connects, 1);
    fk.now_ms += 60000;
    assert_serves(f);
}

/*
 * A ping that must connect connects within its own time; running out of
 * it closes the database for the probes alone (the next ping answers at
 * once), not for the next request.
 */
static void test_ping_connect_within_its_time(void **state)
{
    fixture_t *f = *state;
    double     ms;

    f->cfg.db_connect_timeout_s = 2;
    f->cfg.db_retry_interval_ms = 60000;
    fk.connect_hang = 1;
    assert_int_equal(dc_db_ping(f->db, 300, &ms), DC_UNAVAILABLE);
    assert_int_equal(fk.now_ms - CLOCK_START, 300);
    assert_int_equal(fk.conns, 0);
    assert_int_equal(dc_db_ping(f->db, 300, &ms), DC_UNAVAILABLE);
    assert_int_equal(fk.now_ms - CLOCK_START, 300);
    assert_int_equal(fk.connects, 1);
    fk.connect_hang = 0;
    assert_serves(f); /* at once: no back-off */
    assert_int_equal(fk.connects, 2);
    assert_int_equal(dc_db_ping(f->db, 300, &ms), DC_OK);
}

/* The connection found broken: the ping's reconnect is within the same time, not a second one of its own. */
static void test_ping_reconnect_within_its_time(void **state)
{
    fixture_t *f = *state;
    double     ms;

    f->cfg.db_connect_timeout_s = 2;
    f->cfg.db_retry_interval_ms = 60000;
    assert_serves(f);
    fk.send_fail = 1;
    fk.connect_hang = 1;
    assert_int_equal(dc_db_ping(f->db, 300, &ms), DC_UNAVAILABLE);
    assert_int_equal(fk.now_ms - CLOCK_START, 300);
    assert_int_equal(fk.connects, 2);
    fk.connect_hang = 0;
    assert_serves(f);
}

/*
 * The server stops answering: a ping ends at its time and keeps the
 * connection, with its query in flight. The next ping waits for that
 * answer only as long as it would for its own from when it was asked:
 * not at all with the same time, the rest of its own with a longer one.
 * Once the server answers, the next query takes the pings' answer and runs
 * at once on the same connection: no back-off, no reconnect.
 */
static void test_ping_timeout_keeps_the_connection(void **state)
{
    fixture_t   *f = *state;
    dc_db_call_t c[NB];
    double       ms;

    f->cfg.db_retry_interval_ms = 60000;
    assert_serves(f);
    fk.hang_plain = 1;
    assert_int_equal(dc_db_ping(f->db, 300, &ms), DC_UNAVAILABLE);
    assert_int_equal(fk.now_ms - CLOCK_START, 300);
    assert_int_equal(fk.conns, 1);
    assert_int_equal(dc_db_ping(f->db, 300, &ms), DC_UNAVAILABLE); /* no answer 300 ms after the asking */
    assert_int_equal(fk.now_ms - CLOCK_START, 300);
    assert_int_equal(dc_db_ping(f->db, 1000, &ms), DC_UNAVAILABLE); /* until 1000 ms after it */
    assert_int_equal(fk.now_ms - CLOCK_START, 1000);
    assert_int_equal(fk.execs, 2); /* the later pings sent nothing */
    fk.hang_plain = 0;
    assert_serves(f);
    assert_int_equal(fk.connects, 1);
    assert_int_equal(fk.now_ms - CLOCK_START, 1000);

    /* a batch takes the owed answer too */
    fk.hang_plain = 1;
    assert_int_equal(dc_db_ping(f->db, 300, &ms), DC_UNAVAILABLE);
    fk.hang_plain = 0;
    batch_of(c);
    assert_int_equal(dc_db_exec_all(f->db, c, NB), DC_OK);
    dc_db_calls_clear(c, NB);
    assert_int_equal(fk.connects, 1);
    assert_int_equal(fk.results, 0);
}

/* The server still silent when a query comes: the query's deadline, then what any timeout does. */
static void test_owed_answer_that_never_comes(void **state)
{
    fixture_t *f = *state;
    PGresult  *r;
    double     ms;

    f->cfg.db_retry_interval_ms = 60000;
    assert_serves(f);
    fk.hang_plain = 1;
    assert_int_equal(dc_db_ping(f->db, 300, &ms), DC_UNAVAILABLE);
    assert_int_equal(exec(f, &r), DC_UNAVAILABLE);
    assert_null(r);
    assert_int_equal(fk.now_ms - CLOCK_START, 300 + f->cfg.db_statement_timeout_ms + 1000);
    assert_int_equal(fk.conns, 0);
    assert_int_equal(fk.execs, 2); /* the query was never sent behind the silent ping */
    fk.hang_plain = 0;
    assert_int_equal(exec(f, &r), DC_UNAVAILABLE); /* the back-off */
    assert_int_equal(fk.connects, 1);
}

/* dc_db_exec_within is a probe too: its own time for all of it, and a timeout closes nothing. */
static void test_exec_within_is_a_probe(void **state)
{
    fixture_t  *f = *state;
    const char *params[] = { "1" };
    PGresult   *r;

    f->cfg.db_retry_interval_ms = 60000;
    fk.connect_hang = 1;
    assert_int_equal(dc_db_exec_within(f->db, &stmts[1], params, 250, &r), DC_UNAVAILABLE);
    assert_int_equal(fk.now_ms - CLOCK_START, 250);
    fk.connect_hang = 0;
    assert_serves(f);
    fk.hang_plain = 1;
    assert_int_equal(dc_db_exec_within(f->db, &stmts[1], params, 250, &r), DC_UNAVAILABLE);
    assert_null(r);
    assert_int_equal(fk.now_ms - CLOCK_START, 500);
    assert_int_equal(fk.conns, 1);
    fk.now_ms += 250; /* the next interval: still no answer, and no second wait for it */
    assert_int_equal(dc_db_exec_within(f->db, &stmts[1], params, 250, &r), DC_UNAVAILABLE);
    assert_int_equal(fk.now_ms - CLOCK_START, 750);
    fk.hang_plain = 0;
    assert_int_equal(dc_db_exec_within(f->db, &stmts[1], params, 250, &r), DC_OK);
    PQclear(r);
    assert_int_equal(fk.connects, 2);
    assert_int_equal(fk.metric_n[1], 5);
    assert_int_equal(fk.metric_fail[1], 3);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_healthy_fake_serves),
        T(test_conn_allocation_failure),
        T(test_connect_bad_status),
        T(test_failed_connect_backs_off),
        T(test_prepare_fatal_error),
        T(test_fatal_error_is_an_error),
        T(test_fatal_error_busy_is_unavailable),
        T(test_fatal_error_refused_is_equery),
        T(test_fatal_error_without_sqlstate),
        T(test_connection_bad_mid_request_retries_once),
        T(test_write_is_never_resent),
        T(test_connection_bad_twice_is_unavailable),
        T(test_send_failure_reconnects),
        T(test_no_result_reconnects),
        T(test_ping_faults),
        T(test_batch_is_one_round_trip),
        T(test_batch_failure_aborts_the_rest),
        T(test_batch_busy_and_refused),
        T(test_batch_send_failure),
        T(test_batch_sync_failure),
        T(test_batch_connection_lost_in_the_middle),
        T(test_batch_server_shutting_down),
        T(test_batch_timeout_in_the_middle),
        T(test_send_is_bounded),
        T(test_batch_enter_failure),
        T(test_batch_exit_failure),
        T(test_batch_without_connection),
        T(test_batch_in_transaction_is_not_resent),
        T(test_batch_refuses_what_it_must_not_send),
        T(test_connect_is_bounded),
        T(test_ping_connect_within_its_time),
        T(test_ping_reconnect_within_its_time),
        T(test_ping_timeout_keeps_the_connection),
        T(test_owed_answer_that_never_comes),
        T(test_exec_within_is_a_probe),
    };

    return cmocka_run_group_tests_name("dc_db_faults", tests, NULL, NULL);
}
