/* JSON request bodies of the write endpoints. */
#include "dc_body.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <json.h>

#include "dc_endpoint.h"

#define MAX_DEPTH 8

int dc_body_is_json(const char *ct)
{
    size_t n = sizeof("application/json") - 1;

    if (ct == NULL || strncasecmp(ct, "application/json", n) != 0)
        return 0;
    return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

int dc_body_is_timestamp(const char *s)
{
    static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int              y, mo, d, h, mi, sec, oh, om;
    const char      *p;

    if (strlen(s) < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(s + 11, 2, &h) ||
        s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &sec))
        return 0;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || sec > 59)
        return 0;
    if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 0;
    p = s + 19;
    if (*p == '.') {
        int k = 0;
        for (p++; isdigit((unsigned char)*p); p++)
            k++;
        if (k < 1 || k > 6)
            return 0;
    }
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
        return 1;
    if ((*p == '+' || *p == '-') && digits(p + 1, 2, &oh) && p[3] == ':' && digits(p + 4, 2, &om) &&
        p[6] == '\0')
        return oh <= 23 && om <= 59;
    return 0;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int y, int m, int d)
{
    int64_t  era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (unsigned)((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1);
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

int dc_body_timestamp_epoch(const char *s, int64_t *out)
{
    int         y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, oh = 0, om = 0;
    const char *p = s + 19;

    if (!dc_body_is_timestamp(s))
        return DC_EINVAL;
    digits(s, 4, &y), digits(s + 5, 2, &mo), digits(s + 8, 2, &d);
    digits(s + 11, 2, &h), digits(s + 14, 2, &mi), digits(s + 17, 2, &sec);
    if (*p == '.')
        for (p++; isdigit((unsigned char)*p); p++)
            ;
    if (*p == '+' || *p == '-') {
        digits(p + 1, 2, &oh), digits(p + 4, 2, &om);
        if (*p == '-')
            oh = -oh, om = -om;
    }
    *out = days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + sec -
           ((int64_t)oh * 3600 + (int64_t)om * 60);
    return DC_OK;
}

/*
 * The strict check that runs before json-c sees a body (RFC 8259 and no
 * more): json-c keeps the last of duplicate keys silently, decodes \u0000
 * into a string that C then cuts short, and accepts comments, single
 * quotes and trailing commas in its default mode; each of these lets two
 * readers of one body disagree on what it says. Keys are decoded before
 * they are compared ("a" and "\u0061" are the same key). The keys of the
 * objects open at one time live in a fixed buffer, so the check allocates
 * nothing.
 */
#define KEYS_CAP    4096
#define MEMBERS_MAX 64
#define NUMBER_MAX  40
#define PATH_CAP    96

typedef struct {
    const char *p, *start, *end;
    char        keys[KEYS_CAP]; /* NUL-terminated decoded keys of the open objects */
    size_t      keys_len;
    char        path[PATH_CAP]; /* where the scanner is: readings[2].temperature */
    size_t      path_len;
    const char *why; /* static; NULL while fine */
    char        detail[64];
} scan_t;

static int scan_value(scan_t *s, int depth);

static int scan_fail(scan_t *s, const char *why)
{
    if (s->why == NULL)
        s->why = why;
    return -1;
}

static void skip_ws(scan_t *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

/* Appends ".key" (or "key" at the top) or "[index]" to the path, truncated to fit. */
static void path_push(scan_t *s, const char *key, size_t index)
{
    char  *at = s->path + s->path_len;
    size_t cap = PATH_CAP - s->path_len;
    int    n = key != NULL ? snprintf(at, cap, "%s%.40s", s->path_len ? "." : "", key)
                           : snprintf(at, cap, "[%zu]", index);

    if (n > 0)
        s->path_len = s->path_len + (size_t)n < PATH_CAP ? s->path_len + (size_t)n : PATH_CAP - 1;
}

static void path_pop(scan_t *s, size_t len)
{
    s->path_len = len;
    s->path[len] = '\0';
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return 0;
    }
    *out = v;
    return 1;
}

/* Appends code point cp as UTF-8 to the key buffer when keys is set. */
static int key_put(scan_t *s, int keys, unsigned cp)
{
    unsigned char u[4];
    size_t        n;

    if (!keys)
        return 0;
    if (cp < 0x80) {
        u[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (unsigned char)(0xC0 | (cp >> 6));
        u[1] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (unsigned char)(0xE0 | (cp >> 12));
        u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (unsigned char)(0xF0 | (cp >> 18));
        u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    if (s->keys_len + n + 1 > KEYS_CAP)
        return scan_fail(s, "the keys of the open objects are longer than 4 KiB");
    memcpy(s->keys + s->keys_len, u, n);
    s->keys_len += n;
    return 0;
}

/* One UTF-8 sequence at s->p (well formed: no overlong forms, surrogates or beyond U+10FFFF). */
static int utf8_char(scan_t *s, unsigned *cp)
{
    const unsigned char *u = (const unsigned char *)s->p;
    size_t               left = (size_t)(s->end - s->p), n;
    unsigned             v, min;

    if (u[0] < 0x80) {
        *cp = u[0];
        s->p++;
        return 0;
    }
    if ((u[0] & 0xE0) == 0xC0) {
        n = 2, v = u[0] & 0x1Fu, min = 0x80;
    } else if ((u[0] & 0xF0) == 0xE0) {
        n = 3, v = u[0] & 0x0Fu, min = 0x800;
    } else if ((u[0] & 0xF8) == 0xF0) {
        n = 4, v = u[0] & 0x07u, min = 0x10000;
    } else {
        return scan_fail(s, "a string is not valid UTF-8");
    }
    if (left < n)
        return scan_fail(s, "a string is not valid UTF-8");
    for (size_t i = 1; i < n; i++) {
        if ((u[i] & 0xC0) != 0x80)
            return scan_fail(s, "a string is not valid UTF-8");
        v = (v << 6) | (u[i] & 0x3Fu);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return scan_fail(s, "a string is not valid UTF-8");
    *cp = v;
    s->p += n;
    return 0;
}

/* A string at s->p (on the quote); its decoded text goes to the key buffer when keys is set. */
static int scan_string(scan_t *s, int keys)
{
    if (s->p >= s->end || *s->p != '"')
        return scan_fail(s, s->p < s->end && *s->p == '\'' ? "strings take double quotes"
                                                           : "a string was expected");
    s->p++;
    while (s->p < s->end && *s->p != '"') {
        unsigned cp;
        if ((unsigned char)*s->p < 0x20)
            return scan_fail(s, "a string holds a raw control character; escape it");
        if (*s->p != '\\') {
            if (utf8_char(s, &cp) != 0 || key_put(s, keys, cp) != 0)
                return -1;
            continue;
        }
        if (s->end - s->p < 2)
            break;
        switch (s->p[1]) {
        case '"':
        case '\\':
        case '/':
            cp = (unsigned char)s->p[1];
            break;
        case 'b':
            cp = '\b';
            break;
        case 'f':
            cp = '\f';
            break;
        case 'n':
            cp = '\n';
            break;
        case 'r':
            cp = '\r';
            break;
        case 't':
            cp = '\t';
            break;
        case 'u':
            if (s->end - s->p < 6 || !hex4(s->p + 2, &cp))
                return scan_fail(s, "a \\u escape needs four hex digits");
            if (cp == 0)
                return scan_fail(s, "a string holds \\u0000");
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return scan_fail(s, "a string holds a lone low surrogate");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (s->end - s->p < 12 || s->p[6] != '\\' || s->p[7] != 'u' || !hex4(s->p + 8, &lo) ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    return scan_fail(s, "a string holds a lone high surrogate");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                s->p += 6;
            }
            s->p += 4;
            break;
        default:
            return scan_fail(s, "a string holds an unknown escape");
        }
        s->p += 2;
        if (key_put(s, keys, cp) != 0)
            return -1;
    }
    if (s->p >= s->end)
        return scan_fail(s, "a string is not closed");
    s->p++;
    return 0;
}

static int scan_number(scan_t *s)
{
    const char *b = s->p;
    char        tmp[NUMBER_MAX + 1];
    double      v;

    if (s->p < s->end && *s->p == '-')
        s->p++;
    if (s->p < s->end && *s->p == '0')
        s->p++;
    else if (s->p < s->end && *s->p >= '1' && *s->p <= '9')
        while (s->p < s->end && isdigit((unsigned char)*s->p))
            s->p++;
    else
        return scan_fail(s, "a value was expected (numbers, strings, true, false, null, objects, arrays)");
    if (s->p < s->end && *s->p == '.') {
        if (++s->p >= s->end || !isdigit((unsigned char)*s->p))
            return scan_fail(s, "a number has no digits after its '.'");
        while (s->p < s->end && isdigit((unsigned char)*s->p))
            s->p++;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (s->p >= s->end || !isdigit((unsigned char)*s->p))
            return scan_fail(s, "a number has no digits in its exponent");
        while (s->p < s->end && isdigit((unsigned char)*s->p))
            s->p++;
    }
    if (s->p - b > NUMBER_MAX)
        return scan_fail(s, "a number has more than 40 characters");
    memcpy(tmp, b, (size_t)(s->p - b));
    tmp[s->p - b] = '\0';
    v = strtod(tmp, NULL);
    if (!isfinite(v))
        return scan_fail(s, "a number is out of range");
    return 0;
}

static int scan_object(scan_t *s, int depth)
{
    size_t keys0 = s->keys_len, path0 = s->path_len;
    int    members = 0;

    s->p++; /* { */
    skip_ws(s);
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        return 0;
    }
    for (;;) {
        size_t      k = s->keys_len;
        const char *key;

        skip_ws(s);
        if (s->p < s->end && *s->p == '}')
            return scan_fail(s, "an object ends with a trailing comma");
        if (++members > MEMBERS_MAX)
            return scan_fail(s, "an object has more than 64 members");
        if (scan_string(s, 1) != 0)
            return -1;
        s->keys[s->keys_len++] = '\0';
        key = s->keys + k;
        for (const char *o = s->keys + keys0; o < key; o += strlen(o) + 1)
            if (strcmp(o, key) == 0) {
                snprintf(s->detail, sizeof(s->detail), "duplicate key \"%.40s\"", key);
                return scan_fail(s, s->detail);
            }
        path_push(s, key, 0);
        skip_ws(s);
        if (s->p >= s->end || *s->p != ':')
            return scan_fail(s, "a ':' was expected after a key");
        s->p++;
        if (scan_value(s, depth) != 0)
            return -1;
        path_pop(s, path0);
        skip_ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        if (s->p < s->end && *s->p == '}') {
            s->p++;
            s->keys_len = keys0;
            return 0;
        }
        return scan_fail(s, "a ',' or '}' was expected");
    }
}

static int scan_array(scan_t *s, int depth)
{
    size_t path0 = s->path_len;

    s->p++; /* [ */
    skip_ws(s);
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        return 0;
    }
    for (size_t i = 0;; i++) {
        skip_ws(s);
        if (s->p < s->end && *s->p == ']')
            return scan_fail(s, "an array ends with a trailing comma");
        path_push(s, NULL, i);
        if (scan_value(s, depth) != 0)
            return -1;
        path_pop(s, path0);
        skip_ws(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            continue;
        }
        if (s->p < s->end && *s->p == ']') {
            s->p++;
            return 0;
        }
        return scan_fail(s, "a ',' or ']' was expected");
    }
}

static int literal(scan_t *s, const char *word)
{
    size_t n = strlen(word);

    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return scan_fail(s, "a value was expected (numbers, strings, true, false, null, objects, arrays)");
    s->p += n;
    return 0;
}

static int scan_value(scan_t *s, int depth)
{
    skip_ws(s);
    if (s->p >= s->end)
        return scan_fail(s, "the body ends too early");
    switch (*s->p) {
    case '{':
    case '[':
        if (depth >= MAX_DEPTH)
            return scan_fail(s, "the body nests deeper than 8 levels");
        return *s->p == '{' ? scan_object(s, depth + 1) : scan_array(s, depth + 1);
    case '"':
        return scan_string(s, 0);
    case 't':
        return literal(s, "true");
    case 'f':
        return literal(s, "false");
    case 'n':
        return literal(s, "null");
    case '/':
        return scan_fail(s, "comments are not JSON");
    case '\'':
        return scan_fail(s, "strings take double quotes");
    default:
        return scan_number(s);
    }
}

int dc_body_check_json(const char *body, size_t len, const char *root, dc_error_t *err)
{
    scan_t s;

    memset(&s, 0, sizeof(s));
    s.p = s.start = body;
    s.end = body + len;
    skip_ws(&s);
    if (root != NULL && s.p < s.end && *s.p == '[')
        path_push(&s, root, 0);
    if (scan_value(&s, 0) == 0) {
        skip_ws(&s);
        if (s.p == s.end)
            return DC_OK;
        scan_fail(&s, "there is data after the JSON value");
    }
    if (s.path_len > 0)
        return dc_error_set(err, 400, "invalid_json",
                            "the request body is not strict JSON at %s: %s (byte %zu)", s.path, s.why,
                            (size_t)(s.p - s.start));
    return dc_error_set(err, 400, "invalid_json", "the request body is not strict JSON: %s (byte %zu)", s.why,
                        (size_t)(s.p - s.start));
}

/*
 * Parses a whole JSON text, strictly (dc_body_check_json, then json-c in
 * strict mode); NULL with err set when it is not one. root names a top-level
 * array in error messages.
 */
static json_object *parse(const char *body, size_t len, const char *root, dc_error_t *err)
{
    json_tokener *tok;
    json_object  *o;
    size_t        used;

    if (len == 0) {
        dc_error_set(err, 400, "invalid_json", "the request body is empty; send a JSON object");
        return NULL;
    }
    if (memchr(body, '\0', len) != NULL) {
        dc_error_set(err, 400, "invalid_json", "the request body contains a NUL byte");
        return NULL;
    }
    if (dc_body_check_json(body, len, root, err) != DC_OK)
        return NULL;
    tok = json_tokener_new_ex(MAX_DEPTH);
    if (tok == NULL) {
        dc_error_set(err, 500, "out_of_memory", "out of memory");
        return NULL;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    o = json_tokener_parse_ex(tok, body, (int)len);
    used = json_tokener_get_parse_end(tok);
    if (o == NULL || json_tokener_get_error(tok) != json_tokener_success) {
        enum json_tokener_error e = json_tokener_get_error(tok);
        dc_error_set(err, 400, "invalid_json", "the request body is not valid JSON: %s",
                     e == json_tokener_continue || e == json_tokener_success ? "it ends too early"
                                                                             : json_tokener_error_desc(e));
        json_object_put(o);
        o = NULL;
    } else {
        for (; used < len && isspace((unsigned char)body[used]); used++)
            ;
        if (used != len) {
            dc_error_set(err, 400, "invalid_json", "the request body has data after the JSON value");
            json_object_put(o);
            o = NULL;
        }
    }
    json_tokener_free(tok);
    return o;
}

static int fail_at(dc_error_t *err, int index, const char *fmt, ...) DC_PRINTF(3, 4);

static int fail_at(dc_error_t *err, int index, const char *fmt, ...)
{
    char    msg[160];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (index >= 0)
        dc_error_set(err, 400, "invalid_reading", "readings[%d]: %s", index, msg);
    else
        dc_error_set(err, 400, "invalid_body", "%s", msg);
    err->index = index;
    return DC_EINVAL;
}

static int get_uuid(json_object *o, const char *field, char out[DC_UUID_LEN + 1], int index, dc_error_t *err)
{
    json_object *v;
    const char  *s;

    if (!json_object_object_get_ex(o, field, &v) || !json_object_is_type(v, json_type_string))
        return fail_at(err, index, "%s is required and must be a UUID string", field);
    s = json_object_get_string(v);
    if (dc_request_parse_uuid(s, (size_t)json_object_get_string_len(v), out) != DC_OK)
        return fail_at(err, index, "%s must be a UUID", field);
    return DC_OK;
}

static int reading(json_object *o, int index, const dc_body_limits_t *lim, dc_buf_t *devices, dc_buf_t *temps,
                   dc_buf_t *times, dc_error_t *err)
{
    char         id[DC_UUID_LEN + 1];
    json_object *v;
    double       t;
    const char  *sep = index > 0 ? "," : "";

    if (!json_object_is_type(o, json_type_object))
        return fail_at(err, index, "%s", "each reading must be a JSON object");
    if (get_uuid(o, "deviceId", id, index, err) != DC_OK)
        return DC_EINVAL;
    if (!json_object_object_get_ex(o, "temperature", &v) ||
        !(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)))
        return fail_at(err, index, "%s is required and must be a number", "temperature");
    t = json_object_get_double(v);
    if (!isfinite(t) || t < DC_TEMP_MIN || t > DC_TEMP_MAX)
        return fail_at(err, index, "%s must be between -100 and 100", "temperature");

    if (dc_buf_printf(devices, "%s%s", sep, id) != DC_OK || dc_buf_printf(temps, "%s%.2f", sep, t) != DC_OK)
        goto oom;
    if (json_object_object_get_ex(o, "recordedAt", &v) && !json_object_is_type(v, json_type_null)) {
        int64_t at;
        if (!json_object_is_type(v, json_type_string) ||
            dc_body_timestamp_epoch(json_object_get_string(v), &at) != DC_OK)
            return fail_at(err, index, "%s must be an ISO 8601 date-time such as 2026-11-21T15:04:05Z",
                           "recordedAt");
        /* a clock far ahead would make this reading a unit's latest state for ever */
        if (lim != NULL && lim->now > 0 && at > lim->now + lim->max_future_s)
            return fail_at(err, index, "recordedAt is more than %d s ahead of the server clock (%s)",
                           lim->max_future_s, "INGEST_MAX_FUTURE_SECONDS");
        if (lim != NULL && lim->now > 0 && at < lim->now - lim->retention_s)
            return fail_at(err, index, "recordedAt is older than the %d days kept (%s)",
                           lim->retention_s / 86400, "READINGS_RETENTION_DAYS");
        if (dc_buf_printf(times, "%s\"%s\"", sep, json_object_get_string(v)) != DC_OK)
            goto oom;
    } else if (dc_buf_printf(times, "%sNULL", sep) != DC_OK) {
        goto oom;
    }
    return DC_OK;
oom:
    dc_error_set(err, 500, "out_of_memory", "out of memory");
    return DC_ENOMEM;
}

static int ingest(const char *body, size_t len, const dc_body_limits_t *lim, dc_buf_t *devices,
                  dc_buf_t *temps, dc_buf_t *times, size_t *n, dc_error_t *err)
{
    json_object *root = parse(body, len, "readings", err);
    int          rc = DC_OK;

    *n = 0;
    if (root == NULL)
        return DC_EINVAL;
    if (dc_buf_append_str(devices, "{") != DC_OK || dc_buf_append_str(temps, "{") != DC_OK ||
        dc_buf_append_str(times, "{") != DC_OK) {
        rc = dc_error_set(err, 500, "out_of_memory", "out of memory");
        goto done;
    }
    if (json_object_is_type(root, json_type_array)) {
        size_t count = json_object_array_length(root);
        if (count == 0 || count > DC_INGEST_MAX) {
            rc = dc_error_set(err, count == 0 ? 400 : 413, "invalid_body",
                              "send between 1 and %d readings (got %zu)", DC_INGEST_MAX, count);
            goto done;
        }
        for (size_t i = 0; i < count && rc == DC_OK; i++)
            rc = reading(json_object_array_get_idx(root, i), (int)i, lim, devices, temps, times, err);
        *n = count;
    } else if (json_object_is_type(root, json_type_object)) {
        rc = reading(root, 0, lim, devices, temps, times, err);
        *n = 1;
    } else {
        rc = dc_error_set(err, 400, "invalid_body", "send a reading object or an array of them");
    }
    if (rc == DC_OK && (dc_buf_append_str(devices, "}") != DC_OK || dc_buf_append_str(temps, "}") != DC_OK ||
                        dc_buf_append_str(times, "}") != DC_OK))
        rc = dc_error_set(err, 500, "out_of_memory", "out of memory");
done:
    json_object_put(root);
    return rc == DC_OK ? DC_OK : DC_EINVAL;
}

int dc_body_ingest(const char *body, size_t len, dc_buf_t *devices, dc_buf_t *temps, dc_buf_t *times,
                   size_t *n, dc_error_t *err)
{
    return ingest(body, len, NULL, devices, temps, times, n, err);
}

static int get_text(json_object *o, const char *field, char *out, size_t cap, int word, dc_error_t *err)
{
    json_object *v;
    const char  *s;
    size_t       n;

    if (!json_object_object_get_ex(o, field, &v) || !json_object_is_type(v, json_type_string))
        return dc_error_set(err, 400, "invalid_body", "%s is required and must be a string", field);
    s = json_object_get_string(v);
    n = (size_t)json_object_get_string_len(v);
    if (n == 0 || n >= cap)
        return dc_error_set(err, 400, "invalid_body", "%s must have 1 to %zu characters", field, cap - 1);
    for (size_t i = 0; word && i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return dc_error_set(err, 400, "invalid_body", "%s may hold only a-z, 0-9, '_', '.' and '-'",
                                field);
    }
    memcpy(out, s, n);
    out[n] = '\0';
    return DC_OK;
}

int dc_body_alert(const char *body, size_t len, dc_alert_body_t *out, dc_error_t *err)
{
    json_object *root = parse(body, len, NULL, err);
    int          rc;

    if (root == NULL)
        return DC_EINVAL;
    if (!json_object_is_type(root, json_type_object))
        rc = dc_error_set(err, 400, "invalid_body", "send a JSON object {\"unitId\",\"kind\",\"message\"}");
    else if ((rc = get_uuid(root, "unitId", out->unit_id, -1, err)) == DC_OK &&
             (rc = get_text(root, "kind", out->kind, sizeof(out->kind), 1, err)) == DC_OK)
        rc = get_text(root, "message", out->message, sizeof(out->message), 0, err);
    json_object_put(root);
    return rc == DC_OK ? DC_OK : DC_EINVAL;
}

int dc_body_device_status(const char *body, size_t len, int *online, dc_error_t *err)
{
    json_object *root = parse(body, len, NULL, err), *v;
    int          rc = DC_OK;

    if (root == NULL)
        return DC_EINVAL;
    if (!json_object_is_type(root, json_type_object) || !json_object_object_get_ex(root, "online", &v) ||
        !json_object_is_type(v, json_type_boolean))
        rc = dc_error_set(err, 400, "invalid_body", "send {\"online\": true} or {\"online\": false}");
    else
        *online = json_object_get_boolean(v);
    json_object_put(root);
    return rc;
}

int dc_body_empty(const char *body, size_t len, dc_error_t *err)
{
    json_object *root;
    int          rc = DC_OK;
    size_t       i;

    for (i = 0; i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\n' || body[i] == '\r'); i++)
        ;
    if (i == len)
        return DC_OK;
    if ((root = parse(body, len, NULL, err)) == NULL)
        return DC_EINVAL;
    if (!json_object_is_type(root, json_type_object) || json_object_object_length(root) != 0)
        rc = dc_error_set(err, 400, "invalid_body", "this endpoint takes no body, or {}");
    json_object_put(root);
    return rc;
}

void dc_body_reset(dc_write_t *w)
{
    dc_buf_reset(&w->devices);
    dc_buf_reset(&w->temps);
    dc_buf_reset(&w->times);
    w->n = 0;
    w->online = 0;
    memset(&w->alert, 0, sizeof(w->alert));
}

void dc_body_free(dc_write_t *w)
{
    dc_buf_free(&w->devices);
    dc_buf_free(&w->temps);
    dc_buf_free(&w->times);
}

int dc_body_parse(const dc_request_t *req, const char *content_type, const char *body, size_t len,
                  dc_write_t *w, dc_error_t *err)
{
    const dc_endpoint_t *ep = dc_endpoint_write(req->wtype);

    dc_body_reset(w);
    /*
     * Every POST, the resolve too: a browser sends a cross-site form
     * (urlencoded, multipart, text/plain) without asking, but a JSON
     * Content-Type only after a CORS preflight that nobody answers.
     */
    if (!dc_body_is_json(content_type)) {
        dc_error_set(err, 415, "unsupported_media_type", "send the body as Content-Type: application/json");
        return DC_EINVAL;
    }
    /* nginx bounds each location the same way; this holds without it (spawn-fcgi, another proxy) */
    if (ep != NULL && (long)len > ep->body_max)
        return dc_error_set(err, 413, "payload_too_large",
                            "the body is over %ld bytes, the most this endpoint takes", ep->body_max);
    switch (req->wtype) {
    case DC_W_ALERT_RESOLVE:
        return dc_body_empty(body, len, err);
    case DC_W_INGEST:
        return ingest(body, len, &w->limits, &w->devices, &w->temps, &w->times, &w->n, err);
    case DC_W_ALERT_CREATE:
        return dc_body_alert(body, len, &w->alert, err);
    case DC_W_DEVICE_STATUS:
        return dc_body_device_status(body, len, &w->online, err);
    default:
        return dc_error_set(err, 404, "not_found", "no such endpoint");
    }
}
