/* HPKE (RFC 9180), base mode only, for one KEM and one KDF:
     KEM  DHKEM(X25519, HKDF-SHA256)  0x0020
     KDF  HKDF-SHA256                 0x0001
     AEAD AES-128-GCM 0x0001, AES-256-GCM 0x0002, ChaCha20-Poly1305 0x0003
   OpenSSL 3.0 has no HPKE API, so this is built from its primitives: HMAC-SHA256 for
   HKDF over OpenSSL's SHA-256 with the padded key states kept on the stack, EVP_CIPHER
   for the AEADs. X25519 is libsodium's, except for receivers once
   tp_hpke_x25519_openssl has switched them to OpenSSL's (faster here; numbers in
   tp_hpke.c). I/O-free and shared by the gateway and the client library.

   Keys are raw 32-byte X25519 strings. Private keys are always borrowed: nothing here
   keeps or copies them beyond stack temporaries that are wiped before returning, except
   the OpenSSL key objects of tp_hpke_x25519_openssl, in OpenSSL's locked secure heap.

   A context (struct tp_hpke_ctx) is a heap object that owns its EVP_CIPHER_CTX for its
   whole life; SetupBaseS / SetupBaseR (re)key it, so one context can be reused for many
   exchanges and seal/open never allocate. A context is used by one
   thread at a time. Every function returns 0 or a negative TP_ERR_* (tp_err.h):
     TP_ERR_UNSUPPORTED  unknown kem/kdf/aead id
     TP_ERR_INVALID      a length is wrong, an output buffer too small
     TP_ERR_PROTO        a peer public key (enc) is a low-order point, or the X25519
                         result is all zero (RFC 9180 section 7.1.4)
     TP_ERR_CRYPTO       authentication failed, or a primitive refused
     TP_ERR_STATE        wrong call for the context's state (seal on a receiver,
                         sequence number exhausted, export on an unkeyed context)
     TP_ERR_NOMEM        allocation failed */
#ifndef ZASLON_TRANSPORT_TP_HPKE_H
#define ZASLON_TRANSPORT_TP_HPKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum tp_hpke_kem_id {
    TP_HPKE_KEM_X25519_SHA256 = 0x0020,
};

enum tp_hpke_kdf_id {
    TP_HPKE_KDF_HKDF_SHA256 = 0x0001,
};

enum tp_hpke_aead_id {
    TP_HPKE_AEAD_AES128GCM = 0x0001,
    TP_HPKE_AEAD_AES256GCM = 0x0002,
    TP_HPKE_AEAD_CHACHA20POLY1305 = 0x0003,
};

#define TP_HPKE_X25519_SK_LEN 32  /* Nsk */
#define TP_HPKE_X25519_PK_LEN 32  /* Npk */
#define TP_HPKE_X25519_ENC_LEN 32 /* Nenc */
#define TP_HPKE_SECRET_LEN 32     /* Nsecret of the KEM, Nh of the KDF */
#define TP_HPKE_TAG_LEN 16        /* Nt of every supported AEAD */
#define TP_HPKE_NONCE_LEN 12      /* Nn of every supported AEAD */
#define TP_HPKE_MAX_KEY_LEN 32    /* largest Nk */
#define TP_HPKE_EXPORT_MAX (255 * TP_HPKE_SECRET_LEN) /* largest L for Export */

/* One cipher suite. */
struct tp_hpke_suite {
    uint16_t kem_id;
    uint16_t kdf_id;
    uint16_t aead_id;
};

/* An HPKE context (opaque). */
struct tp_hpke_ctx;

/* Returns 0 if every id of |suite| is supported, TP_ERR_UNSUPPORTED otherwise. */
int tp_hpke_suite_check(struct tp_hpke_suite suite);

/* Returns Nk (16 or 32) for a supported AEAD id, 0 for anything else. */
size_t tp_hpke_aead_key_len(uint16_t aead_id);

/* Returns Nn (12) for a supported AEAD id, 0 for anything else. */
size_t tp_hpke_aead_nonce_len(uint16_t aead_id);

/* DeriveKeyPair (RFC 9180 section 7.1.3) for DHKEM(X25519, HKDF-SHA256): writes the
   private key to |sk| and the public key to |pk|, both TP_HPKE_X25519_*_LEN bytes.
   |ikm| must hold at least TP_HPKE_X25519_SK_LEN bytes (else TP_ERR_INVALID). The
   caller owns |sk| and should keep it in sodium_malloc memory. */
int tp_hpke_derive_keypair(const uint8_t *ikm, size_t ikm_len, uint8_t *sk, uint8_t *pk);

/* GenerateKeyPair: |sk| gets 32 bytes from tp_rand_bytes (so tests can pin it), |pk| its
   public key. */
int tp_hpke_generate_keypair(uint8_t *sk, uint8_t *pk);

/* Returns true if the 32-byte X25519 public key |pk| is one of the published points of
   small order (0, 1, two points of order 8, p-1, p, p+1), the unused top bit ignored as
   X25519 ignores it. Such keys are refused everywhere (TP_ERR_PROTO). */
bool tp_hpke_x25519_low_order(const uint8_t *pk);

/* Computes the X25519 public key of the 32-byte private key |sk| into |pk|. */
int tp_hpke_public_key(const uint8_t *sk, uint8_t *pk);

/* Encap(pkR) of DHKEM(X25519, HKDF-SHA256): generates an ephemeral key pair (through
   tp_rand_bytes), writes enc (32 bytes) and the KEM shared secret (32 bytes). The caller
   wipes |shared_secret|. TP_ERR_PROTO if |pkR| is a low-order point. */
int tp_hpke_encap(const uint8_t *pk_r, uint8_t *shared_secret, uint8_t *enc);

/* Deterministic Encap: like tp_hpke_encap but with the ephemeral private key |sk_e|
   given (borrowed) instead of generated. For tests and published vectors; a production
   sender uses tp_hpke_encap. */
int tp_hpke_encap_derand(const uint8_t *pk_r, const uint8_t *sk_e, uint8_t *shared_secret,
                         uint8_t *enc);

/* Decap(enc, skR): recomputes the KEM shared secret (32 bytes) from |enc| and the
   recipient's private key |sk_r| (borrowed). |pk_r| is the recipient's public key if
   the caller has it (saves a scalar multiplication), or NULL to compute it.
   TP_ERR_PROTO if |enc| is a low-order point or the DH result is all zero. */
int tp_hpke_decap(const uint8_t *enc, const uint8_t *sk_r, const uint8_t *pk_r,
                  uint8_t *shared_secret);

/* Switches receivers to OpenSSL's X25519 (faster than libsodium's on this CPU), for
   tp_hpke_decap and tp_hpke_setup_base_r calls that pass |pk_r|: each thread then keeps
   up to eight private keys, keyed by their public keys, as EVP_PKEY objects in
   OpenSSL's secure heap, which this call creates, |arena| bytes (a power of two),
   locked in memory. The secure heap is process-wide: OpenSSL then puts every private
   key and secret bignum it creates there (TLS ephemeral keys too), so |arena| must
   leave room for those. Call it once at start-up, before other threads use OpenSSL;
   later calls return the first call's result. Returns 0 when on, TP_ERR_UNSUPPORTED
   when the arena could not be locked or this OpenSSL does not put private keys in it
   (libsodium then stays in use: nothing changes), TP_ERR_CRYPTO if the primitives
   could not be set up. */
int tp_hpke_x25519_openssl(size_t arena);

/* True once tp_hpke_x25519_openssl has succeeded. */
bool tp_hpke_x25519_openssl_on(void);

/* Makes every thread drop its cached OpenSSL copies of private keys (they are wiped as
   they are freed) before its next decapsulation; a thread that never decapsulates
   again keeps them until it exits. Call when keys are retired. Thread-safe. */
void tp_hpke_forget_keys(void);

/* Allocates an empty context into *out (untouched on failure). Returns 0 or
   TP_ERR_NOMEM / TP_ERR_CRYPTO. The caller owns it and frees it with tp_hpke_ctx_free. */
int tp_hpke_ctx_new(struct tp_hpke_ctx **out);

/* Wipes every secret of |ctx| and frees it. Accepts NULL. */
void tp_hpke_ctx_free(struct tp_hpke_ctx *ctx);

/* Wipes the keys of |ctx| and returns it to the empty state, keeping its EVP contexts
   for the next setup. Accepts NULL. */
void tp_hpke_ctx_reset(struct tp_hpke_ctx *ctx);

/* SetupBaseS(pkR, info): encapsulates to |pk_r| with a fresh ephemeral key, writes enc
   (32 bytes) and keys |ctx| as a sender context (seal and export allowed). |info| is
   borrowed; |info_len| may be 0. On failure |ctx| is left empty. */
int tp_hpke_setup_base_s(struct tp_hpke_ctx *ctx, struct tp_hpke_suite suite,
                         const uint8_t *pk_r, const uint8_t *info, size_t info_len,
                         uint8_t *enc);

/* SetupBaseR(enc, skR, info): keys |ctx| as a receiver context (open and export
   allowed). |sk_r| is borrowed and read only during the call; |pk_r| as for
   tp_hpke_decap (NULL to compute it). On failure |ctx| is left empty. */
int tp_hpke_setup_base_r(struct tp_hpke_ctx *ctx, struct tp_hpke_suite suite,
                         const uint8_t *enc, const uint8_t *sk_r, const uint8_t *pk_r,
                         const uint8_t *info, size_t info_len);

/* ContextS.Seal(aad, pt): encrypts |pt| with the nonce for the current sequence number
   and writes ciphertext || tag (pt_len + TP_HPKE_TAG_LEN bytes) to |out|, which may be
   |pt| itself (in place) but must not otherwise overlap it. Sets *out_len and advances
   the sequence number. TP_ERR_INVALID if |out_cap| is too small. */
int tp_hpke_seal(struct tp_hpke_ctx *ctx, const uint8_t *aad, size_t aad_len,
                 const uint8_t *pt, size_t pt_len, uint8_t *out, size_t out_cap,
                 size_t *out_len);

/* ContextR.Open(aad, ct): authenticates and decrypts |ct| (ciphertext || tag) into
   |out| (ct_len - TP_HPKE_TAG_LEN bytes; |out| may be |ct| itself). Sets *out_len and
   advances the sequence number on success. TP_ERR_CRYPTO if authentication fails; the
   output is then wiped and the sequence number unchanged. */
int tp_hpke_open(struct tp_hpke_ctx *ctx, const uint8_t *aad, size_t aad_len,
                 const uint8_t *ct, size_t ct_len, uint8_t *out, size_t out_cap,
                 size_t *out_len);

/* Context.Export(exporter_context, L): writes |out_len| (at most TP_HPKE_EXPORT_MAX)
   bytes derived from the exporter secret. Works on sender and receiver contexts. */
int tp_hpke_export(struct tp_hpke_ctx *ctx, const uint8_t *exp_ctx, size_t exp_ctx_len,
                   uint8_t *out, size_t out_len);

/* The KDF of the context's suite used bare, as RFC 9458 section 4.4 does for responses.
   Extract(salt, ikm) writes TP_HPKE_SECRET_LEN bytes to |prk|; an empty salt means
   Nh zero bytes. Expand(prk, info, L) writes |out_len| (at most TP_HPKE_EXPORT_MAX)
   bytes. Both use the context's MAC and leave its AEAD state alone; the context must
   have been set up (its suite picks the KDF). The caller wipes the outputs. */
int tp_hpke_ctx_extract(struct tp_hpke_ctx *ctx, const uint8_t *salt, size_t salt_len,
                        const uint8_t *ikm, size_t ikm_len, uint8_t *prk);
int tp_hpke_ctx_expand(struct tp_hpke_ctx *ctx, const uint8_t *prk, size_t prk_len,
                       const uint8_t *info, size_t info_len, uint8_t *out,
                       size_t out_len);

/* Re-keys |ctx| as a bare AEAD context of its suite's AEAD: |key| (Nk bytes) and
   |nonce| (Nn bytes) replace the HPKE key and base nonce, the sequence number restarts
   at 0, the exporter secret is wiped (Export then fails), and both tp_hpke_seal and
   tp_hpke_open are allowed. This is how an OHTTP response is sealed and opened with
   the request's context (and its EVP_CIPHER_CTX) without another allocation. |key| and
   |nonce| are copied; the caller wipes its copies. */
int tp_hpke_ctx_set_aead_key(struct tp_hpke_ctx *ctx, const uint8_t *key, size_t key_len,
                             const uint8_t *nonce, size_t nonce_len);

/* Returns the suite |ctx| was last set up with (all zero when empty). */
struct tp_hpke_suite tp_hpke_ctx_suite(const struct tp_hpke_ctx *ctx);

#endif
