/* Switching from root to the serving user. */
#include "dc_priv.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int dc_priv_lookup(const char *user, dc_priv_t *p, dc_err_t *err)
{
    struct passwd *pw;

    memset(p, 0, sizeof(*p));
    if (user == NULL || *user == '\0')
        return DC_OK;
    if (strlen(user) >= sizeof(p->user))
        return dc_err_set(err, DC_EINVAL, "--user: name longer than %zu bytes", sizeof(p->user) - 1);
    errno = 0;
    pw = getpwnam(user);
    if (pw == NULL)
        return dc_err_set(err, DC_EINVAL, "--user: no such user \"%s\"", user);
    if (pw->pw_uid == 0)
        return dc_err_set(err, DC_EINVAL, "--user: \"%s\" is root; name an unprivileged user", user);
    if (geteuid() != 0)
        return dc_err_set(err, DC_EINVAL, "--user %s needs the process to start as root", user);
    p->active = 1;
    p->uid = pw->pw_uid;
    p->gid = pw->pw_gid;
    memcpy(p->user, user, strlen(user) + 1);
    return DC_OK;
}

int dc_priv_drop(const dc_priv_t *p, dc_err_t *err)
{
    if (!p->active)
        return DC_OK;
    if (initgroups(p->user, p->gid) != 0)
        return dc_err_set(err, DC_ERROR, "initgroups(%s) failed: %s", p->user, strerror(errno));
    if (setgid(p->gid) != 0)
        return dc_err_set(err, DC_ERROR, "setgid(%d) failed: %s", (int)p->gid, strerror(errno));
    if (setuid(p->uid) != 0)
        return dc_err_set(err, DC_ERROR, "setuid(%d) failed: %s", (int)p->uid, strerror(errno));
    /* with the saved set-user-ID gone, this must fail; if it works, we are still root */
    if (setuid(0) == 0 || geteuid() == 0)
        return dc_err_set(err, DC_ERROR, "still root after setuid(%d)", (int)p->uid);
    return DC_OK;
}

int dc_priv_group(const char *name, gid_t *gid, dc_err_t *err)
{
    struct group *g = getgrnam(name);

    if (g == NULL)
        return dc_err_set(err, DC_EINVAL, "--socket-group: no such group \"%s\"", name);
    *gid = g->gr_gid;
    return DC_OK;
}
