/* The consistency sampler: cached answers recomputed from PostgreSQL and compared. */
#include "dc_sampler.h"

#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "dc_buf.h"
#include "dc_cache.h"
#include "dc_db.h"
#include "dc_etag.h"
#include "dc_key.h"
#include "dc_log.h"
#include "dc_metrics.h"
#include "dc_query.h"

#define PATTERN    "dashboard:*"
#define SCAN_COUNT 16 /* keys Redis looks at per SCAN step */
#define QUEUE      32 /* keys of one step kept for the ticks after it */
#define LOOKS_MAX  8  /* SCAN steps and lookups of one tick, at most */

/*
 * Which query types are sampled, and which members of their answers are
 * computed relative to now() (dc_query.c: make_interval from now()) and so
 * left out of the comparison. Types not listed are not sampled: trends,
 * devices online and compliance are relative to now() as a whole.
 */
static const struct {
    int         sampled;
    const char *drifting[3]; /* NULL-terminated */
} policy[DC_Q_COUNT] = {
    [DC_Q_STATS] = { 1, { "devices", "compliance", NULL } },
    [DC_Q_UNITS] = { 1, { NULL } },
    [DC_Q_ALERTS] = { 1, { NULL } },
};

typedef struct {
    int          active;
    dc_request_t req;
    char         key[DC_KEY_MAX];
    size_t       klen;
    char         etag[DC_ETAG_LEN + 1]; /* of the cached body found different */
    int64_t      seen_ms, due_ms;
} suspect_t;

struct dc_sampler_s {
    dc_config_t        cfg; /* ours: a shorter statement timeout, a longer back-off */
    dc_cache_t        *cache;
    dc_db_t           *db;
    dc_cache_scan_t    pos;     /* the walk over the cached answers (every primary of a cluster) */
    const dc_db_set_t *sets[1]; /* dc_db_new's: must outlive db */
    int64_t            interval_ms, next_ms, oldest_ms;
    char               keys[QUEUE][DC_KEY_MAX];
    size_t             lens[QUEUE], nkeys, at;
    dc_buf_t           cached, fresh;
    suspect_t          suspect;
};

enum { LOOKED, RECOMPUTED }; /* what a check cost: Redis only, or PostgreSQL too */

int dc_sampler_sampled(dc_qtype_t q)
{
    return (unsigned)q < DC_Q_COUNT && policy[q].sampled;
}

/* a[0..n) parsed as a JSON object, or NULL. Free with json_object_put. */
static json_object *parse_object(const char *a, size_t n)
{
    json_tokener *tok = json_tokener_new();
    json_object  *o = NULL;

    if (tok == NULL || n > INT32_MAX)
        goto out;
    o = json_tokener_parse_ex(tok, a, (int)n);
    if (json_tokener_get_error(tok) != json_tokener_success || json_tokener_get_parse_end(tok) != n ||
        !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        o = NULL;
    }
out:
    json_tokener_free(tok);
    return o;
}

int dc_sampler_same(dc_qtype_t q, const char *a, size_t alen, const char *b, size_t blen)
{
    char         ea[DC_ETAG_LEN + 1], eb[DC_ETAG_LEN + 1];
    json_object *ja, *jb;
    int          same;

    dc_etag_of(a, alen, ea);
    dc_etag_of(b, blen, eb);
    if (strcmp(ea, eb) == 0)
        return 1;
    if ((unsigned)q >= DC_Q_COUNT || policy[q].drifting[0] == NULL)
        return 0;
    ja = parse_object(a, alen);
    jb = parse_object(b, blen);
    same = ja != NULL && jb != NULL;
    if (same) {
        json_object_object_del(ja, "generatedAt");
        json_object_object_del(jb, "generatedAt");
        for (const char *const *m = policy[q].drifting; *m != NULL; m++) {
            json_object_object_del(ja, *m);
            json_object_object_del(jb, *m);
        }
        same = json_object_equal(ja, jb);
    }
    json_object_put(ja);
    json_object_put(jb);
    return same;
}

dc_sampler_t *dc_sampler_new(const dc_config_t *cfg)
{
    dc_sampler_t *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->cfg = *cfg;
    dc_metrics_consistency_oldest(0);
    if (cfg->consistency_per_s <= 0) {
        dc_log_info("sampler.start", "consistency sampling is off (CONSISTENCY_SAMPLE_PER_S=0)");
        return s;
    }
    if (s->cfg.db_statement_timeout_ms > DC_SAMPLER_STATEMENT_MS)
        s->cfg.db_statement_timeout_ms = DC_SAMPLER_STATEMENT_MS;
    if (s->cfg.db_retry_interval_ms < DC_SAMPLER_RETRY_MS)
        s->cfg.db_retry_interval_ms = DC_SAMPLER_RETRY_MS;
    if (s->cfg.redis_retry_interval_ms < DC_SAMPLER_RETRY_MS)
        s->cfg.redis_retry_interval_ms = DC_SAMPLER_RETRY_MS;
    s->sets[0] = dc_query_statements();
    s->cache = dc_cache_new(&s->cfg);
    s->db = dc_db_new(&s->cfg, s->sets, DC_ARRAY_LEN(s->sets));
    if (s->cache == NULL || s->db == NULL) {
        dc_sampler_free(s);
        return NULL;
    }
    /* rounded up: never more than the rate */
    s->interval_ms = (1000 + cfg->consistency_per_s - 1) / cfg->consistency_per_s;
    dc_log_info("sampler.start", "comparing up to %d cached answers per second with PostgreSQL",
                cfg->consistency_per_s);
    return s;
}

void dc_sampler_free(dc_sampler_t *s)
{
    if (s == NULL)
        return;
    dc_db_free(s->db);
    dc_cache_free(s->cache);
    dc_buf_free(&s->cached);
    dc_buf_free(&s->fresh);
    free(s);
}

int64_t dc_sampler_next_ms(const dc_sampler_t *s)
{
    return s == NULL || s->interval_ms == 0 ? INT64_MAX : s->next_ms;
}

/*
 * The next key to look at, as a request of a sampled type: from the queue,
 * or one SCAN step when it is empty (a look of its own). DC_OK with *key;
 * DC_DECLINED: this step held none; DC_UNAVAILABLE: Redis failed.
 */
static int next_key(dc_sampler_t *s, dc_request_t *req, const char **key, size_t *klen)
{
    if (s->at == s->nkeys) {
        s->at = 0;
        if (dc_cache_scan_step(s->cache, &s->pos, PATTERN, SCAN_COUNT, s->keys, s->lens, QUEUE, &s->nkeys) !=
            DC_OK)
            return DC_UNAVAILABLE;
        return DC_DECLINED;
    }
    while (s->at < s->nkeys) {
        size_t i = s->at++;
        /* not ours (another version's, another program's) or relative to now(): passed over */
        if (dc_key_parse(s->keys[i], s->lens[i], req) == DC_OK && dc_sampler_sampled(req->qtype)) {
            *key = s->keys[i];
            *klen = s->lens[i];
            return DC_OK;
        }
    }
    return DC_DECLINED;
}

/*
 * The cached answer of key into s->cached and its validator into etag.
 * DC_OK; DC_DECLINED: not a hit of the current generation; DC_UNAVAILABLE.
 */
static int read_cached(dc_sampler_t *s, const dc_request_t *req, const char *key, size_t klen,
                       char etag[DC_ETAG_LEN + 1])
{
    dc_cache_value_t v;
    int              rc;

    memset(&v, 0, sizeof(v));
    rc = dc_cache_get(s->cache, req->org_id, req->qtype, key, klen, &v);
    if (rc == DC_OK) {
        dc_buf_reset(&s->cached);
        if (dc_buf_append(&s->cached, v.data, v.len) != DC_OK)
            rc = DC_ENOMEM;
        dc_etag_of(v.data, v.len, etag);
    }
    dc_cache_value_release(&v);
    return rc;
}

/* The answer of req from PostgreSQL into s->fresh: dc_query_run's result. */
static int recompute(dc_sampler_t *s, const dc_request_t *req)
{
    dc_error_t err;

    dc_buf_reset(&s->fresh);
    return dc_query_run(s->db, &s->cfg, req, &s->fresh, &err);
}

/* The result of a failed read or recompute: skipped when it says "not there", else error. */
static void count_failure(int rc)
{
    dc_metrics_consistency_check(rc == DC_DECLINED ? DC_CC_SKIPPED : DC_CC_ERROR);
}

/* A first look at key: consistent, or a suspect to look at again after DC_SAMPLER_RECHECK_MS. */
static int check(dc_sampler_t *s, const dc_request_t *req, const char *key, size_t klen, int64_t now_ms)
{
    suspect_t *x = &s->suspect;
    int        rc;

    rc = read_cached(s, req, key, klen, x->etag);
    if (rc != DC_OK) {
        count_failure(rc);
        return LOOKED;
    }
    rc = recompute(s, req);
    if (rc != DC_OK) {
        count_failure(rc);
        return RECOMPUTED;
    }
    if (dc_sampler_same(req->qtype, s->cached.data, s->cached.len, s->fresh.data, s->fresh.len)) {
        dc_metrics_consistency_check(DC_CC_CONSISTENT);
        return RECOMPUTED;
    }
    x->active = 1;
    x->req = *req;
    memcpy(x->key, key, klen + 1);
    x->klen = klen;
    x->seen_ms = now_ms;
    x->due_ms = now_ms + DC_SAMPLER_RECHECK_MS;
    dc_log_debug("consistency.suspect", "key %s differs from PostgreSQL; checking again in %d ms", key,
                 DC_SAMPLER_RECHECK_MS);
    return RECOMPUTED;
}

/* The stale answer found: logged once, its organization invalidated, its age in the gauge. */
static void inconsistent(dc_sampler_t *s, const suspect_t *x, int64_t now_ms)
{
    char    fresh_etag[DC_ETAG_LEN + 1];
    int64_t pttl, age_ms = now_ms - x->seen_ms;
    /* a value lives its TTL and CACHE_MAX_STALE_SECONDS more in Redis */
    int64_t ttl_ms = (int64_t)(s->cfg.ttl[x->req.qtype] + s->cfg.cache_max_stale_s) * 1000;
    int     rc;

    if (dc_cache_pttl(s->cache, x->key, x->klen, &pttl) == DC_OK && ttl_ms - pttl > age_ms)
        age_ms = ttl_ms - pttl;
    dc_etag_of(s->fresh.data, s->fresh.len, fresh_etag);
    /* every type of the organization: a missed write is seldom read by one query type only */
    rc = dc_cache_invalidate(s->cache, x->req.org_id, DC_QBITS_CACHED);
    dc_metrics_consistency_check(DC_CC_INCONSISTENT);
    if (rc == DC_OK)
        dc_metrics_invalidation(DC_IS_SAMPLER, 1);
    if (age_ms > s->oldest_ms) {
        s->oldest_ms = age_ms;
        dc_metrics_consistency_oldest(age_ms);
    }
    dc_log_warn("consistency.mismatch",
                "key %s: the cached answer (validator %s) is not what PostgreSQL answers (%s), "
                "in the cache for %.1f s; %s; a write bypassed the invalidation triggers?",
                x->key, x->etag, fresh_etag, (double)age_ms / 1e3,
                rc == DC_OK ? "invalidated its organization" : "could not invalidate (Redis unavailable)");
}

/* The second look at a suspect: the same cached answer, still different, is an inconsistency. */
static void recheck(dc_sampler_t *s, int64_t now_ms)
{
    suspect_t *x = &s->suspect;
    char       etag[DC_ETAG_LEN + 1];
    int        rc;

    x->active = 0;
    rc = read_cached(s, &x->req, x->key, x->klen, etag);
    if (rc == DC_OK && strcmp(etag, x->etag) != 0)
        rc = DC_DECLINED; /* another answer was stored meanwhile: the one found different is gone */
    if (rc == DC_OK)
        rc = recompute(s, &x->req);
    if (rc != DC_OK) {
        count_failure(rc);
        return;
    }
    if (dc_sampler_same(x->req.qtype, s->cached.data, s->cached.len, s->fresh.data, s->fresh.len)) {
        dc_metrics_consistency_check(DC_CC_CONSISTENT);
        return;
    }
    inconsistent(s, x, now_ms);
}

void dc_sampler_tick(dc_sampler_t *s, int64_t now_ms)
{
    int64_t deadline = now_ms + DC_SAMPLER_BUDGET_MS;

    if (s == NULL || s->interval_ms == 0 || now_ms < s->next_ms)
        return;
    s->next_ms = now_ms + s->interval_ms;
    if (s->suspect.active) {
        if (now_ms >= s->suspect.due_ms)
            recheck(s, now_ms);
        return;
    }
    for (int looks = 0; looks < LOOKS_MAX && dc_now_ms() < deadline; looks++) {
        dc_request_t req;
        const char  *key;
        size_t       klen;
        int          rc = next_key(s, &req, &key, &klen);

        if (rc == DC_UNAVAILABLE)
            break;
        if (rc == DC_OK && check(s, &req, key, klen, now_ms) == RECOMPUTED)
            break;
    }
}
