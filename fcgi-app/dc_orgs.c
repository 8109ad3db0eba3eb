/* Distinct organization ids: an array in insertion order and a hash index over it. */
#include "dc_orgs.h"

#include <stdlib.h>
#include <string.h>

#include "dc_request.h"

#define FIRST_CAP 16

static uint32_t hash(const char *id)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (size_t i = 0; i < DC_UUID_LEN; i++)
        h = (h ^ (unsigned char)id[i]) * 16777619u;
    return h;
}

/* The slot that holds id, or the empty slot where it would go. */
static size_t find(const dc_orgs_t *s, const char *id)
{
    size_t mask = s->nslots - 1, i = hash(id) & mask;

    while (s->slots[i] != 0 && memcmp(s->ids[s->slots[i] - 1], id, DC_UUID_LEN) != 0)
        i = (i + 1) & mask;
    return i;
}

/* Room for one more id. Nothing changes unless every allocation succeeded. */
static int grow(dc_orgs_t *s)
{
    size_t    cap, nslots;
    uint32_t *slots;
    void     *ids, *bits;

    if (s->n < s->cap)
        return DC_OK;
    cap = s->cap ? s->cap * 2 : FIRST_CAP;
    if (cap > UINT32_MAX / 4)
        return DC_ENOMEM;
    nslots = cap * 2;
    slots = calloc(nslots, sizeof(*slots));
    if (slots == NULL)
        return DC_ENOMEM;
    bits = malloc(cap * sizeof(*s->bits));
    ids = bits != NULL ? realloc(s->ids, cap * sizeof(*s->ids)) : NULL;
    if (ids == NULL) {
        free(bits);
        free(slots);
        return DC_ENOMEM;
    }
    if (s->n > 0)
        memcpy(bits, s->bits, s->n * sizeof(*s->bits));
    free(s->bits);
    free(s->slots);
    s->bits = bits;
    s->ids = ids;
    s->cap = cap;
    s->slots = slots;
    s->nslots = nslots;
    for (size_t k = 0; k < s->n; k++)
        s->slots[find(s, s->ids[k])] = (uint32_t)(k + 1);
    return DC_OK;
}

void dc_orgs_reset(dc_orgs_t *s)
{
    s->n = 0;
    if (s->slots != NULL)
        memset(s->slots, 0, s->nslots * sizeof(*s->slots));
}

void dc_orgs_free(dc_orgs_t *s)
{
    if (s == NULL)
        return;
    free(s->ids);
    free(s->bits);
    free(s->slots);
    *s = (dc_orgs_t)DC_ORGS_INIT;
}

int dc_orgs_add(dc_orgs_t *s, const char *id, size_t n, unsigned bits)
{
    char   norm[DC_UUID_LEN + 1];
    size_t slot;

    if (dc_request_parse_uuid(id, n, norm) != DC_OK)
        return DC_EINVAL;
    if (s->n > 0) {
        slot = find(s, norm);
        if (s->slots[slot] != 0) {
            s->bits[s->slots[slot] - 1] |= bits;
            return DC_OK;
        }
    }
    if (grow(s) != DC_OK)
        return DC_ENOMEM;
    slot = find(s, norm);
    memcpy(s->ids[s->n], norm, sizeof(norm));
    s->bits[s->n] = bits;
    s->n++;
    s->slots[slot] = (uint32_t)s->n;
    return DC_OK;
}

size_t dc_orgs_count(const dc_orgs_t *s)
{
    return s->n;
}

const char *dc_orgs_at(const dc_orgs_t *s, size_t i)
{
    return i < s->n ? s->ids[i] : NULL;
}

unsigned dc_orgs_bits_at(const dc_orgs_t *s, size_t i)
{
    return i < s->n ? s->bits[i] : 0;
}

int dc_orgs_contains(const dc_orgs_t *s, const char *id)
{
    char norm[DC_UUID_LEN + 1];

    if (s->n == 0 || dc_request_parse_uuid(id, strlen(id), norm) != DC_OK)
        return 0;
    return s->slots[find(s, norm)] != 0;
}
