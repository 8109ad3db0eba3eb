/*
 * One request's life: route, then the cache-aside read, a write (dc_write)
 * or a service route (dc_health).
 */
#include "dc_app.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dc_auth.h"
#include "dc_cache.h"
#include "dc_coalesce.h"
#include "dc_db.h"
#include "dc_endpoint.h"
#include "dc_etag.h"
#include "dc_health.h"
#include "dc_key.h"
#include "dc_log.h"
#include "dc_metrics.h"
#include "dc_query.h"
#include "dc_query_write.h"
#include "dc_outbox.h"
#include "dc_replica.h"
#include "dc_router.h"
#include "dc_trust.h"
#include "dc_write.h"

struct dc_app_s {
    const dc_config_t *cfg;
    dc_cache_t        *cache;
    dc_db_t           *db;
    dc_replica_t      *replica; /* standby reads (DATABASE_READ_URL), or NULL */
    dc_auth_t         *auth;
    dc_buf_t           body;
    dc_app_task_t      task; /* dc_app_handle's; its cached value is released by dc_app_done */
    char               etag[DC_ETAG_LEN + 1]; /* the validator of a body read from the database */
    dc_coalesce_t      fill;                  /* the host's fill this worker holds (dc_coalesce) */
    int                filling;
    dc_write_state_t   write;
};

dc_app_t *dc_app_new(const dc_config_t *cfg)
{
    /* a worker prepares what it reads and writes, and the outbox's watermark for dc_trust */
    static const dc_db_set_t *(*const role[])(void) = { dc_query_statements, dc_query_write_statements,
                                                        dc_outbox_statements };
    const dc_db_set_t *sets[DC_ARRAY_LEN(role)];
    dc_app_t          *app = calloc(1, sizeof(*app));
    dc_err_t           err;
    int                failed = 0;

    if (app == NULL) {
        dc_log_error("app.init", "out of memory");
        return NULL;
    }
    app->cfg = cfg;
    app->auth = dc_auth_new(&cfg->auth, &err);
    if (app->auth == NULL) {
        dc_log_error("auth.init", "%s", err.str);
        free(app);
        return NULL;
    }
    for (size_t i = 0; i < DC_ARRAY_LEN(role); i++)
        sets[i] = role[i]();
    app->cache = dc_cache_new(cfg);
    app->db = dc_db_new(cfg, sets, DC_ARRAY_LEN(sets));
    app->replica = dc_replica_new(cfg, &failed);
    if (app->cache == NULL || app->db == NULL || failed) {
        dc_log_error("app.init", "out of memory");
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
    dc_replica_free(app->replica);
    dc_auth_free(app->auth);
    dc_buf_free(&app->body);
    dc_write_state_free(&app->write);
    free(app);
}

void dc_app_done(dc_app_t *app)
{
    dc_app_task_done(&app->task);
}

int dc_app_tick(dc_app_t *app)
{
    if (!app->cfg->cache_enabled)
        return -1;
    return dc_trust_tick(app->cache, app->db, app->cfg->trust_probe_interval_ms);
}

/*
 * Whether this read may use the cache: CACHE=on, and the host's lease on
 * serving hits holds (dc_trust); a lapsed one is probed for at once when a
 * probe is due, so that the first read after a quiet spell needs no wait.
 */
static int cache_usable(dc_app_t *app)
{
    if (!app->cfg->cache_enabled)
        return 0;
    if (dc_trust_hits_ok())
        return 1;
    (void)dc_app_tick(app);
    return dc_trust_hits_ok();
}

/* Whether a read without the cache may share the host's fills (dc_coalesce). */
static int host_fillable(const dc_app_t *app, const dc_request_t *req)
{
    return app->cfg->cache_enabled && app->cfg->cache_lease_enabled && !req->force_refresh &&
           (DC_QBITS_CACHED & DC_QBIT_OF(req->qtype));
}

/* A dashboard read's key; DC_DECLINED when it should look in Redis first (a task). */
static int query_start(dc_app_t *app, dc_app_task_t *t)
{
    /*
     * CACHE=off, or hits stopped on this host: never cacheable, so BYPASS,
     * no GET, no store
     */
    int klen = cache_usable(app) ? dc_key_build(&t->req, t->key, sizeof(t->key)) : 0;

    t->look = (dc_cache_lookup_t){ .org = t->req.org_id, .q = t->req.qtype, .key = t->key };
    t->look.klen = klen > 0 ? (size_t)klen : 0; /* 0: not cached */
    t->look.rc = DC_UNAVAILABLE;
    if (t->req.force_refresh)
        return DC_OK;
    /*
     * a lookup, or, without the cache, a share of the host's fills: both wait
     * for the batch, so that the reads of one loop pass arrive together
     */
    return t->look.klen > 0 || host_fillable(app, &t->req) ? DC_DECLINED : DC_OK;
}

/* The answer in t->look.v (a hit, or a stale one), with its Age. */
static void answer_cached(dc_app_task_t *t, const char *x_cache, int64_t now_s, dc_response_t *resp)
{
    resp->status = 200;
    resp->x_cache = x_cache;
    resp->body = t->look.v.data;
    resp->body_len = t->look.v.len;
    resp->etag = t->look.v.etag;
    resp->with_age = 1;
    resp->age_s = now_s > t->look.v.stored_s ? now_s - t->look.v.stored_s : 0;
    dc_response_not_modified(resp, t->if_none_match);
}

/*
 * One database query per cold or stale key (dc_cache_lease): 1 when t is
 * answered here, from a value another reader filled meanwhile (HIT) or
 * from the stale one while another refreshes it (STALE, stale-while-
 * revalidate); 0 when this reader is to query the database, holding the
 * lease (t->look.v.lease), or after waiting its length for a holder that
 * never stored (then its store is fenced by the token as any), or without
 * Redis (*cacheable = 0). A waiter polls from 1 ms, doubling up to 32 ms.
 * This worker waits meanwhile, as it does for a query of its own.
 */
static int coalesce(dc_app_t *app, dc_app_task_t *t, int64_t now_s, int *cacheable, int *made_gen,
                    dc_response_t *resp)
{
    const dc_request_t *req = &t->req;
    int64_t deadline = dc_deadline_cap(dc_now_ms() + app->cfg->cache_lease_ms); /* REQUEST_TIMEOUT_MS */
    long    wait_us = 1000;

    for (;;) {
        int created = 0;
        int rc = dc_cache_lease(app->cache, req->org_id, req->qtype, t->key, t->look.klen,
                                app->cfg->ttl[req->qtype], &t->look.v, &created);
        *made_gen |= created;
        if (rc == DC_OK) {
            dc_metrics_cache_coalesced();
            answer_cached(t, "HIT", now_s, resp);
            return 1;
        }
        if (rc == DC_DECLINED)
            return 0;
        if (rc != DC_BUSY) {
            *cacheable = 0; /* Redis failed: the database, without a store */
            return 0;
        }
        if (t->look.v.data != NULL) {
            dc_metrics_cache_stale(DC_STALE_REVALIDATE);
            answer_cached(t, "STALE", now_s, resp);
            return 1;
        }
        if (dc_now_ms() >= deadline)
            return 0;
        wait_us = dc_poll_wait(wait_us);
    }
}

/*
 * Without Redis to coordinate (away, its breaker open, hits stopped), the
 * workers of the host share one fill per key (dc_coalesce): 1 when t is
 * answered from a fill that began after it arrived (BYPASS); 0 when it is
 * to query, filling for the others (app->filling) or alone.
 */
static int host_fill(dc_app_t *app, dc_app_task_t *t, dc_response_t *resp)
{
    const dc_request_t *req = &t->req;
    int                 klen = t->look.klen > 0 ? (int)t->look.klen : 0;
    int                 rc;

    if (!host_fillable(app, req))
        return 0;
    if (klen == 0)
        klen = dc_key_build(req, t->key, sizeof(t->key));
    if (klen <= 0)
        return 0;
    rc = dc_coalesce_begin(t->key, (size_t)klen, t->arrival_ms,
                           dc_deadline_cap(dc_now_ms() + app->cfg->cache_lease_ms), app->cfg->cache_lease_ms,
                           &app->body, app->etag, &app->fill);
    if (rc == DC_DECLINED)
        app->filling = 1;
    if (rc != DC_OK)
        return 0;
    dc_metrics_cache_coalesced();
    dc_response_buf(resp, 200, "BYPASS", &app->body);
    resp->etag = app->etag;
    dc_response_not_modified(resp, t->if_none_match);
    return 1;
}

/*
 * A dashboard read, its lookup (if any) done: the hit, or PostgreSQL and
 * the store. Every 200 carries its validator (the stored one on a hit,
 * computed once from the body otherwise), which an If-None-Match naming it
 * turns into a 304 without a body.
 *
 * An answer is fresh for its TTL and kept CACHE_MAX_STALE_SECONDS more,
 * under its token: only an answer of the current epoch and generation is
 * ever served, fresh or stale. Past its TTL, one reader refreshes it under
 * the lease while the others get it STALE; when the database fails, the
 * stale answer is served (STALE, stale-if-error) instead of a 503.
 */
static void query_finish(dc_app_t *app, dc_app_task_t *t, int looked_up, dc_response_t *resp)
{
    const dc_request_t *req = &t->req;
    int                 cacheable = t->look.klen > 0;
    const char         *x_cache = "BYPASS";
    int64_t             now_s = (int64_t)time(NULL);
    dc_error_t          err;
    int                 rc, made_gen = 0;

    if (looked_up) {
        if (t->look.rc == DC_OK && now_s - t->look.v.stored_s < app->cfg->ttl[req->qtype]) {
            dc_metrics_cache_hit(req->qtype);
            answer_cached(t, "HIT", now_s, resp);
            return;
        }
        if (t->look.rc == DC_OK || t->look.rc == DC_DECLINED) {
            dc_metrics_cache_miss(req->qtype); /* a miss, or an answer past its TTL */
            x_cache = "MISS";
        } else {
            cacheable = 0; /* Redis is down: don't try to store either */
        }
    }
    if (cacheable && app->cfg->cache_lease_enabled && !req->force_refresh &&
        coalesce(app, t, now_s, &cacheable, &made_gen, resp))
        return;
    if (!cacheable && host_fill(app, t, resp))
        return;
    /*
     * The generation must be observed before the database is read: read
     * for a forced refresh, created when the lookup found none (a store
     * under no generation is refused, see dc_cache.h).
     */
    if (cacheable && t->look.v.gen[0] == '\0') {
        cacheable = dc_cache_generation(app->cache, req->org_id, req->qtype, t->look.v.gen) == DC_OK;
        made_gen = cacheable;
    }

    /* a standby only for a miss that observed its generation in Redis (dc_replica.h) */
    rc = dc_replica_query(app->replica, app->cache, app->db, cacheable, app->cfg, req, &app->body, &err);
    if (rc == DC_OK)
        dc_etag_of(app->body.data, app->body.len,
                   app->etag); /* once, for the answer, the store and the fill */
    if (app->filling) {
        dc_coalesce_done(&app->fill, rc == DC_OK, app->body.data, app->body.len, app->etag);
        app->filling = 0;
    }
    if (rc == DC_DECLINED) {
        /* unknown org or unit: an error, never cached as data; no key names an unknown org */
        dc_cache_release(app->cache, t->key, t->look.klen, &t->look.v);
        if (made_gen && strcmp(err.code, "org_not_found") == 0)
            dc_cache_drop_generation(app->cache, req->org_id, req->qtype);
        dc_response_error(resp, &err, &app->body);
        resp->x_cache = x_cache;
        return;
    }
    if (rc != DC_OK) {
        dc_cache_release(app->cache, t->key, t->look.klen, &t->look.v);
        if (cacheable && t->look.v.data != NULL) {
            /* the database failed: the last answer of the current generation, said to be stale */
            dc_metrics_cache_stale(DC_STALE_ERROR);
            answer_cached(t, "STALE", now_s, resp);
            return;
        }
        dc_response_db_failure(resp, rc, app->cfg->retry_after_s, &app->body);
        resp->x_cache = x_cache;
        return;
    }

    if (cacheable)
        dc_cache_set(app->cache, req->org_id, req->qtype, t->key, t->look.klen, t->look.v.gen, app->etag,
                     app->body.data, app->body.len, app->cfg->ttl[req->qtype]);
    dc_response_buf(resp, 200, x_cache, &app->body);
    resp->etag = app->etag;
    dc_response_not_modified(resp, t->if_none_match);
}

/* The route label of a request (the router sets route even when it refuses). */
static int metrics_route(const dc_request_t *req)
{
    const dc_endpoint_t *ep = dc_endpoint_of(req);

    const dc_service_t *svc = dc_endpoint_service_of(req->route);

    if (ep != NULL)
        return ep->mroute;
    return svc != NULL ? (int)svc->mroute : DC_MR_OTHER;
}

/*
 * The scopes a routed request needs: its endpoint row's, plus refresh for
 * forceRefresh (a cache bypass loads PostgreSQL: not free for anyone), or
 * admin for the admin routes; 0 for /health and /metrics, which nginx
 * restricts and which answer without a caller.
 */
static unsigned required_scopes(const dc_request_t *req)
{
    const dc_endpoint_t *ep = dc_endpoint_of(req);

    const dc_service_t *svc = dc_endpoint_service_of(req->route);

    if (ep != NULL)
        return ep->scope | (req->force_refresh ? DC_SCOPE_REFRESH : 0);
    return svc != NULL ? svc->scope : 0;
}

/*
 * Who is calling and whether they may do this, decided before any cache
 * read: DC_OK with *who, or DC_EINVAL with err (401 or 403). An endpoint
 * without {org} (ingest) is checked item by item by its write function.
 */
static int authorize(dc_app_t *app, const dc_input_t *in, const dc_request_t *req, unsigned need,
                     const dc_principal_t **who, dc_error_t *err)
{
    int rc;

    if (dc_auth_mode(app->auth) == DC_AUTH_TRUSTED)
        rc = dc_auth_trusted(app->auth, in->trusted_sub, in->trusted_orgs, in->trusted_scope, who, err);
    else
        rc = dc_auth_bearer(app->auth, in->authorization, (int64_t)time(NULL), who, err);
    if (rc != DC_OK)
        return rc;
    return dc_auth_authorize(*who, need, req->org_id, err);
}

int dc_app_start(dc_app_t *app, const dc_input_t *in, dc_app_task_t *t, dc_response_t *resp)
{
    dc_request_t         *req = &t->req;
    dc_error_t            err;
    const dc_principal_t *who = NULL;
    unsigned              need;

    memset(resp, 0, sizeof(*resp));
    memset(&t->look, 0, sizeof(t->look));
    t->if_none_match = in->if_none_match;
    t->arrival_ms = dc_now_ms();
    resp->mroute = DC_MR_OTHER;
    if (dc_router_route(in->method, in->path, in->query, req, &err) != DC_OK) {
        resp->mroute = metrics_route(req);
        dc_response_error(resp, &err, &app->body);
        return DC_OK;
    }
    resp->head_only = req->head;
    resp->mroute = metrics_route(req);

    need = required_scopes(req);
    if (need != 0 && authorize(app, in, req, need, &who, &err) != DC_OK) {
        dc_response_error(resp, &err, &app->body);
        return DC_OK;
    }

    switch (req->route) {
    case DC_ROUTE_QUERY:
        if (query_start(app, t) == DC_DECLINED)
            return DC_DECLINED;
        query_finish(app, t, 0, resp);
        break;
    case DC_ROUTE_WRITE:
        dc_write_handle(&app->write, app->cfg, app->cache, app->db, req, who, in->content_type,
                        in->idempotency_key, in->body, in->body_len, &app->body, resp);
        break;
    case DC_ROUTE_HEALTH:
        dc_health_check(app->cfg, app->cache, app->db, &app->body, resp);
        break;
    case DC_ROUTE_METRICS:
        dc_health_metrics(&app->body, resp);
        break;
    case DC_ROUTE_STATUS:
        dc_health_status(in->query, &app->body, resp);
        break;
    case DC_ROUTE_ADMIN_STATS:
        dc_health_admin_stats(app->cache, &app->body, resp);
        break;
    default:
        dc_response_fail(resp, 404, "not_found", "no such endpoint", &app->body);
        break;
    }
    return DC_OK;
}

void dc_app_lookup(dc_app_t *app, dc_app_task_t *const *ts, size_t n)
{
    dc_cache_lookup_t *ls[DC_CACHE_LOOKUPS_MAX];

    size_t k = 0;

    /* the tasks that wait without the cache (a share of the host's fills) look up nothing */
    for (size_t i = 0; i < n; i++) {
        if (ts[i]->look.klen == 0)
            continue;
        ls[k++] = &ts[i]->look;
        if (k == DC_CACHE_LOOKUPS_MAX) {
            dc_cache_get_many(app->cache, ls, k);
            k = 0;
        }
    }
    if (k > 0)
        dc_cache_get_many(app->cache, ls, k);
}

void dc_app_finish(dc_app_t *app, dc_app_task_t *t, dc_response_t *resp)
{
    int head_only = resp->head_only, mroute = resp->mroute;

    memset(resp, 0, sizeof(*resp));
    resp->head_only = head_only;
    resp->mroute = mroute;
    query_finish(app, t, 1, resp);
}

void dc_app_task_done(dc_app_task_t *t)
{
    dc_cache_value_release(&t->look.v);
}

void dc_app_handle(dc_app_t *app, const dc_input_t *in, dc_response_t *resp)
{
    dc_app_task_t *t = &app->task;

    dc_app_done(app);
    if (dc_app_start(app, in, t, resp) == DC_DECLINED) {
        dc_app_lookup(app, &t, 1);
        dc_app_finish(app, t, resp);
    }
}
