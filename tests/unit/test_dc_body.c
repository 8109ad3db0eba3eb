/*
 * dc_body: write request bodies. Readings one or many, each field checked and
 * a bad element reported by index; alert and device-status bodies; JSON that
 * is malformed, too deep, trailing, or not JSON at all; content types;
 * RFC 3339 timestamps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dc_body.h"

#define DEV  "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
#define DEV2 "7c9e6679-7425-40de-944b-e07fc1f90ae7"

typedef struct {
    dc_buf_t   d, t, ts;
    size_t     n;
    dc_error_t err;
} ingest_t;

static int ingest(const char *json, ingest_t *in)
{
    memset(in, 0, sizeof(*in));
    return dc_body_ingest(json, strlen(json), &in->d, &in->t, &in->ts, &in->n, &in->err);
}

static void ingest_free(ingest_t *in)
{
    dc_buf_free(&in->d);
    dc_buf_free(&in->t);
    dc_buf_free(&in->ts);
}

static void test_one_reading(void **state)
{
    ingest_t in;
    (void)state;
    assert_int_equal(ingest("{\"deviceId\":\"" DEV "\",\"temperature\":4.5}", &in), DC_OK);
    assert_int_equal(in.n, 1);
    assert_string_equal(in.d.data, "{" DEV "}");
    assert_string_equal(in.t.data, "{4.50}");
    assert_string_equal(in.ts.data, "{NULL}");
    ingest_free(&in);
}

static void test_many_readings_with_times(void **state)
{
    ingest_t in;
    (void)state;
    assert_int_equal(ingest("[{\"deviceId\":\"" DEV
                            "\",\"temperature\":-20,\"recordedAt\":\"2026-11-21T15:04:05Z\"},"
                            " {\"deviceId\":\"6BA7B810-9DAD-11D1-80B4-00C04FD430C8\",\"temperature\":8.25,"
                            "\"recordedAt\":\"2026-11-21T15:04:05.123+02:00\"},"
                            " {\"deviceId\":\"" DEV2 "\",\"temperature\":0,\"recordedAt\":null}]",
                            &in),
                     DC_OK);
    assert_int_equal(in.n, 3);
    assert_string_equal(in.d.data, "{" DEV "," DEV "," DEV2 "}");
    assert_string_equal(in.t.data, "{-20.00,8.25,0.00}");
    assert_string_equal(in.ts.data, "{\"2026-11-21T15:04:05Z\",\"2026-11-21T15:04:05.123+02:00\",NULL}");
    ingest_free(&in);
}

static void test_bad_reading_reported_by_index(void **state)
{
    static const struct {
        const char *json;
        int         index;
        const char *needle;
    } cases[] = {
        { "[{\"deviceId\":\"" DEV "\",\"temperature\":1},{\"deviceId\":\"x\",\"temperature\":1}]", 1,
          "deviceId" },
        { "[{\"deviceId\":\"" DEV "\",\"temperature\":1},{\"temperature\":1}]", 1, "deviceId" },
        { "[{\"deviceId\":\"" DEV "\",\"temperature\":\"4\"}]", 0, "temperature" },
        { "[{\"deviceId\":\"" DEV "\"}]", 0, "temperature" },
        { "[{\"deviceId\":\"" DEV "\",\"temperature\":101}]", 0, "between" },
        { "[{\"deviceId\":\"" DEV "\",\"temperature\":-100.5}]", 0, "between" },
        { "[{\"deviceId\":\"" DEV "\",\"temperature\":1},{\"deviceId\":\"" DEV "\",\"temperature\":1},"
          "{\"deviceId\":\"" DEV "\",\"temperature\":1,\"recordedAt\":\"yesterday\"}]",
          2, "recordedAt" },
        { "[{\"deviceId\":\"" DEV "\",\"temperature\":1,\"recordedAt\":12}]", 0, "recordedAt" },
        { "[{\"deviceId\":\"" DEV "\",\"temperature\":1}, 5]", 1, "object" },
        { "[{\"deviceId\":\"" DEV "*\",\"temperature\":1}]", 0, "deviceId" },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ingest_t in;
        if (ingest(cases[i].json, &in) != DC_EINVAL)
            fail_msg("accepted: %s", cases[i].json);
        assert_int_equal(in.err.status, 400);
        assert_string_equal(in.err.code, "invalid_reading");
        assert_int_equal(in.err.index, cases[i].index);
        assert_non_null(strstr(in.err.message, cases[i].needle));
        ingest_free(&in);
    }
}

static void test_batch_size_limits(void **state)
{
    size_t   cap = (DC_INGEST_MAX + 2) * 80;
    char    *json = malloc(cap);
    size_t   n = 0;
    ingest_t in;
    (void)state;

    assert_int_equal(ingest("[]", &in), DC_EINVAL);
    assert_int_equal(in.err.status, 400);
    ingest_free(&in);

    json[n++] = '[';
    for (int i = 0; i <= DC_INGEST_MAX; i++)
        n += (size_t)snprintf(json + n, cap - n, "%s{\"deviceId\":\"%s\",\"temperature\":1}", i ? "," : "",
                              DEV);
    json[n++] = ']';
    json[n] = '\0';
    assert_int_equal(ingest(json, &in), DC_EINVAL);
    assert_int_equal(in.err.status, 413);
    ingest_free(&in);

    /* exactly the maximum is fine */
    n = (size_t)(strrchr(json, '{') - json) - 1;
    json[n++] = ']';
    json[n] = '\0';
    assert_int_equal(ingest(json, &in), DC_OK);
    assert_int_equal(in.n, DC_INGEST_MAX);
    ingest_free(&in);
    free(json);
}

static void test_not_json(void **state)
{
    static const char *const bad[] = {
        "",         "{",
        "nope",     "{\"deviceId\":}",
        "[1,2",     "{} {}",
        "\"text\"", "42",
        "null",     "[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ingest_t in;
        if (ingest(bad[i], &in) != DC_EINVAL)
            fail_msg("accepted: %s", bad[i]);
        assert_int_equal(in.err.status, 400);
        ingest_free(&in);
    }
    {
        ingest_t in;
        memset(&in, 0, sizeof(in));
        assert_int_equal(dc_body_ingest("{\"a\":1}\0{", 9, &in.d, &in.t, &in.ts, &in.n, &in.err), DC_EINVAL);
        assert_non_null(strstr(in.err.message, "NUL"));
        ingest_free(&in);
    }
}

static void test_alert_body(void **state)
{
    dc_alert_body_t a;
    dc_error_t      err;
    const char *ok = "{\"unitId\":\"" DEV "\",\"kind\":\"door_open\",\"message\":\"Door left open \\u00e9\"}";
    (void)state;

    assert_int_equal(dc_body_alert(ok, strlen(ok), &a, &err), DC_OK);
    assert_string_equal(a.unit_id, DEV);
    assert_string_equal(a.kind, "door_open");
    assert_string_equal(a.message, "Door left open \xc3\xa9");

    static const char *const bad[] = {
        "{\"kind\":\"x\",\"message\":\"m\"}",
        "{\"unitId\":\"nope\",\"kind\":\"x\",\"message\":\"m\"}",
        "{\"unitId\":\"" DEV "\",\"kind\":\"Door Open\",\"message\":\"m\"}",
        "{\"unitId\":\"" DEV "\",\"kind\":\"\",\"message\":\"m\"}",
        "{\"unitId\":\"" DEV "\",\"kind\":\"x\",\"message\":\"\"}",
        "{\"unitId\":\"" DEV "\",\"kind\":\"x\"}",
        "{\"unitId\":\"" DEV "\",\"kind\":1,\"message\":\"m\"}",
        "[]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (dc_body_alert(bad[i], strlen(bad[i]), &a, &err) != DC_EINVAL)
            fail_msg("accepted: %s", bad[i]);
        assert_int_equal(err.status, 400);
    }
}

static void test_device_status_body(void **state)
{
    dc_error_t err;
    int        online = -1;
    (void)state;
    assert_int_equal(dc_body_device_status("{\"online\":true}", 15, &online, &err), DC_OK);
    assert_int_equal(online, 1);
    assert_int_equal(dc_body_device_status("{\"online\":false}", 16, &online, &err), DC_OK);
    assert_int_equal(online, 0);
    assert_int_equal(dc_body_device_status("{\"online\":1}", 12, &online, &err), DC_EINVAL);
    assert_int_equal(dc_body_device_status("{\"online\":\"true\"}", 17, &online, &err), DC_EINVAL);
    assert_int_equal(dc_body_device_status("{}", 2, &online, &err), DC_EINVAL);
}

static void test_content_types(void **state)
{
    (void)state;
    assert_true(dc_body_is_json("application/json"));
    assert_true(dc_body_is_json("application/json; charset=utf-8"));
    assert_true(dc_body_is_json("Application/JSON"));
    assert_false(dc_body_is_json(NULL));
    assert_false(dc_body_is_json(""));
    assert_false(dc_body_is_json("text/plain"));
    assert_false(dc_body_is_json("application/jsonx"));
    assert_false(dc_body_is_json("application/x-www-form-urlencoded"));
}

static void test_timestamps(void **state)
{
    static const char *const ok[] = {
        "2026-11-21T15:04:05Z",      "2026-11-21t15:04:05z",        "2026-11-21 15:04:05Z",
        "2024-02-29T00:00:00Z",      "2026-11-21T15:04:05.1Z",      "2026-11-21T15:04:05.123456Z",
        "2026-11-21T15:04:05+05:30", "2026-11-21T15:04:05.5-08:00",
    };
    static const char *const bad[] = {
        "",
        "2026-11-21",
        "2026-11-21T15:04Z",
        "2026-13-01T00:00:00Z",
        "2026-02-29T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-11-21T24:00:00Z",
        "2026-11-21T15:60:00Z",
        "2026-11-21T15:04:05",
        "2026-11-21T15:04:05.Z",
        "2026-11-21T15:04:05.1234567Z",
        "2026-11-21T15:04:05+5:30",
        "2026-11-21T15:04:05Zjunk",
        "1969-12-31T23:59:59Z",
        "2026-11-21T15:04:05+24:00",
        "now",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (!dc_body_is_timestamp(ok[i]))
            fail_msg("refused: %s", ok[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (dc_body_is_timestamp(bad[i]))
            fail_msg("accepted: %s", bad[i]);
}

static void test_parse_dispatch(void **state)
{
    dc_request_t req;
    dc_write_t   w;
    dc_error_t   err;
    const char  *body = "{\"online\":true}";
    (void)state;

    memset(&w, 0, sizeof(w));
    memset(&req, 0, sizeof(req));
    req.route = DC_ROUTE_WRITE;
    req.wtype = DC_W_DEVICE_STATUS;
    assert_int_equal(dc_body_parse(&req, "text/plain", body, strlen(body), &w, &err), DC_EINVAL);
    assert_int_equal(err.status, 415);
    assert_int_equal(dc_body_parse(&req, "application/json", body, strlen(body), &w, &err), DC_OK);
    assert_int_equal(w.online, 1);
    /* resolving needs no body, but a JSON Content-Type all the same: no cross-site form gets through */
    req.wtype = DC_W_ALERT_RESOLVE;
    assert_int_equal(dc_body_parse(&req, "application/json", NULL, 0, &w, &err), DC_OK);
    assert_int_equal(dc_body_parse(&req, "application/json", "{}", 2, &w, &err), DC_OK);
    assert_int_equal(dc_body_parse(&req, "application/json", " { } ", 5, &w, &err), DC_OK);
    assert_int_equal(dc_body_parse(&req, "application/json", "{\"a\":1}", 7, &w, &err), DC_EINVAL);
    assert_int_equal(err.status, 400);
    assert_int_equal(dc_body_parse(&req, "application/json", "[]", 2, &w, &err), DC_EINVAL);
    static const char *const forms[] = { NULL,
                                         "",
                                         "application/x-www-form-urlencoded",
                                         "multipart/form-data",
                                         "text/plain",
                                         "application/jsonp",
                                         "text/json" };
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        for (int t = DC_W_INGEST; t < DC_W_COUNT; t++) {
            req.wtype = (dc_wtype_t)t;
            if (dc_body_parse(&req, forms[i], "{}", 2, &w, &err) != DC_EINVAL)
                fail_msg("write %d accepted Content-Type %s", t, forms[i] ? forms[i] : "(none)");
            assert_int_equal(err.status, 415);
            assert_string_equal(err.code, "unsupported_media_type");
        }
    }
    dc_body_free(&w);
}

/* Bodies json-c alone would take (or read differently) that the strict check refuses, naming the place. */
static void test_strict_json(void **state)
{
    static const struct {
        const char *json;
        const char *needle; /* in the message */
    } bad[] = {
        { "{\"online\":true,\"online\":false}", "duplicate key \"online\"" },
        { "{\"online\":true,\"\\u006fnline\":false}", "duplicate key \"online\"" },
        { "[{\"deviceId\":\"" DEV "\",\"temperature\":1},{\"deviceId\":\"" DEV
          "\",\"temperature\":1,\"temperature\":99}]",
          "readings[1]: duplicate key \"temperature\"" },
        { "{\"a\":{\"b\":1,\"b\":2}}", "at a: duplicate key \"b\"" },
        { "{\"message\":\"a\\u0000b\"}", "\\u0000" },
        { "{\"message\":\"ab\"/* hi */}", "a ',' or '}' was expected" },
        { "/* hi */{\"online\":true}", "comments" },
        { "{\"online\":true // hi\n}", "a ',' or '}' was expected" },
        { "{'online':true}", "double quotes" },
        { "{\"message\":'x'}", "double quotes" },
        { "{\"online\":true,}", "trailing comma" },
        { "[{\"deviceId\":\"x\"},]", "trailing comma" },
        { "{\"message\":\"a\tb\"}", "raw control character" },
        { "{\"message\":\"a\nb\"}", "raw control character" },
        { "{\"message\":\"\\ud800\"}", "lone high surrogate" },
        { "{\"message\":\"\\udc00\"}", "lone low surrogate" },
        { "{\"message\":\"\\x41\"}", "unknown escape" },
        { "{\"message\":\"\xc3\x28\"}", "UTF-8" },
        { "{\"message\":\"\xc0\xaf\"}", "UTF-8" },
        { "{\"message\":\"\xed\xa0\x80\"}", "UTF-8" },
        { "[[[[[[[[[1]]]]]]]]]", "deeper than 8" },
        { "{\"t\":1e999}", "out of range" },
        { "{\"t\":-1e400}", "out of range" },
        { "{\"t\":123456789012345678901234567890123456789012345}", "more than 40" },
        { "{\"t\":01}", "a ',' or '}' was expected" },
        { "{\"t\":1.}", "no digits after" },
        { "{\"t\":.5}", "a value was expected" },
        { "{\"t\":+1}", "a value was expected" },
        { "{\"t\":NaN}", "a value was expected" },
        { "{\"t\":Infinity}", "a value was expected" },
        { "{\"t\":tru}", "a value was expected" },
        { "{\"t\":1}x", "data after" },
        { "{\"t\" 1}", "':'" },
        { "{t:1}", "a string was expected" },
        { "\"unterminated", "not closed" },
        { "\v{}", "a value was expected" },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        dc_error_t err;
        if (dc_body_check_json(bad[i].json, strlen(bad[i].json), "readings", &err) != DC_EINVAL)
            fail_msg("accepted: %s", bad[i].json);
        assert_int_equal(err.status, 400);
        assert_string_equal(err.code, "invalid_json");
        if (strstr(err.message, bad[i].needle) == NULL)
            fail_msg("%s: message \"%s\" lacks \"%s\"", bad[i].json, err.message, bad[i].needle);
    }
}

static void test_strict_json_accepts_json(void **state)
{
    static const char *const good[] = {
        "{}",
        "[]",
        " {\"a\" : [1, -0.5e+3, 2E-2, true, false, null, \"x\"]} ",
        "{\"a\":{\"a\":{\"a\":1}}}",                                   /* one key per object at each level */
        "[{\"a\":1},{\"a\":2}]",                                       /* the same key in sibling objects */
        "{\"m\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\"}", /* every escape, a pair */
        "{\"m\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}",            /* UTF-8 of 2, 3 and 4 bytes */
        "{\"a\":1,\"A\":2,\"a \":3}",                                  /* keys differ */
        "[[[[[[[[1]]]]]]]]",                                           /* 8 levels */
        "{\"t\":-100,\"u\":1234567890123456789}",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        dc_error_t err;
        if (dc_body_check_json(good[i], strlen(good[i]), NULL, &err) != DC_OK)
            fail_msg("refused: %s: %s", good[i], err.message);
    }
}

/* Through the endpoints' parsers too: the body never reaches json-c's lenient reading. */
static void test_strict_json_through_parsers(void **state)
{
    dc_alert_body_t a;
    dc_error_t      err;
    int             online;
    ingest_t        in;
    (void)state;

    assert_int_equal(dc_body_device_status("{\"online\":false,\"online\":true}", 30, &online, &err),
                     DC_EINVAL);
    assert_non_null(strstr(err.message, "duplicate key \"online\""));
    assert_int_equal(
        dc_body_alert("{\"unitId\":\"" DEV "\",\"kind\":\"x\",\"message\":\"a\\u0000b\"}",
                      strlen("{\"unitId\":\"" DEV "\",\"kind\":\"x\",\"message\":\"a\\u0000b\"}"), &a, &err),
        DC_EINVAL);
    assert_int_equal(err.status, 400);
    assert_int_equal(ingest("{\"deviceId\":\"" DEV "\",\"temperature\":1,\"temperature\":200}", &in),
                     DC_EINVAL);
    assert_non_null(strstr(in.err.message, "duplicate key \"temperature\""));
    ingest_free(&in);
}

static void test_timestamp_epoch(void **state)
{
    int64_t t;
    (void)state;
    assert_int_equal(dc_body_timestamp_epoch("1970-01-01T00:00:00Z", &t), DC_OK);
    assert_int_equal(t, 0);
    assert_int_equal(dc_body_timestamp_epoch("2026-11-21T15:04:05Z", &t), DC_OK);
    assert_int_equal(t, 1795273445LL);
    assert_int_equal(dc_body_timestamp_epoch("2026-11-21T17:04:05.999+02:00", &t), DC_OK);
    assert_int_equal(t, 1795273445LL);
    assert_int_equal(dc_body_timestamp_epoch("2026-11-21T14:34:05-00:30", &t), DC_OK);
    assert_int_equal(t, 1795273445LL);
    assert_int_equal(dc_body_timestamp_epoch("2024-02-29T00:00:00Z", &t), DC_OK);
    assert_int_equal(t, 1709164800LL);
    assert_int_equal(dc_body_timestamp_epoch("9999-12-31T23:59:59Z", &t), DC_OK);
    assert_int_equal(t, 253402300799LL);
    assert_int_equal(dc_body_timestamp_epoch("2026-13-01T00:00:00Z", &t), DC_EINVAL);
}

/* recordedAt within [now - READINGS_RETENTION_DAYS, now + INGEST_MAX_FUTURE_SECONDS], errors naming them. */
/* Each write takes at most its row's body_max (dc_api.h): 16 KiB, 1 MiB for ingest; 413 beyond. */
static void test_body_limit_per_endpoint(void **state)
{
    enum { BIG = DC_BODY_MAX_SMALL + 1 };
    dc_request_t req;
    dc_write_t   w;
    dc_error_t   err;
    char        *body = malloc(BIG + 128);

    (void)state;
    assert_non_null(body);
    memset(&w, 0, sizeof(w));
    memset(&req, 0, sizeof(req));
    /* an alert whose message pads the body past 16 KiB: refused before it is read */
    snprintf(body, BIG + 128, "{\"unitId\":\"%s\",\"kind\":\"x\",\"message\":\"%0*d\"}",
             "6ba7b810-9dad-11d1-80b4-00c04fd430c8", BIG, 0);
    req.route = DC_ROUTE_WRITE;
    for (int t = DC_W_ALERT_CREATE; t < DC_W_COUNT; t++) {
        req.wtype = (dc_wtype_t)t;
        assert_int_equal(dc_body_parse(&req, "application/json", body, strlen(body), &w, &err), DC_EINVAL);
        assert_int_equal(err.status, 413);
        assert_string_equal(err.code, "payload_too_large");
    }
    /* ingest takes it (and refuses it for what it is, not for its size) */
    req.wtype = DC_W_INGEST;
    assert_int_equal(dc_body_parse(&req, "application/json", body, strlen(body), &w, &err), DC_EINVAL);
    assert_int_not_equal(err.status, 413);
    dc_body_free(&w);
    free(body);
}

static void test_recorded_at_bounds(void **state)
{
    static const struct {
        const char *at;
        int         ok;
        const char *needle;
    } cases[] = {
        { "2026-11-21T15:04:05Z", 1, NULL }, /* now */
        { "2026-11-21T15:09:05Z", 1, NULL }, /* now + 300 s: the bound itself */
        { "2026-11-21T15:09:06Z", 0, "INGEST_MAX_FUTURE_SECONDS" },
        { "2026-11-21T17:09:06+02:00", 0, "INGEST_MAX_FUTURE_SECONDS" },
        { "9999-01-01T00:00:00Z", 0, "INGEST_MAX_FUTURE_SECONDS" },
        { "2026-10-22T15:04:05Z", 1, NULL }, /* now - 30 days */
        { "2026-10-22T15:04:04Z", 0, "READINGS_RETENTION_DAYS" },
        { "1970-01-01T00:00:00Z", 0, "READINGS_RETENTION_DAYS" },
    };
    dc_request_t req;
    dc_write_t   w;
    dc_error_t   err;
    char         body[256];
    (void)state;

    memset(&w, 0, sizeof(w));
    memset(&req, 0, sizeof(req));
    req.route = DC_ROUTE_WRITE;
    req.wtype = DC_W_INGEST;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        w.limits = (dc_body_limits_t){ .now = 1795273445LL, .max_future_s = 300, .retention_s = 30 * 86400 };
        snprintf(body, sizeof(body),
                 "[{\"deviceId\":\"" DEV "\",\"temperature\":1},{\"deviceId\":\"" DEV
                 "\",\"temperature\":1,\"recordedAt\":\"%s\"}]",
                 cases[i].at);
        int rc = dc_body_parse(&req, "application/json", body, strlen(body), &w, &err);
        if (cases[i].ok) {
            if (rc != DC_OK)
                fail_msg("%s refused: %s", cases[i].at, err.message);
            continue;
        }
        if (rc != DC_EINVAL)
            fail_msg("%s accepted", cases[i].at);
        assert_int_equal(err.status, 400);
        assert_int_equal(err.index, 1);
        assert_non_null(strstr(err.message, "recordedAt"));
        assert_non_null(strstr(err.message, cases[i].needle));
    }
    /* the limits survive the reset of the next request; without them (now 0) nothing is bounded */
    assert_int_equal(w.limits.max_future_s, 300);
    w.limits.now = 0;
    snprintf(body, sizeof(body),
             "{\"deviceId\":\"" DEV "\",\"temperature\":1,\"recordedAt\":\"9999-01-01T00:00:00Z\"}");
    assert_int_equal(dc_body_parse(&req, "application/json", body, strlen(body), &w, &err), DC_OK);
    dc_body_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_reading),
        cmocka_unit_test(test_many_readings_with_times),
        cmocka_unit_test(test_bad_reading_reported_by_index),
        cmocka_unit_test(test_batch_size_limits),
        cmocka_unit_test(test_not_json),
        cmocka_unit_test(test_alert_body),
        cmocka_unit_test(test_device_status_body),
        cmocka_unit_test(test_content_types),
        cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_parse_dispatch),
        cmocka_unit_test(test_strict_json),
        cmocka_unit_test(test_strict_json_accepts_json),
        cmocka_unit_test(test_strict_json_through_parsers),
        cmocka_unit_test(test_timestamp_epoch),
        cmocka_unit_test(test_recorded_at_bounds),
        cmocka_unit_test(test_body_limit_per_endpoint),
    };
    return cmocka_run_group_tests_name("dc_body", tests, NULL, NULL);
}
