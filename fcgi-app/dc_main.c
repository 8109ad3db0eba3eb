/*
 * dashcache-fcgi: parse flags, run the start-up chain (configuration,
 * metrics, socket, pid file), then run as a prefork master
 * (--listen, or --workers with an inherited socket) or as one plain worker on
 * a socket inherited from spawn-fcgi (fd 0) or systemd (LISTEN_FDS, fd 3).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dc_auth.h"
#include "dc_breaker.h"
#include "dc_coalesce.h"
#include "dc_config.h"
#include "dc_db.h"
#include "dc_envfile.h"
#include "dc_init.h"
#include "dc_listen.h"
#include "dc_log.h"
#include "dc_master.h"
#include "dc_metrics.h"
#include "dc_priv.h"
#include "dc_trust.h"
#include "dc_worker.h"

#define PROGRAM "dashcache-fcgi"

static void usage(FILE *f)
{
    fprintf(f, "usage: " PROGRAM " [--listen ADDR] [--workers N] [--socket-mode MODE] [--pid-file FILE]\n"
               "                      [--env-file FILE] [--user USER] [--socket-group GROUP]\n"
               "                      [--max-requests N]\n"
               "\n"
               "  --listen ADDR       unix:/path/to.sock, /path/to.sock, host:port or :port\n"
               "                      (127.0.0.1); runs a prefork master on it\n"
               "  --workers N         worker processes (default: 2 x cores)\n"
               "  --socket-mode MODE  octal mode of a unix socket (default 0660)\n"
               "  --pid-file FILE     write the master's pid there\n"
               "  --env-file FILE     KEY=VALUE lines read into the environment at start and,\n"
               "                      by the master, again on SIGHUP (systemctl reload)\n"
               "  --user USER         workers run as USER (the master stays root: it binds the\n"
               "                      socket and reloads); needs to be started as root\n"
               "  --socket-group GRP  group of the unix socket (nginx's, e.g. www-data), so that\n"
               "                      a mode of 0660 lets nginx in and nobody else\n"
               "  --max-requests N    a worker retires after N requests (php-fpm's pm.max_requests);\n"
               "                      0: never; overrides MAX_REQUESTS. Under the master its\n"
               "                      replacement starts at once; a plain worker just exits\n"
               "\n"
               "Without --listen it serves a socket it inherits: systemd socket activation\n"
               "(LISTEN_FDS) or fd 0 (spawn-fcgi); with --workers it forks that many workers on\n"
               "it, without it serves as one worker. Configuration comes from the environment:\n"
               "see .env.example.\n");
}

static int is_listening_socket(int fd)
{
    int       v = 0;
    socklen_t len = sizeof(v);
    return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0 && v;
}

/* The socket systemd or spawn-fcgi handed us, or -1. */
static int inherited_socket(void)
{
    const char *fds = getenv("LISTEN_FDS"), *pid = getenv("LISTEN_PID");

    if (fds != NULL && pid != NULL && atol(pid) == (long)getpid() && atoi(fds) >= 1 && is_listening_socket(3))
        return 3;
    if (is_listening_socket(0))
        return 0;
    return -1;
}

static int parse_positive(const char *s, int max, int *out)
{
    char *end;
    long  v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || end == s || v < 1 || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

/* What the flags asked for and what start-up made of it. */
typedef struct {
    const char   *listen_spec, *pid_file, *env_file, *user, *socket_group;
    int           workers, mode, fd;
    int           max_requests; /* --max-requests, -1: MAX_REQUESTS */
    dc_listener_t listener;     /* what --listen opened; closed (and unlinked if ours) at exit */
    dc_config_t   cfg;
    dc_priv_t     priv; /* who the workers become */
} main_t;

/* Start-up steps; each returns DC_OK or the exit code. */

static int init_config(void *arg)
{
    main_t  *m = arg;
    dc_err_t err;

    if (m->env_file != NULL && dc_envfile_load(m->env_file, 0, &err) != DC_OK) {
        fprintf(stderr, PROGRAM ": %s\n", err.str);
        return 1;
    }
    return dc_init_config(PROGRAM, &m->cfg);
}

/*
 * The token keys, checked once at start-up so that a missing, unsafe or
 * malformed key file stops the start with its variable named; each worker
 * loads them again when it starts (a reload picks up rotated keys).
 */
static int init_auth(void *arg)
{
    main_t    *m = arg;
    dc_err_t   err;
    dc_auth_t *a = dc_auth_new(&m->cfg.auth, &err);

    if (a == NULL) {
        fprintf(stderr, PROGRAM ": configuration error: %s\n", err.str);
        return 1;
    }
    dc_auth_free(a);
    return DC_OK;
}

/* Mapped before any fork, so every worker shares it from the start; without it the pool runs. */
static int init_metrics(void *arg)
{
    main_t  *m = arg;
    dc_err_t err;

    if (m->cfg.metrics_enabled) {
        char path[512];
        dc_metrics_default_path(&m->cfg, path, sizeof(path));
        if (dc_metrics_open(path, &err) != DC_OK)
            dc_log_warn("metrics.open", "%s; running without metrics", err.str);
    } else {
        dc_metrics_disable();
    }
    return DC_OK;
}

/*
 * The host's lease on serving hits (dc_trust) and its circuit breakers
 * (dc_breaker), shared by every process of the host.
 */
static int init_trust(void *arg)
{
    dc_trust_open_host(&((main_t *)arg)->cfg);
    dc_breaker_open_host(&((main_t *)arg)->cfg);
    dc_coalesce_open_host(&((main_t *)arg)->cfg);
    return DC_OK;
}

static int init_socket(void *arg)
{
    main_t  *m = arg;
    dc_err_t err;
    long     ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    if (m->listen_spec != NULL) {
        if (dc_listen_open(&m->listener, m->listen_spec, m->mode, &err) != DC_OK) {
            dc_log_error("master.listen", "%s", err.str);
            return 1;
        }
        m->fd = m->listener.fd;
        if (m->listener.tcp && !m->listener.loopback && m->cfg.fcgi_allow.n == 0)
            dc_log_warn("master.listen",
                        "%s is not a loopback address and FCGI_WEB_SERVER_ADDRS is empty: any host that "
                        "reaches it can send FastCGI requests, bypassing nginx",
                        m->listen_spec);
        if (m->workers == 0)
            m->workers = ncpu > 0 ? (int)ncpu * 2 : 2;
        return DC_OK;
    }
    m->fd = inherited_socket();
    if (m->fd < 0) {
        fprintf(stderr, PROGRAM ": no socket to serve: give --listen, or start it under "
                                "spawn-fcgi or systemd socket activation\n");
        usage(stderr);
        return 2;
    }
    return DC_OK;
}

static int init_user(void *arg)
{
    main_t  *m = arg;
    dc_err_t err;

    if (dc_priv_lookup(m->user, &m->priv, &err) != DC_OK) {
        fprintf(stderr, PROGRAM ": %s\n", err.str);
        return 2;
    }
    return DC_OK;
}

/* The socket's group, so that nginx's user can connect through a 0660 socket. */
static int init_socket_group(void *arg)
{
    main_t  *m = arg;
    dc_err_t err;
    gid_t    gid;

    if (m->socket_group == NULL)
        return DC_OK;
    if (m->listener.path[0] == '\0') {
        fprintf(stderr, PROGRAM ": --socket-group needs --listen with a unix socket\n");
        return 2;
    }
    if (dc_priv_group(m->socket_group, &gid, &err) != DC_OK) {
        fprintf(stderr, PROGRAM ": %s\n", err.str);
        return 2;
    }
    if (chown(m->listener.path, (uid_t)-1, gid) != 0) {
        dc_log_error("master.listen", "chown(%s, group %s) failed: %s", m->listener.path, m->socket_group,
                     strerror(errno));
        return 1;
    }
    return DC_OK;
}

static int init_pid_file(void *arg)
{
    main_t *m = arg;
    FILE   *f;

    if (m->pid_file == NULL)
        return DC_OK;
    f = fopen(m->pid_file, "w");
    if (f == NULL || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0) {
        dc_log_error("master.pidfile", "cannot write %s: %s", m->pid_file, strerror(errno));
        return 1;
    }
    return DC_OK;
}

static const dc_init_step_t init_chain[] = {
    { "config", init_config },
    { "auth", init_auth },
    { "metrics", init_metrics },
    { "trust", init_trust },
    { "user", init_user },
    { "socket", init_socket },
    { "socket-group", init_socket_group },
    { "pid-file", init_pid_file },
};

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "listen", required_argument, NULL, 'l' },
        { "workers", required_argument, NULL, 'w' },
        { "socket-mode", required_argument, NULL, 'm' },
        { "pid-file", required_argument, NULL, 'p' },
        { "env-file", required_argument, NULL, 'e' },
        { "user", required_argument, NULL, 'u' },
        { "socket-group", required_argument, NULL, 'g' },
        { "max-requests", required_argument, NULL, 'r' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    static main_t m = { .mode = 0660, .fd = -1, .max_requests = -1, .listener = { .fd = -1 } };
    int           c, rc;

    while ((c = getopt_long(argc, argv, "l:w:m:p:e:u:g:r:h", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            m.listen_spec = optarg;
            break;
        case 'w':
            if (parse_positive(optarg, 1024, &m.workers) != 0) {
                fprintf(stderr, PROGRAM ": --workers must be an integer between 1 and 1024 (got \"%s\")\n",
                        optarg);
                return 2;
            }
            break;
        case 'm': {
            char *end;
            long  mode = strtol(optarg, &end, 8);
            if (*end != '\0' || end == optarg || mode < 0 || mode > 0777) {
                fprintf(stderr, PROGRAM ": --socket-mode must be an octal mode such as 0660 (got \"%s\")\n",
                        optarg);
                return 2;
            }
            m.mode = (int)mode;
            break;
        }
        case 'p':
            m.pid_file = optarg;
            break;
        case 'e':
            m.env_file = optarg;
            break;
        case 'u':
            m.user = optarg;
            break;
        case 'g':
            m.socket_group = optarg;
            break;
        case 'r':
            if (strcmp(optarg, "0") == 0) {
                m.max_requests = 0;
            } else if (parse_positive(optarg, 1000000000, &m.max_requests) != 0) {
                fprintf(stderr,
                        PROGRAM ": --max-requests must be an integer between 0 and 1000000000 (got \"%s\")\n",
                        optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, PROGRAM ": unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    rc = dc_init_run(PROGRAM, init_chain, DC_ARRAY_LEN(init_chain), &m);
    if (rc != DC_OK) {
        dc_listen_close(&m.listener); /* a step after the socket failed: leave no socket behind */
        return rc;
    }
    if (m.workers > 0) {
        rc = dc_master_run(m.fd, m.workers, &m.cfg, m.env_file, &m.priv, m.max_requests);
    } else {
        dc_err_t err;
        if (dc_auth_preload(&m.cfg.auth, &err) !=
            DC_OK) { /* before the switch of user, as the master's workers */
            dc_log_error("auth.init", "%s", err.str);
            rc = 1;
        } else if (dc_priv_drop(&m.priv, &err) != DC_OK) {
            dc_log_error("worker.user", "%s; not serving as root", err.str);
            rc = 1;
        } else {
            dc_worker_opts_t wo = { .master = 0, .board = NULL, .max_requests = m.max_requests };
            rc = dc_worker_run(m.fd, &m.cfg, &wo);
        }
    }
    dc_listen_close(&m.listener);
    if (m.pid_file != NULL)
        unlink(m.pid_file);
    return rc;
}
