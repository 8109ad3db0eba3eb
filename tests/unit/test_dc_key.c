/*
 * dc_key: the exact key of every cacheable query, built from requests as the
 * router makes them; what is never cached; buffers that are too small; the
 * tenant segment every key carries; and the generation key of an org.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dc_key.h"
#include "dc_router.h"

#define ORG     "550e8400-e29b-41d4-a716-446655440000"
#define ORG_UP  "550E8400-E29B-41D4-A716-446655440000"
#define ORG2    "7c9e6679-7425-40de-944b-e07fc1f90ae7"
#define UNIT    "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
#define UNIT_UP "6BA7B810-9DAD-11D1-80B4-00C04FD430C8"
#define BASE    "/api/dashboard/orgs/"

static const struct {
    const char *path;
    const char *query;
    const char *key;
} cases[] = {
    { BASE ORG "/stats", NULL, "dashboard:stats:org:{" ORG "}" },
    { BASE ORG "/units/status", NULL, "dashboard:units:status:org:{" ORG "}" },
    { BASE ORG "/alerts/count", NULL, "dashboard:alerts:count:org:{" ORG "}" },
    { BASE ORG "/alerts/count", "unitId=" UNIT, "dashboard:alerts:count:org:{" ORG "}:unit:" UNIT },
    { BASE ORG "/units/" UNIT "/temperature/trends", NULL,
      "dashboard:temperature:trends:org:{" ORG "}:unit:" UNIT ":hours:24" },
    { BASE ORG "/units/" UNIT "/temperature/trends", "hours=1",
      "dashboard:temperature:trends:org:{" ORG "}:unit:" UNIT ":hours:1" },
    { BASE ORG "/units/" UNIT "/temperature/trends", "hours=168",
      "dashboard:temperature:trends:org:{" ORG "}:unit:" UNIT ":hours:168" },
    { BASE ORG "/devices/online", NULL, "dashboard:devices:online:org:{" ORG "}" },
    { BASE ORG "/compliance", NULL, "dashboard:compliance:org:{" ORG "}" },
    { BASE ORG2 "/stats", NULL, "dashboard:stats:org:{" ORG2 "}" },
};

static void request(const char *path, const char *query, dc_request_t *req)
{
    dc_error_t err;

    if (dc_router_route("GET", path, query, req, &err) != DC_OK)
        fail_msg("%s?%s: %d %s", path, query ? query : "", err.status, err.message);
}

static void assert_key(const char *path, const char *query, const char *want)
{
    dc_request_t req;
    char         key[DC_KEY_MAX];
    int          n;

    request(path, query, &req);
    memset(key, 'X', sizeof(key));
    n = dc_key_build(&req, key, sizeof(key));
    if (n < 0)
        fail_msg("%s?%s: %d", path, query ? query : "", n);
    assert_string_equal(key, want);
    assert_int_equal(n, strlen(want));
}

static void test_every_key(void **state)
{
    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(cases); i++)
        assert_key(cases[i].path, cases[i].query, cases[i].key);
}

static void test_key_ids_are_lower_case(void **state)
{
    (void)state;
    assert_key(BASE ORG_UP "/stats", NULL, "dashboard:stats:org:{" ORG "}");
    assert_key(BASE ORG_UP "/alerts/count", "unitId=" UNIT_UP,
               "dashboard:alerts:count:org:{" ORG "}:unit:" UNIT);
    assert_key(BASE ORG_UP "/units/" UNIT_UP "/temperature/trends", "hours=48",
               "dashboard:temperature:trends:org:{" ORG "}:unit:" UNIT ":hours:48");
}

static void test_key_ignores_force_refresh_and_cache_busters(void **state)
{
    (void)state;
    assert_key(BASE ORG "/stats", "forceRefresh=true", "dashboard:stats:org:{" ORG "}");
    assert_key(BASE ORG "/stats", "_=1700000000&v=2", "dashboard:stats:org:{" ORG "}");
    assert_key(BASE ORG "/alerts/count", "forceRefresh=1&_=1", "dashboard:alerts:count:org:{" ORG "}");
    assert_key(BASE ORG "/units/" UNIT "/temperature/trends", "forceRefresh=true&hours=24&_=9",
               "dashboard:temperature:trends:org:{" ORG "}:unit:" UNIT ":hours:24");
}

/* dc_core.h: the second segment of the key is the query type's name. */
static void test_second_segment_is_qtype_name(void **state)
{
    dc_request_t req;
    char         key[DC_KEY_MAX], prefix[64];

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(cases); i++) {
        request(cases[i].path, cases[i].query, &req);
        assert_true(dc_key_build(&req, key, sizeof(key)) > 0);
        snprintf(prefix, sizeof(prefix), "dashboard:%s:", dc_qtype_name(req.qtype));
        if (strncmp(key, prefix, strlen(prefix)) != 0)
            fail_msg("%s does not start with %s", key, prefix);
    }
}

static void test_every_key_carries_its_tenant(void **state)
{
    dc_request_t req;
    char         key[DC_KEY_MAX];
    const char  *seg, *end;

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(cases); i++) {
        request(cases[i].path, cases[i].query, &req);
        assert_true(dc_key_build(&req, key, sizeof(key)) > 0);
        seg = strstr(key, ":org:");
        if (seg == NULL)
            fail_msg("%s has no org segment", key);
        assert_null(strstr(seg + 1, ":org:"));
        /* the organization is the key's hash tag: its first {...} */
        assert_ptr_equal(strchr(key, '{'), seg + 5);
        end = seg + 6 + DC_UUID_LEN;
        assert_memory_equal(seg + 6, req.org_id, DC_UUID_LEN);
        assert_true(end[0] == '}' && (end[1] == '\0' || end[1] == ':'));
        assert_null(strchr(end + 1, '{'));
        assert_null(strpbrk(key, "*?[]\\ "));
    }
}

static void test_not_cacheable(void **state)
{
    static const char *const paths[] = { BASE ORG "/audit", "/health", "/metrics" };
    dc_request_t             req;
    char                     key[DC_KEY_MAX];

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(paths); i++) {
        request(paths[i], "limit=5", &req);
        assert_int_equal(dc_key_build(&req, key, sizeof(key)), DC_DECLINED);
    }
    memset(&req, 0, sizeof(req));
    req.route = DC_ROUTE_NONE;
    assert_int_equal(dc_key_build(&req, key, sizeof(key)), DC_DECLINED);
}

static void test_writes_not_cacheable(void **state)
{
    static const char *const paths[] = {
        "/api/ingest/readings",
        BASE ORG "/alerts",
        BASE ORG "/alerts/" UNIT "/resolve",
        BASE ORG "/devices/" UNIT "/status",
    };
    dc_request_t req;
    dc_error_t   err;
    char         key[DC_KEY_MAX];

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(paths); i++) {
        assert_int_equal(dc_router_route("POST", paths[i], NULL, &req, &err), DC_OK);
        assert_int_equal(dc_key_build(&req, key, sizeof(key)), DC_DECLINED);
    }
}

/* One generation per cached query type: dashcache:gen:<label>:org:<org>, none for audit. */
static void test_generation_key(void **state)
{
    static const char *const want[] = {
        [DC_Q_STATS] = "dashcache:gen:stats:org:{" ORG "}",
        [DC_Q_UNITS] = "dashcache:gen:units:org:{" ORG "}",
        [DC_Q_ALERTS] = "dashcache:gen:alerts:org:{" ORG "}",
        [DC_Q_TEMPERATURE] = "dashcache:gen:temperature:org:{" ORG "}",
        [DC_Q_DEVICES] = "dashcache:gen:devices:org:{" ORG "}",
        [DC_Q_COMPLIANCE] = "dashcache:gen:compliance:org:{" ORG "}",
    };
    char key[DC_KEY_MAX];

    (void)state;
    assert_int_equal(DC_ARRAY_LEN(want), DC_Q_AUDIT);
    for (unsigned q = 0; q < DC_Q_AUDIT; q++) {
        size_t len = strlen(want[q]);
        assert_int_equal(dc_key_gen(ORG, (dc_qtype_t)q, key, sizeof(key)), (int)len);
        assert_string_equal(key, want[q]);
        assert_int_equal(dc_key_gen(ORG, (dc_qtype_t)q, key, len + 1), (int)len);
        assert_string_equal(key, want[q]);
        assert_int_equal(dc_key_gen(ORG, (dc_qtype_t)q, key, len), DC_ERROR);
        assert_int_equal(dc_key_gen(ORG, (dc_qtype_t)q, key, 0), DC_ERROR);
    }
    /* never cached, or no query type at all: no generation */
    assert_int_equal(dc_key_gen(ORG, DC_Q_AUDIT, key, sizeof(key)), DC_ERROR);
    assert_int_equal(dc_key_gen(ORG, DC_Q_COUNT, key, sizeof(key)), DC_ERROR);
    assert_int_equal(dc_key_gen(ORG, (dc_qtype_t)-1, key, sizeof(key)), DC_ERROR);
}

/* The LSN keys of the standby reads (dc_replica): the organization's in its slot, the global one apart. */
static void test_lsn_key(void **state)
{
    char key[DC_KEY_MAX];
    int  n;

    (void)state;
    assert_int_equal(dc_key_lsn(ORG, key, sizeof(key)), (int)strlen("dashcache:lsn:org:{" ORG "}"));
    assert_string_equal(key, "dashcache:lsn:org:{" ORG "}");
    n = dc_key_lsn(NULL, key, sizeof(key));
    assert_int_equal(n, (int)strlen("dashcache:lsn:all"));
    assert_string_equal(key, "dashcache:lsn:all");
    assert_int_equal(dc_key_lsn(ORG, key, 20), DC_ERROR); /* cut: refused, never a shorter key */
    assert_int_equal(dc_key_lsn(NULL, key, (size_t)n), DC_ERROR);
}

/* Invalidation patterns all start with dashboard:, so none can match a generation. */
static void test_generation_key_outside_dashboard_namespace(void **state)
{
    dc_request_t req;
    char         gen[DC_KEY_MAX], key[DC_KEY_MAX];

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(cases); i++) {
        request(cases[i].path, cases[i].query, &req);
        assert_true(dc_key_gen(ORG, req.qtype, gen, sizeof(gen)) > 0);
        assert_int_not_equal(strncmp(gen, "dashboard:", 10), 0);
        assert_true(dc_key_build(&req, key, sizeof(key)) > 0);
        assert_int_equal(strncmp(key, "dashboard:", 10), 0);
        assert_string_not_equal(key, gen);
    }
}

static void test_too_small_buffer(void **state)
{
    dc_request_t req;
    char         key[DC_KEY_MAX];
    size_t       len;

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(cases); i++) {
        request(cases[i].path, cases[i].query, &req);
        len = strlen(cases[i].key);
        assert_int_equal(dc_key_build(&req, key, len + 1), (int)len);
        assert_int_equal(dc_key_build(&req, key, len), DC_ERROR);
        assert_int_equal(dc_key_build(&req, key, 1), DC_ERROR);
        assert_int_equal(dc_key_build(&req, key, 0), DC_ERROR);
    }
}

static void test_longest_key_fits(void **state)
{
    dc_request_t req;
    char         key[DC_KEY_MAX];

    (void)state;
    request(BASE ORG "/units/" UNIT "/temperature/trends", "hours=168", &req);
    assert_true(dc_key_build(&req, key, sizeof(key)) > 0);
    request(BASE ORG "/alerts/count", "unitId=" UNIT, &req);
    assert_true(dc_key_build(&req, key, sizeof(key)) > 0);
}

static void test_tenants_never_share_a_key(void **state)
{
    dc_request_t a, b;
    char         ka[DC_KEY_MAX], kb[DC_KEY_MAX];

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(cases); i++) {
        const char *rest = cases[i].path + strlen(BASE ORG);
        char        other[256];

        if (strncmp(cases[i].path, BASE ORG, strlen(BASE ORG)) != 0)
            continue;
        snprintf(other, sizeof(other), BASE ORG2 "%s", rest);
        request(cases[i].path, cases[i].query, &a);
        request(other, cases[i].query, &b);
        assert_true(dc_key_build(&a, ka, sizeof(ka)) > 0);
        assert_true(dc_key_build(&b, kb, sizeof(kb)) > 0);
        assert_string_not_equal(ka, kb);
    }
}

/*
 * dc_key_parse is the inverse of dc_key_build: every key of every cached
 * query type gives back the request the router made (as a GET without
 * forceRefresh), and that request gives back the key.
 */
static void test_parse_round_trip(void **state)
{
    unsigned seen = 0;

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(cases); i++) {
        dc_request_t want, got;
        char         key[DC_KEY_MAX];
        size_t       len = strlen(cases[i].key);

        request(cases[i].path, cases[i].query, &want);
        memset(&got, 0x5a, sizeof(got));
        if (dc_key_parse(cases[i].key, len, &got) != DC_OK)
            fail_msg("%s does not parse", cases[i].key);
        assert_int_equal(got.route, DC_ROUTE_QUERY);
        assert_int_equal(got.qtype, want.qtype);
        assert_string_equal(got.org_id, want.org_id);
        assert_string_equal(got.unit_id, want.unit_id);
        assert_int_equal(got.hours, want.hours);
        assert_int_equal(got.limit, want.limit);
        assert_int_equal(got.force_refresh, 0);
        assert_int_equal(got.head, 0);
        assert_string_equal(got.item_id, "");
        assert_int_equal(dc_key_build(&got, key, sizeof(key)), (int)len);
        assert_string_equal(key, cases[i].key);
        seen |= DC_QBIT_OF(got.qtype);
    }
    assert_int_equal(seen, DC_QBITS_CACHED);
}

/* Every hours value the parameter takes, and only those. */
static void test_parse_hours_bounds(void **state)
{
    dc_request_t req;
    char         key[DC_KEY_MAX];

    (void)state;
    for (int h = 0; h <= DC_HOURS_MAX + 1; h++) {
        int n = snprintf(key, sizeof(key),
                         "dashboard:temperature:trends:org:{" ORG "}:unit:" UNIT ":hours:%d", h);
        int rc = dc_key_parse(key, (size_t)n, &req);
        if (h >= 1 && h <= DC_HOURS_MAX) {
            assert_int_equal(rc, DC_OK);
            assert_int_equal(req.hours, h);
        } else {
            assert_int_equal(rc, DC_EINVAL);
        }
    }
}

static void test_parse_rejects(void **state)
{
    static const char *const bad[] = {
        "",
        "dashboard:",
        "dashboard:stats:org:",
        "dashboard:stats:org:{" ORG_UP "}",                          /* ids are stored lower case */
        "dashboard:stats:org:550e8400-e29b-41d4-a716-44665544000",   /* short */
        "dashboard:stats:org:550e8400-e29b-41d4-a716-4466554400000", /* long */
        "dashboard:stats:org:550e8400xe29b-41d4-a716-446655440000",  /* not a UUID */
        "dashboard:stats:org:550e8400-e29b-41d4-a716-44665544000g",  /* not hex */
        "dashboard:stats:org:{" ORG "}:",                            /* trailing */
        "dashboard:stats:org:{" ORG "}:unit:" UNIT,                  /* stats has no unit */
        "dashboard:stats:org:*",                                     /* a pattern */
        "dashboard:*:org:{" ORG "}",                                 /* a pattern */
        "dashboard:STATS:org:{" ORG "}",
        "Dashboard:stats:org:{" ORG "}",
        "dashboard:units:org:{" ORG "}", /* units is units:status */
        "dashboard:units:status:org:{" ORG "}x",
        "dashboard:alerts:count:org:{" ORG "}:unit:", /* no unit id */
        "dashboard:alerts:count:org:{" ORG "}:unit:" UNIT_UP,
        "dashboard:alerts:count:org:{" ORG "}:unit:" UNIT ":unit:" UNIT,
        "dashboard:alerts:count:org:{" ORG "}:hours:24",
        "dashboard:alerts:org:{" ORG "}",
        "dashboard:temperature:trends:org:{" ORG "}",            /* unit and hours missing */
        "dashboard:temperature:trends:org:{" ORG "}:unit:" UNIT, /* hours missing */
        "dashboard:temperature:trends:org:{" ORG "}:hours:24",   /* unit missing */
        "dashboard:temperature:trends:org:{" ORG "}:unit:" UNIT ":hours:",
        "dashboard:temperature:trends:org:{" ORG "}:unit:" UNIT ":hours:024", /* leading zero */
        "dashboard:temperature:trends:org:{" ORG "}:unit:" UNIT ":hours:+24",
        "dashboard:temperature:trends:org:{" ORG "}:unit:" UNIT ":hours:-1",
        "dashboard:temperature:trends:org:{" ORG "}:unit:" UNIT ":hours:24x",
        "dashboard:temperature:trends:org:{" ORG "}:unit:" UNIT ":hours:99999999999999999999",
        "dashboard:temperature:trends:org:{" ORG "}:hours:24:unit:" UNIT, /* order */
        "dashboard:audit:org:{" ORG "}",                                  /* never cached */
        "dashcache:gen:stats:org:{" ORG "}",                              /* a generation, not an answer */
        "dashboard:devices:online:org:{" ORG "} ",
        "dashboard:compliance:org:{" ORG "}\n",
        "dashboard:stats:org:" ORG, /* of a version before the hash tag */
        "dashboard:temperature:trends:org:" ORG ":unit:" UNIT ":hours:24",
        "dashboard:stats:org:{" ORG,
        "dashboard:stats:org:" ORG "}",
        "dashboard:stats:org:{{" ORG "}}",
        "dashboard:stats:org:{}" ORG,
        "dashboard:alerts:count:org:{" ORG "}:unit:{" UNIT "}",
    };
    dc_request_t req;

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(bad); i++)
        if (dc_key_parse(bad[i], strlen(bad[i]), &req) != DC_EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
}

/* The length given is the key: a NUL inside, or a prefix of a good key, is refused. */
static void test_parse_uses_length(void **state)
{
    static const char key[] = "dashboard:stats:org:{" ORG "}\0tail";
    dc_request_t      req;
    size_t            len = strlen(key);

    (void)state;
    assert_int_equal(dc_key_parse(key, len, &req), DC_OK);
    assert_int_equal(dc_key_parse(key, sizeof(key) - 1, &req), DC_EINVAL);
    assert_int_equal(dc_key_parse(key, len - 1, &req), DC_EINVAL);
    assert_int_equal(dc_key_parse(key, 0, &req), DC_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_key),
        cmocka_unit_test(test_key_ids_are_lower_case),
        cmocka_unit_test(test_key_ignores_force_refresh_and_cache_busters),
        cmocka_unit_test(test_second_segment_is_qtype_name),
        cmocka_unit_test(test_every_key_carries_its_tenant),
        cmocka_unit_test(test_not_cacheable),
        cmocka_unit_test(test_writes_not_cacheable),
        cmocka_unit_test(test_generation_key),
        cmocka_unit_test(test_lsn_key),
        cmocka_unit_test(test_generation_key_outside_dashboard_namespace),
        cmocka_unit_test(test_too_small_buffer),
        cmocka_unit_test(test_longest_key_fits),
        cmocka_unit_test(test_tenants_never_share_a_key),
        cmocka_unit_test(test_parse_round_trip),
        cmocka_unit_test(test_parse_hours_bounds),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_parse_uses_length),
    };

    return cmocka_run_group_tests_name("dc_key", tests, NULL, NULL);
}
