/*
 * One request's life, independent of FastCGI: route, then cache-aside
 * (Redis, else PostgreSQL and store), or a write (dc_write), or a service
 * route (dc_health). dc_worker feeds it from libfcgi; the integration tests
 * call it directly against real Redis and PostgreSQL. A dc_app_t owns the
 * worker's one Redis and one PostgreSQL connection (reads and writes
 * prepared, not the outbox).
 */
#ifndef DC_APP_H
#define DC_APP_H

#include "dc_cache.h"
#include "dc_config.h"
#include "dc_key.h"
#include "dc_request.h"
#include "dc_response.h"

typedef struct dc_app_s dc_app_t;

/*
 * Per-process state; connects nothing until the first request, but loads
 * the token keys (dc_auth_new), so that a worker started after a reload
 * verifies with the key file as it is then. NULL, logged, when the keys
 * cannot be loaded or on ENOMEM.
 */
dc_app_t *dc_app_new(const dc_config_t *cfg);

/* Closes connections, frees buffers. NULL is fine. */
void dc_app_free(dc_app_t *app);

/*
 * Runs the host's probe of the cache's trustworthiness when it is due
 * (dc_trust_tick). Milliseconds until the next is due, -1 with CACHE=off.
 */
int dc_app_tick(dc_app_t *app);

/* One request as the web server passed it; only read during dc_app_handle. */
typedef struct {
    const char *method;
    const char *path;            /* decoded, without the query */
    const char *query;           /* raw, or NULL */
    const char *content_type;    /* or NULL */
    const char *idempotency_key; /* Idempotency-Key header of a write, or NULL */
    const char *body;            /* request body (writes), or NULL */
    size_t      body_len;
    const char *authorization; /* the Authorization header (HTTP_AUTHORIZATION), or NULL */
    const char *if_none_match; /* the If-None-Match header (HTTP_IF_NONE_MATCH), or NULL */
    /*
     * AUTH_MODE=trusted: the identity nginx established (DASHCACHE_AUTH_SUB,
     * _ORGS, _SCOPE FastCGI params, never HTTP_* client headers), or NULL.
     */
    const char *trusted_sub, *trusted_orgs, *trusted_scope;
} dc_input_t;

/*
 * Handles one request. resp is valid until dc_app_done or the next
 * dc_app_handle. The same as dc_app_start, dc_app_lookup of that one task
 * and dc_app_finish.
 */
void dc_app_handle(dc_app_t *app, const dc_input_t *in, dc_response_t *resp);

/* Releases what the last response of dc_app_handle held (a cached value). */
void dc_app_done(dc_app_t *app);

/*
 * A request in halves, so that a worker can look up the cached answers of
 * several requests in one Redis round trip: dc_app_start routes,
 * authorizes and keys a request; a dashboard read that may be a hit
 * becomes a task waiting for its lookup, anything else is answered at
 * once. Fields are private to dc_app.c.
 */
typedef struct {
    dc_request_t      req;
    char              key[DC_KEY_MAX];
    dc_cache_lookup_t look;          /* its result: the cached answer, or the generation seen */
    const char       *if_none_match; /* the request's, borrowed until it is answered */
    int64_t           arrival_ms;    /* when it was read whole (dc_now_ms): a shared fill must begin after */
} dc_app_task_t;

/*
 * DC_OK: resp is the answer, valid until the next call for this app (it
 * may borrow the app's body buffer). DC_DECLINED: t waits for
 * dc_app_lookup, then dc_app_finish.
 */
int dc_app_start(dc_app_t *app, const dc_input_t *in, dc_app_task_t *t, dc_response_t *resp) DC_WUR;

/* The cache lookups of n waiting tasks, in one round trip. */
void dc_app_lookup(dc_app_t *app, dc_app_task_t *const *ts, size_t n);

/*
 * The answer of a looked-up task: a hit, or the miss path (PostgreSQL, then
 * the store). resp is valid until dc_app_task_done(t) and the next call for
 * this app, whichever comes first.
 */
void dc_app_finish(dc_app_t *app, dc_app_task_t *t, dc_response_t *resp);

/* Releases what a finished task's answer borrowed. Safe on a zeroed task. */
void dc_app_task_done(dc_app_task_t *t);

#endif
