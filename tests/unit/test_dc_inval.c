/*
 * dc_inval: which invalidation messages are accepted and what they mean
 * (down to the query types whose generations they move), that hostile ones
 * (glob characters in tenant ids, other namespaces, two tenants, huge or
 * malformed payloads) are all refused, and the mapping of what a write
 * changed to the query types it invalidates (DC_API_CHANGES).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dc_endpoint.h"
#include "dc_inval.h"

#define ORG  "550e8400-e29b-41d4-a716-446655440000"
#define ORG2 "7c9e6679-7425-40de-944b-e07fc1f90ae7"
#define UNIT "6ba7b810-9dad-11d1-80b4-00c04fd430c8"

static int parse(const char *msg, dc_inval_msg_t *m)
{
    char why[128];
    return dc_inval_parse(msg, strlen(msg), m, why, sizeof(why));
}

static void test_org_message(void **state)
{
    dc_inval_msg_t m;
    (void)state;
    assert_int_equal(parse("{\"orgId\":\"" ORG "\"}", &m), DC_OK);
    assert_int_equal(m.kind, DC_INV_ORG);
    assert_string_equal(m.org_id, ORG);
    assert_int_equal(m.queries, DC_QBITS_CACHED);
    assert_int_equal(parse("{\"orgId\":\"550E8400-E29B-41D4-A716-446655440000\"}", &m), DC_OK);
    assert_string_equal(m.org_id, ORG);
}

static void test_tenant_patterns(void **state)
{
    static const struct {
        const char *msg, *pattern;
        unsigned    queries; /* whose generations move: the type its first segment names, else all */
    } ok[] = {
        { "{\"pattern\":\"dashboard:*:org:" ORG "\"}", "dashboard:*:org:{" ORG "}", DC_QBITS_CACHED },
        { "{\"pattern\":\"dashboard:*:org:" ORG ":*\"}", "dashboard:*:org:{" ORG "}:*", DC_QBITS_CACHED },
        { "{\"pattern\":\"dashboard:stats:org:" ORG "\"}", "dashboard:stats:org:{" ORG "}", DC_QBIT(STATS) },
        { "{\"pattern\":\"dashboard:units:*:org:" ORG "\"}", "dashboard:units:*:org:{" ORG "}",
          DC_QBIT(UNITS) },
        { "{\"pattern\":\"dashboard:alerts:count:org:" ORG ":*\"}", "dashboard:alerts:count:org:{" ORG "}:*",
          DC_QBIT(ALERTS) },
        { "{\"pattern\":\"dashboard:temperature:trends:org:" ORG ":unit:" UNIT ":*\"}",
          "dashboard:temperature:trends:org:{" ORG "}:unit:" UNIT ":*", DC_QBIT(TEMPERATURE) },
        { "{\"pattern\":\"dashboard:DEVICES:*:org:" ORG "\"}", "dashboard:devices:*:org:{" ORG "}",
          DC_QBIT(DEVICES) },
        { "{\"pattern\":\"dashboard:compliance:org:" ORG "\"}", "dashboard:compliance:org:{" ORG "}",
          DC_QBIT(COMPLIANCE) },
        /* audit is never cached, and a word no query type is named: every type, to be safe */
        { "{\"pattern\":\"dashboard:audit:org:" ORG "\"}", "dashboard:audit:org:{" ORG "}", DC_QBITS_CACHED },
        { "{\"pattern\":\"dashboard:sites:*:org:" ORG "\"}", "dashboard:sites:*:org:{" ORG "}",
          DC_QBITS_CACHED },
        { "{\"pattern\":\"dashboard:*:org:550E8400-E29B-41D4-A716-446655440000\"}",
          "dashboard:*:org:{" ORG "}", DC_QBITS_CACHED },
        /* as the keys spell it: the hash tag */
        { "{\"pattern\":\"dashboard:*:org:{" ORG "}\"}", "dashboard:*:org:{" ORG "}", DC_QBITS_CACHED },
        { "{\"pattern\":\"dashboard:alerts:count:org:{" ORG "}:unit:*\"}",
          "dashboard:alerts:count:org:{" ORG "}:unit:*", DC_QBIT(ALERTS) },
    };
    dc_inval_msg_t m;
    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_int_equal(parse(ok[i].msg, &m), DC_OK);
        assert_int_equal(m.kind, DC_INV_PATTERN);
        assert_string_equal(m.org_id, ORG);
        assert_string_equal(m.pattern, ok[i].pattern);
        if (m.queries != ok[i].queries)
            fail_msg("%s: queries %#x, want %#x", ok[i].msg, m.queries, ok[i].queries);
    }
}

/* An untagged pattern is tagged on parsing: one too long for the two braces is refused, not cut. */
static void test_tagged_pattern_fits(void **state)
{
    char           msg[512], pat[300];
    dc_inval_msg_t m;

    (void)state;
    for (size_t len = 250; len <= 255; len++) {
        size_t head = len - strlen("dashboard:") - strlen("org:" ORG);
        int    rc;

        /* dashboard:[ab:]*:*: ... *:org:<uuid>, len bytes */
        strcpy(pat, head % 2 ? "dashboard:ab:" : "dashboard:");
        for (size_t i = head % 2 ? 3 : 0; i < head; i += 2)
            strcat(pat, "*:");
        strcat(pat, "org:" ORG);
        assert_int_equal(strlen(pat), len);
        snprintf(msg, sizeof(msg), "{\"pattern\":\"%s\"}", pat);
        rc = parse(msg, &m);
        assert_int_equal(rc, len + 2 < DC_INVAL_PATTERN_MAX ? DC_OK : DC_EINVAL);
        if (rc == DC_OK)
            assert_int_equal(strlen(m.pattern), len + 2);
    }
}

static void test_clear_all_needs_scope(void **state)
{
    dc_inval_msg_t m;
    (void)state;
    assert_int_equal(parse("{\"pattern\":\"dashboard:*\",\"scope\":\"all\"}", &m), DC_OK);
    assert_int_equal(m.kind, DC_INV_ALL);
    assert_int_equal(m.queries, DC_QBITS_CACHED);
    assert_int_equal(parse("{\"pattern\":\"dashboard:*\"}", &m), DC_EINVAL);
    assert_int_equal(parse("{\"pattern\":\"dashboard:*\",\"scope\":\"everything\"}", &m), DC_EINVAL);
    assert_int_equal(parse("{\"pattern\":\"dashboard:*:org:" ORG "\",\"scope\":\"all\"}", &m), DC_EINVAL);
}

static void test_hostile_patterns_are_refused(void **state)
{
    static const char *const bad[] = {
        "{\"pattern\":\"dashboard:*:org:*\"}",
        "{\"pattern\":\"dashboard:*:org:{*}\"}",
        "{\"pattern\":\"dashboard:*:org:{" ORG "\"}",
        "{\"pattern\":\"dashboard:*:org:" ORG "}\"}",
        "{\"pattern\":\"dashboard:*:org:{{" ORG "}}\"}",
        "{\"pattern\":\"dashboard:*:org:{" ORG "}*\"}",
        "{\"pattern\":\"dashboard:*:org:{" ORG "}:org:{" ORG2 "}\"}",
        "{\"pattern\":\"dashboard:*{*}:org:" ORG "\"}",
        "{\"pattern\":\"dashboard:*:org:a*\"}",
        "{\"pattern\":\"dashboard:*:org:[a-f]*\"}",
        "{\"pattern\":\"dashboard:*:org:550e8400-e29b-41d4-a716-44665544000?\"}",
        "{\"pattern\":\"dashboard:*:org:550e8400-e29b-41d4-a716-4466554400*\"}",
        "{\"pattern\":\"dashboard:*:org:a[c]me\"}",
        "{\"pattern\":\"dashboard:*\\\\:org:" ORG "\"}",
        "{\"pattern\":\"dashboard:*\"}",
        "{\"pattern\":\"*\"}",
        "{\"pattern\":\"*:org:" ORG "\"}",
        "{\"pattern\":\"session:*:org:" ORG "\"}",
        "{\"pattern\":\"dashcache:gen:org:" ORG "\"}",
        "{\"pattern\":\"dashcache:gen:units:org:" ORG "\"}",
        "{\"pattern\":\"dashboard:stats*:org:" ORG "\"}",
        "{\"pattern\":\"dashboard:*:org:" ORG ":org:" ORG2 "\"}",
        "{\"pattern\":\"dashboard:*:org:" ORG ":org\"}",
        "{\"pattern\":\"dashboard:*\",\"scope\":\"all\\u0000\"}",
        "{\"orgId\":\"" ORG "\\u0000x\"}",
        "{\"pattern\":\"dashboard:*:org:" ORG "\\u0000:org:" ORG2 "\"}",
        "{\"pattern\":\"dashboard:stats\"}",
        "{\"pattern\":\"dashboard:*:org:" ORG " \"}",
        "{\"pattern\":\"dashboard:*:org:" ORG ":unit:a*\"}",
        "{\"pattern\":\"\"}",
        "{\"pattern\":42}",
        "{\"orgId\":\"*\"}",
        "{\"orgId\":\"550e8400-e29b-41d4-a716-44665544000*\"}",
        "{\"orgId\":42}",
        "{\"orgId\":\"" ORG "\",\"pattern\":\"dashboard:*:org:" ORG "\"}",
        "{}",
        "[]",
        "\"dashboard:*\"",
        "{\"orgId\":",
        "not json",
        "{\"orgId\":\"" ORG "\"} trailing",
        "{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":1}}}},\"orgId\":\"" ORG "\"}",
    };
    dc_inval_msg_t m;
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse(bad[i], &m) != DC_EINVAL)
            fail_msg("accepted: %s", bad[i]);
    }
}

static void test_size_and_nul_limits(void **state)
{
    char          *big = malloc(DC_INVAL_MSG_MAX + 64);
    char           why[128];
    dc_inval_msg_t m;
    int            n;
    (void)state;

    n = snprintf(big, DC_INVAL_MSG_MAX + 64, "{\"orgId\":\"%s\",\"pad\":\"", ORG);
    memset(big + n, 'x', DC_INVAL_MSG_MAX + 60 - (size_t)n);
    memcpy(big + DC_INVAL_MSG_MAX + 60, "\"}", 3);
    assert_int_equal(dc_inval_parse(big, strlen(big), &m, why, sizeof(why)), DC_EINVAL);
    assert_non_null(strstr(why, "4 KiB"));
    assert_int_equal(dc_inval_parse("{\"orgId\":\"" ORG "\"}\0x", 50, &m, why, sizeof(why)), DC_EINVAL);
    assert_int_equal(dc_inval_parse("", 0, &m, why, sizeof(why)), DC_EINVAL);
    free(big);
}

/*
 * What each kind of change invalidates, from the SQL of dc_query.c: a
 * reading moves units status, trends, compliance and stats but not alerts
 * count nor devices online; an alert moves alerts count and stats; a
 * device seen moves devices online and stats; anything else every type.
 */
static void test_changes_map_to_the_query_types_that_read_them(void **state)
{
    static const struct {
        const char *kind;
        dc_change_t change;
        unsigned    queries;
    } cases[] = {
        { "readings", DC_CHANGE_READINGS,
          DC_QBIT(STATS) | DC_QBIT(UNITS) | DC_QBIT(TEMPERATURE) | DC_QBIT(COMPLIANCE) },
        { "units.latest", DC_CHANGE_UNIT_LATEST,
          DC_QBIT(STATS) | DC_QBIT(UNITS) | DC_QBIT(TEMPERATURE) | DC_QBIT(COMPLIANCE) },
        { "alerts", DC_CHANGE_ALERTS, DC_QBIT(STATS) | DC_QBIT(ALERTS) },
        { "devices.seen", DC_CHANGE_DEVICE_SEEN, DC_QBIT(STATS) | DC_QBIT(DEVICES) },
        { "devices", DC_CHANGE_OTHER, DC_QBITS_CACHED },
        { "units", DC_CHANGE_OTHER, DC_QBITS_CACHED },
        { "sites", DC_CHANGE_OTHER, DC_QBITS_CACHED },
        { "organizations", DC_CHANGE_OTHER, DC_QBITS_CACHED },
        { "reading", DC_CHANGE_OTHER, DC_QBITS_CACHED },
        { "readings.x", DC_CHANGE_OTHER, DC_QBITS_CACHED },
        { "", DC_CHANGE_OTHER, DC_QBITS_CACHED },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        dc_change_t ch = dc_endpoint_change(cases[i].kind, strlen(cases[i].kind));
        if (ch != cases[i].change)
            fail_msg("kind \"%s\": change %d, want %d", cases[i].kind, ch, cases[i].change);
        if (dc_endpoint_change_queries(1u << ch) != cases[i].queries)
            fail_msg("kind \"%s\": queries %#x, want %#x", cases[i].kind,
                     dc_endpoint_change_queries(1u << ch), cases[i].queries);
    }
    /* the kind is compared whole: a prefix of a known kind is not it */
    assert_int_equal(dc_endpoint_change("readings", 4), DC_CHANGE_OTHER);
    assert_int_equal(dc_endpoint_change(NULL, 0), DC_CHANGE_OTHER);
    /* a union of changes is the union of their types; none is none; audit is never among them */
    assert_int_equal(dc_endpoint_change_queries(0), 0);
    assert_int_equal(dc_endpoint_change_queries(DC_CHANGE_BIT(ALERTS) | DC_CHANGE_BIT(DEVICE_SEEN)),
                     DC_QBIT(STATS) | DC_QBIT(ALERTS) | DC_QBIT(DEVICES));
    assert_int_equal(dc_endpoint_change_queries(~0u), DC_QBITS_CACHED);
    assert_int_equal(DC_QBITS_CACHED & DC_QBIT(AUDIT), 0);
    /* an ingest that opened no alert leaves alerts count alone */
    assert_int_equal(dc_endpoint_change_queries(DC_CHANGE_BIT(READINGS) | DC_CHANGE_BIT(UNIT_LATEST) |
                                                DC_CHANGE_BIT(DEVICE_SEEN)) &
                         DC_QBIT(ALERTS),
                     0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_org_message),
        cmocka_unit_test(test_tenant_patterns),
        cmocka_unit_test(test_tagged_pattern_fits),
        cmocka_unit_test(test_clear_all_needs_scope),
        cmocka_unit_test(test_hostile_patterns_are_refused),
        cmocka_unit_test(test_size_and_nul_limits),
        cmocka_unit_test(test_changes_map_to_the_query_types_that_read_them),
    };
    return cmocka_run_group_tests_name("dc_inval", tests, NULL, NULL);
}
