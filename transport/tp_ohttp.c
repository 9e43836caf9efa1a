/* Oblivious HTTP (RFC 9458) on top of tp_hpke. */
#include "tp_ohttp.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "tp_err.h"
#include "tp_hpke.h"
#include "tp_rand.h"

static const uint8_t req_label[] = "message/bhttp request";
static const uint8_t res_label[] = "message/bhttp response";

/* info = "message/bhttp request" || 0x00 || hdr */
#define INFO_LEN (sizeof(req_label) - 1 + 1 + TP_OHTTP_HDR_LEN)

/* A fixed key pair that stands in for a missing or refused one, so that every
   pre-decapsulation failure costs the same work. It guards nothing: whatever opens
   under it is thrown away. (DeriveKeyPair of 32 zero bytes would do as well; these are
   simply 32 bytes of 0x5a and their X25519 public key.) */
static const uint8_t dummy_sk[TP_HPKE_X25519_SK_LEN] = {
    0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
    0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
    0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a};
static uint8_t dummy_pk[TP_HPKE_X25519_PK_LEN];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;
static bool dummy_ok;

static void dummy_setup(void)
{
    dummy_ok = tp_hpke_public_key(dummy_sk, dummy_pk) == 0;
}

static int dummy_init(void)
{
    if (pthread_once(&dummy_once, dummy_setup) != 0 || !dummy_ok)
        return TP_ERR_CRYPTO;
    return 0;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static size_t response_nonce_len(uint16_t aead_id)
{
    size_t nk = tp_hpke_aead_key_len(aead_id), nn = tp_hpke_aead_nonce_len(aead_id);
    return nk > nn ? nk : nn;
}

/* ---- key configurations ----------------------------------------------------------- */

int tp_ohttp_key_config_parse(struct tp_ohttp_key_config *cfg, const uint8_t *in,
                              size_t len)
{
    struct tp_ohttp_key_config c;
    size_t algs_len;

    if (!in || len < 3)
        return TP_ERR_INVALID;
    memset(&c, 0, sizeof(c));
    c.key_id = in[0];
    c.kem_id = get16(in + 1);
    if (c.kem_id != TP_HPKE_KEM_X25519_SHA256)
        return TP_ERR_UNSUPPORTED;
    if (len < 3 + TP_HPKE_X25519_PK_LEN + 2)
        return TP_ERR_INVALID;
    memcpy(c.public_key, in + 3, TP_HPKE_X25519_PK_LEN);
    algs_len = get16(in + 3 + TP_HPKE_X25519_PK_LEN);
    if (algs_len < 4 || algs_len % 4 != 0 ||
        algs_len != len - (3 + TP_HPKE_X25519_PK_LEN + 2))
        return TP_ERR_INVALID;
    if (algs_len / 4 > TP_OHTTP_MAX_SUITES)
        return TP_ERR_TOO_LARGE;
    /* A low-order key would make every request fail; better to refuse it here. */
    if (tp_hpke_x25519_low_order(c.public_key))
        return TP_ERR_INVALID;
    const uint8_t *p = in + 3 + TP_HPKE_X25519_PK_LEN + 2;
    c.n_suites = algs_len / 4;
    for (size_t i = 0; i < c.n_suites; i++)
        c.suites[i] = (struct tp_ohttp_suite){get16(p + 4 * i), get16(p + 4 * i + 2)};
    *cfg = c;
    return 0;
}

int tp_ohttp_key_config_encode(const struct tp_ohttp_key_config *cfg, uint8_t *out,
                               size_t cap, size_t *out_len)
{
    size_t need;
    if (cfg->kem_id != TP_HPKE_KEM_X25519_SHA256 || cfg->n_suites == 0 ||
        cfg->n_suites > TP_OHTTP_MAX_SUITES)
        return TP_ERR_INVALID;
    need = 3 + TP_HPKE_X25519_PK_LEN + 2 + 4 * cfg->n_suites;
    *out_len = need;
    if (!out)
        return 0;
    if (cap < need)
        return TP_ERR_INVALID;
    out[0] = cfg->key_id;
    put16(out + 1, cfg->kem_id);
    memcpy(out + 3, cfg->public_key, TP_HPKE_X25519_PK_LEN);
    put16(out + 3 + TP_HPKE_X25519_PK_LEN, (uint16_t)(4 * cfg->n_suites));
    uint8_t *p = out + 3 + TP_HPKE_X25519_PK_LEN + 2;
    for (size_t i = 0; i < cfg->n_suites; i++) {
        put16(p + 4 * i, cfg->suites[i].kdf_id);
        put16(p + 4 * i + 2, cfg->suites[i].aead_id);
    }
    return 0;
}

int tp_ohttp_keys_parse(const uint8_t *in, size_t len, struct tp_ohttp_key_config *cfgs,
                        size_t max, size_t *n)
{
    size_t off = 0, count = 0;
    int rv;

    if (!in || len == 0)
        return TP_ERR_INVALID;
    /* First pass: the framing and every configuration must be sound before anything
       is written, so a bad list leaves |cfgs| alone. */
    while (off < len) {
        struct tp_ohttp_key_config tmp;
        if (len - off < 2)
            return TP_ERR_INVALID;
        size_t clen = get16(in + off);
        off += 2;
        if (clen > len - off)
            return TP_ERR_INVALID;
        rv = tp_ohttp_key_config_parse(&tmp, in + off, clen);
        if (rv == 0)
            count++;
        else if (rv != TP_ERR_UNSUPPORTED)
            return rv;
        off += clen;
    }
    if (count == 0)
        return TP_ERR_UNSUPPORTED;
    if (count > max)
        return TP_ERR_TOO_LARGE;
    for (off = 0, count = 0; off < len;) {
        size_t clen = get16(in + off);
        off += 2;
        if (tp_ohttp_key_config_parse(&cfgs[count], in + off, clen) == 0)
            count++;
        off += clen;
    }
    *n = count;
    return 0;
}

int tp_ohttp_keys_encode(const struct tp_ohttp_key_config *cfgs, size_t n, uint8_t *out,
                         size_t cap, size_t *out_len)
{
    size_t total = 0;
    int rv;

    if (n == 0)
        return TP_ERR_INVALID;
    for (size_t i = 0; i < n; i++) {
        size_t clen;
        rv = tp_ohttp_key_config_encode(&cfgs[i], NULL, 0, &clen);
        if (rv != 0)
            return rv;
        if (out) {
            if (cap < total || cap - total < 2 + clen)
                return TP_ERR_INVALID;
            put16(out + total, (uint16_t)clen);
            rv = tp_ohttp_key_config_encode(&cfgs[i], out + total + 2, clen, &clen);
            if (rv != 0)
                return rv;
        }
        total += 2 + clen;
    }
    *out_len = total;
    return 0;
}

/* ---- shared pieces ---------------------------------------------------------------- */

static void build_info(uint8_t *info, const uint8_t *hdr)
{
    memcpy(info, req_label, sizeof(req_label) - 1);
    info[sizeof(req_label) - 1] = 0x00;
    memcpy(info + sizeof(req_label), hdr, TP_OHTTP_HDR_LEN);
}

/* Re-keys |ctx| for the response (RFC 9458 section 4.4):
     secret = Export("message/bhttp response", Nk)
     prk    = Extract(enc || response_nonce, secret)
     key    = Expand(prk, "key", Nk);  nonce = Expand(prk, "nonce", Nn) */
static int response_keys(struct tp_hpke_ctx *ctx, const uint8_t *enc,
                         const uint8_t *nonce, size_t nonce_len)
{
    uint16_t aead = tp_hpke_ctx_suite(ctx).aead_id;
    size_t nk = tp_hpke_aead_key_len(aead), nn = tp_hpke_aead_nonce_len(aead);
    uint8_t secret[TP_HPKE_MAX_KEY_LEN];
    uint8_t salt[TP_HPKE_X25519_ENC_LEN + TP_HPKE_MAX_KEY_LEN];
    uint8_t prk[TP_HPKE_SECRET_LEN];
    uint8_t key[TP_HPKE_MAX_KEY_LEN];
    uint8_t aead_nonce[TP_HPKE_NONCE_LEN];
    int rv;

    if (nk == 0 || nonce_len > TP_HPKE_MAX_KEY_LEN)
        return TP_ERR_STATE;
    memcpy(salt, enc, TP_HPKE_X25519_ENC_LEN);
    memcpy(salt + TP_HPKE_X25519_ENC_LEN, nonce, nonce_len);
    rv = tp_hpke_export(ctx, res_label, sizeof(res_label) - 1, secret, nk);
    if (rv == 0)
        rv = tp_hpke_ctx_extract(ctx, salt, TP_HPKE_X25519_ENC_LEN + nonce_len, secret,
                                 nk, prk);
    if (rv == 0)
        rv =
            tp_hpke_ctx_expand(ctx, prk, sizeof(prk), (const uint8_t *)"key", 3, key, nk);
    if (rv == 0)
        rv = tp_hpke_ctx_expand(ctx, prk, sizeof(prk), (const uint8_t *)"nonce", 5,
                                aead_nonce, nn);
    if (rv == 0)
        rv = tp_hpke_ctx_set_aead_key(ctx, key, nk, aead_nonce, nn);
    sodium_memzero(secret, sizeof(secret));
    sodium_memzero(prk, sizeof(prk));
    sodium_memzero(key, sizeof(key));
    sodium_memzero(aead_nonce, sizeof(aead_nonce));
    return rv;
}

/* ---- gateway ---------------------------------------------------------------------- */

enum exchange_state {
    XS_EMPTY = 0,
    XS_OPEN, /* gateway: request opened; client: request sealed */
    XS_DONE, /* response sealed / opened, or failed */
};

struct tp_ohttp_gateway {
    struct tp_hpke_ctx *hpke;
    enum exchange_state state;
    struct tp_ohttp_header hdr;
    uint8_t enc[TP_HPKE_X25519_ENC_LEN];
};

int tp_ohttp_gateway_new(struct tp_ohttp_gateway **out)
{
    struct tp_ohttp_gateway *gw;
    int rv = dummy_init();
    if (rv != 0)
        return rv;
    gw = calloc(1, sizeof(*gw));
    if (!gw)
        return TP_ERR_NOMEM;
    rv = tp_hpke_ctx_new(&gw->hpke);
    if (rv != 0) {
        free(gw);
        return rv;
    }
    *out = gw;
    return 0;
}

void tp_ohttp_gateway_reset(struct tp_ohttp_gateway *gw)
{
    if (!gw)
        return;
    tp_hpke_ctx_reset(gw->hpke);
    gw->state = XS_EMPTY;
    memset(&gw->hdr, 0, sizeof(gw->hdr));
    memset(gw->enc, 0, sizeof(gw->enc));
}

void tp_ohttp_gateway_free(struct tp_ohttp_gateway *gw)
{
    if (!gw)
        return;
    tp_hpke_ctx_free(gw->hpke);
    gw->hpke = NULL;
    free(gw);
}

int tp_ohttp_gateway_decap(struct tp_ohttp_gateway *gw, const uint8_t *req,
                           size_t req_len, tp_ohttp_key_lookup_cb lookup, void *arg,
                           uint8_t *out, size_t out_cap, size_t *out_len)
{
    struct tp_hpke_suite suite;
    struct tp_ohttp_header hdr;
    uint8_t info[INFO_LEN];
    const uint8_t *sk = NULL, *pk = NULL;
    const uint8_t *enc, *ct;
    size_t ct_len, pt_len = 0;
    int fail = 0, rv;

    tp_ohttp_gateway_reset(gw);
    if (!req || req_len < TP_OHTTP_REQ_OVERHEAD)
        return TP_ERR_INVALID;
    ct_len = req_len - TP_OHTTP_HDR_LEN - TP_HPKE_X25519_ENC_LEN;
    if (!out || out_cap < ct_len - TP_HPKE_TAG_LEN)
        return TP_ERR_INVALID;
    hdr =
        (struct tp_ohttp_header){req[0], get16(req + 1), get16(req + 3), get16(req + 5)};
    enc = req + TP_OHTTP_HDR_LEN;
    ct = enc + TP_HPKE_X25519_ENC_LEN;
    build_info(info, req);

    /* From here on every failure runs to the end of the work, with stand-ins where
       something was missing, and only then reports the first reason. */
    suite = (struct tp_hpke_suite){hdr.kem_id, hdr.kdf_id, hdr.aead_id};
    if (tp_hpke_suite_check(suite) != 0) {
        fail = TP_ERR_UNSUPPORTED;
        suite = (struct tp_hpke_suite){TP_HPKE_KEM_X25519_SHA256, TP_HPKE_KDF_HKDF_SHA256,
                                       TP_HPKE_AEAD_AES128GCM};
    } else if (!lookup || lookup(arg, &hdr, &sk, &pk) != 0 || !sk) {
        fail = TP_ERR_UNSUPPORTED;
    }
    if (fail) {
        sk = dummy_sk;
        pk = dummy_pk;
    }
    rv = tp_hpke_setup_base_r(gw->hpke, suite, enc, sk, pk, info, sizeof(info));
    if (rv == TP_ERR_PROTO) {
        if (!fail)
            fail = TP_ERR_PROTO;
        /* The low-order check happens before the scalar multiplication: do one. */
        rv = tp_hpke_setup_base_r(gw->hpke, suite, dummy_pk, dummy_sk, dummy_pk, info,
                                  sizeof(info));
    }
    sk = NULL; /* the borrowed key is not used past this point */
    if (rv != 0) {
        tp_ohttp_gateway_reset(gw);
        return rv;
    }
    rv = tp_hpke_open(gw->hpke, NULL, 0, ct, ct_len, out, out_cap, &pt_len);
    if (fail || rv != 0) {
        sodium_memzero(out, ct_len - TP_HPKE_TAG_LEN);
        tp_ohttp_gateway_reset(gw);
        return fail ? fail : TP_ERR_CRYPTO;
    }
    gw->hdr = hdr;
    memcpy(gw->enc, enc, sizeof(gw->enc));
    gw->state = XS_OPEN;
    *out_len = pt_len;
    return 0;
}

const uint8_t *tp_ohttp_gateway_enc(const struct tp_ohttp_gateway *gw, size_t *len)
{
    if (gw->state == XS_EMPTY) {
        *len = 0;
        return NULL;
    }
    *len = sizeof(gw->enc);
    return gw->enc;
}

const struct tp_ohttp_header *tp_ohttp_gateway_header(const struct tp_ohttp_gateway *gw)
{
    return gw->state == XS_EMPTY ? NULL : &gw->hdr;
}

size_t tp_ohttp_gateway_response_len(const struct tp_ohttp_gateway *gw, size_t bhttp_len)
{
    size_t over;
    if (gw->state != XS_OPEN)
        return 0;
    over = response_nonce_len(gw->hdr.aead_id) + TP_HPKE_TAG_LEN;
    return bhttp_len > SIZE_MAX - over ? 0 : bhttp_len + over;
}

int tp_ohttp_gateway_encap_response(struct tp_ohttp_gateway *gw, const uint8_t *res,
                                    size_t res_len, uint8_t *out, size_t out_cap,
                                    size_t *out_len)
{
    size_t nonce_len, need, ct_len = 0;
    int rv;

    if (gw->state != XS_OPEN)
        return TP_ERR_STATE;
    need = tp_ohttp_gateway_response_len(gw, res_len);
    if (need == 0 || !out || out_cap < need || (res_len && !res))
        return TP_ERR_INVALID;
    nonce_len = response_nonce_len(gw->hdr.aead_id);
    /* The nonce goes straight into the output, where it is sent as is: public bytes,
       so from the per-thread pool rather than a system call each. */
    rv = tp_rand_public(out, nonce_len);
    if (rv == 0)
        rv = response_keys(gw->hpke, gw->enc, out, nonce_len);
    if (rv == 0)
        rv = tp_hpke_seal(gw->hpke, NULL, 0, res, res_len, out + nonce_len,
                          out_cap - nonce_len, &ct_len);
    /* One response per request, whatever happened. */
    gw->state = XS_DONE;
    tp_hpke_ctx_reset(gw->hpke);
    if (rv != 0) {
        sodium_memzero(out, need);
        return rv;
    }
    *out_len = nonce_len + ct_len;
    return 0;
}

/* ---- client ----------------------------------------------------------------------- */

struct tp_ohttp_client {
    struct tp_hpke_ctx *hpke;
    enum exchange_state state;
    uint16_t aead_id;
    uint8_t enc[TP_HPKE_X25519_ENC_LEN];
};

int tp_ohttp_client_new(struct tp_ohttp_client **out)
{
    struct tp_ohttp_client *c = calloc(1, sizeof(*c));
    int rv;
    if (!c)
        return TP_ERR_NOMEM;
    rv = tp_hpke_ctx_new(&c->hpke);
    if (rv != 0) {
        free(c);
        return rv;
    }
    *out = c;
    return 0;
}

void tp_ohttp_client_free(struct tp_ohttp_client *c)
{
    if (!c)
        return;
    tp_hpke_ctx_free(c->hpke);
    c->hpke = NULL;
    free(c);
}

int tp_ohttp_client_encap(struct tp_ohttp_client *c,
                          const struct tp_ohttp_key_config *cfg,
                          struct tp_ohttp_suite suite, const uint8_t *req, size_t req_len,
                          uint8_t *out, size_t out_cap, size_t *out_len)
{
    struct tp_hpke_suite hs = {cfg->kem_id, suite.kdf_id, suite.aead_id};
    uint8_t info[INFO_LEN];
    bool listed = false;
    size_t ct_len = 0;
    int rv;

    tp_hpke_ctx_reset(c->hpke);
    c->state = XS_EMPTY;
    for (size_t i = 0; i < cfg->n_suites && i < TP_OHTTP_MAX_SUITES; i++)
        listed |= cfg->suites[i].kdf_id == suite.kdf_id &&
                  cfg->suites[i].aead_id == suite.aead_id;
    if (!listed || tp_hpke_suite_check(hs) != 0)
        return TP_ERR_UNSUPPORTED;
    if (req_len > SIZE_MAX - TP_OHTTP_REQ_OVERHEAD || !out ||
        out_cap < req_len + TP_OHTTP_REQ_OVERHEAD || (req_len && !req))
        return TP_ERR_INVALID;
    out[0] = cfg->key_id;
    put16(out + 1, hs.kem_id);
    put16(out + 3, hs.kdf_id);
    put16(out + 5, hs.aead_id);
    build_info(info, out);
    rv = tp_hpke_setup_base_s(c->hpke, hs, cfg->public_key, info, sizeof(info),
                              out + TP_OHTTP_HDR_LEN);
    if (rv == 0)
        rv = tp_hpke_seal(c->hpke, NULL, 0, req, req_len,
                          out + TP_OHTTP_HDR_LEN + TP_HPKE_X25519_ENC_LEN,
                          out_cap - TP_OHTTP_HDR_LEN - TP_HPKE_X25519_ENC_LEN, &ct_len);
    if (rv != 0) {
        tp_hpke_ctx_reset(c->hpke);
        sodium_memzero(out, req_len + TP_OHTTP_REQ_OVERHEAD);
        return rv;
    }
    memcpy(c->enc, out + TP_OHTTP_HDR_LEN, sizeof(c->enc));
    c->aead_id = hs.aead_id;
    c->state = XS_OPEN;
    *out_len = TP_OHTTP_HDR_LEN + TP_HPKE_X25519_ENC_LEN + ct_len;
    return 0;
}

int tp_ohttp_client_decap_response(struct tp_ohttp_client *c, const uint8_t *res,
                                   size_t res_len, uint8_t *out, size_t out_cap,
                                   size_t *out_len)
{
    size_t nonce_len, pt_len = 0;
    int rv;

    if (c->state != XS_OPEN)
        return TP_ERR_STATE;
    nonce_len = response_nonce_len(c->aead_id);
    if (!res || res_len < nonce_len + TP_HPKE_TAG_LEN || !out ||
        out_cap < res_len - nonce_len - TP_HPKE_TAG_LEN)
        return TP_ERR_INVALID;
    rv = response_keys(c->hpke, c->enc, res, nonce_len);
    if (rv == 0)
        rv = tp_hpke_open(c->hpke, NULL, 0, res + nonce_len, res_len - nonce_len, out,
                          out_cap, &pt_len);
    c->state = XS_DONE;
    tp_hpke_ctx_reset(c->hpke);
    if (rv != 0)
        return rv;
    *out_len = pt_len;
    return 0;
}
