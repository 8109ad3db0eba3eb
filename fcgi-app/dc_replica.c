/* Standby reads that never go back in time: the LSN check of a miss (see dc_replica.h). */
#include "dc_replica.h"

#include <stdlib.h>

#include "dc_log.h"
#include "dc_lsn.h"
#include "dc_metrics.h"
#include "dc_query.h"

struct dc_replica_s {
    const dc_db_set_t *sets[1]; /* dc_db_new_standby's: must outlive db */
    dc_db_t           *db;
    uint64_t           replayed;       /* the standby's replay position last seen ... */
    unsigned           replayed_epoch; /* ... on this connection (dc_db_epoch); 0: none seen */
};

dc_replica_t *dc_replica_new(const dc_config_t *cfg, int *failed)
{
    dc_replica_t *r;

    *failed = 0;
    if (cfg->database_read_url[0] == '\0')
        return NULL;
    r = calloc(1, sizeof(*r));
    if (r != NULL) {
        r->sets[0] = dc_query_statements();
        r->db = dc_db_new_standby(cfg, r->sets, DC_ARRAY_LEN(r->sets));
    }
    if (r == NULL || r->db == NULL) {
        free(r);
        *failed = 1;
        return NULL;
    }
    return r;
}

void dc_replica_free(dc_replica_t *r)
{
    if (r == NULL)
        return;
    dc_db_free(r->db);
    free(r);
}

int dc_replica_primary_lsn(dc_db_t *db, uint64_t *lsn)
{
    int standby = 0;
    int rc = dc_db_lsn(db, lsn, &standby);

    if (rc == DC_OK && standby) {
        dc_log_error("db.lsn", "DATABASE_URL leads to a standby: it must be the primary");
        return DC_ERROR;
    }
    return rc;
}

static uint64_t max_lsn(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

/*
 * The LSN a standby must have replayed for a miss of org: the larger of
 * the organization's and the global one, a missing one standing for the
 * primary's position now (stored for the next misses). DC_OK, or a
 * failure: then the primary answers.
 */
static int needed_lsn(dc_cache_t *c, dc_db_t *primary, const char *org, uint64_t *need)
{
    uint64_t o, a, now;

    if (dc_cache_lsn_get(c, org, &o, &a) != DC_OK)
        return DC_UNAVAILABLE;
    if (o == 0 || a == 0) {
        if (dc_replica_primary_lsn(primary, &now) != DC_OK)
            return DC_UNAVAILABLE;
        /* stored for the next misses; Redis refusing it is Redis refusing writes: the primary */
        if ((o == 0 && dc_cache_lsn_raise(c, org, now) != DC_OK) ||
            (a == 0 && dc_cache_lsn_raise(c, NULL, now) != DC_OK))
            return DC_UNAVAILABLE;
        o = max_lsn(o, now);
    }
    *need = max_lsn(o, a);
    return DC_OK;
}

/*
 * Whether the standby has replayed need, asking it only when the position
 * remembered for its connection is behind. DC_OK (yes), DC_DECLINED (not
 * yet) or a failure (no standby to read: down, or not a standby).
 */
static int standby_reached(dc_replica_t *r, uint64_t need)
{
    uint64_t lsn;
    int      standby = 0, rc;

    if (r->replayed_epoch != 0 && r->replayed_epoch == dc_db_epoch(r->db) &&
        dc_lsn_reached(r->replayed, need))
        return DC_OK;
    rc = dc_db_lsn(r->db, &lsn, &standby);
    if (rc != DC_OK)
        return rc;
    if (!standby)
        return DC_ERROR; /* promoted, or prefer-standby found none: the primary handle reads the primary */
    r->replayed = lsn;
    r->replayed_epoch = dc_db_epoch(r->db);
    return dc_lsn_reached(lsn, need) ? DC_OK : DC_DECLINED;
}

int dc_replica_query(dc_replica_t *r, dc_cache_t *c, dc_db_t *primary, int may_standby,
                     const dc_config_t *cfg, const dc_request_t *req, dc_buf_t *body, dc_error_t *err)
{
    uint64_t need;
    unsigned epoch;
    int      rc;

    dc_buf_reset(body);
    if (r == NULL || !may_standby)
        goto primary;
    if (needed_lsn(c, primary, req->org_id, &need) != DC_OK) {
        dc_metrics_standby_fallback(DC_SBF_UNKNOWN);
        goto primary;
    }
    rc = standby_reached(r, need);
    if (rc != DC_OK) {
        dc_metrics_standby_fallback(rc == DC_DECLINED ? DC_SBF_LAG : DC_SBF_ERROR);
        goto primary;
    }
    epoch = dc_db_epoch(r->db);
    rc = dc_query_run(r->db, cfg, req, body, err);
    /* a reconnect may have landed on another standby, which may not have replayed need */
    if (rc == DC_OK && dc_db_epoch(r->db) == epoch) {
        dc_metrics_db_read(DC_DBT_STANDBY);
        return DC_OK;
    }
    dc_metrics_standby_fallback(DC_SBF_ERROR);
    dc_buf_reset(body);
primary:
    dc_metrics_db_read(DC_DBT_PRIMARY);
    return dc_query_run(primary, cfg, req, body, err);
}
