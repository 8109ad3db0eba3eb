/* Flag-only signal handlers and masks. */
#include "dc_signal.h"

#include <errno.h>
#include <string.h>

#include "dc_core.h"
#include "dc_log.h"

volatile sig_atomic_t dc_signal_stop;

static const int handled[] = { SIGTERM, SIGINT, SIGQUIT, SIGHUP };

static void on_stop(int signo)
{
    int saved = errno;
    (void)signo;
    dc_signal_stop = 1;
    errno = saved;
}

int dc_signal_stop_init(sigset_t *wait_mask)
{
    struct sigaction sa;
    sigset_t         block;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigemptyset(&block);
    for (size_t i = 0; i < DC_ARRAY_LEN(handled); i++) {
        if (sigaction(handled[i], &sa, NULL) != 0) {
            dc_log_error("signal.init", "sigaction() failed: %s", strerror(errno));
            return DC_ERROR;
        }
        sigaddset(&block, handled[i]);
    }
    signal(SIGPIPE, SIG_IGN);
    if (sigprocmask(SIG_BLOCK, &block, wait_mask) != 0) {
        dc_log_error("signal.init", "sigprocmask() failed: %s", strerror(errno));
        return DC_ERROR;
    }
    for (size_t i = 0; i < DC_ARRAY_LEN(handled); i++)
        sigdelset(wait_mask, handled[i]);
    return DC_OK;
}

int dc_signal_master_init(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGCHLD);
    sigaddset(set, SIGUSR1); /* a worker retiring (max requests): replace it now */
    for (size_t i = 0; i < DC_ARRAY_LEN(handled); i++)
        sigaddset(set, handled[i]);
    signal(SIGPIPE, SIG_IGN);
    if (sigprocmask(SIG_BLOCK, set, NULL) != 0) {
        dc_log_error("signal.init", "sigprocmask() failed: %s", strerror(errno));
        return DC_ERROR;
    }
    return DC_OK;
}

int dc_signal_child_reset(const sigset_t *mask)
{
    signal(SIGCHLD, SIG_DFL);
    for (size_t i = 0; i < DC_ARRAY_LEN(handled); i++)
        signal(handled[i], SIG_DFL);
    dc_signal_stop = 0;
    if (sigprocmask(SIG_SETMASK, mask, NULL) != 0) {
        dc_log_error("signal.child", "sigprocmask() failed: %s", strerror(errno));
        return DC_ERROR;
    }
    return DC_OK;
}
