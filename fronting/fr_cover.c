#include "fr_cover.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fr_cover_internal.h"
#include "tp_err.h"

/* ---- the site ---- */

struct node {
    char *path; /* "/a/b.html"; the root directory is "" */
    size_t path_len;
    bool is_dir;
    uint8_t *data; /* owned; NULL for directories and empty files */
    size_t len;
    int64_t mtime;
    const char *type; /* static */
    char etag[48];
    size_t etag_len;
    char last_modified[TP_HTTP_DATE_LEN + 1];
};

struct fr_cover_site {
    struct node *nodes; /* sorted by path once loaded */
    size_t n;
    size_t cap;
    size_t files;
    size_t total;
    char index[FR_COVER_NAME_MAX + 1];
    size_t index_len;
    const struct node *not_found;
};

/* The limits and names of one load, resolved from fr_cover_opts. */
struct limits {
    size_t max_file;
    size_t max_total;
    size_t max_files;
    const char *index;
    const char *not_found;
};

static const char builtin_page[] =
    "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title></title>\n"
    "</head>\n<body>\n</body>\n</html>\n";

/* ---- error pages ---- */

/* nginx's built-in pages, minus the "<hr><center>nginx</center>" signature line. */
#define PAGE(code_text)                                                                  \
    "<html>\r\n<head><title>" code_text                                                  \
    "</title></head>\r\n<body>\r\n<center><h1>" code_text                                \
    "</h1></center>\r\n</body>\r\n</html>\r\n"

struct page {
    int status;
    const char *body;
    size_t len;
};

#define PAGE_ENTRY(st, text)                                                             \
    {                                                                                    \
        st, PAGE(#st " " text), sizeof(PAGE(#st " " text)) - 1                           \
    }

static const struct page pages[] = {
    PAGE_ENTRY(301, "Moved Permanently"),
    PAGE_ENTRY(400, "Bad Request"),
    PAGE_ENTRY(403, "Forbidden"),
    PAGE_ENTRY(404, "Not Found"),
    PAGE_ENTRY(405, "Not Allowed"),
    PAGE_ENTRY(412, "Precondition Failed"),
    PAGE_ENTRY(414, "Request-URI Too Large"),
    PAGE_ENTRY(416, "Requested Range Not Satisfiable"),
};

static const struct page *page_for(int status)
{
    for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++)
        if (pages[i].status == status)
            return &pages[i];
    /* Only the statuses above are ever produced. */
    assert(0 && "no page for status");
    return &pages[1];
}

/* ---- load errors ---- */

/* Writes "<rel>: <reason>" into err, with rel's non-printable bytes escaped so that a
   hostile file name cannot forge log lines. Returns |code|. */
static int fail(char *err, size_t errlen, int code, const char *rel, size_t rel_len,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static int fail(char *err, size_t errlen, int code, const char *rel, size_t rel_len,
                const char *fmt, ...)
{
    char name[512];
    size_t o = 0;
    if (!err || errlen == 0)
        return code;
    if (rel_len > 0 && rel[0] == '/') {
        rel++;
        rel_len--;
    }
    if (rel_len == 0) {
        memcpy(name, "cover root", sizeof("cover root"));
        o = sizeof("cover root") - 1;
    }
    for (size_t i = 0; i < rel_len && o + 5 < sizeof(name); i++) {
        unsigned char c = (unsigned char)rel[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            name[o++] = (char)c;
        } else {
            static const char hex[] = "0123456789abcdef";
            name[o++] = '\\';
            name[o++] = 'x';
            name[o++] = hex[c >> 4];
            name[o++] = hex[c & 15];
        }
    }
    name[o] = '\0';
    char reason[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    if (n < 0)
        reason[0] = '\0';
    /* Truncation is acceptable for a diagnostic; the code carries the meaning. */
    (void)snprintf(err, errlen, "%s: %s", name, reason);
    return code;
}

/* ---- building a site ---- */

static int node_cmp_key(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t m = alen < blen ? alen : blen;
    int c = m ? memcmp(a, b, m) : 0;
    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static int node_cmp(const void *a, const void *b)
{
    const struct node *x = a, *y = b;
    return node_cmp_key(x->path, x->path_len, y->path, y->path_len);
}

static void site_free_nodes(struct fr_cover_site *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->nodes[i].path);
        s->nodes[i].path = NULL;
        free(s->nodes[i].data);
        s->nodes[i].data = NULL;
    }
    free(s->nodes);
    s->nodes = NULL;
    s->n = 0;
}

void fr_cover_free(struct fr_cover_site *s)
{
    if (!s)
        return;
    site_free_nodes(s);
    free(s);
}

/* Appends a node; takes ownership of |data| (freed on failure too). */
static int site_add(struct fr_cover_site *s, const char *path, size_t plen, bool is_dir,
                    uint8_t *data, size_t len, int64_t mtime)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        if (cap > SIZE_MAX / sizeof(*s->nodes)) {
            free(data);
            return TP_ERR_NOMEM;
        }
        struct node *nn = realloc(s->nodes, cap * sizeof(*nn));
        if (!nn) {
            free(data);
            return TP_ERR_NOMEM;
        }
        s->nodes = nn;
        s->cap = cap;
    }
    char *p = malloc(plen + 1);
    if (!p) {
        free(data);
        return TP_ERR_NOMEM;
    }
    if (plen)
        memcpy(p, path, plen);
    p[plen] = '\0';
    struct node *nd = &s->nodes[s->n++];
    memset(nd, 0, sizeof(*nd));
    nd->path = p;
    nd->path_len = plen;
    nd->is_dir = is_dir;
    nd->data = data;
    nd->len = len;
    nd->mtime = mtime < 0 ? 0 : mtime;
    return 0;
}

static const struct node *lookup(const struct fr_cover_site *s, const char *key,
                                 size_t klen)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct node *nd = &s->nodes[mid];
        int c = node_cmp_key(key, klen, nd->path, nd->path_len);
        if (c == 0)
            return nd;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static void node_meta(struct node *nd)
{
    const char *last = nd->path;
    for (size_t i = 0; i < nd->path_len; i++)
        if (nd->path[i] == '/')
            last = nd->path + i + 1;
    nd->type = fr_mime_type(last, nd->path_len - (size_t)(last - nd->path));
    int n = snprintf(nd->etag, sizeof(nd->etag), "\"%" PRIx64 "-%zx\"",
                     (uint64_t)nd->mtime, nd->len);
    assert(n > 0 && (size_t)n < sizeof(nd->etag));
    nd->etag_len = (size_t)n;
    tp_http_date((time_t)nd->mtime, nd->last_modified);
}

/* Sorts, merges repeated directories, refuses duplicates and file/directory clashes,
   fills each node's type, ETag and Last-Modified, and finds the 404 page. */
static int site_finish(struct fr_cover_site *s, const struct limits *lim, char *err,
                       size_t errlen)
{
    qsort(s->nodes, s->n, sizeof(*s->nodes), node_cmp);
    size_t w = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (w > 0 && node_cmp(&s->nodes[w - 1], &s->nodes[i]) == 0) {
            struct node *prev = &s->nodes[w - 1], *cur = &s->nodes[i];
            if (prev->is_dir && cur->is_dir) {
                free(cur->path);
                cur->path = NULL;
                continue;
            }
            int rc = fail(err, errlen, TP_ERR_INVALID, cur->path, cur->path_len, "%s",
                          prev->is_dir != cur->is_dir ? "used as both file and directory"
                                                      : "duplicate path");
            /* Keep the array consistent for site_free_nodes. */
            for (size_t j = i; j < s->n; j++)
                s->nodes[w++] = s->nodes[j];
            s->n = w;
            return rc;
        }
        s->nodes[w++] = s->nodes[i];
    }
    s->n = w;
    if (s->n - 1 > lim->max_files) /* the root does not count */
        return fail(err, errlen, TP_ERR_TOO_LARGE, "", 0, "more than %zu files",
                    lim->max_files);
    s->files = 0;
    for (size_t i = 0; i < s->n; i++) {
        node_meta(&s->nodes[i]);
        if (!s->nodes[i].is_dir)
            s->files++;
    }
    s->not_found = NULL;
    if (lim->not_found[0]) {
        char key[FR_COVER_NAME_MAX + 2];
        const char *nf = lim->not_found[0] == '/' ? lim->not_found + 1 : lim->not_found;
        size_t l = strlen(nf);
        key[0] = '/';
        memcpy(key + 1, nf, l);
        const struct node *nd = lookup(s, key, l + 1);
        if (nd && !nd->is_dir)
            s->not_found = nd;
    }
    return 0;
}

static int resolve_limits(const struct fr_cover_opts *o, struct limits *lim, char *err,
                          size_t errlen)
{
    lim->max_file = o && o->max_file ? o->max_file : FR_COVER_MAX_FILE_DEFAULT;
    lim->max_total = o && o->max_total ? o->max_total : FR_COVER_MAX_TOTAL_DEFAULT;
    lim->max_files = o && o->max_files ? o->max_files : FR_COVER_MAX_FILES_DEFAULT;
    lim->index = o && o->index ? o->index : "index.html";
    lim->not_found = o && o->not_found ? o->not_found : "404.html";
    size_t il = strlen(lim->index);
    if (il == 0 || il > FR_COVER_NAME_MAX || strchr(lim->index, '/') ||
        strcmp(lim->index, ".") == 0 || strcmp(lim->index, "..") == 0)
        return fail(err, errlen, TP_ERR_INVALID, "", 0, "bad index name");
    if (strlen(lim->not_found) > FR_COVER_NAME_MAX)
        return fail(err, errlen, TP_ERR_INVALID, "", 0, "not_found name too long");
    return 0;
}

static int site_new(const struct limits *lim, struct fr_cover_site **out)
{
    struct fr_cover_site *s = calloc(1, sizeof(*s));
    if (!s)
        return TP_ERR_NOMEM;
    s->index_len = strlen(lim->index);
    memcpy(s->index, lim->index, s->index_len + 1);
    *out = s;
    return 0;
}

/* ---- loading from memory ---- */

/* Checks an entry path and writes its key ("/a/b") into |key|. Returns its length, or 0
   if the path is unusable. *is_dir is set for a trailing '/'. */
static size_t entry_key(const char *path, char *key, size_t cap, bool *is_dir)
{
    size_t len = strlen(path), o = 0;
    *is_dir = false;
    if (len > 0 && path[0] == '/') {
        path++;
        len--;
    }
    if (len > 0 && path[len - 1] == '/') {
        *is_dir = true;
        len--;
    }
    if (len == 0 || len + 1 > cap)
        return 0;
    size_t seg = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || path[i] == '/') {
            size_t sl = i - seg;
            if (sl == 0 || (sl == 1 && path[seg] == '.') ||
                (sl == 2 && path[seg] == '.' && path[seg + 1] == '.'))
                return 0;
            seg = i + 1;
        }
    }
    key[o++] = '/';
    memcpy(key + o, path, len);
    return o + len;
}

int fr_cover_load_entries(const struct fr_cover_opts *o, const struct fr_cover_entry *e,
                          size_t n, struct fr_cover_site **out, char *err, size_t errlen)
{
    struct limits lim;
    struct fr_cover_site *s = NULL;
    char key[FR_COVER_TARGET_MAX + 1];
    int rc;

    if (err && errlen)
        err[0] = '\0';
    rc = resolve_limits(o, &lim, err, errlen);
    if (rc)
        return rc;
    if (n > 0 && !e)
        return fail(err, errlen, TP_ERR_INVALID, "", 0, "no entries");
    rc = site_new(&lim, &s);
    if (rc)
        return fail(err, errlen, rc, "", 0, "out of memory");
    rc = site_add(s, "", 0, true, NULL, 0, 0);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        bool is_dir;
        size_t kl = e[i].path ? entry_key(e[i].path, key, sizeof(key), &is_dir) : 0;
        if (kl == 0) {
            rc = fail(err, errlen, TP_ERR_INVALID, e[i].path ? e[i].path : "",
                      e[i].path ? strlen(e[i].path) : 0, "bad path");
            break;
        }
        if (!is_dir && e[i].len > lim.max_file) {
            rc = fail(err, errlen, TP_ERR_TOO_LARGE, key, kl, "larger than max_file");
            break;
        }
        if (!is_dir && e[i].len > lim.max_total - s->total) {
            rc = fail(err, errlen, TP_ERR_TOO_LARGE, key, kl, "over max_total");
            break;
        }
        /* Implied parents; repeats are merged by site_finish. */
        for (size_t j = 1; rc == 0 && j < kl; j++)
            if (key[j] == '/')
                rc = site_add(s, key, j, true, NULL, 0, e[i].mtime);
        if (rc)
            break;
        uint8_t *copy = NULL;
        if (!is_dir && e[i].len > 0) {
            if (!e[i].data) {
                rc = fail(err, errlen, TP_ERR_INVALID, key, kl, "no data");
                break;
            }
            copy = malloc(e[i].len);
            if (!copy) {
                rc = TP_ERR_NOMEM;
                break;
            }
            memcpy(copy, e[i].data, e[i].len);
        }
        rc = site_add(s, key, kl, is_dir, copy, is_dir ? 0 : e[i].len, e[i].mtime);
        if (rc == 0 && !is_dir)
            s->total += e[i].len;
    }
    if (rc == 0)
        rc = site_finish(s, &lim, err, errlen);
    if (rc) {
        if (rc == TP_ERR_NOMEM)
            fail(err, errlen, rc, "", 0, "out of memory");
        fr_cover_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* ---- loading from a directory ---- */

struct dir_id {
    dev_t dev;
    ino_t ino;
};

struct loader {
    struct fr_cover_site *site;
    const struct limits *lim;
    char *err;
    size_t errlen;
    char *root_real; /* realpath of the root */
    size_t root_len;
    struct dir_id stack[FR_COVER_DEPTH_MAX + 1];
    size_t depth;                      /* directories on the stack below the root */
    char rel[FR_COVER_TARGET_MAX + 1]; /* current key: "" or "/a/b" */
    size_t rel_len;
};

static int io_fail(struct loader *l, const char *what)
{
    int e = errno;
    return fail(l->err, l->errlen, TP_ERR_IO, l->rel, l->rel_len, "%s: %s", what,
                strerror(e));
}

static int walk(struct loader *l, int dirfd);

/* Reads the regular file open on |fd| into one allocation. */
static int read_file(struct loader *l, int fd, const struct stat *st)
{
    if (st->st_size < 0 || (uint64_t)st->st_size > (uint64_t)l->lim->max_file)
        return fail(l->err, l->errlen, TP_ERR_TOO_LARGE, l->rel, l->rel_len,
                    "larger than max_file (%zu bytes)", l->lim->max_file);
    size_t size = (size_t)st->st_size;
    if (size > l->lim->max_total - l->site->total)
        return fail(l->err, l->errlen, TP_ERR_TOO_LARGE, l->rel, l->rel_len,
                    "tree larger than max_total (%zu bytes)", l->lim->max_total);
    uint8_t *buf = NULL;
    if (size > 0) {
        buf = malloc(size);
        if (!buf)
            return fail(l->err, l->errlen, TP_ERR_NOMEM, l->rel, l->rel_len,
                        "out of memory");
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r == -1) {
            if (errno == EINTR)
                continue;
            free(buf);
            return io_fail(l, "cannot read");
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    if (got != size) {
        free(buf);
        return fail(l->err, l->errlen, TP_ERR_IO, l->rel, l->rel_len,
                    "changed while loading");
    }
    int rc = site_add(l->site, l->rel, l->rel_len, false, buf, size,
                      (int64_t)st->st_mtim.tv_sec);
    if (rc)
        return fail(l->err, l->errlen, rc, l->rel, l->rel_len, "out of memory");
    l->site->total += size;
    return 0;
}

static int enter_dir(struct loader *l, int fd, const struct stat *st)
{
    /* A directory already on the way down is a symlink loop: skip it, as following it
       could only repeat what is being loaded. */
    for (size_t i = 0; i <= l->depth; i++)
        if (l->stack[i].dev == st->st_dev && l->stack[i].ino == st->st_ino)
            return 0;
    if (l->depth + 1 > FR_COVER_DEPTH_MAX)
        return fail(l->err, l->errlen, TP_ERR_TOO_LARGE, l->rel, l->rel_len,
                    "deeper than %d directories", FR_COVER_DEPTH_MAX);
    int rc =
        site_add(l->site, l->rel, l->rel_len, true, NULL, 0, (int64_t)st->st_mtim.tv_sec);
    if (rc)
        return fail(l->err, l->errlen, rc, l->rel, l->rel_len, "out of memory");
    l->depth++;
    l->stack[l->depth].dev = st->st_dev;
    l->stack[l->depth].ino = st->st_ino;
    rc = walk(l, fd);
    l->depth--;
    return rc;
}

/* For a symbolic link at l->rel: its target's real path if that lies inside the root,
   else NULL (dangling or outside: skipped). *oom is set when realpath ran out of
   memory. The caller frees the result. */
static char *link_inside(struct loader *l, bool *oom)
{
    char abs[PATH_MAX];
    *oom = false;
    int n = snprintf(abs, sizeof(abs), "%s%s", l->root_real, l->rel);
    if (n < 0 || (size_t)n >= sizeof(abs))
        return NULL;
    char *real = realpath(abs, NULL);
    if (!real) {
        *oom = errno == ENOMEM;
        return NULL;
    }
    if (strncmp(real, l->root_real, l->root_len) == 0 &&
        (real[l->root_len] == '/' || real[l->root_len] == '\0' ||
         (l->root_len == 1 && l->root_real[0] == '/')))
        return real;
    free(real);
    return NULL;
}

static int visit(struct loader *l, int dirfd, const char *name)
{
    struct stat st;
    int fd;

    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
        return io_fail(l, "cannot stat");
    if (S_ISLNK(st.st_mode)) {
        bool oom;
        char *real = link_inside(l, &oom);
        if (!real)
            return oom ? fail(l->err, l->errlen, TP_ERR_NOMEM, l->rel, l->rel_len,
                              "out of memory")
                       : 0;
        if (stat(real, &st) == -1 || !(S_ISDIR(st.st_mode) || S_ISREG(st.st_mode))) {
            free(real);
            return 0;
        }
        /* O_NONBLOCK: should the target have become a FIFO since stat, open must not
           wait for a writer; fstat below then skips it. */
        fd = S_ISDIR(st.st_mode)
                 ? open(real, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                 : open(real, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
        free(real);
    } else if (S_ISDIR(st.st_mode)) {
        fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    } else if (S_ISREG(st.st_mode)) {
        fd = openat(dirfd, name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    } else {
        return 0; /* devices, FIFOs, sockets: nginx answers 404 for them too */
    }
    if (fd == -1)
        return io_fail(l, "cannot open");
    int rc = 0;
    if (fstat(fd, &st) == -1) {
        rc = io_fail(l, "cannot stat");
    } else if (l->site->n >= l->lim->max_files + 1) {
        rc = fail(l->err, l->errlen, TP_ERR_TOO_LARGE, "", 0, "more than %zu files",
                  l->lim->max_files);
    } else if (S_ISDIR(st.st_mode)) {
        rc = enter_dir(l, fd, &st);
    } else if (S_ISREG(st.st_mode)) {
        rc = read_file(l, fd, &st);
    }
    close(fd);
    return rc;
}

static int walk(struct loader *l, int dirfd)
{
    int fd2 = dup(dirfd);
    if (fd2 == -1)
        return io_fail(l, "cannot read directory");
    DIR *d = fdopendir(fd2);
    if (!d) {
        int rc = io_fail(l, "cannot read directory");
        close(fd2);
        return rc;
    }
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno != 0)
                rc = io_fail(l, "cannot read directory");
            break;
        }
        const char *name = de->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        size_t nl = strlen(name), saved = l->rel_len;
        if (saved + 1 + nl > FR_COVER_TARGET_MAX) {
            rc = fail(l->err, l->errlen, TP_ERR_TOO_LARGE, l->rel, l->rel_len,
                      "path under it too long to be requested");
            break;
        }
        l->rel[saved] = '/';
        memcpy(l->rel + saved + 1, name, nl);
        l->rel_len = saved + 1 + nl;
        l->rel[l->rel_len] = '\0';
        rc = visit(l, dirfd, name);
        l->rel_len = saved;
        l->rel[saved] = '\0';
        if (rc)
            break;
    }
    closedir(d);
    return rc;
}

static int load_builtin(const struct limits *lim, struct fr_cover_site **out, char *err,
                        size_t errlen)
{
    struct fr_cover_entry e = {
        .path = lim->index,
        .data = (const uint8_t *)builtin_page,
        .len = sizeof(builtin_page) - 1,
        .mtime = (int64_t)time(NULL),
    };
    struct fr_cover_opts o = {.index = lim->index, .not_found = lim->not_found};
    return fr_cover_load_entries(&o, &e, 1, out, err, errlen);
}

int fr_cover_load(const struct fr_cover_opts *o, struct fr_cover_site **out, char *err,
                  size_t errlen)
{
    struct limits lim;
    struct loader *l = NULL;
    int rc, fd = -1;
    struct stat st;

    if (err && errlen)
        err[0] = '\0';
    rc = resolve_limits(o, &lim, err, errlen);
    if (rc)
        return rc;
    if (!o || !o->root)
        return load_builtin(&lim, out, err, errlen);

    /* The loader holds an 8 KiB path buffer and the directory stack: heap, not stack. */
    l = calloc(1, sizeof(*l));
    if (!l)
        return fail(err, errlen, TP_ERR_NOMEM, "", 0, "out of memory");
    l->lim = &lim;
    l->err = err;
    l->errlen = errlen;
    l->root_real = realpath(o->root, NULL);
    if (!l->root_real) {
        rc = io_fail(l, "cannot resolve");
        goto out;
    }
    l->root_len = strlen(l->root_real);
    fd = open(l->root_real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd == -1) {
        rc = io_fail(l, "cannot open");
        goto out;
    }
    if (fstat(fd, &st) == -1) {
        rc = io_fail(l, "cannot stat");
        goto out;
    }
    rc = site_new(&lim, &l->site);
    if (rc) {
        rc = fail(err, errlen, rc, "", 0, "out of memory");
        goto out;
    }
    rc = site_add(l->site, "", 0, true, NULL, 0, (int64_t)st.st_mtim.tv_sec);
    if (rc) {
        rc = fail(err, errlen, rc, "", 0, "out of memory");
        goto out;
    }
    l->stack[0].dev = st.st_dev;
    l->stack[0].ino = st.st_ino;
    rc = walk(l, fd);
    if (rc == 0)
        rc = site_finish(l->site, &lim, err, errlen);
    if (rc == 0) {
        *out = l->site;
        l->site = NULL;
    }
out:
    if (fd != -1)
        close(fd);
    fr_cover_free(l->site);
    l->site = NULL;
    free(l->root_real);
    l->root_real = NULL;
    free(l);
    return rc;
}

size_t fr_cover_count(const struct fr_cover_site *s)
{
    return s ? s->files : 0;
}

bool fr_cover_owns(const struct fr_cover_site *s, const uint8_t *p, size_t len)
{
    uintptr_t a = (uintptr_t)p;
    for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
        uintptr_t b = (uintptr_t)pages[i].body;
        if (a >= b && len <= pages[i].len && a - b <= pages[i].len - len)
            return true;
    }
    for (size_t i = 0; s && i < s->n; i++) {
        uintptr_t b = (uintptr_t)s->nodes[i].data;
        if (s->nodes[i].data && a >= b && len <= s->nodes[i].len &&
            a - b <= s->nodes[i].len - len)
            return true;
    }
    return false;
}

/* ---- request parsing ---- */

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int fr_cover_normalize(struct tp_str t, char *out, size_t cap, size_t *outlen,
                       struct tp_str *query)
{
    size_t end, n = 0;

    query->base = NULL;
    query->len = 0;
    if (t.len == 0 || t.base[0] != '/')
        return 400;
    for (size_t i = 0; i < t.len; i++) {
        unsigned char c = (unsigned char)t.base[i];
        if (c <= 0x20 || c == 0x7f)
            return 400;
    }
    for (end = 0; end < t.len && t.base[end] != '?' && t.base[end] != '#'; end++)
        ;
    if (end < t.len && t.base[end] == '?') {
        const char *q = t.base + end + 1;
        const char *hash = memchr(q, '#', t.len - end - 1);
        query->base = q;
        query->len = hash ? (size_t)(hash - q) : t.len - end - 1;
    }
    if (end > cap)
        return 414;

    /* Decode first: a decoded '/' or '.' then acts as a raw one, exactly as in nginx,
       while a decoded '?', '#' or '%' is just a byte of a name. */
    for (size_t i = 0; i < end; i++) {
        unsigned char c = (unsigned char)t.base[i];
        if (c == '%') {
            int hi = i + 1 < end ? hexval((unsigned char)t.base[i + 1]) : -1;
            int lo = i + 2 < end ? hexval((unsigned char)t.base[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return 400;
            c = (unsigned char)(hi << 4 | lo);
            if (c == 0)
                return 400;
            i += 2;
        }
        out[n++] = (char)c;
    }

    /* Resolve segments in place; w never passes r. out[0] is the raw leading '/'. */
    size_t w = 1, r = 1;
    while (r < n) {
        if (out[r] == '/') {
            r++;
            continue;
        }
        size_t s = r;
        while (r < n && out[r] != '/')
            r++;
        size_t sl = r - s;
        bool slash = r < n;
        if (slash)
            r++;
        if (sl == 1 && out[s] == '.')
            continue;
        if (sl == 2 && out[s] == '.' && out[s + 1] == '.') {
            if (w == 1)
                return 400;
            w--;
            while (out[w - 1] != '/')
                w--;
            continue;
        }
        memmove(out + w, out + s, sl);
        w += sl;
        if (slash)
            out[w++] = '/';
    }
    *outlen = w;
    return 0;
}

static unsigned char at(struct tp_str v, size_t i)
{
    return i < v.len ? (unsigned char)v.base[i] : 0;
}

static bool isdig(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* nginx accepts what its parser can make sense of, not only well-formed dates: the
   weekday is skipped unread, the month is told apart by as few letters as needed, and
   anything after the time (or the asctime year) is ignored. Matching that matters,
   because an exact If-Modified-Since is what turns a 200 into a 304. */
bool fr_cover_parse_time(struct tp_str v, int64_t *t)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    enum { F_RFC1123, F_RFC850, F_ASCTIME } fmt = F_RFC1123;
    size_t i = 0, n = v.len;
    int64_t day = 0, year = 0, hour, min, sec;
    int month;

    while (i < n && v.base[i] != ',' && v.base[i] != ' ')
        i++;
    if (i < n && v.base[i] == ' ')
        fmt = F_ASCTIME;
    i++;
    while (i < n && v.base[i] == ' ')
        i++;
    if (i > n || n - i < 18)
        return false;
    if (fmt != F_ASCTIME) {
        if (!isdig(at(v, i)) || !isdig(at(v, i + 1)))
            return false;
        day = (at(v, i) - '0') * 10 + (at(v, i + 1) - '0');
        i += 2;
        if (at(v, i) == ' ') {
            if (n - i < 18)
                return false;
            fmt = F_RFC1123;
        } else if (at(v, i) == '-') {
            fmt = F_RFC850;
        } else {
            return false;
        }
        i++;
    }
    switch (at(v, i)) {
    case 'J':
        month = at(v, i + 1) == 'a' ? 0 : at(v, i + 2) == 'n' ? 5 : 6;
        break;
    case 'F':
        month = 1;
        break;
    case 'M':
        month = at(v, i + 2) == 'r' ? 2 : 4;
        break;
    case 'A':
        month = at(v, i + 1) == 'p' ? 3 : 7;
        break;
    case 'S':
        month = 8;
        break;
    case 'O':
        month = 9;
        break;
    case 'N':
        month = 10;
        break;
    case 'D':
        month = 11;
        break;
    default:
        return false;
    }
    i += 3;
    if ((fmt == F_RFC1123 && at(v, i) != ' ') || (fmt == F_RFC850 && at(v, i) != '-'))
        return false;
    i++;
    if (fmt == F_RFC1123) {
        for (size_t k = 0; k < 4; k++)
            if (!isdig(at(v, i + k)))
                return false;
        year = (at(v, i) - '0') * 1000 + (at(v, i + 1) - '0') * 100 +
               (at(v, i + 2) - '0') * 10 + (at(v, i + 3) - '0');
        i += 4;
    } else if (fmt == F_RFC850) {
        if (!isdig(at(v, i)) || !isdig(at(v, i + 1)))
            return false;
        year = (at(v, i) - '0') * 10 + (at(v, i + 1) - '0');
        year += year < 70 ? 2000 : 1900;
        i += 2;
    } else {
        if (at(v, i) == ' ')
            i++;
        if (!isdig(at(v, i)))
            return false;
        day = at(v, i++) - '0';
        if (at(v, i) != ' ') {
            if (!isdig(at(v, i)))
                return false;
            day = day * 10 + (at(v, i++) - '0');
        }
        if (i > n || n - i < 14)
            return false;
    }
    if (at(v, i++) != ' ')
        return false;
    if (!isdig(at(v, i)) || !isdig(at(v, i + 1)))
        return false;
    hour = (at(v, i) - '0') * 10 + (at(v, i + 1) - '0');
    i += 2;
    if (at(v, i++) != ':' || !isdig(at(v, i)) || !isdig(at(v, i + 1)))
        return false;
    min = (at(v, i) - '0') * 10 + (at(v, i + 1) - '0');
    i += 2;
    if (at(v, i++) != ':' || !isdig(at(v, i)) || !isdig(at(v, i + 1)))
        return false;
    sec = (at(v, i) - '0') * 10 + (at(v, i + 1) - '0');
    if (fmt == F_ASCTIME) {
        i += 2;
        if (at(v, i++) != ' ')
            return false;
        for (size_t k = 0; k < 4; k++)
            if (!isdig(at(v, i + k)))
                return false;
        year = (at(v, i) - '0') * 1000 + (at(v, i + 1) - '0') * 100 +
               (at(v, i + 2) - '0') * 10 + (at(v, i + 3) - '0');
    }
    if (hour > 23 || min > 59 || sec > 59)
        return false;
    if (day == 29 && month == 1) {
        if ((year & 3) || (year % 100 == 0 && year % 400 != 0))
            return false;
    } else if (day > mdays[month]) {
        return false;
    }
    /* Day 00 is let through, as nginx lets it: it names the last day of the month
       before. */
    *t = days_from_civil(year, month + 1, 1) * 86400 + (day - 1) * 86400 + hour * 3600 +
         min * 60 + sec;
    return true;
}

enum fr_cover_range fr_cover_parse_range(struct tp_str v, int64_t size, int64_t *rstart,
                                         int64_t *rend)
{
    size_t i = 6; /* past "bytes=" */
    int64_t total = 0;
    unsigned found = 0;

    for (;;) {
        int64_t start = 0, end = 0;
        bool suffix = false;
        while (at(v, i) == ' ')
            i++;
        if (at(v, i) != '-') {
            if (!isdig(at(v, i)))
                return FR_COVER_RANGE_UNSATISFIABLE;
            while (isdig(at(v, i))) {
                int d = at(v, i++) - '0';
                if (start > (INT64_MAX - d) / 10)
                    return FR_COVER_RANGE_UNSATISFIABLE;
                start = start * 10 + d;
            }
            while (at(v, i) == ' ')
                i++;
            if (at(v, i++) != '-')
                return FR_COVER_RANGE_UNSATISFIABLE;
            while (at(v, i) == ' ')
                i++;
            if (at(v, i) == ',' || at(v, i) == 0) {
                end = size;
                goto found;
            }
        } else {
            suffix = true;
            i++;
        }
        if (!isdig(at(v, i)))
            return FR_COVER_RANGE_UNSATISFIABLE;
        while (isdig(at(v, i))) {
            int d = at(v, i++) - '0';
            if (end > (INT64_MAX - d) / 10)
                return FR_COVER_RANGE_UNSATISFIABLE;
            end = end * 10 + d;
        }
        while (at(v, i) == ' ')
            i++;
        if (at(v, i) != ',' && at(v, i) != 0)
            return FR_COVER_RANGE_UNSATISFIABLE;
        if (suffix) {
            start = end < size ? size - end : 0;
            end = size - 1;
        }
        end = end >= size ? size : end + 1;
    found:
        if (start < end) {
            if (++found == 1) {
                *rstart = start;
                *rend = end;
            }
            if (total > INT64_MAX - (end - start))
                return FR_COVER_RANGE_UNSATISFIABLE;
            total += end - start;
            /* A second satisfiable range: with "max_ranges 1" nginx sends it all. */
            if (found > 1)
                return FR_COVER_RANGE_IGNORE;
        } else if (start == 0) {
            return FR_COVER_RANGE_IGNORE;
        }
        if (at(v, i++) != ',')
            break;
    }
    if (found == 0)
        return FR_COVER_RANGE_UNSATISFIABLE;
    return FR_COVER_RANGE_PARTIAL;
}

bool fr_cover_etag_match(struct tp_str list, struct tp_str etag, bool weak)
{
    const char *s = list.base;
    size_t n = list.len, i = 0;
    if (n == 1 && s[0] == '*')
        return true;
    while (i < n) {
        if (weak && n - i > 2 && s[i] == 'W' && s[i + 1] == '/')
            i += 2;
        if (etag.len > n - i)
            return false;
        if (memcmp(s + i, etag.base, etag.len) == 0) {
            size_t j = i + etag.len;
            while (j < n && (s[j] == ' ' || s[j] == '\t'))
                j++;
            if (j == n || s[j] == ',')
                return true;
        }
        while (i < n && s[i] != ',')
            i++;
        while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == ','))
            i++;
    }
    return false;
}

/* ---- responses ---- */

struct reply {
    struct fr_cover_response *o;
    size_t used; /* bytes of o->scratch in use */
};

static void add(struct reply *rp, const char *name, const char *v, size_t vlen)
{
    struct fr_cover_response *o = rp->o;
    assert(o->nheaders < FR_COVER_MAX_HEADERS);
    o->headers[o->nheaders].name.base = name;
    o->headers[o->nheaders].name.len = strlen(name);
    o->headers[o->nheaders].value.base = v;
    o->headers[o->nheaders].value.len = vlen;
    o->nheaders++;
}

static void add_str(struct reply *rp, const char *name, const char *v)
{
    add(rp, name, v, strlen(v));
}

/* Formats a value into scratch and adds it. Scratch is sized for the largest
   response, so running out is our bug. */
static void add_fmt(struct reply *rp, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void add_fmt(struct reply *rp, const char *name, const char *fmt, ...)
{
    char *p = rp->o->scratch + rp->used;
    size_t room = sizeof(rp->o->scratch) - rp->used;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(p, room, fmt, ap);
    va_end(ap);
    assert(n >= 0 && (size_t)n < room);
    if (n < 0 || (size_t)n >= room)
        return;
    rp->used += (size_t)n + 1;
    add(rp, name, p, (size_t)n);
}

static void set_body(struct reply *rp, const uint8_t *body, size_t len)
{
    rp->o->body = body;
    rp->o->body_len = len;
    rp->o->content_length = (int64_t)len;
}

/* An error answer: nginx's page for |status|, or the site's own 404 page. */
static void reply_error(const struct fr_cover_site *s, struct reply *rp, int status)
{
    rp->o->status = status;
    rp->o->nheaders = 0;
    rp->used = 0;
    if (status == 404 && s->not_found) {
        const struct node *nd = s->not_found;
        add_str(rp, "content-type", nd->type);
        add(rp, "etag", nd->etag, nd->etag_len);
        set_body(rp, nd->data, nd->len);
        return;
    }
    const struct page *pg = page_for(status);
    add_str(rp, "content-type", "text/html");
    set_body(rp, (const uint8_t *)pg->body, pg->len);
}

/* nginx's NGX_ESCAPE_URI set: controls, space, '#', '%', '?', DEL and non-ASCII. */
static bool needs_escape(unsigned char c)
{
    return c <= 0x20 || c == '#' || c == '%' || c == '?' || c >= 0x7f;
}

static void redirect(const struct fr_cover_site *s, struct reply *rp,
                     struct tp_str prefix, const char *path, size_t plen,
                     struct tp_str query)
{
    static const char hex[] = "0123456789ABCDEF";
    reply_error(s, rp, 301);
    char *p = rp->o->scratch + rp->used;
    size_t o = 0;
    /* Fits by construction: FR_COVER_SCRATCH allows every byte of the longest path to
       triple, plus the query; the request-line check counts the prefix in that path. */
    assert(rp->used + prefix.len + 3 * plen + 2 + query.len + 1 <=
           sizeof(rp->o->scratch));
    if (prefix.len) {
        /* The mount, as the front forwarded it. */
        memcpy(p, prefix.base, prefix.len);
        o = prefix.len;
    }
    for (size_t i = 0; i < plen; i++) {
        unsigned char c = (unsigned char)path[i];
        if (needs_escape(c)) {
            p[o++] = '%';
            p[o++] = hex[c >> 4];
            p[o++] = hex[c & 15];
        } else {
            p[o++] = (char)c;
        }
    }
    p[o++] = '/';
    if (query.len) {
        p[o++] = '?';
        memcpy(p + o, query.base, query.len);
        o += query.len;
    }
    rp->used += o;
    add(rp, "location", p, o);
}

static struct tp_str trim(struct tp_str v)
{
    while (v.len && (v.base[0] == ' ' || v.base[0] == '\t')) {
        v.base++;
        v.len--;
    }
    while (v.len && (v.base[v.len - 1] == ' ' || v.base[v.len - 1] == '\t'))
        v.len--;
    return v;
}

static bool present(struct tp_str v)
{
    return v.base != NULL;
}

static bool range_allowed(const struct node *nd, const struct fr_cover_request *r)
{
    if (!present(r->if_range))
        return true;
    struct tp_str ir = trim(r->if_range);
    if (ir.len >= 2 && ir.base[ir.len - 1] == '"')
        return ir.len == nd->etag_len && memcmp(ir.base, nd->etag, ir.len) == 0;
    int64_t t;
    return fr_cover_parse_time(ir, &t) && t == nd->mtime;
}

static void serve_file(const struct fr_cover_site *s, struct reply *rp,
                       const struct node *nd, const struct fr_cover_request *r)
{
    struct tp_str etag = {nd->etag, nd->etag_len};
    int64_t t;

    /* The not-modified filter runs before the range filter, as in nginx. */
    if (present(r->if_unmodified_since) &&
        !(fr_cover_parse_time(trim(r->if_unmodified_since), &t) && t >= nd->mtime)) {
        reply_error(s, rp, 412);
        return;
    }
    if (present(r->if_match) && !fr_cover_etag_match(trim(r->if_match), etag, false)) {
        reply_error(s, rp, 412);
        return;
    }
    if (present(r->if_modified_since) || present(r->if_none_match)) {
        bool modified = false;
        if (present(r->if_modified_since))
            modified =
                !(fr_cover_parse_time(trim(r->if_modified_since), &t) && t == nd->mtime);
        if (!modified && present(r->if_none_match))
            modified = !fr_cover_etag_match(trim(r->if_none_match), etag, true);
        if (!modified) {
            rp->o->status = 304;
            add_str(rp, "last-modified", nd->last_modified);
            add(rp, "etag", nd->etag, nd->etag_len);
            rp->o->content_length = -1;
            rp->o->no_body = true;
            return;
        }
    }

    rp->o->status = 200;
    add_str(rp, "content-type", nd->type);
    add_str(rp, "last-modified", nd->last_modified);
    add(rp, "etag", nd->etag, nd->etag_len);
    set_body(rp, nd->data, nd->len);

    struct tp_str range = present(r->range) ? trim(r->range) : r->range;
    if (range.len >= 7 && strncasecmp(range.base, "bytes=", 6) == 0 &&
        range_allowed(nd, r)) {
        int64_t start = 0, end = 0, size = (int64_t)nd->len;
        switch (fr_cover_parse_range(range, size, &start, &end)) {
        case FR_COVER_RANGE_PARTIAL:
            rp->o->status = 206;
            add_fmt(rp, "content-range", "bytes %" PRId64 "-%" PRId64 "/%" PRId64, start,
                    end - 1, size);
            set_body(rp, nd->data + start, (size_t)(end - start));
            return;
        case FR_COVER_RANGE_UNSATISFIABLE:
            reply_error(s, rp, 416);
            add_fmt(rp, "content-range", "bytes */%" PRId64, size);
            return;
        case FR_COVER_RANGE_IGNORE:
            break;
        }
    }
    add_str(rp, "accept-ranges", "bytes");
}

static bool method_ok(struct tp_str m)
{
    if (m.len == 0)
        return false;
    for (size_t i = 0; i < m.len; i++) {
        char c = m.base[i];
        if (!((c >= 'A' && c <= 'Z') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static void route(const struct fr_cover_site *s, struct reply *rp,
                  const struct fr_cover_request *r, bool head)
{
    /* Room for the longest normalised path plus "/" and the index name. */
    char path[FR_COVER_TARGET_MAX + FR_COVER_NAME_MAX + 2];
    size_t plen;
    struct tp_str query;
    const struct node *nd;

    if (!method_ok(r->method)) {
        reply_error(s, rp, 400);
        return;
    }
    /* nginx reads an HTTP/1.1 request line into an 8k buffer: "METHOD target
       HTTP/1.1\r\n" longer than that is 414. */
    struct tp_str prefix =
        r->outside || !r->prefix.base ? (struct tp_str){NULL, 0} : r->prefix;
    if (r->path.len > FR_COVER_TARGET_MAX ||
        r->method.len + prefix.len + r->path.len + 12 > FR_COVER_TARGET_MAX) {
        reply_error(s, rp, 414);
        return;
    }
    int st = fr_cover_normalize(r->path, path, FR_COVER_TARGET_MAX, &plen, &query);
    if (st) {
        reply_error(s, rp, st);
        return;
    }
    bool post = tp_str_eq(r->method, "POST");
    if (!head && !post && !tp_str_eq(r->method, "GET")) {
        reply_error(s, rp, 405);
        return;
    }
    if (r->outside) {
        reply_error(s, rp, 404);
        return;
    }
    if (path[plen - 1] == '/') {
        /* nginx's index module: "dir/" is dir/<index>, reached by an internal
           redirect; a directory without it is forbidden (no autoindex). */
        nd = lookup(s, path, plen - 1);
        if (!nd || !nd->is_dir) {
            reply_error(s, rp, 404);
            return;
        }
        memcpy(path + plen, s->index, s->index_len);
        plen += s->index_len;
        nd = lookup(s, path, plen);
        if (!nd) {
            reply_error(s, rp, 403);
            return;
        }
    } else {
        nd = lookup(s, path, plen);
        if (!nd) {
            reply_error(s, rp, 404);
            return;
        }
    }
    if (nd->is_dir) {
        redirect(s, rp, prefix, path, plen, query);
        return;
    }
    if (post) {
        reply_error(s, rp, 405);
        return;
    }
    serve_file(s, rp, nd, r);
}

void fr_cover_serve(const struct fr_cover_site *s, const struct fr_cover_request *r,
                    struct fr_cover_response *out)
{
    struct reply rp = {out, 0};
    bool head = tp_str_eq(r->method, "HEAD");

    out->status = 0;
    out->nheaders = 0;
    out->body = NULL;
    out->body_len = 0;
    out->content_length = -1;
    out->no_body = false;
    route(s, &rp, r, head);
    if (head || out->no_body) {
        out->no_body = true;
        out->body = NULL;
        out->body_len = 0;
    }
}
