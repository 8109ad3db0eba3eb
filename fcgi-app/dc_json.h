/*
 * A small JSON writer into a dc_buf_t, for the bodies dashcache produces.
 * Every append is checked: the first failure makes the writer sticky-failed
 * and dc_json_finish reports DC_ENOMEM and puts the buffer back as it was,
 * so a body is either complete or absent, never damaged. json-c stays the
 * parser of what comes in (request bodies, messages, audit details).
 */
#ifndef DC_JSON_H
#define DC_JSON_H

#include "dc_buf.h"

#define DC_JSON_DEPTH 8

typedef struct {
    dc_buf_t     *out;
    size_t        start; /* out->len when the writer began */
    int           failed;
    unsigned      depth;
    unsigned char first[DC_JSON_DEPTH]; /* nothing written yet at this level */
} dc_json_t;

void dc_json_begin(dc_json_t *j, dc_buf_t *out);

void dc_json_object(dc_json_t *j);      /* { */
void dc_json_array(dc_json_t *j);       /* [ */
void dc_json_end(dc_json_t *j, char c); /* } or ] */

/* "key": — the next value belongs to it. */
void dc_json_key(dc_json_t *j, const char *key);

void dc_json_str(dc_json_t *j, const char *s); /* NULL → null */
void dc_json_int(dc_json_t *j, long long v);
void dc_json_bool(dc_json_t *j, int v);
void dc_json_null(dc_json_t *j);

/* A number given as text (as PostgreSQL printed it); null unless it is a JSON number. */
void dc_json_number(dc_json_t *j, const char *text);

/* Text that is already valid JSON, written as it is. */
void dc_json_raw(dc_json_t *j, const char *json);

/* Valid JSON text, written without the white space between its tokens. */
void dc_json_raw_compact(dc_json_t *j, const char *json);

/* DC_OK, or DC_ENOMEM with out restored to its length before dc_json_begin. */
int dc_json_finish(dc_json_t *j) DC_WUR;

/* Whether text is exactly one JSON value (RFC 8259), white space around it allowed. */
int dc_json_is_valid(const char *text);

/* Whether text is a JSON number (RFC 8259 grammar). */
int dc_json_is_number(const char *text);

#endif
