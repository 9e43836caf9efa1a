#!/usr/bin/python3
"""The split deployment: a relay-only zaslon (role relay: no keys, forwards sealed bodies
over HTTP/2 with mutual TLS) in front of a gateway-only zaslon (role gateway: keys,
backends, and a listener that requires client certificates), with recording backends
voting, identity and service. An internal test CA issues the gateway's server
certificate and the relay's client certificate; another CA issues a client certificate
the gateway must not trust. Clients reach the relay with SNI front.example and a hidden
Host, as in test_sealed.py (whose helpers this file reuses).

Fails when:
  - a sealed request sent to the relay (zaslonctl over TLS h2, h2c, HTTP/1.1) does not
    reach the right backend with only allowlisted fields and no address, or its opened
    answer is not the backend's; or the relay opens more than one connection to the
    gateway for sequential requests (one worker);
  - the relay does not serve the gateway's key list at the key path (GET, HEAD), or
    zaslonctl cannot use it;
  - the gateway completes a TLS handshake (TLS 1.3 or 1.2) with a client that has no
    certificate, or one from another CA (it must with the relay's certificate);
  - a replayed sealed request through the relay is not refused inside the seal (409),
    or the backend sees it twice;
  - the relay holds a key: a *.key file or the key directory in /proc/PID/fd or
    /proc/PID/maps, a keys entry in its config, or the gateway's 32 private key bytes
    (or their hex) anywhere in its readable memory (read through /proc/PID/mem) while
    the same scan does find them in the gateway's memory;
  - a request the gateway refuses, or any sealed request while the gateway is down,
    gets anything but the cover's answer (compared with a cover-only zaslon), or the
    relay does not recover once the gateway is back;
  - 127.13.37.5 appears in any file the gateway wrote or any header a backend got."""

import json
import os
import re
import subprocess
import time

import cdn
import test_sealed as ts
import zl

FRONT, HIDDEN, SEALED_PATH, KEYS_PATH = ts.FRONT, ts.HIDDEN, ts.SEALED_PATH, ts.KEYS_PATH


# ------------------------------------------------------------------ certificates

def _openssl(*args, cwd):
    subprocess.run(("openssl",) + args, cwd=cwd, check=True, timeout=30,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _leaf(d, ca, name, cn, ext):
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    _openssl("req", "-new", *ec, "-keyout", name + ".key", "-out", name + ".csr",
             "-subj", "/CN=%s" % cn, cwd=d)
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write(ext)
    _openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
             "-CAcreateserial", "-out", name + ".pem", "-days", "2", "-extfile",
             name + ".ext", cwd=d)
    os.chmod(os.path.join(d, name + ".key"), 0o600)


def make_pki(d):
    """internal CA -> gateway server cert (localhost, 127.0.0.1) and the relay's client
    cert; other CA -> a client cert the gateway must refuse."""
    os.makedirs(d, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    for ca, cn in (("ca", "zl internal CA"), ("other-ca", "zl other CA")):
        _openssl("req", "-x509", *ec, "-keyout", ca + ".key", "-out", ca + ".pem", "-days",
                 "2", "-subj", "/CN=%s" % cn, "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
        os.chmod(os.path.join(d, ca + ".key"), 0o600)
    server = ("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
              "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    client = ("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
              "extendedKeyUsage=clientAuth\n")
    _leaf(d, "ca", "gateway", "localhost", server)
    _leaf(d, "ca", "relay", "relay", client)
    _leaf(d, "other-ca", "stranger", "relay", client)
    return {k: os.path.join(d, k) for k in ("ca", "gateway", "relay", "stranger", "other-ca")}


# --------------------------------------------------------------------- the setup

class Split:
    """Keys, backends, a gateway-only and a relay-only zaslon, in one test's Env."""

    def __init__(self, env, reference=False, gate=None):
        self.env = env
        front = env.certs(names=(FRONT, "localhost"), ips=("127.0.0.1",))
        self.front_ca = front.ca
        self.pki = make_pki(env.path("internal"))
        self.cover = zl.CoverSite(env)
        self.keydir = env.path("keys")
        os.mkdir(self.keydir, 0o700)
        os.chmod(self.keydir, 0o700)
        self.key_path = os.path.join(self.keydir, "k1.key")
        ts.keygen(self.key_path, 1)
        self.keys_file = env.path("ohttp-keys")
        r = ts.ctl("keys", "export", "--dir", self.keydir, "--out", self.keys_file)
        assert r.returncode == 0, "keys export: %s" % r.stderr
        with open(self.keys_file, "rb") as f:
            self.keys = f.read()
        self.configs = {c[0]: c for c in ts.parse_keys(self.keys)}
        self.b = {n: env.backend(n) for n in ("voting", "identity", "service")}
        ts._backend_ports.update({n: b.port for n, b in self.b.items()})
        # the gateway: keys, backends, one listener for relays only
        self.gw_port = zl.free_port()
        gw = {
            "role": "gateway",
            "error_log": {"path": "$rundir/error.log", "level": "debug"},
            "access_log": "$rundir/access.log",
            "listen": [{"address": "127.0.0.1:%d" % self.gw_port,
                        "tls": {"certificate": self.pki["gateway"] + ".pem",
                                "key": self.pki["gateway"] + ".key",
                                "client_ca": self.pki["ca"] + ".pem"}}],
            "cover": {"root": self.cover.root},
            "sealed": {"path": SEALED_PATH, "keys": self.keydir, "max_request": "4k"},
            "backends": {"voting": zl.backend_block(self.b["voting"], replay="strict"),
                         "identity": zl.backend_block(self.b["identity"]),
                         "service": zl.backend_block(self.b["service"])},
            "routes": [zl.route("voting", host="vote.example"),
                       zl.route("identity", host="id.example"),
                       zl.route("service", host="*.service.example")],
        }
        self.gw = env.zaslon(gw, name="gateway")
        # the relay: no keys; one worker, so its connections to the gateway can be
        # counted
        self.relay_cfg = zl.edge_config(
            env, cover=self.cover.root, workers=1, role="relay",
            sealed={"path": SEALED_PATH, "max_request": "4k"},
            relay={"gateway": "https://localhost:%d%s" % (self.gw_port, SEALED_PATH),
                   "certificate": self.pki["relay"] + ".pem",
                   "key": self.pki["relay"] + ".key",
                   "ca_file": self.pki["ca"] + ".pem",
                   "connections": 2, "timeout": "5s"})
        if gate:
            self.relay_cfg["gate"] = gate
        self.relay = env.zaslon(self.relay_cfg, name="relay")
        self.ref = None
        if reference:
            self.ref = env.zaslon(zl.edge_config(env, cover=self.cover.root),
                                  name="reference")

    def records(self, name=None):
        if name:
            return self.b[name].records()
        return {n: b.records() for n, b in self.b.items()}

    def relay_args(self, transport):
        z = self.relay
        if transport == "h2":
            return ["--relay", "https://%s:%d%s" % (FRONT, z.tls_port, SEALED_PATH),
                    "--connect-to", "127.0.0.1:%d" % z.tls_port, "--cacert", self.front_ca,
                    "--host", HIDDEN]
        args = ["--relay", "http://%s:%d%s" % (FRONT, z.plain_port, SEALED_PATH),
                "--connect-to", "127.0.0.1:%d" % z.plain_port, "--host", HIDDEN]
        return args + (["--h2c"] if transport == "h2c" else [])

    def ctl_request(self, inner, transport="h2", headers=None):
        args = ["request"] + self.relay_args(transport) + \
            ["--keys", self.keys_file, "--json", "--timeout", "15"]
        for n, v in (inner.headers if headers is None else headers):
            args += ["-H", "%s: %s" % (n, v)]
        if inner.body:
            args += ["--data", inner.body.decode()]
        args += [inner.method, inner.url]
        r = ts.ctl(*args)
        assert r.returncode == 0, "zaslonctl %s %s over %s through the relay: exit %d: %s" % (
            inner.method, inner.url, transport, r.returncode, r.stderr.strip())
        out = json.loads(r.stdout)
        return ts.Opened(out["status"], [tuple(h) for h in out["headers"]],
                         out["body"].encode())

    def send(self, body, z=None, **kw):
        """A raw request from 127.13.37.5 to the relay (or |z|), as test_sealed sends."""
        kw.setdefault("proto", "h2")
        return ts.raw_send(z or self.relay, body, kw["proto"], kw.get("method", "POST"),
                           kw.get("ctype", ts.REQ_TYPE), kw.get("path", SEALED_PATH), True,
                           zl.CLIENT_ADDR, self.front_ca, ())

    def private_key(self):
        with open(self.key_path) as f:
            m = re.search(r"^private_key:\s*([0-9a-fA-F]{64})\s*$", f.read(), re.M)
        assert m, "no private_key line in the key file"
        return bytes.fromhex(m.group(1))


def gateway_connections(gw_port):
    """Established TCP connections to the gateway's port (client side), from
    /proc/net/tcp and tcp6."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            remote, state = parts[2], parts[3]
            if state == "01" and int(remote.rsplit(":", 1)[1], 16) == gw_port:
                n += 1
    return n


def scan_memory(pid, needles, max_region=1 << 32):
    """Reads every readable mapping of |pid| through /proc/PID/mem (as root) and returns
    ({needle: found}, bytes scanned). Mappings larger than |max_region| (sanitizer
    shadow reservations) are skipped; so are [vvar] and [vsyscall], which cannot be
    read. All readable mappings, not only writable ones: a key store is made read-only
    once loaded (sodium_mprotect_readonly), and a scan of writable mappings alone would
    not find the gateway's key where it lives."""
    found = {n: False for n in needles}
    overlap = max(len(n) for n in needles) - 1
    scanned = 0
    with open("/proc/%d/maps" % pid) as f:
        maps = f.read().splitlines()
    with open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            parts = line.split(None, 5)
            perms = parts[1]
            name = parts[5] if len(parts) > 5 else ""
            if perms[0] != "r" or name in ("[vvar]", "[vsyscall]"):
                continue
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if hi - lo > max_region:
                continue
            tail = b""
            pos = lo
            while pos < hi:
                n = min(16 << 20, hi - pos)
                try:
                    mem.seek(pos)
                    chunk = mem.read(n)
                except OSError:
                    break
                if not chunk:
                    break
                scanned += len(chunk)
                data = tail + chunk
                for k in needles:
                    if not found[k] and k in data:
                        found[k] = True
                tail = data[-overlap:] if overlap else b""
                pos += len(chunk)
    return found, scanned


# ------------------------------------------------------------------------- tests

def test_sealed_through_relay(env):
    """zaslonctl through the relay over TLS h2, h2c and HTTP/1.1: every request reaches
    the right backend with only allowlisted fields and no address, the opened answer is
    the backend's; the relay (one worker) keeps one connection to the gateway."""
    s = Split(env)
    for transport in ("h2", "h2c", "h1c"):
        for inner in ts.INNERS:
            o = s.ctl_request(inner, transport)
            what = "through the relay: %s %s over %s" % (inner.method, inner.url, transport)
            ts.assert_opened_backend_answer(o, inner, what)
            zl.assert_eq(o.header_all("x-backend"), [inner.backend], what + ": X-Backend")
            ts.assert_record(s.records(inner.backend)[-1], inner)
    for name in ("voting", "identity", "service"):
        zl.assert_eq(len(s.records(name)), 3, "requests backend %s saw" % name)
    zl.assert_eq(gateway_connections(s.gw_port), 1,
                 "relay connections to the gateway after 9 sequential requests")
    # the gateway's access log counted them; nothing it wrote holds the client's address
    # (zaslonctl's) nor the relay's: it only ever sees the relay
    s.gw.stop()
    for path, data in s.gw.files_text().items():
        assert zl.CLIENT_ADDR.encode() not in data, "%s in %s" % (zl.CLIENT_ADDR, path)


def test_cdn_relay_gateway(env):
    """The whole split chain: haproxy (TLS for front.example, injecting X-Forwarded-For,
    Via and the origin secret) -> relay-only zaslon (gate on, no keys) -> gateway-only
    zaslon (mutual TLS) -> the voting, identity and service backends. zaslonctl sends
    with SNI front.example and the hidden Host; every request reaches the right backend
    with only allowlisted fields, no address and no secret; without the front's secret
    the relay answers like its cover and nothing reaches a backend."""
    secret = "cdn-origin-secret-0123456789"
    s = Split(env, gate={"header": cdn.SECRET_HEADER, "secrets": [secret]})
    certs = cdn.front_certs(env)
    for mode in ("h2c", "h1"):
        front = cdn.Cdn(env, s.relay.plain_port, mode, secret=secret, certs=certs,
                        name="cdn-" + mode)
        for inner in ts.INNERS:
            args = ["request", "--relay", front.url(SEALED_PATH),
                    "--connect-to", "127.0.0.1:%d" % front.port, "--cacert", certs.ca,
                    "--host", cdn.HIDDEN, "--keys", s.keys_file, "--json", "--timeout", "15"]
            for n, v in inner.headers:
                args += ["-H", "%s: %s" % (n, v)]
            if inner.body:
                args += ["--data", inner.body.decode()]
            r = ts.ctl(*(args + [inner.method, inner.url]))
            what = "%s %s via haproxy (%s) -> relay -> gateway" % (inner.method, inner.url,
                                                                  mode)
            assert r.returncode == 0, "%s: exit %d: %s" % (what, r.returncode, r.stderr)
            out = json.loads(r.stdout)
            o = ts.Opened(out["status"], [tuple(h) for h in out["headers"]],
                          out["body"].encode())
            ts.assert_opened_backend_answer(o, inner, what)
            rec = s.records(inner.backend)[-1]
            ts.assert_record(rec, inner)
            text = json.dumps(rec["headers"])
            for leak in (secret, cdn.VIA, "127.0.0.1, ", cdn.HIDDEN, cdn.FRONT):
                assert leak not in text, "%s: %r reached the backend: %s" % (what, leak, text)
        front.stop()
    for name in ("voting", "identity", "service"):
        zl.assert_eq(len(s.records(name)), 2, "requests backend %s saw" % name)
    # A front that injects no secret: the relay's cover answer, nothing delivered.
    bare = cdn.Cdn(env, s.relay.plain_port, "h1", secret=None, certs=certs, name="cdn-bare")
    inner = ts.INNERS[0]
    r = ts.ctl("request", "--relay", bare.url(SEALED_PATH), "--connect-to",
               "127.0.0.1:%d" % bare.port, "--cacert", certs.ca, "--host", cdn.HIDDEN,
               "--keys", s.keys_file, "--timeout", "15", inner.method, inner.url)
    zl.assert_eq(r.returncode, 1, "zaslonctl through a front without the secret")
    assert "cover answer" in r.stderr, r.stderr
    for name in ("voting", "identity", "service"):
        zl.assert_eq(len(s.records(name)), 2, "requests backend %s saw after the bare front"
                     % name)


def test_keys_through_relay(env):
    """GET and HEAD of the key path at the relay give the gateway's key list (RFC 9540
    discovery through the relay); zaslonctl --keys-path works through it; a POST there
    is the cover's."""
    s = Split(env, reference=True)
    for proto in ("h2", "h1c"):
        r = s.send(None, proto=proto, method="GET", ctype=None, path=KEYS_PATH)
        zl.assert_status(r, 200, "keys through the relay over " + proto)
        zl.assert_eq(r.header_all("content-type"), [ts.KEYS_TYPE], "keys content-type")
        zl.assert_eq(r.header_all("cache-control"), ["no-store"], "keys cache-control")
        zl.assert_eq(r.body, s.keys, "keys through the relay (the exported file)")
        extra = {k for k, _ in r.headers if not k.startswith(":")} - {
            "content-type", "cache-control", "content-length", "date"}
        assert not extra, "keys answer through the relay has fields %s" % sorted(extra)
    r = s.send(None, proto="h1c", method="HEAD", ctype=None, path=KEYS_PATH)
    zl.assert_status(r, 200, "HEAD keys through the relay")
    zl.assert_eq(r.header("content-length"), str(len(s.keys)), "HEAD content-length")
    zl.assert_eq(r.body, b"", "HEAD body")
    r = ts.ctl("request", *s.relay_args("h2"), "--keys-path", KEYS_PATH, "--json",
               "GET", "https://id.example/whoami?x=1&y=2")
    assert r.returncode == 0, "zaslonctl --keys-path through the relay: %s" % r.stderr
    zl.assert_eq(json.loads(r.stdout)["status"], 200, "opened status with fetched keys")
    got = s.send(b"x", proto="h2", method="POST", ctype=ts.KEYS_TYPE, path=KEYS_PATH)
    want = s.send(b"x", z=s.ref, proto="h2", method="POST", ctype=ts.KEYS_TYPE,
                  path=KEYS_PATH)
    ts.assert_cover(got, want, "POST of the key path at the relay")


def _curl_gateway(s, *args, tls_max=None):
    cmd = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
           "--cacert", s.pki["ca"] + ".pem", "--http2"]
    if tls_max:
        cmd += ["--tls-max", tls_max]
    cmd += list(args) + ["https://localhost:%d/" % s.gw_port]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout.strip(), p.stderr.strip()


def test_gateway_requires_client_certificate(env):
    """The gateway's listener completes no handshake without a trusted client
    certificate (TLS 1.3 and 1.2): no certificate, or one from another CA, gets no HTTP
    answer at all, not even the cover; the relay's certificate gets the cover page."""
    s = Split(env)
    relay_cert = ["--cert", s.pki["relay"] + ".pem", "--key", s.pki["relay"] + ".key"]
    stranger = ["--cert", s.pki["stranger"] + ".pem", "--key", s.pki["stranger"] + ".key"]
    for tls_max in (None, "1.2"):
        v = tls_max or "1.3"
        rc, code, err = _curl_gateway(s, tls_max=tls_max)
        assert rc != 0 and code in ("", "000"), \
            "TLS %s without a client certificate: curl exit %d, HTTP %s" % (v, rc, code)
        rc, code, err = _curl_gateway(s, *stranger, tls_max=tls_max)
        assert rc != 0 and code in ("", "000"), \
            "TLS %s with another CA's certificate: curl exit %d, HTTP %s" % (v, rc, code)
        rc, code, err = _curl_gateway(s, *relay_cert, tls_max=tls_max)
        assert rc == 0 and code == "200", \
            "TLS %s with the relay's certificate: curl exit %d, HTTP %s: %s" % (v, rc, code,
                                                                             err)
    assert s.gw.running(), "the gateway died"
    # and the relay's own path through it still works
    o = s.ctl_request(ts.WHOAMI, "h2")
    ts.assert_opened_backend_answer(o, ts.WHOAMI, "through the relay after the probes")


def test_replay_refused_by_gateway(env):
    """The same sealed bytes sent twice through the relay: the first is delivered, the
    second is refused inside the seal (409) by the gateway; the backend sees one copy."""
    s = Split(env)
    ballot = ts.Inner("b", "POST", ts.BALLOT.url,
                      [("content-type", "application/x-www-form-urlencoded")],
                      ts.BALLOT.body, backend="voting")
    sealed = ts.peer_seal(s.configs[1], ballot, aead=1)
    first = s.send(sealed["request_bytes"], proto="h2")
    second = s.send(sealed["request_bytes"], proto="h1c")
    o1 = ts.peer_open(sealed, ts.assert_sealed(first, "first copy through the relay"))
    o2 = ts.peer_open(sealed, ts.assert_sealed(second, "second copy through the relay"))
    ts.assert_opened_backend_answer(o1, ballot, "first copy")
    zl.assert_eq(o2.status, 409, "replayed copy: opened status")
    votes = s.records("voting")
    zl.assert_eq(len(votes), 1, "copies of the ballot the backend saw")
    ts.assert_record(votes[0], ballot)


def test_relay_holds_no_key(env):
    """After serving sealed requests, the relay process has no key file open or mapped,
    its config names no keys, and its memory (every readable mapping, read through
    /proc/PID/mem) holds neither the gateway's private key bytes nor their hex; the same
    scan finds the key bytes in the gateway's memory."""
    s = Split(env)
    for inner in ts.INNERS:
        s.ctl_request(inner, "h2")
    key = s.private_key()
    pid = s.relay.pid
    # its config: a sealed section without keys, and no path into the key directory
    zl.assert_eq(sorted(s.relay_cfg["sealed"]), ["max_request", "path"], "relay sealed keys")
    assert s.keydir not in s.relay.config_text, "the relay's config names the key directory"
    # open files and mappings
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        assert not target.endswith(".key") and not target.startswith(s.keydir), \
            "the relay holds %s open (fd %s)" % (target, fd)
    with open("/proc/%d/maps" % pid) as f:
        maps = f.read()
    assert ".key" not in maps and s.keydir not in maps, "a key file is mapped in the relay"
    # memory
    needles = [key, key.hex().encode(), key.hex().upper().encode()]
    found, scanned = scan_memory(pid, needles)
    assert scanned > 1 << 20, "scanned only %d bytes of the relay" % scanned
    assert not any(found.values()), "the gateway's private key is in the relay's memory " \
        "(%s)" % [i for i, n in enumerate(needles) if found[n]]
    gfound, gscanned = scan_memory(s.gw.pid, [key])
    assert gfound[key], "the scan did not find the key in the gateway's memory " \
        "(%d bytes scanned): the method proves nothing" % gscanned
    print("relay: %d MiB scanned, no key; gateway: key found in %d MiB" % (
        scanned >> 20, gscanned >> 20))


def test_gateway_refusal_and_outage_look_like_the_cover(env):
    """What the gateway refuses (garbage, a sealed request for an unknown key) and any
    sealed request while the gateway is down get exactly the cover's answer from the
    relay, quickly; once the gateway is back, the relay serves again."""
    s = Split(env, reference=True)
    cfg = s.configs[1]
    good = ts.peer_seal(cfg, ts.WHOAMI, aead=1)
    unknown = bytes([0x77]) + good["request_bytes"][1:]
    garbage = bytes((i * 89 + 13) % 256 for i in range(300))
    failures = []

    def check(what, body, **kw):
        got = s.send(body, **kw)
        want = s.send(body, z=s.ref, **kw)
        try:
            ts.assert_cover(got, want, what)
        except AssertionError as e:
            failures.append(str(e))

    for proto in ("h2", "h1c"):
        check("garbage, gateway up, over " + proto, garbage, proto=proto)
        check("unknown key id, gateway up, over " + proto, unknown, proto=proto)
        check("wrong content-type over " + proto, garbage, proto=proto,
              ctype="application/octet-stream")
    s.gw.stop()
    t0 = time.monotonic()
    for proto in ("h2", "h1c"):
        check("a valid sealed request, gateway down, over " + proto, good["request_bytes"],
              proto=proto)
        check("garbage, gateway down, over " + proto, garbage, proto=proto)
    took = time.monotonic() - t0
    assert took < 8, "four requests with the gateway down took %.1fs" % took
    assert not failures, "%d answer(s) not the cover's:\n  %s" % (len(failures),
                                                                  "\n  ".join(failures))
    zl.assert_eq(s.records("identity"), [], "identity records (nothing delivered)")
    # the gateway comes back on the same port: the relay reconnects
    s.gw.start()
    o = s.ctl_request(ts.WHOAMI, "h2")
    ts.assert_opened_backend_answer(o, ts.WHOAMI, "through the relay, gateway back")
    assert s.relay.running(), "the relay died"


if __name__ == "__main__":
    zl.main(globals())
