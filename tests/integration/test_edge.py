#!/usr/bin/python3
"""The edge's other shapes: the cover as `upstream URL` (everything unrouted is
proxied to a real web server, stripped like any backend request) and an IPv6 listener
on [::1] serving TLS h2, TLS HTTP/1.1 and cleartext."""

import zl

CDN_FIELDS = ["X-Forwarded-For: 198.51.100.77", "Forwarded: for=198.51.100.78",
              "Cookie: session=sekrit-cookie-value"]


def test_cover_upstream(env):
    web = env.backend("web")
    cfg = zl.edge_config(env, cover={"upstream": web.url})
    z = env.zaslon(cfg)
    for proto in ("h2", "h1", "h2c", "h1c"):
        path = "/page-%s.html?q=1" % proto
        args = []
        for f in CDN_FIELDS:
            args += ["-H", f]
        r = z.curl(proto, path, args=args)
        zl.assert_eq(r.status, 200, proto + " status")
        zl.assert_eq(r.body, ("backend web %s" % path).encode(), proto + " body")
        for name in ("server", "x-powered-by", "via"):
            zl.assert_eq(r.header(name), None, "%s: backend %s leaked" % (proto, name))
        rec = web.wait_record(path)
        text = repr(rec["headers"])
        for leak in ("198.51.100.77", "198.51.100.78", "sekrit-cookie-value"):
            assert leak not in text, "%s: %s reached the cover upstream: %s" % (proto, leak, text)
    # A method a static site refuses is the upstream's business here.
    r = z.curl("h2", "/status/405", args=["-X", "DELETE"])
    zl.assert_eq(r.status, 405, "upstream status passed through")


def test_ipv6_listener(env):
    c = env.certs()
    tls_port, plain_port = zl.free_port(), zl.free_port()
    site = zl.CoverSite(env)
    cfg = {
        "error_log": {"path": "$rundir/error.log", "level": "info"},
        "listen": [{"address": "[::1]:%d" % tls_port, "tls": {"certificate": c.cert, "key": c.key}},
                   {"address": "[::1]:%d" % plain_port}],
        "cover": {"root": site.root},
    }
    z = env.zaslon(cfg, wait=False)
    zl.wait_until(lambda: zl.can_connect(tls_port, host="::1"), 10, what="[::1] listener")
    for flags, port, scheme in ((["--http2"], tls_port, "https"),
                                (["--http1.1"], tls_port, "https"),
                                (["--http2-prior-knowledge"], plain_port, "http")):
        url = "%s://localhost:%d/" % (scheme, port)
        r = zl.curl(flags + ["--cacert", c.ca, "--resolve", "localhost:%d:[::1]" % port, url])
        zl.assert_eq(r.status, 200, "%s over [::1]" % flags[0])
        zl.assert_eq(r.body, site.index, "%s cover bytes" % flags[0])
    assert not zl.can_connect(tls_port, host="127.0.0.1"), "[::1] listener also took IPv4"


if __name__ == "__main__":
    zl.main(globals())
