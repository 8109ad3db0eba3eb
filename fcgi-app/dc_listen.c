/* Listening sockets: open, own-socket checks, peer allow-list, accept. */
#include "dc_listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define BACKLOG 1024

/* 1 when something accepts connections on the unix socket sa, 0 when nobody does, -1 on error. */
static int unix_accepts(const struct sockaddr_un *sa)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int rc;

    if (fd < 0)
        return -1;
    /* EAGAIN: a full backlog, so someone listens and is busy */
    if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 || errno == EAGAIN)
        rc = 1;
    else if (errno == ECONNREFUSED || errno == ENOENT)
        rc = 0;
    else
        rc = -1;
    close(fd);
    return rc;
}

static int listen_unix(dc_listener_t *l, const char *path, int mode, dc_err_t *err)
{
    struct sockaddr_un sa;
    struct stat        st;
    size_t             n = strlen(path);
    int                fd;

    if (n == 0 || n >= sizeof(sa.sun_path) || n >= sizeof(l->path))
        return dc_err_set(err, DC_ERROR, "socket path \"%s\" is empty or longer than %zu bytes", path,
                          sizeof(sa.sun_path) - 1);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, n + 1);

    /*
     * Another instance (or an overlapping restart) may be serving on this
     * path: unlinking its socket would leave nginx with nothing to connect
     * to. Only a socket nobody accepts on is stale and ours to replace.
     */
    if (lstat(path, &st) == 0) {
        int busy;
        if (!S_ISSOCK(st.st_mode))
            return dc_err_set(err, DC_ERROR, "%s exists and is not a socket; refusing to replace it", path);
        busy = unix_accepts(&sa);
        if (busy == 1)
            return dc_err_set(err, DC_ERROR,
                              "%s is in use: another process accepts connections on it; refusing to start",
                              path);
        if (busy < 0)
            return dc_err_set(err, DC_ERROR, "cannot tell whether %s is in use: connect() failed: %s", path,
                              strerror(errno));
        if (unlink(path) != 0 && errno != ENOENT)
            return dc_err_set(err, DC_ERROR, "cannot remove the stale socket %s: %s", path, strerror(errno));
    } else if (errno != ENOENT) {
        return dc_err_set(err, DC_ERROR, "lstat(%s) failed: %s", path, strerror(errno));
    }

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return dc_err_set(err, DC_ERROR, "socket() failed: %s", strerror(errno));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        dc_err_set(err, DC_ERROR, "cannot listen on %s: bind() failed: %s", path, strerror(errno));
        close(fd);
        return DC_ERROR;
    }
    /* from here on the path is ours: remember which file it is */
    if (stat(path, &st) != 0 || chmod(path, (mode_t)mode) != 0 || listen(fd, BACKLOG) != 0) {
        dc_err_set(err, DC_ERROR, "cannot listen on %s: %s", path, strerror(errno));
        unlink(path);
        close(fd);
        return DC_ERROR;
    }
    l->fd = fd;
    l->tcp = 0;
    memcpy(l->path, path, n + 1);
    l->dev = st.st_dev;
    l->ino = st.st_ino;
    return DC_OK;
}

static int is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return 0;
}

static int listen_tcp(dc_listener_t *l, const char *spec, dc_err_t *err)
{
    char            host[256];
    const char     *colon = strrchr(spec, ':');
    struct addrinfo hints, *ai = NULL;
    int             fd = -1, one = 1, rc;
    size_t          hn;

    if (colon == NULL || colon[1] == '\0')
        return dc_err_set(err, DC_ERROR, "listen address %s is neither unix:/path nor host:port", spec);
    hn = (size_t)(colon - spec);
    if (hn >= sizeof(host))
        return dc_err_set(err, DC_ERROR, "host in %s is too long", spec);
    memcpy(host, spec, hn);
    host[hn] = '\0';
    if (host[0] == '[' && hn > 1 && host[hn - 1] == ']') {
        memmove(host, host + 1, hn - 2);
        host[hn - 2] = '\0';
    }
    /* ":port" is loopback: every interface must be asked for by name (0.0.0.0, [::]) */
    if (host[0] == '\0')
        memcpy(host, "127.0.0.1", sizeof("127.0.0.1"));
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    rc = getaddrinfo(host, colon + 1, &hints, &ai);
    if (rc != 0)
        return dc_err_set(err, DC_ERROR, "cannot resolve %s: %s", spec, gai_strerror(rc));
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, BACKLOG) != 0) {
        dc_err_set(err, DC_ERROR, "cannot listen on %s: %s", spec, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return DC_ERROR;
    }
    l->fd = fd;
    l->tcp = 1;
    l->loopback = is_loopback(ai->ai_addr);
    freeaddrinfo(ai);
    return DC_OK;
}

int dc_listen_open(dc_listener_t *l, const char *spec, int mode, dc_err_t *err)
{
    memset(l, 0, sizeof(*l));
    l->fd = -1;
    if (strncmp(spec, "unix:", 5) == 0)
        return listen_unix(l, spec + 5, mode, err);
    if (spec[0] == '/')
        return listen_unix(l, spec, mode, err);
    return listen_tcp(l, spec, err);
}

void dc_listen_close(dc_listener_t *l)
{
    struct stat st;

    if (l == NULL || l->fd < 0)
        return;
    /* a second instance may have replaced a path we lost: never unlink its socket */
    if (l->path[0] != '\0' && stat(l->path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == l->dev &&
        st.st_ino == l->ino)
        unlink(l->path);
    close(l->fd);
    l->fd = -1;
    l->path[0] = '\0';
}

int dc_listen_allow_parse(const char *list, dc_allow_t *out, dc_err_t *err)
{
    const char *p = list;

    memset(out, 0, sizeof(*out));
    if (list == NULL)
        return DC_OK;
    while (*p != '\0') {
        char        one[64];
        const char *end;
        size_t      n;

        while (*p == ' ' || *p == ',')
            p++;
        if (*p == '\0')
            break;
        end = p;
        while (*end != '\0' && *end != ',' && *end != ' ')
            end++;
        n = (size_t)(end - p);
        if (n >= sizeof(one))
            return dc_err_set(err, DC_EINVAL, "an entry of %.48s... is too long for an IP address", p);
        memcpy(one, p, n);
        one[n] = '\0';
        if (out->n == DC_ALLOW_MAX)
            return dc_err_set(err, DC_EINVAL, "at most %d addresses", DC_ALLOW_MAX);
        if (inet_pton(AF_INET, one, out->a[out->n].addr) == 1)
            out->a[out->n].family = AF_INET;
        else if (inet_pton(AF_INET6, one, out->a[out->n].addr) == 1)
            out->a[out->n].family = AF_INET6;
        else
            return dc_err_set(err, DC_EINVAL, "\"%s\" is not an IPv4 or IPv6 address", one);
        out->n++;
        p = end;
    }
    return DC_OK;
}

int dc_listen_allowed(const dc_allow_t *allow, const struct sockaddr *sa, socklen_t len)
{
    const unsigned char *addr;
    int                  family;

    if (allow == NULL || allow->n == 0 || sa->sa_family == AF_UNIX)
        return 1;
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        family = AF_INET;
        addr = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
    } else if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        /* an IPv4 client of a dual-stack socket is listed as IPv4 */
        family = IN6_IS_ADDR_V4MAPPED(a6) ? AF_INET : AF_INET6;
        addr = family == AF_INET ? a6->s6_addr + 12 : a6->s6_addr;
    } else {
        return 0;
    }
    for (int i = 0; i < allow->n; i++) {
        if (allow->a[i].family == family && memcmp(allow->a[i].addr, addr, family == AF_INET ? 4 : 16) == 0)
            return 1;
    }
    return 0;
}

int dc_listen_accept(int listen_fd, const dc_allow_t *allow, int *refused, char *peer, size_t peer_cap)
{
    struct sockaddr_storage ss = { 0 };
    socklen_t               len = sizeof(ss);
    int                     fd, one = 1;

    *refused = 0;
    fd = accept4(listen_fd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED ||
            errno == EPROTO || errno == ECONNRESET)
            return DC_DECLINED;
        return DC_ERROR;
    }
    if (ss.ss_family == AF_UNIX)
        return fd;
    if (!dc_listen_allowed(allow, (struct sockaddr *)&ss, len)) {
        const void *a = ss.ss_family == AF_INET ? (const void *)&((struct sockaddr_in *)&ss)->sin_addr
                                                : (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
        if (peer_cap > 0 && inet_ntop(ss.ss_family, a, peer, (socklen_t)peer_cap) == NULL)
            snprintf(peer, peer_cap, "?");
        *refused = 1;
        close(fd);
        return DC_DECLINED;
    }
    /* a request and its answer are single writes: no Nagle delay */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

#define TCP_LISTEN_STATE 10 /* TCP_LISTEN of the kernel's tcp_states.h, which unix_diag reuses */

/* A unix listener's queue through sock_diag: one request for its inode, one answer. */
static int unix_queue(int fd, long *queued, long *backlog)
{
    struct {
        struct nlmsghdr      nlh;
        struct unix_diag_req req;
    } ask;
    union {
        struct nlmsghdr nlh;
        char            buf[8192];
    } ans;
    struct stat      st;
    struct timeval   tv = { 0, 200000 };
    struct nlmsghdr *h = &ans.nlh;
    int              nl, rc = DC_ERROR;
    ssize_t          n;

    if (fstat(fd, &st) != 0)
        return DC_ERROR;
    memset(&ask, 0, sizeof(ask));
    ask.nlh.nlmsg_len = sizeof(ask);
    ask.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    ask.nlh.nlmsg_flags = NLM_F_REQUEST;
    ask.req.sdiag_family = AF_UNIX;
    ask.req.udiag_states = 1u << TCP_LISTEN_STATE;
    ask.req.udiag_ino = (unsigned)st.st_ino;
    ask.req.udiag_show = UDIAG_SHOW_RQLEN;
    ask.req.udiag_cookie[0] = ask.req.udiag_cookie[1] = ~0u;
    nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (nl < 0)
        return DC_ERROR;
    setsockopt(nl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (send(nl, &ask, sizeof(ask), 0) != (ssize_t)sizeof(ask))
        goto out;
    n = recv(nl, ans.buf, sizeof(ans.buf), 0);
    if (n <= 0 || !NLMSG_OK(h, (size_t)n) || h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
        h->nlmsg_len < NLMSG_LENGTH(sizeof(struct unix_diag_msg)))
        goto out;
    {
        const struct unix_diag_msg *m = NLMSG_DATA(h);
        const struct rtattr        *a = (const struct rtattr *)(m + 1);
        int                         left = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*m)));

        for (; RTA_OK(a, left); a = RTA_NEXT(a, left)) {
            if (a->rta_type == UNIX_DIAG_RQLEN && RTA_PAYLOAD(a) >= sizeof(struct unix_diag_rqlen)) {
                const struct unix_diag_rqlen *q = RTA_DATA(a);
                *queued = (long)q->udiag_rqueue;
                *backlog = (long)q->udiag_wqueue;
                rc = DC_OK;
                break;
            }
        }
    }
out:
    close(nl);
    return rc;
}

int dc_listen_queue(int listen_fd, long *queued, long *backlog)
{
    int       domain;
    socklen_t len = sizeof(domain);

    if (getsockopt(listen_fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0)
        return DC_ERROR;
    if (domain == AF_UNIX)
        return unix_queue(listen_fd, queued, backlog);
    if (domain == AF_INET || domain == AF_INET6) {
        struct tcp_info ti;
        len = sizeof(ti);
        if (getsockopt(listen_fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 || ti.tcpi_state != TCP_LISTEN_STATE)
            return DC_ERROR;
        *queued = (long)ti.tcpi_unacked; /* a listener's: its accept queue, and the backlog */
        *backlog = (long)ti.tcpi_sacked;
        return DC_OK;
    }
    return DC_ERROR;
}
