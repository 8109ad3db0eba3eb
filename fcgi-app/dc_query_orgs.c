/* The organizations to warm (dc_query_orgs.h). */
#include "dc_query_orgs.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

/* clang-format off */
static const dc_db_stmt_t statements[] = {
    { "warm_orgs",
      "SELECT o.id::text FROM organizations o"
      "  LEFT JOIN LATERAL (SELECT count(*) AS n FROM readings r"
      "                      WHERE r.org_id = o.id AND r.recorded_at > now() - interval '24 hours') h ON true"
      " ORDER BY h.n DESC, o.id"
      " LIMIT CASE WHEN $1::bigint > 0 THEN $1::bigint END", 1 },
};
/* clang-format on */

/* Read-only and resent after a broken connection: a slot of the read range, as dc_query's. */
static const dc_db_set_t set = { statements, DC_ARRAY_LEN(statements), DC_DB_SLOTS_READ };

const dc_db_set_t *dc_query_orgs_statements(void)
{
    return &set;
}

int dc_query_orgs(dc_db_t *db, long top, dc_orgs_t *out, dc_err_t *err)
{
    char        n[24];
    const char *params[1] = { n };
    PGresult   *res = NULL;
    int         rc;

    snprintf(n, sizeof(n), "%ld", top);
    rc = dc_db_exec(db, &statements[0], params, &res);
    if (rc != DC_OK) {
        PQclear(res);
        return dc_err_set(err, rc == DC_UNAVAILABLE ? DC_UNAVAILABLE : DC_ERROR,
                          "cannot list the organizations: PostgreSQL %s",
                          rc == DC_UNAVAILABLE ? "is unreachable or timed out" : "refused the query");
    }
    for (int i = 0; i < PQntuples(res); i++) {
        const char *id = PQgetvalue(res, i, 0);
        if (dc_orgs_add(out, id, strlen(id), 0) != DC_OK) {
            PQclear(res);
            return dc_err_set(err, DC_ERROR, "out of memory");
        }
    }
    PQclear(res);
    return DC_OK;
}
