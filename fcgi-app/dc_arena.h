/*
 * A bump allocator whose memory is kept from use to use: dc_arena_alloc
 * carves from a chain of blocks, dc_arena_reset rewinds them all at once.
 * A worker's Redis replies of one batch of lookups live here (dc_cache),
 * so that a warm worker answers hits without calling malloc.
 *
 * Blocks of DC_ARENA_BLOCK bytes, or one of its own for a larger request;
 * a reset keeps up to DC_ARENA_KEEP bytes of blocks and frees the rest, so
 * one huge answer does not stay resident.
 */
#ifndef DC_ARENA_H
#define DC_ARENA_H

#include <stddef.h>

#include "dc_core.h"

#define DC_ARENA_BLOCK (64 * 1024)
#define DC_ARENA_KEEP  (256 * 1024)

typedef struct dc_arena_block_s dc_arena_block_t;

typedef struct {
    dc_arena_block_t *head; /* the block being carved; earlier ones follow it */
    size_t            kept; /* bytes of all blocks */
} dc_arena_t;

#define DC_ARENA_INIT \
    {                 \
        NULL, 0       \
    }

/* n bytes aligned for any type, not initialised; NULL on out of memory. Valid until the next reset. */
void *dc_arena_alloc(dc_arena_t *a, size_t n) DC_WUR;

/* Forgets every allocation; keeps up to DC_ARENA_KEEP bytes of blocks for the next ones. */
void dc_arena_reset(dc_arena_t *a);

/* Frees every block. The arena can be used again afterwards. */
void dc_arena_free(dc_arena_t *a);

#endif
