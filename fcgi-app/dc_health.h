/*
 * The service routes a worker answers besides the API: /health (readiness,
 * every check bounded), /metrics (the Prometheus text of the whole pool)
 * and /api/admin/cache/stats (hit rates, keys, Redis memory,
 * invalidations). Each answer's body lives in out, which is reset first.
 */
#ifndef DC_HEALTH_H
#define DC_HEALTH_H

#include "dc_buf.h"
#include "dc_cache.h"
#include "dc_db.h"
#include "dc_response.h"

/*
 * GET /health. Redis down is "degraded" (200: slower, not down); the
 * database down is "unhealthy" (503 with Retry-After).
 */
void dc_health_check(const dc_config_t *cfg, dc_cache_t *cache, dc_db_t *db, dc_buf_t *out,
                     dc_response_t *resp);

/* GET /metrics: 404 when metrics are off or not mapped. */
void dc_health_metrics(dc_buf_t *out, dc_response_t *resp);

/* /status: the pool's status page (dc_status) for the query string query (may be NULL). */
void dc_health_status(const char *query, dc_buf_t *out, dc_response_t *resp);

/* The name of a PostgreSQL statement slot (dc_db), of any process's statements; NULL when none has it. */
const char *dc_health_stmt_name(int slot);

/* GET /api/admin/cache/stats. */
void dc_health_admin_stats(dc_cache_t *cache, dc_buf_t *out, dc_response_t *resp);

#endif
