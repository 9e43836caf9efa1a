/* The C side of the independent-peer check (tests/peer/run_peer_check.sh): zaslon's
   sealing code (transport/tp_ohttp, tp_bhttp, tp_hpke) as a gateway and as a client,
   driven from the command line so that tests/peer/ohttp_peer.mjs (@hpke/core) can be
   put on the other end. Output is one JSON object per line; every byte string is hex.

     tp_ohttp_peer_check keygen <key_id>
         -> {"sk", "pk", "key_config"}   fresh X25519 key, suites (1,1) (1,2) (1,3)
     tp_ohttp_peer_check gateway <sk_hex> <key_config_hex> <request_hex> <status>
                                 [--body <hex>] [name:value ...]
         -> {"request": {"method", "scheme", "authority", "path", "headers", "body",
             "trailers", "aead"}, "enc", "response"}
     tp_ohttp_peer_check client <key_config_hex> <aead_id> <method> <scheme>
                                <authority> <path> [--body <hex>] [name:value ...]
         prints {"request"}, then reads the response hex as one line on stdin and
         prints {"status", "informational", "headers", "body", "trailers"}
     tp_ohttp_peer_check bench
         times X25519 (libsodium and OpenSSL) and one gateway exchange (decap of a
         sealed request + response encapsulation)

   Exit status 0 on success, 1 on failure (reason on stderr). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "tp_bhttp.h"
#include "tp_err.h"
#include "tp_hpke.h"
#include "tp_ohttp.h"

#define MAX_FIELDS 64

static int fail(const char *what, int rv)
{
    fprintf(stderr, "tp_ohttp_peer_check: %s: %s\n", what,
            rv ? tp_strerror(rv) : "error");
    return 1;
}

/* ---- hex and JSON ----------------------------------------------------------------- */

static int nib(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes |hex| into a malloc'd buffer (at least one byte allocated). */
static uint8_t *unhex(const char *hex, size_t *len)
{
    size_t n = strlen(hex);
    uint8_t *out;
    if (n % 2)
        return NULL;
    out = malloc(n / 2 + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = nib((unsigned char)hex[2 * i]), lo = nib((unsigned char)hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(out);
            return NULL;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    *len = n / 2;
    return out;
}

static void put_hex(const void *p, size_t n)
{
    const uint8_t *b = p;
    putchar('"');
    for (size_t i = 0; i < n; i++)
        printf("%02x", b[i]);
    putchar('"');
}

static void put_fields(const struct tp_header *f, size_t n)
{
    putchar('[');
    for (size_t i = 0; i < n; i++) {
        printf(i ? ",[" : "[");
        put_hex(f[i].name.base, f[i].name.len);
        putchar(',');
        put_hex(f[i].value.base, f[i].value.len);
        putchar(']');
    }
    putchar(']');
}

/* "--body <hex>" and "name:value" arguments. The strings stay borrowed from argv. */
struct fields_arg {
    struct tp_header h[MAX_FIELDS];
    size_t n;
    uint8_t *body;
    size_t body_len;
};

static int parse_fields(int argc, char **argv, struct fields_arg *f)
{
    memset(f, 0, sizeof(*f));
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--body") == 0) {
            if (i + 1 >= argc)
                return -1;
            free(f->body);
            f->body = unhex(argv[++i], &f->body_len);
            if (!f->body)
                return -1;
            continue;
        }
        const char *colon = strchr(argv[i], ':');
        if (!colon || colon == argv[i] || f->n == MAX_FIELDS)
            return -1;
        f->h[f->n].name = (struct tp_str){argv[i], (size_t)(colon - argv[i])};
        f->h[f->n].value = (struct tp_str){colon + 1, strlen(colon + 1)};
        f->n++;
    }
    return 0;
}

/* ---- keygen ----------------------------------------------------------------------- */

static int cmd_keygen(int argc, char **argv)
{
    struct tp_ohttp_key_config cfg;
    uint8_t *sk = sodium_malloc(TP_HPKE_X25519_SK_LEN);
    uint8_t buf[256];
    size_t n = 0;
    int rv;

    if (!sk)
        return fail("sodium_malloc", 0);
    memset(&cfg, 0, sizeof(cfg));
    cfg.key_id = (uint8_t)(argc > 0 ? strtoul(argv[0], NULL, 10) : 1);
    cfg.kem_id = TP_HPKE_KEM_X25519_SHA256;
    cfg.n_suites = 3;
    for (uint16_t a = 1; a <= 3; a++)
        cfg.suites[a - 1] = (struct tp_ohttp_suite){TP_HPKE_KDF_HKDF_SHA256, a};
    rv = tp_hpke_generate_keypair(sk, cfg.public_key);
    if (rv == 0)
        rv = tp_ohttp_key_config_encode(&cfg, buf, sizeof(buf), &n);
    if (rv != 0) {
        sodium_free(sk);
        return fail("keygen", rv);
    }
    printf("{\"sk\":");
    put_hex(sk, TP_HPKE_X25519_SK_LEN);
    printf(",\"pk\":");
    put_hex(cfg.public_key, TP_HPKE_X25519_PK_LEN);
    printf(",\"key_config\":");
    put_hex(buf, n);
    printf("}\n");
    sodium_free(sk);
    return 0;
}

/* ---- gateway ---------------------------------------------------------------------- */

/* The key store stand-in: one key, its private half in sodium_malloc memory. */
struct store {
    const struct tp_ohttp_key_config *cfg;
    const uint8_t *sk;
};

static int lookup(void *arg, const struct tp_ohttp_header *hdr, const uint8_t **sk,
                  const uint8_t **pk)
{
    const struct store *s = arg;
    bool listed = false;
    if (hdr->key_id != s->cfg->key_id)
        return -1;
    for (size_t i = 0; i < s->cfg->n_suites; i++)
        listed |= s->cfg->suites[i].kdf_id == hdr->kdf_id &&
                  s->cfg->suites[i].aead_id == hdr->aead_id;
    if (!listed)
        return -1;
    *sk = s->sk;
    *pk = s->cfg->public_key;
    return 0;
}

static int cmd_gateway(int argc, char **argv)
{
    struct tp_ohttp_key_config cfg;
    struct tp_ohttp_gateway *gw = NULL;
    struct tp_bhttp_request req;
    struct fields_arg fa;
    uint8_t *sk = NULL, *skh = NULL, *cfgb = NULL, *sealed = NULL, *pt = NULL;
    uint8_t *bres = NULL, *res = NULL;
    size_t skl = 0, cfgl = 0, sealed_len = 0, pt_len = 0, blen = 0, rlen = 0, enc_len = 0;
    int rv, ret = 1;

    if (argc < 4 || parse_fields(argc - 4, argv + 4, &fa) != 0)
        return fail("usage: gateway <sk> <key_config> <request> <status> [fields]", 0);
    sk = sodium_malloc(TP_HPKE_X25519_SK_LEN);
    skh = unhex(argv[0], &skl);
    cfgb = unhex(argv[1], &cfgl);
    sealed = unhex(argv[2], &sealed_len);
    if (!sk || !skh || skl != TP_HPKE_X25519_SK_LEN || !cfgb || !sealed) {
        fail("bad hex argument", 0);
        goto out;
    }
    memcpy(sk, skh, skl);
    sodium_memzero(skh, skl);
    rv = tp_ohttp_key_config_parse(&cfg, cfgb, cfgl);
    if (rv != 0) {
        fail("key config", rv);
        goto out;
    }
    struct store st = {&cfg, sk};
    pt = malloc(sealed_len + 1);
    if (!pt || tp_ohttp_gateway_new(&gw) != 0) {
        fail("allocation", 0);
        goto out;
    }
    rv = tp_ohttp_gateway_decap(gw, sealed, sealed_len, lookup, &st, pt, sealed_len,
                                &pt_len);
    if (rv != 0) {
        fail("decapsulation", rv);
        goto out;
    }
    rv = tp_bhttp_request_decode(&req, pt, pt_len, NULL);
    if (rv != 0) {
        fail("binary HTTP request", rv);
        goto out;
    }
    printf("{\"request\":{\"method\":");
    put_hex(req.method.base, req.method.len);
    printf(",\"scheme\":");
    put_hex(req.scheme.base, req.scheme.len);
    printf(",\"authority\":");
    put_hex(req.authority.base, req.authority.len);
    printf(",\"path\":");
    put_hex(req.path.base, req.path.len);
    printf(",\"headers\":");
    put_fields(req.headers, req.n_headers);
    printf(",\"body\":");
    put_hex(req.content, req.content_len);
    printf(",\"trailers\":");
    put_fields(req.trailers, req.n_trailers);
    printf(",\"aead\":%u},\"enc\":", (unsigned)tp_ohttp_gateway_header(gw)->aead_id);
    const uint8_t *enc = tp_ohttp_gateway_enc(gw, &enc_len);
    put_hex(enc, enc_len);
    tp_bhttp_request_clear(&req);

    struct tp_bhttp_response r = {.status = (uint16_t)strtoul(argv[3], NULL, 10),
                                  .headers = fa.h,
                                  .n_headers = fa.n,
                                  .content = fa.body,
                                  .content_len = fa.body_len};
    rv = tp_bhttp_response_encoded_len(&r, NULL, &blen);
    if (rv == 0 && !(bres = malloc(blen + 1)))
        rv = TP_ERR_NOMEM;
    if (rv == 0)
        rv = tp_bhttp_response_encode(&r, NULL, bres, blen, &blen);
    rlen = tp_ohttp_gateway_response_len(gw, blen);
    if (rv == 0 && (rlen == 0 || !(res = malloc(rlen))))
        rv = TP_ERR_NOMEM;
    if (rv == 0)
        rv = tp_ohttp_gateway_encap_response(gw, bres, blen, res, rlen, &rlen);
    if (rv != 0) {
        printf("}\n");
        fail("response", rv);
        goto out;
    }
    printf(",\"response\":");
    put_hex(res, rlen);
    printf("}\n");
    ret = 0;
out:
    tp_ohttp_gateway_free(gw);
    sodium_free(sk);
    free(skh);
    free(cfgb);
    free(sealed);
    free(pt);
    free(bres);
    free(res);
    free(fa.body);
    return ret;
}

/* ---- client ----------------------------------------------------------------------- */

static int cmd_client(int argc, char **argv)
{
    struct tp_ohttp_key_config cfg;
    struct tp_ohttp_client *cl = NULL;
    struct tp_bhttp_response res;
    struct fields_arg fa;
    uint8_t *cfgb = NULL, *bhttp = NULL, *sealed = NULL, *rb = NULL, *pt = NULL;
    size_t cfgl = 0, blen = 0, slen = 0, rl = 0, pt_len = 0;
    char *line = NULL;
    size_t line_cap = 0;
    int rv, ret = 1;

    if (argc < 6 || parse_fields(argc - 6, argv + 6, &fa) != 0)
        return fail("usage: client <key_config> <aead> <method> <scheme> <authority> "
                    "<path> [fields]",
                    0);
    cfgb = unhex(argv[0], &cfgl);
    if (!cfgb || (rv = tp_ohttp_key_config_parse(&cfg, cfgb, cfgl)) != 0) {
        fail("key config", cfgb ? rv : 0);
        goto out;
    }
    struct tp_bhttp_request req = {
        .method = {argv[2], strlen(argv[2])},
        .scheme = {argv[3], strlen(argv[3])},
        .authority = {argv[4], strlen(argv[4])},
        .path = {argv[5], strlen(argv[5])},
        .headers = fa.h,
        .n_headers = fa.n,
        .content = fa.body,
        .content_len = fa.body_len,
    };
    rv = tp_bhttp_request_encoded_len(&req, NULL, &blen);
    if (rv == 0 && !(bhttp = malloc(blen + 1)))
        rv = TP_ERR_NOMEM;
    if (rv == 0)
        rv = tp_bhttp_request_encode(&req, NULL, bhttp, blen, &blen);
    slen = blen + TP_OHTTP_REQ_OVERHEAD;
    if (rv == 0 && !(sealed = malloc(slen)))
        rv = TP_ERR_NOMEM;
    if (rv == 0)
        rv = tp_ohttp_client_new(&cl);
    if (rv == 0)
        rv = tp_ohttp_client_encap(
            cl, &cfg,
            (struct tp_ohttp_suite){TP_HPKE_KDF_HKDF_SHA256,
                                    (uint16_t)strtoul(argv[1], NULL, 10)},
            bhttp, blen, sealed, slen, &slen);
    if (rv != 0) {
        fail("encapsulation", rv);
        goto out;
    }
    printf("{\"request\":");
    put_hex(sealed, slen);
    printf("}\n");
    fflush(stdout);

    ssize_t got = getline(&line, &line_cap, stdin);
    if (got <= 0) {
        fail("no response on stdin", 0);
        goto out;
    }
    while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
        line[--got] = '\0';
    rb = unhex(line, &rl);
    if (!rb || !(pt = malloc(rl + 1))) {
        fail("bad response hex", 0);
        goto out;
    }
    rv = tp_ohttp_client_decap_response(cl, rb, rl, pt, rl, &pt_len);
    if (rv != 0) {
        fail("response decapsulation", rv);
        goto out;
    }
    rv = tp_bhttp_response_decode(&res, pt, pt_len, NULL);
    if (rv != 0) {
        fail("binary HTTP response", rv);
        goto out;
    }
    printf("{\"status\":%u,\"informational\":[", (unsigned)res.status);
    for (size_t i = 0; i < res.n_informational; i++) {
        printf("%s{\"status\":%u,\"fields\":", i ? "," : "",
               (unsigned)res.informational[i].status);
        put_fields(res.informational[i].fields, res.informational[i].n_fields);
        putchar('}');
    }
    printf("],\"headers\":");
    put_fields(res.headers, res.n_headers);
    printf(",\"body\":");
    put_hex(res.content, res.content_len);
    printf(",\"trailers\":");
    put_fields(res.trailers, res.n_trailers);
    printf("}\n");
    tp_bhttp_response_clear(&res);
    ret = 0;
out:
    tp_ohttp_client_free(cl);
    free(cfgb);
    free(bhttp);
    free(sealed);
    free(rb);
    free(pt);
    free(line);
    free(fa.body);
    return ret;
}

/* ---- bench ------------------------------------------------------------------------ */

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Each figure is the best of BATCHES runs of N operations: the machine may be shared,
   and the minimum is the figure least disturbed by other load. */
#define BATCHES 7

static double best_of(double best, double t0, double t1)
{
    return t1 - t0 < best ? t1 - t0 : best;
}

static int bench_x25519(void)
{
    enum { N = 4000 };
    uint8_t sk[32], peer[32], out[32];
    double best = 1e9;
    randombytes_buf(sk, sizeof(sk));
    randombytes_buf(peer, sizeof(peer));
    if (crypto_scalarmult_base(peer, peer) != 0)
        return -1;
    for (int b = 0; b < BATCHES; b++) {
        double t0 = now();
        for (int i = 0; i < N; i++) {
            if (crypto_scalarmult(out, sk, peer) != 0)
                return -1;
            sk[0] ^= out[0];
        }
        best = best_of(best, t0, now());
    }
    printf("x25519 libsodium crypto_scalarmult:            %6.1f us/op\n",
           best / N * 1e6);
    best = 1e9;
    for (int b = 0; b < BATCHES; b++) {
        double t0 = now();
        for (int i = 0; i < N; i++) {
            EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, sk, 32);
            EVP_PKEY *p = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer, 32);
            EVP_PKEY_CTX *c = k ? EVP_PKEY_CTX_new(k, NULL) : NULL;
            size_t ol = sizeof(out);
            int ok = k && p && c && EVP_PKEY_derive_init(c) == 1 &&
                     EVP_PKEY_derive_set_peer(c, p) == 1 &&
                     EVP_PKEY_derive(c, out, &ol) == 1;
            EVP_PKEY_CTX_free(c);
            EVP_PKEY_free(p);
            EVP_PKEY_free(k);
            if (!ok)
                return -1;
            sk[0] ^= out[0];
        }
        best = best_of(best, t0, now());
    }
    printf("x25519 OpenSSL EVP derive from raw keys:       %6.1f us/op\n",
           best / N * 1e6);
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, sk, 32);
    EVP_PKEY *p = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer, 32);
    EVP_PKEY_CTX *c = k ? EVP_PKEY_CTX_new(k, NULL) : NULL;
    if (!k || !p || !c || EVP_PKEY_derive_init(c) != 1 ||
        EVP_PKEY_derive_set_peer(c, p) != 1)
        return -1;
    best = 1e9;
    for (int b = 0; b < BATCHES; b++) {
        double t0 = now();
        for (int i = 0; i < N; i++) {
            size_t ol = sizeof(out);
            if (EVP_PKEY_derive(c, out, &ol) != 1)
                return -1;
        }
        best = best_of(best, t0, now());
    }
    printf("x25519 OpenSSL EVP derive, key objects reused: %6.1f us/op\n",
           best / N * 1e6);
    EVP_PKEY_CTX_free(c);
    EVP_PKEY_free(p);
    EVP_PKEY_free(k);
    return 0;
}

static int cmd_bench(void)
{
    enum { N = 1000 };
    static const uint16_t aeads[3] = {1, 2, 3};
    struct tp_ohttp_key_config cfg;
    struct tp_ohttp_client *cl = NULL;
    struct tp_ohttp_gateway *gw = NULL;
    uint8_t *sk = sodium_malloc(32);
    static uint8_t bhttp[1024], sealed[2048], pt[2048], rbuf[1024], rout[2048],
        body[1024];
    size_t blen = 0, slen = 0, pl = 0, rl = 0, rblen = 0;
    int rv;

    if (!sk || sodium_init() < 0 || bench_x25519() != 0)
        return fail("x25519 bench", 0);
    memset(&cfg, 0, sizeof(cfg));
    cfg.key_id = 1;
    cfg.kem_id = TP_HPKE_KEM_X25519_SHA256;
    cfg.n_suites = 3;
    for (size_t i = 0; i < 3; i++)
        cfg.suites[i] = (struct tp_ohttp_suite){1, aeads[i]};
    struct store st = {&cfg, sk};
    struct tp_header h[3] = {
        {TP_STR_LIT("accept"), TP_STR_LIT("application/json")},
        {TP_STR_LIT("content-type"), TP_STR_LIT("application/json")},
        {TP_STR_LIT("date"), TP_STR_LIT("Sun, 06 Nov 1994 08:49:37 GMT")}};
    struct tp_bhttp_request req = {.method = TP_STR_LIT("POST"),
                                   .scheme = TP_STR_LIT("https"),
                                   .authority = TP_STR_LIT("vote.example"),
                                   .path = TP_STR_LIT("/api/ballot?round=3"),
                                   .headers = h,
                                   .n_headers = 3,
                                   .content = body,
                                   .content_len = 300};
    struct tp_bhttp_response resp = {
        .status = 200, .headers = h, .n_headers = 2, .content = body, .content_len = 800};
    if ((rv = tp_hpke_generate_keypair(sk, cfg.public_key)) != 0 ||
        (rv = tp_bhttp_request_encode(&req, NULL, bhttp, sizeof(bhttp), &blen)) != 0 ||
        (rv = tp_bhttp_response_encode(&resp, NULL, rbuf, sizeof(rbuf), &rblen)) != 0 ||
        (rv = tp_ohttp_client_new(&cl)) != 0 || (rv = tp_ohttp_gateway_new(&gw)) != 0)
        return fail("bench setup", rv);
    for (size_t a = 0; a < 3; a++) {
        rv = tp_ohttp_client_encap(cl, &cfg, cfg.suites[a], bhttp, blen, sealed,
                                   sizeof(sealed), &slen);
        if (rv != 0)
            return fail("bench encap", rv);
        double best = 1e9;
        for (int b = 0; b < BATCHES; b++) {
            double t0 = now();
            for (int i = 0; i < N; i++) {
                rv = tp_ohttp_gateway_decap(gw, sealed, slen, lookup, &st, pt, sizeof(pt),
                                            &pl);
                if (rv == 0)
                    rv = tp_ohttp_gateway_encap_response(gw, rbuf, rblen, rout,
                                                         sizeof(rout), &rl);
                if (rv != 0)
                    return fail("bench gateway", rv);
            }
            best = best_of(best, t0, now());
        }
        printf("gateway decap (%zu B) + response encap (%zu B), aead %u: %6.1f us/op\n",
               slen, rl, (unsigned)aeads[a], best / N * 1e6);
    }
    tp_ohttp_client_free(cl);
    tp_ohttp_gateway_free(gw);
    sodium_free(sk);
    return 0;
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0)
        return fail("sodium_init", 0);
    if (argc >= 2 && strcmp(argv[1], "keygen") == 0)
        return cmd_keygen(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "gateway") == 0)
        return cmd_gateway(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "client") == 0)
        return cmd_client(argc - 2, argv + 2);
    if (argc == 2 && strcmp(argv[1], "bench") == 0)
        return cmd_bench();
    return fail("usage: tp_ohttp_peer_check keygen|gateway|client|bench ...", 0);
}
