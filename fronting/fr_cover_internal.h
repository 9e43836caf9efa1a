/* Pieces of the cover site shared by fr_cover.c, fr_mime.c and the unit tests. Nothing
   outside fronting/ and its tests includes this header. */
#ifndef ZASLON_FRONTING_FR_COVER_INTERNAL_H
#define ZASLON_FRONTING_FR_COVER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fr_cover.h"
#include "tp_http.h"

/* Returns the Content-Type for a file named |name| (the last path segment, |len|
   bytes): Debian 12 nginx's mime.types, looked up by the extension after the last '.'
   without regard to case, else "application/octet-stream". A static string. */
const char *fr_mime_type(const char *name, size_t len);

/* Normalises the raw request target |t| the way nginx does: the path part (up to the
   first raw '?' or '#') is %-decoded, slashes merged, "." and ".." resolved. Writes the
   path to |out| (|cap| bytes, needs no more than t.len) and its length to *outlen,
   and the raw query (after '?', up to '#'; base NULL if there is no '?') to *query.
   Returns 0, or 400 (bad target) or 414 (too long for |cap|). */
int fr_cover_normalize(struct tp_str t, char *out, size_t cap, size_t *outlen,
                       struct tp_str *query);

/* Parses an HTTP date as nginx does (IMF-fixdate, RFC 850 or asctime, leniently).
   Returns true and sets *t, or false. */
bool fr_cover_parse_time(struct tp_str v, int64_t *t);

/* Outcome of a Range field, as nginx's range filter with "max_ranges 1" decides it. */
enum fr_cover_range {
    FR_COVER_RANGE_IGNORE,       /* serve the whole body (200) */
    FR_COVER_RANGE_PARTIAL,      /* 206 with [*start, *end) */
    FR_COVER_RANGE_UNSATISFIABLE /* 416 */
};

/* Judges the Range field |v| (present) for a body of |size| bytes. */
enum fr_cover_range fr_cover_parse_range(struct tp_str v, int64_t size, int64_t *start,
                                         int64_t *end);

/* True when the If-Match / If-None-Match list |list| names |etag| ("*" names any);
   with |weak|, entries may carry "W/". */
bool fr_cover_etag_match(struct tp_str list, struct tp_str etag, bool weak);

/* True when [p, p + len) lies inside memory the site (or a built-in page) owns. */
bool fr_cover_owns(const struct fr_cover_site *s, const uint8_t *p, size_t len);

#endif
