/*
 * Configuration from the environment, parsed once at start-up from one table
 * with bounds. Every error names the variable and what it accepts, e.g.
 * "CACHE_TTL_SECONDS must be an integer between 1 and 86400 (got \"abc\")".
 */
#ifndef DC_CONFIG_H
#define DC_CONFIG_H

#include "dc_core.h"
#include "dc_listen.h"
#include "dc_log.h"

#define DC_DEFAULT_DATABASE_URL "postgresql://dashcache@127.0.0.1:25432/dashcache"
#define DC_DEFAULT_REDIS_URL    "redis://127.0.0.1:26379/0"

typedef struct {
    char redis_host[256]; /* empty when redis_unix is used */
    int  redis_port;
    char redis_unix[256]; /* unix socket path, or empty */
    int  redis_db;
    char redis_user[128];
    char redis_password[256];
} dc_redis_addr_t;

#define DC_SENTINELS_MAX     8
#define DC_SENTINEL_NAME_MAX 64

/*
 * REDIS_SENTINELS and REDIS_MASTER_NAME: where to ask for the primary
 * (dc_redis). n == 0 (unset): REDIS_URL's host is the primary, as always;
 * otherwise REDIS_URL gives only the user, password and database.
 */
typedef struct {
    int  n;
    char host[DC_SENTINELS_MAX][256];
    int  port[DC_SENTINELS_MAX];
    char master_name[DC_SENTINEL_NAME_MAX + 1]; /* REDIS_MASTER_NAME */
    char password[256];                         /* REDIS_SENTINEL_PASSWORD; "" = none */
} dc_sentinels_t;

/* Who may call the API (dc_auth): AUTH_MODE and its variables. */
typedef enum {
    DC_AUTH_JWT = 0, /* bearer tokens verified with the keys of AUTH_KEYS_FILE */
    DC_AUTH_TRUSTED, /* the identity nginx passes as DASHCACHE_AUTH_* FastCGI params */
} dc_auth_mode_t;

typedef struct {
    dc_auth_mode_t mode;
    int            clock_skew_s;   /* AUTH_CLOCK_SKEW_SECONDS, tolerance of exp and nbf */
    char           keys_file[512]; /* AUTH_KEYS_FILE; "" when unset */
    char           issuer[256];    /* AUTH_ISSUER; "" = not checked */
    char           audience[256];  /* AUTH_AUDIENCE; "" = not checked */
} dc_auth_config_t;

/* A Redis Cluster seed node of REDIS_CLUSTER_NODES. */
#define DC_CLUSTER_SEEDS_MAX 16
typedef struct {
    char host[64];
    int  port;
} dc_redis_seed_t;

typedef struct {
    char             database_url[1024];
    char             database_read_url[1024]; /* DATABASE_READ_URL: misses may read a standby; "" = off */
    dc_auth_config_t auth;
    dc_redis_addr_t  redis;
    dc_redis_seed_t  redis_cluster[DC_CLUSTER_SEEDS_MAX]; /* REDIS_CLUSTER_NODES: seeds of a Redis Cluster */
    int              redis_cluster_n;                     /* their number; 0: one Redis, REDIS_URL's */
    dc_sentinels_t   sentinel;
    int              ttl[DC_Q_COUNT]; /* seconds; DC_Q_AUDIT unused */
    int              redis_connect_timeout_ms;
    int              redis_command_timeout_ms;
    int              redis_retry_interval_ms; /* back-off after a Redis failure */
    int              db_connect_timeout_s;
    int              db_statement_timeout_ms;
    int              db_retry_interval_ms; /* back-off after a failed connect */
    int              fcgi_io_timeout_ms;   /* reading a request, and writing its answer, each */
    int              request_timeout_ms;   /* REQUEST_TIMEOUT_MS: one request's time limit; 0: none */
    int              slowlog_ms;   /* SLOWLOG_MS: a request slower than this is logged (dc_trace); 0: none */
    int              max_requests; /* MAX_REQUESTS: a worker retires after this many; 0: never */
    dc_allow_t       fcgi_allow;   /* FCGI_WEB_SERVER_ADDRS */
    int              device_online_s;
    int              retry_after_s;           /* Retry-After on a 503 */
    int              health_timeout_ms;       /* bound of each /health check */
    int              trust_probe_interval_ms; /* dc_trust: a write probe per host this often */
    int              cache_max_stale_s;       /* how long past its TTL an answer may be served stale */
    int              cache_lease_enabled;     /* CACHE_LEASE=on|off: one query per cold key */
    int              cache_lease_ms;  /* how long a lease lasts (a holder that overruns it is taken over) */
    int              cache_enabled;   /* CACHE=on|off; off: reads never touch Redis */
    int              metrics_enabled; /* METRICS=on|off */
    int              ingest_max_future_s;     /* recordedAt at most this far ahead of now */
    int              readings_retention_days; /* recordedAt at most this far back */
    int              idempotency_ttl_s;       /* how long an Idempotency-Key's answer is kept */
    int              consistency_per_s;       /* CONSISTENCY_SAMPLE_PER_S (dc_sampler); 0: off */
    int              breakers_enabled;        /* BREAKERS=on|off (dc_breaker) */
    int              breaker_failures;        /* consecutive failures that open a breaker */
    int              breaker_window_ms;       /* the window of the failure rate */
    int              breaker_min_requests;    /* calls in the window before the rate counts */
    int              breaker_failure_percent; /* failure rate over the window that opens */
    int              breaker_open_ms;         /* open this long before one probe goes through */
    dc_log_level_t   log_level;
    dc_err_t         err; /* why dc_config_load refused the environment */
} dc_config_t;

/*
 * Parses REDIS_CLUSTER_NODES, "host:port[,host:port...]" (at most
 * DC_CLUSTER_SEEDS_MAX; a host name or address, [v6]:port too) into seeds.
 * Their number, or DC_EINVAL with the reason in err.
 */
int dc_config_parse_cluster_nodes(const char *s, dc_redis_seed_t *seeds, dc_err_t *err) DC_WUR;

/*
 * Fills cfg from the environment (getenv). DC_OK, or DC_EINVAL with a
 * message in cfg->err.str naming the variable.
 */
int dc_config_load(dc_config_t *cfg) DC_WUR;

/* Called with each problem dc_config_check finds (a message naming the variable; no secret). */
typedef void (*dc_config_report_fn)(const char *problem, void *arg);

/*
 * dc_config_load that goes on after a problem: every variable is checked
 * and fn (NULL is fine) is called with each problem, in the order
 * dc_config_load would meet them (dashcachectl check-config). Returns the
 * number of problems; when there are any, cfg->err holds the first one,
 * the message dc_config_load gives.
 */
int dc_config_check(dc_config_t *cfg, dc_config_report_fn fn, void *arg);

/*
 * Fills ac from AUTH_MODE, AUTH_KEYS_FILE, AUTH_ISSUER, AUTH_AUDIENCE and
 * AUTH_CLOCK_SKEW_SECONDS (dc_config_load calls it; dashcachectl alone).
 * Reads no file: dc_auth_new loads and checks the keys. DC_OK, or DC_EINVAL
 * with a message in err (NULL is fine) naming the variable.
 */
int dc_config_load_auth(dc_auth_config_t *ac, dc_err_t *err) DC_WUR;

/*
 * Parses redis://[[user]:password@]host[:port][/db] or
 * unix:///path/to/redis.sock[?db=N] into out. DC_OK or DC_EINVAL with a
 * message in err (without the variable name; NULL is fine).
 */
int dc_config_parse_redis_url(const char *url, dc_redis_addr_t *out, dc_err_t *err) DC_WUR;

/*
 * Parses REDIS_SENTINELS ("host:port,host:port,...", IPv6 as [addr]:port)
 * into out->n, host and port. DC_OK or DC_EINVAL with a message in err
 * (without the variable name; NULL is fine).
 */
int dc_config_parse_sentinels(const char *list, dc_sentinels_t *out, dc_err_t *err) DC_WUR;

#endif
