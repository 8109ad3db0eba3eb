/* Growable, reusable byte buffer. */
#include "dc_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dc_buf_reset(dc_buf_t *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

void dc_buf_free(dc_buf_t *b)
{
    if (b == NULL)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int dc_buf_reserve(dc_buf_t *b, size_t extra)
{
    size_t need, cap;
    char  *p;

    if (extra > SIZE_MAX - b->len - 1)
        return DC_ENOMEM;
    need = b->len + extra + 1;
    if (need <= b->cap)
        return DC_OK;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = realloc(b->data, cap);
    if (p == NULL)
        return DC_ENOMEM;
    b->data = p;
    b->cap = cap;
    return DC_OK;
}

int dc_buf_append(dc_buf_t *b, const char *s, size_t n)
{
    if (dc_buf_reserve(b, n) != DC_OK)
        return DC_ENOMEM;
    if (n > 0)
        memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return DC_OK;
}

int dc_buf_append_str(dc_buf_t *b, const char *s)
{
    return dc_buf_append(b, s, strlen(s));
}

int dc_buf_printf(dc_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    int     n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return DC_ERROR;
    if (dc_buf_reserve(b, (size_t)n) != DC_OK)
        return DC_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return DC_OK;
}
