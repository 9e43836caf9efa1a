/* zl_cryptofloor: the crypto floor of one sealed request, on one core.

   Times what zaslon's gateway does to every sealed request, and nothing else:
   tp_ohttp_gateway_decap (header, key lookup, one X25519, the HPKE key schedule, one
   AEAD open) followed by tp_ohttp_gateway_encap_response (export, HKDF extract and two
   expands, one AEAD seal), for a typical exchange: a ~200-byte Binary HTTP POST sealed
   by libzaslon-client's zaslon_seal (so padded as every client pads it: the whole
   message/ohttp-req is 1 KiB) and a 200 "ok" response padded to the 1 KiB bucket, as
   gw_sealed.c pads it. The gateway's X25519 is OpenSSL's, as gw_keystore_load sets it
   up (tp_hpke_x25519_openssl; --x25519 libsodium measures the fallback). It also
   prints the parts of that floor: each X25519 (libsodium and OpenSSL, as a DH and as
   a key generation), the HPKE key schedule, the KEM's HKDF pair, the response KDF,
   AEAD open and re-key + seal of 1 KiB, and the randomness; then the same exchange
   with a fresh gateway context per request (what gw_sealed.c does), the Binary HTTP
   decode + encode around it, and the client's own zaslon_seal / zaslon_open (what a
   load generator pays per request).

   Every figure is CPU time of this thread (CLOCK_THREAD_CPUTIME_ID, so comparable with
   a process's utime+stime from /proc) over B batches of the same operation, printed
   as the median batch's us/op with the min and max; wall time is printed beside it.
   The process pins itself to one CPU (--cpu, default: the first CPU it may run on, so
   `taskset -c N` picks it). Inputs are fixed; the iteration count of each figure is
   calibrated from a short trial so that the whole run takes about --seconds (default
   3), unless --iters fixes it. The last line is machine-readable:
     RESULT floor_us=... floor_min_us=... floor_max_us=... floor_rps=... ...

     zl_cryptofloor [--seconds S] [--batches B] [--iters N] [--cpu N]
                    [--aead aes128gcm|aes256gcm|chacha20poly1305]
                    [--x25519 openssl|libsodium]

   Exit status 0, or 1 with a reason on stderr. */
#define _GNU_SOURCE /* sched_setaffinity, CPU_SET */
#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <sodium.h>

#include "tp_bhttp.h"
#include "tp_err.h"
#include "tp_hpke.h"
#include "tp_hpke_internal.h"
#include "tp_ohttp.h"
#include "tp_rand.h"
#include "zaslon_client.h"

#define MAX_BATCHES 51
#define BUF_CAP 4096

/* The typical sealed request (shared in spirit with zl_sealload: same URL, fields and
   body size) and the gateway's typical answer. */
#define INNER_URL "https://bench.example/api/submit"
#define BODY_LEN 120
#define RESPONSE_BODY "ok"
#define PAD_MIN 1024

struct opts {
    double seconds;
    int batches;
    long iters; /* 0: calibrate */
    int cpu;    /* -1: first allowed */
    uint16_t aead;
    bool x25519_ossl; /* receivers on OpenSSL's X25519, as gw_keystore_load sets up */
};

/* Everything one timed operation needs. */
struct bench {
    struct tp_ohttp_key_config cfg;
    uint8_t *sk; /* sodium_malloc */
    uint8_t sealed[BUF_CAP];
    size_t sealed_len;
    uint8_t plain[BUF_CAP];
    size_t plain_len;
    uint8_t res_plain[BUF_CAP]; /* the padded Binary HTTP response */
    size_t res_plain_len;
    uint8_t res_sealed[BUF_CAP];
    size_t res_sealed_len;
    struct tp_ohttp_gateway *gw;
    /* X25519 */
    uint8_t x_sk[32], x_pk[32], x_out[32];
    EVP_PKEY *ossl_sk, *ossl_pk;
    EVP_PKEY_CTX *ossl_ctx;
    /* the parts of the floor */
    struct tp_hpke_ctx *hctx; /* key schedule, KDF, re-key + seal */
    struct tp_hpke_ctx *actx; /* keyed once: opens aead_ct */
    struct tp_hpke_suite suite;
    uint8_t shared[TP_HPKE_SECRET_LEN];
    uint8_t aead_ct[BUF_CAP];
    size_t aead_ct_len;
    uint8_t rnd[32];
    /* client side */
    struct zaslon_client *client;
    struct zaslon_request req;
    struct zaslon_header req_headers[2];
    uint8_t body[BODY_LEN];
    uint8_t res_for_client[BUF_CAP]; /* a response sealed to |ex_open| */
    size_t res_for_client_len;
    int fail; /* first failure inside a timed loop */
};

typedef int (*op_fn)(struct bench *b);

static int die(const char *what, int rv)
{
    if (rv)
        fprintf(stderr, "zl_cryptofloor: %s: %d (%s)\n", what, rv,
                rv <= 0 ? tp_strerror(rv) : "error");
    else
        fprintf(stderr, "zl_cryptofloor: %s\n", what);
    return 1;
}

static double clock_s(clockid_t id)
{
    struct timespec t;
    if (clock_gettime(id, &t) == -1)
        return 0;
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int lookup(void *arg, const struct tp_ohttp_header *hdr, const uint8_t **sk,
                  const uint8_t **pk)
{
    /* The same checks as gw_keystore_lookup: key id, KEM, suite listed. */
    const struct bench *b = arg;
    bool listed = false;
    if (hdr->key_id != b->cfg.key_id || hdr->kem_id != b->cfg.kem_id)
        return -1;
    for (size_t i = 0; i < b->cfg.n_suites; i++)
        listed |= b->cfg.suites[i].kdf_id == hdr->kdf_id &&
                  b->cfg.suites[i].aead_id == hdr->aead_id;
    if (!listed)
        return -1;
    *sk = b->sk;
    *pk = b->cfg.public_key;
    return 0;
}

/* ---- the timed operations ------------------------------------------------------- */

static int op_sodium_x25519(struct bench *b)
{
    return crypto_scalarmult(b->x_out, b->x_sk, b->x_pk) == 0 ? 0 : -1;
}

static int op_ossl_x25519_reused(struct bench *b)
{
    size_t ol = sizeof(b->x_out);
    return EVP_PKEY_derive(b->ossl_ctx, b->x_out, &ol) == 1 ? 0 : -1;
}

/* What a gateway on OpenSSL would pay per request: its private key object cached, a
   peer key object and a derive context made from the request's enc each time. */
static int op_ossl_x25519_per_request(struct bench *b)
{
    EVP_PKEY *peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, b->x_pk, 32);
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(b->ossl_sk, NULL);
    size_t ol = sizeof(b->x_out);
    int ok = peer && c && EVP_PKEY_derive_init(c) == 1 &&
             EVP_PKEY_derive_set_peer(c, peer) == 1 &&
             EVP_PKEY_derive(c, b->x_out, &ol) == 1;
    EVP_PKEY_CTX_free(c);
    EVP_PKEY_free(peer);
    return ok ? 0 : -1;
}

/* OpenSSL with the peer key object kept and only its public key replaced per request
   (EVP_PKEY_set1_encoded_public_key): what a gateway that cached one derive context
   per key and thread would pay. */
static int op_ossl_x25519_set_peer(struct bench *b)
{
    size_t ol = sizeof(b->x_out);
    return EVP_PKEY_set1_encoded_public_key(b->ossl_pk, b->x_pk, 32) == 1 &&
                   EVP_PKEY_derive(b->ossl_ctx, b->x_out, &ol) == 1
               ? 0
               : -1;
}

static int op_sodium_x25519_base(struct bench *b)
{
    return crypto_scalarmult_base(b->x_out, b->x_sk) == 0 ? 0 : -1;
}

/* The HPKE key schedule of one request: three LabeledExtract, three LabeledExpand,
   and keying the AEAD context. */
static int op_key_schedule(struct bench *b)
{
    static const uint8_t info[] = "message/bhttp request\0\x01\x00\x20\x00\x01\x00\x01";
    return tp_hpke_key_schedule(b->hctx, b->suite, TP_HPKE_ROLE_RECEIVER, b->shared, info,
                                sizeof(info) - 1, NULL);
}

/* The KEM's two HKDF steps (ExtractAndExpand) without the X25519: Decap with a
   low-order check and the DH measured apart is not reachable, so this is the DH-free
   share measured as one bare Extract plus one Expand of the context's KDF. */
static int op_hkdf_pair(struct bench *b)
{
    uint8_t prk[TP_HPKE_SECRET_LEN];
    int rv = tp_hpke_ctx_extract(b->hctx, b->rnd, 16, b->shared, 32, prk);
    if (rv == 0)
        rv = tp_hpke_ctx_expand(b->hctx, prk, sizeof(prk), b->rnd, 32, b->x_out, 32);
    return rv;
}

/* The response keys: Export plus Extract plus two Expands (RFC 9458 section 4.4). */
static int op_response_kdf(struct bench *b)
{
    uint8_t secret[16], prk[TP_HPKE_SECRET_LEN], key[16], nonce[12];
    int rv = tp_hpke_export(b->hctx, (const uint8_t *)"message/bhttp response", 22,
                            secret, sizeof(secret));
    if (rv == 0)
        rv = tp_hpke_ctx_extract(b->hctx, b->rnd, 16, secret, sizeof(secret), prk);
    if (rv == 0)
        rv = tp_hpke_ctx_expand(b->hctx, prk, sizeof(prk), (const uint8_t *)"key", 3, key,
                                sizeof(key));
    if (rv == 0)
        rv = tp_hpke_ctx_expand(b->hctx, prk, sizeof(prk), (const uint8_t *)"nonce", 5,
                                nonce, sizeof(nonce));
    return rv;
}

/* One AEAD open of the 1 KiB request body with the context keyed (sequence 0). */
static int op_aead_open(struct bench *b)
{
    size_t got = 0;
    tp_hpke_ctx_set_seq(b->actx, 0);
    return tp_hpke_open(b->actx, NULL, 0, b->aead_ct, b->aead_ct_len, b->res_sealed,
                        sizeof(b->res_sealed), &got);
}

/* Re-keying for the response plus one AEAD seal of the 1 KiB response. */
static int op_aead_rekey_seal(struct bench *b)
{
    size_t got = 0;
    int rv = tp_hpke_ctx_set_aead_key(b->hctx, b->shared, tp_hpke_aead_key_len(b->suite.aead_id),
                                      b->rnd, TP_HPKE_NONCE_LEN);
    if (rv == 0)
        rv = tp_hpke_seal(b->hctx, NULL, 0, b->res_plain, b->res_plain_len, b->res_sealed,
                          sizeof(b->res_sealed), &got);
    return rv;
}

static int op_rand_nonce(struct bench *b)
{
    return tp_rand_public(b->rnd, 16);
}

static int op_rand_secret(struct bench *b)
{
    return tp_rand_bytes(b->rnd, 32);
}

static int op_decap(struct bench *b)
{
    size_t got = 0;
    int rv = tp_ohttp_gateway_decap(b->gw, b->sealed, b->sealed_len, lookup, b, b->plain,
                                    sizeof(b->plain), &got);
    tp_ohttp_gateway_reset(b->gw);
    return rv;
}

static int exchange(struct bench *b, struct tp_ohttp_gateway *gw)
{
    size_t got = 0;
    int rv = tp_ohttp_gateway_decap(gw, b->sealed, b->sealed_len, lookup, b, b->plain,
                                    sizeof(b->plain), &got);
    if (rv == 0)
        rv = tp_ohttp_gateway_encap_response(gw, b->res_plain, b->res_plain_len,
                                             b->res_sealed, sizeof(b->res_sealed),
                                             &b->res_sealed_len);
    return rv;
}

/* The floor: one gateway context reused across requests (its EVP contexts kept). */
static int op_exchange(struct bench *b)
{
    return exchange(b, b->gw);
}

/* As gw_sealed.c does it today: tp_ohttp_gateway_new and _free around each request. */
static int op_exchange_fresh(struct bench *b)
{
    struct tp_ohttp_gateway *gw = NULL;
    int rv = tp_ohttp_gateway_new(&gw);
    if (rv == 0)
        rv = exchange(b, gw);
    tp_ohttp_gateway_free(gw);
    return rv;
}

/* The Binary HTTP work around the crypto: decode the request, encode the padded
   response. */
static int op_bhttp(struct bench *b)
{
    struct tp_bhttp_request r;
    static const struct tp_header ct = {TP_STR_LIT("content-type"),
                                        TP_STR_LIT("text/plain")};
    struct tp_bhttp_response res = {.status = 200,
                                    .headers = &ct,
                                    .n_headers = 1,
                                    .content = (const uint8_t *)RESPONSE_BODY,
                                    .content_len = sizeof(RESPONSE_BODY) - 1};
    struct tp_bhttp_encode_opts eo = {.framing = TP_BHTTP_KNOWN_LENGTH};
    size_t len = 0, got = 0;
    int rv = tp_bhttp_request_decode(&r, b->plain, b->plain_len, NULL);
    if (rv != 0)
        return rv;
    tp_bhttp_request_clear(&r);
    rv = tp_bhttp_response_encoded_len(&res, &eo, &len);
    if (rv != 0 || len > PAD_MIN)
        return rv ? rv : -1;
    eo.padding = PAD_MIN - len;
    return tp_bhttp_response_encode(&res, &eo, b->res_plain, sizeof(b->res_plain), &got);
}

static int op_client_seal(struct bench *b)
{
    uint8_t *sealed = NULL;
    size_t len = 0;
    struct zaslon_exchange *ex = NULL;
    int rv = zaslon_seal(b->client, &b->req, &sealed, &len, &ex);
    free(sealed);
    zaslon_exchange_free(ex);
    return rv;
}

/* zaslon_seal is needed to get an exchange to open; it is timed separately above and
   subtracted by the caller. */
static int op_client_seal_open(struct bench *b)
{
    uint8_t *sealed = NULL;
    size_t len = 0, got = 0, out = 0;
    struct zaslon_exchange *ex = NULL;
    struct zaslon_response resp;
    int rv = zaslon_seal(b->client, &b->req, &sealed, &len, &ex);
    /* Answer it as the gateway would, untimed work being impossible inside one loop:
       the decap+encap cost is known from the floor and subtracted too. */
    if (rv == 0)
        rv = tp_ohttp_gateway_decap(b->gw, sealed, len, lookup, b, b->plain,
                                    sizeof(b->plain), &got);
    if (rv == 0)
        rv = tp_ohttp_gateway_encap_response(b->gw, b->res_plain, b->res_plain_len,
                                             b->res_sealed, sizeof(b->res_sealed), &out);
    if (rv == 0) {
        memset(&resp, 0, sizeof(resp));
        rv = zaslon_open(ex, b->res_sealed, out, &resp);
        if (rv == 0 && resp.status != 200)
            rv = -1;
        zaslon_response_clear(&resp);
    }
    free(sealed);
    zaslon_exchange_free(ex);
    return rv;
}

/* ---- timing ---------------------------------------------------------------------- */

struct figure {
    double cpu_med, cpu_min, cpu_max; /* us/op */
    double wall_med;
    long iters;
    int batches;
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Runs |fn| |n| times; returns false on the first failure. */
static bool run_n(struct bench *b, op_fn fn, long n)
{
    for (long i = 0; i < n; i++) {
        int rv = fn(b);
        if (rv != 0) {
            b->fail = rv ? rv : -1;
            return false;
        }
    }
    return true;
}

/* Times |fn|: calibrates (unless o->iters), then o->batches batches. |share| is the
   fraction of o->seconds this figure may take. */
static bool measure(struct bench *b, const struct opts *o, op_fn fn, double share,
                    struct figure *f)
{
    double cpu[MAX_BATCHES], wall[MAX_BATCHES];
    long n = o->iters;
    if (n <= 0) {
        /* Trial: doubling counts until 20 ms of CPU, bounded at 2^20 operations. */
        long k = 1;
        double per = 0;
        for (int round = 0; round < 21; round++, k *= 2) {
            double t0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
            if (!run_n(b, fn, k))
                return false;
            double dt = clock_s(CLOCK_THREAD_CPUTIME_ID) - t0;
            per = dt / (double)k;
            if (dt >= 0.02)
                break;
        }
        double budget = o->seconds * share / o->batches;
        n = per > 0 ? (long)(budget / per) : 1000;
        if (n < 50)
            n = 50;
        if (n > 50000000)
            n = 50000000;
    }
    for (int i = 0; i < o->batches; i++) {
        double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
        if (!run_n(b, fn, n))
            return false;
        cpu[i] = (clock_s(CLOCK_THREAD_CPUTIME_ID) - c0) / (double)n * 1e6;
        wall[i] = (clock_s(CLOCK_MONOTONIC) - w0) / (double)n * 1e6;
    }
    qsort(cpu, (size_t)o->batches, sizeof(double), cmp_double);
    qsort(wall, (size_t)o->batches, sizeof(double), cmp_double);
    f->cpu_med = cpu[o->batches / 2];
    f->cpu_min = cpu[0];
    f->cpu_max = cpu[o->batches - 1];
    f->wall_med = wall[o->batches / 2];
    f->iters = n;
    f->batches = o->batches;
    return true;
}

static void print_figure(const char *label, const struct figure *f)
{
    printf("  %-52s %7.2f us  (min %6.2f, max %6.2f; wall %6.2f; %d x %ld)\n", label,
           f->cpu_med, f->cpu_min, f->cpu_max, f->wall_med, f->batches, f->iters);
}

/* ---- setup ----------------------------------------------------------------------- */

static int parse_opts(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.seconds = 3.0,
                       .batches = 7,
                       .iters = 0,
                       .cpu = -1,
                       .aead = TP_HPKE_AEAD_AES128GCM,
                       .x25519_ossl = true};
    /* Every option takes one value. */
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        errno = 0;
        if (strcmp(a, "--seconds") == 0 && v) {
            o->seconds = strtod(v, &end);
            if (errno || *end || !(o->seconds >= 0.1 && o->seconds <= 600))
                return -1;
        } else if (strcmp(a, "--batches") == 0 && v) {
            long n = strtol(v, &end, 10);
            if (errno || *end || n < 5 || n > MAX_BATCHES)
                return -1;
            o->batches = (int)n;
        } else if (strcmp(a, "--iters") == 0 && v) {
            o->iters = strtol(v, &end, 10);
            if (errno || *end || o->iters < 1 || o->iters > 100000000)
                return -1;
        } else if (strcmp(a, "--cpu") == 0 && v) {
            long n = strtol(v, &end, 10);
            if (errno || *end || n < 0 || n >= CPU_SETSIZE)
                return -1;
            o->cpu = (int)n;
        } else if (strcmp(a, "--aead") == 0 && v) {
            if (strcmp(v, "aes128gcm") == 0)
                o->aead = TP_HPKE_AEAD_AES128GCM;
            else if (strcmp(v, "aes256gcm") == 0)
                o->aead = TP_HPKE_AEAD_AES256GCM;
            else if (strcmp(v, "chacha20poly1305") == 0)
                o->aead = TP_HPKE_AEAD_CHACHA20POLY1305;
            else
                return -1;
        } else if (strcmp(a, "--x25519") == 0 && v) {
            if (strcmp(v, "openssl") == 0)
                o->x25519_ossl = true;
            else if (strcmp(v, "libsodium") == 0)
                o->x25519_ossl = false;
            else
                return -1;
        } else {
            return -1;
        }
    }
    return 0;
}

static int pin(int want)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == -1)
        return -1;
    int cpu = want;
    if (cpu < 0) {
        for (int i = 0; i < CPU_SETSIZE; i++)
            if (CPU_ISSET(i, &set)) {
                cpu = i;
                break;
            }
    }
    if (cpu < 0)
        return -1;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) == -1)
        return -1;
    return cpu;
}

static int setup(struct bench *b, const struct opts *o)
{
    uint8_t keys[512];
    size_t keys_len = 0;
    int rv;

    b->sk = sodium_malloc(TP_HPKE_X25519_SK_LEN);
    if (!b->sk)
        return die("sodium_malloc", 0);
    b->cfg.key_id = 1;
    b->cfg.kem_id = TP_HPKE_KEM_X25519_SHA256;
    b->cfg.n_suites = 1;
    b->cfg.suites[0] = (struct tp_ohttp_suite){TP_HPKE_KDF_HKDF_SHA256, o->aead};
    if ((rv = tp_hpke_generate_keypair(b->sk, b->cfg.public_key)) != 0)
        return die("key generation", rv);
    if ((rv = tp_ohttp_keys_encode(&b->cfg, 1, keys, sizeof(keys), &keys_len)) != 0)
        return die("key configuration", rv);

    /* The request, sealed by the client library exactly as a client seals it. */
    if ((rv = zaslon_client_new(NULL, &b->client)) != 0 ||
        (rv = zaslon_client_set_keys(b->client, keys, keys_len)) != 0)
        return die("client setup", rv);
    memset(b->body, 'v', sizeof(b->body));
    b->req_headers[0] = (struct zaslon_header){"content-type", "application/json"};
    b->req_headers[1] = (struct zaslon_header){"accept", "application/json"};
    b->req = (struct zaslon_request){.method = "POST",
                                     .url = INNER_URL,
                                     .headers = b->req_headers,
                                     .nheaders = 2,
                                     .body = b->body,
                                     .body_len = sizeof(b->body)};
    uint8_t *sealed = NULL;
    size_t len = 0;
    struct zaslon_exchange *ex = NULL;
    if ((rv = zaslon_seal(b->client, &b->req, &sealed, &len, &ex)) != 0)
        return die("zaslon_seal", rv);
    zaslon_exchange_free(ex);
    if (len > sizeof(b->sealed)) {
        free(sealed);
        return die("sealed request larger than expected", 0);
    }
    memcpy(b->sealed, sealed, len);
    b->sealed_len = len;
    free(sealed);

    if ((rv = tp_ohttp_gateway_new(&b->gw)) != 0)
        return die("gateway context", rv);
    if ((rv = tp_ohttp_gateway_decap(b->gw, b->sealed, b->sealed_len, lookup, b, b->plain,
                                     sizeof(b->plain), &b->plain_len)) != 0)
        return die("first decap", rv);
    tp_ohttp_gateway_reset(b->gw);
    if ((rv = op_bhttp(b)) != 0)
        return die("Binary HTTP round", rv);
    b->res_plain_len = PAD_MIN;
    if ((rv = op_exchange(b)) != 0)
        return die("first exchange", rv);

    /* X25519 inputs: a fixed-looking but valid pair. */
    randombytes_buf(b->x_sk, sizeof(b->x_sk));
    randombytes_buf(b->x_pk, sizeof(b->x_pk));
    if (crypto_scalarmult_base(b->x_pk, b->x_pk) != 0)
        return die("crypto_scalarmult_base", 0);
    b->ossl_sk = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, b->x_sk, 32);
    b->ossl_pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, b->x_pk, 32);
    b->ossl_ctx = b->ossl_sk ? EVP_PKEY_CTX_new(b->ossl_sk, NULL) : NULL;
    if (!b->ossl_pk || !b->ossl_ctx || EVP_PKEY_derive_init(b->ossl_ctx) != 1 ||
        EVP_PKEY_derive_set_peer(b->ossl_ctx, b->ossl_pk) != 1)
        return die("OpenSSL X25519 setup", 0);
    /* The parts: a receiver context keyed once, a sealed 1 KiB body to open. */
    b->suite = (struct tp_hpke_suite){TP_HPKE_KEM_X25519_SHA256, TP_HPKE_KDF_HKDF_SHA256,
                                      o->aead};
    randombytes_buf(b->shared, sizeof(b->shared));
    randombytes_buf(b->rnd, sizeof(b->rnd));
    if ((rv = tp_hpke_ctx_new(&b->hctx)) != 0 || (rv = tp_hpke_ctx_new(&b->actx)) != 0)
        return die("HPKE context", rv);
    if ((rv = op_key_schedule(b)) != 0 ||
        (rv = tp_hpke_key_schedule(b->actx, b->suite, TP_HPKE_ROLE_RECEIVER, b->shared,
                                   NULL, 0, NULL)) != 0 ||
        (rv = tp_hpke_ctx_set_aead_key(b->actx, b->shared, tp_hpke_aead_key_len(o->aead),
                                       b->rnd, TP_HPKE_NONCE_LEN)) != 0 ||
        (rv = tp_hpke_seal(b->actx, NULL, 0, b->res_plain, b->res_plain_len, b->aead_ct,
                           sizeof(b->aead_ct), &b->aead_ct_len)) != 0 ||
        (rv = op_aead_open(b)) != 0)
        return die("AEAD setup", rv);
    uint8_t check[32];
    size_t cl = sizeof(check);
    if (EVP_PKEY_derive(b->ossl_ctx, check, &cl) != 1 || cl != 32 ||
        crypto_scalarmult(b->x_out, b->x_sk, b->x_pk) != 0 ||
        sodium_memcmp(check, b->x_out, 32) != 0)
        return die("OpenSSL and libsodium X25519 disagree", 0);
    return 0;
}

static void teardown(struct bench *b)
{
    tp_ohttp_gateway_free(b->gw);
    zaslon_client_free(b->client);
    tp_hpke_ctx_free(b->hctx);
    tp_hpke_ctx_free(b->actx);
    EVP_PKEY_CTX_free(b->ossl_ctx);
    EVP_PKEY_free(b->ossl_pk);
    EVP_PKEY_free(b->ossl_sk);
    sodium_free(b->sk);
    sodium_memzero(b->x_sk, sizeof(b->x_sk));
}

static const char *aead_name(uint16_t id)
{
    switch (id) {
    case TP_HPKE_AEAD_AES128GCM:
        return "AES-128-GCM";
    case TP_HPKE_AEAD_AES256GCM:
        return "AES-256-GCM";
    case TP_HPKE_AEAD_CHACHA20POLY1305:
        return "ChaCha20-Poly1305";
    }
    return "?";
}

int main(int argc, char **argv)
{
    struct opts o;
    static struct bench b; /* large buffers: not on the stack */
    struct figure f_sx, f_ox, f_oxr, f_dec, f_ex, f_exf, f_bh, f_cs, f_cso;
    struct figure f_sxb, f_oxs, f_ks, f_hk, f_rk, f_ao, f_as, f_rn, f_rs;
    int rc = 1;

    if (parse_opts(argc, argv, &o) != 0) {
        fprintf(stderr,
                "usage: zl_cryptofloor [--seconds S] [--batches B(5..%d)] "
                "[--iters N] [--cpu N] [--aead aes128gcm|aes256gcm|"
                "chacha20poly1305] [--x25519 openssl|libsodium]\n",
                MAX_BATCHES);
        return 2;
    }
    if (sodium_init() < 0)
        return die("sodium_init", 0);
    /* The gateway's receiver X25519: OpenSSL when its secure heap can be locked. */
    if (o.x25519_ossl && tp_hpke_x25519_openssl((size_t)1 << 20) != 0)
        return die("--x25519 openssl: OpenSSL's secure heap is not usable here", 0);
    int cpu = pin(o.cpu);
    if (cpu < 0)
        return die("sched_setaffinity failed", 0);
    if (setup(&b, &o) != 0)
        goto out;

    printf("zl_cryptofloor: one core (CPU %d), %d batches per figure, CPU time per op "
           "(median of batches)\n",
           cpu, o.batches);
    printf("  %s, %s; suite HKDF-SHA256 / %s\n", OpenSSL_version(OPENSSL_VERSION),
           "libsodium " SODIUM_VERSION_STRING, aead_name(o.aead));
    printf("  gateway X25519 (decap): %s\n",
           tp_hpke_x25519_openssl_on() ? "OpenSSL, keys in its secure heap" : "libsodium");
    printf("  request: %zu-byte message/ohttp-req (zaslon_seal: POST %s, 2 fields + "
           "date, %d-byte body)\n",
           b.sealed_len, INNER_URL, BODY_LEN);
    printf("  response: %zu-byte Binary HTTP (200 \"%s\", padded) -> %zu-byte "
           "message/ohttp-res\n\n",
           b.res_plain_len, RESPONSE_BODY, b.res_sealed_len);

    /* Shares of --seconds; they add up to 1. */
    if (!measure(&b, &o, op_sodium_x25519, 0.08, &f_sx) ||
        !measure(&b, &o, op_sodium_x25519_base, 0.04, &f_sxb) ||
        !measure(&b, &o, op_ossl_x25519_reused, 0.06, &f_ox) ||
        !measure(&b, &o, op_ossl_x25519_set_peer, 0.06, &f_oxs) ||
        !measure(&b, &o, op_ossl_x25519_per_request, 0.04, &f_oxr) ||
        !measure(&b, &o, op_key_schedule, 0.02, &f_ks) ||
        !measure(&b, &o, op_hkdf_pair, 0.02, &f_hk) ||
        !measure(&b, &o, op_response_kdf, 0.02, &f_rk) ||
        !measure(&b, &o, op_aead_open, 0.02, &f_ao) ||
        !measure(&b, &o, op_aead_rekey_seal, 0.02, &f_as) ||
        !measure(&b, &o, op_rand_nonce, 0.01, &f_rn) ||
        !measure(&b, &o, op_rand_secret, 0.01, &f_rs) ||
        !measure(&b, &o, op_decap, 0.10, &f_dec) ||
        !measure(&b, &o, op_exchange, 0.26, &f_ex) ||
        !measure(&b, &o, op_exchange_fresh, 0.10, &f_exf) ||
        !measure(&b, &o, op_bhttp, 0.02, &f_bh) ||
        !measure(&b, &o, op_client_seal, 0.06, &f_cs) ||
        !measure(&b, &o, op_client_seal_open, 0.06, &f_cso)) {
        die("a timed operation failed", b.fail);
        goto out;
    }
    printf("reference (one X25519):\n");
    print_figure("X25519 libsodium crypto_scalarmult", &f_sx);
    print_figure("X25519 OpenSSL EVP_PKEY_derive, key objects reused", &f_ox);
    print_figure("X25519 OpenSSL, peer replaced by set1_encoded_public", &f_oxs);
    print_figure("X25519 OpenSSL, fresh peer EVP_PKEY + ctx per op", &f_oxr);
    print_figure("X25519 libsodium crypto_scalarmult_base (keygen)", &f_sxb);
    printf("parts of the floor (one each per sealed request unless said):\n");
    print_figure("HPKE key schedule (3 Extract, 3 Expand, AEAD key)", &f_ks);
    print_figure("HKDF Extract + Expand (KEM ExtractAndExpand)", &f_hk);
    print_figure("response KDF (Export, Extract, 2 Expand)", &f_rk);
    print_figure("AEAD open, 1 KiB request", &f_ao);
    print_figure("AEAD re-key + seal, 1 KiB response", &f_as);
    print_figure("response nonce, tp_rand_public(16)", &f_rn);
    print_figure("tp_rand_bytes(32) (client ephemeral key)", &f_rs);
    printf("  %-52s %7.2f us\n", "sum of parts (the gateway's X25519 + the six above)",
           (tp_hpke_x25519_openssl_on() ? f_oxs.cpu_med : f_sx.cpu_med) + f_ks.cpu_med + f_hk.cpu_med + f_rk.cpu_med + f_ao.cpu_med +
               f_as.cpu_med + f_rn.cpu_med);
    printf("gateway, per sealed request:\n");
    print_figure("decap only (X25519 + key schedule + AEAD open)", &f_dec);
    print_figure("FLOOR: decap + encap_response (context reused)", &f_ex);
    printf("  %-52s %7.2f us\n", "  of which encap_response (difference)",
           f_ex.cpu_med - f_dec.cpu_med);
    print_figure("same, gateway_new/free per request (gw_sealed.c)", &f_exf);
    print_figure("Binary HTTP decode + padded encode (not crypto)", &f_bh);
    printf("client (load generator), per request:\n");
    print_figure("zaslon_seal (ephemeral keygen + X25519 + seal)", &f_cs);
    printf("  %-52s %7.2f us\n", "zaslon_open (difference)",
           f_cso.cpu_med - f_cs.cpu_med - f_ex.cpu_med);
    printf("\nfloor: %.2f us per sealed request = %.0f sealed requests/s per core "
           "(X25519 is %.0f%% of it)\n",
           f_ex.cpu_med, 1e6 / f_ex.cpu_med,
           100.0 * (tp_hpke_x25519_openssl_on() ? f_oxs.cpu_med : f_sx.cpu_med) /
               f_ex.cpu_med);
    printf("RESULT floor_us=%.2f floor_min_us=%.2f floor_max_us=%.2f floor_rps=%.0f "
           "floor_fresh_ctx_us=%.2f decap_us=%.2f x25519_sodium_us=%.2f "
           "x25519_ossl_us=%.2f x25519_ossl_per_req_us=%.2f bhttp_us=%.2f "
           "client_seal_us=%.2f client_open_us=%.2f x25519_ossl_set_peer_us=%.2f "
           "x25519_base_us=%.2f key_schedule_us=%.2f hkdf_pair_us=%.2f "
           "response_kdf_us=%.2f aead_open_us=%.2f aead_rekey_seal_us=%.2f "
           "rand_nonce_us=%.2f rand_secret_us=%.2f\n",
           f_ex.cpu_med, f_ex.cpu_min, f_ex.cpu_max, 1e6 / f_ex.cpu_med, f_exf.cpu_med,
           f_dec.cpu_med, f_sx.cpu_med, f_ox.cpu_med, f_oxr.cpu_med, f_bh.cpu_med,
           f_cs.cpu_med, f_cso.cpu_med - f_cs.cpu_med - f_ex.cpu_med, f_oxs.cpu_med,
           f_sxb.cpu_med, f_ks.cpu_med, f_hk.cpu_med, f_rk.cpu_med, f_ao.cpu_med,
           f_as.cpu_med, f_rn.cpu_med, f_rs.cpu_med);
    rc = 0;
out:
    teardown(&b);
    return rc;
}
