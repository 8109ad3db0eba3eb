/*
 * Writes and invalidation against the real Redis and PostgreSQL: the write
 * endpoints and their errors, the stale-set race forced step by step,
 * invalidation before the event is announced, pattern messages, and the
 * scope of each invalidation: a write moves the generations of the query
 * types that read what it changed, through the worker's own invalidation
 * and through the outbox the database triggers fill, and no other.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "dc_cache.h"
#include "dc_db.h"
#include "dc_inval.h"
#include "dc_key.h"
#include "dc_outbox.h"
#include "dc_query.h"
#include "dc_router.h"
#include "dc_test.h"

/* Every cached answer of one organization, and the query type of each. */
enum { R_STATS, R_UNITS, R_ALERTS, R_ALERTS_UNIT, R_TRENDS, R_DEVICES, R_COMPLIANCE, R_COUNT };

typedef struct {
    dc_config_t cfg;
    dc_app_t   *app;
    char        org[37], unit[37], device[37];
    char        other_org[37], other_unit[37];
    struct {
        char        path[200];
        const char *query;
        char        query_buf[128];
        dc_qtype_t  q;
    } reads[R_COUNT];
    /* the invalidator's part: the outbox, applied on demand (no invalidator runs here) */
    dc_cache_t *cache;
    dc_db_t    *outbox_db;
    dc_outbox_t ob;
} fixture_t;

static void set_read(fixture_t *f, int i, dc_qtype_t q, const char *suffix, const char *query)
{
    dc_test_org_path(f->reads[i].path, sizeof(f->reads[i].path), f->org, suffix);
    f->reads[i].q = q;
    f->reads[i].query = NULL;
    if (query != NULL) {
        snprintf(f->reads[i].query_buf, sizeof(f->reads[i].query_buf), "%s", query);
        f->reads[i].query = f->reads[i].query_buf;
    }
}

static void drain_outbox(fixture_t *f);

static int setup(void **state)
{
    fixture_t         *f = calloc(1, sizeof(*f));
    const dc_db_set_t *sets[] = { dc_outbox_statements() };
    char               buf[128];

    dc_test_config(&f->cfg);
    f->app = dc_app_new(&f->cfg);
    assert_non_null(f->app);
    dc_test_org(3, f->org);
    dc_test_unit_of(f->org, f->unit);
    dc_test_device_of(f->unit, f->device);
    dc_test_org(4, f->other_org);
    dc_test_unit_of(f->other_org, f->other_unit);
    set_read(f, R_STATS, DC_Q_STATS, "stats", NULL);
    set_read(f, R_UNITS, DC_Q_UNITS, "units/status", NULL);
    set_read(f, R_ALERTS, DC_Q_ALERTS, "alerts/count", NULL);
    snprintf(buf, sizeof(buf), "unitId=%s", f->unit);
    set_read(f, R_ALERTS_UNIT, DC_Q_ALERTS, "alerts/count", buf);
    snprintf(buf, sizeof(buf), "units/%s/temperature/trends", f->unit);
    set_read(f, R_TRENDS, DC_Q_TEMPERATURE, buf, "hours=6");
    set_read(f, R_DEVICES, DC_Q_DEVICES, "devices/online", NULL);
    set_read(f, R_COMPLIANCE, DC_Q_COMPLIANCE, "compliance", NULL);
    f->cache = dc_cache_new(&f->cfg);
    f->outbox_db = dc_db_new(&f->cfg, sets, DC_ARRAY_LEN(sets));
    assert_non_null(f->cache);
    assert_non_null(f->outbox_db);
    *state = f;
    /*
     * nothing left pending by an earlier test: hits are served only while no
     * outbox row outlives a probe (dc_trust), however slowly the tests run
     */
    drain_outbox(f);
    return 0;
}

static void redis_takes_writes(void);

static int teardown(void **state)
{
    fixture_t *f = *state;
    redis_takes_writes();
    dc_app_free(f->app);
    dc_outbox_free(&f->ob);
    dc_db_free(f->outbox_db);
    dc_cache_free(f->cache);
    free(f);
    return 0;
}

/* The validator of b's body, as dc_app stores it (a static buffer). */
static const char *etag_of(const dc_buf_t *b)
{
    static char tag[DC_ETAG_LEN + 1];
    dc_etag_of(b->data, b->len, tag);
    return tag;
}

static void no_lag(void *arg, double ms)
{
    (void)arg;
    (void)ms;
}

/* Applies every pending outbox row, as dashcache-invalidator does. */
static void drain_outbox(fixture_t *f)
{
    dc_drain_stats_t st;
    assert_int_equal(dc_inval_drain(f->cache, f->outbox_db, &f->ob, 500, no_lag, NULL, &st), DC_OK);
}

/* Reads every cached answer of f->org until it is a HIT. */
static void warm_all(fixture_t *f)
{
    for (int i = 0; i < R_COUNT; i++) {
        dc_test_resp_t r;
        for (int k = 0; k < 2; k++) {
            dc_test_get(f->app, f->reads[i].path, f->reads[i].query, &r);
            assert_int_equal(r.status, 200);
            dc_test_resp_free(&r);
        }
        dc_test_get(f->app, f->reads[i].path, f->reads[i].query, &r);
        if (strcmp(r.x_cache, "HIT") != 0)
            fail_msg("warming %s?%s: X-Cache %s", f->reads[i].path,
                     f->reads[i].query ? f->reads[i].query : "", r.x_cache);
        dc_test_resp_free(&r);
    }
}

/*
 * Reads every cached answer of f->org once, after what: a MISS for those of
 * the query types in moved (a DC_QBIT mask), a HIT for every other.
 */
static void expect_moved(fixture_t *f, unsigned moved, const char *what)
{
    for (int i = 0; i < R_COUNT; i++) {
        const char    *want = moved & DC_QBIT_OF(f->reads[i].q) ? "MISS" : "HIT";
        dc_test_resp_t r;
        dc_test_get(f->app, f->reads[i].path, f->reads[i].query, &r);
        assert_int_equal(r.status, 200);
        if (strcmp(r.x_cache, want) != 0)
            fail_msg("after %s, %s?%s (%s): X-Cache %s, want %s", what, f->reads[i].path,
                     f->reads[i].query ? f->reads[i].query : "", dc_qtype_name(f->reads[i].q), r.x_cache,
                     want);
        dc_test_resp_free(&r);
    }
}

static long long count_sql(const char *sql, const char *org)
{
    const char *p[] = { org };
    char       *v = dc_test_sql(sql, 1, p);
    long long   n = v ? atoll(v) : -1;
    free(v);
    return n;
}

static long long open_alerts(const char *org)
{
    return count_sql("SELECT count(*) FROM alerts WHERE org_id = $1 AND resolved_at IS NULL", org);
}

static long long audit_rows(const char *org)
{
    return count_sql("SELECT count(*) FROM audit_log WHERE org_id = $1", org);
}

/* "unresolved":N of the alert count body. */
static long long unresolved_in(const char *body)
{
    const char *p = strstr(body, "\"unresolved\":");
    assert_non_null(p);
    return atoll(p + 13);
}

static void create_alert(fixture_t *f, const char *org, const char *unit, dc_test_resp_t *r)
{
    char path[160], body[256];
    dc_test_org_path(path, sizeof(path), org, "alerts");
    snprintf(body, sizeof(body), "{\"unitId\":\"%s\",\"kind\":\"door_open\",\"message\":\"test\"}", unit);
    dc_test_post(f->app, path, body, r);
}

static void test_alert_create_invalidates_and_answers_201(void **state)
{
    fixture_t     *f = *state;
    char           path[160];
    dc_test_resp_t a, w, b;

    dc_test_org_path(path, sizeof(path), f->org, "alerts/count");
    dc_test_get(f->app, path, NULL, &a);
    dc_test_resp_free(&a);
    dc_test_get(f->app, path, NULL, &a); /* now cached */
    assert_string_equal(a.x_cache, "HIT");

    create_alert(f, f->org, f->unit, &w);
    assert_int_equal(w.status, 201);
    assert_non_null(strstr(w.body, "\"id\":\""));

    dc_test_get(f->app, path, NULL, &b);
    assert_string_equal(b.x_cache, "MISS");
    assert_int_equal(unresolved_in(b.body), unresolved_in(a.body) + 1);
    assert_int_equal(unresolved_in(b.body), open_alerts(f->org));
    dc_test_resp_free(&a);
    dc_test_resp_free(&w);
    dc_test_resp_free(&b);
}

/* Redis takes writes again (also in teardown: a failed assertion must not leave it refusing). */
static void redis_takes_writes(void)
{
    free(dc_test_redis_str("CONFIG SET maxmemory 0"));
    free(dc_test_redis_str("CONFIG SET maxmemory-policy allkeys-lru"));
}

static int collect_event(void *arg, const char *msg, size_t len)
{
    dc_buf_t *b = arg;
    return dc_buf_append(b, msg, len);
}

/*
 * Redis refuses the write's invalidation (maxmemory under noeviction): the
 * write is acknowledged, and before that the host's lease on hits is void,
 * so the next read, by this worker or another, comes from the database.
 * Hits stay stopped while the write's outbox row is pending, also once Redis
 * takes writes again, and resume by themselves once it is applied; the
 * write's event waits in the database until then.
 */
static void test_refused_invalidation_stops_hits_until_the_outbox_is_applied(void **state)
{
    fixture_t     *f = *state;
    char           path[160];
    dc_test_resp_t a, w, b, c;
    dc_app_t      *other = dc_app_new(&f->cfg); /* another worker of the host */
    dc_buf_t       events = DC_BUF_INIT;
    size_t         published;
    int            hit = 0;
    char          *kept;

    assert_non_null(other);
    drain_outbox(f);
    dc_test_org_path(path, sizeof(path), f->org, "alerts/count");
    dc_test_get(f->app, path, NULL, &a);
    dc_test_resp_free(&a);
    dc_test_get(other, path, NULL, &a);
    assert_string_equal(a.x_cache, "HIT");

    free(dc_test_redis_str("CONFIG SET maxmemory-policy noeviction"));
    free(dc_test_redis_str("CONFIG SET maxmemory 1"));
    create_alert(f, f->org, f->unit, &w);
    assert_int_equal(w.status, 201); /* acknowledged: the outbox will apply it */
    dc_test_get(other, path, NULL, &b);
    assert_string_equal(b.x_cache, "BYPASS");
    assert_int_equal(unresolved_in(b.body), unresolved_in(a.body) + 1);
    kept = dc_test_sql("SELECT count(*) FROM cache_deferred_events WHERE payload LIKE '%alertCreated%'", 0,
                       NULL);
    assert_non_null(kept);
    assert_true(atoll(kept) >= 1);
    free(kept);

    redis_takes_writes();
    dc_test_resp_free(&b);
    dc_test_get(other, path, NULL, &b); /* Redis is fine, the write's row is not applied yet */
    assert_string_equal(b.x_cache, "BYPASS");
    assert_int_equal(unresolved_in(b.body), unresolved_in(a.body) + 1);
    /* nothing is published while a row is pending */
    assert_int_equal(dc_outbox_publish_events(f->outbox_db, 100, collect_event, &events, &published), DC_OK);
    assert_int_equal(published, 0);

    drain_outbox(f);
    for (int i = 0; i < 200 && !hit; i++) {
        dc_test_get(other, path, NULL, &c);
        assert_int_equal(unresolved_in(c.body), unresolved_in(a.body) + 1);
        hit = strcmp(c.x_cache, "HIT") == 0;
        dc_test_resp_free(&c);
        if (!hit)
            usleep(10000);
    }
    assert_true(hit);
    assert_int_equal(dc_outbox_publish_events(f->outbox_db, 100, collect_event, &events, &published), DC_OK);
    assert_true(published >= 1);
    assert_non_null(strstr(events.data, "alertCreated"));
    kept = dc_test_sql("SELECT count(*) FROM cache_deferred_events", 0, NULL);
    assert_string_equal(kept, "0");
    free(kept);
    dc_buf_free(&events);
    dc_test_resp_free(&a);
    dc_test_resp_free(&w);
    dc_test_resp_free(&b);
    dc_app_free(other);
}

static void test_resolve_twice_is_a_clear_409_that_changes_nothing(void **state)
{
    fixture_t     *f = *state;
    char           path[200], id[37];
    dc_test_resp_t w, r1, r2;
    long long      audits;

    create_alert(f, f->org, f->unit, &w);
    assert_int_equal(w.status, 201);
    memcpy(id, strstr(w.body, "\"id\":\"") + 6, 36);
    id[36] = '\0';

    snprintf(path, sizeof(path), "/api/dashboard/orgs/%s/alerts/%s/resolve", f->org, id);
    dc_test_post(f->app, path, NULL, &r1);
    assert_int_equal(r1.status, 200);
    assert_non_null(strstr(r1.body, "\"status\":\"resolved\""));
    audits = audit_rows(f->org);
    dc_test_post(f->app, path, NULL, &r2);
    assert_int_equal(r2.status, 409);
    assert_non_null(strstr(r2.body, "\"alert_already_resolved\""));
    assert_int_equal(audit_rows(f->org), audits);
    dc_test_resp_free(&r2);

    /* the same alert through another tenant's path does not exist */
    snprintf(path, sizeof(path), "/api/dashboard/orgs/%s/alerts/%s/resolve", f->other_org, id);
    dc_test_post(f->app, path, NULL, &r2);
    assert_int_equal(r2.status, 404);
    dc_test_resp_free(&w);
    dc_test_resp_free(&r1);
    dc_test_resp_free(&r2);
}

static void test_ids_of_another_tenant_are_404_and_never_written(void **state)
{
    fixture_t     *f = *state;
    char           path[200];
    dc_test_resp_t r;
    long long      before = open_alerts(f->other_org), audits = audit_rows(f->other_org);

    create_alert(f, f->org, f->other_unit, &r); /* other tenant's unit under our org */
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body, "\"unit_not_found\""));
    dc_test_resp_free(&r);

    snprintf(path, sizeof(path), "/api/dashboard/orgs/%s/devices/%s/status", f->other_org, f->device);
    dc_test_post(f->app, path, "{\"online\":false}", &r);
    assert_int_equal(r.status, 404);
    dc_test_resp_free(&r);

    assert_int_equal(open_alerts(f->other_org), before);
    assert_int_equal(audit_rows(f->other_org), audits);
}

static void test_device_status_changes_devices_online(void **state)
{
    fixture_t     *f = *state;
    char           path[200], dpath[160];
    dc_test_resp_t a, w, b;

    dc_test_org_path(dpath, sizeof(dpath), f->org, "devices/online");
    snprintf(path, sizeof(path), "/api/dashboard/orgs/%s/devices/%s/status", f->org, f->device);
    dc_test_post(f->app, path, "{\"online\":true}", &w);
    assert_int_equal(w.status, 200);
    dc_test_resp_free(&w);
    dc_test_get(f->app, dpath, NULL, &a);

    dc_test_post(f->app, path, "{\"online\":false}", &w);
    assert_int_equal(w.status, 200);
    assert_non_null(strstr(w.body, "\"lastSeenAt\":null"));
    dc_test_resp_free(&w);
    dc_test_get(f->app, dpath, NULL, &b);
    assert_string_equal(b.x_cache, "MISS");
    assert_int_equal(atoll(strstr(b.body, "\"online\":") + 9), atoll(strstr(a.body, "\"online\":") + 9) - 1);

    dc_test_post(f->app, path, "{\"online\":\"yes\"}", &w);
    assert_int_equal(w.status, 400);
    dc_test_resp_free(&w);
    dc_test_post(f->app, path, "{\"online\":true}", &w);
    dc_test_resp_free(&a);
    dc_test_resp_free(&b);
    dc_test_resp_free(&w);
}

static void test_ingest_out_of_range_opens_one_alert(void **state)
{
    fixture_t     *f = *state;
    char           body[512], cpath[160];
    const char    *p[] = { f->unit };
    dc_test_resp_t w, c;
    long long      open_before, hot_before, normal_before;

    /* back in range first, with every alert of the unit resolved */
    free(dc_test_sql(
        "WITH r AS (UPDATE alerts SET resolved_at = now() WHERE unit_id = $1 AND resolved_at IS NULL"
        " RETURNING 1) SELECT count(*) FROM r",
        1, p));
    snprintf(body, sizeof(body), "{\"deviceId\":\"%s\",\"temperature\":5}", f->device);
    dc_test_post(f->app, "/api/ingest/readings", body, &w);
    assert_int_equal(w.status, 200);
    dc_test_resp_free(&w);
    open_before = open_alerts(f->org);
    /* read (and cache) the counts while the unit is in range */
    dc_test_org_path(cpath, sizeof(cpath), f->org, "units/status");
    dc_test_get(f->app, cpath, NULL, &c);
    assert_int_equal(c.status, 200);
    hot_before = dc_test_json_int(c.body, "too_hot");
    normal_before = dc_test_json_int(c.body, "normal");
    dc_test_resp_free(&c);

    snprintf(body, sizeof(body),
             "[{\"deviceId\":\"%s\",\"temperature\":60},{\"deviceId\":\"%s\",\"temperature\":61}]", f->device,
             f->device);
    dc_test_post(f->app, "/api/ingest/readings", body, &w);
    assert_int_equal(w.status, 200);
    assert_non_null(strstr(w.body, "\"accepted\":2"));
    assert_non_null(strstr(w.body, "\"alertsOpened\":1"));
    dc_test_resp_free(&w);
    dc_test_post(f->app, "/api/ingest/readings", body, &w); /* already has one open */
    assert_non_null(strstr(w.body, "\"alertsOpened\":0"));
    assert_int_equal(open_alerts(f->org), open_before + 1);

    /* the unit moved from normal to too_hot, and the cached counts were not served */
    dc_test_get(f->app, cpath, NULL, &c);
    assert_int_equal(c.status, 200);
    assert_int_equal(dc_test_json_int(c.body, "too_hot"), hot_before + 1);
    assert_int_equal(dc_test_json_int(c.body, "normal"), normal_before - 1);
    dc_test_resp_free(&w);
    dc_test_resp_free(&c);
}

static void test_ingest_bad_element_stores_nothing(void **state)
{
    fixture_t     *f = *state;
    char           body[512];
    dc_test_resp_t w;
    long long      before = count_sql("SELECT count(*) FROM readings WHERE org_id = $1", f->org);

    snprintf(body, sizeof(body),
             "[{\"deviceId\":\"%s\",\"temperature\":4},{\"deviceId\":\"%s\",\"temperature\":4,\"recordedAt\":"
             "\"2026-02-30T00:00:00Z\"}]",
             f->device, f->device);
    dc_test_post(f->app, "/api/ingest/readings", body, &w);
    assert_int_equal(w.status, 400);
    assert_non_null(strstr(w.body, "\"index\":1"));
    dc_test_resp_free(&w);

    snprintf(body, sizeof(body),
             "[{\"deviceId\":\"%s\",\"temperature\":4},{\"deviceId\":\"00000000-0000-4000-8000-"
             "000000000000\",\"temperature\":4}]",
             f->device);
    dc_test_post(f->app, "/api/ingest/readings", body, &w);
    assert_int_equal(w.status, 404);
    assert_non_null(strstr(w.body, "\"index\":1"));
    dc_test_resp_free(&w);

    assert_int_equal(count_sql("SELECT count(*) FROM readings WHERE org_id = $1", f->org), before);
}

/*
 * A lost generation key (issue 11, 3), forced: the generation of a query
 * type is missing (evicted, deleted), a reader misses and reads the
 * database, a writer commits and invalidates, the generation key is lost
 * again, then the reader stores. A reader that saw no generation creates
 * one before its query (as dc_app does), and the store under it is refused
 * once that key is gone; a store under no generation is refused outright.
 * Before, the store created a fresh generation and cached the pre-write
 * answer under it: a stale hit after an acknowledged write.
 */
static void test_lost_generation_key_never_caches_old_data(void **state)
{
    fixture_t         *f = *state;
    const dc_db_set_t *sets[] = { dc_query_statements() };
    dc_cache_t        *cache = dc_cache_new(&f->cfg);
    dc_db_t           *db = dc_db_new(&f->cfg, sets, DC_ARRAY_LEN(sets));
    dc_request_t       req;
    dc_error_t         err;
    dc_cache_value_t   v;
    dc_buf_t           old = DC_BUF_INIT;
    char               path[160], key[DC_KEY_MAX], genkey[DC_KEY_MAX], gen[DC_GEN_MAX];
    dc_test_resp_t     w, after;
    int                klen;

    dc_test_org_path(path, sizeof(path), f->org, "alerts/count");
    assert_int_equal(dc_router_route("GET", path, NULL, &req, &err), DC_OK);
    klen = dc_key_build(&req, key, sizeof(key));
    assert_true(klen > 0);
    dc_test_gen_key(genkey, sizeof(genkey), f->org, req.qtype);
    free(dc_test_redis_str("DEL %s %s", key, genkey));

    /* 1. reader: a miss with no generation at all */
    assert_int_equal(dc_cache_get(cache, f->org, req.qtype, key, (size_t)klen, &v), DC_DECLINED);
    assert_string_equal(v.gen, "");
    /* a store under no generation is refused, whatever the key holds */
    assert_int_equal(
        dc_cache_set(cache, f->org, req.qtype, key, (size_t)klen, "", "0123456789abcdef", "{}", 2, 60),
        DC_DECLINED);
    assert_int_equal(dc_test_redis_int("EXISTS %s %s", key, genkey), 0);
    /* so the reader makes one before its query, and reads the database (pre-write) */
    assert_int_equal(dc_cache_generation(cache, f->org, req.qtype, gen), DC_OK);
    assert_true(gen[0] != '\0');
    assert_int_equal(dc_test_redis_int("EXISTS %s", genkey), 1);
    assert_int_equal(dc_query_run(db, &f->cfg, &req, &old, &err), DC_OK);
    /* 2. writer: commit and invalidate; 3. the generation key is lost again */
    create_alert(f, f->org, f->unit, &w);
    assert_int_equal(w.status, 201);
    free(dc_test_redis_str("DEL %s", genkey));
    /* 4. the reader's store is refused: nothing cached from before the write */
    assert_int_equal(
        dc_cache_set(cache, f->org, req.qtype, key, (size_t)klen, gen, etag_of(&old), old.data, old.len, 60),
        DC_DECLINED);
    assert_int_equal(dc_test_redis_int("EXISTS %s", key), 0);

    dc_test_get(f->app, path, NULL, &after);
    assert_int_equal(after.status, 200);
    assert_string_equal(after.x_cache, "MISS");
    assert_int_equal(unresolved_in(after.body), unresolved_in(old.data) + 1);

    dc_buf_free(&old);
    dc_test_resp_free(&w);
    dc_test_resp_free(&after);
    dc_db_free(db);
    dc_cache_free(cache);
}

/*
 * The stale-set race, forced: a reader misses and reads the database, a
 * writer commits and invalidates, then the reader tries to store what it
 * read. The store must be refused and the next read must see the write.
 */
static void test_stale_set_race_is_refused(void **state)
{
    fixture_t         *f = *state;
    const dc_db_set_t *sets[] = { dc_query_statements() };
    dc_cache_t        *cache = dc_cache_new(&f->cfg);
    dc_db_t           *db;
    dc_request_t       req;
    dc_error_t         err;
    dc_cache_value_t   v;
    dc_buf_t           old = DC_BUF_INIT;
    char               path[160], key[DC_KEY_MAX];
    dc_test_resp_t     w, after;
    int                klen;

    db = dc_db_new(&f->cfg, sets, DC_ARRAY_LEN(sets));
    dc_test_org_path(path, sizeof(path), f->org, "alerts/count");
    assert_int_equal(dc_router_route("GET", path, NULL, &req, &err), DC_OK);
    klen = dc_key_build(&req, key, sizeof(key));
    assert_true(klen > 0);
    free(dc_test_redis_str("DEL %s", key));

    /* control: without a write in between the same store is accepted */
    assert_int_equal(dc_cache_get(cache, f->org, req.qtype, key, (size_t)klen, &v), DC_DECLINED);
    assert_int_equal(dc_query_run(db, &f->cfg, &req, &old, &err), DC_OK);
    assert_int_equal(dc_cache_set(cache, f->org, req.qtype, key, (size_t)klen, v.gen, etag_of(&old), old.data,
                                  old.len, 60),
                     DC_OK);
    free(dc_test_redis_str("DEL %s", key));
    dc_buf_reset(&old);

    /* 1. slow reader: miss, generation read, database read (pre-write) */
    assert_int_equal(dc_cache_get(cache, f->org, req.qtype, key, (size_t)klen, &v), DC_DECLINED);
    assert_int_equal(dc_query_run(db, &f->cfg, &req, &old, &err), DC_OK);
    /* 2. writer: commit and invalidate */
    create_alert(f, f->org, f->unit, &w);
    assert_int_equal(w.status, 201);
    /* 3. the slow reader's store comes too late and is refused */
    assert_int_equal(dc_cache_set(cache, f->org, req.qtype, key, (size_t)klen, v.gen, etag_of(&old), old.data,
                                  old.len, 60),
                     DC_DECLINED);
    assert_int_equal(dc_test_redis_int("EXISTS %s", key), 0);

    dc_test_get(f->app, path, NULL, &after);
    assert_string_equal(after.x_cache, "MISS");
    assert_int_equal(unresolved_in(after.body), unresolved_in(old.data) + 1);

    dc_buf_free(&old);
    dc_test_resp_free(&w);
    dc_test_resp_free(&after);
    dc_db_free(db);
    dc_cache_free(cache);
}

/*
 * Invalidation strictly before the event: a consumer in another process
 * reads the dashboard the moment the event arrives and must see the write.
 */
static void test_event_arrives_after_invalidation(void **state)
{
    fixture_t     *f = *state;
    int            ready[2], result[2];
    char           path[160];
    dc_test_resp_t w, warm;
    long long      seen = -1, expected;
    pid_t          pid;

    dc_test_org_path(path, sizeof(path), f->org, "alerts/count");
    dc_test_get(f->app, path, NULL, &warm);
    dc_test_resp_free(&warm);
    dc_test_get(f->app, path, NULL, &warm);
    assert_string_equal(warm.x_cache, "HIT");
    dc_test_resp_free(&warm);
    expected = open_alerts(f->org) + 1;

    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(result), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dc_config_t cfg;
        dc_app_t   *app;
        long long   got = -2;
        char       *msg;
        dc_test_config(&cfg);
        app = dc_app_new(&cfg);
        msg = dc_test_wait_message("dashboard:events", ready[1], 5000);
        if (msg != NULL && strstr(msg, "\"alertCreated\"") != NULL) {
            dc_test_resp_t r;
            dc_test_get(app, path, NULL, &r);
            got = unresolved_in(r.body);
            dc_test_resp_free(&r);
        }
        free(msg);
        if (write(result[1], &got, sizeof(got)) != sizeof(got))
            _exit(1);
        dc_app_free(app);
        _exit(0);
    }
    {
        char c;
        assert_int_equal(read(ready[0], &c, 1), 1);
    }
    create_alert(f, f->org, f->unit, &w);
    assert_int_equal(w.status, 201);
    assert_int_equal(read(result[0], &seen, sizeof(seen)), sizeof(seen));
    waitpid(pid, NULL, 0);
    assert_int_equal(seen, expected);
    close(ready[0]);
    close(ready[1]);
    close(result[0]);
    close(result[1]);
    dc_test_resp_free(&w);
}

#define READINGS_READERS (DC_QBIT(STATS) | DC_QBIT(UNITS) | DC_QBIT(TEMPERATURE) | DC_QBIT(COMPLIANCE))

/*
 * An ingest in range (no alert opened) moves what reads readings and
 * last_seen_at, and leaves both alert counts cached: through the worker
 * right after the commit, and again when its outbox rows are applied.
 */
static void test_ingest_leaves_alert_counts_cached(void **state)
{
    fixture_t  *f = *state;
    const char *p[] = { f->unit };
    char *mid = dc_test_sql("SELECT round((min_temp + max_temp) / 2, 1) FROM units WHERE id = $1", 1, p);
    char  body[256];
    dc_test_resp_t w;

    assert_non_null(mid);
    drain_outbox(f);
    warm_all(f);
    snprintf(body, sizeof(body), "{\"deviceId\":\"%s\",\"temperature\":%s}", f->device, mid);
    dc_test_post(f->app, "/api/ingest/readings", body, &w);
    assert_int_equal(w.status, 200);
    assert_non_null(strstr(w.body, "\"alertsOpened\":0"));
    dc_test_resp_free(&w);
    expect_moved(f, READINGS_READERS | DC_QBIT(DEVICES), "an ingest (the worker)");
    warm_all(f);
    drain_outbox(f);
    expect_moved(f, READINGS_READERS | DC_QBIT(DEVICES), "an ingest (its outbox rows)");
    free(mid);
}

/* An alert created moves alerts count and stats; trends, units, devices and compliance stay cached. */
static void test_alert_create_leaves_trends_cached(void **state)
{
    fixture_t     *f = *state;
    dc_test_resp_t w;

    drain_outbox(f);
    warm_all(f);
    create_alert(f, f->org, f->unit, &w);
    assert_int_equal(w.status, 201);
    dc_test_resp_free(&w);
    expect_moved(f, DC_QBIT(ALERTS) | DC_QBIT(STATS), "an alert created (the worker)");
    warm_all(f);
    drain_outbox(f);
    expect_moved(f, DC_QBIT(ALERTS) | DC_QBIT(STATS), "an alert created (its outbox row)");
}

/* A device's status moves devices online and stats only. */
static void test_device_status_moves_devices_online_only(void **state)
{
    fixture_t     *f = *state;
    char           path[200];
    dc_test_resp_t w;

    drain_outbox(f);
    warm_all(f);
    snprintf(path, sizeof(path), "/api/dashboard/orgs/%s/devices/%s/status", f->org, f->device);
    dc_test_post(f->app, path, "{\"online\":true}", &w);
    assert_int_equal(w.status, 200);
    dc_test_resp_free(&w);
    expect_moved(f, DC_QBIT(DEVICES) | DC_QBIT(STATS), "a device status (the worker)");
    warm_all(f);
    drain_outbox(f);
    expect_moved(f, DC_QBIT(DEVICES) | DC_QBIT(STATS), "a device status (its outbox row)");
}

/*
 * SQL of another service on what the mapping does not narrow (a site, a
 * unit's thresholds) moves every query type of the organization, once its
 * outbox rows are applied; a reading inserted by SQL only what reads them.
 */
static void test_sql_outside_the_mapping_moves_every_type(void **state)
{
    fixture_t  *f = *state;
    const char *org[] = { f->org }, *unit[] = { f->unit };

    drain_outbox(f);
    warm_all(f);
    free(dc_test_sql(
        "WITH s AS (UPDATE sites SET name = name WHERE org_id = $1 RETURNING 1) SELECT count(*) FROM s", 1,
        org));
    expect_moved(f, 0, "a site updated, before its outbox row is applied");
    drain_outbox(f);
    expect_moved(f, DC_QBITS_CACHED, "a site updated");

    warm_all(f);
    free(dc_test_sql("UPDATE units SET max_temp = max_temp + 0.01 WHERE id = $1 RETURNING 1", 1, unit));
    drain_outbox(f);
    expect_moved(f, DC_QBITS_CACHED, "a unit's threshold changed");
    free(dc_test_sql("UPDATE units SET max_temp = max_temp - 0.01 WHERE id = $1 RETURNING 1", 1, unit));

    drain_outbox(f);
    warm_all(f);
    free(dc_test_sql(
        "INSERT INTO readings (org_id, unit_id, device_id, recorded_at, temperature)"
        " SELECT org_id, unit_id, id, now() - interval '1 minute', 4 FROM devices WHERE unit_id = $1"
        " ORDER BY serial LIMIT 1 RETURNING 1",
        1, unit));
    drain_outbox(f);
    expect_moved(f, READINGS_READERS, "a reading inserted by SQL");
}

/*
 * Race-freedom is per query type: a store is refused when its own type's
 * generation moved since the read, and not because another type's did.
 */
static void test_store_refused_only_when_its_type_moved(void **state)
{
    fixture_t         *f = *state;
    const dc_db_set_t *sets[] = { dc_query_statements() };
    dc_cache_t        *cache = dc_cache_new(&f->cfg);
    dc_db_t           *db = dc_db_new(&f->cfg, sets, DC_ARRAY_LEN(sets));
    dc_request_t       trends, alerts;
    dc_error_t         err;
    dc_cache_value_t   tv, av;
    dc_buf_t           tb = DC_BUF_INIT, ab = DC_BUF_INIT;
    char               tkey[DC_KEY_MAX], akey[DC_KEY_MAX];
    int                tlen, alen;
    dc_test_resp_t     w;

    assert_int_equal(dc_router_route("GET", f->reads[R_TRENDS].path, f->reads[R_TRENDS].query, &trends, &err),
                     DC_OK);
    assert_int_equal(dc_router_route("GET", f->reads[R_ALERTS].path, NULL, &alerts, &err), DC_OK);
    tlen = dc_key_build(&trends, tkey, sizeof(tkey));
    alen = dc_key_build(&alerts, akey, sizeof(akey));
    free(dc_test_redis_str("DEL %s %s", tkey, akey));

    /* two slow readers: miss, generation read, database read */
    assert_int_equal(dc_cache_get(cache, f->org, trends.qtype, tkey, (size_t)tlen, &tv), DC_DECLINED);
    assert_int_equal(dc_query_run(db, &f->cfg, &trends, &tb, &err), DC_OK);
    assert_int_equal(dc_cache_get(cache, f->org, alerts.qtype, akey, (size_t)alen, &av), DC_DECLINED);
    assert_int_equal(dc_query_run(db, &f->cfg, &alerts, &ab, &err), DC_OK);
    /* a write of alerts in between */
    create_alert(f, f->org, f->unit, &w);
    assert_int_equal(w.status, 201);
    dc_test_resp_free(&w);
    /* the trends it did not change are stored; the alert count it changed is refused */
    assert_int_equal(dc_cache_set(cache, f->org, trends.qtype, tkey, (size_t)tlen, tv.gen, etag_of(&tb),
                                  tb.data, tb.len, 60),
                     DC_OK);
    assert_int_equal(dc_cache_set(cache, f->org, alerts.qtype, akey, (size_t)alen, av.gen, etag_of(&ab),
                                  ab.data, ab.len, 60),
                     DC_DECLINED);
    assert_int_equal(dc_test_redis_int("EXISTS %s", akey), 0);

    dc_buf_free(&tb);
    dc_buf_free(&ab);
    dc_db_free(db);
    dc_cache_free(cache);
}

/* A tenant pattern deletes exactly its matching keys and touches no other tenant. */
static void test_pattern_clears_exactly_its_keys(void **state)
{
    fixture_t     *f = *state;
    dc_cache_t    *cache = dc_cache_new(&f->cfg);
    char           path[160], msg[200], why[128], pattern[DC_KEY_MAX], key[DC_KEY_MAX];
    dc_inval_msg_t m;
    dc_test_resp_t r;
    size_t         deleted;
    const char    *suffixes[] = { "stats", "units/status", "compliance" };

    for (int t = 0; t < 2; t++) {
        dc_test_org_keys(pattern, sizeof(pattern), t ? f->other_org : f->org);
        dc_test_redis_del_pattern(pattern);
    }
    for (int t = 0; t < 2; t++) {
        for (size_t i = 0; i < 3; i++) {
            dc_test_org_path(path, sizeof(path), t ? f->other_org : f->org, suffixes[i]);
            dc_test_get(f->app, path, NULL, &r);
            dc_test_resp_free(&r);
        }
    }
    /* "dashboard:units:*:org:{org}": the units status key and no other */
    dc_test_key(key, sizeof(key), f->org, "units/status", NULL);
    dc_test_key_glob(pattern, sizeof(pattern), key, f->org, 2, 0);
    snprintf(msg, sizeof(msg), "{\"pattern\":\"%s\"}", pattern);
    assert_int_equal(dc_inval_parse(msg, strlen(msg), &m, why, sizeof(why)), DC_OK);
    assert_int_equal(dc_inval_apply(cache, &m, &deleted), DC_OK);
    assert_int_equal(deleted, 1);

    assert_int_equal(dc_test_redis_count(pattern), 0);
    assert_int_equal(dc_test_redis_int("EXISTS %s", key), 0);
    dc_test_key(key, sizeof(key), f->org, "stats", NULL);
    assert_int_equal(dc_test_redis_count(key), 1);
    /* "dashboard:*:org:{other}": all three of the other tenant */
    dc_test_key(key, sizeof(key), f->other_org, "stats", NULL);
    dc_test_key_glob(pattern, sizeof(pattern), key, f->other_org, 1, 0);
    assert_int_equal(dc_test_redis_count(pattern), 3);
    for (size_t i = 0; i < 3; i++) {
        dc_test_org_path(path, sizeof(path), f->other_org, suffixes[i]);
        dc_test_get(f->app, path, NULL, &r);
        assert_string_equal(r.x_cache, "HIT");
        dc_test_resp_free(&r);
    }
    dc_cache_free(cache);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_alert_create_invalidates_and_answers_201, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_invalidation_stops_hits_until_the_outbox_is_applied,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_resolve_twice_is_a_clear_409_that_changes_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ids_of_another_tenant_are_404_and_never_written, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_device_status_changes_devices_online, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_out_of_range_opens_one_alert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_bad_element_stores_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_set_race_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_generation_key_never_caches_old_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_arrives_after_invalidation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pattern_clears_exactly_its_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_leaves_alert_counts_cached, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alert_create_leaves_trends_cached, setup, teardown),
        cmocka_unit_test_setup_teardown(test_device_status_moves_devices_online_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sql_outside_the_mapping_moves_every_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_refused_only_when_its_type_moved, setup, teardown),
    };
    dc_test_outbox_auto(0); /* these tests drain the outbox themselves, as the invalidator would */
    dc_test_outbox_applied();
    return cmocka_run_group_tests_name("integration_invalidation", tests, NULL, NULL);
}
