/* conf/ internals shared by conf_util.c, conf_tree.c, conf_snapshot.c and the unit
   tests. Nothing outside conf/ and tests/ includes this header. */
#ifndef ZASLON_CONF_CONF_SNAPSHOT_INTERNAL_H
#define ZASLON_CONF_CONF_SNAPSHOT_INTERNAL_H

#include "conf_snapshot.h"

#include <stdbool.h>
#include <stddef.h>

/* ---- allocation ---------------------------------------------------------------- */

/* Every allocation conf/ makes goes through these, so a test can make the Nth one fail.
   They behave like malloc, calloc and strndup (conf_strndup copies exactly |len| bytes
   and adds a NUL); each returns NULL when memory runs out or the test hook fires.
   Release with free(). */
void *conf_malloc(size_t size);
void *conf_calloc(size_t nmemb, size_t size);
char *conf_strndup(const char *s, size_t len);

/* Test hook (nghttp2's failmalloc, curl's torture mode): when non-zero, it counts down
   on every conf_malloc/conf_calloc/conf_strndup call and the call that brings it to
   zero fails. Zero (the default) means never fail. It costs one test of a global per
   allocation; loads are rare, so it is compiled in always rather than only under
   ZASLON_TESTING (which conf/'s CMake target does not define). Not thread-safe: only
   single-threaded tests may set it. */
extern unsigned long conf_alloc_fail_countdown;

/* ---- errors -------------------------------------------------------------------- */

/* Writes "file:line: reason" (or "file: reason" when |line| is 0) into |err| if it is
   not NULL, and returns |code| so callers can write `return conf_errorf(...)`. |file|
   NULL reads as "-". */
int conf_errorf(struct conf_error *err, const char *file, unsigned line, int code,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Room for one conf_show() result: 48 shown characters, "...", NUL. */
enum { CONF_SHOW_MAX = 48, CONF_SHOW_SIZE = CONF_SHOW_MAX + 4 };

/* Copies |len| bytes of |s| into |out| for quoting in an error message: bytes outside
   printable ASCII become '?', and more than CONF_SHOW_MAX bytes end in "...". Returns
   |out|. */
const char *conf_show(char out[CONF_SHOW_SIZE], const char *s, size_t len);

/* ---- the YAML tree ------------------------------------------------------------- */

enum conf_node_kind { CONF_NODE_SCALAR, CONF_NODE_MAP, CONF_NODE_SEQ };

/* One YAML node, after the input caps have been checked. Children are a singly linked
   list in file order; a map's children each carry the key they were filed under. All
   strings are NUL-terminated and hold no NUL byte. */
struct conf_node {
    enum conf_node_kind kind;
    unsigned line; /* 1-based line where the node starts */
    bool plain;    /* scalar written without quotes or block style */
    char *text;    /* scalar value; NULL for maps and sequences */
    size_t len;
    char *key; /* the key this node is the value of, in a map */
    size_t key_len;
    unsigned key_line;
    struct conf_node *child; /* first child (maps and sequences) */
    struct conf_node *last;
    struct conf_node *next; /* next sibling */
    size_t n;               /* number of children */
};

/* Parses |len| bytes of YAML with libyaml's event API into a tree, refusing anchors,
   aliases, tags, complex (non-scalar) keys, duplicate keys, a second document, NUL
   bytes in scalars, and anything past the CONF_MAX_* caps. On success returns 0 and
   the root in *root (NULL for a stream with no document); the caller frees it with
   conf_tree_free. On failure returns a CONF_ERR_*, fills |err| and leaves *root
   untouched. |file| only names the source in messages. */
int conf_tree_parse(const char *file, const char *buf, size_t len,
                    struct conf_node **root, struct conf_error *err);

/* Frees |n| and all its children. Accepts NULL. */
void conf_tree_free(struct conf_node *n);

/* True for a plain scalar YAML reads as null: empty, "~", "null", "Null", "NULL". */
bool conf_node_is_null(const struct conf_node *n);

#endif
