/*
 * Bearer tokens (dc_auth_verify). The verifier holds two HS256 keys, k1
 * marked all-orgs and k2 a tenant key, and the clock stands at a fixed
 * time. The tokens it mints at start-up with those keys are the only ones
 * that may be accepted: HMAC cannot be forged, so DC_OK ⇒ the signed part
 * (header.payload) is byte for byte one of them. Beyond that, DC_OK ⇒ a
 * sub of 1..128 bytes, exp after now minus the skew, lower-case org ids
 * (or every org, from k1 only), known scope bits; DC_EINVAL ⇒ a 401 with
 * the invalid_token challenge and a message. The same input twice gives
 * the same answer (the cache of verified tokens changes nothing).
 *
 * DC_FUZZ_PRINT_SEEDS=1 prints the minted tokens (for the corpus).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dc_auth.h"
#include "fuzz.h"

#define NOW    1800000000LL
#define NSEEDS 4

static dc_auth_t *auth;
static char      *seeds[NSEEDS];

static void mint(int i, const char *kid, const char *const *orgs, size_t norgs, unsigned scopes)
{
    dc_auth_claims_t c = { kid, "fuzz", orgs, norgs, scopes, NOW - 60, NOW + 3600 };
    dc_err_t         err;

    if (dc_auth_mint(auth, &c, &seeds[i], &err) != DC_OK) {
        fprintf(stderr, "fuzz_token: mint: %s\n", err.str);
        abort();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char *const one[] = { "550e8400-e29b-41d4-a716-446655440000" };
    static const char *const two[] = { "550e8400-e29b-41d4-a716-446655440000",
                                       "6ba7b810-9dad-11d1-80b4-00c04fd430c8" };
    static const char *const all[] = { "*" };
    dc_auth_config_t         ac;
    dc_err_t                 err;
    char                     path[] = "/tmp/dc-fuzz-token-keys-XXXXXX";
    int                      fd = mkstemp(path);
    const char              *keys = "k1 HS256 MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY all-orgs\n"
                                    "k2 HS256 ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA\n";

    (void)argc;
    (void)argv;
    if (fd < 0 || write(fd, keys, strlen(keys)) != (ssize_t)strlen(keys) || fchmod(fd, 0600) != 0)
        abort();
    close(fd);
    memset(&ac, 0, sizeof(ac));
    ac.mode = DC_AUTH_JWT;
    ac.clock_skew_s = 30;
    snprintf(ac.keys_file, sizeof(ac.keys_file), "%s", path);
    auth = dc_auth_new(&ac, &err);
    unlink(path);
    if (auth == NULL) {
        fprintf(stderr, "fuzz_token: %s\n", err.str);
        abort();
    }
    mint(0, "k1", all, 1, DC_SCOPE_READ | DC_SCOPE_ADMIN);
    mint(1, "k2", one, 1, DC_SCOPE_READ | DC_SCOPE_WRITE);
    mint(2, "k2", two, 2, DC_SCOPE_INGEST);
    mint(3, "k1", two, 2, DC_SCOPE_REFRESH | DC_SCOPE_READ);
    if (getenv("DC_FUZZ_PRINT_SEEDS") != NULL)
        for (int i = 0; i < NSEEDS; i++)
            printf("%s\n", seeds[i]);
    return 0;
}

/* The length of header.payload of token t (n bytes), or 0. */
static size_t signed_part(const char *t, size_t n)
{
    const char *d1 = memchr(t, '.', n), *d2 = d1 ? memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - t)) : NULL;
    return d2 ? (size_t)(d2 - t) : 0;
}

static int minted(const char *t, size_t n, int *from_k1)
{
    size_t k = signed_part(t, n);
    for (int i = 0; i < NSEEDS; i++) {
        if (k > 0 && k == signed_part(seeds[i], strlen(seeds[i])) && memcmp(t, seeds[i], k) == 0) {
            *from_k1 = i == 0 || i == 3;
            return 1;
        }
    }
    return 0;
}

static int verify(const char *t, size_t n, dc_principal_t *copy, dc_error_t *err)
{
    const dc_principal_t *who = NULL;
    int                   rc;

    memset(err, 0, sizeof(*err));
    rc = dc_auth_verify(auth, t, n, NOW, &who, err);
    if (rc == DC_OK) {
        FUZZ_CHECK(who != NULL, "DC_OK without a principal");
        *copy = *who;
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char          *t = malloc(size + 1);
    dc_principal_t p, q;
    dc_error_t     err;
    int            rc, again, k1 = 0;

    if (t == NULL)
        return 0;
    memcpy(t, data, size);
    t[size] = '\0';
    rc = verify(t, size, &p, &err);
    if (rc == DC_OK) {
        size_t n = strnlen(p.sub, sizeof(p.sub));
        FUZZ_CHECK(minted(t, size, &k1), "accepted a token no key of ours signed: %.200s", t);
        FUZZ_CHECK(n >= 1 && n <= DC_AUTH_SUB_MAX, "sub of %zu bytes", n);
        FUZZ_CHECK(p.exp + 30 > NOW, "expired token accepted (exp %lld)", (long long)p.exp);
        FUZZ_CHECK(p.norgs <= DC_AUTH_ORGS_MAX, "%zu orgs", p.norgs);
        FUZZ_CHECK(!p.all_orgs || k1, "every organization from a key not marked all-orgs");
        for (size_t i = 0; i < p.norgs; i++)
            FUZZ_CHECK(fuzz_is_id(p.orgs[i]), "org \"%.37s\"", p.orgs[i]);
        FUZZ_CHECK((p.scopes & ~(unsigned)(DC_SCOPE_READ | DC_SCOPE_WRITE | DC_SCOPE_INGEST |
                                           DC_SCOPE_REFRESH | DC_SCOPE_ADMIN)) == 0,
                   "scope bits %#x", p.scopes);
    } else {
        FUZZ_CHECK(rc == DC_EINVAL, "rc %d", rc);
        FUZZ_CHECK(err.status == 401, "status %d", err.status);
        FUZZ_CHECK(err.challenge != NULL && strstr(err.challenge, "invalid_token") != NULL, "challenge");
        FUZZ_CHECK(fuzz_terminated(err.message, sizeof(err.message)) && err.message[0] != '\0', "message");
    }
    again = verify(t, size, &q, &err);
    FUZZ_CHECK(again == rc, "the second verification answered %d, the first %d", again, rc);
    if (rc == DC_OK)
        FUZZ_CHECK(memcmp(&p, &q, sizeof(p)) == 0, "the cached principal differs");
    free(t);
    return 0;
}
