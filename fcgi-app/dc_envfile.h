/*
 * An environment file (systemd's EnvironmentFile= syntax: KEY=VALUE lines,
 * # and ; comments, values optionally in single or double quotes) loaded
 * into the process environment, so that dashcache-fcgi --env-file can read
 * its configuration again on SIGHUP: systemd reads EnvironmentFile= only
 * when it starts a service, never on reload.
 */
#ifndef DC_ENVFILE_H
#define DC_ENVFILE_H

#include "dc_core.h"

/*
 * Sets every variable of the file (overwriting), after unsetting those the
 * previous call set that the file no longer has. A missing file is DC_OK
 * when optional. DC_OK, or DC_ERROR with err naming the file and the line
 * (nothing is changed then).
 */
int dc_envfile_load(const char *path, int optional, dc_err_t *err) DC_WUR;

/*
 * For dashcachectl check-config: sets every well-formed variable of the
 * file (overwriting) and calls fn with each problem ("FILE:LINE: not
 * KEY=VALUE", an unreadable file), instead of stopping at the first.
 * Returns the number of problems.
 */
int dc_envfile_check(const char *path, void (*fn)(const char *problem, void *arg), void *arg);

/* Forgets which variables the file set (for tests). */
void dc_envfile_reset(void);

#endif
