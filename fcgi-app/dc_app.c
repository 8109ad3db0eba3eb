/* Cache-aside request handling. */
#include "dc_app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dc_body.h"
#include "dc_cache.h"
#include "dc_db.h"
#include "dc_endpoint.h"
#include "dc_key.h"
#include "dc_log.h"
#include "dc_metrics.h"
#include "dc_outbox.h"
#include "dc_query.h"
#include "dc_query_write.h"
#include "dc_router.h"
#include "dc_view.h"
#include "dc_json.h"

struct dc_app_s {
    const dc_config_t *cfg;
    dc_cache_t        *cache;
    dc_db_t           *db;
    dc_buf_t           body;
    dc_cache_value_t   hit;    /* the cached body being answered */
    dc_write_t         write;  /* parsed body of a write */
    dc_write_result_t  result; /* what a write invalidates and announces */
};

#define EVENTS_CHANNEL "dashboard:events"

dc_app_t *dc_app_new(const dc_config_t *cfg)
{
    /* a worker prepares what it reads and writes, not the invalidator's outbox */
    static const dc_db_set_t *(*const role[])(void) = { dc_query_statements, dc_query_write_statements };
    const dc_db_set_t *sets[DC_ARRAY_LEN(role)];
    dc_app_t          *app = calloc(1, sizeof(*app));

    if (app == NULL)
        return NULL;
    app->cfg = cfg;
    for (size_t i = 0; i < DC_ARRAY_LEN(role); i++)
        sets[i] = role[i]();
    app->cache = dc_cache_new(cfg);
    app->db = dc_db_new(cfg, sets, DC_ARRAY_LEN(sets));
    if (app->cache == NULL || app->db == NULL) {
        dc_app_free(app);
        return NULL;
    }
    return app;
}

void dc_app_free(dc_app_t *app)
{
    if (app == NULL)
        return;
    dc_app_done(app);
    dc_cache_free(app->cache);
    dc_db_free(app->db);
    dc_buf_free(&app->body);
    dc_body_free(&app->write);
    dc_write_result_free(&app->result);
    free(app);
}

void dc_app_done(dc_app_t *app)
{
    dc_cache_value_release(&app->hit);
}

static void reply_body(dc_response_t *resp, int status, const char *x_cache, const dc_buf_t *b)
{
    resp->status = status;
    resp->x_cache = x_cache;
    resp->body = b->data;
    resp->body_len = b->len;
}

static void reply_error(dc_app_t *app, dc_response_t *resp, int status, const char *code, const char *message)
{
    dc_error_t err;
    dc_error_set(&err, status, code, "%s", message);
    dc_response_error(resp, &err, &app->body);
}

/*
 * Readiness: each check is bounded (Redis by its timeouts, the database by
 * HEALTH_TIMEOUT_MS), so a hung dependency cannot hang the health check.
 * Without Redis the service is slower, not down: degraded, 200. Without the
 * database misses cannot be answered: unhealthy, 503.
 */
static void handle_health(dc_app_t *app, dc_response_t *resp)
{
    static const char   probe_org[] = "00000000-0000-0000-0000-000000000000";
    static const char   probe_key[] = "dashboard:health:probe";
    dc_health_service_t s[3] = {
        { "database", 0, 0 },
        { "redis", 0, 0 },
        { "cache", 0, 0 },
    };
    const char *status;
    int64_t     t0;

    s[0].ok = dc_db_ping(app->db, app->cfg->health_timeout_ms, &s[0].latency_ms) == DC_OK;
    s[1].ok = dc_cache_ping(app->cache, &s[1].latency_ms) == DC_OK;
    /* the cache path itself: the MGET a dashboard read does */
    t0 = dc_now_us();
    s[2].ok = s[1].ok && dc_cache_get(app->cache, probe_org, probe_key, sizeof(probe_key) - 1, &app->hit) !=
                             DC_UNAVAILABLE;
    s[2].latency_ms = (double)(dc_now_us() - t0) / 1000.0;
    dc_cache_value_release(&app->hit);
    status = !s[0].ok ? "unhealthy" : !s[1].ok || !s[2].ok ? "degraded" : "healthy";

    dc_buf_reset(&app->body);
    if (dc_view_health(status, s, DC_ARRAY_LEN(s), &app->body) != DC_OK) {
        reply_error(app, resp, 500, "out_of_memory", "out of memory");
        return;
    }
    reply_body(resp, s[0].ok ? 200 : 503, NULL, &app->body);
    if (!s[0].ok)
        resp->retry_after = app->cfg->retry_after_s;
}

static void handle_metrics(dc_app_t *app, dc_response_t *resp)
{
    /* every process's statements: the invalidator counts its own in the same file */
    const dc_db_set_t *sets[] = { dc_query_statements(), dc_query_write_statements(),
                                  dc_outbox_statements() };
    const char        *names[DC_DB_SLOTS] = { NULL };
    int                rc;

    for (size_t k = 0; k < DC_ARRAY_LEN(sets); k++)
        for (size_t i = 0; i < sets[k]->n; i++)
            names[sets[k]->slot0 + (int)i] = sets[k]->stmts[i].name;
    dc_buf_reset(&app->body);
    rc = dc_metrics_render(&app->body, names, DC_DB_SLOTS);
    if (rc == DC_ERROR) {
        reply_error(app, resp, 404, "metrics_disabled", "metrics are off (METRICS=off) or not mapped");
        return;
    }
    if (rc != DC_OK) {
        reply_error(app, resp, 500, "out_of_memory", "out of memory");
        return;
    }
    reply_body(resp, 200, NULL, &app->body);
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

static void ratio(dc_json_t *j, const char *key, uint64_t part, uint64_t whole)
{
    char text[32];

    dc_json_key(j, key);
    if (whole == 0) {
        dc_json_null(j);
        return;
    }
    snprintf(text, sizeof(text), "%.4f", (double)part / (double)whole);
    dc_json_number(j, text);
}

/* GET /api/admin/cache/stats: hit rates, keys per query type, Redis memory, invalidations. */
static void handle_admin_stats(dc_app_t *app, dc_response_t *resp)
{
    static const char *const sources[DC_IS_COUNT] = { "write", "pubsub", "outbox", "resync" };
    dc_metrics_summary_t     m;
    uint64_t                 hits = 0, misses = 0;
    long long                used = -1, dbsize = -1;
    int                      redis_ok, complete_all = 1;
    dc_json_t                j;

    if (dc_metrics_summary(&m) != DC_OK)
        memset(&m, 0, sizeof(m));
    for (int q = 0; q < DC_Q_AUDIT; q++) {
        hits += m.hits[q];
        misses += m.misses[q];
    }
    redis_ok = dc_cache_memory(app->cache, &used, &dbsize) == DC_OK;

    dc_buf_reset(&app->body);
    dc_json_begin(&j, &app->body);
    dc_json_object(&j);
    dc_json_key(&j, "hits");
    dc_json_int(&j, (long long)hits);
    dc_json_key(&j, "misses");
    dc_json_int(&j, (long long)misses);
    ratio(&j, "hitRate", hits, hits + misses);
    dc_json_key(&j, "queryTypes");
    dc_json_object(&j);
    for (int q = 0; q < DC_Q_AUDIT; q++) {
        char pattern[64];
        long keys = -1;
        int  complete = 1;
        snprintf(pattern, sizeof(pattern), "dashboard:%s:*", dc_qtype_name((dc_qtype_t)q));
        if (redis_ok && dc_cache_count_keys(app->cache, pattern, 100000, &keys, &complete) != DC_OK)
            keys = -1;
        complete_all &= complete;
        dc_json_key(&j, dc_qtype_name((dc_qtype_t)q));
        dc_json_object(&j);
        dc_json_key(&j, "hits");
        dc_json_int(&j, (long long)m.hits[q]);
        dc_json_key(&j, "misses");
        dc_json_int(&j, (long long)m.misses[q]);
        ratio(&j, "hitRate", m.hits[q], m.hits[q] + m.misses[q]);
        dc_json_key(&j, "keys");
        if (keys >= 0)
            dc_json_int(&j, keys);
        else
            dc_json_null(&j);
        dc_json_end(&j, '}');
    }
    dc_json_end(&j, '}');
    dc_json_key(&j, "keysComplete");
    dc_json_bool(&j, complete_all && redis_ok);
    dc_json_key(&j, "redis");
    dc_json_object(&j);
    dc_json_key(&j, "ok");
    dc_json_bool(&j, redis_ok);
    dc_json_key(&j, "usedMemoryBytes");
    if (used >= 0)
        dc_json_int(&j, used);
    else
        dc_json_null(&j);
    dc_json_key(&j, "keys");
    if (dbsize >= 0)
        dc_json_int(&j, dbsize);
    else
        dc_json_null(&j);
    dc_json_end(&j, '}');
    dc_json_key(&j, "invalidations");
    dc_json_object(&j);
    for (int i = 0; i < DC_IS_COUNT; i++) {
        dc_json_key(&j, sources[i]);
        dc_json_int(&j, (long long)m.invalidations[i]);
    }
    dc_json_end(&j, '}');
    dc_json_key(&j, "staleSetRefusals");
    dc_json_int(&j, (long long)m.stale_set_refusals);
    dc_json_key(&j, "cacheErrors");
    dc_json_int(&j, (long long)m.cache_errors);
    dc_json_end(&j, '}');
    if (dc_json_finish(&j) != DC_OK) {
        reply_error(app, resp, 500, "out_of_memory", "out of memory");
        return;
    }
    reply_body(resp, 200, NULL, &app->body);
}

/* The database could not answer: 503 with Retry-After, or 500 for a bug. */
static void reply_db_failure(dc_app_t *app, dc_response_t *resp, int rc)
{
    if (rc == DC_ENOMEM) {
        reply_error(app, resp, 500, "out_of_memory", "out of memory");
    } else if (rc == DC_UNAVAILABLE) {
        reply_error(app, resp, 503, "database_unavailable",
                    "the database is unavailable and the answer is not cached; retry later");
        resp->retry_after = app->cfg->retry_after_s;
    } else {
        reply_error(app, resp, 500, "internal_error", "the query failed");
    }
}

static void handle_query(dc_app_t *app, const dc_request_t *req, dc_response_t *resp)
{
    char        key[DC_KEY_MAX];
    int         klen = dc_key_build(req, key, sizeof(key));
    int         cacheable = klen > 0;
    const char *x_cache = "BYPASS";
    dc_error_t  err;
    int         rc;

    if (cacheable && !req->force_refresh) {
        rc = dc_cache_get(app->cache, req->org_id, key, (size_t)klen, &app->hit);
        if (rc == DC_OK) {
            dc_metrics_cache_hit(req->qtype);
            resp->status = 200;
            resp->x_cache = "HIT";
            resp->body = app->hit.data;
            resp->body_len = app->hit.len;
            return;
        }
        if (rc == DC_DECLINED) {
            dc_metrics_cache_miss(req->qtype);
            x_cache = "MISS";
        } else {
            cacheable = 0; /* Redis is down: don't try to store either */
        }
    } else if (cacheable) {
        /* the generation must be read before the database, as on a miss */
        cacheable = dc_cache_generation(app->cache, req->org_id, app->hit.gen) == DC_OK;
    }

    dc_buf_reset(&app->body);
    rc = dc_query_run(app->db, app->cfg, req, &app->body, &err);
    if (rc == DC_DECLINED) {
        /* unknown org or unit: an error, never cached as data */
        dc_response_error(resp, &err, &app->body);
        resp->x_cache = x_cache;
        return;
    }
    if (rc != DC_OK) {
        reply_db_failure(app, resp, rc);
        resp->x_cache = x_cache;
        return;
    }

    if (cacheable)
        dc_cache_set(app->cache, req->org_id, key, (size_t)klen, app->hit.gen, app->body.data, app->body.len,
                     app->cfg->ttl[req->qtype]);
    reply_body(resp, 200, x_cache, &app->body);
}

/*
 * After the commit: invalidate every organization the write touched, then
 * announce the events. Consumers of the events re-read the dashboards, so
 * nothing is announced unless its invalidation was applied; when Redis
 * cannot take it, the outbox rows the write left make the invalidator
 * apply it once Redis is back.
 */
static void invalidate_and_announce(dc_app_t *app)
{
    const dc_write_result_t *res = &app->result;
    int                      ok = 1;

    for (size_t i = 0; i < dc_orgs_count(&res->orgs); i++) {
        const char *org = dc_orgs_at(&res->orgs, i);
        if (dc_cache_invalidate_org(app->cache, org) != DC_OK) {
            dc_log_warn("write.invalidate", "could not invalidate organization %s now; the outbox will", org);
            ok = 0;
        } else {
            dc_metrics_invalidation(DC_IS_WRITE, 1);
        }
    }
    if (!ok)
        return;
    for (size_t i = 0; i < dc_strs_count(&res->events); i++) {
        size_t      n;
        const char *ev = dc_strs_at(&res->events, i, &n);
        if (dc_cache_publish(app->cache, EVENTS_CHANNEL, ev, n) != DC_OK)
            break;
    }
}

static void handle_write(dc_app_t *app, const dc_request_t *req, const dc_input_t *in, dc_response_t *resp)
{
    dc_error_t err;
    int        rc;

    dc_buf_reset(&app->body);
    if (dc_body_parse(req, in->content_type, in->body, in->body_len, &app->write, &err) != DC_OK) {
        dc_response_error(resp, &err, &app->body);
        return;
    }
    rc = dc_query_write(app->db, req, &app->write, &app->body, &app->result, &err);
    if (rc == DC_DECLINED) {
        dc_response_error(resp, &err, &app->body);
        return;
    }
    if (rc != DC_OK) {
        if (rc == DC_UNAVAILABLE) {
            reply_error(app, resp, 503, "database_unavailable",
                        "the database did not confirm the write; it is not acknowledged, retry it");
            resp->retry_after = app->cfg->retry_after_s;
        } else {
            reply_db_failure(app, resp, rc);
        }
        return;
    }
    invalidate_and_announce(app);
    reply_body(resp, app->result.status, NULL, &app->body);
}

/* The route label of a request (the router sets route even when it refuses). */
static int metrics_route(const dc_request_t *req)
{
    const dc_endpoint_t *ep = dc_endpoint_of(req);

    if (ep != NULL)
        return ep->mroute;
    switch (req->route) {
    case DC_ROUTE_HEALTH:
        return DC_MR_HEALTH;
    case DC_ROUTE_METRICS:
        return DC_MR_METRICS;
    case DC_ROUTE_ADMIN_STATS:
        return DC_MR_ADMIN;
    default:
        return DC_MR_OTHER;
    }
}

void dc_app_handle(dc_app_t *app, const dc_input_t *in, dc_response_t *resp)
{
    dc_request_t req;
    dc_error_t   err;

    dc_app_done(app);
    memset(resp, 0, sizeof(*resp));

    resp->mroute = DC_MR_OTHER;
    if (dc_router_route(in->method, in->path, in->query, &req, &err) != DC_OK) {
        resp->mroute = metrics_route(&req);
        dc_response_error(resp, &err, &app->body);
        return;
    }
    resp->head_only = req.head;
    resp->mroute = metrics_route(&req);

    switch (req.route) {
    case DC_ROUTE_QUERY:
        handle_query(app, &req, resp);
        break;
    case DC_ROUTE_WRITE:
        handle_write(app, &req, in, resp);
        break;
    case DC_ROUTE_HEALTH:
        handle_health(app, resp);
        break;
    case DC_ROUTE_METRICS:
        handle_metrics(app, resp);
        break;
    case DC_ROUTE_ADMIN_STATS:
        handle_admin_stats(app, resp);
        break;
    default:
        reply_error(app, resp, 404, "not_found", "no such endpoint");
        break;
    }
}
