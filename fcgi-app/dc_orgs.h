/*
 * A set of distinct organization ids in the order they were added: the
 * organizations one write touched, one batch of outbox rows, every
 * organization of a resync. Ids are validated and normalized (lower-case
 * UUID) on the way in, so what comes out can go straight to the key builder.
 * Each id carries bits, the union of those of every add of it: what
 * changed in that organization (DC_CHANGE_BIT of dc_api.h).
 *
 * The fields are private to dc_orgs.c: a list of ids with a count beside it
 * is what let a forgotten reset field skip invalidations once (issue 7), so
 * every change of state, reset included, goes through the functions below.
 */
#ifndef DC_ORGS_H
#define DC_ORGS_H

#include <stddef.h>
#include <stdint.h>

#include "dc_core.h"

typedef struct {
    char (*ids)[DC_UUID_LEN + 1]; /* n of cap used, each NUL-terminated */
    unsigned *bits;               /* bits[i]: those of ids[i] */
    size_t    n, cap;
    uint32_t *slots;  /* open-addressing index over ids: 0 empty, else position + 1 */
    size_t    nslots; /* 0, or a power of two of at least 2 * cap */
} dc_orgs_t;

#define DC_ORGS_INIT              \
    {                             \
        NULL, NULL, 0, 0, NULL, 0 \
    }

/* Empties the set and keeps its memory. */
void dc_orgs_reset(dc_orgs_t *s);

/* Releases the memory; the set can be used again afterwards. NULL is fine. */
void dc_orgs_free(dc_orgs_t *s);

/*
 * Adds the UUID id[0..n) (any case) with bits, or adds bits to those of
 * id when the set holds it already. DC_OK; DC_EINVAL (not a UUID) or
 * DC_ENOMEM, both with the set unchanged.
 */
int dc_orgs_add(dc_orgs_t *s, const char *id, size_t n, unsigned bits) DC_WUR;

size_t dc_orgs_count(const dc_orgs_t *s);

/* The i-th id added (i < count), NUL-terminated; valid until the next add, reset or free. */
const char *dc_orgs_at(const dc_orgs_t *s, size_t i);

/* The bits of the i-th id (i < count), 0 out of range. */
unsigned dc_orgs_bits_at(const dc_orgs_t *s, size_t i);

/* Whether the set holds the UUID id (any case, NUL-terminated). */
int dc_orgs_contains(const dc_orgs_t *s, const char *id);

#endif
