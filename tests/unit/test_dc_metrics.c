/*
 * dc_metrics: the exposition is well formed beyond what promtool checks
 * (each family once, contiguous, no duplicate series, cumulative buckets
 * ending in +Inf equal to _count), slots are shared across processes, and
 * a dead process's counts stay in the sum when its slot is taken over.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "dc_metrics.h"

static const char *const stmts[] = { "org_exists", "units_status", "trends" };
static char              path[64];

static int setup(void **state)
{
    dc_err_t err;
    (void)state;
    snprintf(path, sizeof(path), "/tmp/dc-test-metrics-%d", (int)getpid());
    unlink(path);
    assert_int_equal(dc_metrics_open(path, &err), DC_OK);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    dc_metrics_close();
    unlink(path);
    return 0;
}

static void render(dc_buf_t *out)
{
    dc_buf_reset(out);
    assert_int_equal(dc_metrics_render(out, stmts, 3), DC_OK);
}

/* The value of one series line (exact name{labels}), or -1. */
static double value_of(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p != NULL && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return atof(p + n + 1);
    }
    return -1;
}

static void test_exposition_is_well_formed(void **state)
{
    dc_buf_t out = DC_BUF_INIT;
    char    *copy, *save = NULL, *line;
    char     families[64][96], series[2048][200], last_family[96] = "";
    int      nfam = 0, nser = 0;
    (void)state;

    assert_int_equal(dc_metrics_claim(DC_MK_WORKER), DC_OK);
    dc_metrics_http(DC_MR_STATS, 200, 3000000);
    dc_metrics_http(DC_MR_STATS, 200, 70000000);
    dc_metrics_http(DC_MR_STATS, 404, 10);
    dc_metrics_cache_latency(DC_COP_GET, 2000000000);
    dc_metrics_db_query(1, 1, 4000000);
    render(&out);

    copy = strdup(out.data);
    for (line = strtok_r(copy, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        char name[200];
        if (strncmp(line, "# TYPE ", 7) == 0) {
            sscanf(line + 7, "%95s", families[nfam]);
            for (int i = 0; i < nfam; i++)
                if (strcmp(families[i], families[nfam]) == 0)
                    fail_msg("family %s declared twice", families[nfam]);
            snprintf(last_family, sizeof(last_family), "%s", families[nfam]);
            nfam++;
            continue;
        }
        if (line[0] == '#')
            continue;
        sscanf(line, "%199s", name);
        /* the series belongs to the family declared last: families are contiguous */
        if (strncmp(name, last_family, strlen(last_family)) != 0)
            fail_msg("series %s outside its family (last TYPE %s)", name, last_family);
        for (int i = 0; i < nser; i++)
            if (strcmp(series[i], name) == 0)
                fail_msg("duplicate series %s", name);
        assert_true(nser < 2048);
        snprintf(series[nser++], sizeof(series[0]), "%s", name);
    }
    free(copy);

    /* buckets cumulative, +Inf equal to _count */
    {
        static const char *const les[] = { "0.001", "0.005", "0.01", "0.05", "0.1", "0.5", "1", "5", "+Inf" };
        double                   prev = 0, v;
        char                     s[200];
        for (size_t i = 0; i < 9; i++) {
            snprintf(s, sizeof(s),
                     "dashboard_http_request_duration_seconds_bucket{route=\"stats\",le=\"%s\"}", les[i]);
            v = value_of(out.data, s);
            assert_true(v >= prev);
            prev = v;
        }
        assert_true(prev == 3);
        assert_true(value_of(out.data, "dashboard_http_request_duration_seconds_count{route=\"stats\"}") ==
                    3);
        assert_true(
            value_of(out.data,
                     "dashboard_http_request_duration_seconds_bucket{route=\"stats\",le=\"0.001\"}") == 1);
        assert_true(
            value_of(out.data,
                     "dashboard_http_request_duration_seconds_bucket{route=\"stats\",le=\"0.005\"}") == 2);
        /* the cache family stops at 0.5 s; a 2 s read is only in +Inf */
        assert_true(
            value_of(out.data, "dashboard_cache_latency_seconds_bucket{operation=\"get\",le=\"0.5\"}") == 0);
        assert_true(
            value_of(out.data, "dashboard_cache_latency_seconds_bucket{operation=\"get\",le=\"+Inf\"}") == 1);
        assert_true(
            value_of(out.data, "dashboard_cache_latency_seconds_bucket{operation=\"get\",le=\"1\"}") == -1);
    }
    assert_true(value_of(out.data, "dashboard_http_requests_total{route=\"stats\",status=\"200\"}") == 2);
    assert_true(value_of(out.data, "dashboard_http_requests_total{route=\"stats\",status=\"404\"}") == 1);
    assert_true(value_of(out.data, "dashboard_db_queries_total{statement=\"units_status\"}") == 1);
    /* every family is there from the first scrape, with zeros */
    assert_true(value_of(out.data, "dashboard_cache_hit_total{query_type=\"compliance\"}") == 0);
    assert_true(value_of(out.data, "dashboard_invalidations_total{source=\"outbox\"}") == 0);
    assert_true(nfam >= 17);
    dc_buf_free(&out);
}

/* A child process adds to its own slot and exits. */
static void child_hits(int n)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (dc_metrics_claim(DC_MK_WORKER) != DC_OK)
            _exit(1);
        for (int i = 0; i < n; i++)
            dc_metrics_cache_hit(DC_Q_STATS);
        _exit(0);
    }
    {
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
}

static void test_dead_workers_stay_in_the_sum(void **state)
{
    dc_buf_t             out = DC_BUF_INIT;
    dc_metrics_summary_t s;
    (void)state;

    child_hits(5);
    child_hits(3); /* takes over the dead child's slot and keeps adding */
    for (int i = 0; i < 20; i++)
        child_hits(1);
    render(&out);
    assert_true(value_of(out.data, "dashboard_cache_hit_total{query_type=\"stats\"}") == 28);
    assert_int_equal(dc_metrics_summary(&s), DC_OK);
    assert_int_equal(s.hits[DC_Q_STATS], 28);
    /* the dead children are not counted as live workers */
    assert_true(value_of(out.data, "dashboard_workers") == 0);
    dc_buf_free(&out);
}

/*
 * The sampler's figures: every result label from the first scrape; the
 * counts add up over processes; the gauge of the oldest inconsistency is
 * the largest of the live processes' (not a sum), set rather than added,
 * in seconds.
 */
static void test_consistency_families(void **state)
{
    dc_buf_t out = DC_BUF_INIT;
    pid_t    pid;
    int      st, p[2], q[2];
    char     c;

    (void)state;
    render(&out);
    assert_true(value_of(out.data, "dashboard_consistency_checks_total{result=\"consistent\"}") == 0);
    assert_true(value_of(out.data, "dashboard_consistency_checks_total{result=\"inconsistent\"}") == 0);
    assert_true(value_of(out.data, "dashboard_consistency_checks_total{result=\"skipped\"}") == 0);
    assert_true(value_of(out.data, "dashboard_consistency_checks_total{result=\"error\"}") == 0);
    assert_true(value_of(out.data, "dashboard_consistency_oldest_inconsistency_seconds") == 0);
    assert_true(value_of(out.data, "dashboard_invalidations_total{source=\"sampler\"}") == 0);

    assert_int_equal(dc_metrics_claim(DC_MK_INVALIDATOR), DC_OK);
    dc_metrics_consistency_check(DC_CC_CONSISTENT);
    dc_metrics_consistency_check(DC_CC_INCONSISTENT);
    dc_metrics_consistency_check(DC_CC_COUNT); /* out of range: ignored */
    dc_metrics_consistency_oldest(90000);
    dc_metrics_consistency_oldest(1500); /* a gauge: set */

    /* a second live process with an older inconsistency, and one more check */
    assert_int_equal(pipe(p), 0);
    assert_int_equal(pipe(q), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (dc_metrics_claim(DC_MK_INVALIDATOR) != DC_OK)
            _exit(1);
        dc_metrics_consistency_check(DC_CC_CONSISTENT);
        dc_metrics_consistency_oldest(2250);
        /* told by p, then alive until q closes: killed below, or its parent gone after a failed assert */
        close(q[1]);
        if (write(p[1], "x", 1) != 1)
            _exit(1);
        while (read(q[0], &c, 1) > 0)
            ;
        _exit(0);
    }
    assert_int_equal(read(p[0], &c, 1), 1);
    render(&out);
    assert_true(value_of(out.data, "dashboard_consistency_checks_total{result=\"consistent\"}") == 2);
    assert_true(value_of(out.data, "dashboard_consistency_checks_total{result=\"inconsistent\"}") == 1);
    assert_true(value_of(out.data, "dashboard_consistency_checks_total{result=\"skipped\"}") == 0);
    assert_true(value_of(out.data, "dashboard_consistency_oldest_inconsistency_seconds") == 2.25);
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    close(p[0]);
    close(p[1]);
    close(q[0]);
    close(q[1]);
    /* a dead process's gauge no longer counts; its counts do */
    render(&out);
    assert_true(value_of(out.data, "dashboard_consistency_oldest_inconsistency_seconds") == 1.5);
    assert_true(value_of(out.data, "dashboard_consistency_checks_total{result=\"consistent\"}") == 2);
    dc_buf_free(&out);
}

static void test_disabled_records_nothing(void **state)
{
    dc_buf_t out = DC_BUF_INIT;
    (void)state;

    dc_metrics_close();
    dc_metrics_disable();
    assert_int_equal(dc_metrics_claim(DC_MK_WORKER), DC_OK);
    dc_metrics_cache_hit(DC_Q_STATS);
    assert_int_equal(dc_metrics_render(&out, stmts, 3), DC_ERROR);
    dc_buf_free(&out);
}

/*
 * Scrapes racing writers: forked workers observe durations in every bucket
 * (and above the last) while this process renders. Every render must show
 * cumulative buckets that never decrease, +Inf equal to _count, and no
 * series lower than in the render before.
 */
#define RACE_WRITERS 3
#define RACE_RENDERS 3000

static const int64_t race_ns[] = { 500000,    3000000,   7000000,    20000000,  70000000,
                                   200000000, 700000000, 2000000000, 9000000000 };

static void race_writer(void)
{
    if (dc_metrics_claim(DC_MK_WORKER) != DC_OK)
        _exit(1);
    for (unsigned i = 0;; i++)
        dc_metrics_http(DC_MR_HEALTH, 200, race_ns[i % DC_ARRAY_LEN(race_ns)]);
}

/* The values of one histogram series in a render: cumulative buckets, then +Inf, then _count. */
static int read_series(const char *text, const char *name, const char *labels, double *v, int max)
{
    static const char *const les[] = { "0.001", "0.005", "0.01", "0.05", "0.1", "0.5", "1", "5", "+Inf" };
    char                     series[256];
    int                      n = 0;

    for (size_t i = 0; i < DC_ARRAY_LEN(les) && n < max; i++) {
        snprintf(series, sizeof(series), "%s_bucket{%s,le=\"%s\"}", name, labels, les[i]);
        v[n] = value_of(text, series);
        if (v[n] >= 0)
            n++;
    }
    snprintf(series, sizeof(series), "%s_count{%s}", name, labels);
    v[n++] = value_of(text, series);
    return n;
}

static void test_scrapes_are_consistent_under_writers(void **state)
{
    pid_t    kids[RACE_WRITERS];
    dc_buf_t out = DC_BUF_INIT;
    double   prev[16] = { 0 };
    int      bad = 0;
    char     why[256] = "";
    (void)state;

    for (int k = 0; k < RACE_WRITERS; k++) {
        kids[k] = fork();
        assert_true(kids[k] >= 0);
        if (kids[k] == 0)
            race_writer();
    }
    int renders = getenv("DC_RACE_RENDERS") ? atoi(getenv("DC_RACE_RENDERS")) : RACE_RENDERS;
    for (int r = 0; r < renders && !bad; r++) {
        double v[16];
        int    n;
        render(&out);
        n = read_series(out.data, "dashboard_http_request_duration_seconds", "route=\"health\"", v, 16);
        if (n != 10) {
            snprintf(why, sizeof(why), "render %d: %d values", r, n);
            bad = 1;
            break;
        }
        for (int i = 0; i < n; i++) {
            if (i > 0 && i < n - 1 && v[i] < v[i - 1]) {
                snprintf(why, sizeof(why), "render %d: bucket %d = %.0f below bucket %d = %.0f", r, i, v[i],
                         i - 1, v[i - 1]);
                bad = 1;
            } else if (v[i] < prev[i]) {
                snprintf(why, sizeof(why), "render %d: value %d went back from %.0f to %.0f", r, i, prev[i],
                         v[i]);
                bad = 1;
            }
            prev[i] = v[i];
        }
        if (!bad && v[n - 1] != v[n - 2]) {
            snprintf(why, sizeof(why), "render %d: le=\"+Inf\" %.0f but _count %.0f", r, v[n - 2], v[n - 1]);
            bad = 1;
        }
    }
    for (int k = 0; k < RACE_WRITERS; k++) {
        kill(kids[k], SIGKILL);
        waitpid(kids[k], NULL, 0);
    }
    dc_buf_free(&out);
    if (bad)
        fail_msg("%s", why);
    assert_true(prev[9] > 0); /* the writers did write */
}

/*
 * A process whose claim fails (every slot held by a live process) records
 * nothing: not into the slot of the process it was forked from.
 */
static void test_failed_claim_writes_nowhere(void **state)
{
    int      res[2], hold[2], claimed = 0, failed = 0;
    pid_t    kids[512];
    int      nkids = 0;
    dc_buf_t out = DC_BUF_INIT;
    (void)state;

    assert_int_equal(dc_metrics_claim(DC_MK_MASTER), DC_OK);
    assert_int_equal(pipe(res), 0);
    assert_int_equal(pipe(hold), 0);
    while (!failed && nkids < (int)DC_ARRAY_LEN(kids)) {
        pid_t pid = fork();
        char  c;
        assert_true(pid >= 0);
        if (pid == 0) {
            close(hold[1]);
            if (dc_metrics_claim(DC_MK_WORKER) == DC_OK) {
                c = 'k';
                if (write(res[1], &c, 1) != 1)
                    _exit(1);
                while (read(hold[0], &c, 1) > 0) /* hold the slot until released */
                    ;
                _exit(0);
            }
            for (int i = 0; i < 7; i++)
                dc_metrics_http(DC_MR_METRICS, 200, 1000);
            dc_metrics_worker_restart();
            c = 'f';
            _exit(write(res[1], &c, 1) == 1 ? 0 : 1);
        }
        kids[nkids++] = pid;
        assert_int_equal(read(res[0], &c, 1), 1);
        if (c == 'k')
            claimed++;
        else
            failed = 1;
    }
    close(hold[1]); /* releases every holder */
    for (int k = 0; k < nkids; k++)
        waitpid(kids[k], NULL, 0);
    close(hold[0]);
    close(res[0]);
    close(res[1]);
    assert_true(failed);
    assert_true(claimed > 0);
    render(&out);
    assert_true(value_of(out.data, "dashboard_http_requests_total{route=\"metrics\",status=\"200\"}") == 0);
    assert_true(value_of(out.data, "dashboard_worker_restarts_total") == 0);
    dc_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exposition_is_well_formed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_workers_stay_in_the_sum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_consistency_families, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disabled_records_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scrapes_are_consistent_under_writers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_claim_writes_nowhere, setup, teardown),
    };
    return cmocka_run_group_tests_name("dc_metrics", tests, NULL, NULL);
}
