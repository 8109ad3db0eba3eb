/*
 * FastCGI accept loop.
 *
 * We accept connections ourselves and hand each one to libfcgi
 * (FCGX_Request.ipcFd), because libfcgi's own accept checks peers only for
 * IPv4 and then reads the request with blocking reads and no deadline: a
 * client that connects and sends nothing (or one byte a minute) would own
 * the worker forever. Here every connection is read, and later written,
 * under a deadline of FCGI_IO_TIMEOUT_MS per phase: an interval timer whose
 * SIGALRM handler shuts the connection down, so that whatever read() or
 * write() libfcgi is in (or is about to enter) returns at once and the
 * request is dropped. SO_RCVTIMEO would bound each read() but not their
 * sum, and a client trickling bytes would still hold the worker.
 */
#include "dc_worker.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "dc_app.h"
#include "dc_body.h"
#include "dc_listen.h"
#include "dc_log.h"
#include "dc_metrics.h"
#include "dc_signal.h"

/* The connection under a deadline, for the SIGALRM handler; -1 when none. */
static volatile sig_atomic_t io_fd = -1;
static volatile sig_atomic_t io_expired; /* the last deadline passed */

static void on_io_deadline(int signo)
{
    int saved = errno;
    (void)signo;
    io_expired = 1;
    if (io_fd >= 0)
        shutdown(io_fd, SHUT_RDWR); /* async-signal-safe; the fd stays ours until libfcgi closes it */
    errno = saved;
}

static void io_arm(int fd, int ms)
{
    struct itimerval it = { { 0, 0 }, { ms / 1000, (ms % 1000) * 1000L } };

    io_fd = fd;
    io_expired = 0;
    setitimer(ITIMER_REAL, &it, NULL);
}

static void io_disarm(void)
{
    struct itimerval it = { { 0, 0 }, { 0, 0 } };

    setitimer(ITIMER_REAL, &it, NULL);
    io_fd = -1;
}

static int io_init(void)
{
    struct sigaction sa;
    sigset_t         alrm;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_io_deadline; /* no SA_RESTART: an interrupted read fails too */
    sigemptyset(&sa.sa_mask);
    sigemptyset(&alrm);
    sigaddset(&alrm, SIGALRM);
    if (sigaction(SIGALRM, &sa, NULL) != 0 || sigprocmask(SIG_UNBLOCK, &alrm, NULL) != 0) {
        dc_log_error("worker.init", "sigaction(SIGALRM) failed: %s", strerror(errno));
        return DC_ERROR;
    }
    return DC_OK;
}

/* The path without the query: nginx's $document_uri, else REQUEST_URI cut at '?'. */
static const char *request_path(FCGX_ParamArray envp, char *buf, size_t cap)
{
    const char *p = FCGX_GetParam("DOCUMENT_URI", envp);
    const char *q;
    size_t      n;

    if (p != NULL && *p != '\0')
        return p;
    p = FCGX_GetParam("REQUEST_URI", envp);
    if (p == NULL)
        return "";
    q = strchr(p, '?');
    n = q ? (size_t)(q - p) : strlen(p);
    if (n >= cap)
        n = cap - 1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    return buf;
}

/*
 * Reads the request body into buf. DC_OK; DC_EINVAL when CONTENT_LENGTH is
 * not a number or over the limit (nothing read); DC_ERROR on a short read.
 */
static int read_body(FCGX_Request *r, dc_buf_t *buf)
{
    const char *cl = FCGX_GetParam("CONTENT_LENGTH", r->envp);
    char       *end;
    long        n;

    dc_buf_reset(buf);
    if (cl == NULL || *cl == '\0')
        return DC_OK;
    n = strtol(cl, &end, 10);
    if (*end != '\0' || n < 0 || n > DC_BODY_MAX)
        return DC_EINVAL;
    if (n == 0)
        return DC_OK;
    if (dc_buf_reserve(buf, (size_t)n) != DC_OK)
        return DC_ERROR;
    if (FCGX_GetStr(buf->data, (int)n, r->in) != (int)n)
        return DC_ERROR;
    buf->len = (size_t)n;
    buf->data[n] = '\0';
    return DC_OK;
}

/* One request whose parameters libfcgi has read; the read deadline is still armed. */
static void serve(dc_app_t *app, FCGX_Request *r, dc_buf_t *body, int io_timeout_ms)
{
    char       pathbuf[2048], head[DC_RESPONSE_HEAD_MAX];
    dc_input_t in = {
        .method = FCGX_GetParam("REQUEST_METHOD", r->envp),
        .path = request_path(r->envp, pathbuf, sizeof(pathbuf)),
        .query = FCGX_GetParam("QUERY_STRING", r->envp),
        .content_type = FCGX_GetParam("CONTENT_TYPE", r->envp),
        .authorization = FCGX_GetParam("HTTP_AUTHORIZATION", r->envp),
        .if_none_match = FCGX_GetParam("HTTP_IF_NONE_MATCH", r->envp),
        /* set by nginx's fastcgi_param only: a client header arrives as HTTP_* */
        .trusted_sub = FCGX_GetParam("DASHCACHE_AUTH_SUB", r->envp),
        .trusted_orgs = FCGX_GetParam("DASHCACHE_AUTH_ORGS", r->envp),
        .trusted_scope = FCGX_GetParam("DASHCACHE_AUTH_SCOPE", r->envp),
        .idempotency_key = FCGX_GetParam("HTTP_IDEMPOTENCY_KEY", r->envp),
    };
    int64_t       t0 = dc_now_ns();
    dc_response_t resp;
    int           hn, rc;

    if (in.method == NULL)
        in.method = "GET";
    rc = strcmp(in.method, "POST") == 0 ? read_body(r, body) : DC_OK;
    io_disarm(); /* the application has deadlines of its own */
    if (rc == DC_OK) {
        in.body = body->data;
        in.body_len = body->len;
        dc_app_handle(app, &in, &resp);
    } else {
        static const char too_large[] =
            "{\"error\":{\"code\":\"payload_too_large\",\"message\":\"the body is over 1 MiB\"}}";
        static const char bad[] =
            "{\"error\":{\"code\":\"invalid_body\",\"message\":\"the body could not be read\"}}";
        memset(&resp, 0, sizeof(resp));
        resp.mroute = DC_MR_OTHER;
        resp.status = rc == DC_EINVAL ? 413 : 400;
        resp.body = rc == DC_EINVAL ? too_large : bad;
        resp.body_len = rc == DC_EINVAL ? sizeof(too_large) - 1 : sizeof(bad) - 1;
    }
    hn = dc_response_head(&resp, head, sizeof(head));
    io_arm(r->ipcFd, io_timeout_ms);
    if (hn > 0 && FCGX_PutStr(head, hn, r->out) == hn && !resp.head_only && resp.body_len > 0)
        FCGX_PutStr(resp.body, (int)resp.body_len, r->out);
    FCGX_Finish_r(r);
    io_disarm();
    /* nginx is told not to keep connections (a kept one would pin this worker): close it */
    if (r->ipcFd >= 0) {
        close(r->ipcFd);
        r->ipcFd = -1;
    }
    dc_metrics_http((dc_mroute_t)resp.mroute, resp.status, dc_now_ns() - t0);
    dc_app_done(app);
}

int dc_worker_run(int listen_fd, const dc_config_t *cfg)
{
    struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE };
    FCGX_Request       req;
    sigset_t           wait_mask;
    dc_buf_t           body = DC_BUF_INIT;
    dc_app_t          *app;
    int64_t            refused_log_ms = 0, slow_log_ms = 0; /* at most a line a second of each */
    int                flags, ep;

    if (io_init() != DC_OK || dc_signal_stop_init(&wait_mask) != DC_OK)
        return 1;
    /* -1: libfcgi never accepts by itself (see the top of this file) */
    if (FCGX_Init() != 0 || FCGX_InitRequest(&req, -1, 0) != 0) {
        dc_log_error("worker.init", "FCGX_Init() failed");
        return 1;
    }
    /*
     * All workers wait on one socket; the ones that lose the race for a
     * connection must get EAGAIN from accept() instead of sleeping in it,
     * where a stop signal could not reach them.
     */
    flags = fcntl(listen_fd, F_GETFL);
    if (flags < 0 || fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK) != 0) {
        dc_log_error("worker.init", "fcntl(O_NONBLOCK) on fd %d failed: %s", listen_fd, strerror(errno));
        return 1;
    }
    /* EPOLLEXCLUSIVE: a new connection wakes one idle worker, not all of them */
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &ev) != 0) {
        dc_log_error("worker.init", "epoll on fd %d failed: %s", listen_fd, strerror(errno));
        return 1;
    }
    if (dc_metrics_claim(DC_MK_WORKER) != DC_OK)
        dc_log_warn("worker.metrics", "no free metrics slot; this worker's figures are not counted");
    app = dc_app_new(cfg); /* logs why it failed */
    if (app == NULL) {
        close(ep);
        return 1;
    }
    dc_log_info("worker.start", "serving on fd %d", listen_fd);

    while (!dc_signal_stop) {
        int  n = epoll_pwait(ep, &ev, 1, -1, &wait_mask), fd, refused;
        char peer[64];

        if (n < 0) {
            if (errno != EINTR) {
                dc_log_error("worker.poll", "epoll_pwait() failed: %s", strerror(errno));
                break;
            }
            continue;
        }
        if (dc_signal_stop)
            break;
        fd = dc_listen_accept(listen_fd, &cfg->fcgi_allow, &refused, peer, sizeof(peer));
        if (fd < 0) {
            /* DC_DECLINED: another worker took it, or a refused peer; anything else: don't spin */
            if (refused && dc_now_ms() >= refused_log_ms) {
                dc_log_warn("worker.refused", "connection from %s closed: not in FCGI_WEB_SERVER_ADDRS",
                            peer);
                refused_log_ms = dc_now_ms() + 1000;
            } else if (fd == DC_ERROR) {
                dc_log_warn("worker.accept", "accept() failed: %s", strerror(errno));
                poll(NULL, 0, 10);
            }
            continue;
        }
        io_arm(fd, cfg->fcgi_io_timeout_ms);
        /*
         * Hand the connection to libfcgi: with keepConnection set, the
         * FCGX_Finish_r at the top of FCGX_Accept_r leaves it open, and the
         * request's own BEGIN record sets the flag again. On a protocol
         * error or the deadline libfcgi closes it and returns < 0.
         */
        req.ipcFd = fd;
        req.keepConnection = 1;
        if (FCGX_Accept_r(&req) < 0) {
            io_disarm();
            if (io_expired && dc_now_ms() >= slow_log_ms) {
                dc_log_warn("worker.io_timeout", "connection dropped: no complete request within %d ms",
                            cfg->fcgi_io_timeout_ms);
                slow_log_ms = dc_now_ms() + 1000;
            }
            if (req.ipcFd >= 0) {
                close(req.ipcFd);
                req.ipcFd = -1;
            }
            continue;
        }
        serve(app, &req, &body, cfg->fcgi_io_timeout_ms);
    }

    dc_log_info("worker.stop", "stopping");
    FCGX_Free(&req, 1);
    dc_app_free(app);
    dc_buf_free(&body);
    close(ep);
    return 0;
}
