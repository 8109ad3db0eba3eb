/*
 * The consistency sampler: measures in production, continuously, whether
 * what the cache serves is what PostgreSQL says (after Meta's Polaris and
 * Uber's CacheFront). The invalidator calls dc_sampler_tick once per pass
 * of its loop; at most CONSISTENCY_SAMPLE_PER_S times a second the sampler
 * takes a cached answer, recomputes it from PostgreSQL as a worker's miss
 * would (dc_query_run), and compares. A write path that bypasses the
 * triggers (a new table, a disabled trigger, a service that writes around
 * the API with triggers off) then shows in dashboard_consistency_checks_total
 * instead of in a customer's complaint.
 *
 * What it looks at: the dashboard:* keys, walked with SCAN a few at a time
 * (dc_cache_scan_step; the cursor is kept, so every key is visited in turn,
 * on every primary of a cluster), each
 * parsed back into its request (dc_key_parse) and read with the workers'
 * hit semantics (dc_cache_get): only an answer that is a hit right now, of
 * the current generation, is compared.
 *
 * What it compares: the body without generatedAt (dc_etag_of hashes exactly
 * that), and, for types whose SQL reads now(), without the parts that do:
 * an answer computed relative to now() drifts within its TTL by design
 * (devices go offline, readings leave the window) and that is not an
 * inconsistency. So stats is compared without its devices and compliance
 * members; temperature trends, devices online and compliance are entirely
 * relative to now() and are not sampled (their keys are passed over
 * without a count).
 *
 * What it counts (dashboard_consistency_checks_total{result}):
 *   consistent    the cached answer is what PostgreSQL answers now
 *   inconsistent  it differs, and still differs on a recheck
 *                 DC_SAMPLER_RECHECK_MS later with the same cached answer
 *                 still a hit; the key is logged once (consistency.mismatch)
 *                 and every cached type of its organization is invalidated
 *   skipped       a key looked at but not compared: not a hit of the
 *                 current generation (expired, invalidated, stored by
 *                 another Redis process), its organization or unit no
 *                 longer exists, or it changed between check and recheck
 *                 (a write whose invalidation was in flight: not a miss
 *                 of the invalidation)
 *   error         Redis or PostgreSQL failed during the check
 * The recheck is what keeps a write in flight from counting: a write
 * commits before its invalidation is applied (a worker's own, or a
 * trigger's outbox row drained by this very process), so a check that
 * falls in between sees a difference that the invalidation removes
 * milliseconds later.
 *
 * The age of an inconsistency is how long the stale answer had been in the
 * cache when confirmed: its type's TTL minus its remaining TTL (PTTL). The
 * gauge dashboard_consistency_oldest_inconsistency_seconds is the largest
 * since this process started.
 *
 * Load: at most CONSISTENCY_SAMPLE_PER_S recomputations a second (one
 * round trip of a miss's statements each; spaced, never in bursts). A tick
 * does at most one recomputation and a few Redis lookups, and starts no new
 * lookup once DC_SAMPLER_BUDGET_MS have passed. It has connections of its own
 * (Redis twice, PostgreSQL once) with a statement timeout of at most
 * DC_SAMPLER_STATEMENT_MS and a back-off of at least DC_SAMPLER_RETRY_MS, so a slow
 * or failing database costs the invalidator's loop a bounded wait, and
 * never its outbox connection.
 */
#ifndef DC_SAMPLER_H
#define DC_SAMPLER_H

#include "dc_config.h"

#define DC_SAMPLER_RECHECK_MS   2000 /* well beyond a write's invalidation (outbox drains every 500 ms) */
#define DC_SAMPLER_BUDGET_MS    20
#define DC_SAMPLER_STATEMENT_MS 500
#define DC_SAMPLER_RETRY_MS     5000

typedef struct dc_sampler_s dc_sampler_t;

/*
 * A sampler for cfg (copied), off when cfg->consistency_per_s is 0. Does
 * not connect. Call after the metrics are claimed: it sets the gauge of the
 * oldest inconsistency to 0. NULL on out of memory; free with
 * dc_sampler_free.
 */
dc_sampler_t *dc_sampler_new(const dc_config_t *cfg);

/* Closes its connections and frees it. NULL is fine. */
void dc_sampler_free(dc_sampler_t *s);

/* Does what is due at now_ms (dc_now_ms), within the budget; nothing when off or not due. */
void dc_sampler_tick(dc_sampler_t *s, int64_t now_ms);

/* When the next tick is due (dc_now_ms time), INT64_MAX when off: the longest the caller may wait. */
int64_t dc_sampler_next_ms(const dc_sampler_t *s);

/* Whether answers of query type q are sampled (cached and not computed relative to now()). */
int dc_sampler_sampled(dc_qtype_t q);

/*
 * Whether two answers of query type q, a[0..alen) and b[0..blen), say the
 * same: equal but for generatedAt and, for q's members computed relative to
 * now(), those members. A body that is not a JSON object is the same only
 * as one of the same validator (dc_etag_of).
 */
int dc_sampler_same(dc_qtype_t q, const char *a, size_t alen, const char *b, size_t blen);

#endif
