/*
 * Signals. Workers and the invalidator keep TERM, INT, QUIT and HUP blocked while they work and
 * take them only while waiting for a connection (epoll_pwait with wait_mask), so a
 * request in flight is never interrupted; handlers only set flags. The master
 * blocks the signals it cares about and takes them synchronously with
 * sigtimedwait, so it needs no handlers at all.
 */
#ifndef DC_SIGNAL_H
#define DC_SIGNAL_H

#include <signal.h>

/* Set by the stop handlers: leave the loop after the work in hand. */
extern volatile sig_atomic_t dc_signal_stop;

/*
 * Installs the flag handlers of TERM, INT, QUIT and HUP (a worker and the
 * invalidator stop gracefully on each) and blocks those signals. wait_mask
 * receives the mask to pass to epoll_pwait or ppoll (the blocked set minus
 * those signals), so they arrive only while the process waits.
 * DC_OK or DC_ERROR (logged).
 */
int dc_signal_stop_init(sigset_t *wait_mask);

/* Blocks CHLD, USR1, TERM, INT, QUIT, HUP; set receives them for sigtimedwait. */
int dc_signal_master_init(sigset_t *set);

/*
 * In a child right after fork: default dispositions, the given mask back.
 * DC_OK or DC_ERROR.
 */
int dc_signal_child_reset(const sigset_t *mask);

#endif
