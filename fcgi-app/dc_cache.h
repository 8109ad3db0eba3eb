/*
 * The Redis side of cache-aside. With dc_sub and dc_redis (the connect
 * they share), the only code that includes hiredis.
 *
 * Lookups (dc_cache_get_many) are pipelined and allocate nothing once
 * warm: their commands are formatted into a kept buffer and sent here, and
 * the replies are built in the handle's arena (dc_arena), valid until each
 * value is released; every other command uses hiredis's own objects.
 *
 * One connection per worker, opened lazily after fork and replaced on any
 * error: a hiredis context that returned an error cannot be reused (a
 * command timeout leaves half a reply in its buffer). After a failed connect
 * or a timed-out command the cache stays closed for REDIS_RETRY_INTERVAL_MS,
 * so a dead or hung Redis costs one bounded wait per interval per worker,
 * not one per request. Every call is bounded by the connect and command
 * timeouts of the configuration.
 *
 * Invalidation is by generation. Every organization has one generation key
 * per cached query type (dc_key_gen); a cached value is stored as
 * "<generation>\n<validator>\n<body>" (the validator: dc_etag_of the body)
 * and is a hit only while the generation of its organization and query type
 * still equals the one it was stored under. A value of any other shape (one
 * stored by an earlier version as "<generation>\n<body>") is a miss.
 * Invalidating what a write changed is one script moving the generations
 * of the query types that read it, whatever the number of their keys. A
 * miss reads the generation before it queries the database, and the store
 * is a script that refuses to write when that generation moved in between:
 * a slow reader can never put data from before a write into the cache after
 * that write's invalidation (the stale-set race). Generations only grow and
 * are never reused, even when a generation key is evicted or deleted.
 *
 * A value is also tagged with the run_id of the Redis process that stored
 * it ("<gen>@<run_id>\n<etag>\n<body>"), learnt from INFO at connect, and is
 * a hit only on that same process: a Redis restarted from a snapshot, or a
 * promoted replica, brings old generations and old values back together,
 * and none of those values is a hit afterwards, with or without the
 * invalidator (the generation bumps of writes acknowledged after the
 * snapshot are what the snapshot lost).
 *
 * In a Redis Cluster (REDIS_CLUSTER_NODES) the handle keeps a connection per
 * primary, opened when first needed, and sends every command to the primary
 * of its key's slot (dc_slots: the map from CLUSTER SLOTS, read again after a
 * MOVED; an ASK is followed once without touching it). An organization's
 * keys share its slot (dc_key.h), and the epoch is kept once per slot,
 * dashcache:epoch:{<tag of the slot>}: a lookup reads the copy of its own
 * slot in the same MGET, so a read stays one command, O(1), whatever the
 * number of nodes; invalidating everything moves the 16384 copies (pipelined
 * per primary; rare) and succeeds only when all moved, so no read that
 * starts after it sees a value stored before it. An epoch per connection
 * instead would cost every hit a second command. run_ids are per node: a
 * value is a hit only on the node process that stored it. The write probe
 * writes on every primary. Without REDIS_CLUSTER_NODES none of this runs:
 * one connection, one dashcache:epoch, the hit path unchanged.
 */
#ifndef DC_CACHE_H
#define DC_CACHE_H

#include <stdint.h>

#include "dc_config.h"
#include "dc_etag.h"
#include "dc_key.h"

typedef struct dc_cache_s dc_cache_t;

#define DC_GEN_MAX    48 /* a token "<epoch>.<generation>" */
#define DC_RUN_ID_MAX 48 /* a Redis run_id: 40 hex digits */

/* A lookup: the cached body and its validator on a hit, the generation seen on a miss. */
typedef struct {
    const char *data; /* body on a hit; valid until release */
    size_t      len;
    char        etag[DC_ETAG_LEN + 1];  /* its validator on a hit */
    char        gen[DC_GEN_MAX];        /* generation read ("" = none yet) */
    int64_t     stored_s;               /* when the value was stored (Unix time, s) */
    char        lease[DC_GEN_MAX + 48]; /* the lease this reader holds on the key ("" = none) */
    void       *reply;                  /* owned; released by dc_cache_value_release */
    dc_cache_t *arena;                  /* or: data lives in this handle's arena until released */
} dc_cache_value_t;

/* Allocates a cache handle; does not connect. NULL on out of memory. Free with dc_cache_free. */
dc_cache_t *dc_cache_new(const dc_config_t *cfg);

/* Closes the connection and frees the handle. NULL is fine. */
void dc_cache_free(dc_cache_t *c);

/*
 * Reads key, an answer of query type q of organization org, together with
 * the generation of q for org, in one round trip. DC_OK: hit, v->data/len
 * and v->etag set (release v); DC_DECLINED: miss, stale or not of the
 * current format, v->gen holds the generation to store under; DC_UNAVAILABLE: Redis down, hung or in back-off (the
 * caller bypasses), or q is not cached.
 */
int dc_cache_get(dc_cache_t *c, const char *org, dc_qtype_t q, const char *key, size_t klen,
                 dc_cache_value_t *v) DC_WUR;

/* A lookup of dc_cache_get_many: the arguments of dc_cache_get, and its result. */
typedef struct {
    const char      *org;
    dc_qtype_t       q;
    const char      *key;
    size_t           klen;
    dc_cache_value_t v;  /* out: as dc_cache_get's (release it) */
    int              rc; /* out: as dc_cache_get returns */
} dc_cache_lookup_t;

#define DC_CACHE_LOOKUPS_MAX 64 /* lookups of one round trip */

/*
 * n lookups as dc_cache_get, pipelined: their MGETs leave in one write and
 * the replies arrive together, one round trip for every
 * DC_CACHE_LOOKUPS_MAX of them. When the connection fails part-way, the
 * rest are DC_UNAVAILABLE; so is a lookup of a type that is not cached.
 */
void dc_cache_get_many(dc_cache_t *c, dc_cache_lookup_t *const *ls, size_t n);

/*
 * The generation of q for org into gen, created when there is none (a
 * reader must observe a generation before it queries the database: a store
 * under none is refused). For a forced refresh, and for a miss that saw no
 * generation. DC_OK or DC_UNAVAILABLE.
 */
int dc_cache_generation(dc_cache_t *c, const char *org, dc_qtype_t q, char gen[DC_GEN_MAX]) DC_WUR;

/*
 * Removes the generation key of q for org: for an organization that turned
 * out not to exist, whose generation a miss had created (no key names an
 * unknown organization). Harmless for any organization: a missing
 * generation only makes the next read a miss. Failures are ignored.
 */
void dc_cache_drop_generation(dc_cache_t *c, const char *org, dc_qtype_t q);

/* Frees what dc_cache_get returned. Safe on a zeroed or released value. */
void dc_cache_value_release(dc_cache_value_t *v);

/*
 * Stores val, with its validator etag (dc_etag_of val), under key (an
 * answer of query type q of org) with ttl_s, only if the generation of q for
 * org is still gen. DC_OK: stored; DC_DECLINED: refused, an invalidation
 * came in between; DC_UNAVAILABLE: Redis failed (the answer is still right,
 * just not cached).
 */
int dc_cache_set(dc_cache_t *c, const char *org, dc_qtype_t q, const char *key, size_t klen, const char *gen,
                 const char *etag, const char *val, size_t vlen, int ttl_s);

/*
 * The lease of key (an answer of query type q of org), for one database
 * query per cold or stale key whatever the number of readers: in one round
 * trip, the token (created when missing, as dc_cache_generation) into
 * v->gen, and
 *   DC_OK          a value of that token stored less than ttl_s ago is
 *                  there: in v (someone filled it; release v);
 *   DC_DECLINED    the caller holds the lease now (v->lease): query, then
 *                  dc_cache_set (which ends the lease) or dc_cache_release;
 *   DC_BUSY        another reader holds it: wait and ask again, or serve
 *                  the stale value;
 * and with DC_DECLINED or DC_BUSY, v holds the stale value of that token
 * when there is one (v->data != NULL). The lease lasts CACHE_LEASE_MS: a
 * holder that dies or overruns it lets the next reader take over. A lease
 * is fenced by the token: a store under an older one is refused.
 * DC_UNAVAILABLE: Redis failed. *created: the generation did not exist.
 */
int dc_cache_lease(dc_cache_t *c, const char *org, dc_qtype_t q, const char *key, size_t klen, int ttl_s,
                   dc_cache_value_t *v, int *created) DC_WUR;

/* Ends the lease v holds on key (its query failed), if it still holds it. */
void dc_cache_release(dc_cache_t *c, const char *key, size_t klen, dc_cache_value_t *v);

/*
 * Moves the generations of org's query types in queries (a DC_QBIT mask;
 * types that are not cached are ignored) forward in one script: every value
 * cached for them stops being a hit at once, the other types' stay. DC_OK
 * (nothing to do for an empty mask) or DC_UNAVAILABLE.
 */
int dc_cache_invalidate(dc_cache_t *c, const char *org, unsigned queries) DC_WUR;

/*
 * Moves the global epoch forward: every value cached for every
 * organization stops being a hit at once, in one write. DC_OK or
 * DC_UNAVAILABLE.
 */
int dc_cache_invalidate_all(dc_cache_t *c) DC_WUR;

/*
 * The LSN keys of dc_replica (dc_key_lsn): the WAL position a standby must
 * have replayed before it answers a miss of an organization. A value is
 * "<16 hex digits>@<run_id>", and counts only on the Redis process that
 * stored it, as a cached value does: one restarted from a snapshot or a
 * promoted replica may hold positions from before writes it lost, and a
 * position that is not there is never taken for "nothing to wait for".
 *
 * dc_cache_lsn_raise: the LSN key of org (NULL: every organization's) to
 * lsn unless it holds a larger one of this server already (never
 * backwards). DC_OK, or DC_UNAVAILABLE (a refused write: dc_trust_refused).
 */
int dc_cache_lsn_raise(dc_cache_t *c, const char *org, uint64_t lsn) DC_WUR;

/*
 * The LSNs of org and of every organization, 0 for one that is not there
 * or was stored by another Redis process. DC_OK or DC_UNAVAILABLE.
 */
int dc_cache_lsn_get(dc_cache_t *c, const char *org, uint64_t *org_lsn, uint64_t *all_lsn) DC_WUR;

/*
 * The write probe of dc_trust: SET of the probe key, bounded by the
 * timeouts. DC_OK when Redis took it; DC_UNAVAILABLE when it refused it
 * (OOM under noeviction, READONLY), did not answer in time (CLIENT PAUSE
 * WRITE, hung) or is away.
 */
int dc_cache_probe(dc_cache_t *c) DC_WUR;

/*
 * Drops the connection; the next call connects again at once (through the
 * sentinels, to the primary they name now): the invalidator's answer to a
 * +switch-master. NULL-safe on a closed handle.
 */
void dc_cache_disconnect(dc_cache_t *c);

/* Where writes announce what changed, once it is invalidated. */
#define DC_EVENTS_CHANNEL "dashboard:events"

/* PUBLISH channel message. DC_OK or DC_UNAVAILABLE. */
int dc_cache_publish(dc_cache_t *c, const char *channel, const char *msg, size_t len) DC_WUR;

/*
 * Deletes every key matching a glob pattern with SCAN MATCH + UNLINK, one
 * batch per SCAN step, never KEYS. *deleted counts what went. DC_OK or
 * DC_UNAVAILABLE (part may have been deleted).
 */
int dc_cache_unlink_pattern(dc_cache_t *c, const char *pattern, size_t *deleted) DC_WUR;

/*
 * Counts keys matching pattern with SCAN, stopping after max_scan keys
 * have been looked at (*complete = 0 then). DC_OK or DC_UNAVAILABLE.
 */
int dc_cache_count_keys(dc_cache_t *c, const char *pattern, long max_scan, long *n, int *complete) DC_WUR;

/*
 * Where a walk over the keys of a pattern stands (dc_cache_scan_step):
 * the node (in a cluster), the SCAN cursor there, and the run_id of the
 * server the cursor belongs to. Zeroed: at the start.
 */
typedef struct {
    int  node;
    char cursor[24];            /* an unsigned 64-bit number as text; "" = "0" */
    char run_id[DC_RUN_ID_MAX]; /* a cursor means nothing to another server process */
} dc_cache_scan_t;

/*
 * One SCAN step of a walk over the keys matching pattern, never KEYS: from
 * pos, COUNT count; copies up to max of the keys it returned
 * (NUL-terminated; one of DC_KEY_MAX bytes or more, which no key of ours
 * is, and those beyond max are passed over) into keys, their lengths into
 * lens, their number into *n. pos moves on; after a full pass of a node the
 * walk goes to the next primary of a cluster, and after the last (or on a
 * server that is not the cursor's) it starts again, so calling it forever
 * visits every key that stays, again and again, at the same small cost per
 * step whatever the keyspace. DC_OK, or DC_UNAVAILABLE (*n = 0).
 */
int dc_cache_scan_step(dc_cache_t *c, dc_cache_scan_t *pos, const char *pattern, int count,
                       char (*keys)[DC_KEY_MAX], size_t *lens, size_t max, size_t *n) DC_WUR;

/*
 * The remaining time to live of key[0..klen): DC_OK with *ms >= 0;
 * DC_DECLINED when there is no such key or it does not expire;
 * DC_UNAVAILABLE when Redis failed.
 */
int dc_cache_pttl(dc_cache_t *c, const char *key, size_t klen, int64_t *ms) DC_WUR;

/* INFO memory's used_memory and DBSIZE. DC_OK or DC_UNAVAILABLE. */
int dc_cache_memory(dc_cache_t *c, long long *used_bytes, long long *keys) DC_WUR;

/* PING, bounded by the timeouts. DC_OK (latency_ms set) or DC_UNAVAILABLE. */
int dc_cache_ping(dc_cache_t *c, double *latency_ms) DC_WUR;

/* Whether a connection is open right now (no I/O). */
int dc_cache_connected(const dc_cache_t *c);

#endif
