/* Redis Cluster hash slots, CLUSTER SLOTS replies and redirections. */
#include "dc_slots.h"

#include <stdio.h>
#include <string.h>

#include <hiredis.h>

/* CRC16/XMODEM (polynomial 0x1021, initial 0), a byte at a time. */
uint16_t dc_slots_crc16(const char *s, size_t n)
{
    uint16_t crc = 0;

    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)((unsigned char)s[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

unsigned dc_slots_keyslot(const char *key, size_t n)
{
    const char *open = memchr(key, '{', n), *close;

    /* the hash tag: between the first '{' and the first '}' after it, when not empty */
    if (open != NULL) {
        close = memchr(open + 1, '}', n - (size_t)(open + 1 - key));
        if (close != NULL && close > open + 1)
            return dc_slots_crc16(open + 1, (size_t)(close - open - 1)) & (DC_SLOTS - 1);
    }
    return dc_slots_crc16(key, n) & (DC_SLOTS - 1);
}

/* Letters, digits, '.', '-', '_' and ':' (an IPv6 address): a host that can be connected to. */
static int host_ok(const char *s, size_t n)
{
    if (n == 0 || n >= DC_SLOTS_HOST_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '-' || c == '_' || c == ':'))
            return 0;
    }
    return 1;
}

static int find_node(const dc_slots_map_t *map, const char *host, int port)
{
    for (int i = 0; i < map->nnodes; i++)
        if (map->nodes[i].port == port && strcmp(map->nodes[i].host, host) == 0)
            return i;
    return -1;
}

int dc_slots_node_add(dc_slots_map_t *map, const char *host, int port)
{
    int i = find_node(map, host, port);

    if (i >= 0)
        return i;
    if (map->nnodes >= DC_SLOTS_NODES_MAX || !host_ok(host, strlen(host)) || port < 1 || port > 65535)
        return -1;
    i = map->nnodes++;
    memcpy(map->nodes[i].host, host, strlen(host) + 1);
    map->nodes[i].port = port;
    return i;
}

int dc_slots_node_of(const dc_slots_map_t *map, unsigned slot)
{
    return slot < DC_SLOTS && map->owner[slot] != 0 ? map->owner[slot] - 1 : -1;
}

/* One entry [start, end, [host, port, ...], ...] into map. */
static int parse_range(const redisReply *e, const char *asked_host, dc_slots_map_t *map)
{
    const redisReply *p;
    const char       *host;
    size_t            hlen;
    char              h[DC_SLOTS_HOST_MAX];
    int               node;

    if (e == NULL || e->type != REDIS_REPLY_ARRAY || e->elements < 3 || e->element[0] == NULL ||
        e->element[1] == NULL || e->element[2] == NULL || e->element[0]->type != REDIS_REPLY_INTEGER ||
        e->element[1]->type != REDIS_REPLY_INTEGER || e->element[2]->type != REDIS_REPLY_ARRAY)
        return DC_EINVAL;
    if (e->element[0]->integer < 0 || e->element[1]->integer >= DC_SLOTS ||
        e->element[1]->integer < e->element[0]->integer)
        return DC_EINVAL;
    p = e->element[2];
    if (p->elements < 2 || p->element[0] == NULL || p->element[1] == NULL ||
        p->element[0]->type != REDIS_REPLY_STRING || p->element[1]->type != REDIS_REPLY_INTEGER ||
        p->element[1]->integer < 1 || p->element[1]->integer > 65535)
        return DC_EINVAL;
    host = p->element[0]->str;
    hlen = p->element[0]->len;
    if (hlen == 0 && asked_host != NULL) {
        host = asked_host;
        hlen = strlen(asked_host);
    }
    if (!host_ok(host, hlen))
        return DC_EINVAL;
    memcpy(h, host, hlen);
    h[hlen] = '\0';
    node = dc_slots_node_add(map, h, (int)p->element[1]->integer);
    if (node < 0)
        return DC_EINVAL;
    for (long long s = e->element[0]->integer; s <= e->element[1]->integer; s++)
        map->owner[s] = (uint8_t)(node + 1);
    return DC_OK;
}

int dc_slots_parse(const redisReply *r, const char *asked_host, dc_slots_map_t *map)
{
    memset(map, 0, sizeof(*map));
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return DC_EINVAL;
    for (size_t i = 0; i < r->elements; i++) {
        if (parse_range(r->element[i], asked_host, map) != DC_OK) {
            memset(map, 0, sizeof(*map));
            return DC_EINVAL;
        }
    }
    return DC_OK;
}

/* A decimal in [min, max] at s[0..n), all of it, as Redis writes it (no leading zero: found by fuzz_slots). */
static int take_num(const char *s, size_t n, long min, long max, long *out)
{
    long v = 0;

    if (n == 0 || n > 6 || (s[0] == '0' && n > 1))
        return DC_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return DC_EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max)
        return DC_EINVAL;
    *out = v;
    return DC_OK;
}

int dc_slots_redirect(const char *s, size_t n, dc_redirect_t *out)
{
    const char *p, *end = s + n, *sp, *colon;
    long        slot, port;

    memset(out, 0, sizeof(*out));
    if (n > 6 && memcmp(s, "MOVED ", 6) == 0) {
        out->kind = DC_REDIRECT_MOVED;
        p = s + 6;
    } else if (n > 4 && memcmp(s, "ASK ", 4) == 0) {
        out->kind = DC_REDIRECT_ASK;
        p = s + 4;
    } else {
        return DC_DECLINED;
    }
    sp = memchr(p, ' ', (size_t)(end - p));
    if (sp == NULL || take_num(p, (size_t)(sp - p), 0, DC_SLOTS - 1, &slot) != DC_OK)
        return DC_EINVAL;
    p = sp + 1;
    for (colon = NULL, sp = p; sp < end; sp++)
        if (*sp == ':')
            colon = sp;
    if (colon == NULL || !host_ok(p, (size_t)(colon - p)) ||
        take_num(colon + 1, (size_t)(end - colon - 1), 1, 65535, &port) != DC_OK)
        return DC_EINVAL;
    out->slot = (unsigned)slot;
    memcpy(out->to.host, p, (size_t)(colon - p));
    out->to.host[colon - p] = '\0';
    out->to.port = (int)port;
    return DC_OK;
}

const char *dc_slots_tag(unsigned slot)
{
    static char tags[DC_SLOTS][DC_SLOTS_TAG_MAX];
    static int  ready;

    if (!ready) {
        unsigned left = DC_SLOTS;
        /* the first lower-case hex number of each slot: 5 digits at most (314737 numbers) */
        for (unsigned i = 0; left > 0; i++) {
            char     s[DC_SLOTS_TAG_MAX];
            int      len = snprintf(s, sizeof(s), "%x", i);
            unsigned sl = dc_slots_crc16(s, (size_t)len) & (DC_SLOTS - 1);
            if (tags[sl][0] == '\0') {
                memcpy(tags[sl], s, (size_t)len + 1);
                left--;
            }
        }
        ready = 1;
    }
    return tags[slot & (DC_SLOTS - 1)];
}
