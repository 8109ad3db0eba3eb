/*
 * Cache keys, built only from a validated request (ids already checked and
 * folded to lower case by dc_request), so no key can hold a glob character
 * or another tenant's segment. Every key carries org:{<org>}, the
 * organization in braces: a Redis Cluster hash tag, so that all of an
 * organization's keys (its answers, generations and leases) hash to one
 * slot, as MGET and the scripts of dc_cache need (they are multi-key). The
 * parts of each key are columns of its row in dc_api.h; the keys are
 * (<org>, <unit>: lower-case UUIDs; the braces are literal):
 *
 *   dashboard:stats:org:{<org>}
 *   dashboard:units:status:org:{<org>}
 *   dashboard:alerts:count:org:{<org>}[:unit:<unit>]
 *   dashboard:temperature:trends:org:{<org>}:unit:<unit>:hours:<h>
 *   dashboard:devices:online:org:{<org>}
 *   dashboard:compliance:org:{<org>}
 *
 * (keys of versions before the tag, dashboard:stats:org:<org>, are never
 * read again and go with their TTL). Each organization has a generation
 * per cached query type, outside the dashboard: namespace so that no
 * invalidation pattern can match it:
 *
 *   dashcache:gen:<label>:org:{<org>}      label: stats, units, alerts, ...
 *
 * and one global epoch, read with every generation (invalidating everything
 * is one write), and the key the write probe of dc_trust writes:
 *
 *   dashcache:epoch
 *   dashcache:probe
 *
 * (in a Redis Cluster, one copy of each per hash slot, dashcache:epoch:{<t>}
 * with <t> a tag of that slot: dc_cache.h), and a short lease per answer
 * being filled (one query per cold key), in the slot of its answer (the
 * first {...} of a key is its hash tag):
 *
 *   dashcache:lease:<answer's key>
 *
 * and the WAL position (LSN) a standby must have replayed before it may
 * answer a miss of an organization, and the one of every organization
 * (dc_replica; the organization's key carries its hash tag, as the
 * generation keys of a Redis Cluster do):
 *
 *   dashcache:lsn:org:{<org>}
 *   dashcache:lsn:all
 */
#ifndef DC_KEY_H
#define DC_KEY_H

#include "dc_request.h"

#define DC_KEY_MAX 160

/*
 * Writes the key of req into buf (at least DC_KEY_MAX bytes). Returns its
 * length, or DC_DECLINED when the request is not cacheable (audit, health).
 */
int dc_key_build(const dc_request_t *req, char *buf, size_t cap);

/*
 * The inverse of dc_key_build: the request whose key is key[0..n), as the
 * router would make it for a GET without forceRefresh (the parameters a key
 * does not hold at their defaults). Strict: the ids must be lower-case
 * UUIDs, hours a number without leading zeros within the bounds of the
 * hours parameter, and nothing may follow; in short, DC_OK only for a key
 * that dc_key_build gives back byte for byte. DC_EINVAL otherwise (a key of
 * another version, of another program, of audit, or anything else); req
 * is then undefined.
 */
int dc_key_parse(const char *key, size_t n, dc_request_t *req) DC_WUR;

/*
 * Writes the generation key of query type q of org (a validated id) into
 * buf. Returns its length, or DC_ERROR when it does not fit or q is not a
 * cached query type.
 */
int dc_key_gen(const char *org_id, dc_qtype_t q, char *buf, size_t cap);

/* Writes the epoch key into buf. Its length, or DC_ERROR when cap is too small. */
int dc_key_epoch(char *buf, size_t cap);

/*
 * Writes the lease key of an answer's key (one of dc_key_build, klen
 * bytes), outside the dashboard: namespace, into buf. Its length, or
 * DC_ERROR when it does not fit.
 */
int dc_key_lease(const char *key, size_t klen, char *buf, size_t cap);

/*
 * Writes the LSN key of org (a validated id), or the global one when org is
 * NULL, into buf. Its length, or DC_ERROR when it does not fit.
 */
int dc_key_lsn(const char *org_id, char *buf, size_t cap);

/* Writes the write probe's key into buf. Its length, or DC_ERROR when cap is too small. */
int dc_key_probe(char *buf, size_t cap);

/*
 * In a Redis Cluster, the copy of the epoch, and of the probe key, in the
 * hash slot of tag (dc_slots_tag): dashcache:epoch:{<tag>},
 * dashcache:probe:{<tag>}. Their length, or DC_ERROR when cap is too small.
 */
int dc_key_epoch_tagged(const char *tag, char *buf, size_t cap);
int dc_key_probe_tagged(const char *tag, char *buf, size_t cap);

#endif
