/*
 * A process's start-up as a list of steps, run in order until the first
 * that fails (php-fpm's fpm_init reads the same way). Each step reports its
 * own failure where it detects it; the chain adds which step stopped it.
 */
#ifndef DC_INIT_H
#define DC_INIT_H

#include <stddef.h>

#include "dc_config.h"
#include "dc_core.h"

typedef struct {
    const char *name;      /* for the log line: "config", "signals", ... */
    int (*run)(void *ctx); /* DC_OK, or the exit code to stop with (> 0) */
} dc_init_step_t;

/*
 * Runs steps[0..n) with ctx. DC_OK when all succeeded, else the exit code
 * of the step that failed (logged as event=init.failed with its name).
 */
int dc_init_run(const char *program, const dc_init_step_t *steps, size_t n, void *ctx) DC_WUR;

/*
 * The "config" step of every process: loads cfg from the environment,
 * checks DATABASE_URL, sets the log level. DC_OK, or 1 after printing
 * "<program>: configuration error: <what>" on stderr.
 */
int dc_init_config(const char *program, dc_config_t *cfg) DC_WUR;

#endif
