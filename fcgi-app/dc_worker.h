/*
 * The FastCGI accept loop of one worker process: wait for a connection with
 * the stop signals open, serve one request with them blocked, repeat until
 * told to stop. Works on a socket opened by the master, inherited on fd 0
 * (spawn-fcgi) or passed by systemd.
 */
#ifndef DC_WORKER_H
#define DC_WORKER_H

#include "dc_config.h"

/* Runs until SIGTERM/INT/QUIT/HUP. Returns the process exit code. */
int dc_worker_run(int listen_fd, const dc_config_t *cfg);

#endif
