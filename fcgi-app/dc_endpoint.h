/*
 * The rows of dc_api.h, expanded once into a const array: what the router,
 * the parameter parser, the key builder, the configuration and the dispatch
 * of reads and writes look up. Nothing here is mutable; every pointer is
 * static.
 */
#ifndef DC_ENDPOINT_H
#define DC_ENDPOINT_H

#include "dc_metrics.h"
#include "dc_query.h"
#include "dc_query_write.h"
#include "dc_request.h"
#include "dc_view.h"

typedef struct {
    const char *method; /* "GET" (HEAD too) or "POST" */
    const char *label;
    const char *path; /* pattern: literal segments, {org}, {unit}, {alert}, {device} */

    /* reads */
    const char *key_prefix; /* "dashboard:<label><key_rest>:org:" */
    size_t      key_prefix_len;
    const char *ttl_var; /* or NULL */
    dc_fetch_fn fetch;
    dc_view_fn  view;

    /* writes */
    dc_write_fn write;
    long        body_max; /* bytes of body it takes: 413 beyond */

    dc_route_t  route;     /* DC_ROUTE_QUERY or DC_ROUTE_WRITE */
    int         type;      /* dc_qtype_t or dc_wtype_t */
    dc_mroute_t mroute;    /* route label of the metrics */
    unsigned    key_parts; /* reads: DC_KEY_*; DC_KEY_NONE: never cached */
    unsigned    params;    /* reads: DC_PARAM_BIT(...) accepted */
    unsigned    scope;     /* DC_SCOPE_* the caller's token must hold */
} dc_endpoint_t;

/* Every endpoint, reads first, in the order of dc_api.h; *n set to their number. */
const dc_endpoint_t *dc_endpoint_all(size_t *n);

/* The row of a query or write type; NULL when out of range. */
const dc_endpoint_t *dc_endpoint_query(dc_qtype_t q);
const dc_endpoint_t *dc_endpoint_write(dc_wtype_t w);

/* The row a routed request belongs to (route QUERY or WRITE), else NULL. */
const dc_endpoint_t *dc_endpoint_of(const dc_request_t *req);

/*
 * The change of DC_API_CHANGES whose kind is kind[0..n) (a cache_outbox
 * row's); DC_CHANGE_OTHER for NULL or a kind no row names.
 */
dc_change_t dc_endpoint_change(const char *kind, size_t n);

/*
 * The cached query types (a DC_QBIT mask) whose answers read what changes
 * (a DC_CHANGE_BIT mask) names; 0 for 0.
 */
unsigned dc_endpoint_change_queries(unsigned changes);

/* The cached query type whose label is label[0..n), or DC_Q_COUNT when none is. */
dc_qtype_t dc_endpoint_cached_query(const char *label, size_t n);

/* A service route of DC_API_SERVICES. */
typedef struct {
    const char *path;
    dc_route_t  route;
    dc_mroute_t mroute;
    unsigned    scope; /* DC_SCOPE_* a caller's token must hold; 0: none */
} dc_service_t;

/* The service route at exactly path, or NULL. */
const dc_service_t *dc_endpoint_service(const char *path);

/* The service row of route r, or NULL (an API route or none). */
const dc_service_t *dc_endpoint_service_of(dc_route_t r);

/* One query parameter, from DC_API_PARAMS. */
typedef enum { DC_PK_BOOL, DC_PK_INT, DC_PK_UUID } dc_param_kind_t;

typedef struct {
    const char     *name;
    size_t          len;
    size_t          offset; /* of its field in dc_request_t */
    const char     *code;
    const char     *message; /* NULL for DC_PK_INT: made from the bounds */
    dc_param_kind_t kind;
    int             min, max, def;
} dc_param_def_t;

/* The definition of parameter p (p < DC_PARAM_COUNT). */
const dc_param_def_t *dc_endpoint_param(dc_param_t p);

#endif
