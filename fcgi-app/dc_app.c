/* Cache-aside request handling. */
#include "dc_app.h"

#include <stdlib.h>
#include <string.h>

#include "dc_body.h"
#include "dc_cache.h"
#include "dc_db.h"
#include "dc_key.h"
#include "dc_log.h"
#include "dc_query.h"
#include "dc_router.h"
#include "dc_view.h"

struct dc_app_s {
    const dc_config_t *cfg;
    dc_cache_t        *cache;
    dc_db_t           *db;
    dc_buf_t           body;
    dc_cache_value_t   hit;       /* the cached body being answered */
    dc_write_t         write;     /* parsed body of a write */
    dc_write_result_t  result;    /* what a write invalidates and announces */
};

#define EVENTS_CHANNEL "dashboard:events"

dc_app_t *dc_app_new(const dc_config_t *cfg)
{
    dc_app_t *app = calloc(1, sizeof(*app));
    const dc_db_stmt_t *stmts;
    size_t n;

    if (app == NULL)
        return NULL;
    app->cfg = cfg;
    stmts = dc_query_statements(&n);
    app->cache = dc_cache_new(cfg);
    app->db = dc_db_new(cfg, stmts, n);
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

static void reply_error(dc_app_t *app, dc_response_t *resp, int status, const char *code,
                        const char *message)
{
    dc_error_t err;
    dc_error_set(&err, status, code, "%s", message);
    dc_response_error(resp, &err, &app->body);
}

static void handle_health(dc_app_t *app, dc_response_t *resp)
{
    dc_health_service_t s[3] = {
        { "database", 0, 0 }, { "redis", 0, 0 }, { "cache", 0, 0 },
    };
    const char *status;

    s[0].ok = dc_db_ping(app->db, &s[0].latency_ms) == DC_OK;
    s[1].ok = dc_cache_ping(app->cache, &s[1].latency_ms) == DC_OK;
    s[2].ok = s[1].ok;
    s[2].latency_ms = s[1].latency_ms;
    /* the database is what answers; without Redis we are slower, not down */
    status = !s[0].ok ? "unhealthy" : !s[1].ok ? "degraded" : "healthy";

    dc_buf_reset(&app->body);
    if (dc_view_health(status, s, DC_ARRAY_LEN(s), &app->body) != DC_OK) {
        reply_error(app, resp, 500, "out_of_memory", "out of memory");
        return;
    }
    reply_body(resp, s[0].ok ? 200 : 503, NULL, &app->body);
    if (!s[0].ok)
        resp->retry_after = app->cfg->retry_after_s;
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
    char key[DC_KEY_MAX];
    int klen = dc_key_build(req, key, sizeof(key));
    int cacheable = klen > 0;
    const char *x_cache = "BYPASS";
    dc_error_t err;
    int rc;

    if (cacheable && !req->force_refresh) {
        rc = dc_cache_get(app->cache, req->org_id, key, (size_t)klen, &app->hit);
        if (rc == DC_OK) {
            resp->status = 200;
            resp->x_cache = "HIT";
            resp->body = app->hit.data;
            resp->body_len = app->hit.len;
            return;
        }
        if (rc == DC_DECLINED)
            x_cache = "MISS";
        else
            cacheable = 0;     /* Redis is down: don't try to store either */
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
        dc_cache_set(app->cache, req->org_id, key, (size_t)klen, app->hit.gen, app->body.data,
                     app->body.len, app->cfg->ttl[req->qtype]);
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
    const char *ev = res->events.data;
    int ok = 1;

    for (size_t i = 0; i < res->norgs; i++) {
        char org[DC_UUID_LEN + 1];
        memcpy(org, res->orgs.data + i * DC_UUID_LEN, DC_UUID_LEN);
        org[DC_UUID_LEN] = '\0';
        if (dc_cache_invalidate_org(app->cache, org) != DC_OK) {
            dc_log_warn("write.invalidate", "could not invalidate organization %s now; the outbox will", org);
            ok = 0;
        }
    }
    if (!ok)
        return;
    for (size_t i = 0; i < res->nevents; i++) {
        size_t n = strlen(ev);
        if (dc_cache_publish(app->cache, EVENTS_CHANNEL, ev, n) != DC_OK)
            break;
        ev += n + 1;
    }
}

static void handle_write(dc_app_t *app, const dc_request_t *req, const dc_input_t *in,
                         dc_response_t *resp)
{
    dc_error_t err;
    int rc;

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
            reply_error(app, resp, 503, "database_unavailable", "the database did not confirm the write; it is not acknowledged, retry it");
            resp->retry_after = app->cfg->retry_after_s;
        } else {
            reply_db_failure(app, resp, rc);
        }
        return;
    }
    invalidate_and_announce(app);
    reply_body(resp, app->result.status, NULL, &app->body);
}

void dc_app_handle(dc_app_t *app, const dc_input_t *in, dc_response_t *resp)
{
    dc_request_t req;
    dc_error_t err;

    dc_app_done(app);
    memset(resp, 0, sizeof(*resp));

    if (dc_router_route(in->method, in->path, in->query, &req, &err) != DC_OK) {
        dc_response_error(resp, &err, &app->body);
        return;
    }
    resp->head_only = req.head;

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
    default:
        reply_error(app, resp, 404, "not_found", "metrics are not enabled in this build");
        break;
    }
}
