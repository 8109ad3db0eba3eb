/*
 * A list of strings in the order they were added, each with its length:
 * the events one write announces. The strings live in one buffer and keep
 * their memory across resets, so a warm worker stops allocating.
 *
 * The fields are private to dc_strs.c: strings in a buffer with a count kept
 * beside them is what had to be re-walked and kept in step by hand before;
 * every change of state, reset included, goes through the functions below.
 */
#ifndef DC_STRS_H
#define DC_STRS_H

#include <stddef.h>

#include "dc_buf.h"

typedef struct {
    dc_buf_t text;   /* the strings, each followed by a NUL */
    size_t  *starts; /* offset of string i in text; n of cap used */
    size_t   n, cap;
} dc_strs_t;

#define DC_STRS_INIT            \
    {                           \
        DC_BUF_INIT, NULL, 0, 0 \
    }

/* Empties the list and keeps its memory. */
void dc_strs_reset(dc_strs_t *s);

/* Releases the memory; the list can be used again afterwards. NULL is fine. */
void dc_strs_free(dc_strs_t *s);

/* Appends a copy of str[0..len). DC_OK, or DC_ENOMEM with the list unchanged. */
int dc_strs_add(dc_strs_t *s, const char *str, size_t len) DC_WUR;

size_t dc_strs_count(const dc_strs_t *s);

/*
 * The i-th string (i < count), NUL-terminated, its length in *len (may be
 * NULL); NULL when i is out of range. Valid until the next add, reset or free.
 */
const char *dc_strs_at(const dc_strs_t *s, size_t i, size_t *len);

#endif
