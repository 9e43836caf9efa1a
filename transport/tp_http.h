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

/* RFC 9110 5.6.2 tchar ("!#$%&'*+-.^_`|~", DIGIT, ALPHA): for each such byte its
   ASCII-lowercase form, and 0 for every other byte. Parsers index it directly for each
   byte of a field name, to check and lowercase it in one load. */
extern const unsigned char tp_http_tchar_lower[256];

/* Returns true if |c| is an RFC 9110 tchar. */
static inline bool tp_http_is_tchar(unsigned char c)
{
    return tp_http_tchar_lower[c] != 0;
}

/* Returns true if |s| is an RFC 9110 token: non-empty, tchar only. */
static inline bool tp_http_is_token(struct tp_str s)
{
    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++)
        if (!tp_http_is_tchar((unsigned char)s.base[i]))
            return false;
    return true;
}

/* Walks the field value |*rest| as a list (RFC 9110 5.6.1): skips commas, SP and HTAB,
   then returns true with the next word (a maximal run of other bytes) in *word and
   |*rest| moved past it; returns false when none is left. An invalid element such as
   "a b" reads as two words. *word is borrowed from |*rest|'s bytes. */
bool tp_http_list_word(struct tp_str *rest, struct tp_str *word);

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
