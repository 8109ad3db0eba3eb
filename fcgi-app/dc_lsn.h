/*
 * PostgreSQL write-ahead log positions (LSNs), for read-your-writes on a
 * standby (dc_replica). PostgreSQL prints an LSN as two hexadecimal
 * numbers, the high and low 32 bits, "16/B374D848"; here it is a uint64_t
 * (0: none), and in Redis sixteen lower-case hexadecimal digits, so that
 * comparing two stored values as strings (in a script) compares them as
 * numbers.
 */
#ifndef DC_LSN_H
#define DC_LSN_H

#include <stddef.h>
#include <stdint.h>

#include "dc_core.h"

#define DC_LSN_HEX_LEN  16 /* as stored: "00000016b374d848" */
#define DC_LSN_TEXT_MAX 18 /* as PostgreSQL prints it, "FFFFFFFF/FFFFFFFF", and its NUL */

/*
 * Parses n bytes of s, an LSN as PostgreSQL prints it (pg_lsn's text: 1 to
 * 8 hex digits, '/', 1 to 8 hex digits, either case). DC_OK with *out, or
 * DC_EINVAL (anything else, nothing after it).
 */
int dc_lsn_parse(const char *s, size_t n, uint64_t *out) DC_WUR;

/*
 * Parses n bytes of s, an LSN as stored: exactly DC_LSN_HEX_LEN hex digits.
 * DC_OK with *out, or DC_EINVAL.
 */
int dc_lsn_parse_hex(const char *s, size_t n, uint64_t *out) DC_WUR;

/* Writes lsn as stored (DC_LSN_HEX_LEN lower-case digits and a NUL) into buf. */
void dc_lsn_hex(uint64_t lsn, char buf[DC_LSN_HEX_LEN + 1]);

/* Writes lsn as PostgreSQL prints it ("16/B374D848") into buf, for logs. */
void dc_lsn_text(uint64_t lsn, char buf[DC_LSN_TEXT_MAX]);

/* Whether a standby that has replayed up to replayed has replayed everything up to need. */
static inline int dc_lsn_reached(uint64_t replayed, uint64_t need)
{
    return replayed >= need;
}

#endif
