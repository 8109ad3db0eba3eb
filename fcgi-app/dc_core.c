/* Clock helpers shared by all modules. */
#include "dc_core.h"

#include <time.h>

int64_t dc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t dc_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static const char *const qtype_names[DC_Q_COUNT] = {
    "stats", "units", "alerts", "temperature", "devices", "compliance", "audit",
};

const char *dc_qtype_name(dc_qtype_t q)
{
    return (unsigned)q < DC_Q_COUNT ? qtype_names[q] : "unknown";
}
