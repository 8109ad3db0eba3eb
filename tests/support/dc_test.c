/* Integration test helpers. */
#include "dc_redis.h"
#include "dc_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis.h>
#include <json-c/json.h>
#include <libpq-fe.h>

#include "dc_auth.h"
#include "dc_key.h"
#include "dc_router.h"

static redisContext *redis;
static PGconn       *pg;
static pid_t         pg_pid;

void dc_test_org_path(char *buf, size_t cap, const char *org, const char *suffix)
{
    snprintf(buf, cap, "/api/dashboard/orgs/%s/%s", org, suffix);
}

void dc_test_key(char *buf, size_t cap, const char *org, const char *suffix, const char *query)
{
    char         path[256];
    dc_request_t req;
    dc_error_t   err;

    dc_test_org_path(path, sizeof(path), org, suffix);
    if (dc_router_route("GET", path, query, &req, &err) != DC_OK)
        fail_msg("GET %s?%s does not route: %d %s", path, query != NULL ? query : "", err.status,
                 err.message);
    if (dc_key_build(&req, buf, cap) <= 0)
        fail_msg("GET %s?%s has no cache key", path, query != NULL ? query : "");
}

void dc_test_gen_key(char *buf, size_t cap, const char *org, dc_qtype_t q)
{
    if (dc_key_gen(org, q, buf, cap) <= 0)
        fail_msg("no generation key of %s for %s", dc_qtype_name(q), org);
}

void dc_test_key_glob(char *buf, size_t cap, const char *key, const char *org, int keep, int tail)
{
    const char *id = strstr(key, org), *seg, *cut = key, *colon, *end;

    /* org:<org>, or org:{<org>} (the hash tag of dc_key.h) */
    if (id == NULL || id - key < 3 || !(id[-1] == ':' || (id[-1] == '{' && id[-2] == ':')))
        fail_msg("key %s does not carry org %s as a segment", key, org);
    colon = id[-1] == '{' ? id - 2 : id - 1;
    end = id + strlen(org) + (id[-1] == '{' && id[strlen(org)] == '}');
    for (seg = colon; seg > key && seg[-1] != ':'; seg--)
        ;
    for (int i = 0; i < keep; i++) {
        cut = strchr(cut, ':');
        if (cut == NULL || cut >= seg)
            fail_msg("key %s has fewer than %d segments in front of its org", key, keep);
        cut++;
    }
    if (cut >= seg)
        fail_msg("key %s keeps no segment for the * in front of its org", key);
    if (snprintf(buf, cap, "%.*s*:%.*s%s", (int)(cut - key), key, (int)(end - seg), seg, tail ? "*" : "") >=
        (int)cap)
        fail_msg("glob of %s does not fit in %zu bytes", key, cap);
}

void dc_test_org_keys(char *buf, size_t cap, const char *org)
{
    char key[DC_KEY_MAX];

    dc_test_key(key, sizeof(key), org, "stats", NULL);
    dc_test_key_glob(buf, cap, key, org, 1, 1);
}

long long dc_test_json_int(const char *body, const char *key)
{
    json_object *o = body != NULL ? json_tokener_parse(body) : NULL;
    json_object *v = NULL;
    long long    n;

    if (o == NULL || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v) ||
        !json_object_is_type(v, json_type_int)) {
        json_object_put(o);
        fail_msg("no integer \"%s\" in %s", key, body != NULL ? body : "(null)");
    }
    n = json_object_get_int64(v);
    json_object_put(o);
    return n;
}

void dc_test_config(dc_config_t *cfg)
{
    if (dc_config_load(cfg) != DC_OK)
        fail_msg("configuration: %s", cfg->err.str);
}

static redisContext *rc(void)
{
    dc_config_t cfg;
    dc_err_t    err;

    if (redis != NULL)
        return redis;
    dc_test_config(&cfg);
    /* the application's own connect path: AUTH and SELECT as REDIS_URL says */
    if (dc_redis_connect(&cfg, &redis, &err) != DC_OK)
        fail_msg("test redis connect %s:%d failed: %s", cfg.redis.redis_host, cfg.redis.redis_port, err.str);
    return redis;
}

static redisReply *vcmd(const char *fmt, va_list ap)
{
    redisReply *r = redisvCommand(rc(), fmt, ap);
    if (r == NULL)
        fail_msg("test redis command failed: %s", redis->errstr);
    return r;
}

long long dc_test_redis_int(const char *fmt, ...)
{
    va_list     ap;
    redisReply *r;
    long long   v;

    va_start(ap, fmt);
    r = vcmd(fmt, ap);
    va_end(ap);
    v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

char *dc_test_redis_str(const char *fmt, ...)
{
    va_list     ap;
    redisReply *r;
    char       *s = NULL;

    va_start(ap, fmt);
    r = vcmd(fmt, ap);
    va_end(ap);
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
        s = strndup(r->str, r->len);
    freeReplyObject(r);
    return s;
}

void dc_test_redis_run_id(char out[DC_RUN_ID_MAX])
{
    char       *info = dc_test_redis_str("INFO server");
    const char *p = info ? strstr(info, "run_id:") : NULL;
    size_t      n;

    if (p == NULL)
        fail_msg("INFO server has no run_id");
    p += 7;
    n = strcspn(p, "\r\n");
    if (n == 0 || n >= DC_RUN_ID_MAX)
        fail_msg("run_id of %zu characters", n);
    memcpy(out, p, n);
    out[n] = '\0';
    free(info);
}

static size_t scan(const char *pattern, int del)
{
    char   cursor[32] = "0";
    size_t n = 0;

    do {
        redisReply *r = redisCommand(rc(), "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2)
            fail_msg("SCAN failed");
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            n++;
            if (del)
                freeReplyObject(redisCommand(rc(), "DEL %s", r->element[1]->element[i]->str));
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return n;
}

size_t dc_test_redis_count(const char *pattern)
{
    return scan(pattern, 0);
}

void dc_test_redis_del_pattern(const char *pattern)
{
    scan(pattern, 1);
}

char *dc_test_wait_message(const char *channel, int ready_fd, int timeout_ms)
{
    dc_config_t    cfg;
    dc_err_t       err;
    redisContext  *c;
    redisReply    *r;
    struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
    char          *msg = NULL;
    void          *reply = NULL;

    dc_test_config(&cfg);
    if (dc_redis_connect(&cfg, &c, &err) != DC_OK)
        return NULL;
    r = redisCommand(c, "SUBSCRIBE %s", channel);
    freeReplyObject(r);
    if (write(ready_fd, "r", 1) != 1) {
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (redisGetReply(c, &reply) == REDIS_OK) {
        r = reply;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 && r->element[2]->type == REDIS_REPLY_STRING)
            msg = strndup(r->element[2]->str, r->element[2]->len);
        freeReplyObject(r);
    }
    redisFree(c);
    return msg;
}

char *dc_test_sql(const char *sql, int n, const char *const *params)
{
    PGresult *r;
    char     *v = NULL;

    /*
     * a forked child must not speak on its parent's connection: it opens its
     * own (the inherited one is left alone: PQfinish would end the parent's)
     */
    if (pg != NULL && pg_pid != getpid())
        pg = NULL;
    if (pg == NULL) {
        dc_config_t cfg;
        dc_test_config(&cfg);
        pg_pid = getpid();
        pg = PQconnectdb(cfg.database_url);
        if (PQstatus(pg) != CONNECTION_OK)
            fail_msg("test database connect failed: %s", PQerrorMessage(pg));
    }
    r = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("test query failed: %s", PQresultErrorMessage(r));
    if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
        v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

static void copy_id(char *v, char out[37])
{
    if (v == NULL || strlen(v) != 36)
        fail_msg("expected an id, got %s", v ? v : "nothing");
    memcpy(out, v, 37);
    free(v);
}

void dc_test_org(int i, char out[37])
{
    char        off[16];
    const char *p[] = { off };
    snprintf(off, sizeof(off), "%d", i);
    copy_id(dc_test_sql("SELECT id::text FROM organizations ORDER BY name OFFSET $1::int LIMIT 1", 1, p),
            out);
}

void dc_test_unit_of(const char *org, char out[37])
{
    const char *p[] = { org };
    copy_id(dc_test_sql("SELECT id::text FROM units WHERE org_id = $1 ORDER BY name LIMIT 1", 1, p), out);
}

void dc_test_device_of(const char *unit, char out[37])
{
    const char *p[] = { unit };
    char *v = dc_test_sql("SELECT id::text FROM devices WHERE unit_id = $1 ORDER BY serial LIMIT 1", 1, p);

    if (v == NULL)
        fail_msg("unit %s has no device", unit);
    memcpy(out, v, 37);
    free(v);
}

static int bound_socket(int *port)
{
    struct sockaddr_in sa;
    socklen_t          len = sizeof(sa);
    int                fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        fail_msg("cannot bind a loopback socket");
    *port = ntohs(sa.sin_port);
    return fd;
}

int dc_test_closed_port(void)
{
    int port, fd = bound_socket(&port);
    close(fd);
    return port;
}

int dc_test_silent_listener(int *port)
{
    int fd = bound_socket(port);
    if (listen(fd, 64) != 0)
        fail_msg("listen failed");
    return fd;
}

int dc_test_accept_all(int fd)
{
    int n = 0;

    for (;;) {
        struct pollfd p = { fd, POLLIN, 0 };
        int           c;
        if (poll(&p, 1, 0) <= 0)
            return n;
        c = accept(fd, NULL, NULL);
        if (c < 0)
            return n;
        close(c);
        n++;
    }
}

char *dc_test_bearer(const char *sub, const char *orgs, const char *scopes, long ttl_s)
{
    dc_config_t      cfg;
    dc_auth_t       *a;
    dc_err_t         err;
    char             ids[DC_AUTH_ORGS_MAX][DC_UUID_LEN + 1], *token, *out;
    const char      *ptrs[DC_AUTH_ORGS_MAX];
    dc_auth_claims_t c = { .sub = sub };

    dc_test_config(&cfg);
    cfg.auth.mode = DC_AUTH_JWT;
    a = dc_auth_new(&cfg.auth, &err);
    if (a == NULL)
        fail_msg("test token keys: %s", err.str);
    while (*orgs != '\0' && c.norgs < DC_AUTH_ORGS_MAX) {
        size_t n = strcspn(orgs, ",");
        snprintf(ids[c.norgs], sizeof(ids[0]), "%.*s", (int)n, orgs);
        ptrs[c.norgs] = ids[c.norgs];
        c.norgs++;
        orgs += n + (orgs[n] == ',');
    }
    c.orgs = ptrs;
    if (dc_auth_parse_scopes(scopes, 1, &c.scopes) != DC_OK)
        fail_msg("test token: bad scopes %s", scopes);
    c.iat = (int64_t)time(NULL);
    c.exp = c.iat + ttl_s;
    if (ttl_s < 0)
        c.iat = c.exp - 60;
    if (dc_auth_mint(a, &c, &token, &err) != DC_OK)
        fail_msg("test token: %s", err.str);
    dc_auth_free(a);
    out = malloc(strlen(token) + 8);
    if (out == NULL)
        fail_msg("out of memory");
    sprintf(out, "Bearer %s", token);
    free(token);
    return out;
}

const char *dc_test_default_auth(void)
{
    static char *auth;

    if (auth == NULL)
        auth = dc_test_bearer("integration-test", "*", "read,write,ingest,refresh,admin", 3600);
    return auth;
}

static int auto_apply = 1;

void dc_test_outbox_auto(int on)
{
    auto_apply = on;
}

void dc_test_outbox_applied(void)
{
    free(dc_test_sql("WITH u AS (UPDATE cache_outbox SET processed_at = clock_timestamp()"
                     " WHERE processed_at IS NULL RETURNING 1) SELECT count(*) FROM u",
                     0, NULL));
}

/*
 * The integration binaries run without the invalidator: the rows the seed
 * left, and those of each API write (whose worker invalidated it already),
 * are marked applied as it would, so that hits are served (dc_trust holds
 * them back while rows are left pending). Rows of plain SQL writes stay
 * pending for the tests that drain them; dc_test_outbox_auto(0) keeps
 * every row pending, for the tests of the outbox itself.
 */
static void call(dc_app_t *app, const dc_input_t *in, dc_test_resp_t *r)
{
    static int    seeded;
    dc_response_t resp;
    int64_t       t0;

    if (!seeded && auto_apply) {
        dc_test_outbox_applied();
        seeded = 1;
    }
    t0 = dc_now_us();
    dc_app_handle(app, in, &resp);
    r->ms = (double)(dc_now_us() - t0) / 1000.0;
    r->status = resp.status;
    snprintf(r->x_cache, sizeof(r->x_cache), "%s", resp.x_cache ? resp.x_cache : "");
    snprintf(r->challenge, sizeof(r->challenge), "%s", resp.challenge ? resp.challenge : "");
    snprintf(r->etag, sizeof(r->etag), "%s", resp.etag ? resp.etag : "");
    r->retry_after = resp.retry_after;
    r->age = resp.with_age ? resp.age_s : -1;
    r->body = strndup(resp.body ? resp.body : "", resp.body_len);
    r->body_len = resp.body_len;
    dc_app_done(app);
    if (auto_apply && strcmp(in->method, "POST") == 0)
        dc_test_outbox_applied();
}

void dc_test_call(dc_app_t *app, const dc_input_t *in, dc_test_resp_t *r)
{
    call(app, in, r);
}

void dc_test_get_as(dc_app_t *app, const char *auth, const char *path, const char *query, dc_test_resp_t *r)
{
    dc_input_t in = { .method = "GET", .path = path, .query = query, .authorization = auth };
    call(app, &in, r);
}

void dc_test_get_if(dc_app_t *app, const char *path, const char *query, const char *if_none_match,
                    dc_test_resp_t *r)
{
    dc_input_t in = {
        .method = "GET",
        .path = path,
        .query = query,
        .authorization = dc_test_default_auth(),
        .if_none_match = if_none_match,
    };
    call(app, &in, r);
}

void dc_test_post_as(dc_app_t *app, const char *auth, const char *path, const char *json, dc_test_resp_t *r)
{
    dc_input_t in = { .method = "POST",
                      .path = path,
                      .content_type = "application/json",
                      .body = json,
                      .body_len = json ? strlen(json) : 0,
                      .authorization = auth };
    call(app, &in, r);
}

void dc_test_get(dc_app_t *app, const char *path, const char *query, dc_test_resp_t *r)
{
    dc_test_get_as(app, dc_test_default_auth(), path, query, r);
}

void dc_test_post(dc_app_t *app, const char *path, const char *json, dc_test_resp_t *r)
{
    dc_test_post_as(app, dc_test_default_auth(), path, json, r);
}

void dc_test_resp_free(dc_test_resp_t *r)
{
    free(r->body);
    r->body = NULL;
}
