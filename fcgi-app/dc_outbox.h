/*
 * The outbox: cache_outbox rows that database triggers write in the
 * writers' transactions, read in batches by the invalidator and marked
 * processed once applied; and every organization id, for a resync.
 */
#ifndef DC_OUTBOX_H
#define DC_OUTBOX_H

#include "dc_buf.h"
#include "dc_db.h"
#include "dc_orgs.h"

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

/* Empties orgs and fills it with every organization id, each changed in every way (DC_CHANGE_OTHER). DC_OK or a failure. */
int dc_outbox_org_ids(dc_db_t *db, dc_orgs_t *orgs) DC_WUR;

/* Releases what ob holds; it can be used again. */
void dc_outbox_free(dc_outbox_t *ob);

#endif
