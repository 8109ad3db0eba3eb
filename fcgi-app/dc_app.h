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

#include "dc_config.h"
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
 * dc_app_handle.
 */
void dc_app_handle(dc_app_t *app, const dc_input_t *in, dc_response_t *resp);

/* Releases what the last response held (a cached value). */
void dc_app_done(dc_app_t *app);

#endif
