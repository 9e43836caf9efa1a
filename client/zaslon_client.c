/* libzaslon-client: options, key configurations, and sending with failover over the
   fronts. Sealing lives in zaslon_seal.c, the libcurl transport in zaslon_curl.c. */
#include "zaslon_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "tp_hpke.h"
#include "tp_ohttp.h"
#include "zaslon_client_internal.h"

/* Most usable configurations one key list may hold here; a longer list is refused. */
#define MAX_KEY_CONFIGS 64
/* Longest path zaslon_client_fetch_keys accepts. */
#define MAX_PATH_LEN 2048

const char *zaslon_strerror(int err)
{
    switch (err) {
    case ZASLON_OK:
        return "success";
    case ZASLON_ERR_INVALID:
        return "invalid argument";
    case ZASLON_ERR_TOO_LARGE:
        return "too large";
    case ZASLON_ERR_NO_KEYS:
        return "no key configuration set";
    case ZASLON_ERR_KEYS:
        return "key configuration list malformed or unusable";
    case ZASLON_ERR_CONNECT:
        return "could not connect";
    case ZASLON_ERR_TLS:
        return "TLS handshake or certificate verification failed";
    case ZASLON_ERR_TIMEOUT:
        return "timed out";
    case ZASLON_ERR_TRANSPORT:
        return "transport failure";
    case ZASLON_ERR_NOT_SEALED:
        return "the edge refused the request before opening it";
    case ZASLON_ERR_CRYPTO:
        return "the sealed answer does not authenticate";
    case ZASLON_ERR_PROTO:
        return "the sealed answer is malformed";
    case ZASLON_ERR_STATE:
        return "exchange already opened or failed";
    case ZASLON_ERR_NOMEM:
        return "out of memory";
    default:
        return "unknown error";
    }
}

/* A string that goes into a header line or a libcurl option: printable ASCII, no
   space, bounded. */
static bool token_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

/* Like token_ok, but spaces allowed inside (a User-Agent). */
static bool text_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max || s[0] == ' ' || s[n - 1] == ' ')
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

/* Copies |s| (NULL stays NULL) into *out; false when out of memory. */
static bool dup(const char *s, char **out)
{
    *out = NULL;
    if (!s)
        return true;
    *out = strdup(s);
    return *out != NULL;
}

static int front_copy(const struct zaslon_front *in, struct zaslon_front_conf *out)
{
    bool https = false;
    /* libcurl reads "https:///x" as host "x"; we want the host where it belongs. */
    const char *sep = in->url ? strstr(in->url, "://") : NULL;
    if (!sep || sep[3] == '/' || !token_ok(in->url, 4096) ||
        !zaslon_front_url_ok(in->url, &https) || (in->h2c && https) ||
        (in->host && !token_ok(in->host, 261)) ||
        (in->connect_to && !zaslon_connect_to_ok(in->connect_to)) ||
        (in->ca_file && in->ca_file[0] == '\0'))
        return ZASLON_ERR_INVALID;
    out->insecure = in->insecure;
    out->h2c = in->h2c;
    if (!dup(in->url, &out->url) || !dup(in->host, &out->host) ||
        !dup(in->connect_to, &out->connect_to) || !dup(in->ca_file, &out->ca_file))
        return ZASLON_ERR_NOMEM;
    return 0;
}

void zaslon_client_free(struct zaslon_client *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nfronts; i++) {
        free(c->fronts[i].url);
        free(c->fronts[i].host);
        free(c->fronts[i].connect_to);
        free(c->fronts[i].ca_file);
    }
    free(c->fronts);
    free(c->proxy);
    free(c->user_agent);
    if (c->curl) {
        curl_easy_cleanup(c->curl);
        curl_global_cleanup();
    }
    free(c);
}

int zaslon_client_new(const struct zaslon_client_opts *opts, struct zaslon_client **out)
{
    static const struct zaslon_client_opts defaults = {0};
    const struct zaslon_client_opts *o = opts ? opts : &defaults;
    struct zaslon_client *c = NULL;
    int rv;

    if (!out || o->nfronts > ZASLON_MAX_FRONTS || (o->nfronts && !o->fronts) ||
        (o->proxy && !token_ok(o->proxy, 1024)) ||
        (o->user_agent && !text_ok(o->user_agent, 512)) ||
        (o->pad_min > ZASLON_MAX_SEALED))
        return ZASLON_ERR_INVALID;
    c = calloc(1, sizeof(*c));
    if (!c)
        return ZASLON_ERR_NOMEM;
    c->last_front = -1;
    c->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms
                                                      : ZASLON_CONNECT_TIMEOUT_MS_DEFAULT;
    c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : ZASLON_TIMEOUT_MS_DEFAULT;
    c->pad_min = zaslon_pad_bucket(1, o->pad_min ? o->pad_min : ZASLON_PAD_MIN_DEFAULT);
    c->max_response = o->max_response ? o->max_response : ZASLON_MAX_RESPONSE_DEFAULT;
    if (o->nfronts) {
        c->fronts = calloc(o->nfronts, sizeof(*c->fronts));
        if (!c->fronts) {
            rv = ZASLON_ERR_NOMEM;
            goto fail;
        }
        /* Counted as they are filled so that zaslon_client_free releases them. */
        for (size_t i = 0; i < o->nfronts; i++) {
            c->nfronts++;
            rv = front_copy(&o->fronts[i], &c->fronts[i]);
            if (rv != 0)
                goto fail;
        }
    }
    if (!dup(o->proxy, &c->proxy) || !dup(o->user_agent, &c->user_agent)) {
        rv = ZASLON_ERR_NOMEM;
        goto fail;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        rv = ZASLON_ERR_TRANSPORT;
        goto fail;
    }
    c->curl = curl_easy_init();
    if (!c->curl) {
        curl_global_cleanup();
        rv = ZASLON_ERR_NOMEM;
        goto fail;
    }
    *out = c;
    return 0;
fail:
    zaslon_client_free(c);
    return rv;
}

int zaslon_client_set_keys(struct zaslon_client *c, const uint8_t *keys, size_t len)
{
    struct tp_ohttp_key_config *cfgs;
    size_t n = 0;
    int rv = ZASLON_ERR_KEYS;

    if (!c || (!keys && len))
        return ZASLON_ERR_INVALID;
    if (len == 0 || len > ZASLON_MAX_KEYS_LEN)
        return ZASLON_ERR_KEYS;
    cfgs = calloc(MAX_KEY_CONFIGS, sizeof(*cfgs));
    if (!cfgs)
        return ZASLON_ERR_NOMEM;
    if (tp_ohttp_keys_parse(keys, len, cfgs, MAX_KEY_CONFIGS, &n) != 0)
        goto out;
    /* First configuration with a suite we support, first such suite: deterministic,
       and it honours the order the deployment chose. */
    for (size_t i = 0; i < n && rv != 0; i++) {
        for (size_t k = 0; k < cfgs[i].n_suites; k++) {
            struct tp_hpke_suite s = {cfgs[i].kem_id, cfgs[i].suites[k].kdf_id,
                                      cfgs[i].suites[k].aead_id};
            if (tp_hpke_suite_check(s) == 0) {
                c->key = cfgs[i];
                c->suite = cfgs[i].suites[k];
                c->have_key = true;
                rv = 0;
                break;
            }
        }
    }
out:
    free(cfgs);
    return rv;
}

int zaslon_client_key(const struct zaslon_client *c, uint8_t *key_id, uint16_t *kdf_id,
                      uint16_t *aead_id)
{
    if (!c)
        return ZASLON_ERR_INVALID;
    if (!c->have_key)
        return ZASLON_ERR_NO_KEYS;
    if (key_id)
        *key_id = c->key.key_id;
    if (kdf_id)
        *kdf_id = c->suite.kdf_id;
    if (aead_id)
        *aead_id = c->suite.aead_id;
    return 0;
}

/* Failing over is only for failures before any answer byte: once a front answered,
   its answer stands. */
static bool may_fail_over(int rv)
{
    return rv == ZASLON_ERR_CONNECT || rv == ZASLON_ERR_TLS || rv == ZASLON_ERR_TIMEOUT ||
           rv == ZASLON_ERR_TRANSPORT;
}

static void note(struct zaslon_client *c, size_t i)
{
    size_t used = strlen(c->errmsg);
    if (used + 1 >= sizeof(c->errmsg))
        return;
    /* Truncation is fine: the message is a detail for the user. */
    (void)snprintf(c->errmsg + used, sizeof(c->errmsg) - used, "%sfront %zu: %s",
                   used ? "; " : "", i + 1, c->curl_err);
}

/* Runs |x| through the fronts in order, failing over as explained in the header. On
   success |x| holds the answer (released by the caller with zaslon_xfer_clear). */
static int over_fronts(struct zaslon_client *c, struct zaslon_xfer *x)
{
    int rv = ZASLON_ERR_INVALID;
    c->errmsg[0] = '\0';
    c->last_status = 0;
    c->last_front = -1;
    for (size_t i = 0; i < c->nfronts; i++) {
        zaslon_xfer_clear(x);
        c->last_front = (int)i;
        rv = zaslon_xfer_run(c, i, x);
        c->last_status = x->status;
        if (rv == 0) {
            c->errmsg[0] = '\0';
            break;
        }
        note(c, i);
        if (x->answered || !may_fail_over(rv))
            break;
    }
    if (rv != 0)
        zaslon_xfer_clear(x);
    return rv;
}

int zaslon_client_fetch_keys(struct zaslon_client *c, const char *path)
{
    if (!c || !path || path[0] != '/' || path[1] == '/' ||
        !token_ok(path, MAX_PATH_LEN) || strchr(path, '#') || c->nfronts == 0)
        return ZASLON_ERR_INVALID;
    struct zaslon_xfer x = {
        .path = path,
        .res_type = TP_OHTTP_KEYS_MEDIA_TYPE,
        .max = ZASLON_MAX_KEYS_LEN,
    };
    int rv = over_fronts(c, &x);
    if (rv == 0) {
        rv = zaslon_client_set_keys(c, x.data, x.len);
        if (rv != 0)
            (void)snprintf(c->errmsg, sizeof(c->errmsg), "front %d: %s",
                           c->last_front + 1, zaslon_strerror(rv));
    }
    zaslon_xfer_clear(&x);
    return rv;
}

int zaslon_client_send(struct zaslon_client *c, const struct zaslon_request *r,
                       struct zaslon_response *out)
{
    uint8_t *sealed = NULL;
    size_t len = 0;
    struct zaslon_exchange *ex = NULL;

    if (!c || !r || !out)
        return ZASLON_ERR_INVALID;
    c->errmsg[0] = '\0';
    c->last_status = 0;
    c->last_front = -1;
    if (c->nfronts == 0)
        return ZASLON_ERR_INVALID;
    int rv = zaslon_seal(c, r, &sealed, &len, &ex);
    if (rv != 0)
        return rv;
    struct zaslon_xfer x = {
        .body = sealed,
        .body_len = len,
        .req_type = TP_OHTTP_REQ_MEDIA_TYPE,
        .res_type = TP_OHTTP_RES_MEDIA_TYPE,
        .max = c->max_response,
    };
    rv = over_fronts(c, &x);
    if (rv == 0) {
        rv = zaslon_open(ex, x.data, x.len, out);
        if (rv != 0)
            (void)snprintf(c->errmsg, sizeof(c->errmsg), "front %d: %s",
                           c->last_front + 1, zaslon_strerror(rv));
    }
    zaslon_xfer_clear(&x);
    zaslon_exchange_free(ex);
    free(sealed);
    return rv;
}

int zaslon_client_last_status(const struct zaslon_client *c)
{
    return c ? c->last_status : 0;
}

int zaslon_client_last_front(const struct zaslon_client *c)
{
    return c ? c->last_front : -1;
}

const char *zaslon_client_last_error(const struct zaslon_client *c)
{
    return c ? c->errmsg : "";
}
