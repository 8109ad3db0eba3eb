/* Start-up steps in order, stopping at the first failure. */
#include "dc_init.h"

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
