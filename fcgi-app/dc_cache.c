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
#include "dc_slots.h"
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
 * else stores ARGV's.
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
    char               lsn_raise_sha[41];
    unsigned long      leases;                /* taken by this process: each lease's owner is "<pid>.<n>" */
    char               run_id[DC_RUN_ID_MAX]; /* the server's, from INFO server at connect */
    size_t             run_id_len;
    char               epoch_key[32]; /* dc_key_epoch */
    size_t             epoch_len;
    uint64_t           primary_id; /* with sentinels: the server's run_id, hashed (dc_trust_primary_set) */
    struct cluster_s  *cl; /* REDIS_CLUSTER_NODES: the slot map and a connection per primary; else NULL */
};

/*
 * A Redis Cluster: the slot map, and a connection per primary (opened
 * lazily). The node commands go to is the current one: its context is
 * c->ctx and its run_id c->run_id (select_node swaps them), so that the code
 * of one Redis serves each node unchanged.
 */
typedef struct {
    redisContext *ctx; /* NULL while it is the current node's (in c->ctx) or closed */
    char          run_id[DC_RUN_ID_MAX];
    size_t        run_id_len;
} node_t;

struct cluster_s {
    dc_slots_map_t map;
    node_t         nodes[DC_SLOTS_NODES_MAX];
    int            cur;   /* the current node, -1: none */
    int            stale; /* no map yet, or a MOVED was seen: read CLUSTER SLOTS before the next routing */
};

/*
 * With sentinels, how soon a worker looks for the primary again after a
 * sentinel named a server that is not (or no longer) the primary, and after
 * the primary refused a write as a replica: a failover under way is a reason
 * to look again promptly, not an outage to back off from.
 */
#define RELOOK_MS 50

dc_cache_t *dc_cache_new(const dc_config_t *cfg)
{
    dc_cache_t *c = calloc(1, sizeof(*c));
    int         n;

    if (c == NULL)
        return NULL;
    c->cfg = cfg;
    n = dc_key_epoch(c->epoch_key, sizeof(c->epoch_key));
    c->epoch_len = n > 0 ? (size_t)n : 0;
    if (cfg->redis_cluster_n > 0) {
        c->cl = calloc(1, sizeof(*c->cl));
        if (c->cl == NULL) {
            free(c);
            return NULL;
        }
        c->cl->cur = -1;
        c->cl->stale = 1;
        (void)dc_slots_tag(0); /* the table of tags, once */
    }
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
    if (c->cl != NULL) {
        for (int i = 0; i < DC_SLOTS_NODES_MAX; i++)
            redisFree(c->cl->nodes[i].ctx);
        free(c->cl);
    }
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

static int route_slot(dc_cache_t *c, unsigned slot);

/* FNV-1a of a run_id: a word the host's processes compare (dc_trust_primary_set); never 0. */
static uint64_t hash_id(const char *s)
{
    uint64_t h = 14695981039346656037ULL;

    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h != 0 ? h : 1;
}

static int relook_ms(const dc_cache_t *c)
{
    return c->cfg->redis_retry_interval_ms < RELOOK_MS ? c->cfg->redis_retry_interval_ms : RELOOK_MS;
}

/* A refusal that says the server is not the primary (any more): a failover. */
static int demoted(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR &&
           (strncmp(r->str, "READONLY", 8) == 0 || strncmp(r->str, "MASTERDOWN", 10) == 0);
}

static int ensure(dc_cache_t *c)
{
    dc_err_t err;
    int      rc;

    /* the host's breaker open: not even a connection this process still holds is used */
    if (!dc_breaker_allow(DC_DEP_REDIS))
        return DC_UNAVAILABLE;
    if (c->ctx != NULL && dc_redis_sentinel_mode(c->cfg) && !dc_trust_primary_is(c->primary_id)) {
        /* another process of the host found a new primary: this one is demoted, or about to be */
        dc_log_info("redis.primary", "the primary moved; connecting to the one the sentinels name");
        disconnect(c);
        c->retry_at_ms = 0;
    }
    if (c->ctx != NULL)
        return DC_OK;
    if (dc_now_ms() < c->retry_at_ms && !dc_breaker_probing(DC_DEP_REDIS) && !dc_breaker_on())
        return DC_UNAVAILABLE;
    if (c->cl != NULL && c->cl->cur < 0 && route_slot(c, 0) != DC_OK)
        return DC_UNAVAILABLE;
    rc = c->cl != NULL ? dc_redis_connect_node(c->cfg, c->cl->map.nodes[c->cl->cur].host,
                                               c->cl->map.nodes[c->cl->cur].port, &c->ctx, &err)
                       : dc_redis_connect(c->cfg, &c->ctx, &err);
    if (rc == DC_BUSY) {
        fail(c, 0, err.str, NULL);
        c->retry_at_ms = dc_now_ms() + relook_ms(c);
        return DC_UNAVAILABLE;
    }
    if (rc != DC_OK) {
        if (rc == DC_UNAVAILABLE)
            dc_metrics_cache_error(DC_COP_CONNECT);
        fail(c, 1, err.str, NULL);
        return DC_UNAVAILABLE;
    }
    if (learn_run_id(c) != DC_OK)
        return DC_UNAVAILABLE;
    if (dc_redis_sentinel_mode(c->cfg)) {
        c->primary_id = hash_id(c->run_id);
        dc_trust_primary_set(c->primary_id);
    }
    /* scripts are loaded on every connect: a restarted Redis has forgotten them */
    if (load_script(c, store_lua, c->store_sha) != DC_OK || load_script(c, bump_lua, c->bump_sha) != DC_OK ||
        load_script(c, gen_lua, c->gen_sha) != DC_OK || load_script(c, lease_lua, c->lease_sha) != DC_OK ||
        load_script(c, release_lua, c->release_sha) != DC_OK ||
        load_script(c, lsn_raise_lua, c->lsn_raise_sha) != DC_OK)
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

/* The current node's connection and run_id back into its slot; no node is current. */
static void park(dc_cache_t *c)
{
    struct cluster_s *cl = c->cl;

    if (cl->cur >= 0) {
        node_t *nd = &cl->nodes[cl->cur];
        nd->ctx = c->ctx;
        memcpy(nd->run_id, c->run_id, sizeof(nd->run_id));
        nd->run_id_len = c->run_id_len;
    }
    c->ctx = NULL;
    c->run_id_len = 0;
    cl->cur = -1;
}

/* Makes node i (of the map) the current one: commands go to it from now on. */
static void select_node(dc_cache_t *c, int i)
{
    struct cluster_s *cl = c->cl;

    if (cl->cur == i)
        return;
    park(c);
    c->ctx = cl->nodes[i].ctx;
    cl->nodes[i].ctx = NULL;
    memcpy(c->run_id, cl->nodes[i].run_id, sizeof(c->run_id));
    c->run_id_len = cl->nodes[i].run_id_len;
    cl->cur = i;
}

/* CLUSTER SLOTS from the node at host:port, into map. DC_OK or DC_UNAVAILABLE (why set). */
static int slots_from(dc_cache_t *c, const char *host, int port, dc_slots_map_t *map, dc_err_t *why)
{
    redisContext *ctx;
    redisReply   *r;
    int           rc;

    if (dc_redis_connect_node(c->cfg, host, port, &ctx, why) != DC_OK)
        return DC_UNAVAILABLE;
    r = redisCommand(ctx, "CLUSTER SLOTS");
    rc = dc_slots_parse(r, host, map);
    if (rc != DC_OK || map->nnodes == 0)
        dc_err_set(why, DC_UNAVAILABLE, "redis CLUSTER SLOTS from %s:%d failed: %s", host, port,
                   r == NULL                      ? ctx->errstr
                   : r->type == REDIS_REPLY_ERROR ? r->str
                                                  : "not a slot map");
    freeReplyObject(r);
    redisFree(ctx);
    return rc == DC_OK && map->nnodes > 0 ? DC_OK : DC_UNAVAILABLE;
}

/*
 * Reads the slot map again (CLUSTER SLOTS), from the primaries known, then
 * the seeds of REDIS_CLUSTER_NODES, the first that answers; the connections
 * to nodes that are still primaries are kept. DC_OK, or DC_UNAVAILABLE
 * after reporting it (fail: back-off).
 */
static int refresh_map(dc_cache_t *c)
{
    struct cluster_s *cl = c->cl;
    dc_slots_map_t   *fresh = malloc(sizeof(*fresh));
    node_t           *kept = calloc(DC_SLOTS_NODES_MAX, sizeof(*kept));
    dc_err_t          why = { 0 };
    int               rc = DC_UNAVAILABLE;

    if (fresh == NULL || kept == NULL) {
        dc_err_set(&why, DC_UNAVAILABLE, "redis CLUSTER SLOTS: out of memory");
    } else {
        for (int i = 0; i < cl->map.nnodes && rc != DC_OK; i++)
            rc = slots_from(c, cl->map.nodes[i].host, cl->map.nodes[i].port, fresh, &why);
        for (int i = 0; i < c->cfg->redis_cluster_n && rc != DC_OK; i++)
            rc = slots_from(c, c->cfg->redis_cluster[i].host, c->cfg->redis_cluster[i].port, fresh, &why);
    }
    if (rc == DC_OK) {
        park(c);
        for (int i = 0; i < cl->map.nnodes; i++) {
            int j = -1;
            for (int k = 0; k < fresh->nnodes && j < 0; k++)
                if (fresh->nodes[k].port == cl->map.nodes[i].port &&
                    strcmp(fresh->nodes[k].host, cl->map.nodes[i].host) == 0)
                    j = k;
            if (j >= 0)
                kept[j] = cl->nodes[i];
            else
                redisFree(cl->nodes[i].ctx);
        }
        memcpy(cl->nodes, kept, DC_SLOTS_NODES_MAX * sizeof(*kept));
        memcpy(&cl->map, fresh, sizeof(*fresh));
        cl->stale = 0;
    }
    free(fresh);
    free(kept);
    if (rc != DC_OK) {
        dc_metrics_cache_error(DC_COP_CONNECT);
        fail(c, 1, why.str[0] != '\0' ? why.str : "redis CLUSTER SLOTS failed", NULL);
    }
    return rc;
}

/* Makes the primary of slot the current node (the map read first when stale). DC_OK or DC_UNAVAILABLE. */
static int route_slot(dc_cache_t *c, unsigned slot)
{
    struct cluster_s *cl = c->cl;
    int               node = cl->stale ? -1 : dc_slots_node_of(&cl->map, slot);

    if (node < 0) {
        if (!dc_breaker_allow(DC_DEP_REDIS) ||
            (dc_now_ms() < c->retry_at_ms && !dc_breaker_probing(DC_DEP_REDIS) && !dc_breaker_on()))
            return DC_UNAVAILABLE;
        if (refresh_map(c) != DC_OK)
            return DC_UNAVAILABLE;
        node = dc_slots_node_of(&cl->map, slot);
        if (node < 0) {
            fail(c, 1, "redis cluster", "no primary serves a slot");
            return DC_UNAVAILABLE;
        }
    }
    select_node(c, node);
    return DC_OK;
}

/* ensure() for a command on key (in a cluster: on the primary of its slot). */
static int ensure_key(dc_cache_t *c, const char *key, size_t klen)
{
    if (c->cl != NULL && route_slot(c, dc_slots_keyslot(key, klen)) != DC_OK)
        return DC_UNAVAILABLE;
    return ensure(c);
}

/*
 * The epoch read with key: the one dashcache:epoch, or in a cluster the copy
 * in key's slot (into buf, DC_KEY_MAX bytes), so that MGET and the scripts
 * name keys of one slot. Its length in *len.
 */
static const char *epoch_of(const dc_cache_t *c, const char *key, size_t klen, char *buf, size_t *len)
{
    int n;

    if (c->cl == NULL) {
        *len = c->epoch_len;
        return c->epoch_key;
    }
    n = dc_key_epoch_tagged(dc_slots_tag(dc_slots_keyslot(key, klen)), buf, DC_KEY_MAX);
    *len = n > 0 ? (size_t)n : 0;
    return buf;
}

/* Sends a formatted command on the current node and reads its reply; NULL when the connection failed. */
static redisReply *run_formatted(dc_cache_t *c, const char *cmd, size_t len)
{
    void *r = NULL;

    if (redisAppendFormattedCommand(c->ctx, cmd, len) != REDIS_OK || redisGetReply(c->ctx, &r) != REDIS_OK)
        return NULL;
    return r;
}

/*
 * command() in a cluster, for the formatted command cmd (freed here) on the
 * current node: once more after a connection the server had closed, and
 * after one MOVED (to the node it names; the map is read again before the
 * next command) or one ASK (ASKING, then the command, there, the map left
 * as it is). CLUSTERDOWN, TRYAGAIN and the rest are error replies for the
 * caller, as any error of one Redis.
 */
static redisReply *cluster_command(dc_cache_t *c, char *cmd, size_t len)
{
    redisReply   *r = run_formatted(c, cmd, len);
    dc_redirect_t to;
    int           node;

    if (r == NULL && closed_by_server(c->ctx)) {
        disconnect(c);
        c->retry_at_ms = 0;
        if (ensure(c) == DC_OK)
            r = run_formatted(c, cmd, len);
    }
    if (r != NULL && r->type == REDIS_REPLY_ERROR && dc_slots_redirect(r->str, r->len, &to) == DC_OK) {
        dc_breaker_success(DC_DEP_REDIS);
        freeReplyObject(r);
        r = NULL;
        if (to.kind == DC_REDIRECT_MOVED)
            c->cl->stale = 1;
        node = dc_slots_node_add(&c->cl->map, to.to.host, to.to.port);
        if (node >= 0) {
            if (to.kind == DC_REDIRECT_MOVED)
                c->cl->map.owner[to.slot] = (uint8_t)(node + 1);
            select_node(c, node);
        }
        if (node >= 0 && ensure(c) == DC_OK) {
            if (to.kind == DC_REDIRECT_ASK) {
                redisReply *a = redisCommand(c->ctx, "ASKING");
                if (a != NULL)
                    r = run_formatted(c, cmd, len);
                freeReplyObject(a);
            } else {
                r = run_formatted(c, cmd, len);
            }
        }
    }
    redisFreeCommand(cmd);
    if (r != NULL)
        dc_breaker_success(DC_DEP_REDIS);
    return r;
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

    if (c->cl != NULL) {
        char *cmd = NULL;
        int   len;
        va_start(ap, fmt);
        len = redisvFormatCommand(&cmd, fmt, ap);
        va_end(ap);
        return len < 0 ? NULL : cluster_command(c, cmd, (size_t)len);
    }
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
    redisReply *r;

    if (c->cl != NULL) {
        char *cmd = NULL;
        int   len = redisFormatCommandArgv(&cmd, argc, argv, lens);
        return len < 0 ? NULL : cluster_command(c, cmd, (size_t)len);
    }
    r = redisCommandArgv(c->ctx, argc, argv, lens);

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

/* The MGET of lookup l (epoch copy, generation, value: one slot) appended to the current node's output. */
static int append_lookup(dc_cache_t *c, const dc_cache_lookup_t *l)
{
    char        genkey[DC_KEY_MAX], ebuf[DC_KEY_MAX];
    int         glen = dc_key_gen(l->org, l->q, genkey, sizeof(genkey));
    size_t      elen;
    const char *ekey = epoch_of(c, l->key, l->klen, ebuf, &elen);

    if (glen < 0)
        return DC_ERROR;
    return redisAppendCommand(c->ctx, "MGET %b %b %b", ekey, elen, genkey, (size_t)glen, l->key, l->klen) ==
                   REDIS_OK
               ? DC_OK
               : DC_ERROR;
}

/* One lookup on its own, through command()'s redirections: after a MOVED or ASK in a batch. */
static void get_one_redirected(dc_cache_t *c, dc_cache_lookup_t *l)
{
    char        genkey[DC_KEY_MAX], ebuf[DC_KEY_MAX];
    int         glen = dc_key_gen(l->org, l->q, genkey, sizeof(genkey));
    size_t      elen;
    const char *ekey = epoch_of(c, l->key, l->klen, ebuf, &elen);
    redisReply *r;

    if (glen < 0 || ensure_key(c, l->key, l->klen) != DC_OK)
        return;
    r = command(c, "MGET %b %b %b", ekey, elen, genkey, (size_t)glen, l->key, l->klen);
    if (r == NULL) {
        dc_metrics_cache_error(DC_COP_GET);
        command_failed(c, "redis MGET");
        return;
    }
    take_lookup(c, l, r, 0);
}

/*
 * get_batch in a cluster: the MGETs grouped by the primary of their slot,
 * written to every node before any reply is read (one round trip for all
 * of them), the replies in hiredis's own objects. A lookup answered with
 * MOVED or ASK is asked once more on its own, through the redirection; a
 * node that fails leaves its lookups DC_UNAVAILABLE.
 */
static void get_batch_cluster(dc_cache_t *c, dc_cache_lookup_t *const *ls, size_t n)
{
    int           node[DC_CACHE_LOOKUPS_MAX], nodes, redo[DC_CACHE_LOOKUPS_MAX];
    size_t        nredo = 0;
    dc_redirect_t to;
    int64_t       t0 = dc_now_ns();

    if (route_slot(c, 0) != DC_OK)
        return;
    nodes = c->cl->map.nnodes;
    for (size_t i = 0; i < n; i++)
        node[i] = dc_slots_node_of(&c->cl->map, dc_slots_keyslot(ls[i]->key, ls[i]->klen));
    for (int j = 0; j < nodes; j++) {
        int any = 0, done = 0;
        for (size_t i = 0; i < n && !any; i++)
            any = node[i] == j;
        if (!any)
            continue;
        select_node(c, j);
        if (ensure(c) == DC_OK) {
            for (size_t i = 0; i < n && done == 0; i++)
                if (node[i] == j && append_lookup(c, ls[i]) != DC_OK)
                    done = -1;
            while (done == 0)
                if (redisBufferWrite(c->ctx, &done) != REDIS_OK)
                    done = -1;
        } else {
            done = -1;
        }
        if (done < 0) {
            if (c->ctx != NULL)
                command_failed(c, "redis MGET");
            for (size_t i = 0; i < n; i++)
                node[i] = node[i] == j ? -1 : node[i];
        }
    }
    for (size_t i = 0; i < n; i++) {
        void *r = NULL;
        if (node[i] < 0)
            continue;
        select_node(c, node[i]);
        if (c->ctx == NULL || redisGetReply(c->ctx, &r) != REDIS_OK || r == NULL) {
            if (c->ctx != NULL)
                command_failed(c, "redis MGET");
            for (size_t k = i + 1; k < n; k++)
                node[k] = node[k] == node[i] ? -1 : node[k];
            continue;
        }
        dc_breaker_success(DC_DEP_REDIS);
        if (((redisReply *)r)->type == REDIS_REPLY_ERROR &&
            dc_slots_redirect(((redisReply *)r)->str, ((redisReply *)r)->len, &to) == DC_OK) {
            redo[nredo++] = (int)i;
            freeReplyObject(r);
            continue;
        }
        take_lookup(c, ls[i], r, 0);
    }
    /* asked again where the map says, which answers with the redirection again: command() follows it */
    for (size_t k = 0; k < nredo; k++)
        get_one_redirected(c, ls[redo[k]]);
    for (size_t i = 0; i < n; i++) {
        dc_metrics_cache_latency(DC_COP_GET, dc_now_ns() - t0);
        if (ls[i]->rc == DC_UNAVAILABLE)
            dc_metrics_cache_error(DC_COP_GET);
    }
}

/* Up to DC_CACHE_LOOKUPS_MAX lookups of cached types, reset, in one round trip. */
static void get_batch(dc_cache_t *c, dc_cache_lookup_t *const *ls, size_t n)
{
    redisReplyObjectFunctions *saved = NULL;
    size_t                     got = 0;
    int64_t                    t0;

    if (c->cl != NULL) {
        get_batch_cluster(c, ls, n);
        return;
    }
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
        /* NOSCRIPT after SCRIPT FLUSH, OOM under noeviction, READONLY of a demoted primary, ...: */
        /* the next call reconnects (through the sentinels: to the new primary) and reloads */
        fail(c, 0, what, r->str);
        if (demoted(r))
            c->retry_at_ms = dc_now_ms() + relook_ms(c);
        freeReplyObject(r);
        return DC_UNAVAILABLE;
    }
    *out = r;
    return DC_OK;
}

int dc_cache_generation(dc_cache_t *c, const char *org, dc_qtype_t q, char gen[DC_GEN_MAX])
{
    char        genkey[DC_KEY_MAX], ebuf[DC_KEY_MAX];
    int         glen = dc_key_gen(org, q, genkey, sizeof(genkey));
    redisReply *r;
    const char *ekey;
    size_t      elen;

    gen[0] = '\0';
    if (glen < 0 || ensure_key(c, genkey, (size_t)glen) != DC_OK)
        return DC_UNAVAILABLE;
    ekey = epoch_of(c, genkey, (size_t)glen, ebuf, &elen);
    if (eval(c, "redis generation", &r,
             command(c, "EVALSHA %s 2 %b %b", c->gen_sha, ekey, elen, genkey, (size_t)glen)) != DC_OK) {
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

    if (glen < 0 || ensure_key(c, genkey, (size_t)glen) != DC_OK)
        return;
    r = command(c, "UNLINK %b", genkey, (size_t)glen);
    if (r == NULL)
        command_failed(c, "redis UNLINK");
    freeReplyObject(r);
}

int dc_cache_set(dc_cache_t *c, const char *org, dc_qtype_t q, const char *key, size_t klen, const char *gen,
                 const char *etag, const char *val, size_t vlen, int ttl_s)
{
    char        genkey[DC_KEY_MAX], lease[DC_KEY_MAX + 32], ebuf[DC_KEY_MAX];
    int         glen = dc_key_gen(org, q, genkey, sizeof(genkey));
    int         llen = dc_key_lease(key, klen, lease, sizeof(lease));
    redisReply *r;
    int64_t     t0;
    int         rc;
    const char *ekey;
    size_t      elen;

    if (glen < 0 || llen < 0 || ensure_key(c, key, klen) != DC_OK)
        return DC_UNAVAILABLE;
    ekey = epoch_of(c, key, klen, ebuf, &elen);
    t0 = dc_now_ns();
    /* kept past its TTL for as long as it may be served stale (dc_cache.h) */
    rc = eval(c, "redis store", &r,
              command(c, "EVALSHA %s 4 %b %b %b %b %s %b %d %s %s %lld", c->store_sha, ekey, elen, genkey,
                      (size_t)glen, key, klen, lease, (size_t)llen, gen, val, vlen,
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
    char        genkey[DC_KEY_MAX], lease[DC_KEY_MAX + 32], owner[48], ebuf[DC_KEY_MAX];
    int         glen = dc_key_gen(org, q, genkey, sizeof(genkey));
    int         llen = dc_key_lease(key, klen, lease, sizeof(lease));
    redisReply *r;
    long long   state;
    const char *ekey;
    size_t      elen;

    dc_cache_value_release(v);
    *created = 0;
    if (glen < 0 || llen < 0 || ensure_key(c, key, klen) != DC_OK)
        return DC_UNAVAILABLE;
    ekey = epoch_of(c, key, klen, ebuf, &elen);
    snprintf(owner, sizeof(owner), "%ld.%lu", (long)getpid(), ++c->leases);
    if (eval(c, "redis lease", &r,
             command(c, "EVALSHA %s 4 %b %b %b %b %s %d %s %lld", c->lease_sha, ekey, elen, genkey,
                     (size_t)glen, key, klen, lease, (size_t)llen, owner, c->cfg->cache_lease_ms, c->run_id,
                     (long long)time(NULL) - ttl_s)) != DC_OK) {
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

    if (v->lease[0] == '\0' || llen < 0 || ensure_key(c, lease, (size_t)llen) != DC_OK)
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

    /* in a cluster, the keys of one bump share a slot: an organization's generations, or one epoch copy */
    if (ensure_key(c, argv[3], lens[3]) != DC_OK) {
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
    if (dc_redis_sentinel_mode(c->cfg) && !dc_trust_primary_is(c->primary_id)) {
        /* taken by a demoted primary while another process of the host uses the new one: lost */
        disconnect(c);
        dc_metrics_cache_error(DC_COP_INVALIDATE);
        dc_trust_refused("redis took an invalidation on a demoted primary");
        return DC_UNAVAILABLE;
    }
    return DC_OK;
}

void dc_cache_disconnect(dc_cache_t *c)
{
    disconnect(c);
    c->retry_at_ms = 0;
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

/* Whether node i of the map is the primary of at least one slot; *first: its first. */
static int serves(const dc_cache_t *c, int i, unsigned *first)
{
    for (unsigned s = 0; s < DC_SLOTS; s++)
        if (c->cl->map.owner[s] == i + 1) {
            *first = s;
            return 1;
        }
    return 0;
}

/*
 * In a cluster, the map read when it is stale, and every slot served: what
 * an operation on every primary needs. DC_OK or DC_UNAVAILABLE.
 */
static int cluster_whole(dc_cache_t *c)
{
    if (route_slot(c, 0) != DC_OK)
        return DC_UNAVAILABLE;
    for (unsigned s = 0; s < DC_SLOTS; s++)
        if (c->cl->map.owner[s] == 0) {
            fail(c, 1, "redis cluster", "a slot has no primary");
            return DC_UNAVAILABLE;
        }
    return DC_OK;
}

/*
 * Invalidating everything in a cluster: every copy of the epoch moves, one
 * per slot (16384 bumps whatever the keyspace, pipelined per primary). A
 * copy a node no longer serves (MOVED, ASK: its slot is moving) is bumped
 * once more on its own after the others, through the redirection. DC_OK
 * only when every copy moved; a failure is a refused write.
 */
static int invalidate_all_slots(dc_cache_t *c)
{
    static uint16_t redo[DC_SLOTS];
    size_t          nredo = 0;
    int             rc = DC_OK, nodes;
    int64_t         t0 = dc_now_ns();

    if (cluster_whole(c) != DC_OK)
        rc = DC_UNAVAILABLE;
    nodes = c->cl->map.nnodes;
    for (int i = 0; i < nodes && rc == DC_OK; i++) {
        unsigned first, sent = 0;
        if (!serves(c, i, &first))
            continue;
        select_node(c, i);
        if (ensure(c) != DC_OK) {
            rc = DC_UNAVAILABLE;
            break;
        }
        for (unsigned s = first; s < DC_SLOTS; s++) {
            char key[DC_KEY_MAX];
            int  klen;
            if (c->cl->map.owner[s] != i + 1)
                continue;
            klen = dc_key_epoch_tagged(dc_slots_tag(s), key, sizeof(key));
            if (klen < 0 ||
                redisAppendCommand(c->ctx, "EVALSHA %s 1 %b", c->bump_sha, key, (size_t)klen) != REDIS_OK) {
                rc = DC_UNAVAILABLE;
                break;
            }
            sent++;
        }
        for (unsigned s = first, got = 0; got < sent && rc == DC_OK; s++) {
            void         *r = NULL;
            dc_redirect_t to;
            if (c->cl->map.owner[s] != i + 1)
                continue;
            got++;
            if (redisGetReply(c->ctx, &r) != REDIS_OK || r == NULL) {
                command_failed(c, "redis invalidate");
                rc = DC_UNAVAILABLE;
                break;
            }
            if (((redisReply *)r)->type == REDIS_REPLY_ERROR) {
                if (dc_slots_redirect(((redisReply *)r)->str, ((redisReply *)r)->len, &to) == DC_OK)
                    redo[nredo++] = (uint16_t)s;
                else
                    rc = DC_UNAVAILABLE;
            }
            freeReplyObject(r);
        }
        if (rc == DC_OK)
            dc_breaker_success(DC_DEP_REDIS);
        else if (c->ctx != NULL)
            disconnect(c); /* replies may be left unread */
    }
    for (size_t k = 0; k < nredo && rc == DC_OK; k++) {
        char        key[DC_KEY_MAX];
        int         klen = dc_key_epoch_tagged(dc_slots_tag(redo[k]), key, sizeof(key));
        const char *argv[4] = { NULL, NULL, NULL, key };
        size_t      lens[4] = { 0, 0, 0, (size_t)(klen > 0 ? klen : 0) };
        rc = bump(c, 4, argv, lens); /* counts and reports its own failure */
        if (rc != DC_OK)
            return rc;
    }
    dc_metrics_cache_latency(DC_COP_INVALIDATE, dc_now_ns() - t0);
    if (rc != DC_OK) {
        dc_metrics_cache_error(DC_COP_INVALIDATE);
        dc_trust_refused("redis did not take an invalidation");
    }
    return rc;
}

int dc_cache_invalidate_all(dc_cache_t *c)
{
    const char *argv[4] = { NULL, NULL, NULL, c->epoch_key };
    size_t      lens[4] = { 0, 0, 0, c->epoch_len };

    if (c->cl != NULL)
        return invalidate_all_slots(c);
    return bump(c, 4, argv, lens);
}

/* The probe of a cluster: a SET on every primary (each its own copy of the key, in one of its slots). */
static int probe_slots(dc_cache_t *c)
{
    int nodes;

    if (cluster_whole(c) != DC_OK)
        return DC_UNAVAILABLE;
    nodes = c->cl->map.nnodes;
    for (int i = 0; i < nodes; i++) {
        char        key[DC_KEY_MAX];
        unsigned    first;
        int         klen;
        redisReply *r;
        if (!serves(c, i, &first))
            continue;
        klen = dc_key_probe_tagged(dc_slots_tag(first), key, sizeof(key));
        select_node(c, i);
        if (klen < 0 || ensure(c) != DC_OK)
            return DC_UNAVAILABLE;
        r = command(c, "SET %b %lld PX 60000", key, (size_t)klen, (long long)dc_now_ms());
        if (r == NULL) {
            command_failed(c, "redis write probe");
            return DC_UNAVAILABLE;
        }
        klen = r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0;
        freeReplyObject(r);
        if (!klen)
            return DC_UNAVAILABLE;
    }
    return DC_OK;
}

int dc_cache_lsn_raise(dc_cache_t *c, const char *org, uint64_t lsn)
{
    char        key[DC_KEY_MAX], hex[DC_LSN_HEX_LEN + 1];
    int         klen = dc_key_lsn(org, key, sizeof(key));
    redisReply *r;

    if (klen < 0)
        return DC_UNAVAILABLE;
    dc_lsn_hex(lsn, hex);
    if (ensure_key(c, key, (size_t)klen) != DC_OK ||
        eval(c, "redis lsn", &r,
             command(c, "EVALSHA %s 1 %b %s %s", c->lsn_raise_sha, key, (size_t)klen, hex, c->run_id)) !=
            DC_OK) {
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
    /* two commands: the keys live in different slots of a cluster */
    for (int i = 0; i < 2; i++) {
        char        key[DC_KEY_MAX];
        int         klen = dc_key_lsn(who[i], key, sizeof(key));
        redisReply *r;

        if (klen < 0 || ensure_key(c, key, (size_t)klen) != DC_OK)
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

/*
 * Whether the sentinels still name the server c is connected to: the
 * demoted primary of a failover takes writes until Sentinel converts it (some
 * seconds), so a probe it takes proves nothing. DC_OK, also when no sentinel
 * answers (none can fail the primary over then); else the connection is
 * dropped and DC_UNAVAILABLE.
 */
static int still_primary(dc_cache_t *c)
{
    char     host[256];
    int      port;
    dc_err_t err;

    if (dc_redis_master_addr(c->cfg, host, sizeof(host), &port, &err) != DC_OK || c->ctx->tcp.host == NULL ||
        (strcmp(host, c->ctx->tcp.host) == 0 && port == c->ctx->tcp.port))
        return DC_OK;
    dc_log_info("redis.primary", "the sentinels name another primary (%s:%d); connecting to it", host, port);
    disconnect(c);
    c->retry_at_ms = 0;
    return DC_UNAVAILABLE;
}

int dc_cache_probe(dc_cache_t *c)
{
    char        key[32];
    int         klen = dc_key_probe(key, sizeof(key));
    redisReply *r;
    int         rc;

    if (c->cl != NULL)
        return probe_slots(c);
    if (klen < 0 || ensure(c) != DC_OK)
        return DC_UNAVAILABLE;
    r = command(c, "SET %b %lld PX 60000", key, (size_t)klen, (long long)dc_now_ms());
    if (r == NULL) {
        command_failed(c, "redis write probe"); /* hung, paused or gone */
        return DC_UNAVAILABLE;
    }
    /* a refusal (OOM) is an answer: the connection is fine; READONLY is a demoted primary's */
    rc = r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0 ? DC_OK : DC_UNAVAILABLE;
    if (demoted(r)) {
        fail(c, 0, "redis write probe", r->str);
        c->retry_at_ms = dc_now_ms() + relook_ms(c);
    }
    freeReplyObject(r);
    if (rc == DC_OK && dc_redis_sentinel_mode(c->cfg))
        rc = still_primary(c);
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

static redisReply *unlink_each(dc_cache_t *c, size_t n, const char **keys, const size_t *lens);

/* dc_cache_unlink_pattern on the current Redis (in a cluster: node). */
static int unlink_here(dc_cache_t *c, const char *pattern, size_t *deleted)
{
    char cursor[32] = "0";

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
                u = c->cl == NULL ? redisCommandArgv(c->ctx, (int)keys->elements + 1, argv, lens)
                                  : unlink_each(c, keys->elements, argv + 1, lens + 1);
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

/* dc_cache_count_keys on the current Redis (in a cluster: node), adding to *n and scanned. */
static int count_here(dc_cache_t *c, const char *pattern, long max_scan, long *n, long scanned, int *complete)
{
    char cursor[32] = "0";

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

/* In a cluster, the primary pos->node or the next one that serves slots, made the current node. */
static int scan_node(dc_cache_t *c, dc_cache_scan_t *pos)
{
    int      nodes;
    unsigned first;

    if (cluster_whole(c) != DC_OK)
        return DC_UNAVAILABLE;
    nodes = c->cl->map.nnodes;
    for (int k = 0; k < nodes; k++) {
        int i = (pos->node + k) % nodes;
        if (!serves(c, i, &first))
            continue;
        if (i != pos->node) {
            pos->node = i;
            pos->cursor[0] = '\0';
        }
        select_node(c, i);
        return DC_OK;
    }
    return DC_UNAVAILABLE;
}

int dc_cache_scan_step(dc_cache_t *c, dc_cache_scan_t *pos, const char *pattern, int count,
                       char (*keys)[DC_KEY_MAX], size_t *lens, size_t max, size_t *n)
{
    redisReply *r, *list;

    *n = 0;
    if ((c->cl != NULL && scan_node(c, pos) != DC_OK) || ensure(c) != DC_OK)
        return DC_UNAVAILABLE;
    if (strcmp(pos->run_id, c->run_id) != 0) {
        snprintf(pos->run_id, sizeof(pos->run_id), "%s", c->run_id);
        pos->cursor[0] = '\0';
    }
    r = redisCommand(c->ctx, "SCAN %s MATCH %s COUNT %d", pos->cursor[0] ? pos->cursor : "0", pattern, count);
    if (r == NULL) {
        command_failed(c, "redis SCAN");
        return DC_UNAVAILABLE;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[0]->len >= sizeof(pos->cursor) || r->element[1]->type != REDIS_REPLY_ARRAY) {
        fail(c, 1, "redis SCAN", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        freeReplyObject(r);
        return DC_UNAVAILABLE;
    }
    memcpy(pos->cursor, r->element[0]->str, r->element[0]->len + 1);
    if (strcmp(pos->cursor, "0") == 0 && c->cl != NULL)
        pos->node = (pos->node + 1) % c->cl->map.nnodes; /* this node done: the next one's turn */
    list = r->element[1];
    for (size_t i = 0; i < list->elements && *n < max; i++) {
        const redisReply *k = list->element[i];
        if (k->type != REDIS_REPLY_STRING || k->len >= DC_KEY_MAX)
            continue;
        memcpy(keys[*n], k->str, k->len);
        keys[*n][k->len] = '\0';
        lens[(*n)++] = k->len;
    }
    freeReplyObject(r);
    return DC_OK;
}

int dc_cache_pttl(dc_cache_t *c, const char *key, size_t klen, int64_t *ms)
{
    redisReply *r;
    int         rc;

    *ms = -1;
    if (ensure_key(c, key, klen) != DC_OK)
        return DC_UNAVAILABLE;
    r = command(c, "PTTL %b", key, klen);
    if (r == NULL) {
        command_failed(c, "redis PTTL");
        return DC_UNAVAILABLE;
    }
    if (r->type != REDIS_REPLY_INTEGER) {
        freeReplyObject(r);
        return DC_UNAVAILABLE;
    }
    rc = r->integer >= 0 ? DC_OK : DC_DECLINED;
    if (rc == DC_OK)
        *ms = r->integer;
    freeReplyObject(r);
    return rc;
}

/* INFO memory and DBSIZE of the current Redis (in a cluster: node) into *used_bytes and *keys. */
static int memory_here(dc_cache_t *c, long long *used_bytes, long long *keys)
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

/*
 * In a cluster, UNLINK of n keys that one SCAN of a node returned, one
 * command each (keys of several slots in one command are refused), sent
 * together. A reply whose integer is the number unlinked, or NULL when the
 * connection failed.
 */
static redisReply *unlink_each(dc_cache_t *c, size_t n, const char **keys, const size_t *lens)
{
    redisReply *sum = calloc(1, sizeof(*sum));

    if (sum == NULL)
        return NULL;
    sum->type = REDIS_REPLY_INTEGER;
    for (size_t i = 0; i < n; i++)
        if (redisAppendCommand(c->ctx, "UNLINK %b", keys[i], lens[i]) != REDIS_OK) {
            free(sum);
            return NULL;
        }
    for (size_t i = 0; i < n; i++) {
        void *r = NULL;
        if (redisGetReply(c->ctx, &r) != REDIS_OK || r == NULL) {
            free(sum);
            return NULL;
        }
        if (((redisReply *)r)->type == REDIS_REPLY_INTEGER)
            sum->integer += ((redisReply *)r)->integer;
        freeReplyObject(r);
    }
    return sum;
}

int dc_cache_unlink_pattern(dc_cache_t *c, const char *pattern, size_t *deleted)
{
    int nodes;

    *deleted = 0;
    if (c->cl == NULL)
        return unlink_here(c, pattern, deleted);
    /* every primary's keys */
    if (cluster_whole(c) != DC_OK)
        return DC_UNAVAILABLE;
    nodes = c->cl->map.nnodes;
    for (int i = 0; i < nodes; i++) {
        unsigned first;
        if (!serves(c, i, &first))
            continue;
        select_node(c, i);
        if (unlink_here(c, pattern, deleted) != DC_OK)
            return DC_UNAVAILABLE;
    }
    return DC_OK;
}

int dc_cache_count_keys(dc_cache_t *c, const char *pattern, long max_scan, long *n, int *complete)
{
    int nodes;

    *n = 0;
    *complete = 1;
    if (c->cl == NULL)
        return count_here(c, pattern, max_scan, n, 0, complete);
    if (cluster_whole(c) != DC_OK)
        return DC_UNAVAILABLE;
    nodes = c->cl->map.nnodes;
    for (int i = 0; i < nodes && *complete; i++) {
        unsigned first;
        if (!serves(c, i, &first))
            continue;
        select_node(c, i);
        /* max_scan bounds the keys looked at on each node */
        if (count_here(c, pattern, max_scan, n, 0, complete) != DC_OK)
            return DC_UNAVAILABLE;
    }
    return DC_OK;
}

int dc_cache_memory(dc_cache_t *c, long long *used_bytes, long long *keys)
{
    long long used = 0, nkeys = 0;
    int       nodes;

    if (c->cl == NULL)
        return memory_here(c, used_bytes, keys);
    *used_bytes = *keys = -1;
    if (cluster_whole(c) != DC_OK)
        return DC_UNAVAILABLE;
    nodes = c->cl->map.nnodes;
    for (int i = 0; i < nodes; i++) {
        unsigned  first;
        long long u, k;
        if (!serves(c, i, &first))
            continue;
        select_node(c, i);
        if (memory_here(c, &u, &k) != DC_OK)
            return DC_UNAVAILABLE;
        used += u > 0 ? u : 0;
        nkeys += k > 0 ? k : 0;
    }
    *used_bytes = used;
    *keys = nkeys;
    return DC_OK;
}
