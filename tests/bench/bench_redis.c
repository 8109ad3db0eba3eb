/*
 * bench_redis: the benchmark's baseline (c), the floor of a cache hit in
 * dashcache's shape (nginx -> FastCGI worker -> one Redis GET -> answer).
 *
 * A minimal libfcgi responder that, for every request, does exactly one GET of
 * a fixed key over one persistent hiredis connection (opened after fork, with
 * the same connect and command timeouts as dashcache's defaults) and answers
 * the value with dashcache's hit head. A missing key is a 404 and Redis
 * trouble a 503, so that the benchmark counts them as failures instead of
 * measuring them. It serves the listening socket it inherits on fd 0, as
 * started by `spawn-fcgi -F N`. SIGTERM ends it.
 *
 * usage: bench_redis [-g] HOST PORT KEY
 *   HOST starting with '/' is the path of Redis's unix socket (PORT is ignored)
 *   -g  the value is dashcache's "<token>\n<etag>\n<stored>\n<body>": answer
 *       what follows the third newline (dashcache's hit compares the token
 *       too, but fetches it in the same round trip; the floor stays one GET)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <fcgiapp.h>
#include <hiredis.h>

static const struct timeval connect_timeout = { 0, 100 * 1000 };
static const struct timeval command_timeout = { 0, 100 * 1000 };

static redisContext *connect_redis(const char *host, int port)
{
    redisContext *c = host[0] == '/' ? redisConnectUnixWithTimeout(host, connect_timeout)
                                     : redisConnectWithTimeout(host, port, connect_timeout);

    if (c == NULL)
        return NULL;
    if (c->err || redisSetTimeout(c, command_timeout) != REDIS_OK) {
        fprintf(stderr, "bench_redis: connect to %s:%d: %s\n", host, port, c->errstr);
        redisFree(c);
        return NULL;
    }
    return c;
}

static void answer(FCGX_Request *req, int status, const char *reason, const char *body, size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "Status: %d %s\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n"
                     "X-Cache: HIT\r\n"
                     "\r\n",
                     status, reason, len);

    if (n > 0 && (size_t)n < sizeof(head) && FCGX_PutStr(head, n, req->out) == n && len > 0)
        FCGX_PutStr(body, (int)len, req->out);
}

int main(int argc, char **argv)
{
    static const char missing[] = "{\"error\":{\"code\":\"not_cached\",\"message\":\"key missing\"}}";
    static const char down[] = "{\"error\":{\"code\":\"redis_unavailable\",\"message\":\"redis failed\"}}";
    FCGX_Request req;
    redisContext *c = NULL;
    const char *host, *key;
    size_t klen;
    int port, tagged = 0;

    if (argc == 5 && strcmp(argv[1], "-g") == 0) {
        tagged = 1;
        argv++;
        argc--;
    }
    if (argc != 4) {
        fprintf(stderr, "usage: bench_redis [-g] HOST PORT KEY\n");
        return 2;
    }
    host = argv[1];
    port = atoi(argv[2]);
    key = argv[3];
    klen = strlen(key);

    if (FCGX_Init() != 0 || FCGX_InitRequest(&req, 0, 0) != 0) {
        fprintf(stderr, "bench_redis: FCGX_Init() failed\n");
        return 1;
    }
    while (FCGX_Accept_r(&req) >= 0) {
        redisReply *r = NULL;

        if (c == NULL)
            c = connect_redis(host, port);
        if (c != NULL)
            r = redisCommand(c, "GET %b", key, klen);
        if (r == NULL) {
            /* hiredis: a context that returned an error cannot be reused */
            if (c != NULL)
                fprintf(stderr, "bench_redis: GET: %s\n", c->errstr);
            redisFree(c);
            c = NULL;
            answer(&req, 503, "Service Unavailable", down, sizeof(down) - 1);
        } else if (r->type == REDIS_REPLY_STRING && !tagged) {
            answer(&req, 200, "OK", r->str, r->len);
        } else if (r->type == REDIS_REPLY_STRING) {
            const char *nl = memchr(r->str, '\n', r->len);
            for (int line = 1; line < 3 && nl != NULL; line++)
                nl = memchr(nl + 1, '\n', r->len - (size_t)(nl + 1 - r->str));
            if (nl != NULL)
                answer(&req, 200, "OK", nl + 1, r->len - (size_t)(nl + 1 - r->str));
            else
                answer(&req, 404, "Not Found", missing, sizeof(missing) - 1);
        } else {
            answer(&req, 404, "Not Found", missing, sizeof(missing) - 1);
        }
        freeReplyObject(r);
        FCGX_Finish_r(&req);
    }
    FCGX_Free(&req, 1);
    redisFree(c);
    return 0;
}
