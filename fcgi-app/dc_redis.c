/* Redis connect, timeouts, AUTH and SELECT. */
#include "dc_redis.h"

#include <stdio.h>
#include <sys/time.h>

#include <hiredis.h>

static struct timeval ms_to_tv(int ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000L };
    return tv;
}

static int failed(redisContext **ctx, dc_redis_err_t *err, const char *what, const char *why)
{
    err->what = what;
    snprintf(err->errstr, sizeof(err->errstr), "%s", why ? why : "out of memory");
    redisFree(*ctx);
    *ctx = NULL;
    return DC_UNAVAILABLE;
}

/* A set-up command; DC_OK unless it failed or Redis refused it. */
static int setup(redisContext **ctx, dc_redis_err_t *err, redisReply *r)
{
    int rc = DC_OK;

    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        rc = failed(ctx, err, "redis set-up", r ? r->str : (*ctx)->errstr);
    freeReplyObject(r);
    return rc;
}

int dc_redis_connect(const dc_config_t *cfg, redisContext **out, dc_redis_err_t *err)
{
    const dc_redis_addr_t *a = &cfg->redis;
    struct timeval         ctv = ms_to_tv(cfg->redis_connect_timeout_ms);
    redisContext          *ctx;

    ctx = a->redis_unix[0] != '\0' ? redisConnectUnixWithTimeout(a->redis_unix, ctv)
                                   : redisConnectWithTimeout(a->redis_host, a->redis_port, ctv);
    *out = NULL;
    if (ctx == NULL || ctx->err)
        return failed(&ctx, err, "redis connect", ctx ? ctx->errstr : NULL);
    if (redisSetTimeout(ctx, ms_to_tv(cfg->redis_command_timeout_ms)) != REDIS_OK)
        return failed(&ctx, err, "redis set timeout", ctx->errstr);
    if (a->redis_password[0] != '\0') {
        redisReply *r = a->redis_user[0] != '\0'
                            ? redisCommand(ctx, "AUTH %s %s", a->redis_user, a->redis_password)
                            : redisCommand(ctx, "AUTH %s", a->redis_password);
        if (setup(&ctx, err, r) != DC_OK)
            return DC_UNAVAILABLE;
    }
    if (a->redis_db != 0 && setup(&ctx, err, redisCommand(ctx, "SELECT %d", a->redis_db)) != DC_OK)
        return DC_UNAVAILABLE;
    *out = ctx;
    return DC_OK;
}
