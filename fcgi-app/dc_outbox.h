/*
 * The outbox: cache_outbox rows that database triggers write in the
 * writers' transactions, read in batches by the invalidator and marked
 * processed once applied; and its watermark, for dc_trust.
 */
#ifndef DC_OUTBOX_H
#define DC_OUTBOX_H

#include "dc_buf.h"
#include "dc_db.h"
#include "dc_orgs.h"
#include "dc_strs.h"

/* The outbox and organization statements, for dc_db_new (invalidator). Static. */
const dc_db_set_t *dc_outbox_statements(void);

/* A batch of pending outbox rows. */
typedef struct {
    dc_buf_t  ids;  /* PostgreSQL array literal of the row ids */
    size_t    n;    /* rows */
    dc_orgs_t orgs; /* the organizations the rows name, each with the changes (kinds) of its rows */
    int       all;  /* a row stands for every organization (TRUNCATE) */
} dc_outbox_t;

/*
 * Empties ob and reads up to max pending rows into it, oldest first. DC_OK
 * (n may be 0); DC_ERROR for a row whose organization is not a UUID; or a
 * failure.
 */
int dc_outbox_pending(dc_db_t *db, dc_outbox_t *ob, size_t max) DC_WUR;

typedef void (*dc_lag_fn)(void *arg, double lag_ms);

/*
 * Marks the rows of ob processed, after they were applied, and calls fn
 * with each one's lag (write to applied, ms). DC_OK or a failure.
 */
int dc_outbox_done(dc_db_t *db, const dc_outbox_t *ob, dc_lag_fn fn, void *arg) DC_WUR;

/* Deletes rows processed more than older_than_s ago. DC_OK or a failure. */
int dc_outbox_purge(dc_db_t *db, int older_than_s, long long *purged) DC_WUR;

/*
 * The outbox's highest row id into *max_id (0: empty) and its lowest
 * pending one into *pending (0: none), waiting at most timeout_ms. DC_OK or
 * a failure.
 */
int dc_outbox_watermark(dc_db_t *db, int timeout_ms, long long *max_id, long long *pending) DC_WUR;

/*
 * Keeps the events from index from on of a write (each a JSON object) whose
 * invalidation Redis did not take, or that could not be published, for the
 * invalidator to publish once the outbox is applied. DC_OK or a failure
 * (the events are lost then: logged by the caller).
 */
int dc_outbox_defer_events(dc_db_t *db, const dc_strs_t *events, size_t from) DC_WUR;

typedef int (*dc_publish_fn)(void *arg, const char *msg, size_t len);

/*
 * Publishes, through fn, up to max kept events, oldest first, when no
 * outbox row is pending (every kept event's invalidation is applied then),
 * and deletes those fn took (DC_OK); fn failing stops there. *published
 * counts them. DC_OK (nothing ready is fine) or a failure: an event
 * published and not yet deleted is published again later (at least once).
 */
int dc_outbox_publish_events(dc_db_t *db, size_t max, dc_publish_fn fn, void *arg, size_t *published) DC_WUR;

/* Releases what ob holds; it can be used again. */
void dc_outbox_free(dc_outbox_t *ob);

#endif
