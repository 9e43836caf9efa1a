/* The nghttp2 allocator that gives an idle session's frame buffer back (tp_mem.c):
   which blocks it maps, that trimming really releases their pages, and that sessions
   keep working, byte for byte, across trims. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <CUnit/CUnit.h>
#include <nghttp2/nghttp2.h>

#include "unit_suites.h"
#include "tp_mem.h"

/* Resident pages of |m|'s mapped blocks (mincore). */
static size_t resident_pages(const struct tp_mem *m)
{
    size_t ps = (size_t)sysconf(_SC_PAGESIZE), n = 0;
    for (int i = 0; i < TP_MEM_PAGED_SLOTS; i++) {
        if (!m->blocks[i].p)
            continue;
        size_t pages = m->blocks[i].len / ps;
        unsigned char *vec = malloc(pages);
        CU_ASSERT_FATAL(vec != NULL);
        CU_ASSERT_FATAL(mincore(m->blocks[i].p, m->blocks[i].len, vec) == 0);
        for (size_t k = 0; k < pages; k++)
            n += vec[k] & 1;
        free(vec);
    }
    return n;
}

static void mapped_only_while_paged(void)
{
    struct tp_mem m;
    tp_mem_init(&m);
    nghttp2_mem *mem = tp_mem_nghttp2(&m);
    void *small = mem->malloc(TP_MEM_PAGED_MIN, mem->mem_user_data);
    CU_ASSERT_EQUAL(tp_mem_paged_blocks(&m), 0); /* paged is off */
    tp_mem_set_paged(&m, true);
    void *tiny = mem->malloc(TP_MEM_PAGED_MIN - 1, mem->mem_user_data);
    CU_ASSERT_EQUAL(tp_mem_paged_blocks(&m), 0); /* too small */
    /* nghttp2 creates buffers by reallocating NULL */
    uint8_t *big = mem->realloc(NULL, TP_MEM_H2_FRAMEBUF, mem->mem_user_data);
    uint8_t *zeroed = mem->calloc(3, 4096, mem->mem_user_data);
    uint8_t *more[TP_MEM_PAGED_SLOTS - 1];
    for (int i = 0; i < TP_MEM_PAGED_SLOTS - 1; i++)
        more[i] = mem->malloc(10000, mem->mem_user_data); /* the last: slots full */
    tp_mem_set_paged(&m, false);
    CU_ASSERT_FATAL(small && tiny && big && zeroed);
    CU_ASSERT_EQUAL(tp_mem_paged_blocks(&m), TP_MEM_PAGED_SLOTS);
    for (int i = 1; i < TP_MEM_PAGED_SLOTS - 1; i++) {
        CU_ASSERT_FATAL(more[i] != NULL);
        mem->free(more[i], mem->mem_user_data);
    }
    CU_ASSERT_EQUAL(tp_mem_paged_blocks(&m), 3);
    /* trimming: the zero block and the big one past |dead_min| go; a small block
       holding a byte stays */
    memset(more[0], 0, 10000);
    more[0][9999] = 1;
    big[0] = 1;
    CU_ASSERT_EQUAL(tp_mem_trim(&m, TP_MEM_H2_FRAMEBUF), 2);
    CU_ASSERT_EQUAL(more[0][9999], 1);
    CU_ASSERT_EQUAL(big[0], 0);
    /* with nothing vouched dead, only all-zero blocks go: |big| is zero by now */
    CU_ASSERT_EQUAL(tp_mem_trim(&m, SIZE_MAX), 2);
    mem->free(more[0], mem->mem_user_data);
    CU_ASSERT_EQUAL((uintptr_t)big % (uintptr_t)sysconf(_SC_PAGESIZE), 0);
    for (size_t i = 0; i < 3 * 4096; i++)
        CU_ASSERT_EQUAL_FATAL(zeroed[i], 0);
    memset(big, 0xab, TP_MEM_H2_FRAMEBUF);
    /* growing within the mapping keeps the block; past it moves to malloc, intact */
    CU_ASSERT_PTR_EQUAL(mem->realloc(big, TP_MEM_H2_FRAMEBUF + 100, mem->mem_user_data),
                        big);
    uint8_t *moved = mem->realloc(big, 64 * 1024, mem->mem_user_data);
    CU_ASSERT_FATAL(moved != NULL);
    CU_ASSERT_EQUAL(tp_mem_paged_blocks(&m), 1);
    CU_ASSERT(moved[0] == 0xab && moved[TP_MEM_H2_FRAMEBUF - 1] == 0xab);
    mem->free(moved, mem->mem_user_data);
    mem->free(small, mem->mem_user_data);
    mem->free(tiny, mem->mem_user_data);
    mem->free(NULL, mem->mem_user_data);
    CU_ASSERT_EQUAL(tp_mem_paged_blocks(&m), 1);
    tp_mem_clear(&m); /* unmaps |zeroed| */
    CU_ASSERT_EQUAL(tp_mem_paged_blocks(&m), 0);
}

/* ---- a client and a server session, bytes moved by hand ---------------------- */

#define BIG_VALUE 6000 /* a response field that fills more than one page of frame */
#define ROUNDS 3

struct peer {
    nghttp2_session *s;
    int responses; /* client: complete responses whose fields checked out */
    int bad;       /* client: fields that did not */
};

static char big_value[BIG_VALUE];

static int srv_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    if (f->hd.type != NGHTTP2_HEADERS || !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    nghttp2_nv nva[] = {
        {(uint8_t *)":status", (uint8_t *)"204", 7, 3, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"x-big", (uint8_t *)big_value, 5, BIG_VALUE, NGHTTP2_NV_FLAG_NONE},
    };
    return nghttp2_submit_response(s, f->hd.stream_id, nva, 2, NULL) == 0
               ? 0
               : NGHTTP2_ERR_CALLBACK_FAILURE;
}

static int cli_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                      size_t namelen, const uint8_t *value, size_t valuelen,
                      uint8_t flags, void *ud)
{
    struct peer *p = ud;
    if (namelen == 5 && memcmp(name, "x-big", 5) == 0 &&
        (valuelen != BIG_VALUE || memcmp(value, big_value, BIG_VALUE) != 0))
        p->bad++;
    if (namelen == 7 && memcmp(name, ":status", 7) == 0 &&
        (valuelen != 3 || memcmp(value, "204", 3) != 0))
        p->bad++;
    return 0;
}

static int cli_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct peer *p = ud;
    if (f->hd.type == NGHTTP2_HEADERS && (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        p->responses++;
    return 0;
}

/* Moves everything |from| has to send into |to|; returns the bytes moved. */
static size_t pump(nghttp2_session *from, nghttp2_session *to)
{
    size_t total = 0;
    for (;;) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(from, &data);
        CU_ASSERT_FATAL(n >= 0);
        if (n == 0)
            return total;
        CU_ASSERT_FATAL(nghttp2_session_mem_recv(to, data, (size_t)n) == n);
        total += (size_t)n;
    }
}

static void sessions_survive_trims(void)
{
    for (size_t i = 0; i < sizeof(big_value); i++)
        big_value[i] = (char)('a' + i % 26);
    nghttp2_session_callbacks *scb, *ccb;
    CU_ASSERT_FATAL(nghttp2_session_callbacks_new(&scb) == 0);
    CU_ASSERT_FATAL(nghttp2_session_callbacks_new(&ccb) == 0);
    nghttp2_session_callbacks_set_on_frame_recv_callback(scb, srv_frame_recv);
    nghttp2_session_callbacks_set_on_frame_recv_callback(ccb, cli_frame_recv);
    nghttp2_session_callbacks_set_on_header_callback(ccb, cli_header);

    struct tp_mem m;
    tp_mem_init(&m);
    struct peer srv = {0}, cli = {0};
    tp_mem_set_paged(&m, true);
    CU_ASSERT_FATAL(
        nghttp2_session_server_new3(&srv.s, scb, &srv, NULL, tp_mem_nghttp2(&m)) == 0);
    tp_mem_set_paged(&m, false);
    /* Exactly one block as large as the outbound frame buffer at creation: were a
       newer nghttp2 to map another (live) one that large, trimming would lose it. */
    size_t frame_bufs = 0;
    for (int i = 0; i < TP_MEM_PAGED_SLOTS; i++)
        frame_bufs += m.blocks[i].p && m.blocks[i].len >= TP_MEM_H2_FRAMEBUF;
    CU_ASSERT_EQUAL_FATAL(frame_bufs, 1);
    CU_ASSERT(tp_mem_paged_blocks(&m) >= 1);
    CU_ASSERT_FATAL(nghttp2_session_client_new(&cli.s, ccb, &cli) == 0);
    CU_ASSERT_FATAL(nghttp2_submit_settings(cli.s, NGHTTP2_FLAG_NONE, NULL, 0) == 0);
    /* As tp_h2 does: without RFC 7540 priorities nghttp2 keeps no closed streams. */
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1}};
    CU_ASSERT_FATAL(nghttp2_submit_settings(srv.s, NGHTTP2_FLAG_NONE, iv, 1) == 0);
    for (int round = 0; round < ROUNDS; round++) {
        nghttp2_nv req[] = {
            {(uint8_t *)":method", (uint8_t *)"GET", 7, 3, NGHTTP2_NV_FLAG_NONE},
            {(uint8_t *)":scheme", (uint8_t *)"https", 7, 5, NGHTTP2_NV_FLAG_NONE},
            {(uint8_t *)":authority", (uint8_t *)"localhost", 10, 9,
             NGHTTP2_NV_FLAG_NONE},
            {(uint8_t *)":path", (uint8_t *)"/", 5, 1, NGHTTP2_NV_FLAG_NONE},
        };
        CU_ASSERT_FATAL(nghttp2_submit_request(cli.s, NULL, req, 4, NULL, NULL) > 0);
        for (int i = 0; i < 4; i++) {
            pump(cli.s, srv.s);
            size_t sent = pump(srv.s, cli.s);
            if (sent > BIG_VALUE) /* the response: it spread over several pages */
                CU_ASSERT(resident_pages(&m) >= 2);
            /* mem_send returned 0: the frame buffer holds nothing live; once the
               stream has closed the stream table is empty (zero) too */
            size_t trimmed = tp_mem_trim(&m, TP_MEM_H2_FRAMEBUF);
            if (i > 0) {
                CU_ASSERT_EQUAL(trimmed, tp_mem_paged_blocks(&m));
                CU_ASSERT_EQUAL(resident_pages(&m), 0);
            } else {
                CU_ASSERT(trimmed >= 1);
            }
        }
        CU_ASSERT_EQUAL(cli.responses, round + 1);
    }
    CU_ASSERT_EQUAL(cli.bad, 0);
    /* and the connection still does everything else: a PING and its ACK */
    uint8_t opaque[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    CU_ASSERT_FATAL(nghttp2_submit_ping(srv.s, NGHTTP2_FLAG_NONE, opaque) == 0);
    CU_ASSERT(pump(srv.s, cli.s) == 9 + 8);
    CU_ASSERT(pump(cli.s, srv.s) == 9 + 8);
    CU_ASSERT(nghttp2_session_want_read(srv.s) && nghttp2_session_want_read(cli.s));
    nghttp2_session_del(srv.s);
    CU_ASSERT_EQUAL(tp_mem_paged_blocks(&m), 0); /* the session freed (unmapped) it */
    tp_mem_clear(&m);
    nghttp2_session_del(cli.s);
    nghttp2_session_callbacks_del(scb);
    nghttp2_session_callbacks_del(ccb);
}

int test_tp_mem(void)
{
    CU_pSuite s = CU_add_suite("tp_mem", NULL, NULL);
    if (!s ||
        !CU_add_test(s, "large blocks are mapped only while paged",
                     mapped_only_while_paged) ||
        !CU_add_test(s, "sessions work byte for byte across trims",
                     sessions_survive_trims))
        return -1;
    return 0;
}
