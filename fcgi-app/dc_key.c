/* Cache key construction. */
#include "dc_key.h"

#include <stdio.h>

int dc_key_build(const dc_request_t *req, char *buf, size_t cap)
{
    int n;

    if (req->route != DC_ROUTE_QUERY)
        return DC_DECLINED;

    switch (req->qtype) {
    case DC_Q_STATS:
        n = snprintf(buf, cap, "dashboard:stats:org:%s", req->org_id);
        break;
    case DC_Q_UNITS:
        n = snprintf(buf, cap, "dashboard:units:status:org:%s", req->org_id);
        break;
    case DC_Q_ALERTS:
        if (req->unit_id[0] != '\0')
            n = snprintf(buf, cap, "dashboard:alerts:count:org:%s:unit:%s", req->org_id, req->unit_id);
        else
            n = snprintf(buf, cap, "dashboard:alerts:count:org:%s", req->org_id);
        break;
    case DC_Q_TEMPERATURE:
        n = snprintf(buf, cap, "dashboard:temperature:trends:org:%s:unit:%s:hours:%d", req->org_id,
                     req->unit_id, req->hours);
        break;
    case DC_Q_DEVICES:
        n = snprintf(buf, cap, "dashboard:devices:online:org:%s", req->org_id);
        break;
    case DC_Q_COMPLIANCE:
        n = snprintf(buf, cap, "dashboard:compliance:org:%s", req->org_id);
        break;
    default:
        return DC_DECLINED;
    }
    if (n < 0 || (size_t)n >= cap)
        return DC_ERROR;
    return n;
}

int dc_key_gen(const char *org_id, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "dashcache:gen:org:%s", org_id);
    return n < 0 || (size_t)n >= cap ? DC_ERROR : n;
}
