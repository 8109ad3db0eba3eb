/* JSON request bodies of the write endpoints. */
#include "dc_body.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <json.h>

#define MAX_DEPTH 8

int dc_body_is_json(const char *ct)
{
    size_t n = sizeof("application/json") - 1;

    if (ct == NULL || strncasecmp(ct, "application/json", n) != 0)
        return 0;
    return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

int dc_body_is_timestamp(const char *s)
{
    static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int              y, mo, d, h, mi, sec, oh, om;
    const char      *p;

    if (strlen(s) < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(s + 11, 2, &h) ||
        s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &sec))
        return 0;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 59)
        return 0;
    if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 0;
    p = s + 19;
    if (*p == '.') {
        int k = 0;
        for (p++; isdigit((unsigned char)*p); p++)
            k++;
        if (k < 1 || k > 6)
            return 0;
    }
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
        return 1;
    if ((*p == '+' || *p == '-') && digits(p + 1, 2, &oh) && p[3] == ':' && digits(p + 4, 2, &om) &&
        p[6] == '\0')
        return oh <= 23 && om <= 59;
    return 0;
}

/* Parses a whole JSON text; NULL with err set when it is not one. */
static json_object *parse(const char *body, size_t len, dc_error_t *err)
{
    json_tokener *tok;
    json_object  *o;
    size_t        used;

    if (len == 0) {
        dc_error_set(err, 400, "invalid_json", "the request body is empty; send a JSON object");
        return NULL;
    }
    if (memchr(body, '\0', len) != NULL) {
        dc_error_set(err, 400, "invalid_json", "the request body contains a NUL byte");
        return NULL;
    }
    tok = json_tokener_new_ex(MAX_DEPTH);
    if (tok == NULL) {
        dc_error_set(err, 500, "out_of_memory", "out of memory");
        return NULL;
    }
    o = json_tokener_parse_ex(tok, body, (int)len);
    used = json_tokener_get_parse_end(tok);
    if (o == NULL || json_tokener_get_error(tok) != json_tokener_success) {
        enum json_tokener_error e = json_tokener_get_error(tok);
        dc_error_set(err, 400, "invalid_json", "the request body is not valid JSON: %s",
                     e == json_tokener_continue || e == json_tokener_success ? "it ends too early"
                                                                             : json_tokener_error_desc(e));
        json_object_put(o);
        o = NULL;
    } else {
        for (; used < len && isspace((unsigned char)body[used]); used++)
            ;
        if (used != len) {
            dc_error_set(err, 400, "invalid_json", "the request body has data after the JSON value");
            json_object_put(o);
            o = NULL;
        }
    }
    json_tokener_free(tok);
    return o;
}

static int fail_at(dc_error_t *err, int index, const char *fmt, ...) DC_PRINTF(3, 4);

static int fail_at(dc_error_t *err, int index, const char *fmt, ...)
{
    char    msg[160];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (index >= 0)
        dc_error_set(err, 400, "invalid_reading", "readings[%d]: %s", index, msg);
    else
        dc_error_set(err, 400, "invalid_body", "%s", msg);
    err->index = index;
    return DC_EINVAL;
}

static int get_uuid(json_object *o, const char *field, char out[DC_UUID_LEN + 1], int index, dc_error_t *err)
{
    json_object *v;
    const char  *s;

    if (!json_object_object_get_ex(o, field, &v) || !json_object_is_type(v, json_type_string))
        return fail_at(err, index, "%s is required and must be a UUID string", field);
    s = json_object_get_string(v);
    if (dc_request_parse_uuid(s, (size_t)json_object_get_string_len(v), out) != DC_OK)
        return fail_at(err, index, "%s must be a UUID", field);
    return DC_OK;
}

static int reading(json_object *o, int index, dc_buf_t *devices, dc_buf_t *temps, dc_buf_t *times,
                   dc_error_t *err)
{
    char         id[DC_UUID_LEN + 1];
    json_object *v;
    double       t;
    const char  *sep = index > 0 ? "," : "";

    if (!json_object_is_type(o, json_type_object))
        return fail_at(err, index, "%s", "each reading must be a JSON object");
    if (get_uuid(o, "deviceId", id, index, err) != DC_OK)
        return DC_EINVAL;
    if (!json_object_object_get_ex(o, "temperature", &v) ||
        !(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)))
        return fail_at(err, index, "%s is required and must be a number", "temperature");
    t = json_object_get_double(v);
    if (!isfinite(t) || t < DC_TEMP_MIN || t > DC_TEMP_MAX)
        return fail_at(err, index, "%s must be between -100 and 100", "temperature");

    if (dc_buf_printf(devices, "%s%s", sep, id) != DC_OK || dc_buf_printf(temps, "%s%.2f", sep, t) != DC_OK)
        goto oom;
    if (json_object_object_get_ex(o, "recordedAt", &v) && !json_object_is_type(v, json_type_null)) {
        if (!json_object_is_type(v, json_type_string) || !dc_body_is_timestamp(json_object_get_string(v)))
            return fail_at(err, index, "%s must be an ISO 8601 date-time such as 2026-11-21T15:04:05Z",
                           "recordedAt");
        if (dc_buf_printf(times, "%s\"%s\"", sep, json_object_get_string(v)) != DC_OK)
            goto oom;
    } else if (dc_buf_printf(times, "%sNULL", sep) != DC_OK) {
        goto oom;
    }
    return DC_OK;
oom:
    dc_error_set(err, 500, "out_of_memory", "out of memory");
    return DC_ENOMEM;
}

int dc_body_ingest(const char *body, size_t len, dc_buf_t *devices, dc_buf_t *temps, dc_buf_t *times,
                   size_t *n, dc_error_t *err)
{
    json_object *root = parse(body, len, err);
    int          rc = DC_OK;

    *n = 0;
    if (root == NULL)
        return DC_EINVAL;
    if (dc_buf_append_str(devices, "{") != DC_OK || dc_buf_append_str(temps, "{") != DC_OK ||
        dc_buf_append_str(times, "{") != DC_OK) {
        rc = dc_error_set(err, 500, "out_of_memory", "out of memory");
        goto done;
    }
    if (json_object_is_type(root, json_type_array)) {
        size_t count = json_object_array_length(root);
        if (count == 0 || count > DC_INGEST_MAX) {
            rc = dc_error_set(err, count == 0 ? 400 : 413, "invalid_body",
                              "send between 1 and %d readings (got %zu)", DC_INGEST_MAX, count);
            goto done;
        }
        for (size_t i = 0; i < count && rc == DC_OK; i++)
            rc = reading(json_object_array_get_idx(root, i), (int)i, devices, temps, times, err);
        *n = count;
    } else if (json_object_is_type(root, json_type_object)) {
        rc = reading(root, 0, devices, temps, times, err);
        *n = 1;
    } else {
        rc = dc_error_set(err, 400, "invalid_body", "send a reading object or an array of them");
    }
    if (rc == DC_OK && (dc_buf_append_str(devices, "}") != DC_OK || dc_buf_append_str(temps, "}") != DC_OK ||
                        dc_buf_append_str(times, "}") != DC_OK))
        rc = dc_error_set(err, 500, "out_of_memory", "out of memory");
done:
    json_object_put(root);
    return rc == DC_OK ? DC_OK : DC_EINVAL;
}

static int get_text(json_object *o, const char *field, char *out, size_t cap, int word, dc_error_t *err)
{
    json_object *v;
    const char  *s;
    size_t       n;

    if (!json_object_object_get_ex(o, field, &v) || !json_object_is_type(v, json_type_string))
        return dc_error_set(err, 400, "invalid_body", "%s is required and must be a string", field);
    s = json_object_get_string(v);
    n = (size_t)json_object_get_string_len(v);
    if (n == 0 || n >= cap)
        return dc_error_set(err, 400, "invalid_body", "%s must have 1 to %zu characters", field, cap - 1);
    for (size_t i = 0; word && i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return dc_error_set(err, 400, "invalid_body", "%s may hold only a-z, 0-9, '_', '.' and '-'",
                                field);
    }
    memcpy(out, s, n);
    out[n] = '\0';
    return DC_OK;
}

int dc_body_alert(const char *body, size_t len, dc_alert_body_t *out, dc_error_t *err)
{
    json_object *root = parse(body, len, err);
    int          rc;

    if (root == NULL)
        return DC_EINVAL;
    if (!json_object_is_type(root, json_type_object))
        rc = dc_error_set(err, 400, "invalid_body", "send a JSON object {\"unitId\",\"kind\",\"message\"}");
    else if ((rc = get_uuid(root, "unitId", out->unit_id, -1, err)) == DC_OK &&
             (rc = get_text(root, "kind", out->kind, sizeof(out->kind), 1, err)) == DC_OK)
        rc = get_text(root, "message", out->message, sizeof(out->message), 0, err);
    json_object_put(root);
    return rc == DC_OK ? DC_OK : DC_EINVAL;
}

int dc_body_device_status(const char *body, size_t len, int *online, dc_error_t *err)
{
    json_object *root = parse(body, len, err), *v;
    int          rc = DC_OK;

    if (root == NULL)
        return DC_EINVAL;
    if (!json_object_is_type(root, json_type_object) || !json_object_object_get_ex(root, "online", &v) ||
        !json_object_is_type(v, json_type_boolean))
        rc = dc_error_set(err, 400, "invalid_body", "send {\"online\": true} or {\"online\": false}");
    else
        *online = json_object_get_boolean(v);
    json_object_put(root);
    return rc;
}

void dc_body_reset(dc_write_t *w)
{
    dc_buf_reset(&w->devices);
    dc_buf_reset(&w->temps);
    dc_buf_reset(&w->times);
    w->n = 0;
    w->online = 0;
    memset(&w->alert, 0, sizeof(w->alert));
}

void dc_body_free(dc_write_t *w)
{
    dc_buf_free(&w->devices);
    dc_buf_free(&w->temps);
    dc_buf_free(&w->times);
}

int dc_body_parse(const dc_request_t *req, const char *content_type, const char *body, size_t len,
                  dc_write_t *w, dc_error_t *err)
{
    dc_body_reset(w);
    if (req->wtype == DC_W_ALERT_RESOLVE)
        return DC_OK; /* no body needed; whatever came is ignored */
    if (!dc_body_is_json(content_type)) {
        dc_error_set(err, 415, "unsupported_media_type", "send the body as Content-Type: application/json");
        return DC_EINVAL;
    }
    switch (req->wtype) {
    case DC_W_INGEST:
        return dc_body_ingest(body, len, &w->devices, &w->temps, &w->times, &w->n, err);
    case DC_W_ALERT_CREATE:
        return dc_body_alert(body, len, &w->alert, err);
    case DC_W_DEVICE_STATUS:
        return dc_body_device_status(body, len, &w->online, err);
    default:
        return dc_error_set(err, 404, "not_found", "no such endpoint");
    }
}
