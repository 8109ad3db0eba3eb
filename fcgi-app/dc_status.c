#include "dc_status.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dc_json.h"

#define POOL_NAME "dashcache"
#define PM_NAME   "static"

/* "full", "full=1", "full=true" → 1; "full=0", "full=false" → 0; else -1. */
static int flag_value(const char *v, size_t n)
{
    if (v == NULL || (n == 1 && *v == '1') || (n == 4 && strncmp(v, "true", 4) == 0))
        return 1;
    if ((n == 1 && *v == '0') || (n == 5 && strncmp(v, "false", 5) == 0))
        return 0;
    return -1;
}

int dc_status_parse(const char *query, dc_status_opts_t *o, dc_error_t *err)
{
    const char *p = query;

    memset(o, 0, sizeof(*o));
    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, '&'), *eq;
        size_t      n = end != NULL ? (size_t)(end - p) : strlen(p), klen;
        int         v;

        eq = memchr(p, '=', n);
        klen = eq != NULL ? (size_t)(eq - p) : n;
        v = flag_value(eq != NULL ? eq + 1 : NULL, eq != NULL ? n - klen - 1 : 0);
        if ((klen == 4 && strncmp(p, "full", 4) == 0) || (klen == 4 && strncmp(p, "json", 4) == 0)) {
            if (v < 0)
                return dc_error_set(err, 400, "invalid_parameter", "%.4s must be true or false", p);
            if (p[0] == 'f')
                o->full = v;
            else
                o->json = v;
        } else if ((klen == 4 && strncmp(p, "html", 4) == 0) || (klen == 3 && strncmp(p, "xml", 3) == 0)) {
            return dc_error_set(err, 400, "invalid_parameter",
                                "the status page is text or json (?json), not %.*s", (int)klen, p);
        }
        p = end != NULL ? end + 1 : NULL;
    }
    return DC_OK;
}

void dc_status_read_rss(dc_pool_status_t *st, long rss_kb[DC_POOL_PROCS_MAX])
{
    long page_kb = sysconf(_SC_PAGESIZE) / 1024;

    for (size_t i = 0; i < st->nprocs && i < DC_POOL_PROCS_MAX; i++) {
        char  path[64];
        long  size, resident;
        FILE *f;

        rss_kb[i] = 0;
        snprintf(path, sizeof(path), "/proc/%d/statm", (int)st->procs[i].pid);
        f = fopen(path, "re");
        if (f == NULL)
            continue;
        if (fscanf(f, "%ld %ld", &size, &resident) == 2)
            rss_kb[i] = resident * page_kb;
        fclose(f);
    }
}

/* php-fpm's date format: 30/Nov/2026:09:00:00 +0000 */
static void date_of(int64_t ms, char *buf, size_t cap)
{
    time_t    t = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(buf, cap, "%d/%b/%Y:%H:%M:%S +0000", &tm);
}

static long long since_s(int64_t now_ms, int64_t start_ms)
{
    return start_ms > 0 && now_ms > start_ms ? (long long)((now_ms - start_ms) / 1000) : 0;
}

static int render_text(const dc_pool_status_t *st, const long *rss_kb, const dc_status_opts_t *o,
                       int64_t now_ms, dc_buf_t *out)
{
    char date[64];
    int  rc;

    date_of(st->started_ms, date, sizeof(date));
    rc = dc_buf_printf(out,
                       "pool:                 " POOL_NAME "\n"
                       "process manager:      " PM_NAME "\n"
                       "start time:           %s\n"
                       "start since:          %lld\n"
                       "accepted conn:        %" PRIu64 "\n"
                       "listen queue:         %d\n"
                       "max listen queue:     %d\n"
                       "listen queue len:     %d\n"
                       "idle processes:       %d\n"
                       "active processes:     %d\n"
                       "total processes:      %d\n"
                       "max active processes: %d\n"
                       "max children reached: %" PRIu64 "\n"
                       "slow requests:        %" PRIu64 "\n",
                       date, since_s(now_ms, st->started_ms), st->accepted, st->listen_queue,
                       st->max_listen_queue, st->listen_backlog, st->idle, st->active, st->total,
                       st->max_active, st->max_children_reached, st->slow_requests);
    for (size_t i = 0; rc == DC_OK && o->full && i < st->nprocs; i++) {
        const dc_pool_proc_t *p = &st->procs[i];

        date_of(p->started_ms, date, sizeof(date));
        rc = dc_buf_printf(out,
                           "\n*************************\n"
                           "pid:                  %d\n"
                           "state:                %s\n"
                           "start time:           %s\n"
                           "start since:          %lld\n"
                           "requests:             %" PRIu64 "\n"
                           "request duration:     %lld\n"
                           "request URI:          %s\n"
                           "last request duration: %lld\n"
                           "rss:                  %ld\n",
                           (int)p->pid, p->busy ? "Running" : "Idle", date, since_s(now_ms, p->started_ms),
                           p->requests, (long long)(p->busy ? p->busy_ms * 1000 : p->last_ns / 1000),
                           p->route[0] ? p->route : "-", (long long)(p->last_ns / 1000),
                           rss_kb != NULL ? rss_kb[i] * 1024 : 0L);
    }
    return rc;
}

static int render_json(const dc_pool_status_t *st, const long *rss_kb, const dc_status_opts_t *o,
                       int64_t now_ms, dc_buf_t *out)
{
    dc_json_t j;

    dc_json_begin(&j, out);
    dc_json_object(&j);
    dc_json_key(&j, "pool");
    dc_json_str(&j, POOL_NAME);
    dc_json_key(&j, "process manager");
    dc_json_str(&j, PM_NAME);
    dc_json_key(&j, "start time");
    dc_json_int(&j, st->started_ms / 1000);
    dc_json_key(&j, "start since");
    dc_json_int(&j, since_s(now_ms, st->started_ms));
    dc_json_key(&j, "accepted conn");
    dc_json_int(&j, (long long)st->accepted);
    dc_json_key(&j, "listen queue");
    dc_json_int(&j, st->listen_queue);
    dc_json_key(&j, "max listen queue");
    dc_json_int(&j, st->max_listen_queue);
    dc_json_key(&j, "listen queue len");
    dc_json_int(&j, st->listen_backlog);
    dc_json_key(&j, "idle processes");
    dc_json_int(&j, st->idle);
    dc_json_key(&j, "active processes");
    dc_json_int(&j, st->active);
    dc_json_key(&j, "total processes");
    dc_json_int(&j, st->total);
    dc_json_key(&j, "max active processes");
    dc_json_int(&j, st->max_active);
    dc_json_key(&j, "max children reached");
    dc_json_int(&j, (long long)st->max_children_reached);
    dc_json_key(&j, "slow requests");
    dc_json_int(&j, (long long)st->slow_requests);
    if (o->full) {
        dc_json_key(&j, "processes");
        dc_json_array(&j);
        for (size_t i = 0; i < st->nprocs; i++) {
            const dc_pool_proc_t *p = &st->procs[i];

            dc_json_object(&j);
            dc_json_key(&j, "pid");
            dc_json_int(&j, p->pid);
            dc_json_key(&j, "state");
            dc_json_str(&j, p->busy ? "Running" : "Idle");
            dc_json_key(&j, "start time");
            dc_json_int(&j, p->started_ms / 1000);
            dc_json_key(&j, "start since");
            dc_json_int(&j, since_s(now_ms, p->started_ms));
            dc_json_key(&j, "requests");
            dc_json_int(&j, (long long)p->requests);
            dc_json_key(&j, "request duration");
            dc_json_int(&j, p->busy ? p->busy_ms * 1000 : p->last_ns / 1000);
            dc_json_key(&j, "request uri");
            dc_json_str(&j, p->route[0] ? p->route : NULL);
            dc_json_key(&j, "last request duration");
            dc_json_int(&j, p->last_ns / 1000);
            dc_json_key(&j, "rss");
            dc_json_int(&j, rss_kb != NULL ? (long long)rss_kb[i] * 1024 : 0);
            dc_json_end(&j, '}');
        }
        dc_json_end(&j, ']');
    }
    dc_json_end(&j, '}');
    return dc_json_finish(&j);
}

int dc_status_render(const dc_pool_status_t *st, const long *rss_kb, const dc_status_opts_t *o,
                     int64_t now_ms, dc_buf_t *out)
{
    return o->json ? render_json(st, rss_kb, o, now_ms, out) : render_text(st, rss_kb, o, now_ms, out);
}
