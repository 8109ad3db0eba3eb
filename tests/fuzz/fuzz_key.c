/*
 * Fuzz target: cache keys read back into requests (dc_key_parse), as the
 * consistency sampler reads every key SCAN returns.
 *
 * Input: one candidate key (any bytes).
 *
 * Invariants: a key that parses is a key dc_key_build gives back byte for
 * byte from the request parsed; that request is a cached query type whose
 * ids are lower-case UUIDs, with hours within its bounds; and a key that
 * parses stops parsing when a colon is added, and when its last byte is
 * cut (but for trends of 10 hours or more, whose cut key is one of fewer).
 */
#include "dc_endpoint.h"
#include "dc_key.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char        *key = fuzz_exact(data, size);
    dc_request_t req, cut;
    char         again[DC_KEY_MAX];
    int          n;

    if (dc_key_parse(key, size, &req) == DC_OK) {
        char *longer;

        FUZZ_CHECK(req.route == DC_ROUTE_QUERY && (DC_QBITS_CACHED & DC_QBIT_OF(req.qtype)),
                   "route %d qtype %d", (int)req.route, (int)req.qtype);
        FUZZ_CHECK(fuzz_is_id(req.org_id), "org \"%.37s\"", req.org_id);
        FUZZ_CHECK(req.unit_id[0] == '\0' || fuzz_is_id(req.unit_id), "unit \"%.37s\"", req.unit_id);
        FUZZ_CHECK(req.hours >= 1 && req.hours <= DC_HOURS_MAX, "hours %d", req.hours);
        FUZZ_CHECK(req.force_refresh == 0 && req.item_id[0] == '\0', "more than a key holds");
        n = dc_key_build(&req, again, sizeof(again));
        FUZZ_CHECK(n == (int)size && memcmp(again, key, size) == 0, "built back %d bytes \"%s\"", n, again);
        /* trends for 24 hours cut by a byte are trends for 2 hours: a key of its own */
        FUZZ_CHECK((req.qtype == DC_Q_TEMPERATURE && req.hours >= 10) ||
                       dc_key_parse(key, size - 1, &cut) == DC_EINVAL,
                   "a cut key parsed");
        longer = malloc(size + 1);
        if (longer == NULL)
            abort();
        memcpy(longer, key, size);
        longer[size] = ':'; /* no key ends with one */
        FUZZ_CHECK(dc_key_parse(longer, size + 1, &req) == DC_EINVAL, "a longer key parsed");
        free(longer);
    }
    free(key);
    return 0;
}
