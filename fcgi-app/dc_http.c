/* HTTP/1.0 GETs for dashcachectl (dc_http.h). */
#include "dc_http.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TICK_MS 200

int dc_http_target(const char *url, dc_http_target_t *t, dc_err_t *err)
{
    const char *p, *slash, *colon;
    size_t      n;

    memset(t, 0, sizeof(*t));
    if (strncmp(url, "http://", 7) != 0)
        return dc_err_set(err, DC_EINVAL, "must start with http:// (got \"%.64s\")", url);
    p = url + 7;
    slash = strchr(p, '/');
    n = slash ? (size_t)(slash - p) : strlen(p);
    colon = memchr(p, ':', n);
    if (colon != NULL) {
        size_t pn = n - (size_t)(colon - p) - 1;
        char  *end;
        long   port;
        if (pn == 0 || pn >= sizeof(t->port))
            return dc_err_set(err, DC_EINVAL, "port must be an integer between 1 and 65535");
        memcpy(t->port, colon + 1, pn);
        port = strtol(t->port, &end, 10);
        if (*end != '\0' || port < 1 || port > 65535)
            return dc_err_set(err, DC_EINVAL, "port must be an integer between 1 and 65535 (got \"%s\")",
                              t->port);
        n = (size_t)(colon - p);
    } else {
        memcpy(t->port, "80", 3);
    }
    if (n == 0 || n >= sizeof(t->host))
        return dc_err_set(err, DC_EINVAL, "needs a host (http://127.0.0.1:8080)");
    memcpy(t->host, p, n);
    if (slash != NULL) {
        size_t len = strlen(slash);
        while (len > 0 && slash[len - 1] == '/')
            len--;
        if (len >= sizeof(t->prefix))
            return dc_err_set(err, DC_EINVAL, "path too long");
        memcpy(t->prefix, slash, len);
    }
    return DC_OK;
}

/* One request: its socket, what is left to send, what came back. */
typedef struct {
    int      fd; /* -1: not started or ended */
    size_t   i;  /* its index in the caller's paths */
    char     req[1024];
    size_t   reqlen, sent;
    dc_buf_t resp;
    int64_t  deadline_ms;
} conn_t;

static int start(conn_t *c, const struct addrinfo *ai, const dc_http_target_t *t, const char *path,
                 const char *auth, int timeout_ms, dc_err_t *err)
{
    int n;

    dc_buf_reset(&c->resp);
    c->sent = 0;
    c->deadline_ms = dc_now_ms() + timeout_ms;
    n = snprintf(
        c->req, sizeof(c->req),
        "GET %s%s HTTP/1.0\r\nHost: %s:%s\r\nUser-Agent: dashcachectl\r\n%s%s%sConnection: close\r\n\r\n",
        t->prefix, path, t->host, t->port, auth ? "Authorization: " : "", auth ? auth : "",
        auth ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof(c->req))
        return dc_err_set(err, DC_EINVAL, "request too long");
    c->reqlen = (size_t)n;
    c->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (c->fd < 0)
        return dc_err_set(err, DC_UNAVAILABLE, "socket() failed: %s", strerror(errno));
    if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
        int e = errno;
        close(c->fd);
        c->fd = -1;
        return dc_err_set(err, DC_UNAVAILABLE, "cannot connect to %s:%s: %s", t->host, t->port, strerror(e));
    }
    return DC_OK;
}

/* The status of a complete answer, or 0. */
static int status_of(const dc_buf_t *b)
{
    int st = 0;

    if (b->len < 12 || strncmp(b->data, "HTTP/1.", 7) != 0 || sscanf(b->data + 9, "%3d", &st) != 1)
        return 0;
    return st;
}

/* Progress on c after poll said revents. 1: ended (*status, err), 0: not yet. */
static int step(conn_t *c, short revents, int *status, dc_err_t *err)
{
    if (c->sent < c->reqlen && (revents & (POLLOUT | POLLERR | POLLHUP))) {
        ssize_t w = send(c->fd, c->req + c->sent, c->reqlen - c->sent, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN) {
            *status = 0;
            dc_err_set(err, DC_UNAVAILABLE, "cannot send: %s", strerror(errno));
            return 1;
        }
        if (w > 0)
            c->sent += (size_t)w;
        return 0;
    }
    if (revents & (POLLIN | POLLHUP | POLLERR)) {
        ssize_t r;
        if (dc_buf_reserve(&c->resp, 4096) != DC_OK) {
            *status = 0;
            dc_err_set(err, DC_ENOMEM, "out of memory");
            return 1;
        }
        r = recv(c->fd, c->resp.data + c->resp.len, c->resp.cap - c->resp.len - 1, 0);
        if (r > 0) {
            c->resp.len += (size_t)r;
            c->resp.data[c->resp.len] = '\0';
            return 0;
        }
        if (r < 0 && errno == EAGAIN)
            return 0;
        *status = status_of(&c->resp);
        if (*status == 0)
            dc_err_set(err, DC_UNAVAILABLE, "%s", r < 0 ? strerror(errno) : "no HTTP answer");
        return 1;
    }
    return 0;
}

static void finish(conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static struct addrinfo *resolve(const dc_http_target_t *t, dc_err_t *err)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
    int             rc = getaddrinfo(t->host, t->port, &hints, &ai);

    if (rc != 0) {
        dc_err_set(err, DC_UNAVAILABLE, "cannot resolve %s: %s", t->host, gai_strerror(rc));
        return NULL;
    }
    return ai;
}

int dc_http_get(const dc_http_target_t *t, const char *path, const char *auth, int timeout_ms, dc_buf_t *body,
                int *status, dc_err_t *err)
{
    struct addrinfo *ai = resolve(t, err);
    conn_t           c = { .fd = -1, .resp = DC_BUF_INIT };
    int              rc;

    *status = 0;
    dc_buf_reset(body);
    if (ai == NULL)
        return DC_UNAVAILABLE;
    rc = start(&c, ai, t, path, auth, timeout_ms, err);
    freeaddrinfo(ai);
    while (rc == DC_OK) {
        struct pollfd pfd = { .fd = c.fd, .events = c.sent < c.reqlen ? POLLOUT : POLLIN };
        int64_t       left = c.deadline_ms - dc_now_ms();
        if (left <= 0) {
            rc = dc_err_set(err, DC_UNAVAILABLE, "no answer from %s:%s within %d ms", t->host, t->port,
                            timeout_ms);
            break;
        }
        if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR) {
            rc = dc_err_set(err, DC_UNAVAILABLE, "poll() failed: %s", strerror(errno));
            break;
        }
        if (step(&c, pfd.revents, status, err)) {
            rc = *status > 0 ? DC_OK : DC_UNAVAILABLE;
            break;
        }
    }
    finish(&c);
    if (rc == DC_OK) {
        const char *hdr_end = strstr(c.resp.data, "\r\n\r\n");
        const char *b = hdr_end ? hdr_end + 4 : c.resp.data + c.resp.len;
        if (dc_buf_append(body, b, (size_t)(c.resp.data + c.resp.len - b)) != DC_OK)
            rc = dc_err_set(err, DC_ENOMEM, "out of memory");
    }
    dc_buf_free(&c.resp);
    return rc;
}

size_t dc_http_get_many(const dc_http_target_t *t, const char *const *paths, size_t n, const char *auth,
                        int k, int timeout_ms, dc_http_done_fn done, void (*tick)(void *arg), void *arg)
{
    struct addrinfo *ai;
    conn_t          *cs;
    struct pollfd   *pfds;
    size_t           next = 0, ended = 0;
    int              stop = 0;
    dc_err_t         err;

    if (k < 1)
        k = 1;
    ai = resolve(t, &err);
    cs = calloc((size_t)k, sizeof(*cs));
    pfds = calloc((size_t)k, sizeof(*pfds));
    if (ai == NULL || cs == NULL || pfds == NULL) {
        if (ai != NULL)
            dc_err_set(&err, DC_ENOMEM, "out of memory");
        if (n > 0)
            done(0, 0, &err, arg);
        goto out;
    }
    for (int j = 0; j < k; j++)
        cs[j].fd = -1;
    for (;;) {
        int     busy = 0, wait_ms = TICK_MS;
        int64_t now = dc_now_ms();

        for (int j = 0; j < k && !stop; j++) {
            while (cs[j].fd < 0 && next < n && !stop) {
                cs[j].i = next++;
                if (start(&cs[j], ai, t, paths[cs[j].i], auth, timeout_ms, &err) != DC_OK) {
                    ended++;
                    stop = done(cs[j].i, 0, &err, arg) != 0;
                }
            }
        }
        for (int j = 0; j < k; j++) {
            pfds[j].fd = cs[j].fd;
            pfds[j].events = cs[j].sent < cs[j].reqlen ? POLLOUT : POLLIN;
            pfds[j].revents = 0;
            if (cs[j].fd >= 0) {
                busy++;
                if (cs[j].deadline_ms - now < wait_ms)
                    wait_ms = cs[j].deadline_ms - now > 0 ? (int)(cs[j].deadline_ms - now) : 0;
            }
        }
        if (busy == 0 || stop)
            break;
        if (poll(pfds, (nfds_t)k, wait_ms) < 0 && errno != EINTR)
            break;
        now = dc_now_ms();
        for (int j = 0; j < k && !stop; j++) {
            int status = 0, ended_now;
            if (cs[j].fd < 0)
                continue;
            ended_now = step(&cs[j], pfds[j].revents, &status, &err);
            if (!ended_now && now >= cs[j].deadline_ms) {
                status = 0;
                dc_err_set(&err, DC_UNAVAILABLE, "no answer within %d ms", timeout_ms);
                ended_now = 1;
            }
            if (ended_now) {
                finish(&cs[j]);
                ended++;
                stop = done(cs[j].i, status, &err, arg) != 0;
            }
        }
        if (tick != NULL)
            tick(arg);
    }
out:
    for (int j = 0; cs != NULL && j < k; j++) {
        finish(&cs[j]);
        dc_buf_free(&cs[j].resp);
    }
    free(cs);
    free(pfds);
    if (ai != NULL)
        freeaddrinfo(ai);
    return ended;
}
