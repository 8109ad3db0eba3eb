/*
 * SHA-256 (FIPS 180-4), small and dependency-free: the request hash of an
 * Idempotency-Key, so that a retry is recognised as the same request.
 */
#ifndef DC_SHA256_H
#define DC_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define DC_SHA256_LEN     32
#define DC_SHA256_HEX_LEN 64

typedef struct {
    uint32_t h[8];
    uint64_t bytes; /* hashed so far */
    uint8_t  block[64];
    size_t   used; /* bytes in block */
} dc_sha256_t;

void dc_sha256_init(dc_sha256_t *c);
void dc_sha256_update(dc_sha256_t *c, const void *data, size_t n);
void dc_sha256_final(dc_sha256_t *c, uint8_t out[DC_SHA256_LEN]);

/* The digest of c's input as 64 lower-case hex digits and a NUL (finalises c). */
void dc_sha256_hex(dc_sha256_t *c, char out[DC_SHA256_HEX_LEN + 1]);

#endif
