/*
 * Fuzz target: CLUSTER SLOTS replies and redirections (dc_slots).
 *
 * Input: bytes fed to hiredis's reply reader, as a node's answer would be;
 * every reply read is given to dc_slots_parse, and the bytes themselves to
 * dc_slots_redirect as the text of an error reply.
 *
 * Invariants: dc_slots_parse DC_OK ⇒ every slot's owner is a node of the
 * map, every node has a terminated, non-empty host of host bytes and a port
 * in 1..65535, and no two nodes are the same address; DC_EINVAL ⇒ the map is
 * empty. dc_slots_redirect DC_OK ⇒ MOVED or ASK, a slot below 16384, a
 * terminated host and a port in 1..65535, and the text starts with that
 * word and ends with ":<port>".
 */
#include <hiredis.h>

#include "dc_slots.h"
#include "fuzz.h"

static void check_map(const dc_slots_map_t *map, int rc)
{
    if (rc != DC_OK) {
        FUZZ_CHECK(rc == DC_EINVAL && map->nnodes == 0, "rc %d with %d nodes", rc, map->nnodes);
        for (unsigned s = 0; s < DC_SLOTS; s++)
            FUZZ_CHECK(map->owner[s] == 0, "slot %u owned after a refusal", s);
        return;
    }
    FUZZ_CHECK(map->nnodes >= 0 && map->nnodes <= DC_SLOTS_NODES_MAX, "%d nodes", map->nnodes);
    for (unsigned s = 0; s < DC_SLOTS; s++)
        FUZZ_CHECK(map->owner[s] <= map->nnodes, "slot %u owner %u of %d", s, map->owner[s], map->nnodes);
    for (int i = 0; i < map->nnodes; i++) {
        const dc_slots_addr_t *a = &map->nodes[i];
        FUZZ_CHECK(fuzz_terminated(a->host, sizeof(a->host)) && a->host[0] != '\0', "node %d host", i);
        FUZZ_CHECK(strspn(a->host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:") ==
                       strlen(a->host),
                   "node %d host \"%s\"", i, a->host);
        FUZZ_CHECK(a->port >= 1 && a->port <= 65535, "node %d port %d", i, a->port);
        for (int j = 0; j < i; j++)
            FUZZ_CHECK(a->port != map->nodes[j].port || strcmp(a->host, map->nodes[j].host) != 0,
                       "nodes %d and %d are one", j, i);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static dc_slots_map_t map;
    redisReader          *rd = redisReaderCreate();
    dc_redirect_t         r;
    int                   rc;

    if (rd == NULL)
        abort();
    if (redisReaderFeed(rd, (const char *)data, size) == REDIS_OK) {
        for (int i = 0; i < 4; i++) {
            void *reply = NULL;
            if (redisReaderGetReply(rd, &reply) != REDIS_OK || reply == NULL)
                break;
            memset(&map, 0x5a, sizeof(map));
            rc = dc_slots_parse(reply, "127.0.0.1", &map);
            check_map(&map, rc);
            freeReplyObject(reply);
        }
    }
    redisReaderFree(rd);

    rc = dc_slots_redirect((const char *)data, size, &r);
    if (rc == DC_OK) {
        char tail[16];
        int  n = snprintf(tail, sizeof(tail), ":%d", r.to.port);
        FUZZ_CHECK(r.kind == DC_REDIRECT_MOVED || r.kind == DC_REDIRECT_ASK, "kind %d", (int)r.kind);
        FUZZ_CHECK(r.slot < DC_SLOTS, "slot %u", r.slot);
        FUZZ_CHECK(fuzz_terminated(r.to.host, sizeof(r.to.host)) && r.to.host[0] != '\0', "host");
        FUZZ_CHECK(r.to.port >= 1 && r.to.port <= 65535, "port %d", r.to.port);
        FUZZ_CHECK(size > 4 && memcmp(data, r.kind == DC_REDIRECT_MOVED ? "MOVED " : "ASK ",
                                      r.kind == DC_REDIRECT_MOVED ? 6 : 4) == 0,
                   "a redirection of another word");
        FUZZ_CHECK(size >= (size_t)n && memcmp(data + size - (size_t)n, tail, (size_t)n) == 0,
                   "port %d is not what the text ends with", r.to.port);
    } else {
        FUZZ_CHECK(rc == DC_DECLINED || rc == DC_EINVAL, "rc %d", rc);
    }
    return 0;
}
