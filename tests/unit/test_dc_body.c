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
    /* resolving needs no body at all */
    req.wtype = DC_W_ALERT_RESOLVE;
    assert_int_equal(dc_body_parse(&req, NULL, NULL, 0, &w, &err), DC_OK);
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
    };
    return cmocka_run_group_tests_name("dc_body", tests, NULL, NULL);
}
