/*
 * Database rows → JSON bodies (json-c). Pure functions over plain structs, so
 * every body shape is unit-tested without a database. Numbers that come from
 * PostgreSQL as numeric text (temperatures, ratios) are written exactly as
 * the database printed them.
 *
 * Every function appends the body to out and returns DC_OK, or DC_ENOMEM
 * with out unchanged in content (it may have been reset).
 */
#ifndef DC_VIEW_H
#define DC_VIEW_H

#include <stddef.h>
#include <stdint.h>

#include "dc_buf.h"

typedef struct {
    int64_t normal, too_hot, too_cold, no_data, total;
} dc_units_status_t;

typedef struct {
    int64_t unresolved;
} dc_alert_count_t;

typedef struct {
    int64_t online, offline;
} dc_devices_online_t;

typedef struct {
    int64_t in_range, total;
    int     window_days;
    char    ratio[24]; /* numeric text, "" when total is 0 (→ null) */
} dc_compliance_t;

typedef struct {
    dc_units_status_t   units;
    dc_alert_count_t    alerts;
    dc_devices_online_t devices;
    dc_compliance_t     compliance;
} dc_stats_t;

typedef struct {
    const char *timestamp;   /* ISO 8601 */
    const char *temperature; /* numeric text */
    const char *alarm_state; /* normal | too_hot | too_cold */
} dc_trend_point_t;

typedef struct {
    const char *id;
    const char *actor;
    const char *action;
    const char *details;    /* JSON text; invalid JSON becomes a string */
    const char *created_at; /* ISO 8601 */
} dc_audit_entry_t;

/* Common envelope fields: the organization and the time the body was made. */
typedef struct {
    const char *org_id;
    const char *unit_id;      /* NULL or "" when the query has none */
    const char *generated_at; /* ISO 8601 */
} dc_view_meta_t;

int dc_view_units_status(const dc_view_meta_t *m, const dc_units_status_t *v, dc_buf_t *out) DC_WUR;
int dc_view_alert_count(const dc_view_meta_t *m, const dc_alert_count_t *v, dc_buf_t *out) DC_WUR;
int dc_view_devices_online(const dc_view_meta_t *m, const dc_devices_online_t *v, dc_buf_t *out) DC_WUR;
int dc_view_compliance(const dc_view_meta_t *m, const dc_compliance_t *v, dc_buf_t *out) DC_WUR;
int dc_view_stats(const dc_view_meta_t *m, const dc_stats_t *v, dc_buf_t *out) DC_WUR;
int dc_view_trends(const dc_view_meta_t *m, int hours, const dc_trend_point_t *pts, size_t n,
                   dc_buf_t *out) DC_WUR;
int dc_view_audit(const dc_view_meta_t *m, const dc_audit_entry_t *e, size_t n, dc_buf_t *out) DC_WUR;

/*
 * What a query fetched, whatever its type: the input of its view (the
 * fetch and view columns of dc_api.h). Strings point into the database
 * result the fetch keeps until dc_query_fetched_free.
 */
typedef struct {
    dc_stats_t              stats;   /* aggregates; stats uses all four */
    int                     hours;   /* trends */
    const dc_trend_point_t *points;  /* trends: n points */
    const dc_audit_entry_t *entries; /* audit: n entries */
    size_t                  n;
} dc_view_data_t;

typedef int (*dc_view_fn)(const dc_view_meta_t *m, const dc_view_data_t *d, dc_buf_t *out);

/* The views of dc_api.h: each calls the typed function above. */
int dc_view_stats_of(const dc_view_meta_t *m, const dc_view_data_t *d, dc_buf_t *out) DC_WUR;
int dc_view_units_of(const dc_view_meta_t *m, const dc_view_data_t *d, dc_buf_t *out) DC_WUR;
int dc_view_alerts_of(const dc_view_meta_t *m, const dc_view_data_t *d, dc_buf_t *out) DC_WUR;
int dc_view_trends_of(const dc_view_meta_t *m, const dc_view_data_t *d, dc_buf_t *out) DC_WUR;
int dc_view_devices_of(const dc_view_meta_t *m, const dc_view_data_t *d, dc_buf_t *out) DC_WUR;
int dc_view_compliance_of(const dc_view_meta_t *m, const dc_view_data_t *d, dc_buf_t *out) DC_WUR;
int dc_view_audit_of(const dc_view_meta_t *m, const dc_view_data_t *d, dc_buf_t *out) DC_WUR;

/* {"error":{"code":...,"message":...[,"index":n]}}; index < 0 leaves it out. */
int dc_view_error(const char *code, const char *message, int index, dc_buf_t *out) DC_WUR;

/* A flat JSON object from fields, in order: write answers and events. */
typedef enum { DC_VF_STR, DC_VF_INT, DC_VF_BOOL, DC_VF_NULL } dc_vf_type_t;

typedef struct {
    const char  *key;
    dc_vf_type_t type;
    const char  *str; /* DC_VF_STR; NULL becomes null */
    long long    num; /* DC_VF_INT, DC_VF_BOOL */
} dc_view_field_t;

int dc_view_object(const dc_view_field_t *f, size_t n, dc_buf_t *out) DC_WUR;

/* {"status":...,"services":{name:{"ok":b,"latencyMs":n}...}} for /health. */
typedef struct {
    const char *name;
    int         ok;
    double      latency_ms;
} dc_health_service_t;

int dc_view_health(const char *status, const dc_health_service_t *s, size_t n, dc_buf_t *out) DC_WUR;

/* One query type in the admin stats. */
typedef struct {
    const char *name;
    uint64_t    hits, misses;
    long        keys; /* -1: unknown (→ null) */
} dc_admin_qtype_t;

/* GET /api/admin/cache/stats; -1 in a count is unknown (→ null). */
typedef struct {
    uint64_t                hits, misses;
    const dc_admin_qtype_t *qtypes;
    size_t                  nqtypes;
    int                     keys_complete;
    int                     redis_ok;
    long long               used_memory, keys;
    const char *const      *sources; /* invalidation sources, nsources of them */
    const uint64_t         *invalidations;
    size_t                  nsources;
    uint64_t                stale_set_refusals, cache_errors;
} dc_admin_stats_t;

/*
 * {"hits","misses","hitRate","queryTypes":{name:{"hits","misses","hitRate","keys"}},
 *  "keysComplete","redis":{"ok","usedMemoryBytes","keys"},"invalidations":{...},
 *  "staleSetRefusals","cacheErrors"}; a rate is null when there was nothing to divide.
 */
int dc_view_admin_stats(const dc_admin_stats_t *s, dc_buf_t *out) DC_WUR;

#endif
