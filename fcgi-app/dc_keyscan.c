/* A kept SCAN cursor over a key pattern, and PTTL. */
#include "dc_keyscan.h"

#include <stdlib.h>
#include <string.h>

#include <hiredis.h>

#include "dc_log.h"
#include "dc_redis.h"

struct dc_keyscan_s {
    const dc_config_t *cfg;
    const char        *pattern;
    redisContext      *ctx;
    char               cursor[24]; /* SCAN's cursor: an unsigned 64-bit number as text */
    int64_t            retry_at_ms;
    int                down; /* an outage was logged: say when it is over */
};

dc_keyscan_t *dc_keyscan_new(const dc_config_t *cfg, const char *pattern)
{
    dc_keyscan_t *s = calloc(1, sizeof(*s));

    if (s != NULL) {
        s->cfg = cfg;
        s->pattern = pattern;
        strcpy(s->cursor, "0");
    }
    return s;
}

void dc_keyscan_free(dc_keyscan_t *s)
{
    if (s == NULL)
        return;
    redisFree(s->ctx);
    free(s);
}

/* Drops the connection (a context that failed cannot be reused) and waits the retry interval. */
static void failed(dc_keyscan_t *s, const char *what, const char *why)
{
    if (!s->down)
        dc_log_warn("sampler.redis", "%s failed: %s; trying again every %d ms", what, why,
                    s->cfg->redis_retry_interval_ms);
    s->down = 1;
    redisFree(s->ctx);
    s->ctx = NULL;
    s->retry_at_ms = dc_now_ms() + s->cfg->redis_retry_interval_ms;
}

static int ensure(dc_keyscan_t *s)
{
    dc_err_t err;

    if (s->ctx != NULL)
        return DC_OK;
    if (dc_now_ms() < s->retry_at_ms)
        return DC_UNAVAILABLE;
    if (dc_redis_connect(s->cfg, &s->ctx, &err) != DC_OK) {
        failed(s, "redis connect", err.str);
        return DC_UNAVAILABLE;
    }
    if (s->down)
        dc_log_info("sampler.redis", "connected again");
    s->down = 0;
    strcpy(s->cursor, "0"); /* a cursor means nothing to another server */
    return DC_OK;
}

int dc_keyscan_step(dc_keyscan_t *s, int count, char (*keys)[DC_KEY_MAX], size_t *lens, size_t max, size_t *n)
{
    redisReply *r, *list;

    *n = 0;
    if (ensure(s) != DC_OK)
        return DC_UNAVAILABLE;
    r = redisCommand(s->ctx, "SCAN %s MATCH %s COUNT %d", s->cursor, s->pattern, count);
    if (r == NULL) {
        failed(s, "redis SCAN", s->ctx->errstr);
        return DC_UNAVAILABLE;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[0]->len >= sizeof(s->cursor) || r->element[1]->type != REDIS_REPLY_ARRAY) {
        failed(s, "redis SCAN", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        freeReplyObject(r);
        return DC_UNAVAILABLE;
    }
    memcpy(s->cursor, r->element[0]->str, r->element[0]->len + 1);
    list = r->element[1];
    for (size_t i = 0; i < list->elements && *n < max; i++) {
        const redisReply *k = list->element[i];
        if (k->type != REDIS_REPLY_STRING || k->len >= DC_KEY_MAX)
            continue;
        memcpy(keys[*n], k->str, k->len);
        keys[*n][k->len] = '\0';
        lens[(*n)++] = k->len;
    }
    freeReplyObject(r);
    return DC_OK;
}

int dc_keyscan_pttl(dc_keyscan_t *s, const char *key, size_t klen, int64_t *ms)
{
    redisReply *r;
    int         rc;

    *ms = -1;
    if (ensure(s) != DC_OK)
        return DC_UNAVAILABLE;
    r = redisCommand(s->ctx, "PTTL %b", key, klen);
    if (r == NULL) {
        failed(s, "redis PTTL", s->ctx->errstr);
        return DC_UNAVAILABLE;
    }
    if (r->type != REDIS_REPLY_INTEGER) {
        freeReplyObject(r);
        return DC_UNAVAILABLE;
    }
    rc = r->integer >= 0 ? DC_OK : DC_DECLINED;
    if (rc == DC_OK)
        *ms = r->integer;
    freeReplyObject(r);
    return rc;
}
