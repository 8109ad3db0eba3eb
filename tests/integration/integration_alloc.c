/*
 * A warm worker answers hits without allocating (issue 10): the hit path
 * (route, token from the verified-token cache, key, one MGET, the answer),
 * alone and as a batch of lookups in one round trip, against the real Redis
 * and PostgreSQL of the test stack. Every malloc, calloc and realloc of the
 * process is counted (fail_alloc.h replaces them for hiredis's shared
 * library too); under valgrind, which replaces them itself, the tests skip.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../unit/fail_alloc.h"
#include "dc_test.h"

#define HITS        200
#define BATCH       8
#define WARM_ROUNDS 5 /* the mixes of a batch repeat every five rounds */

static const char *const dashboards[] = { "stats", "units/status", "alerts/count", "devices/online",
                                          "compliance" };

typedef struct {
    dc_config_t cfg;
    dc_app_t   *app;
    char        paths[DC_ARRAY_LEN(dashboards)][256];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));

    dc_test_config(&f->cfg);
    f->app = dc_app_new(&f->cfg);
    assert_non_null(f->app);
    for (size_t i = 0; i < DC_ARRAY_LEN(dashboards); i++)
        dc_test_org_path(f->paths[i], sizeof(f->paths[i]), DEMO_ORG, dashboards[i]);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;

    dc_app_free(f->app);
    free(f);
    return 0;
}

static dc_input_t input_of(const char *path)
{
    dc_input_t in = { .method = "GET", .path = path, .authorization = dc_test_default_auth() };
    return in;
}

/* Every dashboard once as a miss (or a hit), then once more: all hits, every buffer grown. */
static void warm(fixture_t *f)
{
    dc_test_outbox_applied(); /* the seed's rows, as the invalidator would: hits are served then */
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < DC_ARRAY_LEN(dashboards); i++) {
            dc_input_t    in = input_of(f->paths[i]);
            dc_response_t resp;
            dc_app_handle(f->app, &in, &resp);
            assert_int_equal(resp.status, 200);
            if (round == 1)
                assert_string_equal(resp.x_cache, "HIT");
            dc_app_done(f->app);
        }
    }
}

static void test_hits_one_by_one_allocate_nothing(void **state)
{
    fixture_t *f = *state;
    long       calls;

    if (!fail_alloc_works())
        skip();
    warm(f);
    fail_alloc_count();
    for (int i = 0; i < HITS; i++) {
        dc_input_t    in = input_of(f->paths[i % DC_ARRAY_LEN(dashboards)]);
        dc_response_t resp;
        dc_app_handle(f->app, &in, &resp);
        assert_int_equal(resp.status, 200);
        assert_string_equal(resp.x_cache, "HIT");
        dc_app_done(f->app);
    }
    calls = fail_state.calls;
    fail_alloc_disarm();
    assert_int_equal(calls, 0);
}

static void test_hits_in_batches_allocate_nothing(void **state)
{
    fixture_t    *f = *state;
    dc_app_task_t tasks[BATCH], *ts[BATCH];
    dc_response_t resps[BATCH];
    dc_input_t    ins[BATCH];
    long          calls = 0;

    if (!fail_alloc_works())
        skip();
    warm(f);
    for (int round = 0; round < WARM_ROUNDS + HITS / BATCH; round++) {
        if (round == WARM_ROUNDS)
            fail_alloc_count(); /* every mix of dashboards has grown the buffers once */
        for (int i = 0; i < BATCH; i++) {
            ins[i] = input_of(f->paths[(size_t)(round + i) % DC_ARRAY_LEN(dashboards)]);
            ts[i] = &tasks[i];
            assert_int_equal(dc_app_start(f->app, &ins[i], &tasks[i], &resps[i]), DC_DECLINED);
        }
        dc_app_lookup(f->app, ts, BATCH);
        for (int i = 0; i < BATCH; i++) {
            dc_app_finish(f->app, &tasks[i], &resps[i]);
            assert_int_equal(resps[i].status, 200);
            assert_string_equal(resps[i].x_cache, "HIT");
            dc_app_task_done(&tasks[i]);
        }
    }
    calls = fail_state.calls;
    fail_alloc_disarm();
    if (calls != 0)
        print_message("allocations: %ld, the last of %zu bytes\n", calls, fail_state.last_size);
    assert_int_equal(calls, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hits_one_by_one_allocate_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hits_in_batches_allocate_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
