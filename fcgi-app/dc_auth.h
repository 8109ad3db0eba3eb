/*
 * Who is calling, and what they may touch. In AUTH_MODE=jwt a request
 * carries a bearer token (a JWS signed with a key of AUTH_KEYS_FILE, chosen
 * by its kid) that names its subject, its organizations and its scopes; in
 * AUTH_MODE=trusted nginx authenticated the caller (auth_request) and
 * passes the same three as FastCGI params. Either way the result is a
 * dc_principal_t, and dc_auth_authorize decides a request against the
 * scopes of its endpoint row (dc_api.h) and its organization, before any
 * cache lookup.
 *
 * Only this file and dc_auth.c know libjwt. Keys and tokens are secrets:
 * nothing here logs them or copies them into an error message.
 */
#ifndef DC_AUTH_H
#define DC_AUTH_H

#include <stdint.h>

#include "dc_config.h"
#include "dc_request.h"

#define DC_AUTH_TOKEN_MAX  4096 /* a longer bearer token is refused unread */
#define DC_AUTH_SUB_MAX    128
#define DC_AUTH_ORGS_MAX   64 /* organizations one token may name */
#define DC_AUTH_KEYS_MAX   16
#define DC_AUTH_KID_MAX    64
#define DC_AUTH_SECRET_MIN 32 /* bytes of an HS256 secret */

/* WWW-Authenticate challenges (RFC 6750), static strings. */
#define DC_AUTH_CHALLENGE         "Bearer realm=\"dashcache\""
#define DC_AUTH_CHALLENGE_INVALID "Bearer realm=\"dashcache\", error=\"invalid_token\""
#define DC_AUTH_CHALLENGE_SCOPE   "Bearer realm=\"dashcache\", error=\"insufficient_scope\""

/* An authenticated caller. */
typedef struct {
    int64_t  exp;      /* expiry, seconds since the epoch; 0: none (trusted mode) */
    size_t   norgs;    /* entries of orgs */
    unsigned scopes;   /* DC_SCOPE_* */
    int      all_orgs; /* orgs ["*"]: every organization (platform service accounts) */
    char     sub[DC_AUTH_SUB_MAX + 1];
    char     orgs[DC_AUTH_ORGS_MAX][DC_UUID_LEN + 1]; /* lower case */
} dc_principal_t;

typedef struct dc_auth_s dc_auth_t;

/*
 * The verifier of one process: in jwt mode it loads and checks the key
 * file (AUTH_KEYS_FILE: required, a regular file not readable by others,
 * lines "kid HS256 base64url-secret" with secrets of at least 32 bytes, or
 * "kid ES256 /path/to/public.pem"; # comments), and holds a small cache of
 * verified tokens. NULL with err (NULL is fine) naming the variable; free
 * with dc_auth_free (NULL is fine).
 */
dc_auth_t *dc_auth_new(const dc_auth_config_t *ac, dc_err_t *err);
void       dc_auth_free(dc_auth_t *a);

/*
 * Loads the verifier of ac now, while this process may still read the key
 * file (a worker just forked by a root master, before it switches user:
 * the keys stay readable by root alone), and keeps it for this process:
 * the next dc_auth_new with the same configuration returns it. DC_OK, or
 * DC_EINVAL with err as dc_auth_new.
 */
int dc_auth_preload(const dc_auth_config_t *ac, dc_err_t *err) DC_WUR;

dc_auth_mode_t dc_auth_mode(const dc_auth_t *a);

/*
 * Authenticates a request in jwt mode from its Authorization header value
 * (NULL when absent). now is the wall clock in seconds. DC_OK with *who
 * (owned by a, valid until its next call); else DC_EINVAL with err a 401:
 * missing_token (no bearer token) or invalid_token, err->challenge set.
 */
int dc_auth_bearer(dc_auth_t *a, const char *authorization, int64_t now, const dc_principal_t **who,
                   dc_error_t *err) DC_WUR;

/*
 * Verifies one compact JWS token[0..len) (no "Bearer "): size, header,
 * kid → key, alg equal to the key's (alg none and any other algorithm are
 * refused before the signature is looked at), signature (libjwt), exp and
 * nbf within the clock skew, iss and aud when configured, then the claims
 * sub, orgs and scope. A token verified before and not expired is answered
 * from the cache. Results as dc_auth_bearer.
 */
int dc_auth_verify(dc_auth_t *a, const char *token, size_t len, int64_t now, const dc_principal_t **who,
                   dc_error_t *err) DC_WUR;

/*
 * The identity nginx passed in trusted mode: sub, orgs (ids separated by
 * commas or spaces, or "*") and scope (names separated by spaces or
 * commas), each NULL when absent. Results as dc_auth_bearer.
 */
int dc_auth_trusted(dc_auth_t *a, const char *sub, const char *orgs, const char *scope,
                    const dc_principal_t **who, dc_error_t *err) DC_WUR;

/*
 * Whether who holds every scope of need and, when org is neither NULL nor
 * "", acts for org. DC_OK, or DC_EINVAL with err a 403 (insufficient_scope
 * or forbidden_organization, err->challenge set).
 */
int dc_auth_authorize(const dc_principal_t *who, unsigned need, const char *org, dc_error_t *err) DC_WUR;

/*
 * Scope names ("read write", "read,write") → DC_SCOPE_* bits. strict: an
 * unknown name is DC_EINVAL (dashcachectl); else it is ignored (tokens may
 * carry scopes of other services).
 */
int dc_auth_parse_scopes(const char *s, int strict, unsigned *out) DC_WUR;

/* "read write ..." for bits into buf (cap bytes); returns buf. */
const char *dc_auth_scope_string(unsigned bits, char *buf, size_t cap);

/* What dc_auth_mint signs. */
typedef struct {
    const char        *kid; /* NULL: the only key (error when there are several) */
    const char        *sub;
    const char *const *orgs; /* ids, or the one entry "*" */
    size_t             norgs;
    unsigned           scopes;
    int64_t            iat, exp;
} dc_auth_claims_t;

/*
 * Mints a token with an HS256 key of a (issuer and audience as configured).
 * DC_OK with *token (free()), or DC_EINVAL/DC_ENOMEM with err.
 */
int dc_auth_mint(const dc_auth_t *a, const dc_auth_claims_t *c, char **token, dc_err_t *err) DC_WUR;

/* Tokens answered from the cache so far (tests). */
uint64_t dc_auth_cache_hits(const dc_auth_t *a);

#endif
