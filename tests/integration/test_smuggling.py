#!/usr/bin/python3
"""HTTP/1.1 from fronts is a smuggling surface (issue 4, part 4).

zaslon (a TLS and a cleartext listener) routes EVERY request (any Host, any path) to a
recording backend, so anything that got past its HTTP/1.1 parser would show in the
backend's log. Each shape is sent on its own raw connection, followed by a complete
second request (`GET /smuggled/NAME`) in the same bytes: what a desync would turn into
a request nobody framed.

Fails when:
  - straight to zaslon, cleartext or TLS: any shape (Content-Length with
    Transfer-Encoding in either order; obfuscated Transfer-Encoding: `xchunked`, a space
    before the colon, `chunked, identity`, a tab or a vertical tab before the value,
    obs-folded, repeated, in HTTP/1.0; duplicate, listed, signed, hex, spaced,
    non-numeric or overflowing Content-Length, a space before its colon; obs-fold; bare
    LF; bare CR; NUL in the request line, a field name or a value; absolute-form and
    authority-form targets, CONNECT; two Host fields; and, on TLS, an h2c upgrade)
    gets anything but 400, or the connection is not closed right after it, or the
    backend records anything (the shape's own request or the smuggled one); a
    well-formed control request on each listener, before and after, does not reach the
    backend (so the empty log means something);
  - in cleartext, `Upgrade: h2c` + `HTTP2-Settings` is not served as a plain HTTP/1.1
    request (200 from the backend, no 101, the connection still usable) or the
    Upgrade / HTTP2-Settings / Connection fields reach the backend;
  - through the CDN stand-in (cdn.py: haproxy, TLS for front.example, HTTP/1.1 to
    zaslon's cleartext listener with server connections reused between clients): for
    every shape haproxy forwards, the backend got a request haproxy did not forward as
    one (the backend's paths are not exactly haproxy's forwarded-and-answered paths),
    or a follow-up request on a fresh client connection (the same reused origin
    connection) does not get its own answer; the shapes haproxy refuses itself must
    never reach zaslon. The table of what haproxy did with each shape is printed;
  - through the same front, after a request the cover answers at its head (a POST to a
    page, body not yet read), a request hidden in the next request's body at the
    offset where the first body would end reaches a backend, or a well-formed request
    gets an answer that is not its own: haproxy 2.6 reuses the origin connection with
    the first body unsent, so zaslon must not keep such a connection."""

import time

import cdn
import zl

HOST = cdn.HIDDEN
SMUGGLED = "GET /smuggled/%s HTTP/1.1\r\nHost: " + HOST + "\r\n\r\n"
H2_SETTINGS = "AAMAAABkAARAAAAAAAIAAAAA"


def shape(name, lines, body="", method="POST", target=None, version="HTTP/1.1",
          eol="\r\n", tls_only=False):
    """A raw request: request line, |lines| (with {H} for the host), |body|, then the
    smuggled request. |eol| ends every line of the head."""
    target = target or "/outer/%s" % name
    head = "%s %s %s%s" % (method, target, version, eol)
    head += "".join(ln.replace("{H}", HOST) + eol for ln in lines) + eol
    raw = (head + body + SMUGGLED % name).encode("latin-1")
    return {"name": name, "raw": raw, "tls_only": tls_only}


CHUNKED_BODY = "3\r\nabc\r\n0\r\n\r\n"
SHAPES = [
    # Content-Length with Transfer-Encoding (CL.TE / TE.CL)
    shape("cl-te", ["Host: {H}", "Content-Length: 6", "Transfer-Encoding: chunked"],
          CHUNKED_BODY),
    shape("te-cl", ["Host: {H}", "Transfer-Encoding: chunked", "Content-Length: 30"],
          CHUNKED_BODY),
    # obfuscated Transfer-Encoding, alone (a chunked body follows) ...
    shape("te-xchunked", ["Host: {H}", "Transfer-Encoding: xchunked"], CHUNKED_BODY),
    shape("te-space-colon", ["Host: {H}", "Transfer-Encoding : chunked"], CHUNKED_BODY),
    shape("te-list", ["Host: {H}", "Transfer-Encoding: chunked, identity"], CHUNKED_BODY),
    shape("te-tab", ["Host: {H}", "Transfer-Encoding:\tchunked"], CHUNKED_BODY),
    shape("te-vtab", ["Host: {H}", "Transfer-Encoding:\x0bchunked"], CHUNKED_BODY),
    shape("te-folded", ["Host: {H}", "Transfer-Encoding:", " chunked"], CHUNKED_BODY),
    shape("te-twice", ["Host: {H}", "Transfer-Encoding: chunked",
                       "Transfer-Encoding: chunked"], CHUNKED_BODY),
    shape("te-identity", ["Host: {H}", "Transfer-Encoding: identity"], CHUNKED_BODY),
    shape("te-http10", ["Host: {H}", "Transfer-Encoding: chunked"], CHUNKED_BODY,
          version="HTTP/1.0"),
    # ... and with a Content-Length, the classic desync
    shape("cl-te-xchunked", ["Host: {H}", "Content-Length: 6",
                             "Transfer-Encoding: xchunked"], CHUNKED_BODY),
    shape("cl-te-space-colon", ["Host: {H}", "Content-Length: 6",
                                "Transfer-Encoding : chunked"], CHUNKED_BODY),
    shape("cl-te-list", ["Host: {H}", "Content-Length: 6",
                         "Transfer-Encoding: chunked, identity"], CHUNKED_BODY),
    shape("cl-te-tab", ["Host: {H}", "Content-Length: 6", "Transfer-Encoding:\tchunked"],
          CHUNKED_BODY),
    shape("cl-te-vtab", ["Host: {H}", "Content-Length: 6",
                         "Transfer-Encoding:\x0bchunked"], CHUNKED_BODY),
    # duplicate or invalid Content-Length
    shape("cl-dup-same", ["Host: {H}", "Content-Length: 3", "Content-Length: 3"], "abc"),
    shape("cl-dup-differ", ["Host: {H}", "Content-Length: 3", "Content-Length: 40"],
          "abc"),
    shape("cl-list", ["Host: {H}", "Content-Length: 3, 3"], "abc"),
    shape("cl-plus", ["Host: {H}", "Content-Length: +3"], "abc"),
    shape("cl-minus", ["Host: {H}", "Content-Length: -1"], "abc"),
    shape("cl-hex", ["Host: {H}", "Content-Length: 0x3"], "abc"),
    shape("cl-spaced", ["Host: {H}", "Content-Length: 3 3"], "abc"),
    shape("cl-alpha", ["Host: {H}", "Content-Length: abc"], "abc"),
    shape("cl-overflow", ["Host: {H}", "Content-Length: 18446744073709551619"], "abc"),
    shape("cl-space-colon", ["Host: {H}", "Content-Length : 3"], "abc"),
    # obs-fold, bare LF, bare CR, NUL
    shape("obs-fold", ["Host: {H}", "X-Note: a", " b"], method="GET"),
    shape("obs-fold-tab", ["Host: {H}", "X-Note: a", "\tb"], method="GET"),
    shape("bare-lf", ["Host: {H}", "X-Note: a"], method="GET", eol="\n"),
    shape("bare-lf-one", ["Host: {H}\nX-Note: a"], method="GET"),
    shape("bare-cr", ["Host: {H}", "X-Note: a\rb"], method="GET"),
    shape("nul-value", ["Host: {H}", "X-Note: a\x00b"], method="GET"),
    shape("nul-name", ["Host: {H}", "X-No\x00te: a"], method="GET"),
    shape("nul-target", ["Host: {H}"], method="GET", target="/outer/nul-target\x00x"),
    # targets that are not origin-form
    shape("absolute-http", ["Host: {H}"], method="GET",
          target="http://%s/outer/absolute-http" % HOST),
    shape("absolute-https", ["Host: {H}"], method="GET",
          target="https://%s/outer/absolute-https" % HOST),
    shape("absolute-other", ["Host: {H}"], method="GET",
          target="http://elsewhere.example/outer/absolute-other"),
    shape("authority-form", ["Host: {H}"], method="CONNECT", target="%s:443" % HOST),
    shape("no-slash", ["Host: {H}"], method="GET", target="outer/no-slash"),
    shape("two-hosts", ["Host: {H}", "Host: elsewhere.example"], method="GET"),
    # h2c upgrade on a TLS port
    shape("h2c-upgrade-tls", ["Host: {H}", "Connection: Upgrade, HTTP2-Settings",
                              "Upgrade: h2c", "HTTP2-Settings: " + H2_SETTINGS],
          method="GET", tls_only=True),
]


def setup(env, gate=True):
    env.certs(names=("origin.example.net", "localhost"), ips=("127.0.0.1",))
    b = env.backend("b")
    extra = {}
    if gate:
        extra["gate"] = {"header": cdn.SECRET_HEADER,
                         "secrets": ["zl-smuggling-secret-0123456789"]}
    cfg = zl.edge_config(env, backends={"b": b}, routes=[zl.route("b")], **extra)
    return env.zaslon(cfg), b


def control(conn, path, what):
    """A well-formed request on |conn| that must reach the backend."""
    r = conn.request("GET", path, host=HOST)
    zl.assert_status(r, 200, what)
    zl.assert_eq(r.body, ("backend b %s" % path).encode(), what + ": body")


def send_shape(conn, s, close_wait=2.0):
    """Sends the shape; returns (status or None, seconds to close or None)."""
    conn.send(s["raw"])
    try:
        status = conn.read_response().status
    except (EOFError, OSError, AssertionError, ValueError):
        status = None
    return status, conn.wait_closed(close_wait) if close_wait else None


def direct(env, tls):
    z, b = setup(env)
    proto = "TLS" if tls else "cleartext"
    c = z.h1(tls=tls, server_hostname="localhost")
    control(c, "/control/first", "control request (%s)" % proto)
    c.close()
    zl.assert_eq([r["path"] for r in b.records()], ["/control/first"], "control recorded")
    results = []
    for s in SHAPES:
        if s["tls_only"] and not tls:
            continue
        conn = z.h1(tls=tls, server_hostname="localhost")
        try:
            status, closed = send_shape(conn, s)
        finally:
            conn.close()
        results.append((s["name"], status, closed))
    time.sleep(0.2)  # anything mis-framed would be on its way to the backend now
    c = z.h1(tls=tls, server_hostname="localhost")
    control(c, "/control/last", "control request after the shapes (%s)" % proto)
    c.close()
    bad = ["%s: status %s, %s" % (n, st, "closed" if cl is not None else "left open")
           for n, st, cl in results if st != 400 or cl is None]
    leaked = [r["path"] for r in b.records()
              if r["path"] not in ("/control/first", "/control/last")]
    assert not bad and not leaked, "%s listener:\n  wanted 400 and a close: %s\n  " \
        "reached the backend: %s" % (proto, "\n  ".join(bad) or "-", leaked or "-")
    zl.assert_eq(z.running(), True, "zaslon still running")
    print("%s: %d shapes, each 400 and a close; backend got only the 2 controls"
          % (proto, len(results)))


# ---------------------------------------------------------------------------- tests

def test_direct_cleartext(env):
    """Every shape, straight to the cleartext listener: 400, closed, nothing recorded."""
    direct(env, tls=False)


def test_direct_tls(env):
    """Every shape (and an h2c upgrade) straight to the TLS listener: 400, closed,
    nothing recorded."""
    direct(env, tls=True)


def test_h2c_upgrade_cleartext(env):
    """In cleartext an h2c upgrade request is an ordinary HTTP/1.1 request: zaslon
    offers h2c by prior knowledge only, so it ignores Upgrade (no 101), answers over
    HTTP/1.1 and keeps the connection; the upgrade fields do not reach the backend."""
    z, b = setup(env)
    c = z.h1(tls=False)
    try:
        r = c.request("GET", "/upgrade/one", host=HOST, headers=[
            ("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
            ("HTTP2-Settings", H2_SETTINGS)])
        zl.assert_eq((r.version, r.status), ("1.1", 200), "h2c upgrade in cleartext")
        zl.assert_eq(r.body, b"backend b /upgrade/one", "answer to the upgrade request")
        assert r.header("upgrade") is None, "offered an upgrade: %r" % r.headers
        control(c, "/upgrade/two", "the same connection after the upgrade request")
    finally:
        c.close()
    recs = b.records()
    zl.assert_eq([x["path"] for x in recs], ["/upgrade/one", "/upgrade/two"],
                 "backend requests")
    names = {k.lower() for k, _ in recs[0]["headers"]}
    for n in ("upgrade", "http2-settings", "connection"):
        assert n not in names, "backend got %s: %r" % (n, recs[0]["headers"])


def test_through_haproxy(env):
    """Every shape through the HTTP/1.1 CDN stand-in: haproxy refuses most itself; what
    it forwards (normalized or not), zaslon frames exactly as haproxy did: the backend
    sees exactly the requests haproxy forwarded and got answered, and a follow-up on a
    fresh client connection gets its own answer."""
    z, b = setup(env)
    fc = cdn.front_certs(env)
    front = cdn.Cdn(env, z.plain_port, "h1", secret="zl-smuggling-secret-0123456789",
                    certs=fc)
    c = front.h1()
    control(c, "/control/first", "control request through haproxy")
    c.close()
    table = []
    for s in SHAPES:  # all of them: haproxy's front is a TLS port too
        n_log = len(front.log_lines())
        conn = front.h1()
        try:
            status, _ = send_shape(conn, s, close_wait=0)
        finally:
            conn.close()
        # a follow-up from another client, on haproxy's reused origin connection
        f = front.h1()
        try:
            control(f, "/follow/%s" % s["name"], "follow-up after %s" % s["name"])
        finally:
            f.close()
        lines = front.wait_logged(n_log + 1)[n_log:]
        shape_lines = [ln for ln in lines if "/follow/" not in ln["path"] and
                       "/smuggled/" not in ln["path"]]
        origin = [ln for ln in shape_lines if ln["origin"] != "-"]
        if not origin:
            verdict = "refused by haproxy (%s)" % status
        elif any(ln["status"] == "200" for ln in origin):
            verdict = "forwarded; zaslon served it (%s)" % ",".join(
                ln["status"] for ln in origin)
        else:
            verdict = "forwarded; zaslon refused it (%s)" % ",".join(
                ln["status"] for ln in origin)
        table.append((s["name"], verdict))
    c = front.h1()
    control(c, "/control/last", "control request through haproxy, last")
    c.close()
    time.sleep(0.2)
    # one-to-one: the backend's requests are haproxy's forwarded, answered requests
    forwarded = sorted(ln["path"] for ln in front.log_lines()
                       if ln["origin"] != "-" and ln["status"] == "200")
    got = sorted(r["path"] for r in b.records())
    zl.assert_eq(got, forwarded, "backend requests vs requests haproxy forwarded")
    smuggled = [p for p in got if p.startswith("/smuggled/")]
    for p in smuggled:
        # only as the client's own pipelined request, which haproxy framed and logged
        assert p in forwarded, "smuggled request %s reached the backend" % p
    print("through haproxy (HTTP/1.1 to zaslon, reused origin connections):")
    for name, verdict in table:
        print("  %-18s %s" % (name, verdict))
    if smuggled:
        print("  pipelined by the client after a request haproxy framed and kept the "
              "connection for: %s" % ", ".join(smuggled))


def test_early_answer_then_reuse(env):
    """The cover answers a POST at its head (405), before the body. When the answer
    reaches haproxy before the body did, haproxy 2.6 drops the rest of that body and
    puts the origin connection back in its pool with the request unfinished: the next
    request's bytes arrive where zaslon still expects the first one's body. A request
    hidden in the next body at that offset is then one haproxy never framed. Fails if
    it reaches a backend, or if any well-formed request through the front gets an answer
    that is not its own (the cover's 405): zaslon must not keep a connection whose
    request body it has not read. (40 rounds: the race is hit in most runs within a
    few.)"""
    env.certs(names=("origin.example.net", "localhost"), ips=("127.0.0.1",))
    cover = zl.CoverSite(env)
    b = env.backend("b")
    z = env.zaslon(zl.edge_config(env, cover=cover.root, backends={"b": b},
                                  routes=[zl.route("b", path="/api/")]))
    secret = "zl-smuggling-secret-0123456789"
    front = cdn.Cdn(env, z.plain_port, "h1", secret=secret, certs=cdn.front_certs(env))
    a_len, b_len = 1024, 2000
    a_body = env.write("a.bin", b"\x01" * a_len)
    # B's head exactly as haproxy writes it to the origin (curl's defaults removed)
    head_b = ("POST /index.html HTTP/1.1\r\nhost: %s\r\ncontent-type: "
              "application/octet-stream\r\ncontent-length: %d\r\nx-real-ip: 127.0.0.1\r\n"
              "via: %s\r\n%s: %s\r\nx-forwarded-for: 127.0.0.1\r\n\r\n") % (
                  HOST, b_len, cdn.VIA, cdn.SECRET_HEADER, secret)
    wrong = []
    deadline = time.monotonic() + 20  # a desync can also stall a request (3 s each)
    for i in range(40):
        if time.monotonic() > deadline:
            break
        a_args = ["-X", "POST", "-H", "host: " + HOST, "-H",
                  "content-type: message/ohttp-req", "--data-binary", "@" + a_body]
        r = zl.curl(a_args + front.curl_args("/index.html"), timeout=3)
        # where A's unread body would end inside B: a run of empty lines (tolerated
        # before a request line), then a request; both parities of the offset
        hidden = "\r\n" * 16 + "GET /api/smuggled/%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (
            i, HOST)
        pad = a_len - len(head_b) - 16 + (i % 2)
        body = (b"x" * pad + hidden.encode()).ljust(b_len, b"y")
        bpath = env.write("b.bin", body)
        b_args = ["-X", "POST", "-H", "user-agent:", "-H", "accept:", "-H",
                  "host: " + HOST, "-H", "content-type: application/octet-stream",
                  "--data-binary", "@" + bpath]
        rb = zl.curl(b_args + front.curl_args("/index.html"), timeout=3)
        if rb.status != 405 or r.status != 405:
            wrong.append("round %d: A %s, B %s %r" % (i, r.status, rb.status,
                                                      (rb.body or b"")[:40]))
        if b.records():
            break
    leaked = [x["path"] for x in b.records()]
    assert not leaked and not wrong, "early answers on reused HTTP/1.1 origin " \
        "connections:\n  reached the backend: %s\n  answers not their own:\n    %s" % (
            leaked or "-", "\n    ".join(wrong) or "-")


if __name__ == "__main__":
    zl.main(globals())
