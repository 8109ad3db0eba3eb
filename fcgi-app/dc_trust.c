/* The host's lease on serving hits: probes, refusals, and the shared state. */
#include "dc_trust.h"

#include <string.h>
#include <sys/mman.h>

#include "dc_log.h"
#include "dc_outbox.h"
#include "dc_shm.h"

#define MAGIC      0x6463747275737431ULL /* "dctrust1" */
#define VERSION    2
#define END_BITS   40 /* a lease's end, ms of dc_now_ms (CLOCK_MONOTONIC): 34 years of uptime */
#define END_MASK   ((1ULL << END_BITS) - 1)
#define STAMP_MASK ((1ULL << (64 - END_BITS)) - 1)

/*
 * Every field is read and written with atomics by any process of the host.
 * A lease is one word: the end, and the refusal count it was granted under
 * (its low bits). A refusal only counts: every lease granted before it
 * stops matching at once, and so does one that a probe which started
 * before it stores afterwards.
 */
typedef struct {
    uint64_t magic;
    uint32_t version;
    uint32_t backlog;       /* the last probe found rows left from before its previous one */
    uint64_t refusals;      /* writes Redis did not take */
    uint64_t lease;         /* (refusals & STAMP_MASK) << END_BITS | end */
    int64_t  probe_at;      /* ms the last probe started; a probe claims its turn by moving it */
    int64_t  seen_max;      /* the outbox's highest id at the last probe; -1: none yet */
    uint64_t seen_under;    /* the refusal count when seen_max was read */
    int64_t  stopped_at;    /* ms hits stopped; 0 while they are served */
    uint64_t probes_failed; /* probes whose write Redis did not take */
    uint64_t primary;       /* with sentinels: the server this host writes to (dc_trust_primary_set) */
} state_t;

static state_t  local = { .seen_max = -1 };
static state_t *st = &local;
static state_t *mapped;

static uint64_t ld(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

static int64_t ld64(const int64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

static void init_state(void *mem)
{
    state_t *s = mem;

    if (s->magic != MAGIC || s->version != VERSION) {
        memset(s, 0, sizeof(*s));
        s->version = VERSION;
        s->seen_max = -1;
        __atomic_store_n(&s->magic, MAGIC, __ATOMIC_RELEASE);
    }
}

int dc_trust_open(const char *path, dc_err_t *err)
{
    void *m = mapped;

    if (dc_shm_attach(&m, path, sizeof(state_t), init_state, err) != DC_OK)
        return DC_ERROR;
    st = mapped = m;
    return DC_OK;
}

void dc_trust_open_host(const dc_config_t *cfg)
{
    dc_shm_open_host(cfg, "trust", dc_trust_open, "trust.open",
                     "each process learns on its own that redis refuses writes");
}

void dc_trust_close(void)
{
    if (mapped != NULL)
        munmap(mapped, sizeof(state_t));
    mapped = NULL;
    st = &local;
    memset(&local, 0, sizeof(local));
    local.seen_max = -1;
}

int dc_trust_hits_ok(void)
{
    uint64_t r = ld(&st->refusals), l = ld(&st->lease);

    return (l >> END_BITS) == (r & STAMP_MASK) && (int64_t)(l & END_MASK) > dc_now_ms();
}

/* Notes when hits stopped; 1 for the first to note it (who logs). */
static int note_stop(void)
{
    int64_t zero = 0;

    return __atomic_compare_exchange_n(&st->stopped_at, &zero, dc_now_ms(), 0, __ATOMIC_SEQ_CST,
                                       __ATOMIC_SEQ_CST);
}

void dc_trust_refused(const char *what)
{
    __atomic_add_fetch(&st->refusals, 1, __ATOMIC_SEQ_CST);
    if (note_stop())
        dc_log_warn("cache.hits_stopped",
                    "%s: this host serves no cache hit (answers from the database) until redis takes writes "
                    "again and the outbox is applied",
                    what);
}

void dc_trust_primary_set(uint64_t id)
{
    uint64_t was = ld(&st->primary);

    if (was == id)
        return;
    __atomic_store_n(&st->primary, id, __ATOMIC_SEQ_CST);
    if (was != 0)
        dc_trust_refused("the redis primary moved");
}

int dc_trust_primary_is(uint64_t id)
{
    uint64_t p = ld(&st->primary);

    return p == 0 || p == id;
}

/* A lease from t0 (the probe's start) under refusal count under. */
static void grant(uint64_t under, int64_t t0, int interval_ms)
{
    uint64_t end = (uint64_t)(t0 + (int64_t)interval_ms * DC_TRUST_LEASE_PROBES) & END_MASK;
    int64_t  since = ld64(&st->stopped_at);

    __atomic_store_n(&st->lease, (under & STAMP_MASK) << END_BITS | end, __ATOMIC_SEQ_CST);
    if (since != 0 && ld(&st->refusals) == under &&
        __atomic_compare_exchange_n(&st->stopped_at, &since, 0, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        dc_log_info("cache.hits_resumed",
                    "redis takes writes and the outbox is applied: hits resume after %lld ms",
                    (long long)(dc_now_ms() - since));
}

static void probe(dc_cache_t *c, dc_db_t *db, int interval_ms, int64_t t0)
{
    uint64_t  under = ld(&st->refusals);
    long long max_id, pending;
    int64_t   prev;
    int       clean;

    if (dc_cache_probe(c) != DC_OK) {
        __atomic_add_fetch(&st->probes_failed, 1, __ATOMIC_SEQ_CST);
        dc_trust_refused("redis did not take the write probe");
        return;
    }
    if (dc_outbox_watermark(db, interval_ms, &max_id, &pending) != DC_OK) {
        /* the database did not answer: its last verdict stands (nothing is acknowledged without it) */
        if (ld(&st->seen_under) == under && ld64(&st->seen_max) >= 0 &&
            !__atomic_load_n(&st->backlog, __ATOMIC_SEQ_CST))
            grant(under, t0, interval_ms);
        return;
    }
    prev = ld(&st->seen_under) == under ? ld64(&st->seen_max) : -1;
    /* every row there at the previous probe (since the last refusal) has been applied */
    clean = pending == 0 || (prev >= 0 && pending > prev);
    __atomic_store_n(&st->seen_max, (int64_t)max_id, __ATOMIC_SEQ_CST);
    __atomic_store_n(&st->seen_under, under, __ATOMIC_SEQ_CST);
    if (!clean && !__atomic_exchange_n(&st->backlog, 1, __ATOMIC_SEQ_CST)) {
        note_stop();
        dc_log_warn(
            "cache.outbox_backlog",
            "outbox row %lld is still pending: hits stop on this host until the invalidator applies it",
            pending);
    }
    if (clean) {
        __atomic_store_n(&st->backlog, 0, __ATOMIC_SEQ_CST);
        grant(under, t0, interval_ms);
    }
}

int dc_trust_tick(dc_cache_t *c, dc_db_t *db, int interval_ms)
{
    int64_t now = dc_now_ms(), last = ld64(&st->probe_at);
    /* while hits are stopped, probe more often: they resume as soon as they may */
    int64_t gap = dc_trust_hits_ok()                      ? interval_ms
                  : interval_ms / 8 > DC_TRUST_GAP_MIN_MS ? interval_ms / 8
                                                          : DC_TRUST_GAP_MIN_MS;

    if (now < last + gap)
        return (int)(last + gap - now);
    if (!__atomic_compare_exchange_n(&st->probe_at, &last, now, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        return (int)gap; /* another process of the host probes now */
    probe(c, db, interval_ms, now);
    return (int)gap;
}

void dc_trust_status(dc_trust_status_t *s)
{
    int64_t since = ld64(&st->stopped_at);

    s->hits_ok = dc_trust_hits_ok();
    s->stopped_ms = since != 0 ? dc_now_ms() - since : 0;
    s->backlog = (int)__atomic_load_n(&st->backlog, __ATOMIC_SEQ_CST);
    s->refusals = (long long)ld(&st->refusals);
    s->probes_failed = (long long)ld(&st->probes_failed);
}
