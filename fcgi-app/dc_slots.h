/*
 * Redis Cluster's slot map, for dc_cache: hiredis 0.14 has no cluster
 * support and Debian ships no cluster library for it, so this module holds
 * the little a cluster client needs, as pure functions that are unit-tested
 * and fuzzed (no I/O here):
 *
 * - the hash slot of a key (CRC16/XMODEM mod 16384 of the key, or of its
 *   hash tag: what lies between the first '{' and the first '}' after it,
 *   when that is not empty), as CLUSTER KEYSLOT computes it;
 * - the map slot -> primary, read from a CLUSTER SLOTS reply (taken at
 *   start and after each MOVED);
 * - the redirections a node answers with, "MOVED <slot> <host>:<port>"
 *   and "ASK <slot> <host>:<port>";
 * - a short tag per slot (dc_slots_tag): "{<tag>}" puts a key into that
 *   slot, for what dashcache keeps once per slot (the epoch, the probe).
 */
#ifndef DC_SLOTS_H
#define DC_SLOTS_H

#include <stddef.h>
#include <stdint.h>

#include "dc_core.h"

struct redisReply;

#define DC_SLOTS           16384
#define DC_SLOTS_NODES_MAX 64 /* primaries a map holds */
#define DC_SLOTS_HOST_MAX  64 /* a host name or address with its NUL */
#define DC_SLOTS_TAG_MAX   8  /* a slot's tag with its NUL (5 hex digits at most) */

typedef struct {
    char host[DC_SLOTS_HOST_MAX];
    int  port;
} dc_slots_addr_t;

/* Which primary serves each slot. A plain struct of fixed size: copy it, zero it. */
typedef struct {
    uint8_t         owner[DC_SLOTS]; /* index into nodes + 1; 0: no node serves the slot */
    dc_slots_addr_t nodes[DC_SLOTS_NODES_MAX];
    int             nnodes;
} dc_slots_map_t;

/* CRC16/XMODEM of s[0..n) (CRC16 of "123456789" is 0x31C3). */
uint16_t dc_slots_crc16(const char *s, size_t n);

/* The hash slot of key[0..n), hash tags included. */
unsigned dc_slots_keyslot(const char *key, size_t n);

/*
 * Reads a CLUSTER SLOTS reply r into map (which it resets first):
 * [[start, end, [host, port, ...], replicas...], ...]. A primary whose host
 * is empty (a node that does not know its own address) is at asked_host,
 * the node that answered. DC_OK; DC_EINVAL when r is not such a reply
 * (then map is empty): wrong types, a slot out of range or a range that
 * ends before it starts, a port outside 1..65535, a host too long or
 * holding bytes no host name has, more than DC_SLOTS_NODES_MAX primaries.
 */
int dc_slots_parse(const struct redisReply *r, const char *asked_host, dc_slots_map_t *map) DC_WUR;

/* The index into map->nodes of the primary of slot, or -1 when none is known. */
int dc_slots_node_of(const dc_slots_map_t *map, unsigned slot);

/*
 * The index of the node at host:port in map, added (serving no slot) when
 * it is not there yet: the target of an ASK. -1 when the map is full or
 * host does not fit.
 */
int dc_slots_node_add(dc_slots_map_t *map, const char *host, int port);

typedef enum {
    DC_REDIRECT_MOVED = 1, /* the slot lives there now: refresh the map */
    DC_REDIRECT_ASK,       /* this once, there, after ASKING */
} dc_redirect_kind_t;

typedef struct {
    dc_redirect_kind_t kind;
    unsigned           slot;
    dc_slots_addr_t    to;
} dc_redirect_t;

/*
 * Reads an error reply's text s[0..n): DC_OK with *out for
 * "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>" (the host may
 * be an IPv6 address: the port follows the last ':'); DC_DECLINED for any
 * other error; DC_EINVAL for a MOVED or ASK that is malformed.
 */
int dc_slots_redirect(const char *s, size_t n, dc_redirect_t *out) DC_WUR;

/*
 * A short tag whose hash slot is slot (< DC_SLOTS): "dashcache:epoch:{<tag>}"
 * lives in slot. The table is computed at the first call (a few
 * milliseconds; call it once before fork so that the workers share it).
 */
const char *dc_slots_tag(unsigned slot);

#endif
