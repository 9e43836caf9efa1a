/* The key store (gateway/gw_keystore.c): the strict key-file parser and every refusal
   (never quoting key bytes), directory loading with its secrecy checks in a mkdtemp
   directory, lookup by id and suite, the application/ohttp-keys encoding, generation
   (pinned through tp_rand_pin to reproduce RFC 9458 Appendix A's key configuration),
   and sealed requests opened with gw_keystore_lookup as the callback.

   On low-order keys: X25519 clamps a private key to 8k with 2^251 <= k < 2^252, and
   the base point has prime order L > 2^252, so no private key gives a low-order public
   key. The parser's low-order check cannot fire from any file; low_order_keys() shows
   that the scalars one might suspect all give ordinary points, and that the published
   low-order points are refused where they can occur (a peer's key configuration). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CUnit/CUnit.h>
#include <sodium.h>

#include "unit_suites.h"

#include "gw_keystore.h"
#include "tp_err.h"
#include "tp_hpke.h"
#include "tp_ohttp.h"
#include "tp_rand.h"
#include "tu_util.h"
#include "tu_vec.h"

/* RFC 9458 Appendix A's gateway key and its configuration (key id 1; (1,1), (1,3)). */
#define A_SK "3c168975674b2fa8e465970b79c8dcf09f1c741626480bd4c6162fc5b6a98e1a"
#define A_CONFIG                                                                         \
    "01002031e1f05a740102115220e9af918f738674aec95f54db6e04eb705aae8e798155000800010001" \
    "00010003"
/* Another key, for stores with several. */
#define B_SK "7f8a2d1c9e3b4a5f60718293a4b5c6d7e8f90112233445566778899aabbccdd0"

#define A_FILE                                                                           \
    "# zaslon OHTTP gateway key. Secret: keep it owner-only (chmod 600).\n"              \
    "key_id: 1\nkem: 0x0020\nsuites: 0x0001/0x0001 0x0001/0x0003\nprivate_key: " A_SK    \
    "\n"

/* ---- helpers ----------------------------------------------------------------------- */

/* True if |err| contains no 8-digit window of the key hex |hex| in either case. */
static bool no_key_bytes(const char *err, const char *hex)
{
    size_t n = strlen(hex);
    char w[9];

    for (size_t i = 0; i + 8 <= n; i++) {
        memcpy(w, hex + i, 8);
        w[8] = '\0';
        if (strstr(err, w))
            return false;
        for (size_t j = 0; j < 8; j++)
            if (w[j] >= 'a' && w[j] <= 'f')
                w[j] = (char)(w[j] - 'a' + 'A');
        if (strstr(err, w))
            return false;
    }
    return true;
}

static bool hex_eq(const uint8_t *p, size_t n, const char *hex)
{
    size_t hn = 0;
    uint8_t *h = tu_hex(hex, &hn);
    bool eq = h && hn == n && memcmp(h, p, n) == 0;
    free(h);
    return eq;
}

static int parse_str(const char *text, struct tp_ohttp_key_config *cfg, uint8_t *sk,
                     char *err, size_t errlen)
{
    return gw_keyfile_parse(text, strlen(text), cfg, sk, err, errlen);
}

/* Writes |text| to dir/name with exactly |mode| (whatever the umask). */
static bool write_file(const char *dir, const char *name, const char *text, mode_t mode)
{
    char path[1024];
    size_t len = strlen(text);
    int fd, n = snprintf(path, sizeof(path), "%s/%s", dir, name);
    bool ok;

    if (n < 0 || (size_t)n >= sizeof(path))
        return false;
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd == -1)
        return false;
    ok = fchmod(fd, mode) == 0 && write(fd, text, len) == (ssize_t)len;
    return close(fd) == 0 && ok;
}

static char *key_text(unsigned id, const char *suites, const char *sk_hex)
{
    static char buf[512];
    int n = snprintf(buf, sizeof(buf),
                     "key_id: %u\nkem: 0x0020\nsuites: %s\nprivate_key: %s\n", id, suites,
                     sk_hex);
    CU_ASSERT_FATAL(n > 0 && (size_t)n < sizeof(buf));
    return buf;
}

/* A fresh temp dir (malloc'd); rm_tree removes it with everything in it and frees the
   name. */
static char *new_dir(void)
{
    char tmpl[] = "/tmp/zaslon-ks-XXXXXX";
    char *d = mkdtemp(tmpl);
    CU_ASSERT_FATAL(d != NULL);
    d = strdup(d);
    CU_ASSERT_FATAL(d != NULL);
    return d;
}

static void rm_tree(char *dir)
{
    char cmd[1200];
    int n = snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    CU_ASSERT_FATAL(n > 0 && (size_t)n < sizeof(cmd) &&
                    strncmp(dir, "/tmp/zaslon-ks-", 15) == 0);
    CU_ASSERT(system(cmd) == 0);
    free(dir);
}

static char *join(const char *dir, const char *name)
{
    static char path[1024];
    int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
    CU_ASSERT_FATAL(n > 0 && (size_t)n < sizeof(path));
    return path;
}

/* ---- parsing ----------------------------------------------------------------------- */

static void parse_good(void)
{
    struct tp_ohttp_key_config cfg;
    uint8_t sk[32], enc[128];
    size_t n = 0;
    char err[256];

    /* Appendix A's key gives Appendix A's configuration byte for byte. */
    CU_ASSERT_EQUAL_FATAL(parse_str(A_FILE, &cfg, sk, err, sizeof(err)), 0);
    CU_ASSERT(hex_eq(sk, 32, A_SK));
    CU_ASSERT_EQUAL(tp_ohttp_key_config_encode(&cfg, enc, sizeof(enc), &n), 0);
    CU_ASSERT(hex_eq(enc, n, A_CONFIG));

    /* Order, blanks, comments, CRLF, upper-case hex, no final newline. */
    const char *variants[] = {
        "private_key: " A_SK
        "\nsuites: 0x0001/0x0001 0x0001/0x0003\nkem: 0x0020\nkey_id: 1",
        "\n\n# comment\n   # indented comment\nkey_id:1\r\nkem:\t0x0020  \r\n"
        "suites:   0x0001/0x0001\t 0x0001/0x0003 \nprivate_key : " A_SK "\n\n",
        "key_id: 1\nkem: 0x0020\nsuites: 0x0001/0x0001 0x0001/0x0003\nprivate_key: "
        "3C168975674B2FA8E465970B79C8DCF09F1C741626480BD4C6162FC5B6A98E1A\n",
    };
    for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
        memset(&cfg, 0, sizeof(cfg));
        CU_ASSERT_EQUAL(parse_str(variants[i], &cfg, sk, err, sizeof(err)), 0);
        CU_ASSERT(tp_ohttp_key_config_encode(&cfg, enc, sizeof(enc), &n) == 0 &&
                  hex_eq(enc, n, A_CONFIG));
    }

    /* Key ids at both ends; one suite; all three. */
    CU_ASSERT_EQUAL(
        parse_str(key_text(0, "0x0001/0x0002", B_SK), &cfg, sk, err, sizeof(err)), 0);
    CU_ASSERT(cfg.key_id == 0 && cfg.n_suites == 1 && cfg.suites[0].aead_id == 2);
    CU_ASSERT_EQUAL(
        parse_str(key_text(255, "0x0001/0x0003 0x0001/0x0002 0x0001/0x0001", B_SK), &cfg,
                  sk, err, sizeof(err)),
        0);
    CU_ASSERT(cfg.key_id == 255 && cfg.n_suites == 3 && cfg.suites[0].aead_id == 3 &&
              cfg.suites[2].aead_id == 1);
    CU_ASSERT(hex_eq(sk, 32, B_SK));
    uint8_t pk[32];
    CU_ASSERT(tp_hpke_public_key(sk, pk) == 0 && memcmp(pk, cfg.public_key, 32) == 0);
}

struct bad {
    const char *text;
    const char *why; /* a substring of the error */
};

static void parse_malformed(void)
{
    static const struct bad bad[] = {
        {"key_id: 1\nkem: 0x0020\nsuites: 0x0001/0x0001\nprivate_key: " A_SK
         "\ncolour: blue\n",
         "line 5: unknown name"},
        {"key_id: 1\nkem: 0x0020\nsuites: 0x0001/0x0001\nprivate_key: " A_SK "\n" A_SK
         "\n",
         "line 5: expected \"name: value\""},
        {"key_id: 1\nkem: 0x0020\nsuites: 0x0001/0x0001\n" A_SK ": x\nprivate_key: " A_SK
         "\n",
         "line 4: unknown name"},
        {"key_id: 1\nkey_id: 1\nkem: 0x0020\nsuites: 0x0001/0x0001\nprivate_key: " A_SK
         "\n",
         "line 2: key_id given twice (first on line 1)"},
        {"key_id: 1\nkem: 0x0020\nsuites: 0x0001/0x0001\nprivate_key: " A_SK
         "\nprivate_key: " A_SK "\n",
         "line 5: private_key given twice"},
        {"key_id: 1\nkem: 0x0020\nkem: 0x0020\nsuites: 0x0001/0x0001\nprivate_key: " A_SK
         "\n",
         "line 3: kem given twice"},
        {"key_id: 1\nkem: 0x0020\nsuites: 0x0001/0x0001\nsuites: "
         "0x0001/0x0001\nprivate_key: " A_SK,
         "line 4: suites given twice"},
        /* Bad hex: a 'g', a blank inside, 63 and 65 digits. */
        {"key_id: 1\nkem: 0x0020\nsuites: 0x0001/0x0001\nprivate_key: "
         "3c168975674b2fa8e465970b79c8dcf09f1c741626480bd4c6162fc5b6a98e1g\n",
         "line 4: private_key is not hex"},
        {"key_id: 1\nkem: 0x0020\nsuites: 0x0001/0x0001\nprivate_key: "
         "3c168975674b2fa8e465970b79c8dcf0 f1c741626480bd4c6162fc5b6a98e1a\n",
         "line 4: private_key is not hex"},
        {"key_id: 1\nkem: 0x0020\nsuites: 0x0001/0x0001\nprivate_key: "
         "3c168975674b2fa8e465970b79c8dcf09f1c741626480bd4c6162fc5b6a98e1\n",
         "line 4: private_key must be exactly 64 hex digits"},
        {"key_id: 1\nkem: 0x0020\nsuites: 0x0001/0x0001\nprivate_key: " A_SK "a\n",
         "line 4: private_key must be exactly 64 hex digits"},
        {"key_id: 1\nkem: 0x0020\nsuites: 0x0001/0x0001\nprivate_key: 0x" A_SK "\n",
         "line 4: private_key must be exactly 64 hex digits"},
        {"key_id: 1\nkem: 0x0020\nsuites: 0x0001/0x0001\nprivate_key:\n",
         "line 4: private_key has no value"},
        /* KEM. */
        {"key_id: 1\nkem: 0x0021\nsuites: 0x0001/0x0001\nprivate_key: " A_SK "\n",
         "line 2: unsupported kem"},
        {"key_id: 1\nkem: 0x0010\nsuites: 0x0001/0x0001\nprivate_key: " A_SK "\n",
         "line 2: unsupported kem"},
        {"key_id: 1\nkem: 32\nsuites: 0x0001/0x0001\nprivate_key: " A_SK "\n",
         "line 2: kem must be 0x and 4 hex digits"},
        {"key_id: 1\nkem: 0x00020\nsuites: 0x0001/0x0001\nprivate_key: " A_SK "\n",
         "line 2: kem must be"},
        /* Suites. */
        {"key_id: 1\nkem: 0x0020\nsuites: 0x0001/0x0001 0x0001/0x0004\nprivate_key: " A_SK
         "\n",
         "line 3: suite 2: unsupported AEAD"},
        {"key_id: 1\nkem: 0x0020\nsuites: 0x0001/0xffff\nprivate_key: " A_SK "\n",
         "line 3: suite 1: unsupported AEAD"},
        {"key_id: 1\nkem: 0x0020\nsuites: 0x0002/0x0001\nprivate_key: " A_SK "\n",
         "line 3: suite 1: unsupported KDF"},
        {"key_id: 1\nkem: 0x0020\nsuites: 0x0001-0x0001\nprivate_key: " A_SK "\n",
         "line 3: suite 1 is not of the form"},
        {"key_id: 1\nkem: 0x0020\nsuites: 0x0001/0x0001,0x0001/0x0003\nprivate_key: " A_SK
         "\n",
         "line 3: suite 1 is not of the form"},
        {"key_id: 1\nkem: 0x0020\nsuites: 1/1\nprivate_key: " A_SK "\n",
         "line 3: suite 1 is not of the form"},
        {"key_id: 1\nkem: 0x0020\nsuites: 0x0001/0x0001 0x0001/0x0001\nprivate_key: " A_SK
         "\n",
         "line 3: suite 2 listed twice"},
        {"key_id: 1\nkem: 0x0020\nsuites:   \nprivate_key: " A_SK "\n",
         "line 3: suites has no value"},
        /* Key ids. */
        {"key_id: 256\nkem: 0x0020\nsuites: 0x0001/0x0001\nprivate_key: " A_SK "\n",
         "line 1: key_id must be a decimal number 0..255"},
        {"key_id: -1\nkem: 0x0020\nsuites: 0x0001/0x0001\nprivate_key: " A_SK "\n",
         "line 1: key_id must be"},
        {"key_id: +1\nkem: 0x0020\nsuites: 0x0001/0x0001\nprivate_key: " A_SK "\n",
         "line 1: key_id must be"},
        {"key_id: 0x1\nkem: 0x0020\nsuites: 0x0001/0x0001\nprivate_key: " A_SK "\n",
         "line 1: key_id must be"},
        {"key_id: 1 # one\nkem: 0x0020\nsuites: 0x0001/0x0001\nprivate_key: " A_SK "\n",
         "line 1: key_id must be"},
        {"key_id: 99999999999999999999999\nkem: 0x0020\nsuites: "
         "0x0001/0x0001\nprivate_key: " A_SK,
         "line 1: key_id must be"},
        /* Missing fields. */
        {"kem: 0x0020\nsuites: 0x0001/0x0001\nprivate_key: " A_SK "\n", "missing key_id"},
        {"key_id: 1\nsuites: 0x0001/0x0001\nprivate_key: " A_SK "\n", "missing kem"},
        {"key_id: 1\nkem: 0x0020\nprivate_key: " A_SK "\n", "missing suites"},
        {"key_id: 1\nkem: 0x0020\nsuites: 0x0001/0x0001\n# private_key: " A_SK "\n",
         "missing private_key"},
        {"", "missing key_id"},
        {"# nothing\n\n", "missing key_id"},
        /* An all-zero scalar: valid for X25519 after clamping, refused as a known key. */
        {"key_id: 1\nkem: 0x0020\nsuites: 0x0001/0x0001\nprivate_key: "
         "0000000000000000000000000000000000000000000000000000000000000000\n",
         "line 4: private_key is all zero"},
    };
    struct tp_ohttp_key_config cfg, sentinel;
    uint8_t sk[32];
    char err[256];

    memset(&sentinel, 0xa5, sizeof(sentinel));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cfg = sentinel;
        memset(sk, 0xee, sizeof(sk));
        err[0] = '\0';
        int rv = parse_str(bad[i].text, &cfg, sk, err, sizeof(err));
        CU_ASSERT_EQUAL(rv, -1);
        if (rv != -1 || !strstr(err, bad[i].why))
            fprintf(stderr, "\n  case %zu: got \"%s\", want \"%s\"\n", i, err,
                    bad[i].why);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, bad[i].why));
        CU_ASSERT(no_key_bytes(err, A_SK));
        CU_ASSERT(sodium_is_zero(sk, sizeof(sk)));            /* wiped */
        CU_ASSERT(memcmp(&cfg, &sentinel, sizeof(cfg)) == 0); /* untouched */
    }

    /* A NUL byte anywhere; a buffer that is not NUL-terminated is read to |len| only. */
    char buf[sizeof(A_FILE)];
    memcpy(buf, A_FILE, sizeof(A_FILE));
    buf[80] = '\0';
    CU_ASSERT_EQUAL(gw_keyfile_parse(buf, sizeof(A_FILE) - 1, &cfg, sk, err, sizeof(err)),
                    -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "NUL byte"));
    memcpy(buf, A_FILE, sizeof(A_FILE) - 1);
    buf[sizeof(A_FILE) - 1] = 'x'; /* no terminator: strlen would run past */
    CU_ASSERT_EQUAL(gw_keyfile_parse(buf, sizeof(A_FILE) - 1, &cfg, sk, err, sizeof(err)),
                    0);
    /* Cut inside the private key: too few digits. */
    CU_ASSERT_EQUAL(
        gw_keyfile_parse(buf, sizeof(A_FILE) - 10, &cfg, sk, err, sizeof(err)), -1);
    CU_ASSERT(no_key_bytes(err, A_SK) && sodium_is_zero(sk, 32));
    /* Tiny and absent error buffers are fine. */
    CU_ASSERT_EQUAL(parse_str("colour: blue\n", &cfg, sk, err, 4), -1);
    CU_ASSERT_EQUAL(strlen(err), 3);
    CU_ASSERT_EQUAL(parse_str("colour: blue\n", &cfg, sk, NULL, 0), -1);
}

/* Little-endian scalars one might expect to give a weak public key. */
static const char *const suspicious_sk[] = {
    "0100000000000000000000000000000000000000000000000000000000000000", /* 1 */
    "0800000000000000000000000000000000000000000000000000000000000000", /* 8 */
    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010", /* L */
    "0000000000000000000000000000000000000000000000000000000000000080",
    "0000000000000000000000000000000000000000000000000000000000000040", /* 2^254 */
    /* The published low-order points, used as scalars. */
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
};

static void low_order_keys(void)
{
    struct tp_ohttp_key_config cfg;
    uint8_t sk[32], buf[128];
    size_t n = 0;
    char err[256];

    /* Clamping makes every one of these an ordinary key: none is refused. */
    for (size_t i = 0; i < sizeof(suspicious_sk) / sizeof(suspicious_sk[0]); i++) {
        CU_ASSERT_EQUAL(parse_str(key_text(1, "0x0001/0x0001", suspicious_sk[i]), &cfg,
                                  sk, err, sizeof(err)),
                        0);
        CU_ASSERT(!tp_hpke_x25519_low_order(cfg.public_key));
    }
    /* Where a low-order public key can occur, in a configuration received from
       elsewhere, it is refused. */
    uint8_t *kc = tu_hex(A_CONFIG, &n);
    CU_ASSERT_FATAL(kc && n == 45);
    memcpy(buf, kc, n);
    CU_ASSERT_EQUAL(tp_ohttp_key_config_parse(&cfg, buf, n), 0);
    memset(buf + 3, 0, 32);
    CU_ASSERT(tp_hpke_x25519_low_order(buf + 3));
    CU_ASSERT_EQUAL(tp_ohttp_key_config_parse(&cfg, buf, n), TP_ERR_INVALID);
    buf[3] = 1;
    CU_ASSERT_EQUAL(tp_ohttp_key_config_parse(&cfg, buf, n), TP_ERR_INVALID);
    free(kc);
}

/* ---- loading directories ----------------------------------------------------------- */

static void load_refusals(void)
{
    struct gw_keystore *ks = NULL, *never = (struct gw_keystore *)&ks;
    char err[1024];
    char *dir = new_dir();

    /* Empty directory, missing directory. */
    CU_ASSERT_EQUAL(gw_keystore_load(dir, &ks, err, sizeof(err)), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "no *.key files"));
    CU_ASSERT_PTR_NULL(ks);
    CU_ASSERT_EQUAL(gw_keystore_load("/nonexistent/zaslon-keys", &ks, err, sizeof(err)),
                    -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "/nonexistent/zaslon-keys: "));

    /* Other names are skipped even when unreadable garbage; still no keys. */
    CU_ASSERT_FATAL(write_file(dir, "notes.txt", "hello " A_SK "\n", 0644));
    CU_ASSERT_FATAL(write_file(dir, "a.key.bak", "junk\n", 0600));
    CU_ASSERT_FATAL(write_file(dir, ".hidden.key", "junk\n", 0644));
    CU_ASSERT_FATAL(write_file(dir, "key", "junk\n", 0644));
    CU_ASSERT_FATAL(write_file(dir, ".key", "junk\n", 0644));
    CU_ASSERT_EQUAL(gw_keystore_load(dir, &ks, err, sizeof(err)), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "no *.key files"));

    /* Group- or other-accessible key files, each alone in the directory. */
    static const struct {
        mode_t mode;
        const char *why;
    } modes[] = {
        {0640, "readable by group or others (chmod 600)"},
        {0604, "readable by group or others (chmod 600)"},
        {0644, "readable by group or others (chmod 600)"},
        {0620, "accessible by group or others (chmod 600)"},
        {0601, "accessible by group or others (chmod 600)"},
        {0610, "accessible by group or others (chmod 600)"},
    };
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        CU_ASSERT_FATAL(write_file(dir, "a.key", A_FILE, modes[i].mode));
        ks = never;
        CU_ASSERT_EQUAL(gw_keystore_load(dir, &ks, err, sizeof(err)), -1);
        CU_ASSERT_PTR_EQUAL(ks, never); /* untouched on failure */
        CU_ASSERT_PTR_NOT_NULL(strstr(err, join(dir, "a.key")));
        CU_ASSERT_PTR_NOT_NULL(strstr(err, modes[i].why));
        CU_ASSERT(no_key_bytes(err, A_SK));
    }
    CU_ASSERT_FATAL(unlink(join(dir, "a.key")) == 0);

    /* A symbolic link, even to a good file; a directory; a FIFO (must not hang). */
    char *other = new_dir();
    char target[1024];
    snprintf(target, sizeof(target), "%s", join(other, "a.key"));
    CU_ASSERT_FATAL(write_file(other, "a.key", A_FILE, 0600));
    CU_ASSERT_FATAL(symlink(target, join(dir, "link.key")) == 0);
    CU_ASSERT_EQUAL(gw_keystore_load(dir, &ks, err, sizeof(err)), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "link.key: is a symbolic link"));
    CU_ASSERT_FATAL(unlink(join(dir, "link.key")) == 0);
    rm_tree(other);

    CU_ASSERT_FATAL(mkdir(join(dir, "d.key"), 0700) == 0);
    CU_ASSERT_EQUAL(gw_keystore_load(dir, &ks, err, sizeof(err)), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "d.key: not a regular file"));
    CU_ASSERT_FATAL(rmdir(join(dir, "d.key")) == 0);

    CU_ASSERT_FATAL(mkfifo(join(dir, "f.key"), 0600) == 0);
    CU_ASSERT_EQUAL(gw_keystore_load(dir, &ks, err, sizeof(err)), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "f.key: not a regular file"));
    CU_ASSERT_FATAL(unlink(join(dir, "f.key")) == 0);

    /* Up to 4 KiB (a valid key after a long comment line), and one byte more. */
    char *big = malloc(GW_KEYFILE_MAX + 2);
    size_t alen = strlen(A_FILE), pad = GW_KEYFILE_MAX - alen - 1;
    CU_ASSERT_FATAL(big != NULL);
    memset(big, '#', pad);
    big[pad] = '\n';
    memcpy(big + pad + 1, A_FILE, alen + 1);
    CU_ASSERT_FATAL(strlen(big) == GW_KEYFILE_MAX);
    CU_ASSERT_FATAL(write_file(dir, "big.key", big, 0600));
    CU_ASSERT_EQUAL(gw_keystore_load(dir, &ks, err, sizeof(err)), 0);
    gw_keystore_free(ks);
    ks = NULL;
    memmove(big + 1, big, GW_KEYFILE_MAX + 1); /* 4097 bytes */
    CU_ASSERT_FATAL(strlen(big) == GW_KEYFILE_MAX + 1);
    CU_ASSERT_FATAL(write_file(dir, "big.key", big, 0600));
    CU_ASSERT_EQUAL(gw_keystore_load(dir, &ks, err, sizeof(err)), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "big.key: larger than 4096 bytes"));
    CU_ASSERT_FATAL(unlink(join(dir, "big.key")) == 0);
    free(big);

    /* A malformed file: "path: line N: reason", no key bytes. */
    CU_ASSERT_FATAL(write_file(dir, "m.key", key_text(1, "0x0001/0x0009", A_SK), 0600));
    CU_ASSERT_EQUAL(gw_keystore_load(dir, &ks, err, sizeof(err)), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "m.key: line 3: suite 1: unsupported AEAD"));
    CU_ASSERT(no_key_bytes(err, A_SK));
    CU_ASSERT_FATAL(unlink(join(dir, "m.key")) == 0);

    /* Two files with the same id: both named. */
    CU_ASSERT_FATAL(write_file(dir, "one.key", key_text(9, "0x0001/0x0001", A_SK), 0600));
    CU_ASSERT_FATAL(write_file(dir, "two.key", key_text(9, "0x0001/0x0003", B_SK), 0400));
    CU_ASSERT_EQUAL(gw_keystore_load(dir, &ks, err, sizeof(err)), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "key id 9 already loaded from"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "one.key"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "two.key"));
    CU_ASSERT(no_key_bytes(err, A_SK) && no_key_bytes(err, B_SK));
    CU_ASSERT_PTR_NULL(ks);

    /* Owned by someone else (needs root to arrange). */
    if (geteuid() == 0) {
        CU_ASSERT_FATAL(unlink(join(dir, "two.key")) == 0);
        CU_ASSERT_FATAL(chown(join(dir, "one.key"), 65534, 65534) == 0);
        CU_ASSERT_EQUAL(gw_keystore_load(dir, &ks, err, sizeof(err)), -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "one.key: not owned by the user loading it"));
    }
    rm_tree(dir);
}

static void load_and_lookup(void)
{
    struct gw_keystore *ks = NULL;
    const uint8_t *sk = NULL, *pk = NULL;
    struct tp_ohttp_key_config want[3], got[4];
    uint8_t sk_buf[32], enc[512];
    size_t n = 0, len = 0;
    char err[1024];
    char *dir = new_dir();

    /* 0600 and 0400 both load; ids arrive in any order; other files are skipped. */
    CU_ASSERT_FATAL(
        write_file(dir, "z.key", key_text(7, "0x0001/0x0001 0x0001/0x0003", A_SK), 0600));
    CU_ASSERT_FATAL(write_file(dir, "a.key", key_text(200, "0x0001/0x0002", B_SK), 0400));
    CU_ASSERT_FATAL(
        write_file(dir, "m.key", key_text(2, "0x0001/0x0003", suspicious_sk[2]), 0600));
    CU_ASSERT_FATAL(write_file(dir, "README", "not a key\n", 0644));
    CU_ASSERT_FATAL(write_file(dir, "old.key~", "junk\n", 0644));
    CU_ASSERT_EQUAL_FATAL(gw_keystore_load(dir, &ks, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(gw_keystore_count(ks), 3);
    CU_ASSERT_EQUAL(gw_keystore_count(NULL), 0);

    CU_ASSERT_EQUAL(parse_str(key_text(2, "0x0001/0x0003", suspicious_sk[2]), &want[0],
                              sk_buf, err, sizeof(err)),
                    0);
    CU_ASSERT_EQUAL(parse_str(key_text(7, "0x0001/0x0001 0x0001/0x0003", A_SK), &want[1],
                              sk_buf, err, sizeof(err)),
                    0);
    CU_ASSERT_EQUAL(parse_str(key_text(200, "0x0001/0x0002", B_SK), &want[2], sk_buf, err,
                              sizeof(err)),
                    0);

    /* Lookup by id and suite. */
    struct tp_ohttp_header h = {7, 0x0020, 1, 3};
    CU_ASSERT_EQUAL(gw_keystore_lookup(ks, &h, &sk, &pk), 0);
    CU_ASSERT(hex_eq(sk, 32, A_SK) && memcmp(pk, want[1].public_key, 32) == 0);
    h.aead_id = 1;
    CU_ASSERT_EQUAL(gw_keystore_lookup(ks, &h, &sk, &pk), 0);
    h.aead_id = 2; /* not listed for key 7 */
    sk = pk = NULL;
    CU_ASSERT_EQUAL(gw_keystore_lookup(ks, &h, &sk, &pk), -1);
    CU_ASSERT(sk == NULL && pk == NULL);
    h = (struct tp_ohttp_header){200, 0x0020, 1, 2};
    CU_ASSERT_EQUAL(gw_keystore_lookup(ks, &h, &sk, &pk), 0);
    CU_ASSERT(hex_eq(sk, 32, B_SK) && memcmp(pk, want[2].public_key, 32) == 0);
    h.kem_id = 0x0021;
    CU_ASSERT_EQUAL(gw_keystore_lookup(ks, &h, &sk, &pk), -1);
    h.kem_id = 0x0020;
    h.kdf_id = 2;
    CU_ASSERT_EQUAL(gw_keystore_lookup(ks, &h, &sk, &pk), -1);
    for (unsigned id = 0; id < 256; id++) {
        h = (struct tp_ohttp_header){(uint8_t)id, 0x0020, 1, 3};
        int rv = gw_keystore_lookup(ks, &h, &sk, &pk);
        CU_ASSERT_EQUAL(rv, id == 2 || id == 7 ? 0 : -1);
    }
    CU_ASSERT_EQUAL(gw_keystore_lookup(NULL, &h, &sk, &pk), -1);

    /* The application/ohttp-keys body: key id order, as tp_ohttp_keys_encode makes it,
       and it parses back. */
    const uint8_t *body = gw_keystore_configs(ks, &len);
    CU_ASSERT_EQUAL(tp_ohttp_keys_encode(want, 3, enc, sizeof(enc), &n), 0);
    CU_ASSERT(body && len == n && memcmp(body, enc, n) == 0);
    CU_ASSERT_EQUAL(tp_ohttp_keys_parse(body, len, got, 4, &n), 0);
    CU_ASSERT_EQUAL_FATAL(n, 3);
    CU_ASSERT(got[0].key_id == 2 && got[1].key_id == 7 && got[2].key_id == 200);
    for (size_t i = 0; i < 3; i++) {
        CU_ASSERT(memcmp(got[i].public_key, want[i].public_key, 32) == 0);
        CU_ASSERT(got[i].n_suites == want[i].n_suites);
    }
    /* Lengths: 2 + (1 + 2 + 32 + 2 + 4 * suites) each. */
    CU_ASSERT_EQUAL(len, (2 + 41) + (2 + 45) + (2 + 41));
    gw_keystore_free(ks);
    gw_keystore_free(NULL);
    CU_ASSERT_PTR_NULL(gw_keystore_configs(NULL, &len));
    CU_ASSERT_EQUAL(len, 0);
    rm_tree(dir);
}

/* ---- generation -------------------------------------------------------------------- */

static void generate(void)
{
    static const struct tp_ohttp_suite a_suites[] = {{1, 1}, {1, 3}};
    struct tp_ohttp_key_config cfg, sentinel;
    struct gw_keystore *ks = NULL;
    struct stat st;
    uint8_t buf[256];
    size_t n = 0, len = 0;
    char err[1024];
    char *dir = new_dir();
    char path[1024];

    /* Pinned to Appendix A's private key, generation reproduces its configuration. */
    size_t skn = 0;
    uint8_t *a_sk = tu_hex(A_SK, &skn);
    CU_ASSERT_FATAL(a_sk && skn == 32);
    snprintf(path, sizeof(path), "%s", join(dir, "a.key"));
    mode_t old = umask(0077 | 0200); /* even an odd umask gives exactly 0600 */
    tp_rand_pin(a_sk, 32);
    CU_ASSERT_EQUAL_FATAL(
        gw_keyfile_generate(path, 1, a_suites, 2, &cfg, err, sizeof(err)), 0);
    umask(old);
    CU_ASSERT_EQUAL(tp_rand_pinned(), 0);
    CU_ASSERT(tp_ohttp_key_config_encode(&cfg, buf, sizeof(buf), &n) == 0 &&
              hex_eq(buf, n, A_CONFIG));
    CU_ASSERT_FATAL(lstat(path, &st) == 0);
    CU_ASSERT(S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0600);
    CU_ASSERT_EQUAL(st.st_uid, geteuid());

    /* The file is exactly what the header documents. */
    char text[1024];
    FILE *f = fopen(path, "r");
    CU_ASSERT_FATAL(f != NULL);
    size_t tn = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[tn] = '\0';
    CU_ASSERT_STRING_EQUAL(text, A_FILE);

    /* Refuses an existing path (a file, or a symbolic link even to nowhere). */
    memset(&sentinel, 0x5a, sizeof(sentinel));
    cfg = sentinel;
    CU_ASSERT_EQUAL(gw_keyfile_generate(path, 2, a_suites, 2, &cfg, err, sizeof(err)),
                    -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "already exists"));
    CU_ASSERT(memcmp(&cfg, &sentinel, sizeof(cfg)) == 0);
    f = fopen(path, "r");
    CU_ASSERT_FATAL(f != NULL);
    tn = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[tn] = '\0';
    CU_ASSERT_STRING_EQUAL(text, A_FILE); /* untouched */
    char link[1024];
    snprintf(link, sizeof(link), "%s", join(dir, "dangling.key"));
    CU_ASSERT_FATAL(symlink("/nonexistent/zaslon-target", link) == 0);
    CU_ASSERT_EQUAL(gw_keyfile_generate(link, 2, a_suites, 2, &cfg, err, sizeof(err)),
                    -1);
    CU_ASSERT_EQUAL(access("/nonexistent/zaslon-target", F_OK), -1);
    CU_ASSERT_FATAL(unlink(link) == 0);

    /* Bad arguments create nothing. */
    static const struct tp_ohttp_suite bad1[] = {{1, 4}};
    static const struct tp_ohttp_suite bad2[] = {{1, 1}, {1, 1}};
    static const struct tp_ohttp_suite bad3[] = {{2, 1}};
    snprintf(path, sizeof(path), "%s", join(dir, "b.key"));
    CU_ASSERT_EQUAL(gw_keyfile_generate(path, 2, bad1, 1, &cfg, err, sizeof(err)), -1);
    CU_ASSERT_EQUAL(gw_keyfile_generate(path, 2, bad2, 2, &cfg, err, sizeof(err)), -1);
    CU_ASSERT_EQUAL(gw_keyfile_generate(path, 2, bad3, 1, &cfg, err, sizeof(err)), -1);
    CU_ASSERT_EQUAL(gw_keyfile_generate(path, 2, a_suites, 0, &cfg, err, sizeof(err)),
                    -1);
    CU_ASSERT_EQUAL(gw_keyfile_generate(path, 2, NULL, 1, &cfg, err, sizeof(err)), -1);
    CU_ASSERT_EQUAL(access(path, F_OK), -1);
    CU_ASSERT_EQUAL(gw_keyfile_generate("/nonexistent/dir/x.key", 2, a_suites, 2, &cfg,
                                        err, sizeof(err)),
                    -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "/nonexistent/dir/x.key: "));

    /* Random keys: generate two more, load all three, the store agrees. */
    struct tp_ohttp_key_config c2, c3;
    static const struct tp_ohttp_suite all[] = {{1, 1}, {1, 2}, {1, 3}};
    CU_ASSERT_EQUAL_FATAL(gw_keyfile_generate(path, 2, all, 3, &c2, err, sizeof(err)), 0);
    snprintf(path, sizeof(path), "%s", join(dir, "c.key"));
    CU_ASSERT_EQUAL_FATAL(gw_keyfile_generate(path, 0, all + 2, 1, &c3, err, sizeof(err)),
                          0);
    CU_ASSERT(memcmp(c2.public_key, c3.public_key, 32) != 0);
    CU_ASSERT_EQUAL_FATAL(gw_keystore_load(dir, &ks, err, sizeof(err)), 0);
    CU_ASSERT_EQUAL(gw_keystore_count(ks), 3);
    struct tp_ohttp_key_config list[3]; /* key id order: 0, 1, 2 */
    list[0] = c3;
    list[2] = c2;
    CU_ASSERT_EQUAL(gw_keyfile_read(join(dir, "a.key"), &list[1], buf, err, sizeof(err)),
                    0);
    CU_ASSERT(hex_eq(buf, 32, A_SK));
    uint8_t expect[512];
    CU_ASSERT_EQUAL(tp_ohttp_keys_encode(list, 3, expect, sizeof(expect), &n), 0);
    const uint8_t *body = gw_keystore_configs(ks, &len);
    CU_ASSERT(len == n && memcmp(body, expect, n) == 0);
    gw_keystore_free(ks);

    /* gw_keyfile_read applies the loader's checks. */
    CU_ASSERT_FATAL(chmod(join(dir, "a.key"), 0640) == 0);
    memset(buf, 0x77, 32);
    CU_ASSERT_EQUAL(gw_keyfile_read(join(dir, "a.key"), &list[1], buf, err, sizeof(err)),
                    -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "a.key: readable by group or others (chmod 600)"));
    CU_ASSERT(sodium_is_zero(buf, 32));
    free(a_sk);
    rm_tree(dir);
}

/* ---- sealed requests through the store --------------------------------------------- */

static void seal_open(void)
{
    struct gw_keystore *ks = NULL;
    struct tp_ohttp_key_config cfgs[2];
    struct tp_ohttp_client *cl = NULL;
    struct tp_ohttp_gateway *gw = NULL;
    uint8_t sealed[256], opened[256], res[256];
    size_t n = 0, m = 0, len = 0, count = 0;
    char err[1024];
    char *dir = new_dir();
    static const uint8_t msg[] = "\x00\x03GET\x05https\x0bexample.com\x01/";

    CU_ASSERT_FATAL(write_file(dir, "a.key", A_FILE, 0600));
    CU_ASSERT_FATAL(write_file(dir, "b.key", key_text(5, "0x0001/0x0002", B_SK), 0600));
    CU_ASSERT_EQUAL_FATAL(gw_keystore_load(dir, &ks, err, sizeof(err)), 0);
    const uint8_t *body = gw_keystore_configs(ks, &len);
    CU_ASSERT_EQUAL_FATAL(tp_ohttp_keys_parse(body, len, cfgs, 2, &count), 0);
    CU_ASSERT_EQUAL_FATAL(count, 2);
    CU_ASSERT_EQUAL_FATAL(tp_ohttp_client_new(&cl), 0);
    CU_ASSERT_EQUAL_FATAL(tp_ohttp_gateway_new(&gw), 0);

    /* Every listed suite of every key, both directions. */
    for (size_t k = 0; k < count; k++) {
        for (size_t s = 0; s < cfgs[k].n_suites; s++) {
            CU_ASSERT_EQUAL_FATAL(tp_ohttp_client_encap(cl, &cfgs[k], cfgs[k].suites[s],
                                                        msg, sizeof(msg) - 1, sealed,
                                                        sizeof(sealed), &n),
                                  0);
            CU_ASSERT_EQUAL(tp_ohttp_gateway_decap(gw, sealed, n, gw_keystore_lookup, ks,
                                                   opened, sizeof(opened), &m),
                            0);
            CU_ASSERT(m == sizeof(msg) - 1 && memcmp(opened, msg, m) == 0);
            CU_ASSERT_EQUAL(
                tp_ohttp_gateway_encap_response(gw, (const uint8_t *)"\x01\x40\xc8", 3,
                                                res, sizeof(res), &n),
                0);
            CU_ASSERT_EQUAL(
                tp_ohttp_client_decap_response(cl, res, n, opened, sizeof(opened), &m),
                0);
            CU_ASSERT(m == 3 && memcmp(opened, "\x01\x40\xc8", 3) == 0);
            tp_ohttp_gateway_reset(gw);
        }
    }

    /* RFC 9458 Appendix A's request opens with the store's key 1. */
    char *t = tu_read_vector("rfc9458-appendix-a.txt", NULL);
    CU_ASSERT_FATAL(t != NULL);
    size_t rn = 0, qn = 0;
    uint8_t *req = tu_vec_get(t, "encapsulated_request", &rn);
    uint8_t *plain = tu_vec_get(t, "request", &qn);
    free(t);
    CU_ASSERT_FATAL(req && plain);
    CU_ASSERT_EQUAL(tp_ohttp_gateway_decap(gw, req, rn, gw_keystore_lookup, ks, opened,
                                           sizeof(opened), &m),
                    0);
    CU_ASSERT(m == qn && memcmp(opened, plain, qn) == 0);
    tp_ohttp_gateway_reset(gw);

    /* A suite the key does not list: the client is talked into it, the store refuses. */
    struct tp_ohttp_key_config liar = cfgs[0];
    liar.suites[liar.n_suites++] = (struct tp_ohttp_suite){1, 2};
    CU_ASSERT_EQUAL(tp_ohttp_client_encap(cl, &liar, (struct tp_ohttp_suite){1, 2}, msg,
                                          sizeof(msg) - 1, sealed, sizeof(sealed), &n),
                    0);
    CU_ASSERT_EQUAL(tp_ohttp_gateway_decap(gw, sealed, n, gw_keystore_lookup, ks, opened,
                                           sizeof(opened), &m),
                    TP_ERR_UNSUPPORTED);
    /* An unknown key id. */
    liar = cfgs[0];
    liar.key_id = 3;
    CU_ASSERT_EQUAL(tp_ohttp_client_encap(cl, &liar, liar.suites[0], msg, sizeof(msg) - 1,
                                          sealed, sizeof(sealed), &n),
                    0);
    CU_ASSERT_EQUAL(tp_ohttp_gateway_decap(gw, sealed, n, gw_keystore_lookup, ks, opened,
                                           sizeof(opened), &m),
                    TP_ERR_UNSUPPORTED);
    /* The right id with another key's public key: the tag does not verify. */
    liar = cfgs[0];
    memcpy(liar.public_key, cfgs[1].public_key, 32);
    CU_ASSERT_EQUAL(tp_ohttp_client_encap(cl, &liar, liar.suites[0], msg, sizeof(msg) - 1,
                                          sealed, sizeof(sealed), &n),
                    0);
    CU_ASSERT_EQUAL(tp_ohttp_gateway_decap(gw, sealed, n, gw_keystore_lookup, ks, opened,
                                           sizeof(opened), &m),
                    TP_ERR_CRYPTO);

    free(req);
    free(plain);
    tp_ohttp_client_free(cl);
    tp_ohttp_gateway_free(gw);
    gw_keystore_free(ks);
    rm_tree(dir);
}

int test_gw_keystore(void)
{
    CU_pSuite s = CU_add_suite("gw_keystore", NULL, NULL);
    if (!s || !CU_add_test(s, "parse good key files", parse_good) ||
        !CU_add_test(s, "parse refusals, no key bytes in errors", parse_malformed) ||
        !CU_add_test(s, "low-order keys cannot come from a private key",
                     low_order_keys) ||
        !CU_add_test(s, "directory refusals", load_refusals) ||
        !CU_add_test(s, "load, lookup, configs", load_and_lookup) ||
        !CU_add_test(s, "generate", generate) ||
        !CU_add_test(s, "seal and open through the store", seal_open))
        return -1;
    return 0;
}
