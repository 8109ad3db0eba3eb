/* The URL table of the dashboard API. */
#include "dc_router.h"

#include <string.h>

#define ORGS_PREFIX      "/api/dashboard/orgs/"
#define INGEST_PATH      "/api/ingest/readings"
#define ADMIN_STATS_PATH "/api/admin/cache/stats"
#define ALLOW_READ       "GET, HEAD"
#define ALLOW_WRITE      "POST"

/*
 * Shapes below /api/dashboard/orgs/{orgId}/. "*" stands for the unit id of
 * a read, the alert or device id of a write.
 */
typedef struct {
    const char *suffix;
    dc_route_t  route;
    int         type;      /* dc_qtype_t or dc_wtype_t */
    const char *wild_name; /* what "*" is, for error messages */
} shape_t;

static const shape_t shapes[] = {
    { "stats", DC_ROUTE_QUERY, DC_Q_STATS, NULL },
    { "units/status", DC_ROUTE_QUERY, DC_Q_UNITS, NULL },
    { "alerts/count", DC_ROUTE_QUERY, DC_Q_ALERTS, NULL },
    { "units/*/temperature/trends", DC_ROUTE_QUERY, DC_Q_TEMPERATURE, "unit id" },
    { "devices/online", DC_ROUTE_QUERY, DC_Q_DEVICES, NULL },
    { "compliance", DC_ROUTE_QUERY, DC_Q_COMPLIANCE, NULL },
    { "audit", DC_ROUTE_QUERY, DC_Q_AUDIT, NULL },
    { "alerts", DC_ROUTE_WRITE, DC_W_ALERT_CREATE, NULL },
    { "alerts/*/resolve", DC_ROUTE_WRITE, DC_W_ALERT_RESOLVE, "alert id" },
    { "devices/*/status", DC_ROUTE_WRITE, DC_W_DEVICE_STATUS, "device id" },
};

/*
 * Matches rest against a shape; a "*" segment matches any one non-empty
 * segment whose bounds are returned in wild/wild_len.
 */
static int match(const char *shape, const char *rest, const char **wild, size_t *wild_len)
{
    const char *s = shape, *r = rest;

    *wild = NULL;
    *wild_len = 0;
    while (*s != '\0') {
        if (*s == '*') {
            const char *slash = strchr(r, '/');
            size_t      n = slash ? (size_t)(slash - r) : strlen(r);
            if (n == 0)
                return 0;
            *wild = r;
            *wild_len = n;
            r += n;
            s++;
            continue;
        }
        if (*s != *r)
            return 0;
        s++;
        r++;
    }
    return *r == '\0';
}

static int method_ok(const char *method, int *head)
{
    *head = strcmp(method, "HEAD") == 0;
    return *head || strcmp(method, "GET") == 0;
}

int dc_router_route(const char *method, const char *path, const char *query, dc_request_t *req,
                    dc_error_t *err)
{
    const char    *rest, *slash, *wild = NULL;
    size_t         wild_len = 0;
    const shape_t *found = NULL;

    memset(req, 0, sizeof(*req));

    if (strcmp(path, "/health") == 0 || strcmp(path, "/metrics") == 0 ||
        strcmp(path, ADMIN_STATS_PATH) == 0) {
        req->route = path[1] == 'h'   ? DC_ROUTE_HEALTH
                     : path[1] == 'm' ? DC_ROUTE_METRICS
                                      : DC_ROUTE_ADMIN_STATS;
        if (!method_ok(method, &req->head))
            goto not_allowed;
        return DC_OK;
    }

    if (strcmp(path, INGEST_PATH) == 0) {
        req->route = DC_ROUTE_WRITE;
        req->wtype = DC_W_INGEST;
        if (strcmp(method, "POST") != 0)
            goto not_allowed;
        return DC_OK;
    }

    if (strncmp(path, ORGS_PREFIX, sizeof(ORGS_PREFIX) - 1) != 0)
        goto not_found;
    rest = path + sizeof(ORGS_PREFIX) - 1;
    slash = strchr(rest, '/');
    if (slash == NULL || slash == rest)
        goto not_found;

    for (size_t i = 0; i < DC_ARRAY_LEN(shapes); i++) {
        if (match(shapes[i].suffix, slash + 1, &wild, &wild_len)) {
            found = &shapes[i];
            break;
        }
    }
    if (found == NULL)
        goto not_found;

    req->route = found->route;
    if (found->route == DC_ROUTE_WRITE) {
        req->wtype = (dc_wtype_t)found->type;
        if (strcmp(method, "POST") != 0)
            goto not_allowed;
    } else {
        req->qtype = (dc_qtype_t)found->type;
        if (!method_ok(method, &req->head))
            goto not_allowed;
    }

    if (dc_request_parse_uuid(rest, (size_t)(slash - rest), req->org_id) != DC_OK)
        return dc_error_set(err, 400, "invalid_id", "organization id must be a UUID");
    if (dc_request_parse_query(req, query, err) != DC_OK)
        return DC_EINVAL;
    if (wild != NULL) {
        /* the path's unit id wins over any unitId parameter; only trends has one */
        char *dst = found->route == DC_ROUTE_QUERY ? req->unit_id : req->item_id;
        if (dc_request_parse_uuid(wild, wild_len, dst) != DC_OK)
            return dc_error_set(err, 400, "invalid_id", "%s must be a UUID", found->wild_name);
    }
    return DC_OK;

not_found:
    return dc_error_set(err, 404, "not_found", "no such endpoint");

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
