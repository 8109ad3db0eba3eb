/*
 * A parsed dashboard request and the validation of what reaches it: ids are
 * checked UUIDs folded to lower case before they may reach a cache key, a
 * SQL parameter or a pattern; query values are bounded integers or booleans.
 */
#ifndef DC_REQUEST_H
#define DC_REQUEST_H

#include "dc_core.h"

typedef enum {
    DC_ROUTE_NONE = 0,
    DC_ROUTE_QUERY, /* a dashboard GET, see qtype */
    DC_ROUTE_WRITE, /* an event POST, see wtype */
#define DC_API_ENUM_ROUTE(NAME, ...) DC_ROUTE_##NAME,
    DC_API_SERVICES(DC_API_ENUM_ROUTE) /* the service routes of dc_api.h */
#undef DC_API_ENUM_ROUTE
} dc_route_t;

/* The write endpoints, one per row of DC_API_WRITES (dc_api.h). */
#define DC_API_ENUM_W(NAME, ...) DC_W_##NAME,
typedef enum { DC_API_WRITES(DC_API_ENUM_W) DC_W_COUNT } dc_wtype_t;
#undef DC_API_ENUM_W

#define DC_HOURS_DEFAULT 24
#define DC_HOURS_MAX     168
#define DC_LIMIT_DEFAULT 100
#define DC_LIMIT_MAX     500

typedef struct {
    dc_route_t route;
    dc_qtype_t qtype;
    dc_wtype_t wtype;
    int        head; /* HEAD: headers only */
    int        force_refresh;
    int        hours;                    /* temperature trends */
    int        limit;                    /* audit */
    char       org_id[DC_UUID_LEN + 1];  /* lower case */
    char       unit_id[DC_UUID_LEN + 1]; /* lower case, "" when none */
    char       item_id[DC_UUID_LEN + 1]; /* alert or device of a write, "" when none */
} dc_request_t;

/* What went wrong with a request, ready to become a JSON error response. */
typedef struct {
    int         status;    /* HTTP status */
    const char *code;      /* machine-readable, static */
    const char *allow;     /* Allow header for 405, else NULL */
    const char *challenge; /* WWW-Authenticate header for 401/403, else NULL */
    int         index;     /* element of a batch at fault, or -1 */
    char        message[192];
} dc_error_t;

/* Sets err and returns DC_EINVAL, so callers can `return dc_error_set(...)`. */
int dc_error_set(dc_error_t *err, int status, const char *code, const char *fmt, ...) DC_PRINTF(4, 5);

/*
 * Checks that s[0..n) is a UUID (8-4-4-4-12 hex digits) and writes it in
 * lower case to out (37 bytes). DC_OK or DC_EINVAL.
 */
int dc_request_parse_uuid(const char *s, size_t n, char out[DC_UUID_LEN + 1]) DC_WUR;

/*
 * Applies a query string (without '?', may be NULL) to req, according to
 * req->route and req->qtype, which must be set: the parameters the
 * endpoint's row of dc_api.h accepts. Unknown parameters are
 * ignored, so cache-busting parameters of front ends do no harm; a known one
 * with a bad value, or given twice, is a 400 in err. DC_OK or DC_EINVAL.
 */
int dc_request_parse_query(dc_request_t *req, const char *query, dc_error_t *err) DC_WUR;

#endif
