/* zaslonctl keygen, keys export, keys show: the gateway's key files and the
   application/ohttp-keys bodies that clients and bootstrap bundles carry.

   Keys are read and written through gw_keystore.c, so `keys export` refuses exactly
   what the daemon refuses. Nothing here ever prints or logs a private key: messages go
   to stderr, public configurations to stdout. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "ctl.h"
#include "gw_keystore.h"
#include "tp_err.h"
#include "tp_hpke.h"
#include "tp_ohttp.h"

/* Names --suites accepts, and how `keys show` names the pairs. */
static const struct {
    const char *name;
    struct tp_ohttp_suite suite;
} suite_names[] = {
    {"aes128gcm", {TP_HPKE_KDF_HKDF_SHA256, TP_HPKE_AEAD_AES128GCM}},
    {"aes256gcm", {TP_HPKE_KDF_HKDF_SHA256, TP_HPKE_AEAD_AES256GCM}},
    {"chacha20poly1305", {TP_HPKE_KDF_HKDF_SHA256, TP_HPKE_AEAD_CHACHA20POLY1305}},
};
#define N_SUITE_NAMES (sizeof(suite_names) / sizeof(suite_names[0]))

/* Matches option |name| ("--out") at argv[*i], as "--out VALUE" or "--out=VALUE".
   Returns 1 and sets *val (advancing *i past a separate value), 0 if argv[*i] is
   another option, -1 if the value is missing or the option was already given. */
static int opt_value(int argc, char **argv, int *i, const char *name, const char **val)
{
    size_t n = strlen(name);
    const char *a = argv[*i];

    if (strncmp(a, name, n) != 0 || (a[n] != '\0' && a[n] != '='))
        return 0;
    if (*val) {
        fprintf(stderr, "zaslonctl: %s given twice\n", name);
        return -1;
    }
    if (a[n] == '=') {
        *val = a + n + 1;
        return 1;
    }
    if (*i + 1 >= argc) {
        fprintf(stderr, "zaslonctl: %s needs a value\n", name);
        return -1;
    }
    *i += 1;
    *val = argv[*i];
    return 1;
}

/* Decimal 0..255, digits only. */
static bool parse_key_id(const char *s, uint8_t *out)
{
    char *end = NULL;
    unsigned long v;

    if (s[0] < '0' || s[0] > '9')
        return false;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > 255)
        return false;
    *out = (uint8_t)v;
    return true;
}

/* "aes128gcm,chacha20poly1305" into |out| (room for N_SUITE_NAMES), distinct names. */
static bool parse_suite_list(const char *s, struct tp_ohttp_suite *out, size_t *n)
{
    *n = 0;
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        size_t k;

        for (k = 0; k < N_SUITE_NAMES; k++)
            if (strlen(suite_names[k].name) == len &&
                memcmp(s, suite_names[k].name, len) == 0)
                break;
        if (k == N_SUITE_NAMES) {
            fprintf(
                stderr,
                "zaslonctl: --suites takes aes128gcm, aes256gcm and chacha20poly1305, "
                "comma-separated\n");
            return false;
        }
        for (size_t j = 0; j < *n; j++) {
            if (out[j].aead_id == suite_names[k].suite.aead_id) {
                fprintf(stderr, "zaslonctl: --suites names %s twice\n",
                        suite_names[k].name);
                return false;
            }
        }
        out[(*n)++] = suite_names[k].suite;
        if (!comma)
            return true;
        s = comma + 1;
    }
}

static const char *suite_name(struct tp_ohttp_suite s)
{
    for (size_t k = 0; k < N_SUITE_NAMES; k++)
        if (suite_names[k].suite.kdf_id == s.kdf_id &&
            suite_names[k].suite.aead_id == s.aead_id)
            return suite_names[k].name;
    return "unknown";
}

/* Prints |len| public bytes as one line of hex on stdout. Returns 0 or -1. */
static int print_hex(const uint8_t *p, size_t len)
{
    char *hex = malloc(2 * len + 1);

    if (!hex) {
        fprintf(stderr, "zaslonctl: out of memory\n");
        return -1;
    }
    sodium_bin2hex(hex, 2 * len + 1, p, len);
    printf("%s\n", hex);
    free(hex);
    return 0;
}

/* Checks that everything written to stdout arrived (a closed pipe is a failure). */
static int flush_stdout(void)
{
    if (fflush(stdout) == EOF || ferror(stdout)) {
        fprintf(stderr, "zaslonctl: stdout: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w == -1) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Writes public bytes to |path| with mode 0644, replacing it atomically (a bundle
   builder reading the old file never sees half of the new one). Returns 0 or -1. */
static int write_public_file(const char *path, const uint8_t *p, size_t len)
{
    char tmp[4096];
    int fd, n;

    n = snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        fprintf(stderr, "zaslonctl: %s: name too long\n", path);
        return -1;
    }
    fd = mkstemp(tmp);
    if (fd == -1) {
        fprintf(stderr, "zaslonctl: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (fchmod(fd, 0644) == -1 || write_all(fd, p, len) == -1 || fsync(fd) == -1) {
        fprintf(stderr, "zaslonctl: %s: %s\n", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    if (close(fd) == -1) {
        fprintf(stderr, "zaslonctl: %s: %s\n", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) == -1) {
        fprintf(stderr, "zaslonctl: %s: %s\n", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* ---- keygen ------------------------------------------------------------------------ */

static int keygen(int argc, char **argv)
{
    const char *id_s = NULL, *suites_s = NULL, *out = NULL, *config_out = NULL;
    struct tp_ohttp_suite suites[N_SUITE_NAMES];
    struct tp_ohttp_key_config cfg;
    uint8_t buf[2 + 64 + 4 * N_SUITE_NAMES]; /* one configuration, or a list of one */
    size_t nsuites = 0, len = 0;
    uint8_t key_id = 0;
    char err[1024];

    for (int i = 0; i < argc; i++) {
        int r;
        if ((r = opt_value(argc, argv, &i, "--id", &id_s)) ||
            (r = opt_value(argc, argv, &i, "--suites", &suites_s)) ||
            (r = opt_value(argc, argv, &i, "--out", &out)) ||
            (r = opt_value(argc, argv, &i, "--config-out", &config_out))) {
            if (r < 0)
                return 2;
            continue;
        }
        fprintf(stderr, "zaslonctl keygen: unexpected argument \"%s\"\n", argv[i]);
        return 2;
    }
    if (!id_s || !out) {
        fprintf(stderr, "zaslonctl keygen: --id and --out are required\n");
        return 2;
    }
    if (!parse_key_id(id_s, &key_id)) {
        fprintf(stderr, "zaslonctl keygen: --id takes a number 0..255\n");
        return 2;
    }
    if (!parse_suite_list(suites_s ? suites_s : "aes128gcm,chacha20poly1305", suites,
                          &nsuites))
        return 2;
    if (gw_keyfile_generate(out, key_id, suites, nsuites, &cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "zaslonctl keygen: %s\n", err);
        return 1;
    }
    fprintf(stderr,
            "zaslonctl keygen: %s: key id %u written (secret: keep it owner-only)\n", out,
            (unsigned)key_id);
    if (config_out) {
        if (tp_ohttp_keys_encode(&cfg, 1, buf, sizeof(buf), &len) != 0 ||
            write_public_file(config_out, buf, len) != 0) {
            fprintf(stderr, "zaslonctl keygen: %s: not written (the key file is)\n",
                    config_out);
            return 1;
        }
    }
    if (tp_ohttp_key_config_encode(&cfg, buf, sizeof(buf), &len) != 0 ||
        print_hex(buf, len) != 0 || flush_stdout() != 0)
        return 1;
    return 0;
}

/* ---- keys export ------------------------------------------------------------------- */

static int keys_export(int argc, char **argv)
{
    const char *dir = NULL, *out = NULL;
    struct gw_keystore *ks = NULL;
    const uint8_t *body;
    bool hex = false;
    size_t len = 0;
    char err[1024];
    int rv = 1;

    for (int i = 0; i < argc; i++) {
        int r;
        if (strcmp(argv[i], "--hex") == 0) {
            hex = true;
            continue;
        }
        if ((r = opt_value(argc, argv, &i, "--dir", &dir)) ||
            (r = opt_value(argc, argv, &i, "--out", &out))) {
            if (r < 0)
                return 2;
            continue;
        }
        fprintf(stderr, "zaslonctl keys export: unexpected argument \"%s\"\n", argv[i]);
        return 2;
    }
    if (!dir || (!out && !hex) || (out && hex)) {
        fprintf(stderr,
                "zaslonctl keys export: --dir and one of --out or --hex needed\n");
        return 2;
    }
    if (gw_keystore_load(dir, &ks, err, sizeof(err)) != 0) {
        fprintf(stderr, "zaslonctl keys export: %s\n", err);
        return 1;
    }
    body = gw_keystore_configs(ks, &len);
    if (hex) {
        if (print_hex(body, len) == 0 && flush_stdout() == 0)
            rv = 0;
    } else if (write_public_file(out, body, len) == 0) {
        fprintf(stderr,
                "zaslonctl keys export: %s: %zu key configuration%s (%zu bytes)\n", out,
                gw_keystore_count(ks), gw_keystore_count(ks) == 1 ? "" : "s", len);
        rv = 0;
    }
    gw_keystore_free(ks);
    return rv;
}

/* ---- keys show --------------------------------------------------------------------- */

static int keys_show(int argc, char **argv)
{
    struct tp_ohttp_key_config cfg;
    uint8_t buf[2 + 64 + 4 * TP_OHTTP_MAX_SUITES];
    uint8_t *sk;
    size_t len = 0;
    char err[1024];

    if (argc != 1 || argv[0][0] == '-')
        return 2;
    if (sodium_init() == -1) {
        fprintf(stderr, "zaslonctl keys show: libsodium could not be initialised\n");
        return 1;
    }
    /* The private key is parsed (that is how the public key is found) but never shown. */
    sk = sodium_malloc(TP_HPKE_X25519_SK_LEN);
    if (!sk) {
        fprintf(stderr, "zaslonctl keys show: out of memory\n");
        return 1;
    }
    if (gw_keyfile_read(argv[0], &cfg, sk, err, sizeof(err)) != 0) {
        sodium_free(sk);
        fprintf(stderr, "zaslonctl keys show: %s\n", err);
        return 1;
    }
    sodium_free(sk);
    if (tp_ohttp_key_config_encode(&cfg, buf, sizeof(buf), &len) != 0) {
        fprintf(stderr, "zaslonctl keys show: cannot encode the key configuration\n");
        return 1;
    }
    printf("key_id: %u\nkem: 0x%04x (DHKEM(X25519, HKDF-SHA256))\nsuites:",
           (unsigned)cfg.key_id, (unsigned)cfg.kem_id);
    for (size_t i = 0; i < cfg.n_suites; i++)
        printf(" 0x%04x/0x%04x", (unsigned)cfg.suites[i].kdf_id,
               (unsigned)cfg.suites[i].aead_id);
    printf(" (");
    for (size_t i = 0; i < cfg.n_suites; i++)
        printf("%s%s", i ? ", " : "", suite_name(cfg.suites[i]));
    printf(")\npublic_key: ");
    if (print_hex(cfg.public_key, sizeof(cfg.public_key)) != 0)
        return 1;
    printf("config: ");
    if (print_hex(buf, len) != 0 || flush_stdout() != 0)
        return 1;
    return 0;
}

const struct ctl_command ctl_keys_commands[] = {
    {"keygen",
     "--id N [--suites aes128gcm,aes256gcm,chacha20poly1305] --out FILE [--config-out "
     "FILE]"
     "  generate a gateway key (file mode 0600; never overwrites); print its public key "
     "configuration as hex",
     keygen},
    {"keys export",
     "--dir DIR (--out FILE | --hex)  load DIR's *.key files as zaslon does and write "
     "their application/ohttp-keys (mode 0644) or print it as hex",
     keys_export},
    {"keys show", "FILE  print a key file's id, suites and public key configuration",
     keys_show},
    {NULL, NULL, NULL},
};
