/*
 * Invalidation messages and how they are applied.
 *
 * Messages on cache:invalidate (JSON, at most 4 KiB):
 *   {"orgId":"<uuid>"}                          one organization (O(1))
 *   {"pattern":"dashboard:*:org:<uuid>"}        keys of one tenant by pattern
 *   {"pattern":"dashboard:*","scope":"all"}     everything, said explicitly (the epoch: O(1))
 * A pattern stays inside the dashboard: namespace, is made of ':'-separated
 * segments that are either "*" or literal words, ids and numbers, and must
 * name exactly one tenant (org:<uuid>, or org:{<uuid>} as the keys spell
 * it, dc_key.h), so no message can reach another tenant's keys through glob
 * characters. The parsed pattern names the tenant as the keys do,
 * org:{<uuid>} (braces are literal to SCAN MATCH), so the untagged patterns
 * of writers that predate the tag match the same keys as before. Applying a tenant pattern moves
 * the generations of that organization (race-free) and deletes exactly the
 * keys that match (SCAN + UNLINK, to give the memory back): the generation
 * of one query type when the pattern's first segment is its label
 * (dashboard:units:*:org:<uuid>), every type's otherwise; an orgId moves
 * every type's.
 *
 * Writes of the database reach the invalidator as outbox rows, each with
 * the kind of what changed; the generations they move are those of the
 * query types that read it (DC_API_CHANGES of dc_api.h).
 */
#ifndef DC_INVAL_H
#define DC_INVAL_H

#include "dc_cache.h"
#include "dc_core.h"
#include "dc_db.h"
#include "dc_orgs.h"
#include "dc_outbox.h"

#define DC_INVAL_MSG_MAX     4096
#define DC_INVAL_PATTERN_MAX 256

typedef enum {
    DC_INV_ORG = 0,
    DC_INV_PATTERN,
    DC_INV_ALL,
} dc_inval_kind_t;

typedef struct {
    dc_inval_kind_t kind;
    char            org_id[DC_UUID_LEN + 1];
    char            pattern[DC_INVAL_PATTERN_MAX]; /* DC_INV_PATTERN and DC_INV_ALL */
    unsigned        queries;                       /* DC_QBIT mask: the query types whose generations move */
} dc_inval_msg_t;

/*
 * Parses and validates one message. DC_OK, or DC_EINVAL with the reason in
 * why (for the log line).
 */
int dc_inval_parse(const char *msg, size_t len, dc_inval_msg_t *out, char *why, size_t cap) DC_WUR;

/*
 * Applies a parsed tenant message (DC_INV_ORG or DC_INV_PATTERN) to Redis:
 * the generations of m->queries first, then the pattern's keys. DC_OK or
 * DC_UNAVAILABLE.
 */
int dc_inval_apply(dc_cache_t *c, const dc_inval_msg_t *m, size_t *deleted) DC_WUR;

/*
 * Moves, in every organization of orgs, the generations of the query types
 * that read what changed there (its bits, DC_CHANGE_BIT), one script per
 * organization. DC_OK, or DC_UNAVAILABLE at the first one Redis did not take
 * (the rest untouched).
 */
int dc_inval_orgs(dc_cache_t *c, const dc_orgs_t *orgs) DC_WUR;

/*
 * Invalidates everything of every organization in one write: the global
 * epoch moves (dc_cache_invalidate_all), whatever the number of keys or
 * organizations, even of organizations the database no longer has (after a
 * TRUNCATE). The old values stay in Redis until their TTL or eviction, and
 * are never a hit again. DC_OK or DC_UNAVAILABLE.
 */
int dc_inval_all(dc_cache_t *c) DC_WUR;

/*
 * Raises the LSN keys (dc_replica.h) of the organizations of orgs, of org,
 * and with all the global one, to the primary's position read now (db):
 * call it after the changes to invalidate were committed (their outbox
 * rows read, their message received) and before their generations move.
 * orgs and org may be NULL. DC_OK, or DC_UNAVAILABLE (PostgreSQL or Redis;
 * nothing to move the generations with then).
 */
int dc_inval_raise_lsn(dc_cache_t *c, dc_db_t *db, const dc_orgs_t *orgs, const char *org, int all) DC_WUR;

/* What one drain applied. */
typedef struct {
    size_t rows;    /* outbox rows marked processed */
    size_t orgs;    /* organization invalidations, counted per batch */
    size_t batches; /* batches applied */
    size_t alls;    /* batches that held a TRUNCATE row: everything invalidated */
} dc_drain_stats_t;

/*
 * Applies pending outbox rows, batch rows at a time (ob is scratch space),
 * until none is left: each batch's organizations are invalidated
 * (their LSN keys raised, then their generations moved, dc_inval_raise_lsn)
 * first and the rows marked processed after, so a failure in between
 * re-applies them later and never skips one. fn is called with each row's
 * lag. *stats counts what was applied, also when it stops early. DC_OK, or
 * the failure that stopped it (DC_UNAVAILABLE: Redis or PostgreSQL).
 */
int dc_inval_drain(dc_cache_t *c, dc_db_t *db, dc_outbox_t *ob, size_t batch, dc_lag_fn fn, void *arg,
                   dc_drain_stats_t *stats) DC_WUR;

#endif
