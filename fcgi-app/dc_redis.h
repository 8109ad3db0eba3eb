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

/*
 * In a Redis Cluster (REDIS_CLUSTER_NODES), dc_redis_connect opens the first
 * seed that answers: what the subscriber (pub/sub is cluster-wide) and the
 * key walk of the sampler need; dc_cache opens each primary it routes to
 * with dc_redis_connect_node, host:port with REDIS_URL's user and password
 * (a cluster has no database but 0). Results as dc_redis_connect's.
 */
int dc_redis_connect_node(const dc_config_t *cfg, const char *host, int port, struct redisContext **out,
                          dc_err_t *err) DC_WUR;

#endif
