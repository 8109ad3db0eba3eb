/* Shared-memory metrics: per-process slots, summed at scrape time. */
#include "dc_metrics.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "dc_breaker.h"
#include "dc_listen.h"
#include "dc_log.h"
#include "dc_shm.h"
#include "dc_trace.h"
#include "dc_trust.h"

#define MAGIC 0x6463616368656d31ULL /* "dcachem1" */
#define VERSION \
    9 /* 3: no count in a histogram, an overflow bucket instead; 4: 304; 5: consistency; 6: stale; 7: retirements; \
       8: standby reads; 9: the pool's status and the slow log */
#define SLOTS    128
#define NBUCKETS 8 /* finite bounds */

/*
 * No separate count: a writer bumps exactly one bucket per observation, and
 * a scrape derives every cumulative bucket, +Inf and _count from the bucket
 * values it copied. A count kept apart was bumped after the bucket, so a
 * scrape between the two showed le="0.5" above le="+Inf"; derived from one
 * read of each bucket, a scrape is consistent whatever the writers do, and
 * no writer pays for a lock or a sequence counter.
 */
#define NSTATUS 12 /* HTTP statuses counted by name (statuses[]); index NSTATUS: anything else */

typedef struct {
    uint64_t bucket[NBUCKETS + 1]; /* observations in (bound[i-1], bound[i]]; [NBUCKETS]: above the last */
    uint64_t sum_ns;
} hist_t;

typedef struct {
    int32_t  pid;
    int32_t  kind;
    uint64_t cache_hit[DC_Q_COUNT];
    uint64_t cache_miss[DC_Q_COUNT];
    uint64_t cache_error[DC_COP_COUNT];
    hist_t   cache_latency[DC_COP_TIMED];
    uint64_t stale_set_refusals;
    uint64_t stale_served[DC_STALE_COUNT];
    uint64_t coalesced;
    uint64_t db_queries[DC_METRICS_MAX_STMTS];
    uint64_t db_errors[DC_METRICS_MAX_STMTS];
    hist_t   db_latency[DC_METRICS_MAX_STMTS];
    uint64_t http[DC_MR_COUNT][NSTATUS + 1];
    hist_t   http_duration[DC_MR_COUNT];
    uint64_t invalidations[DC_IS_COUNT];
    hist_t   invalidation_lag;
    uint64_t messages_rejected;
    uint64_t outbox_rows;
    uint64_t worker_restarts;
    uint64_t worker_retirements[DC_RETIRE_COUNT];
    uint64_t request_timeouts;
    uint64_t consistency[DC_CC_COUNT];
    uint64_t consistency_oldest_ms; /* a gauge: set, not added; a scrape takes the largest of live slots */
    uint64_t db_reads[DC_DBT_COUNT];
    uint64_t standby_fallbacks[DC_SBF_COUNT];
    uint64_t slow_requests;
    uint64_t max_children_reached; /* requests begun with every worker of the pool busy */
    /* the pool's status page (dc_status): what this process does; gauges, read by any process */
    int64_t  started_ms;               /* wall clock (ms) when this process took the slot */
    int64_t  busy_since_ms;            /* dc_now_ms() when the request in hand began; 0: idle */
    uint64_t served;                   /* answered by this process */
    int64_t  last_ns;                  /* how long its last answered request took */
    char     route[DC_POOL_ROUTE_MAX]; /* the request in hand, or the last one */
} __attribute__((aligned(128))) slot_t;

/*
 * The pool's figures that no single process owns, in the header: updated
 * with atomic read-modify-writes (a few per request for active; the rest
 * by whichever process samples, at most once per POOL_SAMPLE_MS).
 */
typedef struct {
    int32_t active;         /* workers in a request now */
    int32_t max_active;     /* the most ever seen at once */
    int32_t total;          /* live workers at the last sample */
    int32_t listen_queue;   /* connections waiting in the listening socket's queue, at the last sample */
    int32_t listen_backlog; /* the length that queue may reach */
    int32_t max_listen_queue;
    int64_t sample_ms;  /* dc_now_ms() of the last sample */
    int64_t started_ms; /* wall clock (ms) when the file was laid out: the pool's start */
} pool_t;

typedef struct {
    uint64_t magic;
    uint32_t version;
    uint32_t slot_size;
    uint32_t slots;
    uint32_t pad0;
    pool_t   pool;
    char     pad[128 - 24 - sizeof(pool_t)];
    slot_t   slot[SLOTS];
} shm_t;

#define POOL_SAMPLE_MS 1000

static shm_t  *shm;
static slot_t *me;
static int     disabled;

/* Upper bounds of the buckets, in nanoseconds and as printed. */
static const int64_t bound_ns[NBUCKETS] = {
    1000000, 5000000, 10000000, 50000000, 100000000, 500000000, 1000000000, 5000000000,
};
static const char *const bound_txt[NBUCKETS] = { "0.001", "0.005", "0.01", "0.05", "0.1", "0.5", "1", "5" };
#define CACHE_BUCKETS 6 /* the cache latency family stops at 0.5 s */

static const int statuses[NSTATUS] = { 200, 201, 304, 400, 403, 404, 405, 409, 413, 415, 500, 503 };

#define LABEL(NAME, method, label, ...) label,
#define SERVICE_LABEL(NAME, label, ...) label,
static const char *const route_names[DC_MR_COUNT] = {
    DC_API_QUERIES(LABEL) DC_API_WRITES(LABEL) DC_API_SERVICES(SERVICE_LABEL) "other",
};
#undef LABEL
#undef SERVICE_LABEL
static const char *const cop_names[DC_COP_COUNT] = { "get", "set", "invalidate", "publish", "connect" };
static const char *const stale_names[DC_STALE_COUNT] = { "revalidate", "error" };
static const char *const source_names[DC_IS_COUNT] = { "write", "pubsub", "outbox", "resync", "sampler" };
static const char *const ccheck_names[DC_CC_COUNT] = { "consistent", "inconsistent", "skipped", "error" };
static const char *const retire_names[DC_RETIRE_COUNT] = { "max_requests", "timeout", "reload" };
static const char *const dbtarget_names[DC_DBT_COUNT] = { "primary", "standby" };
static const char *const sbfallback_names[DC_SBF_COUNT] = { "lag", "error", "unknown_lsn" };

/* Single writer per slot: a relaxed load and store, never a locked add. */
static inline void add(uint64_t *c, uint64_t n)
{
    __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

static inline uint64_t get(const uint64_t *c)
{
    return __atomic_load_n(c, __ATOMIC_RELAXED);
}

static void observe(hist_t *h, int64_t ns)
{
    int i = 0;
    if (ns < 0)
        ns = 0;
    while (i < NBUCKETS && ns > bound_ns[i])
        i++;
    add(&h->bucket[i], 1);
    add(&h->sum_ns, (uint64_t)ns);
}

void dc_metrics_default_path(const dc_config_t *cfg, char *path, size_t cap)
{
    dc_shm_path(cfg, "metrics", path, cap);
}

void dc_metrics_disable(void)
{
    disabled = 1;
}

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Under the file's lock: a mapping of another layout is started afresh. */
static void init_shm(void *mem)
{
    shm_t *m = mem;

    if (m->magic != MAGIC || m->version != VERSION || m->slot_size != sizeof(slot_t)) {
        memset(m, 0, sizeof(*m));
        m->version = VERSION;
        m->slot_size = sizeof(slot_t);
        m->slots = SLOTS;
        m->pool.started_ms = wall_ms();
        __atomic_store_n(&m->magic, MAGIC, __ATOMIC_RELEASE);
    }
}

int dc_metrics_open(const char *path, dc_err_t *err)
{
    if (disabled || shm != NULL)
        return DC_OK;
    shm = dc_shm_map(path, sizeof(shm_t), init_shm, err);
    return shm != NULL ? DC_OK : DC_ERROR;
}

void dc_metrics_close(void)
{
    if (shm != NULL)
        munmap(shm, sizeof(shm_t));
    shm = NULL;
    me = NULL;
    disabled = 0;
}

static int alive(int32_t pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

static int32_t live_workers(void)
{
    int32_t total = 0;

    for (int i = 0; i < SLOTS; i++) {
        int32_t pid = __atomic_load_n(&shm->slot[i].pid, __ATOMIC_ACQUIRE);
        total += pid != 0 && shm->slot[i].kind == DC_MK_WORKER && alive(pid);
    }
    return total;
}

/*
 * A slot's process state starts afresh with its new owner; a predecessor
 * that died in a request leaves the pool's count of active workers one too
 * high: given back here.
 */
static void take_over(slot_t *s)
{
    if (__atomic_exchange_n(&s->busy_since_ms, 0, __ATOMIC_ACQ_REL) != 0)
        __atomic_fetch_sub(&shm->pool.active, 1, __ATOMIC_RELAXED);
    s->started_ms = wall_ms();
    s->route[0] = '\0';
    __atomic_store_n(&s->served, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&s->last_ns, 0, __ATOMIC_RELAXED);
}

int dc_metrics_claim(dc_mkind_t kind)
{
    int32_t self = (int32_t)getpid();

    /*
     * A forked process inherits its parent's slot pointer: without a slot
     * of its own it must record nothing rather than write into the
     * parent's (slots have a single writer).
     */
    me = NULL;
    if (disabled)
        return DC_OK;
    if (shm == NULL)
        return DC_ERROR;
    /* a slot of the same kind first, so a respawned worker continues its predecessor's */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < SLOTS; i++) {
            slot_t *s = &shm->slot[i];
            int32_t owner = __atomic_load_n(&s->pid, __ATOMIC_ACQUIRE);
            if (owner == self) {
                me = s;
                return DC_OK;
            }
            if (pass == 0 && (owner == 0 || s->kind != (int32_t)kind))
                continue;
            if ((owner == 0 || !alive(owner)) &&
                __atomic_compare_exchange_n(&s->pid, &owner, self, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
                s->kind = (int32_t)kind;
                me = s;
                take_over(s);
                if (kind == DC_MK_WORKER) /* the pool's size is right from the first request on */
                    __atomic_store_n(&shm->pool.total, live_workers(), __ATOMIC_RELAXED);
                return DC_OK;
            }
        }
    }
    return DC_ERROR;
}

void dc_metrics_cache_hit(dc_qtype_t q)
{
    if (me != NULL && (unsigned)q < DC_Q_COUNT)
        add(&me->cache_hit[q], 1);
}

void dc_metrics_cache_miss(dc_qtype_t q)
{
    if (me != NULL && (unsigned)q < DC_Q_COUNT)
        add(&me->cache_miss[q], 1);
}

void dc_metrics_cache_error(dc_cop_t op)
{
    if (me != NULL && (unsigned)op < DC_COP_COUNT)
        add(&me->cache_error[op], 1);
}

void dc_metrics_cache_latency(dc_cop_t op, int64_t ns)
{
    dc_trace_redis(ns);
    if (me != NULL && (unsigned)op < DC_COP_TIMED)
        observe(&me->cache_latency[op], ns);
}

void dc_metrics_stale_set_refused(void)
{
    if (me != NULL)
        add(&me->stale_set_refusals, 1);
}

void dc_metrics_cache_stale(dc_stale_t why)
{
    if (me != NULL && (unsigned)why < DC_STALE_COUNT)
        add(&me->stale_served[why], 1);
}

void dc_metrics_cache_coalesced(void)
{
    if (me != NULL)
        add(&me->coalesced, 1);
}

void dc_metrics_db_query(int stmt, int ok, int64_t ns)
{
    dc_trace_db(stmt, ns);
    if (me == NULL || stmt < 0 || stmt >= DC_METRICS_MAX_STMTS)
        return;
    add(&me->db_queries[stmt], 1);
    if (!ok)
        add(&me->db_errors[stmt], 1);
    observe(&me->db_latency[stmt], ns);
}

void dc_metrics_db_read(dc_dbtarget_t target)
{
    if (me != NULL && (unsigned)target < DC_DBT_COUNT)
        add(&me->db_reads[target], 1);
}

void dc_metrics_standby_fallback(dc_sbfallback_t why)
{
    if (me != NULL && (unsigned)why < DC_SBF_COUNT)
        add(&me->standby_fallbacks[why], 1);
}

/* ---- the pool's status (dc_status) ---- */

/* *p = max(*p, v), for any number of writers. */
static void raise_to(int32_t *p, int32_t v)
{
    int32_t cur = __atomic_load_n(p, __ATOMIC_RELAXED);

    while (v > cur && !__atomic_compare_exchange_n(p, &cur, v, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

/* "what path" into buf, every byte outside printable ASCII as '?': a path is the client's, the page is text. */
static void printable(char *buf, size_t cap, const char *what, const char *path)
{
    size_t n = 0;

    for (const char *parts[2] = { what, path }, **p = parts; p < parts + 2; p++) {
        if (p == parts + 1 && n + 1 < cap)
            buf[n++] = ' ';
        for (const char *c = *p; c != NULL && *c != '\0' && n + 1 < cap; c++)
            buf[n++] = (unsigned char)*c >= 0x20 && (unsigned char)*c < 0x7f ? *c : '?';
    }
    buf[n] = '\0';
}

void dc_metrics_pool_busy(const char *what, const char *path)
{
    int32_t active, total;

    if (me == NULL)
        return;
    /* route is written while busy_since_ms is 0 (see dc_board_t): a torn one costs a garbled row */
    if (__atomic_exchange_n(&me->busy_since_ms, 0, __ATOMIC_ACQ_REL) == 0) {
        active = __atomic_add_fetch(&shm->pool.active, 1, __ATOMIC_RELAXED);
        raise_to(&shm->pool.max_active, active);
        total = __atomic_load_n(&shm->pool.total, __ATOMIC_RELAXED);
        if (total > 0 && active >= total)
            add(&me->max_children_reached, 1);
    }
    __atomic_thread_fence(__ATOMIC_RELEASE);
    printable(me->route, sizeof(me->route), what, path);
    __atomic_store_n(&me->busy_since_ms, dc_now_ms(), __ATOMIC_RELEASE);
}

void dc_metrics_pool_idle(void)
{
    if (me != NULL && __atomic_exchange_n(&me->busy_since_ms, 0, __ATOMIC_ACQ_REL) != 0)
        __atomic_fetch_sub(&shm->pool.active, 1, __ATOMIC_RELAXED);
}

void dc_metrics_pool_served(int64_t ns)
{
    if (me == NULL)
        return;
    add(&me->served, 1);
    __atomic_store_n(&me->last_ns, ns, __ATOMIC_RELAXED);
}

void dc_metrics_slow_request(void)
{
    if (me != NULL)
        add(&me->slow_requests, 1);
}

void dc_metrics_pool_sample(int listen_fd, int64_t now_ms)
{
    int64_t last;
    long    queued, backlog;

    if (shm == NULL)
        return;
    last = __atomic_load_n(&shm->pool.sample_ms, __ATOMIC_RELAXED);
    if (now_ms - last < POOL_SAMPLE_MS || !__atomic_compare_exchange_n(&shm->pool.sample_ms, &last, now_ms, 0,
                                                                       __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        return;
    __atomic_store_n(&shm->pool.total, live_workers(), __ATOMIC_RELAXED);
    if (listen_fd < 0 || dc_listen_queue(listen_fd, &queued, &backlog) != DC_OK)
        return;
    __atomic_store_n(&shm->pool.listen_queue, (int32_t)queued, __ATOMIC_RELAXED);
    __atomic_store_n(&shm->pool.listen_backlog, (int32_t)backlog, __ATOMIC_RELAXED);
    raise_to(&shm->pool.max_listen_queue, (int32_t)queued);
}

/* The process rows and figures of the pool, from the file; the caller has checked shm. */
static void pool_take(dc_pool_status_t *st)
{
    memset(st, 0, sizeof(*st));
    st->started_ms = __atomic_load_n(&shm->pool.started_ms, __ATOMIC_RELAXED);
    st->max_active = __atomic_load_n(&shm->pool.max_active, __ATOMIC_RELAXED);
    st->listen_queue = __atomic_load_n(&shm->pool.listen_queue, __ATOMIC_RELAXED);
    st->listen_backlog = __atomic_load_n(&shm->pool.listen_backlog, __ATOMIC_RELAXED);
    st->max_listen_queue = __atomic_load_n(&shm->pool.max_listen_queue, __ATOMIC_RELAXED);
    for (int i = 0; i < SLOTS; i++) {
        const slot_t   *src = &shm->slot[i];
        int32_t         pid = __atomic_load_n(&src->pid, __ATOMIC_ACQUIRE);
        dc_pool_proc_t *p;
        int64_t         since;

        if (pid == 0 || src->kind != DC_MK_WORKER)
            continue;
        /* accepted conn: what every process that held the slot answered, as its HTTP counters have it */
        for (size_t k = 0; k < sizeof(src->http) / sizeof(uint64_t); k++)
            st->accepted += get(&(&src->http[0][0])[k]);
        st->slow_requests += get(&src->slow_requests);
        st->max_children_reached += get(&src->max_children_reached);
        if (!alive(pid) || st->nprocs >= DC_POOL_PROCS_MAX)
            continue;
        p = &st->procs[st->nprocs++];
        p->pid = pid;
        p->started_ms = src->started_ms;
        p->requests = get(&src->served);
        p->last_ns = __atomic_load_n(&src->last_ns, __ATOMIC_RELAXED);
        since = __atomic_load_n(&src->busy_since_ms, __ATOMIC_ACQUIRE);
        memcpy(p->route, src->route, sizeof(p->route));
        p->route[sizeof(p->route) - 1] = '\0';
        if (since != 0 && __atomic_load_n(&src->busy_since_ms, __ATOMIC_ACQUIRE) == since) {
            p->busy_ms = dc_now_ms() - since;
            p->busy = 1;
        }
        st->active += p->busy;
    }
    st->total = (int)st->nprocs;
    st->idle = st->total - st->active;
}

int dc_metrics_pool_status(dc_pool_status_t *st)
{
    if (shm == NULL) {
        memset(st, 0, sizeof(*st));
        return DC_ERROR;
    }
    pool_take(st);
    return DC_OK;
}

void dc_metrics_http(dc_mroute_t route, int status, int64_t ns)
{
    size_t i = 0;

    if (me == NULL || (unsigned)route >= DC_MR_COUNT)
        return;
    while (i < NSTATUS && statuses[i] != status)
        i++;
    add(&me->http[route][i], 1);
    observe(&me->http_duration[route], ns);
}

void dc_metrics_invalidation(dc_isource_t source, long n)
{
    if (me != NULL && (unsigned)source < DC_IS_COUNT && n > 0)
        add(&me->invalidations[source], (uint64_t)n);
}

void dc_metrics_invalidation_lag(int64_t ns)
{
    if (me != NULL)
        observe(&me->invalidation_lag, ns);
}

void dc_metrics_message_rejected(void)
{
    if (me != NULL)
        add(&me->messages_rejected, 1);
}

void dc_metrics_outbox_rows(long n)
{
    if (me != NULL && n > 0)
        add(&me->outbox_rows, (uint64_t)n);
}

void dc_metrics_worker_restart(void)
{
    if (me != NULL)
        add(&me->worker_restarts, 1);
}

void dc_metrics_worker_retired(dc_retire_t reason)
{
    if (me != NULL && (unsigned)reason < DC_RETIRE_COUNT)
        add(&me->worker_retirements[reason], 1);
}

void dc_metrics_request_timeout(void)
{
    if (me != NULL)
        add(&me->request_timeouts, 1);
}

void dc_metrics_consistency_check(dc_ccheck_t result)
{
    if (me != NULL && (unsigned)result < DC_CC_COUNT)
        add(&me->consistency[result], 1);
}

void dc_metrics_consistency_oldest(int64_t ms)
{
    if (me != NULL)
        __atomic_store_n(&me->consistency_oldest_ms, (uint64_t)(ms > 0 ? ms : 0), __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------- scraping */

static void sum_u64(uint64_t *dst, const uint64_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] += get(&src[i]);
}

static void sum_hist(hist_t *dst, const hist_t *src, size_t n)
{
    sum_u64((uint64_t *)dst, (const uint64_t *)src, n * (sizeof(hist_t) / sizeof(uint64_t)));
}

typedef struct {
    slot_t           total;
    int              workers, invalidators;
    dc_pool_status_t pool;
} snapshot_t;

static void take(snapshot_t *s)
{
    memset(s, 0, sizeof(*s));
    for (int i = 0; i < SLOTS; i++) {
        const slot_t *src = &shm->slot[i];
        slot_t       *t = &s->total;
        int32_t       pid = __atomic_load_n(&src->pid, __ATOMIC_ACQUIRE);
        if (pid == 0)
            continue;
        if (alive(pid)) {
            uint64_t oldest = get(&src->consistency_oldest_ms);
            s->workers += src->kind == DC_MK_WORKER;
            s->invalidators += src->kind == DC_MK_INVALIDATOR;
            if (oldest > t->consistency_oldest_ms)
                t->consistency_oldest_ms = oldest;
        }
        sum_u64(t->cache_hit, src->cache_hit, DC_Q_COUNT);
        sum_u64(t->cache_miss, src->cache_miss, DC_Q_COUNT);
        sum_u64(t->cache_error, src->cache_error, DC_COP_COUNT);
        sum_hist(t->cache_latency, src->cache_latency, DC_COP_TIMED);
        sum_u64(&t->stale_set_refusals, &src->stale_set_refusals, 1);
        sum_u64(t->stale_served, src->stale_served, DC_STALE_COUNT);
        sum_u64(&t->coalesced, &src->coalesced, 1);
        sum_u64(t->db_queries, src->db_queries, DC_METRICS_MAX_STMTS);
        sum_u64(t->db_errors, src->db_errors, DC_METRICS_MAX_STMTS);
        sum_hist(t->db_latency, src->db_latency, DC_METRICS_MAX_STMTS);
        sum_u64(&t->http[0][0], &src->http[0][0], sizeof(t->http) / sizeof(uint64_t));
        sum_hist(t->http_duration, src->http_duration, DC_MR_COUNT);
        sum_u64(t->invalidations, src->invalidations, DC_IS_COUNT);
        sum_hist(&t->invalidation_lag, &src->invalidation_lag, 1);
        sum_u64(&t->messages_rejected, &src->messages_rejected, 1);
        sum_u64(&t->outbox_rows, &src->outbox_rows, 1);
        sum_u64(&t->worker_restarts, &src->worker_restarts, 1);
        sum_u64(t->worker_retirements, src->worker_retirements, DC_RETIRE_COUNT);
        sum_u64(&t->request_timeouts, &src->request_timeouts, 1);
        sum_u64(t->consistency, src->consistency, DC_CC_COUNT);
        sum_u64(t->db_reads, src->db_reads, DC_DBT_COUNT);
        sum_u64(t->standby_fallbacks, src->standby_fallbacks, DC_SBF_COUNT);
    }
    pool_take(&s->pool);
}

/* A summed copy of every slot (free it), or NULL with *rc set. */
static snapshot_t *snapshot(int *rc)
{
    snapshot_t *snap;

    if (shm == NULL) {
        *rc = DC_ERROR;
        return NULL;
    }
    snap = malloc(sizeof(*snap));
    if (snap == NULL) {
        *rc = DC_ENOMEM;
        return NULL;
    }
    take(snap);
    *rc = DC_OK;
    return snap;
}

int dc_metrics_summary(dc_metrics_summary_t *s)
{
    int         rc;
    snapshot_t *snap;

    memset(s, 0, sizeof(*s));
    snap = snapshot(&rc);
    if (snap == NULL)
        return rc;
    memcpy(s->hits, snap->total.cache_hit, sizeof(s->hits));
    memcpy(s->misses, snap->total.cache_miss, sizeof(s->misses));
    memcpy(s->invalidations, snap->total.invalidations, sizeof(s->invalidations));
    s->stale_set_refusals = snap->total.stale_set_refusals;
    for (int i = 0; i < DC_COP_COUNT; i++)
        s->cache_errors += snap->total.cache_error[i];
    for (size_t i = 0; i < sizeof(snap->total.http) / sizeof(uint64_t); i++)
        s->requests += (&snap->total.http[0][0])[i];
    s->workers = snap->workers;
    free(snap);
    return DC_OK;
}

static void family(dc_buf_t *o, int *rc, const char *name, const char *type, const char *help)
{
    if (*rc == DC_OK && dc_buf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type) != DC_OK)
        *rc = DC_ENOMEM;
}

static void line(dc_buf_t *o, int *rc, const char *name, const char *labels, uint64_t v)
{
    if (*rc == DC_OK && dc_buf_printf(o, "%s%s%s%s %llu\n", name, labels[0] ? "{" : "", labels,
                                      labels[0] ? "}" : "", (unsigned long long)v) != DC_OK)
        *rc = DC_ENOMEM;
}

/*
 * A label value escaped as the text format requires (\\, \", \n), cut
 * before an escape would be split so that the quoting always closes: the
 * statement names are the caller's, and no name may break a scrape
 * (found by tests/fuzz/fuzz_metrics.c).
 */
static const char *label_value(const char *s, char *buf, size_t cap)
{
    size_t n = 0;

    for (; *s != '\0' && n + 2 < cap; s++) {
        if (*s == '\\' || *s == '"' || *s == '\n') {
            buf[n++] = '\\';
            buf[n++] = *s == '\n' ? 'n' : *s;
        } else {
            buf[n++] = *s;
        }
    }
    buf[n] = '\0';
    return buf;
}

#define LABEL_VALUE_MAX 112 /* escaped; fits lab[160] with the label name, and le= after it in hist() */

/* A counter family with one label: name{label="names[i]"} values[i]. */
static void counters(dc_buf_t *o, int *rc, const char *name, const char *help, const char *label,
                     const char *const *names, const uint64_t *values, size_t n)
{
    char lab[160], val[LABEL_VALUE_MAX];

    family(o, rc, name, "counter", help);
    for (size_t i = 0; i < n; i++) {
        if (names[i] == NULL)
            continue;
        snprintf(lab, sizeof(lab), "%s=\"%s\"", label, label_value(names[i], val, sizeof(val)));
        line(o, rc, name, lab, values[i]);
    }
}

/*
 * One histogram series: cumulative buckets up to nb bounds, +Inf, sum,
 * count; +Inf and count are the sum of the same bucket values (h is a
 * snapshot), so they are equal and never below a finite bucket.
 */
static void hist(dc_buf_t *o, int *rc, const char *name, const char *labels, const hist_t *h, int nb)
{
    char        lab[192], metric[128];
    uint64_t    cum = 0, total = 0;
    const char *sep = labels[0] ? "," : "";

    for (int i = 0; i <= NBUCKETS; i++)
        total += h->bucket[i];
    snprintf(metric, sizeof(metric), "%s_bucket", name);
    for (int i = 0; i < nb; i++) {
        cum += h->bucket[i];
        snprintf(lab, sizeof(lab), "%s%sle=\"%s\"", labels, sep, bound_txt[i]);
        line(o, rc, metric, lab, cum);
    }
    snprintf(lab, sizeof(lab), "%s%sle=\"+Inf\"", labels, sep);
    line(o, rc, metric, lab, total);
    if (*rc == DC_OK && dc_buf_printf(o, "%s_sum%s%s%s %.9f\n", name, labels[0] ? "{" : "", labels,
                                      labels[0] ? "}" : "", (double)h->sum_ns / 1e9) != DC_OK)
        *rc = DC_ENOMEM;
    snprintf(metric, sizeof(metric), "%s_count", name);
    line(o, rc, metric, labels, total);
}

/* The figures of the pool's status page (php-fpm's), as dashboard_pool_* and the slow log's counter. */
static void render_pool(dc_buf_t *o, int *rc, const dc_pool_status_t *p)
{
    family(o, rc, "dashboard_pool_processes", "gauge", "Worker processes alive, by state (idle or active).");
    line(o, rc, "dashboard_pool_processes", "state=\"idle\"", (uint64_t)p->idle);
    line(o, rc, "dashboard_pool_processes", "state=\"active\"", (uint64_t)p->active);
    family(o, rc, "dashboard_pool_max_active_processes", "gauge",
           "The most workers ever in a request at once since the pool's metrics file was laid out.");
    line(o, rc, "dashboard_pool_max_active_processes", "", (uint64_t)p->max_active);
    family(o, rc, "dashboard_pool_max_children_reached_total", "counter",
           "Requests that began while every worker of the pool was busy (the pool is too small).");
    line(o, rc, "dashboard_pool_max_children_reached_total", "", p->max_children_reached);
    family(o, rc, "dashboard_pool_accepted_requests_total", "counter",
           "Requests the pool's workers answered.");
    line(o, rc, "dashboard_pool_accepted_requests_total", "", p->accepted);
    family(o, rc, "dashboard_pool_listen_queue", "gauge",
           "Connections waiting in the listening socket's accept queue (read from the kernel, sampled each "
           "second).");
    line(o, rc, "dashboard_pool_listen_queue", "", (uint64_t)p->listen_queue);
    family(o, rc, "dashboard_pool_listen_queue_max", "gauge", "The longest accept queue sampled.");
    line(o, rc, "dashboard_pool_listen_queue_max", "", (uint64_t)p->max_listen_queue);
    family(o, rc, "dashboard_pool_listen_queue_length", "gauge",
           "The length the accept queue may reach (backlog).");
    line(o, rc, "dashboard_pool_listen_queue_length", "", (uint64_t)p->listen_backlog);
    family(o, rc, "dashboard_slow_requests_total", "counter",
           "Requests that took longer than SLOWLOG_MS (each logged once as worker.slow).");
    line(o, rc, "dashboard_slow_requests_total", "", p->slow_requests);
}

int dc_metrics_render(dc_buf_t *o, const char *const *stmt_names, size_t nstmts)
{
    snapshot_t         *snap;
    const slot_t       *t;
    const char         *qnames[DC_Q_COUNT];
    char                lab[160], val[LABEL_VALUE_MAX];
    dc_trust_status_t   trust;
    dc_breaker_status_t breakers[DC_DEP_COUNT];
    int                 rc = DC_OK;

    snap = snapshot(&rc);
    if (snap == NULL)
        return rc;
    t = &snap->total;
    if (nstmts > DC_METRICS_MAX_STMTS)
        nstmts = DC_METRICS_MAX_STMTS;

    for (int q = 0; q < DC_Q_AUDIT; q++)
        qnames[q] = dc_qtype_name((dc_qtype_t)q);
    counters(o, &rc, "dashboard_cache_hit_total", "Dashboard answers served from Redis.", "query_type",
             qnames, t->cache_hit, DC_Q_AUDIT);
    counters(o, &rc, "dashboard_cache_miss_total",
             "Dashboard answers read from PostgreSQL because Redis had none (or a stale one).", "query_type",
             qnames, t->cache_miss, DC_Q_AUDIT);
    counters(o, &rc, "dashboard_cache_error_total", "Redis operations that failed or timed out.", "operation",
             cop_names, t->cache_error, DC_COP_COUNT);
    family(o, &rc, "dashboard_cache_latency_seconds", "histogram", "Latency of Redis operations.");
    for (int i = 0; i < DC_COP_TIMED; i++) {
        snprintf(lab, sizeof(lab), "operation=\"%s\"", cop_names[i]);
        hist(o, &rc, "dashboard_cache_latency_seconds", lab, &t->cache_latency[i], CACHE_BUCKETS);
    }
    family(o, &rc, "dashboard_cache_stale_set_refusals_total", "counter",
           "Stores refused because an invalidation came in while the answer was read.");
    line(o, &rc, "dashboard_cache_stale_set_refusals_total", "", t->stale_set_refusals);
    counters(
        o, &rc, "dashboard_cache_stale_served_total",
        "Answers served past their TTL, of the current generation (X-Cache: STALE): while another reader "
        "refreshes them (revalidate), or because the database failed (error).",
        "reason", stale_names, t->stale_served, DC_STALE_COUNT);
    family(
        o, &rc, "dashboard_cache_coalesced_total", "counter",
        "Reads answered by the value another reader filled while they waited on its lease (no query of their "
        "own).");
    line(o, &rc, "dashboard_cache_coalesced_total", "", t->coalesced);

    counters(o, &rc, "dashboard_db_queries_total", "PostgreSQL statements run, by statement.", "statement",
             stmt_names, t->db_queries, nstmts);
    counters(o, &rc, "dashboard_db_errors_total",
             "PostgreSQL statements that failed, timed out or found no connection.", "statement", stmt_names,
             t->db_errors, nstmts);
    family(o, &rc, "dashboard_db_query_duration_seconds", "histogram", "Duration of PostgreSQL statements.");
    for (size_t i = 0; i < nstmts; i++) {
        if (stmt_names[i] == NULL)
            continue;
        snprintf(lab, sizeof(lab), "statement=\"%s\"", label_value(stmt_names[i], val, sizeof(val)));
        hist(o, &rc, "dashboard_db_query_duration_seconds", lab, &t->db_latency[i], NBUCKETS);
    }

    counters(o, &rc, "dashboard_db_reads_total",
             "Dashboard reads that missed the cache and ran on PostgreSQL, by the server that answered: the "
             "primary, or a standby (DATABASE_READ_URL) that had replayed the organization's last write.",
             "target", dbtarget_names, t->db_reads, DC_DBT_COUNT);
    counters(o, &rc, "dashboard_db_standby_fallbacks_total",
             "Reads that could have gone to the standby and went to the primary, by why: the standby had "
             "not replayed the organization's last write (lag), failed or was no standby (error), or the "
             "position to wait for could not be known (unknown_lsn).",
             "reason", sbfallback_names, t->standby_fallbacks, DC_SBF_COUNT);

    family(o, &rc, "dashboard_http_requests_total", "counter", "Requests answered, by route and status.");
    for (int r = 0; r < DC_MR_COUNT; r++) {
        for (size_t s = 0; s <= NSTATUS; s++) {
            if (s < NSTATUS)
                snprintf(lab, sizeof(lab), "route=\"%s\",status=\"%d\"", route_names[r], statuses[s]);
            else
                snprintf(lab, sizeof(lab), "route=\"%s\",status=\"other\"", route_names[r]);
            line(o, &rc, "dashboard_http_requests_total", lab, t->http[r][s]);
        }
    }
    family(o, &rc, "dashboard_http_request_duration_seconds", "histogram",
           "Time from the request reaching a worker to its answer written.");
    for (int r = 0; r < DC_MR_COUNT; r++) {
        snprintf(lab, sizeof(lab), "route=\"%s\"", route_names[r]);
        hist(o, &rc, "dashboard_http_request_duration_seconds", lab, &t->http_duration[r], NBUCKETS);
    }

    counters(o, &rc, "dashboard_invalidations_total", "Organizations invalidated, by source.", "source",
             source_names, t->invalidations, DC_IS_COUNT);
    family(o, &rc, "dashboard_invalidation_lag_seconds", "histogram",
           "From a database write (trigger) to its invalidation applied by the invalidator.");
    hist(o, &rc, "dashboard_invalidation_lag_seconds", "", &t->invalidation_lag, NBUCKETS);
    family(o, &rc, "dashboard_invalidation_messages_rejected_total", "counter",
           "cache:invalidate messages refused as malformed or hostile.");
    line(o, &rc, "dashboard_invalidation_messages_rejected_total", "", t->messages_rejected);
    family(o, &rc, "dashboard_outbox_rows_processed_total", "counter", "cache_outbox rows applied.");
    line(o, &rc, "dashboard_outbox_rows_processed_total", "", t->outbox_rows);

    counters(o, &rc, "dashboard_consistency_checks_total",
             "Cached answers the invalidator's sampler compared with PostgreSQL, by what it found.", "result",
             ccheck_names, t->consistency, DC_CC_COUNT);
    family(o, &rc, "dashboard_consistency_oldest_inconsistency_seconds", "gauge",
           "Of the inconsistent answers the sampler found since its invalidator started, the longest one "
           "had been in the cache when found (its TTL minus its remaining TTL); 0 when none.");
    if (rc == DC_OK && dc_buf_printf(o, "dashboard_consistency_oldest_inconsistency_seconds %.3f\n",
                                     (double)t->consistency_oldest_ms / 1e3) != DC_OK)
        rc = DC_ENOMEM;

    family(o, &rc, "dashboard_worker_restarts_total", "counter",
           "Workers the master started again after one died.");
    line(o, &rc, "dashboard_worker_restarts_total", "", t->worker_restarts);
    counters(o, &rc, "dashboard_worker_retirements_total",
             "Workers the master replaced on purpose, by why: max_requests served, killed stuck in one "
             "request past twice REQUEST_TIMEOUT_MS (timeout), SIGHUP (reload).",
             "reason", retire_names, t->worker_retirements, DC_RETIRE_COUNT);
    family(o, &rc, "dashboard_request_timeouts_total", "counter",
           "Requests answered 503 because they ran past REQUEST_TIMEOUT_MS.");
    line(o, &rc, "dashboard_request_timeouts_total", "", t->request_timeouts);
    family(o, &rc, "dashboard_workers", "gauge", "Worker processes alive.");
    line(o, &rc, "dashboard_workers", "", (uint64_t)snap->workers);
    family(o, &rc, "dashboard_invalidator_up", "gauge", "Whether an invalidator process is alive.");
    line(o, &rc, "dashboard_invalidator_up", "", snap->invalidators > 0);
    render_pool(o, &rc, &snap->pool);

    /* the host's lease on serving hits (dc_trust): read from its own shared state */
    dc_trust_status(&trust);
    family(
        o, &rc, "dashboard_cache_hits_allowed", "gauge",
        "Whether this host serves cache hits (0: Redis does not take writes, or the outbox has a backlog).");
    line(o, &rc, "dashboard_cache_hits_allowed", "", (uint64_t)trust.hits_ok);
    family(o, &rc, "dashboard_cache_hits_stopped_seconds", "gauge",
           "How long hits have been stopped on this host (0 while they are served).");
    if (rc == DC_OK && dc_buf_printf(o, "dashboard_cache_hits_stopped_seconds %.3f\n",
                                     (double)trust.stopped_ms / 1000.0) != DC_OK)
        rc = DC_ENOMEM;
    family(o, &rc, "dashboard_cache_write_refusals_total", "counter",
           "Writes Redis did not take (invalidations, stores, write probes): each stops hits on the host.");
    line(o, &rc, "dashboard_cache_write_refusals_total", "", (uint64_t)trust.refusals);

    /* the host's circuit breakers (dc_breaker): read from their own shared state */
    family(o, &rc, "dashboard_breaker_state", "gauge",
           "Circuit breaker of a dependency on this host: 0 closed, 1 open (no request touches it), "
           "2 half-open (one probe goes through).");
    for (int d = 0; d < DC_DEP_COUNT; d++) {
        dc_breaker_status(d, &breakers[d]);
        snprintf(lab, sizeof(lab), "dependency=\"%s\"", dc_breaker_dep_name(d));
        line(o, &rc, "dashboard_breaker_state", lab, (uint64_t)breakers[d].state);
    }
    family(o, &rc, "dashboard_breaker_transitions_total", "counter",
           "Circuit breaker transitions on this host, by dependency and the state entered.");
    for (int d = 0; d < DC_DEP_COUNT; d++) {
        for (int s = 0; s < DC_BREAKER_STATES; s++) {
            snprintf(lab, sizeof(lab), "dependency=\"%s\",to=\"%s\"", dc_breaker_dep_name(d),
                     dc_breaker_state_name(s));
            line(o, &rc, "dashboard_breaker_transitions_total", lab, breakers[d].transitions[s]);
        }
    }

    free(snap);
    return rc;
}
