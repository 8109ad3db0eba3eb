/* /health, /metrics and the admin cache stats. */
#include "dc_health.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dc_metrics.h"
#include "dc_outbox.h"
#include "dc_query.h"
#include "dc_query_write.h"
#include "dc_status.h"
#include "dc_trust.h"
#include "dc_view.h"

#define KEYS_SCAN_MAX 100000

/* Whether ms more fit before end_ms. */
static int fits(int64_t end_ms, int ms)
{
    return dc_now_ms() + ms <= end_ms;
}

/*
 * Readiness, within HEALTH_TIMEOUT_MS from start to end: one budget for
 * every check together, so a hung dependency cannot hang the health check
 * nor make it slower than its bound. Redis goes first, each step only when
 * its own bound (the Redis connect and command timeouts) fits in the first
 * half of the budget, else it counts as failed; the database, whose check
 * decides the 503, gets the rest, at least half (dc_db_ping: connecting
 * included, and running out of time closes nothing). Without
 * Redis the service is slower, not down: degraded, 200. Without the
 * database misses cannot be answered: unhealthy, 503.
 */
void dc_health_check(const dc_config_t *cfg, dc_cache_t *cache, dc_db_t *db, dc_buf_t *out,
                     dc_response_t *resp)
{
    static const char   probe_org[] = "00000000-0000-0000-0000-000000000000";
    static const char   probe_key[] = "dashboard:health:probe";
    dc_health_service_t s[3] = {
        { "database", 0, 0 },
        { "redis", 0, 0 },
        { "cache", 0, 0 },
    };
    int64_t          end_ms = dc_now_ms() + cfg->health_timeout_ms;
    int64_t          redis_end_ms = end_ms - cfg->health_timeout_ms / 2, left_ms;
    dc_cache_value_t probe;
    const char      *status;
    int64_t          t0;

    if (fits(redis_end_ms, cfg->redis_connect_timeout_ms + cfg->redis_command_timeout_ms))
        s[1].ok = dc_cache_ping(cache, &s[1].latency_ms) == DC_OK;
    /* the cache path itself: the MGET a dashboard read does */
    memset(&probe, 0, sizeof(probe));
    t0 = dc_now_us();
    s[2].ok = s[1].ok && fits(redis_end_ms, cfg->redis_command_timeout_ms) &&
              dc_cache_get(cache, probe_org, DC_Q_STATS, probe_key, sizeof(probe_key) - 1, &probe) !=
                  DC_UNAVAILABLE;
    s[2].latency_ms = (double)(dc_now_us() - t0) / 1000.0;
    dc_cache_value_release(&probe);
    /* hits stopped on this host (dc_trust: Redis refuses writes, an outbox backlog): degraded */
    s[2].ok = s[2].ok && (!cfg->cache_enabled || dc_trust_hits_ok());
    left_ms = end_ms - dc_now_ms();
    s[0].ok = left_ms > 0 && dc_db_ping(db, (int)left_ms, &s[0].latency_ms) == DC_OK;
    status = !s[0].ok ? "unhealthy" : !s[1].ok || !s[2].ok ? "degraded" : "healthy";

    dc_buf_reset(out);
    if (dc_view_health(status, s, DC_ARRAY_LEN(s), out) != DC_OK) {
        dc_response_fail(resp, 500, "out_of_memory", "out of memory", out);
        return;
    }
    dc_response_buf(resp, s[0].ok ? 200 : 503, NULL, out);
    if (!s[0].ok)
        resp->retry_after = cfg->retry_after_s;
}

/*
 * Every process's statements by slot (the invalidator counts its own in the
 * same file): constant tables, gathered once per process.
 */
static const char *const *stmt_names(void)
{
    static const char *names[DC_DB_SLOTS];
    static int         done;

    if (!done) {
        const dc_db_set_t *sets[] = { dc_query_statements(), dc_query_write_statements(),
                                      dc_outbox_statements() };
        for (size_t k = 0; k < DC_ARRAY_LEN(sets); k++)
            for (size_t i = 0; i < sets[k]->n; i++)
                names[sets[k]->slot0 + (int)i] = sets[k]->stmts[i].name;
        done = 1;
    }
    return names;
}

const char *dc_health_stmt_name(int slot)
{
    return slot >= 0 && slot < DC_DB_SLOTS ? stmt_names()[slot] : NULL;
}

void dc_health_status(const char *query, dc_buf_t *out, dc_response_t *resp)
{
    dc_status_opts_t  o;
    dc_error_t        err;
    dc_pool_status_t *st;
    long              rss[DC_POOL_PROCS_MAX];
    struct timespec   now;
    int               rc;

    dc_buf_reset(out);
    if (dc_status_parse(query, &o, &err) != DC_OK) {
        dc_response_error(resp, &err, out);
        return;
    }
    st = malloc(sizeof(*st));
    if (st == NULL) {
        dc_response_fail(resp, 500, "out_of_memory", "out of memory", out);
        return;
    }
    if (dc_metrics_pool_status(st) != DC_OK) {
        free(st);
        dc_response_fail(resp, 404, "metrics_disabled",
                         "the pool's figures live in the metrics file: metrics are "
                         "off (METRICS=off) or not mapped",
                         out);
        return;
    }
    if (o.full)
        dc_status_read_rss(st, rss);
    clock_gettime(CLOCK_REALTIME, &now);
    rc = dc_status_render(st, o.full ? rss : NULL, &o, (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000,
                          out);
    free(st);
    if (rc != DC_OK) {
        dc_response_fail(resp, 500, "out_of_memory", "out of memory", out);
        return;
    }
    dc_response_buf(resp, 200, NULL, out);
    if (!o.json)
        resp->content_type = "text/plain; charset=utf-8";
}

void dc_health_metrics(dc_buf_t *out, dc_response_t *resp)
{
    int rc;

    dc_buf_reset(out);
    rc = dc_metrics_render(out, stmt_names(), DC_DB_SLOTS);
    if (rc == DC_ERROR) {
        dc_response_fail(resp, 404, "metrics_disabled", "metrics are off (METRICS=off) or not mapped", out);
        return;
    }
    if (rc != DC_OK) {
        dc_response_fail(resp, 500, "out_of_memory", "out of memory", out);
        return;
    }
    dc_response_buf(resp, 200, NULL, out);
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

void dc_health_admin_stats(dc_cache_t *cache, dc_buf_t *out, dc_response_t *resp)
{
    static const char *const sources[] = { "write", "pubsub", "outbox", "resync", "sampler" };
    dc_metrics_summary_t     m;
    dc_admin_qtype_t         q[DC_Q_AUDIT];
    dc_admin_stats_t         a;

    _Static_assert(DC_ARRAY_LEN(sources) == DC_IS_COUNT, "a name for every invalidation source");
    if (dc_metrics_summary(&m) != DC_OK)
        memset(&m, 0, sizeof(m));
    memset(&a, 0, sizeof(a));
    a.used_memory = a.keys = -1;
    a.redis_ok = dc_cache_memory(cache, &a.used_memory, &a.keys) == DC_OK;
    a.keys_complete = 1;
    for (int i = 0; i < DC_Q_AUDIT; i++) {
        char pattern[64];
        int  complete = 1;
        q[i].name = dc_qtype_name((dc_qtype_t)i);
        q[i].hits = m.hits[i];
        q[i].misses = m.misses[i];
        q[i].keys = -1;
        a.hits += m.hits[i];
        a.misses += m.misses[i];
        snprintf(pattern, sizeof(pattern), "dashboard:%s:*", q[i].name);
        if (a.redis_ok && dc_cache_count_keys(cache, pattern, KEYS_SCAN_MAX, &q[i].keys, &complete) != DC_OK)
            q[i].keys = -1;
        a.keys_complete &= complete;
    }
    a.keys_complete &= a.redis_ok;
    a.qtypes = q;
    a.nqtypes = DC_ARRAY_LEN(q);
    a.sources = sources;
    a.invalidations = m.invalidations;
    a.nsources = DC_IS_COUNT;
    a.stale_set_refusals = m.stale_set_refusals;
    a.cache_errors = m.cache_errors;

    dc_buf_reset(out);
    if (dc_view_admin_stats(&a, out) != DC_OK) {
        dc_response_fail(resp, 500, "out_of_memory", "out of memory", out);
        return;
    }
    dc_response_buf(resp, 200, NULL, out);
}
