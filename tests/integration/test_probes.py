#!/usr/bin/python3
"""Fronting and camouflage (issue 4, parts 2 and 3, proof d): the access gate, the cover
site's answer to every probe, the same work for every refusal, the mount, and the open
deployment's RFC answers.

Two zaslons with the same config, one with the sealed route on (behind a gate with two
accepted origin secrets, secret sealed and key paths) and one with it off (cover only);
probe.py sends its whole set (several hundred probes, over a hundred kinds) to both.
Fails when:
  - any probe gets a different answer from the two (status, fields in order without
    Date, body, connection kept or closed and what a follow-up request gets, h2 resets
    and GOAWAYs, the TLS outcome) — a diff of each is printed; the same with both
    mounted under /edge;
  - a pre-decapsulation failure (gate failure, garbage, unknown key id, bad tag) takes a
    median time further than max(2 ms, 25 %) from the cover-only answer to the same
    POST (see test_refusal_timing for why that bound);
  - the gate lets through a wrong, empty, truncated or absent secret, or refuses an
    accepted one (either value, any case of the field name); the secret reaches a
    backend (outer route or inside a seal, even when an allowlist names the field) or
    any file zaslon wrote;
  - behind the mount, /edge/... is not what / was, redirects lose the prefix, or what
    lies outside the mount is not the cover's 404;
  - with `open: true`, the answers are not RFC 9458 / 9457 / 9540's: keys public at the
    key path, the well-known path and the gateway URI; 422 + ohttp-key for key problems,
    405 with Allow, 415, 411, 413, 403 for the gate, 400 otherwise; replay still 409
    inside the seal."""

import http.server
import json
import os
import random
import socket
import statistics
import threading
import time

import probe
import test_sealed as ts
import zl

FRONT = ts.FRONT
HIDDEN = ts.HIDDEN
HEADER = "X-Origin-Secret"  # as an operator might write it; conf/ lowercases it
SECRETS = ["gate-secret-0123456789-first-value", "gate~secret~rotation~second~val"]
SEALED_PATH = "/assets/f3a9c1e07b/"   # a secret sealed path
KEYS_PATH = "/assets/f3a9c1e07b.keys"  # and a secret key path
MAX_REQUEST = 4096
MOUNT = "/edge"


class Pair:
    """A sealed, gated zaslon (|on|) and the same config without `sealed:` (|off|)."""

    def __init__(self, env, mount=None, gate=True, open_=False, backends=None, routes=None,
                 keys_path=KEYS_PATH, sealed_path=SEALED_PATH, reference=True):
        self.env = env
        self.certs = env.certs(names=(FRONT, "localhost"), ips=("127.0.0.1",))
        self.cover = zl.CoverSite(env)
        self.keydir = env.path("keys")
        os.mkdir(self.keydir, 0o700)
        os.chmod(self.keydir, 0o700)
        ts.keygen(os.path.join(self.keydir, "k1.key"), 1)
        self.keys_file = env.path("ohttp-keys")
        r = ts.ctl("keys", "export", "--dir", self.keydir, "--out", self.keys_file)
        assert r.returncode == 0, "keys export: %s" % r.stderr
        with open(self.keys_file, "rb") as f:
            self.keys = f.read()
        self.config = ts.parse_keys(self.keys)[0]
        self.mount, self.sealed_path, self.keys_path = mount or "", sealed_path, keys_path
        extra = {"server_header": "nginx", "limits": {"header_timeout": "3s"}}
        if gate:
            extra["gate"] = {"header": HEADER, "secrets": SECRETS}
        if mount:
            extra["mount"] = mount
        if open_:
            extra["open"] = True
        if backends:
            extra["backends"] = backends
        if routes:
            extra["routes"] = routes
        sealed = {"path": sealed_path, "keys_path": keys_path, "keys": self.keydir,
                  "max_request": MAX_REQUEST}
        self.on = env.zaslon(zl.edge_config(env, cover=self.cover.root, sealed=sealed,
                                            **extra), name="sealed")
        self.off = None
        if reference:
            self.off = env.zaslon(zl.edge_config(env, cover=self.cover.root, **extra),
                                  name="coveronly")

    def target(self, z, secret=SECRETS[0]):
        return probe.Target(z.tls_port, z.plain_port, sni=FRONT, authority=HIDDEN,
                            prefix=self.mount, sealed_path=self.sealed_path,
                            keys_path=self.keys_path, secret_header=HEADER.lower(),
                            secret=secret, max_request=MAX_REQUEST)

    def p(self, path):
        return self.mount + path


def send(z, body, proto="h1c", method="POST", path=None, headers=(), ctype=ts.REQ_TYPE,
         content_length=True, ca=None):
    """One request to |z| from the test client address; a zl.Response."""
    return ts.raw_send(z, body, proto, method, ctype, path, content_length, zl.CLIENT_ADDR,
                       ca, list(headers))


def secret(i=0):
    return [(HEADER.lower(), SECRETS[i])]


def opened(sealed, r, what):
    """The peer's opening of a sealed answer |r| (checked as test_sealed checks one,
    with the configured Server field set aside)."""
    r.headers = [(k, v) for k, v in r.headers if k != "server"]
    return ts.peer_open(sealed, ts.assert_sealed(r, what))


# ------------------------------------------------------------------------ probes

def run_probes(pair):
    """probe.py against both; returns the sealed zaslon's results after checking that
    they equal the cover-only one's."""
    t0 = time.monotonic()
    on = probe.run(pair.target(pair.on))
    off = probe.run(pair.target(pair.off))
    took = time.monotonic() - t0
    names = sorted(on)
    print("%d probes (%d kinds) against each zaslon, %.1fs" % (
        len(names), len(probe.kinds(names)), took), flush=True)
    assert len(probe.kinds(names)) >= 40, "only %d kinds of probe" % len(probe.kinds(names))
    d = probe.diff(on, off, "sealed route on", "cover only")
    if d:
        print("\n".join(d), flush=True)
    assert not d, "%d of %d probes tell the sealed zaslon from the cover-only one" % (
        len(d), len(names))
    broken = sorted(n for n, r in on.items() if "probe-error" in r)
    assert not broken, "probes that broke: %s" % broken
    # nothing of OHTTP, ever, in the default (censored) deployment
    text = json.dumps(on)
    for leak in ("problem+json", "message/ohttp-res", "application/ohttp-keys", "ohttp-key"):
        assert leak not in text, "%s visible to a prober" % leak
    return on


def status_of(res, name):
    r = res[name]
    if "streams" in r:
        return int(r["streams"][0]["status"]) if r["streams"][0]["status"] else None
    resps = r.get("responses") or []
    return int(resps[0]["status_line"].split()[1]) if resps else None


def field_of(res, name, field):
    r = res[name]
    hs = r["streams"][0]["headers"] if "streams" in r else r["responses"][0]["headers"]
    return [v for k, v in hs if k.lower() == field]


def test_probes_gated(env):
    """Sealed route on (gated, secret paths) vs off: every probe gets the same answer."""
    pair = Pair(env)
    on = run_probes(pair)
    # the probes reached what they meant to (not a wall of connection errors)
    for name, want in [("h1c GET /index.html", 200), ("h2 GET /index.html", 200),
                       ("h2c GET the sealed path", 404), ("h1 GET the key path, no secret", 404),
                       ("h1c POST sealed unknown key id, right secret", 404),
                       ("h2 PUT /", 405), ("h1c missing Host", 400),
                       ("h1c GET a 9000-byte path", 414), ("h1c GET /menu (a directory)", 301),
                       ("TLS ALPN h2, GET /", 200), ("TLS no ALPN, GET /", 200)]:
        zl.assert_eq(status_of(on, name), want, name)
    zl.assert_eq(field_of(on, "h2 GET /menu (a directory)", "location"), ["/menu/"],
                 "cover redirect")
    # the gate itself works (what the probes must not see, a key holder does)
    r = send(pair.on, None, "h2", "GET", KEYS_PATH, secret(1), None, ca=pair.certs.ca)
    zl.assert_status(r, 200, "key path with the second secret")
    zl.assert_eq(r.body, pair.keys, "keys behind the gate")


def test_probes_mounted(env):
    """Both mounted under /edge: the same comparison; /edge/... is the site, redirects
    keep the prefix, the rest is the cover's 404."""
    pair = Pair(env, mount=MOUNT)
    on = run_probes(pair)
    for name, want in [("h1c GET /index.html", 200), ("h2 GET /", 200),
                       ("h1c GET a path outside the mount", 404),
                       ("h2 GET a path outside the mount", 404),
                       ("h1c GET the mount without its slash", 404),
                       ("h2c GET the sealed path", 404), ("h1c GET /menu (a directory)", 301)]:
        zl.assert_eq(status_of(on, name), want, name)
    for pr in ("h1", "h1c", "h2", "h2c"):
        zl.assert_eq(field_of(on, "%s GET /menu (a directory)" % pr, "location"),
                     ["/edge/menu/"], "redirect behind the mount over " + pr)
        zl.assert_eq(field_of(on, "%s GET /menu/?a=b" % pr, "location"), [],
                     "no redirect for the slash form over " + pr)
    # the sealed route lives below the mount, and only there
    r = send(pair.on, None, "h1c", "GET", MOUNT + KEYS_PATH, secret(), None)
    zl.assert_status(r, 200, "keys below the mount")
    r = send(pair.on, None, "h1c", "GET", KEYS_PATH, secret(), None)
    zl.assert_status(r, 404, "key path outside the mount")
    zl.assert_eq(r.body, pair.cover.not_found, "key path outside the mount: the 404 page")
    cfg = pair.config
    sealed = ts.peer_seal(cfg, ts.Inner("x", "GET", "https://nothing.example/x"), aead=1)
    r = send(pair.on, sealed["request_bytes"], "h2", path=MOUNT + SEALED_PATH,
             headers=secret(), ca=pair.certs.ca)
    o = opened(sealed, r, "sealed request below the mount")
    zl.assert_eq(o.status, 404, "opened: no route for nothing.example")


# ------------------------------------------------------------------------ the gate

class _Redirector(http.server.BaseHTTPRequestHandler):
    """A backend that redirects root-relative and records what it got."""
    seen = []

    def do_GET(self):
        _Redirector.seen.append((self.path, [(k.lower(), v) for k, v in self.headers.items()]))
        self.send_response(302)
        self.send_header("Location", "/login?next=%s" % self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


def test_gate_and_stripping(env):
    """Each accepted secret opens the gate (any case of the field name); wrong, empty,
    truncated, extended or absent ones get the cover; the secret never reaches a
    backend (outer route with the field allowlisted, or sealed inside a request) and
    never any file zaslon wrote. Behind a mount a backend's redirect keeps the prefix."""
    b = env.backend("service")
    red = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirector)
    threading.Thread(target=red.serve_forever, daemon=True).start()
    try:
        allow = sorted(ts.ALLOWLIST | {HEADER.lower()})
        backends = {"service": zl.backend_block(b, headers=allow),
                    "red": zl.backend_block(url="http://127.0.0.1:%d" % red.server_port)}
        routes = [zl.route("service", host="svc.example"), zl.route("red", path="/app/"),
                  zl.route("service", path="/api/")]
        pair = Pair(env, mount=MOUNT, backends=backends, routes=routes, reference=False)
        z = pair.on
        ok = [(HEADER, SECRETS[0]), ("x-origin-secret", SECRETS[1]),
              ("X-ORIGIN-SECRET", SECRETS[0])]
        for name, value in ok:
            for proto in ("h1c", "h1", "h2"):
                if proto == "h2" and name != name.lower():
                    continue  # HTTP/2 field names are lowercase by definition
                r = send(z, None, proto, "GET", MOUNT + KEYS_PATH, [(name, value)], None,
                         ca=pair.certs.ca)
                zl.assert_status(r, 200, "keys with %s: <secret> over %s" % (name, proto))
        bad = ["", SECRETS[0][:-1], SECRETS[0] + "x", SECRETS[1].upper(), "x" * 40,
               SECRETS[0] + SECRETS[1]]
        for value in bad:
            for proto in ("h1c", "h2"):
                r = send(z, None, proto, "GET", MOUNT + KEYS_PATH, [(HEADER.lower(), value)],
                         None, ca=pair.certs.ca)
                zl.assert_status(r, 404, "keys with a wrong secret (%d bytes)" % len(value))
                zl.assert_eq(r.body, pair.cover.not_found, "wrong secret: the cover's 404")
        r = send(z, None, "h2", "GET", MOUNT + KEYS_PATH, [("x-origin-secre", SECRETS[0])],
                 None, ca=pair.certs.ca)
        zl.assert_status(r, 404, "the secret under another field name")
        # a sealed request works with either secret and with no other
        inner = ts.Inner("w", "GET", "https://svc.example/whoami",
                         [("accept", "text/plain"), (HEADER.lower(), SECRETS[0])],
                         backend="service")
        for i in (0, 1):
            sealed = ts.peer_seal(pair.config, inner, aead=1)
            r = send(z, sealed["request_bytes"], "h1c", path=MOUNT + SEALED_PATH,
                     headers=secret(i))
            o = opened(sealed, r, "sealed with secret %d" % i)
            zl.assert_eq(o.status, 200, "opened status with secret %d" % i)
        sealed = ts.peer_seal(pair.config, inner, aead=1)
        r = send(z, sealed["request_bytes"], "h1c", path=MOUNT + SEALED_PATH,
                 headers=[(HEADER.lower(), "nope-" + SECRETS[0])])
        zl.assert_status(r, 404, "sealed request without an accepted secret")
        zl.assert_eq(len(b.records()), 2, "sealed requests delivered")
        # outer: a plain route whose allowlist names the field
        r = zl.curl(["--http1.1", "-H", "Host: svc.example", "-H", "%s: %s" % (HEADER, SECRETS[0]),
                     "-H", "Accept: text/plain",
                     "http://127.0.0.1:%d%s/api/x" % (z.plain_port, MOUNT)])
        zl.assert_status(r, 200, "plain route below the mount")
        recs = b.records()
        zl.assert_eq(recs[-1]["path"], "/api/x", "the backend sees the path below the mount")
        for rec in recs:
            for k, v in rec["headers"]:
                assert k.lower() != HEADER.lower(), "the origin secret reached a backend"
                for s in SECRETS:
                    assert s not in v, "a secret reached a backend in %s" % k
        assert any(k.lower() == "accept" for k, _ in recs[-1]["headers"]), recs[-1]
        # a backend's redirect behind the mount keeps the prefix; absolute ones stay
        for proto in ("h1c", "h2c"):
            r = z.curl(proto, MOUNT + "/app/page?x=1")
            zl.assert_status(r, 302, "redirect from a backend over " + proto)
            zl.assert_eq(r.header("location"), MOUNT + "/login?next=/app/page?x=1",
                         "Location behind the mount")
        for path, hs in _Redirector.seen:
            assert path.startswith("/app/"), path
            assert HEADER.lower() not in dict(hs), "the origin secret reached a backend"
        zl.assert_eq(z.stop(), 0, "zaslon exit status (leaks under ASan, crashes)")
        for path, data in z.files_text().items():
            for s in SECRETS:
                assert s.encode() not in data, "a secret in %s" % path
    finally:
        red.shutdown()
        red.server_close()


# ------------------------------------------------------------------------ timing

def _timed(port, data, n_resp=1):
    """Seconds from sending |data| on a fresh connection to the end of the answer."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        t0 = time.perf_counter()
        s.sendall(data)
        buf = b""
        while True:
            got, _ = probe.parse_h1(buf, [False], False)
            if got and got[-1][1]:
                return time.perf_counter() - t0, got[-1][0]["status_line"]
            chunk = s.recv(65536)
            if not chunk:
                got, _ = probe.parse_h1(buf, [False], True)
                return time.perf_counter() - t0, got[-1][0]["status_line"] if got else "EOF"
            buf += chunk
    finally:
        s.close()


TRIES = 200


def test_refusal_timing(env):
    """Median answer times over 200 interleaved tries each: a cover-only POST of a
    sealed-looking body, and on the sealed zaslon a gate failure, a garbage body, an
    unknown key id and a bad tag (a real key id, so a full decapsulation). Fails when a
    refusal's median is further from the cover's than max(2 ms, 25 %).

    Why that bound: on loopback the cover answers in a few hundred microseconds; one
    X25519, the HKDF schedule and an AEAD pass cost well under 0.2 ms, so a correct edge
    sits within about 0.1-0.3 ms of the cover. What the bound catches is a different
    kind of answer: one that waits for a body the cover never reads, an extra round trip
    or lingering close, a timer, a backend — each a millisecond or (far) more. Medians
    of 200 on a shared two-core box wander by a few tenths of a millisecond, so 2 ms
    keeps the test from flaking, and 25 % scales the bound for slow (sanitized) builds.
    A remote prober sees internet jitter of milliseconds on top."""
    pair = Pair(env)
    on, off = pair.on.plain_port, pair.off.plain_port
    kinds = {
        "cover-only POST": (off, secret(), probe.ohttp_req(0x01, label="t-tag")),
        "gate failure": (on, [], probe.ohttp_req(0x01, label="t-tag")),
        "garbage body": (on, secret(), probe._prng("t-garbage", 120)),
        "unknown key id": (on, secret(), probe.ohttp_req(0x99, label="t-kid")),
        "bad tag": (on, secret(), probe.ohttp_req(0x01, label="t-tag")),
    }
    reqs = {k: (port, probe.req("POST", SEALED_PATH, HIDDEN,
                                [("content-type", ts.REQ_TYPE)] + hs, body))
            for k, (port, hs, body) in kinds.items()}
    times = {k: [] for k in kinds}
    statuses = {k: set() for k in kinds}
    order = list(kinds)
    rnd = random.Random(4)
    for i in range(TRIES + 20):
        rnd.shuffle(order)
        for k in order:
            port, data = reqs[k]
            dt, st = _timed(port, data)
            statuses[k].add(st)
            if i >= 20:  # the first rounds warm caches and the allocator
                times[k].append(dt)
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    p90 = {k: sorted(v)[int(len(v) * 0.9)] * 1000 for k, v in times.items()}
    base = med["cover-only POST"]
    bound = max(2.0, 0.25 * base)
    print("median / p90 over %d tries (ms); bound %.2f ms:" % (TRIES, bound))
    for k in kinds:
        print("  %-16s %7.3f / %7.3f  (%+.3f)  %s" % (k, med[k], p90[k], med[k] - base,
                                                     sorted(statuses[k])), flush=True)
    for k in kinds:
        zl.assert_eq(statuses[k], statuses["cover-only POST"], k + ": status lines")
    far = {k: med[k] - base for k in kinds if abs(med[k] - base) > bound}
    assert not far, "refusals measurably slower or faster than the cover: %s" % far


# ------------------------------------------------------------------------ open

def problem(r, status, type_="about:blank", what=""):
    zl.assert_status(r, status, what)
    zl.assert_eq(r.header_all("content-type"), ["application/problem+json"], what + ": type")
    doc = json.loads(r.body)
    zl.assert_eq(doc["type"], type_, what + ": problem type")
    zl.assert_eq(doc["status"], status, what + ": problem status")
    assert doc.get("title"), what
    return doc


def test_open_deployment(env):
    """open: true — RFC answers: keys public (key path, the RFC 9540 well-known path and
    a GET of the gateway URI); POST to the well-known path is the gateway; refusals are
    problem details with RFC 9458's statuses; the gate still guards sealed requests."""
    b = env.backend("service")
    pair = Pair(env, open_=True, backends={"service": zl.backend_block(b)},
                routes=[zl.route("service", host="svc.example")], reference=False)
    z, ca = pair.on, pair.certs.ca
    for path in (KEYS_PATH, probe.WELL_KNOWN, SEALED_PATH):
        for proto in ("h1c", "h2"):
            r = send(z, None, proto, "GET", path, (), None, ca=ca)
            zl.assert_status(r, 200, "GET %s over %s, no secret" % (path, proto))
            zl.assert_eq(r.header_all("content-type"), [ts.KEYS_TYPE], "keys type")
            zl.assert_eq(r.body, pair.keys, "public keys at " + path)
    r = send(z, None, "h1c", "HEAD", probe.WELL_KNOWN, (), None)
    zl.assert_status(r, 200, "HEAD of the well-known path")
    zl.assert_eq(r.header("content-length"), str(len(pair.keys)), "HEAD content-length")
    good = probe.ohttp_req(0x99, label="open")
    cases = [
        ("no secret", {"headers": []}, 403, "about:blank"),
        ("wrong secret", {"headers": [(HEADER.lower(), "x" * 30)]}, 403, "about:blank"),
        ("PUT", {"method": "PUT"}, 405, "about:blank"),
        ("DELETE of the key path", {"method": "DELETE", "path": KEYS_PATH, "body": None},
         405, "about:blank"),
        ("wrong type", {"ctype": "application/octet-stream"}, 415, "about:blank"),
        ("no length", {"proto": "h2", "content_length": False}, 411, "about:blank"),
        ("oversized", {"body": probe.ohttp_req(1, ct_len=MAX_REQUEST)}, 413, "about:blank"),
        ("too short", {"body": b"\x01\x00\x20\x00"}, 400, "about:blank"),
        ("empty", {"body": b""}, 400, "about:blank"),
        ("unknown key id", {}, 422, probe.OHTTP_KEY_TYPE),
        ("unknown aead", {"body": probe.ohttp_req(1, aead=7)}, 422, probe.OHTTP_KEY_TYPE),
        ("bad tag", {"body": probe.ohttp_req(1, label="open-tag")}, 422, probe.OHTTP_KEY_TYPE),
        ("low-order enc", {"body": probe.ohttp_req(1, enc=bytes(32))}, 422,
         probe.OHTTP_KEY_TYPE),
    ]
    for what, kw, status, type_ in cases:
        kw = dict(kw)
        hs = kw.pop("headers", secret())
        args = dict(body=good, proto="h1c", method="POST", path=SEALED_PATH, headers=hs,
                    ctype=ts.REQ_TYPE, ca=ca)
        args.update(kw)
        r = send(z, **args)
        doc = problem(r, status, type_, "open: " + what)
        if status == 405:
            zl.assert_eq(r.header_all("allow"), ["GET, HEAD, POST"], what + ": Allow")
        if what == "unknown key id":
            zl.assert_eq(doc["title"], "key identifier unknown", "title")
        zl.assert_eq(r.header_all("cache-control"), ["no-store"], what + ": cache-control")
    # a real request, to the gateway URI and to the well-known one; a replay inside the seal
    inner = ts.Inner("w", "GET", "https://svc.example/whoami", [("accept", "text/plain")],
                     backend="service")
    for path in (SEALED_PATH, probe.WELL_KNOWN):
        sealed = ts.peer_seal(pair.config, inner, aead=3)
        r = send(z, sealed["request_bytes"], "h2", path=path, headers=secret(1), ca=ca)
        o = opened(sealed, r, "open: sealed POST to " + path)
        zl.assert_eq(o.status, 200, "open: opened status via " + path)
        r = send(z, sealed["request_bytes"], "h1c", path=path, headers=secret())
        o = opened(sealed, r, "open: replay via " + path)
        zl.assert_eq(o.status, 409, "open: a replay is refused inside the seal")
    zl.assert_eq(len(b.records()), 2, "requests delivered in the open deployment")
    zl.assert_eq(z.stop(), 0, "zaslon exit status (leaks under ASan, crashes)")


if __name__ == "__main__":
    zl.main(globals())
