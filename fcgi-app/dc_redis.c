/* Redis connect, timeouts, AUTH and SELECT. */
#include "dc_redis.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis.h>

static struct timeval ms_to_tv(int ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000L };
    return tv;
}

static int failed(redisContext **ctx, dc_err_t *err, int code, const char *what, const char *why)
{
    dc_err_set(err, code, "%s failed: %s", what, why ? why : "out of memory");
    redisFree(*ctx);
    *ctx = NULL;
    return code;
}

/* A set-up command; DC_OK unless it failed or Redis refused it. */
static int setup(redisContext **ctx, dc_err_t *err, redisReply *r)
{
    int rc = DC_OK;

    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        rc = failed(ctx, err, r ? DC_ERROR : DC_UNAVAILABLE, "redis set-up", r ? r->str : (*ctx)->errstr);
    freeReplyObject(r);
    return rc;
}

/* AUTH as REDIS_URL says, on a new connection to a cluster node. */
static int node_setup(const dc_config_t *cfg, redisContext **ctx, dc_err_t *err)
{
    const dc_redis_addr_t *a = &cfg->redis;

    if (redisSetTimeout(*ctx, ms_to_tv(cfg->redis_command_timeout_ms)) != REDIS_OK)
        return failed(ctx, err, DC_ERROR, "redis set timeout", (*ctx)->errstr);
    if (a->redis_password[0] == '\0')
        return DC_OK;
    return setup(ctx, err,
                 a->redis_user[0] != '\0'
                     ? redisCommand(*ctx, "AUTH %b %b", a->redis_user, strlen(a->redis_user),
                                    a->redis_password, strlen(a->redis_password))
                     : redisCommand(*ctx, "AUTH %b", a->redis_password, strlen(a->redis_password)));
}

int dc_redis_connect_node(const dc_config_t *cfg, const char *host, int port, redisContext **out,
                          dc_err_t *err)
{
    redisContext *ctx = redisConnectWithTimeout(host, port, ms_to_tv(cfg->redis_connect_timeout_ms));
    int           rc;

    *out = NULL;
    if (ctx == NULL || ctx->err)
        return failed(&ctx, err, DC_UNAVAILABLE, "redis connect", ctx ? ctx->errstr : NULL);
    rc = node_setup(cfg, &ctx, err);
    if (rc == DC_OK)
        *out = ctx;
    return rc;
}

/* The first seed of REDIS_CLUSTER_NODES that answers. */
static int connect_seed(const dc_config_t *cfg, redisContext **out, dc_err_t *err)
{
    int rc = DC_UNAVAILABLE;

    for (int i = 0; i < cfg->redis_cluster_n; i++) {
        rc = dc_redis_connect_node(cfg, cfg->redis_cluster[i].host, cfg->redis_cluster[i].port, out, err);
        if (rc == DC_OK)
            break;
    }
    return rc;
}

int dc_redis_connect(const dc_config_t *cfg, redisContext **out, dc_err_t *err)
{
    const dc_redis_addr_t *a = &cfg->redis;
    struct timeval         ctv = ms_to_tv(cfg->redis_connect_timeout_ms);
    redisContext          *ctx;

    if (cfg->redis_cluster_n > 0)
        return connect_seed(cfg, out, err);

    ctx = a->redis_unix[0] != '\0' ? redisConnectUnixWithTimeout(a->redis_unix, ctv)
                                   : redisConnectWithTimeout(a->redis_host, a->redis_port, ctv);
    *out = NULL;
    if (ctx == NULL || ctx->err)
        return failed(&ctx, err, DC_UNAVAILABLE, "redis connect", ctx ? ctx->errstr : NULL);
    if (redisSetTimeout(ctx, ms_to_tv(cfg->redis_command_timeout_ms)) != REDIS_OK)
        return failed(&ctx, err, DC_ERROR, "redis set timeout", ctx->errstr);
    if (a->redis_password[0] != '\0') {
        /* %b: a password is one argument whatever it holds (a space split %s in two) */
        redisReply *r = a->redis_user[0] != '\0'
                            ? redisCommand(ctx, "AUTH %b %b", a->redis_user, strlen(a->redis_user),
                                           a->redis_password, strlen(a->redis_password))
                            : redisCommand(ctx, "AUTH %b", a->redis_password, strlen(a->redis_password));
        int         rc = setup(&ctx, err, r);
        if (rc != DC_OK)
            return rc;
    }
    if (a->redis_db != 0) {
        int rc = setup(&ctx, err, redisCommand(ctx, "SELECT %d", a->redis_db));
        if (rc != DC_OK)
            return rc;
    }
    *out = ctx;
    return DC_OK;
}
