/* libpq connection handling: lazy connect, prepared statements, deadlines. */
#include "dc_db.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "dc_breaker.h"
#include "dc_log.h"
#include "dc_lsn.h"
#include "dc_metrics.h"

#define MAX_SETS 4
#define NO_LIMIT INT64_MAX /* a limit_ms that never comes: only the per-wait deadlines bound */

_Static_assert(DC_DB_SLOTS <= DC_METRICS_MAX_STMTS, "a metric slot for every statement");

struct dc_db_s {
    const dc_config_t *cfg;
    const char        *url;        /* conninfo or URL: DATABASE_URL, or DATABASE_READ_URL for standby reads */
    int                standby;    /* standby reads (dc_db_new_standby): prefer-standby, no host breaker */
    int                read_write; /* the URL names several hosts: only a read-write server will do */
    const dc_db_set_t *sets[MAX_SETS];
    size_t             nsets;
    PGconn            *conn;
    int64_t            retry_at_ms;       /* no connect before then (a failure's back-off) */
    int64_t            probe_retry_at_ms; /* no connect for a probe before then */
    int                down_logged;
    const char        *listen_channel; /* LISTENed on every connect, or NULL */
    unsigned           epoch;          /* successful connects so far */
    int                in_tx;          /* between dc_db_begin and its commit or rollback */
    int                owed;           /* a probe ran out of time: its query is still in flight ... */
    int64_t            owed_at_ms;     /* ... sent then */
};

static int check_conninfo(const char *var, const char *url, dc_err_t *err)
{
    char             *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &msg);

    if (opts == NULL) {
        size_t n = msg ? strlen(msg) : 0;
        while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
            n--;
        if (msg == NULL)
            dc_err_set(err, DC_EINVAL, "%s is invalid: out of memory", var);
        else
            dc_err_set(err, DC_EINVAL, "%s is invalid: %.*s", var, (int)n, msg);
        PQfreemem(msg);
        return DC_EINVAL;
    }
    PQconninfoFree(opts);
    return DC_OK;
}

int dc_db_check_conninfo(const char *url, dc_err_t *err)
{
    return check_conninfo("DATABASE_URL", url, err);
}

int dc_db_check_read_conninfo(const char *url, dc_err_t *err)
{
    return check_conninfo("DATABASE_READ_URL", url, err);
}

/* Whether url (valid: checked at start-up) names more than one host. */
static int several_hosts(const char *url)
{
    PQconninfoOption *opts = PQconninfoParse(url, NULL);
    int               several = 0;

    for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++)
        if ((strcmp(o->keyword, "host") == 0 || strcmp(o->keyword, "hostaddr") == 0) && o->val != NULL &&
            strchr(o->val, ',') != NULL)
            several = 1;
    PQconninfoFree(opts);
    return several;
}

static dc_db_t *db_new(const dc_config_t *cfg, const char *url, int standby, const dc_db_set_t *const *sets,
                       size_t nsets)
{
    dc_db_t *db;

    if (nsets > MAX_SETS)
        return NULL;
    db = calloc(1, sizeof(*db));
    if (db != NULL) {
        db->cfg = cfg;
        db->url = url;
        db->standby = standby;
        db->read_write = !standby && several_hosts(url);
        for (size_t i = 0; i < nsets; i++)
            db->sets[i] = sets[i];
        db->nsets = nsets;
    }
    return db;
}

dc_db_t *dc_db_new(const dc_config_t *cfg, const dc_db_set_t *const *sets, size_t nsets)
{
    return db_new(cfg, cfg->database_url, 0, sets, nsets);
}

dc_db_t *dc_db_new_standby(const dc_config_t *cfg, const dc_db_set_t *const *sets, size_t nsets)
{
    if (cfg->database_read_url[0] == '\0')
        return NULL;
    return db_new(cfg, cfg->database_read_url, 1, sets, nsets);
}

/*
 * The host's PostgreSQL breaker is the primary's: a standby that fails
 * must not close the primary to the reads that fall back to it, so a
 * standby handle neither asks nor tells it (its own back-off,
 * DB_RETRY_INTERVAL_MS, bounds what a dead standby costs).
 */
static int brk_allow(const dc_db_t *db)
{
    return db->standby || dc_breaker_allow(DC_DEP_POSTGRES);
}

static void brk_failure(const dc_db_t *db)
{
    if (!db->standby)
        dc_breaker_failure(DC_DEP_POSTGRES);
}

static void brk_success(const dc_db_t *db)
{
    if (!db->standby)
        dc_breaker_success(DC_DEP_POSTGRES);
}

static int brk_on(const dc_db_t *db)
{
    return !db->standby && dc_breaker_on();
}

static int brk_probing(const dc_db_t *db)
{
    return !db->standby && dc_breaker_probing(DC_DEP_POSTGRES);
}

static void disconnect(dc_db_t *db)
{
    PQfinish(db->conn);
    db->conn = NULL;
    db->in_tx = 0; /* the server rolls back what was not committed */
    db->owed = 0;
}

/* The earlier of now + ms and limit_ms. */
static int64_t deadline_within(int ms, int64_t limit_ms)
{
    int64_t d = dc_now_ms() + ms;
    return d < limit_ms ? d : limit_ms;
}

void dc_db_free(dc_db_t *db)
{
    if (db == NULL)
        return;
    disconnect(db);
    free(db);
}

static void went_down(dc_db_t *db, const char *what, const char *why)
{
    if (!db->down_logged) {
        char   msg[256];
        size_t n;
        snprintf(msg, sizeof(msg), "%s", why ? why : "unknown error");
        n = strlen(msg);
        while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
            msg[--n] = '\0';
        dc_log_warn("db.error", "%s failed: %s", what, msg);
        db->down_logged = 1;
    }
    disconnect(db);
    brk_failure(db);
}

/*
 * Waits until libpq has sent all it holds and a result can be taken without
 * blocking, until deadline. DC_OK; DC_UNAVAILABLE (the deadline passed);
 * DC_ERROR (the connection failed). Reading goes on while the send waits:
 * the server may be blocked on results that nobody reads.
 */
static int await(PGconn *conn, int64_t deadline_ms)
{
    deadline_ms = dc_deadline_cap(deadline_ms); /* REQUEST_TIMEOUT_MS */
    for (int polled = 0;; polled = 1) {
        int           unsent = PQflush(conn);
        struct pollfd pfd = { PQsocket(conn), POLLIN, 0 };
        int64_t       left = deadline_ms - dc_now_ms();
        int           n;

        if (unsent < 0)
            return DC_ERROR;
        if (unsent == 0 && !PQisBusy(conn))
            return DC_OK;
        /* a deadline already past still reads what has arrived */
        if (left <= 0 && polled)
            return DC_UNAVAILABLE;
        if (unsent)
            pfd.events |= POLLOUT;
        n = poll(&pfd, 1, left <= 0 ? 0 : (int)(left < INT_MAX ? left : INT_MAX));
        if (n < 0 && errno != EINTR)
            return DC_ERROR;
        if (n > 0 && (pfd.revents & (POLLIN | POLLERR | POLLHUP)) && PQconsumeInput(conn) == 0)
            return DC_ERROR;
    }
}

/*
 * Waits for the complete result of the query in flight (in pipeline mode:
 * of the next query, or the sync), until deadline. DC_OK with *out set;
 * DC_UNAVAILABLE; DC_ERROR (the connection failed, or no result came).
 */
static int wait_result(PGconn *conn, int64_t deadline_ms, PGresult **out)
{
    PGresult *first = NULL, *r;
    int       rc;

    for (;;) {
        if ((rc = await(conn, deadline_ms)) != DC_OK) {
            PQclear(first);
            return rc;
        }
        r = PQgetResult(conn);
        if (r == NULL)
            break;
        if (first == NULL)
            first = r;
        else
            PQclear(r);
    }
    *out = first;
    return first != NULL ? DC_OK : DC_ERROR;
}

static int deadline_ms(const dc_db_t *db)
{
    /* the server cancels at statement_timeout; give it a second to say so */
    return db->cfg->db_statement_timeout_ms + 1000;
}

static int prepare_set(dc_db_t *db, const dc_db_set_t *set, int64_t limit_ms)
{
    for (size_t i = 0; i < set->n; i++) {
        PGresult           *r = NULL;
        const dc_db_stmt_t *s = &set->stmts[i];
        int                 rc;

        if (!PQsendPrepare(db->conn, s->name, s->sql, s->nparams, NULL)) {
            went_down(db, "prepare", PQerrorMessage(db->conn));
            return DC_UNAVAILABLE;
        }
        rc = wait_result(db->conn, deadline_within(deadline_ms(db), limit_ms), &r);
        if (rc == DC_UNAVAILABLE) {
            went_down(db, "prepare", "no answer within the deadline");
            return DC_UNAVAILABLE;
        }
        if (rc != DC_OK || PQresultStatus(r) != PGRES_COMMAND_OK) {
            /* a statement that does not prepare is a bug (or a wrong schema) */
            dc_log_error("db.prepare", "statement %s: %s", s->name,
                         r ? PQresultErrorMessage(r) : PQerrorMessage(db->conn));
            PQclear(r);
            disconnect(db);
            return DC_UNAVAILABLE;
        }
        PQclear(r);
    }
    return DC_OK;
}

static int prepare_all(dc_db_t *db, int64_t limit_ms)
{
    for (size_t k = 0; k < db->nsets; k++) {
        if (prepare_set(db, db->sets[k], limit_ms) != DC_OK)
            return DC_UNAVAILABLE;
    }
    return DC_OK;
}

static int listen_channel(dc_db_t *db, int64_t limit_ms)
{
    PGresult *r = NULL;
    char     *ident;
    char      sql[160];
    int       rc;

    if (db->listen_channel == NULL)
        return DC_OK;
    ident = PQescapeIdentifier(db->conn, db->listen_channel, strlen(db->listen_channel));
    if (ident == NULL)
        return DC_ERROR;
    snprintf(sql, sizeof(sql), "LISTEN %s", ident);
    PQfreemem(ident);
    if (!PQsendQuery(db->conn, sql))
        return DC_ERROR;
    rc = wait_result(db->conn, deadline_within(deadline_ms(db), limit_ms), &r);
    if (rc != DC_OK || PQresultStatus(r) != PGRES_COMMAND_OK)
        rc = DC_ERROR;
    PQclear(r);
    return rc;
}

/*
 * Drives the non-blocking connect of conn (PQconnectStartParams) to its end
 * or to deadline_ms: DC_OK, DC_UNAVAILABLE (the deadline passed) or DC_ERROR
 * (the connect failed).
 */
static int handshake(PGconn *conn, int64_t deadline_ms)
{
    /* libpq: before the first PQconnectPoll, wait as if it had said "writing" */
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;

    deadline_ms = dc_deadline_cap(deadline_ms); /* REQUEST_TIMEOUT_MS */
    for (;;) {
        struct pollfd pfd = { PQsocket(conn), 0, 0 };
        int64_t       left = deadline_ms - dc_now_ms();
        int           n;

        if (st == PGRES_POLLING_OK)
            return DC_OK;
        if (st == PGRES_POLLING_FAILED)
            return DC_ERROR;
        if (left <= 0)
            return DC_UNAVAILABLE;
        pfd.events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT;
        n = poll(&pfd, 1, (int)(left < INT_MAX ? left : INT_MAX));
        if (n < 0 && errno != EINTR)
            return DC_ERROR;
        if (n > 0)
            st = PQconnectPoll(conn);
    }
}

/*
 * Connects, prepares the statements and LISTENs, the handshake within
 * DB_CONNECT_TIMEOUT_SECONDS and everything before limit_ms. A failure
 * closes the database for DB_RETRY_INTERVAL_MS; one of a probe, which
 * may have given up only because its own time was short, closes it for
 * probes alone: the next request tries at once, and a probe every
 * interval does not spend its whole time in a connect each time.
 */
static int connect_db(dc_db_t *db, int64_t limit_ms, int probe)
{
    char        options[64];
    const char *keys[6], *vals[6];
    const char *why;
    int         rc, k = 0;

    /* with the breakers on, the host's breaker is the requests' back-off; probes keep their own */
    if (((dc_now_ms() < db->retry_at_ms && !brk_on(db)) || (probe && dc_now_ms() < db->probe_retry_at_ms)) &&
        !brk_probing(db))
        return DC_UNAVAILABLE;

    /*
     * Keywords before dbname (the URL, expanded) are defaults the URL may
     * override; those after it override the URL: standby reads prefer a
     * standby unless DATABASE_READ_URL says otherwise, and writes, the
     * outbox and its LISTEN never land on a standby of a multi-host
     * DATABASE_URL.
     */
    if (db->standby) {
        keys[k] = "target_session_attrs";
        vals[k++] = "prefer-standby";
    }
    keys[k] = "dbname";
    vals[k++] = db->url;
    keys[k] = "options";
    vals[k++] = options;
    keys[k] = "application_name";
    vals[k++] = db->standby ? "dashcache-standby-reads" : "dashcache";
    if (db->read_write) {
        keys[k] = "target_session_attrs";
        vals[k++] = "read-write";
    }
    keys[k] = vals[k] = NULL;

    snprintf(options, sizeof(options), "-c statement_timeout=%d", db->cfg->db_statement_timeout_ms);
    /* libpq's connect_timeout bounds only its blocking connect: the deadline here is ours */
    db->conn = PQconnectStartParams(keys, vals, 1);
    if (db->conn == NULL || PQstatus(db->conn) == CONNECTION_BAD) {
        went_down(db, "database connect", db->conn ? PQerrorMessage(db->conn) : "out of memory");
        goto failed;
    }
    rc = handshake(db->conn, deadline_within(db->cfg->db_connect_timeout_s * 1000, limit_ms));
    if (rc != DC_OK) {
        why = rc == DC_UNAVAILABLE ? "no answer within the deadline" : PQerrorMessage(db->conn);
        went_down(db, "database connect", why);
        goto failed;
    }
    if (PQsetnonblocking(db->conn, 1) != 0 || prepare_all(db, limit_ms) != DC_OK ||
        listen_channel(db, limit_ms) != DC_OK) {
        disconnect(db);
        goto failed;
    }
    db->epoch++;
    if (db->down_logged) {
        dc_log_info("db.recovered", "connected to the database again");
        db->down_logged = 0;
    }
    return DC_OK;
failed:
    *(probe ? &db->probe_retry_at_ms : &db->retry_at_ms) = dc_now_ms() + db->cfg->db_retry_interval_ms;
    return DC_UNAVAILABLE;
}

/* exec_once: the connection broke before the query was sent (BROKEN) or after (SENT_BROKEN). */
#define BROKEN      1
#define SENT_BROKEN 2

/* How run() goes about a query. */
#define RESEND 1 /* sent again on a new connection when the old one broke after it was sent */
#define PROBE  2 /* a health check: running out of its time closes nothing (see settle) */

/*
 * What a result that is neither PGRES_TUPLES_OK nor PGRES_COMMAND_OK means:
 * SENT_BROKEN (the connection went bad), DC_EQUERY (refused: raised by our
 * functions, a bad value or a constraint; the caller's answer, not a
 * failure), DC_UNAVAILABLE (the server cancelled it or ran out of something:
 * busy) or DC_ERROR (a bug; logged).
 */
static int failure_of(dc_db_t *db, const char *name, const PGresult *r)
{
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    int         busy = state != NULL && (strcmp(state, "57014") == 0 || strncmp(state, "53", 2) == 0);
    int         refused = state != NULL && (strncmp(state, "P0", 2) == 0 || strncmp(state, "22", 2) == 0 ||
                                    strncmp(state, "23", 2) == 0);

    if (PQstatus(db->conn) != CONNECTION_OK)
        return SENT_BROKEN;
    if (refused)
        return DC_EQUERY;
    if (busy)
        brk_failure(db); /* cancelled for time or out of resources: overloaded */
    dc_log_error("db.query", "%s: %s", name, PQresultErrorMessage(r));
    return busy ? DC_UNAVAILABLE : DC_ERROR;
}

static int ran_fine(const PGresult *r)
{
    return PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK;
}

/* The deadline passed: the connection is in an unknown state and the server maybe hung. */
static int timed_out(dc_db_t *db)
{
    went_down(db, "query", "no answer within the deadline");
    db->retry_at_ms = dc_now_ms() + db->cfg->db_retry_interval_ms;
    return DC_UNAVAILABLE;
}

/*
 * A probe that ran out of its time leaves its query on the connection
 * instead of closing it (the server may only be slow, and a health check
 * must not cost the next request its connection, nor close the database
 * for the retry interval); the answer is taken here, before the next query
 * is sent, until deadline_ms. DC_OK, DC_UNAVAILABLE (still no answer) or
 * DC_ERROR (the connection failed).
 */
static int settle(dc_db_t *db, int64_t deadline_ms)
{
    while (db->owed) {
        PGresult *r;
        int       rc = await(db->conn, deadline_ms);

        if (rc != DC_OK)
            return rc;
        r = PQgetResult(db->conn);
        if (r == NULL)
            db->owed = 0;
        PQclear(r);
    }
    return DC_OK;
}

/*
 * One attempt on the current connection, each wait within timeout_ms and
 * all before limit_ms: DC_OK, DC_EQUERY, DC_UNAVAILABLE, DC_ERROR, BROKEN
 * or SENT_BROKEN.
 */
static int exec_once(dc_db_t *db, const char *name, int nparams, const char *const *params, const char *sql,
                     int timeout_ms, int64_t limit_ms, int flags, PGresult **out)
{
    PGresult *r = NULL;
    int64_t   deadline, sent_ms;
    int       rc, ok;

    deadline = deadline_within(timeout_ms, limit_ms);
    /*
     * A probe waits for the answer owed to an earlier one only as long as
     * it would for its own: none within timeout_ms of the asking is its
     * answer too (the trust probe of every interval costs one wait per
     * outage, not one per interval).
     */
    if ((flags & PROBE) && db->owed && db->owed_at_ms + timeout_ms < deadline)
        deadline = db->owed_at_ms + timeout_ms;
    rc = settle(db, deadline);
    if (rc == DC_UNAVAILABLE)
        return flags & PROBE ? DC_UNAVAILABLE : timed_out(db);
    if (rc != DC_OK)
        return BROKEN;
    ok = sql != NULL ? PQsendQueryParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0)
                     : PQsendQueryPrepared(db->conn, name, nparams, params, NULL, NULL, 0);
    if (!ok)
        return BROKEN;
    sent_ms = dc_now_ms();
    rc = wait_result(db->conn, deadline_within(timeout_ms, limit_ms), &r);
    if (rc == DC_UNAVAILABLE && (flags & PROBE)) {
        db->owed = 1;
        db->owed_at_ms = sent_ms;
        return DC_UNAVAILABLE;
    }
    if (rc == DC_UNAVAILABLE)
        return timed_out(db);
    if (rc != DC_OK)
        return SENT_BROKEN;
    if (!ran_fine(r)) {
        rc = failure_of(db, name, r);
        if (rc == DC_EQUERY)
            *out = r;
        else
            PQclear(r);
        return rc;
    }
    *out = r;
    return DC_OK;
}

/*
 * Runs a query, connecting when needed, every wait within timeout_ms and
 * all of it (connects included) before limit_ms. RESEND in flags: the query
 * may be sent again on a new connection when the old one broke after it
 * was sent. Never for a write (the server may have committed it: the client
 * is told it is not acknowledged and retries, with an Idempotency-Key if it
 * wants that to be safe), and never inside a transaction (a new connection
 * is outside it).
 */
static int run_attempts(dc_db_t *db, const char *name, int nparams, const char *const *params,
                        const char *sql, int timeout_ms, int64_t limit_ms, int flags, PGresult **out)
{
    int rc;

    for (int attempt = 0; attempt < 2; attempt++) {
        if (dc_now_ms() >= limit_ms)
            return DC_UNAVAILABLE;
        if (db->conn == NULL && (db->in_tx || connect_db(db, limit_ms, flags & PROBE) != DC_OK))
            return DC_UNAVAILABLE;
        rc = exec_once(db, name, nparams, params, sql, timeout_ms, limit_ms, flags, out);
        if (rc != BROKEN && rc != SENT_BROKEN)
            return rc;
        /* the connection broke (server restarted, network): reconnect once if that is safe */
        int once = db->in_tx || (rc == SENT_BROKEN && !(flags & RESEND));
        went_down(db, "query", PQerrorMessage(db->conn));
        if (once)
            return DC_UNAVAILABLE;
    }
    return DC_UNAVAILABLE;
}

/*
 * Tells the host's breaker how a call it let through went (dc_breaker): an
 * answer, whatever it says, is a success; the failures are told where they
 * are found (went_down, failure_of), but for a probe that ran out of its
 * own short time, which counts only when it was the breaker's probe.
 */
static int breaker_report(const dc_db_t *db, int rc, int flags)
{
    if (rc != DC_UNAVAILABLE)
        brk_success(db);
    else if ((flags & PROBE) && brk_probing(db))
        brk_failure(db);
    return rc;
}

/* run_attempts, unless the host's breaker is open: then at once, touching nothing. */
static int run(dc_db_t *db, const char *name, int nparams, const char *const *params, const char *sql,
               int timeout_ms, int64_t limit_ms, int flags, PGresult **out)
{
    *out = NULL;
    if (!brk_allow(db))
        return DC_UNAVAILABLE;
    return breaker_report(db, run_attempts(db, name, nparams, params, sql, timeout_ms, limit_ms, flags, out),
                          flags);
}

/* The metric slot of stmt, or -1 when it belongs to no set of db. */
static int slot_of(const dc_db_t *db, const dc_db_stmt_t *stmt)
{
    for (size_t k = 0; k < db->nsets; k++) {
        const dc_db_set_t *set = db->sets[k];
        if (stmt >= set->stmts && stmt < set->stmts + set->n)
            return set->slot0 + (int)(stmt - set->stmts);
    }
    return -1;
}

/* dc_db_exec and dc_db_exec_within: each wait within timeout_ms, all before limit_ms. */
static int exec_stmt(dc_db_t *db, const dc_db_stmt_t *stmt, const char *const *params, int timeout_ms,
                     int64_t limit_ms, int flags, PGresult **out)
{
    int     slot = slot_of(db, stmt);
    int64_t t0;
    int     rc;

    *out = NULL;
    if (slot < 0) {
        dc_log_error("db.query", "statement %s is not prepared by this process", stmt->name);
        return DC_ERROR;
    }
    if (slot < DC_DB_SLOTS_WRITE || slot >= DC_DB_SLOTS_OUTBOX)
        flags |= RESEND;
    t0 = dc_now_ns();
    rc = run(db, stmt->name, stmt->nparams, params, NULL, timeout_ms, limit_ms, flags, out);
    /* a refused statement (a client's 4xx) ran fine */
    dc_metrics_db_query(slot, rc == DC_OK || rc == DC_EQUERY, dc_now_ns() - t0);
    return rc;
}

int dc_db_exec(dc_db_t *db, const dc_db_stmt_t *stmt, const char *const *params, PGresult **out)
{
    return exec_stmt(db, stmt, params, deadline_ms(db), NO_LIMIT, 0, out);
}

int dc_db_exec_within(dc_db_t *db, const dc_db_stmt_t *stmt, const char *const *params, int timeout_ms,
                      PGresult **out)
{
    /* a probe, as dc_db_ping; inside a transaction a timeout ends it as any other */
    return exec_stmt(db, stmt, params, timeout_ms, dc_now_ms() + timeout_ms, db->in_tx ? 0 : PROBE, out);
}

/*
 * One attempt at a batch on the current connection, in pipeline mode:
 * DC_OK, DC_EQUERY, DC_UNAVAILABLE, DC_ERROR, BROKEN or SENT_BROKEN, as
 * exec_once. Sets the res of the calls whose results came, done_ns[i] when
 * statement i ran (fine or not), and *failed to the statement a failure
 * belongs to: the one that failed, or the first without a result. The
 * connection leaves pipeline mode, or is closed.
 */
static int pipeline_once(dc_db_t *db, dc_db_call_t *calls, size_t n, int timeout_ms, int64_t *done_ns,
                         size_t *failed)
{
    PGconn   *conn = db->conn;
    PGresult *r, *failure = NULL; /* the result of the statement that failed */
    int       rc, w;

    *failed = 0;
    w = settle(db, dc_now_ms() + timeout_ms);
    if (w == DC_UNAVAILABLE)
        return timed_out(db);
    if (w != DC_OK)
        return BROKEN;
    if (!PQenterPipelineMode(conn))
        return BROKEN;
    for (size_t i = 0; i < n; i++) {
        const dc_db_stmt_t *s = calls[i].stmt;
        if (!PQsendQueryPrepared(conn, s->name, s->nparams, calls[i].params, NULL, NULL, 0))
            return i == 0 ? BROKEN : SENT_BROKEN;
    }
    if (!PQpipelineSync(conn))
        return SENT_BROKEN;

    /* each result in order; after a failure, PGRES_PIPELINE_ABORTED for the rest */
    for (size_t i = 0; i < n; i++) {
        if (failure == NULL)
            *failed = i;
        r = NULL;
        w = wait_result(conn, dc_now_ms() + timeout_ms, &r);
        if (w != DC_OK) {
            PQclear(failure);
            return w == DC_UNAVAILABLE ? timed_out(db) : SENT_BROKEN;
        }
        if (failure == NULL && ran_fine(r)) {
            calls[i].res = r;
            done_ns[i] = dc_now_ns();
            continue;
        }
        if (PQstatus(conn) != CONNECTION_OK) {
            PQclear(r);
            PQclear(failure);
            return SENT_BROKEN;
        }
        if (failure != NULL && PQresultStatus(r) == PGRES_PIPELINE_ABORTED) {
            PQclear(r);
            continue;
        }
        if (failure != NULL || PQresultStatus(r) != PGRES_FATAL_ERROR) {
            dc_log_error("db.query", "%s: %s in a pipeline; closing the connection", calls[i].stmt->name,
                         PQresStatus(PQresultStatus(r)));
            PQclear(r);
            PQclear(failure);
            disconnect(db);
            return DC_ERROR;
        }
        failure = r;
        done_ns[i] = dc_now_ns();
    }

    /* the sync ends the implicit transaction */
    r = NULL;
    w = wait_result(conn, dc_now_ms() + timeout_ms, &r);
    if (w != DC_OK || PQresultStatus(r) != PGRES_PIPELINE_SYNC) {
        PQclear(r);
        if (failure != NULL) {
            /* a server shutting down answers with an error and then closes: the connection's end */
            PQclear(failure);
            return w == DC_UNAVAILABLE ? timed_out(db) : SENT_BROKEN;
        }
        /* every result is in: they stand, the connection is not reused */
        if (w == DC_UNAVAILABLE)
            timed_out(db);
        else
            went_down(db, "query", "the pipeline did not end with its sync");
        return DC_OK;
    }
    PQclear(r);
    rc = DC_OK;
    if (failure != NULL) {
        rc = failure_of(db, calls[*failed].stmt->name, failure);
        if (rc == DC_EQUERY) {
            calls[*failed].res = failure;
        } else {
            PQclear(failure);
            if (rc == SENT_BROKEN)
                return rc;
        }
    }
    if (!PQexitPipelineMode(conn)) {
        dc_log_error("db.query", "PQexitPipelineMode() failed: %s; closing the connection",
                     PQerrorMessage(conn));
        disconnect(db);
    }
    return rc;
}

void dc_db_calls_clear(dc_db_call_t *calls, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        PQclear(calls[i].res);
        calls[i].res = NULL;
    }
}

int dc_db_exec_all(dc_db_t *db, dc_db_call_t *calls, size_t n)
{
    int     slots[DC_DB_BATCH_MAX];
    int64_t done_ns[DC_DB_BATCH_MAX] = { 0 };
    int64_t t0 = dc_now_ns();
    size_t  failed = 0;
    int     rc = DC_UNAVAILABLE;

    for (size_t i = 0; i < n; i++)
        calls[i].res = NULL;
    if (n == 0 || n > DC_DB_BATCH_MAX) {
        dc_log_error("db.query", "a batch of %zu statements (1 to %d)", n, DC_DB_BATCH_MAX);
        return DC_ERROR;
    }
    for (size_t i = 0; i < n; i++) {
        slots[i] = slot_of(db, calls[i].stmt);
        /* a write is never part of a batch: never sent twice, and alone in its round trip */
        if (slots[i] < 0 || (slots[i] >= DC_DB_SLOTS_WRITE && slots[i] < DC_DB_SLOTS_OUTBOX)) {
            dc_log_error("db.query", "statement %s is not a read prepared by this process",
                         calls[i].stmt->name);
            return DC_ERROR;
        }
    }
    if (!brk_allow(db))
        goto counted; /* open: touches nothing */
    for (int attempt = 0; attempt < 2; attempt++) {
        memset(done_ns, 0, sizeof(done_ns));
        failed = 0;
        if (db->conn == NULL && (db->in_tx || connect_db(db, NO_LIMIT, 0) != DC_OK)) {
            rc = DC_UNAVAILABLE;
            break;
        }
        rc = pipeline_once(db, calls, n, deadline_ms(db), done_ns, &failed);
        if (rc != BROKEN && rc != SENT_BROKEN)
            break;
        /* the connection broke (server restarted, network): reads are sent again, once, outside a transaction */
        int once = db->in_tx;
        dc_db_calls_clear(calls, n);
        went_down(db, "query", PQerrorMessage(db->conn));
        rc = DC_UNAVAILABLE;
        if (once)
            break;
    }
    breaker_report(db, rc, 0);
counted:
    /* as if each had been run by dc_db_exec: those after a failure never were */
    for (size_t i = 0; i < n; i++) {
        if (rc != DC_OK && i == failed)
            dc_metrics_db_query(slots[i], rc == DC_EQUERY, (done_ns[i] ? done_ns[i] : dc_now_ns()) - t0);
        else if (done_ns[i] != 0)
            dc_metrics_db_query(slots[i], 1, done_ns[i] - t0);
    }
    return rc;
}

int dc_db_ping(dc_db_t *db, int timeout_ms, double *latency_ms)
{
    int64_t   t0 = dc_now_us();
    PGresult *r;
    int rc = run(db, "ping", 0, NULL, "SELECT 1", timeout_ms, dc_now_ms() + timeout_ms, RESEND | PROBE, &r);

    PQclear(r);
    *latency_ms = (double)(dc_now_us() - t0) / 1000.0;
    return rc == DC_OK ? DC_OK : DC_UNAVAILABLE;
}

int dc_db_lsn(dc_db_t *db, uint64_t *lsn, int *standby)
{
    /* NULL on a standby that has replayed nothing yet: 0, reached by nothing */
    static const char sql[] =
        "SELECT pg_is_in_recovery(), COALESCE(CASE WHEN pg_is_in_recovery()"
        " THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_insert_lsn() END, '0/0')::text";
    PGresult *r;
    int       rc = run(db, "lsn", 0, NULL, sql, deadline_ms(db), NO_LIMIT, RESEND, &r);

    *lsn = 0;
    *standby = 0;
    if (rc == DC_OK && (PQntuples(r) != 1 || PQnfields(r) != 2 ||
                        dc_lsn_parse(PQgetvalue(r, 0, 1), (size_t)PQgetlength(r, 0, 1), lsn) != DC_OK)) {
        dc_log_error("db.query", "lsn: an answer that is not an LSN");
        rc = DC_ERROR;
    }
    if (rc == DC_OK)
        *standby = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    return rc == DC_OK ? DC_OK : rc == DC_EQUERY ? DC_ERROR : rc;
}

/* BEGIN, COMMIT or ROLLBACK. */
static int tx_command(dc_db_t *db, const char *sql)
{
    PGresult *r;
    int       rc = run(db, sql, 0, NULL, sql, deadline_ms(db), NO_LIMIT, 0, &r);

    PQclear(r);
    return rc == DC_OK ? DC_OK : rc == DC_EQUERY ? DC_ERROR : rc;
}

int dc_db_begin(dc_db_t *db)
{
    int rc;

    if (db->in_tx)
        return DC_ERROR;
    rc = tx_command(db, "BEGIN");
    db->in_tx = rc == DC_OK;
    return rc;
}

int dc_db_commit(dc_db_t *db)
{
    int rc;

    if (!db->in_tx)
        return DC_ERROR;
    rc = tx_command(db, "COMMIT");
    db->in_tx = 0;
    return rc;
}

void dc_db_rollback(dc_db_t *db)
{
    if (!db->in_tx)
        return;
    if (tx_command(db, "ROLLBACK") != DC_OK && db->conn != NULL) {
        /* a connection whose state is unknown is not reused */
        dc_log_warn("db.error", "ROLLBACK failed; closing the connection");
        disconnect(db);
    }
    db->in_tx = 0;
}

void dc_db_set_listen(dc_db_t *db, const char *channel)
{
    db->listen_channel = channel;
}

int dc_db_ensure(dc_db_t *db)
{
    return db->conn != NULL ? DC_OK : connect_db(db, NO_LIMIT, 0);
}

int dc_db_fd(const dc_db_t *db)
{
    return db->conn != NULL ? PQsocket(db->conn) : -1;
}

unsigned dc_db_epoch(const dc_db_t *db)
{
    return db->epoch;
}

int dc_db_take_notifications(dc_db_t *db)
{
    PGnotify *n;
    int       count = 0;

    if (db->conn == NULL)
        return DC_UNAVAILABLE;
    if (PQconsumeInput(db->conn) == 0) {
        went_down(db, "listen", PQerrorMessage(db->conn));
        return DC_UNAVAILABLE;
    }
    while ((n = PQnotifies(db->conn)) != NULL) {
        count++;
        PQfreemem(n);
    }
    return count;
}
