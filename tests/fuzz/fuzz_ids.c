/*
 * Fuzz target: id validation (dc_request_parse_uuid) and the set of
 * organization ids built from it (dc_orgs_add, _contains, _at, _reset).
 *
 * Input: lines; each line is one candidate id, an empty line empties the set.
 *
 * Invariants: dc_request_parse_uuid accepts exactly the 8-4-4-4-12 hex
 * strings of a reference check and writes their lower-case form; the set
 * agrees with a reference list: add of a UUID ⇒ contains it (in either case)
 * and holds it once, in the order first added, with the union of the bits
 * of its adds; add of anything else ⇒ DC_EINVAL and the set unchanged;
 * every id it holds is lower case.
 */
#include <ctype.h>

#include "dc_orgs.h"
#include "dc_request.h"
#include "fuzz.h"

#define REF_MAX 4096

static char     ref[REF_MAX][DC_UUID_LEN + 1];
static unsigned ref_bits[REF_MAX];
static size_t   nref;

static int ref_find(const char *id)
{
    for (size_t i = 0; i < nref; i++)
        if (strcmp(ref[i], id) == 0)
            return (int)i;
    return -1;
}

static void check_set(const dc_orgs_t *s)
{
    FUZZ_CHECK(dc_orgs_count(s) == nref, "count %zu, expected %zu", dc_orgs_count(s), nref);
    for (size_t i = 0; i < nref; i++) {
        FUZZ_CHECK(strcmp(dc_orgs_at(s, i), ref[i]) == 0, "at(%zu) = %s, expected %s", i, dc_orgs_at(s, i),
                   ref[i]);
        FUZZ_CHECK(dc_orgs_bits_at(s, i) == ref_bits[i], "bits_at(%zu) = %#x, expected %#x", i,
                   dc_orgs_bits_at(s, i), ref_bits[i]);
    }
}

static void one(dc_orgs_t *s, const char *line, size_t n)
{
    char     out[DC_UUID_LEN + 1], lower[DC_UUID_LEN + 1], upper[DC_UUID_LEN + 1];
    int      valid = fuzz_is_uuid(line, n, 0);
    int      rc, at;
    size_t   before = dc_orgs_count(s);
    unsigned bits = 1u << (unsigned)(line[n > 0 ? n - 1 : 0] & 7); /* the case of its last digit picks them */

    memset(out, 'x', sizeof(out));
    rc = dc_request_parse_uuid(line, n, out);
    FUZZ_CHECK(rc == (valid ? DC_OK : DC_EINVAL), "parse_uuid rc %d for a %s", rc,
               valid ? "UUID" : "non-UUID");
    if (!valid) {
        FUZZ_CHECK(dc_orgs_add(s, line, n, bits) == DC_EINVAL, "dc_orgs_add took a non-UUID");
        FUZZ_CHECK(dc_orgs_count(s) == before, "a rejected add changed the set");
        return;
    }
    for (size_t i = 0; i < DC_UUID_LEN; i++) {
        lower[i] = (char)tolower((unsigned char)line[i]);
        upper[i] = (char)toupper((unsigned char)line[i]);
    }
    lower[DC_UUID_LEN] = upper[DC_UUID_LEN] = '\0';
    FUZZ_CHECK(strcmp(out, lower) == 0 && fuzz_is_id(out), "parse_uuid wrote \"%.37s\" for %s", out, lower);

    rc = dc_orgs_add(s, line, n, bits);
    FUZZ_CHECK(rc == DC_OK, "dc_orgs_add rc %d", rc);
    at = ref_find(lower);
    if (at >= 0) {
        ref_bits[at] |= bits;
    } else if (nref < REF_MAX) {
        memcpy(ref[nref], lower, sizeof(lower));
        ref_bits[nref++] = bits;
    }
    FUZZ_CHECK(dc_orgs_contains(s, lower) && dc_orgs_contains(s, upper), "added %s but not contained", lower);
    check_set(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dc_orgs_t   s = DC_ORGS_INIT;
    const char *p = (const char *)data, *end = p + size;

    nref = 0;
    while (p < end && nref < REF_MAX) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t      n = (size_t)((nl ? nl : end) - p);
        char       *line = fuzz_exact((const uint8_t *)p, n);

        if (n == 0) {
            dc_orgs_reset(&s);
            nref = 0;
            check_set(&s);
        } else {
            one(&s, line, n);
        }
        free(line);
        p += n + 1;
    }
    /* ids that were never added are not contained */
    for (size_t i = 0; i < nref; i++) {
        char other[DC_UUID_LEN + 1];
        memcpy(other, ref[i], sizeof(other));
        other[35] = other[35] == '0' ? '1' : '0';
        FUZZ_CHECK(dc_orgs_contains(&s, other) == (ref_find(other) >= 0), "contains %s, never added", other);
    }
    dc_orgs_free(&s);
    return 0;
}
