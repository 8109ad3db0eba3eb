/*
 * The Redis side of cache-aside. The only module that includes hiredis.
 *
 * One connection per worker, opened lazily after fork and replaced on any
 * error: a hiredis context that returned an error cannot be reused (a
 * command timeout leaves half a reply in its buffer). After a failed connect
 * or a timed-out command the cache stays closed for REDIS_RETRY_INTERVAL_MS,
 * so a dead or hung Redis costs one bounded wait per interval per worker,
 * not one per request. Every call is bounded by the connect and command
 * timeouts of the configuration.
 */
#ifndef DC_CACHE_H
#define DC_CACHE_H

#include "dc_config.h"

typedef struct dc_cache_s dc_cache_t;

/* A cached body. data stays valid until dc_cache_value_release. */
typedef struct {
    const char *data;
    size_t      len;
    void       *reply;     /* owned; released by dc_cache_value_release */
} dc_cache_value_t;

/* Allocates a cache handle; does not connect. NULL on out of memory. Free with dc_cache_free. */
dc_cache_t *dc_cache_new(const dc_config_t *cfg);

/* Closes the connection and frees the handle. NULL is fine. */
void dc_cache_free(dc_cache_t *c);

/*
 * GET key. DC_OK: hit, v filled (release it); DC_DECLINED: miss;
 * DC_UNAVAILABLE: Redis down, hung or in back-off (the caller bypasses).
 */
int dc_cache_get(dc_cache_t *c, const char *key, size_t klen, dc_cache_value_t *v) DC_WUR;

/* Frees what dc_cache_get returned. Safe on a zeroed or released value. */
void dc_cache_value_release(dc_cache_value_t *v);

/* SET key value EX ttl. DC_OK or DC_UNAVAILABLE. */
int dc_cache_set(dc_cache_t *c, const char *key, size_t klen, const char *val, size_t vlen,
                 int ttl_s);

/* PING, bounded by the timeouts. DC_OK (latency_ms set) or DC_UNAVAILABLE. */
int dc_cache_ping(dc_cache_t *c, double *latency_ms) DC_WUR;

/* Whether a connection is open right now (no I/O). */
int dc_cache_connected(const dc_cache_t *c);

#endif
