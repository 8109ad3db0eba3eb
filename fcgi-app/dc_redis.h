/*
 * The one way dashcache opens a Redis connection, shared by the cache
 * (dc_cache) and the subscriber (dc_sub): connect within
 * REDIS_CONNECT_TIMEOUT_MS, bound every command by REDIS_COMMAND_TIMEOUT_MS,
 * AUTH and SELECT as REDIS_URL says. With dc_cache.c and dc_sub.c, the only
 * code that includes hiredis; callers see the context as an opaque type.
 *
 * With REDIS_SENTINELS, the primary is whatever the sentinels say it is
 * right now: each is asked in turn (SENTINEL get-master-addr-by-name, each
 * bounded by the connect and command timeouts), starting with the one that
 * answered last in this process, and the address it gives is taken only
 * when that server says ROLE master: a sentinel that has not yet learnt of
 * a failover names the demoted primary, which must never be written to.
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
 * SELECT, timeouts); DC_BUSY (sentinels only), the server a sentinel named
 * is not the primary: a failover is under way, look again soon.
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
/* Whether cfg names sentinels (REDIS_SENTINELS): the primary can move. */
int dc_redis_sentinel_mode(const dc_config_t *cfg);

/*
 * The primary the sentinels name now (no ROLE check): host (hostcap bytes)
 * and *port. DC_OK; DC_UNAVAILABLE when no sentinel answered with an
 * address (err says why). Without sentinels, REDIS_URL's host and port.
 */
int dc_redis_master_addr(const dc_config_t *cfg, char *host, size_t hostcap, int *port, dc_err_t *err) DC_WUR;

/*
 * Opens a connection to a sentinel that answers (the last one that did,
 * first), AUTHed with REDIS_SENTINEL_PASSWORD, bounded by the timeouts;
 * for a subscription to its events. DC_OK with *out (the caller redisFrees
 * it), or DC_UNAVAILABLE with err.
 */
int dc_redis_connect_sentinel(const dc_config_t *cfg, struct redisContext **out, dc_err_t *err) DC_WUR;

#endif
