/*
 * Cache-aside against the real Redis and PostgreSQL of the test stack
 * (DATABASE_URL, REDIS_URL): miss then hit, TTL expiry, forceRefresh, audit
 * never cached, unknown ids never cached, tenant isolation, and the floor of
 * graceful degradation (Redis refused, Redis hung, Redis back, database down).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "dc_etag.h"
#include "dc_key.h"
#include "dc_test.h"
#include "dc_trust.h"

#define PATH_MAX_LEN 256

typedef struct {
    dc_config_t cfg;
    dc_app_t   *app;
} fixture_t;

/*
 * The host's lease on hits held again, by probes on the real Redis: a test
 * before may have voided it (a refused or hung Redis) (a refused Redis), and with the lease void a
 * read does not touch Redis at all, whatever this test wants to see of it.
 */
static void hits_allowed(const dc_config_t *cfg)
{
    dc_app_t *app = dc_app_new(cfg);

    assert_non_null(app);
    dc_test_outbox_applied();
    for (int i = 0; i < 1000 && !dc_trust_hits_ok(); i++) {
        (void)dc_app_tick(app);
        usleep(10000);
    }
    assert_true(dc_trust_hits_ok());
    dc_app_free(app);
}

/* Each test starts with the host serving hits, whatever the test before did to Redis. */
static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    dc_test_config(&f->cfg);
    hits_allowed(&f->cfg);
    f->app = dc_app_new(&f->cfg);
    assert_non_null(f->app);
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

static void forget_org(const char *org)
{
    char pattern[DC_KEY_MAX];
    dc_test_org_keys(pattern, sizeof(pattern), org);
    dc_test_redis_del_pattern(pattern);
}

/*
 * The body cached under key (free), or NULL, after checking the rest of the
 * value "<epoch>.<generation>@<run_id>\n<validator>\n<stored>\n<body>": the
 * validator is the body's, the store time now.
 */
static char *cached_body(const char *key)
{
    char *v = dc_test_redis_str("GET %s", key), *nl, *tag, *body;
    char  want[DC_ETAG_LEN + 1];

    if (v == NULL)
        return NULL;
    nl = strchr(v, '\n');
    assert_non_null(nl);
    tag = nl + 1;
    nl = strchr(tag, '\n');
    assert_non_null(nl);
    assert_int_equal(nl - tag, DC_ETAG_LEN);
    assert_true(llabs(strtoll(nl + 1, NULL, 10) - (long long)time(NULL)) <= 120);
    nl = strchr(nl + 1, '\n');
    assert_non_null(nl);
    body = strdup(nl + 1);
    dc_etag_of(body, strlen(body), want);
    assert_memory_equal(tag, want, DC_ETAG_LEN);
    free(v);
    return body;
}

static void test_miss_then_hit_byte_identical(void **state)
{
    fixture_t     *f = *state;
    char           path[PATH_MAX_LEN];
    dc_test_resp_t a, b;
    char          *stored, key[DC_KEY_MAX];
    long long      ttl;

    forget_org(DEMO_ORG);
    dc_test_org_path(path, sizeof(path), DEMO_ORG, "stats");
    dc_test_get(f->app, path, NULL, &a);
    dc_test_get(f->app, path, NULL, &b);

    assert_int_equal(a.status, 200);
    assert_string_equal(a.x_cache, "MISS");
    assert_int_equal(b.status, 200);
    assert_string_equal(b.x_cache, "HIT");
    assert_int_equal(a.body_len, b.body_len);
    assert_memory_equal(a.body, b.body, a.body_len);
    assert_non_null(strstr(a.body, "\"orgId\":\"" DEMO_ORG "\""));

    dc_test_key(key, sizeof(key), DEMO_ORG, "stats", NULL);
    stored = cached_body(key);
    assert_non_null(stored);
    assert_string_equal(stored, a.body);
    ttl = dc_test_redis_int("TTL %s", key);
    /* kept CACHE_MAX_STALE_SECONDS past its TTL, to be served stale */
    assert_true(ttl > f->cfg.cache_max_stale_s && ttl <= f->cfg.ttl[DC_Q_STATS] + f->cfg.cache_max_stale_s);

    free(stored);
    dc_test_resp_free(&a);
    dc_test_resp_free(&b);
}

/*
 * Redis closed the worker's connection while it was idle (a restart, a
 * client timeout, CLIENT KILL): the next request reconnects within the same
 * call and is still a HIT, not a BYPASS (nor a 503 if the database is down).
 */
static void test_connection_closed_by_redis_is_still_a_hit(void **state)
{
    fixture_t     *f = *state;
    char           path[PATH_MAX_LEN];
    dc_test_resp_t a, b;
    long long      killed;

    forget_org(DEMO_ORG);
    dc_test_org_path(path, sizeof(path), DEMO_ORG, "units/status");
    dc_test_get(f->app, path, NULL, &a);
    assert_string_equal(a.x_cache, "MISS");
    /* every client but the test's own: the app's cache connection among them */
    killed = dc_test_redis_int("CLIENT KILL TYPE normal SKIPME yes");
    assert_true(killed >= 1);
    dc_test_get(f->app, path, NULL, &b);
    assert_int_equal(b.status, 200);
    assert_string_equal(b.x_cache, "HIT");
    assert_int_equal(a.body_len, b.body_len);
    assert_memory_equal(a.body, b.body, a.body_len);
    dc_test_resp_free(&a);
    dc_test_resp_free(&b);
}

static void test_every_query_type_is_cached_under_its_key(void **state)
{
    fixture_t *f = *state;
    static const struct {
        const char *suffix, *query;
    } cases[] = {
        { "units/status", NULL },
        { "alerts/count", NULL },
        { "alerts/count", "unitId=" DEMO_UNIT },
        { "units/" DEMO_UNIT "/temperature/trends", "hours=6" },
        { "devices/online", NULL },
        { "compliance", NULL },
    };
    char keys[DC_ARRAY_LEN(cases)][DC_KEY_MAX];

    forget_org(DEMO_ORG);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char           path[PATH_MAX_LEN];
        dc_test_resp_t a, b;
        char          *stored;

        /* each case has a key of its own */
        dc_test_key(keys[i], sizeof(keys[i]), DEMO_ORG, cases[i].suffix, cases[i].query);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(keys[i], keys[j]);
        dc_test_org_path(path, sizeof(path), DEMO_ORG, cases[i].suffix);
        dc_test_get(f->app, path, cases[i].query, &a);
        dc_test_get(f->app, path, cases[i].query, &b);
        assert_int_equal(a.status, 200);
        assert_string_equal(a.x_cache, "MISS");
        assert_string_equal(b.x_cache, "HIT");
        assert_string_equal(a.body, b.body);
        stored = cached_body(keys[i]);
        assert_non_null(stored);
        assert_string_equal(stored, a.body);
        free(stored);
        dc_test_resp_free(&a);
        dc_test_resp_free(&b);
    }
}

static void test_ttl_expiry(void **state)
{
    fixture_t     *f = *state;
    char           path[PATH_MAX_LEN];
    dc_test_resp_t a, b;
    int            gone = 0;
    char           key[DC_KEY_MAX];

    f->cfg.ttl[DC_Q_DEVICES] = 1;
    f->cfg.cache_max_stale_s = 0; /* gone from Redis at its TTL */
    dc_test_key(key, sizeof(key), DEMO_ORG, "devices/online", NULL);
    forget_org(DEMO_ORG);
    dc_test_org_path(path, sizeof(path), DEMO_ORG, "devices/online");
    dc_test_get(f->app, path, NULL, &a);
    assert_string_equal(a.x_cache, "MISS");
    assert_int_equal(dc_test_redis_int("TTL %s", key), 1);

    for (int i = 0; i < 40 && !gone; i++) { /* bounded: 4 s */
        usleep(100 * 1000);
        gone = dc_test_redis_int("EXISTS %s", key) == 0;
    }
    assert_true(gone);
    dc_test_get(f->app, path, NULL, &b);
    assert_string_equal(b.x_cache, "MISS");
    dc_test_resp_free(&a);
    dc_test_resp_free(&b);
}

/*
 * A value planted under the organization's current generation is a hit
 * (so the plant is one the cache would serve); forceRefresh does not read
 * it, answers from the database and replaces it.
 */
static void test_force_refresh_bypasses_and_repopulates(void **state)
{
    fixture_t *f = *state;
    char       path[PATH_MAX_LEN], key[DC_KEY_MAX], genkey[DC_KEY_MAX], want[1024], run_id[DC_RUN_ID_MAX];
    static const char planted[] = "{\"planted\":1}";
    dc_test_resp_t    a, p, b, c;
    char             *gen, *stored, *epoch;

    forget_org(DEMO_ORG);
    dc_test_key(key, sizeof(key), DEMO_ORG, "compliance", NULL);
    dc_test_gen_key(genkey, sizeof(genkey), DEMO_ORG, DC_Q_COMPLIANCE);
    dc_test_org_path(path, sizeof(path), DEMO_ORG, "compliance");
    dc_test_get(f->app, path, NULL, &a);
    assert_string_equal(a.x_cache, "MISS");
    gen = dc_test_redis_str("GET %s", genkey);
    assert_non_null(gen);
    assert_true(gen[0] != '\0');

    dc_test_redis_run_id(run_id);
    epoch = dc_test_redis_str("GET dashcache:epoch");
    assert_non_null(epoch);
    free(dc_test_redis_str("SET %s %s.%s@%s\n%s\n%lld\n%s EX 60", key, epoch, gen, run_id, "0123456789abcdef",
                           (long long)time(NULL), planted));
    dc_test_get(f->app, path, NULL, &p);
    assert_int_equal(p.status, 200);
    assert_string_equal(p.x_cache, "HIT");
    assert_string_equal(p.body, planted);

    dc_test_get(f->app, path, "forceRefresh=true", &b);
    assert_int_equal(b.status, 200);
    assert_string_equal(b.x_cache, "BYPASS");
    assert_null(strstr(b.body, "planted"));
    assert_non_null(strstr(b.body, "\"orgId\":\"" DEMO_ORG "\""));
    /* replaced, under the same generation, with the validator of the new body */
    stored = cached_body(key);
    assert_non_null(stored);
    assert_string_equal(stored, b.body);
    free(stored);
    stored = dc_test_redis_str("GET %s", key);
    snprintf(want, sizeof(want), "%s.%s@%s\n%s\n", epoch, gen, run_id, b.etag);
    assert_non_null(stored);
    assert_memory_equal(stored, want, strlen(want));

    dc_test_get(f->app, path, "forceRefresh=false", &c);
    assert_string_equal(c.x_cache, "HIT");
    assert_string_equal(c.body, b.body);
    free(stored);
    free(gen);
    free(epoch);
    dc_test_resp_free(&a);
    dc_test_resp_free(&p);
    dc_test_resp_free(&b);
    dc_test_resp_free(&c);
}

/*
 * After an upgrade Redis holds values of the old format "<generation>\n<body>",
 * possibly under what is the current generation: each is a miss (never read
 * as "<generation>\n<validator>\n<body>"), answered from the database and
 * replaced in the current format.
 */
static void test_old_format_value_is_a_miss_and_is_replaced(void **state)
{
    fixture_t     *f = *state;
    char           path[PATH_MAX_LEN], key[DC_KEY_MAX], genkey[DC_KEY_MAX];
    dc_test_resp_t a, b, c;
    char          *gen, *stored;

    forget_org(DEMO_ORG);
    dc_test_key(key, sizeof(key), DEMO_ORG, "units/status", NULL);
    dc_test_gen_key(genkey, sizeof(genkey), DEMO_ORG, DC_Q_UNITS);
    dc_test_org_path(path, sizeof(path), DEMO_ORG, "units/status");
    dc_test_get(f->app, path, NULL, &a);
    assert_string_equal(a.x_cache, "MISS");
    gen = dc_test_redis_str("GET %s", genkey);
    assert_non_null(gen);

    /* an old value: its body starts where the validator would be */
    free(dc_test_redis_str("SET %s %s\n%s EX 60", key, gen, "{\"normal\":1,\"planted\":\"old format\"}"));
    dc_test_get(f->app, path, NULL, &b);
    assert_int_equal(b.status, 200);
    assert_string_equal(b.x_cache, "MISS");
    assert_null(strstr(b.body, "planted"));
    assert_string_equal(b.etag, a.etag); /* the same data, read again */
    stored = cached_body(key);
    assert_non_null(stored);
    assert_string_equal(stored, b.body);
    dc_test_get(f->app, path, NULL, &c);
    assert_string_equal(c.x_cache, "HIT");
    assert_string_equal(c.body, b.body);
    free(stored);
    free(gen);
    dc_test_resp_free(&a);
    dc_test_resp_free(&b);
    dc_test_resp_free(&c);
}

/*
 * Every dashboard 200 carries the validator of its data, the same on a MISS,
 * a HIT and a BYPASS (a new read of the same data: only generatedAt moved);
 * If-None-Match with it (or in a list, weak, or *) is a 304 without a body
 * on each of them, another validator a full 200; errors carry none.
 */
static void test_etag_and_not_modified(void **state)
{
    fixture_t     *f = *state;
    char           path[PATH_MAX_LEN], want[DC_ETAG_LEN + 1], inm[64], list[96];
    dc_test_resp_t miss, hit, r;
    const char    *matching[] = { inm, list, "*" };

    forget_org(DEMO_ORG);
    dc_test_org_path(path, sizeof(path), DEMO_ORG, "alerts/count");
    dc_test_get(f->app, path, NULL, &miss);
    dc_test_get(f->app, path, NULL, &hit);
    assert_string_equal(miss.x_cache, "MISS");
    assert_string_equal(hit.x_cache, "HIT");
    dc_etag_of(miss.body, miss.body_len, want);
    assert_string_equal(miss.etag, want);
    assert_string_equal(hit.etag, want);
    snprintf(inm, sizeof(inm), "\"%s\"", want);
    snprintf(list, sizeof(list), "\"0000000000000000\", W/\"%s\"", want);

    for (size_t i = 0; i < DC_ARRAY_LEN(matching); i++) {
        dc_test_get_if(f->app, path, NULL, matching[i], &r); /* a hit */
        assert_int_equal(r.status, 304);
        assert_string_equal(r.x_cache, "HIT");
        assert_string_equal(r.etag, want);
        assert_int_equal(r.body_len, 0);
        dc_test_resp_free(&r);
    }
    dc_test_get_if(f->app, path, "forceRefresh=true", inm, &r); /* read from the database */
    assert_int_equal(r.status, 304);
    assert_string_equal(r.x_cache, "BYPASS");
    assert_string_equal(r.etag, want);
    assert_int_equal(r.body_len, 0);
    dc_test_resp_free(&r);
    forget_org(DEMO_ORG);
    dc_test_get_if(f->app, path, NULL, inm, &r); /* a miss: queried, stored, not sent */
    assert_int_equal(r.status, 304);
    assert_string_equal(r.x_cache, "MISS");
    assert_int_equal(r.body_len, 0);
    dc_test_resp_free(&r);
    dc_test_get_if(f->app, path, NULL, "\"0000000000000000\"", &r); /* stored by the 304's miss */
    assert_int_equal(r.status, 200);
    assert_string_equal(r.x_cache, "HIT");
    assert_string_equal(r.etag, want);
    assert_non_null(strstr(r.body, "\"unresolved\":"));
    dc_test_resp_free(&r);

    /* an error is not a representation: no validator, and no 304 even for * */
    dc_test_org_path(path, sizeof(path), "00000000-0000-4000-8000-000000000000", "alerts/count");
    dc_test_get_if(f->app, path, NULL, "*", &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.etag, "");
    dc_test_resp_free(&r);
    dc_test_resp_free(&miss);
    dc_test_resp_free(&hit);
}

static void test_audit_is_never_cached(void **state)
{
    fixture_t     *f = *state;
    char           path[PATH_MAX_LEN];
    dc_test_resp_t a, b;

    dc_test_org_path(path, sizeof(path), DEMO_ORG, "audit");
    dc_test_get(f->app, path, "limit=3", &a);
    dc_test_get(f->app, path, "limit=3", &b);
    assert_int_equal(a.status, 200);
    assert_string_equal(a.x_cache, "BYPASS");
    assert_string_equal(b.x_cache, "BYPASS");
    assert_non_null(strstr(a.body, "\"entries\":["));
    assert_int_equal(dc_test_redis_count("*audit*"), 0);
    dc_test_resp_free(&a);
    dc_test_resp_free(&b);
}

static void test_unknown_org_and_unit_are_not_cached(void **state)
{
    fixture_t     *f = *state;
    const char    *ghost = "00000000-0000-4000-8000-0000000000aa";
    char           path[PATH_MAX_LEN], pattern[128], other_org[37], other_unit[37];
    dc_test_resp_t a, b;

    dc_test_org_path(path, sizeof(path), ghost, "stats");
    dc_test_get(f->app, path, NULL, &a);
    dc_test_get(f->app, path, NULL, &b);
    assert_int_equal(a.status, 404);
    assert_int_equal(b.status, 404);
    assert_non_null(strstr(a.body, "\"org_not_found\""));
    snprintf(pattern, sizeof(pattern), "*%s*", ghost); /* answers and generations alike */
    assert_int_equal(dc_test_redis_count(pattern), 0);
    dc_test_resp_free(&a);
    dc_test_resp_free(&b);

    /* a unit of another organization is unknown here, and stays uncached */
    dc_test_org(1, other_org);
    dc_test_unit_of(other_org, other_unit);
    snprintf(path, sizeof(path), "/api/dashboard/orgs/%s/units/%s/temperature/trends", DEMO_ORG, other_unit);
    dc_test_get(f->app, path, NULL, &a);
    assert_int_equal(a.status, 404);
    assert_non_null(strstr(a.body, "\"unit_not_found\""));
    snprintf(pattern, sizeof(pattern), "*%s*", other_unit);
    assert_int_equal(dc_test_redis_count(pattern), 0);
    dc_test_resp_free(&a);
}

static void test_tenant_isolation(void **state)
{
    fixture_t     *f = *state;
    char           a_org[37], b_org[37], upper[37], path[PATH_MAX_LEN], expect[64];
    dc_test_resp_t a, b, a_upper;

    dc_test_org(1, a_org);
    dc_test_org(2, b_org);
    forget_org(a_org);
    forget_org(b_org);

    dc_test_org_path(path, sizeof(path), a_org, "stats");
    dc_test_get(f->app, path, NULL, &a);
    assert_string_equal(a.x_cache, "MISS");

    dc_test_org_path(path, sizeof(path), b_org, "stats");
    dc_test_get(f->app, path, NULL, &b);
    assert_int_equal(b.status, 200);
    assert_string_equal(b.x_cache, "MISS");
    snprintf(expect, sizeof(expect), "\"orgId\":\"%s\"", b_org);
    assert_non_null(strstr(b.body, expect));
    snprintf(expect, sizeof(expect), "%s", a_org);
    assert_null(strstr(b.body, expect));

    /* the same tenant spelled in upper case shares its key, and only its key */
    for (int i = 0; i < 37; i++)
        upper[i] = (char)(a_org[i] >= 'a' && a_org[i] <= 'f' ? a_org[i] - 32 : a_org[i]);
    dc_test_org_path(path, sizeof(path), upper, "stats");
    dc_test_get(f->app, path, NULL, &a_upper);
    assert_string_equal(a_upper.x_cache, "HIT");
    assert_string_equal(a_upper.body, a.body);

    dc_test_resp_free(&a);
    dc_test_resp_free(&b);
    dc_test_resp_free(&a_upper);
}

static void test_values_match_the_database(void **state)
{
    fixture_t  *f = *state;
    const char *p[] = { DEMO_ORG };
    char        path[PATH_MAX_LEN], expect[64];
    char *alerts = dc_test_sql("SELECT count(*) FROM alerts WHERE org_id = $1 AND resolved_at IS NULL", 1, p);
    char *units = dc_test_sql("SELECT count(*) FROM units WHERE org_id = $1", 1, p);
    dc_test_resp_t a, b;

    dc_test_org_path(path, sizeof(path), DEMO_ORG, "alerts/count");
    dc_test_get(f->app, path, "forceRefresh=true", &a);
    snprintf(expect, sizeof(expect), "\"unresolved\":%s,", alerts);
    assert_non_null(strstr(a.body, expect));
    dc_test_org_path(path, sizeof(path), DEMO_ORG, "units/status");
    dc_test_get(f->app, path, "forceRefresh=true", &b);
    snprintf(expect, sizeof(expect), "\"total\":%s,", units);
    assert_non_null(strstr(b.body, expect));
    free(alerts);
    free(units);
    dc_test_resp_free(&a);
    dc_test_resp_free(&b);
}

/* Redis refuses connections: answers come from the database, quickly, every time. */
static void test_redis_refused_bypasses(void **state)
{
    fixture_t *f = *state;
    char       path[PATH_MAX_LEN];
    dc_app_t  *app;

    f->cfg.redis.redis_port = dc_test_closed_port();
    app = dc_app_new(&f->cfg);
    dc_test_org_path(path, sizeof(path), DEMO_ORG, "units/status");
    for (int i = 0; i < 5; i++) {
        dc_test_resp_t r;
        dc_test_get(app, path, NULL, &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.x_cache, "BYPASS");
        assert_true(r.ms < 1000);
        dc_test_resp_free(&r);
    }
    dc_app_free(app);
}

/*
 * Redis accepts connections but never answers (hung, SIGSTOPped): the first
 * request waits one command timeout, the ones during the back-off none.
 */
static void test_redis_hung_is_bounded_and_recovers(void **state)
{
    fixture_t     *f = *state;
    int            real_port = f->cfg.redis.redis_port, port;
    int            fd = dc_test_silent_listener(&port);
    char           path[PATH_MAX_LEN];
    dc_test_resp_t r;
    dc_app_t      *app;

    f->cfg.redis.redis_port = port;
    f->cfg.redis_command_timeout_ms = 100;
    f->cfg.redis_retry_interval_ms = 3000; /* longer than two requests take, even under valgrind */
    app = dc_app_new(&f->cfg);
    dc_test_org_path(path, sizeof(path), DEMO_ORG, "devices/online");

    dc_test_get(app, path, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.x_cache, "BYPASS");
    assert_true(r.ms < 100 + 1000);
    dc_test_resp_free(&r);
    assert_true(dc_test_accept_all(fd) >= 1); /* it tried */

    dc_test_get(app, path, NULL, &r);
    assert_string_equal(r.x_cache, "BYPASS");
    /* in back-off: Redis not touched at all (no connection), so no wait on it */
    assert_int_equal(dc_test_accept_all(fd), 0);
    dc_test_resp_free(&r);

    /* Redis is back: after the back-off the worker reconnects by itself (no restart, no signal) */
    f->cfg.redis.redis_port = real_port;
    forget_org(DEMO_ORG);
    for (int i = 0; i < 100; i++) {
        dc_test_get(app, path, NULL, &r);
        if (strcmp(r.x_cache, "BYPASS") != 0)
            break;
        dc_test_resp_free(&r);
        usleep(100 * 1000);
    }
    assert_string_equal(r.x_cache, "MISS");
    dc_test_resp_free(&r);
    dc_test_get(app, path, NULL, &r);
    assert_string_equal(r.x_cache, "HIT");
    dc_test_resp_free(&r);

    close(fd);
    dc_app_free(app);
}

/* The database is down: cached answers are still served; misses get a 503. */
static void test_database_down_serves_hits_and_503s_misses(void **state)
{
    fixture_t     *f = *state;
    char           path[PATH_MAX_LEN], url[128], key[DC_KEY_MAX];
    dc_test_resp_t r;
    dc_config_t    down = f->cfg;
    dc_app_t      *app;

    forget_org(DEMO_ORG);
    dc_test_org_path(path, sizeof(path), DEMO_ORG, "stats");
    dc_test_get(f->app, path, NULL, &r);
    assert_string_equal(r.x_cache, "MISS");
    dc_test_resp_free(&r);

    snprintf(url, sizeof(url), "postgresql://dashcache@127.0.0.1:%d/dashcache", dc_test_closed_port());
    snprintf(down.database_url, sizeof(down.database_url), "%s", url);
    app = dc_app_new(&down);

    dc_test_get(app, path, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.x_cache, "HIT");
    dc_test_resp_free(&r);

    dc_test_org_path(path, sizeof(path), DEMO_ORG, "compliance");
    dc_test_get(app, path, NULL, &r);
    assert_int_equal(r.status, 503);
    assert_int_equal(r.retry_after, down.retry_after_s);
    assert_non_null(strstr(r.body, "\"database_unavailable\""));
    assert_true(r.ms < 3000);
    dc_test_resp_free(&r);

    /* nothing was cached for the failed miss */
    dc_test_key(key, sizeof(key), DEMO_ORG, "compliance", NULL);
    assert_int_equal(dc_test_redis_int("EXISTS %s", key), 0);
    dc_app_free(app);
}

/* The organization's alert counts invalidated, as a write does. */
static void invalidate_alerts(fixture_t *f)
{
    dc_cache_t *c = dc_cache_new(&f->cfg);

    assert_non_null(c);
    assert_int_equal(dc_cache_invalidate(c, DEMO_ORG, DC_QBIT(ALERTS)), DC_OK);
    dc_cache_free(c);
}

/* Another reader holds the lease of key under the current token (the organization's alert counts'). */
static void plant_lease(const char *key)
{
    char  lease[DC_KEY_MAX + 32], genkey[DC_KEY_MAX];
    char *epoch = dc_test_redis_str("GET dashcache:epoch"), *gen;

    dc_test_gen_key(genkey, sizeof(genkey), DEMO_ORG, DC_Q_ALERTS);
    gen = dc_test_redis_str("GET %s", genkey);
    assert_non_null(epoch);
    assert_non_null(gen);
    assert_true(dc_key_lease(key, strlen(key), lease, sizeof(lease)) > 0);
    free(dc_test_redis_str("SET %s %s.%s%sholder PX 5000", lease, epoch, gen, " "));
    free(epoch);
    free(gen);
}

/* An answer past its TTL of the current generation, served while another reader holds its lease. */
static void make_stale(fixture_t *f, const char *path, const char *key, dc_test_resp_t *first)
{
    f->cfg.ttl[DC_Q_ALERTS] = 1;
    f->cfg.cache_max_stale_s = 60;
    dc_test_get(f->app, path, NULL, first);
    assert_string_equal(first->x_cache, "MISS");
    assert_true(dc_test_redis_int("TTL %s", key) > 1); /* kept past its TTL, to be served stale */
    usleep(2100 * 1000);
    plant_lease(key); /* another reader refreshes it */
}

/*
 * Stale-while-revalidate: past its TTL, an answer of the current
 * generation is served STALE with its Age while another reader refreshes
 * it; once the lease is free, the next reader refreshes it (MISS, fresh);
 * after an invalidation the stale answer is never served again.
 */
static void test_stale_while_revalidate_only_of_the_current_generation(void **state)
{
    fixture_t     *f = *state;
    char           path[PATH_MAX_LEN], key[DC_KEY_MAX], lease[DC_KEY_MAX + 32];
    dc_test_resp_t a, b, c, d;

    forget_org(DEMO_ORG);
    dc_test_org_path(path, sizeof(path), DEMO_ORG, "alerts/count");
    dc_test_key(key, sizeof(key), DEMO_ORG, "alerts/count", NULL);
    make_stale(f, path, key, &a);
    dc_test_get(f->app, path, NULL, &b);
    assert_string_equal(b.x_cache, "STALE");
    assert_string_equal(b.body, a.body);
    assert_string_equal(b.etag, a.etag);
    assert_true(b.age >= 2);

    assert_true(dc_key_lease(key, strlen(key), lease, sizeof(lease)) > 0);
    free(dc_test_redis_str("DEL %s", lease));
    dc_test_get(f->app, path, NULL, &c);
    assert_string_equal(c.x_cache, "MISS"); /* this reader refreshed it */
    dc_test_resp_free(&c);
    dc_test_get(f->app, path, NULL, &c);
    assert_string_equal(c.x_cache, "HIT");
    dc_test_resp_free(&c);

    /*
     * invalidated: stale or not, the old answer is never served, and the
     * lease taken before the invalidation is no lease (its store would be
     * refused): the reader takes the key over at once
     */
    usleep(2100 * 1000);
    plant_lease(key);
    invalidate_alerts(f);
    dc_test_get(f->app, path, NULL, &d);
    assert_string_equal(d.x_cache, "MISS");
    assert_true(d.ms < 1000); /* not CACHE_LEASE_MS (2 s) */
    free(dc_test_redis_str("DEL %s", lease));
    dc_test_resp_free(&a);
    dc_test_resp_free(&b);
    dc_test_resp_free(&d);
}

/* Stale-if-error: the database is down; a stale answer of the current generation is served, a miss is 503. */
static void test_stale_if_error(void **state)
{
    fixture_t     *f = *state;
    char           path[PATH_MAX_LEN], key[DC_KEY_MAX], lease[DC_KEY_MAX + 32];
    dc_test_resp_t a, r;
    dc_config_t    down;
    dc_app_t      *app;

    forget_org(DEMO_ORG);
    dc_test_org_path(path, sizeof(path), DEMO_ORG, "alerts/count");
    dc_test_key(key, sizeof(key), DEMO_ORG, "alerts/count", NULL);
    make_stale(f, path, key, &a);
    assert_true(dc_key_lease(key, strlen(key), lease, sizeof(lease)) > 0);
    free(dc_test_redis_str("DEL %s", lease)); /* this reader will refresh it, and the database fails */
    down = f->cfg;
    snprintf(down.database_url, sizeof(down.database_url), "postgresql://dashcache@127.0.0.1:%d/dashcache",
             dc_test_closed_port());
    app = dc_app_new(&down);
    assert_non_null(app);
    dc_test_get(app, path, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.x_cache, "STALE");
    assert_string_equal(r.body, a.body);
    assert_int_equal(dc_test_redis_int("EXISTS %s", lease), 0); /* its lease given back at once */
    dc_test_resp_free(&r);
    /* invalidated: nothing of the current generation, so a 503 */
    invalidate_alerts(f);
    dc_test_get(app, path, NULL, &r);
    assert_int_equal(r.status, 503);
    dc_test_resp_free(&r);
    dc_app_free(app);
    dc_test_resp_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_miss_then_hit_byte_identical, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_query_type_is_cached_under_its_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ttl_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_force_refresh_bypasses_and_repopulates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_format_value_is_a_miss_and_is_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_while_revalidate_only_of_the_current_generation, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stale_if_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_etag_and_not_modified, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_is_never_cached, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_org_and_unit_are_not_cached, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tenant_isolation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_values_match_the_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_closed_by_redis_is_still_a_hit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_refused_bypasses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_hung_is_bounded_and_recovers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_database_down_serves_hits_and_503s_misses, setup, teardown),
    };
    return cmocka_run_group_tests_name("integration_cache", tests, NULL, NULL);
}
