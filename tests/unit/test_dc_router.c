/*
 * dc_router: every URL shape of the API to its route and query or write
 * type, ids taken from the path, and the 404, 405 and 400 answers to
 * everything else.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dc_router.h"

#define ORG     "550e8400-e29b-41d4-a716-446655440000"
#define ORG_UP  "550E8400-E29B-41D4-A716-446655440000"
#define UNIT    "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
#define UNIT_UP "6BA7B810-9DAD-11D1-80B4-00C04FD430C8"
#define ITEM    "9f1c2a44-5b6d-4e7f-8a9b-0c1d2e3f4a5b"
#define ITEM_UP "9F1C2A44-5B6D-4E7F-8A9B-0C1D2E3F4A5B"
#define BASE    "/api/dashboard/orgs/"
#define TRENDS  BASE ORG "/units/" UNIT "/temperature/trends"

static const struct {
    const char *path;
    dc_qtype_t  qtype;
    const char *unit;
} shapes[] = {
    { BASE ORG "/stats", DC_Q_STATS, "" },
    { BASE ORG "/units/status", DC_Q_UNITS, "" },
    { BASE ORG "/alerts/count", DC_Q_ALERTS, "" },
    { TRENDS, DC_Q_TEMPERATURE, UNIT },
    { BASE ORG "/devices/online", DC_Q_DEVICES, "" },
    { BASE ORG "/compliance", DC_Q_COMPLIANCE, "" },
    { BASE ORG "/audit", DC_Q_AUDIT, "" },
};

static const struct {
    const char *path;
    dc_wtype_t  wtype;
    const char *org;
    const char *item;
} writes[] = {
    { "/api/ingest/readings", DC_W_INGEST, "", "" },
    { BASE ORG "/alerts", DC_W_ALERT_CREATE, ORG, "" },
    { BASE ORG "/alerts/" ITEM "/resolve", DC_W_ALERT_RESOLVE, ORG, ITEM },
    { BASE ORG "/devices/" ITEM "/status", DC_W_DEVICE_STATUS, ORG, ITEM },
};

static const char *const not_allowed[] = {
    "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "get", "head", "", "GETX", "GE",
};

static int route(const char *method, const char *path, const char *query, dc_request_t *req, dc_error_t *err)
{
    memset(req, 0x5a, sizeof(*req));
    memset(err, 0, sizeof(*err));
    err->allow = "stale";
    return dc_router_route(method, path, query, req, err);
}

static void assert_routes(const char *method, const char *path, const char *query, dc_request_t *req)
{
    dc_error_t err;

    if (route(method, path, query, req, &err) != DC_OK)
        fail_msg("%s %s?%s: %d %s: %s", method, path, query ? query : "", err.status, err.code, err.message);
}

static void assert_answer(const char *method, const char *path, const char *query, int status,
                          const char *code, const char *allow, const char *message)
{
    dc_request_t req;
    dc_error_t   err;

    if (route(method, path, query, &req, &err) != DC_EINVAL)
        fail_msg("%s %s?%s was routed", method, path, query ? query : "");
    if (err.status != status)
        fail_msg("%s %s: status %d, want %d", method, path, err.status, status);
    assert_non_null(err.code);
    assert_string_equal(err.code, code);
    if (message != NULL)
        assert_string_equal(err.message, message);
    if (allow != NULL) {
        assert_non_null(err.allow);
        assert_string_equal(err.allow, allow);
    } else {
        assert_null(err.allow);
    }
}

static void assert_error(const char *method, const char *path, const char *query, int status,
                         const char *code, const char *message)
{
    assert_answer(method, path, query, status, code, NULL, message);
}

static void assert_405(const char *method, const char *path, const char *query, const char *allow)
{
    char message[192];

    snprintf(message, sizeof(message), "%s is not allowed here; use %s", method,
             strcmp(allow, "POST") == 0 ? "POST" : "GET or HEAD");
    assert_answer(method, path, query, 405, "method_not_allowed", allow, message);
}

static void assert_not_found(const char *path)
{
    assert_error("GET", path, NULL, 404, "not_found", "no such endpoint");
    assert_error("HEAD", path, NULL, 404, "not_found", "no such endpoint");
}

static void test_every_shape(void **state)
{
    dc_request_t req;

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(shapes); i++) {
        assert_routes("GET", shapes[i].path, NULL, &req);
        assert_int_equal(req.route, DC_ROUTE_QUERY);
        if (req.qtype != shapes[i].qtype)
            fail_msg("%s: qtype %s, want %s", shapes[i].path, dc_qtype_name(req.qtype),
                     dc_qtype_name(shapes[i].qtype));
        assert_int_equal(req.head, 0);
        assert_string_equal(req.org_id, ORG);
        assert_string_equal(req.unit_id, shapes[i].unit);
        assert_string_equal(req.item_id, "");
        assert_int_equal(req.force_refresh, 0);
        assert_int_equal(req.hours, DC_HOURS_DEFAULT);
        assert_int_equal(req.limit, DC_LIMIT_DEFAULT);
    }
}

static void test_head_sets_head(void **state)
{
    dc_request_t req;

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(shapes); i++) {
        assert_routes("HEAD", shapes[i].path, NULL, &req);
        assert_int_equal(req.route, DC_ROUTE_QUERY);
        assert_int_equal(req.qtype, shapes[i].qtype);
        assert_int_equal(req.head, 1);
    }
    assert_routes("HEAD", "/health", NULL, &req);
    assert_int_equal(req.route, DC_ROUTE_HEALTH);
    assert_int_equal(req.head, 1);
    assert_routes("HEAD", "/metrics", NULL, &req);
    assert_int_equal(req.route, DC_ROUTE_METRICS);
    assert_int_equal(req.head, 1);
}

static void test_ids_folded_to_lower_case(void **state)
{
    dc_request_t req;

    (void)state;
    assert_routes("GET", BASE ORG_UP "/stats", NULL, &req);
    assert_string_equal(req.org_id, ORG);
    assert_routes("GET", BASE ORG_UP "/units/" UNIT_UP "/temperature/trends", NULL, &req);
    assert_string_equal(req.org_id, ORG);
    assert_string_equal(req.unit_id, UNIT);
    assert_routes("GET", BASE ORG "/alerts/count", "unitId=" UNIT_UP, &req);
    assert_string_equal(req.unit_id, UNIT);
}

static void test_health_and_metrics(void **state)
{
    dc_request_t req;

    (void)state;
    assert_routes("GET", "/health", NULL, &req);
    assert_int_equal(req.route, DC_ROUTE_HEALTH);
    assert_int_equal(req.head, 0);
    assert_routes("GET", "/metrics", "forceRefresh=maybe&hours=0", &req);
    assert_int_equal(req.route, DC_ROUTE_METRICS);
    assert_int_equal(req.head, 0);
}

static void test_query_applied(void **state)
{
    dc_request_t req;

    (void)state;
    assert_routes("GET", BASE ORG "/stats", "forceRefresh=true", &req);
    assert_int_equal(req.force_refresh, 1);
    assert_routes("GET", TRENDS, "hours=168&forceRefresh=1", &req);
    assert_int_equal(req.hours, 168);
    assert_int_equal(req.force_refresh, 1);
    assert_routes("GET", BASE ORG "/audit", "limit=500", &req);
    assert_int_equal(req.limit, 500);
    assert_routes("GET", BASE ORG "/alerts/count", "unitId=" UNIT "&_=17", &req);
    assert_string_equal(req.unit_id, UNIT);
    assert_routes("GET", BASE ORG "/stats", "", &req);
    assert_int_equal(req.force_refresh, 0);
}

static void test_trends_unit_comes_from_path(void **state)
{
    dc_request_t req;

    (void)state;
    assert_routes("GET", TRENDS, "unitId=00000000-0000-0000-0000-000000000000", &req);
    assert_string_equal(req.unit_id, UNIT);
    assert_routes("GET", TRENDS, "unitId=*", &req);
    assert_string_equal(req.unit_id, UNIT);
}

static void test_unknown_paths(void **state)
{
    static const char *const paths[] = {
        "",
        "/",
        "//",
        "/api",
        "/api/",
        "/api/dashboard",
        "/api/dashboard/",
        "/api/dashboard/orgs",
        "/api/dashboard/orgs/",
        "/api/dashboard/orgs//",
        "/api/dashboard/orgs//stats",
        "/api/dashboard/orgs/" ORG,
        "/api/dashboard/orgs/" ORG "/",
        "/api/dashboard/orgs/" ORG "//stats",
        "/api/dashboard/orgs/" ORG "/stats/",
        "/api/dashboard/orgs/" ORG "/stats/extra",
        "/api/dashboard/orgs/" ORG "/stats/" ORG,
        "/api/dashboard/orgs/" ORG "/statsX",
        "/api/dashboard/orgs/" ORG "/Stats",
        "/api/dashboard/orgs/" ORG "/extra/stats",
        "/api/dashboard/orgs/" ORG "/" ORG "/stats",
        "/api/dashboard/orgs/" ORG "/units",
        "/api/dashboard/orgs/" ORG "/units/",
        "/api/dashboard/orgs/" ORG "/units/status/",
        "/api/dashboard/orgs/" ORG "/alerts/",
        "/api/dashboard/orgs/" ORG "/alerts/count/" UNIT,
        "/api/dashboard/orgs/" ORG "/alerts/" ITEM,
        "/api/dashboard/orgs/" ORG "/alerts/" ITEM "/",
        "/api/dashboard/orgs/" ORG "/alerts//resolve",
        "/api/dashboard/orgs/" ORG "/alerts/" ITEM "/resolve/",
        "/api/dashboard/orgs/" ORG "/alerts/" ITEM "/resolved",
        "/api/dashboard/orgs/" ORG "/devices/" ITEM,
        "/api/dashboard/orgs/" ORG "/devices//status",
        "/api/dashboard/orgs/" ORG "/devices/" ITEM "/status/",
        "/api/ingest",
        "/api/ingest/",
        "/api/ingest/readings/",
        "/api/ingest/readingsX",
        "/api/ingest/readings/" ORG,
        "/api/dashboard/orgs/" ORG "/ingest/readings",
        "/api/dashboard/orgs/" ORG "/devices",
        "/api/dashboard/orgs/" ORG "/compliance/",
        "/api/dashboard/orgs/" ORG "/audit/",
        "/api/dashboard/orgs/" ORG "/units/" UNIT,
        "/api/dashboard/orgs/" ORG "/units/" UNIT "/temperature",
        "/api/dashboard/orgs/" ORG "/units/" UNIT "/temperature/",
        "/api/dashboard/orgs/" ORG "/units/" UNIT "/temperature/trends/",
        "/api/dashboard/orgs/" ORG "/units/" UNIT "/temperature/trends/x",
        "/api/dashboard/orgs/" ORG "/units//temperature/trends",
        "/api/dashboard/orgs/" ORG "/units/" UNIT "/x/temperature/trends",
        "/api/dashboard/orgs/" ORG "/units/" UNIT "/trends",
        "/api/dashboard/orgs/" ORG "/../stats",
        "/api/dashboard/orgsX/" ORG "/stats",
        "/api/dashboard/orgs" ORG "/stats",
        "/api/dashboard/org/" ORG "/stats",
        "/api/dashboardX/orgs/" ORG "/stats",
        "/API/dashboard/orgs/" ORG "/stats",
        "//api/dashboard/orgs/" ORG "/stats",
        "/x/api/dashboard/orgs/" ORG "/stats",
        "api/dashboard/orgs/" ORG "/stats",
        "/api/dashboard/orgs/" ORG "/stats?forceRefresh=true",
        "/health/",
        "/healthz",
        "/health/x",
        "//health",
        "/Health",
        "/metrics/",
        "/metricsX",
        "/metric",
    };

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(paths); i++)
        assert_not_found(paths[i]);
}

static void test_unknown_path_is_404_whatever_the_method(void **state)
{
    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(not_allowed); i++)
        assert_error(not_allowed[i], "/api/dashboard/orgs/" ORG "/nope", NULL, 404, "not_found", NULL);
}

static void test_wrong_method_405(void **state)
{
    (void)state;
    for (size_t m = 0; m < DC_ARRAY_LEN(not_allowed); m++) {
        for (size_t i = 0; i < DC_ARRAY_LEN(shapes); i++)
            assert_405(not_allowed[m], shapes[i].path, NULL, "GET, HEAD");
        assert_405(not_allowed[m], "/health", NULL, "GET, HEAD");
        assert_405(not_allowed[m], "/metrics", NULL, "GET, HEAD");
    }
}

static void test_wrong_method_wins_over_bad_input(void **state)
{
    (void)state;
    assert_405("POST", BASE "not-a-uuid/stats", NULL, "GET, HEAD");
    assert_405("DELETE", BASE ORG "/stats", "forceRefresh=maybe", "GET, HEAD");
    assert_405("PUT", BASE ORG "/units/bad/temperature/trends", NULL, "GET, HEAD");
    assert_405("GET", BASE "not-a-uuid/alerts", NULL, "POST");
    assert_405("GET", BASE ORG "/alerts/nope/resolve", NULL, "POST");
}

static void test_bad_org_id(void **state)
{
    static const char *const orgs[] = {
        "not-a-uuid",
        "550e8400-e29b-41d4-a716-44665544000",
        "550e8400-e29b-41d4-a716-4466554400000",
        "550e8400-e29b-41d4-a716-44665544000*",
        "550e8400-e29b-41d4-a716-44665544000?",
        "550e8400-e29b-41d4-a716-4466554400[]",
        "*",
        "550e8400e29b41d4a716446655440000",
        "550e8400-e29b-41d4-a716-44665544000g",
        "550e8400-e29b-41d4-a716-446655440000 ",
        "{550e8400-e29b-41d4-a716-446655440000}",
    };
    char path[256];

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(orgs); i++) {
        snprintf(path, sizeof(path), BASE "%s/stats", orgs[i]);
        assert_error("GET", path, NULL, 400, "invalid_id", "organization id must be a UUID");
        snprintf(path, sizeof(path), BASE "%s/units/" UNIT "/temperature/trends", orgs[i]);
        assert_error("HEAD", path, NULL, 400, "invalid_id", "organization id must be a UUID");
    }
}

static void test_bad_unit_id_in_path(void **state)
{
    static const char *const units[] = {
        "x",
        "status",
        "6ba7b810-9dad-11d1-80b4-00c04fd430c",
        "6ba7b810-9dad-11d1-80b4-00c04fd430c*",
        "6ba7b810-9dad-11d1-80b4-00c04fd430c?",
        "6ba7b810-9dad-11d1-80b4-00c04fd430c88",
        "6ba7b810-9dad-11d1-80b4-00c04fd430cz",
    };
    char path[256];

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(units); i++) {
        snprintf(path, sizeof(path), BASE ORG "/units/%s/temperature/trends", units[i]);
        assert_error("GET", path, NULL, 400, "invalid_id", "unit id must be a UUID");
    }
}

static void test_bad_query_is_400(void **state)
{
    (void)state;
    assert_error("GET", BASE ORG "/stats", "forceRefresh=maybe", 400, "invalid_parameter",
                 "forceRefresh must be true or false");
    assert_error("GET", TRENDS, "hours=169", 400, "invalid_parameter",
                 "hours must be an integer between 1 and 168");
    assert_error("GET", BASE ORG "/audit", "limit=0", 400, "invalid_parameter",
                 "limit must be an integer between 1 and 500");
    assert_error("GET", BASE ORG "/alerts/count", "unitId=*", 400, "invalid_id", "unitId must be a UUID");
    assert_error("GET", BASE ORG "/stats", "forceRefresh=1&forceRefresh=1", 400, "invalid_parameter",
                 "forceRefresh is given more than once");
    assert_error("HEAD", BASE ORG "/stats", "forceRefresh", 400, "invalid_parameter",
                 "forceRefresh must be true or false");
}

static void test_write_routes(void **state)
{
    dc_request_t req;

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(writes); i++) {
        assert_routes("POST", writes[i].path, NULL, &req);
        assert_int_equal(req.route, DC_ROUTE_WRITE);
        assert_int_equal(req.wtype, writes[i].wtype);
        assert_int_equal(req.head, 0);
        assert_string_equal(req.org_id, writes[i].org);
        assert_string_equal(req.item_id, writes[i].item);
        assert_string_equal(req.unit_id, "");
        assert_routes("POST", writes[i].path, "forceRefresh=maybe&hours=0&unitId=*", &req);
        assert_int_equal(req.route, DC_ROUTE_WRITE);
        assert_int_equal(req.force_refresh, 0);
        assert_string_equal(req.unit_id, "");
    }
}

static void test_write_ids_folded_to_lower_case(void **state)
{
    dc_request_t req;

    (void)state;
    assert_routes("POST", BASE ORG_UP "/alerts/" ITEM_UP "/resolve", NULL, &req);
    assert_string_equal(req.org_id, ORG);
    assert_string_equal(req.item_id, ITEM);
    assert_routes("POST", BASE ORG_UP "/devices/" ITEM_UP "/status", NULL, &req);
    assert_string_equal(req.item_id, ITEM);
}

static void test_write_wrong_method_405(void **state)
{
    static const char *const methods[] = { "GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS", "post", "" };

    (void)state;
    for (size_t m = 0; m < DC_ARRAY_LEN(methods); m++)
        for (size_t i = 0; i < DC_ARRAY_LEN(writes); i++)
            assert_405(methods[m], writes[i].path, NULL, "POST");
}

static void test_write_bad_ids(void **state)
{
    (void)state;
    assert_error("POST", BASE "nope/alerts", NULL, 400, "invalid_id", "organization id must be a UUID");
    assert_error("POST", BASE ORG "/alerts/nope/resolve", NULL, 400, "invalid_id", "alert id must be a UUID");
    assert_error("POST", BASE ORG "/alerts/" ITEM "*/resolve", NULL, 400, "invalid_id",
                 "alert id must be a UUID");
    assert_error("POST", BASE ORG "/alerts/count/resolve", NULL, 400, "invalid_id",
                 "alert id must be a UUID");
    assert_error("POST", BASE ORG "/devices/nope/status", NULL, 400, "invalid_id",
                 "device id must be a UUID");
    assert_error("POST", BASE ORG "/devices/online/status", NULL, 400, "invalid_id",
                 "device id must be a UUID");
}

static void test_bad_org_reported_before_bad_query(void **state)
{
    (void)state;
    assert_error("GET", BASE "nope/stats", "forceRefresh=maybe", 400, "invalid_id",
                 "organization id must be a UUID");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_shape),
        cmocka_unit_test(test_head_sets_head),
        cmocka_unit_test(test_ids_folded_to_lower_case),
        cmocka_unit_test(test_health_and_metrics),
        cmocka_unit_test(test_query_applied),
        cmocka_unit_test(test_trends_unit_comes_from_path),
        cmocka_unit_test(test_unknown_paths),
        cmocka_unit_test(test_unknown_path_is_404_whatever_the_method),
        cmocka_unit_test(test_wrong_method_405),
        cmocka_unit_test(test_wrong_method_wins_over_bad_input),
        cmocka_unit_test(test_bad_org_id),
        cmocka_unit_test(test_bad_unit_id_in_path),
        cmocka_unit_test(test_bad_query_is_400),
        cmocka_unit_test(test_bad_org_reported_before_bad_query),
        cmocka_unit_test(test_write_routes),
        cmocka_unit_test(test_write_ids_folded_to_lower_case),
        cmocka_unit_test(test_write_wrong_method_405),
        cmocka_unit_test(test_write_bad_ids),
    };

    return cmocka_run_group_tests_name("dc_router", tests, NULL, NULL);
}
