/* Fuzzes key configuration parsing (transport/tp_ohttp.c): an application/ohttp-keys
   list, and the same bytes as one bare key configuration. What parses must encode and
   parse back to the same configurations. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tp_ohttp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int cfg_eq(const struct tp_ohttp_key_config *a,
                  const struct tp_ohttp_key_config *b)
{
    if (a->key_id != b->key_id || a->kem_id != b->kem_id || a->n_suites != b->n_suites ||
        memcmp(a->public_key, b->public_key, sizeof(a->public_key)) != 0)
        return 0;
    for (size_t i = 0; i < a->n_suites; i++)
        if (a->suites[i].kdf_id != b->suites[i].kdf_id ||
            a->suites[i].aead_id != b->suites[i].aead_id)
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct tp_ohttp_key_config cfgs[8], again[8];
    static uint8_t buf[8 * (2 + 37 + 4 * TP_OHTTP_MAX_SUITES)];
    size_t n = 0, m = 0, len = 0;

    if (tp_ohttp_keys_parse(data, size, cfgs, 8, &n) == 0) {
        if (n == 0 || n > 8)
            abort();
        if (tp_ohttp_keys_encode(cfgs, n, buf, sizeof(buf), &len) != 0)
            abort();
        if (tp_ohttp_keys_parse(buf, len, again, 8, &m) != 0 || m != n)
            abort();
        for (size_t i = 0; i < n; i++)
            if (!cfg_eq(&cfgs[i], &again[i]))
                abort();
    }
    if (tp_ohttp_key_config_parse(&cfgs[0], data, size) == 0) {
        if (tp_ohttp_key_config_encode(&cfgs[0], buf, sizeof(buf), &len) != 0 ||
            len != size || memcmp(buf, data, size) != 0)
            abort();
    }
    return 0;
}
