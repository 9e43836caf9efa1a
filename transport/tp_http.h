/* Small HTTP types shared by every layer: length-carrying strings and header fields.
   Header names are lowercase ASCII everywhere inside zaslon (HTTP/2 requires it, and
   the HTTP/1.1 side lowercases on input). */
#ifndef ZASLON_TRANSPORT_TP_HTTP_H
#define ZASLON_TRANSPORT_TP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* A borrowed byte string; not NUL-terminated unless said so. */
struct tp_str {
    const char *base;
    size_t len;
};

#define TP_STR_LIT(s) ((struct tp_str){(s), sizeof(s) - 1})

/* One header field. Both strings are borrowed from whoever owns the array. */
struct tp_header {
    struct tp_str name;
    struct tp_str value;
};

/* Returns true if |a| equals the NUL-terminated |lit| exactly. */
bool tp_str_eq(struct tp_str a, const char *lit);

/* Returns true if |a| equals |lit| ignoring ASCII case. */
bool tp_str_caseeq(struct tp_str a, const char *lit);

/* Formats |t| as an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") into |out|, which
   must hold at least TP_HTTP_DATE_LEN + 1 bytes. Returns TP_HTTP_DATE_LEN. */
#define TP_HTTP_DATE_LEN 29
size_t tp_http_date(time_t t, char *out);

/* Parses an IMF-fixdate. Returns 0 and sets *t, or -1. */
int tp_http_date_parse(struct tp_str s, time_t *t);

/* Returns true for GET, HEAD and OPTIONS: methods whose request may be resent to a
   backend after some of its bytes left (RFC 9110 9.2.2 lists more; we keep it to the
   read-only ones a ballot can never be). */
bool tp_http_method_idempotent(struct tp_str method);

/* Returns the reason phrase for |status| ("OK", "Not Found", ...), or "" if unknown. */
const char *tp_http_reason(int status);

/* Writes the small HTML error page an ordinary server sends for |status| (nginx's
   layout, naming no product) into |buf| and returns its length, or 0 if |cap| is too
   small. 256 bytes always suffice. */
size_t tp_http_error_page(int status, char *buf, size_t cap);

/* Returns true if |name| (lowercase) is a hop-by-hop field that never crosses a proxy:
   connection, keep-alive, proxy-connection, transfer-encoding, te, upgrade, trailer,
   http2-settings. */
bool tp_http_hop_by_hop(struct tp_str name);

#endif
