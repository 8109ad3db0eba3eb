/* dc_api.h expanded into rows. */
#include "dc_endpoint.h"

#include "dc_body.h"

#include <stddef.h>
#include <string.h>

/* the arguments are literals and names pasted into initializers; string concatenation forbids parentheses */
/* NOLINTBEGIN(bugprone-macro-parentheses) */
#define QUERY_ROW(NAME, method_, label_, path_, scope_, key_rest, key_parts_, ttl_var_, params_, fetch_, \
                  view_)                                                                                 \
    {                                                                                                    \
        .route = DC_ROUTE_QUERY,                                                                         \
        .type = DC_Q_##NAME,                                                                             \
        .mroute = DC_MR_##NAME,                                                                          \
        .method = method_,                                                                               \
        .label = label_,                                                                                 \
        .path = path_,                                                                                   \
        .scope = scope_,                                                                                 \
        .key_prefix = "dashboard:" label_ key_rest ":org:",                                              \
        .key_prefix_len = sizeof("dashboard:" label_ key_rest ":org:") - 1,                              \
        .key_parts = key_parts_,                                                                         \
        .ttl_var = ttl_var_,                                                                             \
        .params = params_,                                                                               \
        .fetch = fetch_,                                                                                 \
        .view = view_,                                                                                   \
    },

#define WRITE_ROW(NAME, method_, label_, path_, scope_, body_max_, write_) \
    {                                                                      \
        .route = DC_ROUTE_WRITE,                                           \
        .type = DC_W_##NAME,                                               \
        .mroute = DC_MR_##NAME,                                            \
        .method = method_,                                                 \
        .label = label_,                                                   \
        .path = path_,                                                     \
        .scope = scope_,                                                   \
        .body_max = body_max_,                                             \
        .write = write_,                                                   \
    },

/* expanded from the same lists as dc_qtype_t and dc_wtype_t: row q is query type q, row DC_Q_COUNT + w write w */
static const dc_endpoint_t endpoints[] = { DC_API_QUERIES(QUERY_ROW) DC_API_WRITES(WRITE_ROW) };
_Static_assert(DC_ARRAY_LEN(endpoints) == DC_Q_COUNT + DC_W_COUNT, "one row per query and write type");

#define PARAM_ROW(NAME, name_, kind_, field, min_, max_, def_, code_, message_) \
    [DC_PARAM_##NAME] = {                                                       \
        .name = name_,                                                          \
        .len = sizeof(name_) - 1,                                               \
        .kind = kind_,                                                          \
        .offset = offsetof(dc_request_t, field),                                \
        .min = min_,                                                            \
        .max = max_,                                                            \
        .def = def_,                                                            \
        .code = code_,                                                          \
        .message = message_,                                                    \
    },

static const dc_param_def_t params[DC_PARAM_COUNT] = { DC_API_PARAMS(PARAM_ROW) };
/* NOLINTEND(bugprone-macro-parentheses) */

const dc_endpoint_t *dc_endpoint_all(size_t *n)
{
    *n = DC_ARRAY_LEN(endpoints);
    return endpoints;
}

const dc_endpoint_t *dc_endpoint_query(dc_qtype_t q)
{
    return (unsigned)q < DC_Q_COUNT ? &endpoints[q] : NULL;
}

const dc_endpoint_t *dc_endpoint_write(dc_wtype_t w)
{
    return (unsigned)w < DC_W_COUNT ? &endpoints[DC_Q_COUNT + w] : NULL;
}

const dc_endpoint_t *dc_endpoint_of(const dc_request_t *req)
{
    switch (req->route) {
    case DC_ROUTE_QUERY:
        return dc_endpoint_query(req->qtype);
    case DC_ROUTE_WRITE:
        return dc_endpoint_write(req->wtype);
    default:
        return NULL;
    }
}

#define CHANGE_ROW(NAME, kind_, queries_) [DC_CHANGE_##NAME] = { kind_, sizeof(kind_) - 1, queries_ },
static const struct {
    const char *kind;
    size_t      len;
    unsigned    queries;
} changes[DC_CHANGE_COUNT] = { DC_API_CHANGES(CHANGE_ROW) };
#undef CHANGE_ROW
_Static_assert(DC_Q_COUNT <= 32 && DC_CHANGE_COUNT <= 32,
               "masks of query types and of changes fit an unsigned");

dc_change_t dc_endpoint_change(const char *kind, size_t n)
{
    for (size_t i = 0; kind != NULL && i < DC_CHANGE_OTHER; i++)
        if (changes[i].len == n && memcmp(changes[i].kind, kind, n) == 0)
            return (dc_change_t)i;
    return DC_CHANGE_OTHER;
}

unsigned dc_endpoint_change_queries(unsigned bits)
{
    unsigned q = 0;

    for (size_t i = 0; i < DC_CHANGE_COUNT; i++)
        if (bits & (1u << i))
            q |= changes[i].queries;
    return q;
}

dc_qtype_t dc_endpoint_cached_query(const char *label, size_t n)
{
    for (size_t q = 0; q < DC_Q_COUNT; q++)
        if ((DC_QBITS_CACHED & (1u << q)) && strlen(endpoints[q].label) == n &&
            memcmp(endpoints[q].label, label, n) == 0)
            return (dc_qtype_t)q;
    return DC_Q_COUNT;
}

/* NOLINTBEGIN(bugprone-macro-parentheses): as above */
#define SERVICE_ROW(NAME, label_, path_, scope_) \
    { .path = path_, .route = DC_ROUTE_##NAME, .mroute = DC_MR_##NAME, .scope = scope_ },
static const dc_service_t services[] = { DC_API_SERVICES(SERVICE_ROW) };
#undef SERVICE_ROW
/* NOLINTEND(bugprone-macro-parentheses) */

const dc_service_t *dc_endpoint_service(const char *path)
{
    for (size_t i = 0; i < DC_ARRAY_LEN(services); i++)
        if (strcmp(services[i].path, path) == 0)
            return &services[i];
    return NULL;
}

const dc_service_t *dc_endpoint_service_of(dc_route_t r)
{
    for (size_t i = 0; i < DC_ARRAY_LEN(services); i++)
        if (services[i].route == r)
            return &services[i];
    return NULL;
}

const dc_param_def_t *dc_endpoint_param(dc_param_t p)
{
    return &params[p];
}
