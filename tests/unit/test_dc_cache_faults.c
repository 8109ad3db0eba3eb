/*
 * dc_cache against a fake hiredis, for the failures a real Redis cannot be
 * made to produce at the right moment: a context that could not be
 * allocated, a refused connect, a NULL reply (I/O error, timeout or EOF), an
 * error reply, a reply of the wrong type. Each must give the documented
 * result code, free every reply and context (the SAN build checks leaks),
 * and leave the handle able to serve the next call.
 *
 * The calls dc_cache.c makes are wrapped at link time (WRAP_test_dc_cache_faults
 * in the Makefile): redisConnectWithTimeout, redisConnectUnixWithTimeout,
 * redisSetTimeout, redisCommand, redisvCommand, redisCommandArgv, redisFree,
 * and redisAppendCommand / redisAppendFormattedCommand + redisGetReply for
 * pipelined lookups (a fake context has no reader and no output buffer, so
 * dc_cache hands it the bytes and keeps hiredis's reply objects).
 * Replies are built with malloc as hiredis builds them, and freed by the
 * real freeReplyObject.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis.h>

#include "dc_cache.h"
#include "dc_trust.h"

#define ORG     "550e8400-e29b-41d4-a716-446655440000"
#define KEY     "k"
#define EPOCH   "1699999999999999"
#define GEN     "1700000000000001"
#define TOKEN   EPOCH "." GEN /* what a lookup reports: the epoch and the generation */
#define ETAG    "0123456789abcdef"
#define RUN     "5f1c0de2a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4" /* the fake server's run_id */
#define TAG     TOKEN "@" RUN
#define STORED  "1700000000" /* when the value was stored (s) */
#define SHA     "0123456789abcdef0123456789abcdef01234567"
#define SCRIPTS 6 /* store, bump, generation, lease, release, LSN raise: loaded at every connect */

typedef enum {
    F_NONE = 0,
    F_NULL_IO,  /* NULL reply, ctx->err REDIS_ERR_IO (timeout, reset) */
    F_NULL_EOF, /* NULL reply, ctx->err REDIS_ERR_EOF (server closed) */
    F_ERROR,    /* REDIS_REPLY_ERROR */
    F_WRONG,    /* a reply of a type the command never answers */
} fault_t;

static struct {
    /* injection */
    int         connect_null; /* redisConnect* returns NULL (out of memory) */
    int         connect_err;  /* the context comes back with err set */
    const char *fault_cmd;    /* first word of the command to fail, e.g. "MGET" */
    fault_t     fault;
    int         fault_count; /* how many matching commands fail */
    const char *value;       /* MGET's value (and the lease script's); NULL: nil */
    int         lease_state; /* what the lease script answers: 0 fresh value, 1 leased, 2 held by another */
    /* observation */
    int         connects;
    int         contexts; /* allocated and not yet freed */
    int         script_loads;
    int         commands;
    char        argv[512];  /* the last command sent as an argument vector, words joined by spaces */
    const char *queue[128]; /* appended commands waiting for redisGetReply */
    int         queued, max_queued;
    int         skip; /* matching commands to let through before the fault */
    const char *fmt;  /* the format of the command being answered */
} fk;

static void fake_reset(void)
{
    memset(&fk, 0, sizeof(fk));
}

static redisContext *new_context(void)
{
    redisContext *c;

    fk.connects++;
    if (fk.connect_null)
        return NULL;
    c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->fd = -1;
    fk.contexts++;
    if (fk.connect_err) {
        c->err = REDIS_ERR_IO;
        snprintf(c->errstr, sizeof(c->errstr), "Connection refused (fake)");
    }
    return c;
}

redisContext *__wrap_redisConnectWithTimeout(const char *ip, int port, const struct timeval tv);
redisContext *__wrap_redisConnectWithTimeout(const char *ip, int port, const struct timeval tv)
{
    (void)ip;
    (void)port;
    (void)tv;
    return new_context();
}

redisContext *__wrap_redisConnectUnixWithTimeout(const char *path, const struct timeval tv);
redisContext *__wrap_redisConnectUnixWithTimeout(const char *path, const struct timeval tv)
{
    (void)path;
    (void)tv;
    return new_context();
}

int __wrap_redisSetTimeout(redisContext *c, const struct timeval tv);
int __wrap_redisSetTimeout(redisContext *c, const struct timeval tv)
{
    (void)c;
    (void)tv;
    return REDIS_OK;
}

void __wrap_redisFree(redisContext *c);
void __wrap_redisFree(redisContext *c)
{
    if (c == NULL)
        return;
    fk.contexts--;
    free(c);
}

static redisReply *reply(int type)
{
    redisReply *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    r->type = type;
    return r;
}

static redisReply *str_reply(int type, const char *s)
{
    redisReply *r = reply(type);
    r->str = strdup(s);
    assert_non_null(r->str);
    r->len = strlen(s);
    return r;
}

static redisReply *int_reply(long long v)
{
    redisReply *r = reply(REDIS_REPLY_INTEGER);
    r->integer = v;
    return r;
}

static redisReply *array_reply(size_t n)
{
    redisReply *r = reply(REDIS_REPLY_ARRAY);
    r->element = calloc(n, sizeof(*r->element));
    assert_non_null(r->element);
    r->elements = n;
    return r;
}

/* What a healthy Redis answers to each command dc_cache sends. */
static redisReply *answer(const char *cmd)
{
    redisReply *r;

    if (strcmp(cmd, "SCRIPT") == 0) {
        fk.script_loads++;
        return str_reply(REDIS_REPLY_STRING, SHA);
    }
    if (strcmp(cmd, "MGET") == 0) {
        r = array_reply(3);
        r->element[0] = str_reply(REDIS_REPLY_STRING, EPOCH);
        r->element[1] = str_reply(REDIS_REPLY_STRING, GEN);
        r->element[2] = fk.value ? str_reply(REDIS_REPLY_STRING, fk.value) : reply(REDIS_REPLY_NIL);
        return r;
    }
    if (strcmp(cmd, "GET") == 0)
        return str_reply(REDIS_REPLY_STRING, GEN);
    if (strcmp(cmd, "INFO") == 0)
        return str_reply(REDIS_REPLY_STRING,
                         "# Server\r\nredis_version:7.0.15\r\nrun_id:" RUN "\r\ntcp_port:6379\r\n");
    if (strcmp(cmd, "EVALSHA") == 0 && fk.fmt != NULL && strstr(fk.fmt, " 4 %b %b %b %b %s %d ") != NULL) {
        /* the lease script: {state, token, value, created} */
        r = array_reply(4);
        r->element[0] = int_reply(fk.lease_state);
        r->element[1] = str_reply(REDIS_REPLY_STRING, TOKEN);
        r->element[2] = fk.value ? str_reply(REDIS_REPLY_STRING, fk.value) : reply(REDIS_REPLY_NIL);
        r->element[3] = int_reply(0);
        return r;
    }
    if (strcmp(cmd, "EVALSHA") == 0 && fk.fmt != NULL && strstr(fk.fmt, " 2 %b %b") != NULL &&
        strstr(fk.fmt, " 2 %b %b %") == NULL)
        return str_reply(REDIS_REPLY_STRING, TOKEN); /* the generation script: get or create */
    if (strcmp(cmd, "EVALSHA") == 0 || strcmp(cmd, "PUBLISH") == 0 || strcmp(cmd, "UNLINK") == 0)
        return int_reply(1);
    if (strcmp(cmd, "PING") == 0)
        return str_reply(REDIS_REPLY_STATUS, "PONG");
    if (strcmp(cmd, "SCAN") == 0) {
        r = array_reply(2);
        r->element[0] = str_reply(REDIS_REPLY_STRING, "0");
        r->element[1] = array_reply(1);
        r->element[1]->element[0] = str_reply(REDIS_REPLY_STRING, "dashboard:x");
        return r;
    }
    fail_msg("the fake has no answer to %s", cmd);
    return NULL;
}

static void *command(redisContext *c, const char *fmt)
{
    char   cmd[16];
    size_t n = strcspn(fmt, " ");

    assert_non_null(c);
    assert_int_equal(c->err, 0); /* a context that failed must never be used again */
    fk.commands++;
    fk.fmt = fmt;
    snprintf(cmd, sizeof(cmd), "%.*s", (int)n, fmt);
    if (fk.fault != F_NONE && fk.fault_count > 0 && strcmp(cmd, fk.fault_cmd) == 0 && fk.skip-- <= 0) {
        fk.fault_count--;
        switch (fk.fault) {
        case F_NULL_IO:
        case F_NULL_EOF:
            c->err = fk.fault == F_NULL_IO ? REDIS_ERR_IO : REDIS_ERR_EOF;
            errno = fk.fault == F_NULL_IO ? EAGAIN : 0; /* a timeout, as hiredis reports one */
            snprintf(c->errstr, sizeof(c->errstr), "%s (fake)",
                     fk.fault == F_NULL_IO ? "Resource temporarily unavailable"
                                           : "Server closed the connection");
            return NULL;
        case F_ERROR:
            return str_reply(REDIS_REPLY_ERROR, "NOSCRIPT No matching script (fake)");
        case F_WRONG:
            return strcmp(cmd, "EVALSHA") == 0 ? str_reply(REDIS_REPLY_STRING, "1") : int_reply(7);
        case F_NONE:
            break;
        }
    }
    return answer(cmd);
}

void *__wrap_redisvCommand(redisContext *c, const char *fmt, va_list ap);
void *__wrap_redisvCommand(redisContext *c, const char *fmt, va_list ap)
{
    (void)ap;
    return command(c, fmt);
}

void *__wrap_redisCommand(redisContext *c, const char *fmt, ...);
void *__wrap_redisCommand(redisContext *c, const char *fmt, ...)
{
    return command(c, fmt);
}

/*
 * Pipelined commands (dc_cache_get_many): appended ones wait in a queue,
 * and each redisGetReply answers the oldest as command() would; a NULL
 * answer is a failed read (REDIS_ERR), as hiredis reports one.
 */
static void enqueue(const char *fmt)
{
    assert_true(fk.queued < (int)(sizeof(fk.queue) / sizeof(fk.queue[0])));
    fk.queue[fk.queued++] = fmt;
    if (fk.queued > fk.max_queued)
        fk.max_queued = fk.queued;
}

int __wrap_redisAppendCommand(redisContext *c, const char *fmt, ...);
int __wrap_redisAppendCommand(redisContext *c, const char *fmt, ...)
{
    assert_non_null(c);
    enqueue(fmt);
    return REDIS_OK;
}

/* Commands already in RESP (dc_cache formats its lookups itself): each one queued by its name. */
int __wrap_redisAppendFormattedCommand(redisContext *c, const char *cmd, size_t len);
int __wrap_redisAppendFormattedCommand(redisContext *c, const char *cmd, size_t len)
{
    static const char *const names[] = { "MGET", "GET", "EVALSHA", "PUBLISH", "PING" };
    const char              *p = cmd, *end = cmd + len;

    assert_non_null(c);
    while (p < end) {
        long        args, n;
        char       *q;
        const char *name = "?";

        assert_true(*p == '*');
        args = strtol(p + 1, &q, 10);
        assert_true(args > 0 && q[0] == '\r' && q[1] == '\n');
        p = q + 2;
        for (long i = 0; i < args; i++) {
            assert_true(*p == '$');
            n = strtol(p + 1, &q, 10);
            assert_true(n >= 0 && q[0] == '\r' && q[1] == '\n' && q + 2 + n + 2 <= end);
            for (size_t k = 0; i == 0 && k < sizeof(names) / sizeof(names[0]); k++)
                if ((size_t)n == strlen(names[k]) && memcmp(q + 2, names[k], (size_t)n) == 0)
                    name = names[k];
            p = q + 2 + n + 2;
        }
        enqueue(name);
    }
    return REDIS_OK;
}

int __wrap_redisGetReply(redisContext *c, void **out);
int __wrap_redisGetReply(redisContext *c, void **out)
{
    const char *fmt;

    assert_true(fk.queued > 0); /* never a reply to a command that was not sent */
    fmt = fk.queue[0];
    memmove(fk.queue, fk.queue + 1, (size_t)--fk.queued * sizeof(fk.queue[0]));
    *out = command(c, fmt);
    if (*out == NULL)
        fk.queued = 0; /* the connection failed: the rest of the pipeline is gone with it */
    return *out ? REDIS_OK : REDIS_ERR;
}

void *__wrap_redisCommandArgv(redisContext *c, int argc, const char **argv, const size_t *argvlen);
void *__wrap_redisCommandArgv(redisContext *c, int argc, const char **argv, const size_t *argvlen)
{
    size_t n = 0;

    fk.argv[0] = '\0';
    for (int i = 0; i < argc && n < sizeof(fk.argv); i++)
        n += (size_t)snprintf(fk.argv + n, sizeof(fk.argv) - n, "%s%.*s", i ? " " : "", (int)argvlen[i],
                              argv[i]);
    return command(c, argv[0]);
}

/* ------------------------------------------------------------------ tests */

typedef struct {
    dc_config_t cfg;
    dc_cache_t *cache;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));

    fake_reset();
    snprintf(f->cfg.redis.redis_host, sizeof(f->cfg.redis.redis_host), "127.0.0.1");
    f->cfg.redis.redis_port = 6379;
    f->cfg.redis_connect_timeout_ms = 100;
    f->cfg.redis_command_timeout_ms = 100;
    f->cfg.redis_retry_interval_ms = 0; /* no back-off unless a test asks for one */
    f->cache = dc_cache_new(&f->cfg);
    assert_non_null(f->cache);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;

    dc_cache_free(f->cache);
    assert_int_equal(fk.contexts, 0); /* every context was freed */
    free(f);
    return 0;
}

/* A hit through the fake: the module works again. */
static void assert_serves(fixture_t *f)
{
    dc_cache_value_t v;

    fk.value = TAG "\n" ETAG "\n" STORED "\nbody";
    assert_int_equal(dc_cache_get(f->cache, ORG, DC_Q_STATS, KEY, 1, &v), DC_OK);
    assert_int_equal(v.len, 4);
    assert_memory_equal(v.data, "body", 4);
    assert_string_equal(v.etag, ETAG);
    dc_cache_value_release(&v);
    assert_true(dc_cache_connected(f->cache));
}

static void fail_next(const char *cmd, fault_t fault)
{
    fk.fault_cmd = cmd;
    fk.fault = fault;
    fk.fault_count = 1;
}

static void test_healthy_fake_hits_and_misses(void **state)
{
    fixture_t       *f = *state;
    dc_cache_value_t v;

    fk.value = NULL;
    assert_int_equal(dc_cache_get(f->cache, ORG, DC_Q_STATS, KEY, 1, &v), DC_DECLINED);
    assert_string_equal(v.gen, TOKEN);
    assert_null(v.reply);
    assert_serves(f);
    assert_int_equal(fk.connects, 1);
    assert_int_equal(fk.script_loads, SCRIPTS);
}

/* redisConnectWithTimeout could not allocate the context. */
static void test_context_allocation_failure(void **state)
{
    fixture_t       *f = *state;
    dc_cache_value_t v;
    char             gen[DC_GEN_MAX];

    fk.connect_null = 1;
    assert_int_equal(dc_cache_get(f->cache, ORG, DC_Q_STATS, KEY, 1, &v), DC_UNAVAILABLE);
    assert_null(v.reply);
    assert_int_equal(dc_cache_generation(f->cache, ORG, DC_Q_STATS, gen), DC_UNAVAILABLE);
    assert_int_equal(dc_cache_set(f->cache, ORG, DC_Q_STATS, KEY, 1, GEN, ETAG, "b", 1, 60), DC_UNAVAILABLE);
    assert_int_equal(dc_cache_invalidate(f->cache, ORG, DC_QBITS_CACHED), DC_UNAVAILABLE);
    assert_false(dc_cache_connected(f->cache));
    fk.connect_null = 0;
    assert_serves(f);
}

/* After a failed connect the cache stays closed for the retry interval. */
static void test_failed_connect_backs_off(void **state)
{
    fixture_t       *f = *state;
    dc_cache_value_t v;
    int              connects;

    f->cfg.redis_retry_interval_ms = 60000;
    fk.connect_err = 1;
    assert_int_equal(dc_cache_get(f->cache, ORG, DC_Q_STATS, KEY, 1, &v), DC_UNAVAILABLE);
    assert_int_equal(fk.contexts, 0); /* the failed context was freed */
    connects = fk.connects;
    fk.connect_err = 0;
    assert_int_equal(dc_cache_get(f->cache, ORG, DC_Q_STATS, KEY, 1, &v), DC_UNAVAILABLE);
    assert_int_equal(fk.connects, connects); /* no attempt during the back-off */
}

static void test_refused_connect_recovers(void **state)
{
    fixture_t       *f = *state;
    dc_cache_value_t v;

    fk.connect_err = 1;
    assert_int_equal(dc_cache_get(f->cache, ORG, DC_Q_STATS, KEY, 1, &v), DC_UNAVAILABLE);
    assert_int_equal(fk.contexts, 0);
    fk.connect_err = 0;
    assert_serves(f);
}

/* A script that does not load (an error reply while connecting). */
static void test_script_load_error(void **state)
{
    fixture_t       *f = *state;
    dc_cache_value_t v;

    fail_next("SCRIPT", F_ERROR);
    assert_int_equal(dc_cache_get(f->cache, ORG, DC_Q_STATS, KEY, 1, &v), DC_UNAVAILABLE);
    assert_false(dc_cache_connected(f->cache));
    assert_int_equal(fk.contexts, 0);
    assert_serves(f);
}

static void test_mget_null_reply_io_error(void **state)
{
    fixture_t       *f = *state;
    dc_cache_value_t v;

    assert_serves(f);
    fail_next("MGET", F_NULL_IO);
    assert_int_equal(dc_cache_get(f->cache, ORG, DC_Q_STATS, KEY, 1, &v), DC_UNAVAILABLE);
    assert_null(v.reply);
    assert_false(dc_cache_connected(f->cache)); /* a failed context is never reused */
    assert_int_equal(fk.contexts, 0);
    assert_serves(f);
    assert_int_equal(fk.connects, 2);
}

/*
 * The server closed the connection (Redis restarted, or dropped an idle
 * client): the same call reconnects and sends the command once more, so
 * the request is still answered from the cache.
 */
static void test_mget_null_reply_eof_retries_in_the_same_call(void **state)
{
    fixture_t       *f = *state;
    dc_cache_value_t v;

    f->cfg.redis_retry_interval_ms = 60000;
    assert_serves(f);
    fail_next("MGET", F_NULL_EOF);
    assert_int_equal(dc_cache_get(f->cache, ORG, DC_Q_STATS, KEY, 1, &v), DC_OK);
    assert_non_null(v.reply);
    dc_cache_value_release(&v);
    assert_true(dc_cache_connected(f->cache));
    assert_int_equal(fk.connects, 2);
    assert_int_equal(fk.script_loads, 2 * SCRIPTS); /* a new connection loads the scripts again */
    assert_int_equal(fk.contexts, 1);
}

/* Closed again on the retry: DC_UNAVAILABLE, and still no back-off for the next call. */
static void test_mget_eof_twice_is_unavailable_without_back_off(void **state)
{
    fixture_t       *f = *state;
    dc_cache_value_t v;

    f->cfg.redis_retry_interval_ms = 60000;
    assert_serves(f);
    fail_next("MGET", F_NULL_EOF);
    fk.fault_count = 2;
    assert_int_equal(dc_cache_get(f->cache, ORG, DC_Q_STATS, KEY, 1, &v), DC_UNAVAILABLE);
    assert_null(v.reply);
    assert_false(dc_cache_connected(f->cache));
    assert_int_equal(fk.connects, 2);
    assert_serves(f);
    assert_int_equal(fk.connects, 3);
}

/* The store and the bump are retried the same way; a timeout is not. */
static void test_store_and_bump_retry_after_eof(void **state)
{
    fixture_t *f = *state;

    assert_serves(f);
    fail_next("EVALSHA", F_NULL_EOF);
    assert_int_equal(dc_cache_set(f->cache, ORG, DC_Q_STATS, KEY, 1, GEN, ETAG, "b", 1, 60), DC_OK);
    assert_int_equal(fk.connects, 2);
    fail_next("EVALSHA", F_NULL_EOF);
    assert_int_equal(dc_cache_invalidate(f->cache, ORG, DC_QBITS_CACHED), DC_OK);
    assert_int_equal(fk.connects, 3);
    f->cfg.redis_retry_interval_ms = 60000;
    fail_next("EVALSHA", F_NULL_IO);
    assert_int_equal(dc_cache_invalidate(f->cache, ORG, DC_QBITS_CACHED), DC_UNAVAILABLE);
    assert_int_equal(fk.connects, 3);
}

/* A timeout backs off: no new connection within the retry interval. */
static void test_mget_timeout_backs_off(void **state)
{
    fixture_t       *f = *state;
    dc_cache_value_t v;

    f->cfg.redis_retry_interval_ms = 60000;
    assert_serves(f);
    fail_next("MGET", F_NULL_IO);
    assert_int_equal(dc_cache_get(f->cache, ORG, DC_Q_STATS, KEY, 1, &v), DC_UNAVAILABLE);
    assert_int_equal(dc_cache_get(f->cache, ORG, DC_Q_STATS, KEY, 1, &v), DC_UNAVAILABLE);
    assert_int_equal(fk.connects, 1);
}

static void test_mget_error_reply(void **state)
{
    fixture_t       *f = *state;
    dc_cache_value_t v;

    assert_serves(f);
    fail_next("MGET", F_ERROR);
    assert_int_equal(dc_cache_get(f->cache, ORG, DC_Q_STATS, KEY, 1, &v), DC_UNAVAILABLE);
    assert_null(v.reply);
    assert_null(v.data);
    assert_serves(f);
}

static void test_mget_wrong_reply_type(void **state)
{
    fixture_t       *f = *state;
    dc_cache_value_t v;

    fail_next("MGET", F_WRONG);
    assert_int_equal(dc_cache_get(f->cache, ORG, DC_Q_STATS, KEY, 1, &v), DC_UNAVAILABLE);
    assert_null(v.reply);
    assert_serves(f);
}

/* Three lookups, one round trip: all sent before the first reply is read. */
static void test_many_lookups_share_one_round_trip(void **state)
{
    fixture_t        *f = *state;
    dc_cache_lookup_t l[3], *ls[3];

    fk.value = GEN "\nbody";
    assert_serves(f); /* connected, scripts loaded */
    fk.max_queued = 0;
    for (int i = 0; i < 3; i++) {
        l[i] = (dc_cache_lookup_t){ .org = ORG, .q = DC_Q_STATS, .key = KEY, .klen = 1 };
        ls[i] = &l[i];
    }
    dc_cache_get_many(f->cache, ls, 3);
    assert_int_equal(fk.max_queued, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(l[i].rc, DC_OK);
        assert_memory_equal(l[i].v.data, "body", 4);
        dc_cache_value_release(&l[i].v);
    }
}

/* The connection fails at the second reply: the first stands, the rest are unavailable, no leak. */
static void test_many_lookups_failing_part_way(void **state)
{
    fixture_t        *f = *state;
    dc_cache_lookup_t l[3], *ls[3];

    fk.value = GEN "\nbody";
    assert_serves(f);
    for (int i = 0; i < 3; i++) {
        l[i] = (dc_cache_lookup_t){ .org = ORG, .q = DC_Q_STATS, .key = KEY, .klen = 1 };
        ls[i] = &l[i];
    }
    fk.fault_cmd = "MGET";
    fk.fault = F_NULL_IO;
    fk.fault_count = 1;
    fk.skip = 1; /* the second MGET fails */
    dc_cache_get_many(f->cache, ls, 3);
    assert_int_equal(l[0].rc, DC_OK);
    assert_int_equal(l[1].rc, DC_UNAVAILABLE);
    assert_int_equal(l[2].rc, DC_UNAVAILABLE);
    assert_null(l[1].v.reply);
    assert_null(l[2].v.reply);
    dc_cache_value_release(&l[0].v);
    assert_false(dc_cache_connected(f->cache)); /* the failed context is gone */
    assert_serves(f);
}

/*
 * A value under another generation, without a tag, stored by another server
 * process, under an earlier epoch, or not of the current format
 * "<epoch>.<gen>@<run_id>\n<etag>\n<body>" (an
 * earlier version's "<gen>\n<body>" or "<gen>\n<etag>\n<body>", a validator
 * of the wrong length or case) is a miss, not a hit.
 */
static void test_mget_stale_or_untagged_value_is_a_miss(void **state)
{
    fixture_t       *f = *state;
    dc_cache_value_t v;
    const char      *values[] = {
             "1700000000000000\n" ETAG "\nbody",
             "body",
             TOKEN,
             TOKEN "body",
             "",
             TOKEN "\nbody",
             TOKEN "\n{\"orgId\":\"550e8400-e29b-41d4-a716-446655440000\",\"units\":{}}",
             TOKEN "\n0123456789abcdefX{}",
             TOKEN "\n0123456789ABCDEF\n{}",
             TOKEN "\n0123456789abcde\n{}",
             TOKEN "\n" ETAG,
             TOKEN "\n" ETAG "\nbody",                                          /* before the run_id tag */
             TOKEN "@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n" ETAG "\nbody", /* another server process */
             TOKEN "@" RUN "x\n" ETAG "\nbody",
             TOKEN "@\n" ETAG "\nbody",
             GEN "@" RUN "\n" ETAG "\n" STORED "\nbody",                     /* before the epoch */
             "1699999999999998." GEN "@" RUN "\n" ETAG "\n" STORED "\nbody", /* under an earlier epoch */
             EPOCH ".1700000000000000@" RUN "\n" ETAG "\n" STORED "\nbody",  /* an earlier generation */
             TAG "\n" ETAG "\nbody",                                         /* before the store time */
             TAG "\n" ETAG "\n\nbody",
             TAG "\n" ETAG "\n17x\nbody",
             TAG "\n" ETAG "\n" STORED,
    };

    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        fk.value = values[i];
        assert_int_equal(dc_cache_get(f->cache, ORG, DC_Q_STATS, KEY, 1, &v), DC_DECLINED);
        assert_null(v.reply);
        assert_string_equal(v.gen, TOKEN);
    }
    assert_serves(f);
}

static void test_generation_null_reply(void **state)
{
    fixture_t *f = *state;
    char       gen[DC_GEN_MAX];

    assert_int_equal(dc_cache_generation(f->cache, ORG, DC_Q_STATS, gen), DC_OK);
    assert_string_equal(gen, TOKEN);
    fail_next("EVALSHA", F_NULL_IO); /* the get-or-create script */
    assert_int_equal(dc_cache_generation(f->cache, ORG, DC_Q_STATS, gen), DC_UNAVAILABLE);
    assert_string_equal(gen, "");
    assert_int_equal(dc_cache_generation(f->cache, ORG, DC_Q_STATS, gen), DC_OK);
    assert_string_equal(gen, TOKEN);
}

/* NOSCRIPT (Redis restarted, SCRIPT FLUSH): reconnect and load the scripts again. */
static void test_store_error_reply_reloads_scripts(void **state)
{
    fixture_t *f = *state;

    assert_int_equal(dc_cache_set(f->cache, ORG, DC_Q_STATS, KEY, 1, GEN, ETAG, "b", 1, 60), DC_OK);
    fail_next("EVALSHA", F_ERROR);
    assert_int_equal(dc_cache_set(f->cache, ORG, DC_Q_STATS, KEY, 1, GEN, ETAG, "b", 1, 60), DC_UNAVAILABLE);
    assert_false(dc_cache_connected(f->cache));
    assert_int_equal(dc_cache_set(f->cache, ORG, DC_Q_STATS, KEY, 1, GEN, ETAG, "b", 1, 60), DC_OK);
    assert_int_equal(fk.connects, 2);
    assert_int_equal(fk.script_loads, 2 * SCRIPTS);
}

/* The LSN script too runs by its sha: NOSCRIPT reconnects and loads the scripts again. */
static void test_lsn_raise_error_reply_reloads_scripts(void **state)
{
    fixture_t *f = *state;

    assert_int_equal(dc_cache_lsn_raise(f->cache, ORG, 42), DC_OK);
    assert_string_equal(fk.fmt, "EVALSHA %s 1 %b %s %s");
    fail_next("EVALSHA", F_ERROR);
    assert_int_equal(dc_cache_lsn_raise(f->cache, ORG, 42), DC_UNAVAILABLE);
    assert_false(dc_cache_connected(f->cache));
    assert_int_equal(dc_cache_lsn_raise(f->cache, ORG, 42), DC_OK);
    assert_int_equal(fk.connects, 2);
    assert_int_equal(fk.script_loads, 2 * SCRIPTS);
}

static void test_store_null_reply(void **state)
{
    fixture_t *f = *state;

    fail_next("EVALSHA", F_NULL_IO);
    assert_int_equal(dc_cache_set(f->cache, ORG, DC_Q_STATS, KEY, 1, GEN, ETAG, "b", 1, 60), DC_UNAVAILABLE);
    assert_int_equal(fk.contexts, 0);
    assert_int_equal(dc_cache_set(f->cache, ORG, DC_Q_STATS, KEY, 1, GEN, ETAG, "b", 1, 60), DC_OK);
}

/* Anything but the integer 1 is not a store. */
static void test_store_wrong_reply_type_is_not_stored(void **state)
{
    fixture_t *f = *state;

    fail_next("EVALSHA", F_WRONG);
    assert_int_equal(dc_cache_set(f->cache, ORG, DC_Q_STATS, KEY, 1, GEN, ETAG, "b", 1, 60), DC_DECLINED);
    assert_int_equal(dc_cache_set(f->cache, ORG, DC_Q_STATS, KEY, 1, GEN, ETAG, "b", 1, 60), DC_OK);
}

/* A bump Redis did not take (timeout, error reply) is a refused write: hits stop on the host (dc_trust). */
static void test_invalidate_faults(void **state)
{
    fixture_t        *f = *state;
    dc_trust_status_t before, after;

    dc_trust_status(&before);
    fail_next("EVALSHA", F_NULL_IO);
    assert_int_equal(dc_cache_invalidate(f->cache, ORG, DC_QBITS_CACHED), DC_UNAVAILABLE);
    fail_next("EVALSHA", F_ERROR);
    assert_int_equal(dc_cache_invalidate(f->cache, ORG, DC_QBITS_CACHED), DC_UNAVAILABLE);
    fail_next("EVALSHA", F_ERROR);
    assert_int_equal(dc_cache_invalidate_all(f->cache), DC_UNAVAILABLE);
    dc_trust_status(&after);
    assert_int_equal(after.refusals, before.refusals + 3);
    assert_false(after.hits_ok);
    assert_int_equal(dc_cache_invalidate(f->cache, ORG, DC_QBITS_CACHED), DC_OK);
    dc_trust_status(&before);
    assert_int_equal(before.refusals, after.refusals);
}

/*
 * The lease script's answers: a fresh value (DC_OK, the value's parts), the
 * lease (DC_DECLINED, the lease's token kept for its release), another's
 * lease with a stale value (DC_BUSY, the value) or without (DC_BUSY, none);
 * a failure is a refused write (dc_trust).
 */
static void test_lease_answers(void **state)
{
    fixture_t        *f = *state;
    dc_cache_value_t  v;
    dc_trust_status_t before, after;
    int               created;

    memset(&v, 0, sizeof(v));
    fk.value = TAG "\n" ETAG "\n" STORED "\nbody";
    fk.lease_state = 0;
    assert_int_equal(dc_cache_lease(f->cache, ORG, DC_Q_STATS, KEY, 1, 60, &v, &created), DC_OK);
    assert_memory_equal(v.data, "body", 4);
    assert_int_equal(v.stored_s, 1700000000);
    assert_string_equal(v.etag, ETAG);
    assert_string_equal(v.lease, "");
    fk.lease_state = 1;
    fk.value = NULL;
    assert_int_equal(dc_cache_lease(f->cache, ORG, DC_Q_STATS, KEY, 1, 60, &v, &created), DC_DECLINED);
    assert_null(v.data);
    assert_string_equal(v.gen, TOKEN);
    assert_true(strncmp(v.lease, TOKEN " ", strlen(TOKEN) + 1) == 0);
    dc_cache_release(f->cache, KEY, 1, &v);
    assert_string_equal(v.lease, "");
    fk.lease_state = 2;
    fk.value = TAG "\n" ETAG "\n" STORED "\nstale";
    assert_int_equal(dc_cache_lease(f->cache, ORG, DC_Q_STATS, KEY, 1, 60, &v, &created), DC_BUSY);
    assert_memory_equal(v.data, "stale", 5);
    fk.value = "1.2@" RUN "\n" ETAG "\n" STORED "\nold"; /* of another token: never served */
    assert_int_equal(dc_cache_lease(f->cache, ORG, DC_Q_STATS, KEY, 1, 60, &v, &created), DC_BUSY);
    assert_null(v.data);
    dc_trust_status(&before);
    fail_next("EVALSHA", F_NULL_IO);
    assert_int_equal(dc_cache_lease(f->cache, ORG, DC_Q_STATS, KEY, 1, 60, &v, &created), DC_UNAVAILABLE);
    dc_trust_status(&after);
    assert_int_equal(after.refusals, before.refusals + 1);
    dc_cache_value_release(&v);
}

/* Everything at once is one bump of the one epoch key. */
static void test_invalidate_all_bumps_the_epoch(void **state)
{
    fixture_t *f = *state;

    assert_int_equal(dc_cache_invalidate_all(f->cache), DC_OK);
    assert_string_equal(fk.argv, "EVALSHA " SHA " 1 dashcache:epoch");
}

/*
 * One EVALSHA of the bump script names exactly the generation keys of the
 * query types asked for (the cached ones), in their order; an empty mask,
 * or one of uncached types only, sends nothing.
 */
static void test_invalidate_bumps_the_types_asked_in_one_script(void **state)
{
    fixture_t *f = *state;
    int        before;

    assert_int_equal(dc_cache_invalidate(f->cache, ORG, DC_QBIT(UNITS) | DC_QBIT(STATS)), DC_OK);
    assert_string_equal(fk.argv, "EVALSHA " SHA " 2 dashcache:gen:stats:org:{" ORG
                                 "} dashcache:gen:units:org:{" ORG "}");
    assert_int_equal(dc_cache_invalidate(f->cache, ORG, DC_QBIT(ALERTS) | DC_QBIT(AUDIT)), DC_OK);
    assert_string_equal(fk.argv, "EVALSHA " SHA " 1 dashcache:gen:alerts:org:{" ORG "}");
    assert_int_equal(dc_cache_invalidate(f->cache, ORG, ~0u), DC_OK);
    assert_string_equal(fk.argv,
                        "EVALSHA " SHA " 6 dashcache:gen:stats:org:{" ORG "} dashcache:gen:units:org:{" ORG
                        "} dashcache:gen:alerts:org:{" ORG "} dashcache:gen:temperature:org:{" ORG
                        "} dashcache:gen:devices:org:{" ORG "} dashcache:gen:compliance:org:{" ORG "}");
    before = fk.commands;
    assert_int_equal(dc_cache_invalidate(f->cache, ORG, 0), DC_OK);
    assert_int_equal(dc_cache_invalidate(f->cache, ORG, DC_QBIT(AUDIT)), DC_OK);
    assert_int_equal(fk.commands, before);
}

static void test_publish_null_reply(void **state)
{
    fixture_t *f = *state;

    fail_next("PUBLISH", F_NULL_EOF);
    assert_int_equal(dc_cache_publish(f->cache, "ch", "m", 1), DC_UNAVAILABLE);
    assert_int_equal(dc_cache_publish(f->cache, "ch", "m", 1), DC_OK);
}

static void test_scan_faults(void **state)
{
    fixture_t *f = *state;
    size_t     deleted;

    fail_next("SCAN", F_WRONG);
    assert_int_equal(dc_cache_unlink_pattern(f->cache, "dashboard:*", &deleted), DC_UNAVAILABLE);
    assert_int_equal(deleted, 0);
    fail_next("SCAN", F_ERROR);
    assert_int_equal(dc_cache_unlink_pattern(f->cache, "dashboard:*", &deleted), DC_UNAVAILABLE);
    fail_next("UNLINK", F_NULL_IO);
    assert_int_equal(dc_cache_unlink_pattern(f->cache, "dashboard:*", &deleted), DC_UNAVAILABLE);
    assert_int_equal(fk.contexts, 0);
    assert_int_equal(dc_cache_unlink_pattern(f->cache, "dashboard:*", &deleted), DC_OK);
    assert_int_equal(deleted, 1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_healthy_fake_hits_and_misses),
        T(test_context_allocation_failure),
        T(test_failed_connect_backs_off),
        T(test_refused_connect_recovers),
        T(test_script_load_error),
        T(test_mget_null_reply_io_error),
        T(test_mget_null_reply_eof_retries_in_the_same_call),
        T(test_mget_eof_twice_is_unavailable_without_back_off),
        T(test_store_and_bump_retry_after_eof),
        T(test_mget_timeout_backs_off),
        T(test_mget_error_reply),
        T(test_mget_wrong_reply_type),
        T(test_many_lookups_share_one_round_trip),
        T(test_many_lookups_failing_part_way),
        T(test_mget_stale_or_untagged_value_is_a_miss),
        T(test_generation_null_reply),
        T(test_store_error_reply_reloads_scripts),
        T(test_lsn_raise_error_reply_reloads_scripts),
        T(test_store_null_reply),
        T(test_store_wrong_reply_type_is_not_stored),
        T(test_invalidate_faults),
        T(test_invalidate_all_bumps_the_epoch),
        T(test_lease_answers),
        T(test_invalidate_bumps_the_types_asked_in_one_script),
        T(test_publish_null_reply),
        T(test_scan_faults),
    };

    return cmocka_run_group_tests_name("dc_cache_faults", tests, NULL, NULL);
}
