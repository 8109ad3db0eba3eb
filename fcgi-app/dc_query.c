/* Dashboard aggregations: SQL, parameters and the mapping of rows to views. */
#include "dc_query.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <libpq-fe.h>

#include "dc_endpoint.h"
#include "dc_view.h"

enum {
    S_ORG_EXISTS,
    S_UNIT_EXISTS,
    S_UNITS_STATUS,
    S_ALERTS_ORG,
    S_ALERTS_UNIT,
    S_TRENDS,
    S_DEVICES,
    S_COMPLIANCE,
    S_AUDIT,
    S_INGEST,
    S_ALERT_CREATE,
    S_ALERT_RESOLVE,
    S_DEVICE_STATUS,
    S_OUTBOX_PENDING,
    S_OUTBOX_DONE,
    S_OUTBOX_PURGE,
    S_ORG_IDS,
    S_COUNT
};

#define ISO_UTC(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
#define ACTOR        "api"

#define COMPLIANCE_DAYS 30

/* The SQL is laid out by hand. */
/* clang-format off */
static const dc_db_stmt_t statements[S_COUNT] = {
    [S_ORG_EXISTS] = { "org_exists", "SELECT 1 FROM organizations WHERE id = $1", 1 },
    [S_UNIT_EXISTS] = { "unit_exists", "SELECT 1 FROM units WHERE id = $1 AND org_id = $2", 2 },
    /* each unit's latest reading against its thresholds */
    [S_UNITS_STATUS] = { "units_status",
        "SELECT count(*) FILTER (WHERE r.temperature BETWEEN u.min_temp AND u.max_temp),"
        "       count(*) FILTER (WHERE r.temperature > u.max_temp),"
        "       count(*) FILTER (WHERE r.temperature < u.min_temp),"
        "       count(*) FILTER (WHERE r.temperature IS NULL),"
        "       count(*)"
        "  FROM units u"
        "  LEFT JOIN LATERAL (SELECT temperature FROM readings"
        "                      WHERE unit_id = u.id ORDER BY recorded_at DESC LIMIT 1) r ON true"
        " WHERE u.org_id = $1", 1 },
    [S_ALERTS_ORG] = { "alerts_org",
        "SELECT count(*) FROM alerts WHERE org_id = $1 AND resolved_at IS NULL", 1 },
    [S_ALERTS_UNIT] = { "alerts_unit",
        "SELECT count(*) FROM alerts WHERE org_id = $1 AND unit_id = $2 AND resolved_at IS NULL", 2 },
    /* hourly buckets; an hour that left the range at any reading is in alarm */
    [S_TRENDS] = { "trends",
        "SELECT to_char(date_trunc('hour', r.recorded_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:00:00\"Z\"'),"
        "       round(avg(r.temperature), 2)::text,"
        "       CASE WHEN max(r.temperature) > u.max_temp THEN 'too_hot'"
        "            WHEN min(r.temperature) < u.min_temp THEN 'too_cold'"
        "            ELSE 'normal' END"
        "  FROM units u JOIN readings r ON r.unit_id = u.id"
        " WHERE u.id = $1 AND u.org_id = $2"
        "   AND r.recorded_at > now() - make_interval(hours => $3::int)"
        " GROUP BY date_trunc('hour', r.recorded_at), u.min_temp, u.max_temp"
        " ORDER BY date_trunc('hour', r.recorded_at)", 3 },
    [S_DEVICES] = { "devices_online",
        "SELECT count(*) FILTER (WHERE last_seen_at > now() - make_interval(secs => $2::int)),"
        "       count(*) FILTER (WHERE last_seen_at IS NULL OR last_seen_at <= now() - make_interval(secs => $2::int))"
        "  FROM devices WHERE org_id = $1", 2 },
    [S_COMPLIANCE] = { "compliance",
        "SELECT count(*) FILTER (WHERE r.temperature BETWEEN u.min_temp AND u.max_temp), count(*),"
        "       CASE WHEN count(*) > 0 THEN round(count(*) FILTER (WHERE r.temperature BETWEEN u.min_temp"
        "            AND u.max_temp)::numeric / count(*), 4)::text END"
        "  FROM readings r JOIN units u ON u.id = r.unit_id"
        " WHERE r.org_id = $1 AND r.recorded_at > now() - make_interval(days => $2::int)", 2 },
    [S_AUDIT] = { "audit",
        "SELECT id::text, actor, action, details::text,"
        "       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
        "  FROM audit_log WHERE org_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2", 2 },
    [S_INGEST] = { "ingest",
        "SELECT event, org_id::text, unit_id::text, alert_id::text, " ISO_UTC("now()")
        "  FROM dc_ingest_readings($1::uuid[], $2::numeric[], $3::timestamptz[])", 3 },
    [S_ALERT_CREATE] = { "alert_create",
        "SELECT dc_alert_create($1, $2, $3, $4, $5)::text, " ISO_UTC("now()"), 5 },
    [S_ALERT_RESOLVE] = { "alert_resolve",
        "SELECT status, unit_id::text, " ISO_UTC("resolved_at") " FROM dc_alert_resolve($1, $2, $3)", 3 },
    [S_DEVICE_STATUS] = { "device_status",
        "SELECT unit_id::text, " ISO_UTC("last_seen_at") ", " ISO_UTC("now()")
        "  FROM dc_device_status($1, $2, $3::boolean, $4)", 4 },
    [S_OUTBOX_PENDING] = { "outbox_pending",
        "SELECT id, org_id::text FROM cache_outbox WHERE processed_at IS NULL ORDER BY id LIMIT $1::int", 1 },
    /* the lag of each row: from the write (trigger time) to applied */
    [S_OUTBOX_DONE] = { "outbox_done",
        "UPDATE cache_outbox SET processed_at = clock_timestamp()"
        " WHERE id = ANY($1::bigint[]) AND processed_at IS NULL"
        " RETURNING (extract(epoch FROM processed_at - created_at) * 1000)::float8", 1 },
    [S_OUTBOX_PURGE] = { "outbox_purge",
        "WITH d AS (DELETE FROM cache_outbox WHERE processed_at < now() - make_interval(secs => $1::int)"
        " RETURNING 1) SELECT count(*) FROM d", 1 },
    [S_ORG_IDS] = { "org_ids", "SELECT id::text FROM organizations ORDER BY id", 0 },
};
/* clang-format on */

const dc_db_stmt_t *dc_query_statements(size_t *n)
{
    *n = S_COUNT;
    return statements;
}

static int64_t int_at(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* Runs a statement that returns exactly one row. */
static int one_row(dc_db_t *db, int stmt, const char *const *params, PGresult **r)
{
    int rc = dc_db_exec(db, stmt, params, r);
    if (rc != DC_OK)
        return rc;
    if (PQntuples(*r) != 1) {
        PQclear(*r);
        *r = NULL;
        return DC_DECLINED;
    }
    return DC_OK;
}

static int units_status(dc_db_t *db, const char *org, dc_units_status_t *v)
{
    const char *params[] = { org };
    PGresult   *r;
    int         rc = one_row(db, S_UNITS_STATUS, params, &r);

    if (rc != DC_OK)
        return rc == DC_DECLINED ? DC_ERROR : rc;
    v->normal = int_at(r, 0, 0);
    v->too_hot = int_at(r, 0, 1);
    v->too_cold = int_at(r, 0, 2);
    v->no_data = int_at(r, 0, 3);
    v->total = int_at(r, 0, 4);
    PQclear(r);
    return DC_OK;
}

static int alert_count(dc_db_t *db, const char *org, const char *unit, dc_alert_count_t *v)
{
    const char *params[] = { org, unit };
    PGresult   *r;
    int         rc = one_row(db, unit[0] ? S_ALERTS_UNIT : S_ALERTS_ORG, params, &r);

    if (rc != DC_OK)
        return rc == DC_DECLINED ? DC_ERROR : rc;
    v->unresolved = int_at(r, 0, 0);
    PQclear(r);
    return DC_OK;
}

static int devices_online(dc_db_t *db, const dc_config_t *cfg, const char *org, dc_devices_online_t *v)
{
    char        secs[16];
    const char *params[] = { org, secs };
    PGresult   *r;
    int         rc;

    snprintf(secs, sizeof(secs), "%d", cfg->device_online_s);
    rc = one_row(db, S_DEVICES, params, &r);
    if (rc != DC_OK)
        return rc == DC_DECLINED ? DC_ERROR : rc;
    v->online = int_at(r, 0, 0);
    v->offline = int_at(r, 0, 1);
    PQclear(r);
    return DC_OK;
}

static int compliance(dc_db_t *db, const char *org, dc_compliance_t *v)
{
    char        days[8];
    const char *params[] = { org, days };
    PGresult   *r;
    int         rc;

    snprintf(days, sizeof(days), "%d", COMPLIANCE_DAYS);
    rc = one_row(db, S_COMPLIANCE, params, &r);
    if (rc != DC_OK)
        return rc == DC_DECLINED ? DC_ERROR : rc;
    v->window_days = COMPLIANCE_DAYS;
    v->in_range = int_at(r, 0, 0);
    v->total = int_at(r, 0, 1);
    snprintf(v->ratio, sizeof(v->ratio), "%s", PQgetisnull(r, 0, 2) ? "" : PQgetvalue(r, 0, 2));
    PQclear(r);
    return DC_OK;
}

int dc_query_fetch_stats(dc_db_t *db, const dc_config_t *cfg, const dc_request_t *req, dc_fetched_t *f)
{
    dc_stats_t *st = &f->data.stats;
    int         rc;

    if ((rc = units_status(db, req->org_id, &st->units)) != DC_OK ||
        (rc = alert_count(db, req->org_id, "", &st->alerts)) != DC_OK ||
        (rc = devices_online(db, cfg, req->org_id, &st->devices)) != DC_OK)
        return rc;
    return compliance(db, req->org_id, &st->compliance);
}

int dc_query_fetch_units(dc_db_t *db, const dc_config_t *cfg, const dc_request_t *req, dc_fetched_t *f)
{
    (void)cfg;
    return units_status(db, req->org_id, &f->data.stats.units);
}

int dc_query_fetch_alerts(dc_db_t *db, const dc_config_t *cfg, const dc_request_t *req, dc_fetched_t *f)
{
    (void)cfg;
    return alert_count(db, req->org_id, req->unit_id, &f->data.stats.alerts);
}

int dc_query_fetch_devices(dc_db_t *db, const dc_config_t *cfg, const dc_request_t *req, dc_fetched_t *f)
{
    return devices_online(db, cfg, req->org_id, &f->data.stats.devices);
}

int dc_query_fetch_compliance(dc_db_t *db, const dc_config_t *cfg, const dc_request_t *req, dc_fetched_t *f)
{
    (void)cfg;
    return compliance(db, req->org_id, &f->data.stats.compliance);
}

int dc_query_fetch_trends(dc_db_t *db, const dc_config_t *cfg, const dc_request_t *req, dc_fetched_t *f)
{
    char              hours[8];
    const char       *params[] = { req->unit_id, req->org_id, hours };
    dc_trend_point_t *pts;
    PGresult         *r;
    int               rc, n;

    (void)cfg;
    snprintf(hours, sizeof(hours), "%d", req->hours);
    rc = dc_db_exec(db, S_TRENDS, params, &r);
    if (rc != DC_OK)
        return rc;
    n = PQntuples(r);
    pts = calloc((size_t)n + 1, sizeof(*pts));
    if (pts == NULL) {
        PQclear(r);
        return DC_ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        pts[i].timestamp = PQgetvalue(r, i, 0);
        pts[i].temperature = PQgetvalue(r, i, 1);
        pts[i].alarm_state = PQgetvalue(r, i, 2);
    }
    f->res = r;
    f->rows = pts;
    f->data.hours = req->hours;
    f->data.points = pts;
    f->data.n = (size_t)n;
    return DC_OK;
}

int dc_query_fetch_audit(dc_db_t *db, const dc_config_t *cfg, const dc_request_t *req, dc_fetched_t *f)
{
    char              limit[8];
    const char       *params[] = { req->org_id, limit };
    dc_audit_entry_t *e;
    PGresult         *r;
    int               rc, n;

    (void)cfg;
    snprintf(limit, sizeof(limit), "%d", req->limit);
    rc = dc_db_exec(db, S_AUDIT, params, &r);
    if (rc != DC_OK)
        return rc;
    n = PQntuples(r);
    e = calloc((size_t)n + 1, sizeof(*e));
    if (e == NULL) {
        PQclear(r);
        return DC_ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        e[i].id = PQgetvalue(r, i, 0);
        e[i].actor = PQgetvalue(r, i, 1);
        e[i].action = PQgetvalue(r, i, 2);
        e[i].details = PQgetvalue(r, i, 3);
        e[i].created_at = PQgetvalue(r, i, 4);
    }
    f->res = r;
    f->rows = e;
    f->data.entries = e;
    f->data.n = (size_t)n;
    return DC_OK;
}

void dc_query_fetched_free(dc_fetched_t *f)
{
    PQclear(f->res);
    free(f->rows);
    memset(f, 0, sizeof(*f));
}

/* DC_OK when the row exists, DC_DECLINED when not, else the failure. */
static int exists(dc_db_t *db, int stmt, const char *const *params)
{
    PGresult *r;
    int       rc = one_row(db, stmt, params, &r);
    PQclear(r);
    return rc;
}

static void now_iso(char *buf, size_t cap)
{
    struct timeval tv;
    struct tm      tm;
    size_t         n;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, cap - n, ".%03dZ", (int)(tv.tv_usec / 1000));
}

int dc_query_run(dc_db_t *db, const dc_config_t *cfg, const dc_request_t *req, dc_buf_t *body,
                 dc_error_t *err)
{
    const dc_endpoint_t *ep = dc_endpoint_query(req->qtype);
    const char          *org_params[] = { req->org_id };
    const char          *unit_params[] = { req->unit_id, req->org_id };
    char                 generated[40];
    dc_view_meta_t       m = { req->org_id, NULL, generated };
    dc_fetched_t         f;
    int                  rc;

    if (ep == NULL)
        return DC_ERROR;
    rc = exists(db, S_ORG_EXISTS, org_params);
    if (rc == DC_DECLINED) {
        dc_error_set(err, 404, "org_not_found", "organization %s does not exist", req->org_id);
        return DC_DECLINED;
    }
    if (rc != DC_OK)
        return rc;
    if (req->unit_id[0] != '\0') {
        rc = exists(db, S_UNIT_EXISTS, unit_params);
        if (rc == DC_DECLINED) {
            dc_error_set(err, 404, "unit_not_found", "unit %s does not exist in organization %s",
                         req->unit_id, req->org_id);
            return DC_DECLINED;
        }
        if (rc != DC_OK)
            return rc;
        m.unit_id = req->unit_id;
    }

    now_iso(generated, sizeof(generated));
    memset(&f, 0, sizeof(f));
    rc = ep->fetch(db, cfg, req, &f);
    if (rc == DC_OK)
        rc = ep->view(&m, &f.data, body);
    dc_query_fetched_free(&f);
    return rc;
}

void dc_write_result_reset(dc_write_result_t *r)
{
    r->status = 200;
    dc_orgs_reset(&r->orgs);
    dc_strs_reset(&r->events);
}

void dc_write_result_free(dc_write_result_t *r)
{
    dc_orgs_free(&r->orgs);
    dc_strs_free(&r->events);
    dc_buf_free(&r->scratch);
}

static int add_org(dc_write_result_t *res, const char *org)
{
    int rc = dc_orgs_add(&res->orgs, org, strlen(org));
    return rc == DC_EINVAL ? DC_ERROR : rc;
}

static int add_event(dc_write_result_t *res, const dc_view_field_t *f, size_t n)
{
    dc_buf_reset(&res->scratch);
    if (dc_view_object(f, n, &res->scratch) != DC_OK)
        return DC_ENOMEM;
    return dc_strs_add(&res->events, res->scratch.data, res->scratch.len);
}

/* The org to invalidate, the event to announce and the answer of one write. */
static int record_write(dc_write_result_t *res, const char *org, const dc_view_field_t *ev, size_t nev,
                        const dc_view_field_t *answer, size_t nanswer, dc_buf_t *body)
{
    int rc = add_org(res, org);
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
    if (state != NULL && strcmp(state, "P0002") == 0) {
        const char *code = strncmp(msg, "unit ", 5) == 0    ? "unit_not_found"
                           : strncmp(msg, "alert ", 6) == 0 ? "alert_not_found"
                                                            : "device_not_found";
        dc_error_set(err, 404, code, "%s", msg);
        if (strncmp(msg, "readings[", 9) == 0)
            err->index = atoi(msg + 9);
    } else {
        dc_error_set(err, 400, "invalid_value", "%s", msg);
    }
    PQclear(r);
    return DC_DECLINED;
}

/* Runs a write statement that answers exactly one row. refused() maps its errors. */
static int write_row(dc_db_t *db, int stmt, const char *const *params, PGresult **r, dc_error_t *err)
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

int dc_query_write_ingest(dc_db_t *db, const dc_request_t *req, const dc_write_t *w, dc_buf_t *body,
                          dc_write_result_t *res, dc_error_t *err)
{
    const char *params[] = { w->devices.data, w->temps.data, w->times.data };
    int64_t     units = 0, alerts = 0;
    PGresult   *r;
    int         rc = dc_db_exec(db, S_INGEST, params, &r);

    (void)req;
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
        if (add_org(res, org) != DC_OK || add_event(res, f, alert ? 5 : 4) != DC_OK)
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

int dc_query_write_alert_create(dc_db_t *db, const dc_request_t *req, const dc_write_t *w, dc_buf_t *body,
                                dc_write_result_t *res, dc_error_t *err)
{
    const char *params[] = { req->org_id, w->alert.unit_id, w->alert.kind, w->alert.message, ACTOR };
    PGresult   *r;
    int         rc = write_row(db, S_ALERT_CREATE, params, &r, err);

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
        rc = record_write(res, req->org_id, f, DC_ARRAY_LEN(f), a, DC_ARRAY_LEN(a), body);
    }
    res->status = 201;
    PQclear(r);
    return rc;
}

int dc_query_write_alert_resolve(dc_db_t *db, const dc_request_t *req, const dc_write_t *w, dc_buf_t *body,
                                 dc_write_result_t *res, dc_error_t *err)
{
    const char *params[] = { req->org_id, req->item_id, ACTOR };
    PGresult   *r;
    int         rc = write_row(db, S_ALERT_RESOLVE, params, &r, err);

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
        rc = record_write(res, req->org_id, f, DC_ARRAY_LEN(f), a, DC_ARRAY_LEN(a), body);
    }
    PQclear(r);
    return rc;
}

int dc_query_write_device_status(dc_db_t *db, const dc_request_t *req, const dc_write_t *w, dc_buf_t *body,
                                 dc_write_result_t *res, dc_error_t *err)
{
    const char *params[] = { req->org_id, req->item_id, w->online ? "true" : "false", ACTOR };
    PGresult   *r;
    int         rc = write_row(db, S_DEVICE_STATUS, params, &r, err);

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
        rc = record_write(res, req->org_id, f, DC_ARRAY_LEN(f), a, DC_ARRAY_LEN(a), body);
    }
    PQclear(r);
    return rc;
}

int dc_query_write(dc_db_t *db, const dc_request_t *req, const dc_write_t *w, dc_buf_t *body,
                   dc_write_result_t *res, dc_error_t *err)
{
    const dc_endpoint_t *ep = dc_endpoint_write(req->wtype);

    dc_write_result_reset(res);
    return ep != NULL ? ep->write(db, req, w, body, res, err) : DC_ERROR;
}

int dc_query_outbox_pending(dc_db_t *db, dc_outbox_t *ob, size_t max)
{
    char        limit[16];
    const char *params[] = { limit };
    PGresult   *r;
    int         rc;

    dc_buf_reset(&ob->ids);
    dc_orgs_reset(&ob->orgs);
    ob->n = 0;
    ob->all = 0;
    snprintf(limit, sizeof(limit), "%zu", max);
    rc = dc_db_exec(db, S_OUTBOX_PENDING, params, &r);
    if (rc != DC_OK)
        return rc == DC_EQUERY ? (PQclear(r), DC_ERROR) : rc;
    rc = dc_buf_append_str(&ob->ids, "{");
    for (int i = 0; i < PQntuples(r) && rc == DC_OK; i++) {
        rc = dc_buf_printf(&ob->ids, "%s%s", i ? "," : "", PQgetvalue(r, i, 0));
        if (rc != DC_OK)
            break;
        if (PQgetisnull(r, i, 1))
            ob->all = 1;
        else if ((rc = dc_orgs_add(&ob->orgs, PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1))) ==
                 DC_EINVAL)
            rc = DC_ERROR;
        ob->n++;
    }
    if (rc == DC_OK)
        rc = dc_buf_append_str(&ob->ids, "}");
    PQclear(r);
    return rc;
}

void dc_outbox_free(dc_outbox_t *ob)
{
    dc_buf_free(&ob->ids);
    dc_orgs_free(&ob->orgs);
}

int dc_query_outbox_done(dc_db_t *db, const dc_outbox_t *ob, dc_lag_fn fn, void *arg)
{
    const char *params[] = { ob->ids.data };
    PGresult   *r;
    int         rc = dc_db_exec(db, S_OUTBOX_DONE, params, &r);

    if (rc != DC_OK)
        return rc == DC_EQUERY ? (PQclear(r), DC_ERROR) : rc;
    for (int i = 0; i < PQntuples(r); i++)
        fn(arg, strtod(PQgetvalue(r, i, 0), NULL));
    PQclear(r);
    return DC_OK;
}

int dc_query_outbox_purge(dc_db_t *db, int older_than_s, long long *purged)
{
    char        secs[16];
    const char *params[] = { secs };
    PGresult   *r;
    int         rc;

    snprintf(secs, sizeof(secs), "%d", older_than_s);
    rc = dc_db_exec(db, S_OUTBOX_PURGE, params, &r);
    if (rc != DC_OK)
        return rc == DC_EQUERY ? (PQclear(r), DC_ERROR) : rc;
    *purged = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return DC_OK;
}

int dc_query_org_ids(dc_db_t *db, dc_orgs_t *orgs)
{
    PGresult *r;
    int       rc = dc_db_exec(db, S_ORG_IDS, NULL, &r);

    dc_orgs_reset(orgs);
    if (rc != DC_OK)
        return rc == DC_EQUERY ? (PQclear(r), DC_ERROR) : rc;
    for (int i = 0; i < PQntuples(r) && rc == DC_OK; i++)
        if ((rc = dc_orgs_add(orgs, PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0))) == DC_EINVAL)
            rc = DC_ERROR;
    PQclear(r);
    return rc;
}
