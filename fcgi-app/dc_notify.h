/*
 * The service manager's notification protocol (sd_notify(3), Type=notify):
 * the master says when the pool is ready, what it is doing (STATUS=), and
 * when it reloads or stops, so that `systemctl start` returns once the
 * workers serve and `systemctl reload` once the new ones do. The only file
 * that includes libsystemd. Without NOTIFY_SOCKET (not started by systemd)
 * every call does nothing.
 */
#ifndef DC_NOTIFY_H
#define DC_NOTIFY_H

#include "dc_core.h"

/* READY=1 with a STATUS= line saying workers and requests. */
void dc_notify_ready(int workers, unsigned long long requests);

/* STATUS= only (periodic). */
void dc_notify_status(int workers, unsigned long long requests);

/* RELOADING=1 with MONOTONIC_USEC= (systemd 253 checks it for Type=notify-reload). */
void dc_notify_reloading(void);

/* STOPPING=1. */
void dc_notify_stopping(void);

#endif
