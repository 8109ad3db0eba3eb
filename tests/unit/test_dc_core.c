/*
 * dc_core: text built into a fixed buffer (numbers at their edges, exact
 * fits, overflow that writes nothing past the end) and the query type names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dc_core.h"

static void test_fix_pieces(void **state)
{
    char     buf[64];
    dc_fix_t f;
    (void)state;

    dc_fix_init(&f, buf, sizeof(buf));
    DC_FIX_LIT(&f, "n=");
    dc_fix_uint(&f, 0);
    dc_fix_str(&f, ",max=");
    dc_fix_uint(&f, 18446744073709551615ULL);
    assert_int_equal(dc_fix_finish(&f, buf), 28);
    assert_string_equal(buf, "n=0,max=18446744073709551615");
}

static void test_fix_exact_fit_and_overflow(void **state)
{
    char     buf[8];
    dc_fix_t f;
    (void)state;

    memset(buf, 'x', sizeof(buf));
    dc_fix_init(&f, buf, 5);
    dc_fix_str(&f, "abcd");
    assert_int_equal(dc_fix_finish(&f, buf), 4);
    assert_string_equal(buf, "abcd");

    memset(buf, 'x', sizeof(buf));
    dc_fix_init(&f, buf, 5);
    dc_fix_str(&f, "abcde");
    dc_fix_str(&f, "f");
    assert_int_equal(dc_fix_finish(&f, buf), DC_ERROR);
    assert_int_equal(buf[5], 'x'); /* nothing written past the buffer */

    dc_fix_init(&f, buf, 0);
    assert_int_equal(dc_fix_finish(&f, buf), DC_ERROR);
}

static void test_qtype_names(void **state)
{
    (void)state;
    assert_string_equal(dc_qtype_name(DC_Q_STATS), "stats");
    assert_string_equal(dc_qtype_name(DC_Q_TEMPERATURE), "temperature");
    assert_string_equal(dc_qtype_name(DC_Q_AUDIT), "audit");
    assert_string_equal(dc_qtype_name(DC_Q_COUNT), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fix_pieces),
        cmocka_unit_test(test_fix_exact_fit_and_overflow),
        cmocka_unit_test(test_qtype_names),
    };
    return cmocka_run_group_tests_name("dc_core", tests, NULL, NULL);
}
