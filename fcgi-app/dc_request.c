/* Validation of ids and query parameters. */
#include "dc_request.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dc_endpoint.h"

int dc_error_set(dc_error_t *err, int status, const char *code, const char *fmt, ...)
{
    va_list ap;

    err->status = status;
    err->code = code;
    err->allow = NULL;
    err->challenge = NULL;
    err->index = -1;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return DC_EINVAL;
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
            if (dc_hex_digit((unsigned char)c) < 0)
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
            hi = dc_hex_digit((unsigned char)s[i + 1]);
            lo = dc_hex_digit((unsigned char)s[i + 2]);
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

static int apply(dc_request_t *req, const dc_param_def_t *pm, const char *val)
{
    void *field = (char *)req + pm->offset;

    switch (pm->kind) {
    case DC_PK_BOOL:
        if (strcmp(val, "true") == 0 || strcmp(val, "1") == 0)
            *(int *)field = 1;
        else if (strcmp(val, "false") == 0 || strcmp(val, "0") == 0)
            *(int *)field = 0;
        else
            return DC_EINVAL;
        return DC_OK;
    case DC_PK_INT:
        return parse_bounded(val, pm->min, pm->max, (int *)field);
    default:
        return dc_request_parse_uuid(val, strlen(val), field);
    }
}

static void set_default(dc_request_t *req, const dc_param_def_t *pm)
{
    void *field = (char *)req + pm->offset;

    if (pm->kind == DC_PK_UUID)
        *(char *)field = '\0';
    else
        *(int *)field = pm->def;
}

static int refuse(dc_error_t *err, const dc_param_def_t *pm)
{
    if (pm->message == NULL)
        return dc_error_set(err, 400, pm->code, "%s must be an integer between %d and %d", pm->name, pm->min,
                            pm->max);
    return dc_error_set(err, 400, pm->code, "%s", pm->message);
}

int dc_request_parse_query(dc_request_t *req, const char *query, dc_error_t *err)
{
    const dc_endpoint_t *ep = req->route == DC_ROUTE_QUERY ? dc_endpoint_of(req) : NULL;
    unsigned             allowed = ep != NULL ? ep->params : 0, seen = 0;
    const char          *p = query;

    for (int i = 0; i < DC_PARAM_COUNT; i++)
        set_default(req, dc_endpoint_param((dc_param_t)i));

    while (p != NULL && *p != '\0') {
        const char *amp = strchr(p, '&');
        const char *end = amp ? amp : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        size_t      klen = (size_t)((eq ? eq : end) - p);
        char        val[64];

        for (int i = 0; i < DC_PARAM_COUNT; i++) {
            const dc_param_def_t *pm = dc_endpoint_param((dc_param_t)i);
            if (!(allowed & (1u << i)) || klen != pm->len || memcmp(p, pm->name, klen) != 0)
                continue;
            if (seen & (1u << i))
                return dc_error_set(err, 400, "invalid_parameter", "%s is given more than once", pm->name);
            seen |= 1u << i;
            if (eq == NULL || decode(eq + 1, (size_t)(end - eq - 1), val, sizeof(val)) != DC_OK ||
                apply(req, pm, val) != DC_OK)
                return refuse(err, pm);
        }
        p = amp ? amp + 1 : NULL;
    }
    return DC_OK;
}
