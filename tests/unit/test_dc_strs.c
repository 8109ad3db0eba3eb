/*
 * dc_strs: strings in order with their lengths, reset and reuse over many
 * rounds (checked against a plain reference model), and what a failed
 * allocation leaves behind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dc_strs.h"
#include "fail_alloc.h"

/* The k-th test string: lengths vary from 0 to a few hundred bytes. */
static size_t string_of(unsigned k, char *out, size_t cap)
{
    size_t n = (k * 37u) % 300;

    if (n >= cap)
        n = cap - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)('a' + (k + i) % 26);
    out[n] = '\0';
    return n;
}

static void assert_holds(const dc_strs_t *s, const unsigned *keys, size_t n)
{
    assert_int_equal(dc_strs_count(s), n);
    for (size_t i = 0; i < n; i++) {
        char        want[512];
        size_t      wn = string_of(keys[i], want, sizeof(want)), len = 12345;
        const char *got = dc_strs_at(s, i, &len);
        assert_non_null(got);
        assert_int_equal(len, wn);
        assert_memory_equal(got, want, wn);
        assert_int_equal(got[len], '\0');
    }
    assert_null(dc_strs_at(s, n, NULL));
}

static void test_empty(void **state)
{
    dc_strs_t s = DC_STRS_INIT;

    (void)state;
    assert_int_equal(dc_strs_count(&s), 0);
    assert_null(dc_strs_at(&s, 0, NULL));
    dc_strs_reset(&s);
    assert_int_equal(dc_strs_count(&s), 0);
    dc_strs_free(&s);
    dc_strs_free(NULL);
}

static void test_in_order_with_lengths(void **state)
{
    dc_strs_t s = DC_STRS_INIT;
    size_t    len;

    (void)state;
    assert_int_equal(dc_strs_add(&s, "{\"type\":\"a\"}", 12), DC_OK);
    assert_int_equal(dc_strs_add(&s, "", 0), DC_OK);
    assert_int_equal(dc_strs_add(&s, "xyz-cut here", 3), DC_OK);
    assert_int_equal(dc_strs_count(&s), 3);
    assert_string_equal(dc_strs_at(&s, 0, &len), "{\"type\":\"a\"}");
    assert_int_equal(len, 12);
    assert_string_equal(dc_strs_at(&s, 1, &len), "");
    assert_int_equal(len, 0);
    assert_string_equal(dc_strs_at(&s, 2, &len), "xyz");
    assert_int_equal(len, 3);
    assert_null(dc_strs_at(&s, 3, &len));
    dc_strs_free(&s);
}

/* Round after round of differently sized lists: after a reset the list holds exactly the new round. */
static void test_reset_and_reuse(void **state)
{
    enum { ROUNDS = 50 };
    dc_strs_t s = DC_STRS_INIT;

    (void)state;
    for (unsigned r = 0; r < ROUNDS; r++) {
        unsigned keys[200];
        size_t   n = (r * 53u) % 200;

        dc_strs_reset(&s);
        assert_int_equal(dc_strs_count(&s), 0);
        assert_null(dc_strs_at(&s, 0, NULL));
        for (size_t i = 0; i < n; i++) {
            char   text[512];
            size_t len;
            keys[i] = r * 1000u + (unsigned)i;
            len = string_of(keys[i], text, sizeof(text));
            assert_int_equal(dc_strs_add(&s, text, len), DC_OK);
        }
        assert_holds(&s, keys, n);
    }
    dc_strs_free(&s);
    /* usable again after free */
    assert_int_equal(dc_strs_add(&s, "again", 5), DC_OK);
    assert_string_equal(dc_strs_at(&s, 0, NULL), "again");
    dc_strs_free(&s);
}

/* Every allocation of a growing list failed in turn: DC_ENOMEM and the list as it was. */
static void test_failed_allocation_leaves_list_unchanged(void **state)
{
    enum { N = 60 };
    unsigned keys[N];
    long     calls;

    (void)state;
    if (!fail_alloc_works())
        skip();
    for (unsigned k = 0; k < N; k++)
        keys[k] = k;
    {
        dc_strs_t s = DC_STRS_INIT;
        fail_alloc_count();
        for (unsigned k = 0; k < N; k++) {
            char   text[512];
            size_t len = string_of(k, text, sizeof(text));
            assert_int_equal(dc_strs_add(&s, text, len), DC_OK);
        }
        calls = fail_state.calls;
        fail_alloc_disarm();
        dc_strs_free(&s);
    }
    assert_true(calls > 0); /* the sweep below must have something to fail */
    for (long at = 0; at < calls; at++) {
        dc_strs_t s = DC_STRS_INIT;
        size_t    before = 0;
        int       failed = 0;

        fail_alloc_arm(FAIL_ONE, at);
        for (unsigned k = 0; k < N; k++) {
            char   text[512];
            size_t len = string_of(k, text, sizeof(text));
            before = dc_strs_count(&s);
            if (dc_strs_add(&s, text, len) == DC_ENOMEM) {
                failed = 1;
                assert_int_equal(dc_strs_count(&s), before);
                break;
            }
        }
        fail_alloc_disarm();
        assert_true(failed);
        assert_holds(&s, keys, before);
        /* and it goes on working */
        {
            char   text[512];
            size_t len = string_of(before, text, sizeof(text));
            assert_int_equal(dc_strs_add(&s, text, len), DC_OK);
            assert_holds(&s, keys, before + 1);
        }
        dc_strs_free(&s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_in_order_with_lengths),
        cmocka_unit_test(test_reset_and_reuse),
        cmocka_unit_test(test_failed_allocation_leaves_list_unchanged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
