/* HPKE (transport/tp_hpke.c): every base-mode DHKEM(X25519, HKDF-SHA256) vector of
   RFC 9180 Appendix A in tests/vectors/rfc9180-x25519-base.txt, parsed at test time so
   a changed byte in the file fails the suite, plus round trips and refusals. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>
#include <openssl/crypto.h>
#include <sodium.h>

#include "unit_suites.h"

#include "tp_err.h"
#include "tp_hpke.h"
#include "tp_hpke_internal.h"
#include "tp_rand.h"
#include "tu_util.h"

/* ---- vector file parsing ---------------------------------------------------------- */

/* One "key: value" of the file; hex values that wrap onto following lines are joined. */
struct kv {
    char key[40];
    char *val; /* malloc'd, NUL-terminated */
};

struct kvlist {
    struct kv *v;
    size_t n, cap;
};

static bool is_hex_line(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

static bool kv_push(struct kvlist *l, const char *key, size_t kn, const char *val,
                    size_t vn)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct kv *nv = realloc(l->v, cap * sizeof(*nv));
        if (!nv)
            return false;
        l->v = nv;
        l->cap = cap;
    }
    struct kv *e = &l->v[l->n];
    if (kn >= sizeof(e->key))
        return false;
    memcpy(e->key, key, kn);
    e->key[kn] = '\0';
    e->val = malloc(vn + 1);
    if (!e->val)
        return false;
    memcpy(e->val, val, vn);
    e->val[vn] = '\0';
    l->n++;
    return true;
}

static bool kv_append(struct kv *e, const char *s, size_t n)
{
    size_t old = strlen(e->val);
    char *nv = realloc(e->val, old + n + 1);
    if (!nv)
        return false;
    memcpy(nv + old, s, n);
    nv[old + n] = '\0';
    e->val = nv;
    return true;
}

static void kv_free(struct kvlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].val);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

static void trim(const char **s, size_t *n)
{
    while (*n && (**s == ' ' || **s == '\t' || **s == '\r')) {
        (*s)++;
        (*n)--;
    }
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t' || (*s)[*n - 1] == '\r'))
        (*n)--;
}

/* Sections ("## ...") become a kv with key "##". */
static bool parse_vectors(const char *text, struct kvlist *out)
{
    const char *p = text;
    bool last_is_value = false;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        const char *line = p;
        p = eol ? eol + 1 : p + n;
        trim(&line, &n);
        if (n >= 3 && line[0] == '#' && line[1] == '#' && line[2] == ' ') {
            if (!kv_push(out, "##", 2, line + 3, n - 3))
                return false;
            last_is_value = false;
            continue;
        }
        if (n == 0 || line[0] == '#' || line[0] == '~') {
            last_is_value = false;
            continue;
        }
        const char *colon = memchr(line, ':', n);
        if (colon) {
            const char *k = line, *v = colon + 1;
            size_t kn = (size_t)(colon - line), vn = n - kn - 1;
            trim(&k, &kn);
            trim(&v, &vn);
            if (!kv_push(out, k, kn, v, vn))
                return false;
            last_is_value = true;
        } else if (last_is_value && is_hex_line(line, n)) {
            if (!kv_append(&out->v[out->n - 1], line, n))
                return false;
        } else {
            return false;
        }
    }
    return true;
}

/* ---- helpers ---------------------------------------------------------------------- */

struct buf {
    uint8_t *p;
    size_t n;
};

static struct buf hexbuf(const char *hex)
{
    struct buf b = {NULL, 0};
    b.p = tu_hex(hex, &b.n);
    return b;
}

static bool buf_eq(struct buf b, const uint8_t *p, size_t n)
{
    return b.p && b.n == n && memcmp(b.p, p, n) == 0;
}

struct encryption {
    uint64_t seq;
    struct buf pt, aad, nonce, ct;
};

struct export
{
    struct buf ctx, value;
    size_t len;
};

struct suite_vec {
    char name[96];
    struct tp_hpke_suite suite;
    struct buf info, ikm_e, pk_em, sk_em, ikm_r, pk_rm, sk_rm, enc, shared_secret, ksc,
        secret, key, base_nonce, exporter_secret;
    struct encryption enc_v[16];
    size_t n_enc;
    struct export exp_v[8];
    size_t n_exp;
};

static void suite_vec_free(struct suite_vec *v)
{
    struct buf *all[] = {
        &v->info,   &v->ikm_e, &v->pk_em,      &v->sk_em,          &v->ikm_r,
        &v->pk_rm,  &v->sk_rm, &v->enc,        &v->shared_secret,  &v->ksc,
        &v->secret, &v->key,   &v->base_nonce, &v->exporter_secret};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        free(all[i]->p);
    for (size_t i = 0; i < v->n_enc; i++) {
        free(v->enc_v[i].pt.p);
        free(v->enc_v[i].aad.p);
        free(v->enc_v[i].nonce.p);
        free(v->enc_v[i].ct.p);
    }
    for (size_t i = 0; i < v->n_exp; i++) {
        free(v->exp_v[i].ctx.p);
        free(v->exp_v[i].value.p);
    }
    memset(v, 0, sizeof(*v));
}

static uint64_t parse_u64(const char *s, bool *ok)
{
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    *ok = end && end != s && *end == '\0';
    return (uint64_t)v;
}

/* The setup fields of a suite, by the name the file gives them. */
static struct buf *setup_field(struct suite_vec *v, const char *key)
{
    const struct {
        const char *name;
        struct buf *b;
    } f[] = {
        {"info", &v->info},
        {"ikmE", &v->ikm_e},
        {"pkEm", &v->pk_em},
        {"skEm", &v->sk_em},
        {"ikmR", &v->ikm_r},
        {"pkRm", &v->pk_rm},
        {"skRm", &v->sk_rm},
        {"enc", &v->enc},
        {"shared_secret", &v->shared_secret},
        {"key_schedule_context", &v->ksc},
        {"secret", &v->secret},
        {"key", &v->key},
        {"base_nonce", &v->base_nonce},
        {"exporter_secret", &v->exporter_secret},
    };
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
        if (strcmp(f[i].name, key) == 0)
            return f[i].b;
    return NULL;
}

/* The fields of one encryption record. */
static struct buf *enc_field(struct encryption *x, const char *key)
{
    if (strcmp(key, "pt") == 0)
        return &x->pt;
    if (strcmp(key, "aad") == 0)
        return &x->aad;
    if (strcmp(key, "nonce") == 0)
        return &x->nonce;
    if (strcmp(key, "ct") == 0)
        return &x->ct;
    return NULL;
}

/* Builds the suites from the parsed key/values. Returns the count, or -1 for anything
   this parser does not understand (which fails the test: the file is the test). */
static int build_suites(const struct kvlist *l, struct suite_vec *out, size_t max)
{
    int n = -1;
    struct suite_vec *cur = NULL;
    for (size_t i = 0; i < l->n; i++) {
        const struct kv *e = &l->v[i];
        struct buf *b;
        bool ok = true;
        if (strcmp(e->key, "##") == 0) {
            if ((size_t)(n + 1) >= max)
                return -1;
            cur = &out[++n];
            snprintf(cur->name, sizeof(cur->name), "%s", e->val);
            continue;
        }
        if (!cur)
            return -1;
        struct encryption *x = cur->n_enc ? &cur->enc_v[cur->n_enc - 1] : NULL;
        struct export *xp = cur->n_exp ? &cur->exp_v[cur->n_exp - 1] : NULL;
        if (strcmp(e->key, "mode") == 0) {
            ok = parse_u64(e->val, &ok) == 0 && ok; /* base mode only */
        } else if (strcmp(e->key, "kem_id") == 0) {
            cur->suite.kem_id = (uint16_t)parse_u64(e->val, &ok);
        } else if (strcmp(e->key, "kdf_id") == 0) {
            cur->suite.kdf_id = (uint16_t)parse_u64(e->val, &ok);
        } else if (strcmp(e->key, "aead_id") == 0) {
            cur->suite.aead_id = (uint16_t)parse_u64(e->val, &ok);
        } else if ((b = setup_field(cur, e->key)) != NULL) {
            if (b->p)
                return -1;
            *b = hexbuf(e->val);
            ok = b->p != NULL;
        } else if (strcmp(e->key, "sequence number") == 0) {
            if (cur->n_enc >= sizeof(cur->enc_v) / sizeof(cur->enc_v[0]))
                return -1;
            cur->enc_v[cur->n_enc++].seq = parse_u64(e->val, &ok);
        } else if (x && (b = enc_field(x, e->key)) != NULL) {
            if (b->p)
                return -1;
            *b = hexbuf(e->val);
            ok = b->p != NULL;
        } else if (strcmp(e->key, "exporter_context") == 0) {
            if (cur->n_exp >= sizeof(cur->exp_v) / sizeof(cur->exp_v[0]))
                return -1;
            cur->exp_v[cur->n_exp++].ctx = hexbuf(e->val);
            ok = cur->exp_v[cur->n_exp - 1].ctx.p != NULL;
        } else if (xp && strcmp(e->key, "L") == 0) {
            xp->len = (size_t)parse_u64(e->val, &ok);
        } else if (xp && strcmp(e->key, "exported_value") == 0) {
            xp->value = hexbuf(e->val);
            ok = xp->value.p != NULL;
        } else {
            return -1;
        }
        if (!ok)
            return -1;
    }
    return n + 1;
}

static int load_suites(struct suite_vec *out, size_t max)
{
    size_t len = 0;
    char *text = tu_read_vector("rfc9180-x25519-base.txt", &len);
    struct kvlist l = {0};
    int n = -1;
    if (!text)
        return -1;
    if (parse_vectors(text, &l))
        n = build_suites(&l, out, max);
    kv_free(&l);
    free(text);
    return n;
}

/* ---- the vectors ------------------------------------------------------------------ */

static void check_suite(struct suite_vec *v)
{
    uint8_t sk[32], pk[32], enc[32], shared[32];
    struct tp_hpke_ctx *s = NULL, *r = NULL, *ks = NULL;
    struct tp_hpke_ks_trace trace;
    size_t nk = tp_hpke_aead_key_len(v->suite.aead_id);

    CU_ASSERT_EQUAL_FATAL(tp_hpke_suite_check(v->suite), 0);
    CU_ASSERT_FATAL(nk != 0);

    /* DeriveKeyPair for both parties. */
    CU_ASSERT_EQUAL(tp_hpke_derive_keypair(v->ikm_e.p, v->ikm_e.n, sk, pk), 0);
    CU_ASSERT(buf_eq(v->sk_em, sk, 32));
    CU_ASSERT(buf_eq(v->pk_em, pk, 32));
    CU_ASSERT_EQUAL(tp_hpke_derive_keypair(v->ikm_r.p, v->ikm_r.n, sk, pk), 0);
    CU_ASSERT(buf_eq(v->sk_rm, sk, 32));
    CU_ASSERT(buf_eq(v->pk_rm, pk, 32));
    CU_ASSERT_EQUAL(tp_hpke_public_key(v->sk_rm.p, pk), 0);
    CU_ASSERT(buf_eq(v->pk_rm, pk, 32));

    /* Encap with the vector's ephemeral key, and Decap with and without pkR. */
    CU_ASSERT_EQUAL(tp_hpke_encap_derand(v->pk_rm.p, v->sk_em.p, shared, enc), 0);
    CU_ASSERT(buf_eq(v->enc, enc, 32));
    CU_ASSERT(buf_eq(v->shared_secret, shared, 32));
    memset(shared, 0, sizeof(shared));
    CU_ASSERT_EQUAL(tp_hpke_decap(v->enc.p, v->sk_rm.p, v->pk_rm.p, shared), 0);
    CU_ASSERT(buf_eq(v->shared_secret, shared, 32));
    memset(shared, 0, sizeof(shared));
    CU_ASSERT_EQUAL(tp_hpke_decap(v->enc.p, v->sk_rm.p, NULL, shared), 0);
    CU_ASSERT(buf_eq(v->shared_secret, shared, 32));

    /* The key schedule and its intermediates. */
    CU_ASSERT_EQUAL_FATAL(tp_hpke_ctx_new(&ks), 0);
    CU_ASSERT_EQUAL(tp_hpke_key_schedule(ks, v->suite, TP_HPKE_ROLE_SENDER,
                                         v->shared_secret.p, v->info.p, v->info.n,
                                         &trace),
                    0);
    CU_ASSERT(buf_eq(v->ksc, trace.key_schedule_context, TP_HPKE_KS_CONTEXT_LEN));
    CU_ASSERT(buf_eq(v->secret, trace.secret, 32));
    CU_ASSERT(buf_eq(v->key, trace.key, nk));
    CU_ASSERT(buf_eq(v->base_nonce, ks->base_nonce, TP_HPKE_NONCE_LEN));
    CU_ASSERT(buf_eq(v->exporter_secret, ks->exporter_secret, 32));
    tp_hpke_ctx_free(ks);

    /* Full SetupBaseS / SetupBaseR. */
    CU_ASSERT_EQUAL_FATAL(tp_hpke_ctx_new(&s), 0);
    CU_ASSERT_EQUAL_FATAL(tp_hpke_ctx_new(&r), 0);
    CU_ASSERT_EQUAL(tp_hpke_setup_base_s_derand(s, v->suite, v->pk_rm.p, v->info.p,
                                                v->info.n, v->sk_em.p, enc),
                    0);
    CU_ASSERT(buf_eq(v->enc, enc, 32));
    CU_ASSERT_EQUAL(tp_hpke_setup_base_r(r, v->suite, v->enc.p, v->sk_rm.p, v->pk_rm.p,
                                         v->info.p, v->info.n),
                    0);

    /* Every listed sequence number, seal and open. */
    CU_ASSERT(v->n_enc >= 6);
    for (size_t i = 0; i < v->n_enc; i++) {
        struct encryption *x = &v->enc_v[i];
        uint8_t out[256], nonce[TP_HPKE_NONCE_LEN];
        size_t out_len = 0;
        CU_ASSERT_FATAL(x->pt.p && x->aad.p && x->nonce.p && x->ct.p);
        CU_ASSERT_FATAL(x->ct.n <= sizeof(out));
        /* The nonce the vector prints is base_nonce XOR seq. */
        memcpy(nonce, v->base_nonce.p, TP_HPKE_NONCE_LEN);
        for (size_t b = 0; b < 8; b++)
            nonce[TP_HPKE_NONCE_LEN - 1 - b] ^= (uint8_t)(x->seq >> (8 * b));
        CU_ASSERT(buf_eq(x->nonce, nonce, TP_HPKE_NONCE_LEN));

        tp_hpke_ctx_set_seq(s, x->seq);
        CU_ASSERT_EQUAL(tp_hpke_seal(s, x->aad.p, x->aad.n, x->pt.p, x->pt.n, out,
                                     sizeof(out), &out_len),
                        0);
        CU_ASSERT(buf_eq(x->ct, out, out_len));
        CU_ASSERT_EQUAL(s->seq, x->seq + 1);

        tp_hpke_ctx_set_seq(r, x->seq);
        CU_ASSERT_EQUAL(tp_hpke_open(r, x->aad.p, x->aad.n, x->ct.p, x->ct.n, out,
                                     sizeof(out), &out_len),
                        0);
        CU_ASSERT(buf_eq(x->pt, out, out_len));
        CU_ASSERT_EQUAL(r->seq, x->seq + 1);

        /* The same ciphertext at the wrong sequence number fails. */
        tp_hpke_ctx_set_seq(r, x->seq + 1);
        CU_ASSERT_EQUAL(tp_hpke_open(r, x->aad.p, x->aad.n, x->ct.p, x->ct.n, out,
                                     sizeof(out), &out_len),
                        TP_ERR_CRYPTO);
        CU_ASSERT_EQUAL(r->seq, x->seq + 1);
    }

    /* The sequence number advances by itself: seal 0, 1, 2 in a row. */
    tp_hpke_ctx_set_seq(s, 0);
    for (size_t i = 0; i < v->n_enc && v->enc_v[i].seq == i; i++) {
        uint8_t out[256];
        size_t out_len = 0;
        struct encryption *x = &v->enc_v[i];
        CU_ASSERT_EQUAL(tp_hpke_seal(s, x->aad.p, x->aad.n, x->pt.p, x->pt.n, out,
                                     sizeof(out), &out_len),
                        0);
        CU_ASSERT(buf_eq(x->ct, out, out_len));
    }

    /* Every export, from both sides. */
    CU_ASSERT(v->n_exp >= 3);
    for (size_t i = 0; i < v->n_exp; i++) {
        struct export *x = &v->exp_v[i];
        uint8_t out[64];
        CU_ASSERT_FATAL(x->value.p && x->len == x->value.n && x->len <= sizeof(out));
        CU_ASSERT_EQUAL(tp_hpke_export(s, x->ctx.p, x->ctx.n, out, x->len), 0);
        CU_ASSERT(buf_eq(x->value, out, x->len));
        memset(out, 0, sizeof(out));
        CU_ASSERT_EQUAL(tp_hpke_export(r, x->ctx.p, x->ctx.n, out, x->len), 0);
        CU_ASSERT(buf_eq(x->value, out, x->len));
    }

    /* A flipped bit anywhere in the first ciphertext (or its tag) fails to open. */
    {
        struct encryption *x = &v->enc_v[0];
        uint8_t ct[256], out[256];
        size_t out_len;
        memcpy(ct, x->ct.p, x->ct.n);
        for (size_t pos = 0; pos < x->ct.n; pos++) {
            ct[pos] ^= 0x01;
            tp_hpke_ctx_set_seq(r, x->seq);
            CU_ASSERT_EQUAL(tp_hpke_open(r, x->aad.p, x->aad.n, ct, x->ct.n, out,
                                         sizeof(out), &out_len),
                            TP_ERR_CRYPTO);
            ct[pos] ^= 0x01;
        }
        /* The wrong aad fails too, and so does a different info (other key). */
        tp_hpke_ctx_set_seq(r, x->seq);
        CU_ASSERT_EQUAL(tp_hpke_open(r, (const uint8_t *)"x", 1, ct, x->ct.n, out,
                                     sizeof(out), &out_len),
                        TP_ERR_CRYPTO);
        CU_ASSERT_EQUAL(tp_hpke_setup_base_r(r, v->suite, v->enc.p, v->sk_rm.p, NULL,
                                             (const uint8_t *)"other", 5),
                        0);
        CU_ASSERT_EQUAL(
            tp_hpke_open(r, x->aad.p, x->aad.n, ct, x->ct.n, out, sizeof(out), &out_len),
            TP_ERR_CRYPTO);
    }

    tp_hpke_ctx_free(s);
    tp_hpke_ctx_free(r);
}

static void rfc9180_vectors(void)
{
    static struct suite_vec v[4];
    int n = load_suites(v, 4);
    CU_ASSERT_FATAL(n >= 2);
    bool seen_aes = false, seen_chacha = false;
    for (int i = 0; i < n; i++) {
        seen_aes |= v[i].suite.aead_id == TP_HPKE_AEAD_AES128GCM;
        seen_chacha |= v[i].suite.aead_id == TP_HPKE_AEAD_CHACHA20POLY1305;
        check_suite(&v[i]);
        suite_vec_free(&v[i]);
    }
    CU_ASSERT(seen_aes && seen_chacha);
}

/* ---- round trips ------------------------------------------------------------------ */

static const uint16_t aeads[3] = {TP_HPKE_AEAD_AES128GCM, TP_HPKE_AEAD_AES256GCM,
                                  TP_HPKE_AEAD_CHACHA20POLY1305};

static void round_trips(void)
{
    struct tp_hpke_ctx *s = NULL, *r = NULL;
    CU_ASSERT_EQUAL_FATAL(tp_hpke_ctx_new(&s), 0);
    CU_ASSERT_EQUAL_FATAL(tp_hpke_ctx_new(&r), 0);
    for (int iter = 0; iter < 60; iter++) {
        struct tp_hpke_suite suite = {TP_HPKE_KEM_X25519_SHA256, TP_HPKE_KDF_HKDF_SHA256,
                                      aeads[iter % 3]};
        uint8_t sk[32], pk[32], enc[32], info[40], aad[20], pt[600], ct[700], back[700];
        uint8_t e1[48], e2[48];
        size_t ct_len = 0, back_len = 0;
        size_t pt_len = (size_t)(iter * 37) % sizeof(pt);
        CU_ASSERT_EQUAL(tp_hpke_generate_keypair(sk, pk), 0);
        CU_ASSERT_EQUAL(tp_rand_bytes(info, sizeof(info)), 0);
        CU_ASSERT_EQUAL(tp_rand_bytes(pt, sizeof(pt)), 0);
        CU_ASSERT_EQUAL(tp_rand_bytes(aad, sizeof(aad)), 0);
        CU_ASSERT_EQUAL(tp_hpke_setup_base_s(s, suite, pk, info, (size_t)iter % 41, enc),
                        0);
        CU_ASSERT_EQUAL(tp_hpke_setup_base_r(r, suite, enc, sk, iter % 2 ? pk : NULL,
                                             info, (size_t)iter % 41),
                        0);
        for (int m = 0; m < 3; m++) {
            CU_ASSERT_EQUAL(
                tp_hpke_seal(s, aad, (size_t)m * 7, pt, pt_len, ct, sizeof(ct), &ct_len),
                0);
            CU_ASSERT_EQUAL(ct_len, pt_len + TP_HPKE_TAG_LEN);
            CU_ASSERT_EQUAL(tp_hpke_open(r, aad, (size_t)m * 7, ct, ct_len, back,
                                         sizeof(back), &back_len),
                            0);
            CU_ASSERT(back_len == pt_len && memcmp(back, pt, pt_len) == 0);
        }
        /* In place both ways. */
        memcpy(back, pt, pt_len);
        CU_ASSERT_EQUAL(
            tp_hpke_seal(s, NULL, 0, back, pt_len, back, sizeof(back), &ct_len), 0);
        CU_ASSERT_EQUAL(
            tp_hpke_open(r, NULL, 0, back, ct_len, back, sizeof(back), &back_len), 0);
        CU_ASSERT(back_len == pt_len && memcmp(back, pt, pt_len) == 0);
        /* Both sides export the same secret, of any length up to the maximum. */
        CU_ASSERT_EQUAL(tp_hpke_export(s, aad, 5, e1, (size_t)iter % 49), 0);
        CU_ASSERT_EQUAL(tp_hpke_export(r, aad, 5, e2, (size_t)iter % 49), 0);
        CU_ASSERT(memcmp(e1, e2, (size_t)iter % 49) == 0);
    }
    {
        /* Export of the largest size, and one byte over. */
        static uint8_t big1[TP_HPKE_EXPORT_MAX + 1], big2[TP_HPKE_EXPORT_MAX];
        CU_ASSERT_EQUAL(tp_hpke_export(s, NULL, 0, big1, TP_HPKE_EXPORT_MAX), 0);
        CU_ASSERT_EQUAL(tp_hpke_export(r, NULL, 0, big2, TP_HPKE_EXPORT_MAX), 0);
        CU_ASSERT(memcmp(big1, big2, TP_HPKE_EXPORT_MAX) == 0);
        CU_ASSERT_EQUAL(tp_hpke_export(s, NULL, 0, big1, TP_HPKE_EXPORT_MAX + 1),
                        TP_ERR_INVALID);
    }
    tp_hpke_ctx_free(s);
    tp_hpke_ctx_free(r);
}

/* A pinned ephemeral key makes SetupBaseS reproducible (how the OHTTP vector test and the
   fuzzers work). */
static void pinned_randomness(void)
{
    struct tp_hpke_ctx *s = NULL;
    uint8_t sk_e[32], sk[32], pk[32], enc1[32], enc2[32], pk_e[32];
    struct tp_hpke_suite suite = {TP_HPKE_KEM_X25519_SHA256, TP_HPKE_KDF_HKDF_SHA256,
                                  TP_HPKE_AEAD_AES128GCM};
    CU_ASSERT_EQUAL_FATAL(tp_hpke_ctx_new(&s), 0);
    CU_ASSERT_EQUAL(tp_hpke_generate_keypair(sk, pk), 0);
    CU_ASSERT_EQUAL(tp_rand_bytes(sk_e, sizeof(sk_e)), 0);
    tp_rand_pin(sk_e, sizeof(sk_e));
    CU_ASSERT_EQUAL(tp_rand_pinned(), 32);
    CU_ASSERT_EQUAL(tp_hpke_setup_base_s(s, suite, pk, NULL, 0, enc1), 0);
    CU_ASSERT_EQUAL(tp_rand_pinned(), 0);
    CU_ASSERT_EQUAL(tp_hpke_public_key(sk_e, pk_e), 0);
    CU_ASSERT(memcmp(enc1, pk_e, 32) == 0);
    CU_ASSERT_EQUAL(tp_hpke_setup_base_s(s, suite, pk, NULL, 0, enc2), 0);
    CU_ASSERT(memcmp(enc1, enc2, 32) != 0);
    /* A pin longer than one use is consumed in order; len 0 drops the rest. */
    uint8_t two[64], got[32];
    memset(two, 0xaa, 32);
    memset(two + 32, 0xbb, 32);
    tp_rand_pin(two, sizeof(two));
    CU_ASSERT_EQUAL(tp_rand_bytes(got, 32), 0);
    CU_ASSERT(got[0] == 0xaa && got[31] == 0xaa);
    tp_rand_pin(NULL, 0);
    CU_ASSERT_EQUAL(tp_rand_pinned(), 0);
    tp_hpke_ctx_free(s);
}

/* ---- refusals --------------------------------------------------------------------- */

/* The published X25519 points of small order (Bernstein's list; libsodium blocks the
   same): 0, 1, two points of order 8, p-1, p, p+1, and the same with bit 255 set. */
static const char *const low_order_hex[] = {
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "cdeb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880",
    "4c9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f11d7",
    "d9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "daffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "dbffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
};

static void low_order_points(void)
{
    struct tp_hpke_ctx *ctx = NULL;
    uint8_t sk[32], pk[32], shared[32], enc[32];
    struct tp_hpke_suite suite = {TP_HPKE_KEM_X25519_SHA256, TP_HPKE_KDF_HKDF_SHA256,
                                  TP_HPKE_AEAD_CHACHA20POLY1305};
    CU_ASSERT_EQUAL_FATAL(tp_hpke_ctx_new(&ctx), 0);
    CU_ASSERT_EQUAL(tp_hpke_generate_keypair(sk, pk), 0);
    for (size_t i = 0; i < sizeof(low_order_hex) / sizeof(low_order_hex[0]); i++) {
        struct buf p = hexbuf(low_order_hex[i]);
        CU_ASSERT_FATAL(p.p && p.n == 32);
        /* The first seven are the list. The other five (p + x, 2p - 1, 2p, 2p + 1 of
           Bernstein's twelve) only matter to code that keeps bit 255: RFC 7748 masks
           it, which turns them into ordinary u-coordinates that must still work. */
        if (i < 7)
            CU_ASSERT(tp_hpke_x25519_low_order(p.p));
        memset(shared, 0x55, sizeof(shared));
        int rv = tp_hpke_decap(p.p, sk, pk, shared);
        if (tp_hpke_x25519_low_order(p.p)) {
            CU_ASSERT_EQUAL(rv, TP_ERR_PROTO);
            CU_ASSERT_EQUAL(tp_hpke_setup_base_r(ctx, suite, p.p, sk, pk, NULL, 0),
                            TP_ERR_PROTO);
            CU_ASSERT_EQUAL(tp_hpke_encap(p.p, shared, enc), TP_ERR_PROTO);
            CU_ASSERT_EQUAL(tp_hpke_setup_base_s(ctx, suite, p.p, NULL, 0, enc),
                            TP_ERR_PROTO);
            /* A failed setup leaves nothing usable behind. */
            CU_ASSERT_EQUAL(ctx->role, TP_HPKE_ROLE_EMPTY);
        } else {
            /* Not on the list: then it is not of small order, and DH works. */
            CU_ASSERT_EQUAL(rv, 0);
        }
        free(p.p);
    }
    /* Every masked variant of a listed point is refused. */
    for (size_t i = 0; i < 7; i++) {
        struct buf p = hexbuf(low_order_hex[i]);
        p.p[31] |= 0x80;
        CU_ASSERT(tp_hpke_x25519_low_order(p.p));
        CU_ASSERT_EQUAL(tp_hpke_decap(p.p, sk, pk, shared), TP_ERR_PROTO);
        free(p.p);
    }
    tp_hpke_ctx_free(ctx);
}

static void refusals(void)
{
    struct tp_hpke_ctx *s = NULL, *r = NULL, *e = NULL;
    uint8_t sk[32], pk[32], enc[32], buf[64] = {0};
    size_t n = 0;
    struct tp_hpke_suite good = {TP_HPKE_KEM_X25519_SHA256, TP_HPKE_KDF_HKDF_SHA256,
                                 TP_HPKE_AEAD_AES128GCM};
    struct tp_hpke_suite bad[] = {
        {0x0010, 1, 1}, {0x0021, 1, 1}, {0x0020, 2, 1},      {0x0020, 3, 1},
        {0x0020, 1, 0}, {0x0020, 1, 4}, {0x0020, 1, 0xffff},
    };
    CU_ASSERT_EQUAL_FATAL(tp_hpke_ctx_new(&s), 0);
    CU_ASSERT_EQUAL_FATAL(tp_hpke_ctx_new(&r), 0);
    CU_ASSERT_EQUAL_FATAL(tp_hpke_ctx_new(&e), 0);
    CU_ASSERT_EQUAL(tp_hpke_generate_keypair(sk, pk), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CU_ASSERT_EQUAL(tp_hpke_suite_check(bad[i]), TP_ERR_UNSUPPORTED);
        CU_ASSERT_EQUAL(tp_hpke_setup_base_s(s, bad[i], pk, NULL, 0, enc),
                        TP_ERR_UNSUPPORTED);
        CU_ASSERT_EQUAL(tp_hpke_setup_base_r(r, bad[i], pk, sk, NULL, NULL, 0),
                        TP_ERR_UNSUPPORTED);
    }
    CU_ASSERT_EQUAL(tp_hpke_aead_key_len(0x0004), 0);
    CU_ASSERT_EQUAL(tp_hpke_aead_nonce_len(0xffff), 0);
    CU_ASSERT_EQUAL(tp_hpke_derive_keypair(buf, 31, sk, pk), TP_ERR_INVALID);

    /* An empty context does nothing. */
    CU_ASSERT_EQUAL(tp_hpke_seal(e, NULL, 0, buf, 1, buf, sizeof(buf), &n), TP_ERR_STATE);
    CU_ASSERT_EQUAL(tp_hpke_open(e, NULL, 0, buf, 17, buf, sizeof(buf), &n),
                    TP_ERR_STATE);
    CU_ASSERT_EQUAL(tp_hpke_export(e, NULL, 0, buf, 16), TP_ERR_STATE);
    CU_ASSERT_EQUAL(tp_hpke_ctx_extract(e, NULL, 0, buf, 4, buf), TP_ERR_STATE);
    CU_ASSERT_EQUAL(tp_hpke_ctx_set_aead_key(e, buf, 16, buf, 12), TP_ERR_STATE);

    CU_ASSERT_EQUAL(tp_hpke_generate_keypair(sk, pk), 0);
    CU_ASSERT_EQUAL(tp_hpke_setup_base_s(s, good, pk, NULL, 0, enc), 0);
    CU_ASSERT_EQUAL(tp_hpke_setup_base_r(r, good, enc, sk, pk, NULL, 0), 0);
    /* Roles: a sender only seals, a receiver only opens. */
    CU_ASSERT_EQUAL(tp_hpke_open(s, NULL, 0, buf, 17, buf, sizeof(buf), &n),
                    TP_ERR_STATE);
    CU_ASSERT_EQUAL(tp_hpke_seal(r, NULL, 0, buf, 1, buf, sizeof(buf), &n), TP_ERR_STATE);
    /* Lengths. */
    CU_ASSERT_EQUAL(tp_hpke_seal(s, NULL, 0, buf, 10, buf, 25, &n), TP_ERR_INVALID);
    CU_ASSERT_EQUAL(tp_hpke_seal(s, NULL, 0, buf, 10, buf, 26, &n), 0);
    CU_ASSERT_EQUAL(tp_hpke_open(r, NULL, 0, buf, 15, buf, sizeof(buf), &n),
                    TP_ERR_INVALID);
    CU_ASSERT_EQUAL(tp_hpke_open(r, NULL, 0, buf, 26, buf, 9, &n), TP_ERR_INVALID);
    CU_ASSERT_EQUAL(tp_hpke_open(r, NULL, 0, buf, 26, buf, 10, &n), 0);
    CU_ASSERT_EQUAL(tp_hpke_ctx_set_aead_key(s, buf, 32, buf, 12), TP_ERR_INVALID);
    CU_ASSERT_EQUAL(tp_hpke_ctx_set_aead_key(s, buf, 16, buf, 11), TP_ERR_INVALID);
    /* The sequence number never wraps. */
    tp_hpke_ctx_set_seq(s, UINT64_MAX);
    CU_ASSERT_EQUAL(tp_hpke_seal(s, NULL, 0, buf, 1, buf, sizeof(buf), &n), TP_ERR_STATE);
    tp_hpke_ctx_set_seq(s, UINT64_MAX - 1);
    CU_ASSERT_EQUAL(tp_hpke_seal(s, NULL, 0, buf, 1, buf, sizeof(buf), &n), 0);
    CU_ASSERT_EQUAL(tp_hpke_seal(s, NULL, 0, buf, 1, buf, sizeof(buf), &n), TP_ERR_STATE);
    /* Reset empties a context for reuse. */
    tp_hpke_ctx_reset(s);
    CU_ASSERT_EQUAL(tp_hpke_export(s, NULL, 0, buf, 16), TP_ERR_STATE);
    CU_ASSERT_EQUAL(tp_hpke_ctx_suite(s).aead_id, 0);
    tp_hpke_ctx_free(s);
    tp_hpke_ctx_free(r);
    tp_hpke_ctx_free(e);
    tp_hpke_ctx_free(NULL);
    tp_hpke_ctx_reset(NULL);
}

/* The bare AEAD mode OHTTP responses use: both directions on rekeyed contexts. */
static void bare_aead(void)
{
    struct tp_hpke_ctx *a = NULL, *b = NULL;
    uint8_t sk[32], pk[32], enc[32], key[32], nonce[12], ct[64], pt[64];
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(tp_hpke_ctx_new(&a), 0);
    CU_ASSERT_EQUAL_FATAL(tp_hpke_ctx_new(&b), 0);
    for (size_t i = 0; i < 3; i++) {
        struct tp_hpke_suite suite = {TP_HPKE_KEM_X25519_SHA256, TP_HPKE_KDF_HKDF_SHA256,
                                      aeads[i]};
        size_t nk = tp_hpke_aead_key_len(aeads[i]);
        CU_ASSERT_EQUAL(tp_hpke_generate_keypair(sk, pk), 0);
        CU_ASSERT_EQUAL(tp_hpke_setup_base_s(a, suite, pk, NULL, 0, enc), 0);
        CU_ASSERT_EQUAL(tp_hpke_setup_base_r(b, suite, enc, sk, pk, NULL, 0), 0);
        CU_ASSERT_EQUAL(tp_rand_bytes(key, sizeof(key)), 0);
        CU_ASSERT_EQUAL(tp_rand_bytes(nonce, sizeof(nonce)), 0);
        CU_ASSERT_EQUAL(tp_hpke_ctx_set_aead_key(a, key, nk, nonce, 12), 0);
        CU_ASSERT_EQUAL(tp_hpke_ctx_set_aead_key(b, key, nk, nonce, 12), 0);
        CU_ASSERT_EQUAL(tp_hpke_export(a, NULL, 0, pt, 16), TP_ERR_STATE);
        /* The receiver seals, the sender opens: the direction OHTTP responses go. */
        CU_ASSERT_EQUAL(
            tp_hpke_seal(b, NULL, 0, (const uint8_t *)"hello", 5, ct, sizeof(ct), &n), 0);
        CU_ASSERT_EQUAL(tp_hpke_open(a, NULL, 0, ct, n, pt, sizeof(pt), &n), 0);
        CU_ASSERT(n == 5 && memcmp(pt, "hello", 5) == 0);
    }
    tp_hpke_ctx_free(a);
    tp_hpke_ctx_free(b);
}

/* Receivers on OpenSSL's X25519 (tp_hpke_x25519_openssl): the RFC 9180 vectors, the
   low-order points and the round trips again, each DH equal to libsodium's, the
   private keys in OpenSSL's secure heap, and tp_hpke_forget_keys releasing them. The
   switch is process-wide and cannot be undone, so this runs last in the suite; where
   the arena cannot be locked (RLIMIT_MEMLOCK) the switch must report it and change
   nothing. */
static void x25519_openssl(void)
{
    uint8_t sk[8][32], pk[8][32], ss_s[32], ss_r[32], enc[32];
    int rv = tp_hpke_x25519_openssl((size_t)1 << 20);

    CU_ASSERT(rv == 0 || rv == TP_ERR_UNSUPPORTED);
    CU_ASSERT_EQUAL(tp_hpke_x25519_openssl_on(), rv == 0);
    CU_ASSERT_EQUAL(tp_hpke_x25519_openssl((size_t)1 << 20), rv);
    if (rv != 0) {
        /* Still libsodium, still working. */
        CU_ASSERT_EQUAL(tp_hpke_generate_keypair(sk[0], pk[0]), 0);
        CU_ASSERT_EQUAL(tp_hpke_encap(pk[0], ss_s, enc), 0);
        CU_ASSERT_EQUAL(tp_hpke_decap(enc, sk[0], pk[0], ss_r), 0);
        CU_ASSERT_EQUAL(memcmp(ss_s, ss_r, 32), 0);
        sodium_memzero(sk, sizeof(sk));
        return;
    }
    rfc9180_vectors();
    low_order_points();
    round_trips();

    /* Eight keys filling a thread's cache, each enc decapsulated on both libraries. */
    tp_hpke_forget_keys();
    for (size_t round = 0; round < 3; round++)
        for (size_t i = 0; i < 8; i++) {
            if (round == 0)
                CU_ASSERT_EQUAL(tp_hpke_generate_keypair(sk[i], pk[i]), 0);
            CU_ASSERT_EQUAL(tp_hpke_encap(pk[i], ss_s, enc), 0);
            memset(ss_r, 0, sizeof(ss_r));
            CU_ASSERT_EQUAL(tp_hpke_decap(enc, sk[i], pk[i], ss_r), 0); /* OpenSSL */
            CU_ASSERT_EQUAL(memcmp(ss_s, ss_r, 32), 0);
            memset(ss_r, 0, sizeof(ss_r));
            CU_ASSERT_EQUAL(tp_hpke_decap(enc, sk[i], NULL, ss_r), 0); /* libsodium */
            CU_ASSERT_EQUAL(memcmp(ss_s, ss_r, 32), 0);
        }
    size_t held = CRYPTO_secure_used();
    CU_ASSERT(held >= 8 * 32);
    tp_hpke_forget_keys();
    CU_ASSERT_EQUAL(tp_hpke_encap(pk[0], ss_s, enc), 0);
    CU_ASSERT_EQUAL(tp_hpke_decap(enc, sk[0], pk[0], ss_r), 0);
    CU_ASSERT_EQUAL(memcmp(ss_s, ss_r, 32), 0);
    /* Seven of the eight copies are gone (and wiped by OpenSSL as they went). */
    CU_ASSERT(CRYPTO_secure_used() + 7 * 32 <= held);
    sodium_memzero(sk, sizeof(sk));
}

int test_tp_hpke(void)
{
    CU_pSuite s = CU_add_suite("tp_hpke", NULL, NULL);
    if (!s || !CU_add_test(s, "RFC 9180 base-mode X25519 vectors", rfc9180_vectors) ||
        !CU_add_test(s, "round trips, all AEADs", round_trips) ||
        !CU_add_test(s, "pinned randomness", pinned_randomness) ||
        !CU_add_test(s, "low-order points", low_order_points) ||
        !CU_add_test(s, "refusals", refusals) ||
        !CU_add_test(s, "bare AEAD for OHTTP responses", bare_aead) ||
        !CU_add_test(s, "X25519 on OpenSSL's secure heap", x25519_openssl))
        return -1;
    return 0;
}
