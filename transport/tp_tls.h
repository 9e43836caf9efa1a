/* TLS contexts beyond the plain server one (whose prototype, tp_tls_server_ctx_new,
   lives in tp_server.h with the listeners that use it): server contexts that require
   client certificates, and the client context a relay uses toward its gateway.

   Both are built once at start-up (they read files) and shared read-only by every
   worker; each connection makes its own SSL from them. */
#ifndef ZASLON_TRANSPORT_TP_TLS_H
#define ZASLON_TRANSPORT_TP_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

/* Like tp_tls_server_ctx_new (TLS 1.2 and 1.3, ALPN h2 and http/1.1, the chain and
   key from PEM files), and, when |client_ca| is not NULL, requires a client
   certificate that verifies against the PEM CA certificates in |client_ca|
   (SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, purpose TLS client). A client
   without one, or with one from another CA, fails the handshake: such a listener
   serves nothing, not even the cover, to anyone without a trusted certificate.
   |client_ca| NULL gives exactly tp_tls_server_ctx_new's context. Returns 0 and *out
   (caller owns the reference: SSL_CTX_free), or TP_ERR_* with a reason (never key
   bytes) in |err|. */
int tp_tls_server_ctx_new_client_ca(const char *cert_file, const char *key_file,
                                    const char *client_ca, SSL_CTX **out, char *err,
                                    size_t errlen);

/* Creates a client context for HTTP/2 over TLS: TLS 1.2 and 1.3 only (TLS 1.2 with
   AEAD and forward secrecy only, RFC 9113 9.2.2), ALPN "h2" offered alone, no
   compression or renegotiation, the peer's certificate verified against the PEM CA
   certificates in |ca_file| (NULL: the system store). The host name check and SNI are
   per connection (the caller sets them on each SSL). With |cert_file| and |key_file|
   (both or neither) the context presents that chain and key as a client certificate
   (mutual TLS). Returns 0 and *out (caller owns the reference), or TP_ERR_INVALID (an
   unreadable or mismatched file, only one of cert and key) or TP_ERR_NOMEM, with a
   reason (never key bytes) in |err|. */
int tp_tls_client_ctx_new(const char *ca_file, const char *cert_file,
                          const char *key_file, SSL_CTX **out, char *err, size_t errlen);

#endif
