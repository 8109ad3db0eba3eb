/*
 * The SQL of each dashboard query type and its rows → view structs.
 * Parameters only (prepared statements); ids arrive validated.
 */
#ifndef DC_QUERY_H
#define DC_QUERY_H

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

#endif
