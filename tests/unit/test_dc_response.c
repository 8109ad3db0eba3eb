/*
 * dc_response: the CGI header block for each kind of answer, byte for byte
 * (a dashboard answer's ETag and Cache-Control, the bodiless 304); every
 * buffer size below the one that fits; when a 200 becomes a 304; JSON error
 * responses, also when no memory is left (fail_alloc.h); and the reason
 * phrases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dc_response.h"
#include "fail_alloc.h"

#define HEAD_200(len)                                                          \
    "Status: 200 OK\r\nContent-Type: application/json\r\nContent-Length: " len \
    "\r\nCache-Control: no-store\r\n"

#define OOM_BODY "{\"error\":{\"code\":\"out_of_memory\",\"message\":\"out of memory\"}}"

static const char body[] = "{\"orgId\":\"x\"}";

static dc_response_t response(int status, const char *x_cache)
{
    dc_response_t r;

    memset(&r, 0, sizeof(r));
    r.status = status;
    r.x_cache = x_cache;
    r.body = body;
    r.body_len = sizeof(body) - 1;
    return r;
}

/* Renders into a heap block of exactly cap bytes, so that the sanitizer sees any overrun. */
static int render(const dc_response_t *r, size_t cap, char *copy, size_t copy_cap)
{
    char *buf = malloc(cap ? cap : 1);
    int   n;

    assert_non_null(buf);
    n = dc_response_head(r, buf, cap);
    if (n >= 0) {
        assert_true((size_t)n < cap);
        assert_int_equal(buf[n], '\0');
        assert_true((size_t)n < copy_cap);
        memcpy(copy, buf, (size_t)n + 1);
    }
    free(buf);
    return n;
}

static void assert_head(const dc_response_t *r, const char *want)
{
    char got[DC_RESPONSE_HEAD_MAX];
    int  n = render(r, DC_RESPONSE_HEAD_MAX, got, sizeof(got));

    if (n < 0)
        fail_msg("dc_response_head: %d", n);
    assert_string_equal(got, want);
    assert_int_equal(n, strlen(want));
}

static void test_head_x_cache(void **state)
{
    static const char *const values[] = { "HIT", "MISS", "BYPASS" };
    char                     want[DC_RESPONSE_HEAD_MAX];

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(values); i++) {
        dc_response_t r = response(200, values[i]);

        snprintf(want, sizeof(want), HEAD_200("13") "X-Cache: %s\r\n\r\n", values[i]);
        assert_head(&r, want);
    }
}

static void test_head_without_x_cache(void **state)
{
    dc_response_t r = response(200, NULL);

    (void)state;
    assert_head(&r, HEAD_200("13") "\r\n");
}

static void test_head_405_allow(void **state)
{
    dc_response_t r = response(405, NULL);

    (void)state;
    r.allow = "GET, HEAD";
    assert_head(&r,
                "Status: 405 Method Not Allowed\r\nContent-Type: application/json\r\nContent-Length: 13\r\n"
                "Cache-Control: no-store\r\nAllow: GET, HEAD\r\n\r\n");
    r.allow = "POST";
    assert_head(&r,
                "Status: 405 Method Not Allowed\r\nContent-Type: application/json\r\nContent-Length: 13\r\n"
                "Cache-Control: no-store\r\nAllow: POST\r\n\r\n");
}

static void test_head_503_retry_after(void **state)
{
    dc_response_t r = response(503, "MISS");

    (void)state;
    r.retry_after = 5;
    assert_head(&r,
                "Status: 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 13\r\n"
                "Cache-Control: no-store\r\nX-Cache: MISS\r\nRetry-After: 5\r\n\r\n");
    r.x_cache = NULL;
    r.retry_after = 3600;
    assert_head(&r,
                "Status: 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 13\r\n"
                "Cache-Control: no-store\r\nRetry-After: 3600\r\n\r\n");
}

static void test_head_no_retry_after_when_zero_or_negative(void **state)
{
    dc_response_t r = response(503, NULL);
    char          got[DC_RESPONSE_HEAD_MAX];

    (void)state;
    r.retry_after = 0;
    assert_true(render(&r, sizeof(got), got, sizeof(got)) > 0);
    assert_null(strstr(got, "Retry-After"));
    r.retry_after = -1;
    assert_true(render(&r, sizeof(got), got, sizeof(got)) > 0);
    assert_null(strstr(got, "Retry-After"));
}

static void test_head_content_length(void **state)
{
    static const struct {
        size_t      len;
        const char *text;
    } cases[] = {
        { 0, "0" },
        { 1, "1" },
        { 13, "13" },
        { 1048576, "1048576" },
        { (size_t)4294967296ULL, "4294967296" },
        { SIZE_MAX, "18446744073709551615" },
    };
    char want[DC_RESPONSE_HEAD_MAX];

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(cases); i++) {
        dc_response_t r = response(200, "HIT");

        r.body_len = cases[i].len;
        snprintf(want, sizeof(want),
                 "Status: 200 OK\r\nContent-Type: application/json\r\nContent-Length: %s\r\n"
                 "Cache-Control: no-store\r\nX-Cache: HIT\r\n\r\n",
                 cases[i].text);
        assert_head(&r, want);
    }
}

/* Content-Length is the body's length, whatever bytes it holds. */
static void test_head_content_length_counts_bytes(void **state)
{
    static const char binary[] = "a\0b\r\n\0";
    dc_response_t     r = response(200, NULL);

    (void)state;
    r.body = binary;
    r.body_len = sizeof(binary) - 1;
    assert_head(&r, HEAD_200("6") "\r\n");
}

/* HEAD answers carry the Content-Length the GET would have. */
static void test_head_only_keeps_content_length(void **state)
{
    dc_response_t get = response(200, "HIT"), head = response(200, "HIT");
    char          a[DC_RESPONSE_HEAD_MAX], b[DC_RESPONSE_HEAD_MAX];

    (void)state;
    head.head_only = 1;
    assert_true(render(&get, sizeof(a), a, sizeof(a)) > 0);
    assert_true(render(&head, sizeof(b), b, sizeof(b)) > 0);
    assert_string_equal(a, b);
    assert_non_null(strstr(b, "\r\nContent-Length: 13\r\n"));
}

static void test_head_ends_with_one_blank_line(void **state)
{
    dc_response_t r = response(503, "BYPASS");
    char          got[DC_RESPONSE_HEAD_MAX];
    int           n;

    (void)state;
    r.allow = "GET, HEAD";
    r.retry_after = 7;
    n = render(&r, sizeof(got), got, sizeof(got));
    assert_true(n > 4);
    assert_memory_equal(got + n - 4, "\r\n\r\n", 4);
    assert_ptr_equal(strstr(got, "\r\n\r\n"), got + n - 4);
    assert_int_equal(strncmp(got, "Status: 503 ", 12), 0);
}

static void assert_sizes(const dc_response_t *r)
{
    char full[DC_RESPONSE_HEAD_MAX], got[DC_RESPONSE_HEAD_MAX];
    int  len = render(r, sizeof(full), full, sizeof(full));

    assert_true(len > 0);
    for (size_t cap = 0; cap <= (size_t)len; cap++) {
        int n = render(r, cap, got, sizeof(got));
        if (n != DC_ERROR)
            fail_msg("cap %zu of %d: returned %d", cap, len, n);
    }
    assert_int_equal(render(r, (size_t)len + 1, got, sizeof(got)), len);
    assert_string_equal(got, full);
}

static void test_head_too_small_buffer(void **state)
{
    dc_response_t plain = response(200, NULL), full = response(503, "BYPASS"), allow = response(405, NULL);
    dc_response_t tagged = response(200, "BYPASS"), not_modified = response(304, "MISS");

    (void)state;
    tagged.etag = "0123456789abcdef";
    tagged.body_len = SIZE_MAX;
    not_modified.etag = "0123456789abcdef";
    assert_sizes(&tagged);
    assert_sizes(&not_modified);
    full.allow = "GET, HEAD";
    full.retry_after = 3600;
    full.body_len = SIZE_MAX;
    allow.allow = "GET, HEAD";
    assert_sizes(&plain);
    assert_sizes(&full);
    assert_sizes(&allow);
}

static void test_reason_phrases(void **state)
{
    static const struct {
        int         status;
        const char *reason;
    } known[] = {
        { 200, "OK" },
        { 201, "Created" },
        { 304, "Not Modified" },
        { 400, "Bad Request" },
        { 404, "Not Found" },
        { 405, "Method Not Allowed" },
        { 409, "Conflict" },
        { 413, "Payload Too Large" },
        { 415, "Unsupported Media Type" },
        { 500, "Internal Server Error" },
        { 503, "Service Unavailable" },
    };
    static const int unknown[] = { 0, -1, 99, 299, 418, 600, 99999 };

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(known); i++)
        assert_string_equal(dc_response_reason(known[i].status), known[i].reason);
    for (size_t i = 0; i < DC_ARRAY_LEN(unknown); i++) {
        const char *s = dc_response_reason(unknown[i]);
        assert_non_null(s);
        assert_true(s[0] != '\0');
        assert_null(strpbrk(s, "\r\n"));
    }
}

static void test_head_every_known_status(void **state)
{
    static const int statuses[] = { 200, 201, 304, 400, 404, 405, 409, 413, 415, 500, 503 };
    char             want[64], got[DC_RESPONSE_HEAD_MAX];

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(statuses); i++) {
        dc_response_t r = response(statuses[i], NULL);

        assert_true(render(&r, sizeof(got), got, sizeof(got)) > 0);
        snprintf(want, sizeof(want), "Status: %d %s\r\n", statuses[i], dc_response_reason(statuses[i]));
        assert_int_equal(strncmp(got, want, strlen(want)), 0);
    }
}

/*
 * A dashboard answer carries its validator and may be kept by the client
 * if revalidated (private, no-cache); a 304 has no Content-Type and no
 * Content-Length, and keeps ETag and X-Cache.
 */
static void test_head_dashboard_answer_and_304(void **state)
{
    dc_response_t r = response(200, "HIT");

    (void)state;
    r.etag = "0123456789abcdef";
    assert_head(&r,
                "Status: 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n"
                "Cache-Control: private, no-cache\r\nETag: W/\"0123456789abcdef\"\r\nX-Cache: HIT\r\n\r\n");
    r.status = 304;
    r.body = NULL;
    r.body_len = 0;
    assert_head(&r,
                "Status: 304 Not Modified\r\n"
                "Cache-Control: private, no-cache\r\nETag: W/\"0123456789abcdef\"\r\nX-Cache: HIT\r\n\r\n");
}

/* Only a dashboard 200 with a matching If-None-Match becomes a bodiless 304. */
static void test_not_modified(void **state)
{
    static const char tag[] = "0123456789abcdef";
    dc_response_t     r;

    (void)state;
    r = response(200, "MISS");
    r.etag = tag;
    assert_false(dc_response_not_modified(&r, NULL));
    assert_false(dc_response_not_modified(&r, "\"fedcba9876543210\""));
    assert_int_equal(r.status, 200);
    assert_ptr_equal(r.body, body);
    assert_int_equal(r.body_len, sizeof(body) - 1);
    assert_true(dc_response_not_modified(&r, "W/\"fedcba9876543210\", W/\"0123456789abcdef\""));
    assert_int_equal(r.status, 304);
    assert_null(r.body);
    assert_int_equal(r.body_len, 0);
    assert_string_equal(r.etag, tag);
    assert_string_equal(r.x_cache, "MISS");

    r = response(200, "HIT"); /* no validator: not a dashboard answer */
    assert_false(dc_response_not_modified(&r, "*"));
    assert_int_equal(r.status, 200);
    r = response(404, NULL); /* an error is never Not Modified, whatever it carries */
    r.etag = tag;
    assert_false(dc_response_not_modified(&r, "*"));
    assert_int_equal(r.status, 404);
    assert_int_equal(r.body_len, sizeof(body) - 1);
}

static void error_response(dc_response_t *r, const dc_error_t *err, dc_buf_t *out)
{
    memset(r, 0, sizeof(*r));
    r->status = 200;
    r->allow = "stale";
    dc_response_error(r, err, out);
}

static void test_error_fills_status_and_body(void **state)
{
    static const char want[] = "{\"error\":{\"code\":\"not_found\",\"message\":\"no such endpoint\"}}";
    dc_buf_t          out = DC_BUF_INIT;
    dc_response_t     r;
    dc_error_t        err;

    (void)state;
    assert_int_equal(dc_buf_append_str(&out, "previous body"), DC_OK);
    dc_error_set(&err, 404, "not_found", "no such endpoint");
    error_response(&r, &err, &out);
    assert_int_equal(r.status, 404);
    assert_null(r.allow);
    assert_ptr_equal(r.body, out.data);
    assert_int_equal(r.body_len, strlen(want));
    assert_memory_equal(r.body, want, r.body_len);
    assert_string_equal(out.data, want);
    dc_buf_free(&out);
}

static void test_error_405_keeps_allow(void **state)
{
    dc_buf_t      out = DC_BUF_INIT;
    dc_response_t r;
    dc_error_t    err;
    char          head[DC_RESPONSE_HEAD_MAX];

    (void)state;
    dc_error_set(&err, 405, "method_not_allowed", "POST is not allowed here; use GET or HEAD");
    err.allow = "GET, HEAD";
    error_response(&r, &err, &out);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.allow, "GET, HEAD");
    assert_string_equal(r.body, "{\"error\":{\"code\":\"method_not_allowed\","
                                "\"message\":\"POST is not allowed here; use GET or HEAD\"}}");
    assert_true(render(&r, sizeof(head), head, sizeof(head)) > 0);
    assert_non_null(strstr(head, "\r\nAllow: GET, HEAD\r\n"));
    dc_buf_free(&out);
}

static void test_error_with_index(void **state)
{
    dc_buf_t      out = DC_BUF_INIT;
    dc_response_t r;
    dc_error_t    err;

    (void)state;
    dc_error_set(&err, 400, "invalid_reading", "temperature must be a number");
    err.index = 12;
    error_response(&r, &err, &out);
    assert_int_equal(r.status, 400);
    assert_string_equal(r.body, "{\"error\":{\"code\":\"invalid_reading\","
                                "\"message\":\"temperature must be a number\",\"index\":12}}");
    dc_buf_free(&out);
}

static void test_error_escapes_message(void **state)
{
    dc_buf_t      out = DC_BUF_INIT;
    dc_response_t r;
    dc_error_t    err;

    (void)state;
    dc_error_set(&err, 405, "method_not_allowed", "%s is not allowed here; use GET or HEAD", "G\"E\\T\n");
    error_response(&r, &err, &out);
    assert_string_equal(r.body, "{\"error\":{\"code\":\"method_not_allowed\","
                                "\"message\":\"G\\\"E\\\\T\\n is not allowed here; use GET or HEAD\"}}");
    dc_buf_free(&out);
}

static void test_error_out_of_memory(void **state)
{
    dc_buf_t      out = DC_BUF_INIT;
    dc_response_t r;
    dc_error_t    err;

    (void)state;
    if (!fail_alloc_works())
        skip();
    dc_error_set(&err, 404, "not_found", "no such endpoint");
    fail_alloc_arm(FAIL_FROM, 0);
    error_response(&r, &err, &out);
    fail_alloc_disarm();
    assert_true(fail_state.failed > 0);
    assert_int_equal(r.status, 500);
    assert_null(r.allow);
    assert_int_equal(r.body_len, strlen(OOM_BODY));
    assert_memory_equal(r.body, OOM_BODY, r.body_len);
    dc_buf_free(&out);
}

/*
 * Every allocation of an error response from an empty buffer failed in turn,
 * alone and with every later one: the answer is the whole 404 or the static
 * 500, never a mix.
 */
static void test_error_oom_sweep(void **state)
{
    static const char want[] = "{\"error\":{\"code\":\"not_found\",\"message\":\"no such endpoint\"}}";
    dc_response_t     r;
    dc_error_t        err;
    long              n;

    (void)state;
    if (!fail_alloc_works())
        skip();
    dc_error_set(&err, 404, "not_found", "no such endpoint");
    {
        dc_buf_t out = DC_BUF_INIT;
        fail_alloc_count();
        error_response(&r, &err, &out);
        n = fail_state.calls;
        fail_alloc_disarm();
        dc_buf_free(&out);
    }
    assert_true(n > 0); /* the sweep below must have something to fail */
    for (fail_mode_t mode = FAIL_ONE; mode <= FAIL_FROM; mode++) {
        for (long k = 0; k < n; k++) {
            dc_buf_t out = DC_BUF_INIT;
            char     got[256];
            size_t   len;

            fail_alloc_arm(mode, k);
            error_response(&r, &err, &out);
            fail_alloc_disarm();
            len = r.body_len < sizeof(got) ? r.body_len : sizeof(got) - 1;
            memcpy(got, r.body, len);
            got[len] = '\0';
            dc_buf_free(&out);
            assert_true(fail_state.failed > 0);
            assert_null(r.allow);
            if (r.status == 404)
                assert_string_equal(got, want);
            else if (r.status == 500)
                assert_string_equal(got, OOM_BODY);
            else
                fail_msg("allocation %ld failing (%s): status %d", k, mode == FAIL_ONE ? "only" : "from",
                         r.status);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_x_cache),
        cmocka_unit_test(test_head_without_x_cache),
        cmocka_unit_test(test_head_405_allow),
        cmocka_unit_test(test_head_503_retry_after),
        cmocka_unit_test(test_head_no_retry_after_when_zero_or_negative),
        cmocka_unit_test(test_head_content_length),
        cmocka_unit_test(test_head_content_length_counts_bytes),
        cmocka_unit_test(test_head_only_keeps_content_length),
        cmocka_unit_test(test_head_ends_with_one_blank_line),
        cmocka_unit_test(test_head_too_small_buffer),
        cmocka_unit_test(test_reason_phrases),
        cmocka_unit_test(test_head_every_known_status),
        cmocka_unit_test(test_head_dashboard_answer_and_304),
        cmocka_unit_test(test_not_modified),
        cmocka_unit_test(test_error_fills_status_and_body),
        cmocka_unit_test(test_error_405_keeps_allow),
        cmocka_unit_test(test_error_with_index),
        cmocka_unit_test(test_error_escapes_message),
        cmocka_unit_test(test_error_out_of_memory),
        cmocka_unit_test(test_error_oom_sweep),
    };

    return cmocka_run_group_tests_name("dc_response", tests, NULL, NULL);
}
