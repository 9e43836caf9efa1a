#include "gw_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Each line is formatted into a stack buffer and written with one write(2) on an
   O_APPEND, O_NONBLOCK descriptor, so lines from several workers never interleave, no
   lock is needed and a write never waits: a pipe or FIFO nobody drains answers EAGAIN
   and a full disk ENOSPC. A line that cannot be written whole is dropped and counted,
   and the count is written into that log, ahead of the next line, once writing works
   again.

   Reopening (SIGUSR1, after logrotate moved the file or the directory came back) opens
   the path afresh and dup2()s the new descriptor onto the old number. dup2 swaps the
   file behind a number atomically, so workers writing at that moment reach either the
   old file or the new one and the number they read never changes or dangles. */
struct log_file {
    int fd;           /* -1: off; STDERR_FILENO: stderr, never closed or reopened */
    char *path;       /* NULL for stderr or off */
    atomic_uint_least64_t dropped; /* since start */
    atomic_uint_least64_t pending; /* dropped and not yet reported in this log */
    atomic_bool torn; /* a short write left a fragment without its newline */
};

static struct log_file error_log = {.fd = STDERR_FILENO};
static struct log_file access_log = {.fd = -1};
static enum gw_log_level max_level = GW_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* A FIFO without a reader refuses O_WRONLY | O_NONBLOCK with ENXIO; opening it
   read-write instead makes us a reader of last resort, so the pipe buffer fills and
   later lines are dropped on EAGAIN until a real reader comes. */
static int open_append(const char *path)
{
    int flags = O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK;
    int fd = open(path, O_WRONLY | flags, 0640);
    if (fd == -1 && errno == ENXIO)
        fd = open(path, O_RDWR | flags, 0640);
    return fd;
}

static void log_file_clear(struct log_file *lf, int fd_after)
{
    if (lf->fd != -1 && lf->fd != STDERR_FILENO)
        close(lf->fd);
    lf->fd = fd_after;
    free(lf->path);
    lf->path = NULL;
}

/* Called before the workers start: no writer can race with it. */
static int log_file_open(struct log_file *lf, const char *path, int fd_if_stderr)
{
    if (!path) {
        log_file_clear(lf, -1);
        return 0;
    }
    if (strcmp(path, "stderr") == 0) {
        log_file_clear(lf, fd_if_stderr);
        return 0;
    }
    char *copy = strdup(path);
    if (!copy)
        return -1;
    int fd = open_append(path);
    if (fd == -1) {
        free(copy);
        return -1;
    }
    log_file_clear(lf, fd);
    lf->path = copy;
    return 0;
}

int gw_log_open(const char *path, enum gw_log_level level)
{
    max_level = level;
    return log_file_open(&error_log, path, STDERR_FILENO);
}

int gw_log_access_open(const char *path)
{
    return log_file_open(&access_log, path, STDERR_FILENO);
}

static size_t stamp(char *buf, size_t cap)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    int m = snprintf(buf + n, cap - n, ".%03ldZ ", ts.tv_nsec / 1000000);
    return m > 0 ? n + (size_t)m : n;
}

/* Writes one whole line; false if it was not written whole. A short write (the last
   free block of a filesystem) leaves a fragment behind: the log is marked torn so the
   next line written starts on a line of its own. */
static bool write_line(struct log_file *lf, const char *line, size_t len)
{
    if (lf->fd == -1)
        return false;
    ssize_t w = write(lf->fd, line, len);
    if (w == (ssize_t)len)
        return true;
    if (w > 0)
        atomic_store(&lf->torn, true);
    return false;
}

/* Before the first line after a gap: says how many lines went missing, once. Several
   workers may get here together; the exchange hands the count to exactly one. */
static void report_pending(struct log_file *lf)
{
    uint64_t n = atomic_exchange(&lf->pending, 0);
    if (n == 0)
        return;
    bool torn = atomic_exchange(&lf->torn, false);
    char line[128];
    size_t len = 0;
    if (torn)
        line[len++] = '\n';
    len += stamp(line + len, sizeof(line) - len);
    int m = snprintf(line + len, sizeof(line) - len, "[warn] %llu log lines dropped\n",
                     (unsigned long long)n);
    if (m < 0 || (size_t)m >= sizeof(line) - len ||
        !write_line(lf, line, len + (size_t)m)) {
        atomic_fetch_add(&lf->pending, n);
        if (torn)
            atomic_store(&lf->torn, true);
    }
}

static void emit(struct log_file *lf, const char *line, size_t len)
{
    if (atomic_load_explicit(&lf->pending, memory_order_relaxed) != 0)
        report_pending(lf);
    if (!write_line(lf, line, len)) {
        atomic_fetch_add(&lf->dropped, 1);
        atomic_fetch_add(&lf->pending, 1);
    }
}

void gw_logv(enum gw_log_level level, const char *fmt, va_list ap)
{
    if (level > max_level)
        return;
    char line[1024];
    size_t n = stamp(line, sizeof(line));
    int m = snprintf(line + n, sizeof(line) - n, "[%s] ", level_names[level]);
    if (m > 0)
        n += (size_t)m;
    m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    if (m < 0)
        return;
    n = (size_t)m >= sizeof(line) - n ? sizeof(line) - 1 : n + (size_t)m;
    /* One line per event: a newline inside the message would forge a second line. */
    for (size_t i = 0; i < n; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[n++] = '\n';
    emit(&error_log, line, n);
}

void gw_log(enum gw_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    gw_logv(level, fmt, ap);
    va_end(ap);
}

void gw_log_access(const char *route, int status, uint64_t bytes, uint64_t duration_us)
{
    if (access_log.fd == -1)
        return;
    char line[256];
    size_t n = stamp(line, sizeof(line));
    int m = snprintf(line + n, sizeof(line) - n, "route=%s status=%d bytes=%llu us=%llu\n",
                     route, status, (unsigned long long)bytes,
                     (unsigned long long)duration_us);
    if (m < 0 || (size_t)m >= sizeof(line) - n)
        return;
    emit(&access_log, line, n + (size_t)m);
}

static int reopen(struct log_file *lf, const char *what)
{
    if (!lf->path)
        return 0;
    int fd = open_append(lf->path);
    if (fd == -1) {
        /* Keep writing where we were: the old file may still be read by someone. */
        gw_log(GW_LOG_ERROR, "cannot reopen the %s: %s", what, strerror(errno));
        return -1;
    }
    int rc = 0;
    if (dup2(fd, lf->fd) == -1) {
        gw_log(GW_LOG_ERROR, "cannot reopen the %s: %s", what, strerror(errno));
        rc = -1;
    }
    close(fd);
    return rc;
}

int gw_log_reopen(void)
{
    int rc = reopen(&error_log, "error log");
    if (reopen(&access_log, "access log") != 0)
        rc = -1;
    if (rc == 0)
        gw_log(GW_LOG_INFO, "logs reopened");
    return rc;
}

void gw_log_close(void)
{
    uint64_t e = atomic_load(&error_log.dropped), a = atomic_load(&access_log.dropped);
    if (e || a) {
        char line[160];
        size_t n = stamp(line, sizeof(line));
        int m = snprintf(line + n, sizeof(line) - n,
                         "[warn] log lines dropped since start: %llu error log, "
                         "%llu access log\n",
                         (unsigned long long)e, (unsigned long long)a);
        if (m > 0 && (size_t)m < sizeof(line) - n &&
            !write_line(&error_log, line, n + (size_t)m) && error_log.fd != STDERR_FILENO) {
            struct log_file err = {.fd = STDERR_FILENO};
            write_line(&err, line, n + (size_t)m);
        }
    }
    log_file_clear(&error_log, STDERR_FILENO);
    log_file_clear(&access_log, -1);
}

uint64_t gw_log_dropped(void)
{
    return atomic_load(&error_log.dropped) + atomic_load(&access_log.dropped);
}
