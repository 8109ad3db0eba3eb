/*
 * The event loop of one worker process: many FastCGI connections at once.
 *
 * nginx keeps its connections to us open (fastcgi_keep_conn on, upstream
 * keepalive), so a connection is no longer a request: each worker accepts
 * connections, watches all of them in one epoll set and answers every
 * request that is complete. The bytes go through our record layer
 * (dc_fcgi), never libfcgi's blocking API. The dashboard reads that
 * arrive in one loop pass wait in a batch (dc_app_start), their Redis
 * lookups leave together and come back together (dc_app_lookup: one round
 * trip for the batch), then each is answered in turn (dc_app_finish; a
 * miss takes its PostgreSQL round trip there, which the worker's other
 * connections wait for). A connection with a request in the batch is not
 * fed until the batch is answered. The answers of one pass leave in one
 * send() per connection.
 *
 * Deadlines (FCGI_IO_TIMEOUT_MS) are per phase, not per read: a request must
 * arrive whole, and an answer must leave whole, within the timeout from the
 * start of that phase, so a peer trickling a byte a second still loses its
 * connection. A kept connection with nothing in flight may stay idle for
 * DC_WORKER_IDLE_MS, longer than nginx's own keepalive_timeout (60 s by
 * default), so that nginx, not we, closes idle connections: a close racing
 * a new request would cost that request a retry.
 *
 * Every deadline of one kind is "now + the same interval", so each kind is
 * a list kept in expiry order by appending at its tail: O(1) per change,
 * and the loop sleeps until the head of the lists.
 *
 * Back-pressure: a connection whose unsent output passes
 * DC_WORKER_OUT_HIGH stops being read until the peer has taken it.
 *
 * Limits that keep a worker healthy: after max requests (MAX_REQUESTS,
 * --max-requests) it retires, draining as on SIGTERM while the master
 * starts its replacement; each request's work runs under its deadline,
 * REQUEST_TIMEOUT_MS from its arrival (dc_deadline_set: every PostgreSQL
 * wait ends by it), and a read still without an answer then is answered
 * 503 request_timeout. What it works on goes to its scoreboard entry, where
 * the master finds a worker stuck past twice the limit and kills it.
 */
#include "dc_worker.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fastcgi.h>

#include "dc_app.h"
#include "dc_body.h"
#include "dc_fcgi.h"
#include "dc_listen.h"
#include "dc_log.h"
#include "dc_health.h"
#include "dc_metrics.h"
#include "dc_signal.h"
#include "dc_trace.h"

#define DC_WORKER_MAX_CONNS 1024         /* connections of one worker; accepts pause beyond */
#define DC_WORKER_IDLE_MS   300000       /* a kept connection with nothing in flight */
#define DC_WORKER_OUT_HIGH  (256 * 1024) /* unsent bytes that stop reading a connection */
#define DC_WORKER_READ_MAX  (64 * 1024)  /* one read() */
#define DC_WORKER_EVENTS    64           /* epoll events per wait */
#define DC_WORKER_ACCEPTS   16           /* connections accepted per wake-up */
#define DC_WORKER_BATCH     64           /* dashboard reads whose lookups share one Redis round trip */
#define DC_WORKER_DRAIN_MS  2000         /* at stop: time for the kept connections to go */

typedef enum {
    DC_PHASE_IDLE = 0, /* nothing in flight */
    DC_PHASE_READ,     /* a request has begun arriving */
    DC_PHASE_WRITE,    /* an answer is waiting for the peer */
    DC_PHASE_COUNT,
} dc_phase_t;

typedef struct dc_conn_s dc_conn_t;

struct dc_conn_s {
    int            fd;
    dc_phase_t     phase;
    int64_t        deadline_ms;
    dc_conn_t     *prev, *next; /* in the list of its phase, or the free list (next) */
    uint32_t       events;      /* what epoll watches now */
    int            close_after; /* a request without FCGI_KEEP_CONN: close once its answer is out */
    int            waiting;     /* a request of it is in the batch; bytes after it wait in in */
    dc_buf_t       in;
    dc_buf_t       out;
    size_t         out_off; /* sent bytes of out */
    dc_fcgi_conn_t fcgi;
};

typedef struct {
    dc_conn_t *head, *tail;
} dc_conn_list_t;

/* A dashboard read waiting in the batch for its cache lookup. */
typedef struct {
    dc_conn_t     *conn;
    dc_fcgi_req_t *req;
    int64_t        t0;
    dc_response_t  resp;
    dc_app_task_t  task;
    dc_trace_t     trace; /* where its time goes, for the slow log */
} dc_pending_t;

typedef struct {
    const dc_config_t *cfg;
    dc_board_t        *board;        /* the master's scoreboard entry, or NULL */
    long               max_requests; /* 0: never retire */
    long               served;       /* requests answered */
    dc_app_t          *app;
    int                ep, listen_fd;
    int                accepting; /* the listening socket is in the epoll set */
    int                stopping;  /* draining: every connection closes after its next answer */
    int                nconns;
    dc_conn_t         *free_conns;
    dc_conn_list_t     lists[DC_PHASE_COUNT];
    int64_t            ttl_ms[DC_PHASE_COUNT];
    int64_t            refused_log_ms, timeout_log_ms, error_log_ms; /* at most a line a second of each */
    int64_t            late_log_ms;                                  /* worker.request_timeout, likewise */
    long               late_unlogged;
    dc_pending_t       batch[DC_WORKER_BATCH];
    size_t             nbatch;
    dc_buf_t           spare; /* swapped with a connection's in while that is fed */
    char               rbuf[DC_WORKER_READ_MAX];
} dc_loop_t;

/* Tags of epoll data: the listening socket, else a connection. */
static char listen_tag;

/* ---- deadline lists ---- */

static void list_unlink(dc_loop_t *l, dc_conn_t *c)
{
    dc_conn_list_t *q = &l->lists[c->phase];

    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        q->head = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    else
        q->tail = c->prev;
    c->prev = c->next = NULL;
}

static void list_append(dc_loop_t *l, dc_conn_t *c, dc_phase_t phase)
{
    dc_conn_list_t *q = &l->lists[phase];

    c->phase = phase;
    c->deadline_ms = dc_now_ms() + l->ttl_ms[phase];
    c->prev = q->tail;
    c->next = NULL;
    if (q->tail != NULL)
        q->tail->next = c;
    else
        q->head = c;
    q->tail = c;
}

/* Moves c to phase; its deadline restarts only when the phase changes. */
static void set_phase(dc_loop_t *l, dc_conn_t *c, dc_phase_t phase)
{
    if (c->phase == phase)
        return;
    list_unlink(l, c);
    list_append(l, c, phase);
}

/* Milliseconds until the earliest deadline, -1 when there is none. */
static int next_timeout(const dc_loop_t *l)
{
    int64_t first = -1, now = dc_now_ms();

    for (int p = 0; p < DC_PHASE_COUNT; p++) {
        const dc_conn_t *h = l->lists[p].head;
        if (h != NULL && (first < 0 || h->deadline_ms < first))
            first = h->deadline_ms;
    }
    if (first < 0)
        return -1;
    return first <= now ? 0 : (int)(first - now < 60000 ? first - now : 60000);
}

/* ---- connections ---- */

static int watch(dc_loop_t *l, dc_conn_t *c, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = c };

    if (events == c->events)
        return DC_OK;
    if (epoll_ctl(l->ep, EPOLL_CTL_MOD, c->fd, &ev) != 0)
        return DC_ERROR;
    c->events = events;
    return DC_OK;
}

static void pause_accepting(dc_loop_t *l, int pause)
{
    struct epoll_event ev = { .events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &listen_tag };

    if (pause == !l->accepting)
        return;
    if (pause)
        epoll_ctl(l->ep, EPOLL_CTL_DEL, l->listen_fd, NULL);
    else if (epoll_ctl(l->ep, EPOLL_CTL_ADD, l->listen_fd, &ev) != 0)
        return;
    l->accepting = !pause;
}

static void conn_close(dc_loop_t *l, dc_conn_t *c)
{
    list_unlink(l, c);
    epoll_ctl(l->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    /* keep the buffers' memory for the next connection: a warm worker does not allocate */
    for (int i = 0; i < DC_FCGI_MAX_REQS; i++)
        if (c->fcgi.reqs[i].state != DC_FCGI_SLOT_FREE)
            dc_fcgi_release(&c->fcgi, &c->fcgi.reqs[i]);
    c->next = l->free_conns;
    l->free_conns = c;
    l->nconns--;
    if (!l->stopping)
        pause_accepting(l, 0);
}

static void conn_open(dc_loop_t *l, int fd)
{
    struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP };
    dc_conn_t         *c = l->free_conns;
    int                flags = fcntl(fd, F_GETFL);

    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
        close(fd);
        return;
    }
    if (c != NULL) {
        l->free_conns = c->next;
        dc_fcgi_free(&c->fcgi); /* a clean parser state; its memory goes (rare: once per connection) */
    } else {
        c = calloc(1, sizeof(*c));
        if (c == NULL) {
            dc_log_error("worker.accept", "out of memory: connection closed");
            close(fd);
            return;
        }
    }
    dc_fcgi_init(&c->fcgi, DC_BODY_MAX);
    dc_buf_reset(&c->out);
    dc_buf_reset(&c->in);
    c->out_off = 0;
    c->fd = fd;
    c->close_after = 0;
    c->waiting = 0;
    c->prev = c->next = NULL;
    c->events = ev.events;
    ev.data.ptr = c;
    if (epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        close(fd);
        c->next = l->free_conns;
        l->free_conns = c;
        return;
    }
    l->nconns++;
    /* a new connection must bring its first request within the I/O timeout */
    c->phase = DC_PHASE_READ;
    list_append(l, c, DC_PHASE_READ);
    if (l->nconns >= DC_WORKER_MAX_CONNS)
        pause_accepting(l, 1);
}

/* Whether any byte of a request has arrived and its answer has not been queued. */
static int reading_something(const dc_conn_t *c)
{
    return dc_fcgi_busy(&c->fcgi) || !dc_fcgi_idle(&c->fcgi);
}

/*
 * Writes what c owes. DC_OK: all sent, or the rest waits for EPOLLOUT;
 * DC_ERROR: the peer is gone (c is closed).
 */
static int conn_flush(dc_loop_t *l, dc_conn_t *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        conn_close(l, c);
        return DC_ERROR;
    }
    if (c->out_off == c->out.len) {
        dc_buf_reset(&c->out);
        c->out_off = 0;
        if (c->close_after) {
            conn_close(l, c);
            return DC_ERROR;
        }
    }
    return DC_OK;
}

/* After reading or writing: the phase, its deadline and what epoll watches. */
static void conn_settle(dc_loop_t *l, dc_conn_t *c)
{
    size_t   owed = c->out.len - c->out_off;
    uint32_t events = EPOLLRDHUP;

    if (owed > 0)
        events |= EPOLLOUT;
    if (owed < DC_WORKER_OUT_HIGH && !c->close_after)
        events |= EPOLLIN;
    if (watch(l, c, events) != DC_OK) {
        conn_close(l, c);
        return;
    }
    set_phase(l, c, owed > 0 ? DC_PHASE_WRITE : reading_something(c) ? DC_PHASE_READ : DC_PHASE_IDLE);
}

/* ---- requests ---- */

/* The path without the query: nginx's $document_uri, else REQUEST_URI cut at '?'. */
static const char *request_path(const dc_fcgi_req_t *r, char *buf, size_t cap)
{
    const char *p = dc_fcgi_param(r, "DOCUMENT_URI");
    const char *q;
    size_t      n;

    if (p != NULL && *p != '\0')
        return p;
    p = dc_fcgi_param(r, "REQUEST_URI");
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

/* The body as CONTENT_LENGTH announced it: DC_OK, DC_EINVAL (over the limit) or DC_ERROR (short). */
static int check_body(const dc_fcgi_req_t *r)
{
    const char *cl = dc_fcgi_param(r, "CONTENT_LENGTH");
    char       *end;
    long        n;

    if (r->too_large)
        return DC_EINVAL;
    if (cl == NULL || *cl == '\0')
        return r->stdin_len == 0 ? DC_OK : DC_ERROR;
    n = strtol(cl, &end, 10);
    if (*end != '\0' || n < 0)
        return DC_ERROR;
    if (n > DC_BODY_MAX)
        return DC_EINVAL;
    return (size_t)n == r->stdin_len ? DC_OK : DC_ERROR;
}

static void body_failure(dc_response_t *resp, int rc)
{
    static const char too_large[] =
        "{\"error\":{\"code\":\"payload_too_large\",\"message\":\"the body is over 1 MiB\"}}";
    static const char bad[] =
        "{\"error\":{\"code\":\"invalid_body\",\"message\":\"the body could not be read\"}}";

    memset(resp, 0, sizeof(*resp));
    resp->mroute = DC_MR_OTHER;
    resp->status = rc == DC_EINVAL ? 413 : 400;
    resp->body = rc == DC_EINVAL ? too_large : bad;
    resp->body_len = rc == DC_EINVAL ? sizeof(too_large) - 1 : sizeof(bad) - 1;
}

/*
 * The slow log: a request over SLOWLOG_MS, from its first record to its
 * answer queued, is logged once with where its time went (dc_trace), and
 * counted. The route and organization come from the request (org: "" when
 * the route has none); end: when its answer was queued.
 */
static void slow_check(const dc_loop_t *l, const dc_trace_t *t, const dc_fcgi_req_t *r, int status,
                       const char *org, int64_t end)
{
    char        parts[512], pathbuf[256];
    const char *method = dc_fcgi_param(r, "REQUEST_METHOD");

    if (l->cfg->slowlog_ms <= 0 || end - t->arrived_ns < (int64_t)l->cfg->slowlog_ms * 1000000)
        return;
    dc_metrics_slow_request();
    dc_trace_format(t, end, dc_health_stmt_name, parts, sizeof(parts));
    dc_log_warn("worker.slow", "%s %s org=%s status=%d %s (over SLOWLOG_MS=%d)",
                method != NULL ? method : "GET", request_path(r, pathbuf, sizeof(pathbuf)),
                org != NULL && org[0] ? org : "-", status, parts, l->cfg->slowlog_ms);
}

/*
 * Puts the answer to r in c's output and frees r's slot; t: the request's
 * trace (NULL: none), org its organization for the slow log. DC_OK or
 * DC_ENOMEM.
 */
static int answer(dc_loop_t *l, dc_conn_t *c, dc_fcgi_req_t *r, const dc_response_t *resp, int64_t t0,
                  dc_trace_t *t, const char *org)
{
    char         head[DC_RESPONSE_HEAD_MAX];
    int64_t      w0 = dc_now_ns(), end;
    int          hn = dc_response_head(resp, head, sizeof(head)), rc = DC_ERROR;
    struct iovec iov[2] = { { head, hn > 0 ? (size_t)hn : 0 }, { (void *)resp->body, resp->body_len } };

    if (hn > 0) {
        rc = dc_fcgi_put_stdout(&c->out, r->id, iov, !resp->head_only && resp->body_len > 0 ? 2 : 1);
        if (rc == DC_OK)
            rc = dc_fcgi_put_end(&c->out, r->id, 0);
    }
    if (!r->keep_conn || l->stopping)
        c->close_after = 1;
    end = dc_now_ns();
    dc_metrics_http((dc_mroute_t)resp->mroute, resp->status, end - t0);
    dc_metrics_pool_served(end - t0);
    if (t != NULL) {
        t->write_ns += end - w0;
        slow_check(l, t, r, resp->status, org, end);
    }
    dc_fcgi_release(&c->fcgi, r);
    l->served++;
    return rc;
}

/* ---- the limits of one request ---- */

/*
 * The work of a request begins (t0_ns: when it arrived; 0: no deadline):
 * its deadline bounds every PostgreSQL wait, and the scoreboard shows it.
 * The route is written while busy_since_ms is 0, then busy_since_ms (see
 * dc_board_t); a torn route costs at most a garbled log line.
 */
static void work_begin(dc_loop_t *l, int64_t t0_ns, const char *method, const char *path)
{
    dc_board_t *b = l->board;

    if (t0_ns > 0 && l->cfg->request_timeout_ms > 0)
        dc_deadline_set(t0_ns / 1000000 + l->cfg->request_timeout_ms);
    dc_metrics_pool_busy(method, path);
    if (b == NULL)
        return;
    __atomic_store_n(&b->busy_since_ms, 0, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    snprintf(b->route, sizeof(b->route), "%s %s", method, path);
    __atomic_store_n(&b->busy_since_ms, dc_now_ms(), __ATOMIC_RELEASE);
}

static void work_end(dc_loop_t *l)
{
    dc_deadline_set(0);
    dc_metrics_pool_idle();
    if (l->board != NULL)
        __atomic_store_n(&l->board->busy_since_ms, 0, __ATOMIC_RELEASE);
}

/*
 * A 503 given at or after the request's deadline is its time limit's doing:
 * logged with its route (at most a line a second) and counted; a read's
 * answer says so (request_timeout). A write keeps its own 503, which says
 * what became of the write.
 */
static void check_late(dc_loop_t *l, dc_response_t *resp, int64_t t0_ns, const char *method, const char *path)
{
    static const char late[] = "{\"error\":{\"code\":\"request_timeout\",\"message\":\"the request ran "
                               "past the time limit of the service; try again later\"}}";
    int64_t           elapsed_ms = (dc_now_ns() - t0_ns) / 1000000;
    int               read = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;

    if (l->cfg->request_timeout_ms <= 0 || resp->status != 503 || elapsed_ms < l->cfg->request_timeout_ms)
        return;
    dc_metrics_request_timeout();
    if (dc_now_ms() >= l->late_log_ms) {
        dc_log_warn(
            "worker.request_timeout",
            "%s %s answered 503 after %lld ms: over REQUEST_TIMEOUT_MS=%d (%ld more since the last line)",
            method, path, (long long)elapsed_ms, l->cfg->request_timeout_ms, l->late_unlogged);
        l->late_log_ms = dc_now_ms() + 1000;
        l->late_unlogged = 0;
    } else {
        l->late_unlogged++;
    }
    if (read) {
        int mroute = resp->mroute, head_only = resp->head_only;
        memset(resp, 0, sizeof(*resp));
        resp->status = 503;
        resp->mroute = mroute;
        resp->head_only = head_only;
        resp->retry_after = l->cfg->retry_after_s;
        resp->body = late;
        resp->body_len = sizeof(late) - 1;
    }
}

/*
 * A complete request: answered at once (DC_OK, or DC_ERROR: close), or,
 * a dashboard read that may be a hit, put in the pass's batch (DC_DECLINED).
 */
static int start(dc_loop_t *l, dc_conn_t *c, dc_fcgi_req_t *r)
{
    char          pathbuf[2048];
    int64_t       t0 = dc_now_ns();
    dc_pending_t *p = &l->batch[l->nbatch];
    int           rc, body_rc = DC_OK;
    dc_input_t    in = {
           .method = dc_fcgi_param(r, "REQUEST_METHOD"),
           .path = request_path(r, pathbuf, sizeof(pathbuf)),
           .query = dc_fcgi_param(r, "QUERY_STRING"),
           .content_type = dc_fcgi_param(r, "CONTENT_TYPE"),
           .authorization = dc_fcgi_param(r, "HTTP_AUTHORIZATION"),
           /* set by nginx's fastcgi_param only: a client header arrives as HTTP_* */
           .trusted_sub = dc_fcgi_param(r, "DASHCACHE_AUTH_SUB"),
           .trusted_orgs = dc_fcgi_param(r, "DASHCACHE_AUTH_ORGS"),
           .trusted_scope = dc_fcgi_param(r, "DASHCACHE_AUTH_SCOPE"),
           .idempotency_key = dc_fcgi_param(r, "HTTP_IDEMPOTENCY_KEY"),
           .if_none_match = dc_fcgi_param(r, "HTTP_IF_NONE_MATCH"),
    };

    if (in.method == NULL)
        in.method = "GET";
    dc_trace_begin(&p->trace, r->begun_ns, t0);
    if (strcmp(in.method, "POST") == 0)
        body_rc = check_body(r);
    if (body_rc != DC_OK) {
        body_failure(&p->resp, body_rc);
        return answer(l, c, r, &p->resp, t0, &p->trace, NULL);
    }
    in.body = r->stdin_buf.len > 0 ? r->stdin_buf.data : NULL;
    in.body_len = r->stdin_buf.len;
    work_begin(l, t0, in.method, in.path);
    dc_trace_use(&p->trace);
    rc = dc_app_start(l->app, &in, &p->task, &p->resp);
    dc_trace_use(NULL);
    if (rc != DC_DECLINED)
        check_late(l, &p->resp, t0, in.method, in.path);
    work_end(l);
    if (rc == DC_DECLINED) {
        p->conn = c;
        p->req = r;
        p->t0 = t0;
        l->nbatch++;
        return DC_DECLINED;
    }
    rc = answer(l, c, r, &p->resp, t0, &p->trace, p->task.req.org_id);
    dc_app_task_done(&p->task);
    return rc;
}

/* One record-layer event other than a request. DC_OK, or DC_ERROR: close the connection. */
static int on_event(dc_loop_t *l, dc_conn_t *c, const dc_fcgi_event_t *ev)
{
    switch (ev->type) {
    case DC_FCGI_EV_ABORT:
        return dc_fcgi_put_end_request(&c->out, ev->id, 0, FCGI_REQUEST_COMPLETE);
    case DC_FCGI_EV_END:
        return dc_fcgi_put_end_request(&c->out, ev->id, 0, ev->protocol_status);
    case DC_FCGI_EV_GET_VALUES:
        return dc_fcgi_put_get_values_result(&c->out, ev, DC_WORKER_MAX_CONNS);
    case DC_FCGI_EV_UNKNOWN:
        return dc_fcgi_put_unknown_type(&c->out, ev->record_type);
    case DC_FCGI_EV_ERROR:
        if (dc_now_ms() >= l->error_log_ms) {
            dc_log_warn("worker.protocol", "connection closed: %s",
                        ev->why ? ev->why : "FastCGI protocol error");
            l->error_log_ms = dc_now_ms() + 1000;
        }
        return DC_ERROR;
    case DC_FCGI_EV_REQUEST:
    case DC_FCGI_EV_NONE:
        break;
    }
    return DC_OK;
}

/*
 * Feeds bytes to c's parser and handles its events. A request put in the
 * batch stops the feeding: the rest waits in c->in until the batch is
 * answered (so a connection never holds more than one waiting request, and
 * its request slots never run out). DC_OK, or DC_ERROR: c was closed.
 */
static int conn_feed(dc_loop_t *l, dc_conn_t *c, const char *data, size_t len)
{
    size_t off = 0;

    while (off < len) {
        dc_fcgi_event_t ev;
        size_t          used = 0;
        int             rc;

        dc_fcgi_feed(&c->fcgi, data + off, len - off, &used, &ev);
        off += used;
        rc = ev.type == DC_FCGI_EV_REQUEST ? start(l, c, ev.req) : on_event(l, c, &ev);
        if (rc == DC_DECLINED) {
            /*
             * Never closed while it waits: the batch holds it. Out of
             * memory for the rest: answer the waiting request, then close.
             */
            c->waiting = 1;
            if (off < len && dc_buf_append(&c->in, data + off, len - off) != DC_OK)
                c->close_after = 1;
            return DC_OK;
        }
        if (rc != DC_OK) {
            conn_close(l, c);
            return DC_ERROR;
        }
        if (ev.type == DC_FCGI_EV_NONE)
            break;
    }
    return DC_OK;
}

/*
 * Answers the batch: the cache lookups of all its requests in one round
 * trip, then each answer in turn. Then the connections that were waiting
 * go on with the bytes they had left, which may fill the batch again.
 */
static void run_batch(dc_loop_t *l)
{
    while (l->nbatch > 0) {
        dc_app_task_t *tasks[DC_WORKER_BATCH];
        dc_conn_t     *conns[DC_WORKER_BATCH];
        size_t         n = l->nbatch;

        dc_trace_t shared; /* the lookups' round trip, given to each request of the batch */

        for (size_t i = 0; i < n; i++)
            tasks[i] = &l->batch[i].task;
        work_begin(l, 0, "the cache lookups of", n == 1 ? "1 request" : "a batch of requests");
        dc_trace_begin(&shared, 0, dc_now_ns());
        dc_trace_use(&shared);
        dc_app_lookup(l->app, tasks, n);
        dc_trace_use(NULL);
        for (size_t i = 0; i < n; i++) {
            dc_pending_t *p = &l->batch[i];
            char          pathbuf[2048];
            const char   *method = dc_fcgi_param(p->req, "REQUEST_METHOD");
            const char   *path = request_path(p->req, pathbuf, sizeof(pathbuf));

            method = method != NULL ? method : "GET";
            work_begin(l, p->t0, method, path);
            dc_trace_add(&p->trace, &shared);
            dc_trace_use(&p->trace);
            dc_app_finish(l->app, &p->task, &p->resp);
            dc_trace_use(NULL);
            check_late(l, &p->resp, p->t0, method, path);
            work_end(l);
            if (answer(l, p->conn, p->req, &p->resp, p->t0, &p->trace, p->task.req.org_id) != DC_OK)
                p->conn->close_after = 1; /* out of memory: the answer is cut, the connection goes */
            dc_app_task_done(&p->task);
            conns[i] = p->conn;
        }
        /* each connection puts at most one request in the batch: n more at most */
        l->nbatch = 0;
        for (size_t i = 0; i < n; i++) {
            dc_conn_t *c = conns[i];
            dc_buf_t   rest = c->in; /* fed from a buffer of its own: feeding may park bytes in c->in */

            c->waiting = 0;
            c->in = l->spare;
            dc_buf_reset(&c->in);
            if (conn_feed(l, c, rest.data, rest.len) == DC_OK && !c->waiting && conn_flush(l, c) == DC_OK)
                conn_settle(l, c);
            dc_buf_reset(&rest);
            l->spare = rest;
        }
    }
}

/* Readable: read once, answer every request that became complete, send. */
static void conn_read(dc_loop_t *l, dc_conn_t *c)
{
    ssize_t n = recv(c->fd, l->rbuf, sizeof(l->rbuf), 0);

    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        conn_close(l, c); /* the peer closed: anything half-read goes with it */
        return;
    }
    if (n > 0 && conn_feed(l, c, l->rbuf, (size_t)n) != DC_OK)
        return;
    if (!c->waiting && conn_flush(l, c) == DC_OK)
        conn_settle(l, c);
}

static void conn_write(dc_loop_t *l, dc_conn_t *c)
{
    if (conn_flush(l, c) == DC_OK)
        conn_settle(l, c);
}

static void accept_some(dc_loop_t *l)
{
    for (int i = 0; i < DC_WORKER_ACCEPTS && l->nconns < DC_WORKER_MAX_CONNS; i++) {
        char peer[64];
        int  refused, fd = dc_listen_accept(l->listen_fd, &l->cfg->fcgi_allow, &refused, peer, sizeof(peer));

        if (fd >= 0) {
            conn_open(l, fd);
            continue;
        }
        /* DC_DECLINED: another worker took it, or a refused peer; anything else: don't spin */
        if (refused && dc_now_ms() >= l->refused_log_ms) {
            dc_log_warn("worker.refused", "connection from %s closed: not in FCGI_WEB_SERVER_ADDRS", peer);
            l->refused_log_ms = dc_now_ms() + 1000;
        } else if (fd == DC_ERROR && dc_now_ms() >= l->error_log_ms) {
            dc_log_warn("worker.accept", "accept() failed: %s", strerror(errno));
            l->error_log_ms = dc_now_ms() + 1000;
        }
        if (!refused)
            break;
    }
}

/* Closes every connection whose deadline passed. */
static void expire(dc_loop_t *l)
{
    int64_t now = dc_now_ms();

    for (int p = 0; p < DC_PHASE_COUNT; p++) {
        dc_conn_t *c;
        while ((c = l->lists[p].head) != NULL && c->deadline_ms <= now) {
            if (p != DC_PHASE_IDLE && now >= l->timeout_log_ms) {
                dc_log_warn("worker.io_timeout", "connection dropped: %s not %s within %d ms",
                            p == DC_PHASE_READ ? "a request" : "an answer",
                            p == DC_PHASE_READ ? "complete" : "taken", l->cfg->fcgi_io_timeout_ms);
                l->timeout_log_ms = now + 1000;
            }
            conn_close(l, c);
        }
    }
}

/* One wait of the loop and what it brought; timeout_ms -1: until the next deadline. */
static void loop_once(dc_loop_t *l, const sigset_t *wait_mask, int timeout_ms)
{
    struct epoll_event evs[DC_WORKER_EVENTS];
    int                t = next_timeout(l);
    int                probe = dc_app_tick(l->app); /* keeps the host's lease on hits fresh */
    int                n;

    dc_metrics_pool_sample(l->listen_fd, dc_now_ms()); /* at most once a second for the pool */
    if (timeout_ms >= 0 && (t < 0 || timeout_ms < t))
        t = timeout_ms;
    if (probe >= 0 && (t < 0 || probe < t))
        t = probe;
    n = epoll_pwait(l->ep, evs, DC_WORKER_EVENTS, t, wait_mask);
    if (n < 0 && errno != EINTR)
        dc_log_error("worker.poll", "epoll_pwait() failed: %s", strerror(errno));
    for (int i = 0; i < n; i++) {
        dc_conn_t *c = evs[i].data.ptr;

        if (evs[i].data.ptr == &listen_tag) {
            if (!l->stopping)
                accept_some(l);
            continue;
        }
        if (c->fd < 0 || c->waiting)
            continue; /* closed earlier in this pass; its request in the batch: read it afterwards */
        if (l->nbatch == DC_WORKER_BATCH)
            run_batch(l); /* a read adds one request to the batch at most */
        if (evs[i].events & EPOLLOUT)
            conn_write(l, c);
        if (c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
            conn_read(l, c);
    }
    run_batch(l);
    expire(l);
}

/*
 * At stop: no new connections (the master has started our replacement),
 * but nginx may be sending a request on any connection it keeps to us
 * right now. Each connection is closed right after its next answer, so
 * nginx learns with that answer not to use it again; one still idle at the
 * end of DC_WORKER_DRAIN_MS is closed then (nginx reuses its most recently
 * used connections first, so such a one is the least likely to be in use).
 */
static void drain(dc_loop_t *l)
{
    int64_t until = dc_now_ms() + DC_WORKER_DRAIN_MS;

    l->stopping = 1;
    pause_accepting(l, 1);
    for (int p = 0; p < DC_PHASE_COUNT; p++)
        for (dc_conn_t *c = l->lists[p].head; c != NULL; c = c->next)
            if (c->out.len > c->out_off)
                c->close_after = 1;
    while (l->nconns > 0 && dc_now_ms() < until)
        loop_once(l, NULL, (int)(until - dc_now_ms()));
    for (int p = 0; p < DC_PHASE_COUNT; p++)
        while (l->lists[p].head != NULL)
            conn_close(l, l->lists[p].head);
}

static void loop_free(dc_loop_t *l)
{
    dc_conn_t *c;

    while ((c = l->free_conns) != NULL) {
        l->free_conns = c->next;
        dc_fcgi_free(&c->fcgi);
        dc_buf_free(&c->out);
        dc_buf_free(&c->in);
        free(c);
    }
    if (l->ep >= 0)
        close(l->ep);
    dc_buf_free(&l->spare);
    dc_app_free(l->app);
    free(l);
}

/*
 * Max requests answered: from now on it drains as on SIGTERM, and the
 * master (woken, and told by the scoreboard: signals of two workers may
 * arrive as one) starts its replacement at once. Without a master it just
 * exits after the drain: spawn-fcgi starts no other.
 */
static int retire_due(dc_loop_t *l, const dc_worker_opts_t *opts)
{
    if (l->max_requests <= 0 || l->served < l->max_requests)
        return 0;
    dc_log_info("worker.retire", "answered %ld requests (max requests %ld): draining%s", l->served,
                l->max_requests,
                opts->master > 0 ? "; the master starts a replacement" : "; no master starts a replacement");
    dc_metrics_worker_retired(DC_RETIRE_MAX_REQUESTS);
    if (l->board != NULL)
        __atomic_store_n(&l->board->retiring, 1, __ATOMIC_RELEASE);
    if (opts->master > 0 && getppid() == opts->master)
        kill(opts->master, SIGUSR1);
    return 1;
}

int dc_worker_run(int listen_fd, const dc_config_t *cfg, const dc_worker_opts_t *opts)
{
    sigset_t   wait_mask;
    dc_loop_t *l;
    int        flags;

    if (dc_signal_stop_init(&wait_mask) != DC_OK)
        return 1;
    /*
     * All workers wait on one socket; the ones that lose the race for a
     * connection must get EAGAIN from accept() instead of sleeping in it.
     */
    flags = fcntl(listen_fd, F_GETFL);
    if (flags < 0 || fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK) != 0) {
        dc_log_error("worker.init", "fcntl(O_NONBLOCK) on fd %d failed: %s", listen_fd, strerror(errno));
        return 1;
    }
    l = calloc(1, sizeof(*l));
    if (l == NULL) {
        dc_log_error("worker.init", "out of memory");
        return 1;
    }
    l->cfg = cfg;
    l->board = opts->board;
    l->max_requests = opts->max_requests >= 0 ? opts->max_requests : cfg->max_requests;
    l->listen_fd = listen_fd;
    l->ttl_ms[DC_PHASE_IDLE] = DC_WORKER_IDLE_MS;
    l->ttl_ms[DC_PHASE_READ] = cfg->fcgi_io_timeout_ms;
    l->ttl_ms[DC_PHASE_WRITE] = cfg->fcgi_io_timeout_ms;
    /* EPOLLEXCLUSIVE: a new connection wakes one idle worker, not all of them */
    l->ep = epoll_create1(EPOLL_CLOEXEC);
    pause_accepting(l, 0);
    if (l->ep < 0 || !l->accepting) {
        dc_log_error("worker.init", "epoll on fd %d failed: %s", listen_fd, strerror(errno));
        loop_free(l);
        return 1;
    }
    if (dc_metrics_claim(DC_MK_WORKER) != DC_OK)
        dc_log_warn("worker.metrics", "no free metrics slot; this worker's figures are not counted");
    l->app = dc_app_new(cfg); /* logs why it failed */
    if (l->app == NULL) {
        loop_free(l);
        return 1;
    }
    dc_log_info("worker.start", "serving on fd %d", listen_fd);

    while (!dc_signal_stop && !retire_due(l, opts))
        loop_once(l, &wait_mask, -1);

    dc_log_info("worker.stop", "stopping");
    drain(l);
    loop_free(l);
    return 0;
}
