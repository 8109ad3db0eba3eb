/*
 * A pub/sub subscription on its own connection (the invalidator's
 * cache:invalidate), opened with dc_redis_connect like the cache's. It has
 * no read timeout (a timed-out read poisons a hiredis context): the owner
 * polls dc_sub_fd and calls dc_sub_read when it is readable. Reconnects back
 * off from 100 ms to 2 s.
 */
#ifndef DC_SUB_H
#define DC_SUB_H

#include "dc_config.h"

typedef struct dc_sub_s dc_sub_t;

typedef void (*dc_sub_fn)(void *arg, const char *msg, size_t len);

/* Allocates; does not connect. cfg and channel must outlive it. NULL on ENOMEM. */
dc_sub_t *dc_sub_new(const dc_config_t *cfg, const char *channel);

/* Closes and frees. NULL is fine. */
void dc_sub_free(dc_sub_t *s);

/*
 * Connects and subscribes if not subscribed (within the back-off).
 * DC_OK: subscribed now and before; DC_DECLINED: newly subscribed (what was
 * published meanwhile is lost); DC_UNAVAILABLE.
 */
int dc_sub_ensure(dc_sub_t *s) DC_WUR;

/* The socket to poll, or -1. */
int dc_sub_fd(const dc_sub_t *s);

/*
 * Reads what is available and calls fn for every message. DC_OK or
 * DC_UNAVAILABLE (connection lost; closed).
 */
int dc_sub_read(dc_sub_t *s, dc_sub_fn fn, void *arg) DC_WUR;

/*
 * With sentinels (REDIS_SENTINELS), a second subscription, to a sentinel's
 * +switch-master, so that the subscription follows a failover at once
 * instead of whenever Sentinel drops the demoted primary's clients.
 * Without sentinels these do nothing (fd -1).
 *
 * dc_sub_watch_ensure connects and subscribes when not (at most once a
 * second): DC_OK (subscribed, or no sentinels), DC_DECLINED (newly
 * subscribed: a switch may have been missed), DC_UNAVAILABLE.
 * dc_sub_watch_read reads what is there: DC_DECLINED when the primary of
 * REDIS_MASTER_NAME moved (logged; the subscription is closed and
 * dc_sub_ensure reconnects at once, through the sentinels), DC_OK, or
 * DC_UNAVAILABLE (the watch was lost; closed).
 */
int dc_sub_watch_ensure(dc_sub_t *s) DC_WUR;
int dc_sub_watch_fd(const dc_sub_t *s);
int dc_sub_watch_read(dc_sub_t *s) DC_WUR;

#endif
