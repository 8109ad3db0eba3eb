/* dc_sha256: the FIPS 180-4 / NIST test vectors, split updates, block boundaries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dc_sha256.h"

static void hex_of(const char *s, size_t n, size_t step, char out[65])
{
    dc_sha256_t c;
    dc_sha256_init(&c);
    for (size_t i = 0; i < n; i += step)
        dc_sha256_update(&c, s + i, n - i < step ? n - i : step);
    dc_sha256_hex(&c, out);
}

static void test_vectors(void **state)
{
    static const struct {
        const char *in, *want;
    } v[] = {
        { "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
        { "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
        { "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
        { "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmn"
          "opqrst"
          "nopqrstu",
          "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1" },
    };
    char out[65];
    (void)state;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        for (size_t step = 1; step <= 130; step += 43) {
            hex_of(v[i].in, strlen(v[i].in), step, out);
            assert_string_equal(out, v[i].want);
        }
}

static void test_million_a(void **state)
{
    static char a[1000];
    dc_sha256_t c;
    char        out[65];
    (void)state;
    memset(a, 'a', sizeof(a));
    dc_sha256_init(&c);
    for (int i = 0; i < 1000; i++)
        dc_sha256_update(&c, a, sizeof(a));
    dc_sha256_hex(&c, out);
    assert_string_equal(out, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* 55, 56 and 64 bytes: the padding fits, just does not fit, a whole block. */
static void test_padding_boundaries(void **state)
{
    static const char *const want[] = {
        "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318",
        "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a",
        "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb",
    };
    static const size_t lens[] = { 55, 56, 64 };
    char                buf[64], out[65];
    (void)state;
    memset(buf, 'a', sizeof(buf));
    for (size_t i = 0; i < 3; i++) {
        hex_of(buf, lens[i], 64, out);
        assert_string_equal(out, want[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_million_a),
        cmocka_unit_test(test_padding_boundaries),
    };
    return cmocka_run_group_tests_name("dc_sha256", tests, NULL, NULL);
}
