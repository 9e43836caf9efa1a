#include "tp_tls.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "tp_err.h"
#include "tp_server.h"

static const unsigned char alpn_h2[] = "h2";
static const unsigned char alpn_h1[] = "http/1.1";

/* ALPN: h2 first, then http/1.1; a client offering neither still gets a handshake
   (an ordinary web server does not refuse it) and is served HTTP/1.1. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    for (unsigned int i = 0; i < inlen;) {
        unsigned int n = in[i];
        if (i + 1 + n > inlen)
            break;
        if (n == 2 && memcmp(in + i + 1, alpn_h2, 2) == 0) {
            *out = in + i + 1;
            *outlen = 2;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + n;
    }
    for (unsigned int i = 0; i < inlen;) {
        unsigned int n = in[i];
        if (i + 1 + n > inlen)
            break;
        if (n == 8 && memcmp(in + i + 1, alpn_h1, 8) == 0) {
            *out = in + i + 1;
            *outlen = 8;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + n;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

static int fail(char *err, size_t errlen, const char *what, const char *file)
{
    unsigned long e = ERR_get_error();
    char reason[160] = "";
    if (e)
        ERR_error_string_n(e, reason, sizeof(reason));
    ERR_clear_error();
    snprintf(err, errlen, "%s %s%s%s", what, file ? file : "", *reason ? ": " : "",
             reason);
    return TP_ERR_INVALID;
}

/* Session-ID context for contexts that verify client certificates: OpenSSL refuses to
   resume a session whose context is unset once SSL_VERIFY_PEER is on. */
static const unsigned char sid_ctx[] = "zaslon-mtls";

/* Client certificates: required, verified against |client_ca|, purpose TLS client
   (OpenSSL's default for a server-side check). The CA names are also sent in the
   CertificateRequest so that a client holding several certificates picks ours. */
static int require_client_cert(SSL_CTX *ctx, const char *client_ca, char *err,
                               size_t errlen)
{
    if (SSL_CTX_load_verify_locations(ctx, client_ca, NULL) != 1)
        return fail(err, errlen, "cannot load client CA", client_ca);
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(client_ca);
    if (!names)
        return fail(err, errlen, "no CA certificate in", client_ca);
    SSL_CTX_set_client_CA_list(ctx, names); /* takes ownership */
    if (SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1) != 1)
        return fail(err, errlen, "cannot set session id context", NULL);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_verify_depth(ctx, 4);
    return 0;
}

int tp_tls_server_ctx_new(const char *cert_file, const char *key_file, SSL_CTX **out,
                          char *err, size_t errlen)
{
    return tp_tls_server_ctx_new_client_ca(cert_file, key_file, NULL, out, err, errlen);
}

int tp_tls_server_ctx_new_client_ca(const char *cert_file, const char *key_file,
                                    const char *client_ca, SSL_CTX **out, char *err,
                                    size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return fail(err, errlen, "cannot create TLS context", NULL);
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION)) {
        SSL_CTX_free(ctx);
        return fail(err, errlen, "cannot restrict TLS versions", NULL);
    }
    /* TLS 1.2 suites: AEAD with forward secrecy only, as RFC 9113 9.2.2 requires for
       HTTP/2. TLS 1.3 keeps OpenSSL's default suites. */
    if (!SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20")) {
        SSL_CTX_free(ctx);
        return fail(err, errlen, "cannot set cipher list", NULL);
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION);
    /* Idle connections give their read and write buffers back (about 34 KiB each). */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    /* One TLS 1.3 session ticket per full handshake, not OpenSSL's two (Go's crypto/tls
       also sends one): a client resumes one connection with it, and the second ticket
       cost every new connection another sealed record and write (about 6 % of its CPU,
       docs/BENCH.md). Tickets stay stateless, so the cache stays off. */
    SSL_CTX_set_num_tickets(ctx, 1);
    /* One socket read takes every record that is there, not two reads (header, then
       body) per record; tp_conn.c takes the records libevent leaves behind. */
    SSL_CTX_set_read_ahead(ctx, 1);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        SSL_CTX_free(ctx);
        return fail(err, errlen, "cannot load certificate chain", cert_file);
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        SSL_CTX_free(ctx);
        return fail(err, errlen, "cannot load private key", key_file);
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        SSL_CTX_free(ctx);
        return fail(err, errlen, "private key does not match certificate", key_file);
    }
    if (client_ca) {
        int rv = require_client_cert(ctx, client_ca, err, errlen);
        if (rv != 0) {
            SSL_CTX_free(ctx);
            return rv;
        }
    }
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    *out = ctx;
    return 0;
}

int tp_tls_client_ctx_new(const char *ca_file, const char *cert_file,
                          const char *key_file, SSL_CTX **out, char *err, size_t errlen)
{
    static const unsigned char alpn[] = "\x02h2";
    if ((cert_file == NULL) != (key_file == NULL)) {
        snprintf(err, errlen, "a client certificate needs both a certificate and a key");
        return TP_ERR_INVALID;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        fail(err, errlen, "cannot create TLS context", NULL);
        return TP_ERR_NOMEM;
    }
    int rv = TP_ERR_INVALID;
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION)) {
        rv = fail(err, errlen, "cannot restrict TLS versions", NULL);
        goto out;
    }
    if (!SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20")) {
        rv = fail(err, errlen, "cannot set cipher list", NULL);
        goto out;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* OpenSSL's return convention for this one is inverted: 0 is success. */
    if (SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1) != 0) {
        rv = fail(err, errlen, "cannot set ALPN", NULL);
        goto out;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_verify_depth(ctx, 8);
    if (ca_file) {
        if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
            rv = fail(err, errlen, "cannot load CA file", ca_file);
            goto out;
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        rv = fail(err, errlen, "cannot load the system CA store", NULL);
        goto out;
    }
    if (cert_file) {
        if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
            rv = fail(err, errlen, "cannot load client certificate chain", cert_file);
            goto out;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
            rv = fail(err, errlen, "cannot load client private key", key_file);
            goto out;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            rv = fail(err, errlen, "client key does not match certificate", key_file);
            goto out;
        }
    }
    *out = ctx;
    return 0;
out:
    SSL_CTX_free(ctx);
    return rv;
}
