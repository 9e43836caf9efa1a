/* YAML bytes to a small, bounded tree, with libyaml's event API.

   The event API (rather than yaml_parser_load) lets the caps bite before anything is
   built: an alias is refused when it is seen instead of after the document API has
   linked it in, and nesting, node count and scalar size are checked event by event,
   so a hostile file costs at most CONF_MAX_NODES small allocations. */
#include "conf_snapshot_internal.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

struct builder {
    const char *file;
    struct conf_error *err;
    const char *buf;
    size_t len;
    struct conf_node *root;
    /* Open maps and sequences, outermost first. */
    struct conf_node *stack[CONF_MAX_DEPTH];
    /* For an open map, the key read and waiting for its value (else NULL). */
    char *pending_key[CONF_MAX_DEPTH];
    size_t pending_len[CONF_MAX_DEPTH];
    unsigned pending_line[CONF_MAX_DEPTH];
    /* For an open map, a hash of each key so far, in order: the duplicate check scans
       these contiguous words instead of chasing the child list. Kept per level and
       reused by the next map at that level. */
    uint32_t *hashes[CONF_MAX_DEPTH];
    size_t nhashes[CONF_MAX_DEPTH];
    size_t hashes_cap[CONF_MAX_DEPTH];
    size_t depth;
    size_t nodes;
    unsigned documents;
};

static unsigned mark_line(yaml_mark_t m)
{
    /* The input is at most CONF_MAX_FILE bytes, so this never saturates in practice. */
    return m.line >= UINT_MAX - 1 ? UINT_MAX : (unsigned)m.line + 1;
}

void conf_tree_free(struct conf_node *n)
{
    while (n) {
        struct conf_node *next = n->next;
        conf_tree_free(n->child);
        free(n->text);
        free(n->key);
        free(n);
        n = next;
    }
}

bool conf_node_is_null(const struct conf_node *n)
{
    if (n->kind != CONF_NODE_SCALAR || !n->plain)
        return false;
    return n->len == 0 || strcmp(n->text, "~") == 0 || strcmp(n->text, "null") == 0 ||
           strcmp(n->text, "Null") == 0 || strcmp(n->text, "NULL") == 0;
}

/* Turns libyaml's complaint into ours. */
static int parser_error(struct builder *b, const yaml_parser_t *p)
{
    if (p->error == YAML_MEMORY_ERROR)
        return conf_errorf(b->err, b->file, 0, CONF_ERR_NOMEM, "out of memory");
    unsigned line;
    if (p->error == YAML_READER_ERROR) {
        /* Reader errors (bad encoding) carry a byte offset, not a mark. */
        size_t end = p->problem_offset < b->len ? p->problem_offset : b->len;
        line = 1;
        for (size_t i = 0; i < end; i++)
            if (b->buf[i] == '\n')
                line++;
    } else {
        line = mark_line(p->problem_mark);
    }
    const char *problem = p->problem ? p->problem : "invalid YAML";
    if (p->context)
        return conf_errorf(b->err, b->file, line, CONF_ERR_SYNTAX,
                           "syntax error: %s (%s on line %u)", problem, p->context,
                           mark_line(p->context_mark));
    return conf_errorf(b->err, b->file, line, CONF_ERR_SYNTAX, "syntax error: %s",
                       problem);
}

/* Refuses anchors and tags on a node, and counts it against CONF_MAX_NODES. */
static int check_node(struct builder *b, const yaml_char_t *anchor,
                      const yaml_char_t *tag, unsigned line)
{
    if (anchor)
        return conf_errorf(b->err, b->file, line, CONF_ERR_SYNTAX,
                           "anchors are not allowed");
    if (tag)
        return conf_errorf(b->err, b->file, line, CONF_ERR_SYNTAX,
                           "tags are not allowed");
    if (++b->nodes > CONF_MAX_NODES)
        return conf_errorf(b->err, b->file, line, CONF_ERR_RANGE,
                           "too many nodes (more than %d)", CONF_MAX_NODES);
    return 0;
}

static struct conf_node *node_new(struct builder *b, enum conf_node_kind kind,
                                  unsigned line)
{
    struct conf_node *n = conf_calloc(1, sizeof(*n));
    if (!n) {
        conf_errorf(b->err, b->file, 0, CONF_ERR_NOMEM, "out of memory");
        return NULL;
    }
    n->kind = kind;
    n->line = line;
    return n;
}

/* True when the top of the stack is a map waiting for a key. */
static bool wants_key(const struct builder *b)
{
    return b->depth > 0 && b->stack[b->depth - 1]->kind == CONF_NODE_MAP &&
           !b->pending_key[b->depth - 1];
}

/* Takes ownership of |n| and hangs it under the open container (or makes it the root). */
static void attach(struct builder *b, struct conf_node *n)
{
    if (b->depth == 0) {
        b->root = n;
        return;
    }
    size_t top = b->depth - 1;
    struct conf_node *parent = b->stack[top];
    if (parent->kind == CONF_NODE_MAP) {
        n->key = b->pending_key[top];
        n->key_len = b->pending_len[top];
        n->key_line = b->pending_line[top];
        b->pending_key[top] = NULL;
    }
    if (parent->last)
        parent->last->next = n;
    else
        parent->child = n;
    parent->last = n;
    parent->n++;
}

/* A scalar in key position: checks it is new in its map and keeps it pending. */
static int take_key(struct builder *b, const char *text, size_t len, unsigned line)
{
    size_t top = b->depth - 1;
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)text[i]) * 16777619u;
    /* Quadratic in the keys of one map (at most CONF_MAX_NODES of them), but over
       contiguous words: a worst-case 1 MiB file costs milliseconds. */
    const struct conf_node *c = b->stack[top]->child;
    size_t at = 0; /* index of c */
    for (size_t i = 0; i < b->nhashes[top]; i++) {
        if (b->hashes[top][i] != h)
            continue;
        for (; at < i; at++)
            c = c->next;
        if (c->key_len == len && memcmp(c->key, text, len) == 0) {
            char shown[CONF_SHOW_SIZE];
            return conf_errorf(b->err, b->file, line, CONF_ERR_DUPLICATE,
                               "duplicate key \"%s\" (first on line %u)",
                               conf_show(shown, text, len), c->key_line);
        }
    }
    if (b->nhashes[top] == b->hashes_cap[top]) {
        size_t cap = b->hashes_cap[top] ? 2 * b->hashes_cap[top] : 16;
        uint32_t *nh = conf_malloc(cap * sizeof(*nh));
        if (!nh)
            return conf_errorf(b->err, b->file, 0, CONF_ERR_NOMEM, "out of memory");
        if (b->nhashes[top])
            memcpy(nh, b->hashes[top], b->nhashes[top] * sizeof(*nh));
        free(b->hashes[top]);
        b->hashes[top] = nh;
        b->hashes_cap[top] = cap;
    }
    char *key = conf_strndup(text, len);
    if (!key)
        return conf_errorf(b->err, b->file, 0, CONF_ERR_NOMEM, "out of memory");
    b->hashes[top][b->nhashes[top]++] = h;
    b->pending_key[top] = key;
    b->pending_len[top] = len;
    b->pending_line[top] = line;
    return 0;
}

static int on_scalar(struct builder *b, const yaml_event_t *ev)
{
    unsigned line = mark_line(ev->start_mark);
    const char *text = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    int rc = check_node(b, ev->data.scalar.anchor, ev->data.scalar.tag, line);
    if (rc)
        return rc;
    if (len > CONF_MAX_SCALAR)
        return conf_errorf(b->err, b->file, line, CONF_ERR_RANGE,
                           "scalar longer than %d bytes", CONF_MAX_SCALAR);
    /* A "\0" escape would let a value say one thing to strlen and another to us. */
    if (memchr(text, '\0', len))
        return conf_errorf(b->err, b->file, line, CONF_ERR_TYPE, "NUL byte in a scalar");
    if (wants_key(b))
        return take_key(b, text, len, line);
    struct conf_node *n = node_new(b, CONF_NODE_SCALAR, line);
    if (!n)
        return CONF_ERR_NOMEM;
    n->text = conf_strndup(text, len);
    if (!n->text) {
        free(n);
        return conf_errorf(b->err, b->file, 0, CONF_ERR_NOMEM, "out of memory");
    }
    n->len = len;
    n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    attach(b, n);
    return 0;
}

static int on_start(struct builder *b, const yaml_event_t *ev, enum conf_node_kind kind)
{
    unsigned line = mark_line(ev->start_mark);
    const yaml_char_t *anchor, *tag;
    if (kind == CONF_NODE_MAP) {
        anchor = ev->data.mapping_start.anchor;
        tag = ev->data.mapping_start.tag;
    } else {
        anchor = ev->data.sequence_start.anchor;
        tag = ev->data.sequence_start.tag;
    }
    int rc = check_node(b, anchor, tag, line);
    if (rc)
        return rc;
    if (wants_key(b))
        return conf_errorf(b->err, b->file, line, CONF_ERR_TYPE,
                           "keys must be scalars, not %s",
                           kind == CONF_NODE_MAP ? "maps" : "sequences");
    if (b->depth == CONF_MAX_DEPTH)
        return conf_errorf(b->err, b->file, line, CONF_ERR_RANGE,
                           "nesting deeper than %d levels", CONF_MAX_DEPTH);
    struct conf_node *n = node_new(b, kind, line);
    if (!n)
        return CONF_ERR_NOMEM;
    attach(b, n);
    b->stack[b->depth] = n;
    free(b->pending_key[b->depth]);
    b->pending_key[b->depth] = NULL;
    b->nhashes[b->depth] = 0;
    b->depth++;
    return 0;
}

/* Handles one event; sets *done at the end of the stream. */
static int on_event(struct builder *b, const yaml_event_t *ev, bool *done)
{
    unsigned line = mark_line(ev->start_mark);
    switch (ev->type) {
    case YAML_STREAM_START_EVENT:
    case YAML_DOCUMENT_END_EVENT:
    case YAML_NO_EVENT:
        return 0;
    case YAML_STREAM_END_EVENT:
        *done = true;
        return 0;
    case YAML_DOCUMENT_START_EVENT:
        if (++b->documents > 1)
            return conf_errorf(b->err, b->file, line, CONF_ERR_SYNTAX,
                               "more than one document");
        return 0;
    case YAML_ALIAS_EVENT:
        return conf_errorf(b->err, b->file, line, CONF_ERR_SYNTAX,
                           "aliases are not allowed");
    case YAML_SCALAR_EVENT:
        return on_scalar(b, ev);
    case YAML_SEQUENCE_START_EVENT:
        return on_start(b, ev, CONF_NODE_SEQ);
    case YAML_MAPPING_START_EVENT:
        return on_start(b, ev, CONF_NODE_MAP);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        /* libyaml pairs these with their starts and always gives a key its value. */
        if (b->depth > 0)
            b->depth--;
        return 0;
    }
    return 0;
}

int conf_tree_parse(const char *file, const char *buf, size_t len,
                    struct conf_node **root, struct conf_error *err)
{
    struct builder b;
    memset(&b, 0, sizeof(b));
    b.file = file;
    b.err = err;
    b.buf = buf;
    b.len = len;

    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return conf_errorf(err, file, 0, CONF_ERR_NOMEM, "out of memory");
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);

    int rc = 0;
    bool done = false;
    while (!done && rc == 0) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = parser_error(&b, &parser);
            break;
        }
        rc = on_event(&b, &ev, &done);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);

    for (size_t i = 0; i < CONF_MAX_DEPTH; i++) {
        free(b.pending_key[i]);
        free(b.hashes[i]);
    }
    if (rc) {
        conf_tree_free(b.root);
        return rc;
    }
    *root = b.root;
    return 0;
}
