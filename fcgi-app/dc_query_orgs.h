/*
 * The organizations dashcachectl warm fills, read from PostgreSQL: the
 * hottest N (most readings in the last 24 hours: the ones whose devices
 * report, and whose dashboards are watched, the most; ties by id) or
 * all of them. Beside dc_query (the dashboard reads) because it is SQL of
 * its own; only dashcachectl prepares it.
 */
#ifndef DC_QUERY_ORGS_H
#define DC_QUERY_ORGS_H

#include "dc_core.h"
#include "dc_db.h"
#include "dc_orgs.h"

/* The statements, for dc_db_new (dashcachectl maps no metrics: their slots are only labels). */
const dc_db_set_t *dc_query_orgs_statements(void);

/*
 * Adds to out the top organizations (at most top; 0: every one, hottest
 * first). DC_OK, DC_UNAVAILABLE (no database) or DC_ERROR, with err
 * saying why.
 */
int dc_query_orgs(dc_db_t *db, long top, dc_orgs_t *out, dc_err_t *err) DC_WUR;

#endif
