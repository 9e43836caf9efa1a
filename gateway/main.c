/* zaslon: the daemon. Loads and checks the config, binds, starts one worker per core
   (or as configured), and turns SIGTERM/SIGINT into a graceful drain. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "adapter.h"
#include "gw_log.h"
#include "gw_runtime.h"
#include "gw_worker.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: zaslon -c FILE [-t]\n"
               "  -c FILE  configuration file\n"
               "  -t       check the configuration and exit\n");
}

struct main_state {
    struct event_base *base;
    struct gw_worker *workers;
    unsigned nworkers;
    bool draining;
};

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct main_state *st = arg;
    if (sig == SIGHUP) {
        gw_log(GW_LOG_WARN, "SIGHUP: reload is not supported in this release; "
                            "restart to apply a new configuration");
        return;
    }
    if (st->draining)
        return;
    st->draining = true;
    gw_log(GW_LOG_INFO, "draining");
    for (unsigned i = 0; i < st->nworkers; i++)
        gw_worker_drain(&st->workers[i]);
    /* The main loop only waits for signals; the workers' joins end the process. */
    event_base_loopbreak(st->base);
}

/* SIGUSR1: reopen the logs by path (logrotate moves the files, then signals). */
static void on_usr1(evutil_socket_t sig, short what, void *arg)
{
    (void)sig, (void)what, (void)arg;
    gw_log_reopen();
}

int main(int argc, char **argv)
{
    const char *conf = NULL;
    bool test_only = false;
    int opt;
    while ((opt = getopt(argc, argv, "c:th")) != -1) {
        switch (opt) {
        case 'c': conf = optarg; break;
        case 't': test_only = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!conf || optind != argc) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    adapter_register_builtin();
    char err[1024];
    struct gw_runtime *rt = NULL;
    if (gw_runtime_load(conf, &rt, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (test_only) {
        fprintf(stderr, "%s: configuration is valid\n", conf);
        gw_runtime_free(rt);
        return 0;
    }
    const struct conf_snapshot *snap = rt->snap;
    if (gw_log_open(snap->error_log, (enum gw_log_level)snap->log_level) != 0 ||
        gw_log_access_open(snap->access_log) != 0) {
        fprintf(stderr, "%s: cannot open log files\n", conf);
        gw_runtime_free(rt);
        return 1;
    }
    if (evthread_use_pthreads() != 0) {
        fprintf(stderr, "cannot enable libevent threads\n");
        gw_runtime_free(rt);
        return 1;
    }
    struct main_state st = {0};
    st.nworkers = rt->workers;
    st.workers = calloc(st.nworkers, sizeof(*st.workers));
    st.base = event_base_new();
    if (!st.workers || !st.base) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    int status = 0;
    unsigned ready = 0;
    for (; ready < st.nworkers; ready++) {
        if (gw_worker_init(&st.workers[ready], ready, rt, err, sizeof(err)) != 0) {
            fprintf(stderr, "%s\n", err);
            gw_worker_join(&st.workers[ready]);
            status = 1;
            break;
        }
    }
    struct event *sigs[3] = {0};
    struct event *usr1 = NULL;
    if (status == 0) {
        int signos[3] = {SIGTERM, SIGINT, SIGHUP};
        for (int i = 0; i < 3; i++) {
            sigs[i] = evsignal_new(st.base, signos[i], on_signal, &st);
            if (!sigs[i] || event_add(sigs[i], NULL) != 0)
                status = 1;
        }
        usr1 = evsignal_new(st.base, SIGUSR1, on_usr1, NULL);
        if (!usr1 || event_add(usr1, NULL) != 0)
            status = 1;
        for (unsigned i = 0; status == 0 && i < st.nworkers; i++)
            if (gw_worker_start(&st.workers[i]) != 0)
                status = 1;
        if (status == 0) {
            gw_log(GW_LOG_INFO, "started %u workers", st.nworkers);
            event_base_dispatch(st.base);
        } else {
            for (unsigned i = 0; i < st.nworkers; i++)
                gw_worker_drain(&st.workers[i]);
        }
    }
    for (unsigned i = 0; i < ready; i++)
        gw_worker_join(&st.workers[i]);
    for (int i = 0; i < 3; i++)
        if (sigs[i])
            event_free(sigs[i]);
    if (usr1)
        event_free(usr1);
    event_base_free(st.base);
    free(st.workers);
    gw_runtime_free(rt);
    gw_log(GW_LOG_INFO, "exit");
    gw_log_close();
    return status;
}
