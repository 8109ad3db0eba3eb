/*
 * Fuzz target: JSON request bodies of every write endpoint (dc_body_parse).
 *
 * Input: byte 0 picks the write type, byte 1 the Content-Type, the rest is
 * the body, passed with its length and nothing after it (a read past the
 * end is an ASan report). One dc_write_t is reused from input to input, as
 * a worker reuses it from request to request.
 *
 * Invariants: DC_OK ⇒ ingest: 1..1000 readings and three PostgreSQL array
 * literals of exactly that many elements: lower-case UUIDs, temperatures
 * printed with two decimals within -100..100, NULL or a quoted RFC 3339
 * time; alert: a lower-case unitId, a kind of 1..64 of [a-z0-9_.-], a
 * message of at most 500 bytes, with no NUL; device status: online is 0
 * or 1. DC_OK ⇒ a JSON Content-Type, and (but for resolve, whose body may
 * be empty) a body that is RFC 8259 JSON (dc_json_is_valid). Without a
 * JSON Content-Type ⇒ 415, for every write, resolve included. DC_EINVAL ⇒
 * 400, 413 or 415 with a code, a terminated message and an index of -1 or
 * of an element of the batch.
 */
#include <json.h>

#include "dc_body.h"
#include "dc_json.h"
#include "fuzz.h"

static const char *const content_types[] = {
    "application/json", "application/json; charset=utf-8",   "APPLICATION/JSON",  NULL,
    "text/plain",       "application/x-www-form-urlencoded", "application/jsonx", "",
};

static dc_write_t w;

/* Splits a literal "{a,b,c}" and checks each element; returns the count. */
static size_t elements(const char *lit, int (*ok)(const char *, size_t), const char *what)
{
    size_t n = 0, len = strlen(lit);
    FUZZ_CHECK(len >= 2 && lit[0] == '{' && lit[len - 1] == '}', "%s literal \"%s\"", what, lit);
    for (const char *p = lit + 1; p < lit + len - 1;) {
        const char *c = memchr(p, ',', (size_t)(lit + len - 1 - p));
        size_t      k = (size_t)((c ? c : lit + len - 1) - p);
        FUZZ_CHECK(ok(p, k), "%s element %zu \"%.*s\"", what, n, (int)k, p);
        n++;
        p += k + 1;
    }
    return n;
}

static int ok_device(const char *s, size_t n)
{
    return fuzz_is_uuid(s, n, 1);
}

static int ok_temp(const char *s, size_t n)
{
    char   buf[16], *end;
    double t;
    if (n == 0 || n >= sizeof(buf))
        return 0;
    memcpy(buf, s, n);
    buf[n] = '\0';
    t = strtod(buf, &end);
    return *end == '\0' && t >= -100.0 && t <= 100.0 && n > 3 && buf[n - 3] == '.';
}

static int ok_time(const char *s, size_t n)
{
    char buf[64];
    if (n == 4 && memcmp(s, "NULL", 4) == 0)
        return 1;
    if (n < 3 || n - 2 >= sizeof(buf) || s[0] != '"' || s[n - 1] != '"')
        return 0;
    memcpy(buf, s + 1, n - 2);
    buf[n - 2] = '\0';
    return strpbrk(buf, "\",{}\\") == NULL && dc_body_is_timestamp(buf);
}

static void check_ok(dc_wtype_t t, const char *ct, const char *body, size_t len)
{
    FUZZ_CHECK(dc_body_is_json(ct), "accepted Content-Type %s", ct ? ct : "(none)");
    if (t != DC_W_ALERT_RESOLVE) {
        char *copy = fuzz_cstr((const uint8_t *)body, len);
        FUZZ_CHECK(dc_json_is_valid(copy), "accepted a body that is not RFC 8259 JSON");
        free(copy);
    }
    switch (t) {
    case DC_W_INGEST:
        FUZZ_CHECK(w.n >= 1 && w.n <= DC_INGEST_MAX, "%zu readings", w.n);
        FUZZ_CHECK(elements(w.devices.data, ok_device, "device") == w.n, "device count");
        FUZZ_CHECK(elements(w.temps.data, ok_temp, "temperature") == w.n, "temperature count");
        FUZZ_CHECK(elements(w.times.data, ok_time, "time") == w.n, "time count");
        break;
    case DC_W_ALERT_CREATE: {
        size_t k = strnlen(w.alert.kind, sizeof(w.alert.kind));
        FUZZ_CHECK(fuzz_is_id(w.alert.unit_id), "unitId \"%.37s\"", w.alert.unit_id);
        FUZZ_CHECK(k >= 1 && k <= DC_KIND_MAX &&
                       strspn(w.alert.kind, "abcdefghijklmnopqrstuvwxyz0123456789_.-") == k,
                   "kind \"%.65s\"", w.alert.kind);
        FUZZ_CHECK(fuzz_terminated(w.alert.message, sizeof(w.alert.message)), "message unterminated");
        {
            json_object *o = json_tokener_parse(fuzz_terminated(body, len) ? body : "null"), *m;
            if (o != NULL && json_object_object_get_ex(o, "message", &m))
                FUZZ_CHECK((size_t)json_object_get_string_len(m) == strlen(w.alert.message),
                           "message with a NUL accepted and cut to \"%s\"", w.alert.message);
            json_object_put(o);
        }
        break;
    }
    case DC_W_DEVICE_STATUS:
        FUZZ_CHECK(w.online == 0 || w.online == 1, "online %d", w.online);
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dc_request_t req;
    dc_error_t   err;
    const char  *ct;
    char        *body;
    int          rc;

    if (size < 2)
        return 0;
    memset(&req, 0, sizeof(req));
    req.route = DC_ROUTE_WRITE;
    req.wtype = (dc_wtype_t)(data[0] % DC_W_COUNT);
    ct = content_types[data[1] % DC_ARRAY_LEN(content_types)];
    body = fuzz_exact(data + 2, size - 2);
    memset(&err, 0, sizeof(err));
    err.index = -1;

    rc = dc_body_parse(&req, ct, body, size - 2, &w, &err);
    if (rc == DC_OK) {
        check_ok(req.wtype, ct, body, size - 2);
    } else {
        FUZZ_CHECK(rc == DC_EINVAL, "rc %d", rc);
        FUZZ_CHECK(err.status == 400 || err.status == 413 || err.status == 415, "status %d", err.status);
        FUZZ_CHECK((err.status == 415) == !dc_body_is_json(ct), "status %d for Content-Type %s", err.status,
                   ct ? ct : "(none)");
        FUZZ_CHECK(err.code != NULL && err.code[0] != '\0', "no code");
        FUZZ_CHECK(fuzz_terminated(err.message, sizeof(err.message)) && err.message[0] != '\0', "message");
        FUZZ_CHECK(err.index >= -1 && err.index < DC_INGEST_MAX, "index %d", err.index);
    }
    free(body);
    return 0;
}
