#include "tp_mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Asked each time (once per session): workers share no cache of it. */
static size_t page_size(void)
{
    long n = sysconf(_SC_PAGESIZE);
    return n > 0 ? (size_t)n : 4096;
}

/* The slot holding |p|, or -1 when |p| came from malloc. */
static int find(const struct tp_mem *m, const void *p)
{
    if (!p)
        return -1;
    for (int i = 0; i < TP_MEM_PAGED_SLOTS; i++)
        if (m->blocks[i].p == p)
            return i;
    return -1;
}

/* A mapped block of at least |size| bytes, or NULL (then the caller uses malloc). */
static void *map_block(struct tp_mem *m, size_t size)
{
    if (!m->paged || size < TP_MEM_PAGED_MIN)
        return NULL;
    int slot = -1;
    for (int i = 0; i < TP_MEM_PAGED_SLOTS && slot < 0; i++)
        if (!m->blocks[i].p)
            slot = i;
    if (slot < 0)
        return NULL;
    size_t ps = page_size();
    if (size > SIZE_MAX - ps)
        return NULL;
    size_t len = (size + ps - 1) / ps * ps;
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL; /* out of mappings (vm.max_map_count) or memory: malloc instead */
#ifdef MADV_NOHUGEPAGE
    /* With transparent huge pages "always", khugepaged would otherwise fold these
       neighbouring mappings into 2 MiB pages, making every page resident. */
    (void)madvise(p, len, MADV_NOHUGEPAGE);
#endif
    m->blocks[slot].p = p;
    m->blocks[slot].len = len;
    return p;
}

static void *mem_malloc(size_t size, void *ud)
{
    void *p = map_block(ud, size);
    return p ? p : malloc(size);
}

static void mem_free(void *ptr, void *ud)
{
    struct tp_mem *m = ud;
    int i = find(m, ptr);
    if (i < 0) {
        free(ptr);
        return;
    }
    munmap(m->blocks[i].p, m->blocks[i].len);
    m->blocks[i].p = NULL;
    m->blocks[i].len = 0;
}

static void *mem_calloc(size_t nmemb, size_t size, void *ud)
{
    if (size && nmemb > SIZE_MAX / size)
        return NULL;
    /* Fresh anonymous pages are already zero. */
    void *p = map_block(ud, nmemb * size);
    return p ? p : calloc(nmemb, size);
}

static void *mem_realloc(void *ptr, size_t size, void *ud)
{
    struct tp_mem *m = ud;
    /* nghttp2 creates its buffers by reallocating NULL (nghttp2_buf_reserve). */
    if (!ptr)
        return mem_malloc(size, ud);
    int i = find(m, ptr);
    if (i < 0)
        return realloc(ptr, size);
    if (size <= m->blocks[i].len)
        return ptr;
    /* Growing a mapped block: the new one comes from malloc (paged is off by now). */
    void *np = malloc(size);
    if (!np)
        return NULL;
    memcpy(np, ptr, m->blocks[i].len);
    mem_free(ptr, m);
    return np;
}

void tp_mem_init(struct tp_mem *m)
{
    memset(m, 0, sizeof(*m));
    m->mem = (nghttp2_mem){.mem_user_data = m,
                           .malloc = mem_malloc,
                           .free = mem_free,
                           .calloc = mem_calloc,
                           .realloc = mem_realloc};
}

void tp_mem_clear(struct tp_mem *m)
{
    for (int i = 0; i < TP_MEM_PAGED_SLOTS; i++)
        if (m->blocks[i].p)
            mem_free(m->blocks[i].p, m);
}

nghttp2_mem *tp_mem_nghttp2(struct tp_mem *m)
{
    return &m->mem;
}

void tp_mem_set_paged(struct tp_mem *m, bool on)
{
    m->paged = on;
}

static bool all_zero(const void *p, size_t len)
{
    const unsigned char *b = p;
    return len == 0 || (b[0] == 0 && memcmp(b, b + 1, len - 1) == 0);
}

size_t tp_mem_trim(struct tp_mem *m, size_t dead_min)
{
    size_t n = 0;
    for (int i = 0; i < TP_MEM_PAGED_SLOTS; i++) {
        void *p = m->blocks[i].p;
        size_t len = m->blocks[i].len;
        if (!p || (len < dead_min && !all_zero(p, len)))
            continue;
        if (madvise(p, len, MADV_DONTNEED) == 0)
            n++;
    }
    return n;
}

size_t tp_mem_paged_blocks(const struct tp_mem *m)
{
    size_t n = 0;
    for (int i = 0; i < TP_MEM_PAGED_SLOTS; i++)
        n += m->blocks[i].p != NULL;
    return n;
}
