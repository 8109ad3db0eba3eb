/*
 * dashcachectl check-config [FILE]: the environment (with FILE read into it
 * as dashcache-fcgi --env-file does) checked the way start-up checks it —
 * every variable, DATABASE_URL with libpq's parser, the token key file —
 * but every problem is said, not only the first. Messages name the
 * variable and never quote a secret.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "dc_auth.h"
#include "dc_ctl.h"
#include "dc_db.h"
#include "dc_envfile.h"
#include "dc_log.h"

void dc_ctl_check_config_help(FILE *f)
{
    fprintf(f, "usage: " DC_CTL_PROGRAM " check-config [--json] [FILE]\n"
               "\n"
               "Checks the configuration the way dashcache-fcgi checks it at start-up, and says\n"
               "every problem, one line each naming the variable (never its secret). FILE, an\n"
               "environment file (KEY=VALUE lines, as /etc/dashcache/dashcache.env), is read\n"
               "over the current environment, as dashcache-fcgi --env-file FILE reads it; without\n"
               "FILE the environment alone is checked. The token key file (AUTH_KEYS_FILE) is\n"
               "read and checked when AUTH_MODE is jwt.\n"
               "\n"
               "  --json   {\"ok\":true|false,\"problems\":[\"...\"]} on stdout\n"
               "\n"
               "Exit status: 0 no problem, 1 at least one problem, 2 usage error.\n");
}

typedef struct {
    int  json, n;
    char list[64][256]; /* the first 64, for --json */
} found_t;

static void report(const char *problem, void *arg)
{
    found_t *f = arg;
    char     shown[256];

    dc_log_redact(problem, shown, sizeof(shown));
    if (f->n < (int)DC_ARRAY_LEN(f->list))
        memcpy(f->list[f->n], shown, sizeof(shown));
    f->n++;
    if (!f->json)
        printf("%s\n", shown);
}

int dc_ctl_check_config(int argc, char **argv)
{
    static const struct option opts[] = {
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    static dc_config_t cfg;
    static found_t     found;
    const char        *file = NULL;
    dc_err_t           err;
    int                opt;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 'j':
            found.json = 1;
            break;
        case 'h':
            dc_ctl_check_config_help(stdout);
            return DC_CTL_OK;
        default:
            dc_ctl_check_config_help(stderr);
            return DC_CTL_USAGE;
        }
    }
    if (argc - optind > 1) {
        fprintf(stderr, DC_CTL_PROGRAM " check-config: at most one FILE\n");
        dc_ctl_check_config_help(stderr);
        return DC_CTL_USAGE;
    }
    if (optind < argc)
        file = argv[optind];

    if (file != NULL)
        (void)dc_envfile_check(file, report, &found);
    (void)dc_config_check(&cfg, report, &found);
    if (dc_db_check_conninfo(cfg.database_url, &err) != DC_OK)
        report(err.str, &found);
    if (cfg.auth.mode == DC_AUTH_JWT) {
        dc_auth_t *a = dc_auth_new(&cfg.auth, &err);
        if (a == NULL)
            report(err.str, &found);
        dc_auth_free(a);
    }

    if (found.json) {
        printf("{\"ok\":%s,\"problems\":[", found.n == 0 ? "true" : "false");
        for (int i = 0; i < found.n && i < (int)DC_ARRAY_LEN(found.list); i++) {
            if (i > 0)
                putchar(',');
            dc_ctl_json_str(stdout, found.list[i]);
        }
        printf("]}\n");
    } else if (found.n == 0) {
        printf("configuration OK%s%s\n", file ? ": " : "", file ? file : "");
    } else {
        printf("%d problem%s%s%s\n", found.n, found.n == 1 ? "" : "s",
               file ? " in the configuration of " : "", file ? file : "");
    }
    return found.n == 0 ? DC_CTL_OK : DC_CTL_FAIL;
}
