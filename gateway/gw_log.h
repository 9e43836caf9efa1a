/* Logging. Only gateway/ writes log lines (STYLE.md 7). A line never carries a client
   address or port, forwarding header, SNI, authority, path, query, header value,
   cookie, body or key material: callers pass a connection serial, a route name from
   config and a fixed reason string. */
#ifndef ZASLON_GATEWAY_GW_LOG_H
#define ZASLON_GATEWAY_GW_LOG_H

#include <stdarg.h>
#include <stdint.h>

enum gw_log_level { GW_LOG_ERROR, GW_LOG_WARN, GW_LOG_INFO, GW_LOG_DEBUG };

/* Opens the error log: "stderr" or a file path (appended; created 0640). Writes never
   block: a line that cannot be written whole (full disk, removed device, a pipe or FIFO
   nobody reads) is dropped and counted, and "N log lines dropped" goes into that log
   once a line gets through again. Call before any thread logs. Returns 0 or -1. */
int gw_log_open(const char *path, enum gw_log_level level);

/* Opens the access log ("stderr" or a file path, as above), or closes it with NULL.
   Call before any thread logs. Returns 0 or -1. */
int gw_log_access_open(const char *path);

/* Reopens both logs by path (not stderr), e.g. on SIGUSR1 after logrotate moved them or
   their directory was recreated. Safe while other threads log: the new file takes over
   the old descriptor number with dup2. A log that cannot be reopened keeps its old
   file, and the reason goes to the error log. Returns 0, or -1 if either failed. */
int gw_log_reopen(void);

/* Writes the dropped-line totals, if any, to the error log (or stderr if that fails)
   and closes both logs. Call after every other thread has stopped logging. */
void gw_log_close(void);

void gw_log(enum gw_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void gw_logv(enum gw_log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* One access line: route name, status, bytes sent, duration. Nothing else. */
void gw_log_access(const char *route, int status, uint64_t bytes, uint64_t duration_us);

/* Lines dropped since start, both logs together, because they could not be written
   (full disk, I/O error, a pipe nobody reads). */
uint64_t gw_log_dropped(void);

#endif
