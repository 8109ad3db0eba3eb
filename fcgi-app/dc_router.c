/*
 * Path and method → endpoint, by the path patterns of dc_api.h. Service
 * routes (/health, /metrics, the admin stats: DC_API_SERVICES) are not API
 * endpoints and are matched first, by their exact path.
 */
#include "dc_router.h"

#include <string.h>

#include "dc_endpoint.h"

#define ALLOW_READ   "GET, HEAD"
#define ALLOW_WRITE  "POST"
#define MAX_CAPTURES 4

/* What a {name} segment of a pattern captures, and where it goes. */
typedef struct {
    const char *name;
    const char *what; /* for error messages */
    size_t      read_offset, write_offset;
} capture_def_t;

static const capture_def_t capture_defs[] = {
    { "{org}", "organization id", offsetof(dc_request_t, org_id), offsetof(dc_request_t, org_id) },
    /* the path's unit id wins over any unitId parameter: it is written after the query */
    { "{unit}", "unit id", offsetof(dc_request_t, unit_id), offsetof(dc_request_t, item_id) },
    { "{alert}", "alert id", offsetof(dc_request_t, item_id), offsetof(dc_request_t, item_id) },
    { "{device}", "device id", offsetof(dc_request_t, item_id), offsetof(dc_request_t, item_id) },
};

typedef struct {
    const capture_def_t *def;
    const char          *s;
    size_t               n;
} capture_t;

static const capture_def_t *capture_def(const char *seg, size_t n)
{
    for (size_t i = 0; i < DC_ARRAY_LEN(capture_defs); i++)
        if (strlen(capture_defs[i].name) == n && memcmp(capture_defs[i].name, seg, n) == 0)
            return &capture_defs[i];
    return NULL;
}

/*
 * Matches path against a pattern segment by segment: a literal segment
 * must be equal, a {name} segment matches any one non-empty segment and is
 * captured. Returns the number of captures, or -1.
 */
static int match(const char *pattern, const char *path, capture_t *caps)
{
    const char *p = pattern, *s = path;
    int         ncaps = 0;

    while (*p != '\0') {
        const char *pend = strchr(p, '/'), *send = strchr(s, '/');
        size_t      pn = pend ? (size_t)(pend - p) : strlen(p);
        size_t      sn = send ? (size_t)(send - s) : strlen(s);

        if ((pend == NULL) != (send == NULL))
            return -1;
        if (pn > 0 && p[0] == '{') {
            if (sn == 0 || ncaps == MAX_CAPTURES)
                return -1;
            caps[ncaps].def = capture_def(p, pn);
            caps[ncaps].s = s;
            caps[ncaps].n = sn;
            if (caps[ncaps].def == NULL)
                return -1;
            ncaps++;
        } else if (pn != sn || memcmp(p, s, pn) != 0) {
            return -1;
        }
        if (pend == NULL)
            return ncaps;
        p = pend + 1;
        s = send + 1;
    }
    return -1;
}

static int method_ok(const char *method, int *head)
{
    *head = strcmp(method, "HEAD") == 0;
    return *head || strcmp(method, "GET") == 0;
}

int dc_router_route(const char *method, const char *path, const char *query, dc_request_t *req,
                    dc_error_t *err)
{
    capture_t            caps[MAX_CAPTURES];
    int                  ncaps = -1;
    size_t               n;
    const dc_endpoint_t *all = dc_endpoint_all(&n), *found = NULL;
    const dc_service_t  *svc = dc_endpoint_service(path);

    memset(req, 0, sizeof(*req));
    if (svc != NULL) {
        req->route = svc->route;
        if (!method_ok(method, &req->head))
            goto not_allowed;
        return DC_OK;
    }

    for (size_t i = 0; i < n && found == NULL; i++)
        if ((ncaps = match(all[i].path, path, caps)) >= 0)
            found = &all[i];
    if (found == NULL)
        return dc_error_set(err, 404, "not_found", "no such endpoint");

    req->route = found->route;
    if (found->route == DC_ROUTE_WRITE) {
        req->wtype = (dc_wtype_t)found->type;
        if (strcmp(method, found->method) != 0)
            goto not_allowed;
    } else {
        req->qtype = (dc_qtype_t)found->type;
        if (!method_ok(method, &req->head))
            goto not_allowed;
    }

    /* the organization first, then the query, then the other ids */
    for (int i = 0; i < ncaps; i++) {
        if (caps[i].def != &capture_defs[0])
            continue;
        if (dc_request_parse_uuid(caps[i].s, caps[i].n, req->org_id) != DC_OK)
            return dc_error_set(err, 400, "invalid_id", "organization id must be a UUID");
    }
    if (dc_request_parse_query(req, query, err) != DC_OK)
        return DC_EINVAL;
    for (int i = 0; i < ncaps; i++) {
        const capture_def_t *d = caps[i].def;
        size_t               off = found->route == DC_ROUTE_QUERY ? d->read_offset : d->write_offset;
        if (d == &capture_defs[0])
            continue;
        if (dc_request_parse_uuid(caps[i].s, caps[i].n, (char *)req + off) != DC_OK)
            return dc_error_set(err, 400, "invalid_id", "%s must be a UUID", d->what);
    }
    return DC_OK;

not_allowed:
    if (req->route == DC_ROUTE_WRITE) {
        dc_error_set(err, 405, "method_not_allowed", "%s is not allowed here; use POST", method);
        err->allow = ALLOW_WRITE;
    } else {
        dc_error_set(err, 405, "method_not_allowed", "%s is not allowed here; use GET or HEAD", method);
        err->allow = ALLOW_READ;
    }
    return DC_EINVAL;
}
