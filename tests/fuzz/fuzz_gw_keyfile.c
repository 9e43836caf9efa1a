/* Fuzzes the key-file parser (gateway/gw_keystore.c, gw_keyfile_parse). What parses
   must be a usable key: the supported KEM, 1..3 distinct supported suites, a non-zero
   private key whose X25519 public key is the one reported and is not low-order, and a
   configuration that encodes and parses back. What is refused must leave the private
   key wiped, and its message must quote nothing that could be key material: no run of
   8 or more hex digits (every fixed message is free of one). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "gw_keystore.h"
#include "tp_hpke.h"
#include "tp_ohttp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tp_ohttp_key_config cfg, back;
    uint8_t sk[TP_HPKE_X25519_SK_LEN], pk[TP_HPKE_X25519_PK_LEN];
    uint8_t buf[64 + 4 * TP_OHTTP_MAX_SUITES];
    char err[256];
    size_t len = 0, run = 0;

    if (sodium_init() == -1)
        abort();
    memset(err, 0, sizeof(err));
    memset(sk, 0xee, sizeof(sk));
    if (gw_keyfile_parse((const char *)data, size, &cfg, sk, err, sizeof(err)) != 0) {
        if (!sodium_is_zero(sk, sizeof(sk)) || err[0] == '\0' ||
            memchr(err, '\0', sizeof(err)) == NULL)
            abort();
        for (size_t i = 0; err[i]; i++) {
            run = is_hex(err[i]) ? run + 1 : 0;
            if (run >= 8)
                abort();
        }
        return 0;
    }
    if (cfg.kem_id != TP_HPKE_KEM_X25519_SHA256 || cfg.n_suites < 1 || cfg.n_suites > 3)
        abort();
    for (size_t i = 0; i < cfg.n_suites; i++) {
        if (cfg.suites[i].kdf_id != 1 || cfg.suites[i].aead_id < 1 ||
            cfg.suites[i].aead_id > 3)
            abort();
        for (size_t j = 0; j < i; j++)
            if (cfg.suites[j].aead_id == cfg.suites[i].aead_id)
                abort();
    }
    if (sodium_is_zero(sk, sizeof(sk)) || tp_hpke_public_key(sk, pk) != 0 ||
        memcmp(pk, cfg.public_key, sizeof(pk)) != 0 || tp_hpke_x25519_low_order(pk))
        abort();
    if (tp_ohttp_key_config_encode(&cfg, buf, sizeof(buf), &len) != 0 ||
        tp_ohttp_key_config_parse(&back, buf, len) != 0 || back.key_id != cfg.key_id ||
        back.n_suites != cfg.n_suites || memcmp(back.public_key, pk, sizeof(pk)) != 0)
        abort();
    sodium_memzero(sk, sizeof(sk));
    return 0;
}
