/*
 * The database outbox against the real Redis and PostgreSQL: many drains in
 * a row, each of several batches, each touching a different and overlapping
 * set of hundreds of organizations (with repeated rows), and after each one
 * exactly the organizations of its rows have a new generation. Issue 7: a
 * batch reset that forgot its count skipped some organizations of later
 * batches and read past the end of the list.
 *
 * The organizations are made-up ids that exist only in these outbox rows;
 * no dashcache-invalidator runs during the integration suites.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dc_cache.h"
#include "dc_db.h"
#include "dc_inval.h"
#include "dc_key.h"
#include "dc_orgs.h"
#include "dc_outbox.h"
#include "dc_test.h"

#define UNIVERSE 700
#define ROUNDS   14
#define BATCH    97 /* rows per outbox query: several batches per round */

typedef struct {
    dc_config_t cfg;
    dc_cache_t *cache;
    dc_db_t    *db;
    dc_outbox_t ob;
    char        ids[UNIVERSE][DC_UUID_LEN + 1];
    char       *gens[UNIVERSE];
} fixture_t;

static void no_lag(void *arg, double ms)
{
    (void)arg;
    (void)ms;
}

static long long pending_rows(void)
{
    char     *v = dc_test_sql("SELECT count(*) FROM cache_outbox WHERE processed_at IS NULL", 0, NULL);
    long long n = v ? atoll(v) : -1;
    free(v);
    return n;
}

static int setup(void **state)
{
    fixture_t         *f = calloc(1, sizeof(*f));
    const dc_db_set_t *sets[] = { dc_outbox_statements() };
    dc_drain_stats_t   st;

    assert_non_null(f);
    dc_test_config(&f->cfg);
    f->cache = dc_cache_new(&f->cfg);
    f->db = dc_db_new(&f->cfg, sets, DC_ARRAY_LEN(sets));
    assert_non_null(f->cache);
    assert_non_null(f->db);
    for (unsigned k = 0; k < UNIVERSE; k++)
        snprintf(f->ids[k], sizeof(f->ids[k]), "0b0e%04x-7e57-4000-8000-%012x", k, k * 7919u);
    /* whatever earlier suites left pending */
    assert_int_equal(dc_inval_drain(f->cache, f->db, &f->ob, 500, no_lag, NULL, &st), DC_OK);
    assert_int_equal(pending_rows(), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;

    for (unsigned k = 0; k < UNIVERSE; k++)
        free(f->gens[k]);
    dc_outbox_free(&f->ob);
    dc_db_free(f->db);
    dc_cache_free(f->cache);
    free(f);
    return 0;
}

static char *generation_of(const char *org, dc_qtype_t q)
{
    char key[DC_KEY_MAX];
    dc_test_gen_key(key, sizeof(key), org, q);
    return dc_test_redis_str("GET %s", key);
}

/* The generations of every cached query type of org, "-" for none, in one string (free). */
static char *generation(const char *org)
{
    dc_buf_t all = DC_BUF_INIT;

    for (unsigned q = 0; q < DC_Q_COUNT; q++) {
        char *g;
        if (!(DC_QBITS_CACHED & DC_QBIT_OF(q)))
            continue;
        g = generation_of(org, (dc_qtype_t)q);
        assert_int_equal(dc_buf_printf(&all, "%s%s", all.len ? " " : "", g ? g : "-"), DC_OK);
        free(g);
    }
    return all.data;
}

static int same(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Whether every space-separated generation of after differs from its place in before. */
static int all_moved(const char *before, const char *after)
{
    size_t n;

    for (;;) {
        n = strcspn(before, " ");
        if (n == strcspn(after, " ") && memcmp(before, after, n) == 0)
            return 0;
        before += n;
        after += strcspn(after, " ");
        if (*before == '\0' || *after == '\0')
            return *before == *after;
        before++;
        after++;
    }
}

/* One outbox row per element of ids (repeats allowed), in one statement. */
static void insert_rows(const char *array_literal)
{
    const char *p[] = { array_literal };
    char       *v = dc_test_sql("WITH i AS (INSERT INTO cache_outbox (org_id, source) "
                                      "SELECT unnest($1::uuid[]), 'integration_outbox' RETURNING 1) "
                                      "SELECT count(*) FROM i",
                                1, p);
    assert_non_null(v);
    free(v);
}

static void test_many_batches_move_exactly_their_organizations(void **state)
{
    fixture_t *f = *state;
    unsigned   seed = 4242;

    for (int round = 0; round < ROUNDS; round++) {
        /* sizes go up and down, so that a batch is often smaller than the one before */
        unsigned         size = round % 2 ? 60 + (unsigned)round * 7 : 250 + (unsigned)(round * 53) % 400;
        unsigned         base = (unsigned)(round * 131) % UNIVERSE;
        static char      in_round[UNIVERSE];
        size_t           rows = 0, want_orgs = 0;
        dc_buf_t         lit = DC_BUF_INIT;
        dc_drain_stats_t st;

        memset(in_round, 0, sizeof(in_round));
        for (unsigned k = 0; k < UNIVERSE; k++) {
            free(f->gens[k]);
            f->gens[k] = generation(f->ids[k]);
        }
        assert_int_equal(dc_buf_append_str(&lit, "{"), DC_OK);
        for (unsigned i = 0; i < size; i++) {
            unsigned k;
            seed = seed * 1103515245u + 12345u;
            k = (base + (seed >> 8) % (size + size / 3)) % UNIVERSE;
            assert_int_equal(dc_buf_printf(&lit, "%s%s", rows ? "," : "", f->ids[k]), DC_OK);
            rows++;
            want_orgs += !in_round[k];
            in_round[k] = 1;
        }
        assert_int_equal(dc_buf_append_str(&lit, "}"), DC_OK);
        insert_rows(lit.data);
        dc_buf_free(&lit);

        assert_int_equal(dc_inval_drain(f->cache, f->db, &f->ob, BATCH, no_lag, NULL, &st), DC_OK);
        assert_int_equal(st.rows, rows);
        assert_true(st.batches >= rows / BATCH);
        assert_true(st.orgs >= want_orgs); /* an org split over two batches counts twice */
        assert_int_equal(pending_rows(), 0);
        for (unsigned k = 0; k < UNIVERSE; k++) {
            char *now = generation(f->ids[k]);
            /* rows of an unknown kind ('integration_outbox' as the table, no kind): every type moves */
            if (in_round[k] && !all_moved(f->gens[k], now))
                fail_msg("round %d: organization %s was in the outbox and kept a generation: %s -> %s", round,
                         f->ids[k], f->gens[k], now);
            if (!in_round[k] && !same(now, f->gens[k]))
                fail_msg("round %d: organization %s was not in the outbox and its generation moved", round,
                         f->ids[k]);
            free(now);
        }
    }
}

/*
 * A TRUNCATE row (no organization) in a batch invalidates every
 * organization, of the database or not: one write, the epoch.
 */
static void test_truncate_row_invalidates_every_organization(void **state)
{
    fixture_t       *f = *state;
    char             epoch[32];
    char            *before, *after;
    dc_drain_stats_t st;
    char            *v;

    assert_true(dc_key_epoch(epoch, sizeof(epoch)) > 0);
    free(dc_test_redis_str("SET %s 1", epoch));
    before = dc_test_redis_str("GET %s", epoch);
    v = dc_test_sql(
        "INSERT INTO cache_outbox (org_id, source) VALUES (NULL, 'integration_outbox') RETURNING id", 0,
        NULL);
    assert_non_null(v);
    free(v);
    assert_int_equal(dc_inval_drain(f->cache, f->db, &f->ob, BATCH, no_lag, NULL, &st), DC_OK);
    assert_int_equal(st.rows, 1);
    assert_int_equal(st.alls, 1);
    after = dc_test_redis_str("GET %s", epoch);
    assert_non_null(after);
    assert_false(same(before, after));
    free(before);
    free(after);
}

/*
 * The kind of a row moves the generations of the query types that read it
 * (DC_API_CHANGES) and no other; a kind the mapping does not know, or none,
 * moves them all. One organization per kind, all in one batch.
 */
static void test_kinds_move_only_their_query_types(void **state)
{
    static const struct {
        const char *kind; /* NULL: a row of before kinds */
        unsigned    moved;
    } cases[] = {
        { "readings", DC_QBIT(STATS) | DC_QBIT(UNITS) | DC_QBIT(TEMPERATURE) | DC_QBIT(COMPLIANCE) },
        { "units.latest", DC_QBIT(STATS) | DC_QBIT(UNITS) | DC_QBIT(TEMPERATURE) | DC_QBIT(COMPLIANCE) },
        { "alerts", DC_QBIT(STATS) | DC_QBIT(ALERTS) },
        { "devices.seen", DC_QBIT(STATS) | DC_QBIT(DEVICES) },
        { "devices", DC_QBITS_CACHED },
        { "sites", DC_QBITS_CACHED },
        { "units", DC_QBITS_CACHED },
        { "no such kind", DC_QBITS_CACHED },
        { NULL, DC_QBITS_CACHED },
    };
    fixture_t       *f = *state;
    char            *before[DC_ARRAY_LEN(cases)][DC_Q_COUNT];
    dc_drain_stats_t st;

    for (size_t i = 0; i < DC_ARRAY_LEN(cases); i++) {
        const char *p[] = { f->ids[i], cases[i].kind };
        for (unsigned q = 0; q < DC_Q_AUDIT; q++)
            before[i][q] = generation_of(f->ids[i], (dc_qtype_t)q);
        free(dc_test_sql(
            "INSERT INTO cache_outbox (org_id, source, kind) VALUES ($1, 'integration_outbox', $2)"
            " RETURNING id",
            2, p));
    }
    assert_int_equal(dc_inval_drain(f->cache, f->db, &f->ob, BATCH, no_lag, NULL, &st), DC_OK);
    assert_int_equal(st.rows, DC_ARRAY_LEN(cases));
    for (size_t i = 0; i < DC_ARRAY_LEN(cases); i++) {
        for (unsigned q = 0; q < DC_Q_AUDIT; q++) {
            char *now = generation_of(f->ids[i], (dc_qtype_t)q);
            int   moved = !same(before[i][q], now);
            if (moved != !!(cases[i].moved & DC_QBIT_OF(q)))
                fail_msg("kind %s: the generation of %s %s", cases[i].kind ? cases[i].kind : "(none)",
                         dc_qtype_name((dc_qtype_t)q), moved ? "moved" : "stayed");
            free(now);
            free(before[i][q]);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_many_batches_move_exactly_their_organizations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncate_row_invalidates_every_organization, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kinds_move_only_their_query_types, setup, teardown),
    };
    return cmocka_run_group_tests_name("integration_outbox", tests, NULL, NULL);
}
