/* zaslon: the daemon. Loads and checks the config, binds, starts one worker per core
   (or as configured), reloads on SIGHUP and turns SIGTERM/SIGINT into a graceful drain.

   The main thread only handles signals and lifecycle; workers serve. A reload builds a
   new runtime with exactly the checks a start runs, starts a new generation of workers
   on the same listening sockets (gw_gen.h), and only then drains the old generation,
   which is freed (runtime and all) once its last worker has ended. A config that fails
   to load changes nothing: the running generation keeps serving. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "adapter.h"
#include "gw_gen.h"
#include "gw_keystore.h"
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
    const char *conf;
    struct gw_sockets *pool;
    struct gw_gen **gens; /* live generations, oldest first; the last serves unless
                             terminating */
    size_t ngens, cap;
    unsigned next_id;
    int reap_fd;           /* eventfd workers write to as they end */
    struct event *reap_ev; /* reads reap_fd on the main loop */
    bool terminating;
    int status;
};

static struct gw_gen *serving(const struct main_state *st)
{
    if (st->ngens == 0 || gw_gen_draining(st->gens[st->ngens - 1]))
        return NULL;
    return st->gens[st->ngens - 1];
}

static int push_gen(struct main_state *st, struct gw_gen *g)
{
    if (st->ngens == st->cap) {
        size_t cap = st->cap ? 2 * st->cap : 4;
        struct gw_gen **v = realloc(st->gens, cap * sizeof(*v));
        if (!v)
            return -1;
        st->gens = v;
        st->cap = cap;
    }
    st->gens[st->ngens++] = g;
    return 0;
}

/* Runs on a worker's thread as it ends: wake the main loop to join it. The main loop
   takes no locks, so the worker only writes to the eventfd that loop watches; reap_fd
   is set before any worker starts and closed after every worker is joined. */
static void on_worker_exit(void *arg)
{
    const struct main_state *st = arg;
    uint64_t one = 1;
    if (write(st->reap_fd, &one, sizeof(one)) == -1)
        gw_log(GW_LOG_ERROR, "cannot wake the main loop: %s", strerror(errno));
}

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
    struct main_state *st = arg;
    size_t kept = 0;
    for (size_t i = 0; i < st->ngens; i++) {
        struct gw_gen *g = st->gens[i];
        /* Workers end when drained; a generation that ended unasked has failed. */
        if (!gw_gen_finished(g)) {
            st->gens[kept++] = g;
            continue;
        }
        if (!gw_gen_draining(g)) {
            gw_log(GW_LOG_ERROR, "generation %u: its workers ended unasked",
                   gw_gen_id(g));
            st->status = 1;
        }
        gw_log(GW_LOG_INFO, "generation %u: drained", gw_gen_id(g));
        gw_gen_free(g);
    }
    st->ngens = kept;
    if (!st->terminating && !serving(st)) {
        /* Nothing serves any more: drain what is left and exit with an error. */
        st->status = 1;
        st->terminating = true;
        for (size_t i = 0; i < st->ngens; i++)
            gw_gen_drain(st->gens[i]);
        gw_sockets_close(st->pool);
    }
    if (st->ngens == 0)
        event_base_loopexit(st->base, NULL);
}

static void reap_signal_cb(evutil_socket_t fd, short what, void *arg)
{
    uint64_t n;
    /* One read empties the counter however many workers ended; reap_cb looks at every
       generation, not at how many wrote. */
    if (read(fd, &n, sizeof(n)) == -1 && errno != EAGAIN)
        gw_log(GW_LOG_WARN, "worker exit signal: %s", strerror(errno));
    reap_cb(fd, what, arg);
}

static void on_term(struct main_state *st, int sig)
{
    if (st->terminating)
        return;
    st->terminating = true;
    gw_log(GW_LOG_INFO, "%s: draining", sig == SIGINT ? "SIGINT" : "SIGTERM");
    for (size_t i = 0; i < st->ngens; i++)
        gw_gen_drain(st->gens[i]);
    gw_sockets_close(st->pool);
    reap_cb(-1, 0, st);
}

static void on_hup(struct main_state *st, int sig)
{
    struct gw_gen *old = serving(st);
    if (st->terminating || !old) {
        gw_log(GW_LOG_WARN, "SIGHUP: ignored while draining");
        return;
    }
    const struct gw_runtime *ort = gw_gen_runtime(old);
    char err[1024];
    struct gw_runtime *rt = NULL;
    if (gw_runtime_load(st->conf, &rt, err, sizeof(err)) != 0 ||
        gw_runtime_reloadable(ort, rt, err, sizeof(err)) != 0) {
        gw_runtime_free(rt);
        gw_log(GW_LOG_ERROR, "reload refused, generation %u keeps serving: %s",
               gw_gen_id(old), err);
        return;
    }
    gw_runtime_inherit(rt, ort);
    bool kept_replay = rt->replay && rt->replay == ort->replay;
    struct gw_gen *g = NULL;
    unsigned id = st->next_id++;
    if (gw_gen_new(st->pool, rt, id, &g, err, sizeof(err)) != 0) {
        gw_log(GW_LOG_ERROR, "reload refused, generation %u keeps serving: %s",
               gw_gen_id(old), err);
        return;
    }
    if (push_gen(st, g) != 0) {
        gw_gen_free(g);
        gw_log(GW_LOG_ERROR, "reload refused, generation %u keeps serving: out of memory",
               gw_gen_id(old));
        return;
    }
    if (gw_gen_start(g, on_worker_exit, st) != 0) {
        /* Started workers drain at once; the reaper frees the generation. */
        gw_log(GW_LOG_ERROR,
               "reload failed, generation %u keeps serving: cannot start worker threads",
               gw_gen_id(old));
        /* Keep the old generation last: it is the one serving. */
        st->gens[st->ngens - 1] = old;
        for (size_t i = 0; i + 1 < st->ngens; i++)
            if (st->gens[i] == old)
                st->gens[i] = g;
        return;
    }
    /* The new workers accept on the same sockets already: only now may the old ones
       stop, so no connection waiting in an accept queue is lost. */
    gw_runtime_commit(rt);
    gw_gen_drain(old);
    gw_log(GW_LOG_INFO,
           "reload: generation %u serving with %u workers on %zu listening sockets%s; "
           "generation %u draining",
           id, rt->workers, gw_sockets_count(st->pool),
           kept_replay ? " (replay cache kept)"
                       : (rt->replay ? " (new replay cache)" : ""),
           gw_gen_id(old));
}

/* SIGUSR1: reopen the logs by path (logrotate moves the files, then signals). */
static void on_usr1(struct main_state *st, int sig)
{
    (void)st, (void)sig;
    gw_log_reopen();
}

/* Signals are events on the main loop. One row per signal; a handler gets its signal
   number. */
static const struct {
    int signo;
    void (*fn)(struct main_state *st, int sig);
} signal_table[] = {
    {SIGTERM, on_term},
    {SIGINT, on_term},
    {SIGHUP, on_hup},
    {SIGUSR1, on_usr1},
};

#define NSIGNALS (sizeof(signal_table) / sizeof(signal_table[0]))

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    for (size_t i = 0; i < NSIGNALS; i++)
        if (signal_table[i].signo == (int)sig)
            signal_table[i].fn(arg, (int)sig);
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
    /* No evthread_use_pthreads(): every loop is touched by its own thread only, and the
       main thread and the workers wake each other through eventfds (gw_worker_drain,
       on_worker_exit), so libevent takes no locks. */
    struct main_state st = {.conf = conf, .next_id = 1, .reap_fd = -1};
    struct event *sigs[NSIGNALS] = {0};
    struct gw_gen *g = NULL;
    unsigned nworkers = rt->workers;
    st.base = gw_worker_base_new();
    st.reap_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (!st.base || st.reap_fd == -1 || gw_sockets_new(&st.pool) != 0 ||
        !(st.reap_ev = event_new(st.base, st.reap_fd, EV_READ | EV_PERSIST, reap_signal_cb,
                                 &st)) ||
        event_add(st.reap_ev, NULL) != 0) {
        fprintf(stderr, "cannot set up the main loop: %s\n",
                st.reap_fd == -1 ? strerror(errno) : "out of memory");
        gw_runtime_free(rt);
        st.status = 1;
        goto out;
    }
    for (size_t i = 0; i < NSIGNALS; i++) {
        sigs[i] = evsignal_new(st.base, signal_table[i].signo, on_signal, &st);
        if (!sigs[i] || event_add(sigs[i], NULL) != 0) {
            fprintf(stderr, "cannot handle signal %d\n", signal_table[i].signo);
            gw_runtime_free(rt);
            st.status = 1;
            goto out;
        }
    }
    if (gw_gen_new(st.pool, rt, st.next_id++, &g, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        st.status = 1;
        goto out;
    }
    if (push_gen(&st, g) != 0) {
        fprintf(stderr, "out of memory\n");
        gw_gen_free(g);
        st.status = 1;
        goto out;
    }
    gw_keystore_setup_closed();
    if (gw_gen_start(g, on_worker_exit, &st) != 0) {
        fprintf(stderr, "cannot start worker threads\n");
        st.status = 1;
        goto out;
    }
    gw_log(GW_LOG_INFO, "started %u workers", nworkers);
    event_base_dispatch(st.base);
out:
    /* Normally every generation is gone by now; after a start-up failure, drain what
       exists and wait for it. */
    for (size_t i = 0; i < st.ngens; i++) {
        gw_gen_drain(st.gens[i]);
        gw_gen_free(st.gens[i]);
    }
    free(st.gens);
    gw_sockets_free(st.pool);
    for (size_t i = 0; i < NSIGNALS; i++)
        if (sigs[i])
            event_free(sigs[i]);
    if (st.reap_ev)
        event_free(st.reap_ev);
    if (st.reap_fd != -1)
        close(st.reap_fd);
    if (st.base)
        event_base_free(st.base);
    gw_log(GW_LOG_INFO, "exit");
    gw_log_close();
    return st.status;
}
