/*
 * The write side: each write endpoint (the run column of dc_api.h) is one
 * transaction through a database function of sql/; it appends its answer
 * and records what the caller must invalidate and announce after the
 * commit. Parameters only (prepared statements); ids arrive validated.
 */
#ifndef DC_QUERY_WRITE_H
#define DC_QUERY_WRITE_H

#include "dc_auth.h"
#include "dc_body.h"
#include "dc_buf.h"
#include "dc_db.h"
#include "dc_orgs.h"
#include "dc_request.h"
#include "dc_strs.h"

/* The write statements, for dc_db_new (workers). Static. */
const dc_db_set_t *dc_query_write_statements(void);

/* What a committed write must invalidate and announce. */
typedef struct {
    int       status;   /* HTTP status of the answer: 200 or 201 */
    int       replayed; /* the stored answer of an earlier request: nothing to invalidate or announce */
    dc_orgs_t orgs;     /* the organizations it wrote, each with what changed there (DC_CHANGE_BIT) */
    dc_strs_t events;   /* event JSON objects for dashboard:events, in order */
    dc_buf_t  scratch;  /* where an event is rendered before it is added */
} dc_write_result_t;

void dc_write_result_reset(dc_write_result_t *r);
void dc_write_result_free(dc_write_result_t *r);

/*
 * One write endpoint (the run column of dc_api.h), one transaction on
 * behalf of who (its sub is the audit actor): appends the answer to body
 * and fills res, which the caller has reset. Results as for dc_query_write.
 */
typedef int (*dc_write_fn)(dc_db_t *db, const dc_request_t *req, const dc_principal_t *who,
                           const dc_write_t *w, dc_buf_t *body, dc_write_result_t *res, dc_error_t *err);

int dc_query_write_ingest(dc_db_t *db, const dc_request_t *req, const dc_principal_t *who,
                          const dc_write_t *w, dc_buf_t *body, dc_write_result_t *res,
                          dc_error_t *err) DC_WUR;
int dc_query_write_alert_create(dc_db_t *db, const dc_request_t *req, const dc_principal_t *who,
                                const dc_write_t *w, dc_buf_t *body, dc_write_result_t *res,
                                dc_error_t *err) DC_WUR;
int dc_query_write_alert_resolve(dc_db_t *db, const dc_request_t *req, const dc_principal_t *who,
                                 const dc_write_t *w, dc_buf_t *body, dc_write_result_t *res,
                                 dc_error_t *err) DC_WUR;
int dc_query_write_device_status(dc_db_t *db, const dc_request_t *req, const dc_principal_t *who,
                                 const dc_write_t *w, dc_buf_t *body, dc_write_result_t *res,
                                 dc_error_t *err) DC_WUR;

/*
 * Runs the write of req (one transaction) for the authorized caller who
 * with the parsed body w, appends the answer's JSON to body and fills res.
 * DC_OK; DC_DECLINED with err (404 an id of no such or another
 * organization, 403 an ingested device of an organization who does not
 * cover, 409 already resolved, 400 a value the database refused);
 * DC_UNAVAILABLE (503); DC_ERROR; DC_ENOMEM.
 */
int dc_query_write(dc_db_t *db, const dc_request_t *req, const dc_principal_t *who, const dc_write_t *w,
                   dc_buf_t *body, dc_write_result_t *res, dc_error_t *err) DC_WUR;

/*
 * A write sent with an Idempotency-Key. Keys are scoped per organization of
 * the path (ingest, which has none, shares one scope) and per subject.
 */
typedef struct {
    const char *key;     /* validated (dc_write) */
    const char *subject; /* the caller: its token's sub (or nginx's trusted one) */
    const char *request; /* method, endpoint, ids and body (dc_write): PostgreSQL keeps its sha256 */
    int         ttl_s;   /* IDEMPOTENCY_KEY_TTL_SECONDS */
} dc_idem_t;

/*
 * Runs the write of req like dc_query_write, in one transaction with the
 * record of its answer under idem's key, or replays that answer: res->replayed
 * set, res->status and body the first answer's. Only answers of applied
 * writes are kept (an error changed nothing; a retry runs again). Another
 * request with the same key waits for the first one's transaction (its
 * statement timeout at most) and then replays it. Results as for
 * dc_query_write, and DC_DECLINED with err 422 when the key was used for
 * another request (another body, endpoint or id).
 */
int dc_query_write_once(dc_db_t *db, const dc_request_t *req, const dc_principal_t *who,
                        const dc_idem_t *idem, const dc_write_t *w, dc_buf_t *body, dc_write_result_t *res,
                        dc_error_t *err) DC_WUR;

#endif
