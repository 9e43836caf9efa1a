/* The gateway's OHTTP key store.

   Key files are written by `zaslonctl keygen`, one key per file, owner-readable only:

     # zaslon OHTTP gateway key. Secret: keep it owner-only (chmod 600).
     key_id: 1
     kem: 0x0020
     suites: 0x0001/0x0001 0x0001/0x0003
     private_key: <64 hex digits>

   The format is strict. Lines end in LF (a CR before it is tolerated); blank lines and
   lines whose first non-blank character is '#' are ignored; every other line is
   "name: value" with blanks allowed around the value. Each of the four names must
   appear exactly once:
     key_id       decimal 0..255
     kem          0x0020 (DHKEM(X25519, HKDF-SHA256)); "0x" and exactly 4 hex digits
     suites       one or more KDF/AEAD pairs separated by blanks, each "0xKKKK/0xAAAA":
                  KDF 0x0001 (HKDF-SHA256); AEAD 0x0001 (AES-128-GCM), 0x0002
                  (AES-256-GCM) or 0x0003 (ChaCha20-Poly1305); a pair at most once
     private_key  exactly 64 hex digits (the raw X25519 scalar)
   Anything else is an error "line N: reason". No error message ever quotes a value or
   a name from the file (a stray line could be key material).

   `zaslon` loads every "*.key" file in the configured directory at start (names
   starting with '.' are skipped, as are other names: editor backups and lock files
   are not keys). A file that the group or others can access, that is not a regular
   file owned by the effective uid (symbolic links included), or that is larger than
   GW_KEYFILE_MAX bytes is refused with a message naming the file and the reason,
   never key bytes. Private keys live in one sodium_malloc region (locked where
   RLIMIT_MEMLOCK allows, and the store still works where it does not), read-only
   once loaded, and wiped on free. The first load also switches decapsulation to
   OpenSSL's X25519 (tp_hpke_x25519_openssl), whose per-worker copies of the keys live
   in OpenSSL's locked secure heap; freeing a store makes the workers drop theirs. Several keys live at once so keys can rotate:
   publish the next, overlap, retire the old. Key ids are unique within a store. */
#ifndef ZASLON_GATEWAY_GW_KEYSTORE_H
#define ZASLON_GATEWAY_GW_KEYSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "tp_ohttp.h"

/* Largest key file accepted, in bytes. */
#define GW_KEYFILE_MAX 4096

struct gw_keystore;

/* Loads every *.key file of |dir| (at least one must exist). Returns 0 and *out (the
   caller owns it; free with gw_keystore_free), or -1 with "path: reason" in |err|
   (*out untouched). Two files with the same key id are an error naming both. Calls
   sodium_init. Reads files: start-up and reload only, never on a loop thread. */
int gw_keystore_load(const char *dir, struct gw_keystore **out, char *err, size_t errlen);

/* Wipes and frees. Accepts NULL. */
void gw_keystore_free(struct gw_keystore *ks);

/* Called once workers run: later loads (reloads) never create OpenSSL's secure heap,
   which must not appear under threads already using OpenSSL. */
void gw_keystore_setup_closed(void);

/* Number of keys (at least 1 in a loaded store). */
size_t gw_keystore_count(const struct gw_keystore *ks);

/* A tp_ohttp_key_lookup_cb: |arg| is the store. Finds the key by id and checks that
   its configuration has the request's KEM and lists its (kdf, aead). Returns 0 with
   *sk and *pk borrowed from the store (valid until gw_keystore_free), or -1.
   Thread-safe (the store is read-only after load). */
int gw_keystore_lookup(void *arg, const struct tp_ohttp_header *hdr, const uint8_t **sk,
                       const uint8_t **pk);

/* The application/ohttp-keys body listing every key in key id order, encoded at load.
   Sets *len; the bytes belong to the store. */
const uint8_t *gw_keystore_configs(const struct gw_keystore *ks, size_t *len);

/* Parses one key file held in |buf| (|len| bytes; need not be NUL-terminated) into
   |cfg| (public configuration, with the public key derived from the private key)
   and |sk| (32 bytes the caller provides, ideally sodium_malloc memory). Strict:
   unknown or repeated keys, bad hex, an unsupported KEM or suite, or a private key
   whose public key is low-order are errors. Returns 0, or -1 with a reason (never key
   bytes) in |err|; |sk| is wiped on failure and |cfg| written only on success. An
   all-zero private key is refused too (a wiped or placeholder file; a key anyone
   knows). Touches no files: this is what the fuzzer drives.

   On the low-order check: X25519 clamps the scalar to 8k with 2^251 <= k < 2^252, and
   the base point has prime order L > 2^252, so no private key gives a low-order (or
   identity) public key; the check stays as defence in depth. */
int gw_keyfile_parse(const char *buf, size_t len, struct tp_ohttp_key_config *cfg,
                     uint8_t *sk, char *err, size_t errlen);

/* Generates a new X25519 key (randomness from tp_rand_bytes) and writes it to |path|
   (created with O_EXCL and O_NOFOLLOW, mode 0600, fsync'd; an existing path is
   refused, a partly written file removed). |suites| must hold 1..TP_OHTTP_MAX_SUITES
   distinct supported pairs. Fills |cfg| with its public configuration. Returns 0, or
   -1 with a reason in |err|. Every copy of the private key is wiped before return. */
int gw_keyfile_generate(const char *path, uint8_t key_id,
                        const struct tp_ohttp_suite *suites, size_t nsuites,
                        struct tp_ohttp_key_config *cfg, char *err, size_t errlen);

/* Opens one key file with the checks gw_keystore_load makes (no symbolic link, a
   regular file, owned by the effective uid, no group or other access, at most
   GW_KEYFILE_MAX bytes) and parses it as gw_keyfile_parse does. Returns 0, or -1 with
   "path: reason" in |err| (|sk| wiped). For `zaslonctl keys show`. */
int gw_keyfile_read(const char *path, struct tp_ohttp_key_config *cfg, uint8_t *sk,
                    char *err, size_t errlen);

#endif
