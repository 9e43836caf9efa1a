/* zl_sealload: a load generator for zaslon's sealed route.

   Every request is FRESH: libzaslon-client's I/O-free zaslon_seal seals it with a new
   ephemeral key (so the gateway's replay cache never sees a repeat) and a Date field
   of its own, against the key configurations in an application/ohttp-keys file. The
   sealed bytes are POSTed as message/ohttp-req over HTTP/2 (h2c with prior knowledge
   for http:// URLs, TLS with ALPN h2 for https:// ones) on C connections with M
   concurrent streams each, for N requests in total or D seconds, whichever ends
   first. Each answer is checked: outer 200 with Content-Type message/ohttp-res, then
   zaslon_open, then an inner 2xx; failures are counted by kind.

   Sealing costs the generator about two X25519 operations per request, more than the
   gateway spends: so all N requests are sealed BEFORE the measured window (bounded by
   --preseal-limit seconds, since their Date fields must stay inside the gateway's
   replay window, 60 s by default), and the window holds only HTTP/2, TLS and opening.
   The generator's own CPU over the window is printed so a reader can tell whether it
   was the bottleneck.

   With --pid PID (the zaslon process), zaslon's utime+stime (/proc/PID/stat, all
   threads) is read at the start and end of the window: CPU us per sealed request, and
   sealed requests/s per core = 1e6 / that. --peer-pid PID (repeatable) adds the CPU of
   other processes (the backend) to the report, and /proc/stat shows how busy each CPU
   was.

     zl_sealload --keys FILE [options] URL
       -c C               connections (default 16)
       -m M               concurrent streams per connection (default 16)
       -n N               requests in total (default 100000)
       -D SECONDS         stop submitting after this long (default: no limit)
       --inner URL        inner request URL (default https://bench.example/api/submit)
       --body-size BYTES  inner POST body (default 120; 0 sends a GET)
       --insecure | --cacert FILE   TLS verification (one is required for https)
       --sni NAME         TLS server name (default: the URL's host unless an address)
       --tls13-ciphers S  TLS 1.3 cipher suites to offer (OpenSSL syntax)
       --pid PID          the zaslon process, for its CPU
       --peer-pid PID     another process to report the CPU of (repeatable, up to 8)
       --cpu N            pin this process to CPU N
       --preseal-limit S  stop pre-sealing after S seconds (default 40)
       --timeout S        hard bound on the measured window (default D + 30, or 300)
       --quiet            only the RESULT line

   The last line is machine-readable:
     RESULT ok=... failed=... unfinished=... seconds=... rps=... p50_ms=... p99_ms=...
            gen_cpu_pct=... zaslon_cpu_us=... zaslon_per_core_rps=... ...
   Exit status: 0 when every request succeeded, 3 when some failed or did not finish
   (the report is printed either way), 1 on a setup error, 2 on bad arguments. */
#define _GNU_SOURCE /* sched_setaffinity, CPU_SET */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "zaslon_client.h"

#define MAX_CONNS 4096
#define MAX_STREAMS 1000
#define MAX_REQUESTS 5000000
#define MAX_PEERS 8
#define MAX_THREADS 64 /* zaslon threads whose CPU is reported one by one */
#define MAX_KEYS_FILE 65536
#define MAX_RESPONSE_BODY (256 * 1024) /* a sealed answer larger than this fails */
#define OUTPUT_HIGH_WATER (256 * 1024) /* queued bytes per connection */
#define MAX_RECONNECTS_PER_CONN 50
#define CONNECT_TIMEOUT_S 10
#define INNER_URL_DEFAULT "https://bench.example/api/submit"
#define REQ_MEDIA_TYPE "message/ohttp-req"
#define RES_MEDIA_TYPE "message/ohttp-res"

/* ---------------------------------------------------------------- options --- */

struct opts {
    const char *url;
    const char *keys_file;
    const char *inner;
    size_t body_size;
    int conns;
    int streams;
    long requests;
    double duration; /* 0: none */
    bool insecure;
    const char *cacert;
    const char *sni;
    const char *tls13_ciphers;
    long pid; /* 0: none */
    long peer_pids[MAX_PEERS];
    int n_peers;
    int cpu; /* -1: leave as is */
    double preseal_limit;
    double timeout; /* 0: derived */
    bool quiet;
};

/* The target, split from the URL. */
struct target {
    bool tls;
    char host[256]; /* without brackets */
    char port[8];
    char authority[300];
    char path[1024];
    bool host_is_addr;
};

/* ------------------------------------------------------------------ state --- */

struct item {
    uint8_t *sealed;
    size_t len;
    struct zaslon_exchange *ex;
};

struct conn;

/* One request in flight. */
struct stream {
    struct conn *c;
    struct stream *prev, *next; /* the connection's list */
    size_t item;                /* index into gen.items */
    size_t sent;                /* request body bytes handed to nghttp2 */
    int status;                 /* outer :status, 0 until seen */
    bool ct_ok;
    uint8_t *body;
    size_t body_len, body_cap;
    double t0;
};

struct conn {
    struct gen *g;
    int slot;
    struct bufferevent *bev;
    nghttp2_session *sess;
    struct stream *streams; /* in flight */
    int inflight;
    bool ready;  /* connected (TLS done), session up */
    bool goaway; /* no new streams on this connection */
    int reconnects;
};

/* Failure kinds. */
enum fail_kind {
    F_OUTER_STATUS, /* outer status not 200 */
    F_OUTER_TYPE,   /* 200 but not message/ohttp-res */
    F_OPEN,         /* zaslon_open failed */
    F_INNER,        /* inner status not 2xx */
    F_RESET,        /* stream reset by the peer or closed with an error */
    F_TRANSPORT,    /* connection lost with the stream in flight */
    F_LOCAL,        /* out of memory, submit failed, answer too large */
    F_KINDS
};

static const char *const fail_names[F_KINDS] = {
    "outer non-200", "outer not message/ohttp-res",
    "open failure",  "inner non-2xx",
    "stream reset",  "connection lost",
    "local error"};

struct thread_cpu {
    long tid;
    double s;
};

struct cpu_snap {
    double zaslon_s;                    /* utime+stime */
    struct thread_cpu thr[MAX_THREADS]; /* zaslon's threads (workers), by tid */
    int n_thr;
    double peers_s;
    double self_s;
    unsigned long long cpu_busy[2], cpu_total[2]; /* /proc/stat cpu0, cpu1 */
    long zaslon_rss_kib;
    double wall;
};

struct gen {
    struct opts o;
    struct target t;
    struct event_base *base;
    SSL_CTX *ssl_ctx;
    struct addrinfo *addr;
    struct conn *conns;
    struct item *items;
    size_t n_items;   /* sealed */
    size_t next_item; /* next never-sent item */
    size_t *retry;    /* items refused before processing, to send again */
    size_t n_retry;
    struct event *stop_ev, *hard_ev;
    bool started, stopping, finished;
    int ready_conns, failed_conns;
    size_t inflight;
    /* results */
    uint64_t ok, failed[F_KINDS], retried, reconnects;
    uint64_t inner_status[600];
    uint32_t *lat_us; /* per completed request (ok or not), microseconds */
    size_t n_lat, lat_cap;
    struct cpu_snap s0, s1;
    char content_length[24];
    char last_error[256];
};

/* ------------------------------------------------------------------- time --- */

static double mono(void)
{
    struct timespec t;
    if (clock_gettime(CLOCK_MONOTONIC, &t) == -1)
        return 0;
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double self_cpu(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == -1)
        return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* utime+stime in seconds from a /proc/.../stat file, -1 if unreadable. */
static double stat_cpu(const char *path)
{
    char buf[2048];
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    /* The command name may hold spaces and parentheses: fields start after the last
       ')'. utime and stime are fields 14 and 15, i.e. the 12th and 13th after it. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p++;
    unsigned long long ut = 0, st = 0;
    for (int field = 3; field <= 15 && *p; field++) {
        while (*p == ' ')
            p++;
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        if (field == 14)
            ut = v;
        if (field == 15)
            st = v;
        p = end && end != p ? end : p + strcspn(p, " ");
    }
    long tck = sysconf(_SC_CLK_TCK);
    if (tck <= 0)
        return -1;
    return (double)(ut + st) / (double)tck;
}

/* utime+stime of |pid| in seconds (all its threads), -1 if unreadable. */
static double proc_cpu(long pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    return stat_cpu(path);
}

/* The CPU time of each thread of |pid| (at most MAX_THREADS). */
static void thread_cpus(long pid, struct cpu_snap *s)
{
    char path[64];
    s->n_thr = 0;
    snprintf(path, sizeof(path), "/proc/%ld/task", pid);
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && s->n_thr < MAX_THREADS) {
        char *end = NULL;
        errno = 0;
        long tid = strtol(e->d_name, &end, 10);
        if (errno || end == e->d_name || *end)
            continue;
        char tpath[96];
        snprintf(tpath, sizeof(tpath), "/proc/%ld/task/%ld/stat", pid, tid);
        double v = stat_cpu(tpath);
        if (v >= 0)
            s->thr[s->n_thr++] = (struct thread_cpu){tid, v};
    }
    closedir(d);
}

static long proc_rss_kib(long pid)
{
    char path[64], line[256];
    long kib = -1;
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

/* Busy and total jiffies of cpu0 and cpu1 from /proc/stat. */
static void proc_stat_cpus(unsigned long long *busy, unsigned long long *total)
{
    char line[512];
    FILE *f = fopen("/proc/stat", "r");
    busy[0] = busy[1] = total[0] = total[1] = 0;
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        int cpu = -1;
        if (strncmp(line, "cpu0 ", 5) == 0)
            cpu = 0;
        else if (strncmp(line, "cpu1 ", 5) == 0)
            cpu = 1;
        if (cpu < 0)
            continue;
        unsigned long long v[10] = {0};
        char *p = line + 5;
        for (int i = 0; i < 10; i++) {
            char *end = NULL;
            v[i] = strtoull(p, &end, 10);
            if (end == p)
                break;
            p = end;
        }
        /* user nice system idle iowait irq softirq steal guest guest_nice */
        unsigned long long idle = v[3] + v[4];
        unsigned long long all = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
        busy[cpu] = all - idle;
        total[cpu] = all;
    }
    fclose(f);
}

static void snapshot(struct gen *g, struct cpu_snap *s)
{
    s->wall = mono();
    s->self_s = self_cpu();
    s->zaslon_s = g->o.pid ? proc_cpu(g->o.pid) : 0;
    s->zaslon_rss_kib = g->o.pid ? proc_rss_kib(g->o.pid) : -1;
    s->n_thr = 0;
    if (g->o.pid)
        thread_cpus(g->o.pid, s);
    s->peers_s = 0;
    for (int i = 0; i < g->o.n_peers; i++) {
        double v = proc_cpu(g->o.peer_pids[i]);
        if (v > 0)
            s->peers_s += v;
    }
    proc_stat_cpus(s->cpu_busy, s->cpu_total);
}

/* ---------------------------------------------------------------- streams --- */

static void conn_close(struct conn *c, enum fail_kind why);
static void conn_open(struct conn *c);
static void check_done(struct gen *g);

static void stream_unlink(struct stream *s)
{
    struct conn *c = s->c;
    if (s->prev)
        s->prev->next = s->next;
    else
        c->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
}

static void stream_free(struct stream *s)
{
    free(s->body);
    free(s);
}

static void item_release(struct gen *g, size_t i)
{
    struct item *it = &g->items[i];
    free(it->sealed);
    it->sealed = NULL;
    zaslon_exchange_free(it->ex);
    it->ex = NULL;
}

static void record(struct gen *g, struct stream *s, int kind)
{
    double dt = mono() - s->t0;
    if (g->n_lat < g->lat_cap) {
        double us = dt * 1e6;
        g->lat_us[g->n_lat++] = us > 4e9 ? 4000000000u : (uint32_t)us;
    }
    if (kind < 0)
        g->ok++;
    else
        g->failed[kind]++;
}

/* Judges a finished stream. */
static void stream_finish(struct gen *g, struct stream *s)
{
    struct item *it = &g->items[s->item];
    if (s->status != 200) {
        record(g, s, F_OUTER_STATUS);
    } else if (!s->ct_ok) {
        record(g, s, F_OUTER_TYPE);
    } else {
        struct zaslon_response r;
        memset(&r, 0, sizeof(r));
        int rv =
            zaslon_open(it->ex, s->body ? s->body : (const uint8_t *)"", s->body_len, &r);
        if (rv != 0) {
            record(g, s, F_OPEN);
            snprintf(g->last_error, sizeof(g->last_error), "zaslon_open: %s",
                     zaslon_strerror(rv));
        } else if (r.status < 200 || r.status > 299) {
            if (r.status >= 0 && r.status < 600)
                g->inner_status[r.status]++;
            record(g, s, F_INNER);
        } else {
            g->inner_status[r.status]++;
            record(g, s, -1);
        }
        zaslon_response_clear(&r);
    }
    item_release(g, s->item);
}

/* ------------------------------------------------------- nghttp2 callbacks --- */

static ssize_t send_cb(nghttp2_session *session, const uint8_t *data, size_t len,
                       int flags, void *user_data)
{
    struct conn *c = user_data;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (evbuffer_get_length(out) >= OUTPUT_HIGH_WATER)
        return NGHTTP2_ERR_WOULDBLOCK;
    if (evbuffer_add(out, data, len) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return (ssize_t)len;
}

static ssize_t body_read_cb(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                            size_t length, uint32_t *data_flags,
                            nghttp2_data_source *source, void *user_data)
{
    struct stream *s = source->ptr;
    struct conn *c = user_data;
    const struct item *it = &c->g->items[s->item];
    size_t left = it->len - s->sent;
    size_t n = left < length ? left : length;
    memcpy(buf, it->sealed + s->sent, n);
    s->sent += n;
    if (s->sent == it->len)
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int on_header_cb(nghttp2_session *session, const nghttp2_frame *frame,
                        const uint8_t *name, size_t namelen, const uint8_t *value,
                        size_t valuelen, uint8_t flags, void *user_data)
{
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_RESPONSE)
        return 0;
    struct stream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!s)
        return 0;
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        int st = 0;
        for (size_t i = 0; i < valuelen && i < 3; i++)
            st = st * 10 + (value[i] - '0');
        s->status = valuelen == 3 ? st : -1;
    } else if (namelen == 12 && memcmp(name, "content-type", 12) == 0) {
        s->ct_ok = valuelen == sizeof(RES_MEDIA_TYPE) - 1 &&
                   strncasecmp((const char *)value, RES_MEDIA_TYPE, valuelen) == 0;
    }
    return 0;
}

static int on_data_cb(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                      const uint8_t *data, size_t len, void *user_data)
{
    struct stream *s = nghttp2_session_get_stream_user_data(session, stream_id);
    if (!s)
        return 0;
    if (s->body_len + len > MAX_RESPONSE_BODY) {
        /* Too big to be our answer: give up on this stream only. */
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
        s->status = -2;
        return 0;
    }
    if (s->body_len + len > s->body_cap) {
        size_t cap = s->body_cap ? s->body_cap : 2048;
        while (cap < s->body_len + len)
            cap *= 2;
        uint8_t *nb = realloc(s->body, cap);
        if (!nb) {
            nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream_id,
                                      NGHTTP2_INTERNAL_ERROR);
            s->status = -2;
            return 0;
        }
        s->body = nb;
        s->body_cap = cap;
    }
    memcpy(s->body + s->body_len, data, len);
    s->body_len += len;
    return 0;
}

static int on_frame_recv_cb(nghttp2_session *session, const nghttp2_frame *frame,
                            void *user_data)
{
    struct conn *c = user_data;
    if (frame->hd.type == NGHTTP2_GOAWAY)
        c->goaway = true;
    return 0;
}

static int on_stream_close_cb(nghttp2_session *session, int32_t stream_id,
                              uint32_t error_code, void *user_data)
{
    struct conn *c = user_data;
    struct gen *g = c->g;
    struct stream *s = nghttp2_session_get_stream_user_data(session, stream_id);
    if (!s)
        return 0;
    nghttp2_session_set_stream_user_data(session, stream_id, NULL);
    stream_unlink(s);
    c->inflight--;
    g->inflight--;
    if (error_code == NGHTTP2_REFUSED_STREAM && s->status == 0 && g->retry) {
        /* Refused before processing (GOAWAY or the stream limit): it never reached the
           gateway's replay cache, so the same sealed bytes may go again. */
        g->retry[g->n_retry++] = s->item;
        g->retried++;
    } else if (s->status == -2) {
        record(g, s, F_LOCAL);
        item_release(g, s->item);
    } else if (error_code != NGHTTP2_NO_ERROR) {
        record(g, s, F_RESET);
        item_release(g, s->item);
    } else {
        stream_finish(g, s);
    }
    stream_free(s);
    return 0;
}

/* ------------------------------------------------------------ submission --- */

/* Takes the next item to send, or returns false when there is none. */
static bool take_item(struct gen *g, size_t *out)
{
    if (g->n_retry) {
        *out = g->retry[--g->n_retry];
        return true;
    }
    if (g->next_item < g->n_items) {
        *out = g->next_item++;
        return true;
    }
    return false;
}

#define NV(n, v)                                                                         \
    {                                                                                    \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE   \
    }

/* Starts one request on |c|; false if there was nothing to send or it failed. */
static bool submit_one(struct conn *c)
{
    struct gen *g = c->g;
    size_t idx;
    if (g->stopping || c->goaway || !c->ready || !take_item(g, &idx))
        return false;
    struct stream *s = calloc(1, sizeof(*s));
    if (!s) {
        g->failed[F_LOCAL]++;
        item_release(g, idx);
        return false;
    }
    s->c = c;
    s->item = idx;
    char clen[24];
    snprintf(clen, sizeof(clen), "%zu", g->items[idx].len);
    nghttp2_nv hdrs[] = {
        NV(":method", "POST"),
        NV(":scheme", g->t.tls ? "https" : "http"),
        NV(":authority", g->t.authority),
        NV(":path", g->t.path),
        NV("content-type", REQ_MEDIA_TYPE),
        NV("content-length", clen),
    };
    nghttp2_data_provider prd = {.source = {.ptr = s}, .read_callback = body_read_cb};
    s->t0 = mono();
    int32_t id = nghttp2_submit_request(c->sess, NULL, hdrs,
                                        sizeof(hdrs) / sizeof(hdrs[0]), &prd, s);
    if (id < 0) {
        snprintf(g->last_error, sizeof(g->last_error), "nghttp2_submit_request: %s",
                 nghttp2_strerror(id));
        g->failed[F_LOCAL]++;
        item_release(g, idx);
        free(s);
        return false;
    }
    s->next = c->streams;
    if (c->streams)
        c->streams->prev = s;
    c->streams = s;
    c->inflight++;
    g->inflight++;
    return true;
}

/* Tops |c| up to M streams and sends what nghttp2 has. Returns false if |c| was
   closed. */
static bool conn_pump(struct conn *c)
{
    struct gen *g = c->g;
    while (c->inflight < g->o.streams && submit_one(c))
        ;
    int rv = nghttp2_session_send(c->sess);
    if (rv != 0) {
        snprintf(g->last_error, sizeof(g->last_error), "nghttp2_session_send: %s",
                 nghttp2_strerror(rv));
        conn_close(c, F_TRANSPORT);
        return false;
    }
    bool more = !g->stopping && !c->goaway && (g->n_retry || g->next_item < g->n_items);
    if (c->inflight == 0 && (c->goaway || !more) &&
        !nghttp2_session_want_write(c->sess)) {
        /* Done with this connection: reopen it if work remains. */
        conn_close(c, F_TRANSPORT);
        return false;
    }
    return true;
}

/* ---------------------------------------------------------- connections --- */

static void start_window(struct gen *g);

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct gen *g = c->g;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer_iovec v[16];
    for (int round = 0; round < 64 && evbuffer_get_length(in) > 0; round++) {
        int n = evbuffer_peek(in, -1, NULL, v, 16);
        if (n > 16)
            n = 16;
        size_t used = 0;
        for (int i = 0; i < n; i++) {
            ssize_t r = nghttp2_session_mem_recv(c->sess, v[i].iov_base, v[i].iov_len);
            if (r < 0) {
                snprintf(g->last_error, sizeof(g->last_error),
                         "nghttp2_session_mem_recv: %s", nghttp2_strerror((int)r));
                conn_close(c, F_TRANSPORT);
                check_done(g);
                return;
            }
            used += (size_t)r;
        }
        if (evbuffer_drain(in, used) != 0)
            break;
    }
    conn_pump(c); /* may close (and reopen) |c|: nothing below touches it */
    check_done(g);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    /* Output drained below the low-water mark: nghttp2 may have more to send. */
    if (c->sess && nghttp2_session_want_write(c->sess))
        conn_pump(c);
    check_done(c->g);
}

static bool session_init(struct conn *c)
{
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb) != 0)
        return false;
    nghttp2_session_callbacks_set_send_callback(cb, send_cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header_cb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_cb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv_cb);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close_cb);
    int rv = nghttp2_session_client_new(&c->sess, cb, c);
    nghttp2_session_callbacks_del(cb);
    if (rv != 0) {
        c->sess = NULL;
        return false;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20},
    };
    if (nghttp2_submit_settings(c->sess, NGHTTP2_FLAG_NONE, iv, 2) != 0 ||
        nghttp2_session_set_local_window_size(c->sess, NGHTTP2_FLAG_NONE, 0, 1 << 24) !=
            0)
        return false;
    return true;
}

static void event_cb(struct bufferevent *bev, short events, void *arg)
{
    struct conn *c = arg;
    struct gen *g = c->g;
    if (events & BEV_EVENT_CONNECTED) {
        if (g->t.tls) {
            SSL *ssl = bufferevent_openssl_get_ssl(bev);
            const unsigned char *alpn = NULL;
            unsigned int alpn_len = 0;
            SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
            if (alpn_len != 2 || memcmp(alpn, "h2", 2) != 0) {
                snprintf(g->last_error, sizeof(g->last_error),
                         "server did not select h2");
                conn_close(c, F_TRANSPORT);
                check_done(g);
                return;
            }
        }
        int one = 1;
        evutil_socket_t fd = bufferevent_getfd(bev);
        if (fd != -1 &&
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1) {
            snprintf(g->last_error, sizeof(g->last_error), "TCP_NODELAY: %s",
                     strerror(errno));
        }
        if (!session_init(c)) {
            snprintf(g->last_error, sizeof(g->last_error), "nghttp2 session setup");
            conn_close(c, F_TRANSPORT);
            check_done(g);
            return;
        }
        bufferevent_set_timeouts(bev, NULL, NULL);
        c->ready = true;
        if (!g->started) {
            g->ready_conns++;
            if (g->ready_conns + g->failed_conns == g->o.conns)
                start_window(g);
        } else {
            conn_pump(c);
        }
        return;
    }
    if (events & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
        if (events & BEV_EVENT_ERROR) {
            unsigned long e = bufferevent_get_openssl_error(bev);
            int se = EVUTIL_SOCKET_ERROR();
            if (e)
                snprintf(g->last_error, sizeof(g->last_error), "TLS: %s",
                         ERR_reason_error_string(e));
            else
                snprintf(g->last_error, sizeof(g->last_error), "socket: %s",
                         evutil_socket_error_to_string(se));
        } else if (events & BEV_EVENT_TIMEOUT) {
            snprintf(g->last_error, sizeof(g->last_error), "connect timeout");
        }
        bool was_ready = c->ready;
        conn_close(c, F_TRANSPORT);
        if (!was_ready && !g->started) {
            g->failed_conns++;
            if (g->ready_conns + g->failed_conns == g->o.conns)
                start_window(g);
        }
        check_done(g);
    }
}

/* Tears |c| down (its in-flight streams fail as |why|) and, when work remains and
   its reconnect budget allows, opens it again. */
static void conn_close(struct conn *c, enum fail_kind why)
{
    struct gen *g = c->g;
    while (c->streams) {
        struct stream *s = c->streams;
        stream_unlink(s);
        c->inflight--;
        g->inflight--;
        record(g, s, (int)why);
        item_release(g, s->item);
        stream_free(s);
    }
    if (c->sess) {
        nghttp2_session_del(c->sess);
        c->sess = NULL;
    }
    if (c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    bool was_ready = c->ready;
    c->ready = false;
    c->goaway = false;
    bool more = !g->stopping && (g->n_retry || g->next_item < g->n_items);
    if (g->started && was_ready && more && c->reconnects < MAX_RECONNECTS_PER_CONN) {
        c->reconnects++;
        g->reconnects++;
        conn_open(c);
    }
}

static void conn_open(struct conn *c)
{
    struct gen *g = c->g;
    int opt = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;
    if (g->t.tls) {
        SSL *ssl = SSL_new(g->ssl_ctx);
        if (!ssl)
            goto fail;
        const char *sni = g->o.sni ? g->o.sni : g->t.host_is_addr ? NULL : g->t.host;
        if ((sni && SSL_set_tlsext_host_name(ssl, sni) != 1) ||
            (!g->o.insecure &&
             (g->t.host_is_addr
                  ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), g->t.host) != 1
                  : SSL_set1_host(ssl, sni ? sni : g->t.host) != 1))) {
            SSL_free(ssl);
            goto fail;
        }
        /* On success the bufferevent owns |ssl| (BEV_OPT_CLOSE_ON_FREE). */
        c->bev = bufferevent_openssl_socket_new(g->base, -1, ssl,
                                                BUFFEREVENT_SSL_CONNECTING, opt);
        if (!c->bev) {
            SSL_free(ssl);
            goto fail;
        }
        bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    } else {
        c->bev = bufferevent_socket_new(g->base, -1, opt);
        if (!c->bev)
            goto fail;
    }
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    struct timeval ct = {CONNECT_TIMEOUT_S, 0};
    bufferevent_set_timeouts(c->bev, &ct, &ct);
    if (bufferevent_enable(c->bev, EV_READ | EV_WRITE) != 0 ||
        bufferevent_socket_connect(c->bev, g->addr->ai_addr, (int)g->addr->ai_addrlen) !=
            0) {
        bufferevent_free(c->bev);
        c->bev = NULL;
        goto fail;
    }
    return;
fail:
    snprintf(g->last_error, sizeof(g->last_error), "cannot open connection %d", c->slot);
    if (!g->started) {
        g->failed_conns++;
        if (g->ready_conns + g->failed_conns == g->o.conns)
            start_window(g);
    }
}

/* ------------------------------------------------------------- the window --- */

static void finish(struct gen *g)
{
    if (g->finished)
        return;
    g->finished = true;
    snapshot(g, &g->s1);
    event_base_loopbreak(g->base);
}

static void check_done(struct gen *g)
{
    if (!g->started || g->finished)
        return;
    bool more = !g->stopping && (g->n_retry || g->next_item < g->n_items);
    bool any_conn = false;
    for (int i = 0; i < g->o.conns; i++)
        any_conn |= g->conns[i].bev != NULL;
    if (g->inflight == 0 && (!more || !any_conn))
        finish(g);
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gen *g = arg;
    /* -D elapsed: no new requests; those in flight finish. */
    g->stopping = true;
    check_done(g);
}

static void hard_cb(evutil_socket_t fd, short what, void *arg)
{
    struct gen *g = arg;
    g->stopping = true;
    finish(g);
}

static void start_window(struct gen *g)
{
    if (g->started)
        return;
    g->started = true;
    if (g->ready_conns == 0) {
        g->finished = true;
        event_base_loopbreak(g->base);
        return;
    }
    snapshot(g, &g->s0);
    double hard = g->o.timeout > 0    ? g->o.timeout
                  : g->o.duration > 0 ? g->o.duration + 30
                                      : 300;
    struct timeval tv = {(time_t)hard,
                         (suseconds_t)((hard - (double)(time_t)hard) * 1e6)};
    if (event_add(g->hard_ev, &tv) != 0) {
        /* Without its bound the run may not start. */
        snprintf(g->last_error, sizeof(g->last_error), "cannot arm the hard timeout");
        g->finished = true;
        event_base_loopbreak(g->base);
        return;
    }
    if (g->o.duration > 0) {
        double d = g->o.duration;
        struct timeval dv = {(time_t)d, (suseconds_t)((d - (double)(time_t)d) * 1e6)};
        if (event_add(g->stop_ev, &dv) != 0)
            g->stopping = true; /* no -D bound: send nothing rather than run unbounded */
    }
    for (int i = 0; i < g->o.conns; i++)
        if (g->conns[i].ready)
            conn_pump(&g->conns[i]);
    check_done(g);
}

/* ---------------------------------------------------------------- setup --- */

static int usage(void)
{
    fprintf(stderr,
            "usage: zl_sealload --keys FILE [-c C] [-m M] [-n N] [-D SECONDS]\n"
            "         [--inner URL] [--body-size BYTES] [--insecure | --cacert FILE]\n"
            "         [--sni NAME] [--tls13-ciphers LIST] [--pid PID] [--peer-pid PID]\n"
            "         [--cpu N] [--preseal-limit S] [--timeout S] [--quiet] URL\n");
    return 2;
}

static bool parse_long(const char *s, long lo, long hi, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || !end || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool parse_double(const char *s, double lo, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || !end || end == s || *end || !(v >= lo && v <= hi))
        return false;
    *out = v;
    return true;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.inner = INNER_URL_DEFAULT,
                       .body_size = 120,
                       .conns = 16,
                       .streams = 16,
                       .requests = 100000,
                       .cpu = -1,
                       .preseal_limit = 40};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        if (strcmp(a, "--insecure") == 0) {
            o->insecure = true;
            continue;
        }
        if (strcmp(a, "--quiet") == 0) {
            o->quiet = true;
            continue;
        }
        if (a[0] != '-') {
            if (o->url)
                return -1;
            o->url = a;
            continue;
        }
        if (!v)
            return -1;
        i++;
        if (strcmp(a, "--keys") == 0) {
            o->keys_file = v;
        } else if (strcmp(a, "-c") == 0 && parse_long(v, 1, MAX_CONNS, &n)) {
            o->conns = (int)n;
        } else if (strcmp(a, "-m") == 0 && parse_long(v, 1, MAX_STREAMS, &n)) {
            o->streams = (int)n;
        } else if (strcmp(a, "-n") == 0 && parse_long(v, 1, MAX_REQUESTS, &n)) {
            o->requests = n;
        } else if (strcmp(a, "-D") == 0 && parse_double(v, 0.1, 3600, &o->duration)) {
        } else if (strcmp(a, "--inner") == 0) {
            o->inner = v;
        } else if (strcmp(a, "--body-size") == 0 && parse_long(v, 0, 60000, &n)) {
            o->body_size = (size_t)n;
        } else if (strcmp(a, "--cacert") == 0) {
            o->cacert = v;
        } else if (strcmp(a, "--sni") == 0) {
            o->sni = v;
        } else if (strcmp(a, "--tls13-ciphers") == 0) {
            o->tls13_ciphers = v;
        } else if (strcmp(a, "--pid") == 0 && parse_long(v, 1, 1L << 30, &n)) {
            o->pid = n;
        } else if (strcmp(a, "--peer-pid") == 0 && o->n_peers < MAX_PEERS &&
                   parse_long(v, 1, 1L << 30, &n)) {
            o->peer_pids[o->n_peers++] = n;
        } else if (strcmp(a, "--cpu") == 0 && parse_long(v, 0, CPU_SETSIZE - 1, &n)) {
            o->cpu = (int)n;
        } else if (strcmp(a, "--preseal-limit") == 0 &&
                   parse_double(v, 1, 600, &o->preseal_limit)) {
        } else if (strcmp(a, "--timeout") == 0 && parse_double(v, 1, 7200, &o->timeout)) {
        } else {
            return -1;
        }
    }
    if (!o->url || !o->keys_file)
        return -1;
    return 0;
}

static int parse_url(const char *url, struct target *t)
{
    memset(t, 0, sizeof(*t));
    const char *rest;
    if (strncmp(url, "https://", 8) == 0) {
        t->tls = true;
        rest = url + 8;
    } else if (strncmp(url, "http://", 7) == 0) {
        rest = url + 7;
    } else {
        return -1;
    }
    size_t alen = strcspn(rest, "/?#");
    if (alen == 0 || alen >= sizeof(t->authority))
        return -1;
    memcpy(t->authority, rest, alen);
    t->authority[alen] = 0;
    const char *path = rest + alen;
    size_t plen = strcspn(path, "#");
    if (plen >= sizeof(t->path) - 1)
        return -1;
    if (plen == 0 || path[0] != '/') {
        t->path[0] = '/';
        memcpy(t->path + 1, path, plen);
        t->path[plen + 1] = 0;
    } else {
        memcpy(t->path, path, plen);
        t->path[plen] = 0;
    }
    const char *a = t->authority, *port = NULL;
    size_t hlen;
    if (a[0] == '[') {
        const char *rb = strchr(a, ']');
        if (!rb)
            return -1;
        hlen = (size_t)(rb - a - 1);
        if (hlen >= sizeof(t->host))
            return -1;
        memcpy(t->host, a + 1, hlen);
        if (rb[1] == ':')
            port = rb + 2;
        else if (rb[1])
            return -1;
    } else {
        const char *colon = strchr(a, ':');
        hlen = colon ? (size_t)(colon - a) : strlen(a);
        if (hlen == 0 || hlen >= sizeof(t->host))
            return -1;
        memcpy(t->host, a, hlen);
        port = colon ? colon + 1 : NULL;
    }
    t->host[hlen] = 0;
    const char *p = port && *port ? port : t->tls ? "443" : "80";
    long pn;
    if (!parse_long(p, 1, 65535, &pn))
        return -1;
    snprintf(t->port, sizeof(t->port), "%ld", pn);
    struct in6_addr tmp;
    t->host_is_addr =
        inet_pton(AF_INET, t->host, &tmp) == 1 || inet_pton(AF_INET6, t->host, &tmp) == 1;
    return 0;
}

static int read_file(const char *path, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    uint8_t *buf = malloc(MAX_KEYS_FILE + 1);
    if (!buf) {
        fclose(f);
        return -1;
    }
    size_t n = fread(buf, 1, MAX_KEYS_FILE + 1, f);
    bool err = ferror(f) != 0;
    fclose(f);
    if (err || n == 0 || n > MAX_KEYS_FILE) {
        free(buf);
        return -1;
    }
    *out = buf;
    *len = n;
    return 0;
}

static int setup_tls(struct gen *g)
{
    g->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (!g->ssl_ctx)
        return -1;
    static const unsigned char alpn[] = "\x02h2";
    if (SSL_CTX_set_min_proto_version(g->ssl_ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_alpn_protos(g->ssl_ctx, alpn, sizeof(alpn) - 1) != 0)
        return -1;
    if (g->o.tls13_ciphers &&
        SSL_CTX_set_ciphersuites(g->ssl_ctx, g->o.tls13_ciphers) != 1)
        return -1;
    if (g->o.insecure) {
        SSL_CTX_set_verify(g->ssl_ctx, SSL_VERIFY_NONE, NULL);
    } else {
        if (SSL_CTX_load_verify_locations(g->ssl_ctx, g->o.cacert, NULL) != 1)
            return -1;
        SSL_CTX_set_verify(g->ssl_ctx, SSL_VERIFY_PEER, NULL);
    }
    return 0;
}

/* Seals the requests ahead of the window. Returns the number sealed (at least 1), or 0
   on failure. */
static size_t preseal(struct gen *g, struct zaslon_client *zc, double *secs,
                      double *cpu_s)
{
    uint8_t *body = NULL;
    if (g->o.body_size) {
        body = malloc(g->o.body_size);
        if (!body)
            return 0;
        memset(body, 'v', g->o.body_size);
    }
    struct zaslon_header hs[2] = {{"content-type", "application/json"},
                                  {"accept", "application/json"}};
    struct zaslon_request r = {.method = g->o.body_size ? "POST" : "GET",
                               .url = g->o.inner,
                               .headers = hs,
                               .nheaders = g->o.body_size ? 2 : 1,
                               .body = body,
                               .body_len = g->o.body_size};
    if (!g->o.body_size)
        hs[0] = hs[1];
    double t0 = mono(), c0 = self_cpu();
    size_t n = 0;
    for (; n < (size_t)g->o.requests; n++) {
        struct item *it = &g->items[n];
        int rv = zaslon_seal(zc, &r, &it->sealed, &it->len, &it->ex);
        if (rv != 0) {
            fprintf(stderr, "zl_sealload: zaslon_seal: %s\n", zaslon_strerror(rv));
            n = 0;
            break;
        }
        if ((n & 1023) == 1023 && mono() - t0 > g->o.preseal_limit) {
            n++;
            fprintf(stderr,
                    "zl_sealload: pre-sealing stopped after %.0f s at %zu requests "
                    "(--preseal-limit): the run sends only those\n",
                    g->o.preseal_limit, n);
            break;
        }
    }
    *secs = mono() - t0;
    *cpu_s = self_cpu() - c0;
    free(body);
    return n;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_double_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x > y ? -1 : x < y;
}

static double pct_ms(const uint32_t *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i] / 1000.0;
}

static void report(struct gen *g, double seal_s, double seal_cpu)
{
    const struct cpu_snap *a = &g->s0, *b = &g->s1;
    double secs = b->wall - a->wall;
    uint64_t failed = 0;
    for (int k = 0; k < F_KINDS; k++)
        failed += g->failed[k];
    uint64_t done = g->ok + failed;
    /* Sent but never answered (the hard timeout) vs never sent (-D ended first). */
    uint64_t taken = g->next_item, pending = g->n_retry;
    uint64_t unfinished = taken > done + pending ? taken - done - pending : 0;
    uint64_t unsent = g->n_items - g->next_item + pending;
    double rps = secs > 0 ? (double)g->ok / secs : 0;
    qsort(g->lat_us, g->n_lat, sizeof(uint32_t), cmp_u32);
    double p50 = pct_ms(g->lat_us, g->n_lat, 0.50),
           p90 = pct_ms(g->lat_us, g->n_lat, 0.90),
           p99 = pct_ms(g->lat_us, g->n_lat, 0.99),
           pmax = g->n_lat ? g->lat_us[g->n_lat - 1] / 1000.0 : 0;
    double gen_cpu = b->self_s - a->self_s;
    double gen_pct = secs > 0 ? 100.0 * gen_cpu / secs : 0;
    double z_cpu = g->o.pid ? b->zaslon_s - a->zaslon_s : 0;
    double z_us = g->ok && g->o.pid ? z_cpu * 1e6 / (double)done : 0;
    double peers = b->peers_s - a->peers_s;
    double busy[2];
    for (int i = 0; i < 2; i++) {
        unsigned long long tot = b->cpu_total[i] - a->cpu_total[i];
        busy[i] =
            tot ? 100.0 * (double)(b->cpu_busy[i] - a->cpu_busy[i]) / (double)tot : 0;
    }
    /* Busy threads of zaslon over the window, busiest first: how evenly the workers
       shared the load. */
    char thr_list[256] = "";
    {
        double d[MAX_THREADS];
        int nd = 0;
        for (int i = 0; i < b->n_thr; i++) {
            double before = 0;
            for (int j = 0; j < a->n_thr; j++)
                if (a->thr[j].tid == b->thr[i].tid)
                    before = a->thr[j].s;
            if (b->thr[i].s - before >= 0.005)
                d[nd++] = b->thr[i].s - before;
        }
        qsort(d, (size_t)nd, sizeof(double), cmp_double_desc);
        size_t pos = 0;
        for (int i = 0; i < nd && pos < sizeof(thr_list) - 16; i++) {
            int w = snprintf(thr_list + pos, sizeof(thr_list) - pos, "%s%.2f",
                             i ? "," : "", d[i]);
            if (w < 0)
                break;
            pos += (size_t)w;
        }
    }
    if (!g->o.quiet) {
        printf("zl_sealload: %s, %d connections x %d streams, %zu fresh sealed requests "
               "(%zu bytes each)\n",
               g->o.url, g->o.conns, g->o.streams, g->n_items,
               g->n_items ? g->items[0].len : (size_t)0);
        printf("  pre-sealed in %.2f s: %.1f us of generator CPU per zaslon_seal (not in "
               "the window)\n",
               seal_s, g->n_items ? seal_cpu * 1e6 / (double)g->n_items : 0);
        printf("  window: %.3f s%s\n", secs,
               g->stopping ? " (stopped by -D or timeout)" : "");
        printf("  requests: %" PRIu64 " ok, %" PRIu64 " failed, %" PRIu64
               " unfinished (sent, no answer); %" PRIu64 " sealed but not sent; %" PRIu64
               " refused-and-resent, %" PRIu64 " reconnects\n",
               g->ok, failed, unfinished, unsent, g->retried, g->reconnects);
        for (int k = 0; k < F_KINDS; k++)
            if (g->failed[k])
                printf("    %-30s %" PRIu64 "\n", fail_names[k], g->failed[k]);
        for (int s = 0; s < 600; s++)
            if (g->inner_status[s] && (s < 200 || s > 299))
                printf("    inner status %d: %" PRIu64 "\n", s, g->inner_status[s]);
        if (g->last_error[0])
            printf("    last error: %s\n", g->last_error);
        printf("  throughput: %.0f sealed requests/s ok\n", rps);
        printf("  latency: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n", p50,
               p90, p99, pmax);
        printf("  generator CPU: %.2f s = %.0f%% of one core, %.1f us per request%s\n",
               gen_cpu, gen_pct, done ? gen_cpu * 1e6 / (double)done : 0,
               gen_pct > 90 ? "  <-- the generator was (nearly) saturated" : "");
        if (g->o.pid)
            printf("  zaslon CPU (pid %ld): %.2f s = %.2f cores busy; %.1f us per sealed "
                   "request -> %.0f sealed requests/s per core; RSS %ld -> %ld KiB\n",
                   g->o.pid, z_cpu, secs > 0 ? z_cpu / secs : 0, z_us,
                   z_us > 0 ? 1e6 / z_us : 0, a->zaslon_rss_kib, b->zaslon_rss_kib);
        if (g->o.pid && thr_list[0])
            printf("  zaslon threads busy over the window (CPU s): %s\n", thr_list);
        if (g->o.n_peers)
            printf("  peer processes CPU: %.2f s, %.1f us per request\n", peers,
                   done ? peers * 1e6 / (double)done : 0);
        printf("  machine: cpu0 %.0f%% busy, cpu1 %.0f%% busy over the window\n", busy[0],
               busy[1]);
    }
    printf(
        "RESULT ok=%" PRIu64 " failed=%" PRIu64 " unfinished=%" PRIu64 " unsent=%" PRIu64
        " seconds=%.3f rps=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f "
        "gen_cpu_pct=%.1f gen_cpu_us=%.1f zaslon_cpu_s=%.3f zaslon_cpu_us=%.2f "
        "zaslon_per_core_rps=%.0f zaslon_cores=%.3f peer_cpu_us=%.1f cpu0_busy=%.1f "
        "cpu1_busy=%.1f rss_kib_before=%ld rss_kib_after=%ld reconnects=%" PRIu64
        " seal_us=%.1f zaslon_threads=%s\n",
        g->ok, failed, unfinished, unsent, secs, rps, p50, p90, p99, pmax, gen_pct,
        done ? gen_cpu * 1e6 / (double)done : 0, z_cpu, z_us, z_us > 0 ? 1e6 / z_us : 0,
        secs > 0 ? z_cpu / secs : 0, done ? peers * 1e6 / (double)done : 0, busy[0],
        busy[1], a->zaslon_rss_kib, b->zaslon_rss_kib, g->reconnects,
        g->n_items ? seal_cpu * 1e6 / (double)g->n_items : 0,
        thr_list[0] ? thr_list : "-");
}

int main(int argc, char **argv)
{
    static struct gen g;
    struct zaslon_client *zc = NULL;
    uint8_t *keys = NULL;
    size_t keys_len = 0;
    int rc = 1;

    if (parse_opts(argc, argv, &g.o) != 0)
        return usage();
    if (parse_url(g.o.url, &g.t) != 0) {
        fprintf(stderr, "zl_sealload: bad URL %s\n", g.o.url);
        return 2;
    }
    if (g.t.tls && !g.o.insecure && !g.o.cacert) {
        fprintf(stderr, "zl_sealload: https needs --insecure or --cacert\n");
        return 2;
    }
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
        perror("zl_sealload: signal");
        return 1;
    }
    if (g.o.cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(g.o.cpu, &set);
        if (sched_setaffinity(0, sizeof(set), &set) == -1) {
            perror("zl_sealload: sched_setaffinity");
            return 1;
        }
    }
    if (read_file(g.o.keys_file, &keys, &keys_len) != 0) {
        fprintf(stderr, "zl_sealload: cannot read key configurations from %s\n",
                g.o.keys_file);
        return 1;
    }
    int rv = zaslon_client_new(NULL, &zc);
    if (rv == 0)
        rv = zaslon_client_set_keys(zc, keys, keys_len);
    free(keys);
    if (rv != 0) {
        fprintf(stderr, "zl_sealload: key configurations: %s\n", zaslon_strerror(rv));
        goto out;
    }

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    rv = getaddrinfo(g.t.host, g.t.port, &hints, &g.addr);
    if (rv != 0) {
        fprintf(stderr, "zl_sealload: %s: %s\n", g.t.host, gai_strerror(rv));
        g.addr = NULL;
        goto out;
    }
    if (g.t.tls && setup_tls(&g) != 0) {
        fprintf(stderr, "zl_sealload: TLS setup failed (CA file, cipher list?)\n");
        goto out;
    }

    g.items = calloc((size_t)g.o.requests, sizeof(*g.items));
    g.retry = calloc((size_t)g.o.requests, sizeof(*g.retry));
    g.conns = calloc((size_t)g.o.conns, sizeof(*g.conns));
    if (!g.items || !g.retry || !g.conns) {
        fprintf(stderr, "zl_sealload: out of memory\n");
        goto out;
    }
    double seal_s = 0, seal_cpu = 0;
    g.n_items = preseal(&g, zc, &seal_s, &seal_cpu);
    if (g.n_items == 0)
        goto out;
    /* A request finishes once (a resent one was not finished the first time). */
    g.lat_cap = g.n_items + 16;
    g.lat_us = calloc(g.lat_cap, sizeof(uint32_t));
    if (!g.lat_us) {
        fprintf(stderr, "zl_sealload: out of memory\n");
        goto out;
    }
    if (!g.o.quiet)
        fprintf(stderr, "zl_sealload: %zu requests sealed in %.1f s; connecting\n",
                g.n_items, seal_s);

    g.base = event_base_new();
    if (!g.base)
        goto out;
    g.stop_ev = evtimer_new(g.base, stop_cb, &g);
    g.hard_ev = evtimer_new(g.base, hard_cb, &g);
    if (!g.stop_ev || !g.hard_ev)
        goto out;
    for (int i = 0; i < g.o.conns; i++) {
        g.conns[i].g = &g;
        g.conns[i].slot = i;
        conn_open(&g.conns[i]);
    }
    /* Connection set-up is bounded by CONNECT_TIMEOUT_S per connection; the window by
       the hard timer. */
    if (!g.started || !g.finished)
        event_base_dispatch(g.base);
    if (g.ready_conns == 0) {
        fprintf(stderr, "zl_sealload: no connection could be opened: %s\n", g.last_error);
        goto out;
    }
    if (!g.finished)
        finish(&g);
    report(&g, seal_s, seal_cpu);
    uint64_t failed = 0;
    for (int k = 0; k < F_KINDS; k++)
        failed += g.failed[k];
    rc = failed == 0 && g.ok + g.n_retry + (g.n_items - g.next_item) == g.n_items ? 0 : 3;
out:
    if (g.conns) {
        g.stopping = true;
        g.started = false; /* no reconnects while tearing down */
        for (int i = 0; i < g.o.conns; i++)
            if (g.conns[i].bev || g.conns[i].sess) {
                struct conn *c = &g.conns[i];
                while (c->streams) {
                    struct stream *s = c->streams;
                    stream_unlink(s);
                    stream_free(s);
                }
                if (c->sess)
                    nghttp2_session_del(c->sess);
                if (c->bev)
                    bufferevent_free(c->bev);
                c->sess = NULL;
                c->bev = NULL;
            }
    }
    for (size_t i = 0; g.items && i < g.n_items; i++)
        item_release(&g, i);
    if (g.stop_ev)
        event_free(g.stop_ev);
    if (g.hard_ev)
        event_free(g.hard_ev);
    if (g.base)
        event_base_free(g.base);
    if (g.ssl_ctx)
        SSL_CTX_free(g.ssl_ctx);
    if (g.addr)
        freeaddrinfo(g.addr);
    free(g.items);
    free(g.retry);
    free(g.conns);
    free(g.lat_us);
    zaslon_client_free(zc);
    return rc;
}
