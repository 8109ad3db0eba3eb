/*
 * dc_log: credentials never reach a log line. dc_log_redact over the URL and
 * conninfo forms of DATABASE_URL and REDIS_URL, and a line written by dc_log
 * itself (stderr captured through a pipe).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dc_log.h"

static void redacts(const char *in, const char *want)
{
    char out[512];

    dc_log_redact(in, out, sizeof(out));
    if (strcmp(out, want) != 0)
        fail_msg("redact(\"%s\") = \"%s\", want \"%s\"", in, out, want);
}

static void test_urls(void **state)
{
    (void)state;
    redacts("redis://user:secret@host:6379/0", "redis://user:***@host:6379/0");
    redacts("redis://:secret@host", "redis://:***@host");
    redacts("redis://default:p%20w%40rd@[::1]:6380/2", "redis://default:***@[::1]:6380/2");
    redacts("postgresql://dashcache:s3cret@127.0.0.1:5432/db?sslmode=disable",
            "postgresql://dashcache:***@127.0.0.1:5432/db?sslmode=disable");
    redacts("postgres://u:pa:ss@h/db", "postgres://u:***@h/db");
    /* an unencoded '@' or '/' in the password: everything up to the last '@' goes */
    redacts("redis://u:p@ss@host", "redis://u:***@host");
    redacts("redis://u:pa/ss@host/1", "redis://u:***@host/1");
    /* inside a message, with text around it */
    redacts("REDIS_URL is invalid: needs a host (got \"redis://u:x y@\")",
            "REDIS_URL is invalid: needs a host (got \"redis://u:x y@\")");
    redacts("cannot connect to redis://u:pw@h:1 (refused)", "cannot connect to redis://u:***@h:1 (refused)");
    redacts("two: redis://a:1@h and postgresql://b:2@g", "two: redis://a:***@h and postgresql://b:***@g");
}

static void test_no_credentials_untouched(void **state)
{
    (void)state;
    redacts("redis://host:6379/0", "redis://host:6379/0");
    redacts("redis://user@host", "redis://user@host");
    redacts("unix:///run/redis.sock?db=2", "unix:///run/redis.sock?db=2");
    redacts("postgresql://dashcache@127.0.0.1:25432/dashcache",
            "postgresql://dashcache@127.0.0.1:25432/dashcache");
    redacts("worker 42 exited with code 0 after 10 ms", "worker 42 exited with code 0 after 10 ms");
    redacts("", "");
    redacts("a://", "a://");
}

static void test_conninfo_password(void **state)
{
    (void)state;
    redacts("host=db user=app password=s3cret dbname=x", "host=db user=app password=*** dbname=x");
    redacts("host=db password='with space \\' quote' dbname=x", "host=db password=*** dbname=x");
    redacts("PASSWORD=Secret", "PASSWORD=***");
    redacts("postgresql://h/db?user=u&password=s3cret&sslmode=require",
            "postgresql://h/db?user=u&password=***&sslmode=require");
    redacts("password=", "password=***");
    redacts("password='unterminated", "password=***");
}

static void test_bounded(void **state)
{
    char out[16];

    (void)state;
    assert_int_equal(dc_log_redact("redis://user:secret@host:6379", out, sizeof(out)), 15);
    assert_string_equal(out, "redis://user:**");
    assert_int_equal(dc_log_redact("abc", out, 1), 0);
    assert_string_equal(out, "");
}

/* What dc_log writes: the password of a formatted URL is not in the line. */
static void test_log_line_redacted(void **state)
{
    int     fds[2], saved;
    char    line[2048];
    ssize_t n;

    (void)state;
    assert_int_equal(pipe(fds), 0);
    saved = dup(STDERR_FILENO);
    dup2(fds[1], STDERR_FILENO);
    dc_log_warn("test.redact", "cannot use %s nor %s", "redis://app:t0p%20secret@cache:6379/1",
                "host=db password=t0psecret");
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fds[1]);
    n = read(fds[0], line, sizeof(line) - 1);
    close(fds[0]);
    assert_true(n > 0);
    line[n] = '\0';
    if (strstr(line, "t0p") != NULL || strstr(line, "secret") != NULL)
        fail_msg("a password reached the log: %s", line);
    assert_non_null(strstr(line, "redis://app:***@cache:6379/1"));
    assert_non_null(strstr(line, "password=***"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_no_credentials_untouched),
        cmocka_unit_test(test_conninfo_password),
        cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_log_line_redacted),
    };

    return cmocka_run_group_tests_name("dc_log", tests, NULL, NULL);
}
