#!/usr/bin/python3
"""Sealed requests (Oblivious HTTP, RFC 9458) end to end: zaslon with `sealed:` on, keys
made by `zaslonctl keygen` (0700 dir, 0600 files), three recording backends by inner
authority (voting `replay: strict` on vote.example, identity on id.example, service on
*.service.example), a static cover site, TLS with SNI front.example and a hidden Host.

Two independent clients seal the same requests: `zaslonctl request` (libzaslon-client)
and tests/peer/ohttp_peer.mjs (npm's @hpke/* plus its own BHTTP glue, given only the
exported key configuration file), the latter POSTed here by python-h2, raw HTTP/1.1 and
curl from 127.13.37.5. Fails when:
  - a backend does not get exactly the request (method, path+query, body sha256, only
    allowlisted fields, no cookie / forwarding field / client address), or the opened
    answer differs from what the backend sent, or the two clients disagree;
  - a sealed answer shows anything of the backend outside the seal, or its length is
    not nonce + bucket + tag;
  - a failure before decapsulation (tampered ciphertext or tag, unknown key id, wrong
    key, low-order enc, wrong content-type or method, empty, oversized, garbage) gets
    anything but the cover site's answer (status, fields but Date, body: compared with
    a zaslon whose sealed route is off), or reaches a backend;
  - an error after decapsulation (no route 404, backend down 502, slow 504, replay 409,
    strict backend without Date 400, stale Date 400) is not a sealed answer, or a
    refused request reaches a backend (a replay: exactly one copy delivered);
  - the keys path does not serve the exported file byte for byte (the access gate
    lets every request through in this release), or a POST there is not the cover's;
  - a key in rotation (ids 1 and 2) is not accepted, or an id not loaded is;
  - 127.13.37.5 appears in any file zaslon wrote (debug error log, access log, stdout,
    stderr) or any header a backend received."""

import base64
import concurrent.futures
import email.utils
import hashlib
import json
import os
import struct
import subprocess
import time

import zl

PEER = os.path.join(zl.SRC, "tests", "peer", "ohttp_peer.mjs")
FRONT = "front.example"          # the TLS SNI (and certificate name) a client fronts with
HIDDEN = "edge.hidden.example"   # the Host / :authority it sends inside TLS
SEALED_PATH = "/s/"
KEYS_PATH = "/.well-known/ohttp-gateway"
REQ_TYPE = "message/ohttp-req"
RES_TYPE = "message/ohttp-res"
KEYS_TYPE = "application/ohttp-keys"
MAX_REQUEST = 4096
TAG = 16
NONCE = {1: 16, 2: 32, 3: 32}    # max(Nk, Nn) per AEAD id (RFC 9458 section 4.4)
# The default backend allowlist (conf/conf_defaults.c), plus what the adapter sets.
ALLOWLIST = {"accept", "accept-encoding", "accept-language", "cache-control",
             "content-encoding", "content-language", "content-length", "content-type",
             "date", "if-match", "if-modified-since", "if-none-match", "if-range",
             "if-unmodified-since", "range", "authorization"}
ADAPTER_SET = {"host", "content-length"}
# Fields a client puts in the sealed request that must never reach a backend.
STRIPPED = [("cookie", "session=sekrit-cookie"), ("x-forwarded-for", "198.51.100.77"),
            ("forwarded", "for=198.51.100.78;proto=https"), ("x-real-ip", "198.51.100.79"),
            ("via", "1.1 sekrit-proxy"), ("user-agent", "ua-sekrit/1.0")]
STRIPPED_TOKENS = ["sekrit", "198.51.100."]
LEAKY_RESPONSE = ("server", "x-powered-by", "via", "x-backend")
# RFC 7748 / libsodium's blocklist: X25519 points of small order (and non-canonical
# encodings of them), little-endian.
LOW_ORDER = [
    "00" * 32,
    "01" + "00" * 31,
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ec" + "ff" * 30 + "7f",
    "ed" + "ff" * 30 + "7f",
    "ee" + "ff" * 30 + "7f",
]


_backend_ports = {}  # backend name -> port, for the Host the http adapter sets


# ------------------------------------------------------------------------- requests

def http_date(offset=0.0):
    return email.utils.formatdate(time.time() + offset, usegmt=True)


class Inner:
    """One inner request, as both clients seal it."""

    def __init__(self, name, method, url, headers=(), body=b"", backend=None):
        self.name, self.method, self.url = name, method, url
        self.headers, self.body, self.backend = list(headers), body, backend
        rest = url.split("://", 1)[1]
        self.authority = rest.split("/", 1)[0]
        self.path = "/" + rest.split("/", 1)[1] if "/" in rest else "/"

    def expected_fields(self):
        """The (name, value) pairs the backend must get, Date and Host aside."""
        want = [(n, v) for n, v in self.headers if n in ALLOWLIST]
        if self.body:
            want.append(("content-length", str(len(self.body))))
        return want

    def expected_body(self):
        return ("backend %s %s" % (self.backend, self.path)).encode()


BALLOT = Inner("ballot", "POST", "https://vote.example/ballot",
               [("content-type", "application/x-www-form-urlencoded")] + STRIPPED,
               b"candidate=7&district=14&nonce=f00dfacecafe", backend="voting")
WHOAMI = Inner("whoami", "GET", "https://id.example/whoami?x=1&y=2",
               [("accept", "application/json"), ("authorization", "Bearer tok-123")]
               + STRIPPED, backend="identity")
FIELDS = Inner("fields", "GET", "https://a.service.example/fields",
               [("accept", "text/html"), ("accept", "application/json"),
                ("accept-language", "be, en;q=0.5")] + STRIPPED, backend="service")
INNERS = [BALLOT, WHOAMI, FIELDS]


# ------------------------------------------------------------------------- the setup

class Setup:
    """A sealed zaslon, its backends, keys and cover, in one test's Env."""

    def __init__(self, env, key_ids=(1,), max_request="4k", reference=False):
        self.env = env
        certs = env.certs(names=(FRONT, "localhost"), ips=("127.0.0.1",))
        self.ca = certs.ca
        self.cover = zl.CoverSite(env)
        # keys: 0700 directory, 0600 files, as zaslonctl keygen writes them
        self.keydir = env.path("keys")
        os.mkdir(self.keydir, 0o700)
        os.chmod(self.keydir, 0o700)
        for kid in key_ids:
            keygen(os.path.join(self.keydir, "k%d.key" % kid), kid)
        self.keys_file = env.path("ohttp-keys")
        r = ctl("keys", "export", "--dir", self.keydir, "--out", self.keys_file)
        assert r.returncode == 0, "keys export: %s" % r.stderr
        with open(self.keys_file, "rb") as f:
            self.keys = f.read()
        self.configs = {c[0]: c for c in parse_keys(self.keys)}
        zl.assert_eq(sorted(self.configs), sorted(key_ids), "exported key ids")
        # backends
        self.b = {n: env.backend(n) for n in ("voting", "identity", "service")}
        _backend_ports.update({n: b.port for n, b in self.b.items()})
        self.dead_port = zl.free_port()
        backends = {
            "voting": zl.backend_block(self.b["voting"], replay="strict"),
            "identity": zl.backend_block(self.b["identity"]),
            "service": zl.backend_block(self.b["service"]),
            "slow": zl.backend_block(self.b["service"], first_byte_timeout="1s"),
            "down": zl.backend_block(url="http://127.0.0.1:%d" % self.dead_port),
            "padded": zl.backend_block(self.b["service"], pad_min="4k"),
        }
        routes = [zl.route("voting", host="vote.example"),
                  zl.route("identity", host="id.example"),
                  zl.route("service", host="*.service.example"),
                  zl.route("slow", host="slow.example"),
                  zl.route("down", host="down.example"),
                  zl.route("padded", host="pad.example")]
        sealed = {"path": SEALED_PATH, "keys": self.keydir, "max_request": max_request}
        cfg = zl.edge_config(env, cover=self.cover.root, backends=backends, routes=routes,
                             sealed=sealed, log_level="debug", access_log=True)
        self.z = env.zaslon(cfg)
        self.ref = None
        if reference:
            # the same cover site with no sealed route: what a prober must see
            self.ref = env.zaslon(zl.edge_config(env, cover=self.cover.root,
                                                 log_level="debug", access_log=True),
                                  name="reference")

    def records(self, name=None):
        if name:
            return self.b[name].records()
        return {n: b.records() for n, b in self.b.items()}

    def assert_no_records(self, what):
        got = {n: len(r) for n, r in self.records().items() if r}
        assert not got, "%s reached a backend: %s" % (what, got)

    # --- zaslonctl ---------------------------------------------------------------

    def relay_args(self, transport):
        if transport == "h2":      # TLS, ALPN h2, SNI front.example, hidden Host
            port = self.z.tls_port
            return ["--relay", "https://%s:%d%s" % (FRONT, port, SEALED_PATH),
                    "--connect-to", "127.0.0.1:%d" % port, "--cacert", self.ca,
                    "--host", HIDDEN]
        port = self.z.plain_port   # cleartext: h2c prior knowledge, or HTTP/1.1
        args = ["--relay", "http://%s:%d%s" % (FRONT, port, SEALED_PATH),
                "--connect-to", "127.0.0.1:%d" % port, "--host", HIDDEN]
        if transport == "h2c":
            args.append("--h2c")
        else:
            assert transport == "h1c", transport
        return args

    def ctl_request(self, inner, transport="h2", keys_file=None, extra_headers=(),
                    want_rc=0, headers=None):
        args = ["request"] + self.relay_args(transport) + \
            ["--keys", keys_file or self.keys_file, "--json", "--timeout", "15"]
        for n, v in (inner.headers if headers is None else headers) + list(extra_headers):
            args += ["-H", "%s: %s" % (n, v)]
        if inner.body:
            args += ["--data", inner.body.decode()]
        args += [inner.method, inner.url]
        r = ctl(*args)
        assert r.returncode == want_rc, "zaslonctl %s %s over %s: exit %d, want %d: %s" % (
            inner.method, inner.url, transport, r.returncode, want_rc, r.stderr.strip())
        if want_rc != 0:
            return r
        out = json.loads(r.stdout)
        body = out["body"].encode() if "body" in out else \
            base64.b64decode(out["body_base64"])
        return Opened(out["status"], [tuple(h) for h in out["headers"]], body)

    # --- raw sealed POSTs ------------------------------------------------------------

    def send(self, body, proto="h2", method="POST", ctype=REQ_TYPE, path=SEALED_PATH,
             z=None, content_length=True, source=zl.CLIENT_ADDR, extra=(), settle=0):
        """One request from |source| to |z| (default: the sealed zaslon): python-h2 over
        TLS (SNI front.example) or h2c, or raw HTTP/1.1 (TLS or not). Returns a
        zl.Response. |settle|: with h2, seconds to keep reading after the answer
        (for a RST_STREAM that follows it)."""
        return raw_send(z or self.z, body, proto, method, ctype, path, content_length,
                        source, self.ca, extra, settle)

    def send_both(self, body, **kw):
        """The same request to the sealed zaslon and to the reference one."""
        return self.send(body, **kw), self.send(body, z=self.ref, **kw)


class Opened:
    """An opened sealed answer."""

    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, list(headers), body

    def header_all(self, name):
        return [v for k, v in self.headers if k == name]

    def __repr__(self):
        return "<Opened %s %r %r>" % (self.status, self.headers, self.body[:200])


def raw_send(z, body, proto, method, ctype, path, content_length, source, ca, extra,
             settle=0):
    headers = []
    if ctype is not None:
        headers.append(("content-type", ctype))
    headers += list(extra)
    if proto in ("h2", "h2c"):
        tls = proto == "h2"
        c = zl.H2Client(z.tls_port if tls else z.plain_port, tls=tls, ca=ca,
                        server_hostname=FRONT, source=source)
        try:
            if body is not None and content_length:
                headers.append(("content-length", str(len(body))))
            sid = c.request(path, method=method, authority=HIDDEN, headers=headers,
                            body=body)
            st = c.wait_streams([sid], timeout=15)[0]
            end = time.monotonic() + settle
            while st.reset is None and time.monotonic() < end and c.pump(0.05):
                pass
            return st.response()
        finally:
            c.close()
    tls = proto == "h1"
    c = zl.H1Conn(z.tls_port if tls else z.plain_port, tls=tls, ca=ca,
                  server_hostname=FRONT, source=source, timeout=15)
    try:
        if body is not None and not content_length:
            head = "%s %s HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n" % (
                method, path, HIDDEN)
            head += "".join("%s: %s\r\n" % (k, v) for k, v in headers) + "\r\n"
            c.send(head.encode() + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
            return c.read_response(head=method == "HEAD")
        return c.request(method, path, host=HIDDEN, headers=headers, body=body)
    finally:
        c.close()


# ---------------------------------------------------------------------------- tools

def ctl(*args, timeout=30):
    return subprocess.run((zl.ZASLONCTL_BIN,) + args, capture_output=True, text=True,
                          errors="replace", timeout=timeout, stdin=subprocess.DEVNULL)


def keygen(path, kid):
    r = ctl("keygen", "--id", str(kid), "--out", path)
    assert r.returncode == 0, "keygen: %s" % r.stderr
    mode = os.stat(path).st_mode & 0o777
    assert mode == 0o600, "keygen wrote %s with mode %o" % (path, mode)
    return bytes.fromhex(r.stdout.strip())


def parse_keys(b):
    """application/ohttp-keys -> [configuration bytes]."""
    out, i = [], 0
    while i < len(b):
        (n,) = struct.unpack(">H", b[i:i + 2])
        out.append(bytes(b[i + 2:i + 2 + n]))
        assert len(out[-1]) == n, "truncated key list"
        i += 2 + n
    return out


def keys_file_for(env, name, cfg):
    p = env.path(name)
    with open(p, "wb") as f:
        f.write(struct.pack(">H", len(cfg)) + cfg)
    return p


def peer(*args):
    if not os.path.isdir(os.path.join(os.path.dirname(PEER), "node_modules")):
        raise AssertionError("tests/peer/node_modules missing: npm ci --prefix tests/peer")
    p = subprocess.run(["node", PEER] + [str(a) for a in args], capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, "ohttp_peer %s: %s" % (args[0], p.stderr.strip())
    return json.loads(p.stdout)


def peer_seal(cfg, inner, aead=1, date=True, headers=None, body=None):
    """Seals |inner| with the peer. date: True = now, a string = that, False = none."""
    fields = list(inner.headers if headers is None else headers)
    if date is True:
        fields.append(("date", http_date()))
    elif date:
        fields.append(("date", date))
    body = inner.body if body is None else body
    args = ["seal", cfg.hex(), aead, inner.method, inner.url]
    if body:
        args += ["--body", body.hex()]
    args += ["%s:%s" % (n, v) for n, v in fields]
    s = peer(*args)
    s["request_bytes"] = bytes.fromhex(s["request"])
    s["fields"] = fields
    return s


def peer_open(sealed, response):
    o = peer("open", json.dumps({k: sealed[k] for k in ("enc", "secret", "aead")}),
             response.hex())
    assert not o["informational"] and not o["trailers"], o
    return Opened(o["status"], [(bytes.fromhex(n).decode("latin-1"),
                                 bytes.fromhex(v).decode("latin-1")) for n, v in o["headers"]],
                  bytes.fromhex(o["body"]))


def parallel(fn, items, workers=4):
    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        return list(ex.map(fn, items))


# ------------------------------------------------------------------------ assertions

def assert_sealed(resp, what, aead=None, plain_len=None):
    """A sealed answer from the outside: 200, message/ohttp-res, no-store, and nothing
    else but framing; returns its body."""
    zl.assert_status(resp, 200, what)
    names = sorted({k for k, _ in resp.headers if not k.startswith(":")})
    extra = set(names) - {"content-type", "cache-control", "content-length", "date"}
    assert not extra, "%s: fields outside the seal %s (%r)" % (what, sorted(extra),
                                                               resp.headers)
    zl.assert_eq(resp.header_all("content-type"), [RES_TYPE], what + ": content-type")
    zl.assert_eq(resp.header_all("cache-control"), ["no-store"], what + ": cache-control")
    if resp.header("content-length") is not None:
        zl.assert_eq(int(resp.header("content-length")), len(resp.body),
                     what + ": content-length")
    if aead is not None and plain_len is not None:
        zl.assert_eq(len(resp.body), NONCE[aead] + plain_len + TAG, what + ": sealed length")
    return resp.body


def assert_cover(got, want, what, compare_reset=False):
    """|got| is exactly the reference cover's answer |want|: status, fields other than
    Date, body (and whether the stream was reset after it, with |compare_reset|)."""
    assert got.status is not None, "%s: no answer (%r)" % (what, got)
    assert want.status is not None, "%s: the reference gave no answer (%r)" % (what, want)
    zl.assert_eq(got.status, want.status, what + ": status (cover's)")
    g = sorted((k, v) for k, v in got.headers if k != "date" and not k.startswith(":"))
    w = sorted((k, v) for k, v in want.headers if k != "date" and not k.startswith(":"))
    zl.assert_eq(g, w, what + ": header fields other than Date (cover's)")
    zl.assert_eq(got.body, want.body, what + ": body (cover's)")
    assert got.header("content-type") != RES_TYPE, what + ": looks sealed"
    if compare_reset:
        zl.assert_eq(got.reset, want.reset, what + ": RST_STREAM after the answer (cover's)")


def assert_record(rec, inner, date=None):
    """The backend got exactly |inner|: method, path+query, body, allowlisted fields,
    a Date (|date| if given), the adapter's Host and nothing else."""
    where = "backend %s %s" % (rec["backend"], rec["path"])
    zl.assert_eq(rec["backend"], inner.backend, "backend for " + inner.url)
    zl.assert_eq(rec["method"], inner.method, where + ": method")
    zl.assert_eq(rec["path"], inner.path, where + ": path and query")
    zl.assert_eq(rec["body_length"], len(inner.body), where + ": body length")
    zl.assert_eq(rec["body_sha256"], hashlib.sha256(inner.body).hexdigest(),
                 where + ": body sha256")
    hdrs = [(k.lower(), v) for k, v in rec["headers"]]
    for k, v in hdrs:
        assert k in ALLOWLIST | ADAPTER_SET, "%s: field %s: %s is not allowlisted" % (
            where, k, v)
        for tok in STRIPPED_TOKENS + [zl.CLIENT_ADDR]:
            assert tok not in v, "%s: %r in %s: %s" % (where, tok, k, v)
        if k != "host":
            assert "127." not in v, "%s: a loopback address in %s: %s" % (where, k, v)
    zl.assert_eq(zl.header_value(hdrs, "host"), ["127.0.0.1:%d" % rec_port(rec)],
                 where + ": Host (the adapter's)")
    dates = zl.header_value(hdrs, "date")
    zl.assert_eq(len(dates), 1, where + ": one Date")
    if date is not None:
        zl.assert_eq(dates[0], date, where + ": Date")
    got = sorted((k, v) for k, v in hdrs if k not in ("host", "date", "accept"))
    want = sorted((k, v) for k, v in inner.expected_fields() if k != "accept")
    zl.assert_eq(got, want, where + ": allowlisted fields")
    # repeated fields: in order, as repeated lines or joined with ", " (RFC 9110 5.3)
    accept_want = [v for k, v in inner.headers if k == "accept"]
    accept_got = zl.header_value(hdrs, "accept")
    assert accept_got == accept_want or (accept_want and accept_got == [", ".join(accept_want)]), \
        "%s: accept fields %r, want %r" % (where, accept_got, accept_want)


def rec_port(rec):
    return _backend_ports[rec["backend"]]


def comparable(rec):
    """What both clients must agree on: method, path, body, the fields but Date's
    value (and the accept fields as one ordered list)."""
    hdrs = [(k.lower(), v if k.lower() != "date" else "<date>") for k, v in rec["headers"]]
    return (rec["method"], rec["path"], rec["body_sha256"], sorted(hdrs))


def comparable_answer(o):
    return (o.status, sorted((k, v) for k, v in o.headers if k != "date"), o.body)


def assert_opened_backend_answer(o, inner, what):
    zl.assert_eq(o.status, 200, what + ": opened status")
    zl.assert_eq(o.body, inner.expected_body(), what + ": opened body")
    zl.assert_eq(o.header_all("content-type"), ["text/plain"], what + ": opened content-type")
    for k in ("server", "x-powered-by"):
        assert not o.header_all(k), "%s: backend's %s inside the seal: %r" % (what, k,
                                                                              o.headers)


def assert_no_client_address(s):
    """127.13.37.5 in no header any backend received and no file zaslon wrote."""
    for name, recs in s.records().items():
        for rec in recs:
            for k, v in rec["headers"]:
                assert zl.CLIENT_ADDR not in k + v, "backend %s got %s: %s" % (name, k, v)
    zs = [s.z] + ([s.ref] if s.ref else [])
    for z in zs:
        z.stop()
        for path, data in z.files_text().items():
            assert zl.CLIENT_ADDR.encode() not in data, "%s written to %s" % (
                zl.CLIENT_ADDR, path)


# ------------------------------------------------------------------------------ tests

def test_zaslonctl_requests(env):
    """zaslonctl over TLS h2 (SNI front.example, hidden Host), h2c and cleartext
    HTTP/1.1: exit 0, the opened answer is the backend's, the backend got exactly the
    request."""
    s = Setup(env)
    for transport in ("h2", "h2c", "h1c"):
        for inner in INNERS:
            o = s.ctl_request(inner, transport)
            what = "zaslonctl %s %s over %s" % (inner.method, inner.url, transport)
            assert_opened_backend_answer(o, inner, what)
            zl.assert_eq(o.header_all("x-backend"), [inner.backend], what + ": X-Backend")
            assert_record(s.records(inner.backend)[-1], inner)
    for name in ("voting", "identity", "service"):
        zl.assert_eq(len(s.records(name)), 3, "requests backend %s saw" % name)
    assert_no_client_address(s)


def test_peer_matches_zaslonctl(env):
    """The independent peer seals the same requests from the key file alone; the
    backends get the same requests as from zaslonctl and both open the same answers."""
    s = Setup(env)
    ctl_answers = {}
    for inner in INNERS:
        ctl_answers[inner.name] = s.ctl_request(inner, "h2")
    ctl_recs = {i.name: s.records(i.backend)[-1] for i in INNERS}
    cfg = s.configs[1]
    aeads = {"ballot": 3, "whoami": 1, "fields": 3}  # keygen's default suites: 1 and 3
    seals = parallel(lambda i: peer_seal(cfg, i, aead=aeads[i.name]), INNERS)
    protos = {"ballot": "h2", "whoami": "h1c", "fields": "h2c"}
    answers = []
    for inner, sealed in zip(INNERS, seals):
        r = s.send(sealed["request_bytes"], proto=protos[inner.name])
        answers.append(assert_sealed(r, "peer %s over %s" % (inner.name,
                                                              protos[inner.name])))
    opened = parallel(lambda p: peer_open(*p), list(zip(seals, answers)))
    for inner, sealed, o in zip(INNERS, seals, opened):
        what = "peer %s" % inner.name
        assert_opened_backend_answer(o, inner, what)
        rec = s.records(inner.backend)[-1]
        date = [v for k, v in sealed["fields"] if k == "date"][0]
        assert_record(rec, inner, date=date)
        zl.assert_eq(comparable(rec), comparable(ctl_recs[inner.name]),
                     what + ": backend-side request, peer vs zaslonctl")
        zl.assert_eq(comparable_answer(o), comparable_answer(ctl_answers[inner.name]),
                     what + ": opened answer, peer vs zaslonctl")
    for name in ("voting", "identity", "service"):
        zl.assert_eq(len(s.records(name)), 2, "requests backend %s saw" % name)
    assert_no_client_address(s)


def test_outer_shape_and_padding(env):
    """A sealed answer is 200 message/ohttp-res no-store whatever the backend said, and
    its length is nonce + bucket + tag: the same for different small answers."""
    s = Setup(env)
    cfg = s.configs[1]
    cases = [  # (inner, opened status, bucket)
        (Inner("404", "GET", "https://id.example/status/404", backend="identity"), 404, 1024),
        (Inner("418", "GET", "https://a.service.example/status/418", backend="service"), 418, 1024),
        (Inner("500", "GET", "https://id.example/status/500", backend="identity"), 500, 1024),
        (Inner("b300", "GET", "https://b.service.example/bytes/300", backend="service"), 200, 1024),
        (Inner("b1500", "GET", "https://b.service.example/bytes/1500", backend="service"), 200, 2048),
        (Inner("b10", "GET", "https://pad.example/bytes/10", backend="service"), 200, 4096),
        (Inner("echo", "POST", "https://id.example/echo",
               [("content-type", "application/x-zl-leak")], b"e" * 700,
               backend="identity"), 200, 1024),
    ]
    seals = parallel(lambda c: peer_seal(cfg, c[0], aead=1), cases)
    bodies = []
    for (inner, status, bucket), sealed, proto in zip(cases, seals,
                                                      ["h2", "h1c", "h2c", "h1"] * 2):
        what = "%s over %s" % (inner.url, proto)
        r = s.send(sealed["request_bytes"], proto=proto)
        body = assert_sealed(r, what, aead=1, plain_len=bucket)
        for leak in (b"BackendLeak", b"PHP/5.1.6", b"backend-leak-via", b"status ",
                     b"application/x-zl-leak", b"eeeeeeee"):
            assert leak not in body, "%s: %r visible outside the seal" % (what, leak)
        bodies.append(body)
    opened = parallel(lambda p: peer_open(*p), list(zip(seals, bodies)))
    for (inner, status, bucket), o in zip(cases, opened):
        zl.assert_eq(o.status, status, inner.url + ": opened status")
        if inner.name == "b300":
            zl.assert_eq(o.body, zl.pattern_bytes(300), inner.url + ": opened body")
        if inner.name == "echo":
            zl.assert_eq(o.body, b"e" * 700, inner.url + ": opened body")
            zl.assert_eq(o.header_all("content-type"), ["application/x-zl-leak"],
                         inner.url + ": opened content-type")
    # the small ones are indistinguishable by length
    small = {len(b) for (_, _, bucket), b in zip(cases, bodies) if bucket == 1024}
    zl.assert_eq(small, {NONCE[1] + 1024 + TAG}, "lengths of small sealed answers")
    assert_no_client_address(s)


def test_refused_before_decapsulation(env):
    """Everything that fails before the seal is open gets exactly the cover site's
    answer for that method and path (as a zaslon without the sealed route gives it:
    status, fields but Date, body; for an h2 upload longer than a stream window, also
    the RST_STREAM that follows the cover's early answer), and reaches no backend.
    Every case is tried; the mismatches are listed together."""
    s = Setup(env, reference=True)
    cfg = s.configs[1]
    other_dir = env.newdir("otherkeys")
    wrong_key_cfg = keygen(os.path.join(other_dir, "k1.key"), 1)  # id 1, another key
    base, big, wrong_key, good = parallel(lambda a: peer_seal(*a[0], **a[1]), [
        ((cfg, BALLOT), {"aead": 1}),
        ((cfg, BALLOT), {"aead": 3, "body": b"v" * 8192}),
        ((wrong_key_cfg, BALLOT), {"aead": 1}),
        ((cfg, BALLOT), {"aead": 1}),
    ])
    m = base["request_bytes"]
    assert len(m) < MAX_REQUEST < 8192 < len(big["request_bytes"])

    def flip(b, i):
        b = bytearray(b)
        b[i] ^= 0x01
        return bytes(b)

    failures = []

    def check(what, body, settle=0, **kw):
        got, want = s.send_both(body, settle=settle, **kw)
        try:
            assert_cover(got, want, what, compare_reset=bool(settle))
        except AssertionError as e:
            failures.append(str(e))

    variants = [
        ("ciphertext byte flipped", m[:7 + 32] + flip(m[7 + 32:], (len(m) - 39) // 2)),
        ("tag byte flipped", flip(m, len(m) - 1)),
        ("first ciphertext byte flipped", flip(m, 7 + 32)),
        ("enc byte flipped", flip(m, 7 + 5)),
        ("unknown key id", bytes([0x99]) + m[1:]),
        ("key id 0", bytes([0]) + m[1:]),
        ("unknown kem", m[:1] + b"\x00\x21" + m[3:]),
        ("unknown aead", m[:5] + b"\x00\x07" + m[7:]),
        ("aead changed in header", m[:5] + b"\x00\x03" + m[7:]),
        ("right id, wrong key", wrong_key["request_bytes"]),
        ("truncated to header and enc", m[:39]),
        ("truncated by one byte", m[:-1]),
        ("one byte appended", m + b"\x00"),
        ("garbage", bytes((i * 89 + 13) % 256 for i in range(300))),
        ("text garbage", b"hello, is this a sealed endpoint?\n" * 4),
        ("over max_request (8 KiB sealed ballot)", big["request_bytes"]),
    ] + [("low-order enc %s" % lo[:8], m[:7] + bytes.fromhex(lo) + m[39:]) for lo in LOW_ORDER]
    for what, body in variants:
        for proto in ("h2", "h1c"):
            check("%s over %s" % (what, proto), body, proto=proto)
    # without a length (h2 with no content-length, HTTP/1.1 chunked)
    for what, body in [("over max_request, no length", big["request_bytes"]),
                       ("tampered, no length", flip(m, len(m) // 2))]:
        for proto in ("h2c", "h1"):
            check("%s over %s" % (what, proto), body, proto=proto, content_length=False)
    # more than a stream window without a length: the cover answers at once and resets
    # the rest of the upload; so must the sealed route
    huge = bytes(100 * 1024)
    check("100 KiB, no length, over h2c", huge, proto="h2c", content_length=False,
          settle=0.5)
    # a valid sealed request, but not as the route wants it
    for what, kw in [
        ("wrong content-type", {"ctype": "application/octet-stream"}),
        ("response content-type", {"ctype": RES_TYPE}),
        ("no content-type", {"ctype": None}),
        ("PUT", {"method": "PUT"}),
        ("PATCH", {"method": "PATCH"}),
    ]:
        for proto in ("h2", "h1c"):
            check("%s over %s" % (what, proto), m, proto=proto, **kw)
    for what, body, kw in [
        ("GET", None, {"method": "GET"}),
        ("GET with the sealed body", m, {"method": "GET"}),
        ("HEAD", None, {"method": "HEAD"}),
        ("empty body", b"", {}),
        ("POST without a body", None, {}),
        ("GET of the sealed path, no content-type", None, {"method": "GET", "ctype": None}),
        ("sealed path with a query", m, {"path": SEALED_PATH + "?q=1", "ctype": "text/plain"}),
    ]:
        for proto in ("h2", "h1c"):
            check("%s over %s" % (what, proto), body, proto=proto, **kw)
    # the cover, not some fixed error: a GET of the sealed path is the site's 404 page
    r = s.send(None, method="GET", ctype=None)
    zl.assert_status(r, 404, "GET of the sealed path")
    zl.assert_eq(r.body, s.cover.not_found, "GET of the sealed path: the cover's 404 page")
    s.assert_no_records("a request refused before decapsulation")
    # control: the base request itself was valid (and is accepted once)
    r = s.send(good["request_bytes"], proto="h2")
    o = peer_open(good, assert_sealed(r, "the untampered request"))
    assert_opened_backend_answer(o, BALLOT, "the untampered request")
    zl.assert_eq(len(s.records("voting")), 1, "voting records after the control")
    assert_no_client_address(s)
    assert not failures, "%d refusal(s) not the cover's answer:\n  %s" % (
        len(failures), "\n  ".join(failures))


def test_errors_inside_the_seal(env):
    """After decapsulation every error is a sealed answer: no route 404, backend down
    502, slow 504, replay 409 (exactly one copy delivered), strict backend without
    Date 400, stale Date 400 (not delivered)."""
    s = Setup(env)
    cfg = s.configs[1]
    ballot_plain = Inner("b", "POST", BALLOT.url,
                         [("content-type", "application/x-www-form-urlencoded")],
                         BALLOT.body, backend="voting")
    replay, nodate, nodate_ok = parallel(lambda a: peer_seal(*a[0], **a[1]), [
        ((cfg, ballot_plain), {"aead": 3}),
        ((cfg, ballot_plain), {"aead": 1, "date": False}),
        ((cfg, WHOAMI), {"aead": 1, "date": False}),
    ])
    # replay: the same sealed bytes twice, over different connections and protocols
    first = s.send(replay["request_bytes"], proto="h2")
    second = s.send(replay["request_bytes"], proto="h1c")
    third = s.send(replay["request_bytes"], proto="h2c")
    # no Date for the strict backend (peer), and none for a non-strict one (allowed)
    r_nodate = s.send(nodate["request_bytes"], proto="h2")
    r_nodate_ok = s.send(nodate_ok["request_bytes"], proto="h2")
    o1, o2, o3, o4, o5 = parallel(lambda p: peer_open(*p), [
        (replay, assert_sealed(first, "replay: first copy")),
        (replay, assert_sealed(second, "replay: second copy")),
        (replay, assert_sealed(third, "replay: third copy")),
        (nodate, assert_sealed(r_nodate, "ballot without Date")),
        (nodate_ok, assert_sealed(r_nodate_ok, "identity without Date")),
    ])
    assert_opened_backend_answer(o1, ballot_plain, "replay: first copy")
    zl.assert_eq(o2.status, 409, "replay: second copy, opened status")
    zl.assert_eq(o3.status, 409, "replay: third copy, opened status")
    zl.assert_eq(o4.status, 400, "ballot without Date, opened status")
    zl.assert_eq(o5.status, 200, "identity without Date (not strict), opened status")
    votes = s.records("voting")
    zl.assert_eq(len(votes), 1, "copies of the replayed ballot the backend saw")
    assert_record(votes[0], ballot_plain)
    # zaslonctl: the other errors
    cases = [
        ("no route", Inner("x", "GET", "https://nothing.example/ballot"), 404),
        ("no route (sub-domain)", Inner("x", "GET", "https://x.vote.example/"), 404),
        ("backend down", Inner("x", "GET", "https://down.example/x"), 502),
        ("stale Date (10 min old), strict", Inner("x", "POST", BALLOT.url, [], b"c=1"), 400),
        ("stale Date (10 min ahead), strict", Inner("x", "POST", BALLOT.url, [], b"c=2"), 400),
        ("stale Date (10 min old), not strict", Inner("x", "GET", "https://id.example/y"), 400),
        ("malformed Date, strict", Inner("x", "POST", BALLOT.url, [], b"c=3"), 400),
    ]
    dates = [None, None, None, http_date(-600), http_date(600), http_date(-600),
             "yesterday at noon"]
    for (what, inner, status), date in zip(cases, dates):
        extra = [("date", date)] if date else []
        o = s.ctl_request(inner, "h2", extra_headers=extra, headers=[])
        zl.assert_eq(o.status, status, what + ": opened status")
        zl.assert_eq(o.header_all("content-type"), ["text/plain"], what + ": content-type")
    t0 = time.monotonic()
    o = s.ctl_request(Inner("x", "GET", "https://slow.example/slow/2500"), "h2c", headers=[])
    took = time.monotonic() - t0
    zl.assert_eq(o.status, 504, "slow backend: opened status")
    assert 0.9 < took < 2.4, "slow backend: 504 after %.2fs, want first_byte_timeout 1s" % took
    zl.assert_eq(len(s.records("voting")), 1, "ballots delivered (no undated or stale one)")
    zl.assert_eq([r["path"] for r in s.records("identity")], ["/whoami?x=1&y=2"],
                 "identity records (the stale one not delivered)")
    assert_no_client_address(s)


def test_keys_endpoint(env):
    """GET /.well-known/ohttp-gateway is the exported key file byte for byte, for any
    request (the access gate lets everything through in this release); a POST there
    gets the cover's answer; with the sealed route off the path is the cover's."""
    s = Setup(env, key_ids=(1, 2), reference=True)
    for proto in ("h2", "h1", "h1c", "h2c"):
        r = s.send(None, proto=proto, method="GET", ctype=None, path=KEYS_PATH)
        zl.assert_status(r, 200, "keys over " + proto)
        zl.assert_eq(r.header_all("content-type"), [KEYS_TYPE], "keys content-type")
        zl.assert_eq(r.body, s.keys, "keys body over %s (the exported file)" % proto)
    # HEAD: the same fields, no body
    r = s.send(None, proto="h1c", method="HEAD", ctype=None, path=KEYS_PATH)
    zl.assert_status(r, 200, "HEAD keys")
    zl.assert_eq(r.header("content-length"), str(len(s.keys)), "HEAD keys content-length")
    # any Host, any query: the gate allows everything for now (README)
    r = zl.curl(["--http1.1", "--interface", zl.CLIENT_ADDR, "-H", "Host: anything.example",
                 "http://127.0.0.1:%d%s?v=1" % (s.z.plain_port, KEYS_PATH)])
    zl.assert_status(r, 200, "keys with another Host and a query")
    zl.assert_eq(r.body, s.keys, "keys body with another Host")
    # zaslonctl can fetch them from there and use them
    r = ctl("request", *s.relay_args("h2"), "--keys-path", KEYS_PATH, "--json",
            "GET", "https://id.example/whoami?x=1&y=2")
    assert r.returncode == 0, "zaslonctl --keys-path: %s" % r.stderr
    zl.assert_eq(json.loads(r.stdout)["status"], 200, "zaslonctl --keys-path: opened status")
    # what is not a GET gets the cover's answer
    for method, body in (("POST", b"x"), ("POST", s.keys), ("PUT", b"x"), ("DELETE", None)):
        for proto in ("h2", "h1c"):
            got, want = s.send_both(body, proto=proto, method=method, ctype=KEYS_TYPE,
                                    path=KEYS_PATH)
            assert_cover(got, want, "%s %s over %s" % (method, KEYS_PATH, proto))
    # without a sealed route the path is just the cover's 404
    r = s.send(None, proto="h2", method="GET", ctype=None, path=KEYS_PATH, z=s.ref)
    zl.assert_status(r, 404, "keys path on the cover-only zaslon")
    zl.assert_eq({n: len(r) for n, r in s.records().items()},
                 {"voting": 0, "identity": 1, "service": 0},
                 "backend requests (only zaslonctl's, none from a keys request)")
    assert_no_client_address(s)


def test_key_rotation(env):
    """Keys 1 and 2 are both live; a request sealed to either works; one sealed to id 3
    (a key not loaded) gets the cover's answer."""
    s = Setup(env, key_ids=(1, 2), reference=True)
    only = {kid: keys_file_for(env, "keys-%d" % kid, s.configs[kid]) for kid in (1, 2)}
    d3 = env.newdir("k3")
    cfg3 = keygen(os.path.join(d3, "k3.key"), 3)
    only[3] = keys_file_for(env, "keys-3", cfg3)
    for kid in (1, 2):
        o = s.ctl_request(WHOAMI, "h2", keys_file=only[kid])
        assert_opened_backend_answer(o, WHOAMI, "zaslonctl sealed to key %d" % kid)
    # the exported list (both keys): zaslonctl picks the first
    o = s.ctl_request(WHOAMI, "h2c")
    assert_opened_backend_answer(o, WHOAMI, "zaslonctl with both keys")
    # the peer, to each key with AES-256-GCM when listed, else AES-128-GCM
    seals = parallel(lambda a: peer_seal(*a[0], **a[1]), [
        ((s.configs[1], BALLOT), {"aead": 1}),
        ((s.configs[2], BALLOT), {"aead": 3}),
        ((cfg3, BALLOT), {"aead": 1}),
    ])
    for kid, sealed in zip((1, 2), seals[:2]):
        r = s.send(sealed["request_bytes"], proto="h2")
        o = peer_open(sealed, assert_sealed(r, "peer sealed to key %d" % kid))
        assert_opened_backend_answer(o, BALLOT, "peer sealed to key %d" % kid)
    zl.assert_eq(len(s.records("identity")), 3, "identity requests (keys 1, 2, list)")
    zl.assert_eq(len(s.records("voting")), 2, "ballots (keys 1 and 2)")
    # key 3: refused before decapsulation
    r = s.ctl_request(WHOAMI, "h2", keys_file=only[3], want_rc=1)
    assert "refused" in r.stderr and "cover answer" in r.stderr, r.stderr
    for proto in ("h2", "h1c"):
        got, want = s.send_both(seals[2]["request_bytes"], proto=proto)
        assert_cover(got, want, "sealed to key 3 over " + proto)
    zl.assert_eq(len(s.records("identity")), 3, "identity requests after key 3")
    zl.assert_eq(len(s.records("voting")), 2, "ballots after key 3")
    assert_no_client_address(s)


def test_no_client_address(env):
    """Everything from 127.13.37.5 (curl --interface, python-h2 and raw HTTP/1.1 bound
    to it; zaslonctl cannot bind): successes, refusals, sealed errors, keys. The address
    is in no file zaslon wrote (debug error log, access log, stdout, stderr) and in no
    header a backend received; the access log is not empty."""
    s = Setup(env, reference=False)
    cfg = s.configs[1]
    bad = Inner("down", "GET", "https://down.example/x", backend="down")
    seals = parallel(lambda a: peer_seal(cfg, a[0], aead=a[1]),
                     [(BALLOT, 1), (WHOAMI, 3), (FIELDS, 1), (bad, 1), (WHOAMI, 1)])
    answers = []
    for sealed, proto in zip(seals[:4], ("h2", "h2c", "h1", "h1c")):
        answers.append(assert_sealed(s.send(sealed["request_bytes"], proto=proto),
                                     "sealed over " + proto))
    # curl from the address, over TLS h2 with SNI front.example and the hidden Host
    req = env.write("whoami.req", seals[4]["request_bytes"])
    port = s.z.tls_port
    r = zl.curl(["--http2", "--interface", zl.CLIENT_ADDR, "--cacert", s.ca,
                 "--connect-to", "%s:%d:127.0.0.1:%d" % (FRONT, port, port),
                 "-H", "Host: " + HIDDEN, "-H", "content-type: " + REQ_TYPE,
                 "-H", "x-forwarded-for: " + zl.CLIENT_ADDR,
                 "-H", "forwarded: for=" + zl.CLIENT_ADDR,
                 "--data-binary", "@" + req,
                 "https://%s:%d%s" % (FRONT, port, SEALED_PATH)], want_version="2")
    answers.append(assert_sealed(r, "curl --interface"))
    opened = parallel(lambda p: peer_open(*p), list(zip(seals, answers)))
    zl.assert_eq([o.status for o in opened], [200, 200, 200, 502, 200], "opened statuses")
    # refusals and cover pages from the address too
    for proto in ("h2", "h1c"):
        s.send(b"garbage" * 20, proto=proto)
        s.send(seals[0]["request_bytes"][:-3], proto=proto)
        s.send(None, proto=proto, method="GET", ctype=None, path="/")
        s.send(None, proto=proto, method="GET", ctype=None, path=KEYS_PATH)
    r = zl.curl(["--http1.1", "--interface", zl.CLIENT_ADDR,
                 "http://127.0.0.1:%d/" % s.z.plain_port])
    zl.assert_status(r, 200, "cover page via curl")
    zl.assert_eq(s.z.stop(), 0, "zaslon exit code after SIGTERM")
    files = s.z.files_text()
    access = [p for p in files if p.endswith("access.log")]
    assert access and files[access[0]].count(b"\n") >= 5, "access log: %r" % (
        {p: len(d) for p, d in files.items()})
    errlog = [p for p in files if p.endswith("error.log")]
    assert errlog, "no error log written: %s" % sorted(files)
    for path, data in files.items():
        assert zl.CLIENT_ADDR.encode() not in data, "%s written to %s" % (zl.CLIENT_ADDR,
                                                                         path)
    recs = s.records()
    zl.assert_eq({n: len(r) for n, r in recs.items()},
                 {"voting": 1, "identity": 2, "service": 1}, "requests the backends saw")
    assert_no_client_address(s)


if __name__ == "__main__":
    zl.main(globals())
