#!/usr/bin/python3
"""Key commands of zaslonctl: `keygen` writes a 0600 key file (whatever the umask),
prints the RFC 9458 key configuration as one line of hex and, with --config-out,
writes it as a 0644 application/ohttp-keys body; it never overwrites. `keys export`
loads a directory exactly as the daemon does and writes (or prints) the
application/ohttp-keys list in key id order; it refuses group/other-readable key files,
duplicate ids and empty directories with messages that name the file and hold no key
bytes. `keys show` prints a key file's public side only. Usage errors exit 2."""

import os
import stat
import struct
import subprocess

import zl

KEM_X25519 = 0x0020
AEAD_NAMES = {"aes128gcm": 1, "aes256gcm": 2, "chacha20poly1305": 3}


def ctl(*args, umask=None):
    def pre():
        if umask is not None:
            os.umask(umask)
    r = subprocess.run((zl.ZASLONCTL_BIN,) + args, capture_output=True, timeout=30,
                       preexec_fn=pre)
    r.out = r.stdout.decode("utf-8", "replace")
    r.err = r.stderr.decode("utf-8", "replace")
    return r


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def private_hex(path):
    with open(path) as f:
        for line in f:
            if line.startswith("private_key:"):
                return line.split(":", 1)[1].strip()
    raise AssertionError("%s: no private_key line" % path)


def assert_no_key_bytes(text, sk_hex, what):
    """No 8-digit window of the private key, in either case, appears in |text|."""
    low = text.lower()
    for i in range(len(sk_hex) - 7):
        assert sk_hex[i:i + 8].lower() not in low, "%s quotes key bytes: %r" % (what, text)


def parse_config(b):
    """One RFC 9458 key configuration (X25519 only) -> (key_id, kem, pk, [(kdf, aead)])."""
    assert len(b) >= 1 + 2 + 32 + 2, "config too short: %d" % len(b)
    key_id, kem = b[0], struct.unpack(">H", b[1:3])[0]
    assert kem == KEM_X25519, "kem %#x" % kem
    pk = b[3:35]
    (slen,) = struct.unpack(">H", b[35:37])
    assert slen >= 4 and slen % 4 == 0 and len(b) == 37 + slen, "suites length %d" % slen
    suites = [struct.unpack(">HH", b[37 + i:41 + i]) for i in range(0, slen, 4)]
    return key_id, kem, pk, suites


def parse_keys(b):
    """An application/ohttp-keys body: configurations with 2-byte length prefixes."""
    out, i = [], 0
    while i < len(b):
        assert i + 2 <= len(b), "truncated length prefix"
        (n,) = struct.unpack(">H", b[i:i + 2])
        assert i + 2 + n <= len(b), "truncated configuration"
        out.append(bytes(b[i + 2:i + 2 + n]))
        i += 2 + n
    return out


def keygen(env, d, key_id, *extra, umask=None):
    path = os.path.join(d, "k%d.key" % key_id)
    r = ctl("keygen", "--id", str(key_id), "--out", path, *extra, umask=umask)
    assert r.returncode == 0, "keygen: %d %s" % (r.returncode, r.err)
    lines = r.out.splitlines()
    assert len(lines) == 1, "keygen stdout: %r" % r.out
    assert_no_key_bytes(r.out + r.err, private_hex(path), "keygen output")
    return path, bytes.fromhex(lines[0])


# ------------------------------------------------------------------------------ tests

def test_keygen_writes_0600_and_prints_config(env):
    d = env.newdir("keys")
    # A permissive umask must not leak into the key file's mode.
    path, cfg = keygen(env, d, 1, umask=0o000)
    assert mode(path) == 0o600, "mode %o" % mode(path)
    assert os.stat(path).st_uid == os.geteuid()
    # Defaults: HKDF-SHA256 with AES-128-GCM and ChaCha20-Poly1305 -> 45 bytes.
    key_id, kem, pk, suites = parse_config(cfg)
    assert len(cfg) == 1 + 2 + 32 + 2 + 8, len(cfg)
    assert (key_id, suites) == (1, [(1, 1), (1, 3)]), (key_id, suites)
    assert pk != bytes(32)
    # One suite: the 41-byte configuration (key_id, kem, pk, suites length, one suite).
    path2, cfg2 = keygen(env, d, 2, "--suites", "aes128gcm")
    assert len(cfg2) == 41, len(cfg2)
    assert parse_config(cfg2)[0] == 2 and parse_config(cfg2)[3] == [(1, 1)]
    assert mode(path2) == 0o600
    # All three, in the order asked.
    _, cfg3 = keygen(env, d, 3, "--suites=chacha20poly1305,aes256gcm,aes128gcm")
    assert parse_config(cfg3)[3] == [(1, 3), (1, 2), (1, 1)]
    # The file is the documented format.
    with open(path) as f:
        names = [l.split(":")[0] for l in f.read().splitlines() if l and not l.startswith("#")]
    assert names == ["key_id", "kem", "suites", "private_key"], names
    assert len(private_hex(path)) == 64


def test_keygen_config_out(env):
    d = env.newdir("keys")
    out = os.path.join(d, "ohttp-keys.bin")
    path, cfg = keygen(env, d, 9, "--config-out", out, umask=0o077)
    assert mode(out) == 0o644, "mode %o" % mode(out)
    with open(out, "rb") as f:
        body = f.read()
    assert body == struct.pack(">H", len(cfg)) + cfg, body.hex()
    assert not [n for n in os.listdir(d) if ".bin." in n], "temp file left behind"


def test_keygen_refuses_overwrite(env):
    d = env.newdir("keys")
    path, _ = keygen(env, d, 1)
    with open(path, "rb") as f:
        before = f.read()
    r = ctl("keygen", "--id", "2", "--out", path)
    assert r.returncode == 1, r.returncode
    assert "already exists" in r.err and path in r.err, r.err
    assert r.out == "", r.out
    with open(path, "rb") as f:
        assert f.read() == before, "key file changed"
    # Nor through a symbolic link (to a file that does not exist yet).
    link = os.path.join(d, "link.key")
    target = os.path.join(d, "target.key")
    os.symlink(target, link)
    r = ctl("keygen", "--id", "2", "--out", link)
    assert r.returncode == 1, r.returncode
    assert not os.path.exists(target), "followed the link"


def test_export_two_keys(env):
    d = env.newdir("keys")
    # Generated out of id order; the export lists them by id.
    _, cfg7 = keygen(env, d, 7, "--suites", "aes256gcm")
    _, cfg2 = keygen(env, d, 2)
    with open(os.path.join(d, "README"), "w") as f:  # not a key: skipped
        f.write("keys live here\n")
    out = env.path("ohttp-keys")
    r = ctl("keys", "export", "--dir", d, "--out", out, umask=0o077)
    assert r.returncode == 0, "%d %s" % (r.returncode, r.err)
    assert mode(out) == 0o644, "mode %o" % mode(out)
    with open(out, "rb") as f:
        body = f.read()
    cfgs = parse_keys(body)
    assert cfgs == [cfg2, cfg7], [c.hex() for c in cfgs]
    assert [parse_config(c)[0] for c in cfgs] == [2, 7]
    assert len(body) == (2 + 45) + (2 + 41)
    # --hex prints the same bytes; exporting again replaces the file.
    r = ctl("keys", "export", "--dir", d, "--hex")
    assert r.returncode == 0 and r.out.strip() == body.hex(), r.out
    r = ctl("keys", "export", "--dir", d, "--out", out)
    assert r.returncode == 0, r.err
    for k in ("k7.key", "k2.key"):
        assert_no_key_bytes(r.out + r.err, private_hex(os.path.join(d, k)), "export")


def test_export_refuses_readable_key(env):
    d = env.newdir("keys")
    keygen(env, d, 1)
    path, _ = keygen(env, d, 2)
    sk = private_hex(path)
    out = env.path("ohttp-keys")
    for m in (0o644, 0o640, 0o604):
        os.chmod(path, m)
        r = ctl("keys", "export", "--dir", d, "--out", out)
        assert r.returncode == 1, "mode %o: %d" % (m, r.returncode)
        assert path in r.err and "readable by group or others (chmod 600)" in r.err, r.err
        assert_no_key_bytes(r.out + r.err, sk, "refusal")
        assert r.out == "" and not os.path.exists(out)
    os.chmod(path, 0o400)
    r = ctl("keys", "export", "--dir", d, "--out", out)
    assert r.returncode == 0, r.err


def test_export_refusals(env):
    # No key files at all.
    d = env.newdir("keys")
    r = ctl("keys", "export", "--dir", d, "--hex")
    assert r.returncode == 1 and "no *.key files" in r.err, r.err
    # Duplicate ids: both files named.
    a, _ = keygen(env, d, 4)
    other = env.newdir("other")
    b, _ = keygen(env, other, 4)
    os.rename(b, os.path.join(d, "again.key"))
    r = ctl("keys", "export", "--dir", d, "--hex")
    assert r.returncode == 1, r.returncode
    assert "key id 4 already loaded" in r.err and "k4.key" in r.err and "again.key" in r.err, r.err
    # A malformed key file: file and line named, value not quoted.
    d2 = env.newdir("bad")
    sk = "ab" * 32
    env.write(os.path.join(d2, "x.key"),
              "key_id: 1\nkem: 0x0020\nsuites: 0x0001/0x0009\nprivate_key: %s\n" % sk, 0o600)
    r = ctl("keys", "export", "--dir", d2, "--hex")
    assert r.returncode == 1 and "x.key: line 3:" in r.err, r.err
    assert_no_key_bytes(r.out + r.err, sk, "parse error")
    # A missing directory.
    r = ctl("keys", "export", "--dir", env.path("nope"), "--hex")
    assert r.returncode == 1 and env.path("nope") in r.err, r.err


def test_show(env):
    d = env.newdir("keys")
    path, cfg = keygen(env, d, 42, "--suites", "aes128gcm,chacha20poly1305")
    r = ctl("keys", "show", path)
    assert r.returncode == 0, r.err
    lines = dict(l.split(": ", 1) for l in r.out.splitlines())
    assert lines["key_id"] == "42", r.out
    assert lines["kem"].startswith("0x0020"), r.out
    assert lines["suites"].startswith("0x0001/0x0001 0x0001/0x0003"), r.out
    assert lines["config"] == cfg.hex(), r.out
    assert lines["public_key"] == parse_config(cfg)[2].hex(), r.out
    assert_no_key_bytes(r.out + r.err, private_hex(path), "show")
    os.chmod(path, 0o644)
    r = ctl("keys", "show", path)
    assert r.returncode == 1 and "chmod 600" in r.err and r.out == "", r.err
    assert_no_key_bytes(r.out + r.err, private_hex(path), "show refusal")


def test_usage(env):
    d = env.newdir("keys")
    k = os.path.join(d, "x.key")
    cases = [
        ("keygen",),
        ("keygen", "--id", "1"),
        ("keygen", "--out", k),
        ("keygen", "--id", "256", "--out", k),
        ("keygen", "--id", "-1", "--out", k),
        ("keygen", "--id", "1x", "--out", k),
        ("keygen", "--id", "1", "--out", k, "--suites", "aes128gcm,rot13"),
        ("keygen", "--id", "1", "--out", k, "--suites", "aes128gcm,aes128gcm"),
        ("keygen", "--id", "1", "--out", k, "--suites", ""),
        ("keygen", "--id", "1", "--id", "2", "--out", k),
        ("keygen", "--id", "1", "--out", k, "extra"),
        ("keygen", "--id", "1", "--out"),
        ("keys", "export", "--dir", d),
        ("keys", "export", "--dir", d, "--hex", "--out", env.path("o")),
        ("keys", "export", "--out", env.path("o")),
        ("keys", "show"),
        ("keys", "show", k, k),
    ]
    for args in cases:
        r = ctl(*args)
        assert r.returncode == 2, "%s: %d %s" % (args, r.returncode, r.err)
        assert "usage: zaslonctl" in r.err, r.err
    assert not os.path.exists(k), "a usage error wrote a key"


if __name__ == "__main__":
    zl.main(globals())
