/*
 * dashcachectl warm: fills the cache with the dashboards of the hottest
 * (or listed) organizations, after a deploy or a flush, by asking the
 * running pool for them through nginx like any dashboard would. So every
 * answer goes through the normal cache-aside path — the generations, the
 * leases that let one reader per key query PostgreSQL, the breakers — and
 * warm cannot store anything a reader would not have stored. At most K
 * requests are in flight; when the pool keeps answering 503 (PostgreSQL
 * down, its breaker open) warm stops instead of adding to the load.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dc_auth.h"
#include "dc_ctl.h"
#include "dc_db.h"
#include "dc_endpoint.h"
#include "dc_http.h"
#include "dc_orgs.h"
#include "dc_query_orgs.h"
#include "dc_request.h"

#define WARM         "warm"
#define TOKEN_TTL_S  900
#define DRAW_TTY_MS  100
#define DRAW_LINE_MS 1000

void dc_ctl_warm_help(FILE *f)
{
    fprintf(f, "usage: " DC_CTL_PROGRAM " warm [--orgs top:N | all | FILE] [--concurrency K] [--url URL]\n"
               "                        [--token TOKEN] [--keys FILE] [--timeout MS] [--json]\n"
               "\n"
               "Fills the cache with the dashboards of organizations (every cached per-organization\n"
               "answer: stats, units, alerts, devices, compliance) by requesting them from the\n"
               "running pool through nginx, so the normal cache-aside path applies (generations,\n"
               "leases, breakers). Stops early when the pool keeps answering 503.\n"
               "\n"
               "  --orgs top:N      the N organizations with the most readings in the last 24 h\n"
               "                    (default top:100; PostgreSQL from DATABASE_URL)\n"
               "  --orgs all        every organization, hottest first\n"
               "  --orgs FILE       the organization ids of FILE, one per line (# comments and\n"
               "                    blank lines allowed); a bad line is reported with its number\n"
               "                    and nothing is requested\n"
               "  --concurrency K   at most K requests in flight (1-256, default 4)\n"
               "  --url URL         the pool's nginx (default DASHCACHE_URL, else\n"
               "                    http://127.0.0.1:$HTTP_PORT, 8080)\n"
               "  --token TOKEN     the bearer token to send (default DASHCACHE_TOKEN, else one\n"
               "                    minted for 15 minutes with a key of the key file: read scope,\n"
               "                    every organization, sub dashcachectl-warm)\n"
               "  --keys FILE       the key file to mint with (default AUTH_KEYS_FILE)\n"
               "  --timeout MS      per request (default 10000)\n"
               "  --json            a JSON summary on stdout instead of the progress lines\n"
               "\n"
               "On a terminal a progress bar (count, rate, ETA); otherwise a line a second.\n"
               "Exit status: 0 every organization warmed, 1 some answer failed, the pool kept\n"
               "answering 503 or could not be reached, or the organizations could not be listed,\n"
               "2 usage error or a bad line in FILE.\n");
}

typedef struct {
    size_t   norgs, neps, total;
    size_t  *left;   /* requests of organization o still to end */
    char    *failed; /* organization o had an answer other than 200 */
    size_t   orgs_done, answers, failures, not_found, unavailable;
    int      consecutive_503, stop_after, stopped, tty, json;
    int64_t  t0_ms, drawn_ms;
    dc_err_t last_err;
} warm_t;

static void draw(warm_t *w, int final)
{
    int64_t now = dc_now_ms();
    double  secs = (double)(now - w->t0_ms) / 1000.0;
    double  rate = secs > 0 ? (double)w->orgs_done / secs : 0;
    double  eta = rate > 0 ? (double)(w->norgs - w->orgs_done) / rate : 0;

    if (w->json || (!final && now - w->drawn_ms < (w->tty ? DRAW_TTY_MS : DRAW_LINE_MS)))
        return;
    w->drawn_ms = now;
    if (w->tty) {
        char bar[31];
        int  fill = w->norgs > 0 ? (int)(30 * w->orgs_done / w->norgs) : 30;
        memset(bar, '#', (size_t)fill);
        memset(bar + fill, '.', (size_t)(30 - fill));
        bar[30] = '\0';
        printf("\r\033[Kwarm [%s] %zu/%zu orgs  %.1f orgs/s  ETA %.0fs", bar, w->orgs_done, w->norgs, rate,
               eta);
        if (final)
            putchar('\n');
    } else {
        printf("warm: %zu/%zu organizations, %.1f/s, ETA %.0fs\n", w->orgs_done, w->norgs, rate, eta);
    }
    fflush(stdout);
}

static int done(size_t i, int status, const dc_err_t *err, void *arg)
{
    warm_t *w = arg;
    size_t  o = i / w->neps;

    w->answers++;
    if (status == 200) {
        w->consecutive_503 = 0;
    } else {
        w->failures++;
        w->failed[o] = 1;
        if (status == 404)
            w->not_found++;
        if (status == 503 || status == 0) {
            w->unavailable++;
            w->consecutive_503++;
        }
        if (status == 0)
            w->last_err = *err;
    }
    if (--w->left[o] == 0)
        w->orgs_done++;
    draw(w, 0);
    if (w->consecutive_503 >= w->stop_after) {
        w->stopped = 1;
        return 1;
    }
    return 0;
}

static void tick(void *arg)
{
    draw(arg, 0);
}

/* The ids of FILE into orgs; every bad line is reported. DC_OK, or DC_EINVAL after reporting. */
static int read_org_file(const char *path, dc_orgs_t *orgs)
{
    FILE  *f = fopen(path, "r");
    char   line[512];
    size_t lineno = 0;
    int    bad = 0;

    if (f == NULL) {
        perror(DC_CTL_PROGRAM " " WARM ": --orgs");
        return DC_EINVAL;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        char  *s = line, id[DC_UUID_LEN + 1];
        size_t n;
        lineno++;
        while (*s == ' ' || *s == '\t')
            s++;
        n = strcspn(s, "\r\n#");
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        if (n == 0)
            continue;
        if (dc_request_parse_uuid(s, n, id) != DC_OK) {
            fprintf(stderr, DC_CTL_PROGRAM " " WARM ": %s:%zu: not an organization id (UUID)\n", path,
                    lineno);
            bad++;
        } else if (dc_orgs_add(orgs, id, strlen(id), 0) != DC_OK) {
            fprintf(stderr, DC_CTL_PROGRAM " " WARM ": out of memory\n");
            bad++;
        }
    }
    fclose(f);
    return bad ? DC_EINVAL : DC_OK;
}

/* The top (0: all) organizations from PostgreSQL. */
static int list_orgs(long top, dc_orgs_t *orgs)
{
    static dc_config_t cfg;
    const dc_db_set_t *sets[1] = { dc_query_orgs_statements() };
    dc_db_t           *db;
    dc_err_t           err;
    int                rc;

    if (dc_ctl_config(WARM, &cfg) != DC_OK)
        return DC_ERROR;
    db = dc_db_new(&cfg, sets, 1);
    if (db == NULL) {
        fprintf(stderr, DC_CTL_PROGRAM " " WARM ": out of memory\n");
        return DC_ERROR;
    }
    rc = dc_query_orgs(db, top, orgs, &err);
    dc_db_free(db);
    if (rc != DC_OK)
        fprintf(stderr, DC_CTL_PROGRAM " " WARM ": %s\n", err.str);
    return rc;
}

/* "Bearer <token>" into out: --token, DASHCACHE_TOKEN, or minted. */
static int bearer(const char *given, const char *keys, char **out)
{
    dc_auth_config_t  ac;
    dc_auth_claims_t  c = { .sub = "dashcachectl-warm", .scopes = DC_SCOPE_READ };
    const char *const all[1] = { "*" };
    dc_err_t          err;
    char             *token = NULL;

    if (given == NULL)
        given = getenv("DASHCACHE_TOKEN");
    if (given != NULL && *given != '\0') {
        token = strdup(given);
    } else {
        if (dc_config_load_auth(&ac, &err) != DC_OK) {
            fprintf(stderr, DC_CTL_PROGRAM ": configuration error: %s\n", err.str);
            return DC_ERROR;
        }
        ac.mode = DC_AUTH_JWT;
        if (keys != NULL)
            snprintf(ac.keys_file, sizeof(ac.keys_file), "%s", keys);
        c.orgs = all;
        c.norgs = 1;
        if (dc_ctl_mint(&ac, &c, TOKEN_TTL_S, &token, &err) != DC_OK) {
            fprintf(stderr, DC_CTL_PROGRAM " " WARM ": cannot mint a token: %s\n", err.str);
            return DC_ERROR;
        }
    }
    if (token == NULL || asprintf(out, "Bearer %s", token) < 0) {
        free(token);
        fprintf(stderr, DC_CTL_PROGRAM " " WARM ": out of memory\n");
        return DC_ERROR;
    }
    free(token);
    return DC_OK;
}

/* Every cached answer of an organization alone (no unit in the path: those are per unit). */
static size_t org_endpoints(const dc_endpoint_t **eps, size_t cap)
{
    size_t               n, k = 0;
    const dc_endpoint_t *all = dc_endpoint_all(&n);

    for (size_t i = 0; i < n && k < cap; i++)
        if (all[i].route == DC_ROUTE_QUERY && all[i].key_parts != DC_KEY_NONE &&
            !(all[i].key_parts & DC_KEY_UNIT))
            eps[k++] = &all[i];
    return k;
}

static int run(dc_orgs_t *orgs, const dc_http_target_t *t, const char *auth, int k, int timeout_ms, int json)
{
    const dc_endpoint_t *eps[DC_Q_COUNT];
    warm_t               w = { .json = json, .tty = isatty(STDOUT_FILENO) && !json };
    char               **paths = NULL;
    size_t               ended;
    int                  rc = DC_CTL_FAIL;

    w.neps = org_endpoints(eps, DC_ARRAY_LEN(eps));
    w.norgs = dc_orgs_count(orgs);
    w.total = w.norgs * w.neps;
    w.stop_after = k * 2 > 8 ? k * 2 : 8;
    w.left = calloc(w.norgs + 1, sizeof(*w.left));
    w.failed = calloc(w.norgs + 1, 1);
    paths = calloc(w.total + 1, sizeof(*paths));
    if (w.left == NULL || w.failed == NULL || paths == NULL)
        goto oom;
    for (size_t o = 0; o < w.norgs; o++) {
        w.left[o] = w.neps;
        for (size_t e = 0; e < w.neps; e++) {
            const char *p = eps[e]->path, *at = strstr(p, "{org}");
            if (asprintf(&paths[o * w.neps + e], "%.*s%s%s", (int)(at - p), p, dc_orgs_at(orgs, o), at + 5) <
                0) {
                paths[o * w.neps + e] = NULL;
                goto oom;
            }
        }
    }
    w.t0_ms = w.drawn_ms = dc_now_ms();
    ended = dc_http_get_many(t, (const char *const *)paths, w.total, auth, k, timeout_ms, done, tick, &w);
    draw(&w, 1);
    if (json) {
        printf("{\"ok\":%s,\"organizations\":%zu,\"warmed\":%zu,\"requests\":%zu,\"failed\":%zu,"
               "\"notFound\":%zu,\"unavailable\":%zu,\"stoppedEarly\":%s,\"seconds\":%.3f}\n",
               w.failures == 0 && ended == w.total ? "true" : "false", w.norgs, w.orgs_done, ended,
               w.failures, w.not_found, w.unavailable, w.stopped ? "true" : "false",
               (double)(dc_now_ms() - w.t0_ms) / 1000.0);
    } else {
        size_t failed_orgs = 0;
        for (size_t o = 0; o < w.norgs; o++)
            failed_orgs += w.failed[o] != 0;
        printf("warmed %zu of %zu organizations (%zu requests, %zu failed) in %.1f s\n",
               w.orgs_done - failed_orgs, w.norgs, ended, w.failures,
               (double)(dc_now_ms() - w.t0_ms) / 1000.0);
    }
    if (w.stopped)
        fprintf(stderr,
                DC_CTL_PROGRAM " " WARM
                               ": stopped: %d answers in a row were 503 or none (PostgreSQL down or its "
                               "breaker open, or the pool unreachable%s%s)\n",
                w.consecutive_503, w.last_err.str[0] ? ": " : "", w.last_err.str);
    else if (w.not_found > 0)
        fprintf(stderr, DC_CTL_PROGRAM " " WARM ": %zu answers were 404: organizations that do not exist\n",
                w.not_found);
    rc = w.failures == 0 && ended == w.total ? DC_CTL_OK : DC_CTL_FAIL;
    goto out;
oom:
    fprintf(stderr, DC_CTL_PROGRAM " " WARM ": out of memory\n");
out:
    for (size_t i = 0; paths != NULL && i < w.total; i++)
        free(paths[i]);
    free(paths);
    free(w.left);
    free(w.failed);
    return rc;
}

int dc_ctl_warm(int argc, char **argv)
{
    static const struct option opts[] = {
        { "orgs", required_argument, NULL, 'o' },
        { "concurrency", required_argument, NULL, 'c' },
        { "url", required_argument, NULL, 'u' },
        { "token", required_argument, NULL, 'T' },
        { "keys", required_argument, NULL, 'k' },
        { "timeout", required_argument, NULL, 't' },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char      *which = "top:100", *token = NULL, *keys = NULL, *given_url = NULL;
    char             url[512], *auth = NULL, *end;
    long             top = 100;
    int              opt, k = 4, timeout_ms = 10000, json = 0, rc;
    dc_orgs_t        orgs = DC_ORGS_INIT;
    dc_http_target_t t;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 'o':
            which = optarg;
            break;
        case 'c':
            if (dc_ctl_int_option(WARM, "concurrency", optarg, 1, 256, &k) != DC_OK)
                return DC_CTL_USAGE;
            break;
        case 'u':
            given_url = optarg;
            break;
        case 'T':
            token = optarg;
            break;
        case 'k':
            keys = optarg;
            break;
        case 't':
            if (dc_ctl_int_option(WARM, "timeout", optarg, 1, 600000, &timeout_ms) != DC_OK)
                return DC_CTL_USAGE;
            break;
        case 'j':
            json = 1;
            break;
        case 'h':
            dc_ctl_warm_help(stdout);
            return DC_CTL_OK;
        default:
            dc_ctl_warm_help(stderr);
            return DC_CTL_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, DC_CTL_PROGRAM " " WARM ": unexpected argument \"%s\"\n", argv[optind]);
        return DC_CTL_USAGE;
    }
    if (dc_ctl_target(WARM, given_url, url, sizeof(url), &t) != DC_OK)
        return DC_CTL_USAGE;

    if (strncmp(which, "top:", 4) == 0) {
        top = strtol(which + 4, &end, 10);
        if (*end != '\0' || end == which + 4 || top < 1 || top > 1000000) {
            fprintf(stderr, DC_CTL_PROGRAM " " WARM ": --orgs top:N needs N between 1 and 1000000\n");
            return DC_CTL_USAGE;
        }
        rc = list_orgs(top, &orgs) == DC_OK ? DC_CTL_OK : DC_CTL_FAIL;
    } else if (strcmp(which, "all") == 0) {
        rc = list_orgs(0, &orgs) == DC_OK ? DC_CTL_OK : DC_CTL_FAIL;
    } else {
        rc = read_org_file(which, &orgs) == DC_OK ? DC_CTL_OK : DC_CTL_USAGE;
    }
    if (rc == DC_CTL_OK)
        rc = bearer(token, keys, &auth) == DC_OK ? DC_CTL_OK : DC_CTL_FAIL;
    if (rc == DC_CTL_OK)
        rc = run(&orgs, &t, auth, k, timeout_ms, json);
    free(auth);
    dc_orgs_free(&orgs);
    return rc;
}
