/*
 * dashcache-invalidator: applies invalidations that do not come from a
 * dashcache worker.
 *
 * - Redis pub/sub, channel cache:invalidate: messages of other services
 *   (dc_inval.h). Pub/sub is at-most-once, so whenever the subscription is
 *   (re)established — at start, after Redis or this process was away — what
 *   was published meanwhile is unknown and every organization is
 *   invalidated once ("resync": the global epoch moves, one write).
 * - PostgreSQL: triggers write cache_outbox rows in the writers'
 *   transactions and NOTIFY dashcache_invalidate. Rows are applied first
 *   and marked processed after, so a crash in between re-applies, never
 *   loses. Pending rows are drained on every wake-up, on every (re)connect,
 *   and every 500 ms in any case, which bounds the delay after an outage.
 * - The consistency sampler (dc_sampler) between the two, while nothing
 *   is known to be pending: cached answers compared with PostgreSQL.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dc_cache.h"
#include "dc_config.h"
#include "dc_db.h"
#include "dc_init.h"
#include "dc_inval.h"
#include "dc_log.h"
#include "dc_metrics.h"
#include "dc_sub.h"
#include "dc_outbox.h"
#include "dc_priv.h"
#include "dc_sampler.h"
#include "dc_signal.h"
#include "dc_trust.h"

#define PROGRAM         "dashcache-invalidator"
#define CHANNEL         "cache:invalidate"
#define NOTIFY_CHANNEL  "dashcache_invalidate"
#define DRAIN_EVERY_MS  500
#define BATCH           500
#define PURGE_EVERY_MS  60000
#define PURGE_AFTER_S   3600
#define REPORT_EVERY_MS 60000
#define RETRY_MAX_MS    200

typedef struct {
    dc_config_t cfg;
    dc_cache_t *cache;
    dc_db_t    *db;
    dc_sub_t   *sub;
    dc_outbox_t ob;
    unsigned    db_epoch;
    int         resync; /* invalidate everything as soon as we can */
    int         drain_now;
    int         drained_once; /* logged invalidate.ready */
    int         lsn_owed;     /* the epoch moved without the global LSN: raise it once the primary answers */
    long long   applied, rejected, outbox_rows, resyncs;
    sigset_t    wait_mask; /* the stop signals open only while waiting */
    const char *user;      /* --user: who to become once started */

    dc_sampler_t *sampler; /* cached answers compared with PostgreSQL */
} inv_t;

/* Everything of every organization, in one write (the epoch). */
static int invalidate_all(inv_t *v)
{
    /*
     * The global LSN first (dc_replica.h); without PostgreSQL the epoch
     * still moves (hits of old data stop now) and the LSN is raised as
     * soon as the primary answers (lsn_owed)
     */
    v->lsn_owed = dc_inval_raise_lsn(v->cache, v->db, NULL, NULL, 1) != DC_OK;
    if (dc_inval_all(v->cache) != DC_OK)
        return DC_UNAVAILABLE;
    v->resyncs++;
    dc_log_info("invalidate.all", "invalidated every organization (the epoch moved)");
    return DC_OK;
}

static void on_message(void *arg, const char *msg, size_t len)
{
    inv_t         *v = arg;
    dc_inval_msg_t m;
    char           why[128];
    size_t         deleted = 0;

    if (dc_inval_parse(msg, len, &m, why, sizeof(why)) != DC_OK) {
        v->rejected++;
        dc_metrics_message_rejected();
        dc_log_warn("invalidate.rejected", "%s: %.*s%s", why, (int)(len > 200 ? 200 : len), msg,
                    len > 200 ? "..." : "");
        return;
    }
    if (m.kind == DC_INV_ALL) {
        if (invalidate_all(v) != DC_OK)
            v->resync = 1;
        v->applied++;
        return;
    }
    /* its writer committed before it published: the position now bounds that commit */
    if (dc_inval_raise_lsn(v->cache, v->db, NULL, m.org_id, 0) != DC_OK ||
        dc_inval_apply(v->cache, &m, &deleted) != DC_OK) {
        /* the message is gone from pub/sub: make up for it once Redis is back */
        dc_log_warn("invalidate.deferred",
                    "redis or postgresql unavailable; will invalidate everything when they are back");
        v->resync = 1;
        return;
    }
    v->applied++;
    dc_metrics_invalidation(DC_IS_PUBSUB, 1);
    dc_log_debug("invalidate.applied", "org %s pattern %s deleted %zu", m.org_id,
                 m.kind == DC_INV_PATTERN ? m.pattern : "-", deleted);
}

/* The lag of each outbox row goes to the histogram dashboard_invalidation_lag_seconds. */
static void on_lag(void *arg, double ms)
{
    (void)arg;
    dc_metrics_invalidation_lag((int64_t)(ms * 1e6));
}

static int publish_event(void *arg, const char *msg, size_t len)
{
    inv_t *v = arg;
    return dc_cache_publish(v->cache, DC_EVENTS_CHANNEL, msg, len);
}

/*
 * Applies pending outbox rows until none is left, then publishes the events
 * of writes whose invalidation had to wait for it. DC_OK or the failure
 * that stopped it.
 */
static int drain(inv_t *v)
{
    dc_drain_stats_t st;
    size_t           published;
    int              rc = dc_inval_drain(v->cache, v->db, &v->ob, BATCH, on_lag, v, &st);

    v->outbox_rows += (long long)st.rows;
    v->resyncs += (long long)st.alls;
    if (st.alls > 0)
        dc_log_info("invalidate.all", "outbox: a table was truncated; invalidated every organization");
    if (rc != DC_OK)
        return rc;
    if (!v->drained_once) {
        /* hits are served once the outbox is applied (dc_trust): say when that first is */
        dc_log_info("invalidate.ready", "the outbox is applied");
        v->drained_once = 1;
    }
    rc = dc_outbox_publish_events(v->db, BATCH, publish_event, v, &published);
    if (published > 0)
        dc_log_info("invalidate.events", "published %zu events whose invalidation was deferred", published);
    return rc;
}

/* Totals since start; the lag distribution is in /metrics (dashboard_invalidation_lag_seconds). */
static void report(const inv_t *v)
{
    dc_log_info("invalidate.stats", "messages applied %lld rejected %lld; outbox rows %lld; resyncs %lld",
                v->applied, v->rejected, v->outbox_rows, v->resyncs);
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static int run(inv_t *v)
{
    int64_t next_drain = 0, next_purge = dc_now_ms() + PURGE_EVERY_MS,
            next_report = dc_now_ms() + REPORT_EVERY_MS;

    while (!dc_signal_stop) {
        struct pollfd   fds[3];
        struct timespec ts;
        int64_t         now, wait;
        int             nfds = 0, db_fd, sub_fd, watch_fd, rc;

        if (dc_sub_watch_ensure(v->sub) == DC_DECLINED)
            dc_cache_disconnect(v->cache); /* a switch may have been missed: ask the sentinels again */
        rc = dc_sub_ensure(v->sub);
        if (rc == DC_DECLINED)
            v->resync = 1; /* (re)subscribed: messages may have been missed */
        if (dc_db_ensure(v->db) == DC_OK && dc_db_epoch(v->db) != v->db_epoch) {
            v->db_epoch = dc_db_epoch(v->db);
            v->drain_now = 1;
        }
        if (v->resync && invalidate_all(v) == DC_OK)
            v->resync = 0;
        if (v->lsn_owed && dc_inval_raise_lsn(v->cache, v->db, NULL, NULL, 1) == DC_OK)
            v->lsn_owed = 0;

        now = dc_now_ms();
        if (v->drain_now || now >= next_drain) {
            if (drain(v) == DC_OK)
                v->drain_now = 0;
            next_drain = dc_now_ms() + DRAIN_EVERY_MS;
        }
        if (now >= next_purge) {
            long long purged;
            if (dc_outbox_purge(v->db, PURGE_AFTER_S, &purged) == DC_OK && purged > 0)
                dc_log_info("invalidate.purge", "deleted %lld processed outbox rows", purged);
            next_purge = now + PURGE_EVERY_MS;
        }
        if (now >= next_report) {
            report(v);
            next_report = now + REPORT_EVERY_MS;
        }
        /* a difference while invalidations are known to wait would be theirs, not a missed write */
        if (!v->drain_now && !v->resync)
            dc_sampler_tick(v->sampler, dc_now_ms());

        /*
         * A NOTIFY that arrived while a drain query was running was read off
         * the socket with the query's result: the socket will not wake us
         * for it, so look at what libpq already holds before waiting.
         */
        if (dc_db_take_notifications(v->db) > 0) {
            if (drain(v) == DC_OK)
                v->drain_now = 0;
            next_drain = dc_now_ms() + DRAIN_EVERY_MS;
            continue;
        }
        db_fd = dc_db_fd(v->db);
        sub_fd = dc_sub_fd(v->sub);
        if (db_fd >= 0)
            fds[nfds++] = (struct pollfd){ db_fd, POLLIN, 0 };
        if (sub_fd >= 0)
            fds[nfds++] = (struct pollfd){ sub_fd, POLLIN, 0 };
        watch_fd = dc_sub_watch_fd(v->sub);
        if (watch_fd >= 0)
            fds[nfds++] = (struct pollfd){ watch_fd, POLLIN, 0 };
        wait = min64(min64(next_drain, dc_sampler_next_ms(v->sampler)) - dc_now_ms(), DRAIN_EVERY_MS);
        if (wait < 0)
            wait = 0;
        ts.tv_sec = wait / 1000;
        ts.tv_nsec = (long)(wait % 1000) * 1000000L;
        rc = ppoll(fds, (nfds_t)nfds, &ts, &v->wait_mask);
        if (rc < 0) {
            if (errno != EINTR) {
                dc_log_error("invalidate.poll", "ppoll() failed: %s", strerror(errno));
                return 1;
            }
            continue;
        }
        for (int i = 0; i < nfds; i++) {
            if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            if (fds[i].fd == db_fd) {
                if (dc_db_take_notifications(v->db) > 0)
                    v->drain_now = 1;
            } else if (fds[i].fd == watch_fd) {
                /*
                 * +switch-master: connect to the new primary now; the host's
                 * processes follow (dc_trust_primary_set), and what was
                 * published meanwhile is made up for by a resync there
                 */
                if (dc_sub_watch_read(v->sub) == DC_DECLINED) {
                    dc_cache_disconnect(v->cache);
                    v->resync = 1;
                    v->drain_now = 1;
                }
            } else if (dc_sub_read(v->sub, on_message, v) != DC_OK) {
                v->resync = 1;
            }
        }
        if (v->drain_now) {
            if (drain(v) == DC_OK)
                v->drain_now = 0;
            next_drain = dc_now_ms() + DRAIN_EVERY_MS;
        }
    }
    report(v);
    return 0;
}

/* Start-up steps; each returns DC_OK or the exit code. */

static int init_config(void *arg)
{
    inv_t *v = arg;

    if (dc_init_config(PROGRAM, &v->cfg) != DC_OK)
        return 1;
    /* one process, not a pool: it can afford to retry often, and the sooner
     * it is back the sooner pending invalidations are applied */
    if (v->cfg.redis_retry_interval_ms > RETRY_MAX_MS)
        v->cfg.redis_retry_interval_ms = RETRY_MAX_MS;
    if (v->cfg.db_retry_interval_ms > RETRY_MAX_MS)
        v->cfg.db_retry_interval_ms = RETRY_MAX_MS;
    return DC_OK;
}

/* Metrics are not worth refusing to start for: without them it runs, and says so. */
static int init_metrics(void *arg)
{
    inv_t   *v = arg;
    dc_err_t err = { DC_ERROR, "no free slot" };

    if (v->cfg.metrics_enabled) {
        char path[512];
        dc_metrics_default_path(&v->cfg, path, sizeof(path));
        if (dc_metrics_open(path, &err) != DC_OK)
            dc_log_warn("metrics.open", "metrics unavailable (%s); running without them", err.str);
        else if (dc_metrics_claim(DC_MK_INVALIDATOR) != DC_OK)
            dc_log_warn("metrics.open", "no free metrics slot; this invalidator's figures are not counted");
    }
    return DC_OK;
}

/* The host's lease on serving hits (dc_trust), shared by every process of the host. */
static int init_trust(void *arg)
{
    dc_trust_open_host(&((inv_t *)arg)->cfg);
    return DC_OK;
}

static int init_signals(void *arg)
{
    inv_t *v = arg;
    return dc_signal_stop_init(&v->wait_mask) == DC_OK ? DC_OK : 1;
}

static int init_connections(void *arg)
{
    /* the invalidator prepares the outbox and organization statements only */
    inv_t             *v = arg;
    const dc_db_set_t *sets[] = { dc_outbox_statements() };

    v->cache = dc_cache_new(&v->cfg);
    v->db = dc_db_new(&v->cfg, sets, DC_ARRAY_LEN(sets));
    v->sub = dc_sub_new(&v->cfg, CHANNEL);
    v->sampler = dc_sampler_new(&v->cfg);
    if (v->cache == NULL || v->db == NULL || v->sub == NULL || v->sampler == NULL) {
        dc_log_error("invalidate.init", "out of memory");
        return 1;
    }
    dc_db_set_listen(v->db, NOTIFY_CHANNEL);
    return DC_OK;
}

/* Last: the metrics file is opened as root; everything after runs as --user. */
static int init_user(void *arg)
{
    inv_t    *v = arg;
    dc_priv_t priv;
    dc_err_t  err;

    if (dc_priv_lookup(v->user, &priv, &err) != DC_OK) {
        fprintf(stderr, PROGRAM ": %s\n", err.str);
        return 2;
    }
    if (dc_priv_drop(&priv, &err) != DC_OK) {
        dc_log_error("invalidate.user", "%s; not running as root", err.str);
        return 1;
    }
    return DC_OK;
}

static const dc_init_step_t init_chain[] = {
    { "config", init_config },   { "metrics", init_metrics },         { "trust", init_trust },
    { "signals", init_signals }, { "connections", init_connections }, { "user", init_user },
};

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "help", no_argument, NULL, 'h' },
        { "user", required_argument, NULL, 'u' },
        { NULL, 0, NULL, 0 },
    };
    const char *user = NULL;
    inv_t      *v;
    int         c, rc;

    while ((c = getopt_long(argc, argv, "hu:", opts, NULL)) != -1) {
        if (c == 'h') {
            printf("usage: " PROGRAM
                   " [--user USER]\n\nApplies cache invalidations from Redis channel " CHANNEL
                   " and from the\ndatabase outbox (NOTIFY " NOTIFY_CHANNEL "). Configuration from the "
                   "environment:\nDATABASE_URL, REDIS_URL and the timeouts of .env.example.\n"
                   "--user USER: run as USER once started (needs to start as root).\n");
            return 0;
        }
        if (c == 'u') {
            user = optarg;
            continue;
        }
        fprintf(stderr, "usage: " PROGRAM " [--help] [--user USER]\n");
        return 2;
    }
    if (optind < argc) {
        fprintf(stderr, PROGRAM ": unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    v = calloc(1, sizeof(*v));
    if (v == NULL)
        return 1;
    v->user = user;
    rc = dc_init_run(PROGRAM, init_chain, DC_ARRAY_LEN(init_chain), v);
    if (rc == DC_OK) {
        dc_log_info("invalidate.start", "listening on redis %s and postgres %s", CHANNEL, NOTIFY_CHANNEL);
        rc = run(v);
        dc_log_info("invalidate.stop", "stopped");
    }
    dc_sampler_free(v->sampler);
    dc_sub_free(v->sub);
    dc_db_free(v->db);
    dc_cache_free(v->cache);
    dc_outbox_free(&v->ob);
    free(v);
    return rc;
}
