/*
 * Metrics shared by every process of a pool, in a memory-mapped file.
 *
 * Each process (worker, master, invalidator) owns one slot of fixed-size
 * counters and histograms, padded to cache lines, and is its only writer:
 * an update is a relaxed load and store on its own cache lines, no lock and
 * no contention. A scrape, in any worker, copies every slot and sums them,
 * so whichever worker answers tells the truth about all of them. A process
 * that dies leaves its slot as it was; the next process to start takes it
 * over and keeps adding to the same numbers, so a sum never goes backwards.
 *
 * The file (METRICS_FILE, by default one per DATABASE_URL + REDIS_URL in
 * /dev/shm) is shared the same way by the prefork master's workers,
 * spawn-fcgi children and systemd-started processes. With METRICS=off
 * nothing is mapped and every update is a no-op (for measuring its cost).
 */
#ifndef DC_METRICS_H
#define DC_METRICS_H

#include "dc_buf.h"
#include "dc_config.h"
#include "dc_core.h"

typedef enum {
    DC_MK_WORKER = 1,
    DC_MK_MASTER,
    DC_MK_INVALIDATOR,
} dc_mkind_t;

/* Cache operations (error and latency labels). */
typedef enum {
    DC_COP_GET = 0,
    DC_COP_SET,
    DC_COP_INVALIDATE,
    DC_COP_PUBLISH,
    DC_COP_CONNECT,
    DC_COP_COUNT
} dc_cop_t;

#define DC_COP_TIMED 3 /* get, set, invalidate have a latency histogram */

/* HTTP routes (the route label): every endpoint of dc_api.h, then the service routes. */
#define DC_API_ENUM_MR(NAME, ...) DC_MR_##NAME,
typedef enum {
    DC_API_QUERIES(DC_API_ENUM_MR) DC_API_WRITES(DC_API_ENUM_MR) DC_API_SERVICES(DC_API_ENUM_MR) DC_MR_OTHER,
    DC_MR_COUNT
} dc_mroute_t;
#undef DC_API_ENUM_MR

/* Where an invalidation came from. */
typedef enum {
    DC_IS_WRITE = 0, /* a worker's own write endpoint */
    DC_IS_PUBSUB,    /* cache:invalidate message */
    DC_IS_OUTBOX,    /* database trigger */
    DC_IS_RESYNC,    /* everything, after a gap in the subscription */
    DC_IS_SAMPLER,   /* the consistency sampler found a stale answer (dc_sampler) */
    DC_IS_COUNT
} dc_isource_t;

/* What a check of the consistency sampler found (the result label). */
typedef enum {
    DC_CC_CONSISTENT = 0, /* the cached answer is what PostgreSQL answers now */
    DC_CC_INCONSISTENT,   /* it is not: invalidated */
    DC_CC_SKIPPED,        /* looked at, not compared (dc_sampler.h says when) */
    DC_CC_ERROR,          /* Redis or PostgreSQL failed during the check */
    DC_CC_COUNT
} dc_ccheck_t;

/* Why a worker was replaced on purpose (the reason label of dashboard_worker_retirements_total). */
typedef enum {
    DC_RETIRE_MAX_REQUESTS = 0, /* it served MAX_REQUESTS / --max-requests */
    DC_RETIRE_TIMEOUT,          /* the master's watchdog killed it, stuck in one request */
    DC_RETIRE_RELOAD,           /* SIGHUP */
    DC_RETIRE_COUNT
} dc_retire_t;

/* Where a dashboard read that missed the cache went (the target label), and why not to the standby. */
typedef enum { DC_DBT_PRIMARY = 0, DC_DBT_STANDBY, DC_DBT_COUNT } dc_dbtarget_t;

typedef enum {
    DC_SBF_LAG = 0, /* the standby had not replayed the organization's LSN yet */
    DC_SBF_ERROR,   /* the standby failed, was not a standby, reconnected or did not answer with data */
    DC_SBF_UNKNOWN, /* the LSN could not be known (Redis or the primary's position failed) */
    DC_SBF_COUNT
} dc_sbfallback_t;

#define DC_METRICS_MAX_STMTS 32

/* The default file for cfg (METRICS_FILE or derived from the URLs) into path. */
void dc_metrics_default_path(const dc_config_t *cfg, char *path, size_t cap);

/*
 * Maps the file (created and sized when needed). Call once per process, or
 * once in a master before fork. DC_OK, or DC_ERROR with err (the caller may
 * go on without metrics).
 */
int dc_metrics_open(const char *path, dc_err_t *err) DC_WUR;

/* Disables every update (METRICS=off); renders an empty page. */
void dc_metrics_disable(void);

/* Takes a slot for this process. DC_OK or DC_ERROR (all slots held by live processes). */
int dc_metrics_claim(dc_mkind_t kind) DC_WUR;

/* Unmaps (for tests). */
void dc_metrics_close(void);

/* Durations are nanoseconds of dc_now_ns(). */
void dc_metrics_cache_hit(dc_qtype_t q);
void dc_metrics_cache_miss(dc_qtype_t q);
void dc_metrics_cache_error(dc_cop_t op);
void dc_metrics_cache_latency(dc_cop_t op, int64_t ns);
void dc_metrics_stale_set_refused(void);

/* Why an answer was served past its TTL (X-Cache: STALE). */
typedef enum { DC_STALE_REVALIDATE = 0, DC_STALE_ERROR, DC_STALE_COUNT } dc_stale_t;

void dc_metrics_cache_stale(dc_stale_t why);

/* A read answered by a value another reader filled while it waited on the key's lease. */
void dc_metrics_cache_coalesced(void);
void dc_metrics_db_query(int stmt, int ok, int64_t ns);
/* A dashboard read run by PostgreSQL, by target (dc_replica). */
void dc_metrics_db_read(dc_dbtarget_t target);
/* A read that could have gone to the standby and went to the primary, by why (dc_replica). */
void dc_metrics_standby_fallback(dc_sbfallback_t why);
void dc_metrics_http(dc_mroute_t route, int status, int64_t ns);
void dc_metrics_invalidation(dc_isource_t source, long n);
void dc_metrics_invalidation_lag(int64_t ns);
void dc_metrics_message_rejected(void);
void dc_metrics_outbox_rows(long n);
void dc_metrics_worker_restart(void);
void dc_metrics_worker_retired(dc_retire_t reason);
/* A request answered 503 because it ran past REQUEST_TIMEOUT_MS. */
void dc_metrics_request_timeout(void);
void dc_metrics_consistency_check(dc_ccheck_t result);
/* Sets this process's gauge of the oldest inconsistency (milliseconds; a scrape shows the largest). */
void dc_metrics_consistency_oldest(int64_t ms);

/*
 * The pool's status page (dc_status; php-fpm's pm.status_path). Every
 * worker says in its slot whether it is in a request and which; the pool's
 * figures that no process owns (the most active at once, the listen queue)
 * are in the file's header.
 */
#define DC_POOL_ROUTE_MAX 96
#define DC_POOL_PROCS_MAX 128

/* Request work begins: what (a method, or a batch's words) on path; the worker is active until idle. */
void dc_metrics_pool_busy(const char *what, const char *path);
void dc_metrics_pool_idle(void);
/* A request answered, ns after it arrived: this process's row (the pool's count is its HTTP counters'). */
void dc_metrics_pool_served(int64_t ns);
/* A request over SLOWLOG_MS (dc_trace). */
void dc_metrics_slow_request(void);

/*
 * Samples the pool's figures no process owns: the live workers, and the
 * accept queue of listen_fd as the kernel has it (dc_listen_queue; -1:
 * none). Cheap to call often: whichever process of the pool calls it first
 * in each second does the work (the master every loop, each worker at its
 * tick), the others return at once.
 */
void dc_metrics_pool_sample(int listen_fd, int64_t now_ms);

typedef struct {
    int32_t  pid;
    int      busy;                     /* in a request now */
    int64_t  started_ms;               /* wall clock */
    uint64_t requests;                 /* answered by this process */
    int64_t  busy_ms;                  /* how long the request in hand has run (busy) */
    int64_t  last_ns;                  /* how long the last answered one took */
    char     route[DC_POOL_ROUTE_MAX]; /* the request in hand (busy), else the last one */
} dc_pool_proc_t;

typedef struct {
    int64_t        started_ms; /* wall clock: the pool's start (its metrics file laid out) */
    uint64_t       accepted;   /* requests answered, by every worker that ever ran */
    int            idle, active, total;
    int            max_active;
    uint64_t       max_children_reached;
    uint64_t       slow_requests;
    int            listen_queue, listen_backlog, max_listen_queue;
    size_t         nprocs;
    dc_pool_proc_t procs[DC_POOL_PROCS_MAX]; /* the live workers */
} dc_pool_status_t;

/* A copy of the pool's figures and rows. DC_OK, or DC_ERROR when metrics are not mapped (st zeroed). */
int dc_metrics_pool_status(dc_pool_status_t *st) DC_WUR;

/* Every counter of every slot summed, for /api/admin/cache/stats. */
typedef struct {
    uint64_t hits[DC_Q_COUNT], misses[DC_Q_COUNT];
    uint64_t invalidations[DC_IS_COUNT];
    uint64_t stale_set_refusals, cache_errors;
    uint64_t requests; /* HTTP requests answered, every route and status */
    int      workers;  /* worker processes alive */
} dc_metrics_summary_t;

int dc_metrics_summary(dc_metrics_summary_t *s) DC_WUR;

/*
 * Appends the Prometheus text exposition of the sum over all slots to out.
 * stmt_names[i] labels statement slot i; a NULL name is a slot no
 * statement owns and is left out; names are escaped as label values, and
 * one longer than 55 bytes may be cut. DC_OK, DC_ENOMEM, or DC_ERROR when
 * metrics are not mapped.
 */
int dc_metrics_render(dc_buf_t *out, const char *const *stmt_names, size_t nstmts) DC_WUR;

#endif
