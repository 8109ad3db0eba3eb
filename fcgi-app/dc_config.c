/*
 * Environment configuration: one table of bounded integers, the TTL
 * variables of dc_api.h, and the URLs.
 */
#include "dc_config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dc_endpoint.h"

typedef struct {
    const char *name;
    size_t      offset;
    int         def;
    int         min;
    int         max;
} int_var_t;

/* clang-format off */
#define CFG_INT(name, field, def, min, max) { name, offsetof(dc_config_t, field), def, min, max }

static const int_var_t int_vars[] = {
    CFG_INT("FCGI_IO_TIMEOUT_MS",         fcgi_io_timeout_ms, 5000, 100, 600000),
    CFG_INT("REQUEST_TIMEOUT_MS",         request_timeout_ms, 10000, 0, 600000),
    CFG_INT("SLOWLOG_MS",                 slowlog_ms, 1000, 0, 600000),
    CFG_INT("MAX_REQUESTS",               max_requests, 0, 0, 1000000000),
    CFG_INT("REDIS_CONNECT_TIMEOUT_MS",   redis_connect_timeout_ms, 100, 1, 60000),
    CFG_INT("REDIS_COMMAND_TIMEOUT_MS",   redis_command_timeout_ms, 100, 1, 60000),
    CFG_INT("REDIS_RETRY_INTERVAL_MS",    redis_retry_interval_ms, 1000, 0, 600000),
    CFG_INT("DB_CONNECT_TIMEOUT_SECONDS", db_connect_timeout_s, 2, 1, 300),
    CFG_INT("DB_STATEMENT_TIMEOUT_MS",    db_statement_timeout_ms, 5000, 1, 3600000),
    CFG_INT("DB_RETRY_INTERVAL_MS",       db_retry_interval_ms, 1000, 0, 600000),
    CFG_INT("DEVICE_ONLINE_SECONDS",      device_online_s, 600, 1, 604800),
    CFG_INT("RETRY_AFTER_SECONDS",        retry_after_s, 5, 1, 3600),
    CFG_INT("HEALTH_TIMEOUT_MS",          health_timeout_ms, 1000, 10, 60000),
    CFG_INT("TRUST_PROBE_INTERVAL_MS",    trust_probe_interval_ms, 250, 20, 5000),
    CFG_INT("CACHE_MAX_STALE_SECONDS",    cache_max_stale_s, 300, 0, 86400),
    CFG_INT("CACHE_LEASE_MS",             cache_lease_ms, 2000, 10, 60000),
    CFG_INT("INGEST_MAX_FUTURE_SECONDS",  ingest_max_future_s, 300, 0, 86400),
    CFG_INT("READINGS_RETENTION_DAYS",    readings_retention_days, 30, 1, 3650),
    CFG_INT("IDEMPOTENCY_KEY_TTL_SECONDS", idempotency_ttl_s, 86400, 60, 604800),
    CFG_INT("CONSISTENCY_SAMPLE_PER_S",   consistency_per_s, 2, 0, 100),
    CFG_INT("BREAKER_FAILURES",           breaker_failures, 5, 1, 10000),
    CFG_INT("BREAKER_WINDOW_MS",          breaker_window_ms, 5000, 100, 600000),
    CFG_INT("BREAKER_MIN_REQUESTS",       breaker_min_requests, 20, 1, 1000000),
    CFG_INT("BREAKER_FAILURE_PERCENT",    breaker_failure_percent, 50, 1, 100),
    CFG_INT("BREAKER_OPEN_MS",            breaker_open_ms, 1000, 10, 600000),
};
/* clang-format on */

#define TTL_MIN 1
#define TTL_MAX 86400

static int parse_int(const char *s, int min, int max, int *out)
{
    char *end;
    long  v;

    /* strtol would skip leading white space and take a '+' */
    if (!(isdigit((unsigned char)s[0]) || (s[0] == '-' && isdigit((unsigned char)s[1]))))
        return DC_EINVAL;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return DC_EINVAL;
    *out = (int)v;
    return DC_OK;
}

static int env_int(const char *name, int def, int min, int max, int *out, char *err, size_t errlen)
{
    const char *s = getenv(name);

    if (s == NULL || *s == '\0') {
        *out = def;
        return DC_OK;
    }
    if (parse_int(s, min, max, out) != DC_OK) {
        snprintf(err, errlen, "%s must be an integer between %d and %d (got \"%.64s\")", name, min, max, s);
        return DC_EINVAL;
    }
    return DC_OK;
}

/* A switch: on, true or 1; off, false or 0; unset or empty is def. */
static int env_on_off(const char *name, int def, int *out, char *err, size_t errlen)
{
    const char *s = getenv(name);

    *out = def;
    if (s == NULL || *s == '\0')
        return DC_OK;
    if (strcmp(s, "on") == 0 || strcmp(s, "true") == 0 || strcmp(s, "1") == 0) {
        *out = 1;
    } else if (strcmp(s, "off") == 0 || strcmp(s, "false") == 0 || strcmp(s, "0") == 0) {
        *out = 0;
    } else {
        snprintf(err, errlen, "%s must be on or off (got \"%.32s\")", name, s);
        return DC_EINVAL;
    }
    return DC_OK;
}

static int copy_str(char *dst, size_t cap, const char *src, size_t n)
{
    if (n >= cap)
        return DC_EINVAL;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return DC_OK;
}

static int host_ok(const char *h)
{
    if (*h == '\0')
        return 0;
    for (; *h; h++) {
        char c = *h;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '-' || c == ':' || c == '_'))
            return 0;
    }
    return 1;
}

/* Decodes %XX in place (user and password of a URL). DC_OK, or DC_EINVAL for a bad escape or %00. */
static int pct_decode(char *s)
{
    char *w = s;

    for (const char *r = s; *r != '\0'; r++) {
        if (*r == '%') {
            unsigned v = 0;
            for (int i = 1; i <= 2; i++) {
                char c = r[i];
                if (!isxdigit((unsigned char)c))
                    return DC_EINVAL;
                v = v * 16 + (unsigned)(isdigit((unsigned char)c) ? c - '0' : (c | 0x20) - 'a' + 10);
            }
            if (v == 0)
                return DC_EINVAL;
            *w++ = (char)v;
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return DC_OK;
}

static int parse_redis_url(const char *url, dc_redis_addr_t *out, char *err, size_t errlen)
{
    const char *p, *at, *slash, *hostend, *colon;
    char        num[16], shown[128]; /* the URL as an error may quote it: without its password */

    memset(out, 0, sizeof(*out));
    out->redis_port = 6379;
    dc_log_redact(url, shown, sizeof(shown));

    if (strncmp(url, "unix://", 7) == 0) {
        const char *path = url + 7, *q = strchr(path, '?');
        size_t      n = q ? (size_t)(q - path) : strlen(path);
        if (n == 0 || path[0] != '/') {
            snprintf(err, errlen, "a unix socket URL needs an absolute path (unix:///run/redis.sock)");
            return DC_EINVAL;
        }
        if (copy_str(out->redis_unix, sizeof(out->redis_unix), path, n) != DC_OK) {
            snprintf(err, errlen, "the socket path is longer than %zu bytes", sizeof(out->redis_unix) - 1);
            return DC_EINVAL;
        }
        if (q != NULL) {
            if (strncmp(q, "?db=", 4) != 0 || parse_int(q + 4, 0, 1000, &out->redis_db) != DC_OK) {
                snprintf(err, errlen, "the only query it takes is ?db=N with N between 0 and 1000");
                return DC_EINVAL;
            }
        }
        return DC_OK;
    }

    if (strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen, "must start with redis:// or unix:// (got \"%.64s\")", shown);
        return DC_EINVAL;
    }
    p = url + 8;
    slash = strchr(p, '/');
    at = strchr(p, '@');
    if (at != NULL && (slash == NULL || at < slash)) {
        const char *c = memchr(p, ':', (size_t)(at - p));
        if (c == NULL) {
            snprintf(err, errlen, "credentials must be written user:password@ or :password@");
            return DC_EINVAL;
        }
        if (copy_str(out->redis_user, sizeof(out->redis_user), p, (size_t)(c - p)) != DC_OK ||
            copy_str(out->redis_password, sizeof(out->redis_password), c + 1, (size_t)(at - c - 1)) !=
                DC_OK) {
            snprintf(err, errlen, "user or password too long");
            return DC_EINVAL;
        }
        if (pct_decode(out->redis_user) != DC_OK || pct_decode(out->redis_password) != DC_OK) {
            snprintf(err, errlen, "user or password has a bad %%-escape (%%XX, not %%00)");
            return DC_EINVAL;
        }
        p = at + 1;
    }
    hostend = slash ? slash : p + strlen(p);

    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(hostend - p));
        if (rb == NULL) {
            snprintf(err, errlen, "unclosed [ in the host");
            return DC_EINVAL;
        }
        if (copy_str(out->redis_host, sizeof(out->redis_host), p + 1, (size_t)(rb - p - 1)) != DC_OK) {
            snprintf(err, errlen, "host too long");
            return DC_EINVAL;
        }
        colon = rb + 1 < hostend && rb[1] == ':' ? rb + 1 : NULL;
        if (rb + 1 < hostend && colon == NULL) {
            snprintf(err, errlen, "unexpected text after ]");
            return DC_EINVAL;
        }
    } else {
        colon = memchr(p, ':', (size_t)(hostend - p));
        if (copy_str(out->redis_host, sizeof(out->redis_host), p, (size_t)((colon ? colon : hostend) - p)) !=
            DC_OK) {
            snprintf(err, errlen, "host too long");
            return DC_EINVAL;
        }
    }
    if (!host_ok(out->redis_host)) {
        snprintf(err, errlen, "needs a host name or address (got \"%.64s\")", shown);
        return DC_EINVAL;
    }
    if (colon != NULL) {
        size_t n = (size_t)(hostend - colon - 1);
        if (n == 0 || n >= sizeof(num)) {
            snprintf(err, errlen, "port must be an integer between 1 and 65535");
            return DC_EINVAL;
        }
        memcpy(num, colon + 1, n);
        num[n] = '\0';
        if (parse_int(num, 1, 65535, &out->redis_port) != DC_OK) {
            snprintf(err, errlen, "port must be an integer between 1 and 65535 (got \"%s\")", num);
            return DC_EINVAL;
        }
    }
    if (slash != NULL && slash[1] != '\0') {
        if (parse_int(slash + 1, 0, 1000, &out->redis_db) != DC_OK) {
            snprintf(err, errlen, "database number must be an integer between 0 and 1000 (got \"%.16s\")",
                     slash + 1);
            return DC_EINVAL;
        }
    }
    return DC_OK;
}

/* One "host:port" (or "[v6]:port") of n bytes into out's entry i. */
static int parse_sentinel(const char *p, size_t n, dc_sentinels_t *out, int i, char *err, size_t errlen)
{
    const char *colon = NULL, *h = p;
    size_t      hn;
    char        num[16];

    for (size_t k = n; k > 0; k--)
        if (p[k - 1] == ':') {
            colon = p + k - 1;
            break;
        }
    if (colon == NULL) {
        snprintf(err, errlen, "entry %d must be host:port (got \"%.*s\")", i + 1, (int)(n < 64 ? n : 64), p);
        return DC_EINVAL;
    }
    hn = (size_t)(colon - p);
    if (hn >= 2 && p[0] == '[' && colon[-1] == ']') {
        h = p + 1;
        hn -= 2;
    }
    if (copy_str(out->host[i], sizeof(out->host[i]), h, hn) != DC_OK || !host_ok(out->host[i])) {
        snprintf(err, errlen, "entry %d needs a host name or address (got \"%.*s\")", i + 1,
                 (int)(n < 64 ? n : 64), p);
        return DC_EINVAL;
    }
    if (copy_str(num, sizeof(num), colon + 1, n - (size_t)(colon - p) - 1) != DC_OK ||
        parse_int(num, 1, 65535, &out->port[i]) != DC_OK) {
        snprintf(err, errlen, "entry %d: port must be an integer between 1 and 65535 (got \"%.*s\")", i + 1,
                 (int)(n < 64 ? n : 64), p);
        return DC_EINVAL;
    }
    return DC_OK;
}

static int parse_sentinels(const char *list, dc_sentinels_t *out, char *err, size_t errlen)
{
    const char *p = list;

    out->n = 0;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t      n = comma ? (size_t)(comma - p) : strlen(p);

        if (out->n == DC_SENTINELS_MAX) {
            snprintf(err, errlen, "takes at most %d sentinels", DC_SENTINELS_MAX);
            return DC_EINVAL;
        }
        if (n == 0) {
            snprintf(err, errlen, "entry %d is empty (a list is host:port,host:port)", out->n + 1);
            return DC_EINVAL;
        }
        if (parse_sentinel(p, n, out, out->n, err, errlen) != DC_OK)
            return DC_EINVAL;
        out->n++;
        if (comma == NULL)
            return DC_OK;
        p = comma + 1;
    }
}

/* A master name as Sentinel knows it: letters, digits, '.', '-' and '_'. */
static int master_name_ok(const char *s)
{
    size_t n = strlen(s);

    return n > 0 && n <= DC_SENTINEL_NAME_MAX &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* A string variable into dst; "" when unset. */
static int env_str(const char *name, char *dst, size_t cap, char *err, size_t errlen)
{
    const char *s = getenv(name);

    dst[0] = '\0';
    if (s == NULL)
        return DC_OK;
    if (copy_str(dst, cap, s, strlen(s)) != DC_OK) {
        snprintf(err, errlen, "%s is longer than %zu bytes", name, cap - 1);
        return DC_EINVAL;
    }
    return DC_OK;
}

/*
 * Where load() and load_auth() put their problems: each one goes to fn (if
 * any) as soon as it is found, and the first one is kept for the callers
 * that want one message. A check writes its message into cur and calls
 * bad(); a check that returns DC_EINVAL with its message in cur instead is
 * reported by the caller, so the message is never lost.
 */
typedef struct {
    char                cur[256];
    char                first[256];
    int                 n;
    dc_config_report_fn fn;
    void               *arg;
} rep_t;

static void bad(rep_t *r)
{
    if (r->cur[0] == '\0')
        return;
    if (r->n++ == 0)
        memcpy(r->first, r->cur, sizeof(r->first));
    if (r->fn != NULL)
        r->fn(r->cur, r->arg);
    r->cur[0] = '\0';
}

#define ERR r->cur, sizeof(r->cur)
#define CHECK(call)          \
    do {                     \
        if ((call) != DC_OK) \
            bad(r);          \
    } while (0)

static int load_auth(dc_auth_config_t *ac, rep_t *r)
{
    const char *s = getenv("AUTH_MODE");

    memset(ac, 0, sizeof(*ac));
    ac->mode = DC_AUTH_JWT;
    if (s != NULL && *s != '\0') {
        if (strcmp(s, "jwt") == 0) {
            ac->mode = DC_AUTH_JWT;
        } else if (strcmp(s, "trusted") == 0) {
            ac->mode = DC_AUTH_TRUSTED;
        } else {
            snprintf(ERR, "AUTH_MODE must be jwt or trusted (got \"%.32s\")", s);
            bad(r);
        }
    }
    CHECK(env_int("AUTH_CLOCK_SKEW_SECONDS", 30, 0, 600, &ac->clock_skew_s, ERR));
    CHECK(env_str("AUTH_KEYS_FILE", ac->keys_file, sizeof(ac->keys_file), ERR));
    CHECK(env_str("AUTH_ISSUER", ac->issuer, sizeof(ac->issuer), ERR));
    CHECK(env_str("AUTH_AUDIENCE", ac->audience, sizeof(ac->audience), ERR));
    return r->n > 0 ? DC_EINVAL : DC_OK;
}

int dc_config_parse_cluster_nodes(const char *s, dc_redis_seed_t *seeds, dc_err_t *err)
{
    int n = 0;

    for (const char *p = s;; n++) {
        const char *comma = strchr(p, ',');
        size_t      len = comma ? (size_t)(comma - p) : strlen(p);
        const char *colon = NULL, *host = p;
        size_t      hlen;
        char        port[8];
        int         v;

        for (size_t i = 0; i < len; i++)
            if (p[i] == ':')
                colon = p + i;
        if (n >= DC_CLUSTER_SEEDS_MAX) {
            dc_err_set(err, DC_EINVAL, "at most %d nodes", DC_CLUSTER_SEEDS_MAX);
            return DC_EINVAL;
        }
        hlen = colon ? (size_t)(colon - p) : 0;
        if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
            host++;
            hlen -= 2;
        }
        if (colon == NULL || hlen == 0 || hlen >= sizeof(seeds[n].host) ||
            (size_t)(p + len - colon - 1) >= sizeof(port)) {
            dc_err_set(err, DC_EINVAL, "node %d must be host:port (got \"%.*s\")", n + 1,
                       (int)(len > 64 ? 64 : len), p);
            return DC_EINVAL;
        }
        memcpy(seeds[n].host, host, hlen);
        seeds[n].host[hlen] = '\0';
        memcpy(port, colon + 1, (size_t)(p + len - colon - 1));
        port[p + len - colon - 1] = '\0';
        if (!host_ok(seeds[n].host) || parse_int(port, 1, 65535, &v) != DC_OK) {
            dc_err_set(err, DC_EINVAL,
                       "node %d must be host:port with a port between 1 and 65535 (got \"%.*s\")", n + 1,
                       (int)(len > 64 ? 64 : len), p);
            return DC_EINVAL;
        }
        seeds[n].port = v;
        if (comma == NULL)
            return n + 1;
        p = comma + 1;
    }
}

/* REDIS_CLUSTER_NODES, with what REDIS_URL may say then (its password; no database but 0). */
static int load_cluster(dc_config_t *cfg, char *err, size_t errlen)
{
    const char *s = getenv("REDIS_CLUSTER_NODES"), *sentinels = getenv("REDIS_SENTINELS");
    dc_err_t    e;
    int         n;

    cfg->redis_cluster_n = 0;
    if (s == NULL || *s == '\0')
        return DC_OK;
    if (sentinels != NULL && *sentinels != '\0') {
        snprintf(err, errlen, "REDIS_CLUSTER_NODES and REDIS_SENTINELS are both set: give one of them");
        return DC_EINVAL;
    }
    n = dc_config_parse_cluster_nodes(s, cfg->redis_cluster, &e);
    if (n < 0) {
        snprintf(err, errlen, "REDIS_CLUSTER_NODES: %.200s", e.str);
        return DC_EINVAL;
    }
    if (cfg->redis.redis_db != 0 || cfg->redis.redis_unix[0] != '\0') {
        snprintf(err, errlen,
                 "REDIS_URL must name database 0 on a TCP address with REDIS_CLUSTER_NODES (a "
                 "cluster has one database; its password and user still apply)");
        return DC_EINVAL;
    }
    cfg->redis_cluster_n = n;
    return DC_OK;
}

/* REDIS_SENTINELS with REDIS_MASTER_NAME and REDIS_SENTINEL_PASSWORD. */
static int load_sentinel(dc_config_t *cfg, char *err, size_t errlen)
{
    const char *s;
    char        why[256];

    s = getenv("REDIS_SENTINELS");
    if (s != NULL && *s != '\0') {
        if (parse_sentinels(s, &cfg->sentinel, why, sizeof(why)) != DC_OK) {
            snprintf(err, errlen, "REDIS_SENTINELS is invalid: %.200s", why);
            return DC_EINVAL;
        }
        if (cfg->redis.redis_unix[0] != '\0') {
            snprintf(err, errlen,
                     "REDIS_URL must be a redis:// URL with REDIS_SENTINELS (the primary is a TCP "
                     "address)");
            return DC_EINVAL;
        }
        s = getenv("REDIS_MASTER_NAME");
        if (s == NULL || !master_name_ok(s)) {
            snprintf(
                err, errlen,
                "REDIS_MASTER_NAME must be 1 to %d letters, digits, '.', '-' or '_' with REDIS_SENTINELS "
                "(got \"%.64s\")",
                DC_SENTINEL_NAME_MAX, s ? s : "");
            return DC_EINVAL;
        }
        memcpy(cfg->sentinel.master_name, s, strlen(s) + 1);
        if (env_str("REDIS_SENTINEL_PASSWORD", cfg->sentinel.password, sizeof(cfg->sentinel.password), err,
                    errlen) != DC_OK)
            return DC_EINVAL;
    } else if ((s = getenv("REDIS_MASTER_NAME")) != NULL && *s != '\0') {
        snprintf(err, errlen, "REDIS_MASTER_NAME is set but REDIS_SENTINELS is not (both, or neither)");
        return DC_EINVAL;
    }

    return DC_OK;
}

/* Every variable is looked at, whatever an earlier one was: check-config says every problem. */
static int load(dc_config_t *cfg, rep_t *r)
{
    const char *s;
    char        why[256];
    dc_err_t    lerr;
    int         ttl;

    memset(cfg, 0, sizeof(*cfg));

    for (size_t i = 0; i < DC_ARRAY_LEN(int_vars); i++) {
        const int_var_t *v = &int_vars[i];
        CHECK(env_int(v->name, v->def, v->min, v->max, (int *)((char *)cfg + v->offset), ERR));
    }

    if (env_int("CACHE_TTL_SECONDS", 60, TTL_MIN, TTL_MAX, &ttl, ERR) != DC_OK) {
        bad(r);
        ttl = 60; /* the per-type variables are still checked, against the default */
    }
    for (int q = 0; q < DC_Q_COUNT; q++) {
        cfg->ttl[q] = ttl;
        const char *var = dc_endpoint_query((dc_qtype_t)q)->ttl_var;
        if (var != NULL)
            CHECK(env_int(var, ttl, TTL_MIN, TTL_MAX, &cfg->ttl[q], ERR));
    }

    s = getenv("DATABASE_URL");
    if (s == NULL || *s == '\0')
        s = DC_DEFAULT_DATABASE_URL;
    if (strlen(s) >= sizeof(cfg->database_url)) {
        snprintf(ERR, "DATABASE_URL is longer than %zu bytes", sizeof(cfg->database_url) - 1);
        bad(r);
    } else {
        memcpy(cfg->database_url, s, strlen(s) + 1);
    }

    s = getenv("DATABASE_READ_URL");
    if (s != NULL && strlen(s) >= sizeof(cfg->database_read_url)) {
        snprintf(ERR, "DATABASE_READ_URL is longer than %zu bytes", sizeof(cfg->database_read_url) - 1);
        bad(r);
    } else if (s != NULL) {
        memcpy(cfg->database_read_url, s, strlen(s) + 1);
    }

    s = getenv("REDIS_URL");
    if (s == NULL || *s == '\0')
        s = DC_DEFAULT_REDIS_URL;
    if (parse_redis_url(s, &cfg->redis, why, sizeof(why)) != DC_OK) {
        snprintf(ERR, "REDIS_URL is invalid: %.200s", why);
        bad(r);
    }

    CHECK(load_cluster(cfg, ERR));
    CHECK(load_sentinel(cfg, ERR));
    load_auth(&cfg->auth, r); /* its problems are counted in r */

    if (dc_listen_allow_parse(getenv("FCGI_WEB_SERVER_ADDRS"), &cfg->fcgi_allow, &lerr) != DC_OK) {
        snprintf(ERR, "FCGI_WEB_SERVER_ADDRS: %.200s", lerr.str);
        bad(r);
    }

    CHECK(env_on_off("CACHE", 1, &cfg->cache_enabled, ERR));
    CHECK(env_on_off("CACHE_LEASE", 1, &cfg->cache_lease_enabled, ERR));
    CHECK(env_on_off("METRICS", 1, &cfg->metrics_enabled, ERR));
    CHECK(env_on_off("BREAKERS", 1, &cfg->breakers_enabled, ERR));

    cfg->log_level = DC_LOG_INFO;
    s = getenv("LOG_LEVEL");
    if (s != NULL && *s != '\0' && dc_log_parse_level(s, &cfg->log_level) != DC_OK) {
        snprintf(ERR, "LOG_LEVEL must be one of debug, info, warn, error (got \"%.32s\")", s);
        bad(r);
    }
    return r->n > 0 ? DC_EINVAL : DC_OK;
}

#undef CHECK
#undef ERR

/* Runs fn over r (load or load_auth); a message left in cur by an early return is reported too. */
static int finish(rep_t *r, int rc)
{
    if (rc != DC_OK && r->cur[0] != '\0')
        bad(r);
    return rc != DC_OK || r->n > 0 ? DC_EINVAL : DC_OK;
}

int dc_config_parse_redis_url(const char *url, dc_redis_addr_t *out, dc_err_t *err)
{
    char why[sizeof(err->str)] = "";
    int  rc = parse_redis_url(url, out, why, sizeof(why));

    return rc == DC_OK ? DC_OK : dc_err_set(err, rc, "%s", why);
}

int dc_config_parse_sentinels(const char *list, dc_sentinels_t *out, dc_err_t *err)
{
    char why[sizeof(err->str)] = "";
    int  rc = parse_sentinels(list, out, why, sizeof(why));

    return rc == DC_OK ? DC_OK : dc_err_set(err, rc, "%s", why);
}

int dc_config_load(dc_config_t *cfg)
{
    rep_t r = { .n = 0 };
    int   rc = finish(&r, load(cfg, &r)); /* starts from a zeroed cfg */

    return rc == DC_OK ? DC_OK : dc_err_set(&cfg->err, rc, "%s", r.first);
}

int dc_config_check(dc_config_t *cfg, dc_config_report_fn fn, void *arg)
{
    rep_t r = { .n = 0, .fn = fn, .arg = arg };

    (void)finish(&r, load(cfg, &r));
    if (r.n > 0)
        dc_err_set(&cfg->err, DC_EINVAL, "%s", r.first);
    return r.n;
}

int dc_config_load_auth(dc_auth_config_t *ac, dc_err_t *err)
{
    rep_t r = { .n = 0 };
    int   rc = finish(&r, load_auth(ac, &r));

    return rc == DC_OK ? DC_OK : dc_err_set(err, rc, "%s", r.first);
}
