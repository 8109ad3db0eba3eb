/*
 * Circuit breakers, one per dependency (Redis, PostgreSQL), shared by the
 * processes of a host: once a dependency fails, every worker stops paying
 * its timeouts together, and one probe at a time finds out when it is back.
 *
 *   closed     calls go through; BREAKER_FAILURES consecutive failures, or
 *              BREAKER_FAILURE_PERCENT of at least BREAKER_MIN_REQUESTS
 *              calls within BREAKER_WINDOW_MS failing, open it;
 *   open       no call touches the dependency (dc_breaker_allow says 0)
 *              for BREAKER_OPEN_MS;
 *   half-open  the first caller after that is let through, alone: its
 *              success closes the breaker, its failure opens it again. A
 *              probe that reports nothing within the longest a call can
 *              take (its process died) is lost: the next caller probes.
 *
 * A failure is the dependency not answering: a connect refused or timed
 * out, a command or statement without an answer within its deadline, a
 * connection broken, a statement the server cancelled for time or
 * resources. An answer that refuses (a Redis error reply, a statement
 * error) is a success: the dependency works.
 *
 * Transitions are logged once on the host (breaker.open, breaker.half_open,
 * breaker.closed: whichever process makes one logs it) and counted.
 *
 * The state lives in a file mapped by every process of the host
 * (dc_shm_path "breaker"), with atomics only: no lock is ever held. Without
 * the file each process keeps its own breakers. Without
 * dc_breaker_configure (or with BREAKERS=off) every breaker is off: calls
 * always go through and nothing is counted.
 */
#ifndef DC_BREAKER_H
#define DC_BREAKER_H

#include <stdint.h>

#include "dc_config.h"
#include "dc_core.h"

typedef enum { DC_DEP_REDIS, DC_DEP_POSTGRES, DC_DEP_COUNT } dc_dep_t;

/* The values of dashboard_breaker_state. */
typedef enum {
    DC_BREAKER_CLOSED,
    DC_BREAKER_OPEN,
    DC_BREAKER_HALF_OPEN,
    DC_BREAKER_STATES
} dc_breaker_state_t;

/* This process's settings from cfg (BREAKERS, BREAKER_*, and the dependencies' timeouts). */
void dc_breaker_configure(const dc_config_t *cfg);

/* Maps the host's state file. DC_OK, or DC_ERROR with err (the process keeps its own state then). */
int dc_breaker_open(const char *path, dc_err_t *err) DC_WUR;

/*
 * dc_breaker_configure, then maps the host's file for cfg (dc_shm_path
 * "breaker"); without it the process keeps its own breakers, and logs why.
 */
void dc_breaker_open_host(const dc_config_t *cfg);

/* Unmaps (tests), starts a process-local state afresh, and turns every breaker off. */
void dc_breaker_close(void);

/*
 * Whether a call may touch d now: 1 while closed, and for the one caller
 * that takes the probe of a half-open breaker; 0 while open (the caller
 * fails at once). A caller let through reports how the call went.
 */
int dc_breaker_allow(dc_dep_t d);

/*
 * Whether this process holds the probe of d's half-open breaker: its call
 * goes past the process's own back-off after a failure, which would
 * otherwise keep the host's one probe from probing.
 */
int dc_breaker_probing(dc_dep_t d);

/*
 * Whether the breakers are on (BREAKERS=on and configured): then they are
 * the host's back-off, and a process's own back-off after a failure would
 * only keep it failing after the host's breaker has closed again.
 */
int dc_breaker_on(void);

/* d answered. */
void dc_breaker_success(dc_dep_t d);

/* d did not answer (see above for what counts). */
void dc_breaker_failure(dc_dep_t d);

typedef struct {
    dc_breaker_state_t state;
    int64_t            since_ms;                       /* how long it has been in that state */
    uint64_t           transitions[DC_BREAKER_STATES]; /* by the state entered, since the file was made */
} dc_breaker_status_t;

void dc_breaker_status(dc_dep_t d, dc_breaker_status_t *st);

/* "redis", "postgres". */
const char *dc_breaker_dep_name(dc_dep_t d);

/* "closed", "open", "half_open". */
const char *dc_breaker_state_name(dc_breaker_state_t s);

#endif
