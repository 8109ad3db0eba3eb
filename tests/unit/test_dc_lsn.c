/*
 * dc_lsn: PostgreSQL's LSN text ("16/B374D848") parsed strictly, the stored
 * form (sixteen hex digits) round-tripping, and the comparison a standby
 * read rests on: string order of stored forms is numeric order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dc_lsn.h"

static uint64_t parse(const char *s)
{
    uint64_t v = 0;
    assert_int_equal(dc_lsn_parse(s, strlen(s), &v), DC_OK);
    return v;
}

static void test_parse_postgres_text(void **state)
{
    (void)state;
    assert_true(parse("16/B374D848") == (0x16ull << 32 | 0xB374D848ull));
    assert_true(parse("0/0") == 0);
    assert_true(parse("0/3000148") == 0x3000148ull);
    assert_true(parse("ffffffff/FFFFFFFF") == UINT64_MAX);
    assert_true(parse("1/0") == 1ull << 32);
}

static void test_parse_refuses_malformed(void **state)
{
    static const char *bad[] = { "",
                                 "/",
                                 "16",
                                 "16/",
                                 "/B374D848",
                                 "16/B374D84G",
                                 "123456789/0",
                                 "0/123456789",
                                 "16/B374D848 ",
                                 " 16/1",
                                 "16//1",
                                 "-1/0",
                                 "16/B374D848/1" };
    uint64_t           v = 7;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(dc_lsn_parse(bad[i], strlen(bad[i]), &v), DC_EINVAL);
        assert_true(v == 7);
    }
    /* only the n bytes given count: a prefix that is an LSN is one */
    assert_int_equal(dc_lsn_parse("16/B3 junk", 5, &v), DC_OK);
    assert_true(v == (0x16ull << 32 | 0xB3));
}

static void test_hex_round_trip(void **state)
{
    static const uint64_t vals[] = { 0, 1, 0x16B374D848ull, 0xFFFFFFFFull, 1ull << 32, UINT64_MAX };
    char                  buf[DC_LSN_HEX_LEN + 1];
    uint64_t              v;

    (void)state;
    dc_lsn_hex(0x16B374D848ull, buf);
    assert_string_equal(buf, "00000016b374d848");
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        dc_lsn_hex(vals[i], buf);
        assert_int_equal(strlen(buf), DC_LSN_HEX_LEN);
        assert_int_equal(dc_lsn_parse_hex(buf, strlen(buf), &v), DC_OK);
        assert_true(v == vals[i]);
    }
    assert_int_equal(dc_lsn_parse_hex("16b374d848", 10, &v), DC_EINVAL);
    assert_int_equal(dc_lsn_parse_hex("00000016b374d84x", 16, &v), DC_EINVAL);
    assert_int_equal(dc_lsn_parse_hex("00000016b374d8480", 17, &v), DC_EINVAL);
}

static void test_text_for_logs(void **state)
{
    char buf[DC_LSN_TEXT_MAX];

    (void)state;
    dc_lsn_text(0x16B374D848ull, buf);
    assert_string_equal(buf, "16/B374D848");
    dc_lsn_text(UINT64_MAX, buf);
    assert_string_equal(buf, "FFFFFFFF/FFFFFFFF");
}

/* The scripts keep the larger of two stored values by comparing strings: that must be numeric order. */
static void test_order(void **state)
{
    static const char *asc[] = { "0/0",         "0/FF",        "0/100", "0/B374D848",       "1/0",
                                 "16/B374D847", "16/B374D848", "17/0",  "FFFFFFFF/FFFFFFFF" };
    char               a[DC_LSN_HEX_LEN + 1], b[DC_LSN_HEX_LEN + 1];

    (void)state;
    for (size_t i = 0; i + 1 < sizeof(asc) / sizeof(asc[0]); i++) {
        uint64_t x = parse(asc[i]), y = parse(asc[i + 1]);
        assert_true(x < y);
        assert_true(dc_lsn_reached(y, x));
        assert_false(dc_lsn_reached(x, y));
        assert_true(dc_lsn_reached(x, x));
        dc_lsn_hex(x, a);
        dc_lsn_hex(y, b);
        assert_true(strcmp(a, b) < 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_postgres_text),
        cmocka_unit_test(test_parse_refuses_malformed),
        cmocka_unit_test(test_hex_round_trip),
        cmocka_unit_test(test_text_for_logs),
        cmocka_unit_test(test_order),
    };
    return cmocka_run_group_tests_name("dc_lsn", tests, NULL, NULL);
}
