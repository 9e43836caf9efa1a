/* Internals of tp_hpke.c for its unit tests and fuzzers (STYLE.md 3): the context
   layout and the deterministic and traced entry points the RFC 9180 vectors need.
   Nothing outside transport/tp_hpke.c and tests includes this file. */
#ifndef ZASLON_TRANSPORT_TP_HPKE_INTERNAL_H
#define ZASLON_TRANSPORT_TP_HPKE_INTERNAL_H

#include "tp_hpke.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

enum tp_hpke_role {
    TP_HPKE_ROLE_EMPTY = 0,
    TP_HPKE_ROLE_SENDER,   /* seal + export */
    TP_HPKE_ROLE_RECEIVER, /* open + export */
    TP_HPKE_ROLE_AEAD,     /* after tp_hpke_ctx_set_aead_key: seal + open */
};

/* HMAC-SHA256 keyed once: the SHA-256 states after key ^ ipad and key ^ opad. As
   secret as the key itself; wiped after use. */
struct tp_hpke_hmac_key {
    SHA256_CTX inner;
    SHA256_CTX outer;
};

struct tp_hpke_ctx {
    EVP_CIPHER_CTX *cipher; /* keyed once per setup; each seal/open only sets the IV */
    struct tp_hpke_suite suite;
    enum tp_hpke_role role;
    size_t nk;
    uint64_t seq;
    /* The AEAD key itself lives only inside |cipher|: our copy is wiped at setup. */
    uint8_t base_nonce[TP_HPKE_NONCE_LEN];
    uint8_t exporter_secret[TP_HPKE_SECRET_LEN];
    bool has_exporter;
};

/* key_schedule_context = mode || psk_id_hash || info_hash (RFC 9180 section 5.1). */
#define TP_HPKE_KS_CONTEXT_LEN (1 + 2 * TP_HPKE_SECRET_LEN)

/* The intermediate key-schedule values the RFC 9180 vectors print. */
struct tp_hpke_ks_trace {
    uint8_t key_schedule_context[TP_HPKE_KS_CONTEXT_LEN];
    uint8_t secret[TP_HPKE_SECRET_LEN];
    uint8_t key[TP_HPKE_MAX_KEY_LEN]; /* Nk bytes used */
};

/* KeySchedule(mode_base, shared_secret, info, "", "") keying |ctx| for |role| (sender
   or receiver). If |trace| is not NULL it receives key_schedule_context, secret and
   the AEAD key (the caller wipes it). */
int tp_hpke_key_schedule(struct tp_hpke_ctx *ctx, struct tp_hpke_suite suite,
                         enum tp_hpke_role role, const uint8_t *shared_secret,
                         const uint8_t *info, size_t info_len,
                         struct tp_hpke_ks_trace *trace);

/* SetupBaseS with the ephemeral private key |sk_e| given (vectors, tests). */
int tp_hpke_setup_base_s_derand(struct tp_hpke_ctx *ctx, struct tp_hpke_suite suite,
                                const uint8_t *pk_r, const uint8_t *info, size_t info_len,
                                const uint8_t *sk_e, uint8_t *enc);

/* Sets the sequence number so a test can seal/open at sequence 255 or 256 directly. */
void tp_hpke_ctx_set_seq(struct tp_hpke_ctx *ctx, uint64_t seq);

#endif
