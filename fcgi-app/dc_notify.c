/* sd_notify for the master (dc_notify.h). */
#include "dc_notify.h"

#include <stdio.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "dc_log.h"

/* sd_notify's failures change nothing for the pool: logged once, never fatal. */
static void tell(const char *what, const char *msg)
{
    static int warned;
    int        rc = sd_notify(0, msg);

    if (rc < 0 && !warned) {
        warned = 1;
        dc_log_warn("master.notify", "sd_notify(%s) failed: error %d", what, -rc);
    }
}

void dc_notify_ready(int workers, unsigned long long requests)
{
    char msg[160];

    snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%d workers, %llu requests served", workers, requests);
    tell("READY", msg);
}

void dc_notify_status(int workers, unsigned long long requests)
{
    char msg[128];

    snprintf(msg, sizeof(msg), "STATUS=%d workers, %llu requests served", workers, requests);
    tell("STATUS", msg);
}

void dc_notify_reloading(void)
{
    struct timespec ts;
    char            msg[96];

    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(msg, sizeof(msg), "RELOADING=1\nSTATUS=reloading\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL);
    tell("RELOADING", msg);
}

void dc_notify_stopping(void)
{
    tell("STOPPING", "STOPPING=1\nSTATUS=stopping");
}
