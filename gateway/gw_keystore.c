/* The gateway's OHTTP key store: the strict key-file parser, the directory loader
   (secrecy checks in the manner of OpenBSD's check_file_secrecy), lookup by key id for
   tp_ohttp_gateway_decap, and key generation for zaslonctl.

   Private keys never sit in ordinary memory longer than a call: files are read into a
   sodium_malloc buffer that is wiped after each parse, keys are decoded straight into
   a scratch slot of the store's sodium_malloc region and moved to their own slot, and
   the region is made read-only once everything is loaded. */
#include "gw_keystore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <sodium.h>

#include "tp_err.h"
#include "tp_hpke.h"
#include "tp_ohttp.h"

#define SK_LEN TP_HPKE_X25519_SK_LEN
#define NIDS 256 /* key ids are one byte */
/* The region holds one slot per key id plus a scratch slot that parses write into. */
#define SCRATCH NIDS
#define NSLOTS (NIDS + 1)
#define KEM_X25519 0x0020
/* OpenSSL's secure heap, once tp_hpke_x25519_openssl creates it, holds each worker's
   copies of the private keys (32 bytes each) and whatever OpenSSL puts there for TLS
   (ephemeral keys, private bignums): 1 MiB of locked memory leaves ample room. */
#define OSSL_ARENA ((size_t)1 << 20)

static atomic_bool setup_closed;

void gw_keystore_setup_closed(void)
{
    atomic_store(&setup_closed, true);
}

struct gw_keystore {
    size_t count;
    uint8_t *secrets; /* sodium_malloc, NSLOTS * SK_LEN; read-only after load */
    bool present[NIDS];
    struct tp_ohttp_key_config cfgs[NIDS]; /* indexed by key id */
    uint8_t *configs;                      /* application/ohttp-keys, key id order */
    size_t configs_len;
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Truncation of a message is acceptable: it is only ever read by a person. */
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    if (vsnprintf(err, errlen, fmt, ap) < 0)
        err[0] = '\0';
    va_end(ap);
}

/* ---- parsing ----------------------------------------------------------------------- */

enum field { F_KEY_ID, F_KEM, F_SUITES, F_PRIVATE_KEY, F_COUNT };

static const char *const field_names[F_COUNT] = {"key_id", "kem", "suites",
                                                 "private_key"};

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static unsigned hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return (unsigned)(c - '0');
    if (c >= 'a' && c <= 'f')
        return (unsigned)(c - 'a' + 10);
    return (unsigned)(c - 'A' + 10);
}

/* "0x" and exactly four hex digits. Only used for public algorithm ids. */
static bool parse_id16(const char *s, size_t n, uint16_t *out)
{
    unsigned v = 0;

    if (n != 6 || s[0] != '0' || s[1] != 'x')
        return false;
    for (size_t i = 2; i < 6; i++) {
        if (!is_hex(s[i]))
            return false;
        v = v << 4 | hex_val(s[i]);
    }
    *out = (uint16_t)v;
    return true;
}

/* Decimal 0..255: digits only (strtoul alone would take a sign and blanks). */
static bool parse_key_id(const char *s, size_t n, uint8_t *out)
{
    char tmp[4];
    char *end = NULL;
    unsigned long v;

    if (n == 0 || n >= sizeof(tmp))
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    errno = 0;
    v = strtoul(tmp, &end, 10);
    if (errno != 0 || end != tmp + n || v > 255)
        return false;
    *out = (uint8_t)v;
    return true;
}

/* Whether (kdf, aead) is one this build can serve. */
static bool suite_supported(struct tp_ohttp_suite s)
{
    return s.kdf_id == TP_HPKE_KDF_HKDF_SHA256 &&
           (s.aead_id == TP_HPKE_AEAD_AES128GCM || s.aead_id == TP_HPKE_AEAD_AES256GCM ||
            s.aead_id == TP_HPKE_AEAD_CHACHA20POLY1305);
}

static bool suite_listed(const struct tp_ohttp_suite *suites, size_t n,
                         struct tp_ohttp_suite s)
{
    for (size_t i = 0; i < n; i++)
        if (suites[i].kdf_id == s.kdf_id && suites[i].aead_id == s.aead_id)
            return true;
    return false;
}

/* Blank-separated "0xKKKK/0xAAAA" pairs into |c|. Messages name the pair by position. */
static int parse_suites(const char *s, size_t n, struct tp_ohttp_key_config *c,
                        size_t line, char *err, size_t errlen)
{
    size_t i = 0;

    c->n_suites = 0;
    while (i < n) {
        size_t start, tok;
        struct tp_ohttp_suite su;

        while (i < n && is_blank(s[i]))
            i++;
        if (i == n)
            break;
        start = i;
        while (i < n && !is_blank(s[i]))
            i++;
        tok = i - start;
        if (c->n_suites == TP_OHTTP_MAX_SUITES) {
            seterr(err, errlen, "line %zu: more than %d suites", line,
                   TP_OHTTP_MAX_SUITES);
            return -1;
        }
        if (tok != 13 || s[start + 6] != '/' || !parse_id16(s + start, 6, &su.kdf_id) ||
            !parse_id16(s + start + 7, 6, &su.aead_id)) {
            seterr(err, errlen, "line %zu: suite %zu is not of the form 0xKDF/0xAEAD",
                   line, c->n_suites + 1);
            return -1;
        }
        if (su.kdf_id != TP_HPKE_KDF_HKDF_SHA256) {
            seterr(err, errlen, "line %zu: suite %zu: unsupported KDF (only 0x0001)",
                   line, c->n_suites + 1);
            return -1;
        }
        if (!suite_supported(su)) {
            seterr(err, errlen,
                   "line %zu: suite %zu: unsupported AEAD (0x0001, 0x0002 or 0x0003)",
                   line, c->n_suites + 1);
            return -1;
        }
        if (suite_listed(c->suites, c->n_suites, su)) {
            seterr(err, errlen, "line %zu: suite %zu listed twice", line,
                   c->n_suites + 1);
            return -1;
        }
        c->suites[c->n_suites++] = su;
    }
    if (c->n_suites == 0) {
        seterr(err, errlen, "line %zu: suites is empty", line);
        return -1;
    }
    return 0;
}

int gw_keyfile_parse(const char *buf, size_t len, struct tp_ohttp_key_config *cfg,
                     uint8_t *sk, char *err, size_t errlen)
{
    struct tp_ohttp_key_config c;
    size_t seen[F_COUNT] = {0}; /* line where each field was given, 0 if not yet */
    size_t pos = 0, line = 0;
    int rv = -1;

    memset(&c, 0, sizeof(c));
    if (!cfg || !sk || (!buf && len > 0)) {
        seterr(err, errlen, "no buffer");
        goto out;
    }
    while (pos < len) {
        const char *l = buf + pos;
        const char *nl = memchr(l, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - l) : len - pos;
        const char *colon, *v;
        size_t name_len, vn;
        enum field f;

        pos += n + (nl ? 1 : 0);
        line++;
        if (memchr(l, '\0', n)) {
            seterr(err, errlen, "line %zu: NUL byte", line);
            goto out;
        }
        if (n > 0 && l[n - 1] == '\r')
            n--;
        while (n > 0 && is_blank(l[0])) {
            l++;
            n--;
        }
        while (n > 0 && is_blank(l[n - 1]))
            n--;
        if (n == 0 || l[0] == '#')
            continue;

        /* The name is not quoted back: a stray line could be a pasted key. */
        colon = memchr(l, ':', n);
        if (!colon) {
            seterr(err, errlen, "line %zu: expected \"name: value\"", line);
            goto out;
        }
        name_len = (size_t)(colon - l);
        while (name_len > 0 && is_blank(l[name_len - 1]))
            name_len--;
        for (f = 0; f < F_COUNT; f++)
            if (strlen(field_names[f]) == name_len &&
                memcmp(l, field_names[f], name_len) == 0)
                break;
        if (f == F_COUNT) {
            seterr(err, errlen,
                   "line %zu: unknown name (expected key_id, kem, suites or private_key)",
                   line);
            goto out;
        }
        if (seen[f]) {
            seterr(err, errlen, "line %zu: %s given twice (first on line %zu)", line,
                   field_names[f], seen[f]);
            goto out;
        }
        seen[f] = line;
        v = colon + 1;
        vn = n - (size_t)(v - l);
        while (vn > 0 && is_blank(v[0])) {
            v++;
            vn--;
        }
        if (vn == 0) {
            seterr(err, errlen, "line %zu: %s has no value", line, field_names[f]);
            goto out;
        }

        switch (f) {
        case F_KEY_ID:
            if (!parse_key_id(v, vn, &c.key_id)) {
                seterr(err, errlen, "line %zu: key_id must be a decimal number 0..255",
                       line);
                goto out;
            }
            break;
        case F_KEM:
            if (!parse_id16(v, vn, &c.kem_id)) {
                seterr(err, errlen, "line %zu: kem must be 0x and 4 hex digits", line);
                goto out;
            }
            if (c.kem_id != KEM_X25519) {
                seterr(
                    err, errlen,
                    "line %zu: unsupported kem (only 0x0020, DHKEM(X25519, HKDF-SHA256))",
                    line);
                goto out;
            }
            break;
        case F_SUITES:
            if (parse_suites(v, vn, &c, line, err, errlen) != 0)
                goto out;
            break;
        case F_PRIVATE_KEY: {
            size_t bin_len = 0;

            if (vn != 2 * SK_LEN) {
                seterr(err, errlen, "line %zu: private_key must be exactly %d hex digits",
                       line, 2 * SK_LEN);
                goto out;
            }
            /* libsodium's decoder does not branch on the digits' values. */
            if (sodium_hex2bin(sk, SK_LEN, v, vn, NULL, &bin_len, NULL) != 0 ||
                bin_len != SK_LEN) {
                seterr(err, errlen, "line %zu: private_key is not hex", line);
                goto out;
            }
            break;
        }
        case F_COUNT:
            break;
        }
    }
    for (enum field f = 0; f < F_COUNT; f++) {
        if (!seen[f]) {
            seterr(err, errlen, "missing %s", field_names[f]);
            goto out;
        }
    }
    if (sodium_is_zero(sk, SK_LEN)) {
        seterr(err, errlen, "line %zu: private_key is all zero", seen[F_PRIVATE_KEY]);
        goto out;
    }
    if (tp_hpke_public_key(sk, c.public_key) != 0 ||
        tp_hpke_x25519_low_order(c.public_key)) {
        seterr(err, errlen, "line %zu: private_key gives a low-order public key",
               seen[F_PRIVATE_KEY]);
        goto out;
    }
    *cfg = c;
    rv = 0;
out:
    if (rv != 0 && sk)
        sodium_memzero(sk, SK_LEN);
    return rv;
}

/* ---- reading files ----------------------------------------------------------------- */

/* Opens |name| relative to |dfd| (|path| is its name for messages), checks who may
   read it, reads it into |fbuf| (GW_KEYFILE_MAX + 1 bytes, wiped before return) and
   parses it into |cfg| and |sk|. */
static int read_keyfile(int dfd, const char *name, const char *path, char *fbuf,
                        struct tp_ohttp_key_config *cfg, uint8_t *sk, char *err,
                        size_t errlen)
{
    char perr[256];
    struct stat st;
    size_t total = 0;
    int fd, rv = -1;

    /* O_NONBLOCK: a FIFO named *.key must not hang start-up; fstat refuses it. */
    fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd == -1) {
        if (errno == ELOOP)
            seterr(err, errlen, "%s: is a symbolic link (refused)", path);
        else
            seterr(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) == -1) {
        seterr(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        seterr(err, errlen, "%s: not a regular file", path);
        goto out;
    }
    if (st.st_uid != geteuid()) {
        seterr(err, errlen, "%s: not owned by the user loading it (uid %lu)", path,
               (unsigned long)geteuid());
        goto out;
    }
    if (st.st_mode & (S_IRGRP | S_IROTH)) {
        seterr(err, errlen, "%s: readable by group or others (chmod 600)", path);
        goto out;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        seterr(err, errlen, "%s: accessible by group or others (chmod 600)", path);
        goto out;
    }
    if (st.st_size > GW_KEYFILE_MAX) {
        seterr(err, errlen, "%s: larger than %d bytes", path, GW_KEYFILE_MAX);
        goto out;
    }
    /* One byte of room past the limit tells a file that grew since fstat. */
    for (;;) {
        ssize_t r = read(fd, fbuf + total, GW_KEYFILE_MAX + 1 - total);
        if (r == -1) {
            if (errno == EINTR)
                continue;
            seterr(err, errlen, "%s: %s", path, strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        total += (size_t)r;
        if (total > GW_KEYFILE_MAX) {
            seterr(err, errlen, "%s: larger than %d bytes", path, GW_KEYFILE_MAX);
            goto out;
        }
    }
    if (gw_keyfile_parse(fbuf, total, cfg, sk, perr, sizeof(perr)) != 0) {
        seterr(err, errlen, "%s: %s", path, perr);
        goto out;
    }
    rv = 0;
out:
    if (fd != -1 && close(fd) == -1 && rv == 0) {
        seterr(err, errlen, "%s: %s", path, strerror(errno));
        rv = -1;
    }
    sodium_memzero(fbuf, total);
    if (rv != 0)
        sodium_memzero(sk, SK_LEN);
    return rv;
}

int gw_keyfile_read(const char *path, struct tp_ohttp_key_config *cfg, uint8_t *sk,
                    char *err, size_t errlen)
{
    char *fbuf;
    int rv;

    if (sodium_init() == -1) {
        seterr(err, errlen, "%s: libsodium could not be initialised", path);
        sodium_memzero(sk, SK_LEN);
        return -1;
    }
    fbuf = sodium_malloc(GW_KEYFILE_MAX + 1);
    if (!fbuf) {
        seterr(err, errlen, "%s: out of memory", path);
        sodium_memzero(sk, SK_LEN);
        return -1;
    }
    rv = read_keyfile(AT_FDCWD, path, path, fbuf, cfg, sk, err, errlen);
    sodium_free(fbuf);
    return rv;
}

/* ---- the store --------------------------------------------------------------------- */

static bool is_key_name(const char *name)
{
    size_t n = strlen(name);

    return name[0] != '.' && n > 4 && memcmp(name + n - 4, ".key", 4) == 0;
}

static int encode_configs(struct gw_keystore *ks, char *err, size_t errlen,
                          const char *dir)
{
    struct tp_ohttp_key_config *list;
    size_t n = 0, len = 0;
    int rv = -1;

    list = calloc(ks->count, sizeof(*list));
    if (!list) {
        seterr(err, errlen, "%s: out of memory", dir);
        return -1;
    }
    for (size_t id = 0; id < NIDS; id++)
        if (ks->present[id])
            list[n++] = ks->cfgs[id];
    if (tp_ohttp_keys_encode(list, n, NULL, 0, &len) != 0) {
        seterr(err, errlen, "%s: cannot encode the key configurations", dir);
        goto out;
    }
    ks->configs = malloc(len);
    if (!ks->configs) {
        seterr(err, errlen, "%s: out of memory", dir);
        goto out;
    }
    if (tp_ohttp_keys_encode(list, n, ks->configs, len, &ks->configs_len) != 0) {
        seterr(err, errlen, "%s: cannot encode the key configurations", dir);
        goto out;
    }
    rv = 0;
out:
    free(list);
    return rv;
}

int gw_keystore_load(const char *dir, struct gw_keystore **out, char *err, size_t errlen)
{
    struct gw_keystore *ks = NULL;
    char *fbuf = NULL;
    char *paths[NIDS] = {NULL}; /* where each id came from, for the duplicate message */
    DIR *d = NULL;
    int dfd, rv = -1;

    if (sodium_init() == -1) {
        seterr(err, errlen, "%s: libsodium could not be initialised", dir);
        return -1;
    }
    /* The first load happens at start-up, before the workers: the one moment the
       process-wide secure heap may be created. If it cannot be locked, decapsulation
       stays on libsodium, reading the keys straight from this store. Once workers run
       (gw_keystore_setup_closed), a load (a reload that turns sealed requests on)
       never creates it: libsodium serves that process until a restart. */
    if (!atomic_load(&setup_closed))
        (void)tp_hpke_x25519_openssl(OSSL_ARENA);
    ks = calloc(1, sizeof(*ks));
    if (!ks) {
        seterr(err, errlen, "%s: out of memory", dir);
        return -1;
    }
    /* sodium_malloc locks the pages where RLIMIT_MEMLOCK allows and goes on anyway. */
    ks->secrets = sodium_malloc(NSLOTS * SK_LEN);
    fbuf = sodium_malloc(GW_KEYFILE_MAX + 1);
    if (!ks->secrets || !fbuf) {
        seterr(err, errlen, "%s: out of memory", dir);
        goto out;
    }
    d = opendir(dir);
    if (!d) {
        seterr(err, errlen, "%s: %s", dir, strerror(errno));
        goto out;
    }
    dfd = dirfd(d);
    if (dfd == -1) {
        seterr(err, errlen, "%s: %s", dir, strerror(errno));
        goto out;
    }
    for (;;) {
        struct tp_ohttp_key_config cfg;
        struct dirent *e;
        char path[4096];
        uint8_t *scratch = ks->secrets + SCRATCH * SK_LEN;
        int n;

        errno = 0;
        e = readdir(d);
        if (!e) {
            if (errno != 0) {
                seterr(err, errlen, "%s: %s", dir, strerror(errno));
                goto out;
            }
            break;
        }
        if (!is_key_name(e->d_name))
            continue;
        n = snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (n < 0 || (size_t)n >= sizeof(path)) {
            seterr(err, errlen, "%s: file name too long", dir);
            goto out;
        }
        if (read_keyfile(dfd, e->d_name, path, fbuf, &cfg, scratch, err, errlen) != 0)
            goto out;
        if (ks->present[cfg.key_id]) {
            sodium_memzero(scratch, SK_LEN);
            seterr(err, errlen, "%s: key id %u already loaded from %s", path,
                   (unsigned)cfg.key_id, paths[cfg.key_id]);
            goto out;
        }
        paths[cfg.key_id] = strdup(path);
        if (!paths[cfg.key_id]) {
            sodium_memzero(scratch, SK_LEN);
            seterr(err, errlen, "%s: out of memory", dir);
            goto out;
        }
        memcpy(ks->secrets + (size_t)cfg.key_id * SK_LEN, scratch, SK_LEN);
        sodium_memzero(scratch, SK_LEN);
        ks->present[cfg.key_id] = true;
        ks->cfgs[cfg.key_id] = cfg;
        ks->count++;
    }
    if (closedir(d) == -1) {
        d = NULL;
        seterr(err, errlen, "%s: %s", dir, strerror(errno));
        goto out;
    }
    d = NULL;
    if (ks->count == 0) {
        seterr(err, errlen, "%s: no *.key files", dir);
        goto out;
    }
    if (encode_configs(ks, err, errlen, dir) != 0)
        goto out;
    if (sodium_mprotect_readonly(ks->secrets) == -1) {
        seterr(err, errlen, "%s: cannot make key memory read-only: %s", dir,
               strerror(errno));
        goto out;
    }
    *out = ks;
    ks = NULL;
    rv = 0;
out:
    if (d)
        closedir(d); /* already failing; the error reported is the first one */
    for (size_t i = 0; i < NIDS; i++)
        free(paths[i]);
    sodium_free(fbuf);
    gw_keystore_free(ks);
    return rv;
}

void gw_keystore_free(struct gw_keystore *ks)
{
    if (!ks)
        return;
    /* sodium_free makes the region writable again and wipes it. */
    sodium_free(ks->secrets);
    ks->secrets = NULL;
    /* and each worker drops (and OpenSSL wipes) its copies at its next request. */
    tp_hpke_forget_keys();
    free(ks->configs);
    ks->configs = NULL;
    free(ks);
}

size_t gw_keystore_count(const struct gw_keystore *ks)
{
    return ks ? ks->count : 0;
}

int gw_keystore_lookup(void *arg, const struct tp_ohttp_header *hdr, const uint8_t **sk,
                       const uint8_t **pk)
{
    const struct gw_keystore *ks = arg;
    const struct tp_ohttp_key_config *cfg;
    struct tp_ohttp_suite want;

    if (!ks || !hdr || !ks->present[hdr->key_id])
        return -1;
    cfg = &ks->cfgs[hdr->key_id];
    want.kdf_id = hdr->kdf_id;
    want.aead_id = hdr->aead_id;
    if (hdr->kem_id != cfg->kem_id || !suite_listed(cfg->suites, cfg->n_suites, want))
        return -1;
    *sk = ks->secrets + (size_t)hdr->key_id * SK_LEN;
    *pk = cfg->public_key;
    return 0;
}

const uint8_t *gw_keystore_configs(const struct gw_keystore *ks, size_t *len)
{
    *len = ks ? ks->configs_len : 0;
    return ks ? ks->configs : NULL;
}

/* ---- generation -------------------------------------------------------------------- */

/* Appends to |buf| at *pos (|cap| bytes); false when it does not fit. */
static bool append(char *buf, size_t cap, size_t *pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static bool append(char *buf, size_t cap, size_t *pos, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (*pos >= cap)
        return false;
    va_start(ap, fmt);
    n = vsnprintf(buf + *pos, cap - *pos, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap - *pos)
        return false;
    *pos += (size_t)n;
    return true;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w == -1) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

int gw_keyfile_generate(const char *path, uint8_t key_id,
                        const struct tp_ohttp_suite *suites, size_t nsuites,
                        struct tp_ohttp_key_config *cfg, char *err, size_t errlen)
{
    struct tp_ohttp_key_config c, check;
    uint8_t sk[SK_LEN], sk2[SK_LEN];
    char hex[2 * SK_LEN + 1];
    char text[1024];
    char perr[256];
    size_t pos = 0;
    bool created = false;
    int fd = -1, rv = -1, r;

    memset(&c, 0, sizeof(c));
    sodium_memzero(sk, sizeof(sk));
    sodium_memzero(sk2, sizeof(sk2));
    sodium_memzero(hex, sizeof(hex));
    sodium_memzero(text, sizeof(text));
    if (!suites || nsuites == 0 || nsuites > TP_OHTTP_MAX_SUITES) {
        seterr(err, errlen, "%s: between 1 and %d suites needed", path,
               TP_OHTTP_MAX_SUITES);
        goto out;
    }
    for (size_t i = 0; i < nsuites; i++) {
        if (!suite_supported(suites[i]) || suite_listed(suites, i, suites[i])) {
            seterr(err, errlen, "%s: suite %zu is unsupported or listed twice", path,
                   i + 1);
            goto out;
        }
        c.suites[i] = suites[i];
    }
    c.n_suites = nsuites;
    c.key_id = key_id;
    c.kem_id = KEM_X25519;
    if (sodium_init() == -1) {
        seterr(err, errlen, "%s: libsodium could not be initialised", path);
        goto out;
    }
    r = tp_hpke_generate_keypair(sk, c.public_key);
    if (r != 0) {
        seterr(err, errlen, "%s: cannot generate a key: %s", path, tp_strerror(r));
        goto out;
    }
    sodium_bin2hex(hex, sizeof(hex), sk, sizeof(sk));
    if (!append(text, sizeof(text), &pos,
                "# zaslon OHTTP gateway key. Secret: keep it owner-only (chmod 600).\n"
                "key_id: %u\nkem: 0x%04x\nsuites:",
                (unsigned)key_id, (unsigned)KEM_X25519))
        goto toolong;
    for (size_t i = 0; i < nsuites; i++)
        if (!append(text, sizeof(text), &pos, " 0x%04x/0x%04x",
                    (unsigned)suites[i].kdf_id, (unsigned)suites[i].aead_id))
            goto toolong;
    if (!append(text, sizeof(text), &pos, "\nprivate_key: %s\n", hex))
        goto toolong;
    /* What is written must load: parse it back before touching the disk. This also
       refuses the (never expected) all-zero or low-order outcome of the generator. */
    if (gw_keyfile_parse(text, pos, &check, sk2, perr, sizeof(perr)) != 0) {
        seterr(err, errlen, "%s: generated key refused: %s", path, perr);
        goto out;
    }
    if (check.n_suites != c.n_suites || sodium_memcmp(sk, sk2, sizeof(sk)) != 0 ||
        memcmp(check.public_key, c.public_key, sizeof(c.public_key)) != 0) {
        seterr(err, errlen, "%s: generated key does not parse back", path);
        goto out;
    }

    fd =
        open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd == -1) {
        if (errno == EEXIST)
            seterr(err, errlen, "%s: already exists (refusing to overwrite)", path);
        else
            seterr(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    created = true;
    /* The umask may have taken bits away; 0600 exactly is what the loader wants. */
    if (fchmod(fd, 0600) == -1 || write_all(fd, text, pos) == -1 || fsync(fd) == -1) {
        seterr(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    r = close(fd);
    fd = -1;
    if (r == -1) {
        seterr(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    *cfg = c;
    rv = 0;
    goto out;
toolong:
    seterr(err, errlen, "%s: key file text too long", path);
out:
    if (fd != -1)
        close(fd); /* already failing; the error reported is the first one */
    if (rv != 0 && created && unlink(path) == -1 && err && errlen > 0) {
        size_t l = strlen(err);
        seterr(err + l, errlen - l, " (and could not remove it: %s)", strerror(errno));
    }
    sodium_memzero(sk, sizeof(sk));
    sodium_memzero(sk2, sizeof(sk2));
    sodium_memzero(hex, sizeof(hex));
    sodium_memzero(text, sizeof(text));
    return rv;
}
