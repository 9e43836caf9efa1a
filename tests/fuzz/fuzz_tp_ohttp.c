/* Fuzzes OHTTP request decapsulation (transport/tp_ohttp.c) on the gateway side, with a
   fixed test key: the private key of RFC 9458 Appendix A, key id 1, so the Appendix's
   request is a seed that opens.

   The first input byte picks the mode. Even: the rest is an encapsulated request, fed
   to the gateway as it came off the wire. Odd: the rest is a PLAINTEXT that the harness
   first seals to the test key (bits 1-2 pick the AEAD), so the fuzzer gets past the
   AEAD and into the Binary HTTP decoder behind it; the round trip then continues
   through response encapsulation and the client's response decapsulation, which must
   give back exactly what was sealed. Randomness is pinned, so runs are reproducible. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tp_bhttp.h"
#include "tp_hpke.h"
#include "tp_ohttp.h"
#include "tp_rand.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* RFC 9458 Appendix A: skR and pkR. */
static const uint8_t test_sk[32] = {0x3c, 0x16, 0x89, 0x75, 0x67, 0x4b, 0x2f, 0xa8,
                                    0xe4, 0x65, 0x97, 0x0b, 0x79, 0xc8, 0xdc, 0xf0,
                                    0x9f, 0x1c, 0x74, 0x16, 0x26, 0x48, 0x0b, 0xd4,
                                    0xc6, 0x16, 0x2f, 0xc5, 0xb6, 0xa9, 0x8e, 0x1a};
static const uint8_t test_pk[32] = {0x31, 0xe1, 0xf0, 0x5a, 0x74, 0x01, 0x02, 0x11,
                                    0x52, 0x20, 0xe9, 0xaf, 0x91, 0x8f, 0x73, 0x86,
                                    0x74, 0xae, 0xc9, 0x5f, 0x54, 0xdb, 0x6e, 0x04,
                                    0xeb, 0x70, 0x5a, 0xae, 0x8e, 0x79, 0x81, 0x55};

static int lookup(void *arg, const struct tp_ohttp_header *hdr, const uint8_t **sk,
                  const uint8_t **pk)
{
    (void)arg;
    if (hdr->key_id != 1)
        return -1;
    *sk = test_sk;
    *pk = test_pk;
    return 0;
}

static void pin(uint8_t fill)
{
#ifdef ZASLON_TESTING
    uint8_t b[32];
    memset(b, fill, sizeof(b));
    tp_rand_pin(b, sizeof(b));
#else
    (void)fill;
#endif
}

/* Returns 1 if the gateway opened |req|. With |cl| (a request the harness sealed) the
   response goes back to the client too. */
static int gateway(struct tp_ohttp_gateway *gw, const uint8_t *req, size_t len,
                   struct tp_ohttp_client *cl)
{
    const struct tp_bhttp_limits lim = {16, 512, 4096, 3};
    uint8_t *pt = malloc(len ? len : 1);
    size_t pt_len = 0;
    int opened = 0;
    if (!pt)
        abort();
    if (tp_ohttp_gateway_decap(gw, req, len, lookup, NULL, pt, len, &pt_len) == 0) {
        opened = 1;
        struct tp_bhttp_request r;
        size_t enc_len = 0;
        if (!tp_ohttp_gateway_enc(gw, &enc_len) || enc_len != 32)
            abort();
        if (tp_bhttp_request_decode(&r, pt, pt_len, &lim) == 0)
            tp_bhttp_request_clear(&r);
        /* Echo the plaintext back as the "response" and check the client opens it. */
        size_t rlen = tp_ohttp_gateway_response_len(gw, pt_len), n = 0;
        uint8_t *res = malloc(rlen ? rlen : 1);
        if (res) {
            pin(0x42);
            if (tp_ohttp_gateway_encap_response(gw, pt, pt_len, res, rlen, &n) != 0 ||
                n != rlen)
                abort();
            if (cl) {
                uint8_t *back = malloc(n);
                size_t bl = 0;
                if (back) {
                    if (tp_ohttp_client_decap_response(cl, res, n, back, n, &bl) != 0 ||
                        bl != pt_len || (bl && memcmp(back, pt, bl) != 0))
                        abort();
                    free(back);
                }
            }
            free(res);
        }
    }
    free(pt);
    return opened;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct tp_ohttp_gateway *gw;
    static struct tp_ohttp_client *cl;
    if (!gw && tp_ohttp_gateway_new(&gw) != 0)
        abort();
    if (!cl && tp_ohttp_client_new(&cl) != 0)
        abort();
    if (size == 0)
        return 0;
    if (!(data[0] & 1)) {
        (void)gateway(gw, data + 1, size - 1, NULL);
        return 0;
    }
    static const uint16_t aeads[4] = {TP_HPKE_AEAD_AES128GCM, TP_HPKE_AEAD_AES256GCM,
                                      TP_HPKE_AEAD_CHACHA20POLY1305,
                                      TP_HPKE_AEAD_AES128GCM};
    struct tp_ohttp_key_config cfg = {
        .key_id = 1, .kem_id = TP_HPKE_KEM_X25519_SHA256, .n_suites = 1};
    struct tp_ohttp_suite suite = {TP_HPKE_KDF_HKDF_SHA256, aeads[(data[0] >> 1) & 3]};
    memcpy(cfg.public_key, test_pk, 32);
    cfg.suites[0] = suite;
    size_t cap = size - 1 + TP_OHTTP_REQ_OVERHEAD, n = 0;
    uint8_t *req = malloc(cap);
    if (!req)
        return 0;
    pin(0x17);
    if (tp_ohttp_client_encap(cl, &cfg, suite, data + 1, size - 1, req, cap, &n) != 0 ||
        n != cap)
        abort();
    /* What the client sealed to the test key, the gateway must open. */
    if (!gateway(gw, req, n, cl))
        abort();
    free(req);
    return 0;
}
