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

/* Where a URL's authority ends: nothing that can end a log field belongs to it. */
static int url_stop(char c)
{
    return c == '\0' || c == ' ' || c == '"' || c == '\'' || c == '\t' || c == '\n' || c == '\r' ||
           c == '>' || c == ')';
}

static int keyword_at(const char *p, const char *kw)
{
    for (; *kw != '\0'; p++, kw++) {
        if ((char)(*p | 0x20) != *kw) /* ASCII lower case; '=' has the bit already */
            return 0;
    }
    return 1;
}

size_t dc_log_redact(const char *in, char *out, size_t cap)
{
    static const char stars[] = "***";
    size_t            n = 0;
    const char       *p = in;

    if (cap == 0)
        return 0;
#define PUT(c)              \
    do {                    \
        if (n + 1 < cap)    \
            out[n++] = (c); \
    } while (0)
    while (*p != '\0') {
        if (p[0] == ':' && p[1] == '/' && p[2] == '/') {
            /* scheme://user:password@host: the last '@' ends the user information */
            const char *auth = p + 3, *end = auth, *at = NULL, *colon;
            while (!url_stop(*end)) {
                if (*end == '@')
                    at = end;
                end++;
            }
            for (int i = 0; i < 3; i++)
                PUT(p[i]);
            p = auth;
            colon = at != NULL ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
            if (colon != NULL) {
                for (; p <= colon; p++)
                    PUT(*p);
                for (size_t i = 0; i < sizeof(stars) - 1; i++)
                    PUT(stars[i]);
                p = at; /* the '@' and the host are copied as they are */
            }
            continue;
        }
        if (keyword_at(p, "password=")) {
            for (int i = 0; i < 9; i++)
                PUT(p[i]);
            p += 9;
            if (*p == '\'') { /* conninfo quoting: \' and \\ inside */
                for (p++; *p != '\0' && *p != '\''; p++)
                    if (*p == '\\' && p[1] != '\0')
                        p++;
                if (*p == '\'')
                    p++;
            } else {
                while (!url_stop(*p) && *p != '&')
                    p++;
            }
            for (size_t i = 0; i < sizeof(stars) - 1; i++)
                PUT(stars[i]);
            continue;
        }
        PUT(*p);
        p++;
    }
#undef PUT
    out[n] = '\0';
    return n;
}

void dc_log(dc_log_level_t level, const char *event, const char *fmt, ...)
{
    char           raw[1024], msg[1024], line[2048];
    struct timeval tv;
    struct tm      tm;
    va_list        ap;
    size_t         n, i;
    int            saved_errno = errno;

    if (level < min_level)
        return;

    va_start(ap, fmt);
    vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    dc_log_redact(raw, msg, sizeof(msg));

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
