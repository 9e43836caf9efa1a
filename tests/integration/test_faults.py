#!/usr/bin/python3
"""Failing backends: zaslon in front of fault_backend.py (refusing, blackholed, slow,
garbage, closing or resetting at every stage) next to a healthy backend and the cover.
Fails when:
  - a fault does not give 502 (refused, garbage, bad status, chunk errors, a 1 MiB
    header, a close or reset before the head) or 504 (blackholed connect, first byte
    too late, at the configured bound, not the backend's delay), or a fault after the
    head does not end the response visibly short (HTTP/1.1 close, h2 RST_STREAM);
  - more body than declared reaches the client, or leaks into the next answer;
  - a healthy backend's or the cover's request fails while faults run alongside;
  - sealed requests through failing backends do not get the sealed 502 / 504 / 503
    (breaker open) inside a sealed 200;
  - the circuit breaker does not open after breaker_failures in a row, sends anything
    to the backend while open (503 at once), does not probe after breaker_cooldown,
    or does not close after a good probe / reopen after a bad one;
  - more than max_connections requests reach the backend at once, a request beyond
    max_connections + max_queue is not refused at once (503), or a queued one fails,
    or waits for a connection longer than first_byte_timeout;
  - any request is delivered twice: 2,000 plain POSTs, 2,000 sealed POSTs and 1,000
    GETs at once against a backend that closes or resets after reading the request,
    after the head or mid-body, or closes pooled connections under zaslon's feet; each
    id may reach the backend at most once, every client gets an answer (no hang), and
    an "ok" answer carries its own id."""

import concurrent.futures
import os
import socket
import struct
import subprocess
import threading
import time

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric.x25519 import (X25519PrivateKey,
                                                              X25519PublicKey)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import fault_backend
import zl

FAULT_PY = os.path.join(zl.HERE, "fault_backend.py")
SEALED_PATH = "/s/"
REQ_TYPE = "message/ohttp-req"
RES_TYPE = "message/ohttp-res"


# ------------------------------------------------------------------ the fault backend

class FaultBackend:
    """fault_backend.py in a subprocess; records() parses its log."""

    def __init__(self, env, name="fault"):
        self.env, self.name = env, name
        self.port = zl.free_port()
        self.log = env.path("fault-%s.log" % name)
        self.errlog = open(env.path("fault-%s.stderr" % name), "ab")
        self.proc = subprocess.Popen(
            [zl.PYTHON, FAULT_PY, "--port", str(self.port), "--log", self.log],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.errlog,
            start_new_session=True)
        env.register(self)
        zl.wait_until(lambda: zl.can_connect(self.port, timeout=0.2), zl.READY_TIMEOUT,
                      what="fault backend to listen")

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def records(self):
        """[(mode, id, method, conn, seq)]"""
        try:
            with open(self.log) as f:
                out = []
                for line in f:
                    p = line.split()
                    if len(p) == 5:
                        out.append((p[0], p[1], p[2], int(p[3]), int(p[4])))
                return out
        except FileNotFoundError:
            return []

    def stop(self, timeout=5.0):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.errlog.close()


class Blackhole:
    """A port where SYNs are dropped (full accept queue), for the Env's lifetime."""

    def __init__(self, env):
        self.lis, self.fillers, self.port = fault_backend.blackhole()
        env.register(self)

    def stop(self):
        for s in self.fillers + [self.lis]:
            s.close()


def config(env, backends, routes, workers=1, cover=None, **extra):
    cover = cover or zl.CoverSite(env)
    cfg = zl.edge_config(env, tls=False, cover=cover.root, backends=backends,
                         routes=routes, log_level="info", workers=workers, **extra)
    return cfg, cover


class Healthy:
    """Requests to a healthy backend and the cover, in a thread, until stopped: every
    one must succeed with the right body."""

    def __init__(self, z, backend_host, cover):
        self.z, self.host, self.cover = z, backend_host, cover
        self.ok = 0
        self.bad = []
        self.stopping = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        i = 0
        conn = None
        want_index = self.cover.files["/index.html"][0]
        while not self.stopping.is_set():
            i += 1
            try:
                if conn is None:
                    conn = zl.H1Conn(self.z.plain_port, timeout=10)
                if i % 2:
                    r = conn.request("GET", "/h/%d" % i, host=self.host)
                    want = ("backend healthy /h/%d" % i).encode()
                else:
                    r = conn.request("GET", "/index.html", host="localhost")
                    want = want_index
                if r.status == 200 and r.body == want:
                    self.ok += 1
                else:
                    self.bad.append((i, r.status, r.body[:80]))
                if (r.header("connection") or "").lower() == "close":
                    conn = None  # the per-connection request cap, say
            except (OSError, EOFError, AssertionError) as e:
                self.bad.append((i, repr(e)))
                conn = None

    def finish(self, at_least):
        self.stopping.set()
        self.t.join(30)
        assert not self.bad, "healthy requests failed: %s" % self.bad[:5]
        assert self.ok >= at_least, "only %d healthy requests ran" % self.ok


# ------------------------------------------------------------------ a small OHTTP client

def _varint(n):
    if n < 64:
        return bytes([n])
    if n < 16384:
        return struct.pack(">H", 0x4000 | n)
    return struct.pack(">I", 0x80000000 | n)


def _read_varint(b, i):
    first = b[i]
    n = 1 << (first >> 6)
    v = first & 0x3F
    for k in range(1, n):
        v = (v << 8) | b[i + k]
    return v, i + n


def _lv(b):
    return _varint(len(b)) + b


def _hkdf_extract(salt, ikm):
    h = hmac.HMAC(salt or b"\0" * 32, hashes.SHA256())
    h.update(ikm)
    return h.finalize()


def _hkdf_expand(prk, info, n):
    out, t, i = b"", b"", 1
    while len(out) < n:
        h = hmac.HMAC(prk, hashes.SHA256())
        h.update(t + info + bytes([i]))
        t = h.finalize()
        out += t
        i += 1
    return out[:n]


KEM_ID, KDF_ID, AEAD_ID = 0x0020, 0x0001, 0x0001  # X25519, HKDF-SHA256, AES-128-GCM


def _labeled_extract(suite, salt, label, ikm):
    return _hkdf_extract(salt, b"HPKE-v1" + suite + label + ikm)


def _labeled_expand(suite, prk, label, info, n):
    return _hkdf_expand(prk, struct.pack(">H", n) + b"HPKE-v1" + suite + label + info, n)


def seal(key_cfg, method, authority, path, body):
    """RFC 9458 request encapsulation (HPKE base mode, RFC 9180) of a known-length
    Binary HTTP request (RFC 9292). Returns (sealed bytes, state for open_response)."""
    key_id, pk_r = key_cfg
    bhttp = (_varint(0) + _lv(method.encode()) + _lv(b"https") + _lv(authority.encode())
             + _lv(path.encode()) + _lv(b"") + _lv(body) + _varint(0))
    hdr = struct.pack(">BHHH", key_id, KEM_ID, KDF_ID, AEAD_ID)
    info = b"message/bhttp request\0" + hdr
    sk_e = X25519PrivateKey.generate()
    enc = sk_e.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    dh = sk_e.exchange(X25519PublicKey.from_public_bytes(pk_r))
    kem_suite = b"KEM" + struct.pack(">H", KEM_ID)
    prk = _labeled_extract(kem_suite, b"", b"eae_prk", dh)
    shared = _labeled_expand(kem_suite, prk, b"shared_secret", enc + pk_r, 32)
    suite = b"HPKE" + struct.pack(">HHH", KEM_ID, KDF_ID, AEAD_ID)
    ctx = (b"\0" + _labeled_extract(suite, b"", b"psk_id_hash", b"")
           + _labeled_extract(suite, b"", b"info_hash", info))
    secret = _labeled_extract(suite, shared, b"secret", b"")
    key = _labeled_expand(suite, secret, b"key", ctx, 16)
    nonce = _labeled_expand(suite, secret, b"base_nonce", ctx, 12)
    exporter = _labeled_expand(suite, secret, b"exp", ctx, 32)
    ct = AESGCM(key).encrypt(nonce, bhttp, b"")
    return hdr + enc + ct, (enc, suite, exporter)


def open_response(state, sealed):
    """The inner status and content of a sealed response."""
    enc, suite, exporter = state
    secret = _labeled_expand(suite, exporter, b"sec", b"message/bhttp response", 16)
    nonce_r, ct = sealed[:16], sealed[16:]
    prk = _hkdf_extract(enc + nonce_r, secret)
    pt = AESGCM(_hkdf_expand(prk, b"key", 16)).decrypt(_hkdf_expand(prk, b"nonce", 12),
                                                       ct, b"")
    framing, i = _read_varint(pt, 0)
    assert framing == 1, "bhttp framing %d" % framing
    while True:
        status, i = _read_varint(pt, i)
        flen, i = _read_varint(pt, i)
        i += flen
        if status >= 200:
            break
    clen, i = _read_varint(pt, i)
    return status, bytes(pt[i:i + clen])


class SealedSetup:
    """A key directory made by zaslonctl keygen, and the key configuration."""

    def __init__(self, env):
        self.keydir = env.path("keys")
        os.mkdir(self.keydir, 0o700)
        p = os.path.join(self.keydir, "k1.key")
        r = subprocess.run([zl.ZASLONCTL_BIN, "keygen", "--id", "1", "--out", p],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, "keygen: %s" % r.stderr
        self.keys_file = env.path("ohttp-keys")
        r = subprocess.run([zl.ZASLONCTL_BIN, "keys", "export", "--dir", self.keydir,
                            "--out", self.keys_file], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, "keys export: %s" % r.stderr
        with open(self.keys_file, "rb") as f:
            b = f.read()
        cfg = b[2:2 + struct.unpack(">H", b[:2])[0]]
        assert struct.unpack(">H", cfg[1:3])[0] == KEM_ID, "key is not X25519"
        self.key = (cfg[0], bytes(cfg[3:35]))

    def block(self):
        return {"path": SEALED_PATH, "keys": self.keydir}

    def ctl(self, z, method, url, data=None):
        """zaslonctl request over h2c; returns (inner status, body)."""
        args = [zl.ZASLONCTL_BIN, "request", "--relay",
                "http://front.example:%d%s" % (z.plain_port, SEALED_PATH),
                "--connect-to", "127.0.0.1:%d" % z.plain_port, "--h2c",
                "--host", "edge.hidden.example", "--keys", self.keys_file, "--json",
                "--timeout", "20"]
        if data is not None:
            args += ["--data", data]
        r = subprocess.run(args + [method, url], capture_output=True, text=True,
                           timeout=40, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, "zaslonctl %s %s: %s" % (method, url, r.stderr.strip())
        import json
        out = json.loads(r.stdout)
        return out["status"], out.get("body", "")


def sealed_post(conn, key, authority, path, body):
    """One sealed request on an H1Conn: (inner status, inner body, whether the
    connection stays open)."""
    sealed, state = seal(key, "POST", authority, path, body)
    r = conn.request("POST", SEALED_PATH, headers=[("Content-Type", REQ_TYPE)],
                     body=sealed)
    zl.assert_status(r, 200, "sealed POST outer status")
    zl.assert_eq(r.header("content-type"), RES_TYPE, "sealed answer type")
    status, inner = open_response(state, r.body)
    return status, inner, (r.header("connection") or "").lower() != "close"


# ------------------------------------------------------------------ helpers

def stop_clean(z):
    """Stops |z|: exit 0 after the drain, and no sanitizer report (leaks included) in
    its stderr."""
    rc = z.stop()
    with open(z.stderr_path, errors="replace") as f:
        err = f.read()
    for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        assert bad not in err, "zaslon stderr:\n%s" % err[-4000:]
    zl.assert_eq(rc, 0, "zaslon exit status")


def timed_get(z, host, path, proto="h1c", timeout=20):
    t0 = time.monotonic()
    r = z.curl(proto, path, host=host, args=["--max-time", str(timeout)])
    return r, time.monotonic() - t0


def fault_backends(fb, dead_port, hole_port, healthy):
    common = {"breaker_failures": 0}
    return {
        "faulty": zl.backend_block(url=fb.url, first_byte_timeout="1s",
                                   connect_timeout="500ms", **common),
        "refused": zl.backend_block(url="http://127.0.0.1:%d" % dead_port, **common),
        "blackhole": zl.backend_block(url="http://127.0.0.1:%d" % hole_port,
                                      connect_timeout="700ms", **common),
        "healthy": zl.backend_block(healthy),
    }


FAULT_ROUTES = [zl.route("faulty", host="faulty.example"),
                zl.route("refused", host="refused.example"),
                zl.route("blackhole", host="blackhole.example"),
                zl.route("healthy", host="healthy.example")]

# path -> status before any byte of the answer: a clean error page
ERRORS_502 = ["/garbage", "/badstatus", "/badchunk", "/bighead", "/closereq",
              "/resetreq"]
# path -> a 200 head, then the response ends short (close / RST_STREAM)
CUT_SHORT = ["/truncchunk", "/resetbody", "/closehead", "/closepartial",
             "/resetpartial"]


# ------------------------------------------------------------------ tests

def test_faults_plain(env):
    """Every fault over HTTP/1.1 and h2, each on its own, with a healthy backend and the
    cover running alongside: 502 / 504 at the configured bound / a response cut short."""
    fb = FaultBackend(env)
    hole = Blackhole(env)
    healthy = env.backend("healthy")
    cfg, cover = config(env, fault_backends(fb, zl.free_port(), hole.port, healthy),
                        FAULT_ROUTES)
    z = env.zaslon(cfg)
    load = Healthy(z, "healthy.example", cover)
    for proto in ("h1c", "h2c"):
        for path in ERRORS_502:
            r, took = timed_get(z, "faulty.example", path + "?id=%s" % proto, proto)
            zl.assert_status(r, 502, "%s over %s" % (path, proto))
            assert took < 5, "%s over %s took %.1fs" % (path, proto, took)
        for path in CUT_SHORT:
            r, _ = timed_get(z, "faulty.example", path + "?id=%s" % proto, proto)
            # curl fails (18: partial file, 92 / 16: h2 stream error, 56: recv) and saw
            # the head
            # HTTP/1.1: the connection closes short of the declared length (curl 18);
            # h2: the stream is reset (curl 92)
            want_rc = {"h1c": 18, "h2c": 92}[proto]
            assert r.rc == want_rc, "%s over %s: curl rc %d, want %d (%s)" % (
                path, proto, r.rc, want_rc, r.stderr.strip())
        # more than declared: refused as garbage when the excess comes with the
        # response (502), at most the declared body otherwise; the next request on
        # that backend gets its own answer
        r, _ = timed_get(z, "faulty.example", "/overlong", proto)
        assert (r.status, r.body) in ((502, r.body), (200, b"hello")), \
            "overlong over %s: %r %r" % (proto, r, r.body)
        r, _ = timed_get(z, "faulty.example", "/ok?id=after-overlong-" + proto, proto)
        zl.assert_status(r, 200, "request after overlong")
        zl.assert_eq(r.body, ("ok after-overlong-" + proto).encode(), "after overlong")
        r, took = timed_get(z, "refused.example", "/x", proto)
        zl.assert_status(r, 502, "refusing backend over " + proto)
        assert took < 3, "refused: %.1fs" % took
    # slow: 0.5 s answers; 5, 30 and 120 s get 504 at first_byte_timeout (1 s), and a
    # blackholed connect at connect_timeout (0.7 s); all at once
    cases = [("faulty.example", "/slow/500", 200, 0.45, 5.0),
             ("faulty.example", "/slow/5000", 504, 0.95, 3.5),
             ("faulty.example", "/slow/30000", 504, 0.95, 3.5),
             ("faulty.example", "/slow/120000", 504, 0.95, 3.5),
             ("faulty.example", "/hang", 504, 0.95, 3.5),
             ("blackhole.example", "/x", 504, 0.65, 3.5)]
    with concurrent.futures.ThreadPoolExecutor(len(cases)) as ex:
        got = list(ex.map(lambda c: timed_get(z, c[0], c[1]), cases))
    for (host, path, status, lo, hi), (r, took) in zip(cases, got):
        zl.assert_status(r, status, host + path)
        assert lo <= took <= hi, "%s%s: %d after %.2fs, want %.2f..%.2f s" % (
            host, path, status, took, lo, hi)
    load.finish(at_least=20)
    stop_clean(z)


def test_sealed_faults(env):
    """Sealed requests (zaslonctl) through a refusing, slow and garbage backend get
    sealed 502 / 504 / 502, and through an open breaker a sealed 503, with nothing
    sent to the backend; after the cooldown a probe closes it."""
    fb = FaultBackend(env)
    healthy = env.backend("healthy")
    s = SealedSetup(env)
    backends = fault_backends(fb, zl.free_port(), zl.free_port(), healthy)
    backends["flaky"] = zl.backend_block(url=fb.url, breaker_failures=3,
                                         breaker_cooldown="1500ms")
    routes = FAULT_ROUTES + [zl.route("flaky", host="flaky.example")]
    cfg, cover = config(env, backends, routes, sealed=s.block())
    z = env.zaslon(cfg)
    load = Healthy(z, "healthy.example", cover)
    zl.assert_eq(s.ctl(z, "GET", "https://refused.example/x")[0], 502, "sealed refused")
    t0 = time.monotonic()
    zl.assert_eq(s.ctl(z, "GET", "https://faulty.example/slow/30000")[0], 504,
                 "sealed slow")
    took = time.monotonic() - t0
    assert 0.95 <= took < 4, "sealed 504 after %.2fs, want first_byte_timeout 1s" % took
    for path in ["/garbage", "/bighead", "/closereq", "/closepartial", "/truncchunk"]:
        zl.assert_eq(s.ctl(z, "POST", "https://faulty.example%s" % path, "v=1")[0], 502,
                     "sealed " + path)
    # breaker: three failures open it; then 503 inside the seal, nothing sent
    for i in range(3):
        zl.assert_eq(s.ctl(z, "GET", "https://flaky.example/garbage?id=g%d" % i)[0], 502,
                     "flaky garbage %d" % i)
    for i in range(3):
        zl.assert_eq(s.ctl(z, "POST", "https://flaky.example/ok?id=open%d" % i, "v=1")[0],
                     503, "sealed through an open breaker")
    sent = [r for r in fb.records() if r[1].startswith("open")]
    zl.assert_eq(sent, [], "requests the backend got while the breaker was open")
    time.sleep(1.6)
    status, body = s.ctl(z, "POST", "https://flaky.example/ok?id=probe", "v=1")
    zl.assert_eq((status, body), (200, "ok probe"), "the probe after the cooldown")
    zl.assert_eq(s.ctl(z, "GET", "https://flaky.example/ok?id=after")[0], 200,
                 "after a good probe")
    load.finish(at_least=10)
    stop_clean(z)


def test_breaker(env):
    """Plain requests: breaker_failures 5 in a row open it; 503 at once with nothing
    sent while open; a bad probe after the cooldown reopens it, a good one closes it.
    The healthy backend and the cover never notice."""
    fb = FaultBackend(env)
    healthy = env.backend("healthy")
    backends = {"flaky": zl.backend_block(url=fb.url, breaker_failures=5,
                                          breaker_cooldown="1s"),
                "healthy": zl.backend_block(healthy)}
    routes = [zl.route("flaky", host="flaky.example"),
              zl.route("healthy", host="healthy.example")]
    cfg, cover = config(env, backends, routes)
    z = env.zaslon(cfg)
    load = Healthy(z, "healthy.example", cover)
    c = zl.H1Conn(z.plain_port)
    # four failures and a success: still closed
    for i in range(4):
        zl.assert_status(c.request("GET", "/closereq?id=a%d" % i, host="flaky.example"),
                         502, "failure %d" % i)
    zl.assert_status(c.request("GET", "/ok?id=reset", host="flaky.example"), 200,
                     "a success resets the count")
    for i in range(5):
        zl.assert_status(c.request("GET", "/resetreq?id=b%d" % i, host="flaky.example"),
                         502, "failure %d" % i)
    n_before = len(fb.records())
    t0 = time.monotonic()
    for i in range(200):
        if i % 2:
            r = c.request("GET", "/ok?id=open%d" % i, host="flaky.example")
        else:
            # a body refused at the head: HTTP/1.1 closes after the answer
            p = zl.H1Conn(z.plain_port)
            r = p.request("POST", "/ok?id=open%d" % i, host="flaky.example", body=b"x")
            p.close()
        zl.assert_status(r, 503, "open breaker, request %d" % i)
    took = time.monotonic() - t0
    zl.assert_eq(len(fb.records()), n_before, "requests the backend got while open")
    # 200 fast failures on one connection: no connect, no wait
    assert took < 5, "200 refusals took %.2fs" % took
    time.sleep(1.1)
    zl.assert_status(c.request("GET", "/garbage?id=probe1", host="flaky.example"), 502,
                     "bad probe")
    zl.assert_status(c.request("GET", "/ok?id=x1", host="flaky.example"), 503,
                     "reopened after a bad probe")
    time.sleep(1.1)
    r = c.request("GET", "/ok?id=probe2", host="flaky.example")
    zl.assert_status(r, 200, "good probe")
    zl.assert_eq(r.body, b"ok probe2", "good probe body")
    for i in range(20):
        zl.assert_status(c.request("GET", "/ok?id=c%d" % i, host="flaky.example"), 200,
                         "closed again")
    ids = [r[1] for r in fb.records()]
    zl.assert_eq([i for i in ids if i.startswith("open") or i == "x1"], [],
                 "requests delivered while open")
    c.close()
    load.finish(at_least=10)
    text = open(os.path.join(z.rundir, "error.log")).read()
    assert text.count("circuit breaker open") == 2, "breaker log lines:\n%s" % text[-2000:]
    assert "circuit breaker closed" in text, "no close line:\n%s" % text[-2000:]
    stop_clean(z)


def test_limits(env):
    """max_connections 2, max_queue 3: of 8 requests at once, 3 get 503 at once, 5 are
    answered, never more than 2 of them at the backend together."""
    fb = FaultBackend(env)
    backends = {"slowq": zl.backend_block(url=fb.url, max_connections=2, max_queue=3,
                                          first_byte_timeout="10s")}
    cfg, _ = config(env, backends, [zl.route("slowq", host="slowq.example")])
    z = env.zaslon(cfg)
    h = z.h2(tls=False, timeout=20)
    t0 = time.monotonic()
    sids = [h.request("/slow/1500?id=q%d" % i, authority="slowq.example")
            for i in range(8)]
    h.wait(lambda: sum(h.streams[i].done for i in sids) >= 3, 20, "the refusals")
    fast = time.monotonic() - t0
    refused = [i for i in sids if h.streams[i].done]
    zl.assert_eq([h.streams[i].status for i in refused], [503] * 3, "refused statuses")
    assert fast < 1.2, "refusals came after %.2fs, not at once" % fast
    streams = h.wait_streams(sids, 20)
    took = time.monotonic() - t0
    zl.assert_eq(sorted(s.status for s in streams), [200] * 5 + [503] * 3, "statuses")
    recs = fb.records()
    zl.assert_eq(len(recs), 5, "requests at the backend")
    assert len({r[3] for r in recs}) <= 2, "connections used: %s" % recs
    # 5 requests of 1.5 s through 2 connections: three rounds
    assert took >= 3 * 1.5 - 0.1, "5 answers after %.2fs: more than 2 at once" % took
    h.close()
    stop_clean(z)


def test_queue_wait_bounded(env):
    """A queued request waits at most first_byte_timeout for a connection: behind a
    backend that never answers, max_connections 1, every request gets 504 within one
    first_byte_timeout of getting a connection or of queueing, never a hang."""
    fb = FaultBackend(env)
    backends = {"stuck": zl.backend_block(url=fb.url, max_connections=1, max_queue=4,
                                          first_byte_timeout="1s")}
    cfg, _ = config(env, backends, [zl.route("stuck", host="stuck.example")])
    z = env.zaslon(cfg)
    h = z.h2(tls=False, timeout=20)
    t0 = time.monotonic()
    sids = [h.request("/hang?id=w%d" % i, authority="stuck.example") for i in range(4)]
    streams = h.wait_streams(sids, 20)
    took = time.monotonic() - t0
    zl.assert_eq([s.status for s in streams], [504] * 4, "statuses")
    # 1 s on the connection, or 1 s in the queue and at most 1 s more on it
    assert 0.95 <= took < 4, "four 504s after %.2fs, want 1..2 s" % took
    assert len(fb.records()) <= 2, "requests at the backend: %s" % fb.records()
    h.close()
    stop_clean(z)


PLAIN_MODES = ["closereq", "resetreq", "closehead", "closepartial", "resetpartial",
               "okclose", "ok"]
# GETs get every mode too: nothing is resent, whatever the method (tp_upstream.h).
GET_MODES = PLAIN_MODES


def _plain_worker(z, jobs, results):
    conn = None
    for method, mode, rid in jobs:
        path = "/%s?id=%s" % (mode, rid)
        for attempt in (1, 2):
            try:
                if conn is None:
                    conn = zl.H1Conn(z.plain_port, timeout=30)
                r = conn.request(method, path, host="faulty.example",
                                 body=b"ballot" if method == "POST" else None)
                results.append((rid, mode, r.status, r.body))
                if (r.header("connection") or "").lower() == "close":
                    conn = None   # e.g. the per-connection request limit
                break
            except EOFError:
                # a response cut short after its head: HTTP/1.1 closes the connection
                results.append((rid, mode, "cut", b""))
                conn = None
                break
            except ConnectionResetError:
                if attempt == 2:
                    raise
                conn = None   # the previous answer's close raced this send: not sent
            except socket.timeout:
                results.append((rid, mode, "hang", b""))
                conn = None
                break


def _sealed_worker(z, key, jobs, results):
    conn = None
    for mode, rid in jobs:
        try:
            if conn is None:
                conn = zl.H1Conn(z.plain_port, timeout=30)
            status, body, keep = sealed_post(conn, key, "faulty.example",
                                             "/%s?id=%s" % (mode, rid), b"ballot")
            results.append((rid, mode, status, body))
            if not keep:
                conn = None
        except socket.timeout:
            results.append((rid, mode, "hang", b""))
            conn = None


def test_never_twice(env):
    """2,000 plain POSTs, 2,000 sealed POSTs and 1,000 GETs at once (two workers, pooled
    connections) to a backend that closes or resets after reading the request, after
    the head, mid-body, or closes idle pooled connections: no id reaches it twice,
    every client gets an answer, an ok answer carries its own id."""
    fb = FaultBackend(env)
    healthy = env.backend("healthy")
    s = SealedSetup(env)
    backends = {"faulty": zl.backend_block(url=fb.url, breaker_failures=0,
                                           pool_size=8, max_connections=32),
                "healthy": zl.backend_block(healthy)}
    routes = [zl.route("faulty", host="faulty.example"),
              zl.route("healthy", host="healthy.example")]
    cfg, cover = config(env, backends, routes, workers=2, sealed=s.block())
    z = env.zaslon(cfg)
    load = Healthy(z, "healthy.example", cover)
    n_threads = 6
    plain_jobs = [[] for _ in range(n_threads)]
    sealed_jobs = [[] for _ in range(n_threads)]
    for i in range(2000):
        plain_jobs[i % n_threads].append(("POST", PLAIN_MODES[i % len(PLAIN_MODES)],
                                          "p%d" % i))
        sealed_jobs[i % n_threads].append((PLAIN_MODES[(i // 3) % len(PLAIN_MODES)],
                                           "s%d" % i))
    for i in range(1000):
        plain_jobs[i % n_threads].append(("GET", GET_MODES[i % len(GET_MODES)], "g%d" % i))
    for jobs in plain_jobs:
        jobs.sort(key=lambda j: int(j[2][1:]))
    results = []
    t0 = time.monotonic()
    threads = [threading.Thread(target=_plain_worker, args=(z, j, results))
               for j in plain_jobs]
    threads += [threading.Thread(target=_sealed_worker, args=(z, s.key, j, results))
                for j in sealed_jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    took = time.monotonic() - t0
    zl.assert_eq(len(results), 5000, "answers")
    hangs = [r for r in results if r[2] == "hang"]
    zl.assert_eq(hangs, [], "requests without an answer")
    # what each client may see, per mode (502: the request went out on a pooled
    # connection the backend had just closed, before it read a byte of it)
    for rid, mode, status, body in results:
        sealed = rid.startswith("s")
        if mode in ("ok", "okclose"):
            ok = status == 502 or (status == 200 and body == ("ok " + rid).encode())
        elif mode in ("closereq", "resetreq"):
            ok = status == 502
        else:  # a head, then the answer cut short
            ok = status == (502 if sealed else "cut") or status == 502
        assert ok, "%s %s: got %r %r" % (rid, mode, status, body[:40])
    recs = fb.records()
    counts = {}
    for mode, rid, method, conn, seq in recs:
        counts[rid] = counts.get(rid, 0) + 1
    twice = {k: v for k, v in counts.items() if v > 1}
    assert not twice, "delivered more than once: %s" % sorted(twice.items())[:10]
    faults = sum(1 for r in recs if r[0] not in ("ok", "okclose"))
    reused = sum(1 for r in recs if r[4] > 1)
    assert faults >= 2500, "only %d faults injected after the request arrived" % faults
    assert reused >= 300, "only %d requests on reused connections" % reused
    answered_ok = sum(1 for r in results if r[2] == 200)
    sealed_ok = sum(1 for r in results if r[2] == 200 and r[0].startswith("s"))
    assert sealed_ok >= 200 and answered_ok - sealed_ok >= 200, \
        "too few good answers: %d sealed, %d plain" % (sealed_ok, answered_ok - sealed_ok)
    print("never twice: %d requests in %.1fs, %d delivered, %d faults after the request "
          "arrived, %d on reused connections, %d ok, 0 copies" % (
              len(results), took, len(recs), faults, reused, answered_ok))
    load.finish(at_least=10)
    stop_clean(z)


if __name__ == "__main__":
    zl.main(globals())
