/*
 * Validators of dashboard answers (RFC 9110 8.8.3) and the If-None-Match
 * precondition (13.1.2).
 *
 * The validator of an answer is a hash of its data: its body without the
 * last member of the envelope, "generatedAt" (dc_view), the time of the
 * database read. So it changes exactly when the data does, and not when an
 * invalidation or a TTL made the workers read the same data again: a client
 * that revalidates after a write that changed nothing else than the
 * generation still gets 304. Two bodies that differ only in generatedAt
 * are equivalent but not byte-identical, which is what a weak validator
 * says (8.8.1): the ETag is sent as W/"<hex>", and If-None-Match compares
 * weakly anyway. It is computed once, when the body is read from the
 * database, and stored with the value in Redis (dc_cache): a hit does not
 * hash again.
 *
 * The hash is FNV-1a 64 (16 lower-case hex digits). It is not a defence
 * against anyone choosing bodies (they come from our own database and
 * views); for one resource, the chance that changed data keeps its
 * validator is 2^-64.
 */
#ifndef DC_ETAG_H
#define DC_ETAG_H

#include <stddef.h>

#define DC_ETAG_LEN 16 /* hex digits of a validator */

/*
 * Writes the validator of the answer body[0..len) into out: DC_ETAG_LEN
 * lower-case hex digits and a NUL; the FNV-1a 64 hash of the body, up to
 * its last member when that is ,"generatedAt":"..." at the very end.
 */
void dc_etag_of(const char *body, size_t len, char out[DC_ETAG_LEN + 1]);

/* Whether s[0..n) is a validator as dc_etag_of writes it (n == DC_ETAG_LEN, lower-case hex). */
int dc_etag_valid(const char *s, size_t n);

/*
 * Whether an If-None-Match field value (NUL-terminated; NULL: no field)
 * matches the validator etag of the current answer, so that the answer is
 * 304 Not Modified: "*", or a comma-separated list of entity-tags one of
 * which has etag as its opaque-tag, weak (W/"...") or not (the weak
 * comparison RFC 9110 asks for If-None-Match). Optional white space around
 * the members and empty members are allowed; a value that is not that
 * grammar matches nothing (a full answer is always correct).
 */
int dc_etag_none_match(const char *if_none_match, const char *etag);

#endif
