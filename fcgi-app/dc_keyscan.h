/*
 * A walk over the keys matching a glob pattern, a few at a time, with the
 * SCAN cursor kept between steps (never KEYS): the consistency sampler
 * (dc_sampler) takes its sample of cached answers this way, one short step
 * per tick, so a keyspace of any size costs Redis the same small amount of
 * work per step. Also PTTL, for the age of a stale answer.
 *
 * A handle of its own with its own connection (dc_redis_connect, bounded by
 * the Redis timeouts of the configuration), so that whatever the walk does
 * never puts the invalidator's cache handle into back-off. With dc_cache,
 * dc_sub and dc_redis, the only code that includes hiredis.
 */
#ifndef DC_KEYSCAN_H
#define DC_KEYSCAN_H

#include "dc_config.h"
#include "dc_key.h"

typedef struct dc_keyscan_s dc_keyscan_t;

/*
 * A walk over pattern (static; it must outlive the handle) on cfg's Redis;
 * cfg too must outlive it. Does not connect. NULL on out of memory; free
 * with dc_keyscan_free.
 */
dc_keyscan_t *dc_keyscan_new(const dc_config_t *cfg, const char *pattern);

/* Closes the connection and frees. NULL is fine. */
void dc_keyscan_free(dc_keyscan_t *s);

/*
 * One SCAN step from the kept cursor, COUNT count: copies up to max of the
 * keys it returned (NUL-terminated; a key of DC_KEY_MAX bytes or more, which
 * no key of ours is, is passed over, and so are those beyond max) into
 * keys, their lengths into lens, their number into *n. The cursor moves on
 * and starts again at 0 after a full pass (or a new connection), so calling
 * it forever visits every key that stays, again and again. DC_OK, or
 * DC_UNAVAILABLE (*n = 0): no connection, within the back-off after a
 * failure (REDIS_RETRY_INTERVAL_MS), or the command failed; an outage is
 * logged once, and once when it is over.
 */
int dc_keyscan_step(dc_keyscan_t *s, int count, char (*keys)[DC_KEY_MAX], size_t *lens, size_t max,
                    size_t *n) DC_WUR;

/*
 * The remaining time to live of key[0..klen): DC_OK with *ms >= 0;
 * DC_DECLINED when there is no such key or it does not expire;
 * DC_UNAVAILABLE as for dc_keyscan_step.
 */
int dc_keyscan_pttl(dc_keyscan_t *s, const char *key, size_t klen, int64_t *ms) DC_WUR;

#endif
