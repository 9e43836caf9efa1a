/* libzaslon-client (client/zaslon_*.c): sealing checked by transport's gateway code
   (every inner field, Date, repeated fields, exact bucket sizes), opening of gateway
   answers (fields, trailers, padding, tampering), the key-list choice, the option and
   request refusals, and the libcurl transport end to end against small in-test servers
   on 127.0.0.1 (a thread each, blocking sockets, bounded in time): failover from a
   closed port, from a front that never answers (the same sealed bytes go to the next
   front) and from an untrusted certificate; TLS with SNI = the front name and Host =
   the hidden edge; cover answers (ZASLON_ERR_NOT_SEALED, no failover after an answer);
   sealed error answers; the answer size cap; key fetching through the fronts. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/CUnit.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "unit_suites.h"

#include "tp_bhttp.h"
#include "tp_err.h"
#include "tp_hpke.h"
#include "tp_http.h"
#include "tp_ohttp.h"
#include "zaslon_client.h"
#include "zaslon_client_internal.h"

#define FIXED_DATE "Sun, 06 Nov 1994 08:49:37 GMT"

/* ---- a gateway key ------------------------------------------------------------------
 */

struct gwkey {
    uint8_t sk[32], pk[32];
    struct tp_ohttp_key_config cfg;
    uint8_t list[512];
    size_t list_len;
};

static bool gwkey_make(struct gwkey *k, uint8_t key_id, uint16_t aead)
{
    memset(k, 0, sizeof(*k));
    if (tp_hpke_generate_keypair(k->sk, k->pk) != 0)
        return false;
    k->cfg.key_id = key_id;
    k->cfg.kem_id = TP_HPKE_KEM_X25519_SHA256;
    memcpy(k->cfg.public_key, k->pk, 32);
    k->cfg.n_suites = 1;
    k->cfg.suites[0] = (struct tp_ohttp_suite){TP_HPKE_KDF_HKDF_SHA256, aead};
    return tp_ohttp_keys_encode(&k->cfg, 1, k->list, sizeof(k->list), &k->list_len) == 0;
}

static int lookup(void *arg, const struct tp_ohttp_header *hdr, const uint8_t **sk,
                  const uint8_t **pk)
{
    const struct gwkey *k = arg;
    if (hdr->key_id != k->cfg.key_id)
        return -1;
    *sk = k->sk;
    *pk = k->pk;
    return 0;
}

static struct zaslon_client *client_with_key(const struct zaslon_client_opts *o,
                                             const struct gwkey *k)
{
    struct zaslon_client *c = NULL;
    if (zaslon_client_new(o, &c) != 0)
        return NULL;
    if (zaslon_client_set_keys(c, k->list, k->list_len) != 0) {
        zaslon_client_free(c);
        return NULL;
    }
    return c;
}

/* What the gateway opened: the request decoded from |plain|, which it borrows. */
struct opened {
    uint8_t *plain;
    size_t plain_len;
    struct tp_bhttp_request req;
    struct tp_ohttp_gateway *gw;
};

static bool gateway_open(const struct gwkey *k, const uint8_t *sealed, size_t len,
                         struct opened *o)
{
    memset(o, 0, sizeof(*o));
    o->plain = malloc(len);
    if (!o->plain || tp_ohttp_gateway_new(&o->gw) != 0)
        return false;
    if (tp_ohttp_gateway_decap(o->gw, sealed, len, lookup, (void *)k, o->plain, len,
                               &o->plain_len) != 0)
        return false;
    return tp_bhttp_request_decode(&o->req, o->plain, o->plain_len, NULL) == 0;
}

static void opened_clear(struct opened *o)
{
    tp_bhttp_request_clear(&o->req);
    tp_ohttp_gateway_free(o->gw);
    free(o->plain);
    memset(o, 0, sizeof(*o));
}

/* Encapsulates a Binary HTTP response made of the given parts on |gw|. */
static uint8_t *gateway_answer(struct tp_ohttp_gateway *gw,
                               const struct tp_bhttp_response *r, size_t padding,
                               size_t *len)
{
    struct tp_bhttp_encode_opts eo = {TP_BHTTP_KNOWN_LENGTH, false, padding};
    size_t blen = 0;
    if (tp_bhttp_response_encoded_len(r, &eo, &blen) != 0)
        return NULL;
    uint8_t *b = malloc(blen);
    size_t cap = tp_ohttp_gateway_response_len(gw, blen);
    uint8_t *out = malloc(cap);
    if (!b || !out || tp_bhttp_response_encode(r, &eo, b, blen, &blen) != 0 ||
        tp_ohttp_gateway_encap_response(gw, b, blen, out, cap, len) != 0) {
        free(b);
        free(out);
        return NULL;
    }
    free(b);
    return out;
}

/* ---- sealing ----------------------------------------------------------------------- */

static void seal_fields(void)
{
    struct gwkey k;
    CU_ASSERT_FATAL(gwkey_make(&k, 7, TP_HPKE_AEAD_CHACHA20POLY1305));
    struct zaslon_client *c = client_with_key(NULL, &k);
    CU_ASSERT_FATAL(c != NULL);

    static const uint8_t body[] = "{\"ballot\":\"b3\"}";
    struct zaslon_header h[] = {{"Content-Type", "application/json"},
                                {"X-Multi", "a"},
                                {"x-multi", "b, c"},
                                {"Accept", "*/*"}};
    struct zaslon_request r = {
        "POST", "HTTPS://Vote.Example:8443/ballot/cast?x=1&y=%20#frag",
        h,      4,
        body,   sizeof(body) - 1};
    uint8_t *sealed = NULL;
    size_t len = 0;
    struct zaslon_exchange *ex = NULL;
    time_t now = time(NULL);
    CU_ASSERT_EQUAL_FATAL(zaslon_seal(c, &r, &sealed, &len, &ex), 0);
    CU_ASSERT_EQUAL(len, 1024);
    CU_ASSERT_EQUAL(sealed[0], 7);

    struct opened o;
    CU_ASSERT_FATAL(gateway_open(&k, sealed, len, &o));
    struct tp_bhttp_request *q = &o.req;
    CU_ASSERT(tp_str_eq(q->method, "POST"));
    CU_ASSERT(tp_str_eq(q->scheme, "https"));
    CU_ASSERT(tp_str_eq(q->authority, "vote.example:8443"));
    CU_ASSERT(tp_str_eq(q->path, "/ballot/cast?x=1&y=%20"));
    CU_ASSERT_EQUAL_FATAL(q->n_headers, 5);
    const char *want[][2] = {{"content-type", "application/json"},
                             {"x-multi", "a"},
                             {"x-multi", "b, c"},
                             {"accept", "*/*"}};
    for (size_t i = 0; i < 4; i++) {
        CU_ASSERT(tp_str_eq(q->headers[i].name, want[i][0]));
        CU_ASSERT(tp_str_eq(q->headers[i].value, want[i][1]));
    }
    /* The Date we added: IMF-fixdate, now. */
    time_t when = 0;
    CU_ASSERT(tp_str_eq(q->headers[4].name, "date"));
    CU_ASSERT_EQUAL(q->headers[4].value.len, TP_HTTP_DATE_LEN);
    CU_ASSERT_EQUAL(tp_http_date_parse(q->headers[4].value, &when), 0);
    CU_ASSERT(when >= now - 2 && when <= now + 5);
    CU_ASSERT(q->content_len == sizeof(body) - 1 &&
              memcmp(q->content, body, sizeof(body) - 1) == 0);
    CU_ASSERT_EQUAL(q->n_trailers, 0);
    opened_clear(&o);
    free(sealed);
    zaslon_exchange_free(ex);

    /* The caller's Date is kept (any case), and no second one is added; GET with no
       path gets "/". */
    struct zaslon_header hd[] = {{"DATE", FIXED_DATE}};
    struct zaslon_request g = {NULL, "https://vote.example", hd, 1, NULL, 0};
    CU_ASSERT_EQUAL_FATAL(zaslon_seal(c, &g, &sealed, &len, &ex), 0);
    CU_ASSERT_FATAL(gateway_open(&k, sealed, len, &o));
    CU_ASSERT(tp_str_eq(o.req.method, "GET"));
    CU_ASSERT(tp_str_eq(o.req.path, "/"));
    CU_ASSERT(o.req.n_headers == 1 && tp_str_eq(o.req.headers[0].name, "date") &&
              tp_str_eq(o.req.headers[0].value, FIXED_DATE));
    CU_ASSERT_EQUAL(o.req.content_len, 0);
    opened_clear(&o);
    free(sealed);
    zaslon_exchange_free(ex);

    /* A query without a path, and a body without a method: POST. */
    struct zaslon_request p = {NULL, "http://vote.example?q=1", NULL, 0, body, 3};
    CU_ASSERT_EQUAL_FATAL(zaslon_seal(c, &p, &sealed, &len, &ex), 0);
    CU_ASSERT_FATAL(gateway_open(&k, sealed, len, &o));
    CU_ASSERT(tp_str_eq(o.req.method, "POST") && tp_str_eq(o.req.scheme, "http") &&
              tp_str_eq(o.req.path, "/?q=1"));
    opened_clear(&o);
    free(sealed);
    zaslon_exchange_free(ex);
    zaslon_client_free(c);
}

static void seal_buckets(void)
{
    /* POST https://vote.example/ballot with only "date: <29 bytes>": the Binary HTTP
       request is 70 + varint(b) + b bytes (control data 33, header section 36,
       content, empty trailers 1), so the sealed request is 125 + varint(b) + b before
       padding. */
    static const struct {
        size_t pad_min, body, sealed;
    } cases[] = {
        {0, 0, 1024},       {0, 1, 1024},       {0, 897, 1024},    {0, 898, 2048},
        {0, 5000, 8192},    {0, 16383, 32768},  {0, 20000, 32768}, {100, 0, 128},
        {100, 2, 128},      {100, 3, 256},      {128, 2, 128},     {4096, 0, 4096},
        {4096, 3969, 4096}, {4096, 3970, 8192}, {1, 0, 128},
    };
    static uint8_t body[20000];
    struct gwkey k;
    CU_ASSERT_FATAL(gwkey_make(&k, 1, TP_HPKE_AEAD_AES128GCM));
    memset(body, 'v', sizeof(body));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct zaslon_client_opts opts = {.pad_min = cases[i].pad_min};
        struct zaslon_client *c = client_with_key(&opts, &k);
        CU_ASSERT_FATAL(c != NULL);
        struct zaslon_header h[] = {{"Date", FIXED_DATE}};
        struct zaslon_request r = {
            "POST", "https://vote.example/ballot", h, 1, body, cases[i].body};
        uint8_t *sealed = NULL;
        size_t len = 0;
        struct zaslon_exchange *ex = NULL;
        CU_ASSERT_EQUAL_FATAL(zaslon_seal(c, &r, &sealed, &len, &ex), 0);
        if (len != cases[i].sealed)
            fprintf(stderr, "\ncase %zu: sealed %zu, want %zu\n", i, len,
                    cases[i].sealed);
        CU_ASSERT_EQUAL(len, cases[i].sealed);
        /* The gateway sees exactly the body: the padding is gone after decoding. */
        struct opened o;
        CU_ASSERT_FATAL(gateway_open(&k, sealed, len, &o));
        CU_ASSERT_EQUAL(o.req.content_len, cases[i].body);
        CU_ASSERT_EQUAL(o.plain_len, len - TP_OHTTP_REQ_OVERHEAD);
        opened_clear(&o);
        free(sealed);
        zaslon_exchange_free(ex);
        zaslon_client_free(c);
    }
    CU_ASSERT_EQUAL(zaslon_pad_bucket(0, 1), 1);
    CU_ASSERT_EQUAL(zaslon_pad_bucket(1025, 1024), 2048);
    CU_ASSERT_EQUAL(zaslon_pad_bucket(SIZE_MAX / 2 + 2, 1), 0);
}

/* ---- opening ----------------------------------------------------------------------- */

/* Seals a GET with |c| and opens it at the gateway: the gateway context is ready for an
   answer. */
static bool start_exchange(struct zaslon_client *c, const struct gwkey *k,
                           struct opened *o, struct zaslon_exchange **ex)
{
    struct zaslon_request r = {"GET", "https://vote.example/status", NULL, 0, NULL, 0};
    uint8_t *sealed = NULL;
    size_t len = 0;
    if (zaslon_seal(c, &r, &sealed, &len, ex) != 0)
        return false;
    bool ok = gateway_open(k, sealed, len, o);
    free(sealed);
    return ok;
}

static void open_fields(void)
{
    static const uint16_t aeads[] = {TP_HPKE_AEAD_AES128GCM, TP_HPKE_AEAD_AES256GCM,
                                     TP_HPKE_AEAD_CHACHA20POLY1305};
    for (size_t a = 0; a < 3; a++) {
        struct gwkey k;
        CU_ASSERT_FATAL(gwkey_make(&k, (uint8_t)(a + 1), aeads[a]));
        struct zaslon_client *c = client_with_key(NULL, &k);
        CU_ASSERT_FATAL(c != NULL);
        struct opened o;
        struct zaslon_exchange *ex = NULL;
        CU_ASSERT_FATAL(start_exchange(c, &k, &o, &ex));

        struct tp_header fields[] = {
            {TP_STR_LIT("content-type"), TP_STR_LIT("text/plain")},
            {TP_STR_LIT("set-thing"), TP_STR_LIT("1")},
            {TP_STR_LIT("set-thing"), TP_STR_LIT("2")}};
        struct tp_header trailers[] = {{TP_STR_LIT("x-digest"), TP_STR_LIT("abc")}};
        struct tp_header info_fields[] = {{TP_STR_LIT("link"), TP_STR_LIT("</s>")}};
        struct tp_bhttp_info info = {103, info_fields, 1};
        static const uint8_t content[] = "accepted\0with a NUL";
        struct tp_bhttp_response res = {.informational = &info,
                                        .n_informational = 1,
                                        .status = 201,
                                        .headers = fields,
                                        .n_headers = 3,
                                        .content = content,
                                        .content_len = sizeof(content) - 1,
                                        .trailers = trailers,
                                        .n_trailers = 1};
        size_t len = 0;
        uint8_t *sealed_res = gateway_answer(o.gw, &res, 300, &len);
        CU_ASSERT_FATAL(sealed_res != NULL);

        struct zaslon_response out;
        memset(&out, 0, sizeof(out));
        CU_ASSERT_EQUAL_FATAL(zaslon_open(ex, sealed_res, len, &out), 0);
        CU_ASSERT_EQUAL(out.status, 201);
        CU_ASSERT_EQUAL_FATAL(out.nheaders, 3);
        CU_ASSERT_STRING_EQUAL(out.headers[0].name, "content-type");
        CU_ASSERT_STRING_EQUAL(out.headers[0].value, "text/plain");
        CU_ASSERT_STRING_EQUAL(out.headers[1].name, "set-thing");
        CU_ASSERT_STRING_EQUAL(out.headers[1].value, "1");
        CU_ASSERT_STRING_EQUAL(out.headers[2].value, "2");
        CU_ASSERT_EQUAL_FATAL(out.ntrailers, 1);
        CU_ASSERT_STRING_EQUAL(out.trailers[0].name, "x-digest");
        CU_ASSERT_STRING_EQUAL(out.trailers[0].value, "abc");
        CU_ASSERT(out.body_len == sizeof(content) - 1 &&
                  memcmp(out.body, content, out.body_len) == 0 &&
                  out.body[out.body_len] == 0);
        /* Once per exchange. */
        struct zaslon_response again;
        memset(&again, 0, sizeof(again));
        CU_ASSERT_EQUAL(zaslon_open(ex, sealed_res, len, &again), ZASLON_ERR_STATE);
        zaslon_response_clear(&out);
        CU_ASSERT(out.mem_ == NULL && out.headers == NULL && out.nheaders == 0);
        zaslon_response_clear(&out);
        zaslon_response_clear(NULL);
        free(sealed_res);
        zaslon_exchange_free(ex);
        opened_clear(&o);
        zaslon_client_free(c);
    }

    /* An empty answer: no fields, no body, a NUL-terminated empty body anyway. */
    struct gwkey k;
    CU_ASSERT_FATAL(gwkey_make(&k, 9, TP_HPKE_AEAD_AES128GCM));
    struct zaslon_client *c = client_with_key(NULL, &k);
    CU_ASSERT_FATAL(c != NULL);
    struct opened o;
    struct zaslon_exchange *ex = NULL;
    CU_ASSERT_FATAL(start_exchange(c, &k, &o, &ex));
    struct tp_bhttp_response res = {.status = 204};
    size_t len = 0;
    uint8_t *sealed_res = gateway_answer(o.gw, &res, 0, &len);
    struct zaslon_response out;
    memset(&out, 0, sizeof(out));
    CU_ASSERT_EQUAL(zaslon_open(ex, sealed_res, len, &out), 0);
    CU_ASSERT(out.status == 204 && out.nheaders == 0 && out.ntrailers == 0 &&
              out.body_len == 0 && out.body && out.body[0] == 0);
    zaslon_response_clear(&out);
    free(sealed_res);
    zaslon_exchange_free(ex);
    opened_clear(&o);
    zaslon_client_free(c);
    zaslon_exchange_free(NULL);
}

static void open_refusals(void)
{
    struct gwkey k;
    CU_ASSERT_FATAL(gwkey_make(&k, 3, TP_HPKE_AEAD_AES256GCM));
    struct zaslon_client *c = client_with_key(NULL, &k);
    CU_ASSERT_FATAL(c != NULL);
    struct zaslon_response out;
    memset(&out, 0, sizeof(out));
    struct tp_bhttp_response res = {
        .status = 200, .content = (const uint8_t *)"ok", .content_len = 2};

    /* Every byte flipped in turn: never opens, and the exchange is over after the
       first authentication failure. */
    struct opened o;
    struct zaslon_exchange *ex = NULL;
    CU_ASSERT_FATAL(start_exchange(c, &k, &o, &ex));
    size_t len = 0;
    uint8_t *good = gateway_answer(o.gw, &res, 0, &len);
    CU_ASSERT_FATAL(good != NULL);
    for (size_t i = 0; i < len; i++) {
        struct zaslon_exchange *e2 = NULL;
        struct opened o2;
        CU_ASSERT_FATAL(start_exchange(c, &k, &o2, &e2));
        size_t l2 = 0;
        uint8_t *r2 = gateway_answer(o2.gw, &res, 0, &l2);
        CU_ASSERT_FATAL(r2 != NULL && l2 == len);
        r2[i] ^= 0x01;
        CU_ASSERT_EQUAL(zaslon_open(e2, r2, l2, &out), ZASLON_ERR_CRYPTO);
        r2[i] ^= 0x01;
        CU_ASSERT_EQUAL(zaslon_open(e2, r2, l2, &out), ZASLON_ERR_STATE);
        CU_ASSERT(out.mem_ == NULL);
        free(r2);
        zaslon_exchange_free(e2);
        opened_clear(&o2);
    }
    /* Too short to be sealed, or truncated: malformed / does not authenticate. */
    CU_ASSERT_EQUAL(zaslon_open(ex, good, 10, &out), ZASLON_ERR_PROTO);
    CU_ASSERT_EQUAL(zaslon_open(ex, good, 0, &out), ZASLON_ERR_PROTO);
    CU_ASSERT_EQUAL(zaslon_open(ex, NULL, 5, &out), ZASLON_ERR_INVALID);
    CU_ASSERT_EQUAL(zaslon_open(NULL, good, len, &out), ZASLON_ERR_INVALID);
    CU_ASSERT_EQUAL(zaslon_open(ex, good, len - 1, &out), ZASLON_ERR_CRYPTO);
    free(good);
    zaslon_exchange_free(ex);
    opened_clear(&o);

    /* Sealed properly but not Binary HTTP inside: malformed. */
    CU_ASSERT_FATAL(start_exchange(c, &k, &o, &ex));
    static const uint8_t junk[] = {0x01, 0x40, 0xc8, 0x05,
                                   'x'}; /* a truncated response */
    size_t cap = tp_ohttp_gateway_response_len(o.gw, sizeof(junk));
    uint8_t *bad = malloc(cap);
    CU_ASSERT_FATAL(bad != NULL);
    CU_ASSERT_EQUAL_FATAL(
        tp_ohttp_gateway_encap_response(o.gw, junk, sizeof(junk), bad, cap, &len), 0);
    CU_ASSERT_EQUAL(zaslon_open(ex, bad, len, &out), ZASLON_ERR_PROTO);
    CU_ASSERT(out.mem_ == NULL);
    free(bad);
    zaslon_exchange_free(ex);
    opened_clear(&o);

    /* Over the client's max_response. */
    struct zaslon_client_opts opts = {.max_response = 64};
    struct zaslon_client *small = client_with_key(&opts, &k);
    CU_ASSERT_FATAL(small != NULL);
    CU_ASSERT_FATAL(start_exchange(small, &k, &o, &ex));
    static uint8_t big[100];
    res.content = big;
    res.content_len = sizeof(big);
    uint8_t *r = gateway_answer(o.gw, &res, 0, &len);
    CU_ASSERT_EQUAL(zaslon_open(ex, r, len, &out), ZASLON_ERR_TOO_LARGE);
    free(r);
    zaslon_exchange_free(ex);
    opened_clear(&o);
    zaslon_client_free(small);
    zaslon_client_free(c);
}

/* ---- keys, options, requests ------------------------------------------------------- */

static void keys_choice(void)
{
    struct gwkey k1, k2;
    CU_ASSERT_FATAL(gwkey_make(&k1, 1, TP_HPKE_AEAD_AES128GCM));
    CU_ASSERT_FATAL(gwkey_make(&k2, 2, TP_HPKE_AEAD_AES128GCM));
    struct zaslon_client *c = NULL;
    CU_ASSERT_EQUAL_FATAL(zaslon_client_new(NULL, &c), 0);
    uint8_t id = 0;
    uint16_t kdf = 0, aead = 0;
    CU_ASSERT_EQUAL(zaslon_client_key(c, &id, &kdf, &aead), ZASLON_ERR_NO_KEYS);
    struct zaslon_request r = {"GET", "https://vote.example/", NULL, 0, NULL, 0};
    uint8_t *sealed = NULL;
    size_t len = 0;
    struct zaslon_exchange *ex = NULL;
    CU_ASSERT_EQUAL(zaslon_seal(c, &r, &sealed, &len, &ex), ZASLON_ERR_NO_KEYS);
    CU_ASSERT(sealed == NULL && ex == NULL);

    /* First configuration lists only suites we lack; the second lists an unknown KDF
       first, then ChaCha20, then AES-128-GCM: ChaCha20 of the second is chosen. */
    struct tp_ohttp_key_config cfgs[2] = {k1.cfg, k2.cfg};
    cfgs[0].n_suites = 2;
    cfgs[0].suites[0] = (struct tp_ohttp_suite){1, 0x99};
    cfgs[0].suites[1] = (struct tp_ohttp_suite){2, 1};
    cfgs[1].n_suites = 3;
    cfgs[1].suites[0] = (struct tp_ohttp_suite){2, 1};
    cfgs[1].suites[1] = (struct tp_ohttp_suite){1, 3};
    cfgs[1].suites[2] = (struct tp_ohttp_suite){1, 1};
    uint8_t list[1024];
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(tp_ohttp_keys_encode(cfgs, 2, list, sizeof(list), &n), 0);
    CU_ASSERT_EQUAL(zaslon_client_set_keys(c, list, n), 0);
    CU_ASSERT_EQUAL(zaslon_client_key(c, &id, &kdf, &aead), 0);
    CU_ASSERT(id == 2 && kdf == 1 && aead == 3);
    CU_ASSERT_EQUAL_FATAL(zaslon_seal(c, &r, &sealed, &len, &ex), 0);
    CU_ASSERT(sealed[0] == 2 && sealed[5] == 0 && sealed[6] == 3);
    struct opened o;
    CU_ASSERT(gateway_open(&k2, sealed, len, &o));
    opened_clear(&o);
    free(sealed);
    zaslon_exchange_free(ex);

    /* A good configuration followed by a malformed one: the whole list is refused and
       the previous choice stays. */
    uint8_t bad[1024];
    memcpy(bad, k1.list, k1.list_len);
    static const uint8_t broken[] = {0x00, 0x30, 0x05, 0x00, 0x20};
    memcpy(bad + k1.list_len, broken, sizeof(broken));
    CU_ASSERT_EQUAL(zaslon_client_set_keys(c, bad, k1.list_len + sizeof(broken)),
                    ZASLON_ERR_KEYS);
    /* The same list with one trailing stray byte. */
    bad[k1.list_len] = 0;
    CU_ASSERT_EQUAL(zaslon_client_set_keys(c, bad, k1.list_len + 1), ZASLON_ERR_KEYS);
    CU_ASSERT_EQUAL(zaslon_client_key(c, &id, NULL, NULL), 0);
    CU_ASSERT_EQUAL(id, 2);
    /* Empty, too long, NULL. */
    CU_ASSERT_EQUAL(zaslon_client_set_keys(c, list, 0), ZASLON_ERR_KEYS);
    CU_ASSERT_EQUAL(zaslon_client_set_keys(c, NULL, 3), ZASLON_ERR_INVALID);
    CU_ASSERT_EQUAL(zaslon_client_set_keys(c, list, ZASLON_MAX_KEYS_LEN + 1),
                    ZASLON_ERR_KEYS);
    /* A list of only an unknown KEM (P-256, 65-byte key): nothing usable. */
    uint8_t p256[2 + 1 + 2 + 65 + 2 + 4] = {0, 74, 9, 0x00, 0x10};
    p256[3 + 2 + 65] = 0;
    p256[3 + 2 + 65 + 1] = 4;
    p256[3 + 2 + 65 + 2 + 1] = 1;
    p256[3 + 2 + 65 + 2 + 3] = 1;
    p256[5] = 0x04;
    CU_ASSERT_EQUAL(zaslon_client_set_keys(c, p256, sizeof(p256)), ZASLON_ERR_KEYS);
    /* Only unsupported suites anywhere. */
    CU_ASSERT_EQUAL_FATAL(tp_ohttp_keys_encode(cfgs, 1, list, sizeof(list), &n), 0);
    CU_ASSERT_EQUAL(zaslon_client_set_keys(c, list, n), ZASLON_ERR_KEYS);
    CU_ASSERT_EQUAL(zaslon_client_key(c, &id, NULL, NULL), 0);
    CU_ASSERT_EQUAL(id, 2);
    zaslon_client_free(c);
    zaslon_client_free(NULL);
}

static void option_refusals(void)
{
    struct zaslon_client *c = NULL;
    struct zaslon_front f[ZASLON_MAX_FRONTS + 1];
    memset(f, 0, sizeof(f));
    struct zaslon_client_opts o = {.fronts = f, .nfronts = 1};
    static const struct zaslon_front bad[] = {
        {NULL, NULL, NULL, NULL, false, false},
        {"ftp://front.example/", NULL, NULL, NULL, false, false},
        {"front.example/s", NULL, NULL, NULL, false, false},
        {"https:///s", NULL, NULL, NULL, false, false},
        {"https://front.example/s", NULL, NULL, NULL, false, true}, /* h2c over TLS */
        {"https://front.example/s", "edge hidden", NULL, NULL, false, false},
        {"https://front.example/s", "edge\r\nx: y", NULL, NULL, false, false},
        {"https://front.example/s", NULL, "127.0.0.1", NULL, false, false},
        {"https://front.example/s", NULL, "127.0.0.1:0", NULL, false, false},
        {"https://front.example/s", NULL, "127.0.0.1:65536", NULL, false, false},
        {"https://front.example/s", NULL, ":443", NULL, false, false},
        {"https://front.example/s", NULL, "[::1]443", NULL, false, false},
        {"https://front.example/s", NULL, "[]:443", NULL, false, false},
        {"https://front.example/s", NULL, "a b:443", NULL, false, false},
        {"https://front.example/s", NULL, NULL, "", false, false},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        f[0] = bad[i];
        CU_ASSERT_EQUAL(zaslon_client_new(&o, &c), ZASLON_ERR_INVALID);
        if (c)
            fprintf(stderr, "\naccepted bad front %zu\n", i);
        zaslon_client_free(c);
        c = NULL;
    }
    static const struct zaslon_front good[] = {
        {"https://front.example/prefix/s/", "edge.hidden", "127.0.0.1:8443", "/x.pem",
         false, false},
        {"http://front.example:8080/s", "edge.hidden:8443", "[::1]:8443", NULL, true,
         true},
        {"HTTPS://front.example", NULL, "localhost:1", NULL, false, false},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        f[0] = good[i];
        CU_ASSERT_EQUAL(zaslon_client_new(&o, &c), 0);
        zaslon_client_free(c);
        c = NULL;
    }
    for (size_t i = 0; i <= ZASLON_MAX_FRONTS; i++)
        f[i] = good[0];
    o.nfronts = ZASLON_MAX_FRONTS;
    CU_ASSERT_EQUAL(zaslon_client_new(&o, &c), 0);
    zaslon_client_free(c);
    c = NULL;
    o.nfronts = ZASLON_MAX_FRONTS + 1;
    CU_ASSERT_EQUAL(zaslon_client_new(&o, &c), ZASLON_ERR_INVALID);
    o.nfronts = 1;
    o.user_agent = "ua\r\nx: 1";
    CU_ASSERT_EQUAL(zaslon_client_new(&o, &c), ZASLON_ERR_INVALID);
    o.user_agent = "Mozilla/5.0 (X11)";
    o.proxy = "socks5h://127.0.0.1:9050";
    CU_ASSERT_EQUAL(zaslon_client_new(&o, &c), 0);
    zaslon_client_free(c);
    c = NULL;
    CU_ASSERT_EQUAL(zaslon_client_new(NULL, NULL), ZASLON_ERR_INVALID);
    o.fronts = NULL;
    CU_ASSERT_EQUAL(zaslon_client_new(&o, &c), ZASLON_ERR_INVALID);

    /* Every code has its own text. */
    static const int codes[] = {ZASLON_OK,
                                ZASLON_ERR_INVALID,
                                ZASLON_ERR_TOO_LARGE,
                                ZASLON_ERR_NO_KEYS,
                                ZASLON_ERR_KEYS,
                                ZASLON_ERR_CONNECT,
                                ZASLON_ERR_TLS,
                                ZASLON_ERR_TIMEOUT,
                                ZASLON_ERR_TRANSPORT,
                                ZASLON_ERR_NOT_SEALED,
                                ZASLON_ERR_CRYPTO,
                                ZASLON_ERR_PROTO,
                                ZASLON_ERR_STATE,
                                ZASLON_ERR_NOMEM};
    size_t nc = sizeof(codes) / sizeof(codes[0]);
    for (size_t i = 0; i < nc; i++) {
        CU_ASSERT(strcmp(zaslon_strerror(codes[i]), "unknown error") != 0);
        for (size_t j = i + 1; j < nc; j++)
            CU_ASSERT(strcmp(zaslon_strerror(codes[i]), zaslon_strerror(codes[j])) != 0);
    }
    CU_ASSERT_STRING_EQUAL(zaslon_strerror(-55), "unknown error");
}

static void request_refusals(void)
{
    struct gwkey k;
    CU_ASSERT_FATAL(gwkey_make(&k, 4, TP_HPKE_AEAD_AES128GCM));
    struct zaslon_client *c = client_with_key(NULL, &k);
    CU_ASSERT_FATAL(c != NULL);
    static const char *bad_urls[] = {"vote.example/x",
                                     "://vote.example/",
                                     "1https://vote.example",
                                     "https://user@vote.example/",
                                     "https:///x",
                                     "https://vote.example/a b",
                                     "https://:443/",
                                     "ht_tp://vote.example/"};
    uint8_t *sealed = NULL;
    size_t len = 0;
    struct zaslon_exchange *ex = NULL;
    for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
        struct zaslon_request r = {"GET", bad_urls[i], NULL, 0, NULL, 0};
        CU_ASSERT_EQUAL(zaslon_seal(c, &r, &sealed, &len, &ex), ZASLON_ERR_INVALID);
    }
    static const struct zaslon_header bad_fields[][1] = {
        {{"Host", "vote.example"}},
        {{"Content-Length", "3"}},
        {{"Connection", "close"}},
        {{"Transfer-Encoding", "chunked"}},
        {{"bad name", "1"}},
        {{"", "1"}},
        {{":path", "/"}},
        {{"x-a", "a\r\nb"}},
        {{"x-a", " lead"}},
        {{NULL, "x"}},
        {{"x-a", NULL}}};
    for (size_t i = 0; i < sizeof(bad_fields) / sizeof(bad_fields[0]); i++) {
        struct zaslon_request r = {"GET", "https://vote.example/", bad_fields[i], 1, NULL,
                                   0};
        CU_ASSERT_EQUAL(zaslon_seal(c, &r, &sealed, &len, &ex), ZASLON_ERR_INVALID);
    }
    struct zaslon_request r = {"PO ST", "https://vote.example/", NULL, 0, NULL, 0};
    CU_ASSERT_EQUAL(zaslon_seal(c, &r, &sealed, &len, &ex), ZASLON_ERR_INVALID);
    r.method = "POST";
    r.body_len = 3; /* body NULL */
    CU_ASSERT_EQUAL(zaslon_seal(c, &r, &sealed, &len, &ex), ZASLON_ERR_INVALID);
    r.body_len = 0;
    static struct zaslon_header many[ZASLON_MAX_HEADERS + 1];
    for (size_t i = 0; i <= ZASLON_MAX_HEADERS; i++)
        many[i] = (struct zaslon_header){"x-n", "1"};
    r.headers = many;
    r.nheaders = ZASLON_MAX_HEADERS + 1;
    CU_ASSERT_EQUAL(zaslon_seal(c, &r, &sealed, &len, &ex), ZASLON_ERR_INVALID);
    r.nheaders = ZASLON_MAX_HEADERS;
    CU_ASSERT_EQUAL(zaslon_seal(c, &r, &sealed, &len, &ex), 0);
    free(sealed);
    zaslon_exchange_free(ex);
    sealed = NULL;
    ex = NULL;
    CU_ASSERT_EQUAL(zaslon_seal(NULL, &r, &sealed, &len, &ex), ZASLON_ERR_INVALID);
    CU_ASSERT(sealed == NULL && ex == NULL);

    /* No fronts: sealing works, sending does not. */
    struct zaslon_response out;
    memset(&out, 0, sizeof(out));
    CU_ASSERT_EQUAL(zaslon_client_send(c, &r, &out), ZASLON_ERR_INVALID);
    CU_ASSERT_EQUAL(zaslon_client_fetch_keys(c, "/keys"), ZASLON_ERR_INVALID);
    CU_ASSERT_EQUAL(zaslon_client_last_front(c), -1);
    zaslon_client_free(c);

    struct tp_str sch, au, pa;
    char scratch[64];
    CU_ASSERT_EQUAL(zaslon_url_split("HTTPS://Vote.EXAMPLE:8443?q=A#f", scratch,
                                     sizeof(scratch), &sch, &au, &pa),
                    0);
    CU_ASSERT(tp_str_eq(sch, "https") && tp_str_eq(au, "vote.example:8443") &&
              tp_str_eq(pa, "/?q=A"));
    CU_ASSERT_EQUAL(zaslon_url_split("https://a/b", scratch, 12, &sch, &au, &pa),
                    ZASLON_ERR_INVALID);
    CU_ASSERT_EQUAL(zaslon_url_split("https://a/b", scratch, 13, &sch, &au, &pa), 0);
}

/* ---- an in-test HTTP/1.1 server ------------------------------------------------------
 */

enum srv_mode {
    SRV_SEALED,   /* a gateway: opens the request, answers inside the seal */
    SRV_COVER404, /* a cover site: 404 text/html */
    SRV_COVER200, /* a cover site: 200 text/html */
    SRV_BIG,      /* 200 message/ohttp-res with 8 KiB */
};

struct srv {
    int fd;
    uint16_t port;
    pthread_t th;
    bool running;
    atomic_bool stop;
    enum srv_mode mode;
    SSL_CTX *tls;
    const struct gwkey *key;
    int inner_status; /* status of the sealed answer */

    /* What the last request looked like (read after srv_stop). */
    int requests;
    char method[16], target[256], host[256], ctype[128];
    char sni_hs[256], sni[256]; /* of the handshake under way, of the last request */
    uint8_t *body;              /* the last request's body */
    size_t body_len;
    bool opened; /* the sealed request opened */
    char inner_method[16], inner_scheme[16], inner_authority[64], inner_path[256];
    char inner_fields[1024]; /* "name: value\n" for every field but date */
    char inner_date[64];
    size_t inner_body_len;
};

struct conn {
    int fd;
    SSL *ssl;
};

static ssize_t conn_read(struct conn *c, void *b, size_t n)
{
    if (c->ssl) {
        int r = SSL_read(c->ssl, b, n > 65536 ? 65536 : (int)n);
        return r > 0 ? r : -1;
    }
    return read(c->fd, b, n);
}

static bool conn_write(struct conn *c, const void *b, size_t n)
{
    const uint8_t *p = b;
    while (n) {
        ssize_t w;
        if (c->ssl) {
            int r = SSL_write(c->ssl, p, n > 65536 ? 65536 : (int)n);
            w = r > 0 ? r : -1;
        } else {
            w = send(c->fd, p, n, MSG_NOSIGNAL);
        }
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static void respond(struct conn *c, int status, const char *ctype, const void *body,
                    size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, tp_http_reason(status), ctype, len);
    if (n > 0 && (size_t)n < sizeof(head) && conn_write(c, head, (size_t)n))
        conn_write(c, body, len);
}

static void copy_str(char *dst, size_t cap, const char *src, size_t len)
{
    snprintf(dst, cap, "%.*s", (int)len, src);
}

/* Finds |needle| (|nl| bytes) in |hay| (|hl| bytes); memmem is a GNU extension. */
static char *find(char *hay, size_t hl, const char *needle, size_t nl)
{
    for (size_t i = 0; i + nl <= hl; i++)
        if (memcmp(hay + i, needle, nl) == 0)
            return hay + i;
    return NULL;
}

/* Reads one request; records its line, Host, Content-Type and body in |s|. */
static bool read_request(struct srv *s, struct conn *c)
{
    static const size_t max_body = 1 << 20;
    char head[16384];
    size_t hl = 0;
    char *end;
    while (!(end = find(head, hl, "\r\n\r\n", 4))) {
        if (hl == sizeof(head))
            return false;
        ssize_t n = conn_read(c, head + hl, sizeof(head) - hl);
        if (n <= 0)
            return false;
        hl += (size_t)n;
    }
    size_t hdr_len = (size_t)(end - head) + 4;
    s->host[0] = s->ctype[0] = '\0';
    size_t clen = 0;
    char *line = head, *stop = end + 2;
    bool first = true;
    while (line < stop) {
        char *eol = find(line, (size_t)(stop - line), "\r\n", 2);
        size_t ll = (size_t)(eol - line);
        if (first) {
            char *sp1 = memchr(line, ' ', ll);
            char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
            if (!sp2)
                return false;
            copy_str(s->method, sizeof(s->method), line, (size_t)(sp1 - line));
            copy_str(s->target, sizeof(s->target), sp1 + 1, (size_t)(sp2 - sp1 - 1));
            first = false;
        } else {
            char *colon = memchr(line, ':', ll);
            if (colon) {
                size_t nl = (size_t)(colon - line);
                char *v = colon + 1;
                while (v < eol && *v == ' ')
                    v++;
                if (nl == 4 && strncasecmp(line, "host", 4) == 0)
                    copy_str(s->host, sizeof(s->host), v, (size_t)(eol - v));
                else if (nl == 12 && strncasecmp(line, "content-type", 12) == 0)
                    copy_str(s->ctype, sizeof(s->ctype), v, (size_t)(eol - v));
                else if (nl == 14 && strncasecmp(line, "content-length", 14) == 0)
                    clen = strtoul(v, NULL, 10);
            }
        }
        line = eol + 2;
    }
    if (clen > max_body)
        return false;
    free(s->body);
    s->body = malloc(clen ? clen : 1);
    if (!s->body)
        return false;
    size_t have = hl - hdr_len;
    if (have > clen)
        have = clen;
    memcpy(s->body, head + hdr_len, have);
    while (have < clen) {
        ssize_t n = conn_read(c, s->body + have, clen - have);
        if (n <= 0)
            return false;
        have += (size_t)n;
    }
    s->body_len = clen;
    return true;
}

static void record_inner(struct srv *s, const struct tp_bhttp_request *q)
{
    copy_str(s->inner_method, sizeof(s->inner_method), q->method.base, q->method.len);
    copy_str(s->inner_scheme, sizeof(s->inner_scheme), q->scheme.base, q->scheme.len);
    copy_str(s->inner_authority, sizeof(s->inner_authority), q->authority.base,
             q->authority.len);
    copy_str(s->inner_path, sizeof(s->inner_path), q->path.base, q->path.len);
    s->inner_fields[0] = s->inner_date[0] = '\0';
    for (size_t i = 0; i < q->n_headers; i++) {
        const struct tp_header *h = &q->headers[i];
        if (tp_str_eq(h->name, "date")) {
            copy_str(s->inner_date, sizeof(s->inner_date), h->value.base, h->value.len);
            continue;
        }
        size_t used = strlen(s->inner_fields);
        snprintf(s->inner_fields + used, sizeof(s->inner_fields) - used, "%.*s: %.*s\n",
                 (int)h->name.len, h->name.base, (int)h->value.len, h->value.base);
    }
    s->inner_body_len = q->content_len;
}

/* The gateway: open, record, answer with the body echoed inside the seal. */
static void answer_sealed(struct srv *s, struct conn *c)
{
    static const char cover[] = "<html><body>Nothing here.</body></html>";
    struct tp_ohttp_gateway *gw = NULL;
    uint8_t *plain = malloc(s->body_len ? s->body_len : 1);
    size_t plen = 0, len = 0;
    struct tp_bhttp_request q;
    if (!plain || strcmp(s->method, "POST") != 0 ||
        strcmp(s->ctype, TP_OHTTP_REQ_MEDIA_TYPE) != 0 ||
        tp_ohttp_gateway_new(&gw) != 0 ||
        tp_ohttp_gateway_decap(gw, s->body, s->body_len, lookup, (void *)s->key, plain,
                               s->body_len, &plen) != 0 ||
        tp_bhttp_request_decode(&q, plain, plen, NULL) != 0) {
        respond(c, 404, "text/html", cover, sizeof(cover) - 1);
        goto out;
    }
    s->opened = true;
    record_inner(s, &q);
    struct tp_header fields[] = {{TP_STR_LIT("content-type"), TP_STR_LIT("text/plain")},
                                 {TP_STR_LIT("x-echo"), TP_STR_LIT("one")},
                                 {TP_STR_LIT("x-echo"), TP_STR_LIT("two")}};
    struct tp_bhttp_response res = {.status = (uint16_t)s->inner_status,
                                    .headers = fields,
                                    .n_headers = 3,
                                    .content = q.content,
                                    .content_len = q.content_len};
    uint8_t *sealed = gateway_answer(gw, &res, 37, &len);
    tp_bhttp_request_clear(&q);
    if (sealed)
        respond(c, 200, TP_OHTTP_RES_MEDIA_TYPE, sealed, len);
    free(sealed);
out:
    tp_ohttp_gateway_free(gw);
    free(plain);
}

static void serve(struct srv *s, struct conn *c)
{
    static const char page[] = "<html><body>Welcome to our bakery.</body></html>";
    if (!read_request(s, c))
        return;
    s->requests++;
    memcpy(s->sni, s->sni_hs, sizeof(s->sni));
    if (strcmp(s->method, "GET") == 0 && strcmp(s->target, "/prefix/keys") == 0 &&
        s->mode == SRV_SEALED) {
        respond(c, 200, TP_OHTTP_KEYS_MEDIA_TYPE, s->key->list, s->key->list_len);
        return;
    }
    switch (s->mode) {
    case SRV_SEALED:
        answer_sealed(s, c);
        break;
    case SRV_COVER404:
        respond(c, 404, "text/html; charset=utf-8", page, sizeof(page) - 1);
        break;
    case SRV_COVER200:
        respond(c, 200, "text/html", page, sizeof(page) - 1);
        break;
    case SRV_BIG: {
        static uint8_t big[8192];
        respond(c, 200, TP_OHTTP_RES_MEDIA_TYPE, big, sizeof(big));
        break;
    }
    }
}

static void *srv_main(void *arg)
{
    struct srv *s = arg;
    /* Bounded: at most 15 s and 64 connections, whatever the test does. */
    time_t deadline = time(NULL) + 15;
    for (int conns = 0; conns < 64 && !atomic_load(&s->stop) && time(NULL) < deadline;) {
        struct pollfd p = {s->fd, POLLIN, 0};
        if (poll(&p, 1, 50) != 1)
            continue;
        int cfd = accept(s->fd, NULL, NULL);
        if (cfd == -1)
            continue;
        conns++;
        struct timeval tv = {5, 0};
        setsockopt(cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(cfd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        struct conn c = {cfd, NULL};
        if (s->tls) {
            c.ssl = SSL_new(s->tls);
            if (c.ssl)
                SSL_set_app_data(c.ssl, s);
            if (c.ssl && SSL_set_fd(c.ssl, cfd) == 1 && SSL_accept(c.ssl) == 1) {
                serve(s, &c);
                SSL_shutdown(c.ssl);
            }
            SSL_free(c.ssl);
            ERR_clear_error();
        } else {
            serve(s, &c);
        }
        close(cfd);
    }
    return NULL;
}

/* A listening socket on 127.0.0.1 with a kernel-chosen port. */
static int listen_local(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    if (fd == -1)
        return -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == -1 || listen(fd, 16) == -1 ||
        getsockname(fd, (struct sockaddr *)&a, &al) == -1) {
        close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* Starts a server; |inner_status| is the status of its sealed answers. */
static bool srv_start_status(struct srv *s, enum srv_mode mode, const struct gwkey *k,
                             SSL_CTX *tls, int inner_status)
{
    memset(s, 0, sizeof(*s));
    atomic_init(&s->stop, false);
    s->mode = mode;
    s->key = k;
    s->tls = tls;
    s->inner_status = inner_status;
    s->fd = listen_local(&s->port);
    if (s->fd == -1)
        return false;
    if (pthread_create(&s->th, NULL, srv_main, s) != 0) {
        close(s->fd);
        return false;
    }
    s->running = true;
    return true;
}

static bool srv_start(struct srv *s, enum srv_mode mode, const struct gwkey *k,
                      SSL_CTX *tls)
{
    return srv_start_status(s, mode, k, tls, 200);
}

static void srv_stop(struct srv *s)
{
    if (!s->running)
        return;
    atomic_store(&s->stop, true);
    pthread_join(s->th, NULL);
    close(s->fd);
    s->running = false;
}

static void srv_free(struct srv *s)
{
    srv_stop(s);
    free(s->body);
    s->body = NULL;
}

/* A port on 127.0.0.1 where nothing listens (bound, then closed). */
static uint16_t closed_port(void)
{
    uint16_t port = 0;
    int fd = listen_local(&port);
    if (fd == -1)
        return 0;
    close(fd);
    return port;
}

static void addr(char *buf, size_t cap, uint16_t port)
{
    snprintf(buf, cap, "127.0.0.1:%u", (unsigned)port);
}

/* ---- end to end -------------------------------------------------------------------- */

static void send_failover(void)
{
    struct gwkey k;
    CU_ASSERT_FATAL(gwkey_make(&k, 5, TP_HPKE_AEAD_AES128GCM));
    struct srv s;
    CU_ASSERT_FATAL(srv_start(&s, SRV_SEALED, &k, NULL));
    char dead[32], live[32];
    addr(dead, sizeof(dead), closed_port());
    addr(live, sizeof(live), s.port);
    /* Both fronts carry a name only: with connect_to there is no DNS query. */
    struct zaslon_front fronts[] = {
        {"http://front.example/prefix/s/", "edge.hidden", dead, NULL, false, false},
        {"http://front.example/prefix/s/", "edge.hidden", live, NULL, false, false},
    };
    struct zaslon_client_opts o = {.fronts = fronts,
                                   .nfronts = 2,
                                   .connect_timeout_ms = 3000,
                                   .timeout_ms = 5000,
                                   .user_agent = "zaslon-test"};
    struct zaslon_client *c = NULL;
    CU_ASSERT_EQUAL_FATAL(zaslon_client_new(&o, &c), 0);

    /* Keys through the fronts, with the same failover. */
    CU_ASSERT_EQUAL(zaslon_client_fetch_keys(c, "//evil.example/keys"),
                    ZASLON_ERR_INVALID);
    CU_ASSERT_EQUAL(zaslon_client_fetch_keys(c, "keys"), ZASLON_ERR_INVALID);
    CU_ASSERT_EQUAL(zaslon_client_fetch_keys(c, "/prefix/keys"), 0);
    CU_ASSERT_EQUAL(zaslon_client_last_front(c), 1);
    CU_ASSERT_STRING_EQUAL(s.method, "GET");
    CU_ASSERT_STRING_EQUAL(s.target, "/prefix/keys");
    uint8_t id = 0;
    CU_ASSERT(zaslon_client_key(c, &id, NULL, NULL) == 0 && id == 5);

    static const uint8_t ballot[] = "{\"choice\":\"c\"}";
    struct zaslon_header h[] = {
        {"Content-Type", "application/json"}, {"X-Multi", "1"}, {"X-Multi", "2"}};
    struct zaslon_request r = {
        "POST", "https://vote.example/ballot?e=1", h, 3, ballot, sizeof(ballot) - 1};
    struct zaslon_response out;
    memset(&out, 0, sizeof(out));
    CU_ASSERT_EQUAL_FATAL(zaslon_client_send(c, &r, &out), 0);
    CU_ASSERT_EQUAL(zaslon_client_last_front(c), 1);
    CU_ASSERT_EQUAL(zaslon_client_last_status(c), 200);
    CU_ASSERT_STRING_EQUAL(zaslon_client_last_error(c), "");
    CU_ASSERT_EQUAL(out.status, 200);
    CU_ASSERT(out.body_len == sizeof(ballot) - 1 &&
              memcmp(out.body, ballot, out.body_len) == 0);
    CU_ASSERT(out.nheaders == 3 && strcmp(out.headers[2].name, "x-echo") == 0 &&
              strcmp(out.headers[2].value, "two") == 0);
    zaslon_response_clear(&out);
    srv_stop(&s);

    /* What the front saw: the fronted Host, the relay path, the media type, a bucket. */
    CU_ASSERT_EQUAL(s.requests, 2);
    CU_ASSERT_STRING_EQUAL(s.method, "POST");
    CU_ASSERT_STRING_EQUAL(s.target, "/prefix/s/");
    CU_ASSERT_STRING_EQUAL(s.host, "edge.hidden");
    CU_ASSERT_STRING_EQUAL(s.ctype, "message/ohttp-req");
    CU_ASSERT_EQUAL(s.body_len, 1024);
    /* What the gateway saw inside. */
    CU_ASSERT(s.opened);
    CU_ASSERT_STRING_EQUAL(s.inner_method, "POST");
    CU_ASSERT_STRING_EQUAL(s.inner_scheme, "https");
    CU_ASSERT_STRING_EQUAL(s.inner_authority, "vote.example");
    CU_ASSERT_STRING_EQUAL(s.inner_path, "/ballot?e=1");
    CU_ASSERT_STRING_EQUAL(s.inner_fields,
                           "content-type: application/json\nx-multi: 1\nx-multi: 2\n");
    time_t when;
    CU_ASSERT_EQUAL(
        tp_http_date_parse((struct tp_str){s.inner_date, strlen(s.inner_date)}, &when),
        0);
    CU_ASSERT_EQUAL(s.inner_body_len, sizeof(ballot) - 1);

    /* Every front down: the last front's error, and a detail naming both. */
    fronts[1].connect_to = dead;
    zaslon_client_free(c);
    c = NULL;
    CU_ASSERT_EQUAL_FATAL(zaslon_client_new(&o, &c), 0);
    CU_ASSERT_EQUAL(zaslon_client_set_keys(c, k.list, k.list_len), 0);
    CU_ASSERT_EQUAL(zaslon_client_send(c, &r, &out), ZASLON_ERR_CONNECT);
    CU_ASSERT_EQUAL(zaslon_client_last_front(c), 1);
    CU_ASSERT_EQUAL(zaslon_client_last_status(c), 0);
    CU_ASSERT(strstr(zaslon_client_last_error(c), "front 1: ") != NULL &&
              strstr(zaslon_client_last_error(c), "; front 2: ") != NULL);
    CU_ASSERT(out.mem_ == NULL);
    zaslon_client_free(c);
    srv_free(&s);
}

/* A listener that never accepts: the connection completes in the kernel, the request
   is sent, no answer ever comes, so the exchange times out before any answer byte. */
static void send_timeout_failover(void)
{
    struct gwkey k;
    CU_ASSERT_FATAL(gwkey_make(&k, 6, TP_HPKE_AEAD_CHACHA20POLY1305));
    uint16_t silent_port = 0;
    int silent = listen_local(&silent_port);
    CU_ASSERT_FATAL(silent != -1);
    struct srv s;
    CU_ASSERT_FATAL(srv_start(&s, SRV_SEALED, &k, NULL));
    char a0[32], a1[32];
    addr(a0, sizeof(a0), silent_port);
    addr(a1, sizeof(a1), s.port);
    struct zaslon_front fronts[] = {
        {"http://front.example/s", "edge.hidden", a0, NULL, false, false},
        {"http://other-front.example/s", "edge.hidden", a1, NULL, false, false},
    };
    struct zaslon_client_opts o = {.fronts = fronts, .nfronts = 2, .timeout_ms = 600};
    struct zaslon_client *c = client_with_key(&o, &k);
    CU_ASSERT_FATAL(c != NULL);
    static uint8_t body[3000];
    memset(body, 'x', sizeof(body));
    struct zaslon_request r = {"POST",      "https://vote.example/ballot", NULL, 0, body,
                               sizeof(body)};
    struct zaslon_response out;
    memset(&out, 0, sizeof(out));
    CU_ASSERT_EQUAL(zaslon_client_send(c, &r, &out), 0);
    CU_ASSERT_EQUAL(zaslon_client_last_front(c), 1);
    CU_ASSERT(out.status == 200 && out.body_len == sizeof(body));
    zaslon_response_clear(&out);
    srv_stop(&s);
    CU_ASSERT_EQUAL(s.body_len, 4096);

    /* The silent front did receive the request: the very same sealed bytes as the
       second front (one sealing, no re-sealing on failover). */
    struct pollfd p = {silent, POLLIN, 0};
    CU_ASSERT_FATAL(poll(&p, 1, 1000) == 1);
    int cfd = accept(silent, NULL, NULL);
    CU_ASSERT_FATAL(cfd != -1);
    struct timeval tv = {2, 0};
    setsockopt(cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct srv first;
    memset(&first, 0, sizeof(first));
    struct conn cn = {cfd, NULL};
    CU_ASSERT(read_request(&first, &cn));
    CU_ASSERT_STRING_EQUAL(first.host, "edge.hidden");
    CU_ASSERT(first.body_len == s.body_len && first.body &&
              memcmp(first.body, s.body, s.body_len) == 0);
    free(first.body);
    close(cfd);
    close(silent);
    zaslon_client_free(c);
    srv_free(&s);
}

static void send_cover_answers(void)
{
    struct gwkey k;
    CU_ASSERT_FATAL(gwkey_make(&k, 8, TP_HPKE_AEAD_AES128GCM));
    struct srv cover, cover200, gw;
    CU_ASSERT_FATAL(srv_start(&cover, SRV_COVER404, &k, NULL));
    CU_ASSERT_FATAL(srv_start(&cover200, SRV_COVER200, &k, NULL));
    CU_ASSERT_FATAL(srv_start(&gw, SRV_SEALED, &k, NULL));
    char a0[32], a1[32], a2[32];
    addr(a0, sizeof(a0), cover.port);
    addr(a1, sizeof(a1), cover200.port);
    addr(a2, sizeof(a2), gw.port);
    struct zaslon_request r = {"GET", "https://vote.example/results", NULL, 0, NULL, 0};
    struct zaslon_response out;
    memset(&out, 0, sizeof(out));

    /* A 404 page, then a gateway: the answer stands, no failover. */
    struct zaslon_front fronts[] = {
        {"http://front.example/s", NULL, a0, NULL, false, false},
        {"http://front.example/s", NULL, a2, NULL, false, false},
    };
    struct zaslon_client_opts o = {.fronts = fronts, .nfronts = 2, .timeout_ms = 5000};
    struct zaslon_client *c = client_with_key(&o, &k);
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT_EQUAL(zaslon_client_send(c, &r, &out), ZASLON_ERR_NOT_SEALED);
    CU_ASSERT_EQUAL(zaslon_client_last_status(c), 404);
    CU_ASSERT_EQUAL(zaslon_client_last_front(c), 0);
    CU_ASSERT(strstr(zaslon_client_last_error(c), "status 404") != NULL);
    CU_ASSERT(out.mem_ == NULL);
    /* A cover page larger than max_response is still a cover answer. */
    struct zaslon_client_opts tiny = o;
    tiny.max_response = 16;
    struct zaslon_client *c2 = client_with_key(&tiny, &k);
    CU_ASSERT_FATAL(c2 != NULL);
    CU_ASSERT_EQUAL(zaslon_client_send(c2, &r, &out), ZASLON_ERR_NOT_SEALED);
    CU_ASSERT_EQUAL(zaslon_client_last_status(c2), 404);
    zaslon_client_free(c2);
    /* The key path answered by a cover site: the same refusal. */
    CU_ASSERT_EQUAL(zaslon_client_fetch_keys(c, "/prefix/keys"), ZASLON_ERR_NOT_SEALED);
    zaslon_client_free(c);

    /* 200, but a web page. */
    fronts[0].connect_to = a1;
    c = client_with_key(&o, &k);
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT_EQUAL(zaslon_client_send(c, &r, &out), ZASLON_ERR_NOT_SEALED);
    CU_ASSERT_EQUAL(zaslon_client_last_status(c), 200);
    zaslon_client_free(c);

    /* A gateway with another key: it cannot open it and answers like the cover site. */
    struct gwkey other;
    CU_ASSERT_FATAL(gwkey_make(&other, 8, TP_HPKE_AEAD_AES128GCM));
    fronts[0].connect_to = a2;
    c = client_with_key(&o, &other);
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT_EQUAL(zaslon_client_send(c, &r, &out), ZASLON_ERR_NOT_SEALED);
    CU_ASSERT_EQUAL(zaslon_client_last_status(c), 404);
    zaslon_client_free(c);
    srv_stop(&gw);
    CU_ASSERT(!gw.opened);
    srv_free(&gw);
    srv_free(&cover);
    srv_free(&cover200);
}

static void send_sealed_error_and_cap(void)
{
    struct gwkey k;
    CU_ASSERT_FATAL(gwkey_make(&k, 10, TP_HPKE_AEAD_AES256GCM));
    struct srv gw, big;
    CU_ASSERT_FATAL(srv_start_status(&gw, SRV_SEALED, &k, NULL, 503));
    CU_ASSERT_FATAL(srv_start(&big, SRV_BIG, &k, NULL));
    char a0[32], a1[32];
    addr(a0, sizeof(a0), gw.port);
    addr(a1, sizeof(a1), big.port);
    struct zaslon_front f = {"http://front.example/s", NULL, a0, NULL, false, false};
    struct zaslon_client_opts o = {.fronts = &f, .nfronts = 1, .timeout_ms = 5000};
    struct zaslon_client *c = client_with_key(&o, &k);
    CU_ASSERT_FATAL(c != NULL);
    struct zaslon_request r = {"GET", "https://vote.example/", NULL, 0, NULL, 0};
    struct zaslon_response out;
    memset(&out, 0, sizeof(out));
    /* A sealed 503 is a successful exchange. */
    CU_ASSERT_EQUAL(zaslon_client_send(c, &r, &out), 0);
    CU_ASSERT_EQUAL(out.status, 503);
    zaslon_response_clear(&out);
    zaslon_client_free(c);

    f.connect_to = a1;
    o.max_response = 4096;
    c = client_with_key(&o, &k);
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT_EQUAL(zaslon_client_send(c, &r, &out), ZASLON_ERR_TOO_LARGE);
    zaslon_client_free(c);
    /* Within the cap, it is read and refused as garbage. */
    o.max_response = 0;
    c = client_with_key(&o, &k);
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT_EQUAL(zaslon_client_send(c, &r, &out), ZASLON_ERR_CRYPTO);
    zaslon_client_free(c);
    srv_free(&gw);
    srv_free(&big);
}

/* ---- TLS ----------------------------------------------------------------------------
 */

struct tls_fixture {
    char dir[64];
    char ca[128];
    SSL_CTX *ctx;
};

/* Records the SNI while the handshake runs (the server side keeps it only when a
   callback accepts it). */
static int on_servername(SSL *ssl, int *alert, void *arg)
{
    struct srv *s = SSL_get_app_data(ssl);
    const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (s)
        snprintf(s->sni_hs, sizeof(s->sni_hs), "%s", sni ? sni : "");
    return SSL_TLSEXT_ERR_OK;
}

/* A self-signed certificate for front.example, written as the CA file. */
static bool tls_setup(struct tls_fixture *f)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/zaslon-cl-XXXXXX");
    if (!mkdtemp(f->dir))
        return false;
    snprintf(f->ca, sizeof(f->ca), "%s/ca.pem", f->dir);
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    bool ok = key && x;
    if (ok) {
        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
        X509_gmtime_adj(X509_getm_notBefore(x), -3600);
        X509_gmtime_adj(X509_getm_notAfter(x), 3600);
        X509_set_pubkey(x, key);
        X509_NAME *nm = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
                                   (const unsigned char *)"front.example", -1, -1, 0);
        X509_set_issuer_name(x, nm);
        X509V3_CTX v3;
        X509V3_set_ctx_nodb(&v3);
        X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
        const char *exts[][2] = {{"subjectAltName", "DNS:front.example"},
                                 {"basicConstraints", "critical,CA:TRUE"}};
        for (int i = 0; i < 2 && ok; i++) {
            X509_EXTENSION *e = X509V3_EXT_conf(NULL, &v3, exts[i][0], exts[i][1]);
            ok = e && X509_add_ext(x, e, -1) == 1;
            X509_EXTENSION_free(e);
        }
        ok = ok && X509_sign(x, key, EVP_sha256()) > 0;
    }
    FILE *fp = ok ? fopen(f->ca, "w") : NULL;
    ok = fp && PEM_write_X509(fp, x) == 1;
    if (fp)
        fclose(fp);
    if (ok) {
        f->ctx = SSL_CTX_new(TLS_server_method());
        ok = f->ctx && SSL_CTX_use_certificate(f->ctx, x) == 1 &&
             SSL_CTX_use_PrivateKey(f->ctx, key) == 1;
        if (ok)
            SSL_CTX_set_tlsext_servername_callback(f->ctx, on_servername);
    }
    X509_free(x);
    EVP_PKEY_free(key);
    return ok;
}

static void tls_teardown(struct tls_fixture *f)
{
    SSL_CTX_free(f->ctx);
    unlink(f->ca);
    rmdir(f->dir);
}

static void send_tls_fronted(void)
{
    struct tls_fixture t;
    CU_ASSERT_FATAL(tls_setup(&t));
    struct gwkey k;
    CU_ASSERT_FATAL(gwkey_make(&k, 11, TP_HPKE_AEAD_AES128GCM));
    struct srv s;
    CU_ASSERT_FATAL(srv_start(&s, SRV_SEALED, &k, t.ctx));
    char a[32];
    addr(a, sizeof(a), s.port);
    /* First without our CA (the certificate is not trusted: TLS failure, failover),
       then with it. */
    struct zaslon_front fronts[] = {
        {"https://front.example/prefix/s/", "edge.hidden", a, NULL, false, false},
        {"https://front.example/prefix/s/", "edge.hidden", a, t.ca, false, false},
    };
    struct zaslon_client_opts o = {.fronts = fronts, .nfronts = 2, .timeout_ms = 5000};
    struct zaslon_client *c = client_with_key(&o, &k);
    CU_ASSERT_FATAL(c != NULL);
    struct zaslon_request r = {"POST", "https://vote.example/ballot", NULL,
                               0,      (const uint8_t *)"b",          1};
    struct zaslon_response out;
    memset(&out, 0, sizeof(out));
    CU_ASSERT_EQUAL(zaslon_client_send(c, &r, &out), 0);
    CU_ASSERT_EQUAL(zaslon_client_last_front(c), 1);
    CU_ASSERT(out.status == 200 && out.body_len == 1 && out.body[0] == 'b');
    zaslon_response_clear(&out);
    zaslon_client_free(c);

    /* Only the untrusted front: a TLS error. Insecure: accepted. */
    o.nfronts = 1;
    c = client_with_key(&o, &k);
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT_EQUAL(zaslon_client_send(c, &r, &out), ZASLON_ERR_TLS);
    zaslon_client_free(c);
    fronts[0].insecure = true;
    c = client_with_key(&o, &k);
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT_EQUAL(zaslon_client_send(c, &r, &out), 0);
    zaslon_response_clear(&out);
    zaslon_client_free(c);
    /* The right CA but another name in the URL: the name check fails. */
    fronts[0] = fronts[1];
    fronts[0].url = "https://not-front.example/prefix/s/";
    c = client_with_key(&o, &k);
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT_EQUAL(zaslon_client_send(c, &r, &out), ZASLON_ERR_TLS);
    zaslon_client_free(c);
    srv_stop(&s);

    /* On the wire: SNI is the front, Host the hidden edge. */
    CU_ASSERT_STRING_EQUAL(s.sni, "front.example");
    CU_ASSERT_STRING_EQUAL(s.host, "edge.hidden");
    CU_ASSERT_STRING_EQUAL(s.target, "/prefix/s/");
    CU_ASSERT_EQUAL(s.requests, 2);
    srv_free(&s);
    tls_teardown(&t);
}

static int suite_init(void)
{
    /* The test servers write to sockets that libcurl may have closed. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    return sigaction(SIGPIPE, &sa, NULL) == -1 ? -1 : 0;
}

int test_zaslon_client(void)
{
    CU_pSuite s = CU_add_suite("zaslon_client", suite_init, NULL);
    if (!s || !CU_add_test(s, "seal: inner request fields and Date", seal_fields) ||
        !CU_add_test(s, "seal: exact bucket sizes", seal_buckets) ||
        !CU_add_test(s, "open: fields, trailers, padding, all AEADs", open_fields) ||
        !CU_add_test(s, "open: tampered, truncated, garbage, too large", open_refusals) ||
        !CU_add_test(s, "keys: choice, malformed list refused whole", keys_choice) ||
        !CU_add_test(s, "options refused", option_refusals) ||
        !CU_add_test(s, "requests refused", request_refusals) ||
        !CU_add_test(s, "send: failover from a closed port, keys fetch", send_failover) ||
        !CU_add_test(s, "send: timeout failover reuses the sealed bytes",
                     send_timeout_failover) ||
        !CU_add_test(s, "send: cover answers are NOT_SEALED", send_cover_answers) ||
        !CU_add_test(s, "send: sealed error answer, size cap",
                     send_sealed_error_and_cap) ||
        !CU_add_test(s, "send: TLS, SNI front, Host edge, CA file", send_tls_fronted))
        return -1;
    return 0;
}
