/*
 * Misses read from a PostgreSQL standby when DATABASE_READ_URL is set, and
 * never see the state from before an acknowledged write there
 * (read-your-writes with replicas).
 *
 * The argument. A write's worker, after the commit, reads the primary's
 * WAL insert position (dc_db_lsn: at or past the end of the commit record)
 * and raises the organization's LSN key to it (dc_cache_lsn_raise: never
 * backwards) before it moves the organization's generations, and both
 * before the write is acknowledged; the invalidator does the same for the
 * outbox rows and messages it applies (one position read after the rows
 * were read, so after their commits), and raises the global key when it
 * invalidates everything. A miss observes the generation first (the
 * lookup, the lease or dc_cache_generation) and reads the LSN keys after
 * it: a miss that saw the new generation sees at least the write's LSN,
 * and one that saw the old one stores nothing (its store is refused) and
 * began before the write was acknowledged. The miss then reads the
 * standby only if the standby has replayed that LSN (its replay position,
 * remembered per connection and asked again only when it is behind), else
 * the primary; a query's snapshot on a standby holds every transaction
 * replayed before it began.
 *
 * What is not known is never taken for "nothing to wait for": an LSN key
 * that is missing (evicted, never written, or written by another Redis
 * process: dc_cache.h) stands for the primary's current position, read
 * then and stored (max) for the next misses; no Redis, no standby: the
 * primary. Misses read the standby only while the host serves hits
 * (dc_trust): a write whose invalidation Redis did not take has raised no
 * LSN, and until the outbox applies it (with its LSN) every read goes to
 * the primary. A standby handle that reconnected during the query (a
 * multi-host DATABASE_READ_URL may land on another standby, further
 * behind) or that is not a standby any more (promoted, or prefer-standby
 * found none) is not used: the primary answers. A standby that fails or
 * answers anything but data (an error, a 404: the row may not be replayed)
 * hands the read to the primary, never a 5xx of its own.
 *
 * Without DATABASE_READ_URL nothing of this runs: one connection, and no
 * LSN read on a miss. Writes raise the LSN keys always, so a fleet where
 * some hosts read standbys and others do not stays right whichever host
 * wrote.
 */
#ifndef DC_REPLICA_H
#define DC_REPLICA_H

#include <stdint.h>

#include "dc_buf.h"
#include "dc_cache.h"
#include "dc_config.h"
#include "dc_db.h"
#include "dc_request.h"

typedef struct dc_replica_s dc_replica_t;

/*
 * The standby reads of cfg (DATABASE_READ_URL), preparing the read
 * statements; does not connect. NULL when it is unset (every read goes to
 * the primary) or on ENOMEM (*failed set).
 */
dc_replica_t *dc_replica_new(const dc_config_t *cfg, int *failed);

/* Closes and frees. NULL is fine. */
void dc_replica_free(dc_replica_t *r);

/*
 * The query of req (dc_query_run) from the standby of r when it has
 * replayed the LSNs of req's organization, else from primary. may_standby
 * 0 (the generation was not observed in Redis, or hits are stopped): the
 * primary. body is reset first. Results as dc_query_run's; a failure of
 * the standby is never one (the primary answers). Counts the read by
 * target and the fallbacks (dc_metrics). r NULL: the primary.
 */
int dc_replica_query(dc_replica_t *r, dc_cache_t *c, dc_db_t *primary, int may_standby,
                     const dc_config_t *cfg, const dc_request_t *req, dc_buf_t *body, dc_error_t *err) DC_WUR;

/*
 * The primary's WAL position now (dc_db_lsn on db, the primary's handle),
 * for dc_cache_lsn_raise after a commit. DC_OK; a failure (db down, or db
 * is a standby: logged) is DC_UNAVAILABLE or DC_ERROR, and then the
 * caller raises no LSN and must treat its invalidation as not applied.
 */
int dc_replica_primary_lsn(dc_db_t *db, uint64_t *lsn) DC_WUR;

#endif
