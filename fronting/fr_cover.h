/* The cover site: a static site served from memory exactly as a stock nginx (Debian
   12's 1.22, default mime.types, "default_type application/octet-stream",
   "error_page 404 /404.html", "max_ranges 1", "absolute_redirect off") would serve
   it, so that a prober cannot tell the gateway from an ordinary web server.

   The whole tree is read at start-up (or reload) by fr_cover_load; after that nothing
   touches the file system, and fr_cover_serve is a pure function of the site and the
   request that fills a response the caller sends. A site is immutable once loaded
   and may be shared by every worker without locks.

   What is served, in nginx's order of decisions:
     - method not made of [A-Z_-] -> 400; request line longer than
       FR_COVER_TARGET_MAX -> 414; target not starting with '/', containing a byte
       <= 0x20 or 0x7f, an invalid %-escape, %00, or ".." climbing above the root
       -> 400. The path is cut at the first raw '?' (the query) or '#', then
       %-decoded, repeated slashes merged, "." and ".." resolved.
     - methods other than GET, HEAD and POST -> 405 (no Allow field, like nginx).
     - "/dir/": serves dir/<index> if present (POST gets 405 there); a directory
       without it -> 403 (nginx without autoindex); no such directory, or a file
       named like the directory -> 404.
     - "/dir" naming a directory -> 301 with Location "/dir/" (relative, the path
       %-escaped as nginx escapes it, then "?query" if there was one; behind a mount
       prefix, the prefix first). POST too.
     - a file: POST -> 405; otherwise If-Unmodified-Since / If-Match failing -> 412;
       If-Modified-Since (exact equality with the mtime, nginx's default "exact") and
       If-None-Match (list, "*", weak comparison), each present one must agree -> 304
       with ETag and Last-Modified only; else a single "bytes=" range, honoured only
       if If-Range (an ETag compared exactly, or a date equal to the mtime) agrees,
       gives 206 with Content-Range; an unsatisfiable or malformed range list gives
       416 with a Content-Range of "bytes", '*', '/' and the size; several satisfiable
   ranges give the whole file (nginx's "max_ranges 1"; RFC 9110 lets a server ignore
   Range); otherwise 200 with Accept-Ranges: bytes.
     - 404 answers with the site's own not_found page when it has one (status 404,
       its type, its ETag, as nginx's error_page does), else a small HTML page.
       Every other error gets nginx's page for that status without the signature
       line: no product name, no version, ever.
   Files: Last-Modified is the mtime; ETag is nginx's "<mtime hex>-<size hex>";
   Content-Type comes from the extension, without any charset parameter. Hidden
   files (".name") are served like any other, as nginx serves them: keep what must
   not be public out of the root. Neither Date nor Server is added here. */
#ifndef ZASLON_FRONTING_FR_COVER_H
#define ZASLON_FRONTING_FR_COVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tp_http.h"

/* Longest request line: a request whose "METHOD target HTTP/1.1\r\n" would not fit
   gets 414, as from nginx's default 8k request-line buffer (so targets stay shorter). */
#define FR_COVER_TARGET_MAX 8192
/* Longest index or not_found name. */
#define FR_COVER_NAME_MAX 255
/* Deepest directory nesting loaded. */
#define FR_COVER_DEPTH_MAX 32
#define FR_COVER_MAX_FILE_DEFAULT ((size_t)16 * 1024 * 1024)
#define FR_COVER_MAX_TOTAL_DEFAULT ((size_t)256 * 1024 * 1024)
#define FR_COVER_MAX_FILES_DEFAULT 10000

struct fr_cover_opts {
    const char *root;      /* directory to serve; NULL = the built-in blank page */
    const char *index;     /* served for "dir/"; NULL = "index.html"; no '/' */
    const char *not_found; /* path under root of the 404 page; NULL = "404.html",
                              "" = none. Used only if it is a regular file. */
    size_t max_file;       /* largest file; 0 = FR_COVER_MAX_FILE_DEFAULT */
    size_t max_total;      /* all files together; 0 = FR_COVER_MAX_TOTAL_DEFAULT */
    size_t max_files;      /* files and directories; 0 = FR_COVER_MAX_FILES_DEFAULT */
};

struct fr_cover_site;

/* Loads the tree under o->root into memory (or the built-in blank index.html when
   o->root is NULL; its mtime is the load time, so that its ETag is not the same on
   every gateway). Walks at most FR_COVER_DEPTH_MAX levels; reads regular files and
   directories, follows symbolic links only when their target resolves inside the
   root (others are skipped, as are dangling links, loops, devices, FIFOs and
   sockets). Refuses trees over the limits in |o|. Returns 0 and sets *out; on
   failure returns TP_ERR_INVALID (bad option), TP_ERR_TOO_LARGE (a limit),
   TP_ERR_IO (a system call failed) or TP_ERR_NOMEM, leaves *out untouched, and writes
   a NUL-terminated reason into |err| (|errlen| bytes, may be 0) naming the path
   relative to the root (non-printable bytes escaped), never file contents. Free the
   site with fr_cover_free. Blocks on file I/O: call it at start-up or reload only. */
int fr_cover_load(const struct fr_cover_opts *o, struct fr_cover_site **out, char *err,
                  size_t errlen);

/* One file (or directory) for fr_cover_load_entries. */
struct fr_cover_entry {
    const char *path;    /* relative: "a/b.html" (a leading '/' is ignored); a
                            trailing '/' makes an empty directory */
    const uint8_t *data; /* file bytes (copied); may be NULL when len is 0 */
    size_t len;
    int64_t mtime; /* seconds since the epoch; negative is taken as 0 */
};

/* Builds a site from |e[0..n)| instead of a directory, for tests, fuzzing and
   embedders; o->root is ignored, the other options and limits apply. Parent
   directories are implied. Same returns, ownership and |err| as fr_cover_load;
   TP_ERR_INVALID also for a path with an empty, "." or ".." segment, a duplicate, or
   a name used both as a file and a directory. */
int fr_cover_load_entries(const struct fr_cover_opts *o, const struct fr_cover_entry *e,
                          size_t n, struct fr_cover_site **out, char *err, size_t errlen);

/* Frees |s| and every file it holds. Accepts NULL. No response borrowed from |s| may be
   used afterwards. */
void fr_cover_free(struct fr_cover_site *s);

/* Returns the number of regular files in |s|. */
size_t fr_cover_count(const struct fr_cover_site *s);

/* The parts of a request the cover looks at. Borrowed for the call. method and path
   are the request's (path is the raw target in origin form, query included); for
   the optional fields, base == NULL means the field is absent (a present but empty
   field is not absent: nginx answers an empty If-Match with 412). Pass the first
   field when a request repeats one. */
struct fr_cover_request {
    struct tp_str method;
    struct tp_str path;
    struct tp_str if_none_match;
    struct tp_str if_modified_since;
    struct tp_str if_match;
    struct tp_str if_unmodified_since;
    struct tp_str range;
    struct tp_str if_range;
    /* The site is mounted under |prefix| ("/edge", no trailing slash; a front forwards
       /edge/... to it): |path| has had the prefix removed, a redirect's Location
       carries it back, and the request-line length nginx would see counts it.
       base == NULL: not mounted. */
    struct tp_str prefix;
    /* The target lies outside the mount: after the method and target checks it is
       answered as a path that names nothing (404), as nginx answers a location it
       does not serve. |path| is then the whole target and |prefix| is ignored. */
    bool outside;
};

#define FR_COVER_MAX_HEADERS 8
#define FR_COVER_SCRATCH (3 * (FR_COVER_TARGET_MAX + FR_COVER_NAME_MAX + 1) + 256)

/* What to send. headers[] lists the fields in nginx's order, except Content-Length,
   Date and Server, which the caller adds (Content-Length from content_length, since
   the transport frames the body). Header strings point into the site or into
   scratch[], so the response must not outlive the site nor be copied field by field
   into another struct without its scratch; it is about 25 KiB, meant to live on the
   caller's stack until the headers have been handed to the transport (which copies
   them). */
struct fr_cover_response {
    int status;
    struct tp_header headers[FR_COVER_MAX_HEADERS];
    size_t nheaders;
    const uint8_t *body;    /* borrowed from the site or a static page; NULL if none */
    size_t body_len;        /* bytes to send; 0 when no_body */
    int64_t content_length; /* to announce; -1 = announce none (304) */
    bool no_body;           /* HEAD or 304: send the head only */
    char scratch[FR_COVER_SCRATCH];
};

/* Answers |r| from |s| into |out| (fully overwritten). Never fails: every request gets
   some response. Allocates nothing and reads no file; |s| is only read, so workers may
   call it concurrently. */
void fr_cover_serve(const struct fr_cover_site *s, const struct fr_cover_request *r,
                    struct fr_cover_response *out);

#endif
