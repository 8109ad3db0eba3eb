/*
 * Who the serving processes run as. The master starts as root (to bind the
 * socket and give it nginx's group), its workers switch to an unprivileged
 * user right after fork, before they read a byte from a client (php-fpm's
 * pool `user`, nginx's `user`); the invalidator switches once it has
 * started. A worker that cannot switch exits instead of serving as root.
 */
#ifndef DC_PRIV_H
#define DC_PRIV_H

#include <sys/types.h>

#include "dc_core.h"

typedef struct {
    int   active; /* 0: stay who we are */
    uid_t uid;
    gid_t gid;
    char  user[64];
} dc_priv_t;

/*
 * Looks user up for a later dc_priv_drop. NULL or "" leaves p inactive.
 * DC_OK, or DC_EINVAL with err: no such user, the user is root, or this
 * process is not root and so cannot switch.
 */
int dc_priv_lookup(const char *user, dc_priv_t *p, dc_err_t *err) DC_WUR;

/*
 * Becomes p's user: its supplementary groups, its group, its uid; then
 * checks that root cannot be regained. Inactive p: DC_OK, nothing done.
 * DC_OK, or DC_ERROR with err naming the call that failed.
 */
int dc_priv_drop(const dc_priv_t *p, dc_err_t *err) DC_WUR;

/* The id of group name. DC_OK, or DC_EINVAL with err. */
int dc_priv_group(const char *name, gid_t *gid, dc_err_t *err) DC_WUR;

#endif
