/*
 * The PostgreSQL connection of a process. With dc_query, dc_query_write and
 * dc_outbox, the only code that includes libpq. Statements are prepared on
 * every (re)connect from the statement sets of the process's role; the
 * connection is non-blocking, and every query is sent and waited for with a
 * deadline, the connect (libpq's asynchronous one, within
 * DB_CONNECT_TIMEOUT_SECONDS) and the sends included, so a hung server
 * costs a bounded wait, never a hung worker. The statements of one read go
 * in one round trip (libpq's pipeline mode, dc_db_exec_all). A connection
 * found broken is replaced and the query retried once; a failed connect, or
 * a query that ran out of time, closes the database for
 * DB_RETRY_INTERVAL_MS (probes excepted: dc_db_ping, dc_db_exec_within).
 */
#ifndef DC_DB_H
#define DC_DB_H

#include <stdint.h>

#include "dc_config.h"

struct pg_result; /* PGresult, for the SQL modules only */

typedef struct dc_db_s dc_db_t;

typedef struct {
    const char *name; /* the prepared statement's name and its metric label */
    const char *sql;
    int         nparams;
} dc_db_stmt_t;

/*
 * One module's statements and the metric slots they own: statement i counts
 * in slot slot0 + i. Each module owns a fixed range, so the processes that
 * share the metrics file (workers prepare reads and writes, the invalidator
 * the outbox) agree on every slot whatever each of them prepares.
 */
typedef struct {
    const dc_db_stmt_t *stmts;
    size_t              n;
    int                 slot0;
} dc_db_set_t;

#define DC_DB_SLOTS_READ   0  /* dc_query: 16 slots */
#define DC_DB_SLOTS_WRITE  16 /* dc_query_write: 8 */
#define DC_DB_SLOTS_OUTBOX 24 /* dc_outbox: 8 */
#define DC_DB_SLOTS        32

/* Checks DATABASE_URL with libpq's own parser. DC_OK or DC_EINVAL with err (NULL is fine). */
int dc_db_check_conninfo(const char *url, dc_err_t *err) DC_WUR;

/* dc_db_check_conninfo for DATABASE_READ_URL (the messages name it). */
int dc_db_check_read_conninfo(const char *url, dc_err_t *err) DC_WUR;

/*
 * Allocates a handle that prepares the statements of the nsets sets on
 * every (re)connect, and only those; does not connect. The sets (static)
 * and the array must outlive it. NULL on ENOMEM or more than 4 sets.
 */
dc_db_t *dc_db_new(const dc_config_t *cfg, const dc_db_set_t *const *sets, size_t nsets);

/*
 * DATABASE_URL may name several hosts (a libpq multi-host URL): the
 * handles of dc_db_new then connect only to a read-write server
 * (target_session_attrs=read-write, whatever the URL says), so that
 * writes, the outbox and its LISTEN, and the LSNs of dc_db_lsn are the
 * primary's.
 *
 * dc_db_new_standby: a handle as dc_db_new's on DATABASE_READ_URL, for the
 * reads dc_replica sends to a standby; NULL when DATABASE_READ_URL is
 * unset (or on ENOMEM). It connects with target_session_attrs=prefer-standby
 * unless the URL sets another, and stays out of the host's PostgreSQL
 * breaker (a dead standby must not close the primary to the reads that fall
 * back to it): a failure closes it for DB_RETRY_INTERVAL_MS.
 */
dc_db_t *dc_db_new_standby(const dc_config_t *cfg, const dc_db_set_t *const *sets, size_t nsets);

/*
 * The server's WAL position, connecting when needed: on a primary,
 * pg_current_wal_insert_lsn(), at or past the end of every record written
 * before the call (a transaction committed before it, whatever its
 * synchronous_commit, included), *standby = 0; on a standby,
 * pg_last_wal_replay_lsn() (0 before it has replayed anything), *standby =
 * 1. DC_OK, DC_UNAVAILABLE or DC_ERROR, as dc_db_exec.
 */
int dc_db_lsn(dc_db_t *db, uint64_t *lsn, int *standby) DC_WUR;

/* Closes and frees. NULL is fine. */
void dc_db_free(dc_db_t *db);

/*
 * Executes prepared statement stmt (an element of one of the handle's sets)
 * with text parameters. A statement of no set of the handle is a bug:
 * logged, DC_ERROR. DC_OK: *out holds a PGRES_TUPLES_OK result the caller PQclears.
 * DC_EQUERY: the statement raised an error of class P0 (raised by a
 * function), 22 (bad value) or 23 (constraint); *out holds the error result
 * (PQclear it). DC_UNAVAILABLE: no connection, a timeout, or the server
 * cancelled the statement (busy; try later). DC_ERROR: the statement failed
 * (a bug).
 */
int dc_db_exec(dc_db_t *db, const dc_db_stmt_t *stmt, const char *const *params,
               struct pg_result **out) DC_WUR;

/*
 * dc_db_exec as a probe that must not wait long: all of it, the connect
 * included, within timeout_ms, and running out of time closes nothing, as
 * for dc_db_ping (inside a transaction: as dc_db_exec).
 */
int dc_db_exec_within(dc_db_t *db, const dc_db_stmt_t *stmt, const char *const *params, int timeout_ms,
                      struct pg_result **out) DC_WUR;

/* The most statements dc_db_exec_all takes at once. */
#define DC_DB_BATCH_MAX 8

/*
 * One statement of a batch: the caller sets stmt and params (which must live
 * until dc_db_exec_all returns); dc_db_exec_all sets res.
 */
typedef struct {
    const dc_db_stmt_t *stmt;
    const char *const  *params;
    struct pg_result   *res;
} dc_db_call_t;

/*
 * Executes the n statements of calls (1 .. DC_DB_BATCH_MAX, none of the
 * write slots) in one round trip: libpq's pipeline mode sends them all and
 * a sync, the server runs them in order in one implicit transaction, and
 * the first that fails aborts the ones after it. Every wait is bounded as
 * dc_db_exec's: the send, then each result, DB_STATEMENT_TIMEOUT_MS + 1 s
 * from the one before. A connection that breaks is replaced and the whole
 * batch sent again, once (never inside a transaction). Each statement that
 * ran counts in the metrics as dc_db_exec counts it, with the time from the
 * call to its result; those an earlier failure kept from running do not.
 *
 * DC_OK: every res holds a PGRES_TUPLES_OK result. Otherwise the result
 * dc_db_exec would give for the first statement that failed (DC_EQUERY: its
 * res holds its error result), the res of statements after it NULL, and
 * those of statements before it possibly set. Whatever the result, every res
 * that is not NULL is the caller's (dc_db_calls_clear). n out of range or a
 * statement of no set of the handle or of the write slots: a bug, logged,
 * DC_ERROR, nothing sent.
 */
int dc_db_exec_all(dc_db_t *db, dc_db_call_t *calls, size_t n) DC_WUR;

/* PQclears the res of each of the n calls and sets it to NULL. */
void dc_db_calls_clear(dc_db_call_t *calls, size_t n);

/*
 * A statement of the write slots (DC_DB_SLOTS_WRITE ..) is never sent twice:
 * when the connection breaks after it was sent, the server may have
 * committed it, so dc_db_exec answers DC_UNAVAILABLE instead of replaying it
 * on a new connection (reads and the outbox are replayed once).
 *
 * An explicit transaction: dc_db_begin (DC_OK, DC_UNAVAILABLE, DC_ERROR),
 * statements through dc_db_exec, then dc_db_commit or dc_db_rollback.
 * Inside it nothing reconnects: a broken connection or a timeout is
 * DC_UNAVAILABLE and the server rolls back. dc_db_commit: DC_OK (committed)
 * or DC_UNAVAILABLE / DC_ERROR (the outcome is unknown or failed; the
 * transaction is over either way). dc_db_rollback does nothing outside a
 * transaction and closes the connection when ROLLBACK fails.
 */
int  dc_db_begin(dc_db_t *db) DC_WUR;
int  dc_db_commit(dc_db_t *db) DC_WUR;
void dc_db_rollback(dc_db_t *db);

/*
 * SELECT 1, all of it within timeout_ms: the connect when one is needed
 * (and the reconnect when the connection is found broken) included. A
 * probe (this and dc_db_exec_within) that runs out of time does not close
 * the database for the next request: an unanswered query stays on the
 * connection, and the next call takes its answer before it sends its own
 * (a probe waits for it only until timeout_ms after it was asked, a
 * request within its own deadline); a connect that ran out of time closes
 * the database for DB_RETRY_INTERVAL_MS to probes alone. So a slow health
 * check costs the next request nothing once the server answers again.
 * DC_OK (latency_ms set) or DC_UNAVAILABLE.
 */
int dc_db_ping(dc_db_t *db, int timeout_ms, double *latency_ms) DC_WUR;

/*
 * LISTEN on channel after every (re)connect (the invalidator's wake-up).
 * channel must outlive db.
 */
void dc_db_set_listen(dc_db_t *db, const char *channel);

/* Connects now if not connected (within the back-off). DC_OK or DC_UNAVAILABLE. */
int dc_db_ensure(dc_db_t *db) DC_WUR;

/* The connection's socket to poll, or -1 when not connected. */
int dc_db_fd(const dc_db_t *db);

/* Counts successful connects: a change means "reconnected, look again". */
unsigned dc_db_epoch(const dc_db_t *db);

/*
 * Reads what arrived on the socket and discards pending notifications.
 * Returns how many there were, or DC_UNAVAILABLE (connection lost; closed).
 */
int dc_db_take_notifications(dc_db_t *db) DC_WUR;

#endif
