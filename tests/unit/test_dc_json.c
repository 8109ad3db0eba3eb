/*
 * dc_json: the writer's separators, escaping and nesting, numbers given as
 * text, compacted raw JSON, the validator, and a failed append that leaves
 * the buffer as it was.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dc_json.h"

static void test_writer(void **state)
{
    dc_buf_t  out = DC_BUF_INIT;
    dc_json_t j;
    (void)state;

    dc_json_begin(&j, &out);
    dc_json_object(&j);
    dc_json_key(&j, "s");
    dc_json_str(&j, "a\"b\\c\n\t\x01/é");
    dc_json_key(&j, "n");
    dc_json_int(&j, -42);
    dc_json_key(&j, "a");
    dc_json_array(&j);
    dc_json_bool(&j, 1);
    dc_json_bool(&j, 0);
    dc_json_null(&j);
    dc_json_number(&j, "1.50");
    dc_json_number(&j, "NaN");
    dc_json_str(&j, NULL);
    dc_json_object(&j);
    dc_json_end(&j, '}');
    dc_json_end(&j, ']');
    dc_json_key(&j, "raw");
    dc_json_raw_compact(&j, " { \"k\" : [ 1 , \"a b\\\" c\" ] } ");
    dc_json_end(&j, '}');
    assert_int_equal(dc_json_finish(&j), DC_OK);
    assert_string_equal(out.data, "{\"s\":\"a\\\"b\\\\c\\n\\t\\u0001/é\",\"n\":-42,"
                                  "\"a\":[true,false,null,1.50,null,null,{}],"
                                  "\"raw\":{\"k\":[1,\"a b\\\" c\"]}}");
    dc_buf_free(&out);
}

static void test_numbers(void **state)
{
    static const char *const ok[] = { "0",    "-0",     "1",
                                      "-1.5", "0.25",   "1e5",
                                      "1E+5", "2.5e-3", "123456789012345678901234567890" };
    static const char *const bad[] = { "",   "-",   "01",       "1.", ".5",   "1e",
                                       "+1", "NaN", "Infinity", "1 ", "0x10", "--1" };
    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (!dc_json_is_number(ok[i]))
            fail_msg("refused: %s", ok[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (dc_json_is_number(bad[i]))
            fail_msg("accepted: %s", bad[i]);
    assert_false(dc_json_is_number(NULL));
}

static void test_validator(void **state)
{
    static const char *const ok[] = {
        "{}",
        "[]",
        " null ",
        "true",
        "false",
        "42",
        "\"s\"",
        "{\"a\": {\"b\": [true, false, null]}}",
        "[1, 2.50, \"x\\u00e9\\n\"]",
        "{\"n\": 123456789012345678901234567890}",
        "\n[ ]\n",
    };
    static const char *const bad[] = {
        "",
        " ",
        "{",
        "[1,]",
        "{\"a\":}",
        "{\"a\" 1}",
        "{a:1}",
        "[1 2]",
        "1 2",
        "truex",
        "nul",
        "\"open",
        "\"bad \\x escape\"",
        "\"\\u12g4\"",
        "{\"a\":1} trailing",
        "[\"tab\there\"]",
        "'single'",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (!dc_json_is_valid(ok[i]))
            fail_msg("refused: %s", ok[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (dc_json_is_valid(bad[i]))
            fail_msg("accepted: %s", bad[i]);
    assert_false(dc_json_is_valid(NULL));
}

static void test_too_deep_fails_and_restores(void **state)
{
    dc_buf_t  out = DC_BUF_INIT;
    dc_json_t j;
    (void)state;

    assert_int_equal(dc_buf_append_str(&out, "keep"), DC_OK);
    dc_json_begin(&j, &out);
    for (int i = 0; i < DC_JSON_DEPTH + 1; i++)
        dc_json_array(&j);
    assert_int_equal(dc_json_finish(&j), DC_ENOMEM);
    assert_string_equal(out.data, "keep");
    assert_int_equal(out.len, 4);
    dc_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writer),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_validator),
        cmocka_unit_test(test_too_deep_fails_and_restores),
    };
    return cmocka_run_group_tests_name("dc_json", tests, NULL, NULL);
}
