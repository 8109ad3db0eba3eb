/* Clock, query type labels and fixed-buffer text shared by all modules. */
#include "dc_core.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int dc_err_set(dc_err_t *e, int code, const char *fmt, ...)
{
    va_list ap;

    if (e == NULL)
        return code;
    e->code = code;
    va_start(ap, fmt);
    vsnprintf(e->str, sizeof(e->str), fmt, ap);
    va_end(ap);
    return code;
}

long dc_poll_wait(long us)
{
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000L };

    while (nanosleep(&ts, &ts) != 0)
        ;
    return us * 2 < DC_POLL_WAIT_MAX_US ? us * 2 : DC_POLL_WAIT_MAX_US;
}

int64_t dc_now_ms(void)
{
    return dc_now_ns() / 1000000;
}

static int64_t request_deadline_ms; /* one request at a time per process */

void dc_deadline_set(int64_t deadline_ms)
{
    request_deadline_ms = deadline_ms;
}

int64_t dc_deadline_cap(int64_t deadline_ms)
{
    return request_deadline_ms > 0 && request_deadline_ms < deadline_ms ? request_deadline_ms : deadline_ms;
}

int64_t dc_now_us(void)
{
    return dc_now_ns() / 1000;
}

int64_t dc_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#define LABEL(NAME, method, label, ...) label,
static const char *const qtype_names[DC_Q_COUNT] = { DC_API_QUERIES(LABEL) };
#undef LABEL

const char *dc_qtype_name(dc_qtype_t q)
{
    return (unsigned)q < DC_Q_COUNT ? qtype_names[q] : "unknown";
}

void dc_fix_init(dc_fix_t *f, char *buf, size_t cap)
{
    f->p = buf;
    f->end = cap > 0 ? buf + cap - 1 : buf;
    f->overflow = cap == 0;
}

void dc_fix_put(dc_fix_t *f, const char *s, size_t n)
{
    if (f->overflow || (size_t)(f->end - f->p) < n) {
        f->overflow = 1;
        return;
    }
    memcpy(f->p, s, n);
    f->p += n;
}

void dc_fix_str(dc_fix_t *f, const char *s)
{
    dc_fix_put(f, s, strlen(s));
}

void dc_fix_uint(dc_fix_t *f, unsigned long long v)
{
    char   digits[24];
    size_t i = sizeof(digits);

    do {
        digits[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    dc_fix_put(f, digits + i, sizeof(digits) - i);
}

int dc_fix_finish(dc_fix_t *f, const char *buf)
{
    if (f->overflow)
        return DC_ERROR;
    *f->p = '\0';
    return (int)(f->p - buf);
}

int dc_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}
