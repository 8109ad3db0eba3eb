/*
 * dc_arena: aligned carving across blocks, a reset that reuses the kept
 * blocks without allocating, a huge block given back, failures as NULL.
 */
#include <stdarg.h>
#include <stdalign.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dc_arena.h"
#include "fail_alloc.h"

static void test_aligned_and_distinct(void **state)
{
    dc_arena_t a = DC_ARENA_INIT;
    char      *prev = NULL;

    (void)state;
    for (size_t n = 1; n < 300; n += 7) {
        char *p = dc_arena_alloc(&a, n);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % alignof(max_align_t), 0);
        memset(p, 0xab, n); /* ASan: the whole of it is ours */
        assert_true(p != prev);
        prev = p;
    }
    dc_arena_free(&a);
}

static void test_spans_blocks_and_reuses_them_after_reset(void **state)
{
    dc_arena_t a = DC_ARENA_INIT;
    long       calls;

    (void)state;
    if (!fail_alloc_works())
        skip();
    for (int i = 0; i < 50; i++) /* 50 x 4 KiB: four 64 KiB blocks */
        assert_non_null(dc_arena_alloc(&a, 4096));
    assert_true(a.kept >= 50 * 4096 && a.kept <= DC_ARENA_KEEP);
    fail_alloc_count();
    for (int round = 0; round < 10; round++) {
        dc_arena_reset(&a);
        for (int i = 0; i < 50; i++)
            assert_non_null(dc_arena_alloc(&a, 4096));
    }
    calls = fail_state.calls;
    fail_alloc_disarm();
    assert_int_equal(calls, 0);
    dc_arena_free(&a);
    assert_null(a.head);
    assert_int_equal(a.kept, 0);
}

static void test_huge_block_is_given_back(void **state)
{
    dc_arena_t a = DC_ARENA_INIT;
    char      *big;

    (void)state;
    assert_non_null(dc_arena_alloc(&a, 100));
    big = dc_arena_alloc(&a, 4 * DC_ARENA_KEEP); /* one reply larger than what is kept */
    assert_non_null(big);
    memset(big, 1, 4 * DC_ARENA_KEEP);
    assert_true(a.kept > DC_ARENA_KEEP);
    dc_arena_reset(&a);
    assert_true(a.kept <= DC_ARENA_KEEP);
    assert_non_null(dc_arena_alloc(&a, 100));
    dc_arena_free(&a);
}

static void test_failures_are_null(void **state)
{
    dc_arena_t a = DC_ARENA_INIT;

    (void)state;
    assert_null(dc_arena_alloc(&a, SIZE_MAX - 8)); /* overflow, nothing allocated */
    if (!fail_alloc_works())
        skip();
    fail_alloc_arm(FAIL_FROM, 0);
    assert_null(dc_arena_alloc(&a, 10));
    fail_alloc_disarm();
    assert_null(a.head);
    assert_non_null(dc_arena_alloc(&a, 10));
    dc_arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aligned_and_distinct),
        cmocka_unit_test(test_spans_blocks_and_reuses_them_after_reset),
        cmocka_unit_test(test_huge_block_is_given_back),
        cmocka_unit_test(test_failures_are_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
