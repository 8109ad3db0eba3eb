/* The invalidator's subscription: connect, SUBSCRIBE, read what arrives. */
#include "dc_sub.h"

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis.h>

#include "dc_log.h"
#include "dc_redis.h"

#define SWITCH_CHANNEL "+switch-master"

struct dc_sub_s {
    const dc_config_t *cfg;
    const char        *channel;
    redisContext      *ctx;
    int64_t            retry_at_ms;
    int                backoff_ms;
    redisContext      *watch; /* with sentinels: a sentinel's +switch-master */
    int64_t            watch_retry_at_ms;
};

dc_sub_t *dc_sub_new(const dc_config_t *cfg, const char *channel)
{
    dc_sub_t *s = calloc(1, sizeof(*s));
    if (s != NULL) {
        s->cfg = cfg;
        s->channel = channel;
    }
    return s;
}

static void sub_close(dc_sub_t *s, const char *why)
{
    if (s->ctx != NULL) {
        dc_log_warn("redis.subscribe", "subscription to %s lost: %s", s->channel, why);
        redisFree(s->ctx);
        s->ctx = NULL;
    }
}

void dc_sub_free(dc_sub_t *s)
{
    if (s == NULL)
        return;
    if (s->ctx != NULL)
        redisFree(s->ctx);
    if (s->watch != NULL)
        redisFree(s->watch);
    free(s);
}

int dc_sub_fd(const dc_sub_t *s)
{
    return s->ctx != NULL ? s->ctx->fd : -1;
}

/* Reconnect attempts back off from 100 ms to 2 s. */
static void sub_backoff(dc_sub_t *s)
{
    s->backoff_ms = s->backoff_ms ? (s->backoff_ms * 2 > 2000 ? 2000 : s->backoff_ms * 2) : 100;
    s->retry_at_ms = dc_now_ms() + s->backoff_ms;
}

int dc_sub_ensure(dc_sub_t *s)
{
    dc_err_t    err;
    redisReply *r;

    if (s->ctx != NULL)
        return DC_OK;
    if (dc_now_ms() < s->retry_at_ms)
        return DC_UNAVAILABLE;
    /* commands of the set-up are bounded; the wait for messages is a poll() */
    if (dc_redis_connect(s->cfg, &s->ctx, &err) != DC_OK) {
        /* a refused connect is the normal outage; a refused AUTH or SELECT is worth a line */
        if (err.code != DC_UNAVAILABLE)
            dc_log_warn("redis.subscribe", "subscription to %s lost: %s", s->channel, err.str);
        sub_backoff(s);
        return DC_UNAVAILABLE;
    }
    redisEnableKeepAlive(s->ctx);
    r = redisCommand(s->ctx, "SUBSCRIBE %s", s->channel);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        sub_close(s, "SUBSCRIBE failed");
        sub_backoff(s);
        return DC_UNAVAILABLE;
    }
    freeReplyObject(r);
    /* no read timeout from here on: an idle subscription is normal */
    {
        struct timeval none = { 0, 0 };
        redisSetTimeout(s->ctx, none);
    }
    s->backoff_ms = 0;
    dc_log_info("redis.subscribe", "subscribed to %s", s->channel);
    return DC_DECLINED;
}

int dc_sub_read(dc_sub_t *s, dc_sub_fn fn, void *arg)
{
    void *reply;

    if (s->ctx == NULL)
        return DC_UNAVAILABLE;
    if (redisBufferRead(s->ctx) != REDIS_OK) {
        sub_close(s, s->ctx->errstr);
        sub_backoff(s);
        return DC_UNAVAILABLE;
    }
    for (;;) {
        redisReply *r;
        if (redisGetReplyFromReader(s->ctx, &reply) != REDIS_OK) {
            sub_close(s, s->ctx->errstr);
            sub_backoff(s);
            return DC_UNAVAILABLE;
        }
        if (reply == NULL)
            break;
        r = reply;
        /* ["message", channel, payload]; anything else (pong, subscribe) is ignored */
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 && r->element[0]->type == REDIS_REPLY_STRING &&
            strcmp(r->element[0]->str, "message") == 0 && r->element[2]->type == REDIS_REPLY_STRING)
            fn(arg, r->element[2]->str, r->element[2]->len);
        freeReplyObject(r);
    }
    return DC_OK;
}

static void watch_close(dc_sub_t *s, const char *why)
{
    dc_log_warn("redis.sentinel", "watch of %s on the sentinels lost: %s", SWITCH_CHANNEL, why);
    redisFree(s->watch);
    s->watch = NULL;
    s->watch_retry_at_ms = dc_now_ms() + 1000;
}

int dc_sub_watch_ensure(dc_sub_t *s)
{
    dc_err_t    err;
    redisReply *r;

    if (s->cfg->sentinel.n == 0 || s->watch != NULL)
        return DC_OK;
    if (dc_now_ms() < s->watch_retry_at_ms)
        return DC_UNAVAILABLE;
    if (dc_redis_connect_sentinel(s->cfg, &s->watch, &err) != DC_OK) {
        s->watch_retry_at_ms = dc_now_ms() + 1000;
        return DC_UNAVAILABLE;
    }
    redisEnableKeepAlive(s->watch);
    r = redisCommand(s->watch, "SUBSCRIBE %s", SWITCH_CHANNEL);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        watch_close(s, "SUBSCRIBE failed");
        return DC_UNAVAILABLE;
    }
    freeReplyObject(r);
    {
        struct timeval none = { 0, 0 };
        redisSetTimeout(s->watch, none);
    }
    dc_log_info("redis.sentinel", "watching %s of %s on %s:%d", SWITCH_CHANNEL, s->cfg->sentinel.master_name,
                s->watch->tcp.host ? s->watch->tcp.host : "?", s->watch->tcp.port);
    /* a switch may have happened while nobody watched: the subscription looks again */
    return DC_DECLINED;
}

int dc_sub_watch_fd(const dc_sub_t *s)
{
    return s->watch != NULL ? s->watch->fd : -1;
}

/* "<name> <old-ip> <old-port> <new-ip> <new-port>": DC_OK when it is our master's (logged). */
static int our_switch(const dc_sub_t *s, const char *msg, size_t len)
{
    const char *name = s->cfg->sentinel.master_name;
    size_t      n = strlen(name);
    char        shown[160];

    if (len <= n || memcmp(msg, name, n) != 0 || msg[n] != ' ')
        return DC_DECLINED;
    snprintf(shown, sizeof(shown), "%.*s", (int)(len - n - 1 < 150 ? len - n - 1 : 150), msg + n + 1);
    dc_log_warn("redis.switch_master", "sentinel: primary %s moved (old ip, port, new ip, port: %s)", name,
                shown);
    return DC_OK;
}

int dc_sub_watch_read(dc_sub_t *s)
{
    void *reply;
    int   switched = 0;

    if (s->watch == NULL)
        return DC_UNAVAILABLE;
    if (redisBufferRead(s->watch) != REDIS_OK) {
        watch_close(s, s->watch->errstr);
        return DC_UNAVAILABLE;
    }
    for (;;) {
        redisReply *r;
        if (redisGetReplyFromReader(s->watch, &reply) != REDIS_OK) {
            watch_close(s, s->watch->errstr);
            return DC_UNAVAILABLE;
        }
        if (reply == NULL)
            break;
        r = reply;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 && r->element[0]->type == REDIS_REPLY_STRING &&
            strcmp(r->element[0]->str, "message") == 0 && r->element[2]->type == REDIS_REPLY_STRING &&
            our_switch(s, r->element[2]->str, r->element[2]->len) == DC_OK)
            switched = 1;
        freeReplyObject(r);
    }
    if (!switched)
        return DC_OK;
    /* re-subscribe on the new primary now, not after a back-off */
    sub_close(s, "the primary moved");
    s->backoff_ms = 0;
    s->retry_at_ms = 0;
    return DC_DECLINED;
}
