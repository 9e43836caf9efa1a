/* Logging. Only gateway/ writes log lines (STYLE.md 7). A line never carries a client
   address or port, forwarding header, SNI, authority, path, query, header value,
   cookie, body or key material: callers pass a connection serial, a route name from
   config and a fixed reason string. */
#ifndef ZASLON_GATEWAY_GW_LOG_H
#define ZASLON_GATEWAY_GW_LOG_H

#include <stdarg.h>
#include <stdint.h>

enum gw_log_level { GW_LOG_ERROR, GW_LOG_WARN, GW_LOG_INFO, GW_LOG_DEBUG };

/* Opens the error log: "stderr" or a file path (appended). Returns 0 or -1. */
int gw_log_open(const char *path, enum gw_log_level level);

/* Opens the access log, or closes it with NULL. Returns 0 or -1. */
int gw_log_access_open(const char *path);

void gw_log_close(void);

void gw_log(enum gw_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void gw_logv(enum gw_log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* One access line: route name, status, bytes sent, duration. Nothing else. */
void gw_log_access(const char *route, int status, uint64_t bytes, uint64_t duration_us);

/* Lines dropped because the log could not be written (full disk, removed file). */
uint64_t gw_log_dropped(void);

#endif
