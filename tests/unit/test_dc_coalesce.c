/*
 * dc_coalesce: one fill per key per host through shared memory, with
 * readers in other processes (fork) on a table in a file of the test's own.
 * A reader shares only a fill that began after it arrived; the others wait
 * for the next one; a failed fill is shared as a failure; a filler that
 * dies is taken over; another key's fill in the slot means alone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "dc_coalesce.h"

#define KEY  "dashboard:stats:org:{550e8400-e29b-41d4-a716-446655440000}"
#define FILL 2000 /* ms a fill may last */

static char path[64];

static int setup(void **state)
{
    dc_err_t err;
    int      fd;

    (void)state;
    snprintf(path, sizeof(path), "/tmp/dc_coalesce_test_XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(dc_coalesce_open(path, &err), DC_OK);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    dc_coalesce_close();
    unlink(path);
    return 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/*
 * A reader in a child process that arrived at arrival: writes to fd what it
 * got ("OK <body>", "FILL", "ALONE"); a filler fills with body.
 */
static pid_t reader(int64_t arrival, const char *fill_with, int fd)
{
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        dc_buf_t      out = DC_BUF_INIT;
        char          etag[DC_ETAG_LEN + 1], line[128];
        dc_coalesce_t h;
        int rc = dc_coalesce_begin(KEY, strlen(KEY), arrival, dc_now_ms() + 5000, FILL, &out, etag, &h);
        if (rc == DC_OK)
            snprintf(line, sizeof(line), "OK %.*s\n", (int)out.len, out.data);
        else
            snprintf(line, sizeof(line), "%s\n", rc == DC_DECLINED ? "FILL" : "ALONE");
        if (rc == DC_DECLINED && fill_with != NULL)
            dc_coalesce_done(&h, 1, fill_with, strlen(fill_with), "0123456789abcdef");
        if (write(fd, line, strlen(line)) < 0)
            _exit(2);
        _exit(0);
    }
    return pid;
}

static void expect_line(FILE *f, const char *want)
{
    char line[128];

    assert_non_null(fgets(line, sizeof(line), f));
    line[strcspn(line, "\n")] = '\0';
    assert_string_equal(line, want);
}

static void reap(pid_t pid)
{
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Readers that arrived before the fill began get its answer; the fill is one. */
static void test_readers_share_a_fill_that_began_after_they_arrived(void **state)
{
    int           p[2];
    int64_t       arrived = dc_now_ms();
    dc_coalesce_t h;
    dc_buf_t      out = DC_BUF_INIT;
    char          etag[DC_ETAG_LEN + 1];
    pid_t         kids[3];
    FILE         *f;

    (void)state;
    assert_int_equal(pipe(p), 0);
    sleep_ms(2);
    assert_int_equal(dc_coalesce_begin(KEY, strlen(KEY), arrived, dc_now_ms() + 5000, FILL, &out, etag, &h),
                     DC_DECLINED);
    for (int i = 0; i < 3; i++)
        kids[i] = reader(arrived, NULL, p[1]);
    sleep_ms(50); /* they wait */
    dc_coalesce_done(&h, 1, "{\"n\":1}", 7, "0123456789abcdef");
    f = fdopen(p[0], "r");
    for (int i = 0; i < 3; i++)
        expect_line(f, "OK {\"n\":1}");
    for (int i = 0; i < 3; i++)
        reap(kids[i]);
    fclose(f);
    close(p[1]);
    dc_buf_free(&out);
}

/*
 * A reader that arrived after the fill began (a write may have been
 * acknowledged in between) does not get its answer: it waits for it to end
 * and fills the next one itself.
 */
static void test_a_reader_arriving_after_the_fill_began_gets_the_next_one(void **state)
{
    int           p[2];
    dc_coalesce_t h;
    dc_buf_t      out = DC_BUF_INIT;
    char          etag[DC_ETAG_LEN + 1];
    pid_t         late;
    FILE         *f;

    (void)state;
    assert_int_equal(pipe(p), 0);
    assert_int_equal(
        dc_coalesce_begin(KEY, strlen(KEY), dc_now_ms(), dc_now_ms() + 5000, FILL, &out, etag, &h),
        DC_DECLINED);
    sleep_ms(5);
    late = reader(dc_now_ms(), "{\"n\":2}", p[1]);
    sleep_ms(50);
    dc_coalesce_done(&h, 1, "{\"n\":1}", 7, "0123456789abcdef");
    f = fdopen(p[0], "r");
    expect_line(f, "FILL");
    reap(late);
    /* and a reader that arrived before that second fill gets its answer */
    assert_int_equal(
        dc_coalesce_begin(KEY, strlen(KEY), dc_now_ms() - 1000, dc_now_ms() + 5000, FILL, &out, etag, &h),
        DC_OK);
    assert_memory_equal(out.data, "{\"n\":2}", 7);
    fclose(f);
    close(p[1]);
    dc_buf_free(&out);
}

/* A failed fill is a failure for its waiters too: each queries alone (and fails fast). */
static void test_a_failed_fill_sends_its_waiters_alone(void **state)
{
    int           p[2];
    int64_t       arrived = dc_now_ms();
    dc_coalesce_t h;
    dc_buf_t      out = DC_BUF_INIT;
    char          etag[DC_ETAG_LEN + 1];
    pid_t         kid;
    FILE         *f;

    (void)state;
    assert_int_equal(pipe(p), 0);
    assert_int_equal(dc_coalesce_begin(KEY, strlen(KEY), arrived, dc_now_ms() + 5000, FILL, &out, etag, &h),
                     DC_DECLINED);
    kid = reader(arrived, NULL, p[1]);
    sleep_ms(30);
    dc_coalesce_done(&h, 0, NULL, 0, NULL);
    f = fdopen(p[0], "r");
    expect_line(f, "ALONE");
    reap(kid);
    fclose(f);
    close(p[1]);
    dc_buf_free(&out);
}

/* A filler that dies before it is done is taken over by the next reader. */
static void test_a_dead_filler_is_taken_over(void **state)
{
    dc_coalesce_t h;
    dc_buf_t      out = DC_BUF_INIT;
    char          etag[DC_ETAG_LEN + 1];
    pid_t         pid;

    (void)state;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int rc = dc_coalesce_begin(KEY, strlen(KEY), dc_now_ms(), dc_now_ms() + 5000, FILL, &out, etag, &h);
        _exit(rc == DC_DECLINED ? 0 : 3);
    }
    reap(pid);
    assert_int_equal(
        dc_coalesce_begin(KEY, strlen(KEY), dc_now_ms(), dc_now_ms() + 5000, FILL, &out, etag, &h),
        DC_DECLINED);
    dc_buf_free(&out);
}

/* Another key's live fill in the slot: this key is not coalesced (no waiting on a stranger). */
static void test_another_keys_fill_means_alone(void **state)
{
    dc_coalesce_t h, h2;
    dc_buf_t      out = DC_BUF_INIT;
    char          etag[DC_ETAG_LEN + 1], other[96];
    int           found = 0;

    (void)state;
    assert_int_equal(
        dc_coalesce_begin(KEY, strlen(KEY), dc_now_ms(), dc_now_ms() + 5000, FILL, &out, etag, &h),
        DC_DECLINED);
    /* a key of the same slot, found by trying */
    for (int i = 0; i < 100000 && !found; i++) {
        int rc;
        snprintf(other, sizeof(other), "dashboard:other:%d", i);
        rc = dc_coalesce_begin(other, strlen(other), dc_now_ms(), dc_now_ms() + 50, FILL, &out, etag, &h2);
        if (rc == DC_UNAVAILABLE)
            found = 1;
        else
            dc_coalesce_done(&h2, 0, NULL, 0, NULL); /* a slot of its own: give it back */
    }
    assert_true(found);
    dc_coalesce_done(&h, 1, "x", 1, "0123456789abcdef");
    dc_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_readers_share_a_fill_that_began_after_they_arrived, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_reader_arriving_after_the_fill_began_gets_the_next_one, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_failed_fill_sends_its_waiters_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_dead_filler_is_taken_over, setup, teardown),
        cmocka_unit_test_setup_teardown(test_another_keys_fill_means_alone, setup, teardown),
    };
    return cmocka_run_group_tests_name("dc_coalesce", tests, NULL, NULL);
}
