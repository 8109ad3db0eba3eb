/*
 * The write side: one transaction per write endpoint (the run column of
 * dc_api.h) through the database functions of sql/, its answer, the
 * organizations it touched and the events it announces.
 */
#include "dc_query_write.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "dc_endpoint.h"
#include "dc_view.h"

enum { S_INGEST, S_ALERT_CREATE, S_ALERT_RESOLVE, S_DEVICE_STATUS, S_IDEM_CLAIM, S_IDEM_STORE, S_COUNT };

#define ISO_UTC(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* clang-format off */
static const dc_db_stmt_t statements[S_COUNT] = {
    [S_INGEST] = { "ingest",
        "SELECT event, org_id::text, unit_id::text, alert_id::text, " ISO_UTC("now()")
        "  FROM dc_ingest_readings($1::uuid[], $2::numeric[], $3::timestamptz[], $4::uuid[], $5::boolean, $6,"
        "                          make_interval(secs => $7::int), make_interval(days => $8::int))", 8 },
    [S_ALERT_CREATE] = { "alert_create",
        "SELECT dc_alert_create($1, $2, $3, $4, $5)::text, " ISO_UTC("now()"), 5 },
    [S_ALERT_RESOLVE] = { "alert_resolve",
        "SELECT status, unit_id::text, " ISO_UTC("resolved_at") " FROM dc_alert_resolve($1, $2, $3)", 3 },
    [S_DEVICE_STATUS] = { "device_status",
        "SELECT unit_id::text, " ISO_UTC("last_seen_at") ", " ISO_UTC("now()")
        "  FROM dc_device_status($1, $2, $3::boolean, $4)", 4 },
    [S_IDEM_CLAIM] = { "idempotency_claim",
        "SELECT state, status, body FROM dc_idempotency_claim($1, $2, $3,"
        " encode(sha256(convert_to($4, 'UTF8')), 'hex'), $5::int)", 5 },
    [S_IDEM_STORE] = { "idempotency_store",
        "UPDATE idempotency_keys SET status = $4::int, body = $5"
        " WHERE org_id = $1 AND subject = $2 AND key = $3", 5 },
};
/* clang-format on */

_Static_assert(S_COUNT <= DC_DB_SLOTS_OUTBOX - DC_DB_SLOTS_WRITE, "the write statements fit their slots");
static const dc_db_set_t set = { statements, S_COUNT, DC_DB_SLOTS_WRITE };

const dc_db_set_t *dc_query_write_statements(void)
{
    return &set;
}

void dc_write_result_reset(dc_write_result_t *r)
{
    r->status = 200;
    r->replayed = 0;
    dc_orgs_reset(&r->orgs);
    dc_strs_reset(&r->events);
}

void dc_write_result_free(dc_write_result_t *r)
{
    dc_orgs_free(&r->orgs);
    dc_strs_free(&r->events);
    dc_buf_free(&r->scratch);
}

/* org and what the write changed there (DC_CHANGE_BIT of dc_api.h), for dc_write to invalidate. */
static int add_org(dc_write_result_t *res, const char *org, unsigned changes)
{
    int rc = dc_orgs_add(&res->orgs, org, strlen(org), changes);
    return rc == DC_EINVAL ? DC_ERROR : rc;
}

static int add_event(dc_write_result_t *res, const dc_view_field_t *f, size_t n)
{
    dc_buf_reset(&res->scratch);
    if (dc_view_object(f, n, &res->scratch) != DC_OK)
        return DC_ENOMEM;
    return dc_strs_add(&res->events, res->scratch.data, res->scratch.len);
}

/* The org to invalidate with what changed there, the event to announce and the answer of one write. */
static int record_write(dc_write_result_t *res, const char *org, unsigned changes, const dc_view_field_t *ev,
                        size_t nev, const dc_view_field_t *answer, size_t nanswer, dc_buf_t *body)
{
    int rc = add_org(res, org, changes);
    if (rc == DC_OK)
        rc = add_event(res, ev, nev);
    if (rc == DC_OK)
        rc = dc_view_object(answer, nanswer, body);
    return rc;
}

/* A refused statement → the client's error. */
static int refused(PGresult *r, dc_error_t *err)
{
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);

    if (msg == NULL)
        msg = "the database refused the request";
    if (state != NULL && strcmp(state, "P0403") == 0) {
        dc_error_set(err, 403, "forbidden_organization", "%s", msg);
        err->challenge = DC_AUTH_CHALLENGE_SCOPE;
        if (strncmp(msg, "readings[", 9) == 0)
            err->index = atoi(msg + 9);
    } else if (state != NULL && strcmp(state, "P0002") == 0) {
        const char *code = strncmp(msg, "unit ", 5) == 0    ? "unit_not_found"
                           : strncmp(msg, "alert ", 6) == 0 ? "alert_not_found"
                                                            : "device_not_found";
        dc_error_set(err, 404, code, "%s", msg);
        if (strncmp(msg, "readings[", 9) == 0)
            err->index = atoi(msg + 9);
    } else {
        dc_error_set(err, 400, "invalid_value", "%s", msg);
        if (strncmp(msg, "readings[", 9) == 0)
            err->index = atoi(msg + 9);
    }
    PQclear(r);
    return DC_DECLINED;
}

/* Runs a write statement that answers exactly one row. refused() maps its errors. */
static int write_row(dc_db_t *db, const dc_db_stmt_t *stmt, const char *const *params, PGresult **r,
                     dc_error_t *err)
{
    int rc = dc_db_exec(db, stmt, params, r);

    if (rc == DC_EQUERY)
        return refused(*r, err);
    if (rc != DC_OK)
        return rc;
    if (PQntuples(*r) != 1) {
        PQclear(*r);
        return DC_ERROR;
    }
    return DC_OK;
}

int dc_query_write_ingest(dc_db_t *db, const dc_request_t *req, const dc_principal_t *who,
                          const dc_write_t *w, dc_buf_t *body, dc_write_result_t *res, dc_error_t *err)
{
    char        future[16], retention[16];
    const char *params[] = {
        w->devices.data, w->temps.data, w->times.data, NULL, who->all_orgs ? "true" : "false",
        who->sub,        NULL,          NULL
    };
    int64_t   units = 0, alerts = 0;
    PGresult *r;
    int       rc;

    (void)req;
    /* the caller's organizations: the function refuses the whole batch if a device is of another */
    dc_buf_reset(&res->scratch);
    rc = dc_buf_append(&res->scratch, "{", 1);
    for (size_t i = 0; i < who->norgs && rc == DC_OK; i++) {
        rc = dc_buf_append(&res->scratch, ",", i > 0);
        if (rc == DC_OK)
            rc = dc_buf_append(&res->scratch, who->orgs[i], DC_UUID_LEN);
    }
    if (rc == DC_OK)
        rc = dc_buf_append(&res->scratch, "}", 1);
    if (rc != DC_OK)
        return DC_ENOMEM;
    params[3] = res->scratch.data;
    if (w->limits.now > 0) { /* else the function's defaults */
        snprintf(future, sizeof(future), "%d", w->limits.max_future_s);
        snprintf(retention, sizeof(retention), "%d", w->limits.retention_s / 86400);
        params[6] = future;
        params[7] = retention;
    }
    rc = dc_db_exec(db, &statements[S_INGEST], params, &r);
    if (rc == DC_EQUERY)
        return refused(r, err);
    if (rc != DC_OK)
        return rc;
    for (int i = 0; i < PQntuples(r) && rc == DC_OK; i++) {
        const char     *type = PQgetvalue(r, i, 0), *org = PQgetvalue(r, i, 1);
        int             alert = strcmp(type, "alertCreated") == 0;
        dc_view_field_t f[] = {
            { "type", DC_VF_STR, type, 0 },
            { "orgId", DC_VF_STR, org, 0 },
            { "unitId", DC_VF_STR, PQgetvalue(r, i, 2), 0 },
            { "alertId", DC_VF_STR, PQgetvalue(r, i, 3), 0 },
            { "at", DC_VF_STR, PQgetvalue(r, i, 4), 0 },
        };
        if (alert) {
            alerts++;
        } else {
            units++;
            f[3] = f[4];
        }
        /* readings, each device's last_seen_at and its unit's latest state; alerts only where one opened */
        if (add_org(res, org,
                    alert ? DC_CHANGE_BIT(ALERTS)
                          : DC_CHANGE_BIT(READINGS) | DC_CHANGE_BIT(UNIT_LATEST) |
                                DC_CHANGE_BIT(DEVICE_SEEN)) != DC_OK ||
            add_event(res, f, alert ? 5 : 4) != DC_OK)
            rc = DC_ENOMEM;
    }
    PQclear(r);
    if (rc == DC_OK) {
        dc_view_field_t a[] = {
            { "accepted", DC_VF_INT, NULL, (long long)w->n },
            { "units", DC_VF_INT, NULL, units },
            { "alertsOpened", DC_VF_INT, NULL, alerts },
        };
        rc = dc_view_object(a, DC_ARRAY_LEN(a), body);
    }
    return rc;
}

int dc_query_write_alert_create(dc_db_t *db, const dc_request_t *req, const dc_principal_t *who,
                                const dc_write_t *w, dc_buf_t *body, dc_write_result_t *res, dc_error_t *err)
{
    const char *params[] = { req->org_id, w->alert.unit_id, w->alert.kind, w->alert.message, who->sub };
    PGresult   *r;
    int         rc = write_row(db, &statements[S_ALERT_CREATE], params, &r, err);

    if (rc != DC_OK)
        return rc;
    {
        dc_view_field_t f[] = {
            { "type", DC_VF_STR, "alertCreated", 0 },     { "orgId", DC_VF_STR, req->org_id, 0 },
            { "unitId", DC_VF_STR, w->alert.unit_id, 0 }, { "alertId", DC_VF_STR, PQgetvalue(r, 0, 0), 0 },
            { "at", DC_VF_STR, PQgetvalue(r, 0, 1), 0 },
        };
        dc_view_field_t a[] = {
            { "id", DC_VF_STR, PQgetvalue(r, 0, 0), 0 },   { "orgId", DC_VF_STR, req->org_id, 0 },
            { "unitId", DC_VF_STR, w->alert.unit_id, 0 },  { "kind", DC_VF_STR, w->alert.kind, 0 },
            { "message", DC_VF_STR, w->alert.message, 0 }, { "createdAt", DC_VF_STR, PQgetvalue(r, 0, 1), 0 },
        };
        rc = record_write(res, req->org_id, DC_CHANGE_BIT(ALERTS), f, DC_ARRAY_LEN(f), a, DC_ARRAY_LEN(a),
                          body);
    }
    res->status = 201;
    PQclear(r);
    return rc;
}

int dc_query_write_alert_resolve(dc_db_t *db, const dc_request_t *req, const dc_principal_t *who,
                                 const dc_write_t *w, dc_buf_t *body, dc_write_result_t *res, dc_error_t *err)
{
    const char *params[] = { req->org_id, req->item_id, who->sub };
    PGresult   *r;
    int         rc = write_row(db, &statements[S_ALERT_RESOLVE], params, &r, err);

    (void)w;
    if (rc != DC_OK)
        return rc;
    if (strcmp(PQgetvalue(r, 0, 0), "already_resolved") == 0) {
        dc_error_set(err, 409, "alert_already_resolved",
                     "alert %s was already resolved at %s; nothing changed", req->item_id,
                     PQgetvalue(r, 0, 2));
        PQclear(r);
        return DC_DECLINED;
    }
    {
        dc_view_field_t f[] = {
            { "type", DC_VF_STR, "alertResolved", 0 },       { "orgId", DC_VF_STR, req->org_id, 0 },
            { "unitId", DC_VF_STR, PQgetvalue(r, 0, 1), 0 }, { "alertId", DC_VF_STR, req->item_id, 0 },
            { "at", DC_VF_STR, PQgetvalue(r, 0, 2), 0 },
        };
        dc_view_field_t a[] = {
            { "id", DC_VF_STR, req->item_id, 0 },
            { "orgId", DC_VF_STR, req->org_id, 0 },
            { "status", DC_VF_STR, "resolved", 0 },
            { "resolvedAt", DC_VF_STR, PQgetvalue(r, 0, 2), 0 },
        };
        rc = record_write(res, req->org_id, DC_CHANGE_BIT(ALERTS), f, DC_ARRAY_LEN(f), a, DC_ARRAY_LEN(a),
                          body);
    }
    PQclear(r);
    return rc;
}

int dc_query_write_device_status(dc_db_t *db, const dc_request_t *req, const dc_principal_t *who,
                                 const dc_write_t *w, dc_buf_t *body, dc_write_result_t *res, dc_error_t *err)
{
    const char *params[] = { req->org_id, req->item_id, w->online ? "true" : "false", who->sub };
    PGresult   *r;
    int         rc = write_row(db, &statements[S_DEVICE_STATUS], params, &r, err);

    if (rc != DC_OK)
        return rc;
    {
        const char     *seen = PQgetisnull(r, 0, 1) ? NULL : PQgetvalue(r, 0, 1);
        dc_view_field_t f[] = {
            { "type", DC_VF_STR, "deviceStatusChange", 0 },  { "orgId", DC_VF_STR, req->org_id, 0 },
            { "unitId", DC_VF_STR, PQgetvalue(r, 0, 0), 0 }, { "deviceId", DC_VF_STR, req->item_id, 0 },
            { "online", DC_VF_BOOL, NULL, w->online },       { "at", DC_VF_STR, PQgetvalue(r, 0, 2), 0 },
        };
        dc_view_field_t a[] = {
            { "deviceId", DC_VF_STR, req->item_id, 0 },
            { "orgId", DC_VF_STR, req->org_id, 0 },
            { "online", DC_VF_BOOL, NULL, w->online },
            { "lastSeenAt", DC_VF_STR, seen, 0 },
        };
        rc = record_write(res, req->org_id, DC_CHANGE_BIT(DEVICE_SEEN), f, DC_ARRAY_LEN(f), a,
                          DC_ARRAY_LEN(a), body);
    }
    PQclear(r);
    return rc;
}

int dc_query_write(dc_db_t *db, const dc_request_t *req, const dc_principal_t *who, const dc_write_t *w,
                   dc_buf_t *body, dc_write_result_t *res, dc_error_t *err)
{
    const dc_endpoint_t *ep = dc_endpoint_write(req->wtype);

    dc_write_result_reset(res);
    return ep != NULL ? ep->write(db, req, who, w, body, res, err) : DC_ERROR;
}

/* The scope of keys sent to ingest, which has no organization in its path. */
#define INGEST_SCOPE "00000000-0000-0000-0000-000000000000"

int dc_query_write_once(dc_db_t *db, const dc_request_t *req, const dc_principal_t *who,
                        const dc_idem_t *idem, const dc_write_t *w, dc_buf_t *body, dc_write_result_t *res,
                        dc_error_t *err)
{
    const char *scope = req->org_id[0] != '\0' ? req->org_id : INGEST_SCOPE;
    char        ttl[16], status[8];
    const char *claim[] = { scope, idem->subject, idem->key, idem->request, ttl };
    const char *store[] = { scope, idem->subject, idem->key, status, NULL };
    PGresult   *r = NULL;
    const char *state;
    int         rc;

    dc_write_result_reset(res);
    snprintf(ttl, sizeof(ttl), "%d", idem->ttl_s);
    if ((rc = dc_db_begin(db)) != DC_OK)
        return rc;
    rc = dc_db_exec(db, &statements[S_IDEM_CLAIM], claim, &r);
    if (rc == DC_EQUERY) {
        rc = refused(r, err);
        goto rollback;
    }
    if (rc != DC_OK)
        goto rollback;
    if (PQntuples(r) != 1) {
        PQclear(r);
        rc = DC_ERROR;
        goto rollback;
    }
    state = PQgetvalue(r, 0, 0);
    if (strcmp(state, "mismatch") == 0) {
        dc_error_set(err, 422, "idempotency_key_reused",
                     "Idempotency-Key %.64s was used for another request (another body, endpoint or id); "
                     "send a new key",
                     idem->key);
        PQclear(r);
        rc = DC_DECLINED;
        goto rollback;
    }
    if (strcmp(state, "replay") == 0) {
        res->replayed = 1;
        res->status = atoi(PQgetvalue(r, 0, 1));
        rc = dc_buf_append(body, PQgetvalue(r, 0, 2), (size_t)PQgetlength(r, 0, 2));
        PQclear(r);
        if (rc != DC_OK)
            goto rollback;
        return dc_db_commit(db); /* the claim may have purged expired keys */
    }
    PQclear(r);

    rc = dc_query_write(db, req, who, w, body, res, err);
    if (rc != DC_OK)
        goto rollback;
    snprintf(status, sizeof(status), "%d", res->status);
    if (dc_buf_append(body, "", 0) != DC_OK) { /* NUL-terminated for libpq */
        rc = DC_ENOMEM;
        goto rollback;
    }
    store[4] = body->data;
    rc = dc_db_exec(db, &statements[S_IDEM_STORE], store, &r);
    PQclear(r);
    if (rc != DC_OK) {
        rc = rc == DC_EQUERY ? DC_ERROR : rc;
        goto rollback;
    }
    /* the outcome of a failed COMMIT is unknown: the client retries with the same key */
    return dc_db_commit(db);
rollback:
    dc_db_rollback(db);
    return rc;
}
