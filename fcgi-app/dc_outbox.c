/*
 * The outbox: the cache_outbox rows database triggers leave for the
 * invalidator, read in batches and marked processed once applied; and the
 * list of every organization, for a resync.
 */
#include "dc_outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "dc_endpoint.h"

enum { S_OUTBOX_PENDING, S_OUTBOX_DONE, S_OUTBOX_PURGE, S_ORG_IDS, S_COUNT };

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
    [S_ORG_IDS] = { "org_ids", "SELECT id::text FROM organizations ORDER BY id", 0 },
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

int dc_outbox_org_ids(dc_db_t *db, dc_orgs_t *orgs)
{
    PGresult *r;
    int       rc = dc_db_exec(db, &statements[S_ORG_IDS], NULL, &r);

    dc_orgs_reset(orgs);
    if (rc != DC_OK)
        return rc == DC_EQUERY ? (PQclear(r), DC_ERROR) : rc;
    for (int i = 0; i < PQntuples(r) && rc == DC_OK; i++)
        if ((rc = dc_orgs_add(orgs, PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0),
                              DC_CHANGE_BIT(OTHER))) == DC_EINVAL)
            rc = DC_ERROR;
    PQclear(r);
    return rc;
}
