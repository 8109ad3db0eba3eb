/*
 * bench_const: the benchmark's baseline (b), the cost of the FastCGI hop alone.
 *
 * A minimal libfcgi responder that answers every request with the same body
 * and the same response head as dashcache's cache hit, read once from a file at
 * start-up. It serves the listening socket it inherits on fd 0, as started by
 * `spawn-fcgi -F N`, one request at a time with FCGX_Accept_r(). SIGTERM ends it.
 *
 * usage: bench_const BODY_FILE
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcgiapp.h>

#define BODY_MAX (1024 * 1024)

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n;

    if (f == NULL)
        return NULL;
    buf = malloc(BODY_MAX);
    if (buf != NULL) {
        n = fread(buf, 1, BODY_MAX, f);
        if (ferror(f) || n == BODY_MAX) {
            free(buf);
            buf = NULL;
        } else {
            *len = n;
        }
    }
    fclose(f);
    return buf;
}

int main(int argc, char **argv)
{
    FCGX_Request req;
    char head[256];
    char *body;
    size_t body_len = 0;
    int head_len;

    if (argc != 2) {
        fprintf(stderr, "usage: %s BODY_FILE\n", argv[0]);
        return 2;
    }
    body = read_file(argv[1], &body_len);
    if (body == NULL) {
        fprintf(stderr, "bench_const: cannot read %s (or it is larger than %d bytes)\n", argv[1],
                BODY_MAX);
        return 1;
    }
    /* The same head as dashcache's hit, rendered once: nothing varies. */
    head_len = snprintf(head, sizeof(head),
                        "Status: 200 OK\r\n"
                        "Content-Type: application/json\r\n"
                        "Content-Length: %zu\r\n"
                        "Cache-Control: no-store\r\n"
                        "X-Cache: HIT\r\n"
                        "\r\n",
                        body_len);
    if (head_len < 0 || (size_t)head_len >= sizeof(head))
        return 1;

    if (FCGX_Init() != 0 || FCGX_InitRequest(&req, 0, 0) != 0) {
        fprintf(stderr, "bench_const: FCGX_Init() failed\n");
        return 1;
    }
    while (FCGX_Accept_r(&req) >= 0) {
        FCGX_PutStr(head, head_len, req.out);
        FCGX_PutStr(body, (int)body_len, req.out);
        FCGX_Finish_r(&req);
    }
    FCGX_Free(&req, 1);
    free(body);
    return 0;
}
