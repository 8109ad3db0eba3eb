/*
 * dc_etag: the validator of a body (FNV-1a 64 against its published test
 * vectors, a function of the body's data alone: not of the time of the read
 * that ends it), what a stored validator must look like, and If-None-Match as RFC 9110 13.1.2 reads it: "*", lists, weak
 * tags compared weakly, white space, empty members, and malformed values,
 * which match nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "dc_etag.h"

#define TAG   "0123456789abcdef"
#define OTHER "fedcba9876543210"

/* A reference FNV-1a 64 of every byte, as lower-case hex. */
static void fnv1a_64_hex(const char *s, size_t n, char out[DC_ETAG_LEN + 1])
{
    uint64_t h = 0xcbf29ce484222325u;

    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3u;
    snprintf(out, DC_ETAG_LEN + 1, "%016llx", (unsigned long long)h);
}

static void test_fnv1a_64_vectors(void **state)
{
    static const struct {
        const char *body, *want;
    } v[] = {
        { "", "cbf29ce484222325" },
        { "a", "af63dc4c8601ec8c" },
        { "foobar", "85944171f73967e8" },
    };
    char out[DC_ETAG_LEN + 1];

    (void)state;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        memset(out, 'x', sizeof(out));
        dc_etag_of(v[i].body, strlen(v[i].body), out);
        assert_string_equal(out, v[i].want);
        assert_true(dc_etag_valid(out, strlen(out)));
        fnv1a_64_hex(v[i].body, strlen(v[i].body), out); /* the reference agrees with the published values */
        assert_string_equal(out, v[i].want);
    }
}

/* The body, all of it and only it: one byte anywhere changes the validator. */
static void test_validator_follows_the_body(void **state)
{
    char         body[] = "{\"orgId\":\"550e8400-e29b-41d4-a716-446655440000\",\"unresolved\":3}";
    char         a[DC_ETAG_LEN + 1], b[DC_ETAG_LEN + 1];
    const size_t n = strlen(body);

    (void)state;
    dc_etag_of(body, n, a);
    dc_etag_of(body, n, b);
    assert_string_equal(a, b);
    for (size_t i = 0; i < n; i++) {
        body[i] ^= 1;
        dc_etag_of(body, n, b);
        assert_string_not_equal(a, b);
        body[i] ^= 1;
    }
    dc_etag_of(body, n - 1, b);
    assert_string_not_equal(a, b);
}

/*
 * The envelope's last member, generatedAt (the time of the read), is not
 * data: answers that differ only there share a validator, any other byte
 * tells them apart. Anything that is not exactly that last member is data.
 */
static void test_generated_at_is_not_data(void **state)
{
    static const char a[] = "{\"orgId\":\"o\",\"unresolved\":3,\"generatedAt\":\"2026-11-30T04:27:46.353Z\"}";
    static const char b[] = "{\"orgId\":\"o\",\"unresolved\":3,\"generatedAt\":\"2026-11-30T04:27:47.001Z\"}";
    static const char c[] = "{\"orgId\":\"o\",\"unresolved\":4,\"generatedAt\":\"2026-11-30T04:27:46.353Z\"}";
    static const char data[] = "{\"orgId\":\"o\",\"unresolved\":3";
    /* a member of the same name inside the data (audit details) is data; only the last one is cut */
    static const char d1[] =
        "{\"entries\":[{\"details\":{\"x\":1,\"generatedAt\":\"1\"}}],\"generatedAt\":\"t1\"}";
    static const char d2[] =
        "{\"entries\":[{\"details\":{\"x\":1,\"generatedAt\":\"2\"}}],\"generatedAt\":\"t1\"}";
    static const char d3[] =
        "{\"entries\":[{\"details\":{\"x\":1,\"generatedAt\":\"1\"}}],\"generatedAt\":\"t2\"}";
    /* not the envelope's last member: hashed whole */
    static const char *const whole[] = {
        "{\"generatedAt\":\"2026-11-30T04:27:46.353Z\"}",
        "{\"a\":1,\"generatedAt\":\"2026\",\"b\":2}",
        "{\"a\":1,\"generatedAt\":2026}",
        "{\"a\":1,\"generatedAt\":\"20\\\"26\"}",
        "{\"a\":1,\"generatedat\":\"2026\"}",
        "\"}",
    };
    char ta[DC_ETAG_LEN + 1], tb[DC_ETAG_LEN + 1], tc[DC_ETAG_LEN + 1], want[DC_ETAG_LEN + 1];

    (void)state;
    dc_etag_of(a, sizeof(a) - 1, ta);
    dc_etag_of(b, sizeof(b) - 1, tb);
    dc_etag_of(c, sizeof(c) - 1, tc);
    dc_etag_of(data, sizeof(data) - 1, want);
    assert_string_equal(ta, tb);
    assert_string_equal(ta, want);
    assert_string_not_equal(ta, tc);
    dc_etag_of(d1, sizeof(d1) - 1, ta);
    dc_etag_of(d2, sizeof(d2) - 1, tb);
    dc_etag_of(d3, sizeof(d3) - 1, tc);
    assert_string_not_equal(ta, tb);
    assert_string_equal(ta, tc);
    for (size_t i = 0; i < sizeof(whole) / sizeof(whole[0]); i++) {
        dc_etag_of(whole[i], strlen(whole[i]), ta);
        fnv1a_64_hex(whole[i], strlen(whole[i]), want);
        if (strcmp(ta, want) != 0)
            fail_msg("%s: not hashed whole", whole[i]);
    }
}

static void test_valid_validators(void **state)
{
    (void)state;
    assert_true(dc_etag_valid(TAG, 16));
    assert_false(dc_etag_valid(TAG, 15));
    assert_false(dc_etag_valid(TAG "0", 17));
    assert_false(dc_etag_valid("0123456789ABCDEF", 16));
    assert_false(dc_etag_valid("0123456789abcdeg", 16));
    assert_false(dc_etag_valid("{\"orgId\":\"550e84", 16));
    assert_false(dc_etag_valid("", 0));
}

static void test_if_none_match_matches(void **state)
{
    static const char *const yes[] = {
        "\"" TAG "\"",
        "W/\"" TAG "\"",
        "*",
        "  *  ",
        "\"" OTHER "\", \"" TAG "\"",
        "\"" OTHER "\",W/\"" TAG "\"",
        "W/\"" OTHER "\" ,\t\"" TAG "\"\t",
        "\"" TAG "\", \"" OTHER "\"",
        ", ,\"" TAG "\",",
        "\"x\", \"\", \"" TAG "\"",
        " \"" TAG "\" ",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        if (!dc_etag_none_match(yes[i], TAG))
            fail_msg("If-None-Match: %s does not match \"%s\"", yes[i], TAG);
}

static void test_if_none_match_does_not_match(void **state)
{
    static const char *const no[] = {
        "",
        "   ",
        ",",
        "\"" OTHER "\"",
        "W/\"" OTHER "\", \"" OTHER "\"",
        TAG,                         /* not quoted */
        "\"" TAG,                    /* unterminated */
        "\"0123456789ABCDEF\"",      /* opaque-tags compare octet by octet */
        "\"" TAG "0\"",              /* longer */
        "\"0123456789abcde\"",       /* a prefix */
        "w/\"" TAG "\"",             /* the weak indicator is case-sensitive */
        "W/ \"" TAG "\"",            /* no space inside an entity-tag */
        "\"" TAG "\" \"" OTHER "\"", /* members need commas */
        "\"" TAG "\"; q=1",          /* not the grammar: a full answer is always right */
        "\"" TAG "\", garbage",      /* a malformed list matches nothing */
        "\"01234567 89abcdef\"",     /* no space in an opaque-tag */
        "*, \"" TAG "\"",            /* "*" stands alone */
        "**",
    };

    (void)state;
    assert_false(dc_etag_none_match(NULL, TAG));
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        if (dc_etag_none_match(no[i], TAG))
            fail_msg("If-None-Match: %s matches \"%s\"", no[i], TAG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fnv1a_64_vectors),         cmocka_unit_test(test_validator_follows_the_body),
        cmocka_unit_test(test_generated_at_is_not_data), cmocka_unit_test(test_valid_validators),
        cmocka_unit_test(test_if_none_match_matches),    cmocka_unit_test(test_if_none_match_does_not_match),
    };
    return cmocka_run_group_tests_name("dc_etag", tests, NULL, NULL);
}
