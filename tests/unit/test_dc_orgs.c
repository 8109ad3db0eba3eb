/*
 * dc_orgs: validation and normalization on the way in, de-duplication,
 * insertion order, reset and reuse over many batches (checked against a
 * plain reference model: the bug of issue 7 was a reset that forgot a
 * count), the bits of each id (the union of its adds'), growth, and what a
 * failed allocation leaves behind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dc_orgs.h"
#include "fail_alloc.h"

#define A "550e8400-e29b-41d4-a716-446655440000"
#define B "6ba7b810-9dad-11d1-80b4-00c04fd430c8"

/* The UUID of number k: distinct for distinct k. */
static void uuid_of(unsigned k, char out[DC_UUID_LEN + 1])
{
    snprintf(out, DC_UUID_LEN + 1, "%08x-0000-4000-8000-%012x", k * 2654435761u, k);
}

static int add_bits(dc_orgs_t *s, const char *id, unsigned bits)
{
    return dc_orgs_add(s, id, strlen(id), bits);
}

static int add(dc_orgs_t *s, const char *id)
{
    return add_bits(s, id, 1u);
}

static void test_init_is_empty(void **state)
{
    dc_orgs_t s = DC_ORGS_INIT;

    (void)state;
    assert_int_equal(dc_orgs_count(&s), 0);
    assert_null(dc_orgs_at(&s, 0));
    assert_int_equal(dc_orgs_bits_at(&s, 0), 0);
    assert_false(dc_orgs_contains(&s, A));
    dc_orgs_reset(&s);
    assert_int_equal(dc_orgs_count(&s), 0);
    dc_orgs_free(&s);
    dc_orgs_free(NULL);
}

static void test_adds_in_order_without_duplicates(void **state)
{
    dc_orgs_t s = DC_ORGS_INIT;

    (void)state;
    assert_int_equal(add(&s, A), DC_OK);
    assert_int_equal(add(&s, B), DC_OK);
    assert_int_equal(add(&s, A), DC_OK);
    assert_int_equal(dc_orgs_count(&s), 2);
    assert_string_equal(dc_orgs_at(&s, 0), A);
    assert_string_equal(dc_orgs_at(&s, 1), B);
    assert_null(dc_orgs_at(&s, 2));
    assert_true(dc_orgs_contains(&s, A));
    assert_true(dc_orgs_contains(&s, B));
    dc_orgs_free(&s);
}

static void test_normalizes_case(void **state)
{
    dc_orgs_t s = DC_ORGS_INIT;

    (void)state;
    assert_int_equal(add(&s, "550E8400-E29B-41D4-A716-446655440000"), DC_OK);
    assert_int_equal(add(&s, A), DC_OK);
    assert_int_equal(dc_orgs_count(&s), 1);
    assert_string_equal(dc_orgs_at(&s, 0), A);
    assert_true(dc_orgs_contains(&s, "550E8400-E29B-41D4-A716-446655440000"));
    dc_orgs_free(&s);
}

static void test_rejects_what_is_not_a_uuid(void **state)
{
    static const char *bad[] = {
        "",
        "550e8400",
        "550e8400-e29b-41d4-a716-44665544000",   /* 35 */
        "550e8400-e29b-41d4-a716-4466554400000", /* 37 */
        "550e8400-e29b-41d4-a716-44665544000*",
        "550e8400-e29b-41d4-a716-44665544000?",
        "550e8400xe29b-41d4-a716-446655440000",
        "dashboard:*:org:550e8400-e29b-41d4-a71",
    };
    dc_orgs_t s = DC_ORGS_INIT;

    (void)state;
    assert_int_equal(add(&s, A), DC_OK);
    for (size_t i = 0; i < DC_ARRAY_LEN(bad); i++) {
        assert_int_equal(add(&s, bad[i]), DC_EINVAL);
        assert_false(dc_orgs_contains(&s, bad[i]));
    }
    /* a valid id followed by more bytes than the length given is cut there */
    assert_int_equal(dc_orgs_add(&s, B "tail", DC_UUID_LEN, 1u), DC_OK);
    assert_int_equal(dc_orgs_count(&s), 2);
    dc_orgs_free(&s);
}

/*
 * Batch after batch of overlapping, differently sized sets, each added with
 * repeats, against a reference model: after every reset the set holds
 * exactly the current batch, in first-seen order.
 */
static void test_reset_and_reuse_over_many_batches(void **state)
{
    enum { BATCHES = 60, UNIVERSE = 900 };
    dc_orgs_t s = DC_ORGS_INIT;
    unsigned  seed = 12345;

    (void)state;
    for (int b = 0; b < BATCHES; b++) {
        static unsigned char in_batch[UNIVERSE];
        static unsigned      order[UNIVERSE * 2], bits[UNIVERSE];
        size_t               want = 0;
        /* sizes go up and down: 1..800 ids, some batches much smaller than the last */
        unsigned size = 1 + (b % 3 == 2 ? (unsigned)b : (unsigned)(b * 97 + 13) % 800);
        unsigned base = (unsigned)(b * 37) % UNIVERSE;

        memset(in_batch, 0, sizeof(in_batch));
        dc_orgs_reset(&s);
        assert_int_equal(dc_orgs_count(&s), 0);
        for (unsigned i = 0; i < size; i++) {
            char     id[DC_UUID_LEN + 1];
            unsigned k;
            seed = seed * 1103515245u + 12345u;
            k = (base + (seed >> 8) % (size + size / 2 + 1)) % UNIVERSE; /* repeats within a batch */
            uuid_of(k, id);
            assert_int_equal(add_bits(&s, id, 1u << (seed >> 24) % 5), DC_OK);
            if (!in_batch[k]) {
                in_batch[k] = 1;
                order[want++] = k;
                bits[k] = 0;
            }
            bits[k] |= 1u << (seed >> 24) % 5; /* the union of every add's */
        }
        assert_int_equal(dc_orgs_count(&s), want);
        for (size_t i = 0; i < want; i++) {
            char id[DC_UUID_LEN + 1];
            uuid_of(order[i], id);
            assert_string_equal(dc_orgs_at(&s, i), id);
            assert_int_equal(dc_orgs_bits_at(&s, i), bits[order[i]]);
        }
        for (unsigned k = 0; k < UNIVERSE; k++) {
            char id[DC_UUID_LEN + 1];
            uuid_of(k, id);
            assert_int_equal(dc_orgs_contains(&s, id), in_batch[k]);
        }
    }
    dc_orgs_free(&s);
}

static void test_many_ids(void **state)
{
    enum { N = 20000 };
    dc_orgs_t s = DC_ORGS_INIT;

    (void)state;
    for (int round = 0; round < 2; round++)
        for (unsigned k = 0; k < N; k++) {
            char id[DC_UUID_LEN + 1];
            uuid_of(k, id);
            assert_int_equal(add(&s, id), DC_OK);
        }
    assert_int_equal(dc_orgs_count(&s), N);
    for (unsigned k = 0; k < N; k += 997) {
        char id[DC_UUID_LEN + 1];
        uuid_of(k, id);
        assert_string_equal(dc_orgs_at(&s, k), id);
    }
    dc_orgs_free(&s);
}

/* Every allocation of a growing set failed in turn: DC_ENOMEM and the set as it was. */
static void test_failed_allocation_leaves_set_unchanged(void **state)
{
    enum { N = 100 };
    long calls;

    (void)state;
    if (!fail_alloc_works())
        skip();
    {
        dc_orgs_t s = DC_ORGS_INIT;
        fail_alloc_count();
        for (unsigned k = 0; k < N; k++) {
            char id[DC_UUID_LEN + 1];
            uuid_of(k, id);
            assert_int_equal(add_bits(&s, id, 1u << k % 7), DC_OK);
        }
        calls = fail_state.calls;
        fail_alloc_disarm();
        dc_orgs_free(&s);
    }
    assert_true(calls > 0); /* the sweep below must have something to fail */
    for (long at = 0; at < calls; at++) {
        dc_orgs_t s = DC_ORGS_INIT;
        size_t    before = 0;
        int       failed = 0;

        fail_alloc_arm(FAIL_ONE, at);
        for (unsigned k = 0; k < N; k++) {
            char id[DC_UUID_LEN + 1];
            uuid_of(k, id);
            before = dc_orgs_count(&s);
            if (add_bits(&s, id, 1u << k % 7) == DC_ENOMEM) {
                failed = 1;
                assert_int_equal(dc_orgs_count(&s), before);
                assert_false(dc_orgs_contains(&s, id));
                break;
            }
        }
        fail_alloc_disarm();
        assert_true(failed);
        for (size_t i = 0; i < before; i++) {
            char id[DC_UUID_LEN + 1];
            uuid_of((unsigned)i, id);
            assert_string_equal(dc_orgs_at(&s, i), id);
            assert_int_equal(dc_orgs_bits_at(&s, i), 1u << i % 7);
            assert_true(dc_orgs_contains(&s, id));
        }
        dc_orgs_free(&s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_is_empty),
        cmocka_unit_test(test_adds_in_order_without_duplicates),
        cmocka_unit_test(test_normalizes_case),
        cmocka_unit_test(test_rejects_what_is_not_a_uuid),
        cmocka_unit_test(test_reset_and_reuse_over_many_batches),
        cmocka_unit_test(test_many_ids),
        cmocka_unit_test(test_failed_allocation_leaves_set_unchanged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
