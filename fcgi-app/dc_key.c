/* Cache key construction. */
#include "dc_key.h"

int dc_key_build(const dc_request_t *req, char *buf, size_t cap)
{
    dc_fix_t f;

    if (req->route != DC_ROUTE_QUERY)
        return DC_DECLINED;
    dc_fix_init(&f, buf, cap);
    switch (req->qtype) {
    case DC_Q_STATS:
        DC_FIX_LIT(&f, "dashboard:stats:org:");
        break;
    case DC_Q_UNITS:
        DC_FIX_LIT(&f, "dashboard:units:status:org:");
        break;
    case DC_Q_ALERTS:
        DC_FIX_LIT(&f, "dashboard:alerts:count:org:");
        break;
    case DC_Q_TEMPERATURE:
        DC_FIX_LIT(&f, "dashboard:temperature:trends:org:");
        break;
    case DC_Q_DEVICES:
        DC_FIX_LIT(&f, "dashboard:devices:online:org:");
        break;
    case DC_Q_COMPLIANCE:
        DC_FIX_LIT(&f, "dashboard:compliance:org:");
        break;
    default:
        return DC_DECLINED;
    }
    dc_fix_str(&f, req->org_id);
    if ((req->qtype == DC_Q_ALERTS && req->unit_id[0] != '\0') || req->qtype == DC_Q_TEMPERATURE) {
        DC_FIX_LIT(&f, ":unit:");
        dc_fix_str(&f, req->unit_id);
    }
    if (req->qtype == DC_Q_TEMPERATURE) {
        DC_FIX_LIT(&f, ":hours:");
        dc_fix_uint(&f, (unsigned)req->hours);
    }
    return dc_fix_finish(&f, buf);
}

int dc_key_gen(const char *org_id, char *buf, size_t cap)
{
    dc_fix_t f;

    dc_fix_init(&f, buf, cap);
    DC_FIX_LIT(&f, "dashcache:gen:org:");
    dc_fix_str(&f, org_id);
    return dc_fix_finish(&f, buf);
}
