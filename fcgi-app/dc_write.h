/*
 * A write request's life in a worker: parse and check its body, run its
 * transaction (dc_query_write), then, after the commit and before the
 * answer, invalidate in every organization it touched the query types that
 * read what it changed there, and announce its events on dashboard:events,
 * in that order.
 */
#ifndef DC_WRITE_H
#define DC_WRITE_H

#include "dc_auth.h"
#include "dc_body.h"
#include "dc_cache.h"
#include "dc_db.h"
#include "dc_query_write.h"
#include "dc_response.h"

/* What a worker keeps from write to write (reused memory). Zero it to start. */
typedef struct {
    dc_write_t        parsed;  /* the request body */
    dc_write_result_t result;  /* what the write invalidates and announces */
    dc_buf_t          request; /* what identifies it under an Idempotency-Key */
} dc_write_state_t;

/* Releases what st holds. */
void dc_write_state_free(dc_write_state_t *st);

/* The longest Idempotency-Key; its characters: A-Z a-z 0-9 - _ . : ~ + / = */
#define DC_IDEMPOTENCY_KEY_MAX 128

/* Whether key is a valid Idempotency-Key. */
int dc_write_key_ok(const char *key);

/*
 * Handles the write req of the authorized caller who with its body
 * (content_type and idempotency_key may be NULL). With a key, the write and
 * its answer are one transaction and a retry of the same request by the same
 * subject gets that answer again (Idempotency-Replayed: true) without
 * writing, invalidating or announcing anything; the same key with another
 * request is a 422, an invalid key a 400. The response body lives in out,
 * which is reset first.
 */
void dc_write_handle(dc_write_state_t *st, const dc_config_t *cfg, dc_cache_t *cache, dc_db_t *db,
                     const dc_request_t *req, const dc_principal_t *who, const char *content_type,
                     const char *idempotency_key, const char *body, size_t len, dc_buf_t *out,
                     dc_response_t *resp);

#endif
