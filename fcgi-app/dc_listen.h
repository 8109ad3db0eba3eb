/*
 * The FastCGI listening socket and who may connect to it.
 *
 * A unix socket path is taken over only when nothing accepts on it (a stale
 * file left by a killed master); a live socket of another instance is never
 * unlinked, neither at start nor at exit: the path is removed at exit only
 * while it is still the socket this process bound (same st_dev/st_ino).
 * A TCP address without a host binds loopback. Peers of a TCP socket are
 * checked against FCGI_WEB_SERVER_ADDRS (libfcgi's convention: a
 * comma-separated list of IP addresses) before anything is read.
 */
#ifndef DC_LISTEN_H
#define DC_LISTEN_H

#include <sys/socket.h>
#include <sys/types.h>

#include "dc_core.h"

#define DC_ALLOW_MAX 32

/* Peer addresses allowed on a TCP socket; n == 0 allows every peer. */
typedef struct {
    int n;
    struct {
        int           family; /* AF_INET or AF_INET6 */
        unsigned char addr[16];
    } a[DC_ALLOW_MAX];
} dc_allow_t;

typedef struct {
    int   fd;        /* -1 when closed */
    int   tcp;       /* 1: TCP, 0: unix */
    int   loopback;  /* a TCP socket bound to a loopback address */
    char  path[108]; /* the unix socket this process created, or "" */
    dev_t dev;
    ino_t ino;
} dc_listener_t;

/*
 * Opens a listening socket: "unix:/path", "/path", "host:port", "[v6]:port"
 * or ":port" (127.0.0.1). A unix socket gets mode `mode` (e.g. 0660). A
 * path where a socket accepts connections, or a path that is not a socket,
 * is refused; a socket nobody accepts on is replaced. DC_OK, or DC_ERROR
 * with err naming the address.
 */
int dc_listen_open(dc_listener_t *l, const char *spec, int mode, dc_err_t *err) DC_WUR;

/* Closes the socket; unlinks the path only if it is still ours. NULL or closed is fine. */
void dc_listen_close(dc_listener_t *l);

/*
 * Parses a comma-separated list of IPv4/IPv6 addresses (spaces allowed
 * around the commas; NULL or "" allows every peer). DC_OK or DC_EINVAL
 * with err naming the entry.
 */
int dc_listen_allow_parse(const char *list, dc_allow_t *out, dc_err_t *err) DC_WUR;

/* 1 when the peer may talk to us: a unix peer, an empty list or a listed address. */
int dc_listen_allowed(const dc_allow_t *allow, const struct sockaddr *sa, socklen_t len);

/*
 * Accepts one connection (blocking fd, close-on-exec) from an allowed peer.
 * The fd; DC_DECLINED when there was none to take (EAGAIN, EINTR, an aborted
 * connection) or the peer was refused and closed (*refused is set, with its
 * address in peer); DC_ERROR with errno for any other accept() failure.
 */
int dc_listen_accept(int listen_fd, const dc_allow_t *allow, int *refused, char *peer, size_t peer_cap);

/*
 * The accept queue of a listening socket as the kernel has it, what `ss
 * -l` shows as Recv-Q and Send-Q: *queued connections wait for an
 * accept(), of at most *backlog. A unix socket is asked through
 * sock_diag (netlink, UNIX_DIAG_RQLEN), a TCP one through TCP_INFO.
 * DC_OK, or DC_ERROR (another kind of socket, or the kernel would not say).
 */
int dc_listen_queue(int listen_fd, long *queued, long *backlog) DC_WUR;

#endif
