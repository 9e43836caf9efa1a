/* Oblivious HTTP (RFC 9458) message encapsulation, I/O-free: key configurations and
   the application/ohttp-keys list, the gateway side (request decapsulation, response
   encapsulation) and the client side (request encapsulation, response
   decapsulation). HPKE comes from tp_hpke.h; the sealed payloads are Binary HTTP
   messages (tp_bhttp.h), but this module treats them as opaque bytes.

   Private keys stay with the caller: the gateway's key store keeps them in
   sodium_malloc memory and lends them through a lookup callback for the duration of
   one tp_ohttp_gateway_decap call. Nothing here copies a private key, except into
   libsodium's own stack during the X25519 operation.

   Errors are negative TP_ERR_* (tp_err.h). For tp_ohttp_gateway_decap:
     TP_ERR_INVALID      too short to hold a header, an enc and a tag; or |out_cap| too
                         small (checked first, before any work)
     TP_ERR_UNSUPPORTED  KEM, KDF or AEAD not supported, or the lookup callback knows
                         no key for the key id / refuses the suite
     TP_ERR_PROTO        |enc| is a low-order X25519 point (or gives an all-zero DH
                         result): a deliberately bad request, worth its own counter
     TP_ERR_CRYPTO       the AEAD tag does not verify
   Callers must answer every one of these the same way (the cover site's answer, same
   bytes, same timing): to help with the timing, an unknown key id, an unsupported
   suite and a low-order enc still cost one X25519 operation, the key schedule and one
   AEAD pass (against a fixed dummy key) before the error is returned. */
#ifndef ZASLON_TRANSPORT_TP_OHTTP_H
#define ZASLON_TRANSPORT_TP_OHTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tp_hpke.h"

/* Encapsulated request header: key_id (1), kem_id (2), kdf_id (2), aead_id (2). */
#define TP_OHTTP_HDR_LEN 7
/* Bytes an encapsulated request adds to its Binary HTTP request. */
#define TP_OHTTP_REQ_OVERHEAD                                                            \
    (TP_OHTTP_HDR_LEN + TP_HPKE_X25519_ENC_LEN + TP_HPKE_TAG_LEN)
/* Most bytes an encapsulated response adds (32-byte nonce for 32-byte-key AEADs). */
#define TP_OHTTP_RES_OVERHEAD_MAX (TP_HPKE_MAX_KEY_LEN + TP_HPKE_TAG_LEN)
/* Most (kdf, aead) pairs one key configuration may list here. */
#define TP_OHTTP_MAX_SUITES 32
/* Media types. */
#define TP_OHTTP_REQ_MEDIA_TYPE "message/ohttp-req"
#define TP_OHTTP_RES_MEDIA_TYPE "message/ohttp-res"
#define TP_OHTTP_KEYS_MEDIA_TYPE "application/ohttp-keys"

/* One symmetric algorithm pair of a key configuration. */
struct tp_ohttp_suite {
    uint16_t kdf_id;
    uint16_t aead_id;
};

/* A key configuration (RFC 9458 section 3.1). Only DHKEM(X25519, HKDF-SHA256) keys are
   represented; the suites may include ids this build does not support (a client
   skips them). */
struct tp_ohttp_key_config {
    uint8_t key_id;
    uint16_t kem_id;
    uint8_t public_key[TP_HPKE_X25519_PK_LEN];
    size_t n_suites; /* 1..TP_OHTTP_MAX_SUITES */
    struct tp_ohttp_suite suites[TP_OHTTP_MAX_SUITES];
};

/* The header of an encapsulated request, as handed to the key lookup. */
struct tp_ohttp_header {
    uint8_t key_id;
    uint16_t kem_id;
    uint16_t kdf_id;
    uint16_t aead_id;
};

/* Parses one key configuration that occupies exactly |len| bytes of |in| into *cfg.
   TP_ERR_UNSUPPORTED for a KEM other than X25519 (its key length is unknown);
   TP_ERR_INVALID for a wrong length, a symmetric-algorithms length that is not a
   multiple of 4 in 4..65532, or a low-order public key; TP_ERR_TOO_LARGE for more than
   TP_OHTTP_MAX_SUITES suites. *cfg is untouched on failure. */
int tp_ohttp_key_config_parse(struct tp_ohttp_key_config *cfg, const uint8_t *in,
                              size_t len);

/* Encodes |cfg| into |out| (|cap| bytes), setting *out_len. With |out| NULL only
   *out_len is set. TP_ERR_INVALID for an unsupported KEM, no suites or too many, or too
   small a buffer. */
int tp_ohttp_key_config_encode(const struct tp_ohttp_key_config *cfg, uint8_t *out,
                               size_t cap, size_t *out_len);

/* Parses an application/ohttp-keys body (RFC 9458 section 3.2: one or more key
   configurations, each prefixed by a 2-byte length) into |cfgs| (room for |max|),
   setting *n. Configurations with an unsupported KEM are skipped. Anything malformed
   anywhere refuses the whole list (TP_ERR_INVALID, as for an empty body); more
   supported configurations than |max| give TP_ERR_TOO_LARGE; a list with none we can
   use gives TP_ERR_UNSUPPORTED. */
int tp_ohttp_keys_parse(const uint8_t *in, size_t len, struct tp_ohttp_key_config *cfgs,
                        size_t max, size_t *n);

/* Encodes |n| (at least one) configurations as an application/ohttp-keys body. With
   |out| NULL only *out_len is set. */
int tp_ohttp_keys_encode(const struct tp_ohttp_key_config *cfgs, size_t n, uint8_t *out,
                         size_t cap, size_t *out_len);

/* ---- gateway ---------------------------------------------------------------------- */

/* Finds the key for |hdr->key_id|. On success sets *sk and *pk to that key's 32-byte
   X25519 private and public keys (borrowed from the key store; they need to stay valid
   only until the callback's caller returns) and returns 0. Returns nonzero if there is
   no such key, or if the key's configuration does not list (kdf_id, aead_id) and the
   store wants that enforced. |arg| is the caller's. */
typedef int (*tp_ohttp_key_lookup_cb)(void *arg, const struct tp_ohttp_header *hdr,
                                      const uint8_t **sk, const uint8_t **pk);

/* One request/response exchange on the gateway side (opaque). Reusable after
   tp_ohttp_gateway_reset; used by one thread at a time. */
struct tp_ohttp_gateway;

/* Allocates a gateway context into *out (untouched on failure). Free it with
   tp_ohttp_gateway_free. */
int tp_ohttp_gateway_new(struct tp_ohttp_gateway **out);

/* Wipes and frees |gw|. Accepts NULL. */
void tp_ohttp_gateway_free(struct tp_ohttp_gateway *gw);

/* Wipes the keys of the last exchange so |gw| can take the next request. */
void tp_ohttp_gateway_reset(struct tp_ohttp_gateway *gw);

/* Decapsulates the message/ohttp-req |req| (|req_len| bytes): parses the header, calls
   |lookup| once for the private key, opens the HPKE payload with info
   "message/bhttp request" 0x00 || header, and writes the Binary HTTP request to |out|
   (req_len - TP_OHTTP_REQ_OVERHEAD bytes; |out_cap| must hold that), setting
   *out_len. |out| must not overlap |req|. On success |gw| is ready for
   tp_ohttp_gateway_encap_response. Errors are listed at the top of this file; on any
   of them |out| holds nothing readable and |gw| is reset. */
int tp_ohttp_gateway_decap(struct tp_ohttp_gateway *gw, const uint8_t *req,
                           size_t req_len, tp_ohttp_key_lookup_cb lookup, void *arg,
                           uint8_t *out, size_t out_cap, size_t *out_len);

/* After a successful decap: returns the request's enc (the client's ephemeral public
   key, which the replay cache remembers) and sets *len to its length (32). Returns
   NULL (and *len 0) before a successful decap. The bytes live as long as |gw| is not
   reset or freed. */
const uint8_t *tp_ohttp_gateway_enc(const struct tp_ohttp_gateway *gw, size_t *len);

/* After a successful decap: the request's header (key id and suite). NULL before. */
const struct tp_ohttp_header *tp_ohttp_gateway_header(const struct tp_ohttp_gateway *gw);

/* Size of the message/ohttp-res for a |bhttp_len|-byte response after a successful
   decap: response nonce + bhttp_len + tag. Returns 0 before a decap or on overflow. */
size_t tp_ohttp_gateway_response_len(const struct tp_ohttp_gateway *gw, size_t bhttp_len);

/* Encapsulates the Binary HTTP response |res| (RFC 9458 section 4.4) into |out|,
   setting *out_len: a fresh random response nonce (through tp_rand_bytes) followed by
   the AEAD ciphertext under keys derived from the request's exporter. Once per
   exchange: a second call gives TP_ERR_STATE. TP_ERR_INVALID if |out_cap| is too
   small. |out| must not overlap |res|. */
int tp_ohttp_gateway_encap_response(struct tp_ohttp_gateway *gw, const uint8_t *res,
                                    size_t res_len, uint8_t *out, size_t out_cap,
                                    size_t *out_len);

/* ---- client ----------------------------------------------------------------------- */

/* One request/response exchange on the client side (opaque). */
struct tp_ohttp_client;

/* Allocates a client context into *out (untouched on failure). */
int tp_ohttp_client_new(struct tp_ohttp_client **out);

/* Wipes and frees |c|. Accepts NULL. */
void tp_ohttp_client_free(struct tp_ohttp_client *c);

/* Encapsulates the Binary HTTP request |req| to the gateway key |cfg| with |suite|,
   which must be listed in |cfg| and supported (else TP_ERR_UNSUPPORTED). Writes the
   message/ohttp-req (req_len + TP_OHTTP_REQ_OVERHEAD bytes) to |out|, setting *out_len,
   and keeps what is needed to open the response. The ephemeral key comes from
   tp_rand_bytes. Starts a new exchange each time it is called. */
int tp_ohttp_client_encap(struct tp_ohttp_client *c,
                          const struct tp_ohttp_key_config *cfg,
                          struct tp_ohttp_suite suite, const uint8_t *req, size_t req_len,
                          uint8_t *out, size_t out_cap, size_t *out_len);

/* Decapsulates the message/ohttp-res |res| of the last encapsulated request into the
   Binary HTTP response in |out|, setting *out_len. TP_ERR_INVALID if |res| is shorter
   than nonce + tag or |out_cap| too small; TP_ERR_CRYPTO if it does not authenticate
   (the exchange is then over); TP_ERR_STATE without a request, or after a response was
   already opened. */
int tp_ohttp_client_decap_response(struct tp_ohttp_client *c, const uint8_t *res,
                                   size_t res_len, uint8_t *out, size_t out_cap,
                                   size_t *out_len);

#endif
