/* Strings in one buffer and an array of their offsets. */
#include "dc_strs.h"

#include <stdlib.h>

#define FIRST_CAP 8

void dc_strs_reset(dc_strs_t *s)
{
    dc_buf_reset(&s->text);
    s->n = 0;
}

void dc_strs_free(dc_strs_t *s)
{
    if (s == NULL)
        return;
    dc_buf_free(&s->text);
    free(s->starts);
    *s = (dc_strs_t)DC_STRS_INIT;
}

int dc_strs_add(dc_strs_t *s, const char *str, size_t len)
{
    size_t start = s->text.len;

    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : FIRST_CAP;
        void  *p = realloc(s->starts, cap * sizeof(*s->starts));
        if (p == NULL)
            return DC_ENOMEM;
        s->starts = p;
        s->cap = cap;
    }
    /* the string and its NUL in one append, so a failure leaves text as it was */
    if (dc_buf_reserve(&s->text, len + 1) != DC_OK)
        return DC_ENOMEM;
    if (dc_buf_append(&s->text, str, len) != DC_OK || dc_buf_append(&s->text, "", 1) != DC_OK) {
        s->text.len = start;
        return DC_ENOMEM;
    }
    s->starts[s->n++] = start;
    return DC_OK;
}

size_t dc_strs_count(const dc_strs_t *s)
{
    return s->n;
}

const char *dc_strs_at(const dc_strs_t *s, size_t i, size_t *len)
{
    size_t end;

    if (i >= s->n)
        return NULL;
    end = i + 1 < s->n ? s->starts[i + 1] : s->text.len;
    if (len != NULL)
        *len = end - s->starts[i] - 1;
    return s->text.data + s->starts[i];
}
