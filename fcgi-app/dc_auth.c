/*
 * Bearer tokens and trusted identities → principals, and the decision of a
 * request. libjwt 1.10 checks signatures but has no key lookup and no time
 * checks: the header is decoded here first (json-c) to pick the key by kid
 * and to refuse alg none and algorithm confusion before libjwt sees the
 * token with that key; exp, nbf, iss, aud and the claims are checked here
 * on the verified payload.
 */
#include "dc_auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>
#include <jwt.h>

#define KEY_MAX         4096 /* bytes of a secret or of a PEM public key */
#define KEYS_FILE_MAX   65536
#define HEADER_MAX      1024 /* decoded header */
#define CACHE_SLOTS     64   /* direct-mapped, a power of two */
#define CACHE_TOKEN_MAX 2048 /* longer tokens are verified every time */

typedef struct {
    char          kid[DC_AUTH_KID_MAX + 1];
    jwt_alg_t     alg;
    int           all_orgs; /* "all-orgs" on its line: may sign orgs ["*"] */
    size_t        len;
    unsigned char key[KEY_MAX];
} auth_key_t;

typedef struct {
    uint64_t       hash;
    size_t         len; /* 0: empty */
    char           token[CACHE_TOKEN_MAX];
    dc_principal_t who;
} cache_entry_t;

struct dc_auth_s {
    dc_auth_config_t cfg;
    size_t           nkeys;
    auth_key_t       keys[DC_AUTH_KEYS_MAX];
    uint64_t         seed; /* of the cache's hash, so that slots cannot be aimed at */
    uint64_t         hits;
    cache_entry_t   *cache;
    dc_principal_t   scratch; /* the principal of an uncached answer */
    char             buf[DC_AUTH_TOKEN_MAX + 1];
};

static const struct {
    const char *name;
    unsigned    bit;
} scope_names[] = {
    { "read", DC_SCOPE_READ },       { "write", DC_SCOPE_WRITE }, { "ingest", DC_SCOPE_INGEST },
    { "refresh", DC_SCOPE_REFRESH }, { "admin", DC_SCOPE_ADMIN },
};

/* ------------------------------------------------------------------ helpers */

static int b64val(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* base64url without padding, s[0..n) → out (cap bytes). DC_OK or DC_EINVAL. */
static int b64url_decode(const char *s, size_t n, unsigned char *out, size_t cap, size_t *outlen)
{
    uint32_t acc = 0;
    int      bits = 0;
    size_t   o = 0;

    if (n % 4 == 1)
        return DC_EINVAL;
    for (size_t i = 0; i < n; i++) {
        int v = b64val((unsigned char)s[i]);
        if (v < 0)
            return DC_EINVAL;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap)
                return DC_EINVAL;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    *outlen = o;
    return DC_OK;
}

/* A JSON object that is the whole of s[0..n), or NULL. json_object_put it. */
static json_object *parse_object(const char *s, size_t n)
{
    json_tokener *tok = json_tokener_new();
    json_object  *o;

    if (tok == NULL || memchr(s, '\0', n) != NULL || n > INT32_MAX) {
        json_tokener_free(tok);
        return NULL;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    o = json_tokener_parse_ex(tok, s, (int)n);
    if (o != NULL && (json_tokener_get_error(tok) != json_tokener_success ||
                      json_tokener_get_parse_end(tok) != n || !json_object_is_type(o, json_type_object))) {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    return o;
}

static const char *get_string(json_object *o, const char *name)
{
    json_object *v;
    return json_object_object_get_ex(o, name, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

/* FNV-1a, seeded: picks a cache slot; the slot then compares the whole token. */
static uint64_t token_hash(uint64_t seed, const char *s, size_t n)
{
    uint64_t h = 14695981039346656037ULL ^ seed;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* Equality of two n-byte strings in time independent of where they differ. */
static int same_bytes(const char *a, const char *b, size_t n)
{
    unsigned char d = 0;
    for (size_t i = 0; i < n; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

static int invalid(dc_error_t *err, const char *why)
{
    dc_error_set(err, 401, "invalid_token", "%s", why);
    err->challenge = DC_AUTH_CHALLENGE_INVALID;
    return DC_EINVAL;
}

/* ------------------------------------------------------------------ scopes */

int dc_auth_parse_scopes(const char *s, int strict, unsigned *out)
{
    unsigned bits = 0;

    while (s != NULL && *s != '\0') {
        size_t n = strcspn(s, " ,");
        int    known = 0;
        for (size_t i = 0; i < DC_ARRAY_LEN(scope_names) && n > 0; i++) {
            if (strlen(scope_names[i].name) == n && memcmp(scope_names[i].name, s, n) == 0) {
                bits |= scope_names[i].bit;
                known = 1;
            }
        }
        if (n > 0 && !known && strict)
            return DC_EINVAL;
        s += n;
        s += strspn(s, " ,");
    }
    *out = bits;
    return DC_OK;
}

const char *dc_auth_scope_string(unsigned bits, char *buf, size_t cap)
{
    size_t o = 0;

    if (cap == 0)
        return buf;
    buf[0] = '\0';
    for (size_t i = 0; i < DC_ARRAY_LEN(scope_names); i++) {
        if (bits & scope_names[i].bit) {
            int n = snprintf(buf + o, cap - o, "%s%s", o ? " " : "", scope_names[i].name);
            if (n < 0 || (size_t)n >= cap - o)
                break;
            o += (size_t)n;
        }
    }
    return buf;
}

/* ------------------------------------------------------------------ keys */

static int keys_error(char *err, size_t errlen, const char *path, int line, const char *why)
{
    if (line > 0)
        snprintf(err, errlen, "AUTH_KEYS_FILE %.80s, line %d: %.140s", path, line, why);
    else
        snprintf(err, errlen, "AUTH_KEYS_FILE %.80s: %.150s", path, why);
    return DC_EINVAL;
}

/* Reads a whole file of at most max bytes into a malloc'd NUL-terminated buffer; sets *st. */
static char *read_file(const char *path, size_t max, struct stat *st, char *why, size_t whylen)
{
    int     fd = open(path, O_RDONLY | O_CLOEXEC);
    char   *data = NULL;
    size_t  got = 0;
    ssize_t n;

    if (fd < 0) {
        snprintf(why, whylen, "cannot open: %s", strerror(errno));
        return NULL;
    }
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        snprintf(why, whylen, "not a regular file");
        goto fail;
    }
    if ((size_t)st->st_size > max) {
        snprintf(why, whylen, "larger than %zu bytes", max);
        goto fail;
    }
    data = malloc((size_t)st->st_size + 1);
    if (data == NULL) {
        snprintf(why, whylen, "out of memory");
        goto fail;
    }
    while (got < (size_t)st->st_size && (n = read(fd, data + got, (size_t)st->st_size - got)) > 0)
        got += (size_t)n;
    data[got] = '\0';
    close(fd);
    return data;
fail:
    free(data);
    close(fd);
    return NULL;
}

static int kid_ok(const char *s, size_t n)
{
    if (n == 0 || n > DC_AUTH_KID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

/*
 * "kid alg material [all-orgs]" of one line into k. Only a key marked
 * all-orgs may sign a token for every organization (orgs ["*"]): the keys
 * that mint tenants' tokens cannot, whatever a token says.
 */
static int parse_key_line(dc_auth_t *a, auth_key_t *k, char *line, const char *dir, char *why, size_t whylen)
{
    char       *save = NULL;
    const char *kid = strtok_r(line, " \t", &save);
    const char *alg = strtok_r(NULL, " \t", &save);
    const char *mat = strtok_r(NULL, " \t", &save);
    const char *flag = strtok_r(NULL, " \t", &save);

    if (kid == NULL || alg == NULL || mat == NULL || (flag != NULL && strcmp(flag, "all-orgs") != 0) ||
        strtok_r(NULL, " \t", &save) != NULL) {
        snprintf(why, whylen,
                 "expected \"kid HS256 base64url-secret [all-orgs]\" or \"kid ES256 /path/to/public.pem "
                 "[all-orgs]\"");
        return DC_EINVAL;
    }
    k->all_orgs = flag != NULL;
    if (!kid_ok(kid, strlen(kid))) {
        snprintf(why, whylen, "a kid is 1 to %d of A-Z a-z 0-9 . - _", DC_AUTH_KID_MAX);
        return DC_EINVAL;
    }
    for (size_t i = 0; i < a->nkeys; i++) {
        if (strcmp(a->keys[i].kid, kid) == 0) {
            snprintf(why, whylen, "kid %s is given twice", kid);
            return DC_EINVAL;
        }
    }
    memcpy(k->kid, kid, strlen(kid) + 1);
    if (strcmp(alg, "HS256") == 0) {
        size_t n = strlen(mat);
        k->alg = JWT_ALG_HS256;
        while (n > 0 && mat[n - 1] == '=') /* padding is optional */
            n--;
        if (b64url_decode(mat, n, k->key, sizeof(k->key), &k->len) != DC_OK) {
            snprintf(why, whylen, "the secret of kid %s is not base64url", kid);
            return DC_EINVAL;
        }
        if (k->len < DC_AUTH_SECRET_MIN) {
            snprintf(why, whylen, "the secret of kid %s has %zu bytes; HS256 needs at least %d", kid, k->len,
                     DC_AUTH_SECRET_MIN);
            return DC_EINVAL;
        }
        return DC_OK;
    }
    if (strcmp(alg, "ES256") == 0) {
        char        path[1024], sub[256];
        struct stat st;
        char       *pem;

        k->alg = JWT_ALG_ES256;
        if (snprintf(path, sizeof(path), "%s%s", mat[0] == '/' ? "" : dir, mat) >= (int)sizeof(path)) {
            snprintf(why, whylen, "the key path of kid %s is too long", kid);
            return DC_EINVAL;
        }
        pem = read_file(path, sizeof(k->key) - 1, &st, sub, sizeof(sub));
        if (pem == NULL) {
            snprintf(why, whylen, "public key of kid %s (%.300s): %.200s", kid, path, sub);
            return DC_EINVAL;
        }
        if (strstr(pem, "-----BEGIN PUBLIC KEY-----") == NULL) {
            free(pem);
            snprintf(why, whylen, "%.300s (kid %s) is not a PEM public key", path, kid);
            return DC_EINVAL;
        }
        k->len = strlen(pem);
        memcpy(k->key, pem, k->len + 1);
        free(pem);
        return DC_OK;
    }
    snprintf(why, whylen, "kid %s: algorithm must be HS256 or ES256 (got \"%.16s\")", kid, alg);
    return DC_EINVAL;
}

static int load_keys(dc_auth_t *a, const char *path, char *err, size_t errlen)
{
    struct stat st;
    char        why[1024], dir[512];
    char       *data = read_file(path, KEYS_FILE_MAX, &st, why, sizeof(why)), *line, *save = NULL;
    const char *slash = strrchr(path, '/');
    int         lineno = 0, rc = DC_OK;

    if (data == NULL)
        return keys_error(err, errlen, path, 0, why);
    if (st.st_mode & (S_IROTH | S_IWOTH)) {
        free(data);
        snprintf(why, sizeof(why),
                 "it holds secrets and is accessible by every user (mode %04o); chmod 600 it",
                 (unsigned)(st.st_mode & 07777));
        return keys_error(err, errlen, path, 0, why);
    }
    snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path + 1) : 0, path);
    for (line = data; line != NULL && rc == DC_OK; line = save) {
        char *nl = strchr(line, '\n'), *p;
        save = nl ? nl + 1 : NULL;
        if (nl)
            *nl = '\0';
        lineno++;
        if ((p = strchr(line, '#')) != NULL)
            *p = '\0';
        line[strcspn(line, "\r")] = '\0';
        if (line[strspn(line, " \t")] == '\0')
            continue;
        if (a->nkeys == DC_AUTH_KEYS_MAX) {
            snprintf(why, sizeof(why), "more than %d keys", DC_AUTH_KEYS_MAX);
            rc = keys_error(err, errlen, path, lineno, why);
        } else if (parse_key_line(a, &a->keys[a->nkeys], line, dir, why, sizeof(why)) != DC_OK) {
            rc = keys_error(err, errlen, path, lineno, why);
        } else {
            a->nkeys++;
        }
    }
    explicit_bzero(data, strlen(data));
    free(data);
    if (rc == DC_OK && a->nkeys == 0)
        rc = keys_error(err, errlen, path, 0, "no key in it");
    return rc;
}

static dc_auth_t *auth_new(const dc_auth_config_t *ac, char *err, size_t errlen)
{
    dc_auth_t *a = calloc(1, sizeof(*a));

    if (a == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->cfg = *ac;
    if (ac->mode == DC_AUTH_JWT) {
        if (ac->keys_file[0] == '\0') {
            snprintf(err, errlen,
                     "AUTH_KEYS_FILE must name the key file of AUTH_MODE=jwt (lines \"kid HS256 "
                     "base64url-secret\"; dashcachectl token mints with it)");
            goto fail;
        }
        if (load_keys(a, ac->keys_file, err, errlen) != DC_OK)
            goto fail;
        a->cache = calloc(CACHE_SLOTS, sizeof(*a->cache));
        if (a->cache == NULL) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        if (getrandom(&a->seed, sizeof(a->seed), 0) != (ssize_t)sizeof(a->seed))
            a->seed = (uint64_t)getpid() * 0x9e3779b97f4a7c15ULL;
    }
    return a;
fail:
    dc_auth_free(a);
    return NULL;
}

/* What dc_auth_preload loaded for this process, until dc_auth_new takes it. */
static dc_auth_t *preloaded;

static int same_config(const dc_auth_config_t *x, const dc_auth_config_t *y)
{
    return x->mode == y->mode && x->clock_skew_s == y->clock_skew_s &&
           strcmp(x->keys_file, y->keys_file) == 0 && strcmp(x->issuer, y->issuer) == 0 &&
           strcmp(x->audience, y->audience) == 0;
}

int dc_auth_preload(const dc_auth_config_t *ac, dc_err_t *err)
{
    dc_auth_free(preloaded);
    preloaded = NULL;
    preloaded = dc_auth_new(ac, err);
    return preloaded != NULL ? DC_OK : DC_EINVAL;
}

dc_auth_t *dc_auth_new(const dc_auth_config_t *ac, dc_err_t *err)
{
    char       why[sizeof(err->str)] = "";
    dc_auth_t *a;

    if (preloaded != NULL && same_config(&preloaded->cfg, ac)) {
        a = preloaded;
        preloaded = NULL;
        return a;
    }
    a = auth_new(ac, why, sizeof(why));

    if (a == NULL)
        dc_err_set(err, DC_EINVAL, "%s", why);
    return a;
}

void dc_auth_free(dc_auth_t *a)
{
    if (a == NULL)
        return;
    explicit_bzero(a->keys, sizeof(a->keys));
    if (a->cache != NULL)
        explicit_bzero(a->cache, CACHE_SLOTS * sizeof(*a->cache));
    free(a->cache);
    explicit_bzero(a, sizeof(*a));
    free(a);
}

dc_auth_mode_t dc_auth_mode(const dc_auth_t *a)
{
    return a->cfg.mode;
}

uint64_t dc_auth_cache_hits(const dc_auth_t *a)
{
    return a->hits;
}

/* ------------------------------------------------------------------ claims */

static int add_org(dc_principal_t *p, const char *s, size_t n)
{
    if (n == 1 && s[0] == '*') {
        p->all_orgs = 1;
        return DC_OK;
    }
    if (p->norgs == DC_AUTH_ORGS_MAX || dc_request_parse_uuid(s, n, p->orgs[p->norgs]) != DC_OK)
        return DC_EINVAL;
    p->norgs++;
    return DC_OK;
}

static int sub_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > DC_AUTH_SUB_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

/*
 * A NumericDate member, or DC_DECLINED when absent. Bounded (year 1970 to
 * about 33658), so that adding the skew cannot overflow.
 */
#define TIME_MAX 1000000000000LL

static int get_time(json_object *o, const char *name, int64_t *out)
{
    json_object *v;
    double       d;

    if (!json_object_object_get_ex(o, name, &v))
        return DC_DECLINED;
    if (json_object_is_type(v, json_type_int)) {
        *out = json_object_get_int64(v);
    } else if (json_object_is_type(v, json_type_double)) {
        d = json_object_get_double(v);
        if (!(d >= 0 && d <= (double)TIME_MAX))
            return DC_EINVAL;
        *out = (int64_t)d;
    } else {
        return DC_EINVAL;
    }
    return *out >= 0 && *out <= TIME_MAX ? DC_OK : DC_EINVAL;
}

static int aud_ok(json_object *o, const char *want)
{
    json_object *v;

    if (!json_object_object_get_ex(o, "aud", &v))
        return 0;
    if (json_object_is_type(v, json_type_string))
        return strcmp(json_object_get_string(v), want) == 0;
    if (json_object_is_type(v, json_type_array))
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            json_object *e = json_object_array_get_idx(v, i);
            if (json_object_is_type(e, json_type_string) && strcmp(json_object_get_string(e), want) == 0)
                return 1;
        }
    return 0;
}

/* The verified payload → p, with the time and issuer checks. */
static int check_claims(const dc_auth_t *a, json_object *c, int64_t now, dc_principal_t *p, dc_error_t *err)
{
    const int64_t skew = a->cfg.clock_skew_s;
    json_object  *v;
    const char   *s;
    int64_t       t;
    int           rc;

    memset(p, 0, sizeof(*p));
    rc = get_time(c, "exp", &p->exp);
    if (rc == DC_DECLINED)
        return invalid(err, "the token has no exp (expiry) claim");
    if (rc != DC_OK)
        return invalid(err, "exp must be a number of seconds");
    if (now >= p->exp + skew)
        return invalid(err, "the token has expired");
    rc = get_time(c, "nbf", &t);
    if (rc == DC_EINVAL)
        return invalid(err, "nbf must be a number of seconds");
    if (rc == DC_OK && now + skew < t)
        return invalid(err, "the token is not valid yet (nbf)");
    if (a->cfg.issuer[0] != '\0' && ((s = get_string(c, "iss")) == NULL || strcmp(s, a->cfg.issuer) != 0))
        return invalid(err, "the token is not from the configured issuer");
    if (a->cfg.audience[0] != '\0' && !aud_ok(c, a->cfg.audience))
        return invalid(err, "the token is not for the configured audience");

    s = get_string(c, "sub");
    if (s == NULL || !sub_ok(s))
        return invalid(err, "sub must be a string of 1 to 128 printable characters");
    memcpy(p->sub, s, strlen(s) + 1);

    if (!json_object_object_get_ex(c, "orgs", &v) || !json_object_is_type(v, json_type_array))
        return invalid(err, "orgs must be an array of organization ids");
    for (size_t i = 0; i < json_object_array_length(v); i++) {
        json_object *e = json_object_array_get_idx(v, i);
        if (!json_object_is_type(e, json_type_string) ||
            add_org(p, json_object_get_string(e), (size_t)json_object_get_string_len(e)) != DC_OK)
            return invalid(err, "orgs must be an array of at most 64 organization ids (UUIDs) or [\"*\"]");
    }

    if (json_object_object_get_ex(c, "scope", &v)) {
        if (json_object_is_type(v, json_type_string)) {
            if (dc_auth_parse_scopes(json_object_get_string(v), 0, &p->scopes) != DC_OK)
                return invalid(err, "scope is not a list of scope names");
        } else if (json_object_is_type(v, json_type_array)) {
            for (size_t i = 0; i < json_object_array_length(v); i++) {
                json_object *e = json_object_array_get_idx(v, i);
                unsigned     bits;
                if (!json_object_is_type(e, json_type_string) ||
                    dc_auth_parse_scopes(json_object_get_string(e), 0, &bits) != DC_OK)
                    return invalid(err, "scope must be a string or an array of strings");
                p->scopes |= bits;
            }
        } else {
            return invalid(err, "scope must be a string or an array of strings");
        }
    }
    return DC_OK;
}

/* ------------------------------------------------------------------ tokens */

static const auth_key_t *find_key(const dc_auth_t *a, const char *kid)
{
    if (kid == NULL)
        return a->nkeys == 1 ? &a->keys[0] : NULL;
    for (size_t i = 0; i < a->nkeys; i++)
        if (strcmp(a->keys[i].kid, kid) == 0)
            return &a->keys[i];
    return NULL;
}

/*
 * The header decides nothing by itself: it only names the key (kid) and
 * must name exactly that key's algorithm. Anything else, alg none first,
 * is refused here, so libjwt only ever verifies with the algorithm the key
 * was configured for (no HS256 signed with an ES256 public key).
 */
static int check_header(const dc_auth_t *a, const char *h, size_t n, const auth_key_t **key, dc_error_t *err)
{
    unsigned char buf[HEADER_MAX];
    size_t        len;
    json_object  *o;
    const char   *alg, *kid, *typ;
    json_object  *v;
    int           rc = DC_OK;

    if (b64url_decode(h, n, buf, sizeof(buf), &len) != DC_OK || (o = parse_object((char *)buf, len)) == NULL)
        return invalid(err, "the token header is not base64url JSON");
    alg = get_string(o, "alg");
    kid = get_string(o, "kid");
    typ = get_string(o, "typ");
    if (alg == NULL)
        rc = invalid(err, "the token header has no alg");
    else if (strcasecmp(alg, "none") == 0)
        rc = invalid(err, "unsigned tokens (alg none) are refused");
    else if (json_object_object_get_ex(o, "kid", &v) && kid == NULL)
        rc = invalid(err, "kid must be a string");
    else if (json_object_object_get_ex(o, "crit", &v))
        rc = invalid(err, "the token header has critical extensions (crit)");
    else if (json_object_object_get_ex(o, "typ", &v) && (typ == NULL || strcasecmp(typ, "JWT") != 0))
        rc = invalid(err, "typ must be JWT");
    else if ((*key = find_key(a, kid)) == NULL)
        rc = invalid(err, kid != NULL ? "the token's key id (kid) is unknown"
                                      : "the token names no key id (kid) and there are several keys");
    else if (strcmp(alg, jwt_alg_str((*key)->alg)) != 0)
        rc = invalid(err, "the token's algorithm is not the algorithm of its key");
    json_object_put(o);
    return rc;
}

static cache_entry_t *cache_slot(dc_auth_t *a, uint64_t h)
{
    return &a->cache[h & (CACHE_SLOTS - 1)];
}

int dc_auth_verify(dc_auth_t *a, const char *token, size_t len, int64_t now, const dc_principal_t **who,
                   dc_error_t *err)
{
    const char       *d1, *d2;
    const auth_key_t *key;
    jwt_t            *jwt = NULL;
    unsigned char    *payload;
    size_t            plen;
    json_object      *claims;
    cache_entry_t    *slot = NULL;
    uint64_t          h = 0;
    int               rc;

    if (a->cfg.mode != DC_AUTH_JWT || a->nkeys == 0)
        return invalid(err, "bearer tokens are not accepted here");
    if (len == 0)
        return invalid(err, "the bearer token is empty");
    if (len > DC_AUTH_TOKEN_MAX)
        return invalid(err, "the bearer token is longer than 4096 bytes");

    if (len < CACHE_TOKEN_MAX) {
        h = token_hash(a->seed, token, len);
        slot = cache_slot(a, h);
        if (slot->len == len && slot->hash == h && same_bytes(slot->token, token, len)) {
            if (now < slot->who.exp + a->cfg.clock_skew_s) {
                a->hits++;
                *who = &slot->who;
                return DC_OK;
            }
            slot->len = 0; /* expired: verified again below, and refused */
        }
    }

    d1 = memchr(token, '.', len);
    d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
    if (d1 == NULL || d2 == NULL || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)) != NULL ||
        d1 == token || d2 == d1 + 1 || d2 + 1 == token + len)
        return invalid(err, "the bearer token is not a signed JWT (header.payload.signature)");
    if (check_header(a, token, (size_t)(d1 - token), &key, err) != DC_OK)
        return DC_EINVAL;

    memcpy(a->buf, token, len);
    a->buf[len] = '\0';
    rc = jwt_decode(&jwt, a->buf, key->key, (int)key->len);
    if (rc != 0 || jwt == NULL) {
        jwt_free(jwt);
        return invalid(err, rc == ENOMEM ? "out of memory" : "the token's signature does not verify");
    }
    /* what libjwt verified with must be what the key is for */
    rc = jwt_get_alg(jwt) == key->alg;
    jwt_free(jwt);
    if (!rc)
        return invalid(err, "the token's algorithm is not the algorithm of its key");

    /* the payload libjwt just verified, parsed by the same JSON library as everything else */
    payload = (unsigned char *)a->buf; /* reused: the token copy is no longer needed */
    if (b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), payload, sizeof(a->buf), &plen) != DC_OK ||
        (claims = parse_object((char *)payload, plen)) == NULL)
        return invalid(err, "the token payload is not base64url JSON");
    rc = check_claims(a, claims, now, slot ? &slot->who : &a->scratch, err);
    json_object_put(claims);
    if (rc == DC_OK && (slot ? &slot->who : &a->scratch)->all_orgs && !key->all_orgs)
        rc = invalid(err, "orgs [\"*\"] is accepted only from a key marked all-orgs");
    if (rc != DC_OK) {
        if (slot != NULL)
            slot->len = 0;
        return rc;
    }
    if (slot != NULL) {
        memcpy(slot->token, token, len);
        slot->len = len;
        slot->hash = h;
        *who = &slot->who;
    } else {
        *who = &a->scratch;
    }
    return DC_OK;
}

int dc_auth_bearer(dc_auth_t *a, const char *authorization, int64_t now, const dc_principal_t **who,
                   dc_error_t *err)
{
    const char *t;
    size_t      n;

    if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0) {
        dc_error_set(err, 401, "missing_token", "an Authorization: Bearer token is required");
        err->challenge = DC_AUTH_CHALLENGE;
        return DC_EINVAL;
    }
    t = authorization + 7;
    t += strspn(t, " ");
    n = strlen(t);
    while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '\t'))
        n--;
    return dc_auth_verify(a, t, n, now, who, err);
}

int dc_auth_trusted(dc_auth_t *a, const char *sub, const char *orgs, const char *scope,
                    const dc_principal_t **who, dc_error_t *err)
{
    dc_principal_t *p = &a->scratch;

    if (sub == NULL || *sub == '\0') {
        dc_error_set(err, 401, "missing_token", "the web server passed no identity (AUTH_MODE=trusted)");
        err->challenge = DC_AUTH_CHALLENGE;
        return DC_EINVAL;
    }
    memset(p, 0, sizeof(*p));
    if (!sub_ok(sub))
        return invalid(err, "the identity's subject is not 1 to 128 printable characters");
    memcpy(p->sub, sub, strlen(sub) + 1);
    while (orgs != NULL && *orgs != '\0') {
        size_t n = strcspn(orgs, " ,");
        if (n > 0 && add_org(p, orgs, n) != DC_OK)
            return invalid(err, "the identity's organizations are not at most 64 ids (UUIDs) or *");
        orgs += n;
        orgs += strspn(orgs, " ,");
    }
    if (dc_auth_parse_scopes(scope, 0, &p->scopes) != DC_OK)
        return invalid(err, "the identity's scope is not a list of scope names");
    *who = p;
    return DC_OK;
}

int dc_auth_authorize(const dc_principal_t *who, unsigned need, const char *org, dc_error_t *err)
{
    if ((who->scopes & need) != need) {
        char names[64];
        dc_error_set(err, 403, "insufficient_scope", "this request needs the scope %s",
                     dc_auth_scope_string(need & ~who->scopes, names, sizeof(names)));
        err->challenge = DC_AUTH_CHALLENGE_SCOPE;
        return DC_EINVAL;
    }
    if (org != NULL && org[0] != '\0' && !who->all_orgs) {
        for (size_t i = 0; i < who->norgs; i++)
            if (strcmp(who->orgs[i], org) == 0)
                return DC_OK;
        dc_error_set(err, 403, "forbidden_organization", "the token does not cover organization %s", org);
        err->challenge = DC_AUTH_CHALLENGE_SCOPE;
        return DC_EINVAL;
    }
    return DC_OK;
}

/* ------------------------------------------------------------------ minting */

int dc_auth_mint(const dc_auth_t *a, const dc_auth_claims_t *c, char **token, dc_err_t *err)
{
    const auth_key_t *key = find_key(a, c->kid);
    json_object      *extra = NULL, *orgs;
    jwt_t            *jwt = NULL;
    char              scopes[64];
    int               rc = DC_ENOMEM;

    *token = NULL;
    if (key == NULL)
        return c->kid ? dc_err_set(err, DC_EINVAL, "no key with kid %s in the key file", c->kid)
                      : dc_err_set(err, DC_EINVAL, "the key file has several keys: name one with its kid");
    if (key->alg != JWT_ALG_HS256)
        return dc_err_set(err, DC_EINVAL,
                          "kid %s is a public key (%s): it verifies tokens, it cannot mint them", key->kid,
                          jwt_alg_str(key->alg));
    extra = json_object_new_object();
    orgs = json_object_new_array();
    if (extra == NULL || orgs == NULL) {
        json_object_put(orgs);
        goto done;
    }
    json_object_object_add(extra, "orgs", orgs);
    for (size_t i = 0; i < c->norgs; i++)
        if (json_object_array_add(orgs, json_object_new_string(c->orgs[i])) != 0)
            goto done;
    json_object_object_add(extra, "scope",
                           json_object_new_string(dc_auth_scope_string(c->scopes, scopes, sizeof(scopes))));
    if (jwt_new(&jwt) != 0 || jwt_set_alg(jwt, JWT_ALG_HS256, key->key, (int)key->len) != 0 ||
        jwt_add_header(jwt, "kid", key->kid) != 0 || jwt_add_grant(jwt, "sub", c->sub) != 0 ||
        jwt_add_grant_int(jwt, "iat", (long)c->iat) != 0 ||
        jwt_add_grant_int(jwt, "exp", (long)c->exp) != 0 ||
        (a->cfg.issuer[0] && jwt_add_grant(jwt, "iss", a->cfg.issuer) != 0) ||
        (a->cfg.audience[0] && jwt_add_grant(jwt, "aud", a->cfg.audience) != 0) ||
        jwt_add_grants_json(jwt, json_object_to_json_string_ext(extra, JSON_C_TO_STRING_PLAIN)) != 0)
        goto done;
    *token = jwt_encode_str(jwt);
    rc = *token != NULL ? DC_OK : DC_ENOMEM;
done:
    if (rc != DC_OK)
        dc_err_set(err, rc, "out of memory");
    jwt_free(jwt);
    json_object_put(extra);
    return rc;
}
