/* FastCGI accept loop. */
#include "dc_worker.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include <fcgiapp.h>

#include "dc_app.h"
#include "dc_body.h"
#include "dc_log.h"
#include "dc_metrics.h"
#include "dc_signal.h"

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

static void serve(dc_app_t *app, FCGX_Request *r, dc_buf_t *body)
{
    char       pathbuf[2048], head[DC_RESPONSE_HEAD_MAX];
    dc_input_t in = {
        .method = FCGX_GetParam("REQUEST_METHOD", r->envp),
        .path = request_path(r->envp, pathbuf, sizeof(pathbuf)),
        .query = FCGX_GetParam("QUERY_STRING", r->envp),
        .content_type = FCGX_GetParam("CONTENT_TYPE", r->envp),
        .idempotency_key = FCGX_GetParam("HTTP_IDEMPOTENCY_KEY", r->envp),
    };
    int64_t       t0 = dc_now_ns();
    dc_response_t resp;
    int           hn, rc;

    if (in.method == NULL)
        in.method = "GET";
    rc = strcmp(in.method, "POST") == 0 ? read_body(r, body) : DC_OK;
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
    if (hn > 0 && FCGX_PutStr(head, hn, r->out) == hn && !resp.head_only && resp.body_len > 0)
        FCGX_PutStr(resp.body, (int)resp.body_len, r->out);
    FCGX_Finish_r(r);
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
    int                flags, ep;

    if (dc_signal_stop_init(&wait_mask) != DC_OK)
        return 1;
    if (FCGX_Init() != 0 || FCGX_InitRequest(&req, listen_fd, 0) != 0) {
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
    app = dc_app_new(cfg);
    if (app == NULL) {
        dc_log_error("worker.init", "out of memory");
        close(ep);
        return 1;
    }
    dc_log_info("worker.start", "serving on fd %d", listen_fd);

    while (!dc_signal_stop) {
        int n = epoll_pwait(ep, &ev, 1, -1, &wait_mask);

        if (n < 0) {
            if (errno != EINTR) {
                dc_log_error("worker.poll", "epoll_pwait() failed: %s", strerror(errno));
                break;
            }
            continue;
        }
        if (dc_signal_stop)
            break;
        n = FCGX_Accept_r(&req);
        if (n < 0) {
            /* EAGAIN: another worker took it; anything else: don't spin on it */
            if (n != -EAGAIN && n != -EWOULDBLOCK && n != -EINTR && n != -ECONNABORTED) {
                dc_log_warn("worker.accept", "FCGX_Accept_r() failed: %s", strerror(-n));
                poll(NULL, 0, 10);
            }
            continue;
        }
        serve(app, &req, &body);
    }

    dc_log_info("worker.stop", "stopping");
    FCGX_Free(&req, 1);
    dc_app_free(app);
    dc_buf_free(&body);
    close(ep);
    return 0;
}
