/* failalloc: an LD_PRELOAD shim that makes every Nth heap allocation fail (NULL, errno
   ENOMEM), to prove that out-of-memory while serving ends the affected stream or
   connection and never the process (tests/integration/test_allocfail.py).

   Environment:
     ZL_FAILALLOC_EVERY=N   fail every Nth counted call (0 or unset: never fail)
     ZL_FAILALLOC_AFTER=K   let the first K counted calls through (default 0)
     ZL_FAILALLOC_ARM=FILE  count and fail only while FILE exists (checked at most every
                            10 ms), so start-up succeeds and the test decides when
                            failing starts and stops; unset: armed from the start
     ZL_FAILALLOC_REPORT=FILE  rewritten with "calls=C failed=F" whenever failing is
                            disarmed and at exit

   Spared: allocations made inside two library calls are never failed, because the
   library itself does not survive it (libevent's and nghttp2's bugs, not ours):
   - libevent 2.1.12: the error path of bufferevent_openssl_socket_new frees its
     half-built bufferevent and crashes (checked with a small program against Debian's
     libevent).
   - nghttp2 1.52: after nghttp2_session_mem_send fails with NGHTTP2_ERR_NOMEM,
     nghttp2_session_del aborts on an assertion in nghttp2_outbound_item_free (seen
     under this shim; not reproduced in a small program).
   The shim wraps those two and passes allocations made inside them through. A third,
   bufferevent_setwatermark with a read high-water mark (libevent dereferences the
   unchecked result of evbuffer_add_cb), is no longer spared: zaslon sets no read
   watermark and keeps its read limits itself (tp_h1.c set_reading, tp_upstream.c
   conn_watch_input); write watermarks allocate nothing.

   malloc, calloc, realloc, memalign, posix_memalign, aligned_alloc, valloc and pvalloc
   are replaced; free is not (the memory still comes from glibc's allocator through its
   __libc_* entry points, which also avoids the dlsym-calls-calloc recursion). The shim
   itself never allocates. Not for sanitizer builds: ASan has its own allocator and
   refuses to run with a preloaded one. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void *__libc_malloc(size_t size);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t size);
void *__libc_memalign(size_t align, size_t size);
void *__libc_valloc(size_t size);
void *__libc_pvalloc(size_t size);

/* Nesting depth of spared library calls on this thread. initial-exec: the shim is
   preloaded, so its TLS is static and reading it never allocates. */
static __thread unsigned spared __attribute__((tls_model("initial-exec")));

static uint64_t every, after;
static const char *arm_path, *report_path;
static atomic_bool ready;
static atomic_bool armed;
static atomic_uint_least64_t calls, failed;
static atomic_int_least64_t next_check_ms;

static uint64_t env_u64(const char *name)
{
    const char *s = getenv(name);
    uint64_t v = 0;
    for (; s && *s >= '0' && *s <= '9'; s++)
        v = v * 10 + (uint64_t)(*s - '0');
    return v;
}

static size_t put_u64(char *buf, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    return n;
}

static void write_report(void)
{
    if (!report_path)
        return;
    char line[80];
    size_t n = 0;
    memcpy(line, "calls=", 6);
    n += 6;
    n += put_u64(line + n, atomic_load(&calls));
    memcpy(line + n, " failed=", 8);
    n += 8;
    n += put_u64(line + n, atomic_load(&failed));
    line[n++] = '\n';
    int fd = open(report_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd == -1)
        return;
    if (write(fd, line, n) != (ssize_t)n) {
        /* nothing to do: the test reads the file and fails without it */
    }
    close(fd);
}

__attribute__((constructor)) static void failalloc_init(void)
{
    every = env_u64("ZL_FAILALLOC_EVERY");
    after = env_u64("ZL_FAILALLOC_AFTER");
    arm_path = getenv("ZL_FAILALLOC_ARM");
    report_path = getenv("ZL_FAILALLOC_REPORT");
    atomic_store(&armed, arm_path == NULL);
    atomic_store(&ready, every != 0);
}

__attribute__((destructor)) static void failalloc_fini(void)
{
    atomic_store(&ready, false);
    write_report();
}

/* Re-reads the arm file at most every 10 ms (a vDSO clock read otherwise). */
static bool is_armed(void)
{
    if (!arm_path)
        return true;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    int_least64_t now = (int_least64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    int_least64_t due = atomic_load_explicit(&next_check_ms, memory_order_relaxed);
    if (now >= due && atomic_compare_exchange_strong(&next_check_ms, &due, now + 10)) {
        bool on = access(arm_path, F_OK) == 0;
        bool was = atomic_exchange(&armed, on);
        if (was && !on)
            write_report();
    }
    return atomic_load_explicit(&armed, memory_order_relaxed);
}

static bool should_fail(void)
{
    if (!atomic_load_explicit(&ready, memory_order_relaxed) || spared || !is_armed())
        return false;
    uint64_t c = atomic_fetch_add(&calls, 1) + 1;
    if (c <= after || (c - after) % every != 0)
        return false;
    atomic_fetch_add(&failed, 1);
    errno = ENOMEM;
    return true;
}

void *malloc(size_t size)
{
    return should_fail() ? NULL : __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
    /* realloc(p, 0) frees: never turn that into a failure */
    if (size != 0 && should_fail())
        return NULL;
    return __libc_realloc(p, size);
}

void *memalign(size_t align, size_t size)
{
    return should_fail() ? NULL : __libc_memalign(align, size);
}

void *aligned_alloc(size_t align, size_t size)
{
    return should_fail() ? NULL : __libc_memalign(align, size);
}

int posix_memalign(void **out, size_t align, size_t size)
{
    if (align < sizeof(void *) || (align & (align - 1)) != 0)
        return EINVAL;
    if (should_fail())
        return ENOMEM;
    void *p = __libc_memalign(align, size);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

void *valloc(size_t size)
{
    return should_fail() ? NULL : __libc_valloc(size);
}

void *pvalloc(size_t size)
{
    return should_fail() ? NULL : __libc_pvalloc(size);
}

/* ------------------------------------------------------------- spared calls --- */

struct bufferevent;
struct event_base;
struct ssl_st;

struct bufferevent *bufferevent_openssl_socket_new(struct event_base *base, int fd,
                                                   struct ssl_st *ssl, int state,
                                                   int options);

struct bufferevent *bufferevent_openssl_socket_new(struct event_base *base, int fd,
                                                   struct ssl_st *ssl, int state,
                                                   int options)
{
    static struct bufferevent *(*real)(struct event_base *, int, struct ssl_st *, int, int);
    spared++;
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "bufferevent_openssl_socket_new");
    struct bufferevent *bev = real(base, fd, ssl, state, options);
    spared--;
    return bev;
}

struct nghttp2_session;
long nghttp2_session_mem_send(struct nghttp2_session *session, const unsigned char **data);

long nghttp2_session_mem_send(struct nghttp2_session *session, const unsigned char **data)
{
    static long (*real)(struct nghttp2_session *, const unsigned char **);
    spared++;
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "nghttp2_session_mem_send");
    long n = real(session, data);
    spared--;
    return n;
}
