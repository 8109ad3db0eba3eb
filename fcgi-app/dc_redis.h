/*
 * The one way dashcache opens a Redis connection, shared by the cache
 * (dc_cache) and the subscriber (dc_sub): connect within
 * REDIS_CONNECT_TIMEOUT_MS, bound every command by REDIS_COMMAND_TIMEOUT_MS,
 * AUTH and SELECT as REDIS_URL says. With dc_cache.c and dc_sub.c, the only
 * code that includes hiredis; callers see the context as an opaque type.
 */
#ifndef DC_REDIS_H
#define DC_REDIS_H

#include "dc_config.h"

struct redisContext;

/* Why a connect failed: the step and the server's or the system's words. */
typedef struct {
    const char *what; /* "redis connect", "redis set timeout", "redis set-up"; static */
    char        errstr[128];
} dc_redis_err_t;

/*
 * Opens a connection to cfg's Redis, ready for commands. DC_OK with *out
 * (the caller redisFrees it), or DC_UNAVAILABLE with *out NULL and err
 * filled (nothing logged: the caller knows whether an outage was already
 * reported).
 */
int dc_redis_connect(const dc_config_t *cfg, struct redisContext **out, dc_redis_err_t *err) DC_WUR;

#endif
