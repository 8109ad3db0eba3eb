/* Validation of ids and query parameters. */
#include "dc_request.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int dc_error_set(dc_error_t *err, int status, const char *code, const char *fmt, ...)
{
    va_list ap;

    err->status = status;
    err->code = code;
    err->allow = NULL;
    err->index = -1;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return DC_EINVAL;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int dc_request_parse_uuid(const char *s, size_t n, char out[DC_UUID_LEN + 1])
{
    if (n != DC_UUID_LEN)
        return DC_EINVAL;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return DC_EINVAL;
            out[i] = c;
        } else {
            if (hexval((unsigned char)c) < 0)
                return DC_EINVAL;
            out[i] = (char)(c >= 'A' && c <= 'F' ? c - 'A' + 'a' : c);
        }
    }
    out[n] = '\0';
    return DC_OK;
}

/* Percent-decodes s[0..n) into out (cap bytes). DC_OK or DC_EINVAL. */
static int decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= n)
                return DC_EINVAL;
            hi = hexval((unsigned char)s[i + 1]);
            lo = hexval((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return DC_EINVAL;
            c = hi * 16 + lo;
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (c == '\0' || o + 1 >= cap)
            return DC_EINVAL;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return DC_OK;
}

static int parse_bounded(const char *v, int min, int max, int *out)
{
    long x = 0;

    if (*v == '\0' || strlen(v) > 6)
        return DC_EINVAL;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9')
            return DC_EINVAL;
        x = x * 10 + (*p - '0');
    }
    if (x < min || x > max)
        return DC_EINVAL;
    *out = (int)x;
    return DC_OK;
}

typedef struct {
    const char *name;
    size_t      len;
    const char *code;
    const char *message;
} param_t;

enum { P_FORCE, P_HOURS, P_LIMIT, P_UNIT, P_COUNT };

static const param_t params[P_COUNT] = {
    [P_FORCE] = { "forceRefresh", 12, "invalid_parameter", "forceRefresh must be true or false" },
    [P_HOURS] = { "hours", 5, "invalid_parameter", "hours must be an integer between 1 and 168" },
    [P_LIMIT] = { "limit", 5, "invalid_parameter", "limit must be an integer between 1 and 500" },
    [P_UNIT] = { "unitId", 6, "invalid_id", "unitId must be a UUID" },
};

static unsigned params_for(const dc_request_t *req)
{
    if (req->route != DC_ROUTE_QUERY)
        return 0;
    switch (req->qtype) {
    case DC_Q_TEMPERATURE:
        return 1u << P_FORCE | 1u << P_HOURS;
    case DC_Q_ALERTS:
        return 1u << P_FORCE | 1u << P_UNIT;
    case DC_Q_AUDIT:
        return 1u << P_LIMIT;
    default:
        return 1u << P_FORCE;
    }
}

static int apply(dc_request_t *req, int which, const char *val)
{
    switch (which) {
    case P_FORCE:
        if (strcmp(val, "true") == 0 || strcmp(val, "1") == 0)
            req->force_refresh = 1;
        else if (strcmp(val, "false") == 0 || strcmp(val, "0") == 0)
            req->force_refresh = 0;
        else
            return DC_EINVAL;
        return DC_OK;
    case P_HOURS:
        return parse_bounded(val, 1, DC_HOURS_MAX, &req->hours);
    case P_LIMIT:
        return parse_bounded(val, 1, DC_LIMIT_MAX, &req->limit);
    default:
        return dc_request_parse_uuid(val, strlen(val), req->unit_id);
    }
}

int dc_request_parse_query(dc_request_t *req, const char *query, dc_error_t *err)
{
    unsigned    allowed = params_for(req), seen = 0;
    const char *p = query;

    req->force_refresh = 0;
    req->hours = DC_HOURS_DEFAULT;
    req->limit = DC_LIMIT_DEFAULT;
    req->unit_id[0] = '\0';

    while (p != NULL && *p != '\0') {
        const char *amp = strchr(p, '&');
        const char *end = amp ? amp : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        size_t      klen = (size_t)((eq ? eq : end) - p);
        char        val[64];

        for (int i = 0; i < P_COUNT; i++) {
            const param_t *pm = &params[i];
            if (!(allowed & (1u << i)) || klen != pm->len || memcmp(p, pm->name, klen) != 0)
                continue;
            if (seen & (1u << i))
                return dc_error_set(err, 400, "invalid_parameter", "%s is given more than once", pm->name);
            seen |= 1u << i;
            if (eq == NULL || decode(eq + 1, (size_t)(end - eq - 1), val, sizeof(val)) != DC_OK ||
                apply(req, i, val) != DC_OK)
                return dc_error_set(err, 400, pm->code, "%s", pm->message);
        }
        p = amp ? amp + 1 : NULL;
    }
    return DC_OK;
}
