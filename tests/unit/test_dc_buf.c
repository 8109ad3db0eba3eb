/*
 * dc_buf: append, printf, reserve, reset and free, growth over many appends,
 * NUL termination, and what a failed allocation leaves behind (fail_alloc.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dc_buf.h"
#include "fail_alloc.h"

static void assert_buf(const dc_buf_t *b, const char *want, size_t len)
{
    assert_int_equal(b->len, len);
    assert_non_null(b->data);
    assert_memory_equal(b->data, want, len);
    assert_int_equal(b->data[len], '\0');
    assert_true(b->cap > len);
}

static void require_fail_alloc(void)
{
    if (!fail_alloc_works())
        skip();
}

static void test_init_is_empty(void **state)
{
    dc_buf_t b = DC_BUF_INIT;

    (void)state;
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    dc_buf_reset(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    dc_buf_free(&b);
    assert_null(b.data);
}

static void test_free_accepts_null(void **state)
{
    (void)state;
    dc_buf_free(NULL);
}

static void test_append_copies_and_terminates(void **state)
{
    dc_buf_t b = DC_BUF_INIT;

    (void)state;
    assert_int_equal(dc_buf_append(&b, "abcdef", 3), DC_OK);
    assert_buf(&b, "abc", 3);
    assert_int_equal(dc_buf_append(&b, "XYZ", 3), DC_OK);
    assert_buf(&b, "abcXYZ", 6);
    dc_buf_free(&b);
}

static void test_append_keeps_embedded_nul(void **state)
{
    dc_buf_t b = DC_BUF_INIT;

    (void)state;
    assert_int_equal(dc_buf_append(&b, "a\0b", 3), DC_OK);
    assert_int_equal(dc_buf_append(&b, "\0", 1), DC_OK);
    assert_buf(&b, "a\0b\0", 4);
    dc_buf_free(&b);
}

static void test_append_nothing_still_terminates(void **state)
{
    dc_buf_t b = DC_BUF_INIT;

    (void)state;
    assert_int_equal(dc_buf_append(&b, "", 0), DC_OK);
    assert_buf(&b, "", 0);
    assert_int_equal(dc_buf_append(&b, NULL, 0), DC_OK);
    assert_buf(&b, "", 0);
    dc_buf_free(&b);
}

static void test_append_str(void **state)
{
    dc_buf_t b = DC_BUF_INIT;

    (void)state;
    assert_int_equal(dc_buf_append_str(&b, "hello"), DC_OK);
    assert_int_equal(dc_buf_append_str(&b, ""), DC_OK);
    assert_int_equal(dc_buf_append_str(&b, ", world"), DC_OK);
    assert_buf(&b, "hello, world", 12);
    dc_buf_free(&b);
}

static void test_growth_over_many_appends(void **state)
{
    enum { ROUNDS = 20000 };
    dc_buf_t b = DC_BUF_INIT;
    size_t   cap = 0;
    int      grown = 0;

    (void)state;
    for (int i = 0; i < ROUNDS; i++) {
        assert_int_equal(dc_buf_append(&b, "0123456789", 10), DC_OK);
        if (b.cap != cap) {
            assert_true(b.cap > cap);
            cap = b.cap;
            grown++;
        }
    }

    assert_int_equal(b.len, ROUNDS * 10);
    assert_true(b.cap > b.len);
    assert_int_equal(b.data[b.len], '\0');
    for (size_t i = 0; i < b.len; i++)
        assert_int_equal(b.data[i], '0' + (int)(i % 10));
    /* geometric growth: 200 kB in 256-byte steps would take ~800 reallocs */
    assert_in_range(grown, 1, 16);
    dc_buf_free(&b);
}

static void test_one_large_append(void **state)
{
    size_t   n = (size_t)3 << 20;
    char    *src = malloc(n);
    dc_buf_t b = DC_BUF_INIT;

    (void)state;
    assert_non_null(src);
    for (size_t i = 0; i < n; i++)
        src[i] = (char)('a' + i % 26);
    assert_int_equal(dc_buf_append(&b, "<", 1), DC_OK);
    assert_int_equal(dc_buf_append(&b, src, n), DC_OK);
    assert_int_equal(b.len, n + 1);
    assert_int_equal(b.data[0], '<');
    assert_memory_equal(b.data + 1, src, n);
    assert_int_equal(b.data[n + 1], '\0');
    free(src);
    dc_buf_free(&b);
}

static void test_reset_keeps_memory(void **state)
{
    dc_buf_t b = DC_BUF_INIT;
    char    *data;
    size_t   cap;

    (void)state;
    assert_int_equal(dc_buf_append_str(&b, "some body that was sent"), DC_OK);
    data = b.data;
    cap = b.cap;
    dc_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, cap);
    assert_string_equal(b.data, "");

    assert_int_equal(dc_buf_append_str(&b, "next"), DC_OK);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, cap);
    assert_buf(&b, "next", 4);
    dc_buf_free(&b);
}

static void test_free_then_reuse(void **state)
{
    dc_buf_t b = DC_BUF_INIT;

    (void)state;
    assert_int_equal(dc_buf_append_str(&b, "first"), DC_OK);
    dc_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    dc_buf_free(&b);
    assert_int_equal(dc_buf_append_str(&b, "second"), DC_OK);
    assert_buf(&b, "second", 6);
    dc_buf_free(&b);
}

static void test_printf_appends(void **state)
{
    dc_buf_t b = DC_BUF_INIT;

    (void)state;
    assert_int_equal(dc_buf_append_str(&b, "x="), DC_OK);
    assert_int_equal(dc_buf_printf(&b, "%d-%s-%.2f", 42, "y", 1.5), DC_OK);
    assert_buf(&b, "x=42-y-1.50", 11);
    assert_int_equal(dc_buf_printf(&b, "%c", '!'), DC_OK);
    assert_buf(&b, "x=42-y-1.50!", 12);
    dc_buf_free(&b);
}

static void test_printf_empty_result_terminates(void **state)
{
    dc_buf_t b = DC_BUF_INIT;

    (void)state;
    assert_int_equal(dc_buf_printf(&b, "%s", ""), DC_OK);
    assert_buf(&b, "", 0);
    dc_buf_free(&b);
}

static void test_printf_grows(void **state)
{
    enum { N = 5000 };
    char    *big = malloc(N + 1);
    dc_buf_t b = DC_BUF_INIT;

    (void)state;
    assert_non_null(big);
    memset(big, 'q', N);
    big[N] = '\0';
    assert_int_equal(dc_buf_append_str(&b, "["), DC_OK);
    assert_int_equal(dc_buf_printf(&b, "%s]", big), DC_OK);
    assert_int_equal(b.len, N + 2);
    assert_int_equal(b.data[0], '[');
    assert_memory_equal(b.data + 1, big, N);
    assert_int_equal(b.data[N + 1], ']');
    assert_int_equal(b.data[N + 2], '\0');
    free(big);
    dc_buf_free(&b);
}

/* Filling a buffer to its last byte must not allocate; one byte more must. */
static void test_exact_fit(void **state)
{
    dc_buf_t b = DC_BUF_INIT;
    char     fill[1024];
    size_t   cap;

    (void)state;
    assert_int_equal(dc_buf_append(&b, "a", 1), DC_OK);
    cap = b.cap;
    assert_true(cap > 8 && cap - 6 <= sizeof(fill));
    memset(fill, 'f', sizeof(fill));
    assert_int_equal(dc_buf_append(&b, fill, cap - 6), DC_OK);

    assert_int_equal(dc_buf_printf(&b, "%04d", 7), DC_OK);
    assert_int_equal(b.len, cap - 1);
    assert_int_equal(b.cap, cap);
    assert_int_equal(b.data[cap - 1], '\0');
    assert_memory_equal(b.data + cap - 5, "0007", 4);

    assert_int_equal(dc_buf_append(&b, "z", 1), DC_OK);
    assert_true(b.cap > cap);
    assert_int_equal(b.len, cap);
    assert_int_equal(b.data[cap - 1], 'z');
    assert_int_equal(b.data[cap], '\0');
    dc_buf_free(&b);
}

static void test_append_oom_on_empty_buffer(void **state)
{
    dc_buf_t b = DC_BUF_INIT;
    int      rc;

    (void)state;
    require_fail_alloc();
    fail_alloc_arm(FAIL_FROM, 0);
    rc = dc_buf_append_str(&b, "x");
    fail_alloc_disarm();
    assert_int_equal(rc, DC_ENOMEM);
    assert_int_equal(fail_state.failed, 1);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_int_equal(dc_buf_append_str(&b, "x"), DC_OK);
    assert_buf(&b, "x", 1);
    dc_buf_free(&b);
}

static void assert_unchanged_after_oom(int append)
{
    char     big[4096];
    dc_buf_t b = DC_BUF_INIT;
    char    *data;
    size_t   cap;
    int      rc;

    memset(big, 'b', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(dc_buf_append_str(&b, "hello"), DC_OK);
    data = b.data;
    cap = b.cap;

    fail_alloc_arm(FAIL_FROM, 0);
    rc = append ? dc_buf_append_str(&b, big) : dc_buf_printf(&b, "%s", big);
    fail_alloc_disarm();
    assert_int_equal(rc, DC_ENOMEM);
    assert_int_equal(fail_state.failed, 1);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, cap);
    assert_buf(&b, "hello", 5);

    assert_int_equal(dc_buf_append_str(&b, "!"), DC_OK);
    assert_buf(&b, "hello!", 6);
    dc_buf_free(&b);
}

static void test_append_oom_leaves_buffer_unchanged(void **state)
{
    (void)state;
    require_fail_alloc();
    assert_unchanged_after_oom(1);
}

static void test_printf_oom_leaves_buffer_unchanged(void **state)
{
    (void)state;
    require_fail_alloc();
    assert_unchanged_after_oom(0);
}

/* A length that would wrap the size must fail before any copy. */
static void test_append_size_overflow(void **state)
{
    dc_buf_t b = DC_BUF_INIT;

    (void)state;
    assert_int_equal(dc_buf_append_str(&b, "abc"), DC_OK);
    assert_int_equal(dc_buf_append(&b, "x", SIZE_MAX), DC_ENOMEM);
    assert_int_equal(dc_buf_append(&b, "x", SIZE_MAX - 3), DC_ENOMEM);
    assert_int_equal(dc_buf_reserve(&b, SIZE_MAX), DC_ENOMEM);
    assert_int_equal(dc_buf_reserve(&b, SIZE_MAX - 3), DC_ENOMEM);
    assert_buf(&b, "abc", 3);
    dc_buf_free(&b);
}

/* The largest length that does not wrap must ask for all of it, not less. */
static void test_append_largest_size_asks_for_all(void **state)
{
    dc_buf_t b = DC_BUF_INIT;
    int      rc;

    (void)state;
    require_fail_alloc();
    assert_int_equal(dc_buf_append_str(&b, "abc"), DC_OK);
    fail_alloc_arm(FAIL_FROM, 0);
    rc = dc_buf_append(&b, "x", SIZE_MAX - 4);
    fail_alloc_disarm();
    assert_int_equal(rc, DC_ENOMEM);
    assert_int_equal(fail_state.calls, 1);
    assert_int_equal(fail_state.last_size, SIZE_MAX);
    assert_buf(&b, "abc", 3);
    dc_buf_free(&b);
}

static void test_reserve_makes_room(void **state)
{
    dc_buf_t b = DC_BUF_INIT;
    char     fill[1000];
    char    *data;
    size_t   cap;

    (void)state;
    assert_int_equal(dc_buf_append_str(&b, "ab"), DC_OK);
    assert_int_equal(dc_buf_reserve(&b, sizeof(fill)), DC_OK);
    assert_true(b.cap >= 2 + sizeof(fill) + 1);
    assert_buf(&b, "ab", 2);
    data = b.data;
    cap = b.cap;

    memset(fill, 'r', sizeof(fill));
    assert_int_equal(dc_buf_append(&b, fill, sizeof(fill)), DC_OK);
    assert_int_equal(b.cap, cap);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.len, 2 + sizeof(fill));
    assert_int_equal(b.data[b.len], '\0');
    dc_buf_free(&b);
}

static void test_reserve_within_capacity_does_not_allocate(void **state)
{
    dc_buf_t b = DC_BUF_INIT;
    char    *data;
    size_t   cap;

    (void)state;
    assert_int_equal(dc_buf_append_str(&b, "abc"), DC_OK);
    cap = b.cap;
    data = b.data;
    assert_int_equal(dc_buf_reserve(&b, 0), DC_OK);
    assert_int_equal(dc_buf_reserve(&b, cap - 4), DC_OK);
    assert_int_equal(b.cap, cap);
    assert_ptr_equal(b.data, data);
    assert_int_equal(dc_buf_reserve(&b, cap - 3), DC_OK);
    assert_true(b.cap >= cap + 1);
    assert_buf(&b, "abc", 3);
    dc_buf_free(&b);
}

static void test_reserve_oom_leaves_buffer_unchanged(void **state)
{
    dc_buf_t b = DC_BUF_INIT;
    char    *data;
    size_t   cap;
    int      rc;

    (void)state;
    require_fail_alloc();
    assert_int_equal(dc_buf_append_str(&b, "keep"), DC_OK);
    data = b.data;
    cap = b.cap;
    fail_alloc_arm(FAIL_FROM, 0);
    rc = dc_buf_reserve(&b, 1 << 20);
    fail_alloc_disarm();
    assert_int_equal(rc, DC_ENOMEM);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, cap);
    assert_buf(&b, "keep", 4);
    dc_buf_free(&b);
}

static void test_reset_then_printf_starts_over(void **state)
{
    dc_buf_t b = DC_BUF_INIT;

    (void)state;
    assert_int_equal(dc_buf_append_str(&b, "a long first body"), DC_OK);
    dc_buf_reset(&b);
    assert_int_equal(dc_buf_printf(&b, "%s", "2nd"), DC_OK);
    assert_buf(&b, "2nd", 3);
    dc_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_is_empty),
        cmocka_unit_test(test_free_accepts_null),
        cmocka_unit_test(test_append_copies_and_terminates),
        cmocka_unit_test(test_append_keeps_embedded_nul),
        cmocka_unit_test(test_append_nothing_still_terminates),
        cmocka_unit_test(test_append_str),
        cmocka_unit_test(test_growth_over_many_appends),
        cmocka_unit_test(test_one_large_append),
        cmocka_unit_test(test_reset_keeps_memory),
        cmocka_unit_test(test_free_then_reuse),
        cmocka_unit_test(test_printf_appends),
        cmocka_unit_test(test_printf_empty_result_terminates),
        cmocka_unit_test(test_printf_grows),
        cmocka_unit_test(test_exact_fit),
        cmocka_unit_test(test_append_oom_on_empty_buffer),
        cmocka_unit_test(test_append_oom_leaves_buffer_unchanged),
        cmocka_unit_test(test_printf_oom_leaves_buffer_unchanged),
        cmocka_unit_test(test_append_size_overflow),
        cmocka_unit_test(test_append_largest_size_asks_for_all),
        cmocka_unit_test(test_reset_then_printf_starts_over),
        cmocka_unit_test(test_reserve_makes_room),
        cmocka_unit_test(test_reserve_within_capacity_does_not_allocate),
        cmocka_unit_test(test_reserve_oom_leaves_buffer_unchanged),
    };

    return cmocka_run_group_tests_name("dc_buf", tests, NULL, NULL);
}
