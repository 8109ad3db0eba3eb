/*
 * dashcachectl invalidate --org ID | --all: the same code the invalidator
 * runs for a cache:invalidate message ({"orgId":...} and
 * {"pattern":"dashboard:*","scope":"all"}, dc_inval), applied here to
 * Redis rather than published. A PUBLISH only says how many subscribers
 * were there to hear it, not whether the invalidation was applied (the
 * invalidator may be reconnecting, Redis may refuse its writes); applying
 * it here moves the generations (or the epoch) in Redis itself, so exit
 * status 0 means every worker of every host now misses those answers,
 * and 1 means nothing is known to have changed.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "dc_cache.h"
#include "dc_ctl.h"
#include "dc_inval.h"
#include "dc_request.h"

void dc_ctl_invalidate_help(FILE *f)
{
    fprintf(f, "usage: " DC_CTL_PROGRAM " invalidate (--org ID | --all) [--json]\n"
               "\n"
               "Invalidates the cached answers of one organization (its generations move: O(1))\n"
               "or of every organization (the global epoch moves: one write, whatever the number\n"
               "of keys), with the code the invalidator runs for the cache:invalidate messages\n"
               "{\"orgId\":ID} and {\"pattern\":\"dashboard:*\",\"scope\":\"all\"}, applied to Redis\n"
               "(REDIS_URL) directly, so that success means it was applied. Old values stay until\n"
               "their TTL but are never a hit again.\n"
               "\n"
               "  --org ID   one organization (a UUID)\n"
               "  --all      every organization\n"
               "  --json     {\"ok\":true|false,\"scope\":\"org\"|\"all\",\"orgId\":...,\"keysDeleted\":N}\n"
               "\n"
               "Exit status: 0 applied, 1 not applied (Redis unreachable or refused the write:\n"
               "nothing is known to have changed; try again), 2 usage error.\n");
}

int dc_ctl_invalidate(int argc, char **argv)
{
    static const struct option opts[] = {
        { "org", required_argument, NULL, 'o' },
        { "all", no_argument, NULL, 'a' },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    static dc_config_t cfg;
    dc_inval_msg_t     m;
    char               org[DC_UUID_LEN + 1] = "", msg[128], why[128];
    int                opt, all = 0, json = 0, rc;
    size_t             deleted = 0;
    dc_cache_t        *cache;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 'o':
            if (dc_request_parse_uuid(optarg, strlen(optarg), org) != DC_OK) {
                fprintf(stderr,
                        DC_CTL_PROGRAM " invalidate: --org: \"%.64s\" is not an organization id (UUID)\n",
                        optarg);
                return DC_CTL_USAGE;
            }
            break;
        case 'a':
            all = 1;
            break;
        case 'j':
            json = 1;
            break;
        case 'h':
            dc_ctl_invalidate_help(stdout);
            return DC_CTL_OK;
        default:
            dc_ctl_invalidate_help(stderr);
            return DC_CTL_USAGE;
        }
    }
    if (optind < argc || all == (org[0] != '\0')) {
        fprintf(stderr, DC_CTL_PROGRAM " invalidate: %s\n",
                optind < argc ? "unexpected argument" : "give exactly one of --org ID and --all");
        dc_ctl_invalidate_help(stderr);
        return DC_CTL_USAGE;
    }
    if (dc_ctl_config("invalidate", &cfg) != DC_OK)
        return DC_CTL_FAIL;

    /* the message another service would publish, through the invalidator's own parser */
    if (all)
        snprintf(msg, sizeof(msg), "{\"pattern\":\"dashboard:*\",\"scope\":\"all\"}");
    else
        snprintf(msg, sizeof(msg), "{\"orgId\":\"%s\"}", org);
    if (dc_inval_parse(msg, strlen(msg), &m, why, sizeof(why)) != DC_OK) {
        fprintf(stderr, DC_CTL_PROGRAM " invalidate: %s\n", why);
        return DC_CTL_FAIL;
    }
    cache = dc_cache_new(&cfg);
    if (cache == NULL) {
        fprintf(stderr, DC_CTL_PROGRAM " invalidate: out of memory\n");
        return DC_CTL_FAIL;
    }
    rc = m.kind == DC_INV_ALL ? dc_inval_all(cache) : dc_inval_apply(cache, &m, &deleted);
    dc_cache_free(cache);

    if (json) {
        printf("{\"ok\":%s,\"scope\":\"%s\"", rc == DC_OK ? "true" : "false", all ? "all" : "org");
        if (!all)
            printf(",\"orgId\":\"%s\",\"keysDeleted\":%zu", org, deleted);
        printf("}\n");
    } else if (rc == DC_OK) {
        if (all)
            printf("invalidated every organization (the epoch moved)\n");
        else
            printf("invalidated organization %s (its generations moved)\n", org);
    }
    if (rc != DC_OK)
        fprintf(stderr, DC_CTL_PROGRAM " invalidate: NOT applied: Redis is unreachable or refused the write "
                                       "(REDIS_URL); nothing is known to have changed, try again\n");
    return rc == DC_OK ? DC_CTL_OK : DC_CTL_FAIL;
}
