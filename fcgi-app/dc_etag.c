/* Validators of dashboard answers and the If-None-Match precondition. */
#include "dc_etag.h"

#include <stdint.h>
#include <string.h>

#define GENERATED_AT ",\"generatedAt\":\""

/*
 * The length of body without its last member when that is the envelope's
 * ,"generatedAt":"<time>"} (dc_view writes it last), else len. Inside a
 * JSON string a quote is escaped, so the bytes ,"generatedAt":" are a
 * member, and the last of them, followed by a string without a quote and
 * the closing brace, is the envelope's.
 */
static size_t data_len(const char *body, size_t len)
{
    const size_t n = sizeof(GENERATED_AT) - 1;

    if (len < n + 2 || body[len - 1] != '}' || body[len - 2] != '"')
        return len;
    /* from the closing quote of the time back to its opening one, the last byte of GENERATED_AT */
    for (size_t q = len - 2; q-- > 0;) {
        if (body[q] != '"')
            continue;
        if (q + 1 < n || memcmp(body + q + 1 - n, GENERATED_AT, n) != 0)
            return len;
        return q + 1 - n;
    }
    return len;
}

void dc_etag_of(const char *body, size_t len, char out[DC_ETAG_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t          h = 0xcbf29ce484222325u; /* FNV-1a 64: offset basis, then prime */

    len = data_len(body, len);
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)body[i]) * 0x100000001b3u;
    for (int i = DC_ETAG_LEN - 1; i >= 0; i--, h >>= 4)
        out[i] = hex[h & 0xf];
    out[DC_ETAG_LEN] = '\0';
}

int dc_etag_valid(const char *s, size_t n)
{
    if (n != DC_ETAG_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static const char *skip_ows(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* etagc = %x21 / %x23-7E / obs-text: anything visible but DQUOTE and DEL */
static int is_etagc(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c != 0x7f);
}

int dc_etag_none_match(const char *if_none_match, const char *etag)
{
    const char *p;
    int         matched = 0;

    if (if_none_match == NULL)
        return 0;
    p = skip_ows(if_none_match);
    if (*p == '*')
        return *skip_ows(p + 1) == '\0';
    /* #entity-tag: members separated by commas, empty ones allowed (RFC 9110 5.6.1) */
    for (;;) {
        const char *tag;

        p = skip_ows(p);
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == '\0')
            return matched;
        if (p[0] == 'W' && p[1] == '/')
            p += 2;
        if (*p != '"')
            return 0;
        tag = ++p;
        while (is_etagc((unsigned char)*p))
            p++;
        if (*p != '"')
            return 0;
        if ((size_t)(p - tag) == DC_ETAG_LEN && memcmp(tag, etag, DC_ETAG_LEN) == 0)
            matched = 1;
        p = skip_ows(p + 1);
        if (*p != ',' && *p != '\0')
            return 0;
    }
}
