/*
 * dc_slots: CRC16 and hash slots against values redis-cli cluster keyslot
 * gives, hash tag rules, CLUSTER SLOTS replies (read from RESP bytes by
 * hiredis's own reader, as the fuzz target does) well-formed and malformed,
 * MOVED and ASK errors, and the tag of every slot.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis.h>

#include "dc_slots.h"

/* The reply in RESP bytes, read by hiredis; freeReplyObject it. */
static redisReply *reply_of(const char *resp)
{
    redisReader *rd = redisReaderCreate();
    void        *r = NULL;

    assert_non_null(rd);
    assert_int_equal(redisReaderFeed(rd, resp, strlen(resp)), REDIS_OK);
    assert_int_equal(redisReaderGetReply(rd, &r), REDIS_OK);
    assert_non_null(r);
    redisReaderFree(rd);
    return r;
}

static int parse(const char *resp, const char *asked, dc_slots_map_t *map)
{
    redisReply *r = reply_of(resp);
    int         rc = dc_slots_parse(r, asked, map);

    freeReplyObject(r);
    return rc;
}

static void test_crc16(void **state)
{
    (void)state;
    assert_int_equal(dc_slots_crc16("123456789", 9), 0x31C3);
    assert_int_equal(dc_slots_crc16("", 0), 0);
}

/* Values of redis-cli cluster keyslot (Redis 7.0). */
static void test_keyslot(void **state)
{
    static const struct {
        const char *key;
        unsigned    slot;
    } known[] = {
        { "foo", 12182 },
        { "bar", 5061 },
        { "123456789", 12739 },
        { "{user1000}.following", 3443 },
        { "{user1000}.followers", 3443 },
        { "user1000", 3443 },
        { "foo{}{bar}", 8363 },           /* an empty first tag: the whole key */
        { "foo{{bar}}zap", 4015 },        /* the tag is "{bar" */
        { "foo{bar}{zap}", 5061 },        /* the first tag only: "bar" */
        { "{", 4092 },                    /* no closing brace: the whole key */
        { "dashcache:epoch:{0}", 13907 }, /* as "0" */
    };

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(known); i++)
        if (dc_slots_keyslot(known[i].key, strlen(known[i].key)) != known[i].slot)
            fail_msg("%s: slot %u, want %u", known[i].key,
                     dc_slots_keyslot(known[i].key, strlen(known[i].key)), known[i].slot);
}

/* An organization's keys all hash like the organization: its tag. */
static void test_org_keys_share_a_slot(void **state)
{
    static const char *const keys[] = {
        "dashboard:stats:org:{550e8400-e29b-41d4-a716-446655440000}",
        "dashboard:temperature:trends:org:{550e8400-e29b-41d4-a716-446655440000}:unit:"
        "6ba7b810-9dad-11d1-80b4-00c04fd430c8:hours:24",
        "dashcache:gen:stats:org:{550e8400-e29b-41d4-a716-446655440000}",
        "dashcache:lease:dashboard:stats:org:{550e8400-e29b-41d4-a716-446655440000}",
    };
    unsigned want = dc_slots_keyslot("550e8400-e29b-41d4-a716-446655440000", 36);

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(keys); i++)
        assert_int_equal(dc_slots_keyslot(keys[i], strlen(keys[i])), want);
}

static void test_parse_slots(void **state)
{
    /* three primaries, the first with a replica; the third's host empty (the node asked) */
    static const char resp[] = "*3\r\n"
                               "*4\r\n:0\r\n:5460\r\n*3\r\n$9\r\n127.0.0.1\r\n:7001\r\n$2\r\nid\r\n"
                               "*3\r\n$9\r\n127.0.0.1\r\n:7004\r\n$2\r\nid\r\n"
                               "*3\r\n:5461\r\n:10922\r\n*2\r\n$9\r\n127.0.0.2\r\n:7002\r\n"
                               "*3\r\n:10923\r\n:16383\r\n*3\r\n$0\r\n\r\n:7003\r\n$2\r\nid\r\n";
    dc_slots_map_t    map;

    (void)state;
    assert_int_equal(parse(resp, "10.0.0.9", &map), DC_OK);
    assert_int_equal(map.nnodes, 3);
    assert_int_equal(dc_slots_node_of(&map, 0), 0);
    assert_int_equal(dc_slots_node_of(&map, 5460), 0);
    assert_int_equal(dc_slots_node_of(&map, 5461), 1);
    assert_int_equal(dc_slots_node_of(&map, 16383), 2);
    assert_int_equal(dc_slots_node_of(&map, DC_SLOTS), -1);
    assert_string_equal(map.nodes[0].host, "127.0.0.1");
    assert_int_equal(map.nodes[0].port, 7001);
    assert_string_equal(map.nodes[1].host, "127.0.0.2");
    assert_string_equal(map.nodes[2].host, "10.0.0.9");
    assert_int_equal(map.nodes[2].port, 7003);
}

/* Two ranges of one node are one node; a slot no range names has none. */
static void test_parse_gaps_and_shared_nodes(void **state)
{
    static const char resp[] = "*2\r\n"
                               "*3\r\n:0\r\n:9\r\n*2\r\n$9\r\n127.0.0.1\r\n:7001\r\n"
                               "*3\r\n:20\r\n:20\r\n*2\r\n$9\r\n127.0.0.1\r\n:7001\r\n";
    dc_slots_map_t    map;

    (void)state;
    assert_int_equal(parse(resp, NULL, &map), DC_OK);
    assert_int_equal(map.nnodes, 1);
    assert_int_equal(dc_slots_node_of(&map, 9), 0);
    assert_int_equal(dc_slots_node_of(&map, 10), -1);
    assert_int_equal(dc_slots_node_of(&map, 20), 0);
    assert_int_equal(parse("*0\r\n", NULL, &map), DC_OK);
    assert_int_equal(map.nnodes, 0);
}

static void test_parse_rejects(void **state)
{
    static const char *const bad[] = {
        "-ERR This instance has cluster support disabled\r\n",
        ":1\r\n",
        "$2\r\nok\r\n",
        "*1\r\n:1\r\n",
        "*1\r\n*2\r\n:0\r\n:1\r\n",                                                /* no node */
        "*1\r\n*3\r\n:5\r\n:4\r\n*2\r\n$1\r\na\r\n:1\r\n",                         /* ends before it starts */
        "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\na\r\n:1\r\n",                     /* no slot 16384 */
        "*1\r\n*3\r\n:-1\r\n:1\r\n*2\r\n$1\r\na\r\n:1\r\n",                        /* nor -1 */
        "*1\r\n*3\r\n$1\r\n0\r\n:1\r\n*2\r\n$1\r\na\r\n:1\r\n",                    /* a string */
        "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\na\r\n:0\r\n",                         /* port 0 */
        "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\na\r\n:65536\r\n",                     /* port too big */
        "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\na\r\n$4\r\n6379\r\n",                 /* port a string */
        "*1\r\n*3\r\n:0\r\n:1\r\n*1\r\n$1\r\na\r\n",                               /* no port */
        "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$3\r\na b\r\n:1\r\n",                       /* not a host */
        "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$0\r\n\r\n:1\r\n",                          /* empty, none asked */
        "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n*0\r\n:1\r\n",                              /* host an array */
        "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$-1\r\n:1\r\n",                             /* nil */
        "*2\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\na\r\n:1\r\n*3\r\n:0\r\n:1\r\n:1\r\n", /* a good one, a bad one */
    };
    dc_slots_map_t map;

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(bad); i++) {
        redisReader *rd = redisReaderCreate();
        void        *r = NULL;
        assert_int_equal(redisReaderFeed(rd, bad[i], strlen(bad[i])), REDIS_OK);
        if (redisReaderGetReply(rd, &r) == REDIS_OK && r != NULL) {
            memset(&map, 0x5a, sizeof(map));
            if (dc_slots_parse(r, NULL, &map) != DC_EINVAL)
                fail_msg("accepted reply %zu", i);
            assert_int_equal(map.nnodes, 0);
            assert_int_equal(dc_slots_node_of(&map, 0), -1);
        }
        freeReplyObject(r);
        redisReaderFree(rd);
    }
    assert_int_equal(dc_slots_parse(NULL, NULL, &map), DC_EINVAL);
}

/* More primaries than a map holds is refused, not cut. */
static void test_parse_too_many_nodes(void **state)
{
    char           resp[DC_SLOTS_NODES_MAX * 64 + 64];
    size_t         off;
    dc_slots_map_t map;

    (void)state;
    off = (size_t)snprintf(resp, sizeof(resp), "*%d\r\n", DC_SLOTS_NODES_MAX + 1);
    for (int i = 0; i <= DC_SLOTS_NODES_MAX; i++)
        off += (size_t)snprintf(resp + off, sizeof(resp) - off,
                                "*3\r\n:%d\r\n:%d\r\n*2\r\n$9\r\n127.0.0.1\r\n:%d\r\n", i, i, 7000 + i);
    assert_int_equal(parse(resp, NULL, &map), DC_EINVAL);
}

static void test_redirects(void **state)
{
    dc_redirect_t r;

    (void)state;
    assert_int_equal(dc_slots_redirect("MOVED 3999 127.0.0.1:6381", 25, &r), DC_OK);
    assert_int_equal(r.kind, DC_REDIRECT_MOVED);
    assert_int_equal(r.slot, 3999);
    assert_string_equal(r.to.host, "127.0.0.1");
    assert_int_equal(r.to.port, 6381);
    assert_int_equal(dc_slots_redirect("ASK 16383 ::1:7002", 18, &r), DC_OK);
    assert_int_equal(r.kind, DC_REDIRECT_ASK);
    assert_int_equal(r.slot, 16383);
    assert_string_equal(r.to.host, "::1");
    assert_int_equal(r.to.port, 7002);
    /* other errors are not redirections */
    assert_int_equal(dc_slots_redirect("CLUSTERDOWN The cluster is down", 31, &r), DC_DECLINED);
    assert_int_equal(dc_slots_redirect("TRYAGAIN Multiple keys request during rehashing of slot", 55, &r),
                     DC_DECLINED);
    assert_int_equal(dc_slots_redirect("MOVED", 5, &r), DC_DECLINED);
    assert_int_equal(dc_slots_redirect("", 0, &r), DC_DECLINED);
}

static void test_redirects_malformed(void **state)
{
    static const char *const bad[] = {
        "MOVED 16384 127.0.0.1:6381",
        "MOVED -1 127.0.0.1:6381",
        "MOVED 1 127.0.0.1",
        "MOVED 1 127.0.0.1:",
        "MOVED 1 127.0.0.1:0",
        "MOVED 1 127.0.0.1:65536",
        "MOVED 1 :6381",
        "MOVED  127.0.0.1:6381",
        "MOVED 1 127.0.0.1:63a1",
        "ASK 1",
        "ASK x 127.0.0.1:1",
        "ASK 1 a b:1",
        "MOVED 0000001 a:1",
        "ASK 1 a:1 ",
        "MOVED 1 a:1234567",
        "ASK 16383 ::1:0022",
        "MOVED 01 a:1",
    };
    dc_redirect_t r;

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(bad); i++)
        if (dc_slots_redirect(bad[i], strlen(bad[i]), &r) != DC_EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
    /* the length given is the text: a NUL inside is a byte no host has */
    assert_int_equal(dc_slots_redirect("MOVED 1 a\0b:1", 13, &r), DC_EINVAL);
}

static void test_node_add(void **state)
{
    dc_slots_map_t map;

    (void)state;
    memset(&map, 0, sizeof(map));
    assert_int_equal(dc_slots_node_add(&map, "127.0.0.1", 7001), 0);
    assert_int_equal(dc_slots_node_add(&map, "127.0.0.1", 7002), 1);
    assert_int_equal(dc_slots_node_add(&map, "127.0.0.1", 7001), 0);
    assert_int_equal(dc_slots_node_of(&map, 0), -1); /* added, serving nothing */
    assert_int_equal(dc_slots_node_add(&map, "", 7003), -1);
    assert_int_equal(dc_slots_node_add(&map, "a", 0), -1);
    for (int i = 2; i < DC_SLOTS_NODES_MAX; i++)
        assert_int_equal(dc_slots_node_add(&map, "127.0.0.1", 8000 + i), i);
    assert_int_equal(dc_slots_node_add(&map, "127.0.0.1", 9999), -1);
}

/* Every slot has a tag, and the tag hashes to its slot. */
static void test_tags(void **state)
{
    char key[64];

    (void)state;
    for (unsigned s = 0; s < DC_SLOTS; s++) {
        const char *t = dc_slots_tag(s);
        int         n;
        assert_true(t[0] != '\0' && strlen(t) < DC_SLOTS_TAG_MAX);
        n = snprintf(key, sizeof(key), "dashcache:epoch:{%s}", t);
        if (dc_slots_keyslot(key, (size_t)n) != s)
            fail_msg("tag %s of slot %u hashes to %u", t, s, dc_slots_keyslot(key, (size_t)n));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc16),
        cmocka_unit_test(test_keyslot),
        cmocka_unit_test(test_org_keys_share_a_slot),
        cmocka_unit_test(test_parse_slots),
        cmocka_unit_test(test_parse_gaps_and_shared_nodes),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_parse_too_many_nodes),
        cmocka_unit_test(test_redirects),
        cmocka_unit_test(test_redirects_malformed),
        cmocka_unit_test(test_node_add),
        cmocka_unit_test(test_tags),
    };

    return cmocka_run_group_tests_name("dc_slots", tests, NULL, NULL);
}
