/*
 * Whether this host may serve cache hits: the answer to "could a write
 * have been acknowledged whose invalidation Redis did not take?".
 *
 * A hit is served only under a lease that a probe of the host renews every
 * TRUST_PROBE_INTERVAL_MS (one process of the host at a time, whichever
 * claims it first in the shared state). A probe renews the lease for
 * DC_TRUST_LEASE_PROBES intervals when
 *   1. Redis takes a write (SET of the probe key): not refusing writes for
 *      maxmemory under noeviction, not a read-only replica, not paused
 *      (CLIENT PAUSE WRITE holds the write past the command timeout), and
 *   2. the outbox holds no pending row that was already there at the
 *      previous probe, or none at all: every write committed before then
 *      has had its invalidation applied, by its worker or the invalidator.
 * The lease is counted from the start of the probe that renewed it.
 *
 * Any process of the host that sees Redis refuse a write (a generation bump
 * of a write, a store, a generation create, an outbox apply) calls
 * dc_trust_refused before it answers: the lease is void at once on the
 * whole host, a probe in flight cannot renew it, and renewing takes a clean
 * outbox again (no pending row, or none from before the first probe after
 * the refusal). A host that only serves hits learns of another host's
 * refused invalidation through its own write probe or through the outbox:
 * it stops within (1 + DC_TRUST_LEASE_PROBES) intervals of the write's
 * commit, 1 s at the default 250 ms.
 *
 * While hits are stopped, reads answer from PostgreSQL (X-Cache: BYPASS)
 * and touch Redis not at all but for the probe, which runs eight times as
 * often then; hits resume by themselves once a probe passes.
 * When PostgreSQL does not answer the probe, the outbox part keeps its last
 * verdict: nothing can be acknowledged while the database is away.
 *
 * The state lives in a file mapped by every process of the host
 * (dc_shm_path "trust"); without it (dc_trust_open not called or failed)
 * each process keeps its own, which is as safe and slower to learn.
 */
#ifndef DC_TRUST_H
#define DC_TRUST_H

#include <stdint.h>

#include "dc_cache.h"
#include "dc_config.h"
#include "dc_db.h"

#define DC_TRUST_LEASE_PROBES 3
#define DC_TRUST_GAP_MIN_MS   10 /* while hits are stopped, a probe each interval / 8, at most this often */

/* Maps the host's state file. DC_OK, or DC_ERROR with err (the process keeps its own state then). */
int dc_trust_open(const char *path, dc_err_t *err) DC_WUR;

/*
 * Maps the host's state file for cfg (dc_shm_path "trust"); without it the
 * process keeps its own state, and logs why.
 */
void dc_trust_open_host(const dc_config_t *cfg);

/* Unmaps (tests) and starts a process-local state afresh. */
void dc_trust_close(void);

/* Whether a hit may be served now. */
int dc_trust_hits_ok(void);

/* Redis did not take a write (what: for the log line, once per stop). Call before answering. */
void dc_trust_refused(const char *what);

/*
 * With sentinels (REDIS_SENTINELS), the primary this host writes to: id
 * names the server (a hash of its run_id) that a process of the host has
 * just connected to, through the sentinels and checked by ROLE. A server
 * other than the host's until now voids the lease (a failover: hits stop
 * until a probe passes on the new primary, and until the outbox is applied)
 * and becomes the host's, so that every other process leaves the old one
 * before its next command (dc_trust_primary_is): during a failover the
 * demoted primary still takes writes until Sentinel converts it, and no
 * write of this host may be acknowledged there while another process of
 * the host stores on the new one.
 */
void dc_trust_primary_set(uint64_t id);

/* Whether id is the host's primary (or none is known yet). */
int dc_trust_primary_is(uint64_t id);

/*
 * Runs the probe when one is due on this host (interval_ms after the last
 * one began, interval_ms / 8 while hits are stopped) and no other process
 * has claimed it, with this process's connections. The milliseconds until
 * the next probe is due (for a wait).
 */
int dc_trust_tick(dc_cache_t *c, dc_db_t *db, int interval_ms);

typedef struct {
    int       hits_ok;
    int64_t   stopped_ms; /* how long hits have been stopped (0: serving) */
    int       backlog;    /* the last probe saw outbox rows left from before its previous one */
    long long refusals;   /* writes Redis did not take, since the state file was made */
    long long probes_failed;
} dc_trust_status_t;

void dc_trust_status(dc_trust_status_t *st);

#endif
