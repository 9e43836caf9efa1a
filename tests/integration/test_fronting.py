#!/usr/bin/python3
"""Fronting end to end (issue 4, proofs a, b and c): a CDN stand-in (Debian's haproxy,
cdn.py) terminates TLS for front.example, routes on the inner Host edge.hidden.example,
adds X-Forwarded-For, X-Real-IP, Via and the origin secret, and forwards to a zaslon
edge (relay and gateway in one process, `gate:` configured with two secrets) in three
variants: HTTP/2 over TLS to zaslon's TLS listener (haproxy `ssl ... alpn h2 proto h2`),
h2c with prior knowledge to its cleartext listener (`proto h2`), and cleartext HTTP/1.1
(haproxy's own log proves which version each hop spoke). Behind zaslon: three recording
backends, voting (vote.example, `replay: strict`), identity (id.example) and service
(*.service.example), and a static cover site.

Fails when:
  - a sealed request sent by `zaslonctl request` (SNI front.example, Host
    edge.hidden.example, --connect-to an address) through any variant does not open to
    the right backend's answer, or the backend did not get exactly the inner request,
    or any field it received is not allowlisted, or names or values anything of the
    outer hops: an address, the X-Forwarded-For / X-Real-IP / Via the front added, the
    origin secret, the front or hidden name, a cookie or forwarding field sealed inside;
  - the footprint: tshark on the client<->front hop (plus DNS on every interface)
    during those requests holds the hidden name or a backend's name anywhere in
    cleartext (raw capture bytes, `tshark -x` bytes, every TCP stream reassembled), a
    TLS ClientHello with an SNI other than front.example, or any DNS packet; or the
    capture is too thin to mean anything (no ClientHello per request, few packets, the
    warm-up packet missing);
  - a browser-like GET through the front (SNI front.example, Host edge.hidden.example)
    does not get the cover site's page byte for byte, or one for the front's own name
    reaches zaslon instead of haproxy's 404;
  - the access gate: a front injecting the old secret (rotation) is refused; once the
    gate is enforced (a direct sealed request without the secret gets the cover), a
    front that injects no secret or a wrong one, or a direct request, is opened or
    reaches a backend, or the direct one gets anything but the cover answer (through
    haproxy 2.6 the refusal may also arrive as a stream reset: zaslon answers at the
    head, before the body, and haproxy sometimes resets instead of passing it on);
  - failover: with --relay repeated, a dead front then a live one delivers once; a
    front that delivers but loses the answer, then a live one, resends the SAME sealed
    bytes and the replay cache refuses the copy inside the seal: the ballot backend
    gets exactly one copy."""

import hashlib
import json
import os
import re
import select
import signal
import socket
import subprocess
import threading
import time

import cdn
import zl

FRONT, HIDDEN = cdn.FRONT, cdn.HIDDEN
ORIGIN_NAME = "origin.example.net"     # the origin's own certificate name (haproxy SNI)
SEALED_PATH = "/s/"
SECRET = "zl-origin-secret-4c1f9e27b3a8d605"
OLD_SECRET = "zl-origin-secret-old-8e2d71c0a4f3"
WRONG_SECRET = "zl-origin-secret-wrong-00000000"
VARIANTS = ("h2", "h2c", "h1")         # haproxy -> zaslon: TLS h2, h2c, cleartext HTTP/1.1
ALLOWLIST = {"accept", "accept-encoding", "accept-language", "cache-control",
             "content-encoding", "content-language", "content-length", "content-type",
             "date", "if-match", "if-modified-since", "if-none-match", "if-range",
             "if-unmodified-since", "range", "authorization"}
# Sealed inside the request, never to reach a backend.
STRIPPED = [("cookie", "session=sekrit-cookie"), ("x-forwarded-for", "198.51.100.77"),
            ("forwarded", "for=198.51.100.78;proto=https"), ("x-real-ip", "198.51.100.79"),
            ("via", "1.1 sekrit-proxy"), ("user-agent", "ua-sekrit/1.0")]
# What must not be in any field name or value a backend got (besides "127." outside
# the adapter's Host): the outer hops and everything stripped.
FORBIDDEN_TOKENS = ["sekrit", "198.51.100.", SECRET, OLD_SECRET, HIDDEN, FRONT,
                    ORIGIN_NAME, cdn.VIA, "cdn-standin", "haproxy"]
FORBIDDEN_NAMES = {"x-forwarded-for", "x-real-ip", "via", "forwarded", cdn.SECRET_HEADER,
                   "cookie", "user-agent", "x-forwarded-proto", "x-forwarded-host"}
# Names that must never cross the client<->front hop in cleartext.
HIDDEN_NAMES = [HIDDEN, "hidden.example", "vote.example", "id.example",
                "service.example", ORIGIN_NAME]


class Inner:
    def __init__(self, name, method, url, headers=(), body=b"", backend=None):
        self.name, self.method, self.url = name, method, url
        self.headers, self.body, self.backend = list(headers), body, backend
        rest = url.split("://", 1)[1]
        self.path = "/" + rest.split("/", 1)[1] if "/" in rest else "/"

    def expected_body(self):
        return ("backend %s %s" % (self.backend, self.path)).encode()


def inners(tag):
    """The three requests, with |tag| in their paths (so each is recorded once)."""
    return [
        Inner("ballot", "POST", "https://vote.example/ballot/%s" % tag,
              [("content-type", "application/x-www-form-urlencoded")] + STRIPPED,
              b"candidate=7&district=14&nonce=" + tag.encode(), backend="voting"),
        Inner("whoami", "GET", "https://id.example/whoami/%s?x=1&y=2" % tag,
              [("accept", "application/json"), ("authorization", "Bearer tok-123")]
              + STRIPPED, backend="identity"),
        Inner("fields", "GET", "https://a.service.example/fields/%s" % tag,
              [("accept-language", "be, en;q=0.5")] + STRIPPED, backend="service"),
    ]


# --------------------------------------------------------------------------- setup

def ctl(*args, timeout=30):
    return subprocess.run((zl.ZASLONCTL_BIN,) + tuple(args), capture_output=True,
                          text=True, errors="replace", timeout=timeout,
                          stdin=subprocess.DEVNULL)


class Deploy:
    """zaslon (gate on) behind haproxy in each of |variants|, its backends and keys."""

    def __init__(self, env, variants=VARIANTS, extra_fronts=()):
        self.env = env
        origin = env.certs(names=(ORIGIN_NAME, "localhost"), ips=("127.0.0.1",))
        self.origin_ca = origin.ca
        self.front_certs = cdn.front_certs(env)
        self.cover = zl.CoverSite(env)
        keydir = env.path("keys")
        os.mkdir(keydir, 0o700)
        r = ctl("keygen", "--id", "1", "--out", os.path.join(keydir, "k1.key"))
        assert r.returncode == 0, "keygen: %s" % r.stderr
        self.keys_file = env.path("ohttp-keys")
        r = ctl("keys", "export", "--dir", keydir, "--out", self.keys_file)
        assert r.returncode == 0, "keys export: %s" % r.stderr
        self.b = {n: env.backend(n) for n in ("voting", "identity", "service")}
        backends = {"voting": zl.backend_block(self.b["voting"], replay="strict"),
                    "identity": zl.backend_block(self.b["identity"]),
                    "service": zl.backend_block(self.b["service"])}
        routes = [zl.route("voting", host="vote.example"),
                  zl.route("identity", host="id.example"),
                  zl.route("service", host="*.service.example")]
        cfg = zl.edge_config(env, cover=self.cover.root, backends=backends, routes=routes,
                             sealed={"path": SEALED_PATH, "keys": keydir},
                             gate={"header": cdn.SECRET_HEADER,
                                   "secrets": [OLD_SECRET, SECRET]})
        self.z = env.zaslon(cfg)
        self.cdn = {v: self.front(v, SECRET) for v in variants}
        for name, mode, secret in extra_fronts:
            self.cdn[name] = self.front(mode, secret, name=name)

    def front(self, mode, secret, name=None):
        tls = mode in ("h2", "h1tls")
        return cdn.Cdn(self.env, self.z.tls_port if tls else self.z.plain_port, mode,
                       secret=secret, certs=self.front_certs, origin_name=ORIGIN_NAME,
                       origin_ca=self.origin_ca, name=name)

    def relay_args(self, c):
        """zaslonctl options for front |c|: SNI front.example, the hidden Host, a fixed
        address (no DNS), the front's CA."""
        return ["--relay", c.url(SEALED_PATH), "--connect-to", "127.0.0.1:%d" % c.port,
                "--cacert", self.front_certs.ca, "--host", HIDDEN]

    def request(self, inner, relay_args, want_rc=0):
        args = ["request"] + list(relay_args) + ["--keys", self.keys_file, "--json",
                                                 "--timeout", "15"]
        for n, v in inner.headers:
            args += ["-H", "%s: %s" % (n, v)]
        if inner.body:
            args += ["--data", inner.body.decode()]
        args += [inner.method, inner.url]
        r = ctl(*args)
        assert r.returncode == want_rc, "zaslonctl %s %s: exit %d, want %d: %s" % (
            inner.method, inner.url, r.returncode, want_rc, r.stderr.strip())
        return json.loads(r.stdout) if want_rc == 0 else r

    def records(self):
        return {n: b.records() for n, b in self.b.items()}

    def port_of(self, backend):
        return self.b[backend].port


# ----------------------------------------------------------------------- assertions

def assert_opened(out, inner, what):
    zl.assert_eq(out["status"], 200, what + ": opened status")
    body = out["body"].encode() if "body" in out else b""
    zl.assert_eq(body, inner.expected_body(), what + ": opened body")


def assert_backend_got(d, inner, what):
    """The backend for |inner| got it exactly once: method, path, body; every field
    allowlisted and free of the outer hops."""
    recs = [r for r in d.b[inner.backend].records() if r["path"] == inner.path]
    zl.assert_eq(len(recs), 1, "%s: copies of %s at backend %s" % (what, inner.path,
                                                                   inner.backend))
    rec = recs[0]
    where = "%s: backend %s %s" % (what, inner.backend, inner.path)
    zl.assert_eq(rec["method"], inner.method, where + ": method")
    zl.assert_eq(rec["body_length"], len(inner.body), where + ": body length")
    zl.assert_eq(rec["body_sha256"], hashlib.sha256(inner.body).hexdigest(),
                 where + ": body sha256")
    check_fields(rec, d.port_of(inner.backend), where)
    hdrs = [(k.lower(), v) for k, v in rec["headers"]]
    want = sorted([(k, v) for k, v in inner.headers if k in ALLOWLIST] +
                  ([("content-length", str(len(inner.body)))] if inner.body else []))
    got = sorted((k, v) for k, v in hdrs if k not in ("host", "date"))
    zl.assert_eq(got, want, where + ": the allowlisted fields sent")


def check_fields(rec, port, where):
    """Every field name and value a backend received: allowlisted, the adapter's own
    Host, one Date, nothing of the outer hops, no address."""
    hdrs = [(k.lower(), v) for k, v in rec["headers"]]
    for k, v in hdrs:
        assert k in ALLOWLIST | {"host"}, "%s: field %s: %s is not allowlisted" % (
            where, k, v)
        assert k not in FORBIDDEN_NAMES, "%s: got %s: %s" % (where, k, v)
        for tok in FORBIDDEN_TOKENS:
            assert tok.lower() not in (k + ": " + v).lower(), "%s: %r in %s: %s" % (
                where, tok, k, v)
        if k != "host":
            assert not re.search(r"\b127\.|\b10\.|\b192\.0\.2\.|::1\b", v), \
                "%s: an address in %s: %s" % (where, k, v)
    zl.assert_eq(zl.header_value(hdrs, "host"), ["127.0.0.1:%d" % port],
                 where + ": Host (the adapter's)")
    zl.assert_eq(len(zl.header_value(hdrs, "date")), 1, where + ": one Date")


def assert_all_records_clean(d):
    for name, recs in d.records().items():
        for rec in recs:
            check_fields(rec, d.port_of(name), "backend %s %s" % (name, rec["path"]))


def assert_hops(c, n_from, want_front, what):
    """haproxy's log from entry |n_from| on: every request went to the origin, over the
    origin protocol of |c|'s mode, with HTTP/|want_front| on the client side."""
    lines = c.log_lines()[n_from:]
    assert lines, "%s: haproxy logged nothing" % what
    want_origin = "2" if c.mode in ("h2", "h2c") else "1"
    for ln in lines:
        zl.assert_eq((ln["front"], ln["origin"], ln["backend"], ln["status"]),
                     (want_front, want_origin, "origin", "200"),
                     "%s: haproxy hop versions/backend/status (%r)" % (what, ln))


# ------------------------------------------------------------------------ capture

class Capture:
    """tshark on every interface, with a capture filter for the client<->front hop
    (tcp port of each front) and name resolution (DNS over UDP and TCP, mDNS, LLMNR);
    `any` rather than `lo` because a resolver query would leave by eth0. Stopped with
    SIGINT (tshark finishes the file), by PID."""

    def __init__(self, env, ports):
        self.path = env.path("front-hop.pcapng")
        self.errpath = env.path("tshark.stderr")
        self.warm = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.warm.bind(("127.0.0.1", 0))
        self.warm_port = self.warm.getsockname()[1]
        filt = " or ".join(["tcp port %d" % p for p in ports] +
                           ["port 53", "udp port 5353", "udp port 5355"])
        self.filter = filt
        self.err = open(self.errpath, "wb")
        self.proc = subprocess.Popen(["tshark", "-n", "-i", "any", "-f", filt, "-w",
                                      self.path], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.err,
                                     start_new_session=True)
        env.register(self)
        zl.wait_until(lambda: b"Capturing on" in self._stderr() or
                      self.proc.poll() is not None, 15, 0.05, "tshark to start")
        assert self.proc.poll() is None, "tshark exited: %s" % self._stderr()
        self.mark(b"zl-footprint-warmup")

    def _stderr(self):
        with open(self.errpath, "rb") as f:
            return f.read()

    def _file(self):
        try:
            with open(self.path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""

    def mark(self, marker, timeout=10):
        """Sends a marker datagram to 127.0.0.1:53 (nothing listens there) until it is
        in the capture file: the capture is live and written through."""
        deadline = time.monotonic() + timeout
        while marker not in self._file():
            assert time.monotonic() < deadline, "tshark did not capture %r: %s" % (
                marker, self._stderr())
            self.warm.sendto(marker, ("127.0.0.1", 53))
            time.sleep(0.1)

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.err.close()
        self.warm.close()

    def finish(self):
        self.mark(b"zl-footprint-cooldown")
        self.stop()
        return self._file()

    def tshark(self, *args):
        r = subprocess.run(["tshark", "-n", "-r", self.path] + list(args),
                           capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, "tshark -r %s: %s" % (args, r.stderr[-2000:])
        return r.stdout


def hex_bytes(text):
    """The bytes of `tshark -x` (and follow,raw) hex dumps, blocks joined with NUL."""
    out = bytearray()
    for line in text.decode("latin-1").splitlines():
        m = re.match(r"^[0-9a-f]{4,8}  ((?:[0-9a-f]{2} ?){1,16})", line)
        if m:
            out += bytes.fromhex(m.group(1).replace(" ", ""))
        else:
            out += b"\0"
    return bytes(out)


def follow_streams(text):
    """[(client->server bytes, server->client bytes)] from `tshark -q -z
    follow,tcp,raw,N` output: each direction's payload joined in order, so a name split
    across segments is whole again (the reverse direction's lines start with a tab)."""
    out = []
    for block in text.decode("latin-1").split("Follow: tcp,raw")[1:]:
        fwd, rev = bytearray(), bytearray()
        for line in block.splitlines():
            m = re.match(r"^(\t?)([0-9a-f]+)$", line)
            if m and len(m.group(2)) % 2 == 0:
                (rev if m.group(1) else fwd).extend(bytes.fromhex(m.group(2)))
        out.append((bytes(fwd), bytes(rev)))
    return out


def find_names(blob, what):
    low = blob.lower()
    for n in HIDDEN_NAMES:
        assert n.lower().encode() not in low, "%s: %r in cleartext" % (what, n)


# -------------------------------------------------------------------------- tests

def test_sealed_through_fronts_footprint(env):
    """Proofs b and c: sealed requests through haproxy in each variant reach the right
    backend with only allowlisted fields and no address; tshark on the client<->front
    hop sees only front.example."""
    d = Deploy(env)
    cap = Capture(env, [c.port for c in d.cdn.values()])
    runs = 0
    sent = []
    try:
        for v, c in d.cdn.items():
            n0 = len(c.log_lines())
            for inner in inners(v):
                out = d.request(inner, d.relay_args(c))
                assert_opened(out, inner, "%s via %s" % (inner.name, v))
                sent.append((v, inner))
                runs += 1
            c.wait_logged(n0 + 3)
            assert_hops(c, n0, "2", "front " + v)
        raw = cap.finish()
    finally:
        cap.stop()
    # proof b: each backend got its requests exactly once, nothing more
    for v, inner in sent:
        assert_backend_got(d, inner, "via " + v)
    zl.assert_eq({n: len(r) for n, r in d.records().items()},
                 {n: len(VARIANTS) for n in d.b}, "requests per backend")
    assert_all_records_clean(d)
    # proof c: the capture is real ...
    decode = []
    for c in d.cdn.values():
        decode += ["-d", "tcp.port==%d,tls" % c.port]
    hellos = [ln.split("\t")[1] if "\t" in ln else ""
              for ln in cap.tshark(*decode, "-Y", "tls.handshake.type == 1", "-T", "fields",
                                   "-e", "frame.number", "-e",
                                   "tls.handshake.extensions_server_name"
                                   ).decode().splitlines() if ln.strip()]
    npackets = len(cap.tshark("-T", "fields", "-e", "frame.number").split())
    front_pkts = len(cap.tshark("-Y", " or ".join("tcp.port == %d" % c.port
                                                  for c in d.cdn.values()),
                                "-T", "fields", "-e", "frame.number").split())
    assert len(hellos) >= runs, "capture: %d ClientHellos for %d requests" % (len(hellos),
                                                                              runs)
    assert front_pkts >= 10 * runs, "capture: only %d packets on the front hop" % front_pkts
    assert b"zl-footprint-warmup" in raw and b"zl-footprint-cooldown" in raw
    # ... every ClientHello names the front, and only the front ...
    for sni in hellos:
        zl.assert_eq(sni, FRONT, "SNI of a ClientHello on the front hop")
    # ... no DNS at all (the warm-up datagrams aside) ...
    dns = cap.tshark("-Y", "(udp.port == 53 or tcp.port == 53 or udp.port == 5353 or "
                     "udp.port == 5355) and not udp.srcport == %d" % cap.warm_port,
                     "-T", "fields", "-e", "frame.number", "-e", "ip.src", "-e",
                     "dns.qry.name").decode().strip()
    assert not dns, "DNS packets during fronted requests:\n%s" % dns
    # ... and no name in cleartext: the file, the hex dump, every stream reassembled
    find_names(raw, "raw capture file")
    find_names(hex_bytes(cap.tshark(*decode, "-x")), "tshark -x")
    streams = sorted({int(s) for s in cap.tshark("-T", "fields", "-e",
                                                 "tcp.stream").split() if s.strip()})
    assert streams, "no TCP stream in the capture"
    follow = []
    for s in streams:
        follow += ["-z", "follow,tcp,raw,%d" % s]
    flows = follow_streams(cap.tshark("-q", *follow))
    zl.assert_eq(len(flows), len(streams), "TCP streams followed")
    for i, (fwd, rev) in enumerate(flows):
        assert len(fwd) > 512 and len(rev) > 512, "stream %d: %d/%d bytes" % (
            i, len(fwd), len(rev))
        find_names(fwd, "TCP stream %d, client to front" % i)
        find_names(rev, "TCP stream %d, front to client" % i)
    print("footprint: %d packets (%d on the front hop), %d TCP streams, %d ClientHellos, "
          "SNI %s, 0 DNS packets" % (npackets, front_pkts, len(streams), len(hellos),
                                     sorted(set(hellos))))


def test_front_routing_and_cover(env):
    """Proof a: a browser-like GET through each front (SNI front.example, Host
    edge.hidden.example, browser fields) gets the cover page byte for byte, over h2 and
    HTTP/1.1 on the client side; the front's own name gets haproxy's 404, not zaslon;
    the front's injected fields actually arrive at the origin (haproxy's config is
    exercised against a recording backend). Also HTTP/1.1 over TLS to the origin."""
    d = Deploy(env, variants=VARIANTS + ("h1tls",))
    browser = ["-H", "user-agent: Mozilla/5.0 (X11; Linux x86_64; rv:115.0) "
               "Gecko/20100101 Firefox/115.0",
               "-H", "accept: text/html,application/xhtml+xml,application/xml;q=0.9,"
               "*/*;q=0.8", "-H", "accept-language: en-US,en;q=0.5",
               "-H", "accept-encoding: gzip, deflate, br"]
    for v, c in d.cdn.items():
        for http, want in (("--http2", "2"), ("--http1.1", "1.1")):
            n0 = len(c.log_lines())
            r = zl.curl(browser + ["-H", "host: " + HIDDEN] + c.curl_args("/", http),
                        want_version=want)
            what = "browser GET / via %s (client %s)" % (v, http)
            zl.assert_status(r, 200, what)
            zl.assert_eq(r.body, d.cover.index, what + ": the cover page")
            zl.assert_clean(r, what=what)
            r = zl.curl(c.curl_args("/menu/", http), want_version=want)
            zl.assert_status(r, 404, "GET with Host front.example via " + v)
            assert b"Linden Street" not in (r.body or b""), "front name reached zaslon"
            c.wait_logged(n0 + 2)
            lines = c.log_lines()[n0:]
            zl.assert_eq([ln["origin"] != "-" and ln["backend"] for ln in lines],
                         ["origin", False], "haproxy routing via %s" % v)
    assert not any(d.records().values()), "a cover GET reached a backend"
    # the template's injection, seen by a recording origin instead of zaslon
    rec_origin = env.backend("origin")
    probe = cdn.Cdn(env, rec_origin.port, "h1", secret=SECRET, certs=d.front_certs,
                    name="cdn-probe")
    r = zl.curl(["-H", "host: " + HIDDEN.upper(), "-H", "x-origin-secret: forged"] +
                probe.curl_args("/probe"), want_version="2")
    zl.assert_status(r, 200, "GET through the front to a recording origin")
    rec = rec_origin.wait_record("/probe")
    hdrs = {k.lower(): v for k, v in rec["headers"]}
    zl.assert_eq(hdrs.get(cdn.SECRET_HEADER), SECRET, "origin secret the front injects")
    zl.assert_eq(hdrs.get("x-forwarded-for"), "127.0.0.1", "X-Forwarded-For")
    zl.assert_eq(hdrs.get("x-real-ip"), "127.0.0.1", "X-Real-IP")
    zl.assert_eq(hdrs.get("via"), cdn.VIA, "Via")
    zl.assert_eq(hdrs.get("host", "").lower(), HIDDEN, "Host")


def test_gate_through_front(env):
    """The origin secret: fronts injecting the current and the old (rotation) secret
    pass; once the gate is enforced, a direct sealed request, a front injecting none and
    a front injecting a wrong one are not opened and reach no backend: the cover answer
    (through a front also haproxy's reset of the stream, see below)."""
    d = Deploy(env, variants=("h2",), extra_fronts=[
        ("cdn-old", "h2c", OLD_SECRET), ("cdn-none", "h1", None),
        ("cdn-wrong", "h2", WRONG_SECRET)])
    for name in ("h2", "cdn-old"):
        for inner in inners(name):
            assert_opened(d.request(inner, d.relay_args(d.cdn[name])), inner,
                          "%s via %s" % (inner.name, name))
            assert_backend_got(d, inner, "via " + name)
    before = {n: len(r) for n, r in d.records().items()}
    # straight to the origin's TLS listener: no front, no secret
    direct = ["--relay", "https://%s:%d%s" % (ORIGIN_NAME, d.z.tls_port, SEALED_PATH),
              "--connect-to", "127.0.0.1:%d" % d.z.tls_port, "--cacert", d.origin_ca,
              "--host", HIDDEN]
    probe = inners("direct")[1]
    r = ctl(*(["request"] + direct + ["--keys", d.keys_file, "--timeout", "15",
                                      probe.method, probe.url]))
    enforced = r.returncode != 0
    if enforced:
        assert "cover answer" in r.stderr, "direct sealed request: %s" % r.stderr
    else:
        print("NOTE: the access gate is not enforced yet (a sealed request without "
              "the origin secret was answered); checking the passing fronts only")
    outcomes = {"direct": not enforced}
    for name in ("cdn-none", "cdn-wrong"):
        inner = inners(name)[1]
        rr = ctl(*(["request"] + d.relay_args(d.cdn[name]) +
                   ["--keys", d.keys_file, "--timeout", "15", inner.method, inner.url]))
        outcomes[name] = rr.returncode == 0
        if enforced:
            # zaslon answers a refused POST at its head, before the body, as the cover
            # does. haproxy 2.6 then sometimes resets the client's stream (CANCEL, or
            # PROTOCOL_ERROR when the client's DATA arrives after the answer) instead of
            # passing on the complete answer; it would for an nginx origin too. Either
            # way the request was not opened.
            reset = "was not closed cleanly" in rr.stderr
            ok = rr.returncode == 1 and ("cover answer" in rr.stderr or reset)
            assert ok, "%s: without the right secret: exit %d: %s" % (
                name, rr.returncode, rr.stderr.strip())
            ln = d.cdn[name].wait_logged(1)[-1]
            assert ln["origin"] != "-", "%s: haproxy did not forward it: %r" % (name, ln)
            if reset:
                print("NOTE: %s: haproxy reset the refused request instead of passing "
                      "on the cover answer: %s" % (name, rr.stderr.strip()[-60:]))
    if enforced:
        zl.assert_eq({n: len(r) for n, r in d.records().items()}, before,
                     "requests per backend after refused ones")
    else:
        # one gate, one answer: all pass alike until it lands
        zl.assert_eq(set(outcomes.values()), {True}, "gate outcomes %r" % outcomes)
    assert_all_records_clean(d)


class LossyFront:
    """A TCP relay in front of a front that passes everything until |delivered()| is
    true, then drops what comes back and closes: the request left, its answer was lost
    (the client sees the connection close before a status line)."""

    def __init__(self, target_port, delivered):
        self.target, self.delivered = target_port, delivered
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(4)
        self.port = self.lsock.getsockname()[1]
        self.dropped = 0
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.lsock.settimeout(0.2)
        deadline = time.monotonic() + 30
        while not self._stop and time.monotonic() < deadline:
            try:
                cs, _ = self.lsock.accept()
            except socket.timeout:
                continue
            self._pipe(cs, deadline)

    def _pipe(self, cs, deadline):
        us = socket.create_connection(("127.0.0.1", self.target))
        try:
            while not self._stop and time.monotonic() < deadline:
                r, _, _ = select.select([cs, us], [], [], 0.1)
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    if s is us:
                        if self.delivered():
                            self.dropped += len(data)
                            return
                        cs.sendall(data)
                    else:
                        us.sendall(data)
        finally:
            cs.close()
            us.close()

    def stop(self):
        self._stop = True
        self.thread.join(5)
        self.lsock.close()


def test_failover(env):
    """--relay repeated: a dead front, then a live one: delivered once. A front that
    delivers but loses the answer, then a live one: the client resends the same sealed
    bytes, the gateway's replay cache refuses the copy (inside the seal), and the
    voting backend has exactly one ballot."""
    d = Deploy(env, variants=("h2", "h2c"))
    dead = zl.free_port()
    common = ["--cacert", d.front_certs.ca, "--host", HIDDEN]
    ballot = inners("failover")[0]
    out = d.request(ballot, common + [
        "--relay", "https://%s:%d%s" % (FRONT, dead, SEALED_PATH),
        "--connect-to", "127.0.0.1:%d" % dead,
        "--relay", d.cdn["h2"].url(SEALED_PATH), "--connect-to",
        "127.0.0.1:%d" % d.cdn["h2"].port])
    assert_opened(out, ballot, "ballot after a dead front")
    assert_backend_got(d, ballot, "after a dead front")

    ballot = inners("lost")[0]
    lossy = LossyFront(d.cdn["h2"].port,
                       lambda: any(r["path"] == ballot.path
                                   for r in d.b["voting"].records()))
    try:
        out = d.request(ballot, common + [
            "--relay", "https://%s:%d%s" % (FRONT, lossy.port, SEALED_PATH),
            "--connect-to", "127.0.0.1:%d" % lossy.port,
            "--relay", d.cdn["h2c"].url(SEALED_PATH), "--connect-to",
            "127.0.0.1:%d" % d.cdn["h2c"].port])
    finally:
        lossy.stop()
    assert lossy.dropped > 0, "the lossy front dropped no answer"
    # the copy through the second front is a replay: refused inside the seal
    zl.assert_eq(out["status"], 409, "resent ballot: opened status (replay)")
    assert_backend_got(d, ballot, "ballot whose first answer was lost")
    zl.assert_eq(len(d.b["voting"].records()), 2, "ballots the voting backend saw")
    assert_all_records_clean(d)


if __name__ == "__main__":
    zl.main(globals())
