/* Feeds arbitrary bytes to the config parser, conf_snapshot_load_buffer.

   Each input runs twice: once as is, and once with one of the allocations it made
   failing (which one is picked from the input's bytes), so the error paths that free a
   half-built snapshot are fuzzed too. A successful load is walked and checked against
   the promises conf_snapshot.h makes; a broken promise aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf_snapshot.h"
#include "conf_snapshot_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An absolute file name: relative paths resolve without getcwd. */
#define FUZZ_FILE "/fuzz/conf.yaml"

static void check(bool ok)
{
    if (!ok)
        abort();
}

static void check_str(const char *s)
{
    check(s != NULL);
    check(strlen(s) <= CONF_MAX_FILE + 4096);
}

static void check_lower(const char *s)
{
    for (; *s; s++)
        check(!(*s >= 'A' && *s <= 'Z'));
}

static void check_snapshot(const struct conf_snapshot *s)
{
    check_str(s->file);
    check(s->workers <= 256);
    check_str(s->error_log);
    check(s->nlisten >= 1);
    for (size_t i = 0; i < s->nlisten; i++) {
        const struct conf_listen *l = &s->listen[i];
        check_str(l->host);
        check(l->port >= 1);
        check(l->tls == (l->certificate != NULL) && l->tls == (l->key != NULL));
        if (l->tls)
            check(l->certificate[0] == '/' && l->key[0] == '/');
    }
    check(!(s->cover.root && s->cover.upstream));
    check_str(s->cover.index);
    check_str(s->cover.not_found);
    check_str(s->sealed.path);
    check_str(s->sealed.keys_path);
    check(s->sealed.enabled == (s->sealed.keys_dir != NULL));
    check(strcmp(s->sealed.path, s->sealed.keys_path) != 0 || !s->sealed.enabled);
    for (size_t i = 0; i < s->nbackends; i++) {
        const struct conf_backend *b = &s->backends[i];
        check_str(b->name);
        check_str(b->adapter);
        check(b->headers != NULL && b->headers[b->nheaders] == NULL);
        for (size_t j = 0; j < b->nheaders; j++) {
            check_str(b->headers[j]);
            check_lower(b->headers[j]);
        }
        for (size_t j = 0; j < b->nparams; j++) {
            check_str(b->params[j].key);
            check_str(b->params[j].value);
            check(b->params[j].line >= 1);
        }
        check(b->pad_min >= 1);
    }
    for (size_t i = 0; i < s->nroutes; i++) {
        const struct conf_route *r = &s->routes[i];
        check_str(r->path);
        check(r->path[0] == '/');
        if (r->host)
            check_lower(r->host);
        if (r->handler == CONF_HANDLER_BACKEND) {
            bool found = false;
            for (size_t j = 0; j < s->nbackends; j++)
                found = found || strcmp(s->backends[j].name, r->backend) == 0;
            check(found);
        } else {
            check(r->backend == NULL);
        }
    }
}

static int load(const uint8_t *data, size_t size)
{
    struct conf_snapshot *snap = NULL;
    struct conf_error err;
    int rc = conf_snapshot_load_buffer(FUZZ_FILE, (const char *)data, size, &snap, &err);
    if (rc == 0) {
        check(snap != NULL);
        check_snapshot(snap);
        conf_snapshot_free(snap);
    } else {
        check(snap == NULL);
        check(rc < 0 && rc >= CONF_ERR_NOMEM);
        check(memchr(err.msg, '\0', sizeof(err.msg)) != NULL);
        check(strncmp(err.msg, FUZZ_FILE ":", sizeof(FUZZ_FILE)) == 0);
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Count the allocations a normal run makes, by starting the countdown high. */
    conf_alloc_fail_countdown = (unsigned long)-1;
    (void)load(data, size);
    unsigned long allocs = (unsigned long)-1 - conf_alloc_fail_countdown;
    conf_alloc_fail_countdown = 0;
    if (allocs == 0)
        return 0;

    uint32_t h = 2166136261u; /* FNV-1a picks the allocation to fail */
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 16777619u;
    conf_alloc_fail_countdown = 1 + h % allocs;
    int rc = load(data, size);
    check(conf_alloc_fail_countdown == 0 && rc == CONF_ERR_NOMEM);
    conf_alloc_fail_countdown = 0;
    return 0;
}
