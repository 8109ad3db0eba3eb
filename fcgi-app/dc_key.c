/* Cache keys from the key columns of dc_api.h. */

#include "dc_key.h"

#include <string.h>

#include "dc_endpoint.h"

int dc_key_build(const dc_request_t *req, char *buf, size_t cap)
{
    const dc_endpoint_t *ep = req->route == DC_ROUTE_QUERY ? dc_endpoint_of(req) : NULL;
    dc_fix_t             f;

    if (ep == NULL || ep->key_parts == DC_KEY_NONE)
        return DC_DECLINED;
    dc_fix_init(&f, buf, cap);
    dc_fix_put(&f, ep->key_prefix, ep->key_prefix_len);
    DC_FIX_LIT(&f, "{");
    dc_fix_str(&f, req->org_id);
    DC_FIX_LIT(&f, "}");
    if ((ep->key_parts & DC_KEY_UNIT) ||
        ((ep->key_parts & DC_KEY_UNIT_IF_GIVEN) && req->unit_id[0] != '\0')) {
        DC_FIX_LIT(&f, ":unit:");
        dc_fix_str(&f, req->unit_id);
    }
    if (ep->key_parts & DC_KEY_HOURS) {
        DC_FIX_LIT(&f, ":hours:");
        dc_fix_uint(&f, (unsigned)req->hours);
    }
    return dc_fix_finish(&f, buf);
}

int dc_key_gen(const char *org_id, dc_qtype_t q, char *buf, size_t cap)
{
    dc_fix_t f;

    if ((unsigned)q >= DC_Q_COUNT || !(DC_QBITS_CACHED & DC_QBIT_OF(q)))
        return DC_ERROR;
    dc_fix_init(&f, buf, cap);
    DC_FIX_LIT(&f, "dashcache:gen:");
    dc_fix_str(&f, dc_qtype_name(q));
    DC_FIX_LIT(&f, ":org:{");
    dc_fix_str(&f, org_id);
    DC_FIX_LIT(&f, "}");
    return dc_fix_finish(&f, buf);
}

int dc_key_epoch(char *buf, size_t cap)
{
    dc_fix_t f;

    dc_fix_init(&f, buf, cap);
    DC_FIX_LIT(&f, "dashcache:epoch");
    return dc_fix_finish(&f, buf);
}

int dc_key_lease(const char *key, size_t klen, char *buf, size_t cap)
{
    dc_fix_t f;

    dc_fix_init(&f, buf, cap);
    DC_FIX_LIT(&f, "dashcache:lease:");
    dc_fix_put(&f, key, klen);
    return dc_fix_finish(&f, buf);
}

int dc_key_probe(char *buf, size_t cap)
{
    dc_fix_t f;

    dc_fix_init(&f, buf, cap);
    DC_FIX_LIT(&f, "dashcache:probe");
    return dc_fix_finish(&f, buf);
}

static int tagged(const char *prefix, const char *tag, char *buf, size_t cap);

int dc_key_lsn(const char *org_id, char *buf, size_t cap)
{
    dc_fix_t f;

    if (org_id != NULL)
        return tagged("dashcache:lsn:org:", org_id, buf, cap);
    dc_fix_init(&f, buf, cap);
    DC_FIX_LIT(&f, "dashcache:lsn:all");
    return dc_fix_finish(&f, buf);
}

/* A lower-case id at *p (what dc_request_parse_uuid writes) into out, *p moved past it. */
static int take_id(const char **p, const char *end, char out[DC_UUID_LEN + 1])
{
    if (end - *p < DC_UUID_LEN || dc_request_parse_uuid(*p, DC_UUID_LEN, out) != DC_OK ||
        memcmp(out, *p, DC_UUID_LEN) != 0)
        return DC_EINVAL;
    *p += DC_UUID_LEN;
    return DC_OK;
}

/* Whether [*p, end) starts with lit; *p moved past it when it does. */
static int take_lit(const char **p, const char *end, const char *lit)
{
    size_t n = strlen(lit);

    if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0)
        return 0;
    *p += n;
    return 1;
}

/* The decimal at *p as dc_fix_uint writes it (no sign, no leading zero), within [min, max]. */
static int take_uint(const char **p, const char *end, int min, int max, int *out)
{
    long v = 0;

    if (*p == end || **p < '0' || **p > '9' ||
        (**p == '0' && end - *p > 1 && (*p)[1] >= '0' && (*p)[1] <= '9'))
        return DC_EINVAL;
    for (; *p < end && **p >= '0' && **p <= '9'; (*p)++) {
        v = v * 10 + (**p - '0');
        if (v > max)
            return DC_EINVAL;
    }
    if (v < min)
        return DC_EINVAL;
    *out = (int)v;
    return DC_OK;
}

int dc_key_parse(const char *key, size_t n, dc_request_t *req)
{
    const char           *p = key, *end = key + n;
    size_t                nep;
    const dc_endpoint_t  *all = dc_endpoint_all(&nep), *ep = NULL;
    const dc_param_def_t *hours = dc_endpoint_param(DC_PARAM_HOURS);
    dc_error_t            err;
    char                  again[DC_KEY_MAX];

    /* no key prefix is a prefix of another's: at most one row matches */
    for (size_t i = 0; i < nep && ep == NULL; i++)
        if (all[i].route == DC_ROUTE_QUERY && all[i].key_parts != DC_KEY_NONE && n >= all[i].key_prefix_len &&
            memcmp(key, all[i].key_prefix, all[i].key_prefix_len) == 0)
            ep = &all[i];
    if (ep == NULL)
        return DC_EINVAL;
    memset(req, 0, sizeof(*req));
    req->route = DC_ROUTE_QUERY;
    req->qtype = (dc_qtype_t)ep->type;
    if (dc_request_parse_query(req, NULL, &err) != DC_OK)
        return DC_EINVAL;
    p += ep->key_prefix_len;
    if (!take_lit(&p, end, "{") || take_id(&p, end, req->org_id) != DC_OK || !take_lit(&p, end, "}"))
        return DC_EINVAL;
    if ((ep->key_parts & (DC_KEY_UNIT | DC_KEY_UNIT_IF_GIVEN)) && take_lit(&p, end, ":unit:")) {
        if (take_id(&p, end, req->unit_id) != DC_OK)
            return DC_EINVAL;
    } else if (ep->key_parts & DC_KEY_UNIT) {
        return DC_EINVAL;
    }
    if (ep->key_parts & DC_KEY_HOURS) {
        if (!take_lit(&p, end, ":hours:") || take_uint(&p, end, hours->min, hours->max, &req->hours) != DC_OK)
            return DC_EINVAL;
    }
    if (p != end)
        return DC_EINVAL;
    /* the definition of strict: the request gives back the very same key */
    if (dc_key_build(req, again, sizeof(again)) != (int)n || memcmp(again, key, n) != 0)
        return DC_EINVAL;
    return DC_OK;
}

/* "<prefix>{<tag>}" into buf: a key of the hash slot tag names. */
static int tagged(const char *prefix, const char *tag, char *buf, size_t cap)
{
    dc_fix_t f;

    dc_fix_init(&f, buf, cap);
    dc_fix_str(&f, prefix);
    DC_FIX_LIT(&f, "{");
    dc_fix_str(&f, tag);
    DC_FIX_LIT(&f, "}");
    return dc_fix_finish(&f, buf);
}

int dc_key_epoch_tagged(const char *tag, char *buf, size_t cap)
{
    return tagged("dashcache:epoch:", tag, buf, cap);
}

int dc_key_probe_tagged(const char *tag, char *buf, size_t cap)
{
    return tagged("dashcache:probe:", tag, buf, cap);
}
