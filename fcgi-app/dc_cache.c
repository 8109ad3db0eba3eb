/* Redis access with bounded waits, lazy reconnect and a back-off after failures. */
#include "dc_cache.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis.h>

#include "dc_log.h"

struct dc_cache_s {
    const dc_config_t *cfg;
    redisContext      *ctx;
    int64_t            retry_at_ms;   /* no connect attempt before this */
    int                down_logged;   /* log a failure once per outage */
};

static struct timeval ms_to_tv(int ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    return tv;
}

dc_cache_t *dc_cache_new(const dc_config_t *cfg)
{
    dc_cache_t *c = calloc(1, sizeof(*c));
    if (c != NULL)
        c->cfg = cfg;
    return c;
}

static void disconnect(dc_cache_t *c)
{
    if (c->ctx != NULL) {
        redisFree(c->ctx);
        c->ctx = NULL;
    }
}

void dc_cache_free(dc_cache_t *c)
{
    if (c == NULL)
        return;
    disconnect(c);
    free(c);
}

int dc_cache_connected(const dc_cache_t *c)
{
    return c->ctx != NULL;
}

/* Marks Redis as failing: drop the connection, maybe wait before the next try. */
static void fail(dc_cache_t *c, const char *what, const char *why, int backoff)
{
    if (!c->down_logged) {
        dc_log_warn("redis.error", "%s failed: %s; answering from the database%s", what, why,
                    backoff ? " until it is back" : "");
        c->down_logged = 1;
    }
    disconnect(c);
    c->retry_at_ms = backoff ? dc_now_ms() + c->cfg->redis_retry_interval_ms : 0;
}

/* Runs a command during connect set-up; DC_OK when it did not fail. */
static int setup_command(dc_cache_t *c, redisReply **out, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;

    va_start(ap, fmt);
    r = redisvCommand(c->ctx, fmt, ap);
    va_end(ap);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        fail(c, "redis set-up", r ? r->str : c->ctx->errstr, 1);
        freeReplyObject(r);
        return DC_UNAVAILABLE;
    }
    *out = r;
    return DC_OK;
}

static int ensure(dc_cache_t *c)
{
    const dc_redis_addr_t *a = &c->cfg->redis;
    struct timeval ctv = ms_to_tv(c->cfg->redis_connect_timeout_ms);
    redisReply *r = NULL;

    if (c->ctx != NULL)
        return DC_OK;
    if (dc_now_ms() < c->retry_at_ms)
        return DC_UNAVAILABLE;

    if (a->redis_unix[0] != '\0')
        c->ctx = redisConnectUnixWithTimeout(a->redis_unix, ctv);
    else
        c->ctx = redisConnectWithTimeout(a->redis_host, a->redis_port, ctv);
    if (c->ctx == NULL) {
        c->retry_at_ms = dc_now_ms() + c->cfg->redis_retry_interval_ms;
        return DC_UNAVAILABLE;
    }
    if (c->ctx->err) {
        fail(c, "redis connect", c->ctx->errstr, 1);
        return DC_UNAVAILABLE;
    }
    if (redisSetTimeout(c->ctx, ms_to_tv(c->cfg->redis_command_timeout_ms)) != REDIS_OK) {
        fail(c, "redis set timeout", c->ctx->errstr, 1);
        return DC_UNAVAILABLE;
    }
    if (a->redis_password[0] != '\0') {
        int rc = a->redis_user[0] != '\0'
            ? setup_command(c, &r, "AUTH %s %s", a->redis_user, a->redis_password)
            : setup_command(c, &r, "AUTH %s", a->redis_password);
        if (rc != DC_OK)
            return rc;
        freeReplyObject(r);
    }
    if (a->redis_db != 0) {
        if (setup_command(c, &r, "SELECT %d", a->redis_db) != DC_OK)
            return DC_UNAVAILABLE;
        freeReplyObject(r);
    }
    if (c->down_logged) {
        dc_log_info("redis.recovered", "connected to redis again");
        c->down_logged = 0;
    }
    return DC_OK;
}

/*
 * A command failed at the connection level. A timeout or I/O error means
 * Redis is hung or gone: back off. A connection closed by the server (Redis
 * restarted, idle timeout) is retried at the next request without waiting.
 */
static void command_failed(dc_cache_t *c, const char *what)
{
    fail(c, what, c->ctx->errstr, c->ctx->err != REDIS_ERR_EOF);
}

int dc_cache_get(dc_cache_t *c, const char *key, size_t klen, dc_cache_value_t *v)
{
    redisReply *r;

    memset(v, 0, sizeof(*v));
    if (ensure(c) != DC_OK)
        return DC_UNAVAILABLE;
    r = redisCommand(c->ctx, "GET %b", key, klen);
    if (r == NULL) {
        command_failed(c, "redis GET");
        return DC_UNAVAILABLE;
    }
    if (r->type == REDIS_REPLY_STRING) {
        v->data = r->str;
        v->len = r->len;
        v->reply = r;
        return DC_OK;
    }
    if (r->type == REDIS_REPLY_ERROR)
        dc_log_warn("redis.error", "GET %.*s: %s", (int)klen, key, r->str);
    freeReplyObject(r);
    return DC_DECLINED;
}

void dc_cache_value_release(dc_cache_value_t *v)
{
    freeReplyObject(v->reply);
    memset(v, 0, sizeof(*v));
}

int dc_cache_set(dc_cache_t *c, const char *key, size_t klen, const char *val, size_t vlen, int ttl_s)
{
    redisReply *r;
    int rc = DC_OK;

    if (ensure(c) != DC_OK)
        return DC_UNAVAILABLE;
    r = redisCommand(c->ctx, "SET %b %b EX %d", key, klen, val, vlen, ttl_s);
    if (r == NULL) {
        command_failed(c, "redis SET");
        return DC_UNAVAILABLE;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        /* e.g. OOM under maxmemory noeviction: the answer is still right */
        dc_log_warn("redis.error", "SET %.*s: %s", (int)klen, key, r->str);
        rc = DC_UNAVAILABLE;
    }
    freeReplyObject(r);
    return rc;
}

int dc_cache_ping(dc_cache_t *c, double *latency_ms)
{
    int64_t t0 = dc_now_us();
    redisReply *r;
    int rc = DC_OK;

    if (ensure(c) != DC_OK)
        return DC_UNAVAILABLE;
    r = redisCommand(c->ctx, "PING");
    if (r == NULL) {
        command_failed(c, "redis PING");
        return DC_UNAVAILABLE;
    }
    if (r->type == REDIS_REPLY_ERROR)
        rc = DC_UNAVAILABLE;
    freeReplyObject(r);
    *latency_ms = (double)(dc_now_us() - t0) / 1000.0;
    return rc;
}
