/*
 * Fuzz target: path routing and query parsing (dc_router_route), and the
 * cache key built from what it accepts (dc_key_build).
 *
 * Input: byte 0 picks the method, then the path, then optionally a NUL and
 * the query string (no NUL: no query).
 *
 * Invariants: DC_OK ⇒ the ids it filled are 36-character lower-case UUIDs
 * (organization always, except for ingest and the service routes), the
 * parameters are within their bounds, and a cacheable request's key starts
 * with dashboard:<query type>:, has no glob character (* ? [ ] \), no white
 * space or control character, and exactly one org: segment, holding the
 * request's organization. DC_EINVAL ⇒ a 400, 404 or 405 with a code, a
 * terminated message, and an Allow header exactly on the 405.
 */
#include "dc_key.h"
#include "dc_router.h"
#include "fuzz.h"

static const char *const methods[] = { "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "get", "" };

static void check_key(const dc_request_t *req)
{
    char key[DC_KEY_MAX], prefix[64], org_seg[48];
    int  n = dc_key_build(req, key, sizeof(key));

    if (n == DC_DECLINED) {
        FUZZ_CHECK(req->route != DC_ROUTE_QUERY || req->qtype == DC_Q_AUDIT, "query %d not cached",
                   req->qtype);
        return;
    }
    FUZZ_CHECK(n > 0 && (size_t)n == strlen(key), "key length %d for \"%s\"", n, key);
    snprintf(prefix, sizeof(prefix), "dashboard:%s:", dc_qtype_name(req->qtype));
    FUZZ_CHECK(strncmp(key, prefix, strlen(prefix)) == 0, "key \"%s\" outside %s", key, prefix);
    FUZZ_CHECK(strpbrk(key, "*?[]\\") == NULL, "glob character in key \"%s\"", key);
    for (const char *p = key; *p; p++)
        FUZZ_CHECK(*p > ' ' && *p < 0x7f, "byte 0x%02x in key \"%s\"", (unsigned char)*p, key);
    FUZZ_CHECK(fuzz_count(key, ":org:") == 1, "key \"%s\" has %zu org segments", key,
               fuzz_count(key, ":org:"));
    /* the organization is the key's hash tag: its first {...}, so all its keys share a cluster slot */
    snprintf(org_seg, sizeof(org_seg), ":org:{%s}", req->org_id);
    FUZZ_CHECK(strstr(key, org_seg) != NULL, "key \"%s\" does not name org %s", key, req->org_id);
    FUZZ_CHECK(strchr(key, '{') == strstr(key, org_seg) + 5, "key \"%s\": a { before the org's tag", key);
    if (req->unit_id[0] != '\0')
        FUZZ_CHECK(fuzz_count(key, ":unit:") <= 1, "key \"%s\" has several unit segments", key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dc_request_t req;
    dc_error_t   err;
    const char  *method, *query;
    char        *in, *nul;
    int          rc;

    if (size < 1)
        return 0;
    method = methods[data[0] % DC_ARRAY_LEN(methods)];
    in = fuzz_cstr(data + 1, size - 1);
    nul = memchr(in, '\0', size - 1);
    query = nul != NULL ? nul + 1 : NULL;

    memset(&req, 0x5a, sizeof(req));
    memset(&err, 0, sizeof(err));
    rc = dc_router_route(method, in, query, &req, &err);
    if (rc == DC_OK) {
        FUZZ_CHECK(req.route >= DC_ROUTE_QUERY && req.route <= DC_ROUTE_ADMIN_STATS, "route %d", req.route);
        FUZZ_CHECK(fuzz_terminated(req.org_id, sizeof(req.org_id)) && fuzz_terminated(req.unit_id, 37) &&
                       fuzz_terminated(req.item_id, 37),
                   "unterminated id");
        FUZZ_CHECK(req.org_id[0] == '\0' || fuzz_is_id(req.org_id), "org id \"%s\"", req.org_id);
        FUZZ_CHECK(req.unit_id[0] == '\0' || fuzz_is_id(req.unit_id), "unit id \"%s\"", req.unit_id);
        FUZZ_CHECK(req.item_id[0] == '\0' || fuzz_is_id(req.item_id), "item id \"%s\"", req.item_id);
        FUZZ_CHECK(req.head == 0 || req.head == 1, "head %d", req.head);
        FUZZ_CHECK(req.head == (strcmp(method, "HEAD") == 0), "head %d for %s", req.head, method);
        if (req.route == DC_ROUTE_QUERY) {
            FUZZ_CHECK((unsigned)req.qtype < DC_Q_COUNT, "qtype %d", req.qtype);
            FUZZ_CHECK(strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0, "query by %s", method);
            FUZZ_CHECK(fuzz_is_id(req.org_id), "query without an org id");
            FUZZ_CHECK(req.force_refresh == 0 || req.force_refresh == 1, "forceRefresh %d",
                       req.force_refresh);
            FUZZ_CHECK(req.hours >= 1 && req.hours <= DC_HOURS_MAX, "hours %d", req.hours);
            FUZZ_CHECK(req.limit >= 1 && req.limit <= DC_LIMIT_MAX, "limit %d", req.limit);
            if (req.qtype == DC_Q_TEMPERATURE)
                FUZZ_CHECK(fuzz_is_id(req.unit_id), "trends without a unit id");
            check_key(&req);
        } else if (req.route == DC_ROUTE_WRITE) {
            FUZZ_CHECK((unsigned)req.wtype < DC_W_COUNT, "wtype %d", req.wtype);
            FUZZ_CHECK(strcmp(method, "POST") == 0, "write by %s", method);
            FUZZ_CHECK(req.wtype == DC_W_INGEST || fuzz_is_id(req.org_id), "write without an org id");
            FUZZ_CHECK((req.wtype == DC_W_ALERT_RESOLVE || req.wtype == DC_W_DEVICE_STATUS) ==
                           (req.item_id[0] != '\0'),
                       "item id \"%s\" for write %d", req.item_id, req.wtype);
        } else {
            char key[DC_KEY_MAX];
            FUZZ_CHECK(dc_key_build(&req, key, sizeof(key)) == DC_DECLINED, "service route %d has a key",
                       req.route);
        }
    } else {
        FUZZ_CHECK(rc == DC_EINVAL, "rc %d", rc);
        FUZZ_CHECK(err.status == 400 || err.status == 404 || err.status == 405, "status %d", err.status);
        FUZZ_CHECK(err.code != NULL && err.code[0] != '\0', "no error code");
        FUZZ_CHECK(fuzz_terminated(err.message, sizeof(err.message)) && err.message[0] != '\0', "message");
        FUZZ_CHECK((err.status == 405) == (err.allow != NULL), "Allow %s on %d", err.allow ? err.allow : "-",
                   err.status);
    }
    free(in);
    return 0;
}
