/*
 * The read side: the SQL of each dashboard query type and the fetch that
 * turns its rows into the input of its view (the fetch column of
 * dc_api.h). Parameters only (prepared statements); ids arrive validated.
 * With dc_query_write, dc_outbox and dc_db, the only code that includes
 * libpq.
 */
#ifndef DC_QUERY_H
#define DC_QUERY_H

#include "dc_buf.h"
#include "dc_db.h"
#include "dc_request.h"
#include "dc_view.h"

/* The read statements, for dc_db_new (workers). Static. */
const dc_db_set_t *dc_query_statements(void);

/*
 * What a fetch read: the view's input, and the result and rows it points
 * into. Zero it before the fetch; dc_query_fetched_free releases it.
 */
typedef struct {
    dc_view_data_t    data;
    struct pg_result *res;
    void             *rows;
} dc_fetched_t;

/*
 * The statements of one read, sent together in one round trip
 * (dc_db_exec_all): dc_query_run puts the existence checks of the
 * organization and unit first, and the fetch adds those its view needs.
 * Lives in dc_query_run; the fetches alone see inside.
 */
typedef struct dc_query_batch_s dc_query_batch_t;

/*
 * The fetch of one query type (the fetch column of dc_api.h): declares the
 * statements its view needs in b, runs them with the existence checks in
 * one round trip, and reads their results into f. No fetch needs one
 * statement's result to form another; one that did would run a second
 * round trip after the first. DC_OK; DC_DECLINED (no such organization or
 * unit: the 404 is set on the error dc_query_run was given);
 * DC_UNAVAILABLE; DC_EQUERY and DC_ERROR (500); DC_ENOMEM.
 */
typedef int (*dc_fetch_fn)(dc_query_batch_t *b, const dc_config_t *cfg, const dc_request_t *req,
                           dc_fetched_t *f);

int dc_query_fetch_stats(dc_query_batch_t *b, const dc_config_t *cfg, const dc_request_t *req,
                         dc_fetched_t *f) DC_WUR;
int dc_query_fetch_units(dc_query_batch_t *b, const dc_config_t *cfg, const dc_request_t *req,
                         dc_fetched_t *f) DC_WUR;
int dc_query_fetch_alerts(dc_query_batch_t *b, const dc_config_t *cfg, const dc_request_t *req,
                          dc_fetched_t *f) DC_WUR;
int dc_query_fetch_trends(dc_query_batch_t *b, const dc_config_t *cfg, const dc_request_t *req,
                          dc_fetched_t *f) DC_WUR;
int dc_query_fetch_devices(dc_query_batch_t *b, const dc_config_t *cfg, const dc_request_t *req,
                           dc_fetched_t *f) DC_WUR;
int dc_query_fetch_compliance(dc_query_batch_t *b, const dc_config_t *cfg, const dc_request_t *req,
                              dc_fetched_t *f) DC_WUR;
int dc_query_fetch_audit(dc_query_batch_t *b, const dc_config_t *cfg, const dc_request_t *req,
                         dc_fetched_t *f) DC_WUR;

/* Releases what a fetch kept and zeroes f. */
void dc_query_fetched_free(dc_fetched_t *f);

/*
 * Runs the query of req (the fetch and view of its row in dc_api.h) and appends its JSON body to body.
 * DC_OK; DC_DECLINED with err = 404 (unknown organization or unit);
 * DC_UNAVAILABLE (database down or busy: 503); DC_ERROR (500);
 * DC_ENOMEM.
 */
int dc_query_run(dc_db_t *db, const dc_config_t *cfg, const dc_request_t *req, dc_buf_t *body,
                 dc_error_t *err) DC_WUR;

#endif
