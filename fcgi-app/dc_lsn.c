/* LSNs: PostgreSQL's text, the stored form, and their comparison. */
#include "dc_lsn.h"

#include <stdio.h>

/* 1 to max hex digits at s[0 .. n) into *out; the count taken, or 0 when none or too many. */
static size_t take_hex(const char *s, size_t n, size_t max, uint64_t *out)
{
    size_t i = 0;

    *out = 0;
    for (; i < n && dc_hex_digit(s[i]) >= 0; i++) {
        if (i == max)
            return 0;
        *out = *out << 4 | (uint64_t)dc_hex_digit(s[i]);
    }
    return i;
}

int dc_lsn_parse(const char *s, size_t n, uint64_t *out)
{
    uint64_t hi, lo;
    size_t   a, b;

    a = take_hex(s, n, 8, &hi);
    if (a == 0 || a == n || s[a] != '/')
        return DC_EINVAL;
    b = take_hex(s + a + 1, n - a - 1, 8, &lo);
    if (b == 0 || a + 1 + b != n)
        return DC_EINVAL;
    *out = hi << 32 | lo;
    return DC_OK;
}

int dc_lsn_parse_hex(const char *s, size_t n, uint64_t *out)
{
    uint64_t v;

    if (n != DC_LSN_HEX_LEN || take_hex(s, n, DC_LSN_HEX_LEN, &v) != n)
        return DC_EINVAL;
    *out = v;
    return DC_OK;
}

void dc_lsn_hex(uint64_t lsn, char buf[DC_LSN_HEX_LEN + 1])
{
    snprintf(buf, DC_LSN_HEX_LEN + 1, "%016llx", (unsigned long long)lsn);
}

void dc_lsn_text(uint64_t lsn, char buf[DC_LSN_TEXT_MAX])
{
    snprintf(buf, DC_LSN_TEXT_MAX, "%X/%X", (unsigned)(lsn >> 32), (unsigned)(lsn & 0xffffffffu));
}
