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

/*
 * Opens a connection to cfg's Redis, ready for commands. DC_OK with *out
 * (the caller redisFrees it); else *out is NULL, err says which step failed
 * and the server's or the system's words, and nothing is logged (the caller
 * knows whether an outage was already reported): DC_UNAVAILABLE, no
 * connection could be made; DC_ERROR, Redis refused the set-up (AUTH,
 * SELECT, timeouts).
 */
int dc_redis_connect(const dc_config_t *cfg, struct redisContext **out, dc_err_t *err) DC_WUR;

#endif
