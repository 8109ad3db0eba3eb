/*
 * The read side: the SQL of each dashboard query type and its rows → the
 * input of its view (the fetch column of dc_api.h).
 */
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
    S_COUNT
};

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
};
/* clang-format on */

_Static_assert(S_COUNT <= DC_DB_SLOTS_WRITE - DC_DB_SLOTS_READ, "the read statements fit their slots");
static const dc_db_set_t set = { statements, S_COUNT, DC_DB_SLOTS_READ };

const dc_db_set_t *dc_query_statements(void)
{
    return &set;
}

static int64_t int_at(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* Runs a statement that returns exactly one row. */
static int one_row(dc_db_t *db, const dc_db_stmt_t *stmt, const char *const *params, PGresult **r)
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
    int         rc = one_row(db, &statements[S_UNITS_STATUS], params, &r);

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
    int         rc = one_row(db, &statements[unit[0] ? S_ALERTS_UNIT : S_ALERTS_ORG], params, &r);

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
    rc = one_row(db, &statements[S_DEVICES], params, &r);
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
    rc = one_row(db, &statements[S_COMPLIANCE], params, &r);
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
    rc = dc_db_exec(db, &statements[S_TRENDS], params, &r);
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
    rc = dc_db_exec(db, &statements[S_AUDIT], params, &r);
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
static int exists(dc_db_t *db, const dc_db_stmt_t *stmt, const char *const *params)
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
    rc = exists(db, &statements[S_ORG_EXISTS], org_params);
    if (rc == DC_DECLINED) {
        dc_error_set(err, 404, "org_not_found", "organization %s does not exist", req->org_id);
        return DC_DECLINED;
    }
    if (rc != DC_OK)
        return rc;
    if (req->unit_id[0] != '\0') {
        rc = exists(db, &statements[S_UNIT_EXISTS], unit_params);
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
