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
#include "dc_log.h"
#include "dc_trace.h"
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

/*
 * The statements of one read and their results. dc_query_run puts the
 * existence checks first; the fetch adds its own (add), runs them all in
 * one round trip (run) and reads its results.
 */
#define MAX_PARAMS 3
#define MAX_NUMS   4

struct dc_query_batch_s {
    dc_db_t            *db;
    const dc_request_t *req;
    dc_error_t         *err;
    dc_db_call_t        calls[DC_DB_BATCH_MAX];
    const char         *params[DC_DB_BATCH_MAX][MAX_PARAMS];
    char                nums[MAX_NUMS][16];
    size_t              n, nnums;
    int                 full;       /* more statements or numbers than it holds: a bug */
    size_t              org_check;  /* index of org_exists */
    int                 unit_check; /* index of unit_exists, or -1 */
};

/*
 * Adds statement s with its parameters (the strings must live until the
 * batch ran; those it does not take are ignored) and returns its index.
 */
static size_t add(dc_query_batch_t *b, int s, const char *p0, const char *p1, const char *p2)
{
    size_t i = b->n;

    if (i == DC_DB_BATCH_MAX) {
        b->full = 1;
        return 0;
    }
    b->params[i][0] = p0;
    b->params[i][1] = p1;
    b->params[i][2] = p2;
    b->calls[i].stmt = &statements[s];
    b->calls[i].params = b->params[i];
    b->n++;
    return i;
}

/* v as a parameter, kept in b. */
static const char *num(dc_query_batch_t *b, int v)
{
    char *t;

    if (b->nnums == MAX_NUMS) {
        b->full = 1;
        return "";
    }
    t = b->nums[b->nnums++];
    snprintf(t, sizeof(b->nums[0]), "%d", v);
    return t;
}

/* Whether statement i ran and found no row (an existence check that failed). */
static int found_none(const dc_query_batch_t *b, size_t i)
{
    const PGresult *r = b->calls[i].res;
    return r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 0;
}

/* Whether statement i ran: its result is rows (maybe none), not an error. */
static int answered(const dc_query_batch_t *b, size_t i)
{
    const PGresult *r = b->calls[i].res;
    return r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK;
}

/*
 * Sends every statement of b in one round trip. DC_OK: each one's result
 * is in b. DC_DECLINED with b->err set (404) when the organization or the
 * unit does not exist; the answer is what running them one by one would
 * give: a failed check is a 404 whatever failed after it. Else the failure
 * (dc_db_exec_all).
 */
static int run(dc_query_batch_t *b)
{
    const dc_request_t *req = b->req;
    int                 rc;

    if (b->full) {
        dc_log_error("db.query", "a read needs more statements or parameters than a batch holds");
        return DC_ERROR;
    }
    rc = dc_db_exec_all(b->db, b->calls, b->n);
    if (found_none(b, b->org_check)) {
        dc_error_set(b->err, 404, "org_not_found", "organization %s does not exist", req->org_id);
        return DC_DECLINED;
    }
    if (!answered(b, b->org_check))
        return rc;
    if (b->unit_check >= 0 && found_none(b, (size_t)b->unit_check)) {
        dc_error_set(b->err, 404, "unit_not_found", "unit %s does not exist in organization %s", req->unit_id,
                     req->org_id);
        return DC_DECLINED;
    }
    return rc;
}

static int64_t int_at(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* The result of statement i when it has exactly one row, else NULL. */
static const PGresult *one_row(const dc_query_batch_t *b, size_t i)
{
    const PGresult *r = b->calls[i].res;
    return PQntuples(r) == 1 ? r : NULL;
}

static size_t ask_units(dc_query_batch_t *b, const char *org)
{
    return add(b, S_UNITS_STATUS, org, NULL, NULL);
}

static int take_units(const dc_query_batch_t *b, size_t i, dc_units_status_t *v)
{
    const PGresult *r = one_row(b, i);

    if (r == NULL)
        return DC_ERROR;
    v->normal = int_at(r, 0, 0);
    v->too_hot = int_at(r, 0, 1);
    v->too_cold = int_at(r, 0, 2);
    v->no_data = int_at(r, 0, 3);
    v->total = int_at(r, 0, 4);
    return DC_OK;
}

static size_t ask_alerts(dc_query_batch_t *b, const char *org, const char *unit)
{
    return unit[0] ? add(b, S_ALERTS_UNIT, org, unit, NULL) : add(b, S_ALERTS_ORG, org, NULL, NULL);
}

static int take_alerts(const dc_query_batch_t *b, size_t i, dc_alert_count_t *v)
{
    const PGresult *r = one_row(b, i);

    if (r == NULL)
        return DC_ERROR;
    v->unresolved = int_at(r, 0, 0);
    return DC_OK;
}

static size_t ask_devices(dc_query_batch_t *b, const dc_config_t *cfg, const char *org)
{
    return add(b, S_DEVICES, org, num(b, cfg->device_online_s), NULL);
}

static int take_devices(const dc_query_batch_t *b, size_t i, dc_devices_online_t *v)
{
    const PGresult *r = one_row(b, i);

    if (r == NULL)
        return DC_ERROR;
    v->online = int_at(r, 0, 0);
    v->offline = int_at(r, 0, 1);
    return DC_OK;
}

static size_t ask_compliance(dc_query_batch_t *b, const char *org)
{
    return add(b, S_COMPLIANCE, org, num(b, COMPLIANCE_DAYS), NULL);
}

static int take_compliance(const dc_query_batch_t *b, size_t i, dc_compliance_t *v)
{
    const PGresult *r = one_row(b, i);

    if (r == NULL)
        return DC_ERROR;
    v->window_days = COMPLIANCE_DAYS;
    v->in_range = int_at(r, 0, 0);
    v->total = int_at(r, 0, 1);
    snprintf(v->ratio, sizeof(v->ratio), "%s", PQgetisnull(r, 0, 2) ? "" : PQgetvalue(r, 0, 2));
    return DC_OK;
}

int dc_query_fetch_stats(dc_query_batch_t *b, const dc_config_t *cfg, const dc_request_t *req,
                         dc_fetched_t *f)
{
    dc_stats_t *st = &f->data.stats;
    size_t      units = ask_units(b, req->org_id), alerts = ask_alerts(b, req->org_id, "");
    size_t      devices = ask_devices(b, cfg, req->org_id), compliance = ask_compliance(b, req->org_id);
    int         rc;

    if ((rc = run(b)) != DC_OK || (rc = take_units(b, units, &st->units)) != DC_OK ||
        (rc = take_alerts(b, alerts, &st->alerts)) != DC_OK ||
        (rc = take_devices(b, devices, &st->devices)) != DC_OK)
        return rc;
    return take_compliance(b, compliance, &st->compliance);
}

int dc_query_fetch_units(dc_query_batch_t *b, const dc_config_t *cfg, const dc_request_t *req,
                         dc_fetched_t *f)
{
    size_t i = ask_units(b, req->org_id);
    int    rc = run(b);

    (void)cfg;
    return rc == DC_OK ? take_units(b, i, &f->data.stats.units) : rc;
}

int dc_query_fetch_alerts(dc_query_batch_t *b, const dc_config_t *cfg, const dc_request_t *req,
                          dc_fetched_t *f)
{
    size_t i = ask_alerts(b, req->org_id, req->unit_id);
    int    rc = run(b);

    (void)cfg;
    return rc == DC_OK ? take_alerts(b, i, &f->data.stats.alerts) : rc;
}

int dc_query_fetch_devices(dc_query_batch_t *b, const dc_config_t *cfg, const dc_request_t *req,
                           dc_fetched_t *f)
{
    size_t i = ask_devices(b, cfg, req->org_id);
    int    rc = run(b);

    return rc == DC_OK ? take_devices(b, i, &f->data.stats.devices) : rc;
}

int dc_query_fetch_compliance(dc_query_batch_t *b, const dc_config_t *cfg, const dc_request_t *req,
                              dc_fetched_t *f)
{
    size_t i = ask_compliance(b, req->org_id);
    int    rc = run(b);

    (void)cfg;
    return rc == DC_OK ? take_compliance(b, i, &f->data.stats.compliance) : rc;
}

/* Moves the result of statement i into f, which keeps it for the rows that point into it. */
static PGresult *keep(dc_query_batch_t *b, size_t i, dc_fetched_t *f)
{
    f->res = b->calls[i].res;
    b->calls[i].res = NULL;
    return f->res;
}

int dc_query_fetch_trends(dc_query_batch_t *b, const dc_config_t *cfg, const dc_request_t *req,
                          dc_fetched_t *f)
{
    size_t            i = add(b, S_TRENDS, req->unit_id, req->org_id, num(b, req->hours));
    dc_trend_point_t *pts;
    PGresult         *r;
    int               rc = run(b), n;

    (void)cfg;
    if (rc != DC_OK)
        return rc;
    r = keep(b, i, f);
    n = PQntuples(r);
    pts = calloc((size_t)n + 1, sizeof(*pts));
    if (pts == NULL)
        return DC_ENOMEM;
    for (int k = 0; k < n; k++) {
        pts[k].timestamp = PQgetvalue(r, k, 0);
        pts[k].temperature = PQgetvalue(r, k, 1);
        pts[k].alarm_state = PQgetvalue(r, k, 2);
    }
    f->rows = pts;
    f->data.hours = req->hours;
    f->data.points = pts;
    f->data.n = (size_t)n;
    return DC_OK;
}

int dc_query_fetch_audit(dc_query_batch_t *b, const dc_config_t *cfg, const dc_request_t *req,
                         dc_fetched_t *f)
{
    size_t            i = add(b, S_AUDIT, req->org_id, num(b, req->limit), NULL);
    dc_audit_entry_t *e;
    PGresult         *r;
    int               rc = run(b), n;

    (void)cfg;
    if (rc != DC_OK)
        return rc;
    r = keep(b, i, f);
    n = PQntuples(r);
    e = calloc((size_t)n + 1, sizeof(*e));
    if (e == NULL)
        return DC_ENOMEM;
    for (int k = 0; k < n; k++) {
        e[k].id = PQgetvalue(r, k, 0);
        e[k].actor = PQgetvalue(r, k, 1);
        e[k].action = PQgetvalue(r, k, 2);
        e[k].details = PQgetvalue(r, k, 3);
        e[k].created_at = PQgetvalue(r, k, 4);
    }
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
    char                 generated[40];
    dc_view_meta_t       m = { req->org_id, NULL, generated };
    dc_query_batch_t     b;
    dc_fetched_t         f;
    int                  rc;

    if (ep == NULL)
        return DC_ERROR;
    memset(&b, 0, sizeof(b));
    b.db = db;
    b.req = req;
    b.err = err;
    /* the existence checks go in the fetch's round trip: reads have no effects to undo */
    b.org_check = add(&b, S_ORG_EXISTS, req->org_id, NULL, NULL);
    b.unit_check = -1;
    if (req->unit_id[0] != '\0') {
        b.unit_check = (int)add(&b, S_UNIT_EXISTS, req->unit_id, req->org_id, NULL);
        m.unit_id = req->unit_id;
    }

    now_iso(generated, sizeof(generated));
    memset(&f, 0, sizeof(f));
    rc = ep->fetch(&b, cfg, req, &f);
    if (rc == DC_OK) {
        int64_t t0 = dc_now_ns();
        rc = ep->view(&m, &f.data, body);
        dc_trace_render(dc_now_ns() - t0);
    }
    dc_query_fetched_free(&f);
    dc_db_calls_clear(b.calls, b.n);
    return rc;
}
