/*
 * The pool's status page and the slow log's trace: the options of /status
 * (php-fpm's ?full and ?json, bad values refused), the page in text and in
 * JSON from a given set of figures (the field names php-fpm operators
 * know, a row per worker with ?full, a client's path that cannot break the
 * JSON), the pool's figures kept in a real metrics file (active workers,
 * the most at once, max children reached, a dead worker's request given
 * back), the accept queue read from the kernel for a real listening socket,
 * and where a request's time went (dc_trace): parts, statements merged by
 * slot, a batch's shared lookups given to each request.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "dc_json.h"
#include "dc_listen.h"
#include "dc_metrics.h"
#include "dc_status.h"
#include "dc_trace.h"

static void test_options(void **state)
{
    dc_status_opts_t o;
    dc_error_t       err;

    (void)state;
    assert_int_equal(dc_status_parse(NULL, &o, &err), DC_OK);
    assert_false(o.full);
    assert_false(o.json);
    assert_int_equal(dc_status_parse("full&json", &o, &err), DC_OK);
    assert_true(o.full);
    assert_true(o.json);
    assert_int_equal(dc_status_parse("json=1&full=false&_=123", &o, &err), DC_OK);
    assert_false(o.full);
    assert_true(o.json);
    assert_int_equal(dc_status_parse("full=true", &o, &err), DC_OK);
    assert_true(o.full);
    assert_int_equal(dc_status_parse("full=yes", &o, &err), DC_EINVAL);
    assert_int_equal(err.status, 400);
    assert_string_equal(err.code, "invalid_parameter");
    assert_int_equal(dc_status_parse("html", &o, &err), DC_EINVAL);
    assert_int_equal(dc_status_parse("fullx=1&jsonp", &o, &err), DC_OK); /* others are ignored */
    assert_false(o.full);
    assert_false(o.json);
}

static void figures(dc_pool_status_t *st)
{
    memset(st, 0, sizeof(*st));
    st->started_ms = 1764493200000; /* 2025-11-30 09:00:00 UTC */
    st->accepted = 1234;
    st->idle = 1;
    st->active = 1;
    st->total = 2;
    st->max_active = 2;
    st->max_children_reached = 7;
    st->slow_requests = 3;
    st->listen_queue = 4;
    st->max_listen_queue = 9;
    st->listen_backlog = 511;
    st->nprocs = 2;
    st->procs[0] = (dc_pool_proc_t){
        .pid = 101, .busy = 1, .started_ms = 1764493260000, .requests = 600, .busy_ms = 25, .last_ns = 2000000
    };
    strcpy(st->procs[0].route, "GET /api/dashboard/orgs/x/\"stats\"\\");
    st->procs[1] =
        (dc_pool_proc_t){ .pid = 102, .started_ms = 1764493200000, .requests = 634, .last_ns = 1500000 };
    strcpy(st->procs[1].route, "GET /health");
}

static void test_text_page(void **state)
{
    dc_pool_status_t *st = malloc(sizeof(*st));
    dc_status_opts_t  o = { 0, 0 };
    dc_buf_t          out = { 0 };
    long              rss[DC_POOL_PROCS_MAX] = { 2048, 4096 };

    (void)state;
    figures(st);
    assert_int_equal(dc_status_render(st, rss, &o, 1764493300000, &out), DC_OK);
    assert_non_null(strstr(out.data, "pool:                 dashcache\n"));
    assert_non_null(strstr(out.data, "start time:           30/Nov/2025:09:00:00 +0000\n"));
    assert_non_null(strstr(out.data, "start since:          100\n"));
    assert_non_null(strstr(out.data, "accepted conn:        1234\n"));
    assert_non_null(strstr(out.data, "listen queue:         4\n"));
    assert_non_null(strstr(out.data, "max listen queue:     9\n"));
    assert_non_null(strstr(out.data, "listen queue len:     511\n"));
    assert_non_null(strstr(out.data, "idle processes:       1\n"));
    assert_non_null(strstr(out.data, "active processes:     1\n"));
    assert_non_null(strstr(out.data, "total processes:      2\n"));
    assert_non_null(strstr(out.data, "max active processes: 2\n"));
    assert_non_null(strstr(out.data, "max children reached: 7\n"));
    assert_non_null(strstr(out.data, "slow requests:        3\n"));
    assert_null(strstr(out.data, "pid:")); /* rows only with ?full */

    o.full = 1;
    dc_buf_reset(&out);
    assert_int_equal(dc_status_render(st, rss, &o, 1764493300000, &out), DC_OK);
    assert_non_null(strstr(out.data, "pid:                  101\nstate:                Running\n"));
    assert_non_null(strstr(out.data, "request duration:     25000\n")); /* in hand: µs so far */
    assert_non_null(strstr(out.data, "pid:                  102\nstate:                Idle\n"));
    assert_non_null(strstr(out.data, "request duration:     1500\n")); /* idle: the last one's */
    assert_non_null(strstr(out.data, "request URI:          GET /health\n"));
    assert_non_null(strstr(out.data, "rss:                  4194304\n"));
    dc_buf_free(&out);
    free(st);
}

static void test_json_page(void **state)
{
    dc_pool_status_t *st = malloc(sizeof(*st));
    dc_status_opts_t  o = { 1, 1 };
    dc_buf_t          out = { 0 };

    (void)state;
    figures(st);
    assert_int_equal(dc_status_render(st, NULL, &o, 1764493300000, &out), DC_OK);
    assert_true(dc_json_is_valid(out.data)); /* the quote and backslash of a client's path are escaped */
    assert_non_null(strstr(out.data, "\"accepted conn\":1234"));
    assert_non_null(strstr(out.data, "\"max children reached\":7"));
    assert_non_null(strstr(out.data, "\"listen queue len\":511"));
    assert_non_null(strstr(out.data, "\"start time\":1764493200"));
    assert_non_null(strstr(out.data, "\"processes\":[{\"pid\":101,\"state\":\"Running\""));
    assert_non_null(strstr(out.data, "\"request uri\":\"GET /api/dashboard/orgs/x/\\\"stats\\\"\\\\\""));
    o.full = 0;
    dc_buf_reset(&out);
    assert_int_equal(dc_status_render(st, NULL, &o, 1764493300000, &out), DC_OK);
    assert_true(dc_json_is_valid(out.data));
    assert_null(strstr(out.data, "\"processes\":"));
    dc_buf_free(&out);
    free(st);
}

static dc_pool_status_t *pool_now(void)
{
    dc_pool_status_t *st = malloc(sizeof(*st));

    assert_non_null(st);
    assert_int_equal(dc_metrics_pool_status(st), DC_OK);
    return st;
}

/* The pool's figures in a real metrics file: this process and a forked one are its workers. */
static void test_pool_figures(void **state)
{
    char              path[] = "/tmp/dc_status_testXXXXXX";
    int               fd = mkstemp(path), pipefd[2], ready[2];
    dc_err_t          err;
    dc_pool_status_t *st;
    pid_t             child;
    char              c;

    (void)state;
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    assert_int_equal(dc_metrics_open(path, &err), DC_OK);
    assert_int_equal(dc_metrics_claim(DC_MK_WORKER), DC_OK);
    dc_metrics_pool_sample(-1, 1000000); /* counts the live workers: 1 */

    dc_metrics_pool_busy("GET", "/api/x");
    st = pool_now();
    assert_int_equal(st->total, 1);
    assert_int_equal(st->active, 1);
    assert_int_equal(st->max_active, 1);
    assert_int_equal((int)st->max_children_reached, 1); /* the only worker became busy */
    assert_string_equal(st->procs[0].route, "GET /api/x");
    assert_true(st->procs[0].busy);
    free(st);
    dc_metrics_pool_busy("GET", "/api/y\x01\xff"); /* still busy: counted once */
    dc_metrics_http(DC_MR_OTHER, 200, 3000000);    /* an answer, as the worker records it */
    dc_metrics_pool_served(3000000);
    dc_metrics_pool_idle();
    dc_metrics_slow_request();
    st = pool_now();
    assert_int_equal(st->active, 0);
    assert_int_equal(st->idle, 1);
    assert_int_equal((int)st->accepted, 1);
    assert_int_equal((int)st->slow_requests, 1);
    assert_int_equal((int)st->procs[0].requests, 1);
    assert_int_equal((int)st->procs[0].last_ns, 3000000);
    assert_string_equal(st->procs[0].route, "GET /api/y??"); /* printable only */
    free(st);

    /* a second worker that dies in a request: the most at once is 2, and its request is given back */
    assert_int_equal(pipe(pipefd), 0);
    assert_int_equal(pipe(ready), 0);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        close(pipefd[1]); /* so that a parent that fails early ends this child too (EOF) */
        close(ready[0]);
        if (dc_metrics_claim(DC_MK_WORKER) != DC_OK)
            _exit(1);
        dc_metrics_pool_busy("POST", "/api/z");
        if (write(ready[1], "r", 1) != 1 || read(pipefd[0], &c, 1) < 0)
            _exit(1);
        _exit(0); /* dies busy */
    }
    assert_int_equal(read(ready[0], &c, 1), 1);
    dc_metrics_pool_sample(-1, 2000000);
    dc_metrics_pool_busy("GET", "/api/w");
    st = pool_now();
    assert_int_equal(st->total, 2);
    assert_int_equal(st->active, 2);
    assert_int_equal(st->max_active, 2);
    /* the child's claim counted 2 workers: only the second to begin found every worker busy */
    assert_int_equal((int)st->max_children_reached, 2);
    free(st);
    dc_metrics_pool_idle();
    assert_int_equal(write(pipefd[1], "x", 1), 1);
    assert_int_equal(waitpid(child, NULL, 0), child);
    st = pool_now();
    assert_int_equal(st->total, 1); /* only live workers have rows */
    assert_int_equal(st->active, 0);
    free(st);
    /* its successor takes the slot over and gives its request back: the next one is not "all busy" */
    child = fork();
    if (child == 0) {
        dc_pool_status_t *s2;
        int               ok;
        if (dc_metrics_claim(DC_MK_WORKER) != DC_OK)
            _exit(1);
        dc_metrics_pool_sample(-1, 3000000);
        dc_metrics_pool_busy("GET", "/api/v");
        s2 = malloc(sizeof(*s2));
        ok = s2 != NULL && dc_metrics_pool_status(s2) == DC_OK && s2->max_children_reached == 2 &&
             s2->active == 1;
        _exit(ok ? 0 : 2);
    }
    {
        int status;
        assert_int_equal(waitpid(child, &status, 0), child);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    close(pipefd[0]);
    close(pipefd[1]);
    close(ready[0]);
    close(ready[1]);
    dc_metrics_close();
    unlink(path);
}

/* The kernel's accept queue of a real unix listener: connections nobody accepted yet. */
static void test_listen_queue(void **state)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int                l = socket(AF_UNIX, SOCK_STREAM, 0), cs[3];
    long               queued = -1, backlog = -1;

    (void)state;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "/tmp/dc_status_q%d.sock", (int)getpid());
    unlink(sa.sun_path);
    assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(l, 17), 0);
    assert_int_equal(dc_listen_queue(l, &queued, &backlog), DC_OK);
    assert_int_equal(queued, 0);
    assert_int_equal(backlog, 17);
    for (int i = 0; i < 3; i++) {
        cs[i] = socket(AF_UNIX, SOCK_STREAM, 0);
        assert_int_equal(connect(cs[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
    }
    assert_int_equal(dc_listen_queue(l, &queued, &backlog), DC_OK);
    assert_int_equal(queued, 3);
    for (int i = 0; i < 3; i++)
        close(cs[i]);
    assert_int_equal(dc_listen_queue(cs[0], &queued, &backlog), DC_ERROR); /* closed: not a socket */
    close(l);
    unlink(sa.sun_path);
}

static const char *names(int slot)
{
    return slot == 2 ? "units_status" : NULL;
}

static void test_trace(void **state)
{
    dc_trace_t t, shared;
    char       line[512];
    double     total;

    (void)state;
    dc_trace_begin(&t, 1000000, 3000000); /* 2 ms reading the request */
    assert_null(dc_trace_use(&t));
    dc_trace_db(2, 4000000);
    dc_trace_db(5, 1000000);
    dc_trace_db(2, 1000000); /* the same statement again: one entry */
    dc_trace_render(500000);
    dc_trace_write(100000);
    assert_ptr_equal(dc_trace_use(NULL), &t);
    dc_trace_redis(9000000); /* no trace in use: goes nowhere */
    dc_trace_begin(&shared, 0, 0);
    dc_trace_use(&shared);
    dc_trace_redis(1500000);
    dc_trace_use(NULL);
    dc_trace_add(&t, &shared);
    total = dc_trace_format(&t, 21000000, names, line, sizeof(line));
    assert_true(total > 19.99 && total < 20.01);
    assert_string_equal(
        line, "total_ms=20.0 fcgi_read_ms=2.0 redis_ms=1.5 pg_ms=6.0 pg=[units_status:5.0,stmt5:1.0] "
              "render_ms=0.5 write_ms=0.1");
    dc_trace_use(&t);
    for (int i = 10; i < 10 + DC_TRACE_STMTS; i++)
        dc_trace_db(i, 1000000);
    dc_trace_use(NULL);
    assert_int_equal(t.nstmts, DC_TRACE_STMTS);
    assert_true(t.others_ns == 2000000); /* the two that found no room */
    dc_trace_format(&t, 21000000, names, line, 40);
    assert_int_equal(strlen(line), 39); /* cut, terminated */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options),      cmocka_unit_test(test_text_page),
        cmocka_unit_test(test_json_page),    cmocka_unit_test(test_pool_figures),
        cmocka_unit_test(test_listen_queue), cmocka_unit_test(test_trace),
    };
    return cmocka_run_group_tests_name("dc_status", tests, NULL, NULL);
}
