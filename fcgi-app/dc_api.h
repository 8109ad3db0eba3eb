/*
 * The endpoints of the API, one row each: the only list of them.
 *
 * Everything that varies per endpoint is a column here, and every module
 * that needs it expands these lists instead of keeping a list of its own
 * (nginx describes a module's directives in one ngx_command_t array the
 * same way): the query and write type enums (dc_core.h, dc_request.h), the
 * route label enum of the metrics (dc_metrics.h), the rows the router,
 * parameter parser, key builder, configuration and dispatch read
 * (dc_endpoint.c). Adding an endpoint is one row, its SQL (a fetch or write
 * function), its view, and its tests; see README, "Adding an endpoint".
 *
 * Read endpoints (GET, and HEAD):
 *   X(NAME, method, label, path, scope, key_rest, key_parts, ttl_var, params, fetch, view)
 *   NAME       DC_Q_<NAME> and DC_MR_<NAME>
 *   label      query type: the second segment of the cache key, the
 *              query_type and route labels of the metrics
 *   path       {org} is the organization id, {unit} a unit id
 *   scope      DC_SCOPE_* bits the caller's token must hold (dc_auth); the
 *              path's organization must also be one of the token's, and
 *              forceRefresh=true adds DC_SCOPE_REFRESH
 *   key_rest   key segments between the label and ":org:{org}"
 *   key_parts  what follows the organization (DC_KEY_*); DC_KEY_NONE: never cached
 *   ttl_var    variable overriding CACHE_TTL_SECONDS, or NULL
 *   params     accepted query parameters (DC_PARAM_BIT(...) of DC_API_PARAMS)
 *   fetch      dc_query.c: declares its statements, runs them with the
 *              existence checks in one round trip, reads the rows (dc_fetch_fn)
 *   view       dc_view.c: renders them (dc_view_fn)
 * Rows of cacheable queries come first and the one never-cached query
 * (audit) last: DC_Q_AUDIT also counts the cached types.
 *
 * Write endpoints (POST, one transaction, invalidate, announce):
 *   X(NAME, method, label, path, scope, body_max, run)
 *   NAME       DC_W_<NAME> and DC_MR_<NAME>
 *   path       {org} organization id; {alert}, {device} the item written
 *   body_max   the largest body it takes (dc_body.h), 413 beyond; nginx's
 *              client_max_body_size of its location says the same
 *   scope      as for reads; without {org} (ingest) the write function
 *              checks every item against the token's organizations
 *   run        dc_query_write.c: the write (dc_write_fn); it reports, per
 *              organization, which rows of DC_API_CHANGES it changed
 *
 * What data a write changes, and which cached answers read it (dc_inval):
 *   X(NAME, kind, queries)
 *   NAME       DC_CHANGE_<NAME>, DC_CHANGE_BIT(NAME)
 *   kind       the kind of its cache_outbox rows (sql/invalidation.sql)
 *   queries    DC_QBIT(...) of every query type whose SQL (dc_query.c)
 *              reads that data: their generations move, the others' stay
 * OTHER is everything else (a table or kind no row names, a row of an
 * unknown kind, a change of organizations, sites, units or devices beyond
 * the columns named here): every cached query type.
 */
#ifndef DC_API_H
#define DC_API_H

/* clang-format off */
#define DC_API_QUERIES(X)                                                                                     \
    X(STATS, "GET", "stats", "/api/dashboard/orgs/{org}/stats",                                               \
      DC_SCOPE_READ, "", DC_KEY_ORG, "CACHE_TTL_STATS_SECONDS",                                               \
      DC_PARAM_BIT(FORCE), dc_query_fetch_stats, dc_view_stats_of)                                            \
    X(UNITS, "GET", "units", "/api/dashboard/orgs/{org}/units/status",                                        \
      DC_SCOPE_READ, ":status", DC_KEY_ORG, "CACHE_TTL_UNITS_SECONDS",                                        \
      DC_PARAM_BIT(FORCE), dc_query_fetch_units, dc_view_units_of)                                            \
    X(ALERTS, "GET", "alerts", "/api/dashboard/orgs/{org}/alerts/count",                                      \
      DC_SCOPE_READ, ":count", DC_KEY_ORG | DC_KEY_UNIT_IF_GIVEN, "CACHE_TTL_ALERTS_SECONDS",                 \
      DC_PARAM_BIT(FORCE) | DC_PARAM_BIT(UNIT), dc_query_fetch_alerts, dc_view_alerts_of)                     \
    X(TEMPERATURE, "GET", "temperature", "/api/dashboard/orgs/{org}/units/{unit}/temperature/trends",         \
      DC_SCOPE_READ, ":trends", DC_KEY_ORG | DC_KEY_UNIT | DC_KEY_HOURS, "CACHE_TTL_TEMPERATURE_SECONDS",     \
      DC_PARAM_BIT(FORCE) | DC_PARAM_BIT(HOURS), dc_query_fetch_trends, dc_view_trends_of)                    \
    X(DEVICES, "GET", "devices", "/api/dashboard/orgs/{org}/devices/online",                                  \
      DC_SCOPE_READ, ":online", DC_KEY_ORG, "CACHE_TTL_DEVICES_SECONDS",                                      \
      DC_PARAM_BIT(FORCE), dc_query_fetch_devices, dc_view_devices_of)                                        \
    X(COMPLIANCE, "GET", "compliance", "/api/dashboard/orgs/{org}/compliance",                                \
      DC_SCOPE_READ, "", DC_KEY_ORG, "CACHE_TTL_COMPLIANCE_SECONDS",                                          \
      DC_PARAM_BIT(FORCE), dc_query_fetch_compliance, dc_view_compliance_of)                                  \
    X(AUDIT, "GET", "audit", "/api/dashboard/orgs/{org}/audit",                                               \
      DC_SCOPE_READ, "", DC_KEY_NONE, NULL,                                                                   \
      DC_PARAM_BIT(LIMIT), dc_query_fetch_audit, dc_view_audit_of)

#define DC_API_WRITES(X)                                                                                      \
    X(INGEST, "POST", "ingest", "/api/ingest/readings", DC_SCOPE_INGEST, DC_BODY_MAX, dc_query_write_ingest)  \
    X(ALERT_CREATE, "POST", "alert_create", "/api/dashboard/orgs/{org}/alerts", DC_SCOPE_WRITE,               \
      DC_BODY_MAX_SMALL, dc_query_write_alert_create)                                                         \
    X(ALERT_RESOLVE, "POST", "alert_resolve", "/api/dashboard/orgs/{org}/alerts/{alert}/resolve",             \
      DC_SCOPE_WRITE, DC_BODY_MAX_SMALL, dc_query_write_alert_resolve)                                        \
    X(DEVICE_STATUS, "POST", "device_status", "/api/dashboard/orgs/{org}/devices/{device}/status",            \
      DC_SCOPE_WRITE, DC_BODY_MAX_SMALL, dc_query_write_device_status)

/*
 * readings: units status (latest reading per unit), trends and compliance
 * read them, and stats holds all three. units.latest: the latest state
 * ingest keeps on units (last_temperature, last_reading_at), read by no
 * query today, always written with readings: it moves what they move.
 * devices.seen: an update of devices that changes only last_seen_at
 * (ingest, device status), read by devices online. alerts: the open
 * alerts, read by alerts count. stats is the composite of units, alerts,
 * devices and compliance and moves with each of them.
 */
#define DC_API_CHANGES(X)                                                                                     \
    X(READINGS, "readings",                                                                                   \
      DC_QBIT(STATS) | DC_QBIT(UNITS) | DC_QBIT(TEMPERATURE) | DC_QBIT(COMPLIANCE))                           \
    X(UNIT_LATEST, "units.latest",                                                                            \
      DC_QBIT(STATS) | DC_QBIT(UNITS) | DC_QBIT(TEMPERATURE) | DC_QBIT(COMPLIANCE))                           \
    X(DEVICE_SEEN, "devices.seen", DC_QBIT(STATS) | DC_QBIT(DEVICES))                                         \
    X(ALERTS, "alerts", DC_QBIT(STATS) | DC_QBIT(ALERTS))                                                     \
    X(OTHER, "*", DC_QBITS_CACHED)

/*
 * Service routes, outside the API and its cache: X(NAME, label, path, scope).
 * NAME gives DC_ROUTE_<NAME> and DC_MR_<NAME>; label is the route label of
 * the metrics; GET and HEAD only; scope: what a caller's token must hold
 * (0: none; nginx restricts /metrics and /api/admin/ by address). The
 * answer of each is written by its case in dc_app_handle (dc_health).
 */
#define DC_API_SERVICES(X)                                                                                    \
    X(HEALTH, "health", "/health", 0u)                                                                        \
    X(METRICS, "metrics", "/metrics", 0u)                                                                     \
    X(STATUS, "status", "/status", 0u)                                                                        \
    X(ADMIN_STATS, "admin", "/api/admin/cache/stats", DC_SCOPE_ADMIN)

/*
 * Query parameters: X(NAME, name, kind, field, min, max, default, code, message).
 * kind DC_PK_BOOL (true/false/1/0), DC_PK_INT (min..max, into an int field
 * of dc_request_t; its message is made from the bounds), DC_PK_UUID (into a
 * char[37] field). Every field is set to its default on every request,
 * whether the endpoint takes the parameter or not.
 */
#define DC_API_PARAMS(X)                                                                                      \
    X(FORCE, "forceRefresh", DC_PK_BOOL, force_refresh, 0, 1, 0,                                              \
      "invalid_parameter", "forceRefresh must be true or false")                                              \
    X(HOURS, "hours", DC_PK_INT, hours, 1, DC_HOURS_MAX, DC_HOURS_DEFAULT, "invalid_parameter", NULL)         \
    X(LIMIT, "limit", DC_PK_INT, limit, 1, DC_LIMIT_MAX, DC_LIMIT_DEFAULT, "invalid_parameter", NULL)         \
    X(UNIT, "unitId", DC_PK_UUID, unit_id, 0, 0, 0,                                                           \
      "invalid_id", "unitId must be a UUID")
/* clang-format on */

/* What follows "dashboard:<label><key_rest>:org:{org}" in a key. */
#define DC_KEY_NONE          0u /* never cached */
#define DC_KEY_ORG           1u /* every cached key carries the organization */
#define DC_KEY_UNIT_IF_GIVEN 2u /* ":unit:{unit}" when a unit id was given */
#define DC_KEY_UNIT          4u /* ":unit:{unit}" always */
#define DC_KEY_HOURS         8u /* ":hours:{h}" */

/*
 * What a caller may do (the scope claim of a token, dc_auth). A row names
 * the scopes its endpoint needs; the admin routes need DC_SCOPE_ADMIN and
 * /health and /metrics need none (dc_app).
 */
#define DC_SCOPE_READ    1u
#define DC_SCOPE_WRITE   2u
#define DC_SCOPE_INGEST  4u
#define DC_SCOPE_REFRESH 8u
#define DC_SCOPE_ADMIN   16u

#define DC_PARAM_BIT(name) (1u << DC_PARAM_##name)

/* A query type's bit in a mask of query types (DC_Q_<NAME> of dc_core.h). */
#define DC_QBIT(name)       (1u << DC_Q_##name)
#define DC_QBIT_OF(q)       (1u << (unsigned)(q))
/* Every cached query type: all but the last row (audit, never cached). */
#define DC_QBITS_CACHED     ((1u << DC_Q_AUDIT) - 1u)
#define DC_CHANGE_BIT(name) (1u << DC_CHANGE_##name)

#define DC_API_ENUM_CHANGE(NAME, ...) DC_CHANGE_##NAME,
typedef enum { DC_API_CHANGES(DC_API_ENUM_CHANGE) DC_CHANGE_COUNT } dc_change_t;
#undef DC_API_ENUM_CHANGE

#define DC_API_ENUM_PARAM(NAME, ...) DC_PARAM_##NAME,
typedef enum { DC_API_PARAMS(DC_API_ENUM_PARAM) DC_PARAM_COUNT } dc_param_t;
#undef DC_API_ENUM_PARAM

#endif
