/*
 * Where the time of one request went, for the slow log (php-fpm's
 * request_slowlog_timeout, with the parts a cache needs): reading the
 * request from nginx, Redis, each PostgreSQL statement, rendering the JSON
 * and writing the answer. A request over SLOWLOG_MS is logged once, with
 * its route, organization and these parts, and counted
 * (dashboard_slow_requests_total).
 *
 * A worker works on one request at a time, except the cache lookups of a
 * batch of reads, which share one Redis round trip: the time of that
 * round trip is given to every request of the batch. The modules that
 * measure a part (dc_metrics, for Redis and PostgreSQL, which already time
 * every call; dc_query for rendering) add it to the trace in hand, if
 * any: dc_trace_use says which. No allocation, no lock: a trace is the
 * caller's struct.
 */
#ifndef DC_TRACE_H
#define DC_TRACE_H

#include <stddef.h>
#include <stdint.h>

#define DC_TRACE_STMTS 8 /* statements named in a line; more are summed as "others" */

typedef struct {
    int64_t arrived_ns; /* dc_now_ns() when the request's first record came in */
    int64_t started_ns; /* when it was complete and its work began */
    int64_t redis_ns;   /* Redis calls on its behalf */
    int64_t render_ns;  /* rows → JSON */
    int64_t write_ns;   /* encoding the answer into FastCGI records and queueing it */
    int64_t db_ns;      /* every statement */
    int64_t others_ns;  /* statements past DC_TRACE_STMTS */
    int     nstmts;
    struct {
        int     slot; /* dc_db statement slot */
        int64_t ns;
    } stmts[DC_TRACE_STMTS];
} dc_trace_t;

/* Starts t (zeroed) for a request that arrived at arrived_ns (0: unknown) and is complete now. */
void dc_trace_begin(dc_trace_t *t, int64_t arrived_ns, int64_t started_ns);

/* The trace that measured parts go to from now on; NULL: none. Returns the previous one. */
dc_trace_t *dc_trace_use(dc_trace_t *t);

/* Parts measured by the modules that time them; no-ops without a trace in use. */
void dc_trace_redis(int64_t ns);
void dc_trace_db(int slot, int64_t ns);
void dc_trace_render(int64_t ns);
void dc_trace_write(int64_t ns);

/* Adds what another trace measured (a batch's shared lookups) to t's parts. */
void dc_trace_add(dc_trace_t *t, const dc_trace_t *from);

/*
 * Writes the slow log's fields of t, ended at end_ns, into buf (always
 * NUL-terminated): "total_ms=... fcgi_read_ms=... redis_ms=... pg_ms=...
 * pg=[name:ms,...] render_ms=... write_ms=...". name_of gives a statement
 * slot's name (NULL: "stmt<slot>"). Returns the total in milliseconds.
 */
double dc_trace_format(const dc_trace_t *t, int64_t end_ns, const char *(*name_of)(int slot), char *buf,
                       size_t cap);

#endif
