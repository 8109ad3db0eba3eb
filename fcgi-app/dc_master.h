/*
 * The prefork master: owns the listening socket, forks N workers, reaps and
 * respawns them (with a back-off for workers that die right after start),
 * replaces them all at once on SIGHUP and each one that retires (max
 * requests) or is stuck in one request (a watchdog over the workers'
 * scoreboard, shared memory), and on SIGTERM/SIGINT/SIGQUIT lets
 * every worker finish its request and exit before it exits itself, killing
 * what is still there after the stop timeout.
 */
#ifndef DC_MASTER_H
#define DC_MASTER_H

#include "dc_config.h"
#include "dc_priv.h"

#define DC_STOP_TIMEOUT_MS 30000

/*
 * Runs the master on listen_fd (which stays open: the caller closes it,
 * dc_listen_close) until a stop signal. On SIGHUP, with env_file (or NULL),
 * it first reads that file into the environment and cfg from it again; a
 * file or configuration with an error is logged and changes nothing (the
 * workers keep running). Each worker becomes priv's user right after fork
 * (an inactive priv: it stays who the master is). max_requests: each
 * worker's (--max-requests), -1 for MAX_REQUESTS of cfg; a worker that
 * retires is replaced at once while it drains. A worker busy with one
 * request for twice REQUEST_TIMEOUT_MS is killed and replaced. Returns
 * the process exit code.
 */
int dc_master_run(int listen_fd, int workers, dc_config_t *cfg, const char *env_file, const dc_priv_t *priv,
                  int max_requests);

#endif
