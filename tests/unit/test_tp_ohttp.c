/* Oblivious HTTP (transport/tp_ohttp.c): RFC 9458 Appendix A byte for byte in both
   directions (tests/vectors/rfc9458-appendix-a.txt, read at test time), key
   configurations and lists, random round trips through client and gateway code for
   all three AEADs, and the refusals. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "unit_suites.h"

#include "tp_bhttp.h"
#include "tp_err.h"
#include "tp_hpke.h"
#include "tp_ohttp.h"
#include "tp_rand.h"
#include "tu_util.h"
#include "tu_vec.h"

/* ---- fixtures --------------------------------------------------------------------- */

struct vec {
    uint8_t *p;
    size_t n;
};

/* RFC 9458 Appendix A, as the file names its values. */
struct appendix_a {
    struct vec sk_r, pk_r, key_config, request, sk_e, enc, info, enc_request, response,
        exported, response_nonce, salt, prk, aead_key, aead_nonce, enc_response;
};

static bool load_appendix_a(struct appendix_a *a)
{
    char *t = tu_read_vector("rfc9458-appendix-a.txt", NULL);
    if (!t)
        return false;
    struct {
        const char *name;
        struct vec *v;
    } f[] = {
        {"gateway_private_key", &a->sk_r},
        {"gateway_public_key", &a->pk_r},
        {"key_config", &a->key_config},
        {"request", &a->request},
        {"client_ephemeral_private_key", &a->sk_e},
        {"client_ephemeral_public_key", &a->enc},
        {"hpke_info", &a->info},
        {"encapsulated_request", &a->enc_request},
        {"response", &a->response},
        {"exported_secret", &a->exported},
        {"response_nonce", &a->response_nonce},
        {"salt", &a->salt},
        {"prk", &a->prk},
        {"aead_key", &a->aead_key},
        {"aead_nonce", &a->aead_nonce},
        {"encapsulated_response", &a->enc_response},
    };
    bool ok = true;
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        f[i].v->p = tu_vec_get(t, f[i].name, &f[i].v->n);
        ok &= f[i].v->p != NULL;
    }
    free(t);
    return ok;
}

static void free_appendix_a(struct appendix_a *a)
{
    struct vec *all = (struct vec *)a;
    for (size_t i = 0; i < sizeof(*a) / sizeof(struct vec); i++)
        free(all[i].p);
    memset(a, 0, sizeof(*a));
}

static bool vec_eq(struct vec v, const uint8_t *p, size_t n)
{
    return v.n == n && memcmp(v.p, p, n) == 0;
}

/* A one-key "key store". */
struct store {
    uint8_t key_id;
    const uint8_t *sk, *pk;
    bool enforce_suite; /* only (1,1) and (1,3), as Appendix A's configuration says */
    int calls;
};

static int lookup(void *arg, const struct tp_ohttp_header *hdr, const uint8_t **sk,
                  const uint8_t **pk)
{
    struct store *s = arg;
    s->calls++;
    if (hdr->key_id != s->key_id)
        return -1;
    if (s->enforce_suite &&
        !(hdr->kdf_id == 1 && (hdr->aead_id == 1 || hdr->aead_id == 3)))
        return -1;
    *sk = s->sk;
    *pk = s->pk;
    return 0;
}

/* ---- RFC 9458 Appendix A ---------------------------------------------------------- */

static void appendix_a_vector(void)
{
    struct appendix_a a;
    struct tp_ohttp_key_config cfg;
    struct tp_ohttp_client *cl = NULL;
    struct tp_ohttp_gateway *gw = NULL;
    uint8_t buf[256], out[256], pk[32];
    size_t n = 0, m = 0;

    memset(&a, 0, sizeof(a));
    CU_ASSERT_FATAL(load_appendix_a(&a));
    CU_ASSERT_FATAL(a.enc_request.n == 80 && a.enc_response.n == 35);
    CU_ASSERT_FATAL(a.sk_r.n == 32 && a.pk_r.n == 32 && a.sk_e.n == 32 && a.enc.n == 32);

    /* The key configuration, both ways. */
    CU_ASSERT_EQUAL_FATAL(tp_ohttp_key_config_parse(&cfg, a.key_config.p, a.key_config.n),
                          0);
    CU_ASSERT_EQUAL(cfg.key_id, 1);
    CU_ASSERT_EQUAL(cfg.kem_id, TP_HPKE_KEM_X25519_SHA256);
    CU_ASSERT(vec_eq(a.pk_r, cfg.public_key, 32));
    CU_ASSERT_EQUAL_FATAL(cfg.n_suites, 2);
    CU_ASSERT(cfg.suites[0].kdf_id == 1 && cfg.suites[0].aead_id == 1);
    CU_ASSERT(cfg.suites[1].kdf_id == 1 && cfg.suites[1].aead_id == 3);
    CU_ASSERT_EQUAL(tp_ohttp_key_config_encode(&cfg, buf, sizeof(buf), &n), 0);
    CU_ASSERT(vec_eq(a.key_config, buf, n));
    CU_ASSERT_EQUAL(tp_hpke_public_key(a.sk_r.p, pk), 0);
    CU_ASSERT(vec_eq(a.pk_r, pk, 32));
    CU_ASSERT_EQUAL(tp_hpke_public_key(a.sk_e.p, pk), 0);
    CU_ASSERT(vec_eq(a.enc, pk, 32));

    /* The info string is what RFC 9458 section 4.3 says it is. */
    CU_ASSERT_FATAL(a.info.n == 29);
    CU_ASSERT(memcmp(a.info.p, "message/bhttp request\0", 22) == 0);
    CU_ASSERT(memcmp(a.info.p + 22, a.enc_request.p, TP_OHTTP_HDR_LEN) == 0);

    /* Client: with skE pinned, encapsulation reproduces the 80 bytes. */
    CU_ASSERT_EQUAL_FATAL(tp_ohttp_client_new(&cl), 0);
    tp_rand_pin(a.sk_e.p, a.sk_e.n);
    CU_ASSERT_EQUAL(tp_ohttp_client_encap(cl, &cfg, (struct tp_ohttp_suite){1, 1},
                                          a.request.p, a.request.n, buf, sizeof(buf), &n),
                    0);
    CU_ASSERT_EQUAL(tp_rand_pinned(), 0);
    CU_ASSERT(vec_eq(a.enc_request, buf, n));

    /* Gateway: decapsulation recovers the Binary HTTP request and exposes enc. */
    struct store st = {1, a.sk_r.p, a.pk_r.p, true, 0};
    CU_ASSERT_EQUAL_FATAL(tp_ohttp_gateway_new(&gw), 0);
    CU_ASSERT_PTR_NULL(tp_ohttp_gateway_enc(gw, &m));
    CU_ASSERT_EQUAL(tp_ohttp_gateway_decap(gw, a.enc_request.p, a.enc_request.n, lookup,
                                           &st, out, sizeof(out), &n),
                    0);
    CU_ASSERT_EQUAL(st.calls, 1);
    CU_ASSERT(vec_eq(a.request, out, n));
    const uint8_t *enc = tp_ohttp_gateway_enc(gw, &m);
    CU_ASSERT(enc && vec_eq(a.enc, enc, m));
    const struct tp_ohttp_header *hdr = tp_ohttp_gateway_header(gw);
    CU_ASSERT(hdr && hdr->key_id == 1 && hdr->kem_id == 0x20 && hdr->kdf_id == 1 &&
              hdr->aead_id == 1);
    struct tp_bhttp_request breq;
    CU_ASSERT_EQUAL_FATAL(tp_bhttp_request_decode(&breq, out, n, NULL), 0);
    CU_ASSERT(tp_str_eq(breq.method, "GET") && tp_str_eq(breq.scheme, "https") &&
              tp_str_eq(breq.authority, "example.com") && tp_str_eq(breq.path, "/") &&
              breq.n_headers == 0 && breq.content_len == 0);
    tp_bhttp_request_clear(&breq);

    /* Gateway: with the nonce pinned, the response is the 35 bytes. */
    CU_ASSERT_EQUAL(tp_ohttp_gateway_response_len(gw, a.response.n), 35);
    tp_rand_pin(a.response_nonce.p, a.response_nonce.n);
    CU_ASSERT_EQUAL(tp_ohttp_gateway_encap_response(gw, a.response.p, a.response.n, buf,
                                                    sizeof(buf), &n),
                    0);
    CU_ASSERT_EQUAL(tp_rand_pinned(), 0);
    CU_ASSERT(vec_eq(a.enc_response, buf, n));
    CU_ASSERT_EQUAL(tp_ohttp_gateway_encap_response(gw, a.response.p, a.response.n, buf,
                                                    sizeof(buf), &n),
                    TP_ERR_STATE);

    /* Client: the response opens to 0140c8, once. */
    CU_ASSERT_EQUAL(tp_ohttp_client_decap_response(cl, a.enc_response.p, a.enc_response.n,
                                                   out, sizeof(out), &n),
                    0);
    CU_ASSERT(vec_eq(a.response, out, n));
    struct tp_bhttp_response bres;
    CU_ASSERT_EQUAL_FATAL(tp_bhttp_response_decode(&bres, out, n, NULL), 0);
    CU_ASSERT_EQUAL(bres.status, 200);
    tp_bhttp_response_clear(&bres);
    CU_ASSERT_EQUAL(tp_ohttp_client_decap_response(cl, a.enc_response.p, a.enc_response.n,
                                                   out, sizeof(out), &n),
                    TP_ERR_STATE);

    /* The intermediate values of section 4.4, through the public HPKE API. */
    struct tp_hpke_ctx *ctx = NULL;
    struct tp_hpke_suite suite = {0x20, 1, 1};
    uint8_t secret[16], prk[32], key[16], nonce[12], salt[64];
    CU_ASSERT_EQUAL_FATAL(tp_hpke_ctx_new(&ctx), 0);
    CU_ASSERT_EQUAL(
        tp_hpke_setup_base_r(ctx, suite, a.enc.p, a.sk_r.p, NULL, a.info.p, a.info.n), 0);
    CU_ASSERT_EQUAL(
        tp_hpke_export(ctx, (const uint8_t *)"message/bhttp response", 22, secret, 16),
        0);
    CU_ASSERT(vec_eq(a.exported, secret, 16));
    memcpy(salt, a.enc.p, 32);
    memcpy(salt + 32, a.response_nonce.p, a.response_nonce.n);
    CU_ASSERT(vec_eq(a.salt, salt, 32 + a.response_nonce.n));
    CU_ASSERT_EQUAL(tp_hpke_ctx_extract(ctx, salt, a.salt.n, secret, 16, prk), 0);
    CU_ASSERT(vec_eq(a.prk, prk, 32));
    CU_ASSERT_EQUAL(tp_hpke_ctx_expand(ctx, prk, 32, (const uint8_t *)"key", 3, key, 16),
                    0);
    CU_ASSERT(vec_eq(a.aead_key, key, 16));
    CU_ASSERT_EQUAL(
        tp_hpke_ctx_expand(ctx, prk, 32, (const uint8_t *)"nonce", 5, nonce, 12), 0);
    CU_ASSERT(vec_eq(a.aead_nonce, nonce, 12));
    tp_hpke_ctx_free(ctx);

    tp_ohttp_gateway_free(gw);
    tp_ohttp_client_free(cl);
    free_appendix_a(&a);
}

/* Every byte of the vector's request and response, flipped, and every truncation. */
static void appendix_a_tampering(void)
{
    struct appendix_a a;
    struct tp_ohttp_key_config cfg;
    struct tp_ohttp_client *cl = NULL;
    struct tp_ohttp_gateway *gw = NULL;
    uint8_t req[128], out[128], tmp[128];
    size_t n = 0;

    memset(&a, 0, sizeof(a));
    CU_ASSERT_FATAL(load_appendix_a(&a));
    CU_ASSERT_EQUAL_FATAL(tp_ohttp_key_config_parse(&cfg, a.key_config.p, a.key_config.n),
                          0);
    CU_ASSERT_EQUAL_FATAL(tp_ohttp_gateway_new(&gw), 0);
    CU_ASSERT_EQUAL_FATAL(tp_ohttp_client_new(&cl), 0);
    struct store st = {1, a.sk_r.p, a.pk_r.p, true, 0};

    memcpy(req, a.enc_request.p, a.enc_request.n);
    for (size_t pos = 0; pos < a.enc_request.n; pos++) {
        for (int bit = 0; bit < 8; bit += 7) {
            req[pos] ^= (uint8_t)(1 << bit);
            memset(out, 0x77, sizeof(out));
            int rv = tp_ohttp_gateway_decap(gw, req, a.enc_request.n, lookup, &st, out,
                                            sizeof(out), &n);
            /* key id, kem, kdf, aead: no such key or suite; enc or ciphertext: the
               tag does not verify */
            CU_ASSERT_EQUAL(rv,
                            pos < TP_OHTTP_HDR_LEN ? TP_ERR_UNSUPPORTED : TP_ERR_CRYPTO);
            /* Whatever the reason, the work was done and the output wiped. */
            bool wiped = true;
            for (size_t i = 0; i < a.request.n; i++)
                wiped &= out[i] == 0;
            CU_ASSERT(wiped);
            CU_ASSERT_PTR_NULL(tp_ohttp_gateway_enc(gw, &n));
            req[pos] ^= (uint8_t)(1 << bit);
        }
    }
    for (size_t len = 0; len < a.enc_request.n; len++) {
        int rv = tp_ohttp_gateway_decap(gw, req, len, lookup, &st, out, sizeof(out), &n);
        CU_ASSERT_EQUAL(rv, len < TP_OHTTP_REQ_OVERHEAD ? TP_ERR_INVALID : TP_ERR_CRYPTO);
    }
    /* Extra bytes are ciphertext too. */
    req[a.enc_request.n] = 0;
    CU_ASSERT_EQUAL(tp_ohttp_gateway_decap(gw, req, a.enc_request.n + 1, lookup, &st, out,
                                           sizeof(out), &n),
                    TP_ERR_CRYPTO);
    /* The output must hold the whole plaintext, checked before any work. */
    st.calls = 0;
    CU_ASSERT_EQUAL(tp_ohttp_gateway_decap(gw, req, a.enc_request.n, lookup, &st, out,
                                           a.request.n - 1, &n),
                    TP_ERR_INVALID);
    CU_ASSERT_EQUAL(st.calls, 0);
    CU_ASSERT_EQUAL(tp_ohttp_gateway_decap(gw, req, a.enc_request.n, lookup, &st, out,
                                           a.request.n, &n),
                    0);
    tp_ohttp_gateway_reset(gw);

    /* The response: each tampered byte and each truncation fails for the client. Pinning
       skE makes every exchange the vector's, so the vector's response fits each one. */
    for (size_t pos = 0; pos <= a.enc_response.n; pos++) {
        tp_rand_pin(a.sk_e.p, 32);
        CU_ASSERT_EQUAL(tp_ohttp_client_encap(cl, &cfg, (struct tp_ohttp_suite){1, 1},
                                              a.request.p, a.request.n, tmp, sizeof(tmp),
                                              &n),
                        0);
        memcpy(tmp, a.enc_response.p, a.enc_response.n);
        if (pos < a.enc_response.n) {
            tmp[pos] ^= 0x80;
            CU_ASSERT_EQUAL(tp_ohttp_client_decap_response(cl, tmp, a.enc_response.n, out,
                                                           sizeof(out), &n),
                            TP_ERR_CRYPTO);
        } else {
            CU_ASSERT_EQUAL(tp_ohttp_client_decap_response(cl, tmp, a.enc_response.n, out,
                                                           sizeof(out), &n),
                            0);
        }
    }
    for (size_t len = 0; len < a.enc_response.n; len++) {
        tp_rand_pin(a.sk_e.p, 32);
        CU_ASSERT_EQUAL(tp_ohttp_client_encap(cl, &cfg, (struct tp_ohttp_suite){1, 1},
                                              a.request.p, a.request.n, tmp, sizeof(tmp),
                                              &n),
                        0);
        CU_ASSERT_EQUAL(tp_ohttp_client_decap_response(cl, a.enc_response.p, len, out,
                                                       sizeof(out), &n),
                        len < 16 + TP_HPKE_TAG_LEN ? TP_ERR_INVALID : TP_ERR_CRYPTO);
    }
    tp_ohttp_gateway_free(gw);
    tp_ohttp_client_free(cl);
    free_appendix_a(&a);
}

/* ---- refusals on the gateway ------------------------------------------------------ */

static const char *const low_order_hex[] = {
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
};

static void gateway_refusals(void)
{
    struct appendix_a a;
    struct tp_ohttp_gateway *gw = NULL;
    uint8_t req[128], out[128];
    size_t n = 0;

    memset(&a, 0, sizeof(a));
    CU_ASSERT_FATAL(load_appendix_a(&a));
    CU_ASSERT_EQUAL_FATAL(tp_ohttp_gateway_new(&gw), 0);
    struct store st = {1, a.sk_r.p, a.pk_r.p, false, 0};
    memcpy(req, a.enc_request.p, a.enc_request.n);

    /* Low-order enc: a distinct code, and the lookup still happened (same work). */
    for (size_t i = 0; i < sizeof(low_order_hex) / sizeof(low_order_hex[0]); i++) {
        size_t pn;
        uint8_t *p = tu_hex(low_order_hex[i], &pn);
        CU_ASSERT_FATAL(p && pn == 32);
        for (int top = 0; top < 2; top++) {
            memcpy(req + TP_OHTTP_HDR_LEN, p, 32);
            req[TP_OHTTP_HDR_LEN + 31] |= (uint8_t)(top << 7);
            st.calls = 0;
            CU_ASSERT_EQUAL(tp_ohttp_gateway_decap(gw, req, a.enc_request.n, lookup, &st,
                                                   out, sizeof(out), &n),
                            TP_ERR_PROTO);
            CU_ASSERT_EQUAL(st.calls, 1);
        }
        free(p);
    }
    memcpy(req, a.enc_request.p, a.enc_request.n);

    /* Wrong key id: refused after one lookup. */
    st.key_id = 2;
    st.calls = 0;
    CU_ASSERT_EQUAL(tp_ohttp_gateway_decap(gw, req, a.enc_request.n, lookup, &st, out,
                                           sizeof(out), &n),
                    TP_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(st.calls, 1);
    CU_ASSERT_EQUAL(tp_ohttp_gateway_decap(gw, req, a.enc_request.n, NULL, NULL, out,
                                           sizeof(out), &n),
                    TP_ERR_UNSUPPORTED);
    st.key_id = 1;
    /* A suite the store does not allow for this key. */
    st.enforce_suite = true;
    req[6] = 0x02;
    CU_ASSERT_EQUAL(tp_ohttp_gateway_decap(gw, req, a.enc_request.n, lookup, &st, out,
                                           sizeof(out), &n),
                    TP_ERR_UNSUPPORTED);
    /* Suites we do not support at all: no lookup needed. */
    const uint8_t bad_hdrs[][6] = {
        {0x00, 0x10, 0x00, 0x01, 0x00, 0x01}, /* P-256 */
        {0x00, 0x20, 0x00, 0x02, 0x00, 0x01}, /* HKDF-SHA384 */
        {0x00, 0x20, 0x00, 0x01, 0x00, 0x04},
        {0x00, 0x20, 0x00, 0x01, 0xff, 0xff}, /* export-only */
    };
    for (size_t i = 0; i < sizeof(bad_hdrs) / sizeof(bad_hdrs[0]); i++) {
        memcpy(req + 1, bad_hdrs[i], 6);
        st.calls = 0;
        CU_ASSERT_EQUAL(tp_ohttp_gateway_decap(gw, req, a.enc_request.n, lookup, &st, out,
                                               sizeof(out), &n),
                        TP_ERR_UNSUPPORTED);
        CU_ASSERT_EQUAL(st.calls, 0);
    }
    /* State. */
    CU_ASSERT_EQUAL(tp_ohttp_gateway_encap_response(gw, out, 3, req, sizeof(req), &n),
                    TP_ERR_STATE);
    CU_ASSERT_EQUAL(tp_ohttp_gateway_response_len(gw, 3), 0);
    CU_ASSERT_PTR_NULL(tp_ohttp_gateway_header(gw));
    tp_ohttp_gateway_free(gw);
    tp_ohttp_gateway_free(NULL);
    tp_ohttp_client_free(NULL);
    free_appendix_a(&a);
}

/* ---- key configurations ----------------------------------------------------------- */

static void key_configs(void)
{
    struct appendix_a a;
    struct tp_ohttp_key_config cfg, cfgs[4];
    uint8_t buf[512], list[1024];
    size_t n = 0, len = 0, count = 0;

    memset(&a, 0, sizeof(a));
    CU_ASSERT_FATAL(load_appendix_a(&a));
    const uint8_t *kc = a.key_config.p;
    size_t kn = a.key_config.n;
    CU_ASSERT_FATAL(kn == 45);

    /* Every truncation of a configuration is refused; so is any extra byte. */
    for (size_t l = 0; l < kn; l++)
        CU_ASSERT_EQUAL(tp_ohttp_key_config_parse(&cfg, kc, l), TP_ERR_INVALID);
    memcpy(buf, kc, kn);
    buf[kn] = 0;
    CU_ASSERT_EQUAL(tp_ohttp_key_config_parse(&cfg, buf, kn + 1), TP_ERR_INVALID);
    /* Symmetric-algorithms length: 0, not a multiple of 4, past the end. */
    for (uint8_t bad = 0; bad < 12; bad++) {
        if (bad == 8)
            continue;
        memcpy(buf, kc, kn);
        buf[36] = bad;
        CU_ASSERT_EQUAL(tp_ohttp_key_config_parse(&cfg, buf, kn), TP_ERR_INVALID);
    }
    /* Other KEMs cannot be parsed (their key length is unknown). */
    memcpy(buf, kc, kn);
    buf[2] = 0x10;
    CU_ASSERT_EQUAL(tp_ohttp_key_config_parse(&cfg, buf, kn), TP_ERR_UNSUPPORTED);
    /* A low-order public key is refused. */
    memcpy(buf, kc, kn);
    memset(buf + 3, 0, 32);
    CU_ASSERT_EQUAL(tp_ohttp_key_config_parse(&cfg, buf, kn), TP_ERR_INVALID);
    /* Unknown suites are kept (a client skips them); too many are refused. */
    memcpy(buf, kc, 35);
    buf[35] = 0;
    buf[36] = 4 * (TP_OHTTP_MAX_SUITES + 1);
    for (size_t i = 0; i < TP_OHTTP_MAX_SUITES + 1; i++) {
        uint8_t *p = buf + 37 + 4 * i;
        p[0] = 0;
        p[1] = (uint8_t)(1 + i % 3);
        p[2] = 0;
        p[3] = (uint8_t)(1 + i % 5);
    }
    CU_ASSERT_EQUAL(
        tp_ohttp_key_config_parse(&cfg, buf, 37 + 4 * (TP_OHTTP_MAX_SUITES + 1)),
        TP_ERR_TOO_LARGE);
    buf[36] = 4 * TP_OHTTP_MAX_SUITES;
    CU_ASSERT_EQUAL(tp_ohttp_key_config_parse(&cfg, buf, 37 + 4 * TP_OHTTP_MAX_SUITES),
                    0);
    CU_ASSERT_EQUAL(cfg.n_suites, TP_OHTTP_MAX_SUITES);
    CU_ASSERT_EQUAL(tp_ohttp_key_config_encode(&cfg, list, sizeof(list), &n), 0);
    CU_ASSERT(n == 37 + 4 * TP_OHTTP_MAX_SUITES && memcmp(list, buf, n) == 0);
    cfg.n_suites = 0;
    CU_ASSERT_EQUAL(tp_ohttp_key_config_encode(&cfg, list, sizeof(list), &n),
                    TP_ERR_INVALID);

    /* application/ohttp-keys: [A] [other KEM] [A with key id 7]. */
    CU_ASSERT_EQUAL_FATAL(tp_ohttp_key_config_parse(&cfg, kc, kn), 0);
    cfgs[0] = cfg;
    cfgs[1] = cfg;
    cfgs[1].key_id = 7;
    CU_ASSERT_EQUAL(tp_ohttp_keys_encode(cfgs, 2, NULL, 0, &len), 0);
    CU_ASSERT_EQUAL(len, 2 * (2 + kn));
    CU_ASSERT_EQUAL(tp_ohttp_keys_encode(cfgs, 2, list, len - 1, &n), TP_ERR_INVALID);
    CU_ASSERT_EQUAL(tp_ohttp_keys_encode(cfgs, 2, list, sizeof(list), &n), 0);
    CU_ASSERT(n == len && list[0] == 0 && list[1] == kn && memcmp(list + 2, kc, kn) == 0);
    /* Splice a P-256 configuration (65-byte key) between them. */
    static const uint8_t p256[] = {0x00, 0x4a, 0x09, 0x00, 0x10};
    uint8_t full[1024];
    size_t fl = 0;
    memcpy(full, list, 2 + kn);
    fl = 2 + kn;
    memcpy(full + fl, p256, sizeof(p256));
    fl += sizeof(p256);
    memset(full + fl, 0x04, 65);
    fl += 65;
    full[fl++] = 0x00;
    full[fl++] = 0x04;
    full[fl++] = 0x00;
    full[fl++] = 0x01;
    full[fl++] = 0x00;
    full[fl++] = 0x01;
    memcpy(full + fl, list + 2 + kn, 2 + kn);
    fl += 2 + kn;
    CU_ASSERT_EQUAL(tp_ohttp_keys_parse(full, fl, cfgs, 4, &count), 0);
    CU_ASSERT_EQUAL(count, 2);
    CU_ASSERT(cfgs[0].key_id == 1 && cfgs[1].key_id == 7);
    CU_ASSERT(memcmp(cfgs[1].public_key, cfg.public_key, 32) == 0);
    CU_ASSERT_EQUAL(tp_ohttp_keys_parse(full, fl, cfgs, 1, &count), TP_ERR_TOO_LARGE);
    /* Every truncation: whole configurations or nothing. */
    size_t ends[] = {2 + kn, 2 + kn + 76, fl};
    for (size_t l = 0; l < fl; l++) {
        int rv = tp_ohttp_keys_parse(full, l, cfgs, 4, &count);
        if (l == ends[0] || l == ends[1]) {
            CU_ASSERT(rv == 0 && count == 1);
        } else {
            CU_ASSERT_EQUAL(rv, TP_ERR_INVALID);
        }
    }
    /* One bad configuration refuses the whole list, and |cfgs| is left alone. */
    memset(cfgs, 0xee, sizeof(cfgs));
    full[fl - 10] = 0x00; /* the last config's algorithms length: 8 -> 3 */
    full[fl - 9] = 0x03;
    CU_ASSERT_EQUAL(tp_ohttp_keys_parse(full, fl, cfgs, 4, &count), TP_ERR_INVALID);
    CU_ASSERT_EQUAL(cfgs[0].key_id, 0xee);
    /* Only an unknown KEM: nothing usable. Empty: malformed. */
    CU_ASSERT_EQUAL(tp_ohttp_keys_parse(full + 2 + kn, 76, cfgs, 4, &count),
                    TP_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(tp_ohttp_keys_parse(full, 0, cfgs, 4, &count), TP_ERR_INVALID);
    CU_ASSERT_EQUAL(tp_ohttp_keys_encode(cfgs, 0, list, sizeof(list), &n),
                    TP_ERR_INVALID);
    free_appendix_a(&a);
}

/* ---- round trips ------------------------------------------------------------------ */

static void round_trips(void)
{
    static const struct tp_ohttp_suite suites[] = {{1, 1}, {1, 2}, {1, 3}};
    struct tp_ohttp_key_config cfg;
    struct tp_ohttp_client *cl = NULL;
    struct tp_ohttp_gateway *gw = NULL;
    uint8_t sk[32], pk[32];
    static uint8_t body[5000], bhttp[6000], sealed[7000], opened[7000], res[7000];
    size_t n = 0;

    CU_ASSERT_EQUAL_FATAL(tp_ohttp_client_new(&cl), 0);
    CU_ASSERT_EQUAL_FATAL(tp_ohttp_gateway_new(&gw), 0);
    for (int iter = 0; iter < 300; iter++) {
        /* A fresh gateway key now and then. */
        if (iter % 25 == 0) {
            CU_ASSERT_EQUAL(tp_hpke_generate_keypair(sk, pk), 0);
            memset(&cfg, 0, sizeof(cfg));
            cfg.key_id = (uint8_t)iter;
            cfg.kem_id = TP_HPKE_KEM_X25519_SHA256;
            memcpy(cfg.public_key, pk, 32);
            cfg.n_suites = 3;
            memcpy(cfg.suites, suites, sizeof(suites));
        }
        struct store st = {cfg.key_id, sk, iter % 2 ? pk : NULL, false, 0};
        struct tp_ohttp_suite suite = suites[iter % 3];
        size_t body_len = (size_t)(iter * 131) % sizeof(body);
        CU_ASSERT_EQUAL(tp_rand_bytes(body, body_len), 0);
        struct tp_header h[2] = {
            {TP_STR_LIT("content-type"), TP_STR_LIT("application/json")},
            {TP_STR_LIT("x-ballot"), TP_STR_LIT("1")}};
        struct tp_bhttp_request r = {.method = TP_STR_LIT("POST"),
                                     .scheme = TP_STR_LIT("https"),
                                     .authority = TP_STR_LIT("vote.example"),
                                     .path = TP_STR_LIT("/cast?x=1"),
                                     .headers = h,
                                     .n_headers = 2,
                                     .content = body,
                                     .content_len = body_len};
        size_t blen = 0, slen = 0, olen = 0, rlen = 0;
        CU_ASSERT_EQUAL_FATAL(
            tp_bhttp_request_encode(&r, NULL, bhttp, sizeof(bhttp), &blen), 0);
        CU_ASSERT_EQUAL(tp_ohttp_client_encap(cl, &cfg, suite, bhttp, blen, sealed,
                                              sizeof(sealed), &slen),
                        0);
        CU_ASSERT_EQUAL(slen, blen + TP_OHTTP_REQ_OVERHEAD);
        CU_ASSERT_EQUAL(tp_ohttp_gateway_decap(gw, sealed, slen, lookup, &st, opened,
                                               sizeof(opened), &olen),
                        0);
        CU_ASSERT(olen == blen && memcmp(opened, bhttp, blen) == 0);
        size_t el;
        const uint8_t *enc = tp_ohttp_gateway_enc(gw, &el);
        CU_ASSERT(enc && el == 32 && memcmp(enc, sealed + TP_OHTTP_HDR_LEN, 32) == 0);
        struct tp_bhttp_request got;
        CU_ASSERT_EQUAL_FATAL(tp_bhttp_request_decode(&got, opened, olen, NULL), 0);
        CU_ASSERT(got.content_len == body_len &&
                  (body_len == 0 || memcmp(got.content, body, body_len) == 0));
        CU_ASSERT(got.n_headers == 2 && tp_str_eq(got.path, "/cast?x=1"));
        tp_bhttp_request_clear(&got);

        /* Response: the same body back, known-length, as the gateway sends it. */
        struct tp_bhttp_response s = {
            .status = 200, .content = body, .content_len = body_len};
        CU_ASSERT_EQUAL_FATAL(
            tp_bhttp_response_encode(&s, NULL, bhttp, sizeof(bhttp), &blen), 0);
        size_t want = tp_ohttp_gateway_response_len(gw, blen);
        CU_ASSERT_EQUAL(want, blen + (suite.aead_id == 1 ? 16 : 32) + 16);
        CU_ASSERT_EQUAL(
            tp_ohttp_gateway_encap_response(gw, bhttp, blen, res, want - 1, &rlen),
            TP_ERR_INVALID);
        CU_ASSERT_EQUAL(
            tp_ohttp_gateway_encap_response(gw, bhttp, blen, res, sizeof(res), &rlen), 0);
        CU_ASSERT_EQUAL(rlen, want);
        CU_ASSERT_EQUAL(
            tp_ohttp_client_decap_response(cl, res, rlen, opened, sizeof(opened), &olen),
            0);
        CU_ASSERT(olen == blen && memcmp(opened, bhttp, blen) == 0);
        tp_ohttp_gateway_reset(gw);
    }
    /* A client refuses suites its configuration does not list, or that we lack. */
    cfg.n_suites = 1;
    CU_ASSERT_EQUAL(tp_ohttp_client_encap(cl, &cfg, (struct tp_ohttp_suite){1, 3}, bhttp,
                                          10, sealed, sizeof(sealed), &n),
                    TP_ERR_UNSUPPORTED);
    cfg.suites[0] = (struct tp_ohttp_suite){2, 1};
    CU_ASSERT_EQUAL(tp_ohttp_client_encap(cl, &cfg, (struct tp_ohttp_suite){2, 1}, bhttp,
                                          10, sealed, sizeof(sealed), &n),
                    TP_ERR_UNSUPPORTED);
    cfg.suites[0] = (struct tp_ohttp_suite){1, 1};
    CU_ASSERT_EQUAL(tp_ohttp_client_encap(cl, &cfg, (struct tp_ohttp_suite){1, 1}, bhttp,
                                          10, sealed, 10 + TP_OHTTP_REQ_OVERHEAD - 1, &n),
                    TP_ERR_INVALID);
    CU_ASSERT_EQUAL(
        tp_ohttp_client_decap_response(cl, res, 64, opened, sizeof(opened), &n),
        TP_ERR_STATE);
    /* A response from another exchange does not open. */
    CU_ASSERT_EQUAL(tp_ohttp_client_encap(cl, &cfg, (struct tp_ohttp_suite){1, 1}, bhttp,
                                          10, sealed, sizeof(sealed), &n),
                    0);
    CU_ASSERT_EQUAL(
        tp_ohttp_client_decap_response(cl, res, 64, opened, sizeof(opened), &n),
        TP_ERR_CRYPTO);
    tp_ohttp_client_free(cl);
    tp_ohttp_gateway_free(gw);
}

/* Response nonces come from tp_rand_public's per-thread pool: pins still win, bytes
   are never handed out twice, a request larger than the pool still works, and a forked
   child does not repeat what its parent will hand out next. */
static void public_randomness(void)
{
    enum { N = 3 * TP_RAND_PUBLIC_POOL / 16 };
    static uint8_t got[N][16];
    const uint8_t pinned[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    uint8_t out[12], big[TP_RAND_PUBLIC_POOL + 40], mine[16], child[16];
    int fds[2];

    tp_rand_pin(pinned, sizeof(pinned));
    CU_ASSERT_EQUAL(tp_rand_public(out, sizeof(out)), 0);
    CU_ASSERT_EQUAL(memcmp(out, pinned, sizeof(out)), 0);
    CU_ASSERT_EQUAL(tp_rand_pinned(), 0);

    /* Three pools' worth: every 16-byte draw differs from every other. */
    for (size_t i = 0; i < N; i++)
        CU_ASSERT_EQUAL(tp_rand_public(got[i], sizeof(got[i])), 0);
    size_t same = 0;
    for (size_t i = 0; i < N; i++)
        for (size_t j = i + 1; j < N; j++)
            same += memcmp(got[i], got[j], sizeof(got[i])) == 0;
    CU_ASSERT_EQUAL(same, 0);
    memset(big, 0, sizeof(big));
    CU_ASSERT_EQUAL(tp_rand_public(big, sizeof(big)), 0);
    static const uint8_t zeros[32];
    CU_ASSERT_NOT_EQUAL(memcmp(big + sizeof(big) - 32, zeros, 32), 0);

    /* The pool is part used now; a child must draw fresh bytes, not the parent's next. */
    CU_ASSERT_EQUAL(tp_rand_public(mine, 4), 0);
    CU_ASSERT_EQUAL_FATAL(pipe(fds), 0);
    pid_t pid = fork();
    CU_ASSERT_NOT_EQUAL_FATAL(pid, -1);
    if (pid == 0) {
        uint8_t c[16];
        int ok = tp_rand_public(c, sizeof(c)) == 0 && write(fds[1], c, sizeof(c)) == 16;
        _exit(ok ? 0 : 1);
    }
    close(fds[1]);
    CU_ASSERT_EQUAL(read(fds[0], child, sizeof(child)), (ssize_t)sizeof(child));
    close(fds[0]);
    int status = 0;
    CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CU_ASSERT_EQUAL(tp_rand_public(mine, sizeof(mine)), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(mine, child, sizeof(mine)), 0);
}

int test_tp_ohttp(void)
{
    CU_pSuite s = CU_add_suite("tp_ohttp", NULL, NULL);
    if (!s ||
        !CU_add_test(s, "RFC 9458 Appendix A, both directions", appendix_a_vector) ||
        !CU_add_test(s, "Appendix A tampered and truncated", appendix_a_tampering) ||
        !CU_add_test(s, "gateway refusals", gateway_refusals) ||
        !CU_add_test(s, "key configurations and lists", key_configs) ||
        !CU_add_test(s, "round trips, all AEADs", round_trips) ||
        !CU_add_test(s, "public randomness pool (response nonces)", public_randomness))
        return -1;
    return 0;
}
