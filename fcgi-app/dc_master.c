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

static pid_t spawn(int listen_fd, const dc_config_t *cfg, const sigset_t *orig_mask)
{
    pid_t master = getpid(); /* before fork: the child compares its parent with it */
    pid_t pid = fork();

    if (pid < 0) {
        dc_log_error("master.fork", "fork() failed: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        /*
         * A worker must not outlive its master. The master may have died
         * between fork() and prctl(): then our parent is no longer it. Not
         * "getppid() == 1": a master that is PID 1 itself (a container's
         * ENTRYPOINT) would see every worker leave at once, forever.
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

static void reap(slot_t *slots, int n, state_t state)
{
    int   status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        int64_t now = dc_now_ms();
        for (int i = 0; i < n; i++) {
            slot_t *s = &slots[i];
            int64_t lived;
            if (s->pid != pid)
                continue;
            lived = now - s->started_ms;
            log_exit(pid, status, lived);
            s->pid = 0;
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

static void signal_all(slot_t *slots, int n, int signo)
{
    for (int i = 0; i < n; i++) {
        if (slots[i].pid > 0) {
            slots[i].asked_to_stop = 1;
            kill(slots[i].pid, signo);
        }
    }
}

static int alive(const slot_t *slots, int n)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        k += slots[i].pid > 0;
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

int dc_master_run(int listen_fd, int workers, dc_config_t *cfg, const char *env_file)
{
    sigset_t set, orig;
    slot_t  *slots;
    state_t  state = RUNNING;
    int64_t  stop_deadline = 0;
    int      killed = 0;

    slots = calloc((size_t)workers, sizeof(*slots));
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

        reap(slots, workers, state);
        now = dc_now_ms();

        if (state == RUNNING) {
            for (int i = 0; i < workers; i++) {
                if (slots[i].pid == 0 && now >= slots[i].spawn_at_ms) {
                    pid_t pid = spawn(listen_fd, cfg, &orig);
                    if (pid > 0) {
                        slots[i].pid = pid;
                        slots[i].started_ms = now;
                    } else {
                        slots[i].spawn_at_ms = now + 1000;
                    }
                }
            }
        } else {
            if (alive(slots, workers) == 0)
                break;
            if (!killed && now >= stop_deadline) {
                dc_log_warn("master.stop", "%d workers still busy after %d ms; killing them",
                            alive(slots, workers), DC_STOP_TIMEOUT_MS);
                signal_all(slots, workers, SIGKILL);
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
                            alive(slots, workers));
                state = STOPPING;
                stop_deadline = dc_now_ms() + DC_STOP_TIMEOUT_MS;
                signal_all(slots, workers, SIGTERM);
            } else if (!killed) {
                /* a second stop signal means: now */
                signal_all(slots, workers, SIGKILL);
                killed = 1;
            }
            break;
        case SIGHUP:
            if (state == RUNNING && (env_file == NULL || reread(env_file, cfg) == DC_OK)) {
                /* each worker finishes its request and is replaced at once, on the new configuration */
                dc_log_info("master.reload", "restarting %d workers", alive(slots, workers));
                for (int i = 0; i < workers; i++)
                    slots[i].fast_exits = 0;
                signal_all(slots, workers, SIGTERM);
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
