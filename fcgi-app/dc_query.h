/*
 * The SQL of each dashboard query type and its rows → view structs.
 * Parameters only (prepared statements); ids arrive validated.
 */
#ifndef DC_QUERY_H
#define DC_QUERY_H

#include "dc_body.h"
#include "dc_buf.h"
#include "dc_db.h"
#include "dc_request.h"

/* The statement table to hand to dc_db_new. */
const dc_db_stmt_t *dc_query_statements(size_t *n);

/*
 * Runs the query of req and appends its JSON body to body.
 * DC_OK; DC_DECLINED with err = 404 (unknown organization or unit);
 * DC_UNAVAILABLE (database down or busy: 503); DC_ERROR (500);
 * DC_ENOMEM.
 */
int dc_query_run(dc_db_t *db, const dc_config_t *cfg, const dc_request_t *req, dc_buf_t *body,
                 dc_error_t *err) DC_WUR;

/* What a committed write must invalidate and announce. */
typedef struct {
    int      status;       /* HTTP status of the answer: 200 or 201 */
    dc_buf_t orgs;         /* distinct organization ids, DC_UUID_LEN bytes each, back to back */
    size_t   norgs;
    dc_buf_t events;       /* event JSON objects for dashboard:events, each NUL-terminated */
    size_t   nevents;
} dc_write_result_t;

void dc_write_result_reset(dc_write_result_t *r);
void dc_write_result_free(dc_write_result_t *r);

/*
 * Runs the write of req (one transaction) with the parsed body w, appends
 * the answer's JSON to body and fills res. DC_OK; DC_DECLINED with err (404
 * an id of no such or another organization, 409 already resolved, 400 a
 * value the database refused); DC_UNAVAILABLE (503); DC_ERROR; DC_ENOMEM.
 */
int dc_query_write(dc_db_t *db, const dc_request_t *req, const dc_write_t *w, dc_buf_t *body,
                   dc_write_result_t *res, dc_error_t *err) DC_WUR;

#endif
