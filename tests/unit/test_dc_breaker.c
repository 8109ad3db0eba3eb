/*
 * dc_breaker: the state machine of a host's circuit breakers, its failure
 * window, and the one probe of a half-open breaker among processes that
 * share the state file (forked here, as the workers of a master).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "dc_breaker.h"

#define OPEN_MS 60
#define NPROCS  8

static dc_config_t cfg;

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Settings of a test: failures and the rate rule as given, OPEN_MS, short dependency timeouts. */
static void configure(int failures, int window_ms, int min_requests, int percent)
{
    memset(&cfg, 0, sizeof(cfg));
    cfg.breakers_enabled = 1;
    cfg.breaker_failures = failures;
    cfg.breaker_window_ms = window_ms;
    cfg.breaker_min_requests = min_requests;
    cfg.breaker_failure_percent = percent;
    cfg.breaker_open_ms = OPEN_MS;
    cfg.redis_connect_timeout_ms = 1;
    cfg.redis_command_timeout_ms = 1;
    cfg.db_connect_timeout_s = 1;
    cfg.db_statement_timeout_ms = 1;
    dc_breaker_configure(&cfg);
}

static int setup(void **state)
{
    (void)state;
    dc_breaker_close(); /* a fresh process-local state, every breaker off */
    configure(3, 1000, 1000, 50);
    return 0;
}

static dc_breaker_state_t state_of(dc_dep_t d)
{
    dc_breaker_status_t s;

    dc_breaker_status(d, &s);
    return s.state;
}

static uint64_t transitions(dc_dep_t d, dc_breaker_state_t to)
{
    dc_breaker_status_t s;

    dc_breaker_status(d, &s);
    return s.transitions[to];
}

/* Opens d by consecutive failures (the settings of setup). */
static void open_it(dc_dep_t d)
{
    for (int i = 0; i < 3; i++) {
        assert_true(dc_breaker_allow(d));
        dc_breaker_failure(d);
    }
    assert_int_equal(state_of(d), DC_BREAKER_OPEN);
}

static void test_consecutive_failures_open(void **state)
{
    (void)state;
    dc_breaker_failure(DC_DEP_POSTGRES);
    dc_breaker_failure(DC_DEP_POSTGRES);
    assert_int_equal(state_of(DC_DEP_POSTGRES), DC_BREAKER_CLOSED);
    assert_true(dc_breaker_allow(DC_DEP_POSTGRES));
    dc_breaker_failure(DC_DEP_POSTGRES);
    assert_int_equal(state_of(DC_DEP_POSTGRES), DC_BREAKER_OPEN);
    assert_false(dc_breaker_allow(DC_DEP_POSTGRES));
    assert_int_equal(transitions(DC_DEP_POSTGRES, DC_BREAKER_OPEN), 1);
    /* one breaker per dependency */
    assert_int_equal(state_of(DC_DEP_REDIS), DC_BREAKER_CLOSED);
    assert_true(dc_breaker_allow(DC_DEP_REDIS));
}

static void test_a_success_resets_the_consecutive_count(void **state)
{
    (void)state;
    for (int i = 0; i < 5; i++) {
        dc_breaker_failure(DC_DEP_REDIS);
        dc_breaker_failure(DC_DEP_REDIS);
        dc_breaker_success(DC_DEP_REDIS);
    }
    assert_int_equal(state_of(DC_DEP_REDIS), DC_BREAKER_CLOSED);
}

/* 50 % of at least 10 calls in the window open it, without 3 failures in a row. */
static void test_failure_rate_over_the_window_opens(void **state)
{
    (void)state;
    configure(1000, 1000, 10, 50);
    for (int i = 0; i < 4; i++) {
        dc_breaker_success(DC_DEP_REDIS);
        dc_breaker_failure(DC_DEP_REDIS);
    }
    dc_breaker_success(DC_DEP_REDIS);
    dc_breaker_success(DC_DEP_REDIS); /* 10 calls, 4 failed */
    dc_breaker_failure(DC_DEP_REDIS); /* 11, 5: 45 % */
    assert_int_equal(state_of(DC_DEP_REDIS), DC_BREAKER_CLOSED);
    dc_breaker_failure(DC_DEP_REDIS); /* 12, 6: 50 % */
    assert_int_equal(state_of(DC_DEP_REDIS), DC_BREAKER_OPEN);
    assert_false(dc_breaker_allow(DC_DEP_REDIS));
}

/* Below BREAKER_MIN_REQUESTS the rate does not count, whatever it is. */
static void test_too_few_calls_for_the_rate(void **state)
{
    (void)state;
    configure(1000, 1000, 10, 50);
    for (int i = 0; i < 9; i++)
        dc_breaker_failure(DC_DEP_REDIS);
    assert_int_equal(state_of(DC_DEP_REDIS), DC_BREAKER_CLOSED); /* 9 of 9 */
    dc_breaker_failure(DC_DEP_REDIS);
    assert_int_equal(state_of(DC_DEP_REDIS), DC_BREAKER_OPEN); /* 10 of 10 */
}

/* Calls older than the window are forgotten. */
static void test_the_window_forgets(void **state)
{
    (void)state;
    configure(1000, 100, 4, 50);
    dc_breaker_failure(DC_DEP_POSTGRES);
    dc_breaker_failure(DC_DEP_POSTGRES);
    dc_breaker_failure(DC_DEP_POSTGRES);
    dc_breaker_success(DC_DEP_POSTGRES); /* 4 calls, 3 failed: only a success after the third */
    sleep_ms(150);
    dc_breaker_success(DC_DEP_POSTGRES);
    dc_breaker_success(DC_DEP_POSTGRES);
    dc_breaker_success(DC_DEP_POSTGRES);
    dc_breaker_failure(DC_DEP_POSTGRES); /* 1 of 4 here; 4 of 8 had the window kept the first */
    assert_int_equal(state_of(DC_DEP_POSTGRES), DC_BREAKER_CLOSED);
}

static void test_open_rejects_then_one_probe_and_success_closes(void **state)
{
    (void)state;
    open_it(DC_DEP_REDIS);
    for (int i = 0; i < 100; i++)
        assert_false(dc_breaker_allow(DC_DEP_REDIS));
    sleep_ms(OPEN_MS + 10);
    assert_true(dc_breaker_allow(DC_DEP_REDIS));
    assert_int_equal(state_of(DC_DEP_REDIS), DC_BREAKER_HALF_OPEN);
    assert_true(dc_breaker_probing(DC_DEP_REDIS));
    assert_int_equal(transitions(DC_DEP_REDIS, DC_BREAKER_HALF_OPEN), 1);
    dc_breaker_success(DC_DEP_REDIS);
    assert_int_equal(state_of(DC_DEP_REDIS), DC_BREAKER_CLOSED);
    assert_false(dc_breaker_probing(DC_DEP_REDIS));
    assert_true(dc_breaker_allow(DC_DEP_REDIS));
    assert_int_equal(transitions(DC_DEP_REDIS, DC_BREAKER_CLOSED), 1);
    /* a fresh start: the failures that opened it do not count again */
    dc_breaker_failure(DC_DEP_REDIS);
    dc_breaker_failure(DC_DEP_REDIS);
    assert_int_equal(state_of(DC_DEP_REDIS), DC_BREAKER_CLOSED);
}

static void test_failed_probe_opens_again(void **state)
{
    (void)state;
    open_it(DC_DEP_POSTGRES);
    sleep_ms(OPEN_MS + 10);
    assert_true(dc_breaker_allow(DC_DEP_POSTGRES));
    dc_breaker_failure(DC_DEP_POSTGRES);
    assert_int_equal(state_of(DC_DEP_POSTGRES), DC_BREAKER_OPEN);
    assert_false(dc_breaker_allow(DC_DEP_POSTGRES));
    assert_int_equal(transitions(DC_DEP_POSTGRES, DC_BREAKER_OPEN), 2);
    /* open for OPEN_MS again from the failed probe */
    sleep_ms(OPEN_MS / 2);
    assert_false(dc_breaker_allow(DC_DEP_POSTGRES));
    sleep_ms(OPEN_MS / 2 + 10);
    assert_true(dc_breaker_allow(DC_DEP_POSTGRES));
}

/* While open, a late success (a call from before) does not close it: the probe decides. */
static void test_success_while_open_changes_nothing(void **state)
{
    (void)state;
    open_it(DC_DEP_REDIS);
    dc_breaker_success(DC_DEP_REDIS);
    assert_int_equal(state_of(DC_DEP_REDIS), DC_BREAKER_OPEN);
    assert_false(dc_breaker_allow(DC_DEP_REDIS));
}

static void test_off_always_allows(void **state)
{
    (void)state;
    cfg.breakers_enabled = 0;
    dc_breaker_configure(&cfg);
    for (int i = 0; i < 100; i++)
        dc_breaker_failure(DC_DEP_REDIS);
    assert_int_equal(state_of(DC_DEP_REDIS), DC_BREAKER_CLOSED);
    assert_true(dc_breaker_allow(DC_DEP_REDIS));
    assert_int_equal(transitions(DC_DEP_REDIS, DC_BREAKER_OPEN), 0);
    /* and so is a process that never configured it */
    dc_breaker_close();
    assert_true(dc_breaker_allow(DC_DEP_REDIS));
}

/*
 * NPROCS processes of a host ask at the same moment, just after OPEN_MS:
 * exactly one is let through. Each exits 1 when it was.
 */
static int race(const char *path, volatile int64_t *go)
{
    pid_t pids[NPROCS];
    int   through = 0;

    for (int i = 0; i < NPROCS; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            dc_err_t err;
            int      n = 0;
            dc_breaker_close();
            dc_breaker_configure(&cfg);
            if (dc_breaker_open(path, &err) != DC_OK)
                _exit(2);
            while (dc_now_ms() < *go)
                ;
            /* each asks many times, as a worker does for each request */
            for (int k = 0; k < 1000; k++)
                n |= dc_breaker_allow(DC_DEP_REDIS);
            _exit(n);
        }
    }
    for (int i = 0; i < NPROCS; i++) {
        int status;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        assert_true(WEXITSTATUS(status) <= 1);
        through += WEXITSTATUS(status);
    }
    return through;
}

static void test_exactly_one_probe_among_processes(void **state)
{
    char              path[] = "/tmp/dc_breaker_testXXXXXX";
    int               fd = mkstemp(path);
    dc_err_t          err;
    volatile int64_t *go = mmap(NULL, sizeof(*go), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    (void)state;
    assert_true(fd >= 0);
    assert_true(go != MAP_FAILED);
    close(fd);
    /* a probe is lost only after the longest call: here 5 s, longer than any scheduling delay */
    cfg.redis_connect_timeout_ms = 5000;
    dc_breaker_configure(&cfg);
    assert_int_equal(dc_breaker_open(path, &err), DC_OK);
    for (int round = 0; round < 5; round++) {
        open_it(DC_DEP_REDIS); /* in the file: every process sees it */
        *go = dc_now_ms() + OPEN_MS + 20;
        assert_int_equal(race(path, go), 1);
        assert_int_equal(state_of(DC_DEP_REDIS), DC_BREAKER_HALF_OPEN);
        /* not this process's probe; the prober's success closes it for every process */
        assert_false(dc_breaker_probing(DC_DEP_REDIS));
        assert_false(dc_breaker_allow(DC_DEP_REDIS));
        dc_breaker_success(DC_DEP_REDIS);
        assert_int_equal(state_of(DC_DEP_REDIS), DC_BREAKER_CLOSED);
    }
    assert_int_equal(transitions(DC_DEP_REDIS, DC_BREAKER_HALF_OPEN), 5);
    dc_breaker_close();
    munmap((void *)go, sizeof(*go));
    unlink(path);
}

/* A probe that never reports (its process died) is lost after the longest call: another probes. */
static void test_lost_probe_is_taken_over(void **state)
{
    char     path[] = "/tmp/dc_breaker_testXXXXXX";
    int      fd = mkstemp(path), status;
    dc_err_t err;
    pid_t    pid;

    (void)state;
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(dc_breaker_open(path, &err), DC_OK);
    open_it(DC_DEP_REDIS);
    sleep_ms(OPEN_MS + 10);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(dc_breaker_allow(DC_DEP_REDIS)); /* takes the probe and dies */
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(WEXITSTATUS(status), 1);
    assert_false(dc_breaker_allow(DC_DEP_REDIS));
    /* the longest Redis call here is OPEN_MS (the timeouts of setup are shorter) */
    sleep_ms(OPEN_MS + 10);
    assert_true(dc_breaker_allow(DC_DEP_REDIS));
    assert_true(dc_breaker_probing(DC_DEP_REDIS));
    dc_breaker_close();
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_consecutive_failures_open, setup),
        cmocka_unit_test_setup(test_a_success_resets_the_consecutive_count, setup),
        cmocka_unit_test_setup(test_failure_rate_over_the_window_opens, setup),
        cmocka_unit_test_setup(test_too_few_calls_for_the_rate, setup),
        cmocka_unit_test_setup(test_the_window_forgets, setup),
        cmocka_unit_test_setup(test_open_rejects_then_one_probe_and_success_closes, setup),
        cmocka_unit_test_setup(test_failed_probe_opens_again, setup),
        cmocka_unit_test_setup(test_success_while_open_changes_nothing, setup),
        cmocka_unit_test_setup(test_off_always_allows, setup),
        cmocka_unit_test_setup(test_exactly_one_probe_among_processes, setup),
        cmocka_unit_test_setup(test_lost_probe_is_taken_over, setup),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
