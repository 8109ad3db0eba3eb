/* Structured logging to stderr, one write(2) per line so lines never interleave. */
#include "dc_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static dc_log_level_t min_level = DC_LOG_INFO;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void dc_log_set_level(dc_log_level_t level)
{
    min_level = level;
}

int dc_log_parse_level(const char *s, dc_log_level_t *out)
{
    for (size_t i = 0; i < DC_ARRAY_LEN(level_names); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (dc_log_level_t)i;
            return DC_OK;
        }
    }
    return DC_EINVAL;
}

int dc_log_enabled(dc_log_level_t level)
{
    return level >= min_level;
}

void dc_log(dc_log_level_t level, const char *event, const char *fmt, ...)
{
    char           msg[1024], line[2048];
    struct timeval tv;
    struct tm      tm;
    va_list        ap;
    size_t         n, i;
    int            saved_errno = errno;

    if (level < min_level)
        return;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(line, sizeof(line), "ts=%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03dZ level=%s pid=%d event=%s msg=\"",
                          (int)(tv.tv_usec / 1000), level_names[level], (int)getpid(), event);

    /* leave room for the closing quote and newline */
    for (i = 0; msg[i] != '\0' && n < sizeof(line) - 4; i++) {
        unsigned char c = (unsigned char)msg[i];
        if (c == '"' || c == '\\') {
            line[n++] = '\\';
            line[n++] = (char)c;
        } else if (c < 0x20) {
            line[n++] = ' ';
        } else {
            line[n++] = (char)c;
        }
    }
    line[n++] = '"';
    line[n++] = '\n';

    /* stderr may be a pipe shared by all workers: one write keeps lines whole */
    if (write(STDERR_FILENO, line, n) < 0) {
        /* nowhere left to report it */
    }
    errno = saved_errno;
}
