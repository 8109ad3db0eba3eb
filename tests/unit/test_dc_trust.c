/*
 * dc_trust: the host's lease on serving hits. The write probe and the
 * outbox's watermark are link-time fakes (WRAP_test_dc_trust), so that every
 * interleaving the lease must survive is forced here: a refusal while a
 * probe is in flight, rows left from before the previous probe, a refusal
 * between two probes, the database away, and the state shared by the
 * processes of a host through its file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "dc_outbox.h"
#include "dc_trust.h"

#define INTERVAL 40 /* ms: the lease is three of them */

static struct {
    int       probe_rc; /* what the write probe answers */
    int       mark_rc;  /* what the watermark answers */
    long long max_id, pending;
    int       refuse_in_mark; /* a refusal while the probe waits for the database */
    int       probes, marks;
} fk;

int __wrap_dc_cache_probe(dc_cache_t *c);
int __wrap_dc_outbox_watermark(dc_db_t *db, int timeout_ms, long long *max_id, long long *pending);

int __wrap_dc_cache_probe(dc_cache_t *c)
{
    (void)c;
    fk.probes++;
    return fk.probe_rc;
}

int __wrap_dc_outbox_watermark(dc_db_t *db, int timeout_ms, long long *max_id, long long *pending)
{
    (void)db;
    assert_true(timeout_ms > 0);
    fk.marks++;
    if (fk.refuse_in_mark)
        dc_trust_refused("a write of another worker");
    *max_id = fk.max_id;
    *pending = fk.pending;
    return fk.mark_rc;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* One probe, now: waits out the gap since the last one. */
static void probe(void)
{
    int before = fk.probes;

    for (int i = 0; i < 100 && fk.probes == before; i++) {
        int wait = dc_trust_tick(NULL, NULL, INTERVAL);
        if (fk.probes == before)
            sleep_ms(wait > 0 ? wait : 1);
    }
    assert_int_equal(fk.probes, before + 1);
}

static int setup(void **state)
{
    (void)state;
    dc_trust_close(); /* a fresh process-local state */
    memset(&fk, 0, sizeof(fk));
    fk.probe_rc = DC_OK;
    fk.mark_rc = DC_OK;
    return 0;
}

static void test_no_hits_before_a_probe_then_a_clean_outbox_grants(void **state)
{
    (void)state;
    assert_false(dc_trust_hits_ok());
    fk.max_id = 10;
    probe();
    assert_true(dc_trust_hits_ok());
}

/* The lease is three intervals from its probe: without probes it lapses. */
static void test_lease_lapses_without_probes(void **state)
{
    (void)state;
    probe();
    assert_true(dc_trust_hits_ok());
    sleep_ms(INTERVAL * DC_TRUST_LEASE_PROBES + 10);
    assert_false(dc_trust_hits_ok());
}

static void test_refusal_voids_the_lease_at_once(void **state)
{
    dc_trust_status_t s;

    (void)state;
    probe();
    assert_true(dc_trust_hits_ok());
    dc_trust_refused("test");
    assert_false(dc_trust_hits_ok());
    dc_trust_status(&s);
    assert_int_equal(s.refusals, 1);
    assert_false(s.hits_ok);
}

/* A probe that began before a refusal cannot grant, even when it saw nothing wrong. */
static void test_refusal_during_a_probe_voids_its_grant(void **state)
{
    (void)state;
    fk.refuse_in_mark = 1;
    probe();
    assert_false(dc_trust_hits_ok());
    fk.refuse_in_mark = 0;
    probe();
    assert_true(dc_trust_hits_ok()); /* pending 0: every row is applied */
}

/* Redis does not take the probe's write (OOM, READONLY, paused): a refusal. */
static void test_failed_write_probe_stops_hits(void **state)
{
    dc_trust_status_t s;

    (void)state;
    probe();
    assert_true(dc_trust_hits_ok());
    fk.probe_rc = DC_UNAVAILABLE;
    probe();
    assert_false(dc_trust_hits_ok());
    assert_int_equal(fk.marks, 1); /* the database is not asked then */
    dc_trust_status(&s);
    assert_int_equal(s.probes_failed, 1);
    fk.probe_rc = DC_OK;
    probe();
    assert_true(dc_trust_hits_ok());
}

/*
 * Rows pending since before the previous probe withhold the lease (another
 * host's invalidation that Redis did not take, an invalidator that is
 * away); rows newer than it do not (the invalidator's usual lag).
 */
static void test_rows_from_before_the_previous_probe_withhold_the_lease(void **state)
{
    (void)state;
    fk.max_id = 10;
    probe(); /* clean: grants, remembers 10 */
    fk.max_id = 12;
    fk.pending = 11; /* newer than the last probe's 10 */
    probe();
    assert_true(dc_trust_hits_ok());
    sleep_ms(INTERVAL * DC_TRUST_LEASE_PROBES + 10);
    probe(); /* 11 is still pending, and was there at the last probe (12) */
    assert_false(dc_trust_hits_ok());
    fk.pending = 13;
    fk.max_id = 13;
    probe(); /* 11 and 12 applied */
    assert_true(dc_trust_hits_ok());
}

/* After a refusal the watermark of before it does not count: a fresh one, or an empty outbox. */
static void test_after_a_refusal_a_fresh_watermark_is_needed(void **state)
{
    (void)state;
    fk.max_id = 10;
    probe();
    dc_trust_refused("a write whose invalidation failed"); /* its row: 11 */
    fk.max_id = 11;
    fk.pending = 11; /* newer than 10, but the refusal came after 10 was seen */
    probe();
    assert_false(dc_trust_hits_ok());
    probe(); /* 11 is still pending and was there at the last probe */
    assert_false(dc_trust_hits_ok());
    fk.pending = 0;
    probe();
    assert_true(dc_trust_hits_ok());
}

/* The database away: its last verdict stands, unless a refusal came since. */
static void test_database_away_keeps_the_last_verdict(void **state)
{
    (void)state;
    fk.max_id = 10;
    probe();
    fk.mark_rc = DC_UNAVAILABLE;
    sleep_ms(INTERVAL * DC_TRUST_LEASE_PROBES + 10);
    probe();
    assert_true(dc_trust_hits_ok());
    dc_trust_refused("test");
    probe();
    assert_false(dc_trust_hits_ok());
}

/* While hits are stopped the probe runs eight times as often. */
static void test_probes_more_often_while_stopped(void **state)
{
    (void)state;
    assert_int_equal(dc_trust_tick(NULL, NULL, 800), 100); /* the first probe; stopped: a gap of 800 / 8 */
    assert_int_equal(fk.probes, 1);
    assert_true(dc_trust_hits_ok());
    assert_true(dc_trust_tick(NULL, NULL, 800) > 100); /* serving: the whole interval */
}

/* The state file: a refusal in one process of the host stops hits in every other at once. */
static void test_processes_of_a_host_share_the_state(void **state)
{
    char     path[] = "/tmp/dc_trust_test_XXXXXX";
    int      fd = mkstemp(path);
    dc_err_t err;
    pid_t    pid;
    int      status;

    (void)state;
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(dc_trust_open(path, &err), DC_OK);
    probe();
    assert_true(dc_trust_hits_ok());
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dc_trust_refused("a write in another process");
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_false(dc_trust_hits_ok());
    dc_trust_close();
    /* a process that maps the file later sees the same */
    assert_int_equal(dc_trust_open(path, &err), DC_OK);
    assert_false(dc_trust_hits_ok());
    dc_trust_close();
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_no_hits_before_a_probe_then_a_clean_outbox_grants, setup),
        cmocka_unit_test_setup(test_lease_lapses_without_probes, setup),
        cmocka_unit_test_setup(test_refusal_voids_the_lease_at_once, setup),
        cmocka_unit_test_setup(test_refusal_during_a_probe_voids_its_grant, setup),
        cmocka_unit_test_setup(test_failed_write_probe_stops_hits, setup),
        cmocka_unit_test_setup(test_rows_from_before_the_previous_probe_withhold_the_lease, setup),
        cmocka_unit_test_setup(test_after_a_refusal_a_fresh_watermark_is_needed, setup),
        cmocka_unit_test_setup(test_database_away_keeps_the_last_verdict, setup),
        cmocka_unit_test_setup(test_probes_more_often_while_stopped, setup),
        cmocka_unit_test_setup(test_processes_of_a_host_share_the_state, setup),
    };
    return cmocka_run_group_tests_name("dc_trust", tests, NULL, NULL);
}
