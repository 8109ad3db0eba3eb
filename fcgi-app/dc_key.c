/* Cache keys from the key columns of dc_api.h. */

#include "dc_key.h"

#include "dc_endpoint.h"

int dc_key_build(const dc_request_t *req, char *buf, size_t cap)
{
    const dc_endpoint_t *ep = req->route == DC_ROUTE_QUERY ? dc_endpoint_of(req) : NULL;
    dc_fix_t             f;

    if (ep == NULL || ep->key_parts == DC_KEY_NONE)
        return DC_DECLINED;
    dc_fix_init(&f, buf, cap);
    dc_fix_put(&f, ep->key_prefix, ep->key_prefix_len);
    dc_fix_str(&f, req->org_id);
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
    DC_FIX_LIT(&f, ":org:");
    dc_fix_str(&f, org_id);
    return dc_fix_finish(&f, buf);
}

int dc_key_epoch(char *buf, size_t cap)
{
    dc_fix_t f;

    dc_fix_init(&f, buf, cap);
    DC_FIX_LIT(&f, "dashcache:epoch");
    return dc_fix_finish(&f, buf);
}

int dc_key_probe(char *buf, size_t cap)
{
    dc_fix_t f;

    dc_fix_init(&f, buf, cap);
    DC_FIX_LIT(&f, "dashcache:probe");
    return dc_fix_finish(&f, buf);
}
