/*
 * dashcachectl status: what the running pool says of itself, read the way
 * a monitoring system reads it — GET /health and GET /metrics through
 * nginx (the page is the sum of every worker's shared-memory slots, and
 * nginx lets only loopback read /metrics) — summed up for a person, or as
 * JSON. Healthy means /health says healthy, workers are alive and the
 * invalidator is up.
 */
#include <getopt.h>
#include <json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dc_ctl.h"
#include "dc_http.h"

void dc_ctl_status_help(FILE *f)
{
    fprintf(f, "usage: " DC_CTL_PROGRAM " status [--url URL] [--timeout MS] [--json]\n"
               "\n"
               "Shows the pool (workers, requests, restarts), PostgreSQL and Redis (reachable,\n"
               "latency, circuit breaker), the invalidator, and the hit rate, from GET /health\n"
               "and GET /metrics through nginx (which serves /metrics to loopback only).\n"
               "\n"
               "  --url URL      the pool's nginx (default DASHCACHE_URL, else\n"
               "                 http://127.0.0.1:$HTTP_PORT, 8080)\n"
               "  --timeout MS   for each of the two requests (default 5000)\n"
               "  --json         one JSON object: status, workers, requests, workerRestarts,\n"
               "                 database and redis {ok, latencyMs, breaker}, invalidator {up},\n"
               "                 cache {ok, hitsAllowed, hits, misses, hitRate}\n"
               "\n"
               "Exit status: 0 healthy, 1 degraded, unhealthy or unreachable, 2 usage error.\n");
}

typedef struct {
    int    ok;
    double latency_ms;
    int    breaker; /* dashboard_breaker_state: 0 closed, 1 open, 2 half-open, -1 unknown */
} dep_t;

typedef struct {
    char   health[16]; /* healthy, degraded, unhealthy, or "" when /health did not answer */
    dep_t  db, redis, cache;
    int    have_metrics;
    double workers, invalidator_up, hits_allowed, requests, restarts, hits, misses;
} status_t;

static void read_dep(json_object *services, const char *name, dep_t *d)
{
    json_object *o, *v;

    if (services != NULL && json_object_object_get_ex(services, name, &o)) {
        if (json_object_object_get_ex(o, "ok", &v))
            d->ok = json_object_get_boolean(v);
        if (json_object_object_get_ex(o, "latencyMs", &v))
            d->latency_ms = json_object_get_double(v);
    }
}

static void read_health(const char *body, status_t *s)
{
    json_object *root = json_tokener_parse(body), *v, *services = NULL;

    if (root == NULL)
        return;
    if (json_object_object_get_ex(root, "status", &v) && json_object_is_type(v, json_type_string))
        snprintf(s->health, sizeof(s->health), "%s", json_object_get_string(v));
    json_object_object_get_ex(root, "services", &services);
    read_dep(services, "database", &s->db);
    read_dep(services, "redis", &s->redis);
    read_dep(services, "cache", &s->cache);
    json_object_put(root);
}

/* The sum of the samples of family name (whatever their labels) whose labels contain want (NULL: any). */
static double sample_sum(const char *text, const char *name, const char *want, int *found)
{
    size_t      n = strlen(name);
    double      sum = 0;
    const char *p = text;

    *found = 0;
    while (p != NULL && *p != '\0') {
        const char *eol = strchr(p, '\n');
        if (strncmp(p, name, n) == 0 && (p[n] == ' ' || p[n] == '{')) {
            const char *val = p[n] == '{' ? strchr(p + n, '}') : p + n;
            const char *labels_end = val;
            if (val != NULL && (want == NULL || (p[n] == '{' && strstr(p + n, want) != NULL &&
                                                 strstr(p + n, want) < labels_end))) {
                sum += strtod(val + (p[n] == '{'), NULL);
                *found = 1;
            }
        }
        p = eol ? eol + 1 : NULL;
    }
    return sum;
}

static void read_metrics(const char *text, status_t *s)
{
    int f, any = 0;

    s->workers = sample_sum(text, "dashboard_workers", NULL, &f);
    any |= f;
    s->invalidator_up = sample_sum(text, "dashboard_invalidator_up", NULL, &f);
    s->hits_allowed = sample_sum(text, "dashboard_cache_hits_allowed", NULL, &f);
    s->requests = sample_sum(text, "dashboard_http_requests_total", NULL, &f);
    s->restarts = sample_sum(text, "dashboard_worker_restarts_total", NULL, &f);
    s->hits = sample_sum(text, "dashboard_cache_hit_total", NULL, &f);
    s->misses = sample_sum(text, "dashboard_cache_miss_total", NULL, &f);
    s->redis.breaker = (int)sample_sum(text, "dashboard_breaker_state", "dependency=\"redis\"", &f);
    if (!f)
        s->redis.breaker = -1;
    s->db.breaker = (int)sample_sum(text, "dashboard_breaker_state", "dependency=\"postgres\"", &f);
    if (!f)
        s->db.breaker = -1;
    s->have_metrics = any;
}

static const char *breaker_name(int b)
{
    static const char *const names[] = { "closed", "open", "half-open" };
    return b >= 0 && b <= 2 ? names[b] : "unknown";
}

static void print_dep_json(const char *name, const dep_t *d)
{
    printf("\"%s\":{\"ok\":%s,\"latencyMs\":%.3f,\"breaker\":\"%s\"}", name, d->ok ? "true" : "false",
           d->latency_ms, breaker_name(d->breaker));
}

int dc_ctl_status(int argc, char **argv)
{
    static const struct option opts[] = {
        { "url", required_argument, NULL, 'u' },
        { "timeout", required_argument, NULL, 't' },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    char             url[512];
    const char      *given_url = NULL;
    dc_http_target_t t;
    dc_err_t         err, merr;
    dc_buf_t         body = DC_BUF_INIT;
    status_t         s = { .db.breaker = -1, .redis.breaker = -1 };
    int              opt, json = 0, timeout_ms = 5000, code = 0, mcode = 0, hrc, mrc;
    const char      *verdict;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 'u':
            given_url = optarg;
            break;
        case 't':
            if (dc_ctl_int_option("status", "timeout", optarg, 1, 600000, &timeout_ms) != DC_OK)
                return DC_CTL_USAGE;
            break;
        case 'j':
            json = 1;
            break;
        case 'h':
            dc_ctl_status_help(stdout);
            return DC_CTL_OK;
        default:
            dc_ctl_status_help(stderr);
            return DC_CTL_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, DC_CTL_PROGRAM " status: unexpected argument\n");
        return DC_CTL_USAGE;
    }
    if (dc_ctl_target("status", given_url, url, sizeof(url), &t) != DC_OK)
        return DC_CTL_USAGE;

    hrc = dc_http_get(&t, "/health", NULL, timeout_ms, &body, &code, &err);
    if (hrc == DC_OK)
        read_health(body.data ? body.data : "", &s);
    if (hrc == DC_OK && s.health[0] == '\0') /* an answer, but no health report: err was never set */
        dc_err_set(&err, DC_ERROR, "HTTP %d, not a health report", code);
    mrc = dc_http_get(&t, "/metrics", NULL, timeout_ms, &body, &mcode, &merr);
    if (mrc == DC_OK && mcode == 200)
        read_metrics(body.data ? body.data : "", &s);
    dc_buf_free(&body);

    if (s.health[0] == '\0')
        verdict = "unreachable";
    else if (strcmp(s.health, "healthy") == 0 && (!s.have_metrics || (s.workers > 0 && s.invalidator_up > 0)))
        verdict = "healthy";
    else if (strcmp(s.health, "unhealthy") == 0)
        verdict = "unhealthy";
    else
        verdict = "degraded";

    if (json) {
        printf("{\"url\":");
        dc_ctl_json_str(stdout, url);
        printf(",\"status\":\"%s\",\"health\":\"%s\"", verdict, s.health);
        if (s.have_metrics)
            printf(",\"workers\":%.0f,\"requests\":%.0f,\"workerRestarts\":%.0f", s.workers, s.requests,
                   s.restarts);
        putchar(',');
        print_dep_json("database", &s.db);
        putchar(',');
        print_dep_json("redis", &s.redis);
        if (s.have_metrics)
            printf(",\"invalidator\":{\"up\":%s}", s.invalidator_up > 0 ? "true" : "false");
        printf(",\"cache\":{\"ok\":%s", s.cache.ok ? "true" : "false");
        if (s.have_metrics)
            printf(",\"hitsAllowed\":%s,\"hits\":%.0f,\"misses\":%.0f,\"hitRate\":%.4f",
                   s.hits_allowed > 0 ? "true" : "false", s.hits, s.misses,
                   s.hits + s.misses > 0 ? s.hits / (s.hits + s.misses) : 0.0);
        printf("}}\n");
    } else if (s.health[0] == '\0') {
        printf("dashcache at %s: unreachable (%s)\n", url, err.str);
    } else {
        printf("dashcache at %s: %s\n", url, verdict);
        if (s.have_metrics)
            printf("  pool         %.0f workers, %.0f requests answered, %.0f restarts\n", s.workers,
                   s.requests, s.restarts);
        printf("  postgresql   %s (%.1f ms), breaker %s\n", s.db.ok ? "ok" : "DOWN", s.db.latency_ms,
               breaker_name(s.db.breaker));
        printf("  redis        %s (%.1f ms), breaker %s\n", s.redis.ok ? "ok" : "DOWN", s.redis.latency_ms,
               breaker_name(s.redis.breaker));
        if (s.have_metrics) {
            printf("  invalidator  %s\n", s.invalidator_up > 0 ? "up" : "DOWN");
            printf("  cache        %s, hits %s; hit rate %.1f%% (%.0f hits, %.0f misses)\n",
                   s.cache.ok ? "ok" : "NOT OK", s.hits_allowed > 0 ? "served" : "STOPPED",
                   s.hits + s.misses > 0 ? 100.0 * s.hits / (s.hits + s.misses) : 0.0, s.hits, s.misses);
        } else {
            printf("  metrics      not readable (%s): /metrics is served to loopback only, or METRICS=off\n",
                   mrc == DC_OK ? "HTTP error" : merr.str);
        }
    }
    return strcmp(verdict, "healthy") == 0 ? DC_CTL_OK : DC_CTL_FAIL;
}
