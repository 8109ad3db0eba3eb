/*
 * The outbox: the cache_outbox rows database triggers leave for the
 * invalidator, read in batches and marked processed once applied; and its
 * watermark, for dc_trust.
 */
#include "dc_outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "dc_endpoint.h"

enum {
    S_OUTBOX_PENDING,
    S_OUTBOX_DONE,
    S_OUTBOX_PURGE,
    S_OUTBOX_MARK,
    S_EVENTS_DEFER,
    S_EVENTS_READY,
    S_EVENTS_DONE,
    S_COUNT
};

/* clang-format off */
static const dc_db_stmt_t statements[S_COUNT] = {
    [S_OUTBOX_PENDING] = { "outbox_pending",
        "SELECT id, org_id::text, kind FROM cache_outbox WHERE processed_at IS NULL ORDER BY id LIMIT $1::int", 1 },
    /* the lag of each row: from the write (trigger time) to applied */
    [S_OUTBOX_DONE] = { "outbox_done",
        "UPDATE cache_outbox SET processed_at = clock_timestamp()"
        " WHERE id = ANY($1::bigint[]) AND processed_at IS NULL"
        " RETURNING (extract(epoch FROM processed_at - created_at) * 1000)::float8", 1 },
    [S_OUTBOX_PURGE] = { "outbox_purge",
        "WITH d AS (DELETE FROM cache_outbox WHERE processed_at < now() - make_interval(secs => $1::int)"
        " RETURNING 1) SELECT count(*) FROM d", 1 },
    /* two index probes: the primary key's last entry, the pending index's first */
    [S_OUTBOX_MARK] = { "outbox_mark",
        "SELECT (SELECT coalesce(max(id), 0) FROM cache_outbox),"
        " (SELECT coalesce(min(id), 0) FROM cache_outbox WHERE processed_at IS NULL)", 0 },
    /* $1: a JSON array of the events, each kept byte for byte (json, not jsonb) */
    [S_EVENTS_DEFER] = { "events_defer",
        "INSERT INTO cache_deferred_events (payload) SELECT e::text FROM json_array_elements($1::json) e", 1 },
    /* in one snapshot: an event is there, so its write's outbox rows are, and none of them is pending */
    [S_EVENTS_READY] = { "events_ready",
        "SELECT id, payload FROM cache_deferred_events"
        " WHERE NOT EXISTS (SELECT 1 FROM cache_outbox WHERE processed_at IS NULL) ORDER BY id LIMIT $1::int", 1 },
    [S_EVENTS_DONE] = { "events_done", "DELETE FROM cache_deferred_events WHERE id <= $1::bigint", 1 },
};
/* clang-format on */

_Static_assert(S_COUNT <= DC_DB_SLOTS - DC_DB_SLOTS_OUTBOX, "the outbox statements fit their slots");
static const dc_db_set_t set = { statements, S_COUNT, DC_DB_SLOTS_OUTBOX };

const dc_db_set_t *dc_outbox_statements(void)
{
    return &set;
}

int dc_outbox_pending(dc_db_t *db, dc_outbox_t *ob, size_t max)
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
    rc = dc_db_exec(db, &statements[S_OUTBOX_PENDING], params, &r);
    if (rc != DC_OK)
        return rc == DC_EQUERY ? (PQclear(r), DC_ERROR) : rc;
    rc = dc_buf_append_str(&ob->ids, "{");
    for (int i = 0; i < PQntuples(r) && rc == DC_OK; i++) {
        rc = dc_buf_printf(&ob->ids, "%s%s", i ? "," : "", PQgetvalue(r, i, 0));
        if (rc != DC_OK)
            break;
        if (PQgetisnull(r, i, 1)) {
            ob->all = 1;
        } else {
            /* a row of no kind (written before kinds were) or of an unknown one: DC_CHANGE_OTHER */
            dc_change_t ch = dc_endpoint_change(PQgetisnull(r, i, 2) ? NULL : PQgetvalue(r, i, 2),
                                                (size_t)PQgetlength(r, i, 2));
            rc = dc_orgs_add(&ob->orgs, PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1), 1u << ch);
            if (rc == DC_EINVAL)
                rc = DC_ERROR;
        }
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

int dc_outbox_done(dc_db_t *db, const dc_outbox_t *ob, dc_lag_fn fn, void *arg)
{
    const char *params[] = { ob->ids.data };
    PGresult   *r;
    int         rc = dc_db_exec(db, &statements[S_OUTBOX_DONE], params, &r);

    if (rc != DC_OK)
        return rc == DC_EQUERY ? (PQclear(r), DC_ERROR) : rc;
    for (int i = 0; i < PQntuples(r); i++)
        fn(arg, strtod(PQgetvalue(r, i, 0), NULL));
    PQclear(r);
    return DC_OK;
}

int dc_outbox_purge(dc_db_t *db, int older_than_s, long long *purged)
{
    char        secs[16];
    const char *params[] = { secs };
    PGresult   *r;
    int         rc;

    snprintf(secs, sizeof(secs), "%d", older_than_s);
    rc = dc_db_exec(db, &statements[S_OUTBOX_PURGE], params, &r);
    if (rc != DC_OK)
        return rc == DC_EQUERY ? (PQclear(r), DC_ERROR) : rc;
    *purged = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return DC_OK;
}

int dc_outbox_defer_events(dc_db_t *db, const dc_strs_t *events, size_t from)
{
    dc_buf_t    arr = { 0 };
    const char *params[1];
    PGresult   *r;
    int         rc = dc_buf_append_str(&arr, "[");

    if (from >= dc_strs_count(events)) {
        dc_buf_free(&arr);
        return DC_OK;
    }
    for (size_t i = from; i < dc_strs_count(events) && rc == DC_OK; i++) {
        size_t      n;
        const char *ev = dc_strs_at(events, i, &n);
        rc = i > from ? dc_buf_append_str(&arr, ",") : DC_OK;
        if (rc == DC_OK)
            rc = dc_buf_append(&arr, ev, n);
    }
    if (rc == DC_OK)
        rc = dc_buf_append_str(&arr, "]");
    if (rc != DC_OK) {
        dc_buf_free(&arr);
        return rc;
    }
    params[0] = arr.data;
    rc = dc_db_exec(db, &statements[S_EVENTS_DEFER], params, &r);
    PQclear(r);
    dc_buf_free(&arr);
    return rc == DC_EQUERY ? DC_ERROR : rc;
}

int dc_outbox_publish_events(dc_db_t *db, size_t max, dc_publish_fn fn, void *arg, size_t *published)
{
    char        limit[16], last[24] = "";
    const char *params[] = { limit };
    PGresult   *r;
    int         rc, n;

    *published = 0;
    snprintf(limit, sizeof(limit), "%zu", max);
    rc = dc_db_exec(db, &statements[S_EVENTS_READY], params, &r);
    if (rc != DC_OK)
        return rc == DC_EQUERY ? (PQclear(r), DC_ERROR) : rc;
    n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        if (fn(arg, PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1)) != DC_OK)
            break;
        snprintf(last, sizeof(last), "%s", PQgetvalue(r, i, 0));
        (*published)++;
    }
    PQclear(r);
    if (last[0] == '\0')
        return n == 0 ? DC_OK : DC_UNAVAILABLE; /* the first publish failed */
    params[0] = last;
    rc = dc_db_exec(db, &statements[S_EVENTS_DONE], params, &r);
    PQclear(r);
    return rc == DC_EQUERY ? DC_ERROR : rc;
}

int dc_outbox_watermark(dc_db_t *db, int timeout_ms, long long *max_id, long long *pending)
{
    PGresult *r;
    int       rc = dc_db_exec_within(db, &statements[S_OUTBOX_MARK], NULL, timeout_ms, &r);

    if (rc != DC_OK)
        return rc == DC_EQUERY ? (PQclear(r), DC_ERROR) : rc;
    *max_id = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    *pending = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    return DC_OK;
}
