/*
 * dc_sampler: which query types are sampled, and the comparison of a cached
 * answer with a fresh one, on bodies the views really write: generatedAt
 * never counts, the members of stats computed relative to now() (devices,
 * compliance) do not count, everything else does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dc_sampler.h"
#include "dc_view.h"

#define ORG "550e8400-e29b-41d4-a716-446655440000"

static const dc_view_meta_t at1 = { ORG, NULL, "2026-01-01T00:00:00.000Z" };
static const dc_view_meta_t at2 = { ORG, NULL, "2026-01-01T00:00:59.999Z" };
static const dc_view_meta_t other_org = { "7c9e6679-7425-40de-944b-e07fc1f90ae7", NULL,
                                          "2026-01-01T00:00:00.000Z" };

static dc_stats_t stats(void)
{
    dc_stats_t s = {
        .units = { 3, 1, 1, 0, 5 },
        .alerts = { 4 },
        .devices = { 7, 2 },
        .compliance = { 900, 1000, 30, "0.9000" },
    };
    return s;
}

static int same_stats(const dc_view_meta_t *ma, const dc_stats_t *a, const dc_view_meta_t *mb,
                      const dc_stats_t *b)
{
    dc_buf_t x = DC_BUF_INIT, y = DC_BUF_INIT;
    int      same;

    assert_int_equal(dc_view_stats(ma, a, &x), DC_OK);
    assert_int_equal(dc_view_stats(mb, b, &y), DC_OK);
    same = dc_sampler_same(DC_Q_STATS, x.data, x.len, y.data, y.len);
    assert_int_equal(same, dc_sampler_same(DC_Q_STATS, y.data, y.len, x.data, x.len));
    dc_buf_free(&x);
    dc_buf_free(&y);
    return same;
}

static int same_alerts(const dc_view_meta_t *ma, int64_t a, const dc_view_meta_t *mb, int64_t b)
{
    dc_buf_t         x = DC_BUF_INIT, y = DC_BUF_INIT;
    dc_alert_count_t va = { a }, vb = { b };
    int              same;

    assert_int_equal(dc_view_alert_count(ma, &va, &x), DC_OK);
    assert_int_equal(dc_view_alert_count(mb, &vb, &y), DC_OK);
    same = dc_sampler_same(DC_Q_ALERTS, x.data, x.len, y.data, y.len);
    dc_buf_free(&x);
    dc_buf_free(&y);
    return same;
}

static void test_sampled_types(void **state)
{
    (void)state;
    assert_true(dc_sampler_sampled(DC_Q_STATS));
    assert_true(dc_sampler_sampled(DC_Q_UNITS));
    assert_true(dc_sampler_sampled(DC_Q_ALERTS));
    /* relative to now() as a whole */
    assert_false(dc_sampler_sampled(DC_Q_TEMPERATURE));
    assert_false(dc_sampler_sampled(DC_Q_DEVICES));
    assert_false(dc_sampler_sampled(DC_Q_COMPLIANCE));
    /* never cached, or no type */
    assert_false(dc_sampler_sampled(DC_Q_AUDIT));
    assert_false(dc_sampler_sampled(DC_Q_COUNT));
    assert_false(dc_sampler_sampled((dc_qtype_t)-1));
}

static void test_generated_at_never_counts(void **state)
{
    dc_stats_t s = stats();

    (void)state;
    assert_true(same_alerts(&at1, 4, &at2, 4));
    assert_true(same_stats(&at1, &s, &at2, &s));
}

static void test_data_counts(void **state)
{
    dc_stats_t a = stats(), b = stats();

    (void)state;
    assert_false(same_alerts(&at1, 4, &at1, 5));
    assert_false(same_alerts(&at1, 4, &at2, 5));
    assert_false(same_alerts(&at1, 4, &other_org, 4));
    b.alerts.unresolved = 5;
    assert_false(same_stats(&at1, &a, &at2, &b));
    b = stats();
    b.units.too_hot = 2;
    assert_false(same_stats(&at1, &a, &at2, &b));
    assert_false(same_stats(&at1, &a, &other_org, &a));
}

/* stats: devices and compliance drift with now() within the TTL; the rest must not move */
static void test_stats_leaves_out_what_drifts(void **state)
{
    dc_stats_t a = stats(), b = stats();

    (void)state;
    b.devices.online = 6;
    b.devices.offline = 3;
    b.compliance.in_range = 899;
    b.compliance.total = 999;
    strcpy(b.compliance.ratio, "0.8999");
    assert_true(same_stats(&at1, &a, &at2, &b));
    b.alerts.unresolved = 3;
    assert_false(same_stats(&at1, &a, &at2, &b));
}

/* alerts and units have nothing that drifts: any other difference counts, even one JSON would call equal */
static void test_types_without_drift_compare_bytes(void **state)
{
    static const char a[] = "{\"orgId\":\"" ORG "\",\"unresolved\":4,\"generatedAt\":\"x\"}";
    static const char b[] = "{\"orgId\":\"" ORG "\", \"unresolved\":4,\"generatedAt\":\"y\"}";

    (void)state;
    assert_false(dc_sampler_same(DC_Q_ALERTS, a, strlen(a), b, strlen(b)));
    assert_true(dc_sampler_same(DC_Q_STATS, a, strlen(a), b, strlen(b)));
}

static void test_what_does_not_parse(void **state)
{
    static const char good[] = "{\"orgId\":\"" ORG "\",\"devices\":{},\"generatedAt\":\"x\"}";
    static const char bad[] = "{\"orgId\":\"" ORG "\",\"devices\":{},\"generatedAt\":\"x\"";
    static const char trailing[] = "{\"orgId\":\"" ORG "\",\"devices\":{},\"generatedAt\":\"y\"}x";

    (void)state;
    assert_false(dc_sampler_same(DC_Q_STATS, good, strlen(good), bad, strlen(bad)));
    assert_false(dc_sampler_same(DC_Q_STATS, good, strlen(good), trailing, strlen(trailing)));
    assert_false(dc_sampler_same(DC_Q_STATS, "[]", 2, "[ ]", 3));
    assert_true(dc_sampler_same(DC_Q_STATS, bad, strlen(bad), bad, strlen(bad)));
    assert_false(dc_sampler_same(DC_Q_COUNT, good, strlen(good), bad, strlen(bad)));
    assert_true(dc_sampler_same(DC_Q_ALERTS, "", 0, "", 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sampled_types),
        cmocka_unit_test(test_generated_at_never_counts),
        cmocka_unit_test(test_data_counts),
        cmocka_unit_test(test_stats_leaves_out_what_drifts),
        cmocka_unit_test(test_types_without_drift_compare_bytes),
        cmocka_unit_test(test_what_does_not_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
