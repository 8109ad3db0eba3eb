/*
 * dashcachectl: the operator's tool. One table of subcommands, each with
 * its own --help (dc_ctl.h; one file each, token here). Exit codes: 0
 * success, 1 the command failed (e.g. an unreadable key file) or found
 * the pool unhealthy, 2 usage error.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dc_auth.h"
#include "dc_config.h"
#include "dc_ctl.h"
#include "dc_db.h"
#include "dc_log.h"

#define PROGRAM  "dashcachectl"
#define EXIT_OK  0
#define EXIT_ERR 1
#define EXIT_USE 2

#define TTL_MAX (366L * 86400)

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
    void (*help)(FILE *f);
} command_t;

/* ------------------------------------------------------------------ token */

static void token_help(FILE *f)
{
    fprintf(f, "usage: " PROGRAM " token --org ID[,ID...] --scope SCOPE[,SCOPE...] [--ttl DURATION]\n"
               "                         [--sub NAME] [--kid KID] [--keys FILE]\n"
               "\n"
               "Mints a bearer token (an HS256 JWT) with a key of the key file and prints it.\n"
               "\n"
               "  --org ID[,ID...]   organizations the token may act on (UUIDs; repeatable);\n"
               "                     * for every organization (platform service accounts only)\n"
               "  --scope S[,S...]   read, write, ingest, refresh, admin\n"
               "  --ttl DURATION     lifetime: N, Ns, Nm, Nh or Nd (default 1h, at most 366d)\n"
               "  --sub NAME         who the token is for; the audit log records it (default\n"
               "                     dashcachectl)\n"
               "  --kid KID          the key to sign with (default: the only key of the file)\n"
               "  --keys FILE        the key file (default AUTH_KEYS_FILE)\n"
               "\n"
               "AUTH_ISSUER and AUTH_AUDIENCE, when set, become the iss and aud claims.\n"
               "Exit status: 0 token printed, 1 key file or key unusable, 2 usage error.\n");
}

/* "90", "90s", "15m", "1h", "7d" → seconds, or -1. */
static long parse_ttl(const char *s)
{
    char *end;
    long  v = strtol(s, &end, 10), mult = 1;

    if (end == s || v <= 0)
        return -1;
    if (*end != '\0') {
        switch (*end) {
        case 's':
            mult = 1;
            break;
        case 'm':
            mult = 60;
            break;
        case 'h':
            mult = 3600;
            break;
        case 'd':
            mult = 86400;
            break;
        default:
            return -1;
        }
        if (end[1] != '\0')
            return -1;
    }
    if (v > TTL_MAX / mult)
        return -1;
    return v * mult;
}

/* Splits a comma list of ids into orgs (validated, lower case). */
static int add_orgs(const char *list, char (*orgs)[DC_UUID_LEN + 1], size_t *n)
{
    while (*list != '\0') {
        size_t len = strcspn(list, ",");
        if (len == 1 && list[0] == '*') {
            memcpy(orgs[*n], "*", 2);
        } else if (len > 0 && dc_request_parse_uuid(list, len, orgs[*n]) != DC_OK) {
            fprintf(stderr, PROGRAM " token: --org: \"%.*s\" is not an organization id (UUID) or *\n",
                    (int)len, list);
            return -1;
        }
        if (len > 0 && ++*n == DC_AUTH_ORGS_MAX && list[len] != '\0') {
            fprintf(stderr, PROGRAM " token: at most %d organizations per token\n", DC_AUTH_ORGS_MAX);
            return -1;
        }
        list += len;
        list += strspn(list, ",");
    }
    return 0;
}

static int cmd_token(int argc, char **argv)
{
    static const struct option opts[] = {
        { "org", required_argument, NULL, 'o' }, { "scope", required_argument, NULL, 's' },
        { "ttl", required_argument, NULL, 't' }, { "sub", required_argument, NULL, 'u' },
        { "kid", required_argument, NULL, 'k' }, { "keys", required_argument, NULL, 'f' },
        { "help", no_argument, NULL, 'h' },      { NULL, 0, NULL, 0 },
    };
    static char      orgs[DC_AUTH_ORGS_MAX][DC_UUID_LEN + 1];
    const char      *org_ptrs[DC_AUTH_ORGS_MAX];
    size_t           norgs = 0;
    dc_auth_claims_t c = { .sub = "dashcachectl" };
    dc_auth_config_t ac;
    const char      *keys = NULL;
    long             ttl = 3600;
    int              opt, have_scope = 0;
    dc_err_t         err;
    char            *token;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 'o':
            if (add_orgs(optarg, orgs, &norgs) != 0)
                return EXIT_USE;
            break;
        case 's':
            if (dc_auth_parse_scopes(optarg, 1, &c.scopes) != DC_OK) {
                fprintf(stderr,
                        PROGRAM " token: --scope takes read, write, ingest, refresh, admin (got \"%s\")\n",
                        optarg);
                return EXIT_USE;
            }
            have_scope = 1;
            break;
        case 't':
            if ((ttl = parse_ttl(optarg)) < 0) {
                fprintf(stderr,
                        PROGRAM " token: --ttl must be a positive duration such as 90s, 15m, 1h, 7d "
                                "(at most 366d; got \"%s\")\n",
                        optarg);
                return EXIT_USE;
            }
            break;
        case 'u':
            c.sub = optarg;
            break;
        case 'k':
            c.kid = optarg;
            break;
        case 'f':
            keys = optarg;
            break;
        case 'h':
            token_help(stdout);
            return EXIT_OK;
        default:
            token_help(stderr);
            return EXIT_USE;
        }
    }
    if (optind < argc || norgs == 0 || !have_scope) {
        fprintf(stderr, PROGRAM " token: %s\n",
                optind < argc ? "unexpected argument" : "--org and --scope are required");
        token_help(stderr);
        return EXIT_USE;
    }
    if (c.scopes == 0 || strlen(c.sub) == 0 || strlen(c.sub) > DC_AUTH_SUB_MAX) {
        fprintf(stderr, PROGRAM " token: %s\n",
                c.scopes == 0 ? "--scope names no scope" : "--sub must have 1 to 128 characters");
        return EXIT_USE;
    }

    if (dc_config_load_auth(&ac, &err) != DC_OK) {
        fprintf(stderr, PROGRAM ": configuration error: %s\n", err.str);
        return EXIT_ERR;
    }
    ac.mode = DC_AUTH_JWT; /* minting needs the keys whatever the workers' mode */
    if (keys != NULL &&
        snprintf(ac.keys_file, sizeof(ac.keys_file), "%s", keys) >= (int)sizeof(ac.keys_file)) {
        fprintf(stderr, PROGRAM " token: --keys: path too long\n");
        return EXIT_USE;
    }
    for (size_t i = 0; i < norgs; i++)
        org_ptrs[i] = orgs[i];
    c.orgs = org_ptrs;
    c.norgs = norgs;
    if (dc_ctl_mint(&ac, &c, ttl, &token, &err) != DC_OK) {
        fprintf(stderr, PROGRAM " token: %s\n", err.str);
        return EXIT_ERR;
    }
    printf("%s\n", token);
    free(token);
    return fflush(stdout) == 0 ? EXIT_OK : EXIT_ERR;
}

/* ------------------------------------------------------------------ helpers of the commands (dc_ctl.h) */

int dc_ctl_target(const char *cmd, const char *given, char *url, size_t cap, dc_http_target_t *t)
{
    const char *env = getenv("DASHCACHE_URL"), *port = getenv("HTTP_PORT");
    dc_err_t    err;

    if (given != NULL)
        snprintf(url, cap, "%s", given);
    else if (env != NULL && *env != '\0')
        snprintf(url, cap, "%s", env);
    else
        snprintf(url, cap, "http://127.0.0.1:%s", port != NULL && *port != '\0' ? port : "8080");
    if (dc_http_target(url, t, &err) != DC_OK) {
        fprintf(stderr, PROGRAM " %s: --url: %s\n", cmd, err.str);
        return DC_EINVAL;
    }
    return DC_OK;
}

int dc_ctl_config(const char *cmd, dc_config_t *cfg)
{
    dc_err_t err;
    char     shown[sizeof(err.str)];

    if (dc_config_load(cfg) != DC_OK) {
        dc_log_redact(cfg->err.str, shown, sizeof(shown));
        fprintf(stderr, PROGRAM " %s: configuration error: %s\n", cmd, shown);
        return DC_EINVAL;
    }
    if (dc_db_check_conninfo(cfg->database_url, &err) != DC_OK) {
        dc_log_redact(err.str, shown, sizeof(shown));
        fprintf(stderr, PROGRAM " %s: configuration error: %s\n", cmd, shown);
        return DC_EINVAL;
    }
    dc_log_set_level(cfg->log_level);
    return DC_OK;
}

int dc_ctl_int_option(const char *cmd, const char *opt, const char *arg, long min, long max, int *out)
{
    char *end;
    long  v = strtol(arg, &end, 10);

    if (end == arg || *end != '\0' || v < min || v > max) {
        fprintf(stderr, PROGRAM " %s: --%s must be an integer between %ld and %ld\n", cmd, opt, min, max);
        return DC_EINVAL;
    }
    *out = (int)v;
    return DC_OK;
}

int dc_ctl_mint(const dc_auth_config_t *ac, dc_auth_claims_t *c, long ttl, char **token, dc_err_t *err)
{
    dc_auth_t *a = dc_auth_new(ac, err);
    int        rc;

    if (a == NULL)
        return DC_ERROR;
    c->iat = (int64_t)time(NULL);
    c->exp = c->iat + ttl;
    rc = dc_auth_mint(a, c, token, err);
    dc_auth_free(a);
    return rc;
}

void dc_ctl_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* ------------------------------------------------------------------ dispatch */

static const command_t commands[] = {
    { "status", "the pool, its breakers, Redis, PostgreSQL, the invalidator, the hit rate", dc_ctl_status,
      dc_ctl_status_help },
    { "warm", "fill the cache with the dashboards of the hottest or listed organizations", dc_ctl_warm,
      dc_ctl_warm_help },
    { "invalidate", "invalidate one organization's cached answers, or everyone's", dc_ctl_invalidate,
      dc_ctl_invalidate_help },
    { "check-config", "check an environment file as start-up does, every problem", dc_ctl_check_config,
      dc_ctl_check_config_help },
    { "token", "mint a bearer token with a key of AUTH_KEYS_FILE", cmd_token, token_help },
};

static void usage(FILE *f)
{
    fprintf(f, "usage: " PROGRAM " COMMAND [OPTIONS]   (" PROGRAM " COMMAND --help for its options)\n\n");
    for (size_t i = 0; i < DC_ARRAY_LEN(commands); i++)
        fprintf(f, "  %-13s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nConfiguration comes from the environment, as for dashcache-fcgi (.env.example).\n"
               "Exit status: 0 success, 1 the command failed (or, for status, the pool is not\n"
               "healthy), 2 usage error.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        if (argc >= 3)
            for (size_t i = 0; i < DC_ARRAY_LEN(commands); i++)
                if (strcmp(argv[2], commands[i].name) == 0) {
                    commands[i].help(stdout);
                    return EXIT_OK;
                }
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USE : EXIT_OK;
    }
    for (size_t i = 0; i < DC_ARRAY_LEN(commands); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, PROGRAM ": unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return EXIT_USE;
}
