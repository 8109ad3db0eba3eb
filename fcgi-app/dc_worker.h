/*
 * The event loop of one worker process over many FastCGI connections.
 * Works on a socket opened by the master, inherited on fd 0 (spawn-fcgi)
 * or passed by systemd. Under the master it publishes what it is doing in
 * its scoreboard entry, so that the master can replace a worker that
 * retires (max requests) at once and kill one stuck in a request.
 */
#ifndef DC_WORKER_H
#define DC_WORKER_H

#include <sys/types.h>

#include "dc_config.h"

#define DC_BOARD_ROUTE_MAX 96

/*
 * A worker's entry in the master's scoreboard (shared memory mapped before
 * fork; php-fpm's scoreboard). The worker is its only writer; the master
 * reads it with atomic loads: busy_since_ms is stored last when a request's
 * work starts and cleared when it ends, so a reader that sees the same
 * busy_since_ms before and after copying route has a route of that request.
 */
typedef struct {
    int64_t busy_since_ms; /* dc_now_ms() when the work of the request in hand began; 0: none */
    int32_t retiring;      /* 1: it served its max requests and drains; replace it now */
    char    route[DC_BOARD_ROUTE_MAX];
} __attribute__((aligned(128))) dc_board_t;

typedef struct {
    pid_t       master;       /* to wake with SIGUSR1 when it retires; 0: no master */
    dc_board_t *board;        /* its scoreboard entry, or NULL (no master) */
    int         max_requests; /* --max-requests; -1: MAX_REQUESTS of the configuration */
} dc_worker_opts_t;

/*
 * Runs until SIGTERM/INT/QUIT/HUP, or until it has answered its max
 * requests (then it drains as on SIGTERM, after setting board->retiring and
 * waking the master). Returns the process exit code.
 */
int dc_worker_run(int listen_fd, const dc_config_t *cfg, const dc_worker_opts_t *opts);

#endif
