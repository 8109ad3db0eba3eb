/*
 * One structured line per event on stderr, logfmt style:
 *   ts=2026-11-21T15:04:05.123Z level=info pid=42 event=worker.start msg="..."
 * journald and `docker logs` keep them as they are; grep and jq-less shells
 * can read them. Lines below the level set by LOG_LEVEL are dropped before
 * any formatting happens.
 */
#ifndef DC_LOG_H
#define DC_LOG_H

#include "dc_core.h"

typedef enum {
    DC_LOG_DEBUG = 0,
    DC_LOG_INFO,
    DC_LOG_WARN,
    DC_LOG_ERROR,
} dc_log_level_t;

/* Sets the lowest level that is written (default DC_LOG_INFO). */
void dc_log_set_level(dc_log_level_t level);

/* Parses "debug", "info", "warn" or "error". DC_OK or DC_EINVAL. */
int dc_log_parse_level(const char *s, dc_log_level_t *out) DC_WUR;

int dc_log_enabled(dc_log_level_t level);

/*
 * Copies in to out (cap bytes, always NUL-terminated) with credentials
 * replaced by ***: the password of a URL's user:password@ (any scheme:
 * redis://, postgresql://) and the value of a password= keyword (libpq
 * conninfo, or a URI query parameter). Returns the length written.
 * dc_log applies it to every message, so a URL or a conninfo string that
 * reaches a log line never carries its secret.
 */
size_t dc_log_redact(const char *in, char *out, size_t cap);

/*
 * Writes one line, credentials redacted (dc_log_redact). `event` is a dotted name without spaces; the message is
 * quoted and its quotes and control characters escaped.
 */
void dc_log(dc_log_level_t level, const char *event, const char *fmt, ...) DC_PRINTF(3, 4);

#define dc_log_debug(ev, ...)                      \
    do {                                           \
        if (dc_log_enabled(DC_LOG_DEBUG))          \
            dc_log(DC_LOG_DEBUG, ev, __VA_ARGS__); \
    } while (0)
#define dc_log_info(ev, ...)  dc_log(DC_LOG_INFO, ev, __VA_ARGS__)
#define dc_log_warn(ev, ...)  dc_log(DC_LOG_WARN, ev, __VA_ARGS__)
#define dc_log_error(ev, ...) dc_log(DC_LOG_ERROR, ev, __VA_ARGS__)

#endif
