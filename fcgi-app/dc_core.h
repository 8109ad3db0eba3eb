/*
 * Result codes and small helpers shared by every dashcache module.
 * A function returns DC_OK or a negative code; "not there" (DC_DECLINED) is
 * kept apart from "failed" so that a cache miss is never taken for an error.
 */
#ifndef DC_CORE_H
#define DC_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "dc_api.h"

#define DC_OK          0
#define DC_ERROR       (-1) /* failure of a dependency or the system */
#define DC_DECLINED    (-2) /* not there: cache miss, no such row */
#define DC_EINVAL      (-3) /* input rejected */
#define DC_ENOMEM      (-4)
#define DC_UNAVAILABLE (-5) /* dependency is down or in back-off */
#define DC_EQUERY      (-6) /* the database refused the statement (raised error) */
#define DC_BUSY        (-7) /* someone else is at it (a lease held by another) */

#define DC_UUID_LEN 36

#define DC_WUR          __attribute__((warn_unused_result))
#define DC_PRINTF(f, a) __attribute__((format(printf, f, a)))

#define DC_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/*
 * The detail of a failure, for a start-up message or a log line. One
 * convention: it lives on the object that failed (dc_config_t.err, as
 * hiredis keeps err + errstr on its context); a function with no object of
 * its own (a listen socket, the metrics file, a URL check) takes one as its
 * last argument. Long-lived handles (dc_cache, dc_db, dc_sub) log a failure
 * once where they detect it and return the code. A request that fails
 * validation gets a dc_error_t instead (dc_request.h): that one is an HTTP
 * answer, not a diagnostic.
 */
typedef struct {
    int  code;     /* DC_OK, or the code of the failure */
    char str[256]; /* what failed and why; "" when code is DC_OK */
} dc_err_t;

/* Fills e (NULL is fine) and returns code, so that callers can `return dc_err_set(...)`. */
int dc_err_set(dc_err_t *e, int code, const char *fmt, ...) DC_PRINTF(3, 4);

/*
 * The dashboard query types, one per row of DC_API_QUERIES (dc_api.h) in
 * its order. Their labels are the second segment of the cache key
 * (dashboard:<label>:...) and the query_type label of the metrics.
 */
#define DC_API_ENUM_Q(NAME, ...) DC_Q_##NAME,
typedef enum { DC_API_QUERIES(DC_API_ENUM_Q) DC_Q_COUNT } dc_qtype_t;
#undef DC_API_ENUM_Q

/* The label of q ("stats", "units", ...; a static string), "unknown" out of range. */
const char *dc_qtype_name(dc_qtype_t q);

/* The value of a hex digit (either case), or -1 when c is not one. */
int dc_hex_digit(int c);

/*
 * Text assembled into a fixed buffer from pieces, without printf: the cache
 * keys and the response head of every request are built this way.
 */
typedef struct {
    char *p, *end; /* end: last byte, kept for the NUL */
    int   overflow;
} dc_fix_t;

void dc_fix_init(dc_fix_t *f, char *buf, size_t cap);
void dc_fix_put(dc_fix_t *f, const char *s, size_t n);
void dc_fix_str(dc_fix_t *f, const char *s);
void dc_fix_uint(dc_fix_t *f, unsigned long long v);

/* NUL-terminates; returns the length, or DC_ERROR if it did not fit. */
int dc_fix_finish(dc_fix_t *f, const char *buf);

#define DC_FIX_LIT(f, lit) dc_fix_put((f), (lit), sizeof(lit) - 1)

/* The one monotonic clock (CLOCK_MONOTONIC), in milli-, micro- and nanoseconds. */
int64_t dc_now_ms(void);

/*
 * One wait of a poll (a lease's waiters, the host's shared fills): sleeps us
 * microseconds, whatever signal comes, and returns the next wait: twice as
 * long, at most DC_POLL_WAIT_MAX_US.
 */
#define DC_POLL_WAIT_MAX_US 32000
long    dc_poll_wait(long us);
int64_t dc_now_us(void);
int64_t dc_now_ns(void);

/*
 * The deadline of the request in hand, in dc_now_ms time (0: none). The
 * worker sets it around one request's work (REQUEST_TIMEOUT_MS) and clears
 * it after; every wait for PostgreSQL (dc_db) ends by it, so a request over
 * its time limit gets its answer (a 503) instead of waiting on.
 */
void dc_deadline_set(int64_t deadline_ms);

/* The earlier of deadline_ms and the request's deadline. */
int64_t dc_deadline_cap(int64_t deadline_ms);

#endif
