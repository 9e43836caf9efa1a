#include "gw_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Each line is formatted into a stack buffer and written with one write(2) on an
   O_APPEND descriptor, so lines from several workers never interleave and no lock is
   needed. A failed write drops the line and counts it: logging never stalls a loop. */
static int error_fd = STDERR_FILENO;
static int access_fd = -1;
static enum gw_log_level max_level = GW_LOG_INFO;
static atomic_uint_least64_t dropped;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

static int open_append(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0640);
}

int gw_log_open(const char *path, enum gw_log_level level)
{
    max_level = level;
    if (!path || strcmp(path, "stderr") == 0) {
        if (error_fd != STDERR_FILENO)
            close(error_fd);
        error_fd = STDERR_FILENO;
        return 0;
    }
    int fd = open_append(path);
    if (fd == -1)
        return -1;
    if (error_fd != STDERR_FILENO)
        close(error_fd);
    error_fd = fd;
    return 0;
}

int gw_log_access_open(const char *path)
{
    int fd = -1;
    if (path && (fd = open_append(path)) == -1)
        return -1;
    if (access_fd != -1)
        close(access_fd);
    access_fd = fd;
    return 0;
}

void gw_log_close(void)
{
    if (error_fd != STDERR_FILENO)
        close(error_fd);
    error_fd = STDERR_FILENO;
    if (access_fd != -1)
        close(access_fd);
    access_fd = -1;
}

static void emit(int fd, char *line, size_t len)
{
    if (write(fd, line, len) != (ssize_t)len)
        atomic_fetch_add(&dropped, 1);
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
    emit(error_fd, line, n);
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
    if (access_fd == -1)
        return;
    char line[256];
    size_t n = stamp(line, sizeof(line));
    int m = snprintf(line + n, sizeof(line) - n, "route=%s status=%d bytes=%llu us=%llu\n",
                     route, status, (unsigned long long)bytes,
                     (unsigned long long)duration_us);
    if (m < 0 || (size_t)m >= sizeof(line) - n)
        return;
    emit(access_fd, line, n + (size_t)m);
}

uint64_t gw_log_dropped(void)
{
    return atomic_load(&dropped);
}
