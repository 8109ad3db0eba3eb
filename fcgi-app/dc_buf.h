/*
 * A growable byte buffer that is reused from request to request: reset keeps
 * the allocation, so a warm worker stops allocating once its buffers have
 * grown to the largest body it has produced.
 */
#ifndef DC_BUF_H
#define DC_BUF_H

#include <stddef.h>

#include "dc_core.h"

typedef struct {
    char  *data; /* always NUL-terminated when len > 0 or after append */
    size_t len;
    size_t cap;
} dc_buf_t;

#define DC_BUF_INIT \
    {               \
        NULL, 0, 0  \
    }

/* Empties the buffer and keeps its memory. */
void dc_buf_reset(dc_buf_t *b);

/* Releases the memory; the buffer can be used again afterwards. NULL is fine. */
void dc_buf_free(dc_buf_t *b);

/* Makes room for extra more bytes (and the NUL). DC_OK or DC_ENOMEM. */
int dc_buf_reserve(dc_buf_t *b, size_t extra) DC_WUR;

/* Appends n bytes. DC_OK or DC_ENOMEM (buffer unchanged). */
int dc_buf_append(dc_buf_t *b, const char *s, size_t n) DC_WUR;

int dc_buf_append_str(dc_buf_t *b, const char *s) DC_WUR;

int dc_buf_printf(dc_buf_t *b, const char *fmt, ...) DC_PRINTF(2, 3) DC_WUR;

#endif
