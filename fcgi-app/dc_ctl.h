/*
 * dashcachectl's subcommands, one file each (dc_ctl_<name>.c), linked into
 * dashcachectl alone. Each takes its own argv (argv[0] is its name), prints
 * its --help, and returns the exit status: DC_CTL_OK, DC_CTL_FAIL (what
 * the command says failed or is unhealthy) or DC_CTL_USAGE.
 */
#ifndef DC_CTL_H
#define DC_CTL_H

#include <stdio.h>

#include "dc_auth.h"
#include "dc_config.h"
#include "dc_core.h"
#include "dc_http.h"

#define DC_CTL_PROGRAM "dashcachectl"
#define DC_CTL_OK      0
#define DC_CTL_FAIL    1
#define DC_CTL_USAGE   2

int  dc_ctl_status(int argc, char **argv);
void dc_ctl_status_help(FILE *f);
int  dc_ctl_warm(int argc, char **argv);
void dc_ctl_warm_help(FILE *f);
int  dc_ctl_invalidate(int argc, char **argv);
void dc_ctl_invalidate_help(FILE *f);
int  dc_ctl_check_config(int argc, char **argv);
void dc_ctl_check_config_help(FILE *f);

/*
 * The pool's URL into url (cap bytes) and t: given (--url), else
 * DASHCACHE_URL, else http://127.0.0.1:$HTTP_PORT (8080). When it does not
 * parse, prints "dashcachectl CMD: --url: WHY" and returns DC_EINVAL.
 */
int dc_ctl_target(const char *cmd, const char *given, char *url, size_t cap, dc_http_target_t *t) DC_WUR;

/*
 * The configuration from the environment, for commands that talk to Redis
 * or PostgreSQL themselves; on a problem prints it (naming the variable,
 * no secret) and returns DC_EINVAL.
 */
int dc_ctl_config(const char *cmd, dc_config_t *cfg) DC_WUR;

/*
 * An integer option's value arg, between min and max, into *out; else
 * prints "dashcachectl CMD: --OPT must be an integer between MIN and MAX"
 * and returns DC_EINVAL.
 */
int dc_ctl_int_option(const char *cmd, const char *opt, const char *arg, long min, long max, int *out) DC_WUR;

/*
 * A token for c, valid from now for ttl seconds (c's iat and exp are set),
 * signed with a key of ac's key file, into *token (the caller frees it).
 * DC_OK, or another code with err (key file or key unusable).
 */
int dc_ctl_mint(const dc_auth_config_t *ac, dc_auth_claims_t *c, long ttl, char **token,
                dc_err_t *err) DC_WUR;

/* Writes s as a JSON string (quoted, escaped) to f. */
void dc_ctl_json_str(FILE *f, const char *s);

#endif
