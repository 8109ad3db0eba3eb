/* Start-up steps in order, stopping at the first failure. */
#include "dc_init.h"

#include <stdio.h>

#include "dc_db.h"
#include "dc_log.h"

int dc_init_run(const char *program, const dc_init_step_t *steps, size_t n, void *ctx)
{
    for (size_t i = 0; i < n; i++) {
        int rc = steps[i].run(ctx);
        if (rc != DC_OK) {
            dc_log_error("init.failed", "%s: start-up stopped at step %s", program, steps[i].name);
            return rc;
        }
    }
    return DC_OK;
}

int dc_init_config(const char *program, dc_config_t *cfg)
{
    dc_err_t err;

    char shown[sizeof(err.str)];

    /* the messages quote the variables: never a password */
    if (dc_config_load(cfg) != DC_OK) {
        dc_log_redact(cfg->err.str, shown, sizeof(shown));
        fprintf(stderr, "%s: configuration error: %s\n", program, shown);
        return 1;
    }
    if (dc_db_check_conninfo(cfg->database_url, &err) != DC_OK ||
        (cfg->database_read_url[0] != '\0' &&
         dc_db_check_read_conninfo(cfg->database_read_url, &err) != DC_OK)) {
        dc_log_redact(err.str, shown, sizeof(shown));
        fprintf(stderr, "%s: configuration error: %s\n", program, shown);
        return 1;
    }
    dc_log_set_level(cfg->log_level);
    return DC_OK;
}
