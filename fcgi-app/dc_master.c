/* Prefork master: fork, reap, respawn, reload, stop. */
#include "dc_master.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dc_auth.h"
#include "dc_db.h"
#include "dc_envfile.h"
#include "dc_log.h"
#include "dc_metrics.h"
#include "dc_signal.h"
#include "dc_worker.h"

#define FAST_EXIT_MS   2000 /* a worker that dies sooner is crash-looping */
#define BACKOFF_MAX_MS 10000

typedef struct {
    pid_t   pid; /* 0: slot empty */
    int64_t started_ms;
    int64_t spawn_at_ms; /* respawn not before this */
    int     fast_exits;
    int     asked_to_stop; /* we sent it SIGTERM (reload): not a restart */
} slot_t;

typedef enum { RUNNING, STOPPING } state_t;

/*
 * The workers: n slots, each respawned when its worker exits, then the
 * workers of the last reloads, which finish what their connections owe
 * while their replacements already serve (slots[n..n+retiring)).
 */
typedef struct {
    slot_t *slots;
    int     n, retiring, cap;
} pool_t;

static pid_t spawn(int listen_fd, const dc_config_t *cfg, const dc_priv_t *priv, const sigset_t *orig_mask)
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
        _exit(dc_worker_run(listen_fd, cfg));
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
 * Reload: every worker is asked to stop and its slot is free at once, so
 * that a new worker (on the new configuration) serves while the old one
 * drains its kept connections. When too many reloads are still draining,
 * a slot waits for its worker as before.
 */
static void retire_all(pool_t *p)
{
    int64_t now = dc_now_ms();

    for (int i = 0; i < p->n; i++) {
        slot_t *s = &p->slots[i];
        if (s->pid <= 0)
            continue;
        s->asked_to_stop = 1;
        kill(s->pid, SIGTERM);
        if (p->n + p->retiring < p->cap) {
            p->slots[p->n + p->retiring++] = *s;
            s->pid = 0;
            s->asked_to_stop = 0;
            s->spawn_at_ms = now;
        }
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
    if (dc_config_load(&fresh) != DC_OK || dc_db_check_conninfo(fresh.database_url, &fresh.err) != DC_OK) {
        dc_log_error("master.reload",
                     "configuration error in %s: %s; keeping the running configuration and workers", env_file,
                     fresh.err.str);
        return DC_ERROR;
    }
    *cfg = fresh;
    dc_log_set_level(cfg->log_level);
    dc_log_info("master.reload", "configuration re-read from %s", env_file);
    return DC_OK;
}

int dc_master_run(int listen_fd, int workers, dc_config_t *cfg, const char *env_file, const dc_priv_t *priv)
{
    sigset_t set, orig;
    pool_t   pool = { .n = workers, .cap = workers * 4 };
    slot_t  *slots;
    state_t  state = RUNNING;
    int64_t  stop_deadline = 0;
    int      killed = 0;

    slots = pool.slots = calloc((size_t)pool.cap, sizeof(*slots));
    if (slots == NULL) {
        dc_log_error("master.init", "out of memory");
        return 1;
    }
    sigprocmask(SIG_SETMASK, NULL, &orig);
    if (dc_signal_master_init(&set) != DC_OK) {
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

        if (state == RUNNING) {
            for (int i = 0; i < workers; i++) {
                if (slots[i].pid == 0 && now >= slots[i].spawn_at_ms) {
                    pid_t pid = spawn(listen_fd, cfg, priv, &orig);
                    if (pid > 0) {
                        slots[i].pid = pid;
                        slots[i].started_ms = now;
                    } else {
                        slots[i].spawn_at_ms = now + 1000;
                    }
                }
            }
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
                stop_deadline = dc_now_ms() + DC_STOP_TIMEOUT_MS;
                signal_all(&pool, SIGTERM);
            } else if (!killed) {
                /* a second stop signal means: now */
                signal_all(&pool, SIGKILL);
                killed = 1;
            }
            break;
        case SIGHUP:
            if (state == RUNNING && (env_file == NULL || reread(env_file, cfg) == DC_OK)) {
                /* each worker is replaced at once, on the new configuration, and drains its connections */
                dc_log_info("master.reload", "restarting %d workers", alive(&pool));
                for (int i = 0; i < workers; i++)
                    slots[i].fast_exits = 0;
                retire_all(&pool);
            }
            break;
        default:
            break; /* SIGCHLD: reaped at the top of the loop */
        }
    }

    free(slots);
    dc_log_info("master.exit", "all workers stopped");
    return 0;
}
