/* Prefork master: fork, reap, respawn, reload, stop. */
#include "dc_master.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dc_auth.h"
#include "dc_breaker.h"
#include "dc_db.h"
#include "dc_envfile.h"
#include "dc_log.h"
#include "dc_metrics.h"
#include "dc_notify.h"
#include "dc_signal.h"
#include "dc_worker.h"

#define FAST_EXIT_MS    2000 /* a worker that dies sooner is crash-looping */
#define BACKOFF_MAX_MS  10000
#define STATUS_EVERY_MS 5000 /* STATUS= to the service manager */

typedef struct {
    pid_t   pid; /* 0: slot empty */
    int64_t started_ms;
    int64_t spawn_at_ms; /* respawn not before this */
    int     fast_exits;
    int     asked_to_stop; /* we sent it SIGTERM (reload) or SIGKILL (stuck): not a restart */
    int     board;         /* its scoreboard entry (dc_board_t) */
} slot_t;

typedef enum { RUNNING, STOPPING } state_t;

/*
 * The workers: n slots, each respawned when its worker exits, then the
 * workers of the last reloads, which finish what their connections owe
 * while their replacements already serve (slots[n..n+retiring)).
 */
typedef struct {
    slot_t     *slots;
    int         n, retiring, cap;
    dc_board_t *boards; /* cap entries, shared with the workers; NULL: none (no watchdog) */
} pool_t;

/* A scoreboard entry no live worker has, cleared; -1 when there is none. */
static int free_board(pool_t *p)
{
    if (p->boards == NULL)
        return -1;
    for (int b = 0; b < p->cap; b++) {
        int used = 0;
        for (int i = 0; i < p->n + p->retiring && !used; i++)
            used = p->slots[i].pid > 0 && p->slots[i].board == b;
        if (!used) {
            memset(&p->boards[b], 0, sizeof(p->boards[b]));
            return b;
        }
    }
    return -1;
}

static pid_t spawn(int listen_fd, const dc_config_t *cfg, const dc_priv_t *priv, const sigset_t *orig_mask,
                   dc_board_t *board, int max_requests)
{
    pid_t master = getpid(); /* before fork: the child compares its parent with it */
    pid_t pid = fork();

    if (pid < 0) {
        dc_log_error("master.fork", "fork() failed: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        dc_err_t err;

        /* the token keys are readable by root alone: read before the switch */
        if (dc_auth_preload(&cfg->auth, &err) != DC_OK) {
            dc_log_error("auth.init", "%s", err.str);
            _exit(1);
        }
        if (dc_priv_drop(priv, &err) != DC_OK) {
            dc_log_error("worker.user", "%s; not serving as root", err.str);
            _exit(1);
        }
        /*
         * A worker must not outlive its master. The master may have died
         * between fork() and prctl(): then our parent is no longer it. Not
         * "getppid() == 1": a master that is PID 1 itself (a container's
         * ENTRYPOINT) would see every worker leave at once, forever. Set
         * after the switch of user, which clears it.
         */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != master)
            _exit(0);
        if (dc_signal_child_reset(orig_mask) != DC_OK)
            _exit(1);
        dc_worker_opts_t opts = { .master = master, .board = board, .max_requests = max_requests };
        _exit(dc_worker_run(listen_fd, cfg, &opts));
    }
    return pid;
}

static void log_exit(pid_t pid, int status, int64_t lived_ms)
{
    if (WIFEXITED(status))
        dc_log(WEXITSTATUS(status) == 0 ? DC_LOG_INFO : DC_LOG_WARN, "master.worker_exit",
               "worker %d exited with code %d after %lld ms", (int)pid, WEXITSTATUS(status),
               (long long)lived_ms);
    else if (WIFSIGNALED(status))
        dc_log_warn("master.worker_exit", "worker %d killed by signal %d (%s) after %lld ms", (int)pid,
                    WTERMSIG(status), strsignal(WTERMSIG(status)), (long long)lived_ms);
}

static void reap(pool_t *p, state_t state)
{
    int   status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        int64_t now = dc_now_ms();
        for (int i = 0; i < p->n + p->retiring; i++) {
            slot_t *s = &p->slots[i];
            int64_t lived;
            if (s->pid != pid)
                continue;
            lived = now - s->started_ms;
            log_exit(pid, status, lived);
            s->pid = 0;
            if (i >= p->n) { /* a retired worker: gone for good */
                p->slots[i] = p->slots[p->n + p->retiring - 1];
                p->retiring--;
                break;
            }
            if (state != RUNNING)
                break;
            if (!s->asked_to_stop)
                dc_metrics_worker_restart();
            s->asked_to_stop = 0;
            if (lived < FAST_EXIT_MS && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
                int64_t delay = 100LL << (s->fast_exits < 7 ? s->fast_exits : 7);
                s->fast_exits++;
                s->spawn_at_ms = now + (delay < BACKOFF_MAX_MS ? delay : BACKOFF_MAX_MS);
                dc_log_warn("master.backoff", "worker slot %d keeps dying; next start in %lld ms", i,
                            (long long)(s->spawn_at_ms - now));
            } else {
                s->fast_exits = 0;
                s->spawn_at_ms = now;
            }
            break;
        }
    }
}

static void signal_all(pool_t *p, int signo)
{
    for (int i = 0; i < p->n + p->retiring; i++) {
        if (p->slots[i].pid > 0) {
            p->slots[i].asked_to_stop = 1;
            kill(p->slots[i].pid, signo);
        }
    }
}

/*
 * Slot i's worker drains (it was sent SIGTERM, or retires by itself): the
 * slot is free at once, so that a new worker serves while the old one
 * drains its kept connections. When too many are still draining, the slot
 * waits for its worker as before.
 */
static void retire(pool_t *p, int i, int64_t now)
{
    slot_t *s = &p->slots[i];

    s->asked_to_stop = 1;
    if (p->n + p->retiring < p->cap) {
        p->slots[p->n + p->retiring++] = *s;
        s->pid = 0;
        s->asked_to_stop = 0;
        s->spawn_at_ms = now;
    }
}

/* Reload: every worker is asked to stop and replaced at once, on the new configuration. */
static void retire_all(pool_t *p)
{
    int64_t now = dc_now_ms();

    for (int i = 0; i < p->n; i++) {
        if (p->slots[i].pid <= 0)
            continue;
        kill(p->slots[i].pid, SIGTERM);
        dc_metrics_worker_retired(DC_RETIRE_RELOAD);
        retire(p, i, now);
    }
}

/*
 * Workers that said in the scoreboard that they retire (max requests):
 * replaced at once. The scoreboard, not SIGUSR1's sender: the signals of
 * two workers may arrive as one.
 */
static void retire_done(pool_t *p)
{
    int64_t now = dc_now_ms();

    for (int i = 0; i < p->n && p->boards != NULL; i++) {
        slot_t *s = &p->slots[i];
        if (s->pid > 0 && !s->asked_to_stop &&
            __atomic_load_n(&p->boards[s->board].retiring, __ATOMIC_ACQUIRE))
            retire(p, i, now);
    }
}

/*
 * The watchdog: a worker busy with one request for more than twice
 * REQUEST_TIMEOUT_MS is stuck past what its own deadline can end (a loop,
 * a wait that does not honour it, a frozen process): it is killed, with
 * SIGKILL at once, since a worker keeps SIGTERM blocked while it works, and
 * its slot starts a new one. What the request was is logged.
 */
static void watchdog(pool_t *p, const dc_config_t *cfg, int64_t now)
{
    int64_t limit = 2LL * cfg->request_timeout_ms;

    if (p->boards == NULL || cfg->request_timeout_ms <= 0)
        return;
    for (int i = 0; i < p->n + p->retiring; i++) {
        slot_t     *s = &p->slots[i];
        dc_board_t *b = &p->boards[s->board];
        char        route[DC_BOARD_ROUTE_MAX];
        int64_t     since, again;

        if (s->pid <= 0 || s->asked_to_stop == 2)
            continue;
        since = __atomic_load_n(&b->busy_since_ms, __ATOMIC_ACQUIRE);
        if (since <= 0 || now - since <= limit)
            continue;
        memcpy(route, b->route, sizeof(route));
        route[sizeof(route) - 1] = '\0';
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        again = __atomic_load_n(&b->busy_since_ms, __ATOMIC_RELAXED);
        if (again != since)
            continue; /* it moved on meanwhile */
        dc_log_error("master.request_timeout",
                     "worker %d stuck in \"%s\" for %lld ms (twice REQUEST_TIMEOUT_MS=%d): killing it and "
                     "starting another",
                     (int)s->pid, route, (long long)(now - since), cfg->request_timeout_ms);
        kill(s->pid, SIGKILL);
        dc_metrics_worker_retired(DC_RETIRE_TIMEOUT);
        s->asked_to_stop = 2; /* not a restart, and killed once */
        s->fast_exits = 0;
    }
}

static int alive(const pool_t *p)
{
    int k = 0;
    for (int i = 0; i < p->n + p->retiring; i++)
        k += p->slots[i].pid > 0;
    return k;
}

/*
 * The service manager (dc_notify): READY=1 once every slot has its worker
 * (the socket listens already, so what connects meanwhile waits in its
 * backlog), again after a reload's RELOADING=1, then STATUS= every
 * STATUS_EVERY_MS. *ready: 0 until it was said (again).
 */
static void notify(const pool_t *p, int *ready, int64_t *next_ms, int64_t now)
{
    dc_metrics_summary_t m;
    int                  full = 1;

    for (int i = 0; i < p->n && full; i++)
        full = p->slots[i].pid > 0;
    if (*ready ? now < *next_ms : !full)
        return;
    if (dc_metrics_summary(&m) != DC_OK)
        m.requests = 0; /* metrics off: the workers are what the master knows */
    if (*ready) {
        dc_notify_status(p->n, (unsigned long long)m.requests);
    } else {
        dc_notify_ready(p->n, (unsigned long long)m.requests);
        *ready = 1;
    }
    *next_ms = now + STATUS_EVERY_MS;
}

/*
 * SIGHUP with --env-file: the file again, then the whole configuration from
 * the environment. DC_OK with cfg replaced; otherwise cfg is left as it was
 * (the error is logged, credentials redacted by dc_log).
 */
static int reread(const char *env_file, dc_config_t *cfg)
{
    static dc_config_t fresh; /* large; the master has one */
    dc_err_t           err;

    if (dc_envfile_load(env_file, 0, &err) != DC_OK) {
        dc_log_error("master.reload", "%s; keeping the running configuration and workers", err.str);
        return DC_ERROR;
    }
    if (dc_config_load(&fresh) != DC_OK || dc_db_check_conninfo(fresh.database_url, &fresh.err) != DC_OK ||
        (fresh.database_read_url[0] != '\0' &&
         dc_db_check_read_conninfo(fresh.database_read_url, &fresh.err) != DC_OK)) {
        dc_log_error("master.reload",
                     "configuration error in %s: %s; keeping the running configuration and workers", env_file,
                     fresh.err.str);
        return DC_ERROR;
    }
    *cfg = fresh;
    dc_log_set_level(cfg->log_level);
    dc_breaker_configure(cfg); /* the new workers inherit the new knobs */
    dc_log_info("master.reload", "configuration re-read from %s", env_file);
    return DC_OK;
}

int dc_master_run(int listen_fd, int workers, dc_config_t *cfg, const char *env_file, const dc_priv_t *priv,
                  int max_requests)
{
    sigset_t set, orig;
    pool_t   pool = { .n = workers, .cap = workers * 4 };
    size_t   board_len;
    slot_t  *slots;
    state_t  state = RUNNING;
    int64_t  stop_deadline = 0, status_ms = 0;
    int      killed = 0, ready = 0;

    slots = pool.slots = calloc((size_t)pool.cap, sizeof(*slots));
    if (slots == NULL) {
        dc_log_error("master.init", "out of memory");
        return 1;
    }
    board_len = (size_t)pool.cap * sizeof(dc_board_t);
    pool.boards = mmap(NULL, board_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (pool.boards == MAP_FAILED) {
        dc_log_warn("master.init",
                    "mmap() of the scoreboard failed: %s; no watchdog, and a worker that "
                    "retires is replaced when it has exited",
                    strerror(errno));
        pool.boards = NULL;
    }
    sigprocmask(SIG_SETMASK, NULL, &orig);
    if (dc_signal_master_init(&set) != DC_OK) {
        if (pool.boards != NULL)
            munmap(pool.boards, board_len);
        free(slots);
        return 1;
    }
    if (dc_metrics_claim(DC_MK_MASTER) != DC_OK)
        dc_log_warn("master.metrics", "no free metrics slot; worker restarts are not counted");
    dc_log_info("master.start", "starting %d workers", workers);

    for (;;) {
        struct timespec ts = { 0, 200L * 1000 * 1000 };
        siginfo_t       info;
        int64_t         now;
        int             signo;

        reap(&pool, state);
        now = dc_now_ms();
        watchdog(&pool, cfg, now);
        dc_metrics_pool_sample(listen_fd, now); /* the queue grows most when every worker is busy */

        if (state == RUNNING) {
            retire_done(&pool);
            for (int i = 0; i < workers; i++) {
                if (slots[i].pid == 0 && now >= slots[i].spawn_at_ms) {
                    int   board = free_board(&pool);
                    pid_t pid = spawn(listen_fd, cfg, priv, &orig, board >= 0 ? &pool.boards[board] : NULL,
                                      max_requests);
                    if (pid > 0) {
                        slots[i].pid = pid;
                        slots[i].board = board;
                        slots[i].started_ms = now;
                    } else {
                        slots[i].spawn_at_ms = now + 1000;
                    }
                }
            }
            notify(&pool, &ready, &status_ms, now);
        } else {
            if (alive(&pool) == 0)
                break;
            if (!killed && now >= stop_deadline) {
                dc_log_warn("master.stop", "%d workers still busy after %d ms; killing them", alive(&pool),
                            DC_STOP_TIMEOUT_MS);
                signal_all(&pool, SIGKILL);
                killed = 1;
            }
        }

        signo = sigtimedwait(&set, &info, &ts);
        if (signo < 0)
            continue;
        switch (signo) {
        case SIGTERM:
        case SIGINT:
        case SIGQUIT:
            if (state == RUNNING) {
                dc_log_info("master.stop", "%s: stopping %d workers gracefully", strsignal(signo),
                            alive(&pool));
                state = STOPPING;
                dc_notify_stopping();
                stop_deadline = dc_now_ms() + DC_STOP_TIMEOUT_MS;
                signal_all(&pool, SIGTERM);
            } else if (!killed) {
                /* a second stop signal means: now */
                signal_all(&pool, SIGKILL);
                killed = 1;
            }
            break;
        case SIGHUP:
            if (state == RUNNING) {
                /* READY=1 follows when every slot has a worker again, also when nothing changed */
                dc_notify_reloading();
                ready = 0;
            }
            if (state == RUNNING && (env_file == NULL || reread(env_file, cfg) == DC_OK)) {
                /* each worker is replaced at once, on the new configuration, and drains its connections */
                dc_log_info("master.reload", "restarting %d workers", alive(&pool));
                for (int i = 0; i < workers; i++)
                    slots[i].fast_exits = 0;
                retire_all(&pool);
            }
            break;
        default:
            break; /* SIGCHLD: reaped, SIGUSR1: a retiring worker replaced, at the top of the loop */
        }
    }

    if (pool.boards != NULL)
        munmap(pool.boards, board_len);
    free(slots);
    dc_log_info("master.exit", "all workers stopped");
    return 0;
}
