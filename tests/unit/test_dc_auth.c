/*
 * dc_auth: tokens minted here with libjwt (or forged by hand where libjwt
 * would refuse to) against a key file written to a temporary directory:
 * valid, expired, not yet valid, the clock skew's edges, tampered payload
 * and signature, alg none, other algorithms with our key, unknown and
 * missing kid, ES256 and the HS256-with-a-public-key confusion, malformed
 * claims, size and encoding limits, scope parsing, the cache of verified
 * tokens, the key file checks, authorization, trusted identities, minting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jwt.h>

#include "dc_auth.h"

#define NOW   1800000000L
#define SKEW  30
#define ORG_A "550e8400-e29b-41d4-a716-446655440000"
#define ORG_B "7c9e6679-7425-40de-944b-e07fc1f90ae7"

/* 32 bytes of key k1 and k2, base64url */
#define SECRET1 "0123456789abcdef0123456789abcdef"
#define SECRET2 "fedcba9876543210fedcba9876543210"

/* a throwaway P-256 key pair made for this test */
static const char ec_private[] = "-----BEGIN EC PRIVATE KEY-----\n"
                                 "MHcCAQEEIItCgkiePknBwMwnT1IDBnOA98x0AJRyKh96z8iA/U3noAoGCCqGSM49\n"
                                 "AwEHoUQDQgAEPHrzUKQLIHPGi0eGFxxrvcZb0uS7EIFmCxryhHOx8o96zPReGo+I\n"
                                 "G69205qzCJtvRqKh/5RyqOxinXtaUXAybw==\n"
                                 "-----END EC PRIVATE KEY-----\n";
static const char ec_public[] = "-----BEGIN PUBLIC KEY-----\n"
                                "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEPHrzUKQLIHPGi0eGFxxrvcZb0uS7\n"
                                "EIFmCxryhHOx8o96zPReGo+IG69205qzCJtvRqKh/5RyqOxinXtaUXAybw==\n"
                                "-----END PUBLIC KEY-----\n";

static char dir[64];

static void b64url(const unsigned char *in, size_t n, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t            o = 0, i;

    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = abc[v >> 18];
        out[o++] = abc[(v >> 12) & 63];
        out[o++] = abc[(v >> 6) & 63];
        out[o++] = abc[v & 63];
    }
    if (n - i == 1) {
        out[o++] = abc[in[i] >> 2];
        out[o++] = abc[(in[i] & 3) << 4];
    } else if (n - i == 2) {
        out[o++] = abc[in[i] >> 2];
        out[o++] = abc[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
        out[o++] = abc[(in[i + 1] & 15) << 2];
    }
    out[o] = '\0';
}

static void write_file(const char *name, const char *text, mode_t mode, char *path, size_t cap)
{
    FILE *f;

    snprintf(path, cap, "%s/%s", dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

static char secret_b64[2][64];

static int setup_dir(void **state)
{
    char p[256];

    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/dc-auth-test.XXXXXX");
    assert_non_null(mkdtemp(dir));
    b64url((const unsigned char *)SECRET1, 32, secret_b64[0]);
    b64url((const unsigned char *)SECRET2, 32, secret_b64[1]);
    write_file("ec.pem", ec_public, 0600, p, sizeof(p));
    return 0;
}

static int remove_dir(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A verifier over a key file with the given lines. */
static dc_auth_t *auth_with(const char *lines, const char *iss, const char *aud)
{
    dc_auth_config_t ac;
    dc_auth_t       *a;
    dc_err_t         err;

    memset(&ac, 0, sizeof(ac));
    ac.mode = DC_AUTH_JWT;
    ac.clock_skew_s = SKEW;
    write_file("keys", lines, 0600, ac.keys_file, sizeof(ac.keys_file));
    snprintf(ac.issuer, sizeof(ac.issuer), "%s", iss ? iss : "");
    snprintf(ac.audience, sizeof(ac.audience), "%s", aud ? aud : "");
    a = dc_auth_new(&ac, &err);
    if (a == NULL)
        fail_msg("dc_auth_new: %s", err.str);
    return a;
}

/* k1 and k2 (HS256) and es (ES256). */
static dc_auth_t *auth_default(void)
{
    char lines[512];
    snprintf(lines, sizeof(lines),
             "# test keys\nk1 HS256 %s all-orgs\n\nk2 HS256 %s  # next\nes ES256 ec.pem\n", secret_b64[0],
             secret_b64[1]);
    return auth_with(lines, NULL, NULL);
}

/* A token signed by libjwt with alg and key, kid header unless NULL, claims as JSON. */
static char *mint(jwt_alg_t alg, const void *key, size_t keylen, const char *kid, const char *claims)
{
    jwt_t *j;
    char  *t;

    assert_int_equal(jwt_new(&j), 0);
    assert_int_equal(jwt_set_alg(j, alg, key, (int)keylen), 0);
    if (kid != NULL)
        assert_int_equal(jwt_add_header(j, "kid", kid), 0);
    assert_int_equal(jwt_add_grants_json(j, claims), 0);
    t = jwt_encode_str(j);
    assert_non_null(t);
    jwt_free(j);
    return t;
}

/* alice's claims: orgs [ORG_A] and scope "read write" unless extra (",..." members) names its own. */
static char *claims(char *buf, size_t cap, long exp, const char *extra)
{
    extra = extra ? extra : "";
    snprintf(buf, cap, "{\"sub\":\"alice\"%s%s,\"exp\":%ld%s}",
             strstr(extra, "\"orgs\"") ? "" : ",\"orgs\":[\"" ORG_A "\"]",
             strstr(extra, "\"scope\"") ? "" : ",\"scope\":\"read write\"", exp, extra);
    return buf;
}

static char *mint_k1(long exp, const char *extra)
{
    size_t cap = 256 + (extra ? strlen(extra) : 0);
    char  *c = malloc(cap), *t;

    assert_non_null(c);
    t = mint(JWT_ALG_HS256, SECRET1, 32, "k1", claims(c, cap, exp, extra));
    free(c);
    return t;
}

/* header.payload.signature from raw header and payload JSON and a signature string. */
static char *forge(const char *header, const char *payload, const char *sig)
{
    size_t n = 2 * (strlen(header) + strlen(payload)) + strlen(sig) + 8;
    char  *t = malloc(n), *p;

    assert_non_null(t);
    b64url((const unsigned char *)header, strlen(header), t);
    p = t + strlen(t);
    *p++ = '.';
    b64url((const unsigned char *)payload, strlen(payload), p);
    strcat(t, ".");
    strcat(t, sig);
    return t;
}

static void assert_refused(dc_auth_t *a, const char *token, long now, const char *why)
{
    const dc_principal_t *who = NULL;
    dc_error_t            err;

    if (dc_auth_verify(a, token, strlen(token), now, &who, &err) == DC_OK)
        fail_msg("token accepted, expected \"%s\"", why);
    assert_int_equal(err.status, 401);
    assert_string_equal(err.code, "invalid_token");
    assert_string_equal(err.challenge, DC_AUTH_CHALLENGE_INVALID);
    if (why != NULL && strstr(err.message, why) == NULL)
        fail_msg("refused with \"%s\", expected \"%s\"", err.message, why);
}

static const dc_principal_t *assert_accepted(dc_auth_t *a, const char *token, long now)
{
    const dc_principal_t *who = NULL;
    dc_error_t            err;

    if (dc_auth_verify(a, token, strlen(token), now, &who, &err) != DC_OK)
        fail_msg("token refused: %s", err.message);
    assert_non_null(who);
    return who;
}

static void test_valid_token(void **state)
{
    dc_auth_t *a = auth_default();
    char      *t = mint_k1(NOW + 60, ",\"orgs\":[\"" ORG_A "\",\"7C9E6679-7425-40DE-944B-E07FC1F90AE7\"]");
    const dc_principal_t *who;

    (void)state;
    who = assert_accepted(a, t, NOW);
    assert_string_equal(who->sub, "alice");
    assert_int_equal(who->scopes, DC_SCOPE_READ | DC_SCOPE_WRITE);
    assert_int_equal(who->norgs, 2);
    assert_string_equal(who->orgs[0], ORG_A);
    assert_string_equal(who->orgs[1], ORG_B); /* lower case */
    assert_int_equal(who->all_orgs, 0);
    assert_int_equal(who->exp, NOW + 60);
    free(t);
    dc_auth_free(a);
}

static void test_expired_and_not_yet_valid(void **state)
{
    dc_auth_t *a = auth_default();
    char      *expired = mint_k1(NOW - 3600, NULL), *early = mint_k1(NOW + 3600, ",\"nbf\":1800003600");

    (void)state;
    assert_refused(a, expired, NOW, "expired");
    assert_refused(a, early, NOW, "not valid yet");
    assert_accepted(a, early, NOW + 3600 - SKEW);
    free(expired);
    free(early);
    dc_auth_free(a);
}

static void test_clock_skew_edges(void **state)
{
    dc_auth_t *a = auth_default();
    /* exp is the first second the token is no longer good, SKEW seconds later here */
    char *exp_edge = mint_k1(NOW - SKEW, NULL), *exp_inside = mint_k1(NOW - SKEW + 1, NULL);
    char *nbf_edge = mint_k1(NOW + 600, ",\"nbf\":1800000030"),
         *nbf_out = mint_k1(NOW + 600, ",\"nbf\":1800000031");
    char *no_exp, c[256];

    (void)state;
    assert_refused(a, exp_edge, NOW, "expired");
    assert_accepted(a, exp_inside, NOW);
    assert_accepted(a, nbf_edge, NOW);
    assert_refused(a, nbf_out, NOW, "not valid yet");
    snprintf(c, sizeof(c), "{\"sub\":\"a\",\"orgs\":[],\"scope\":\"read\"}");
    no_exp = mint(JWT_ALG_HS256, SECRET1, 32, "k1", c);
    assert_refused(a, no_exp, NOW, "no exp");
    free(exp_edge);
    free(exp_inside);
    free(nbf_edge);
    free(nbf_out);
    free(no_exp);
    dc_auth_free(a);
}

static void test_tampered_payload_and_signature(void **state)
{
    dc_auth_t *a = auth_default();
    char      *good = mint_k1(NOW + 60, NULL), *other = mint_k1(NOW + 60, ",\"orgs\":[\"" ORG_B "\"]");
    char      *spliced, *d1g, *d2g, *d1o, *d2o, *flipped;
    size_t     n;

    (void)state;
    /* the payload of one token with the signature of the other */
    d1g = strchr(good, '.');
    d2g = strchr(d1g + 1, '.');
    d1o = strchr(other, '.');
    d2o = strchr(d1o + 1, '.');
    n = strlen(good) + strlen(other);
    spliced = calloc(1, n);
    assert_non_null(spliced);
    memcpy(spliced, good, (size_t)(d1g - good));
    memcpy(spliced + (d1g - good), d1o, (size_t)(d2o - d1o));
    strcat(spliced, d2g);
    assert_refused(a, spliced, NOW, "signature does not verify");

    /* one character of the signature changed (not the last: its low bits may be padding) */
    flipped = strdup(good);
    assert_non_null(flipped);
    n = (size_t)(d2g - good) + 5;
    flipped[n] = flipped[n] == 'A' ? 'B' : 'A';
    assert_refused(a, flipped, NOW, "signature does not verify");
    /* signed with the other key under this kid */
    free(flipped);
    flipped = mint(JWT_ALG_HS256, SECRET2, 32, "k1", "{\"sub\":\"a\",\"orgs\":[],\"exp\":1800000060}");
    assert_refused(a, flipped, NOW, "signature does not verify");

    assert_accepted(a, good, NOW);
    free(good);
    free(other);
    free(spliced);
    free(flipped);
    dc_auth_free(a);
}

static void test_alg_none_refused(void **state)
{
    dc_auth_t *a = auth_default();
    char       c[256];
    char      *libjwt_none, *forged, *forged_sig, *forged_upper;

    (void)state;
    claims(c, sizeof(c), NOW + 60, NULL);
    libjwt_none = mint(JWT_ALG_NONE, NULL, 0, "k1", c);
    assert_refused(a, libjwt_none, NOW, NULL);
    forged = forge("{\"alg\":\"none\",\"kid\":\"k1\"}", c, "");
    assert_refused(a, forged, NOW, NULL);
    forged_sig = forge("{\"alg\":\"none\",\"kid\":\"k1\"}", c, "c2ln");
    assert_refused(a, forged_sig, NOW, "alg none");
    forged_upper = forge("{\"alg\":\"NONE\"}", c, "c2ln");
    assert_refused(a, forged_upper, NOW, "alg none");
    free(libjwt_none);
    free(forged);
    free(forged_sig);
    free(forged_upper);
    dc_auth_free(a);
}

static void test_other_algorithms_with_our_key_refused(void **state)
{
    dc_auth_t *a = auth_default();
    char       c[256];
    char      *hs512, *rs256, *hs256_with_pem, *es_good, *es_as_k1;

    (void)state;
    claims(c, sizeof(c), NOW + 60, NULL);
    /* a correct HS512 signature with k1's secret: refused for its algorithm, not its signature */
    hs512 = mint(JWT_ALG_HS512, SECRET1, 32, "k1", c);
    assert_refused(a, hs512, NOW, "not the algorithm of its key");
    rs256 = forge("{\"alg\":\"RS256\",\"kid\":\"k1\",\"typ\":\"JWT\"}", c, "c2lnbmF0dXJl");
    assert_refused(a, rs256, NOW, "not the algorithm of its key");
    /* the classic confusion: HS256 keyed with the ES256 public key */
    hs256_with_pem = mint(JWT_ALG_HS256, ec_public, strlen(ec_public), "es", c);
    assert_refused(a, hs256_with_pem, NOW, "not the algorithm of its key");
    /* ES256 itself verifies with the public key, and only under its own kid */
    es_good = mint(JWT_ALG_ES256, ec_private, strlen(ec_private), "es", c);
    assert_string_equal(assert_accepted(a, es_good, NOW)->sub, "alice");
    es_as_k1 = mint(JWT_ALG_ES256, ec_private, strlen(ec_private), "k1", c);
    assert_refused(a, es_as_k1, NOW, "not the algorithm of its key");
    free(hs512);
    free(rs256);
    free(hs256_with_pem);
    free(es_good);
    free(es_as_k1);
    dc_auth_free(a);
}

static void test_kid_selection(void **state)
{
    dc_auth_t *a = auth_default(), *one;
    char       c[256], line[128];
    char      *unknown, *k2, *nokid, *numeric_kid;

    (void)state;
    claims(c, sizeof(c), NOW + 60, NULL);
    unknown = mint(JWT_ALG_HS256, SECRET1, 32, "k9", c);
    assert_refused(a, unknown, NOW, "kid) is unknown");
    k2 = mint(JWT_ALG_HS256, SECRET2, 32, "k2", c);
    assert_accepted(a, k2, NOW);
    nokid = mint(JWT_ALG_HS256, SECRET1, 32, NULL, c);
    assert_refused(a, nokid, NOW, "several keys");
    numeric_kid = forge("{\"alg\":\"HS256\",\"kid\":1}", c, "c2ln");
    assert_refused(a, numeric_kid, NOW, "kid must be a string");

    snprintf(line, sizeof(line), "only HS256 %s\n", secret_b64[0]);
    one = auth_with(line, NULL, NULL);
    assert_accepted(one, nokid, NOW); /* one key: no kid needed */
    assert_refused(one, k2, NOW, "kid) is unknown");
    free(unknown);
    free(k2);
    free(nokid);
    free(numeric_kid);
    dc_auth_free(one);
    dc_auth_free(a);
}

static void test_malformed_claims(void **state)
{
    static const char *const bad[] = {
        "{\"sub\":\"a\",\"orgs\":\"" ORG_A "\",\"exp\":1800000060}",
        "{\"sub\":\"a\",\"exp\":1800000060}",
        "{\"sub\":\"a\",\"orgs\":[\"not-a-uuid\"],\"exp\":1800000060}",
        "{\"sub\":\"a\",\"orgs\":[1],\"exp\":1800000060}",
        "{\"orgs\":[],\"exp\":1800000060}",
        "{\"sub\":\"\",\"orgs\":[],\"exp\":1800000060}",
        "{\"sub\":\"a\\nb\",\"orgs\":[],\"exp\":1800000060}",
        "{\"sub\":\"a\",\"orgs\":[],\"exp\":\"1800000060\"}",
        "{\"sub\":\"a\",\"orgs\":[],\"exp\":9223372036854775807}",
        "{\"sub\":\"a\",\"orgs\":[],\"exp\":1e300}",
        "{\"sub\":\"a\",\"orgs\":[],\"exp\":1800000060,\"nbf\":-9223372036854775807}",
        "{\"sub\":\"a\",\"orgs\":[],\"exp\":1800000060,\"nbf\":true}",
        "{\"sub\":\"a\",\"orgs\":[],\"exp\":1800000060,\"scope\":7}",
        "{\"sub\":\"a\",\"orgs\":[],\"exp\":1800000060,\"scope\":[\"read\",7]}",
    };
    dc_auth_t *a = auth_default();
    char       many[4096];
    size_t     o;
    char      *t;

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(bad); i++) {
        t = mint(JWT_ALG_HS256, SECRET1, 32, "k1", bad[i]);
        assert_refused(a, t, NOW, NULL);
        free(t);
    }
    /* 65 organizations: one more than a token may name */
    o = (size_t)snprintf(many, sizeof(many), "{\"sub\":\"a\",\"exp\":1800000060,\"orgs\":[");
    for (int i = 0; i <= DC_AUTH_ORGS_MAX; i++)
        o += (size_t)snprintf(many + o, sizeof(many) - o, "%s\"%08x-0000-4000-8000-000000000000\"",
                              i ? "," : "", i);
    snprintf(many + o, sizeof(many) - o, "]}");
    t = mint(JWT_ALG_HS256, SECRET1, 32, "k1", many);
    assert_refused(a, t, NOW, "at most 64");
    free(t);
    dc_auth_free(a);
}

static void test_size_and_encoding_limits(void **state)
{
    static const char *const garbage[] = {
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        ".b.c",
        "a..c",
        "a.b.",
        "!!!.b.c",
        "eyJhbGciOiJIUzI1NiJ9.%%%.c",
        "e.e.e",                                             /* a base64url length that cannot be */
        "bm90IGpzb24.e30.c2ln",                              /* header "not json" */
        "eyJhbGciOiJIUzI1NiJ9eA.e30.c2ln",                   /* trailing bytes after the object */
        "WyJhbGciLCJIUzI1NiJd.e30.c2ln",                     /* an array, not an object */
        "eyJhbGciOiJIUzI1NiIsImNyaXQiOlsiZXhwIl19.e30.c2ln", /* crit */
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXRSJ9.e30.c2ln",     /* typ JWE */
    };
    dc_auth_t            *a = auth_default();
    char                 *huge = malloc(DC_AUTH_TOKEN_MAX + 2), c[8192], pad[6000];
    char                 *big;
    const dc_principal_t *who;
    dc_error_t            err;

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(garbage); i++)
        assert_refused(a, garbage[i], NOW, NULL);
    assert_non_null(huge);
    memset(huge, 'a', DC_AUTH_TOKEN_MAX + 1);
    huge[DC_AUTH_TOKEN_MAX + 1] = '\0';
    assert_refused(a, huge, NOW, "longer than 4096");
    /* a validly signed token over the limit is refused unread as well */
    memset(pad, 'x', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    snprintf(c, sizeof(c), ",\"pad\":\"%s\"", pad);
    big = mint_k1(NOW + 60, c);
    assert_refused(a, big, NOW, "longer than 4096");
    /* a length that is not the string's: only len bytes are read */
    assert_int_equal(dc_auth_verify(a, "a.b.c", 3, NOW, &who, &err), DC_EINVAL);
    free(huge);
    free(big);
    dc_auth_free(a);
}

static void test_scope_parsing(void **state)
{
    dc_auth_t *a = auth_default();
    unsigned   bits = 0;
    char       buf[64];
    char      *arr, *unknown, *none;

    (void)state;
    assert_int_equal(dc_auth_parse_scopes("read write", 1, &bits), DC_OK);
    assert_int_equal(bits, DC_SCOPE_READ | DC_SCOPE_WRITE);
    assert_int_equal(dc_auth_parse_scopes(" ingest,refresh  admin,", 1, &bits), DC_OK);
    assert_int_equal(bits, DC_SCOPE_INGEST | DC_SCOPE_REFRESH | DC_SCOPE_ADMIN);
    assert_int_equal(dc_auth_parse_scopes("read profile", 1, &bits), DC_EINVAL);
    assert_int_equal(dc_auth_parse_scopes("read profile readx", 0, &bits), DC_OK);
    assert_int_equal(bits, DC_SCOPE_READ);
    assert_int_equal(dc_auth_parse_scopes("", 1, &bits), DC_OK);
    assert_int_equal(bits, 0);
    assert_string_equal(dc_auth_scope_string(DC_SCOPE_READ | DC_SCOPE_ADMIN, buf, sizeof(buf)), "read admin");

    arr = mint_k1(NOW + 60, ",\"scope\":[\"ingest\",\"refresh other\"]");
    assert_int_equal(assert_accepted(a, arr, NOW)->scopes, DC_SCOPE_INGEST | DC_SCOPE_REFRESH);
    unknown = mint_k1(NOW + 60, ",\"scope\":\"openid profile\"");
    assert_int_equal(assert_accepted(a, unknown, NOW)->scopes, 0);
    none = mint(JWT_ALG_HS256, SECRET1, 32, "k1", "{\"sub\":\"a\",\"orgs\":[\"*\"],\"exp\":1800000060}");
    assert_int_equal(assert_accepted(a, none, NOW)->scopes, 0);
    assert_int_equal(assert_accepted(a, none, NOW)->all_orgs, 1);
    free(arr);
    free(unknown);
    free(none);
    dc_auth_free(a);
}

static void key_file_fails(const char *lines, mode_t mode, const char *want);

/* Every organization ("*") only from a key marked all-orgs: k2, a tenant key, cannot sign it. */
static void test_all_orgs_needs_a_key_marked_for_it(void **state)
{
    dc_auth_t *a = auth_default();
    char *k1 = mint(JWT_ALG_HS256, SECRET1, 32, "k1", "{\"sub\":\"gw\",\"orgs\":[\"*\"],\"exp\":1800000060}");
    char *k2 = mint(JWT_ALG_HS256, SECRET2, 32, "k2", "{\"sub\":\"gw\",\"orgs\":[\"*\"],\"exp\":1800000060}");
    char *k2one =
        mint(JWT_ALG_HS256, SECRET2, 32, "k2", "{\"sub\":\"t\",\"orgs\":[\"" ORG_A "\"],\"exp\":1800000060}");

    (void)state;
    assert_int_equal(assert_accepted(a, k1, NOW)->all_orgs, 1);
    assert_refused(a, k2, NOW, "all-orgs");
    assert_refused(a, k2, NOW, "all-orgs"); /* not cached as accepted */
    assert_int_equal(assert_accepted(a, k2one, NOW)->all_orgs, 0);
    key_file_fails("k1 HS256 c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0 every-org\n", 0600,
                   "[all-orgs]");
    free(k1);
    free(k2);
    free(k2one);
    dc_auth_free(a);
}

static void test_issuer_and_audience(void **state)
{
    char       line[128];
    dc_auth_t *a;
    char      *right, *aud_list, *wrong_iss, *no_aud;

    (void)state;
    snprintf(line, sizeof(line), "k1 HS256 %s\n", secret_b64[0]);
    a = auth_with(line, "https://idp.example", "dashcache");
    right = mint_k1(NOW + 60, ",\"iss\":\"https://idp.example\",\"aud\":\"dashcache\"");
    aud_list = mint_k1(NOW + 60, ",\"iss\":\"https://idp.example\",\"aud\":[\"other\",\"dashcache\"]");
    wrong_iss = mint_k1(NOW + 60, ",\"iss\":\"https://evil.example\",\"aud\":\"dashcache\"");
    no_aud = mint_k1(NOW + 60, ",\"iss\":\"https://idp.example\"");
    assert_accepted(a, right, NOW);
    assert_accepted(a, aud_list, NOW);
    assert_refused(a, wrong_iss, NOW, "issuer");
    assert_refused(a, no_aud, NOW, "audience");
    free(right);
    free(aud_list);
    free(wrong_iss);
    free(no_aud);
    dc_auth_free(a);
}

static void test_cache_of_verified_tokens(void **state)
{
    dc_auth_t            *a = auth_default();
    char                 *t = mint_k1(NOW + 60, NULL), *u = mint_k1(NOW + 120, NULL);
    const dc_principal_t *who;

    (void)state;
    assert_int_equal(dc_auth_cache_hits(a), 0);
    assert_accepted(a, t, NOW);
    assert_int_equal(dc_auth_cache_hits(a), 0);
    who = assert_accepted(a, t, NOW + 1);
    assert_int_equal(dc_auth_cache_hits(a), 1);
    assert_string_equal(who->sub, "alice");
    assert_accepted(a, u, NOW);
    /* a cached token stops being good at its exp (plus the skew), like an uncached one */
    assert_accepted(a, t, NOW + 60 + SKEW - 1);
    assert_refused(a, t, NOW + 60 + SKEW, "expired");
    assert_refused(a, t, NOW + 60 + SKEW, "expired");
    /* a prefix of a cached token is not that token */
    assert_refused(a, u, NOW + 120 + SKEW, "expired");
    {
        dc_error_t err;
        assert_int_equal(dc_auth_verify(a, t, strlen(t) - 1, NOW, &who, &err), DC_EINVAL);
    }
    free(t);
    free(u);
    dc_auth_free(a);
}

static void key_file_fails(const char *lines, mode_t mode, const char *want)
{
    dc_auth_config_t ac;
    dc_err_t         err;

    memset(&ac, 0, sizeof(ac));
    write_file("badkeys", lines, mode, ac.keys_file, sizeof(ac.keys_file));
    assert_null(dc_auth_new(&ac, &err));
    if (strncmp(err.str, "AUTH_KEYS_FILE", 14) != 0 || strstr(err.str, want) == NULL)
        fail_msg("error \"%s\", expected AUTH_KEYS_FILE ... \"%s\"", err.str, want);
    /* a secret never appears in a message */
    assert_null(strstr(err.str, secret_b64[0]));
}

static void test_key_file_checks(void **state)
{
    char             line[256];
    dc_err_t         err;
    dc_auth_config_t ac;

    (void)state;
    snprintf(line, sizeof(line), "k1 HS256 %s\n", secret_b64[0]);
    key_file_fails(line, 0644, "accessible by every user");
    key_file_fails(line, 0602, "accessible by every user");
    key_file_fails("k1 HS256 c2hvcnQtc2VjcmV0\n", 0600, "at least 32");
    key_file_fails("k1 HS512 c2hvcnQtc2VjcmV0\n", 0600, "HS256 or ES256");
    key_file_fails("k1 HS256\n", 0600, "expected");
    key_file_fails("k1 HS256 !!notbase64!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n", 0600, "not base64url");
    key_file_fails("bad/kid HS256 x\n", 0600, "a kid is");
    key_file_fails("# nothing\n\n", 0600, "no key");
    key_file_fails("es ES256 missing.pem\n", 0600, "cannot open");
    snprintf(line, sizeof(line), "k1 HS256 %s\nk1 HS256 %s\n", secret_b64[0], secret_b64[1]);
    key_file_fails(line, 0600, "given twice");

    memset(&ac, 0, sizeof(ac));
    snprintf(ac.keys_file, sizeof(ac.keys_file), "%s/none", dir);
    assert_null(dc_auth_new(&ac, &err));
    assert_non_null(strstr(err.str, "AUTH_KEYS_FILE"));
    ac.keys_file[0] = '\0';
    assert_null(dc_auth_new(&ac, &err));
    assert_non_null(strstr(err.str, "AUTH_KEYS_FILE must name"));
    /* trusted mode needs no key file */
    ac.mode = DC_AUTH_TRUSTED;
    dc_auth_free(dc_auth_new(&ac, NULL));
}

static void test_authorize(void **state)
{
    dc_principal_t p;
    dc_error_t     err;

    (void)state;
    memset(&p, 0, sizeof(p));
    p.scopes = DC_SCOPE_READ;
    p.norgs = 1;
    memcpy(p.orgs[0], ORG_A, sizeof(ORG_A));
    assert_int_equal(dc_auth_authorize(&p, DC_SCOPE_READ, ORG_A, &err), DC_OK);
    assert_int_equal(dc_auth_authorize(&p, DC_SCOPE_READ, "", &err), DC_OK);
    assert_int_equal(dc_auth_authorize(&p, DC_SCOPE_READ, ORG_B, &err), DC_EINVAL);
    assert_int_equal(err.status, 403);
    assert_string_equal(err.code, "forbidden_organization");
    assert_string_equal(err.challenge, DC_AUTH_CHALLENGE_SCOPE);
    assert_int_equal(dc_auth_authorize(&p, DC_SCOPE_READ | DC_SCOPE_REFRESH, ORG_A, &err), DC_EINVAL);
    assert_int_equal(err.status, 403);
    assert_string_equal(err.code, "insufficient_scope");
    assert_non_null(strstr(err.message, "refresh"));
    assert_int_equal(dc_auth_authorize(&p, DC_SCOPE_WRITE, ORG_A, &err), DC_EINVAL);
    p.all_orgs = 1;
    assert_int_equal(dc_auth_authorize(&p, DC_SCOPE_READ, ORG_B, &err), DC_OK);
}

static void test_bearer_header(void **state)
{
    dc_auth_t            *a = auth_default();
    char                 *t = mint_k1(NOW + 60, NULL), h[1024];
    const dc_principal_t *who;
    dc_error_t            err;

    (void)state;
    assert_int_equal(dc_auth_bearer(a, NULL, NOW, &who, &err), DC_EINVAL);
    assert_int_equal(err.status, 401);
    assert_string_equal(err.code, "missing_token");
    assert_string_equal(err.challenge, DC_AUTH_CHALLENGE);
    assert_int_equal(dc_auth_bearer(a, "Basic YWxpY2U6cHc=", NOW, &who, &err), DC_EINVAL);
    assert_string_equal(err.code, "missing_token");
    assert_int_equal(dc_auth_bearer(a, "Bearer ", NOW, &who, &err), DC_EINVAL);
    assert_string_equal(err.code, "invalid_token");
    snprintf(h, sizeof(h), "bearer  %s \t", t);
    assert_int_equal(dc_auth_bearer(a, h, NOW, &who, &err), DC_OK);
    assert_string_equal(who->sub, "alice");
    free(t);
    dc_auth_free(a);
}

static void test_trusted_identity(void **state)
{
    dc_auth_config_t      ac;
    dc_auth_t            *a;
    const dc_principal_t *who;
    dc_error_t            err;

    (void)state;
    memset(&ac, 0, sizeof(ac));
    ac.mode = DC_AUTH_TRUSTED;
    a = dc_auth_new(&ac, NULL);
    assert_non_null(a);
    assert_int_equal(dc_auth_trusted(a, "bob", ORG_A "," ORG_B, "read refresh", &who, &err), DC_OK);
    assert_string_equal(who->sub, "bob");
    assert_int_equal(who->norgs, 2);
    assert_int_equal(who->scopes, DC_SCOPE_READ | DC_SCOPE_REFRESH);
    assert_int_equal(dc_auth_trusted(a, NULL, ORG_A, "read", &who, &err), DC_EINVAL);
    assert_int_equal(err.status, 401);
    assert_int_equal(dc_auth_trusted(a, "", ORG_A, "read", &who, &err), DC_EINVAL);
    assert_int_equal(dc_auth_trusted(a, "bob", "not-an-id", "read", &who, &err), DC_EINVAL);
    assert_string_equal(err.code, "invalid_token");
    assert_int_equal(dc_auth_trusted(a, "bob", NULL, NULL, &who, &err), DC_OK);
    assert_int_equal(who->norgs + who->scopes, 0);
    /* no bearer token is taken in trusted mode */
    assert_int_equal(dc_auth_bearer(a, "Bearer a.b.c", NOW, &who, &err), DC_EINVAL);
    dc_auth_free(a);
}

static void test_mint_round_trip(void **state)
{
    static const char *const orgs[] = { ORG_A, ORG_B };
    dc_auth_t               *a = auth_default();
    dc_auth_claims_t         c = { .kid = "k2",
                                   .sub = "svc",
                                   .orgs = orgs,
                                   .norgs = 2,
                                   .scopes = DC_SCOPE_INGEST,
                                   .iat = NOW,
                                   .exp = NOW + 600 };
    const dc_principal_t    *who;
    char                    *t;
    dc_err_t                 err;

    (void)state;
    assert_int_equal(dc_auth_mint(a, &c, &t, &err), DC_OK);
    who = assert_accepted(a, t, NOW);
    assert_string_equal(who->sub, "svc");
    assert_int_equal(who->scopes, DC_SCOPE_INGEST);
    assert_int_equal(who->norgs, 2);
    assert_refused(a, t, NOW + 600 + SKEW, "expired");
    free(t);
    c.kid = "es";
    assert_int_equal(dc_auth_mint(a, &c, &t, &err), DC_EINVAL);
    assert_non_null(strstr(err.str, "cannot mint"));
    c.kid = NULL;
    assert_int_equal(dc_auth_mint(a, &c, &t, &err), DC_EINVAL);
    c.kid = "k7";
    assert_int_equal(dc_auth_mint(a, &c, &t, &err), DC_EINVAL);
    dc_auth_free(a);
}

/* A worker reads the keys before it switches user: dc_auth_new then takes them without the file. */
static void test_preload_before_the_switch_of_user(void **state)
{
    dc_auth_config_t ac;
    dc_auth_t       *a;
    dc_err_t         err;
    char             line[128];
    char            *t = mint_k1(NOW + 60, NULL);

    (void)state;
    memset(&ac, 0, sizeof(ac));
    ac.mode = DC_AUTH_JWT;
    ac.clock_skew_s = SKEW;
    snprintf(line, sizeof(line), "k1 HS256 %s\n", secret_b64[0]);
    write_file("preload", line, 0600, ac.keys_file, sizeof(ac.keys_file));
    assert_int_equal(dc_auth_preload(&ac, &err), DC_OK);
    assert_int_equal(unlink(ac.keys_file), 0); /* as unreadable as a root-only file to the new user */
    a = dc_auth_new(&ac, &err);
    assert_non_null(a);
    assert_accepted(a, t, NOW);
    dc_auth_free(a);
    /* taken once: the next one reads the file again, which is gone */
    assert_null(dc_auth_new(&ac, &err));
    assert_non_null(strstr(err.str, "cannot open"));
    assert_int_equal(dc_auth_preload(&ac, &err), DC_EINVAL);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_token),
        cmocka_unit_test(test_expired_and_not_yet_valid),
        cmocka_unit_test(test_clock_skew_edges),
        cmocka_unit_test(test_tampered_payload_and_signature),
        cmocka_unit_test(test_alg_none_refused),
        cmocka_unit_test(test_other_algorithms_with_our_key_refused),
        cmocka_unit_test(test_kid_selection),
        cmocka_unit_test(test_malformed_claims),
        cmocka_unit_test(test_size_and_encoding_limits),
        cmocka_unit_test(test_scope_parsing),
        cmocka_unit_test(test_all_orgs_needs_a_key_marked_for_it),
        cmocka_unit_test(test_issuer_and_audience),
        cmocka_unit_test(test_cache_of_verified_tokens),
        cmocka_unit_test(test_key_file_checks),
        cmocka_unit_test(test_authorize),
        cmocka_unit_test(test_bearer_header),
        cmocka_unit_test(test_trusted_identity),
        cmocka_unit_test(test_mint_round_trip),
        cmocka_unit_test(test_preload_before_the_switch_of_user),
    };

    return cmocka_run_group_tests_name("dc_auth", tests, setup_dir, remove_dir);
}
