#include "gw_gen.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gw_worker.h"
#include "tp_server.h"

struct sock {
    char *host; /* as in the snapshot: "" for any */
    uint16_t port;
    int fd;
    unsigned refs; /* live generations listening on it */
};

struct gw_sockets {
    struct sock **v;
    size_t n, cap;
};

struct gw_gen {
    unsigned id;
    struct gw_sockets *pool;
    struct gw_runtime *rt; /* owned */
    struct gw_worker *workers;
    unsigned nworkers;   /* initialised (so joined and freed) */
    struct sock **socks; /* referenced, one reference each */
    size_t nsocks;
    bool draining;
};

int gw_sockets_new(struct gw_sockets **out)
{
    struct gw_sockets *p = calloc(1, sizeof(*p));
    if (!p)
        return -1;
    *out = p;
    return 0;
}

static void sock_free(struct sock *s)
{
    if (s->fd != -1)
        close(s->fd);
    free(s->host);
    free(s);
}

void gw_sockets_free(struct gw_sockets *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        sock_free(p->v[i]);
    free(p->v);
    free(p);
}

void gw_sockets_close(struct gw_sockets *p)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->v[i]->fd != -1) {
            close(p->v[i]->fd);
            p->v[i]->fd = -1;
        }
}

size_t gw_sockets_count(const struct gw_sockets *p)
{
    return p->n;
}

/* Drops one reference; the last closes the socket and takes it out of the pool. */
static void sock_release(struct gw_sockets *p, struct sock *s)
{
    if (--s->refs > 0)
        return;
    for (size_t i = 0; i < p->n; i++)
        if (p->v[i] == s) {
            memmove(&p->v[i], &p->v[i + 1], (p->n - i - 1) * sizeof(*p->v));
            p->n--;
            break;
        }
    sock_free(s);
}

/* Binds one more socket for |l| and appends it to the pool (with no reference yet:
   the caller takes one at once). */
static int sock_bind(struct gw_sockets *p, const struct conf_listen *l, const char *file,
                     char *err, size_t errlen)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 8;
        struct sock **v = realloc(p->v, cap * sizeof(*v));
        if (!v)
            goto nomem;
        p->v = v;
        p->cap = cap;
    }
    struct sock *s = calloc(1, sizeof(*s));
    if (!s)
        goto nomem;
    s->fd = -1;
    s->port = l->port;
    if (!(s->host = strdup(l->host))) {
        free(s);
        goto nomem;
    }
    if (tp_listen_socket(l->host, l->port, &s->fd) != 0) {
        bool v6 = strchr(l->host, ':') != NULL;
        snprintf(err, errlen, "%s:%u: cannot listen on %s%s%s:%u: %s", file, l->line,
                 v6 ? "[" : "", *l->host ? l->host : "*", v6 ? "]" : "", l->port,
                 strerror(errno));
        s->fd = -1;
        sock_free(s);
        return -1;
    }
    p->v[p->n++] = s;
    return 0;
nomem:
    snprintf(err, errlen, "out of memory");
    return -1;
}

static void add_ref(struct gw_gen *g, struct sock *s)
{
    /* g->socks has room for every socket in the pool (sized by the caller). */
    s->refs++;
    g->socks[g->nsocks++] = s;
}

/* Takes the pool's sockets for every listen entry (binding what is missing) and
   fills |per| with each worker's share: per[w] lists nper[w] sockets. */
static int take_sockets(struct gw_gen *g, unsigned nw, struct gw_worker_socket **per,
                        size_t *nper, char *err, size_t errlen)
{
    const struct conf_snapshot *snap = g->rt->snap;
    struct gw_sockets *p = g->pool;
    const char *file = snap->file ? snap->file : "-";
    for (size_t i = 0; i < snap->nlisten; i++) {
        const struct conf_listen *l = &snap->listen[i];
        size_t have = 0;
        for (size_t k = 0; k < p->n; k++)
            if (p->v[k]->port == l->port && strcmp(p->v[k]->host, l->host) == 0)
                have++;
        while (have < nw) {
            if (sock_bind(p, l, file, err, errlen) != 0)
                return -1;
            /* Referenced now, so a failure below closes it again. */
            struct sock **v = realloc(g->socks, p->n * sizeof(*v));
            if (!v) {
                sock_free(p->v[--p->n]);
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            g->socks = v;
            add_ref(g, p->v[p->n - 1]);
            have++;
        }
    }
    /* Every socket the config still lists, old and new, spread over the workers. */
    struct sock **v = realloc(g->socks, (p->n ? p->n : 1) * sizeof(*v));
    if (!v) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    g->socks = v;
    for (size_t i = 0; i < snap->nlisten; i++) {
        const struct conf_listen *l = &snap->listen[i];
        size_t k = 0;
        for (size_t j = 0; j < p->n; j++) {
            struct sock *s = p->v[j];
            if (s->port != l->port || strcmp(s->host, l->host) != 0)
                continue;
            bool mine = false;
            for (size_t m = 0; m < g->nsocks; m++)
                mine = mine || g->socks[m] == s;
            if (!mine)
                add_ref(g, s);
            unsigned w = (unsigned)(k++ % nw);
            per[w][nper[w]++] = (struct gw_worker_socket){s->fd, i};
        }
    }
    return 0;
}

int gw_gen_new(struct gw_sockets *pool, struct gw_runtime *rt, unsigned id,
               struct gw_gen **out, char *err, size_t errlen)
{
    struct gw_gen *g = calloc(1, sizeof(*g));
    unsigned nw = rt->workers;
    struct gw_worker_socket **per = calloc(nw, sizeof(*per));
    size_t *nper = calloc(nw, sizeof(*nper));
    struct gw_worker *workers = calloc(nw, sizeof(*workers));
    if (!g || !per || !nper || !workers) {
        free(g);
        free(workers);
        gw_runtime_free(rt);
        snprintf(err, errlen, "out of memory");
        g = NULL;
        goto out;
    }
    g->id = id;
    g->pool = pool;
    g->rt = rt;
    g->workers = workers;
    /* A worker's share is at most ceil(sockets / workers) per address; the pool is
       an upper bound on the sockets, and each address gets at least nw of them. */
    size_t bound = pool->n + (size_t)nw * rt->snap->nlisten;
    for (unsigned w = 0; w < nw; w++)
        if (!(per[w] = calloc(bound ? bound : 1, sizeof(**per)))) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    if (!(g->socks = calloc(1, sizeof(*g->socks)))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (take_sockets(g, nw, per, nper, err, errlen) != 0)
        goto fail;
    /* Initialised one by one, so a failure frees exactly what was made. */
    for (unsigned w = 0; w < nw; w++) {
        g->nworkers++;
        if (gw_worker_init(&g->workers[w], w, rt, per[w], nper[w], err, errlen) != 0)
            goto fail;
    }
    *out = g;
    goto out;
fail:
    gw_gen_free(g);
    g = NULL;
out:
    if (per)
        for (unsigned w = 0; w < nw; w++)
            free(per[w]);
    free(per);
    free(nper);
    return g ? 0 : -1;
}

int gw_gen_start(struct gw_gen *g, void (*on_exit)(void *arg), void *arg)
{
    for (unsigned w = 0; w < g->nworkers; w++)
        if (gw_worker_start(&g->workers[w], on_exit, arg) != 0) {
            gw_gen_drain(g);
            return -1;
        }
    return 0;
}

void gw_gen_drain(struct gw_gen *g)
{
    if (g->draining)
        return;
    g->draining = true;
    for (unsigned w = 0; w < g->nworkers; w++)
        gw_worker_drain(&g->workers[w]);
}

bool gw_gen_finished(const struct gw_gen *g)
{
    for (unsigned w = 0; w < g->nworkers; w++)
        if (g->workers[w].started && !atomic_load(&g->workers[w].finished))
            return false;
    return true;
}

bool gw_gen_draining(const struct gw_gen *g)
{
    return g->draining;
}

unsigned gw_gen_id(const struct gw_gen *g)
{
    return g->id;
}

const struct gw_runtime *gw_gen_runtime(const struct gw_gen *g)
{
    return g->rt;
}

void gw_gen_free(struct gw_gen *g)
{
    if (!g)
        return;
    /* Workers before the runtime they read; sockets last (a newer generation may
       still hold them, and then they stay open). */
    if (g->workers)
        for (unsigned w = 0; w < g->nworkers; w++)
            gw_worker_join(&g->workers[w]);
    free(g->workers);
    gw_runtime_free(g->rt);
    for (size_t i = 0; i < g->nsocks; i++)
        sock_release(g->pool, g->socks[i]);
    free(g->socks);
    free(g);
}
