/*
 * The SQL of each dashboard query type and its rows → view structs.
 * Parameters only (prepared statements); ids arrive validated.
 */
#ifndef DC_QUERY_H
#define DC_QUERY_H

#include "dc_body.h"
#include "dc_buf.h"
#include "dc_db.h"
#include "dc_orgs.h"
#include "dc_request.h"
#include "dc_strs.h"
#include "dc_view.h"

/* The statement table to hand to dc_db_new. */
const dc_db_stmt_t *dc_query_statements(size_t *n);

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
 * The fetch of one query type (the fetch column of dc_api.h): reads what
 * its view needs into f. DC_OK; DC_UNAVAILABLE; DC_ERROR; DC_ENOMEM.
 */
typedef int (*dc_fetch_fn)(dc_db_t *db, const dc_config_t *cfg, const dc_request_t *req, dc_fetched_t *f);

int dc_query_fetch_stats(dc_db_t *db, const dc_config_t *cfg, const dc_request_t *req,
                         dc_fetched_t *f) DC_WUR;
int dc_query_fetch_units(dc_db_t *db, const dc_config_t *cfg, const dc_request_t *req,
                         dc_fetched_t *f) DC_WUR;
int dc_query_fetch_alerts(dc_db_t *db, const dc_config_t *cfg, const dc_request_t *req,
                          dc_fetched_t *f) DC_WUR;
int dc_query_fetch_trends(dc_db_t *db, const dc_config_t *cfg, const dc_request_t *req,
                          dc_fetched_t *f) DC_WUR;
int dc_query_fetch_devices(dc_db_t *db, const dc_config_t *cfg, const dc_request_t *req,
                           dc_fetched_t *f) DC_WUR;
int dc_query_fetch_compliance(dc_db_t *db, const dc_config_t *cfg, const dc_request_t *req,
                              dc_fetched_t *f) DC_WUR;
int dc_query_fetch_audit(dc_db_t *db, const dc_config_t *cfg, const dc_request_t *req,
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

/* What a committed write must invalidate and announce. */
typedef struct {
    int       status;  /* HTTP status of the answer: 200 or 201 */
    dc_orgs_t orgs;    /* the organizations it wrote */
    dc_strs_t events;  /* event JSON objects for dashboard:events, in order */
    dc_buf_t  scratch; /* where an event is rendered before it is added */
} dc_write_result_t;

void dc_write_result_reset(dc_write_result_t *r);
void dc_write_result_free(dc_write_result_t *r);

/*
 * One write endpoint (the run column of dc_api.h), one transaction: appends
 * the answer to body and fills res, which the caller has reset. Results as
 * for dc_query_write.
 */
typedef int (*dc_write_fn)(dc_db_t *db, const dc_request_t *req, const dc_write_t *w, dc_buf_t *body,
                           dc_write_result_t *res, dc_error_t *err);

int dc_query_write_ingest(dc_db_t *db, const dc_request_t *req, const dc_write_t *w, dc_buf_t *body,
                          dc_write_result_t *res, dc_error_t *err) DC_WUR;
int dc_query_write_alert_create(dc_db_t *db, const dc_request_t *req, const dc_write_t *w, dc_buf_t *body,
                                dc_write_result_t *res, dc_error_t *err) DC_WUR;
int dc_query_write_alert_resolve(dc_db_t *db, const dc_request_t *req, const dc_write_t *w, dc_buf_t *body,
                                 dc_write_result_t *res, dc_error_t *err) DC_WUR;
int dc_query_write_device_status(dc_db_t *db, const dc_request_t *req, const dc_write_t *w, dc_buf_t *body,
                                 dc_write_result_t *res, dc_error_t *err) DC_WUR;

/*
 * Runs the write of req (one transaction) with the parsed body w, appends
 * the answer's JSON to body and fills res. DC_OK; DC_DECLINED with err (404
 * an id of no such or another organization, 409 already resolved, 400 a
 * value the database refused); DC_UNAVAILABLE (503); DC_ERROR; DC_ENOMEM.
 */
int dc_query_write(dc_db_t *db, const dc_request_t *req, const dc_write_t *w, dc_buf_t *body,
                   dc_write_result_t *res, dc_error_t *err) DC_WUR;

/* A batch of pending outbox rows. */
typedef struct {
    dc_buf_t  ids;  /* PostgreSQL array literal of the row ids */
    size_t    n;    /* rows */
    dc_orgs_t orgs; /* the organizations the rows name */
    int       all;  /* a row stands for every organization (TRUNCATE) */
} dc_outbox_t;

/*
 * Empties ob and reads up to max pending rows into it, oldest first. DC_OK
 * (n may be 0); DC_ERROR for a row whose organization is not a UUID; or a
 * failure.
 */
int dc_query_outbox_pending(dc_db_t *db, dc_outbox_t *ob, size_t max) DC_WUR;

typedef void (*dc_lag_fn)(void *arg, double lag_ms);

/*
 * Marks the rows of ob processed, after they were applied, and calls fn
 * with each one's lag (write to applied, ms). DC_OK or a failure.
 */
int dc_query_outbox_done(dc_db_t *db, const dc_outbox_t *ob, dc_lag_fn fn, void *arg) DC_WUR;

/* Deletes rows processed more than older_than_s ago. DC_OK or a failure. */
int dc_query_outbox_purge(dc_db_t *db, int older_than_s, long long *purged) DC_WUR;

/* Empties orgs and fills it with every organization id. DC_OK or a failure. */
int dc_query_org_ids(dc_db_t *db, dc_orgs_t *orgs) DC_WUR;

/* Releases what ob holds; it can be used again. */
void dc_outbox_free(dc_outbox_t *ob);

#endif
