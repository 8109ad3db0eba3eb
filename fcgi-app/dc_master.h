/*
 * The prefork master: owns the listening socket, forks N workers, reaps and
 * respawns them (with a back-off for workers that die right after start),
 * restarts them one by one on SIGHUP, and on SIGTERM/SIGINT/SIGQUIT lets
 * every worker finish its request and exit before it exits itself, killing
 * what is still there after the stop timeout.
 */
#ifndef DC_MASTER_H
#define DC_MASTER_H

#include "dc_config.h"

#define DC_STOP_TIMEOUT_MS 30000

/*
 * Opens a listening socket: "unix:/path", "/path", "host:port" or ":port".
 * A unix socket gets mode `mode` (e.g. 0660); a stale socket file is
 * replaced. Returns the fd, or -1 with err set.
 */
int dc_master_listen(const char *spec, int mode, dc_err_t *err);

/*
 * Runs the master until a stop signal; unix_path (or NULL) is unlinked on
 * exit. Returns the process exit code.
 */
int dc_master_run(int listen_fd, int workers, const dc_config_t *cfg, const char *unix_path);

#endif
