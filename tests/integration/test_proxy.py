#!/usr/bin/python3
"""Routing to backends: exact host, "*." wildcard host and path prefix, first match
wins, no match -> cover; response bytes and statuses passed through; backend down ->
502; backend slower than first_byte_timeout -> 504; the backend's Server, X-Powered-By
and Via fields never reach the client."""

import time

import zl

LEAKY = ("server", "x-powered-by", "via")


def start(env):
    """Backends a and b, a dead one and a slow-timeout one; routes in file order."""
    site = zl.CoverSite(env)
    a, b = env.backend("a"), env.backend("b")
    dead = zl.backend_block(url="http://127.0.0.1:%d" % zl.free_port())
    slow = zl.backend_block(b, first_byte_timeout="1s")
    routes = [
        zl.route("cover", host="vote.example.net", path="/cover-here/"),
        zl.route("a", host="vote.example.net"),
        zl.route("b", host="*.wild.example.net"),
        zl.route("dead", host="down.example.net"),
        zl.route("slow", host="slow.example.net"),
        zl.route("b", path="/api/"),
    ]
    z = env.zaslon(zl.edge_config(env, cover=site.root, routes=routes,
                                  backends={"a": a, "b": b, "dead": dead, "slow": slow}))
    return site, a, b, z


def fetch(z, proto, path, host="localhost", args=(), timeout=30):
    r = z.curl(proto, path, host=host, args=args, timeout=timeout)
    assert r.rc == 0, "%s %s%s: curl failed: %s" % (proto, host, path, r.stderr)
    zl.assert_clean(r, None, "%s %s%s" % (proto, host, path))
    for name in LEAKY:
        assert r.header(name) is None, "%s %s%s: backend's %s passed on: %r" % (
            proto, host, path, name, r.header(name))
    return r


def test_routing(env):
    site, a, b, z = start(env)
    cases = [
        # (host, path, expected body)
        ("vote.example.net", "/x", b"backend a /x"),
        ("VOTE.Example.NET", "/upper", b"backend a /upper"),
        ("vote.example.net", "/api/first-match", b"backend a /api/first-match"),
        ("deep.wild.example.net", "/y", b"backend b /y"),
        ("other.wild.example.net", "/q?x=1&y=%20z", b"backend b /q?x=1&y=%20z"),
        ("localhost", "/api/z", b"backend b /api/z"),
        ("cover.example.net", "/api/", b"backend b /api/"),
        ("localhost", "/", site.index),
        ("wild.example.net", "/", site.index),        # the wildcard needs a label
        ("localhost", "/apix", site.not_found),        # prefix is "/api/", not "/api"
        ("vote.example.net", "/cover-here/", site.not_found),  # first match: cover
    ]
    for proto in zl.PROTOS:
        for host, path, want in cases:
            r = fetch(z, proto, path, host)
            zl.assert_eq(r.body, want, "%s %s%s" % (proto, host, path))
            zl.assert_status(r, 404 if want == site.not_found else 200, "%s %s%s" % (proto, host, path))
    seen_a = {r["path"] for r in a.records()}
    seen_b = {r["path"] for r in b.records()}
    assert seen_a == {"/x", "/upper", "/api/first-match"}, seen_a
    assert seen_b == {"/y", "/q?x=1&y=%20z", "/api/z", "/api/"}, seen_b


def test_bytes_and_statuses(env):
    site, a, b, z = start(env)
    for proto in zl.PROTOS:
        for n in (0, 1, 65535, 65536, 1000003):
            r = fetch(z, proto, "/bytes/%d" % n, "vote.example.net")
            zl.assert_status(r, 200, proto + " bytes")
            zl.assert_eq(r.body_sha256, zl.pattern_sha256(n), "%s /bytes/%d digest" % (proto, n))
            zl.assert_eq(r.body_len, n, "%s /bytes/%d length" % (proto, n))
        for code in (201, 204, 404, 410, 500, 503):
            r = fetch(z, proto, "/status/%d" % code, "vote.example.net")
            zl.assert_status(r, code, "%s /status/%d" % (proto, code))
            want = b"" if code == 204 else b"status %d" % code
            zl.assert_eq(r.body, want, "%s /status/%d body is the backend's" % (proto, code))
        payload = b"\x00\x01binary echo \xff" * 1000
        body_file = env.write("echo.bin", payload)
        r = fetch(z, proto, "/echo", "vote.example.net",
                  args=["--data-binary", "@" + body_file, "-H", "Content-Type: application/x-zl"])
        zl.assert_status(r, 200, proto + " echo")
        zl.assert_eq(r.body, payload, proto + " echo body")
        zl.assert_eq(zl.media_type(r), "application/x-zl", proto + " echo content-type")
        for method in ("PUT", "DELETE", "PATCH"):
            r = fetch(z, proto, "/m", "vote.example.net", args=["-X", method])
            zl.assert_status(r, 200, proto + " " + method)
    methods = [(r["method"], r["path"]) for r in a.records() if r["path"] == "/m"]
    zl.assert_eq(sorted(set(methods)), [("DELETE", "/m"), ("PATCH", "/m"), ("PUT", "/m")],
                 "methods the backend saw")


def test_backend_down_502(env):
    site, a, b, z = start(env)
    for proto in zl.PROTOS:
        r = fetch(z, proto, "/anything", "down.example.net")
        zl.assert_status(r, 502, proto + " backend down")
    # the daemon still serves afterwards
    r = fetch(z, "h2", "/ok", "vote.example.net")
    zl.assert_eq(r.body, b"backend a /ok", "after 502")


def test_first_byte_timeout_504(env):
    site, a, b, z = start(env)
    for proto in zl.PROTOS:
        t0 = time.monotonic()
        r = fetch(z, proto, "/slow/4000", "slow.example.net")
        dt = time.monotonic() - t0
        zl.assert_status(r, 504, proto + " slow backend")
        assert 0.8 <= dt < 2.5, "%s: 504 after %.2fs, first_byte_timeout is 1s" % (proto, dt)
        r = fetch(z, proto, "/slow/100", "slow.example.net")
        zl.assert_status(r, 200, proto + " fast enough")
        zl.assert_eq(r.body, b"slow 100", proto + " fast enough body")


def test_backend_response_fields_not_passed(env):
    """Also over the Python h2 client and a raw HTTP/1.1 connection, field by field."""
    site, a, b, z = start(env)
    for tls in (True, False):
        c = z.h2(tls=tls)
        r = c.get("/bytes/10", authority="vote.example.net")
        zl.assert_status(r, 200, "h2")
        for name in LEAKY:
            zl.assert_eq(r.header_all(name), [], "h2 %s" % name)
        c.close()
        h = z.h1(tls=tls)
        r = h.request("GET", "/bytes/10", host="vote.example.net")
        zl.assert_status(r, 200, "h1")
        zl.assert_eq(r.body, zl.pattern_bytes(10), "h1 body")
        for name in LEAKY:
            zl.assert_eq(r.header_all(name), [], "h1 %s" % name)
        h.close()


if __name__ == "__main__":
    zl.main(globals())
