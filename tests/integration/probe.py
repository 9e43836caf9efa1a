#!/usr/bin/python3
"""probe.py: what an active prober sees of an edge (issue 4, proof d).

Sends a fixed set of probes — paths, methods, malformed HTTP/1.1, HTTP/1.0, oversized
heads, the sealed path with the wrong method, type, body or key id (with no origin
secret, a wrong one and the right one), the key path, h2 oddities, plaintext to the TLS
port, TLS to the cleartext port, ALPN and SNI variants, h2c prior knowledge and the h2c
upgrade — each over the protocols where it makes sense (h1 = HTTP/1.1 over TLS, h1c =
cleartext HTTP/1.1, h2 = HTTP/2 over TLS, h2c = HTTP/2 prior knowledge), and records
for each what came back: status lines, header fields in order without Date, bodies,
whether the connection stayed open (and what a follow-up request on it got), HTTP/2
resets and GOAWAYs, or the TLS / connection outcome. Nothing here reads the clock into
a result: run it against two edges and the results must be equal.

What a prober without the app's key configuration can send is all it sends: never a
valid sealed request, and never the key path together with the right origin secret
(that one is meant to differ: it is what the gate guards).

As a script:
  probe.py --tls-port 8443 --plain-port 8080 [--host 127.0.0.1] [--sni localhost]
           [--authority localhost] [--prefix /edge] [--sealed-path /s/]
           [--keys-path /.well-known/ohttp-gateway] [--secret-header x-origin-secret
           --secret VALUE] [--max-request 4096] [--only REGEX] [--out results.json]
  probe.py --compare a.json b.json      # exits 1 and prints the differences
  probe.py --list                        # the probe names
As a module: run(Target(...)) -> {probe name: outcome}; diff(a, b) -> [lines].
"""

import argparse
import concurrent.futures
import difflib
import hashlib
import json
import re
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions

TIMEOUT = 5.0        # longest wait for an answer
OPEN_CHECK = 0.25    # after a keep-alive answer: does the server close anyway?
H2_SETTLE = 0.3      # after the last stream ends: a RST_STREAM or GOAWAY that follows
BODY_INLINE = 4096   # larger bodies are recorded as sha256 and length
WELL_KNOWN = "/.well-known/ohttp-gateway"
OHTTP_KEY_TYPE = "https://iana.org/assignments/http-problem-types#ohttp-key"


class Target:
    """Where and what to probe. |prefix| is the mount ("" for none); the sealed and key
    paths are given below it, as in the config."""

    def __init__(self, tls_port, plain_port, host="127.0.0.1", sni="localhost",
                 authority="localhost", prefix="", sealed_path="/s/", keys_path=WELL_KNOWN,
                 secret_header="x-origin-secret", secret=None, max_request=65536):
        self.tls_port, self.plain_port, self.host = tls_port, plain_port, host
        self.sni, self.authority, self.prefix = sni, authority, prefix or ""
        self.sealed = self.prefix + sealed_path
        self.keys = self.prefix + keys_path
        self.secret_header, self.secret = secret_header, secret
        self.max_request = max_request

    def p(self, path):
        """|path| below the mount."""
        return self.prefix + path


# ------------------------------------------------------------------------ sockets

def connect(t, tls, alpn=("http/1.1",), sni=True, min_version=None, max_version=None):
    s = socket.create_connection((t.host, t.tls_port if tls else t.plain_port),
                                 timeout=TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if not tls:
        return s
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn is not None:
        ctx.set_alpn_protocols(list(alpn))
    if min_version:
        ctx.minimum_version = min_version
    if max_version:
        ctx.maximum_version = max_version
    try:
        return ctx.wrap_socket(s, server_hostname=(t.sni if sni is True else sni) or None)
    except BaseException:
        s.close()
        raise


def tls_info(s):
    """What the handshake settled (the same for two edges with the same config)."""
    der = s.getpeercert(binary_form=True) or b""
    return {"version": s.version(), "alpn": s.selected_alpn_protocol(),
            "cipher": s.cipher()[0], "cert_sha256": hashlib.sha256(der).hexdigest()}


def error_name(e):
    if isinstance(e, ssl.SSLError):
        return "ssl:%s" % (e.reason or type(e).__name__)
    if isinstance(e, (socket.timeout, TimeoutError)):
        return "timeout"
    return type(e).__name__


def body_repr(b):
    if len(b) <= BODY_INLINE:
        return b.decode("latin-1")
    return {"sha256": hashlib.sha256(b).hexdigest(), "len": len(b)}


# ---------------------------------------------------------------------- HTTP/1.1

def _headers(block):
    out = []
    for line in block:
        if b":" in line:
            k, v = line.split(b":", 1)
            out.append([k.decode("latin-1"), v.strip().decode("latin-1")])
        else:
            out.append([line.decode("latin-1"), None])
    return out


def parse_h1(buf, heads, eof):
    """The complete responses at the front of |buf|: [(response, is_final)], bytes
    consumed. |heads[i]| says whether the i-th request was HEAD (no body follows)."""
    pos, out, n_final = 0, [], 0
    while True:
        i = buf.find(b"\r\n\r\n", pos)
        if i < 0:
            break
        lines = buf[pos:i].split(b"\r\n")
        status_line = lines[0].decode("latin-1")
        hs = _headers(lines[1:])
        m = re.match(r"HTTP/\d\.\d (\d{3})", status_line)
        code = int(m.group(1)) if m else None
        start = i + 4
        if code is not None and 100 <= code < 200 and code != 101:
            out.append(({"status_line": status_line, "headers": strip_date(hs)}, False))
            pos = start
            continue
        is_head = heads[n_final] if n_final < len(heads) else False
        names = {k.lower(): v for k, v in hs if v is not None}
        if is_head or code in (101, 204, 304):
            body, end = b"", start
        elif "chunked" in (names.get("transfer-encoding") or "").lower():
            body, end = _chunked(buf, start)
            if end is None:
                break
        elif "content-length" in names:
            try:
                n = int(names["content-length"])
            except ValueError:
                n = 0
            if len(buf) < start + n:
                break
            body, end = buf[start:start + n], start + n
        else:
            if not eof:
                break
            body, end = buf[start:], len(buf)
        out.append(({"status_line": status_line, "headers": strip_date(hs),
                     "body": body_repr(body)}, True))
        n_final += 1
        pos = end
        if code == 101:
            break
    return out, pos


def _chunked(buf, pos):
    body = b""
    while True:
        i = buf.find(b"\r\n", pos)
        if i < 0:
            return None, None
        try:
            n = int(buf[pos:i].split(b";")[0], 16)
        except ValueError:
            return None, None
        pos = i + 2
        if n == 0:
            j = buf.find(b"\r\n\r\n", pos - 2)
            return (body, j + 4) if j >= 0 else (None, None)
        if len(buf) < pos + n + 2:
            return None, None
        body += buf[pos:pos + n]
        pos += n + 2


def strip_date(hs):
    return [h for h in hs if h[0].lower() != "date"]


def h1(t, data, tls=False, heads=(False,), alpn=("http/1.1",), follow=True, sni=True):
    """Sends |data| (bytes, or a list of byte strings sent apart) and records the
    answers to len(|heads|) requests, then whether the connection stays open and, if
    it does, the status line of a follow-up GET on it."""
    try:
        s = connect(t, tls, alpn, sni)
    except Exception as e:
        return {"connect": error_name(e)}
    rec = {}
    try:
        if tls:
            rec["tls"] = tls_info(s)
        for piece in data if isinstance(data, list) else [data]:
            s.sendall(piece)
            if isinstance(data, list):
                time.sleep(0.05)
        buf, eof, err = _read_until(s, lambda b, e: _finals(b, heads, e) >= len(heads))
        resps, used = parse_h1(buf, list(heads), eof)
        rec["responses"] = [r for r, _ in resps]
        rest = buf[used:]
        if err:
            rec["error"] = err
        if not eof and not err:
            more, eof, err2 = _read_until(s, lambda b, e: False, OPEN_CHECK)
            rest += more
        if rest:
            rec["extra"] = body_repr(rest)
        rec["end"] = "closed" if eof else "open"
        if not eof and follow and not rest:
            s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (t.p("/"), t.authority))
                      .encode())
            buf, eof, err = _read_until(s, lambda b, e: _finals(b, [False], e) >= 1)
            got, _ = parse_h1(buf, [False], eof)
            rec["follow"] = [r["status_line"] for r, final in got if final] or \
                (err or ("closed" if eof else "nothing"))
    except Exception as e:
        rec["error"] = error_name(e)
    finally:
        s.close()
    return rec


def _finals(buf, heads, eof):
    resps, _ = parse_h1(buf, list(heads), eof)
    return sum(1 for _, final in resps if final)


def _read_until(s, done, timeout=TIMEOUT):
    """Reads until done(buf, eof), EOF or |timeout|; returns (bytes, eof, error)."""
    buf, deadline = b"", time.monotonic() + timeout
    while not done(buf, False):
        left = deadline - time.monotonic()
        if left <= 0:
            return buf, False, None if timeout == OPEN_CHECK else "timeout"
        s.settimeout(left)
        try:
            data = s.recv(65536)
        except (socket.timeout, TimeoutError):
            continue
        except (ConnectionResetError, BrokenPipeError):
            return buf, True, "reset"
        except ssl.SSLError as e:
            return buf, True, error_name(e)
        except OSError as e:
            return buf, True, error_name(e)
        if not data:
            return buf, True, None
        buf += data
    return buf, False, None


def req(method, path, host="", headers=(), body=None, version="HTTP/1.1", cl=True):
    lines = ["%s %s %s" % (method, path, version)]
    if host is not None:
        lines.append("Host: %s" % host)
    lines += ["%s: %s" % (k, v) for k, v in headers]
    if body is not None and cl:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


# ------------------------------------------------------------------------- HTTP/2

def h2x(t, requests, tls=True, alpn=("h2",), sni=True, settings_only=False):
    """Opens an HTTP/2 connection (TLS with ALPN, or h2c prior knowledge), sends
    |requests| (dicts: headers = [(name, value)] pseudo-fields included, body, end) and
    records each stream's answer, resets, GOAWAY and EOF."""
    try:
        s = connect(t, tls, alpn, sni)
    except Exception as e:
        return {"connect": error_name(e)}
    rec = {}
    if tls:
        rec["tls"] = tls_info(s)
        if s.selected_alpn_protocol() != "h2":
            s.close()
            return rec
    cfg = h2.config.H2Configuration(client_side=True, header_encoding=None,
                                    validate_outbound_headers=False,
                                    normalize_outbound_headers=False,
                                    validate_inbound_headers=False)
    conn = h2.connection.H2Connection(cfg)
    streams, order, settings = {}, [], {}
    state = {"goaway": None, "eof": False, "error": None}
    try:
        conn.initiate_connection()
        for r in requests:
            sid = conn.get_next_available_stream_id()
            body = r.get("body")
            end = r.get("end", True)
            conn.send_headers(sid, [(_b(k), _b(v)) for k, v in r["headers"]],
                              end_stream=end and body is None)
            if body is not None:
                conn.send_data(sid, body, end_stream=end)
            streams[sid] = {"status": None, "headers": [], "informational": [], "body": b"",
                            "ended": False, "reset": None}
            order.append(sid)
        s.sendall(conn.data_to_send())

        def handle(ev):
            if isinstance(ev, h2.events.RemoteSettingsChanged):
                for k, v in ev.changed_settings.items():
                    settings[int(k)] = v.new_value
                return
            if isinstance(ev, h2.events.ConnectionTerminated):
                state["goaway"] = [int(ev.error_code), ev.last_stream_id,
                                   (ev.additional_data or b"").hex()]
                return
            st = streams.get(getattr(ev, "stream_id", None))
            if st is None:
                return
            if isinstance(ev, h2.events.InformationalResponseReceived):
                st["informational"].append(_hlist(ev.headers))
            elif isinstance(ev, h2.events.ResponseReceived):
                hs = _hlist(ev.headers)
                st["status"] = dict(hs).get(":status")
                st["headers"] = [h for h in hs if h[0] not in (":status", "date")]
            elif isinstance(ev, h2.events.TrailersReceived):
                st["trailers"] = _hlist(ev.headers)
            elif isinstance(ev, h2.events.DataReceived):
                st["body"] += ev.data
                if ev.flow_controlled_length:
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                st["ended"] = True
            elif isinstance(ev, h2.events.StreamReset):
                st["reset"] = int(ev.error_code)

        def pump(timeout):
            s.settimeout(timeout)
            try:
                data = s.recv(65536)
            except (socket.timeout, TimeoutError):
                return True
            except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
                data = b""
            if not data:
                state["eof"] = True
                return False
            try:
                for ev in conn.receive_data(data):
                    handle(ev)
            except h2.exceptions.ProtocolError as e:
                state["error"] = "client saw: %s" % type(e).__name__
                return False
            out = conn.data_to_send()
            if out:
                try:
                    s.sendall(out)
                except OSError:
                    pass
            return True

        deadline = time.monotonic() + TIMEOUT
        done = (lambda: bool(settings)) if settings_only else \
            (lambda: all(streams[i]["ended"] or streams[i]["reset"] is not None
                         for i in order))
        while not done() and state["goaway"] is None and time.monotonic() < deadline:
            if not pump(min(0.5, max(0.01, deadline - time.monotonic()))):
                break
        if not done() and not state["eof"] and state["goaway"] is None:
            state["error"] = state["error"] or "timeout"
        settle = time.monotonic() + H2_SETTLE
        while not state["eof"] and time.monotonic() < settle:
            if not pump(max(0.01, settle - time.monotonic())):
                break
    except Exception as e:
        state["error"] = error_name(e)
    finally:
        s.close()
    if settings_only:
        rec["settings"] = {str(k): v for k, v in sorted(settings.items())}
        return rec
    rec["streams"] = []
    for sid in order:
        st = streams[sid]
        st["body"] = body_repr(st["body"])
        rec["streams"].append(st)
    rec["goaway"] = state["goaway"]
    rec["eof"] = state["eof"]
    if state["error"]:
        rec["error"] = state["error"]
    return rec


def _b(v):
    return v if isinstance(v, bytes) else v.encode("latin-1")


def _hlist(hs):
    return [[_s(k), _s(v)] for k, v in hs]


def _s(v):
    return v.decode("latin-1") if isinstance(v, bytes) else v


def h2req(t, method, path, headers=(), body=None, authority=None, scheme=None, tls=True,
          cl=True, end=True):
    hs = [(":method", method), (":scheme", scheme or ("https" if tls else "http")),
          (":authority", t.authority if authority is None else authority), (":path", path)]
    hs += list(headers)
    if body is not None and cl:
        hs.append(("content-length", str(len(body))))
    return {"headers": hs, "body": body, "end": end}


# ------------------------------------------------------------------- sealed bodies

def _prng(label, n):
    out, i = b"", 0
    while len(out) < n:
        out += hashlib.sha256(("%s/%d" % (label, i)).encode()).digest()
        i += 1
    return out[:n]


def ohttp_req(key_id, kem=0x0020, kdf=0x0001, aead=0x0001, enc=None, ct_len=96, label="x"):
    """A message/ohttp-req that looks right and opens with no key: header, enc, then
    ciphertext and tag from a fixed pseudo-random stream (the same bytes every run)."""
    enc = _prng("enc/" + label, 32) if enc is None else enc
    return bytes([key_id]) + kem.to_bytes(2, "big") + kdf.to_bytes(2, "big") + \
        aead.to_bytes(2, "big") + enc + _prng("ct/" + label, ct_len)


def sealed_bodies(t):
    return [
        ("garbage", _prng("garbage", 300)),
        ("text", b"hello, is this a sealed endpoint?\n" * 4),
        ("empty", b""),
        ("short", b"\x01\x00\x20"),
        ("unknown key id", ohttp_req(0x99, label="k99")),
        ("key id 1, bad tag", ohttp_req(0x01, label="k1")),
        ("key id 0", ohttp_req(0x00, label="k0")),
        ("unknown kem", ohttp_req(0x01, kem=0x0021, label="kem")),
        ("unknown aead", ohttp_req(0x01, aead=0x0007, label="aead")),
        ("low-order enc", ohttp_req(0x01, enc=bytes(32), label="lo")),
        ("oversized", ohttp_req(0x01, ct_len=t.max_request + 1000, label="big")),
    ]


# ------------------------------------------------------------------------- probes

PROTOS = ("h1", "h1c", "h2", "h2c")


def http(t, proto, method, path, headers=(), body=None, cl=True, follow=True):
    """One request over |proto| (h1, h1c, h2, h2c)."""
    if proto in ("h2", "h2c"):
        tls = proto == "h2"
        return h2x(t, [h2req(t, method, path, headers, body, tls=tls, cl=cl)], tls=tls)
    return h1(t, req(method, path, t.authority, headers, body, cl=cl), tls=proto == "h1",
              heads=(method == "HEAD",), follow=follow)


def probes(t):
    """[(name, thunk)] — every probe, in a fixed order."""
    out = []

    def add(name, fn):
        out.append((name, fn))

    def each(name, method, path, headers=(), body=None, protos=PROTOS, cl=True):
        for pr in protos:
            add("%s %s" % (pr, name),
                lambda pr=pr: http(t, pr, method, path, headers, body, cl=cl))

    P = t.p
    long_path = P("/" + "a" * 9000)
    near_path = P("/" + "b" * 7000)
    # --- paths (GET)
    paths = [
        ("GET /", P("/")),
        ("GET /index.html", P("/index.html")),
        ("GET the sealed path", t.sealed),
        ("GET the sealed path without its slash", t.sealed.rstrip("/")),
        ("GET the sealed path in capitals", t.sealed.upper()),
        ("GET the sealed path with a query", t.sealed + "?q=1"),
        ("GET the key path", t.keys),
        ("GET the RFC 9540 key path", P(WELL_KNOWN)),
        ("GET /.well-known/", P("/.well-known/")),
        ("GET /robots.txt", P("/robots.txt")),
        ("GET /favicon.ico", P("/favicon.ico")),
        ("GET /admin", P("/admin")),
        ("GET /menu (a directory)", P("/menu")),
        ("GET /menu/?a=b", P("/menu/?a=b")),
        ("GET a 9000-byte path", long_path),
        ("GET a 7000-byte path", near_path),
        ("GET %-encoded index", P("/%69ndex.html")),
        ("GET %-encoded sealed path", t.sealed.replace("/s", "/%73", 1)),
        ("GET %2F in a segment", P("/menu%2Findex.html")),
        ("GET bad escape", P("/%zz")),
        ("GET %00", P("/a%00b")),
        ("GET dot segments", P("/a/../index.html")),
        ("GET ./ before the sealed path", P("/.") + t.sealed[len(t.prefix):]),
        ("GET .. above the root", P("/../index.html")),
        ("GET %2e%2e above the root", P("/%2e%2e/%2e%2e/etc/passwd")),
        ("GET //double slash", P("//index.html")),
        ("GET a path outside the mount", "/index.html"),
        ("GET the mount without its slash", t.prefix or "/"),
        ("GET a UTF-8 path", P("/caf%C3%A9")),
    ]
    for name, path in paths:
        each(name, "GET", path)
    # --- methods
    for m in ("HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH", "FOO", "get",
              "PROPFIND"):
        body = b"x=1" if m in ("POST", "PUT", "PATCH") else None
        each("%s /" % m, m, P("/"), body=body)
        each("%s the sealed path" % m, m, t.sealed, body=body)
        each("%s /index.html" % m, m, P("/index.html"), body=body)
    add("h1c OPTIONS *", lambda: h1(t, req("OPTIONS", "*", t.authority)))
    add("h2c OPTIONS *", lambda: h2x(t, [h2req(t, "OPTIONS", "*", tls=False)], tls=False))
    add("h1c CONNECT", lambda: h1(t, req("CONNECT", "%s:443" % t.authority, t.authority)))
    add("h1 CONNECT", lambda: h1(t, req("CONNECT", "%s:443" % t.authority, t.authority),
                                 tls=True))
    add("h2 CONNECT", lambda: h2x(t, [{"headers": [(":method", "CONNECT"),
                                                   (":authority", t.authority)]}]))
    add("h2c CONNECT", lambda: h2x(t, [{"headers": [(":method", "CONNECT"),
                                                    (":authority", t.authority)]}], tls=False))

    # --- the sealed path, as a prober without keys can try it
    secrets = [("no secret", [])]
    if t.secret:
        secrets += [("wrong secret", [(t.secret_header, "x" * len(t.secret))]),
                    ("right secret", [(t.secret_header, t.secret)])]
    rtype = ("content-type", "message/ohttp-req")
    for sname, sh in secrets:
        for bname, body in sealed_bodies(t):
            each("POST sealed %s, %s" % (bname, sname), "POST", t.sealed, [rtype] + sh, body)
        good = ohttp_req(0x99, label="typed")
        each("PUT sealed request, %s" % sname, "PUT", t.sealed, [rtype] + sh, good)
        each("GET sealed request, %s" % sname, "GET", t.sealed, [rtype] + sh)
        each("POST sealed, wrong type, %s" % sname, "POST", t.sealed,
             [("content-type", "application/octet-stream")] + sh, good)
        each("POST sealed, response type, %s" % sname, "POST", t.sealed,
             [("content-type", "message/ohttp-res")] + sh, good)
        each("POST sealed, type with parameter, %s" % sname, "POST", t.sealed,
             [("content-type", "message/ohttp-req; charset=utf-8")] + sh, good)
        each("POST sealed, no type, %s" % sname, "POST", t.sealed, sh, good)
        each("POST sealed, no length, %s" % sname, "POST", t.sealed, [rtype] + sh, good,
             protos=("h2", "h2c"), cl=False)
        add("h1c POST sealed, chunked, %s" % sname, lambda sh=sh, good=good: h1(
            t, req("POST", t.sealed, t.authority,
                   [rtype] + sh + [("Transfer-Encoding", "chunked")], None) +
            b"%x\r\n%s\r\n0\r\n\r\n" % (len(good), good)))
        add("h1c POST sealed, Expect 100-continue, %s" % sname, lambda sh=sh, good=good: h1(
            t, [req("POST", t.sealed, t.authority,
                    [rtype, ("Expect", "100-continue"),
                     ("Content-Length", str(len(good)))] + sh, None), good]))
        add("h1c POST sealed, body sent late, %s" % sname, lambda sh=sh, good=good: h1(
            t, [req("POST", t.sealed, t.authority,
                    [rtype, ("Content-Length", str(len(good)))] + sh, None), good]))
        each("POST sealed query path, %s" % sname, "POST", t.sealed + "?x=1",
             [rtype] + sh, good)
        if sname != "right secret":  # with it, the key path is meant to answer
            each("GET the key path, %s" % sname, "GET", t.keys, sh)
            each("HEAD the key path, %s" % sname, "HEAD", t.keys, sh)
        each("POST the key path, %s" % sname, "POST", t.keys,
             [("content-type", "application/ohttp-keys")] + sh, b"x")
        each("POST the RFC 9540 path, %s" % sname, "POST", P(WELL_KNOWN), [rtype] + sh, good)
        each("GET /, %s" % sname, "GET", P("/"), sh)

    # --- malformed HTTP/1.1 (cleartext and TLS)
    host = t.authority
    malformed = [
        ("bad request line", b"GARBAGE\r\n\r\n"),
        ("HTTP/0.9 request line", b"GET /\r\n\r\n"),
        ("HTTP/9.9", req("GET", P("/"), host, version="HTTP/9.9")),
        ("HTTP/2.0 as text", req("GET", P("/"), host, version="HTTP/2.0")),
        ("lowercase version", req("GET", P("/"), host, version="http/1.1")),
        ("missing Host", req("GET", P("/"), None)),
        ("two Hosts", req("GET", P("/"), host, [("Host", "other.example")])),
        ("bare LF", ("GET %s HTTP/1.1\nHost: %s\n\n" % (P("/"), host)).encode()),
        ("obs-fold", req("GET", P("/"), host, [("X-A", "one\r\n two")])),
        ("space before colon", req("GET", P("/"), host, [("X-A ", "1")])),
        ("field without colon", ("GET %s HTTP/1.1\r\nHost: %s\r\nnocolon\r\n\r\n"
                                 % (P("/"), host)).encode()),
        ("NUL in a field", req("GET", P("/"), host, [("X-A", "a\x00b")])),
        ("NUL in the target", ("GET %s\x00 HTTP/1.1\r\nHost: %s\r\n\r\n"
                               % (P("/"), host)).encode()),
        ("huge field (100 KiB)", req("GET", P("/"), host, [("X-Big", "a" * 100000)])),
        ("10 KiB field", req("GET", P("/"), host, [("X-Big", "a" * 10000)])),
        ("200 fields", req("GET", P("/"), host, [("X-F%d" % i, "v") for i in range(200)])),
        ("CL and TE", req("POST", t.sealed, host, [("Content-Length", "5"),
                                                   ("Transfer-Encoding", "chunked")]) +
         b"0\r\n\r\n"),
        ("obfuscated TE", req("POST", t.sealed, host, [("Transfer-Encoding", " chunked, x")])
         + b"0\r\n\r\n"),
        ("TE xchunked", req("POST", t.sealed, host, [("Transfer-Encoding", "xchunked")])),
        ("two different CLs", req("POST", t.sealed, host, [("Content-Length", "3"),
                                                          ("Content-Length", "4")]) + b"abcd"),
        ("CL not a number", req("POST", t.sealed, host, [("Content-Length", "abc")])),
        ("negative CL", req("POST", t.sealed, host, [("Content-Length", "-1")])),
        ("absolute-form target", req("GET", "http://%s%s" % (host, P("/index.html")), host)),
        ("absolute-form sealed", req("POST", "http://%s%s" % (host, t.sealed), host,
                                     [("content-type", "message/ohttp-req")], b"abc")),
        ("h2c upgrade", req("GET", P("/"), host, [("Connection", "Upgrade, HTTP2-Settings"),
                                                 ("Upgrade", "h2c"),
                                                 ("HTTP2-Settings", "AAMAAABkAAQAAP__")])),
        ("websocket upgrade", req("GET", P("/"), host, [
            ("Connection", "Upgrade"), ("Upgrade", "websocket"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")])),
        ("h2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        ("request line only spaces", b"   \r\n\r\n"),
        ("leading empty lines", b"\r\n\r\n" + req("GET", P("/"), host)),
        ("tab in the request line", ("GET\t%s HTTP/1.1\r\nHost: %s\r\n\r\n"
                                     % (P("/"), host)).encode()),
        ("8 KiB request line", req("GET", P("/" + "c" * 8180), host)),
    ]
    for name, data in malformed:
        for pr in ("h1c", "h1"):
            add("%s %s" % (pr, name), lambda data=data, pr=pr: h1(t, data, tls=pr == "h1"))
    # --- HTTP/1.0, keep-alive and pipelining
    for pr in ("h1c", "h1"):
        tls = pr == "h1"
        add("%s HTTP/1.0 GET / without Host" % pr, lambda tls=tls: h1(
            t, req("GET", P("/"), None, version="HTTP/1.0"), tls=tls))
        add("%s HTTP/1.0 GET / keep-alive" % pr, lambda tls=tls: h1(
            t, req("GET", P("/"), host, [("Connection", "keep-alive")], version="HTTP/1.0"),
            tls=tls))
        add("%s HTTP/1.0 POST sealed" % pr, lambda tls=tls: h1(
            t, req("POST", t.sealed, None, [("content-type", "message/ohttp-req")],
                   ohttp_req(0x99, label="10"), version="HTTP/1.0"), tls=tls))
        add("%s HTTP/1.0 HEAD the key path" % pr, lambda tls=tls: h1(
            t, req("HEAD", t.keys, None, version="HTTP/1.0"), tls=tls, heads=(True,)))
        add("%s two pipelined requests" % pr, lambda tls=tls: h1(
            t, req("GET", t.sealed, host) + req("HEAD", P("/index.html"), host),
            tls=tls, heads=(False, True)))
        add("%s sealed POST then GET, pipelined" % pr, lambda tls=tls: h1(
            t, req("POST", t.sealed, host, [("content-type", "message/ohttp-req")],
                   ohttp_req(0x99, label="pipe")) + req("GET", P("/"), host),
            tls=tls, heads=(False, False)))
        add("%s Connection: close" % pr, lambda tls=tls: h1(
            t, req("GET", P("/"), host, [("Connection", "close")]), tls=tls))
        add("%s conditional GET" % pr, lambda tls=tls: h1(
            t, req("GET", P("/index.html"), host, [("If-None-Match", '"x", *')]), tls=tls))
        add("%s range GET" % pr, lambda tls=tls: h1(
            t, req("GET", P("/index.html"), host, [("Range", "bytes=0-9")]), tls=tls))

    # --- HTTP/2 oddities
    h2odd = [
        ("no :authority, Host field", {"headers": [(":method", "GET"), (":scheme", "https"),
                                                   (":path", P("/")), ("host", host)]}),
        ("no :authority, no Host", {"headers": [(":method", "GET"), (":scheme", "https"),
                                                (":path", P("/"))]}),
        ("uppercase field name", {"headers": [(":method", "GET"), (":scheme", "https"),
                                              (":authority", host), (":path", P("/")),
                                              ("X-Upper", "1")]}),
        ("connection field", {"headers": [(":method", "GET"), (":scheme", "https"),
                                          (":authority", host), (":path", P("/")),
                                          ("connection", "keep-alive")]}),
        ("te: gzip", {"headers": [(":method", "GET"), (":scheme", "https"),
                                  (":authority", host), (":path", P("/")), ("te", "gzip")]}),
        ("te: trailers", {"headers": [(":method", "GET"), (":scheme", "https"),
                                      (":authority", host), (":path", P("/")),
                                      ("te", "trailers")]}),
        ("pseudo-field after a field", {"headers": [(":method", "GET"), (":scheme", "https"),
                                                    ("x-a", "1"), (":authority", host),
                                                    (":path", P("/"))]}),
        ("empty :path", {"headers": [(":method", "GET"), (":scheme", "https"),
                                     (":authority", host), (":path", "")]}),
        ("unknown pseudo-field", {"headers": [(":method", "GET"), (":scheme", "https"),
                                              (":authority", host), (":path", P("/")),
                                              (":protocol", "websocket")]}),
        ("content-length mismatch", {"headers": [(":method", "POST"), (":scheme", "https"),
                                                 (":authority", host), (":path", t.sealed),
                                                 ("content-type", "message/ohttp-req"),
                                                 ("content-length", "10")],
                                     "body": b"abc"}),
        ("scheme http over TLS", {"headers": [(":method", "GET"), (":scheme", "http"),
                                              (":authority", host), (":path", P("/"))]}),
        ("field with a space in the name", {"headers": [(":method", "GET"),
                                                        (":scheme", "https"),
                                                        (":authority", host),
                                                        (":path", P("/")), ("x a", "1")]}),
        ("NUL in a value", {"headers": [(":method", "GET"), (":scheme", "https"),
                                        (":authority", host), (":path", P("/")),
                                        ("x-a", "a\x00b")]}),
    ]
    for name, r in h2odd:
        for pr in ("h2", "h2c"):
            def fix(r=r, pr=pr, keep=name == "scheme http over TLS"):
                # h2c requests say :scheme http, unless the probe is about :scheme
                hs = [(k, "http" if k == ":scheme" and pr == "h2c" and not keep else v)
                      for k, v in r["headers"]]
                return h2x(t, [dict(r, headers=hs)], tls=pr == "h2")
            add("%s %s" % (pr, name), fix)
    add("h2 several streams", lambda: h2x(t, [h2req(t, "GET", P("/")),
                                              h2req(t, "HEAD", t.sealed),
                                              h2req(t, "POST", t.sealed,
                                                    [("content-type", "message/ohttp-req")],
                                                    ohttp_req(0x99, label="multi"))]))
    add("h2 settings", lambda: h2x(t, [], settings_only=True))
    add("h2c settings", lambda: h2x(t, [], tls=False, settings_only=True))

    # --- TLS and connection level
    add("plaintext HTTP to the TLS port", lambda: raw(t, True, req("GET", P("/"), host)))
    add("TLS to the cleartext port", lambda: raw(t, False, client_hello(t)))
    add("h2 preface to the TLS port without TLS", lambda: raw(
        t, True, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
    add("garbage to the TLS port", lambda: raw(t, True, _prng("tls-garbage", 64)))
    for name, alpn in [("ALPN h2", ("h2",)), ("ALPN http/1.1", ("http/1.1",)),
                       ("no ALPN", None), ("ALPN spdy/3", ("spdy/3",)),
                       ("ALPN spdy/3 and http/1.1", ("spdy/3", "http/1.1")),
                       ("ALPN http/1.0", ("http/1.0",)), ("ALPN h2 and http/1.1",
                                                          ("h2", "http/1.1")),
                       ("ALPN h3", ("h3",))]:
        add("TLS %s, GET /" % name, lambda alpn=alpn: by_alpn(t, alpn, P("/")))
        add("TLS %s, POST sealed" % name, lambda alpn=alpn: by_alpn(
            t, alpn, t.sealed, "POST", [("content-type", "message/ohttp-req")],
            ohttp_req(0x99, label="alpn")))
    for name, sni in [("no SNI", None), ("SNI front.example", "front.example"),
                      ("SNI unknown.invalid", "unknown.invalid")]:
        add("TLS %s, GET /" % name, lambda sni=sni: h1(t, req("GET", P("/"), host), tls=True,
                                                       sni=sni))
    add("TLS 1.2 only", lambda: tls_only(t, ssl.TLSVersion.TLSv1_2))
    add("TLS 1.3 only", lambda: tls_only(t, ssl.TLSVersion.TLSv1_3))
    add("TLS 1.1 only", lambda: tls_only(t, ssl.TLSVersion.TLSv1_1))
    add("h2 preface after ALPN http/1.1", lambda: h1(
        t, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", tls=True))
    add("h2 preface with no ALPN", lambda: h2x(t, [h2req(t, "GET", P("/"))], alpn=None))
    add("h2c upgrade on the TLS port", lambda: h1(
        t, req("GET", P("/"), host, [("Connection", "Upgrade, HTTP2-Settings"),
                                     ("Upgrade", "h2c"), ("HTTP2-Settings", "AAMAAABkAAQAAP__")]),
        tls=True))
    add("h2c prior knowledge, two requests", lambda: h2x(
        t, [h2req(t, "GET", P("/"), tls=False), h2req(t, "GET", t.sealed, tls=False)],
        tls=False))
    return out


def raw(t, tls_port, data):
    """Sends |data| over a bare TCP connection to the TLS or cleartext port and records
    everything that comes back (Date lines removed) until the server closes."""
    try:
        s = socket.create_connection((t.host, t.tls_port if tls_port else t.plain_port),
                                     timeout=TIMEOUT)
    except OSError as e:
        return {"connect": error_name(e)}
    try:
        s.sendall(data)
        buf, eof, err = _read_until(s, lambda b, e: False)
    finally:
        s.close()
    text = re.sub(rb"\r\nDate: [^\r\n]*", b"", buf)
    return {"bytes": text.hex() if text[:1] in (b"\x15", b"\x16") else body_repr(text),
            "end": "closed" if eof else "open", "error": err}


def client_hello(t):
    """A TLS ClientHello (what a client sends first), made by the ssl module."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=t.sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def by_alpn(t, alpn, path, method="GET", headers=(), body=None):
    """A TLS connection offering |alpn|; then a request in whatever was chosen."""
    try:
        s = connect(t, True, alpn)
    except Exception as e:
        return {"connect": error_name(e)}
    chosen = s.selected_alpn_protocol()
    s.close()
    if chosen == "h2":
        return h2x(t, [h2req(t, method, path, headers, body)], alpn=alpn)
    return h1(t, req(method, path, t.authority, headers, body), tls=True, alpn=alpn)


def tls_only(t, version):
    try:
        s = connect(t, True, ("http/1.1",), min_version=version, max_version=version)
    except Exception as e:
        return {"connect": error_name(e)}
    info = tls_info(s)
    s.close()
    return {"tls": info}


def run(t, only=None, workers=8):
    """Runs every probe (or those whose name matches the regex |only|) against |t|;
    returns {name: outcome}."""
    todo = [(n, f) for n, f in probes(t) if not only or re.search(only, n)]
    names = [n for n, _ in todo]
    assert len(set(names)) == len(names), "duplicate probe names"

    def one(item):
        name, fn = item
        try:
            return name, fn()
        except Exception as e:  # a probe that breaks is an outcome too, and shows
            return name, {"probe-error": "%s: %s" % (type(e).__name__, e)}
    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        return dict(ex.map(one, todo))


def kinds(names):
    """Probe kinds: names without the protocol in front."""
    return sorted({re.sub(r"^(h1c|h1|h2c|h2) ", "", n) for n in names})


def diff(a, b, label_a="a", label_b="b"):
    """Human-readable differences between two results."""
    out = []
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            out.append("%s: only in %s" % (name, label_a if name in a else label_b))
            continue
        if a[name] != b[name]:
            ja = json.dumps(a[name], indent=1, sort_keys=True).splitlines()
            jb = json.dumps(b[name], indent=1, sort_keys=True).splitlines()
            d = list(difflib.unified_diff(ja, jb, label_a, label_b, lineterm="", n=2))
            out.append("=== %s\n%s" % (name, "\n".join(d[:80])))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--tls-port", type=int)
    ap.add_argument("--plain-port", type=int)
    ap.add_argument("--sni", default="localhost")
    ap.add_argument("--authority", default="localhost")
    ap.add_argument("--prefix", default="")
    ap.add_argument("--sealed-path", default="/s/")
    ap.add_argument("--keys-path", default=WELL_KNOWN)
    ap.add_argument("--secret-header", default="x-origin-secret")
    ap.add_argument("--secret")
    ap.add_argument("--max-request", type=int, default=65536)
    ap.add_argument("--only")
    ap.add_argument("--out")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--compare", nargs=2, metavar=("A", "B"))
    a = ap.parse_args()
    if a.compare:
        with open(a.compare[0]) as f1, open(a.compare[1]) as f2:
            d = diff(json.load(f1), json.load(f2), a.compare[0], a.compare[1])
        print("\n".join(d) if d else "no differences")
        return 1 if d else 0
    t = Target(a.tls_port or 1, a.plain_port or 1, a.host, a.sni, a.authority, a.prefix,
               a.sealed_path, a.keys_path, a.secret_header, a.secret, a.max_request)
    if a.list:
        names = [n for n, _ in probes(t)]
        print("\n".join(names))
        print("%d probes, %d kinds" % (len(names), len(kinds(names))))
        return 0
    if not a.tls_port or not a.plain_port:
        ap.error("--tls-port and --plain-port are required")
    res = run(t, a.only)
    text = json.dumps(res, indent=1, sort_keys=True)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
