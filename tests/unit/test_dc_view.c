/*
 * dc_view: every body byte for byte for fixed inputs, numeric text kept as
 * PostgreSQL printed it, audit details embedded as JSON or as a string, and
 * an out-of-memory sweep over every view (fail_alloc.h): each failed
 * allocation must end in DC_ENOMEM or in the exact body, never in another.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dc_view.h"
#include "fail_alloc.h"

#define ORG  "550e8400-e29b-41d4-a716-446655440000"
#define UNIT "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
#define AT   "2026-11-21T15:04:05.123Z"

#define ORG_F  "\"orgId\":\"" ORG "\""
#define UNIT_F "\"unitId\":\"" UNIT "\""
#define AT_F   "\"generatedAt\":\"" AT "\""

static const dc_view_meta_t meta = { ORG, NULL, AT };
static const dc_view_meta_t meta_unit = { ORG, UNIT, AT };
static const dc_view_meta_t meta_empty_unit = { ORG, "", AT };

static const dc_units_status_t   units = { 7, 2, 1, 3, 13 };
static const dc_alert_count_t    alerts = { 4 };
static const dc_devices_online_t devices = { 11, 2 };
static const dc_compliance_t     compliance = { 950, 1000, 30, "0.9500" };

static const dc_trend_point_t points[] = {
    { "2026-11-21T13:00:00Z", "5.30", "normal" },
    { "2026-11-21T14:00:00Z", "-18.00", "too_cold" },
    { "2026-11-21T15:00:00Z", NULL, "normal" },
};

static const dc_audit_entry_t entries[] = {
    { "41", "alice", "unit.update", "{\"field\":\"max_temp\",\"from\":8.00,\"to\":8.50}",
      "2026-11-21T15:00:00.000Z" },
    { "40", "bob \"the builder\"", "unit.create", "{not json", "2026-11-21T14:00:00.000Z" },
};

static const dc_health_service_t services[] = {
    { "database", 1, 1.25 },
    { "redis", 0, 0 },
    { "cache", 1, 0.0004 },
};

#define UNITS_BODY       "{" ORG_F ",\"normal\":7,\"too_hot\":2,\"too_cold\":1,\"no_data\":3,\"total\":13," AT_F "}"
#define ALERTS_BODY      "{" ORG_F ",\"unresolved\":4," AT_F "}"
#define ALERTS_UNIT_BODY "{" ORG_F "," UNIT_F ",\"unresolved\":4," AT_F "}"
#define DEVICES_BODY     "{" ORG_F ",\"online\":11,\"offline\":2," AT_F "}"
#define COMPLIANCE_BODY \
    "{" ORG_F ",\"windowDays\":30,\"inRange\":950,\"total\":1000,\"ratio\":0.9500," AT_F "}"
#define STATS_BODY                                                                                 \
    "{" ORG_F ",\"units\":{\"normal\":7,\"too_hot\":2,\"too_cold\":1,\"no_data\":3,\"total\":13}," \
    "\"alerts\":{\"unresolved\":4},\"devices\":{\"online\":11,\"offline\":2},"                     \
    "\"compliance\":{\"windowDays\":30,\"inRange\":950,\"total\":1000,\"ratio\":0.9500}," AT_F "}"
#define TRENDS_BODY                                                                                \
    "{" ORG_F "," UNIT_F ",\"hours\":48,\"points\":["                                              \
    "{\"timestamp\":\"2026-11-21T13:00:00Z\",\"temperature\":5.30,\"alarmState\":\"normal\"},"     \
    "{\"timestamp\":\"2026-11-21T14:00:00Z\",\"temperature\":-18.00,\"alarmState\":\"too_cold\"}," \
    "{\"timestamp\":\"2026-11-21T15:00:00Z\",\"temperature\":null,\"alarmState\":\"normal\"}]," AT_F "}"
#define AUDIT_BODY                                                                     \
    "{" ORG_F ",\"entries\":["                                                         \
    "{\"id\":\"41\",\"actor\":\"alice\",\"action\":\"unit.update\","                   \
    "\"details\":{\"field\":\"max_temp\",\"from\":8.00,\"to\":8.50},"                  \
    "\"createdAt\":\"2026-11-21T15:00:00.000Z\"},"                                     \
    "{\"id\":\"40\",\"actor\":\"bob \\\"the builder\\\"\",\"action\":\"unit.create\"," \
    "\"details\":\"{not json\",\"createdAt\":\"2026-11-21T14:00:00.000Z\"}]," AT_F "}"
#define HEALTH_BODY                                   \
    "{\"status\":\"degraded\",\"services\":{"         \
    "\"database\":{\"ok\":true,\"latencyMs\":1.250}," \
    "\"redis\":{\"ok\":false,\"latencyMs\":0.000},\"cache\":{\"ok\":true,\"latencyMs\":0.000}}}"
#define ERROR_BODY "{\"error\":{\"code\":\"not_found\",\"message\":\"no such endpoint\"}}"

typedef int (*render_fn)(dc_buf_t *out);

/* Frees out before asserting, so that a failure leaks nothing. */
static void assert_body(int rc, dc_buf_t *out, const char *want)
{
    char   got[1024] = "";
    size_t len = out->len;

    if (out->data != NULL)
        snprintf(got, sizeof(got), "%s", out->data);
    dc_buf_free(out);
    assert_int_equal(rc, DC_OK);
    assert_string_equal(got, want);
    assert_int_equal(len, strlen(want));
}

/* The audit body for one entry with the given details text. */
static void audit_one(const char *details, dc_buf_t *out)
{
    dc_audit_entry_t e = { "1", "a", "x", details, "t" };
    dc_view_meta_t   m = { "o", NULL, "g" };

    assert_int_equal(dc_view_audit(&m, &e, 1, out), DC_OK);
}

static void assert_details(const char *details, const char *want)
{
    dc_buf_t out = DC_BUF_INIT;
    char     body[512], got[512];

    audit_one(details, &out);
    snprintf(got, sizeof(got), "%s", out.data);
    dc_buf_free(&out);
    snprintf(body, sizeof(body),
             "{\"orgId\":\"o\",\"entries\":[{\"id\":\"1\",\"actor\":\"a\",\"action\":\"x\",\"details\":%s,"
             "\"createdAt\":\"t\"}],\"generatedAt\":\"g\"}",
             want);
    if (strcmp(got, body) != 0)
        fail_msg("details %s\n  got  %s\n  want %s", details, got, body);
}

static void test_units_status_body(void **state)
{
    dc_buf_t out = DC_BUF_INIT;

    (void)state;
    assert_body(dc_view_units_status(&meta, &units, &out), &out, UNITS_BODY);
}

static void test_alert_count_body(void **state)
{
    dc_buf_t out = DC_BUF_INIT;

    (void)state;
    assert_body(dc_view_alert_count(&meta, &alerts, &out), &out, ALERTS_BODY);
    assert_body(dc_view_alert_count(&meta_empty_unit, &alerts, &out), &out, ALERTS_BODY);
    assert_body(dc_view_alert_count(&meta_unit, &alerts, &out), &out, ALERTS_UNIT_BODY);
}

static void test_devices_online_body(void **state)
{
    dc_buf_t out = DC_BUF_INIT;

    (void)state;
    assert_body(dc_view_devices_online(&meta, &devices, &out), &out, DEVICES_BODY);
}

static void test_compliance_body(void **state)
{
    dc_compliance_t none = { 0, 0, 30, "" };
    dc_buf_t        out = DC_BUF_INIT;

    (void)state;
    assert_body(dc_view_compliance(&meta, &compliance, &out), &out, COMPLIANCE_BODY);
    assert_body(dc_view_compliance(&meta, &none, &out), &out,
                "{" ORG_F ",\"windowDays\":30,\"inRange\":0,\"total\":0,\"ratio\":null," AT_F "}");
}

static void test_large_counts(void **state)
{
    dc_units_status_t big = { INT64_MAX, 0, 0, 0, INT64_MAX };
    dc_buf_t          out = DC_BUF_INIT;

    (void)state;
    assert_body(dc_view_units_status(&meta, &big, &out), &out,
                "{" ORG_F ",\"normal\":9223372036854775807,\"too_hot\":0,\"too_cold\":0,\"no_data\":0,"
                "\"total\":9223372036854775807," AT_F "}");
}

static void test_numeric_text_preserved(void **state)
{
    static const char *const texts[] = {
        "5.30", "-18.00", "0.00", "0", "100.10", "0.9500", "1.0000", "0.0000", "-0.50", "123456789.123456789",
    };
    char want[128];

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(texts); i++) {
        dc_compliance_t  c = { 1, 1, 30, "" };
        dc_trend_point_t p = { "t", texts[i], "normal" };
        dc_buf_t         out = DC_BUF_INIT;

        snprintf(c.ratio, sizeof(c.ratio), "%s", texts[i]);
        assert_int_equal(dc_view_compliance(&meta, &c, &out), DC_OK);
        snprintf(want, sizeof(want), "\"ratio\":%s,", texts[i]);
        if (strstr(out.data, want) == NULL)
            fail_msg("ratio %s: %s", texts[i], out.data);
        dc_buf_reset(&out);

        assert_int_equal(dc_view_trends(&meta_unit, 1, &p, 1, &out), DC_OK);
        snprintf(want, sizeof(want), "\"temperature\":%s,", texts[i]);
        if (strstr(out.data, want) == NULL)
            fail_msg("temperature %s: %s", texts[i], out.data);
        dc_buf_free(&out);
    }
}

static void test_stats_body(void **state)
{
    dc_stats_t s = { units, alerts, devices, compliance };
    dc_buf_t   out = DC_BUF_INIT;

    (void)state;
    assert_body(dc_view_stats(&meta, &s, &out), &out, STATS_BODY);
}

static void test_trends_empty(void **state)
{
    dc_buf_t out = DC_BUF_INIT;

    (void)state;
    assert_body(dc_view_trends(&meta_unit, 24, NULL, 0, &out), &out,
                "{" ORG_F "," UNIT_F ",\"hours\":24,\"points\":[]," AT_F "}");
}

static void test_trends_points(void **state)
{
    dc_buf_t out = DC_BUF_INIT;

    (void)state;
    assert_body(dc_view_trends(&meta_unit, 48, points, DC_ARRAY_LEN(points), &out), &out, TRENDS_BODY);
}

static void test_trends_empty_temperature_is_null(void **state)
{
    dc_trend_point_t p = { "t", "", "normal" };
    dc_buf_t         out = DC_BUF_INIT;

    (void)state;
    assert_body(dc_view_trends(&meta_unit, 1, &p, 1, &out), &out,
                "{" ORG_F "," UNIT_F ",\"hours\":1,\"points\":[{\"timestamp\":\"t\",\"temperature\":null,"
                "\"alarmState\":\"normal\"}]," AT_F "}");
}

/*
 * numeric(5,2) accepts 'NaN', and round(avg(...), 2)::text of a bucket that
 * holds one prints "NaN"; JSON has no NaN, so the body must not either.
 */
static void test_trends_nan_temperature_is_valid_json(void **state)
{
    dc_trend_point_t p = { "t", "NaN", "too_hot" };
    dc_buf_t         out = DC_BUF_INIT;
    char             got[256];

    (void)state;
    assert_int_equal(dc_view_trends(&meta_unit, 1, &p, 1, &out), DC_OK);
    snprintf(got, sizeof(got), "%s", out.data);
    dc_buf_free(&out);
    if (strstr(got, "\"temperature\":null,") == NULL && strstr(got, "\"temperature\":\"NaN\",") == NULL)
        fail_msg("not JSON: %s", got);
}

static void test_audit_empty(void **state)
{
    dc_buf_t out = DC_BUF_INIT;

    (void)state;
    assert_body(dc_view_audit(&meta, NULL, 0, &out), &out, "{" ORG_F ",\"entries\":[]," AT_F "}");
}

static void test_audit_body(void **state)
{
    dc_buf_t out = DC_BUF_INIT;

    (void)state;
    assert_body(dc_view_audit(&meta, entries, DC_ARRAY_LEN(entries), &out), &out, AUDIT_BODY);
}

static void test_audit_details_valid_json_embedded(void **state)
{
    (void)state;
    assert_details("{}", "{}");
    assert_details("[]", "[]");
    assert_details("{\"a\": {\"b\": [true, false, null]}}", "{\"a\":{\"b\":[true,false,null]}}");
    assert_details("[1, 2.50, \"x\"]", "[1,2.50,\"x\"]");
    assert_details("\"text\"", "\"text\"");
    assert_details("42", "42");
    assert_details("true", "true");
    assert_details("{\"path\": \"/a/b\"}", "{\"path\":\"/a/b\"}");
}

static void test_audit_details_invalid_json_is_string(void **state)
{
    (void)state;
    assert_details("{not json", "\"{not json\"");
    assert_details("", "\"\"");
    assert_details("{\"a\":", "\"{\\\"a\\\":\"");
    assert_details("nullx", "\"nullx\"");
    assert_details("tab\there", "\"tab\\there\"");
}

/* jsonb holds 'null' as a value of its own; it is valid JSON, not a string. */
static void test_audit_details_json_null(void **state)
{
    (void)state;
    assert_details("null", "null");
}

/* Text after a complete JSON value makes the whole invalid JSON. */
static void test_audit_details_trailing_text_is_string(void **state)
{
    (void)state;
    assert_details("{\"a\":1} trailing", "\"{\\\"a\\\":1} trailing\"");
    assert_details("1 2", "\"1 2\"");
    assert_details("truex", "\"truex\"");
    assert_details("[1]]", "\"[1]]\"");
}

/* jsonb keeps numbers of any size; the audit trail must not change them. */
static void test_audit_details_large_numbers_unchanged(void **state)
{
    (void)state;
    assert_details("{\"n\": 18446744073709551615}", "{\"n\":18446744073709551615}");
    assert_details("{\"n\": 123456789012345678901234567890}", "{\"n\":123456789012345678901234567890}");
    assert_details("{\"n\": -9223372036854775809}", "{\"n\":-9223372036854775809}");
}

static void test_error_body(void **state)
{
    dc_buf_t out = DC_BUF_INIT;

    (void)state;
    assert_body(dc_view_error("not_found", "no such endpoint", -1, &out), &out, ERROR_BODY);
    assert_body(
        dc_view_error("x", "say \"hi\"\n</tag> \\ \x01 caf\xc3\xa9", -1, &out), &out,
        "{\"error\":{\"code\":\"x\",\"message\":\"say \\\"hi\\\"\\n</tag> \\\\ \\u0001 caf\xc3\xa9\"}}");
}

static void test_error_body_with_index(void **state)
{
    dc_buf_t out = DC_BUF_INIT;

    (void)state;
    assert_body(
        dc_view_error("bad_reading", "temperature must be a number", 7, &out), &out,
        "{\"error\":{\"code\":\"bad_reading\",\"message\":\"temperature must be a number\",\"index\":7}}");
    assert_body(dc_view_error("bad_reading", "m", 0, &out), &out,
                "{\"error\":{\"code\":\"bad_reading\",\"message\":\"m\",\"index\":0}}");
    assert_body(dc_view_error("bad_reading", "m", -2, &out), &out,
                "{\"error\":{\"code\":\"bad_reading\",\"message\":\"m\"}}");
}

static const dc_view_field_t fields[] = {
    { "alertId", DC_VF_STR, "9f1c2a44-5b6d-4e7f-8a9b-0c1d2e3f4a5b", 0 },
    { "count", DC_VF_INT, NULL, -42 },
    { "big", DC_VF_INT, NULL, 9007199254740993LL },
    { "created", DC_VF_BOOL, NULL, 1 },
    { "online", DC_VF_BOOL, NULL, 0 },
    { "resolvedAt", DC_VF_NULL, NULL, 0 },
    { "message", DC_VF_STR, "door \"open\"\n", 0 },
    { "none", DC_VF_STR, NULL, 0 },
};

#define OBJECT_BODY                                                                                 \
    "{\"alertId\":\"9f1c2a44-5b6d-4e7f-8a9b-0c1d2e3f4a5b\",\"count\":-42,\"big\":9007199254740993," \
    "\"created\":true,\"online\":false,\"resolvedAt\":null,\"message\":\"door "                     \
    "\\\"open\\\"\\n\",\"none\":null}"

static void test_object_body(void **state)
{
    dc_buf_t out = DC_BUF_INIT;

    (void)state;
    assert_body(dc_view_object(fields, DC_ARRAY_LEN(fields), &out), &out, OBJECT_BODY);
    assert_body(dc_view_object(NULL, 0, &out), &out, "{}");
}

static void test_health_body(void **state)
{
    dc_buf_t out = DC_BUF_INIT;

    (void)state;
    assert_body(dc_view_health("degraded", services, DC_ARRAY_LEN(services), &out), &out, HEALTH_BODY);
    assert_body(dc_view_health("unhealthy", NULL, 0, &out), &out,
                "{\"status\":\"unhealthy\",\"services\":{}}");
}

static void test_bodies_are_appended(void **state)
{
    dc_buf_t out = DC_BUF_INIT;

    (void)state;
    assert_int_equal(dc_buf_append_str(&out, "prefix|"), DC_OK);
    assert_int_equal(dc_view_error("not_found", "no such endpoint", -1, &out), DC_OK);
    assert_int_equal(dc_view_devices_online(&meta, &devices, &out), DC_OK);
    assert_body(DC_OK, &out, "prefix|" ERROR_BODY DEVICES_BODY);
}

static int render_units(dc_buf_t *out)
{
    return dc_view_units_status(&meta_unit, &units, out);
}

static int render_alerts(dc_buf_t *out)
{
    return dc_view_alert_count(&meta_unit, &alerts, out);
}

static int render_devices(dc_buf_t *out)
{
    return dc_view_devices_online(&meta, &devices, out);
}

static int render_compliance(dc_buf_t *out)
{
    return dc_view_compliance(&meta, &compliance, out);
}

static int render_stats(dc_buf_t *out)
{
    dc_stats_t s = { units, alerts, devices, compliance };

    return dc_view_stats(&meta, &s, out);
}

static int render_trends(dc_buf_t *out)
{
    return dc_view_trends(&meta_unit, 48, points, DC_ARRAY_LEN(points), out);
}

static int render_audit(dc_buf_t *out)
{
    return dc_view_audit(&meta, entries, DC_ARRAY_LEN(entries), out);
}

static int render_error(dc_buf_t *out)
{
    return dc_view_error("bad_reading", "temperature must be a number", 7, out);
}

static int render_object(dc_buf_t *out)
{
    return dc_view_object(fields, DC_ARRAY_LEN(fields), out);
}

static int render_health(dc_buf_t *out)
{
    return dc_view_health("degraded", services, DC_ARRAY_LEN(services), out);
}

#define PREFIX "prefix|"

/*
 * The buffer a sweep renders into: empty (DC_BUF_INIT), or holding PREFIX
 * and filled with '.' up to its capacity, so that the render has to grow
 * it and a failure must leave the earlier content as it was.
 */
static void sweep_start(dc_buf_t *b, int full)
{
    dc_buf_free(b);
    if (!full)
        return;
    assert_int_equal(dc_buf_append_str(b, PREFIX), DC_OK);
    while (b->len + 1 < b->cap)
        assert_int_equal(dc_buf_append(b, ".", 1), DC_OK);
}

/*
 * Counts the allocations of one clean render (there must be some, or the
 * sweep would test nothing), then fails each of them in turn, alone
 * (FAIL_ONE) and with every later one (FAIL_FROM). The result must be
 * DC_ENOMEM with the buffer's content unchanged (or reset), or DC_OK with
 * exactly the clean body.
 */
static void oom_sweep_from(render_fn render, int full)
{
    dc_buf_t clean = DC_BUF_INIT, out = DC_BUF_INIT, before = DC_BUF_INIT;
    char     msg[2048];
    long     n;

    sweep_start(&clean, full);
    sweep_start(&before, full);
    fail_alloc_count();
    assert_int_equal(render(&clean), DC_OK);
    n = fail_state.calls;
    fail_alloc_disarm();
    if (n == 0) {
        dc_buf_free(&before);
        dc_buf_free(&clean);
        fail_msg("a clean render into %s buffer made no allocation: the sweep would test nothing",
                 full ? "a full" : "an empty");
    }

    for (fail_mode_t mode = FAIL_ONE; mode <= FAIL_FROM; mode++) {
        for (long k = 0; k < n; k++) {
            int rc;

            sweep_start(&out, full);
            fail_alloc_arm(mode, k);
            rc = render(&out);
            fail_alloc_disarm();
            assert_true(fail_state.failed > 0);
            if (rc == DC_ENOMEM &&
                (out.len == 0 || (out.len == before.len && memcmp(out.data, before.data, out.len) == 0)))
                continue;
            if (rc == DC_OK && strcmp(out.data, clean.data) == 0)
                continue;
            snprintf(
                msg, sizeof(msg),
                "%s buffer, %s allocation %ld of %ld failing: rc %d, body\n  %s\nwant DC_ENOMEM or\n  %s",
                full ? "full" : "empty", mode == FAIL_ONE ? "only" : "from", k, n, rc,
                out.data != NULL ? out.data : "(null)", clean.data);
            dc_buf_free(&out);
            dc_buf_free(&before);
            dc_buf_free(&clean);
            fail_msg("%s", msg);
        }
    }
    dc_buf_free(&out);
    dc_buf_free(&before);
    dc_buf_free(&clean);
}

static void oom_sweep(render_fn render)
{
    if (!fail_alloc_works())
        skip();
    oom_sweep_from(render, 0);
    oom_sweep_from(render, 1);
}

static void test_oom_units_status(void **state)
{
    (void)state;
    oom_sweep(render_units);
}

static void test_oom_alert_count(void **state)
{
    (void)state;
    oom_sweep(render_alerts);
}

static void test_oom_devices_online(void **state)
{
    (void)state;
    oom_sweep(render_devices);
}

static void test_oom_compliance(void **state)
{
    (void)state;
    oom_sweep(render_compliance);
}

static void test_oom_stats(void **state)
{
    (void)state;
    oom_sweep(render_stats);
}

static void test_oom_trends(void **state)
{
    (void)state;
    oom_sweep(render_trends);
}

static void test_oom_audit(void **state)
{
    (void)state;
    oom_sweep(render_audit);
}

static void test_oom_error(void **state)
{
    (void)state;
    oom_sweep(render_error);
}

static void test_oom_object(void **state)
{
    (void)state;
    oom_sweep(render_object);
}

static void test_oom_health(void **state)
{
    (void)state;
    oom_sweep(render_health);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_units_status_body),
        cmocka_unit_test(test_alert_count_body),
        cmocka_unit_test(test_devices_online_body),
        cmocka_unit_test(test_compliance_body),
        cmocka_unit_test(test_large_counts),
        cmocka_unit_test(test_numeric_text_preserved),
        cmocka_unit_test(test_stats_body),
        cmocka_unit_test(test_trends_empty),
        cmocka_unit_test(test_trends_points),
        cmocka_unit_test(test_trends_empty_temperature_is_null),
        cmocka_unit_test(test_trends_nan_temperature_is_valid_json),
        cmocka_unit_test(test_audit_empty),
        cmocka_unit_test(test_audit_body),
        cmocka_unit_test(test_audit_details_valid_json_embedded),
        cmocka_unit_test(test_audit_details_invalid_json_is_string),
        cmocka_unit_test(test_audit_details_json_null),
        cmocka_unit_test(test_audit_details_trailing_text_is_string),
        cmocka_unit_test(test_audit_details_large_numbers_unchanged),
        cmocka_unit_test(test_error_body),
        cmocka_unit_test(test_error_body_with_index),
        cmocka_unit_test(test_object_body),
        cmocka_unit_test(test_health_body),
        cmocka_unit_test(test_bodies_are_appended),
        cmocka_unit_test(test_oom_units_status),
        cmocka_unit_test(test_oom_alert_count),
        cmocka_unit_test(test_oom_devices_online),
        cmocka_unit_test(test_oom_compliance),
        cmocka_unit_test(test_oom_stats),
        cmocka_unit_test(test_oom_trends),
        cmocka_unit_test(test_oom_audit),
        cmocka_unit_test(test_oom_error),
        cmocka_unit_test(test_oom_object),
        cmocka_unit_test(test_oom_health),
    };

    return cmocka_run_group_tests_name("dc_view", tests, NULL, NULL);
}
