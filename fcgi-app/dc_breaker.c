/* The host's circuit breakers: state machine, failure window, shared state. */
#include "dc_breaker.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dc_log.h"
#include "dc_shm.h"

#define MAGIC      0x6463627265616b31ULL /* "dcbreak1" */
#define VERSION    1
#define NBUCKETS   10 /* the window in tenths */
#define STATE_BITS 2
#define SINCE_MASK ((1ULL << (64 - STATE_BITS)) - 1)
#define EPOCH_BITS 24 /* a bucket word: epoch << 40 | failures << 20 | calls */
#define COUNT_BITS 20
#define COUNT_MASK ((1ULL << COUNT_BITS) - 1)
#define EPOCH_MASK ((1ULL << EPOCH_BITS) - 1)

/*
 * One dependency's breaker, every field read and written with atomics by
 * any process of the host. The state and the time it was entered are one
 * word, so that a transition is one compare-and-swap: of the processes
 * that see the same reason at once, one makes it (and logs it). The
 * window's buckets are one word each, so that a bucket that is reused for
 * a new tenth of the window starts at zero without losing a count.
 */
typedef struct {
    uint64_t word;      /* state << 62 | ms (dc_now_ms) it was entered, or the probe taken */
    int32_t  probe_pid; /* who holds the half-open probe */
    uint32_t consecutive;
    uint64_t buckets[NBUCKETS];
    uint64_t transitions[DC_BREAKER_STATES];
} __attribute__((aligned(128))) dep_t;

typedef struct {
    uint64_t magic;
    uint32_t version;
    dep_t    dep[DC_DEP_COUNT];
} state_t;

static struct {
    int     on;
    int     failures, min_requests, percent, open_ms;
    int64_t bucket_ms;
    int64_t probe_ms[DC_DEP_COUNT]; /* the longest a call can take: a probe silent longer is lost */
} set;

static state_t  local;
static state_t *st = &local;
static state_t *mapped;

static const char *const dep_names[DC_DEP_COUNT] = { "redis", "postgres" };
static const char *const state_names[DC_BREAKER_STATES] = { "closed", "open", "half_open" };

static uint64_t ld(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

static int cas(uint64_t *p, uint64_t old, uint64_t new)
{
    return __atomic_compare_exchange_n(p, &old, new, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

static uint64_t word_of(dc_breaker_state_t s, int64_t ms)
{
    return (uint64_t)s << (64 - STATE_BITS) | ((uint64_t)ms & SINCE_MASK);
}

static dc_breaker_state_t state_of(uint64_t w)
{
    return (dc_breaker_state_t)(w >> (64 - STATE_BITS));
}

static int64_t since_of(uint64_t w)
{
    return (int64_t)(w & SINCE_MASK);
}

static void init_state(void *mem)
{
    state_t *s = mem;

    if (s->magic != MAGIC || s->version != VERSION) {
        memset(s, 0, sizeof(*s));
        s->version = VERSION;
        __atomic_store_n(&s->magic, MAGIC, __ATOMIC_RELEASE);
    }
}

void dc_breaker_configure(const dc_config_t *cfg)
{
    set.on = cfg->breakers_enabled;
    set.failures = cfg->breaker_failures;
    set.min_requests = cfg->breaker_min_requests;
    set.percent = cfg->breaker_failure_percent;
    set.open_ms = cfg->breaker_open_ms;
    set.bucket_ms = cfg->breaker_window_ms / NBUCKETS > 0 ? cfg->breaker_window_ms / NBUCKETS : 1;
    /* a connect, the set-up commands of a new connection (INFO, five SCRIPT LOADs), one command */
    set.probe_ms[DC_DEP_REDIS] = cfg->redis_connect_timeout_ms + 7LL * cfg->redis_command_timeout_ms;
    /* a connect, and a statement (dc_db's deadline: the statement timeout and a second) */
    set.probe_ms[DC_DEP_POSTGRES] =
        cfg->db_connect_timeout_s * 1000LL + cfg->db_statement_timeout_ms + 1000LL;
    for (int d = 0; d < DC_DEP_COUNT; d++)
        if (set.probe_ms[d] < set.open_ms)
            set.probe_ms[d] = set.open_ms;
}

int dc_breaker_on(void)
{
    return set.on;
}

int dc_breaker_open(const char *path, dc_err_t *err)
{
    void *m = mapped;

    if (dc_shm_attach(&m, path, sizeof(state_t), init_state, err) != DC_OK)
        return DC_ERROR;
    st = mapped = m;
    return DC_OK;
}

void dc_breaker_open_host(const dc_config_t *cfg)
{
    dc_breaker_configure(cfg);
    if (cfg->breakers_enabled)
        dc_shm_open_host(cfg, "breaker", dc_breaker_open, "breaker.open_file",
                         "each process keeps its own circuit breakers");
}

void dc_breaker_close(void)
{
    if (mapped != NULL)
        munmap(mapped, sizeof(state_t));
    mapped = NULL;
    st = &local;
    memset(&local, 0, sizeof(local));
    memset(&set, 0, sizeof(set));
}

/* The bucket word for now, and its slot. */
static uint64_t *bucket(dep_t *b, int64_t now, uint64_t *epoch)
{
    int64_t n = now / set.bucket_ms;

    *epoch = (uint64_t)n & EPOCH_MASK;
    return &b->buckets[n % NBUCKETS];
}

/* Counts a call (and a failure) in the current tenth of the window. */
static void count(dep_t *b, int64_t now, int failed)
{
    uint64_t  epoch, w, add = 1 + ((uint64_t)failed << COUNT_BITS);
    uint64_t *p = bucket(b, now, &epoch);

    for (;;) {
        w = ld(p);
        if (w >> (2 * COUNT_BITS) != epoch) {
            /* the slot still holds an older tenth: start it afresh with this call */
            if (cas(p, w, epoch << (2 * COUNT_BITS) | add))
                return;
            continue;
        }
        if ((w & COUNT_MASK) == COUNT_MASK || ((w >> COUNT_BITS) & COUNT_MASK) == COUNT_MASK)
            return; /* a million calls in a tenth: the rate is what it is */
        if (cas(p, w, w + add))
            return;
    }
}

/* Whether the failures of the window are over the rate, with enough calls to tell. */
static int over_rate(dep_t *b, int64_t now)
{
    uint64_t epoch, calls = 0, failed = 0;

    bucket(b, now, &epoch);
    for (int i = 0; i < NBUCKETS; i++) {
        uint64_t w = ld(&b->buckets[i]);
        if (((epoch - (w >> (2 * COUNT_BITS))) & EPOCH_MASK) >= NBUCKETS)
            continue; /* from before the window */
        calls += w & COUNT_MASK;
        failed += (w >> COUNT_BITS) & COUNT_MASK;
    }
    return calls >= (uint64_t)set.min_requests && failed * 100 >= (uint64_t)set.percent * calls;
}

/* After a transition made by this process: count it, and say it once for the host. */
static void entered(dc_dep_t d, dc_breaker_state_t to, int64_t was_ms, const char *why)
{
    __atomic_add_fetch(&st->dep[d].transitions[to], 1, __ATOMIC_SEQ_CST);
    switch (to) {
    case DC_BREAKER_OPEN:
        dc_log_warn("breaker.open",
                    "%s: %s; no request touches it for %d ms, then one probes (answers without it meanwhile)",
                    dep_names[d], why, set.open_ms);
        break;
    case DC_BREAKER_HALF_OPEN:
        dc_log_info("breaker.half_open", "%s: open for %lld ms; one request probes it", dep_names[d],
                    (long long)(dc_now_ms() - was_ms));
        break;
    default:
        dc_log_info("breaker.closed", "%s: the probe succeeded; requests use it again", dep_names[d]);
        break;
    }
}

int dc_breaker_allow(dc_dep_t d)
{
    dep_t   *b = &st->dep[d];
    uint64_t w;
    int64_t  now;

    if (!set.on)
        return 1;
    w = ld(&b->word);
    if (state_of(w) == DC_BREAKER_CLOSED)
        return 1;
    now = dc_now_ms();
    if (state_of(w) == DC_BREAKER_OPEN && now < since_of(w) + set.open_ms)
        return 0;
    /* the probe's process goes on until it reports (a reconnect on its way, say) */
    if (state_of(w) == DC_BREAKER_HALF_OPEN && now < since_of(w) + set.probe_ms[d])
        return __atomic_load_n(&b->probe_pid, __ATOMIC_SEQ_CST) == (int32_t)getpid();
    /* the one probe: whoever moves the word first (an earlier probe that never reported is lost) */
    if (!cas(&b->word, w, word_of(DC_BREAKER_HALF_OPEN, now)))
        return 0;
    __atomic_store_n(&b->probe_pid, (int32_t)getpid(), __ATOMIC_SEQ_CST);
    if (state_of(w) == DC_BREAKER_OPEN)
        entered(d, DC_BREAKER_HALF_OPEN, since_of(w), NULL);
    return 1;
}

int dc_breaker_probing(dc_dep_t d)
{
    dep_t *b = &st->dep[d];

    return set.on && state_of(ld(&b->word)) == DC_BREAKER_HALF_OPEN &&
           __atomic_load_n(&b->probe_pid, __ATOMIC_SEQ_CST) == (int32_t)getpid();
}

void dc_breaker_success(dc_dep_t d)
{
    dep_t   *b = &st->dep[d];
    uint64_t w;

    if (!set.on)
        return;
    w = ld(&b->word);
    switch (state_of(w)) {
    case DC_BREAKER_CLOSED:
        if (__atomic_load_n(&b->consecutive, __ATOMIC_RELAXED) != 0)
            __atomic_store_n(&b->consecutive, 0, __ATOMIC_SEQ_CST);
        count(b, dc_now_ms(), 0);
        break;
    case DC_BREAKER_HALF_OPEN:
        if (!cas(&b->word, w, word_of(DC_BREAKER_CLOSED, dc_now_ms())))
            break;
        /* a fresh start: the failures that opened it are not held against it again */
        __atomic_store_n(&b->consecutive, 0, __ATOMIC_SEQ_CST);
        for (int i = 0; i < NBUCKETS; i++)
            __atomic_store_n(&b->buckets[i], 0, __ATOMIC_SEQ_CST);
        __atomic_store_n(&b->probe_pid, 0, __ATOMIC_SEQ_CST);
        entered(d, DC_BREAKER_CLOSED, since_of(w), NULL);
        break;
    default:
        break; /* a call that started before it opened: the probe decides */
    }
}

void dc_breaker_failure(dc_dep_t d)
{
    dep_t   *b = &st->dep[d];
    uint64_t w;
    uint32_t n;
    int64_t  now;
    char     why[96];

    if (!set.on)
        return;
    w = ld(&b->word);
    now = dc_now_ms();
    if (state_of(w) == DC_BREAKER_HALF_OPEN) {
        if (cas(&b->word, w, word_of(DC_BREAKER_OPEN, now))) {
            __atomic_store_n(&b->probe_pid, 0, __ATOMIC_SEQ_CST);
            entered(d, DC_BREAKER_OPEN, since_of(w), "the probe failed");
        }
        return;
    }
    if (state_of(w) != DC_BREAKER_CLOSED)
        return;
    n = __atomic_add_fetch(&b->consecutive, 1, __ATOMIC_SEQ_CST);
    count(b, now, 1);
    if (n >= (uint32_t)set.failures)
        snprintf(why, sizeof(why), "%u consecutive failures", n);
    else if (over_rate(b, now))
        snprintf(why, sizeof(why), "%d%% or more of the calls within %lld ms failed", set.percent,
                 (long long)set.bucket_ms * NBUCKETS);
    else
        return;
    if (cas(&b->word, w, word_of(DC_BREAKER_OPEN, now)))
        entered(d, DC_BREAKER_OPEN, since_of(w), why);
}

void dc_breaker_status(dc_dep_t d, dc_breaker_status_t *s)
{
    dep_t   *b = &st->dep[d];
    uint64_t w = ld(&b->word);

    s->state = state_of(w);
    s->since_ms = dc_now_ms() - since_of(w);
    for (int i = 0; i < DC_BREAKER_STATES; i++)
        s->transitions[i] = ld(&b->transitions[i]);
}

const char *dc_breaker_dep_name(dc_dep_t d)
{
    return d >= 0 && d < DC_DEP_COUNT ? dep_names[d] : "unknown";
}

const char *dc_breaker_state_name(dc_breaker_state_t s)
{
    return s >= 0 && s < DC_BREAKER_STATES ? state_names[s] : "unknown";
}
