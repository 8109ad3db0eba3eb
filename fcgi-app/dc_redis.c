/* Redis connect, timeouts, AUTH and SELECT; the primary from the sentinels; a cluster's nodes. */
#include "dc_redis.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis.h>

/* The sentinel that answered last in this process: asked first next time. */
static int preferred;

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

/* A TCP connection to host:port with the configured timeouts. */
static int open_tcp(const dc_config_t *cfg, const char *host, int port, redisContext **ctx, dc_err_t *err,
                    const char *what)
{
    *ctx = redisConnectWithTimeout(host, port, ms_to_tv(cfg->redis_connect_timeout_ms));
    if (*ctx == NULL || (*ctx)->err)
        return failed(ctx, err, DC_UNAVAILABLE, what, *ctx ? (*ctx)->errstr : NULL);
    if (redisSetTimeout(*ctx, ms_to_tv(cfg->redis_command_timeout_ms)) != REDIS_OK)
        return failed(ctx, err, DC_ERROR, what, (*ctx)->errstr);
    return DC_OK;
}

/* Sentinel i, connected and AUTHed. */
static int open_sentinel(const dc_config_t *cfg, int i, redisContext **ctx, dc_err_t *err)
{
    const dc_sentinels_t *s = &cfg->sentinel;
    int                   rc = open_tcp(cfg, s->host[i], s->port[i], ctx, err, "redis sentinel connect");

    if (rc == DC_OK && s->password[0] != '\0') {
        rc = setup(ctx, err, redisCommand(*ctx, "AUTH %b", s->password, strlen(s->password)));
        if (rc != DC_OK)
            rc = DC_UNAVAILABLE; /* the next sentinel may take it */
    }
    return rc;
}

/* Sentinel i's answer to get-master-addr-by-name. */
static int ask_sentinel(const dc_config_t *cfg, int i, char *host, size_t hostcap, int *port, dc_err_t *err)
{
    redisContext *ctx;
    redisReply   *r;
    int           rc = open_sentinel(cfg, i, &ctx, err);

    if (rc != DC_OK)
        return rc;
    r = redisCommand(ctx, "SENTINEL get-master-addr-by-name %s", cfg->sentinel.master_name);
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING &&
        r->element[0]->len < hostcap && sscanf(r->element[1]->str, "%d", port) == 1) {
        memcpy(host, r->element[0]->str, r->element[0]->len + 1);
    } else {
        rc = dc_err_set(err, DC_UNAVAILABLE, "redis sentinel %s:%d has no primary named %s%s%s",
                        cfg->sentinel.host[i], cfg->sentinel.port[i], cfg->sentinel.master_name,
                        r == NULL ? ": " : "", r == NULL ? ctx->errstr : "");
    }
    freeReplyObject(r);
    redisFree(ctx);
    return rc;
}

int dc_redis_sentinel_mode(const dc_config_t *cfg)
{
    return cfg->sentinel.n > 0;
}

int dc_redis_master_addr(const dc_config_t *cfg, char *host, size_t hostcap, int *port, dc_err_t *err)
{
    int n = cfg->sentinel.n;

    if (n == 0) {
        snprintf(host, hostcap, "%s", cfg->redis.redis_host);
        *port = cfg->redis.redis_port;
        return DC_OK;
    }
    for (int k = 0; k < n; k++) {
        int i = (preferred + k) % n;
        if (ask_sentinel(cfg, i, host, hostcap, port, err) == DC_OK) {
            preferred = i;
            return DC_OK;
        }
    }
    return DC_UNAVAILABLE; /* err: the last sentinel's words */
}

int dc_redis_connect_sentinel(const dc_config_t *cfg, redisContext **out, dc_err_t *err)
{
    int n = cfg->sentinel.n;

    *out = NULL;
    for (int k = 0; k < n; k++) {
        int i = (preferred + k) % n;
        if (open_sentinel(cfg, i, out, err) == DC_OK) {
            preferred = i;
            return DC_OK;
        }
    }
    return n == 0 ? dc_err_set(err, DC_UNAVAILABLE, "no REDIS_SENTINELS") : DC_UNAVAILABLE;
}

/* AUTH as REDIS_URL says. */
static int auth(const dc_redis_addr_t *a, redisContext **ctx, dc_err_t *err)
{
    if (a->redis_password[0] == '\0')
        return DC_OK;
    /* %b: a password is one argument whatever it holds (a space split %s in two) */
    return setup(ctx, err,
                 a->redis_user[0] != '\0'
                     ? redisCommand(*ctx, "AUTH %b %b", a->redis_user, strlen(a->redis_user),
                                    a->redis_password, strlen(a->redis_password))
                     : redisCommand(*ctx, "AUTH %b", a->redis_password, strlen(a->redis_password)));
}

/* A Redis Cluster node host:port (dc_cache routes to each primary), AUTHed as REDIS_URL says. */
int dc_redis_connect_node(const dc_config_t *cfg, const char *host, int port, redisContext **out,
                          dc_err_t *err)
{
    redisContext *ctx;
    int           rc = open_tcp(cfg, host, port, &ctx, err, "redis connect");

    *out = NULL;
    if (rc == DC_OK)
        rc = auth(&cfg->redis, &ctx, err);
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

/* DC_OK when the server says ROLE master; a replica (a stale sentinel's answer) is DC_BUSY. */
static int is_master(redisContext **ctx, dc_err_t *err)
{
    redisReply *r = redisCommand(*ctx, "ROLE");
    int         ok = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
             r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "master") == 0;
    int rc = DC_OK;

    if (!ok)
        rc = failed(ctx, err, r == NULL ? DC_UNAVAILABLE : DC_BUSY, "redis primary check",
                    r == NULL                      ? (*ctx)->errstr
                    : r->type == REDIS_REPLY_ERROR ? r->str
                                                   : "the sentinels' primary is not a master (yet)");
    freeReplyObject(r);
    return rc;
}

/* The primary through the sentinels: the first answer whose server says it is the master. */
static int connect_via_sentinels(const dc_config_t *cfg, redisContext **ctx, dc_err_t *err)
{
    int n = cfg->sentinel.n, rc = DC_UNAVAILABLE, busy = 0;

    for (int k = 0; k < n; k++) {
        int  i = (preferred + k) % n, port = 0;
        char host[256];

        if (ask_sentinel(cfg, i, host, sizeof(host), &port, err) != DC_OK)
            continue;
        rc = open_tcp(cfg, host, port, ctx, err, "redis connect");
        if (rc == DC_OK)
            rc = auth(&cfg->redis, ctx, err);
        if (rc == DC_OK)
            rc = is_master(ctx, err);
        if (rc == DC_OK) {
            preferred = i;
            return DC_OK;
        }
        if (rc == DC_ERROR)
            return rc; /* AUTH refused: another sentinel's answer will not change that */
        busy |= rc == DC_BUSY;
    }
    return busy ? DC_BUSY : rc;
}

int dc_redis_connect(const dc_config_t *cfg, redisContext **out, dc_err_t *err)
{
    const dc_redis_addr_t *a = &cfg->redis;
    redisContext          *ctx;
    int                    rc;

    *out = NULL;
    if (cfg->redis_cluster_n > 0)
        return connect_seed(cfg, out, err);
    if (cfg->sentinel.n > 0) {
        rc = connect_via_sentinels(cfg, &ctx, err);
    } else if (a->redis_unix[0] != '\0') {
        ctx = redisConnectUnixWithTimeout(a->redis_unix, ms_to_tv(cfg->redis_connect_timeout_ms));
        if (ctx == NULL || ctx->err)
            return failed(&ctx, err, DC_UNAVAILABLE, "redis connect", ctx ? ctx->errstr : NULL);
        if (redisSetTimeout(ctx, ms_to_tv(cfg->redis_command_timeout_ms)) != REDIS_OK)
            return failed(&ctx, err, DC_ERROR, "redis set timeout", ctx->errstr);
        rc = auth(a, &ctx, err);
    } else {
        rc = open_tcp(cfg, a->redis_host, a->redis_port, &ctx, err, "redis connect");
        if (rc == DC_OK)
            rc = auth(a, &ctx, err);
    }
    if (rc != DC_OK)
        return rc;
    if (a->redis_db != 0) {
        rc = setup(&ctx, err, redisCommand(ctx, "SELECT %d", a->redis_db));
        if (rc != DC_OK)
            return rc;
    }
    *out = ctx;
    return DC_OK;
}
