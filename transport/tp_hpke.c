/* HPKE base mode (RFC 9180) from OpenSSL 3.0 primitives and X25519 from OpenSSL or
   libsodium.

   X25519, measured with tests/tools/zl_cryptofloor on the development machine (Debian
   12, 2 vCPU Intel Xeon with ADX/BMI2/AVX2/SHA-NI, OpenSSL 3.0.22, libsodium 1.0.18,
   one pinned core, shared with other sessions; medians of three runs, 2026-11-22):
     libsodium crypto_scalarmult (DH)                          42.5-43.7 us/op
     libsodium crypto_scalarmult_base (key generation)         ~39-41 us/op
     OpenSSL EVP_PKEY_derive, key objects reused               36.1-37.3 us/op
     the same with the peer key replaced per op
       (EVP_PKEY_set1_encoded_public_key: what receivers do)   36.3-37.1 us/op
     OpenSSL with a fresh peer EVP_PKEY + EVP_PKEY_CTX per op   43-51 us/op
   So receivers use OpenSSL with everything but the peer's public key kept per thread
   (~15 % less than libsodium), once tp_hpke_x25519_openssl has made sure the private
   keys can live in OpenSSL's locked secure heap: OpenSSL 3.0 imports a raw private key
   (EVP_PKEY_new_raw_private_key, EVP_PKEY_fromdata) into ordinary heap, cleansed on
   free but not locked, and only EVP_PKEY_dup or key generation allocate it with
   OPENSSL_secure_malloc (checked at start-up through CRYPTO_secure_used). Senders (the
   client library: one key generation and one DH with a fresh ephemeral key each time)
   stay on libsodium, where no key object has to be built per request.

   HMAC-SHA256 per call (32-byte key, 80-byte message, same machine): EVP_MAC_init +
   update + final 0.82 us, with several allocations; libsodium crypto_auth_hmacsha256
   1.79 us (portable C SHA-256); OpenSSL's SHA256_* over a struct on the stack 0.27 us,
   and 0.19-0.21 us from kept padded key states (SHA-NI; the bench machine was busy). */
/* SHA256_Init and friends are deprecated in OpenSSL 3.0 in favour of EVP_MD, but they
   are the only OpenSSL SHA-256 whose state is a plain struct: it lives on the stack and
   a keyed HMAC state is copied with '=', where EVP_MAC_init allocates and looks up
   parameters on every re-key. They run the same assembly (SHA-NI here). */
#define OPENSSL_SUPPRESS_DEPRECATED

#include "tp_hpke.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <sodium.h>

#include "tp_err.h"
#include "tp_hpke_internal.h"
#include "tp_rand.h"

/* ---- process-wide primitives, fetched once ---------------------------------------- */

static pthread_once_t prims_once = PTHREAD_ONCE_INIT;
static struct {
    bool ok;
    EVP_CIPHER *aes128gcm;
    EVP_CIPHER *aes256gcm;
    EVP_CIPHER *chacha;
} prims;

static void hmac_key_init(struct tp_hpke_hmac_key *k, const uint8_t *key, size_t key_len);

/* HMAC keyed with Nh zero bytes, the key of every Extract with an empty salt: its
   padded states are computed once. Not a secret. */
static struct tp_hpke_hmac_key zero_salt;

static void prims_setup(void)
{
    static const uint8_t zeros[TP_HPKE_SECRET_LEN];

    if (sodium_init() < 0)
        return;
    hmac_key_init(&zero_salt, zeros, sizeof(zeros));
    prims.aes128gcm = EVP_CIPHER_fetch(NULL, "AES-128-GCM", NULL);
    prims.aes256gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    prims.chacha = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
    prims.ok = prims.aes128gcm && prims.aes256gcm && prims.chacha;
}

static bool prims_ready(void)
{
    return pthread_once(&prims_once, prims_setup) == 0 && prims.ok;
}

static const EVP_CIPHER *aead_cipher(uint16_t aead_id)
{
    switch (aead_id) {
    case TP_HPKE_AEAD_AES128GCM:
        return prims.aes128gcm;
    case TP_HPKE_AEAD_AES256GCM:
        return prims.aes256gcm;
    case TP_HPKE_AEAD_CHACHA20POLY1305:
        return prims.chacha;
    default:
        return NULL;
    }
}

/* ---- suites ----------------------------------------------------------------------- */

int tp_hpke_suite_check(struct tp_hpke_suite suite)
{
    if (suite.kem_id != TP_HPKE_KEM_X25519_SHA256 ||
        suite.kdf_id != TP_HPKE_KDF_HKDF_SHA256 ||
        tp_hpke_aead_key_len(suite.aead_id) == 0)
        return TP_ERR_UNSUPPORTED;
    return 0;
}

size_t tp_hpke_aead_key_len(uint16_t aead_id)
{
    switch (aead_id) {
    case TP_HPKE_AEAD_AES128GCM:
        return 16;
    case TP_HPKE_AEAD_AES256GCM:
    case TP_HPKE_AEAD_CHACHA20POLY1305:
        return 32;
    default:
        return 0;
    }
}

size_t tp_hpke_aead_nonce_len(uint16_t aead_id)
{
    return tp_hpke_aead_key_len(aead_id) ? TP_HPKE_NONCE_LEN : 0;
}

/* ---- HKDF-SHA256 over HMAC, with the RFC 9180 labels ------------------------------ */

/* A borrowed piece of a concatenated input. */
struct part {
    const uint8_t *p;
    size_t n;
};

#define PART_STR(s) ((struct part){(const uint8_t *)(s), sizeof(s) - 1})

static const uint8_t hpke_v1[] = "HPKE-v1";

/* HMAC-SHA256 (RFC 2104) over OpenSSL's SHA-256 block function. Keying absorbs
   key ^ ipad and key ^ opad once; each MAC under that key then starts from a copy of
   those two states, so a key used for several outputs (an Expand of more than one
   block, the three Expands of the key schedule) is padded once, and nothing is
   allocated. */
static void hmac_key_init(struct tp_hpke_hmac_key *k, const uint8_t *key, size_t key_len)
{
    uint8_t block[SHA256_CBLOCK];

    memset(block, 0, sizeof(block));
    if (key_len > sizeof(block))
        SHA256(key, key_len, block);
    else if (key_len)
        memcpy(block, key, key_len);
    for (size_t i = 0; i < sizeof(block); i++)
        block[i] ^= 0x36;
    SHA256_Init(&k->inner);
    SHA256_Update(&k->inner, block, sizeof(block));
    for (size_t i = 0; i < sizeof(block); i++)
        block[i] ^= 0x36 ^ 0x5c;
    SHA256_Init(&k->outer);
    SHA256_Update(&k->outer, block, sizeof(block));
    OPENSSL_cleanse(block, sizeof(block));
}

static void hmac_key_wipe(struct tp_hpke_hmac_key *k)
{
    OPENSSL_cleanse(k, sizeof(*k));
}

/* out = HMAC-SHA256(k, parts[0] || ... || parts[n-1]), TP_HPKE_SECRET_LEN bytes. */
static void hmac_parts(const struct tp_hpke_hmac_key *k, const struct part *parts,
                       size_t n_parts, uint8_t *out)
{
    SHA256_CTX c = k->inner;
    uint8_t ih[SHA256_DIGEST_LENGTH];

    for (size_t i = 0; i < n_parts; i++)
        if (parts[i].n)
            SHA256_Update(&c, parts[i].p, parts[i].n);
    SHA256_Final(ih, &c);
    c = k->outer;
    SHA256_Update(&c, ih, sizeof(ih));
    SHA256_Final(out, &c);
    OPENSSL_cleanse(&c, sizeof(c));
    OPENSSL_cleanse(ih, sizeof(ih));
}

/* HKDF-Extract(salt, parts) (RFC 5869 section 2.2); an empty salt is Nh zero bytes,
   which HMAC's zero padding makes the same key as no key at all. */
static void extract_parts(const uint8_t *salt, size_t salt_len, const struct part *parts,
                          size_t n_parts, uint8_t *prk)
{
    struct tp_hpke_hmac_key k;

    if (salt_len == 0) {
        hmac_parts(&zero_salt, parts, n_parts, prk);
        return;
    }
    hmac_key_init(&k, salt, salt_len);
    hmac_parts(&k, parts, n_parts, prk);
    hmac_key_wipe(&k);
}

/* HKDF-Expand(prk, info_parts, L) (RFC 5869 section 2.3), |prk| already keyed. */
static int expand_parts(const struct tp_hpke_hmac_key *prk, const struct part *info,
                        size_t n_info, uint8_t *out, size_t out_len)
{
    /* T(i) = HMAC(prk, T(i-1) || info || i): two fixed slots around the info parts. */
    struct part parts[8];
    uint8_t t[TP_HPKE_SECRET_LEN];
    uint8_t counter = 0;
    size_t done = 0;

    if (out_len > TP_HPKE_EXPORT_MAX || n_info > sizeof(parts) / sizeof(parts[0]) - 2)
        return TP_ERR_INVALID;
    for (size_t i = 0; i < n_info; i++)
        parts[1 + i] = info[i];
    while (done < out_len) {
        counter++;
        parts[0] = (struct part){t, counter == 1 ? 0 : sizeof(t)};
        parts[1 + n_info] = (struct part){&counter, 1};
        hmac_parts(prk, parts, n_info + 2, t);
        size_t n = out_len - done < sizeof(t) ? out_len - done : sizeof(t);
        memcpy(out + done, t, n);
        done += n;
    }
    sodium_memzero(t, sizeof(t));
    return 0;
}

/* LabeledExtract(salt, label, ikm) = Extract(salt, "HPKE-v1" || suite_id || label || ikm)
 */
static void labeled_extract(const uint8_t *suite_id, size_t suite_id_len,
                            const uint8_t *salt, size_t salt_len, struct part label,
                            const uint8_t *ikm, size_t ikm_len, uint8_t *out)
{
    const struct part parts[] = {
        {hpke_v1, sizeof(hpke_v1) - 1}, {suite_id, suite_id_len}, label, {ikm, ikm_len}};
    extract_parts(salt, salt_len, parts, 4, out);
}

/* LabeledExpand(prk, label, info, L) =
     Expand(prk, I2OSP(L, 2) || "HPKE-v1" || suite_id || label || info, L) */
static int labeled_expand(const uint8_t *suite_id, size_t suite_id_len,
                          const struct tp_hpke_hmac_key *prk, struct part label,
                          const uint8_t *info, size_t info_len, uint8_t *out,
                          size_t out_len)
{
    if (out_len > TP_HPKE_EXPORT_MAX)
        return TP_ERR_INVALID;
    const uint8_t l2[2] = {(uint8_t)(out_len >> 8), (uint8_t)out_len};
    const struct part parts[] = {{l2, 2},
                                 {hpke_v1, sizeof(hpke_v1) - 1},
                                 {suite_id, suite_id_len},
                                 label,
                                 {info, info_len}};
    return expand_parts(prk, parts, 5, out, out_len);
}

/* suite_id of the KEM: "KEM" || I2OSP(kem_id, 2). */
static const uint8_t kem_suite_id[5] = {'K', 'E', 'M', 0x00, 0x20};

static void hpke_suite_id(struct tp_hpke_suite s, uint8_t out[10])
{
    out[0] = 'H';
    out[1] = 'P';
    out[2] = 'K';
    out[3] = 'E';
    out[4] = (uint8_t)(s.kem_id >> 8);
    out[5] = (uint8_t)s.kem_id;
    out[6] = (uint8_t)(s.kdf_id >> 8);
    out[7] = (uint8_t)s.kdf_id;
    out[8] = (uint8_t)(s.aead_id >> 8);
    out[9] = (uint8_t)s.aead_id;
}

/* ---- X25519 DHKEM ----------------------------------------------------------------- */

/* The X25519 points of small order, as published by Bernstein ("How do I validate
   Curve25519 public keys?") and listed in libsodium: 0, 1, two points of order 8, and
   p-1, p, p+1. The top bit is masked before comparing, since X25519 ignores it; that
   also covers the non-canonical encodings 2^255 + x. */
static const uint8_t low_order[7][32] = {
    {0},
    {1},
    {0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3,
     0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32,
     0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00},
    {0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1,
     0x55, 0x9c, 0x83, 0xef, 0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c,
     0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57},
    {0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
    {0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
    {0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
};

bool tp_hpke_x25519_low_order(const uint8_t *pk)
{
    uint8_t c[32];
    bool hit = false;
    memcpy(c, pk, 32);
    c[31] &= 0x7f;
    for (size_t i = 0; i < sizeof(low_order) / sizeof(low_order[0]); i++)
        hit |= memcmp(c, low_order[i], 32) == 0;
    return hit;
}

/* dh = X25519(sk, pk), refusing low-order |pk| and an all-zero result. */
static int x25519_dh(const uint8_t *sk, const uint8_t *pk, uint8_t *dh)
{
    if (tp_hpke_x25519_low_order(pk)) {
        sodium_memzero(dh, TP_HPKE_SECRET_LEN);
        return TP_ERR_PROTO;
    }
    /* libsodium returns -1 for small-order points and all-zero results too. */
    if (crypto_scalarmult(dh, sk, pk) != 0 || sodium_is_zero(dh, TP_HPKE_SECRET_LEN)) {
        sodium_memzero(dh, TP_HPKE_SECRET_LEN);
        return TP_ERR_PROTO;
    }
    return 0;
}

/* ---- X25519 through OpenSSL, for receivers ---------------------------------------- */

/* Once tp_hpke_x25519_openssl has switched it on, a receiver's DH (Decap with its
   public key given) runs on OpenSSL's X25519, faster on this CPU (numbers at the top
   of this file). OpenSSL wants the private key in an EVP_PKEY; each thread keeps a
   few, with a derive context each, in a small cache keyed by the public key, and a
   single peer EVP_PKEY whose public key is replaced by each request's enc, so a
   request allocates nothing. The EVP_PKEY is a dup of the imported key: OpenSSL 3.0
   imports raw keys into ordinary heap (cleansed on free) but dups into its secure
   heap, which tp_hpke_x25519_openssl has set up locked and checked. */
#define KEY_CACHE_N 8

struct key_entry {
    uint8_t pk[TP_HPKE_X25519_PK_LEN];
    EVP_PKEY_CTX *derive; /* holds the only reference to the private key */
    uint64_t used;        /* LRU stamp; 0: empty */
};

struct key_cache {
    EVP_PKEY *peer;
    unsigned epoch;
    uint64_t tick;
    struct key_entry e[KEY_CACHE_N];
};

static pthread_once_t ossl_once = PTHREAD_ONCE_INIT;
static int ossl_state = TP_ERR_UNSUPPORTED; /* 0 once switched on */
static size_t ossl_arena;
static pthread_key_t cache_tsd;
static atomic_uint key_epoch;
static _Thread_local struct key_cache *tcache;

static void entry_clear(struct key_entry *e)
{
    EVP_PKEY_CTX_free(e->derive); /* frees the key: OpenSSL wipes it */
    e->derive = NULL;
    e->used = 0;
    memset(e->pk, 0, sizeof(e->pk));
}

static void cache_free(void *p)
{
    struct key_cache *c = p;
    if (!c)
        return;
    for (size_t i = 0; i < KEY_CACHE_N; i++)
        entry_clear(&c->e[i]);
    EVP_PKEY_free(c->peer);
    c->peer = NULL;
    free(c);
}

/* An X25519 EVP_PKEY holding |sk| in OpenSSL's secure heap, or NULL. */
static EVP_PKEY *secure_private_key(const uint8_t *sk)
{
    EVP_PKEY *tmp = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, sk, 32);
    EVP_PKEY *k = tmp ? EVP_PKEY_dup(tmp) : NULL;
    EVP_PKEY_free(tmp); /* its ordinary-heap copy is cleansed here */
    return k;
}

static void ossl_setup(void)
{
    static const uint8_t nine[32] = {9};
    uint8_t sk[TP_HPKE_X25519_SK_LEN];
    EVP_PKEY *k;
    size_t before;

    if (pthread_key_create(&cache_tsd, cache_free) != 0)
        return;
    /* 1: the arena is locked; 2: it exists but mlock failed, which breaks the promise
       that private keys live only in locked memory, so libsodium stays. */
    if (CRYPTO_secure_malloc_init(ossl_arena, 16) != 1)
        return;
    /* Check that this OpenSSL really puts a dup'ed X25519 private key in the arena. */
    randombytes_buf(sk, sizeof(sk));
    before = CRYPTO_secure_used();
    k = secure_private_key(sk);
    sodium_memzero(sk, sizeof(sk));
    if (k && CRYPTO_secure_used() >= before + TP_HPKE_X25519_SK_LEN) {
        EVP_PKEY *peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, nine, 32);
        /* and that a peer key can be replaced in place */
        if (peer && EVP_PKEY_set1_encoded_public_key(peer, nine, 32) == 1)
            ossl_state = 0;
        EVP_PKEY_free(peer);
    }
    EVP_PKEY_free(k);
}

int tp_hpke_x25519_openssl(size_t arena)
{
    if (!prims_ready())
        return TP_ERR_CRYPTO;
    ossl_arena = arena;
    if (pthread_once(&ossl_once, ossl_setup) != 0)
        return TP_ERR_CRYPTO;
    return ossl_state;
}

bool tp_hpke_x25519_openssl_on(void)
{
    return ossl_state == 0;
}

void tp_hpke_forget_keys(void)
{
    atomic_fetch_add(&key_epoch, 1);
}

static struct key_cache *thread_cache(void)
{
    static const uint8_t nine[32] = {9};
    struct key_cache *c = tcache;
    unsigned epoch = atomic_load(&key_epoch);

    if (c && c->epoch != epoch) {
        for (size_t i = 0; i < KEY_CACHE_N; i++)
            entry_clear(&c->e[i]);
        c->epoch = epoch;
    }
    if (c)
        return c;
    c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->epoch = epoch;
    c->peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, nine, 32);
    if (!c->peer || pthread_setspecific(cache_tsd, c) != 0) {
        cache_free(c);
        return NULL;
    }
    tcache = c;
    return c;
}

/* The derive context for the key pair (sk, pk), from the cache or made and cached. */
static EVP_PKEY_CTX *derive_ctx(struct key_cache *c, const uint8_t *sk, const uint8_t *pk)
{
    struct key_entry *victim = &c->e[0];
    EVP_PKEY *k;

    c->tick++;
    for (size_t i = 0; i < KEY_CACHE_N; i++) {
        struct key_entry *e = &c->e[i];
        if (e->used && sodium_memcmp(e->pk, pk, TP_HPKE_X25519_PK_LEN) == 0) {
            e->used = c->tick;
            return e->derive;
        }
        if (e->used < victim->used)
            victim = e;
    }
    entry_clear(victim);
    k = secure_private_key(sk);
    if (!k)
        return NULL;
    victim->derive = EVP_PKEY_CTX_new(k, NULL);
    EVP_PKEY_free(k); /* the context keeps its own reference */
    if (!victim->derive || EVP_PKEY_derive_init(victim->derive) != 1 ||
        EVP_PKEY_derive_set_peer(victim->derive, c->peer) != 1) {
        entry_clear(victim);
        return NULL;
    }
    memcpy(victim->pk, pk, TP_HPKE_X25519_PK_LEN);
    victim->used = c->tick;
    return victim->derive;
}

/* dh = X25519(sk, enc) on OpenSSL. TP_ERR_UNSUPPORTED when the OpenSSL path cannot be
   used right now (the caller falls back to libsodium), TP_ERR_PROTO for an all-zero
   result. |enc| has passed the low-order check. */
static int x25519_dh_ossl(const uint8_t *sk, const uint8_t *pk, const uint8_t *enc,
                          uint8_t *dh)
{
    struct key_cache *c = thread_cache();
    EVP_PKEY_CTX *d = c ? derive_ctx(c, sk, pk) : NULL;
    size_t len = TP_HPKE_SECRET_LEN;

    if (!d || EVP_PKEY_set1_encoded_public_key(c->peer, enc, TP_HPKE_X25519_ENC_LEN) != 1)
        return TP_ERR_UNSUPPORTED;
    /* OpenSSL refuses an all-zero result itself. */
    if (EVP_PKEY_derive(d, dh, &len) != 1 || len != TP_HPKE_SECRET_LEN ||
        sodium_is_zero(dh, TP_HPKE_SECRET_LEN)) {
        sodium_memzero(dh, TP_HPKE_SECRET_LEN);
        return TP_ERR_PROTO;
    }
    return 0;
}

int tp_hpke_public_key(const uint8_t *sk, uint8_t *pk)
{
    if (!prims_ready())
        return TP_ERR_CRYPTO;
    if (crypto_scalarmult_base(pk, sk) != 0)
        return TP_ERR_CRYPTO;
    return 0;
}

/* ExtractAndExpand(dh, kem_context) with kem_context = enc || pkR. */
static int kem_shared_secret(const uint8_t *dh, const uint8_t *enc, const uint8_t *pk_r,
                             uint8_t *shared_secret)
{
    uint8_t eae_prk[TP_HPKE_SECRET_LEN];
    uint8_t kem_context[2 * TP_HPKE_X25519_PK_LEN];
    struct tp_hpke_hmac_key k;
    int rv;

    memcpy(kem_context, enc, TP_HPKE_X25519_ENC_LEN);
    memcpy(kem_context + TP_HPKE_X25519_ENC_LEN, pk_r, TP_HPKE_X25519_PK_LEN);
    labeled_extract(kem_suite_id, sizeof(kem_suite_id), NULL, 0, PART_STR("eae_prk"), dh,
                    TP_HPKE_SECRET_LEN, eae_prk);
    hmac_key_init(&k, eae_prk, sizeof(eae_prk));
    rv = labeled_expand(kem_suite_id, sizeof(kem_suite_id), &k, PART_STR("shared_secret"),
                        kem_context, sizeof(kem_context), shared_secret,
                        TP_HPKE_SECRET_LEN);
    hmac_key_wipe(&k);
    sodium_memzero(eae_prk, sizeof(eae_prk));
    return rv;
}

static int encap_with(const uint8_t *pk_r, const uint8_t *sk_e,
                      uint8_t *shared_secret, uint8_t *enc)
{
    uint8_t dh[TP_HPKE_SECRET_LEN];
    int rv;

    if (crypto_scalarmult_base(enc, sk_e) != 0)
        return TP_ERR_CRYPTO;
    rv = x25519_dh(sk_e, pk_r, dh);
    if (rv == 0)
        rv = kem_shared_secret(dh, enc, pk_r, shared_secret);
    sodium_memzero(dh, sizeof(dh));
    if (rv != 0)
        sodium_memzero(shared_secret, TP_HPKE_SECRET_LEN);
    return rv;
}

static int decap_with(const uint8_t *enc, const uint8_t *sk_r,
                      const uint8_t *pk_r, uint8_t *shared_secret)
{
    uint8_t dh[TP_HPKE_SECRET_LEN];
    uint8_t pk[TP_HPKE_X25519_PK_LEN];
    int rv;

    if (!pk_r) {
        if (crypto_scalarmult_base(pk, sk_r) != 0)
            return TP_ERR_CRYPTO;
        pk_r = pk;
    }
    rv = TP_ERR_UNSUPPORTED;
    if (pk_r != pk && ossl_state == 0) {
        rv = tp_hpke_x25519_low_order(enc) ? TP_ERR_PROTO
                                           : x25519_dh_ossl(sk_r, pk_r, enc, dh);
    }
    if (rv == TP_ERR_UNSUPPORTED)
        rv = x25519_dh(sk_r, enc, dh);
    if (rv == 0)
        rv = kem_shared_secret(dh, enc, pk_r, shared_secret);
    sodium_memzero(dh, sizeof(dh));
    if (rv != 0)
        sodium_memzero(shared_secret, TP_HPKE_SECRET_LEN);
    return rv;
}

int tp_hpke_derive_keypair(const uint8_t *ikm, size_t ikm_len, uint8_t *sk, uint8_t *pk)
{
    uint8_t dkp_prk[TP_HPKE_SECRET_LEN];
    struct tp_hpke_hmac_key k;
    int rv;

    if (ikm_len < TP_HPKE_X25519_SK_LEN)
        return TP_ERR_INVALID;
    if (!prims_ready())
        return TP_ERR_CRYPTO;
    labeled_extract(kem_suite_id, sizeof(kem_suite_id), NULL, 0, PART_STR("dkp_prk"), ikm,
                    ikm_len, dkp_prk);
    hmac_key_init(&k, dkp_prk, sizeof(dkp_prk));
    rv = labeled_expand(kem_suite_id, sizeof(kem_suite_id), &k, PART_STR("sk"), NULL, 0, sk,
                        TP_HPKE_X25519_SK_LEN);
    if (rv == 0 && crypto_scalarmult_base(pk, sk) != 0)
        rv = TP_ERR_CRYPTO;
    hmac_key_wipe(&k);
    sodium_memzero(dkp_prk, sizeof(dkp_prk));
    if (rv != 0)
        sodium_memzero(sk, TP_HPKE_X25519_SK_LEN);
    return rv;
}

int tp_hpke_generate_keypair(uint8_t *sk, uint8_t *pk)
{
    int rv = tp_rand_bytes(sk, TP_HPKE_X25519_SK_LEN);
    if (rv == 0)
        rv = tp_hpke_public_key(sk, pk);
    if (rv != 0)
        sodium_memzero(sk, TP_HPKE_X25519_SK_LEN);
    return rv;
}

int tp_hpke_encap_derand(const uint8_t *pk_r, const uint8_t *sk_e, uint8_t *shared_secret,
                         uint8_t *enc)
{
    if (!prims_ready())
        return TP_ERR_CRYPTO;
    return encap_with(pk_r, sk_e, shared_secret, enc);
}

int tp_hpke_encap(const uint8_t *pk_r, uint8_t *shared_secret, uint8_t *enc)
{
    uint8_t sk_e[TP_HPKE_X25519_SK_LEN];
    int rv = tp_rand_bytes(sk_e, sizeof(sk_e));
    if (rv == 0)
        rv = tp_hpke_encap_derand(pk_r, sk_e, shared_secret, enc);
    sodium_memzero(sk_e, sizeof(sk_e));
    return rv;
}

int tp_hpke_decap(const uint8_t *enc, const uint8_t *sk_r, const uint8_t *pk_r,
                  uint8_t *shared_secret)
{
    if (!prims_ready())
        return TP_ERR_CRYPTO;
    return decap_with(enc, sk_r, pk_r, shared_secret);
}

/* ---- contexts --------------------------------------------------------------------- */

int tp_hpke_ctx_new(struct tp_hpke_ctx **out)
{
    struct tp_hpke_ctx *ctx;

    if (!prims_ready())
        return TP_ERR_CRYPTO;
    ctx = OPENSSL_zalloc(sizeof(*ctx));
    if (!ctx)
        return TP_ERR_NOMEM;
    ctx->cipher = EVP_CIPHER_CTX_new();
    if (!ctx->cipher) {
        OPENSSL_free(ctx);
        return TP_ERR_NOMEM;
    }
    *out = ctx;
    return 0;
}

void tp_hpke_ctx_reset(struct tp_hpke_ctx *ctx)
{
    if (!ctx)
        return;
    /* EVP_CIPHER_CTX_reset cleanses the expanded key schedule before releasing it. */
    EVP_CIPHER_CTX_reset(ctx->cipher);
    sodium_memzero(ctx->base_nonce, sizeof(ctx->base_nonce));
    sodium_memzero(ctx->exporter_secret, sizeof(ctx->exporter_secret));
    ctx->has_exporter = false;
    ctx->role = TP_HPKE_ROLE_EMPTY;
    ctx->seq = 0;
    ctx->nk = 0;
    ctx->suite = (struct tp_hpke_suite){0, 0, 0};
}

void tp_hpke_ctx_free(struct tp_hpke_ctx *ctx)
{
    if (!ctx)
        return;
    tp_hpke_ctx_reset(ctx);
    EVP_CIPHER_CTX_free(ctx->cipher);
    ctx->cipher = NULL;
    OPENSSL_clear_free(ctx, sizeof(*ctx));
}

struct tp_hpke_suite tp_hpke_ctx_suite(const struct tp_hpke_ctx *ctx)
{
    return ctx->suite;
}

void tp_hpke_ctx_set_seq(struct tp_hpke_ctx *ctx, uint64_t seq)
{
    ctx->seq = seq;
}

/* Keys the EVP_CIPHER_CTX once; seal/open then only change the IV. OpenSSL keeps its
   own (expanded) copy of |key|, so the caller wipes |key| right after. */
static int cipher_key(struct tp_hpke_ctx *ctx, const uint8_t *key)
{
    const EVP_CIPHER *c = aead_cipher(ctx->suite.aead_id);
    if (!c)
        return TP_ERR_UNSUPPORTED;
    /* Already this cipher (a response re-keying its request's context): a NULL cipher
       re-keys OpenSSL's context in place instead of freeing and allocating it. */
    if (EVP_CIPHER_CTX_get0_cipher(ctx->cipher) == c)
        c = NULL;
    if (EVP_CipherInit_ex2(ctx->cipher, c, key, NULL, 1, NULL) != 1)
        return TP_ERR_CRYPTO;
    return 0;
}

int tp_hpke_key_schedule(struct tp_hpke_ctx *ctx, struct tp_hpke_suite suite,
                         enum tp_hpke_role role, const uint8_t *shared_secret,
                         const uint8_t *info, size_t info_len,
                         struct tp_hpke_ks_trace *trace)
{
    uint8_t suite_id[10];
    uint8_t ksc[TP_HPKE_KS_CONTEXT_LEN];
    uint8_t secret[TP_HPKE_SECRET_LEN];
    uint8_t key[TP_HPKE_MAX_KEY_LEN];
    struct tp_hpke_hmac_key k;
    int rv;

    tp_hpke_ctx_reset(ctx);
    rv = tp_hpke_suite_check(suite);
    if (rv != 0)
        return rv;
    hpke_suite_id(suite, suite_id);
    ctx->suite = suite;
    ctx->nk = tp_hpke_aead_key_len(suite.aead_id);

    /* mode_base = 0, psk = psk_id = "" */
    ksc[0] = 0x00;
    labeled_extract(suite_id, sizeof(suite_id), NULL, 0, PART_STR("psk_id_hash"), NULL, 0,
                    ksc + 1);
    labeled_extract(suite_id, sizeof(suite_id), NULL, 0, PART_STR("info_hash"), info,
                    info_len, ksc + 1 + TP_HPKE_SECRET_LEN);
    labeled_extract(suite_id, sizeof(suite_id), shared_secret, TP_HPKE_SECRET_LEN,
                    PART_STR("secret"), NULL, 0, secret);
    /* The three Expands share one keyed state. */
    hmac_key_init(&k, secret, sizeof(secret));
    rv = labeled_expand(suite_id, sizeof(suite_id), &k, PART_STR("key"), ksc, sizeof(ksc),
                        key, ctx->nk);
    if (rv == 0)
        rv = labeled_expand(suite_id, sizeof(suite_id), &k, PART_STR("base_nonce"), ksc,
                            sizeof(ksc), ctx->base_nonce, TP_HPKE_NONCE_LEN);
    if (rv == 0)
        rv = labeled_expand(suite_id, sizeof(suite_id), &k, PART_STR("exp"), ksc,
                            sizeof(ksc), ctx->exporter_secret, TP_HPKE_SECRET_LEN);
    hmac_key_wipe(&k);
    if (rv == 0)
        rv = cipher_key(ctx, key);
    if (rv == 0 && trace) {
        memcpy(trace->key_schedule_context, ksc, sizeof(ksc));
        memcpy(trace->secret, secret, sizeof(secret));
        memcpy(trace->key, key, ctx->nk);
    }
    sodium_memzero(secret, sizeof(secret));
    sodium_memzero(key, sizeof(key));
    sodium_memzero(ksc, sizeof(ksc));
    if (rv != 0) {
        tp_hpke_ctx_reset(ctx);
        return rv;
    }
    ctx->has_exporter = true;
    ctx->role = role;
    return 0;
}

int tp_hpke_setup_base_s_derand(struct tp_hpke_ctx *ctx, struct tp_hpke_suite suite,
                                const uint8_t *pk_r, const uint8_t *info, size_t info_len,
                                const uint8_t *sk_e, uint8_t *enc)
{
    uint8_t shared[TP_HPKE_SECRET_LEN];
    int rv;

    tp_hpke_ctx_reset(ctx);
    rv = tp_hpke_suite_check(suite);
    if (rv != 0)
        return rv;
    rv = encap_with(pk_r, sk_e, shared, enc);
    if (rv == 0)
        rv = tp_hpke_key_schedule(ctx, suite, TP_HPKE_ROLE_SENDER, shared, info, info_len,
                                  NULL);
    sodium_memzero(shared, sizeof(shared));
    return rv;
}

int tp_hpke_setup_base_s(struct tp_hpke_ctx *ctx, struct tp_hpke_suite suite,
                         const uint8_t *pk_r, const uint8_t *info, size_t info_len,
                         uint8_t *enc)
{
    uint8_t sk_e[TP_HPKE_X25519_SK_LEN];
    int rv;

    tp_hpke_ctx_reset(ctx);
    rv = tp_hpke_suite_check(suite);
    if (rv != 0)
        return rv;
    rv = tp_rand_bytes(sk_e, sizeof(sk_e));
    if (rv == 0)
        rv = tp_hpke_setup_base_s_derand(ctx, suite, pk_r, info, info_len, sk_e, enc);
    sodium_memzero(sk_e, sizeof(sk_e));
    return rv;
}

int tp_hpke_setup_base_r(struct tp_hpke_ctx *ctx, struct tp_hpke_suite suite,
                         const uint8_t *enc, const uint8_t *sk_r, const uint8_t *pk_r,
                         const uint8_t *info, size_t info_len)
{
    uint8_t shared[TP_HPKE_SECRET_LEN];
    int rv;

    tp_hpke_ctx_reset(ctx);
    rv = tp_hpke_suite_check(suite);
    if (rv != 0)
        return rv;
    rv = decap_with(enc, sk_r, pk_r, shared);
    if (rv == 0)
        rv = tp_hpke_key_schedule(ctx, suite, TP_HPKE_ROLE_RECEIVER, shared, info,
                                  info_len, NULL);
    sodium_memzero(shared, sizeof(shared));
    return rv;
}

/* ---- AEAD ------------------------------------------------------------------------- */

/* EVP takes int lengths: feed larger inputs in pieces. */
#define EVP_CHUNK ((size_t)1 << 30)

static int cipher_update(EVP_CIPHER_CTX *c, uint8_t *out, const uint8_t *in, size_t len,
                         size_t *written)
{
    size_t done = 0;
    while (done < len) {
        size_t n = len - done < EVP_CHUNK ? len - done : EVP_CHUNK;
        int outl = 0;
        if (EVP_CipherUpdate(c, out ? out + done : NULL, &outl, in + done, (int)n) != 1)
            return TP_ERR_CRYPTO;
        if (out && (size_t)outl != n)
            return TP_ERR_CRYPTO;
        done += n;
    }
    if (written)
        *written = done;
    return 0;
}

static void compute_nonce(const struct tp_hpke_ctx *ctx, uint8_t *nonce)
{
    memcpy(nonce, ctx->base_nonce, TP_HPKE_NONCE_LEN);
    for (size_t i = 0; i < 8; i++)
        nonce[TP_HPKE_NONCE_LEN - 1 - i] ^= (uint8_t)(ctx->seq >> (8 * i));
}

/* One AEAD operation at the current sequence number. |tag| is read when opening and
   written when sealing. */
static int aead_run(struct tp_hpke_ctx *ctx, int enc, const uint8_t *aad, size_t aad_len,
                    const uint8_t *in, size_t in_len, uint8_t *out, uint8_t *tag)
{
    uint8_t nonce[TP_HPKE_NONCE_LEN];
    int outl = 0;
    int rv = TP_ERR_CRYPTO;

    compute_nonce(ctx, nonce);
    if (EVP_CipherInit_ex2(ctx->cipher, NULL, NULL, nonce, enc, NULL) != 1)
        goto out;
    if (!enc && EVP_CIPHER_CTX_ctrl(ctx->cipher, EVP_CTRL_AEAD_SET_TAG, TP_HPKE_TAG_LEN,
                                    tag) != 1)
        goto out;
    if (aad_len && cipher_update(ctx->cipher, NULL, aad, aad_len, NULL) != 0)
        goto out;
    if (in_len && cipher_update(ctx->cipher, out, in, in_len, NULL) != 0)
        goto out;
    if (EVP_CipherFinal_ex(ctx->cipher, out + in_len, &outl) != 1 || outl != 0)
        goto out;
    if (enc && EVP_CIPHER_CTX_ctrl(ctx->cipher, EVP_CTRL_AEAD_GET_TAG, TP_HPKE_TAG_LEN,
                                   tag) != 1)
        goto out;
    rv = 0;
out:
    sodium_memzero(nonce, sizeof(nonce));
    return rv;
}

int tp_hpke_seal(struct tp_hpke_ctx *ctx, const uint8_t *aad, size_t aad_len,
                 const uint8_t *pt, size_t pt_len, uint8_t *out, size_t out_cap,
                 size_t *out_len)
{
    int rv;

    if (ctx->role != TP_HPKE_ROLE_SENDER && ctx->role != TP_HPKE_ROLE_AEAD)
        return TP_ERR_STATE;
    if (ctx->seq == UINT64_MAX)
        return TP_ERR_STATE;
    if (pt_len > SIZE_MAX - TP_HPKE_TAG_LEN || out_cap < pt_len + TP_HPKE_TAG_LEN)
        return TP_ERR_INVALID;
    rv = aead_run(ctx, 1, aad, aad_len, pt, pt_len, out, out + pt_len);
    if (rv != 0) {
        sodium_memzero(out, pt_len + TP_HPKE_TAG_LEN);
        return rv;
    }
    ctx->seq++;
    *out_len = pt_len + TP_HPKE_TAG_LEN;
    return 0;
}

int tp_hpke_open(struct tp_hpke_ctx *ctx, const uint8_t *aad, size_t aad_len,
                 const uint8_t *ct, size_t ct_len, uint8_t *out, size_t out_cap,
                 size_t *out_len)
{
    uint8_t tag[TP_HPKE_TAG_LEN];
    size_t pt_len;
    int rv;

    if (ctx->role != TP_HPKE_ROLE_RECEIVER && ctx->role != TP_HPKE_ROLE_AEAD)
        return TP_ERR_STATE;
    if (ctx->seq == UINT64_MAX)
        return TP_ERR_STATE;
    if (ct_len < TP_HPKE_TAG_LEN)
        return TP_ERR_INVALID;
    pt_len = ct_len - TP_HPKE_TAG_LEN;
    if (out_cap < pt_len)
        return TP_ERR_INVALID;
    /* EVP wants a writable tag buffer, and |ct| is const. */
    memcpy(tag, ct + pt_len, TP_HPKE_TAG_LEN);
    rv = aead_run(ctx, 0, aad, aad_len, ct, pt_len, out, tag);
    if (rv != 0) {
        /* Unauthenticated plaintext never leaves this function. */
        sodium_memzero(out, pt_len);
        return TP_ERR_CRYPTO;
    }
    ctx->seq++;
    *out_len = pt_len;
    return 0;
}

int tp_hpke_export(struct tp_hpke_ctx *ctx, const uint8_t *exp_ctx, size_t exp_ctx_len,
                   uint8_t *out, size_t out_len)
{
    uint8_t suite_id[10];
    struct tp_hpke_hmac_key k;

    if (!ctx->has_exporter)
        return TP_ERR_STATE;
    if (out_len > TP_HPKE_EXPORT_MAX)
        return TP_ERR_INVALID;
    hpke_suite_id(ctx->suite, suite_id);
    hmac_key_init(&k, ctx->exporter_secret, sizeof(ctx->exporter_secret));
    int rv = labeled_expand(suite_id, sizeof(suite_id), &k, PART_STR("sec"), exp_ctx,
                            exp_ctx_len, out, out_len);
    hmac_key_wipe(&k);
    return rv;
}

int tp_hpke_ctx_extract(struct tp_hpke_ctx *ctx, const uint8_t *salt, size_t salt_len,
                        const uint8_t *ikm, size_t ikm_len, uint8_t *prk)
{
    const struct part parts[] = {{ikm, ikm_len}};
    if (ctx->role == TP_HPKE_ROLE_EMPTY)
        return TP_ERR_STATE;
    extract_parts(salt, salt_len, parts, 1, prk);
    return 0;
}

int tp_hpke_ctx_expand(struct tp_hpke_ctx *ctx, const uint8_t *prk, size_t prk_len,
                       const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len)
{
    const struct part parts[] = {{info, info_len}};
    struct tp_hpke_hmac_key k;
    if (ctx->role == TP_HPKE_ROLE_EMPTY)
        return TP_ERR_STATE;
    if (out_len > TP_HPKE_EXPORT_MAX)
        return TP_ERR_INVALID;
    hmac_key_init(&k, prk, prk_len);
    int rv = expand_parts(&k, parts, 1, out, out_len);
    hmac_key_wipe(&k);
    return rv;
}

int tp_hpke_ctx_set_aead_key(struct tp_hpke_ctx *ctx, const uint8_t *key, size_t key_len,
                             const uint8_t *nonce, size_t nonce_len)
{
    int rv;

    if (ctx->role == TP_HPKE_ROLE_EMPTY)
        return TP_ERR_STATE;
    if (key_len != ctx->nk || nonce_len != TP_HPKE_NONCE_LEN)
        return TP_ERR_INVALID;
    sodium_memzero(ctx->exporter_secret, sizeof(ctx->exporter_secret));
    ctx->has_exporter = false;
    memcpy(ctx->base_nonce, nonce, nonce_len);
    ctx->seq = 0;
    rv = cipher_key(ctx, key);
    if (rv != 0) {
        tp_hpke_ctx_reset(ctx);
        return rv;
    }
    ctx->role = TP_HPKE_ROLE_AEAD;
    return 0;
}
