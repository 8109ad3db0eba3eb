/* One fill per key per host, through shared memory (see dc_coalesce.h). */
#include "dc_coalesce.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dc_log.h"
#include "dc_shm.h"

#define MAGIC   0x6463636f616c3031ULL /* "dccoal01" */
#define VERSION 1

enum { IDLE = 0, FILLING };
enum { NONE = 0, ANSWER, FAILED };

/*
 * The fill running now (key, seq, started, owner, state), and apart from it
 * the outcome of the last one that ended (res_*): a filler that starts its
 * next fill at once must not take the answer of the last one from the
 * readers that waited for it.
 */
typedef struct {
    pthread_mutex_t lock;
    uint64_t        key;        /* the hash of the answer's key of the fill running */
    uint64_t        seq;        /* moves at every claim: a fill ends only its own */
    int64_t         started_ms; /* when its database read began */
    int32_t         owner;      /* the filler's pid */
    int32_t         state;
    uint64_t        res_key;        /* the last fill that ended: its key, */
    int64_t         res_started_ms; /* when its read began, */
    int32_t         res;            /* and how it went */
    uint32_t        len;
    char            etag[DC_ETAG_LEN + 1];
    char            body[DC_COALESCE_BODY_MAX];
} slot_t;

typedef struct {
    uint64_t magic;
    uint32_t version;
    uint32_t nslots;
    slot_t   slot[DC_COALESCE_SLOTS];
} table_t;

static table_t *table;

static void init_table(void *mem)
{
    table_t            *t = mem;
    pthread_mutexattr_t a;

    if (t->magic == MAGIC && t->version == VERSION && t->nslots == DC_COALESCE_SLOTS)
        return;
    memset(t, 0, sizeof(*t));
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    for (int i = 0; i < DC_COALESCE_SLOTS; i++)
        pthread_mutex_init(&t->slot[i].lock, &a);
    pthread_mutexattr_destroy(&a);
    t->version = VERSION;
    t->nslots = DC_COALESCE_SLOTS;
    __atomic_store_n(&t->magic, MAGIC, __ATOMIC_RELEASE);
}

int dc_coalesce_open(const char *path, dc_err_t *err)
{
    void *m = table;
    int   rc = dc_shm_attach(&m, path, sizeof(table_t), init_table, err);

    table = m;
    return rc;
}

void dc_coalesce_open_host(const dc_config_t *cfg)
{
    if (cfg->cache_enabled && cfg->cache_lease_enabled)
        dc_shm_open_host(cfg, "coalesce", dc_coalesce_open, "coalesce.open",
                         "without Redis each worker reads the database for itself");
}

void dc_coalesce_close(void)
{
    if (table != NULL)
        munmap(table, sizeof(table_t));
    table = NULL;
}

/* FNV-1a 64; never 0 (a free slot's). */
static uint64_t hash(const char *key, size_t klen)
{
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < klen; i++)
        h = (h ^ (unsigned char)key[i]) * 1099511628211ULL;
    return h != 0 ? h : 1;
}

/* Locks s; a lock its holder died with is made consistent (its fill is over). DC_OK or DC_ERROR. */
static int lock(slot_t *s)
{
    int rc = pthread_mutex_lock(&s->lock);

    if (rc == EOWNERDEAD) {
        s->state = IDLE;
        s->res = NONE;
        pthread_mutex_consistent(&s->lock);
        return DC_OK;
    }
    return rc == 0 ? DC_OK : DC_ERROR;
}

/* A fill that can still end: its filler alive, within its time. */
static int live_fill(const slot_t *s, int64_t now, int fill_ms)
{
    return s->state == FILLING && now < s->started_ms + fill_ms && (kill(s->owner, 0) == 0 || errno == EPERM);
}

int dc_coalesce_begin(const char *key, size_t klen, int64_t arrival_ms, int64_t deadline_ms, int fill_ms,
                      dc_buf_t *out, char etag[DC_ETAG_LEN + 1], dc_coalesce_t *h)
{
    uint64_t k = hash(key, klen);
    slot_t  *s;
    long     wait_us = 1000;

    if (table == NULL)
        return DC_UNAVAILABLE;
    s = &table->slot[k % DC_COALESCE_SLOTS];
    for (;;) {
        int64_t now = dc_now_ms();
        int     rc;

        if (lock(s) != DC_OK)
            return DC_UNAVAILABLE;
        if (s->res_key == k && s->res_started_ms >= arrival_ms && s->res != NONE) {
            /* a fill that began after this reader arrived has ended: its answer is one this reader may give */
            rc = DC_UNAVAILABLE; /* it failed: this reader's own query will tell */
            if (s->res == ANSWER) {
                dc_buf_reset(out);
                rc = dc_buf_append(out, s->body, s->len) == DC_OK ? DC_OK : DC_UNAVAILABLE;
                memcpy(etag, s->etag, DC_ETAG_LEN + 1);
            }
            pthread_mutex_unlock(&s->lock);
            return rc;
        }
        if (!live_fill(s, now, fill_ms)) {
            /* none running, or one that is over its time: this reader's fill begins now */
            s->key = k;
            s->seq++;
            s->started_ms = now;
            s->owner = (int32_t)getpid();
            s->state = FILLING;
            h->slot = (int)(s - table->slot);
            h->seq = s->seq;
            pthread_mutex_unlock(&s->lock);
            return DC_DECLINED;
        }
        rc = s->key == k;
        pthread_mutex_unlock(&s->lock);
        /* another key's fill holds the slot, or the time is up: alone */
        if (!rc || now >= deadline_ms)
            return DC_UNAVAILABLE;
        /* a fill of this key: wait for it, or for it to end and share the next one */
        wait_us = dc_poll_wait(wait_us);
    }
}

void dc_coalesce_done(const dc_coalesce_t *h, int ok, const char *body, size_t len, const char *etag)
{
    slot_t *s;

    if (table == NULL || h->slot < 0 || h->slot >= DC_COALESCE_SLOTS)
        return;
    s = &table->slot[h->slot];
    if (lock(s) != DC_OK)
        return;
    if (s->seq == h->seq && s->state == FILLING) {
        s->state = IDLE;
        s->res_key = s->key;
        s->res_started_ms = s->started_ms;
        s->res = FAILED;
        if (ok && len <= sizeof(s->body)) {
            memcpy(s->body, body, len);
            s->len = (uint32_t)len;
            memcpy(s->etag, etag, DC_ETAG_LEN);
            s->etag[DC_ETAG_LEN] = '\0';
            s->res = ANSWER;
        }
    }
    pthread_mutex_unlock(&s->lock);
}
