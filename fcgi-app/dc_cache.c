/* Redis access with bounded waits, lazy reconnect and a back-off after failures. */
#include "dc_cache.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <hiredis.h>

#include "dc_arena.h"
#include "dc_breaker.h"
#include "dc_key.h"
#include "dc_log.h"
#include "dc_lsn.h"
#include "dc_metrics.h"
#include "dc_redis.h"
#include "dc_trust.h"

/*
 * get(k): the value of k, an epoch or a generation, created from the server
 * clock (in microseconds) when missing (created = 1 then), which keeps them
 * unique even after a key was evicted: a reader observes a real token before
 * it queries the database.
 */
#define GET_OR_CREATE_LUA                                                    \
    "local t = nil\n"                                                        \
    "local created = 0\n"                                                    \
    "local function get(k)\n"                                                \
    "  local v = redis.call('GET', k)\n"                                     \
    "  if v then return v end\n"                                             \
    "  t = t or redis.call('TIME')\n"                                        \
    "  v = string.format('%d', tonumber(t[1]) * 1000000 + tonumber(t[2]))\n" \
    "  redis.call('SET', k, v)\n"                                            \
    "  created = 1\n"                                                        \
    "  return v\n"                                                           \
    "end\n"

/*
 * KEYS[1] the epoch, KEYS[2] generation, KEYS[3] value, KEYS[4] its lease;
 * ARGV[1] the token "<epoch>.<generation>" read before the query, ARGV[2]
 * body, ARGV[3] the value's life in Redis (its TTL and how long it may be
 * served stale after), ARGV[4] validator, ARGV[5] the run_id of this server
 * (learnt at connect; the value is a hit only on the same server process,
 * see dc_cache.h), ARGV[6] the store time (s). Stores only while epoch and
 * generation are still the ones the reader saw before its query: a reader
 * that saw none stores nothing (it creates them first, gen_lua), so a
 * generation key evicted or deleted between a reader's query and its store
 * can never let data from before a write in under a fresh generation. A
 * store ends the key's lease: its waiters find the value.
 */
static const char store_lua[] =
    "local e = redis.call('GET', KEYS[1])\n"
    "local g = redis.call('GET', KEYS[2])\n"
    "if ARGV[1] == '' or not e or not g or e .. '.' .. g ~= ARGV[1] then return 0 end\n"
    "redis.call('SET', KEYS[3], ARGV[1] .. '@' .. ARGV[5] .. '\\n' .. ARGV[4] .. '\\n' .. ARGV[6] .. '\\n' .."
    " ARGV[2], 'EX', tonumber(ARGV[3]))\n"
    "redis.call('DEL', KEYS[4])\n"
    "return 1\n";

/*
 * The lease of a cold or stale key (one database query per key, whatever
 * the number of readers, workers and hosts). KEYS[1] the epoch, KEYS[2] the
 * generation (each created from the clock when missing, as gen_lua), KEYS[3]
 * the value, KEYS[4] its lease; ARGV[1] the lease's owner, ARGV[2] the
 * lease's life (ms), ARGV[3] the run_id of this server, ARGV[4] the newest
 * store time (s) of a stale value (a fresh one was stored after it, as the
 * lookup has it). Answers {state, token, value, created}:
 * state 0: a fresh value of the current token is there (value); 1: the
 * caller holds the lease now (value: a stale one of the current token, or
 * nil); 2: another holds it (value as for 1). The lease holds the token, so
 * a lease taken under an older generation can never store (store_lua), and
 * is no lease any more: the next reader takes the key over at once instead
 * of waiting for a store that will be refused.
 */
static const char lease_lua[] = GET_OR_CREATE_LUA
    "local tok = get(KEYS[1]) .. '.' .. get(KEYS[2])\n"
    "local v = redis.call('GET', KEYS[3])\n"
    "local head = tok .. '@' .. ARGV[3] .. '\\n'\n"
    "if v and string.sub(v, 1, #head) == head then\n"
    "  local at = tonumber(string.match(v, '^[^\\n]*\\n[^\\n]*\\n(%d+)\\n'))\n"
    "  if at and at > tonumber(ARGV[4]) then return {0, tok, v, created} end\n"
    "else\n"
    "  v = false\n"
    "end\n"
    "local l = redis.call('GET', KEYS[4])\n"
    "if l and string.sub(l, 1, #tok + 1) == tok .. ' ' then return {2, tok, v, created} end\n"
    "redis.call('SET', KEYS[4], tok .. ' ' .. ARGV[1], 'PX', tonumber(ARGV[2]))\n"
    "return {1, tok, v, created}\n";

/* KEYS[1] a lease: deleted while ARGV[1] (token and owner) holds it. */
static const char release_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end\n"
    "return 1\n";

/*
 * KEYS[1] the epoch, KEYS[2] a generation: the token "<epoch>.<generation>",
 * each created from the server clock (in microseconds) when missing, which
 * keeps them unique even after a key was evicted: a reader observes a real
 * token before it queries the database.
 */
static const char gen_lua[] = GET_OR_CREATE_LUA "local e = get(KEYS[1])\n"
                                                "return e .. '.' .. get(KEYS[2])\n";

/* Each of KEYS, generations or the epoch: max(current + 1, server clock in microseconds). */
static const char bump_lua[] = "local t = redis.call('TIME')\n"
                               "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
                               "for i = 1, #KEYS do\n"
                               "  local cur = tonumber(redis.call('GET', KEYS[i]) or '0') or 0\n"
                               "  redis.call('SET', KEYS[i], string.format('%d', math.max(cur + 1, now)))\n"
                               "end\n"
                               "return #KEYS\n";

/*
 * KEYS[1] an LSN key (dc_key_lsn); ARGV[1] an LSN (dc_lsn_hex), ARGV[2]
 * the run_id of this server. Keeps the larger of the two when the stored
 * one is this server's (fixed-width hex: string order is numeric order),
 * else stores ARGV's. Sent with EVAL (its text is short): Redis keeps the
 * compiled script, and a reconnect has nothing to load.
 */
static const char lsn_raise_lua[] = "local want = ARGV[1] .. '@' .. ARGV[2]\n"
                                    "local v = redis.call('GET', KEYS[1])\n"
                                    "if v and #v == #want and string.sub(v, 17) == string.sub(want, 17) and "
                                    "string.sub(v, 1, 16) >= ARGV[1] then\n"
                                    "  return 0\n"
                                    "end\n"
                                    "redis.call('SET', KEYS[1], want)\n"
                                    "return 1\n";

struct dc_cache_s {
    const dc_config_t *cfg;
    redisContext      *ctx;
    dc_arena_t         arena;       /* the replies of the last lookups (see arena_functions) */
    int                arena_live;  /* values of those replies not yet released */
    dc_buf_t           out;         /* the commands of a batch of lookups, formatted */
    int64_t            retry_at_ms; /* no connect attempt before this */
    int                down_logged; /* log a failure once per outage */
    char               store_sha[41];
    char               bump_sha[41];
    char               gen_sha[41];
    char               lease_sha[41];
    char               release_sha[41];
    unsigned long      leases;                /* taken by this process: each lease's owner is "<pid>.<n>" */
    char               run_id[DC_RUN_ID_MAX]; /* the server's, from INFO server at connect */
    size_t             run_id_len;
    char               epoch_key[32]; /* dc_key_epoch */
    size_t             epoch_len;
};

dc_cache_t *dc_cache_new(const dc_config_t *cfg)
{
    dc_cache_t *c = calloc(1, sizeof(*c));
    int         n;

    if (c == NULL)
        return NULL;
    c->cfg = cfg;
    n = dc_key_epoch(c->epoch_key, sizeof(c->epoch_key));
    c->epoch_len = n > 0 ? (size_t)n : 0;
    return c;
}

static void disconnect(dc_cache_t *c)
{
    if (c->ctx != NULL) {
        redisFree(c->ctx);
        c->ctx = NULL;
    }
}

void dc_cache_free(dc_cache_t *c)
{
    if (c == NULL)
        return;
    disconnect(c);
    dc_arena_free(&c->arena);
    dc_buf_free(&c->out);
    free(c);
}

int dc_cache_connected(const dc_cache_t *c)
{
    return c->ctx != NULL;
}

/* Marks Redis as failing: drop the connection, maybe wait before the next try. */
static void fail(dc_cache_t *c, int backoff, const char *what, const char *why)
{
    if (!c->down_logged) {
        dc_log_warn("redis.error", "%s%s%s; answering from the database%s", what, why ? " failed: " : "",
                    why ? why : "", backoff ? " until it is back" : "");
        c->down_logged = 1;
    }
    disconnect(c);
    c->retry_at_ms = backoff ? dc_now_ms() + c->cfg->redis_retry_interval_ms : 0;
    if (backoff)
        dc_breaker_failure(DC_DEP_REDIS);
}

/* Loads a script by its source; DC_OK with its sha in sha. */
static int load_script(dc_cache_t *c, const char *src, char sha[41])
{
    redisReply *r = redisCommand(c->ctx, "SCRIPT LOAD %s", src);

    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        fail(c, 1, "redis set-up", r ? r->str : c->ctx->errstr);
        freeReplyObject(r);
        return DC_UNAVAILABLE;
    }
    snprintf(sha, 41, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    return DC_OK;
}

/*
 * The run_id of the server on the other end (INFO server): a new one at
 * every start of a Redis process, so values stored before a restart (from a
 * snapshot, or a promoted replica) never match it. DC_OK or DC_UNAVAILABLE.
 */
static int learn_run_id(dc_cache_t *c)
{
    redisReply *r = redisCommand(c->ctx, "INFO server");
    const char *p = NULL;
    size_t      n = 0;

    if (r != NULL && r->type == REDIS_REPLY_STRING && (p = strstr(r->str, "run_id:")) != NULL) {
        p += 7;
        n = strcspn(p, "\r\n");
    }
    if (p == NULL || n == 0 || n >= sizeof(c->run_id) || strspn(p, "0123456789abcdef") != n) {
        fail(c, 1, "redis set-up", r == NULL ? c->ctx->errstr : "INFO server has no run_id");
        freeReplyObject(r);
        return DC_UNAVAILABLE;
    }
    memcpy(c->run_id, p, n);
    c->run_id[n] = '\0';
    c->run_id_len = n;
    freeReplyObject(r);
    return DC_OK;
}

static int ensure(dc_cache_t *c)
{
    dc_err_t err;
    int      rc;

    /* the host's breaker open: not even a connection this process still holds is used */
    if (!dc_breaker_allow(DC_DEP_REDIS))
        return DC_UNAVAILABLE;
    if (c->ctx != NULL)
        return DC_OK;
    if (dc_now_ms() < c->retry_at_ms && !dc_breaker_probing(DC_DEP_REDIS) && !dc_breaker_on())
        return DC_UNAVAILABLE;
    rc = dc_redis_connect(c->cfg, &c->ctx, &err);
    if (rc != DC_OK) {
        if (rc == DC_UNAVAILABLE)
            dc_metrics_cache_error(DC_COP_CONNECT);
        fail(c, 1, err.str, NULL);
        return DC_UNAVAILABLE;
    }
    if (learn_run_id(c) != DC_OK)
        return DC_UNAVAILABLE;
    /* scripts are loaded on every connect: a restarted Redis has forgotten them */
    if (load_script(c, store_lua, c->store_sha) != DC_OK || load_script(c, bump_lua, c->bump_sha) != DC_OK ||
        load_script(c, gen_lua, c->gen_sha) != DC_OK || load_script(c, lease_lua, c->lease_sha) != DC_OK ||
        load_script(c, release_lua, c->release_sha) != DC_OK)
        return DC_UNAVAILABLE;
    dc_breaker_success(DC_DEP_REDIS);
    if (c->down_logged) {
        dc_log_info("redis.recovered", "connected to redis again");
        c->down_logged = 0;
    }
    return DC_OK;
}

/*
 * A command failed at the connection level. A timeout or I/O error means
 * Redis is hung or gone: back off. A connection closed by the server (Redis
 * restarted, idle timeout) is retried at the next request without waiting.
 */
static void command_failed(dc_cache_t *c, const char *what)
{
    if (c->ctx == NULL)
        return; /* the reconnect of command() failed: ensure() has reported it */
    fail(c, c->ctx->err != REDIS_ERR_EOF, what, c->ctx->errstr);
}

/* The server closed the connection: Redis restarted, or dropped an idle client. */
static int closed_by_server(const redisContext *ctx)
{
    return ctx->err == REDIS_ERR_EOF || (ctx->err == REDIS_ERR_IO && (errno == ECONNRESET || errno == EPIPE));
}

/*
 * Sends one command. When the server had closed the connection since this
 * worker last used it, reconnects and sends it once more: a worker that sat
 * idle through a Redis restart must not answer its next request without the
 * cache (or with a 503 while PostgreSQL is down). Only for commands that may
 * run twice: reads, the conditional store, the generation bump. NULL when
 * both failed (or the reconnect did): then c->ctx is the failed context, or
 * NULL after a failed reconnect, which ensure() has reported.
 */
static redisReply *command(dc_cache_t *c, const char *fmt, ...)
{
    va_list     ap, again;
    redisReply *r;

    va_start(ap, fmt);
    va_copy(again, ap);
    r = redisvCommand(c->ctx, fmt, ap);
    if (r == NULL && closed_by_server(c->ctx)) {
        disconnect(c);
        c->retry_at_ms = 0;
        if (ensure(c) == DC_OK)
            r = redisvCommand(c->ctx, fmt, again);
    }
    va_end(again);
    va_end(ap);
    if (r != NULL)
        dc_breaker_success(DC_DEP_REDIS); /* an error reply too: Redis answers */
    return r;
}

/* command() for an argument vector. */
static redisReply *command_argv(dc_cache_t *c, int argc, const char **argv, const size_t *lens)
{
    redisReply *r = redisCommandArgv(c->ctx, argc, argv, lens);

    if (r == NULL && closed_by_server(c->ctx)) {
        disconnect(c);
        c->retry_at_ms = 0;
        if (ensure(c) == DC_OK)
            r = redisCommandArgv(c->ctx, argc, argv, lens);
    }
    if (r != NULL)
        dc_breaker_success(DC_DEP_REDIS);
    return r;
}

/* A generation or epoch: 1 to 20 digits. */
static int is_counter(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING && r->len > 0 && r->len <= 20 &&
           strspn(r->str, "0123456789") == r->len;
}

/* The token "<epoch>.<generation>" of the two replies into gen, "" when either is missing. */
static void copy_token(char gen[DC_GEN_MAX], const redisReply *e, const redisReply *g)
{
    gen[0] = '\0';
    if (is_counter(e) && is_counter(g))
        snprintf(gen, DC_GEN_MAX, "%s.%s", e->str, g->str);
}

/* A token as gen_lua returns it into gen, "" when it is not one. */
static void copy_gen(char gen[DC_GEN_MAX], const redisReply *r)
{
    size_t dot;

    gen[0] = '\0';
    if (r->type != REDIS_REPLY_STRING || r->len >= DC_GEN_MAX)
        return;
    dot = strspn(r->str, "0123456789");
    if (dot == 0 || r->str[dot] != '.' || strspn(r->str + dot + 1, "0123456789") != r->len - dot - 1 ||
        dot + 1 == r->len)
        return;
    memcpy(gen, r->str, r->len);
    gen[r->len] = '\0';
}

/*
 * Reply objects of the lookups, carved from the handle's arena instead of
 * malloc'd one by one (hiredis's reader takes its object functions from
 * reader->fn): shaped as hiredis's redisReply, so they read the same, but
 * never passed to freeReplyObject. Installed only while dc_cache_get_many
 * reads its replies, and left in place when the context is freed in the
 * middle (its freeObject is a no-op, as the objects are the arena's).
 */
static redisReply *arena_reply(const redisReadTask *task, int type)
{
    redisReply *r = dc_arena_alloc(task->privdata, sizeof(*r));

    if (r == NULL)
        return NULL;
    memset(r, 0, sizeof(*r));
    r->type = type;
    if (task->parent != NULL) {
        redisReply *parent = task->parent->obj;
        parent->element[task->idx] = r;
    }
    return r;
}

static void *arena_string(const redisReadTask *task, char *str, size_t len)
{
    redisReply *r = arena_reply(task, task->type);
    char       *s = r != NULL && len < SIZE_MAX ? dc_arena_alloc(task->privdata, len + 1) : NULL;

    if (s == NULL)
        return NULL;
    memcpy(s, str, len);
    s[len] = '\0';
    r->str = s;
    r->len = len;
    return r;
}

static void *arena_array(const redisReadTask *task, int elements)
{
    redisReply *r = arena_reply(task, REDIS_REPLY_ARRAY);

    if (r == NULL)
        return NULL;
    if (elements > 0) {
        r->element = dc_arena_alloc(task->privdata, (size_t)elements * sizeof(*r->element));
        if (r->element == NULL)
            return NULL;
        memset(r->element, 0, (size_t)elements * sizeof(*r->element));
    }
    r->elements = (size_t)elements;
    return r;
}

static void *arena_integer(const redisReadTask *task, long long value)
{
    redisReply *r = arena_reply(task, REDIS_REPLY_INTEGER);

    if (r != NULL)
        r->integer = value;
    return r;
}

static void *arena_nil(const redisReadTask *task)
{
    return arena_reply(task, REDIS_REPLY_NIL);
}

static void arena_free_object(void *reply)
{
    (void)reply; /* the arena's: freed by its reset */
}

static redisReplyObjectFunctions arena_functions = { arena_string, arena_array, arena_integer, arena_nil,
                                                     arena_free_object };

/* Replies of the context come from the arena from now on (a real context only: it has a reader). */
static void use_arena(dc_cache_t *c)
{
    if (c->ctx->reader != NULL) {
        c->ctx->reader->fn = &arena_functions;
        c->ctx->reader->privdata = &c->arena;
    }
}

/* Back to hiredis's own reply objects, for every other command. */
static void stop_arena(dc_cache_t *c, redisReplyObjectFunctions *saved)
{
    if (c->ctx != NULL && c->ctx->reader != NULL && c->ctx->reader->fn == &arena_functions) {
        c->ctx->reader->fn = saved;
        c->ctx->reader->privdata = NULL;
    }
}

/* Appends one RESP bulk string. */
static int put_bulk(dc_buf_t *b, const char *s, size_t n)
{
    char head[32];
    int  hn = snprintf(head, sizeof(head), "$%zu\r\n", n);

    if (dc_buf_append(b, head, (size_t)hn) != DC_OK || dc_buf_append(b, s, n) != DC_OK)
        return DC_ENOMEM;
    return dc_buf_append(b, "\r\n", 2);
}

/*
 * A stored value str (len bytes) into v: DC_OK when it is of the token in
 * v->gen, stored on this very server process, and in the current format
 * "<epoch>.<gen>@<run_id>\n<etag>\n<stored>\n<body>" (v->data, len, etag
 * and stored_s set; str must outlive v); an older format is never read as
 * one. DC_DECLINED otherwise.
 */
static int take_value(const dc_cache_t *c, dc_cache_value_t *v, const char *str, size_t len)
{
    size_t      gl = strlen(v->gen), rl = c->run_id_len, tl = gl + 1 + rl;
    size_t      head = tl + 1 + DC_ETAG_LEN + 1, digits;
    const char *tag = str + tl + 1;
    int64_t     at = 0;

    if (gl == 0 || len < head + 2 || memcmp(str, v->gen, gl) != 0 || str[gl] != '@' ||
        memcmp(str + gl + 1, c->run_id, rl) != 0 || str[tl] != '\n' || !dc_etag_valid(tag, DC_ETAG_LEN) ||
        tag[DC_ETAG_LEN] != '\n')
        return DC_DECLINED;
    for (digits = 0;
         head + digits < len && digits < 19 && str[head + digits] >= '0' && str[head + digits] <= '9';
         digits++)
        at = at * 10 + (str[head + digits] - '0');
    if (digits == 0 || head + digits >= len || str[head + digits] != '\n')
        return DC_DECLINED;
    memcpy(v->etag, tag, DC_ETAG_LEN);
    v->etag[DC_ETAG_LEN] = '\0';
    v->stored_s = at;
    v->data = str + head + digits + 1;
    v->len = len - head - digits - 1;
    return DC_OK;
}

/*
 * One MGET reply of a lookup: l->rc and l->v as dc_cache_get; takes r (an
 * arena reply when in_arena, else hiredis's own, freed here unless l->v
 * keeps it).
 */
static void take_lookup(dc_cache_t *c, dc_cache_lookup_t *l, redisReply *r, int in_arena)
{
    const redisReply *val;

    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
        dc_metrics_cache_error(DC_COP_GET);
        dc_log_warn("redis.error", "MGET %.*s: %s", (int)l->klen, l->key,
                    r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        if (!in_arena)
            freeReplyObject(r);
        l->rc = DC_UNAVAILABLE;
        return;
    }
    val = r->element[2];
    copy_token(l->v.gen, r->element[0], r->element[1]);
    l->rc = DC_DECLINED;
    if (val->type == REDIS_REPLY_STRING && take_value(c, &l->v, val->str, val->len) == DC_OK) {
        l->rc = DC_OK;
        if (in_arena) {
            l->v.arena = c;
            c->arena_live++;
        } else {
            l->v.reply = r;
        }
        return;
    }
    if (!in_arena)
        freeReplyObject(r);
}

/*
 * Sends the MGET of every lookup, formatted here into one buffer (kept from
 * batch to batch) and written with as few send() calls as the socket
 * allows. hiredis's own output buffer is left empty, as a blocking context
 * leaves it after every command; a context that has something in it (or the
 * fakes of the fault tests) gets the bytes through hiredis. DC_OK or
 * DC_ERROR (the context's err set, as hiredis sets it).
 */
static int send_lookups(dc_cache_t *c, dc_cache_lookup_t *const *ls, size_t n)
{
    static const char mget[] = "*4\r\n$4\r\nMGET\r\n";
    redisContext     *ctx = c->ctx;
    size_t            off = 0;

    dc_buf_reset(&c->out);
    for (size_t i = 0; i < n; i++) {
        char genkey[DC_KEY_MAX];
        int  glen = dc_key_gen(ls[i]->org, ls[i]->q, genkey, sizeof(genkey)); /* a cached type: >= 0 */

        if (glen < 0 || dc_buf_append(&c->out, mget, sizeof(mget) - 1) != DC_OK ||
            put_bulk(&c->out, c->epoch_key, c->epoch_len) != DC_OK ||
            put_bulk(&c->out, genkey, (size_t)glen) != DC_OK ||
            put_bulk(&c->out, ls[i]->key, ls[i]->klen) != DC_OK) {
            ctx->err = REDIS_ERR_OOM;
            snprintf(ctx->errstr, sizeof(ctx->errstr), "out of memory");
            return DC_ERROR;
        }
    }
    if (ctx->obuf == NULL || ctx->fd < 0 || sdslen(ctx->obuf) != 0)
        return redisAppendFormattedCommand(ctx, c->out.data, c->out.len) == REDIS_OK ? DC_OK : DC_ERROR;
    while (off < c->out.len) {
        ssize_t w = send(ctx->fd, c->out.data + off, c->out.len - off, MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        /* as hiredis reports a failed write (a timeout is EAGAIN after SO_SNDTIMEO) */
        ctx->err = REDIS_ERR_IO;
        snprintf(ctx->errstr, sizeof(ctx->errstr), "%s", w < 0 ? strerror(errno) : "short write");
        return DC_ERROR;
    }
    return DC_OK;
}

/* Up to DC_CACHE_LOOKUPS_MAX lookups of cached types, reset, in one round trip. */
static void get_batch(dc_cache_t *c, dc_cache_lookup_t *const *ls, size_t n)
{
    redisReplyObjectFunctions *saved = NULL;
    size_t                     got = 0;
    int64_t                    t0;

    if (ensure(c) != DC_OK)
        return;
    if (c->arena_live == 0)
        dc_arena_reset(&c->arena); /* every value of the last lookups was released */
    t0 = dc_now_ns();
    /*
     * Pipelined: every MGET goes out in one write, the replies come back
     * in order. A connection the server had closed (Redis restarted, idle
     * timeout) fails at the first reply: reconnect and send them all once
     * more, as command() does for one.
     */
    for (int attempt = 0; attempt < 2 && got == 0; attempt++) {
        int in_arena = c->ctx->reader != NULL;

        if (send_lookups(c, ls, n) != DC_OK)
            break;
        if (in_arena) {
            saved = c->ctx->reader->fn;
            use_arena(c);
        }
        for (; got < n; got++) {
            void *r = NULL;
            if (redisGetReply(c->ctx, &r) != REDIS_OK || r == NULL)
                break;
            take_lookup(c, ls[got], r, in_arena);
        }
        if (got == n)
            stop_arena(c, saved);
        if (got > 0 || attempt > 0 || !closed_by_server(c->ctx))
            break;
        disconnect(c); /* with the arena's functions: whatever the reader holds is the arena's */
        c->retry_at_ms = 0;
        if (ensure(c) != DC_OK)
            return;
    }
    if (got > 0)
        dc_breaker_success(DC_DEP_REDIS);
    for (size_t i = 0; i < n; i++)
        dc_metrics_cache_latency(DC_COP_GET, dc_now_ns() - t0);
    if (got < n) {
        /* the rest failed with the connection: Redis is hung or gone */
        for (size_t i = got; i < n; i++)
            dc_metrics_cache_error(DC_COP_GET);
        command_failed(c, "redis MGET"); /* frees the context, arena functions and all */
    }
}

void dc_cache_get_many(dc_cache_t *c, dc_cache_lookup_t *const *ls, size_t n)
{
    dc_cache_lookup_t *batch[DC_CACHE_LOOKUPS_MAX];
    size_t             k = 0;

    for (size_t i = 0; i < n; i++) {
        memset(&ls[i]->v, 0, sizeof(ls[i]->v));
        ls[i]->rc = DC_UNAVAILABLE; /* and stays so for a type that is not cached */
        if (!(DC_QBITS_CACHED & DC_QBIT_OF(ls[i]->q)))
            continue;
        batch[k++] = ls[i];
        if (k == DC_CACHE_LOOKUPS_MAX) {
            get_batch(c, batch, k);
            k = 0;
        }
    }
    if (k > 0)
        get_batch(c, batch, k);
}

int dc_cache_get(dc_cache_t *c, const char *org, dc_qtype_t q, const char *key, size_t klen,
                 dc_cache_value_t *v)
{
    dc_cache_lookup_t l = { .org = org, .q = q, .key = key, .klen = klen }, *ls = &l;

    dc_cache_get_many(c, &ls, 1);
    *v = l.v;
    return l.rc;
}

void dc_cache_value_release(dc_cache_value_t *v)
{
    freeReplyObject(v->reply);
    if (v->arena != NULL)
        v->arena->arena_live--;
    memset(v, 0, sizeof(*v));
}

/* The reply r of a script run through command(): DC_OK with *out = r (free it), or DC_UNAVAILABLE. */
static int eval(dc_cache_t *c, const char *what, redisReply **out, redisReply *r)
{
    if (r == NULL) {
        command_failed(c, what);
        return DC_UNAVAILABLE;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        /* NOSCRIPT after SCRIPT FLUSH, OOM under noeviction, ...: reconnect reloads */
        fail(c, 0, what, r->str);
        freeReplyObject(r);
        return DC_UNAVAILABLE;
    }
    *out = r;
    return DC_OK;
}

int dc_cache_generation(dc_cache_t *c, const char *org, dc_qtype_t q, char gen[DC_GEN_MAX])
{
    char        genkey[DC_KEY_MAX];
    int         glen = dc_key_gen(org, q, genkey, sizeof(genkey));
    redisReply *r;

    gen[0] = '\0';
    if (glen < 0 || ensure(c) != DC_OK)
        return DC_UNAVAILABLE;
    if (eval(c, "redis generation", &r,
             command(c, "EVALSHA %s 2 %b %b", c->gen_sha, c->epoch_key, c->epoch_len, genkey,
                     (size_t)glen)) != DC_OK) {
        dc_trust_refused("redis did not take a generation");
        return DC_UNAVAILABLE;
    }
    copy_gen(gen, r);
    freeReplyObject(r);
    return gen[0] != '\0' ? DC_OK : DC_UNAVAILABLE;
}

void dc_cache_drop_generation(dc_cache_t *c, const char *org, dc_qtype_t q)
{
    char        genkey[DC_KEY_MAX];
    int         glen = dc_key_gen(org, q, genkey, sizeof(genkey));
    redisReply *r;

    if (glen < 0 || ensure(c) != DC_OK)
        return;
    r = command(c, "UNLINK %b", genkey, (size_t)glen);
    if (r == NULL)
        command_failed(c, "redis UNLINK");
    freeReplyObject(r);
}

int dc_cache_set(dc_cache_t *c, const char *org, dc_qtype_t q, const char *key, size_t klen, const char *gen,
                 const char *etag, const char *val, size_t vlen, int ttl_s)
{
    char        genkey[DC_KEY_MAX], lease[DC_KEY_MAX + 32];
    int         glen = dc_key_gen(org, q, genkey, sizeof(genkey));
    int         llen = dc_key_lease(key, klen, lease, sizeof(lease));
    redisReply *r;
    int64_t     t0;
    int         rc;

    if (glen < 0 || llen < 0 || ensure(c) != DC_OK)
        return DC_UNAVAILABLE;
    t0 = dc_now_ns();
    /* kept past its TTL for as long as it may be served stale (dc_cache.h) */
    rc = eval(c, "redis store", &r,
              command(c, "EVALSHA %s 4 %b %b %b %b %s %b %d %s %s %lld", c->store_sha, c->epoch_key,
                      c->epoch_len, genkey, (size_t)glen, key, klen, lease, (size_t)llen, gen, val, vlen,
                      ttl_s + c->cfg->cache_max_stale_s, etag, c->run_id, (long long)time(NULL)));
    dc_metrics_cache_latency(DC_COP_SET, dc_now_ns() - t0);
    if (rc != DC_OK) {
        dc_metrics_cache_error(DC_COP_SET);
        dc_trust_refused("redis did not take a store");
        return DC_UNAVAILABLE;
    }
    rc = r->type == REDIS_REPLY_INTEGER && r->integer == 1 ? DC_OK : DC_DECLINED;
    if (rc == DC_DECLINED)
        dc_metrics_stale_set_refused();
    freeReplyObject(r);
    return rc;
}

int dc_cache_lease(dc_cache_t *c, const char *org, dc_qtype_t q, const char *key, size_t klen, int ttl_s,
                   dc_cache_value_t *v, int *created)
{
    char        genkey[DC_KEY_MAX], lease[DC_KEY_MAX + 32], owner[48];
    int         glen = dc_key_gen(org, q, genkey, sizeof(genkey));
    int         llen = dc_key_lease(key, klen, lease, sizeof(lease));
    redisReply *r;
    long long   state;

    dc_cache_value_release(v);
    *created = 0;
    if (glen < 0 || llen < 0 || ensure(c) != DC_OK)
        return DC_UNAVAILABLE;
    snprintf(owner, sizeof(owner), "%ld.%lu", (long)getpid(), ++c->leases);
    if (eval(c, "redis lease", &r,
             command(c, "EVALSHA %s 4 %b %b %b %b %s %d %s %lld", c->lease_sha, c->epoch_key, c->epoch_len,
                     genkey, (size_t)glen, key, klen, lease, (size_t)llen, owner, c->cfg->cache_lease_ms,
                     c->run_id, (long long)time(NULL) - ttl_s)) != DC_OK) {
        dc_trust_refused("redis did not take a lease");
        return DC_UNAVAILABLE;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4 || r->element[0]->type != REDIS_REPLY_INTEGER ||
        r->element[3]->type != REDIS_REPLY_INTEGER) {
        fail(c, 0, "redis lease", "unexpected reply");
        freeReplyObject(r);
        return DC_UNAVAILABLE;
    }
    state = r->element[0]->integer;
    *created = r->element[3]->integer == 1;
    copy_gen(v->gen, r->element[1]);
    if (v->gen[0] == '\0' || state < 0 || state > 2) {
        freeReplyObject(r);
        return DC_UNAVAILABLE;
    }
    if (state == 1)
        snprintf(v->lease, sizeof(v->lease), "%s %s", v->gen, owner);
    /* the value: fresh (state 0), or a stale one of the current token, or none */
    if (r->element[2]->type == REDIS_REPLY_STRING &&
        take_value(c, v, r->element[2]->str, r->element[2]->len) == DC_OK)
        v->reply = r;
    else
        freeReplyObject(r);
    if (state == 0)
        return v->reply != NULL ? DC_OK : DC_UNAVAILABLE;
    return state == 1 ? DC_DECLINED : DC_BUSY;
}

void dc_cache_release(dc_cache_t *c, const char *key, size_t klen, dc_cache_value_t *v)
{
    char        lease[DC_KEY_MAX + 32];
    int         llen = dc_key_lease(key, klen, lease, sizeof(lease));
    redisReply *r;

    if (v->lease[0] == '\0' || llen < 0 || ensure(c) != DC_OK)
        return;
    r = command(c, "EVALSHA %s 1 %b %s", c->release_sha, lease, (size_t)llen, v->lease);
    if (r == NULL)
        command_failed(c, "redis release");
    freeReplyObject(r);
    v->lease[0] = '\0';
}

/*
 * Runs the bump script over the keys argv[3 .. argc) (argv[0 .. 2] are
 * filled here). DC_OK or DC_UNAVAILABLE; a failure is a refused write.
 */
static int bump(dc_cache_t *c, int argc, const char **argv, size_t *lens)
{
    char        nkeys[16];
    redisReply *r;
    int64_t     t0;
    int         rc;

    if (ensure(c) != DC_OK) {
        dc_metrics_cache_error(DC_COP_INVALIDATE);
        dc_trust_refused("redis could not take an invalidation");
        return DC_UNAVAILABLE;
    }
    snprintf(nkeys, sizeof(nkeys), "%d", argc - 3);
    argv[0] = "EVALSHA";
    lens[0] = 7;
    argv[1] = c->bump_sha;
    lens[1] = strlen(c->bump_sha);
    argv[2] = nkeys;
    lens[2] = strlen(nkeys);
    t0 = dc_now_ns();
    rc = eval(c, "redis invalidate", &r, command_argv(c, argc, argv, lens));
    dc_metrics_cache_latency(DC_COP_INVALIDATE, dc_now_ns() - t0);
    if (rc != DC_OK) {
        dc_metrics_cache_error(DC_COP_INVALIDATE);
        dc_trust_refused("redis did not take an invalidation");
        return DC_UNAVAILABLE;
    }
    freeReplyObject(r);
    return DC_OK;
}

int dc_cache_invalidate(dc_cache_t *c, const char *org, unsigned queries)
{
    char        keys[DC_Q_COUNT][DC_KEY_MAX];
    const char *argv[3 + DC_Q_COUNT];
    size_t      lens[3 + DC_Q_COUNT];
    int         argc = 3;

    for (unsigned q = 0; q < DC_Q_COUNT; q++) {
        int n;
        if (!(queries & DC_QBITS_CACHED & DC_QBIT_OF(q)))
            continue;
        n = dc_key_gen(org, (dc_qtype_t)q, keys[q], sizeof(keys[q]));
        if (n < 0) {
            dc_metrics_cache_error(DC_COP_INVALIDATE);
            return DC_UNAVAILABLE;
        }
        argv[argc] = keys[q];
        lens[argc++] = (size_t)n;
    }
    return argc == 3 ? DC_OK : bump(c, argc, argv, lens);
}

int dc_cache_invalidate_all(dc_cache_t *c)
{
    const char *argv[4] = { NULL, NULL, NULL, c->epoch_key };
    size_t      lens[4] = { 0, 0, 0, c->epoch_len };

    return bump(c, 4, argv, lens);
}

int dc_cache_lsn_raise(dc_cache_t *c, const char *org, uint64_t lsn)
{
    char        key[DC_KEY_MAX], hex[DC_LSN_HEX_LEN + 1];
    int         klen = dc_key_lsn(org, key, sizeof(key));
    redisReply *r;

    if (klen < 0)
        return DC_UNAVAILABLE;
    dc_lsn_hex(lsn, hex);
    if (ensure(c) != DC_OK ||
        eval(c, "redis lsn", &r,
             command(c, "EVAL %s 1 %b %s %s", lsn_raise_lua, key, (size_t)klen, hex, c->run_id)) != DC_OK) {
        dc_metrics_cache_error(DC_COP_INVALIDATE);
        dc_trust_refused("redis did not take an LSN");
        return DC_UNAVAILABLE;
    }
    freeReplyObject(r);
    return DC_OK;
}

/* A stored LSN of this server (dc_cache_lsn_raise) in reply r, else 0. */
static uint64_t stored_lsn(const dc_cache_t *c, const redisReply *r)
{
    uint64_t lsn;

    if (r->type != REDIS_REPLY_STRING || r->len != DC_LSN_HEX_LEN + 1 + c->run_id_len ||
        r->str[DC_LSN_HEX_LEN] != '@' || memcmp(r->str + DC_LSN_HEX_LEN + 1, c->run_id, c->run_id_len) != 0 ||
        dc_lsn_parse_hex(r->str, DC_LSN_HEX_LEN, &lsn) != DC_OK)
        return 0;
    return lsn;
}

int dc_cache_lsn_get(dc_cache_t *c, const char *org, uint64_t *org_lsn, uint64_t *all_lsn)
{
    uint64_t   *out[2] = { org_lsn, all_lsn };
    const char *who[2] = { org, NULL };

    *org_lsn = *all_lsn = 0;
    if (ensure(c) != DC_OK)
        return DC_UNAVAILABLE;
    /* two commands: the keys live in different slots of a cluster */
    for (int i = 0; i < 2; i++) {
        char        key[DC_KEY_MAX];
        int         klen = dc_key_lsn(who[i], key, sizeof(key));
        redisReply *r;

        if (klen < 0)
            return DC_UNAVAILABLE;
        r = command(c, "GET %b", key, (size_t)klen);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            if (r == NULL)
                command_failed(c, "redis GET lsn");
            else
                fail(c, 0, "redis GET lsn", r->str);
            freeReplyObject(r);
            dc_metrics_cache_error(DC_COP_GET);
            return DC_UNAVAILABLE;
        }
        *out[i] = stored_lsn(c, r);
        freeReplyObject(r);
    }
    return DC_OK;
}

int dc_cache_probe(dc_cache_t *c)
{
    char        key[32];
    int         klen = dc_key_probe(key, sizeof(key));
    redisReply *r;
    int         rc;

    if (klen < 0 || ensure(c) != DC_OK)
        return DC_UNAVAILABLE;
    r = command(c, "SET %b %lld PX 60000", key, (size_t)klen, (long long)dc_now_ms());
    if (r == NULL) {
        command_failed(c, "redis write probe"); /* hung, paused or gone */
        return DC_UNAVAILABLE;
    }
    /* a refusal (OOM, READONLY) is an answer: the connection is fine */
    rc = r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0 ? DC_OK : DC_UNAVAILABLE;
    freeReplyObject(r);
    return rc;
}

int dc_cache_publish(dc_cache_t *c, const char *channel, const char *msg, size_t len)
{
    redisReply *r;

    if (ensure(c) != DC_OK)
        return DC_UNAVAILABLE;
    r = redisCommand(c->ctx, "PUBLISH %s %b", channel, msg, len);
    if (r == NULL) {
        dc_metrics_cache_error(DC_COP_PUBLISH);
        command_failed(c, "redis PUBLISH");
        return DC_UNAVAILABLE;
    }
    freeReplyObject(r);
    return DC_OK;
}

int dc_cache_ping(dc_cache_t *c, double *latency_ms)
{
    int64_t     t0 = dc_now_us();
    redisReply *r;
    int         rc = DC_OK;

    if (ensure(c) != DC_OK)
        return DC_UNAVAILABLE;
    r = command(c, "PING");
    if (r == NULL) {
        command_failed(c, "redis PING");
        return DC_UNAVAILABLE;
    }
    if (r->type == REDIS_REPLY_ERROR)
        rc = DC_UNAVAILABLE;
    freeReplyObject(r);
    *latency_ms = (double)(dc_now_us() - t0) / 1000.0;
    return rc;
}

int dc_cache_unlink_pattern(dc_cache_t *c, const char *pattern, size_t *deleted)
{
    char cursor[32] = "0";

    *deleted = 0;
    do {
        redisReply *r, *keys;
        if (ensure(c) != DC_OK)
            return DC_UNAVAILABLE;
        r = redisCommand(c->ctx, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        if (r == NULL) {
            command_failed(c, "redis SCAN");
            return DC_UNAVAILABLE;
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            fail(c, 0, "redis SCAN", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
            freeReplyObject(r);
            return DC_UNAVAILABLE;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        keys = r->element[1];
        if (keys->elements > 0) {
            const char **argv = malloc((keys->elements + 1) * sizeof(*argv));
            size_t      *lens = malloc((keys->elements + 1) * sizeof(*lens));
            redisReply  *u = NULL;
            if (argv != NULL && lens != NULL) {
                argv[0] = "UNLINK";
                lens[0] = 6;
                for (size_t i = 0; i < keys->elements; i++) {
                    argv[i + 1] = keys->element[i]->str;
                    lens[i + 1] = keys->element[i]->len;
                }
                u = redisCommandArgv(c->ctx, (int)keys->elements + 1, argv, lens);
            }
            free(argv);
            free(lens);
            if (u == NULL) {
                freeReplyObject(r);
                if (c->ctx != NULL && c->ctx->err)
                    command_failed(c, "redis UNLINK");
                return DC_UNAVAILABLE;
            }
            if (u->type == REDIS_REPLY_INTEGER)
                *deleted += (size_t)u->integer;
            freeReplyObject(u);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return DC_OK;
}

int dc_cache_count_keys(dc_cache_t *c, const char *pattern, long max_scan, long *n, int *complete)
{
    char cursor[32] = "0";
    long scanned = 0;

    *n = 0;
    *complete = 1;
    do {
        redisReply *r;
        if (ensure(c) != DC_OK)
            return DC_UNAVAILABLE;
        if (scanned >= max_scan) {
            *complete = 0;
            break;
        }
        r = redisCommand(c->ctx, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        if (r == NULL) {
            command_failed(c, "redis SCAN");
            return DC_UNAVAILABLE;
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING) {
            freeReplyObject(r);
            return DC_UNAVAILABLE;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        *n += (long)r->element[1]->elements;
        scanned += 1000;
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return DC_OK;
}

int dc_cache_memory(dc_cache_t *c, long long *used_bytes, long long *keys)
{
    redisReply *r;
    const char *p;

    *used_bytes = *keys = -1;
    if (ensure(c) != DC_OK)
        return DC_UNAVAILABLE;
    r = redisCommand(c->ctx, "INFO memory");
    if (r == NULL) {
        command_failed(c, "redis INFO");
        return DC_UNAVAILABLE;
    }
    if (r->type == REDIS_REPLY_STRING && (p = strstr(r->str, "used_memory:")) != NULL)
        *used_bytes = strtoll(p + 12, NULL, 10);
    freeReplyObject(r);
    r = redisCommand(c->ctx, "DBSIZE");
    if (r == NULL) {
        command_failed(c, "redis DBSIZE");
        return DC_UNAVAILABLE;
    }
    if (r->type == REDIS_REPLY_INTEGER)
        *keys = r->integer;
    freeReplyObject(r);
    return DC_OK;
}
