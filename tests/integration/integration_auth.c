/*
 * Access control through dc_app against the real Redis and PostgreSQL:
 * no token is a 401 on every read, write and admin route; a token of
 * another organization or without the scope is a 403 on every one of them
 * and on forceRefresh; a cached answer of one organization is never served
 * to a caller of another; an ingest with one foreign device stores
 * nothing; the audit log names the token's subject; trusted mode takes
 * the identity nginx passes and nothing else.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dc_auth.h"
#include "dc_endpoint.h"
#include "dc_key.h"
#include "dc_test.h"

#define ANY_ID "00000000-0000-4000-8000-000000000000"

typedef struct {
    dc_config_t cfg;
    dc_app_t   *app;
    char        other[DC_UUID_LEN + 1]; /* an organization that is not DEMO_ORG */
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    dc_test_config(&f->cfg);
    f->app = dc_app_new(&f->cfg);
    assert_non_null(f->app);
    dc_test_org(1, f->other);
    assert_string_not_equal(f->other, DEMO_ORG);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    dc_app_free(f->app);
    free(f);
    return 0;
}

/* The path of endpoint row ep for org, ids filled in. */
static void endpoint_path(const dc_endpoint_t *ep, const char *org, char *buf, size_t cap)
{
    const char *p = ep->path;
    size_t      o = 0;

    while (*p != '\0' && o + 40 < cap) {
        if (*p == '{') {
            const char *end = strchr(p, '}');
            o += (size_t)snprintf(buf + o, cap - o, "%s",
                                  strncmp(p, "{org}", 5) == 0    ? org
                                  : strncmp(p, "{unit}", 6) == 0 ? DEMO_UNIT
                                                                 : ANY_ID);
            p = end + 1;
        } else {
            buf[o++] = *p++;
        }
    }
    buf[o] = '\0';
}

static void request(fixture_t *f, const dc_endpoint_t *ep, const char *org, const char *auth,
                    const char *query, dc_test_resp_t *r)
{
    char path[256];

    endpoint_path(ep, org, path, sizeof(path));
    if (ep->route == DC_ROUTE_WRITE)
        dc_test_post_as(f->app, auth, path, "{}", r);
    else
        dc_test_get_as(f->app, auth, path, query, r);
}

static void assert_status(dc_test_resp_t *r, int status, const char *code, const char *what)
{
    char want[64];

    snprintf(want, sizeof(want), "\"code\":\"%s\"", code);
    if (r->status != status || strstr(r->body, want) == NULL)
        fail_msg("%s: expected %d %s, got %d %s", what, status, code, r->status, r->body);
}

static void test_no_token_is_401_everywhere(void **state)
{
    fixture_t           *f = *state;
    size_t               n;
    const dc_endpoint_t *all = dc_endpoint_all(&n);
    dc_test_resp_t       r;
    char                *expired = dc_test_bearer("late", "*", "read,write,ingest,refresh,admin", -120);

    for (size_t i = 0; i < n; i++) {
        request(f, &all[i], DEMO_ORG, NULL, NULL, &r);
        assert_status(&r, 401, "missing_token", all[i].path);
        assert_string_equal(r.challenge, "Bearer realm=\"dashcache\"");
        assert_string_equal(r.x_cache, "");
        dc_test_resp_free(&r);
        request(f, &all[i], DEMO_ORG, "Bearer not.a.token", NULL, &r);
        assert_status(&r, 401, "invalid_token", all[i].path);
        assert_string_equal(r.challenge, "Bearer realm=\"dashcache\", error=\"invalid_token\"");
        dc_test_resp_free(&r);
        request(f, &all[i], DEMO_ORG, expired, NULL, &r);
        assert_status(&r, 401, "invalid_token", all[i].path);
        assert_non_null(strstr(r.body, "expired"));
        dc_test_resp_free(&r);
    }
    dc_test_get_as(f->app, NULL, "/api/admin/cache/stats", NULL, &r);
    assert_status(&r, 401, "missing_token", "admin stats");
    dc_test_resp_free(&r);
    /* the service routes need no caller */
    dc_test_get_as(f->app, NULL, "/health", NULL, &r);
    assert_true(r.status == 200 || r.status == 503);
    dc_test_resp_free(&r);
    dc_test_get_as(f->app, NULL, "/metrics", NULL, &r);
    assert_int_not_equal(r.status, 401);
    dc_test_resp_free(&r);
    free(expired);
}

static void test_other_org_or_scope_is_403_everywhere(void **state)
{
    fixture_t           *f = *state;
    size_t               n;
    const dc_endpoint_t *all = dc_endpoint_all(&n);
    dc_test_resp_t       r;
    char                *other = dc_test_bearer("mallory", f->other, "read,write,ingest,refresh", 600);
    char                *reader = dc_test_bearer("reader", DEMO_ORG, "read", 600);

    for (size_t i = 0; i < n; i++) {
        if (strstr(all[i].path, "{org}") == NULL)
            continue; /* ingest: no organization in the path, see the ingest test */
        request(f, &all[i], DEMO_ORG, other, NULL, &r);
        assert_status(&r, 403, "forbidden_organization", all[i].path);
        assert_string_equal(r.challenge, "Bearer realm=\"dashcache\", error=\"insufficient_scope\"");
        dc_test_resp_free(&r);
        if (all[i].route == DC_ROUTE_QUERY && (all[i].params & DC_PARAM_BIT(FORCE))) {
            request(f, &all[i], DEMO_ORG, other, "forceRefresh=true", &r);
            assert_status(&r, 403, "forbidden_organization", all[i].path);
            dc_test_resp_free(&r);
            /* the right organization without refresh */
            request(f, &all[i], DEMO_ORG, reader, "forceRefresh=true", &r);
            assert_status(&r, 403, "insufficient_scope", all[i].path);
            assert_non_null(strstr(r.body, "refresh"));
            dc_test_resp_free(&r);
        }
        if (all[i].route == DC_ROUTE_WRITE) {
            request(f, &all[i], DEMO_ORG, reader, NULL, &r);
            assert_status(&r, 403, "insufficient_scope", all[i].path);
            dc_test_resp_free(&r);
        }
    }
    request(f, dc_endpoint_write(DC_W_INGEST), DEMO_ORG, reader, NULL, &r);
    assert_status(&r, 403, "insufficient_scope", "ingest without the ingest scope");
    dc_test_resp_free(&r);
    dc_test_get_as(f->app, other, "/api/admin/cache/stats", NULL, &r);
    assert_status(&r, 403, "insufficient_scope", "admin stats without admin");
    dc_test_resp_free(&r);
    dc_test_get(f->app, "/api/admin/cache/stats", NULL, &r);
    assert_int_equal(r.status, 200);
    dc_test_resp_free(&r);
    free(other);
    free(reader);
}

static void test_cached_answer_of_b_never_served_to_a(void **state)
{
    fixture_t     *f = *state;
    char           path[256], key[DC_KEY_MAX], pattern[DC_KEY_MAX];
    char          *a_token = dc_test_bearer("tenant-a", DEMO_ORG, "read,refresh", 600);
    char          *b_token = dc_test_bearer("tenant-b", f->other, "read", 600);
    dc_test_resp_t r;

    dc_test_org_keys(pattern, sizeof(pattern), f->other);
    dc_test_redis_del_pattern(pattern);
    dc_test_org_path(path, sizeof(path), f->other, "stats");
    dc_test_get_as(f->app, b_token, path, NULL, &r);
    assert_int_equal(r.status, 200);
    dc_test_resp_free(&r);
    dc_test_get_as(f->app, b_token, path, NULL, &r);
    assert_string_equal(r.x_cache, "HIT");
    dc_test_resp_free(&r);
    dc_test_key(key, sizeof(key), f->other, "stats", NULL);
    assert_int_equal(dc_test_redis_int("EXISTS %s", key), 1);

    /* B's answer is in the cache under B's key: A asks for it, and for a refresh of it */
    dc_test_get_as(f->app, a_token, path, NULL, &r);
    assert_status(&r, 403, "forbidden_organization", "A reads B's cached stats");
    assert_string_equal(r.x_cache, "");
    assert_null(strstr(r.body, "\"units\""));
    dc_test_resp_free(&r);
    dc_test_get_as(f->app, a_token, path, "forceRefresh=true", &r);
    assert_status(&r, 403, "forbidden_organization", "A refreshes B's stats");
    dc_test_resp_free(&r);
    /* B's own answer is still B's */
    dc_test_get_as(f->app, b_token, path, NULL, &r);
    assert_string_equal(r.x_cache, "HIT");
    dc_test_resp_free(&r);
    free(a_token);
    free(b_token);
}

static char *device_of(const char *org)
{
    const char *p[] = { org };
    char       *d = dc_test_sql("SELECT id::text FROM devices WHERE org_id = $1 ORDER BY id LIMIT 1", 1, p);
    assert_non_null(d);
    return d;
}

static long long readings_of(const char *device)
{
    const char *p[] = { device };
    char       *v = dc_test_sql("SELECT count(*)::text FROM readings WHERE device_id = $1", 1, p);
    long long   n = atoll(v);
    free(v);
    return n;
}

static void test_ingest_with_one_foreign_device_stores_nothing(void **state)
{
    fixture_t     *f = *state;
    char          *mine = device_of(DEMO_ORG), *theirs = device_of(f->other);
    char          *token = dc_test_bearer("gateway-a", DEMO_ORG, "ingest", 600);
    char          *star = dc_test_bearer("platform", "*", "ingest", 600);
    long long      mine0 = readings_of(mine), theirs0 = readings_of(theirs);
    char           body[512];
    dc_test_resp_t r;

    snprintf(body, sizeof(body),
             "[{\"deviceId\":\"%s\",\"temperature\":4.5},{\"deviceId\":\"%s\",\"temperature\":4.5}]", mine,
             theirs);
    dc_test_post_as(f->app, token, "/api/ingest/readings", body, &r);
    assert_status(&r, 403, "forbidden_organization", "ingest with a foreign device");
    assert_non_null(strstr(r.body, "\"index\":1"));
    dc_test_resp_free(&r);
    assert_int_equal(readings_of(mine), mine0);
    assert_int_equal(readings_of(theirs), theirs0);

    /* the same batch by a token of every organization, and the own device alone, are stored */
    dc_test_post_as(f->app, star, "/api/ingest/readings", body, &r);
    assert_int_equal(r.status, 200);
    dc_test_resp_free(&r);
    snprintf(body, sizeof(body), "{\"deviceId\":\"%s\",\"temperature\":4.5}", mine);
    dc_test_post_as(f->app, token, "/api/ingest/readings", body, &r);
    assert_int_equal(r.status, 200);
    dc_test_resp_free(&r);
    assert_int_equal(readings_of(mine), mine0 + 2);
    assert_int_equal(readings_of(theirs), theirs0 + 1);

    /* a device that does not exist gets the same answer as another tenant's: ids cannot be probed */
    snprintf(body, sizeof(body), "{\"deviceId\":\"%s\",\"temperature\":4.5}",
             "00000000-0000-4000-8000-00000000dead");
    dc_test_post_as(f->app, token, "/api/ingest/readings", body, &r);
    assert_status(&r, 403, "forbidden_organization", "ingest with a device that does not exist");
    dc_test_resp_free(&r);
    dc_test_post_as(f->app, star, "/api/ingest/readings", body, &r); /* every organization: it can say so */
    assert_int_equal(r.status, 404);
    dc_test_resp_free(&r);
    free(mine);
    free(theirs);
    free(token);
    free(star);
}

static void test_audit_actor_is_the_subject(void **state)
{
    fixture_t     *f = *state;
    char          *token = dc_test_bearer("alice@acme", DEMO_ORG, "write,ingest", 600);
    char           path[256], body[256], *actor, *dev = device_of(DEMO_ORG);
    const char    *p[1];
    dc_test_resp_t r;

    (void)f;
    dc_test_org_path(path, sizeof(path), DEMO_ORG, "alerts");
    snprintf(body, sizeof(body), "{\"unitId\":\"%s\",\"kind\":\"door_open\",\"message\":\"audit actor\"}",
             DEMO_UNIT);
    dc_test_post_as(f->app, token, path, body, &r);
    assert_int_equal(r.status, 201);
    actor = dc_test_sql("SELECT actor FROM audit_log WHERE action = 'alert.create' ORDER BY id DESC LIMIT 1",
                        0, p);
    assert_string_equal(actor, "alice@acme");
    free(actor);
    dc_test_resp_free(&r);

    snprintf(body, sizeof(body), "{\"deviceId\":\"%s\",\"temperature\":3.0}", dev);
    dc_test_post_as(f->app, token, "/api/ingest/readings", body, &r);
    assert_int_equal(r.status, 200);
    actor = dc_test_sql(
        "SELECT actor FROM audit_log WHERE action = 'readings.ingest' ORDER BY id DESC LIMIT 1", 0, p);
    assert_string_equal(actor, "alice@acme");
    free(actor);
    free(dev);
    dc_test_resp_free(&r);
    free(token);
}

static void test_trusted_mode(void **state)
{
    fixture_t     *f = *state;
    dc_config_t    cfg = f->cfg;
    dc_app_t      *app;
    char           path[256];
    dc_test_resp_t r;
    dc_input_t     in = { .method = "GET" };

    cfg.auth.mode = DC_AUTH_TRUSTED;
    app = dc_app_new(&cfg);
    assert_non_null(app);
    dc_test_org_path(path, sizeof(path), DEMO_ORG, "units/status");
    in.path = path;

    in.trusted_sub = "nginx-user";
    in.trusted_orgs = DEMO_ORG;
    in.trusted_scope = "read";
    dc_test_call(app, &in, &r);
    assert_int_equal(r.status, 200);
    dc_test_resp_free(&r);
    in.trusted_orgs = f->other;
    dc_test_call(app, &in, &r);
    assert_status(&r, 403, "forbidden_organization", "trusted identity of another organization");
    dc_test_resp_free(&r);
    /* a bearer token, even a good one, is no identity in trusted mode */
    in.trusted_sub = in.trusted_orgs = in.trusted_scope = NULL;
    in.authorization = dc_test_default_auth();
    dc_test_call(app, &in, &r);
    assert_status(&r, 401, "missing_token", "bearer token in trusted mode");
    dc_test_resp_free(&r);
    dc_app_free(app);

    /* and in jwt mode the trusted params are ignored */
    in.authorization = NULL;
    in.trusted_sub = "nginx-user";
    in.trusted_orgs = "*";
    in.trusted_scope = "read";
    dc_test_call(f->app, &in, &r);
    assert_status(&r, 401, "missing_token", "trusted params in jwt mode");
    dc_test_resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_token_is_401_everywhere),
        cmocka_unit_test(test_other_org_or_scope_is_403_everywhere),
        cmocka_unit_test(test_cached_answer_of_b_never_served_to_a),
        cmocka_unit_test(test_ingest_with_one_foreign_device_stores_nothing),
        cmocka_unit_test(test_audit_actor_is_the_subject),
        cmocka_unit_test(test_trusted_mode),
    };

    return cmocka_run_group_tests_name("integration_auth", tests, setup, teardown);
}
