/*
 * dc_request: UUID validation and folding, and the query string of each
 * route: which parameters it takes, their bounds, duplicates, missing '=',
 * percent-decoding, and the 400 each bad value becomes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dc_request.h"

#define ORG     "550e8400-e29b-41d4-a716-446655440000"
#define UNIT    "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
#define UNIT_UP "6BA7B810-9DAD-11D1-80B4-00C04FD430C8"

#define HOURS_MSG "hours must be an integer between 1 and 168"
#define LIMIT_MSG "limit must be an integer between 1 and 500"
#define FORCE_MSG "forceRefresh must be true or false"
#define UNIT_MSG  "unitId must be a UUID"

static const dc_qtype_t all_qtypes[] = {
    DC_Q_STATS, DC_Q_UNITS, DC_Q_ALERTS, DC_Q_TEMPERATURE, DC_Q_DEVICES, DC_Q_COMPLIANCE, DC_Q_AUDIT,
};

static int uuid(const char *s, size_t n, char out[DC_UUID_LEN + 1])
{
    memset(out, 'X', DC_UUID_LEN + 1);
    return dc_request_parse_uuid(s, n, out);
}

static void assert_uuid_ok(const char *s, const char *want)
{
    char out[DC_UUID_LEN + 1];

    if (uuid(s, strlen(s), out) != DC_OK)
        fail_msg("rejected \"%s\"", s);
    assert_string_equal(out, want);
}

static void assert_uuid_bad(const char *s, size_t n)
{
    char out[DC_UUID_LEN + 1];

    if (uuid(s, n, out) != DC_EINVAL)
        fail_msg("accepted \"%.*s\" (n=%zu)", (int)n, s, n);
}

/* ORG with s[i] replaced by c. */
static void assert_uuid_bad_at(size_t i, char c)
{
    char s[DC_UUID_LEN + 1] = ORG;

    s[i] = c;
    assert_uuid_bad(s, DC_UUID_LEN);
}

static void test_uuid_valid(void **state)
{
    (void)state;
    assert_uuid_ok(ORG, ORG);
    assert_uuid_ok(UNIT, UNIT);
    assert_uuid_ok("00000000-0000-0000-0000-000000000000", "00000000-0000-0000-0000-000000000000");
    assert_uuid_ok("ffffffff-ffff-ffff-ffff-ffffffffffff", "ffffffff-ffff-ffff-ffff-ffffffffffff");
}

static void test_uuid_upper_case_folded(void **state)
{
    (void)state;
    assert_uuid_ok(UNIT_UP, UNIT);
    assert_uuid_ok("550E8400-e29B-41d4-A716-446655440000", ORG);
    assert_uuid_ok("ABCDEFAB-CDEF-ABCD-EFAB-CDEFABCDEFAB", "abcdefab-cdef-abcd-efab-cdefabcdefab");
}

static void test_uuid_uses_only_n_bytes(void **state)
{
    char out[DC_UUID_LEN + 1];

    (void)state;
    assert_int_equal(uuid(ORG "/stats", DC_UUID_LEN, out), DC_OK);
    assert_string_equal(out, ORG);
}

static void test_uuid_wrong_length(void **state)
{
    (void)state;
    assert_uuid_bad(ORG, 0);
    assert_uuid_bad(ORG, DC_UUID_LEN - 1);
    assert_uuid_bad(ORG "0", DC_UUID_LEN + 1);
    assert_uuid_bad("550e8400e29b41d4a716446655440000", 32);
    assert_uuid_bad("{" ORG "}", DC_UUID_LEN + 2);
    assert_uuid_bad("urn:uuid:" ORG, DC_UUID_LEN + 9);
}

static void test_uuid_misplaced_hyphens(void **state)
{
    (void)state;
    assert_uuid_bad("550e840-0e29b-41d4-a716-446655440000", DC_UUID_LEN);
    assert_uuid_bad("550e8400-e29b4-1d4-a716-446655440000", DC_UUID_LEN);
    assert_uuid_bad("550e8400-e29b-41d4a-716-446655440000", DC_UUID_LEN);
    assert_uuid_bad("550e8400-e29b-41d4-a7164-46655440000", DC_UUID_LEN);
    assert_uuid_bad("550e8400e29b-41d4-a716-4466554400000", DC_UUID_LEN);
    assert_uuid_bad("550e8400-e29b-41d4-a716-44665544000-", DC_UUID_LEN);
    assert_uuid_bad("-50e8400-e29b-41d4-a716-446655440000", DC_UUID_LEN);
    assert_uuid_bad("550e8400ae29b-41d4-a716-446655440000", DC_UUID_LEN);
    assert_uuid_bad("550e8400_e29b_41d4_a716_446655440000", DC_UUID_LEN);
}

static void test_uuid_non_hex(void **state)
{
    static const char bad[] = { 'g', 'G',  'z', ' ',  '+',  '.', '/',        ':',       '{',
                                '%', '\'', '"', '\\', '\n', '-', (char)0xc3, (char)0xff };

    (void)state;
    for (size_t i = 0; i < DC_UUID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            continue;
        for (size_t j = 0; j < sizeof(bad); j++)
            assert_uuid_bad_at(i, bad[j]);
    }
}

static void test_uuid_glob_characters(void **state)
{
    static const char   glob[] = { '*', '?', '[', ']', '^', '!' };
    static const size_t at[] = { 0, 7, 8, 13, 20, 35 };

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(at); i++)
        for (size_t j = 0; j < sizeof(glob); j++)
            assert_uuid_bad_at(at[i], glob[j]);
    assert_uuid_bad("********-****-****-****-************", DC_UUID_LEN);
    assert_uuid_bad("550e8400-e29b-41d4-a716-44665544000*", DC_UUID_LEN);
    assert_uuid_bad("[0-9a-f]-e29b-41d4-a716-446655440000", DC_UUID_LEN);
}

static void test_uuid_nul_inside_length(void **state)
{
    (void)state;
    assert_uuid_bad_at(0, '\0');
    assert_uuid_bad_at(8, '\0');
    assert_uuid_bad_at(20, '\0');
    assert_uuid_bad_at(35, '\0');
}

static void init(dc_request_t *req, dc_route_t route, dc_qtype_t q)
{
    memset(req, 0x5a, sizeof(*req));
    req->route = route;
    req->qtype = q;
}

static int parse(dc_qtype_t q, const char *query, dc_request_t *req, dc_error_t *err)
{
    init(req, DC_ROUTE_QUERY, q);
    memset(err, 0, sizeof(*err));
    return dc_request_parse_query(req, query, err);
}

static void assert_parses(dc_qtype_t q, const char *query, dc_request_t *req)
{
    dc_error_t err;

    if (parse(q, query, req, &err) != DC_OK)
        fail_msg("%s?%s: %d %s: %s", dc_qtype_name(q), query, err.status, err.code, err.message);
}

static void assert_rejects(dc_qtype_t q, const char *query, const char *code, const char *message)
{
    dc_request_t req;
    dc_error_t   err;

    if (parse(q, query, &req, &err) != DC_EINVAL)
        fail_msg("%s?%s was accepted", dc_qtype_name(q), query);
    assert_int_equal(err.status, 400);
    assert_non_null(err.code);
    assert_string_equal(err.code, code);
    assert_null(err.allow);
    assert_int_equal(err.index, -1);
    assert_string_equal(err.message, message);
}

static void assert_defaults(const dc_request_t *req)
{
    assert_int_equal(req->force_refresh, 0);
    assert_int_equal(req->hours, DC_HOURS_DEFAULT);
    assert_int_equal(req->limit, DC_LIMIT_DEFAULT);
    assert_string_equal(req->unit_id, "");
}

static void test_query_empty_gives_defaults(void **state)
{
    dc_request_t req;

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(all_qtypes); i++) {
        assert_parses(all_qtypes[i], NULL, &req);
        assert_defaults(&req);
        assert_parses(all_qtypes[i], "", &req);
        assert_defaults(&req);
        assert_parses(all_qtypes[i], "&&", &req);
        assert_defaults(&req);
    }
}

static void test_query_leaves_route_and_ids(void **state)
{
    dc_request_t req;
    dc_error_t   err;

    (void)state;
    init(&req, DC_ROUTE_QUERY, DC_Q_TEMPERATURE);
    req.head = 1;
    memcpy(req.org_id, ORG, sizeof(ORG));
    assert_int_equal(dc_request_parse_query(&req, "hours=5", &err), DC_OK);
    assert_int_equal(req.route, DC_ROUTE_QUERY);
    assert_int_equal(req.qtype, DC_Q_TEMPERATURE);
    assert_int_equal(req.head, 1);
    assert_string_equal(req.org_id, ORG);
    assert_int_equal(req.hours, 5);
}

static void test_force_refresh_values(void **state)
{
    static const struct {
        const char *query;
        int         want;
    } ok[] = {
        { "forceRefresh=true", 1 },
        { "forceRefresh=1", 1 },
        { "forceRefresh=false", 0 },
        { "forceRefresh=0", 0 },
        { "forceRefresh=%74rue", 1 },
        { "forceRefresh=tru%65", 1 },
        { "_=1700000000&forceRefresh=true&v=2", 1 },
    };
    static const dc_qtype_t takes_it[] = {
        DC_Q_STATS, DC_Q_UNITS, DC_Q_ALERTS, DC_Q_TEMPERATURE, DC_Q_DEVICES, DC_Q_COMPLIANCE,
    };
    dc_request_t req;

    (void)state;
    for (size_t q = 0; q < DC_ARRAY_LEN(takes_it); q++) {
        for (size_t i = 0; i < DC_ARRAY_LEN(ok); i++) {
            assert_parses(takes_it[q], ok[i].query, &req);
            if (req.force_refresh != ok[i].want)
                fail_msg("%s?%s: force_refresh %d", dc_qtype_name(takes_it[q]), ok[i].query,
                         req.force_refresh);
        }
    }
}

static void test_force_refresh_bad(void **state)
{
    static const char *const bad[] = {
        "forceRefresh=",        "forceRefresh=yes", "forceRefresh=TRUE",  "forceRefresh=True",
        "forceRefresh=2",       "forceRefresh=tru", "forceRefresh=truee", "forceRefresh=true+",
        "forceRefresh=%20true", "forceRefresh=-1",  "forceRefresh=01",    "forceRefresh=true=1",
        "forceRefresh=true%00",
    };

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(bad); i++) {
        assert_rejects(DC_Q_STATS, bad[i], "invalid_parameter", FORCE_MSG);
        assert_rejects(DC_Q_TEMPERATURE, bad[i], "invalid_parameter", FORCE_MSG);
    }
}

static void test_hours_bounds(void **state)
{
    static const struct {
        const char *query;
        int         want;
    } ok[] = {
        { "hours=1", 1 },     { "hours=2", 2 },    { "hours=24", 24 },         { "hours=167", 167 },
        { "hours=168", 168 }, { "hours=0%31", 1 }, { "hours=%31%36%38", 168 },
    };
    dc_request_t req;

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(ok); i++) {
        assert_parses(DC_Q_TEMPERATURE, ok[i].query, &req);
        assert_int_equal(req.hours, ok[i].want);
    }
}

static void test_hours_bad(void **state)
{
    static const char *const bad[] = {
        "hours=0",          "hours=169",
        "hours=-1",         "hours=abc",
        "hours=",           "hours=1e2",
        "hours=+5",         "hours=%2B5",
        "hours=5+",         "hours=%205",
        "hours=1.5",        "hours=0x10",
        "hours=24h",        "hours=99999999999999999999",
        "hours=2147483648", "hours=4294967297",
        "hours=-0",         "hours=1000",
        "hours=%",          "hours=24%00",
    };

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(bad); i++)
        assert_rejects(DC_Q_TEMPERATURE, bad[i], "invalid_parameter", HOURS_MSG);
}

static void test_limit_bounds(void **state)
{
    static const struct {
        const char *query;
        int         want;
    } ok[] = {
        { "limit=1", 1 },
        { "limit=100", 100 },
        { "limit=499", 499 },
        { "limit=500", 500 },
    };
    static const char *const bad[] = {
        "limit=0",   "limit=501",     "limit=-1",
        "limit=abc", "limit=",        "limit=5e2",
        "limit=+5",  "limit=1000000", "limit=99999999999999999999",
    };
    dc_request_t req;

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(ok); i++) {
        assert_parses(DC_Q_AUDIT, ok[i].query, &req);
        assert_int_equal(req.limit, ok[i].want);
    }
    for (size_t i = 0; i < DC_ARRAY_LEN(bad); i++)
        assert_rejects(DC_Q_AUDIT, bad[i], "invalid_parameter", LIMIT_MSG);
}

static void test_unit_id_on_alerts(void **state)
{
    static const char *const ok[] = {
        "unitId=" UNIT,
        "unitId=" UNIT_UP,
        "unitId=6ba7b810%2D9dad%2D11d1%2D80b4%2D00c04fd430c8",
        "unitId=%36%62%61%37%62%38%31%30-9dad-11d1-80b4-00C04FD430C8",
        "forceRefresh=1&unitId=" UNIT "&_=3",
    };
    dc_request_t req;

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(ok); i++) {
        assert_parses(DC_Q_ALERTS, ok[i], &req);
        assert_string_equal(req.unit_id, UNIT);
    }
}

static void test_unit_id_bad(void **state)
{
    static const char *const bad[] = {
        "unitId=",
        "unitId=42",
        "unitId=" UNIT "0",
        "unitId=6ba7b810-9dad-11d1-80b4-00c04fd430c*",
        "unitId=6ba7b810-9dad-11d1-80b4-00c04fd430c%2A",
        "unitId=6ba7b810-9dad-11d1-80b4-00c04fd430c?",
        "unitId=%5B6ba7b810-9dad-11d1-80b4-00c04fd430c%5D",
        "unitId=6ba7b810-9dad-11d1-80b4-00c04fd430c%00",
        "unitId=6ba7b810-9dad-11d1-80b4-00c04fd430c+",
        "unitId=6ba7b810+9dad-11d1-80b4-00c04fd430c8",
        "unitId=6ba7b810-9dad-11d1-80b4-00c04fd430cg",
        "unitId=" UNIT UNIT UNIT,
    };

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(bad); i++)
        assert_rejects(DC_Q_ALERTS, bad[i], "invalid_id", UNIT_MSG);
}

static void test_duplicate_known_parameter(void **state)
{
    (void)state;
    assert_rejects(DC_Q_STATS, "forceRefresh=true&forceRefresh=true", "invalid_parameter",
                   "forceRefresh is given more than once");
    assert_rejects(DC_Q_DEVICES, "forceRefresh=0&x=1&forceRefresh=1", "invalid_parameter",
                   "forceRefresh is given more than once");
    assert_rejects(DC_Q_TEMPERATURE, "hours=1&hours=2", "invalid_parameter", "hours is given more than once");
    assert_rejects(DC_Q_TEMPERATURE, "hours=1&hours", "invalid_parameter", "hours is given more than once");
    assert_rejects(DC_Q_AUDIT, "limit=5&limit=5", "invalid_parameter", "limit is given more than once");
    assert_rejects(DC_Q_ALERTS, "unitId=" UNIT "&unitId=" UNIT, "invalid_parameter",
                   "unitId is given more than once");
}

static void test_unknown_parameters_ignored(void **state)
{
    dc_request_t req;

    (void)state;
    assert_parses(DC_Q_STATS, "_=1700000000", &req);
    assert_defaults(&req);
    assert_parses(DC_Q_STATS, "x=1&x=2&x", &req);
    assert_defaults(&req);
    assert_parses(DC_Q_STATS, "foo=%zz&bar=%&baz", &req);
    assert_defaults(&req);
    assert_parses(DC_Q_STATS, "forcerefresh=maybe&FORCEREFRESH=1&forceRefreshX=1&xforceRefresh=1", &req);
    assert_defaults(&req);
    assert_parses(DC_Q_TEMPERATURE, "hour=0&hourss=0&Hours=0&cb=1&hours=48", &req);
    assert_int_equal(req.hours, 48);
    assert_parses(DC_Q_ALERTS, "=&=x&unitid=bad&unitId=" UNIT, &req);
    assert_string_equal(req.unit_id, UNIT);
}

static void test_parameters_of_other_routes_ignored(void **state)
{
    static const dc_qtype_t no_hours[] = {
        DC_Q_STATS, DC_Q_UNITS, DC_Q_ALERTS, DC_Q_DEVICES, DC_Q_COMPLIANCE, DC_Q_AUDIT,
    };
    static const dc_qtype_t no_unit[] = {
        DC_Q_STATS, DC_Q_UNITS, DC_Q_TEMPERATURE, DC_Q_DEVICES, DC_Q_COMPLIANCE, DC_Q_AUDIT,
    };
    dc_request_t req;

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(no_hours); i++) {
        assert_parses(no_hours[i], "hours=abc&hours=0&hours", &req);
        assert_int_equal(req.hours, DC_HOURS_DEFAULT);
    }
    for (size_t i = 0; i < DC_ARRAY_LEN(no_unit); i++) {
        assert_parses(no_unit[i], "unitId=*&unitId=" UNIT, &req);
        assert_string_equal(req.unit_id, "");
    }
    for (size_t i = 0; i < DC_ARRAY_LEN(all_qtypes); i++) {
        if (all_qtypes[i] == DC_Q_AUDIT)
            continue;
        assert_parses(all_qtypes[i], "limit=0&limit=9999&limit", &req);
        assert_int_equal(req.limit, DC_LIMIT_DEFAULT);
    }
    assert_parses(DC_Q_AUDIT, "forceRefresh=maybe&forceRefresh=true&forceRefresh", &req);
    assert_int_equal(req.force_refresh, 0);
}

static void test_non_query_routes_ignore_everything(void **state)
{
    static const dc_route_t routes[] = { DC_ROUTE_WRITE, DC_ROUTE_HEALTH, DC_ROUTE_METRICS };
    dc_request_t            req;
    dc_error_t              err;

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(routes); i++) {
        init(&req, routes[i], DC_Q_STATS);
        assert_int_equal(dc_request_parse_query(&req, "forceRefresh=maybe&hours=0&limit=0&unitId=*", &err),
                         DC_OK);
        assert_defaults(&req);
    }
}

static void test_missing_equals(void **state)
{
    (void)state;
    assert_rejects(DC_Q_STATS, "forceRefresh", "invalid_parameter", FORCE_MSG);
    assert_rejects(DC_Q_STATS, "_=1&forceRefresh&x=2", "invalid_parameter", FORCE_MSG);
    assert_rejects(DC_Q_TEMPERATURE, "hours", "invalid_parameter", HOURS_MSG);
    assert_rejects(DC_Q_AUDIT, "limit", "invalid_parameter", LIMIT_MSG);
    assert_rejects(DC_Q_ALERTS, "unitId", "invalid_id", UNIT_MSG);
}

static void test_percent_decoding_errors(void **state)
{
    static const char *const force[] = {
        "forceRefresh=%",     "forceRefresh=%4",      "forceRefresh=%zz", "forceRefresh=%g0",
        "forceRefresh=tru%6", "forceRefresh=%%74rue", "forceRefresh=%00",
    };
    static const char *const hours[] = { "hours=%", "hours=%4", "hours=%zz", "hours=1%", "hours=1%3" };

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(force); i++)
        assert_rejects(DC_Q_STATS, force[i], "invalid_parameter", FORCE_MSG);
    for (size_t i = 0; i < DC_ARRAY_LEN(hours); i++)
        assert_rejects(DC_Q_TEMPERATURE, hours[i], "invalid_parameter", HOURS_MSG);
    assert_rejects(DC_Q_ALERTS, "unitId=%", "invalid_id", UNIT_MSG);
    assert_rejects(DC_Q_ALERTS, "unitId=6ba7b810-9dad-11d1-80b4-00c04fd430c%", "invalid_id", UNIT_MSG);
}

static void test_first_bad_parameter_wins(void **state)
{
    (void)state;
    assert_rejects(DC_Q_TEMPERATURE, "hours=0&forceRefresh=maybe", "invalid_parameter", HOURS_MSG);
    assert_rejects(DC_Q_TEMPERATURE, "forceRefresh=maybe&hours=0", "invalid_parameter", FORCE_MSG);
}

static void test_all_parameters_together(void **state)
{
    dc_request_t req;

    (void)state;
    assert_parses(DC_Q_TEMPERATURE, "hours=72&forceRefresh=true&unitId=x&limit=x", &req);
    assert_int_equal(req.hours, 72);
    assert_int_equal(req.force_refresh, 1);
    assert_string_equal(req.unit_id, "");
    assert_int_equal(req.limit, DC_LIMIT_DEFAULT);

    assert_parses(DC_Q_ALERTS, "unitId=" UNIT_UP "&forceRefresh=1&hours=x", &req);
    assert_string_equal(req.unit_id, UNIT);
    assert_int_equal(req.force_refresh, 1);
    assert_int_equal(req.hours, DC_HOURS_DEFAULT);
}

static void test_error_set(void **state)
{
    dc_error_t err;

    (void)state;
    memset(&err, 0x5a, sizeof(err));
    err.allow = "stale";
    err.index = 3;
    assert_int_equal(dc_error_set(&err, 418, "teapot", "%s %d", "short and stout", 2), DC_EINVAL);
    assert_int_equal(err.status, 418);
    assert_string_equal(err.code, "teapot");
    assert_null(err.allow);
    assert_int_equal(err.index, -1);
    assert_string_equal(err.message, "short and stout 2");
}

static void test_error_set_truncates(void **state)
{
    char       longer[400];
    dc_error_t err;

    (void)state;
    memset(longer, 'm', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    assert_int_equal(dc_error_set(&err, 400, "x", "%s", longer), DC_EINVAL);
    assert_int_equal(strlen(err.message), sizeof(err.message) - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid_valid),
        cmocka_unit_test(test_uuid_upper_case_folded),
        cmocka_unit_test(test_uuid_uses_only_n_bytes),
        cmocka_unit_test(test_uuid_wrong_length),
        cmocka_unit_test(test_uuid_misplaced_hyphens),
        cmocka_unit_test(test_uuid_non_hex),
        cmocka_unit_test(test_uuid_glob_characters),
        cmocka_unit_test(test_uuid_nul_inside_length),
        cmocka_unit_test(test_query_empty_gives_defaults),
        cmocka_unit_test(test_query_leaves_route_and_ids),
        cmocka_unit_test(test_force_refresh_values),
        cmocka_unit_test(test_force_refresh_bad),
        cmocka_unit_test(test_hours_bounds),
        cmocka_unit_test(test_hours_bad),
        cmocka_unit_test(test_limit_bounds),
        cmocka_unit_test(test_unit_id_on_alerts),
        cmocka_unit_test(test_unit_id_bad),
        cmocka_unit_test(test_duplicate_known_parameter),
        cmocka_unit_test(test_unknown_parameters_ignored),
        cmocka_unit_test(test_parameters_of_other_routes_ignored),
        cmocka_unit_test(test_non_query_routes_ignore_everything),
        cmocka_unit_test(test_missing_equals),
        cmocka_unit_test(test_percent_decoding_errors),
        cmocka_unit_test(test_first_bad_parameter_wins),
        cmocka_unit_test(test_all_parameters_together),
        cmocka_unit_test(test_error_set),
        cmocka_unit_test(test_error_set_truncates),
    };

    return cmocka_run_group_tests_name("dc_request", tests, NULL, NULL);
}
