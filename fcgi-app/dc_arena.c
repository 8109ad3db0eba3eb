/* Bump allocation over kept blocks. */
#include "dc_arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>

struct dc_arena_block_s {
    dc_arena_block_t *next;
    size_t            cap, used;
    alignas(max_align_t) unsigned char data[];
};

static size_t round_up(size_t n)
{
    const size_t al = alignof(max_align_t);
    return (n + al - 1) / al * al;
}

void *dc_arena_alloc(dc_arena_t *a, size_t n)
{
    dc_arena_block_t *b = a->head, *prev = NULL;
    size_t            need = round_up(n ? n : 1);

    if (need < n)
        return NULL; /* overflow */
    /* a kept block further down the chain may have room (after a reset every block does) */
    while (b != NULL && b->cap - b->used < need) {
        prev = b;
        b = b->next;
    }
    if (b == NULL) {
        size_t cap = need > DC_ARENA_BLOCK ? need : DC_ARENA_BLOCK;
        if (cap > SIZE_MAX - sizeof(*b))
            return NULL;
        b = malloc(sizeof(*b) + cap);
        if (b == NULL)
            return NULL;
        b->cap = cap;
        b->used = 0;
        b->next = a->head;
        a->head = b;
        a->kept += cap;
    } else if (prev != NULL) {
        /* move it to the front: the next allocations are carved from it */
        prev->next = b->next;
        b->next = a->head;
        a->head = b;
    }
    b->used += need;
    return b->data + b->used - need;
}

void dc_arena_reset(dc_arena_t *a)
{
    dc_arena_block_t **p = &a->head;

    while (*p != NULL) {
        dc_arena_block_t *b = *p;
        if (a->kept > DC_ARENA_KEEP && b->cap > DC_ARENA_BLOCK) {
            /* a block of one huge reply: not worth keeping */
            *p = b->next;
            a->kept -= b->cap;
            free(b);
            continue;
        }
        b->used = 0;
        p = &b->next;
    }
    /* still over: drop blocks from the end of the chain */
    while (a->kept > DC_ARENA_KEEP && a->head != NULL && a->head->next != NULL) {
        dc_arena_block_t **q = &a->head;
        while ((*q)->next != NULL)
            q = &(*q)->next;
        a->kept -= (*q)->cap;
        free(*q);
        *q = NULL;
    }
}

void dc_arena_free(dc_arena_t *a)
{
    while (a->head != NULL) {
        dc_arena_block_t *b = a->head;
        a->head = b->next;
        free(b);
    }
    a->kept = 0;
}
