#!/usr/bin/python3
"""The cover site, served by zaslon over TLS h2, TLS HTTP/1.1, cleartext HTTP/1.1 and
h2c: files and media types, its own 404 page, HEAD, conditional GET, single ranges,
405 for writes, 301 for a directory without its slash; nothing anywhere says
"zaslon", and the Server field is absent unless server_header sets it."""

import zl

OLD_DATE = "Thu, 01 Jan 1998 00:00:00 GMT"


def start(env, site=None, **kw):
    site = site or zl.CoverSite(env)
    return site, env.zaslon(zl.edge_config(env, cover=site.root, **kw))


def get(z, proto, path, *headers, server=None, method=None):
    """curl |path|; every response is audited for "zaslon" and the Server field."""
    args = []
    for h in headers:
        args += ["-H", h]
    if method == "HEAD":
        args.append("-I")
    elif method:
        args += ["-X", method]
    r = z.curl(proto, path, args=args)
    assert r.rc == 0, "%s %s: curl failed: %s" % (proto, path, r.stderr)
    zl.assert_clean(r, server, "%s %s %s" % (proto, method or "GET", path))
    return r


def test_files_and_404(env):
    site, z = start(env)
    for proto in zl.PROTOS:
        r = get(z, proto, "/")
        zl.assert_status(r, 200, proto + " /")
        zl.assert_eq(r.body, site.index, proto + " / body")
        zl.assert_eq(zl.media_type(r), "text/html", proto + " / type")
        for path, (data, types) in sorted(site.files.items()):
            if path == "/404.html":
                continue
            r = get(z, proto, path)
            zl.assert_status(r, 200, proto + " " + path)
            zl.assert_eq(r.body, data, proto + " " + path + " body")
            assert zl.media_type(r) in types, "%s %s: content-type %r, want one of %r" % (
                proto, path, r.header("content-type"), types)
            zl.assert_eq(r.header("content-length"), str(len(data)), proto + " length")
        for path in ("/no-such-page.html", "/deep/no/such/thing", "/menu/missing.css"):
            r = get(z, proto, path)
            zl.assert_status(r, 404, proto + " " + path)
            zl.assert_eq(r.body, site.not_found, proto + " 404 body is the site's page")
            zl.assert_eq(zl.media_type(r), "text/html", proto + " 404 type")


def test_nghttp(env):
    site, z = start(env)
    for scheme, port in (("https", z.tls_port), ("http", z.plain_port)):
        base = "%s://127.0.0.1:%d" % (scheme, port)
        p = zl.nghttp([base + "/"])
        zl.assert_eq(p.returncode, 0, "nghttp exit: " + p.stderr)
        zl.assert_eq(p.stdout.encode(), site.index, scheme + " nghttp body")
        p = zl.nghttp(["-v", base + "/no-such-page"])
        fields = zl.nghttp_recv_headers(p.stdout)
        zl.assert_eq([v for k, v in fields if k == ":status"], ["404"], scheme + " nghttp status")
        zl.assert_eq([v for k, v in fields if k == "server"], [], scheme + " nghttp server field")
        assert site.not_found.decode() in p.stdout, "nghttp 404 body is not the site's page"
        assert "zaslon" not in p.stdout.lower(), "nghttp saw zaslon"
        p, rows = zl.nghttp_stats(base + "/style.css", multiply=20)
        zl.assert_eq(p.returncode, 0, "nghttp -m 20 exit")
        zl.assert_eq([r[0] for r in rows], [200] * 20, scheme + " nghttp -m 20 statuses")


def test_head(env):
    site, z = start(env)
    for proto in zl.PROTOS:
        for path in ("/", "/notes.txt", "/logo.png"):
            g = get(z, proto, path)
            h = get(z, proto, path, method="HEAD")
            zl.assert_status(h, 200, proto + " HEAD " + path)
            for field in ("content-type", "content-length", "etag", "last-modified"):
                zl.assert_eq(h.header(field), g.header(field), "%s HEAD %s %s" % (proto, path, field))
            assert g.header("etag") and g.header("last-modified"), "validators missing"
    # on the wire: a HEAD response carries no body bytes
    for tls in (False, True):
        c = z.h1(tls=tls)
        h = c.request("HEAD", "/notes.txt")
        zl.assert_status(h, 200, "raw HEAD")
        zl.assert_eq(h.header("content-length"), str(len(site.files["/notes.txt"][0])), "HEAD length")
        g = c.request("GET", "/style.css")  # would misparse if HEAD had sent a body
        zl.assert_status(g, 200, "GET after HEAD on one connection")
        zl.assert_eq(g.body, site.files["/style.css"][0], "GET after HEAD body")
        c.close()
    for tls in (True, False):
        c = z.h2(tls=tls)
        r = c.get("/notes.txt", method="HEAD")
        zl.assert_status(r, 200, "h2 HEAD")
        zl.assert_eq(r.body_len, 0, "h2 HEAD sent DATA")
        zl.assert_eq(r.header("content-length"), str(len(site.files["/notes.txt"][0])), "h2 HEAD length")
        c.close()


def test_conditional_get(env):
    site, z = start(env)
    for proto in zl.PROTOS:
        for path in ("/", "/style.css"):
            g = get(z, proto, path)
            etag, lm = g.header("etag"), g.header("last-modified")
            assert etag and lm, "%s %s: ETag %r Last-Modified %r" % (proto, path, etag, lm)
            r = get(z, proto, path, "If-None-Match: " + etag)
            zl.assert_status(r, 304, proto + " If-None-Match")
            zl.assert_eq(r.body, b"", proto + " 304 body")
            zl.assert_eq(r.header("etag"), etag, proto + " 304 etag")
            r = get(z, proto, path, 'If-None-Match: "not-the-etag"')
            zl.assert_status(r, 200, proto + " If-None-Match other")
            r = get(z, proto, path, "If-Modified-Since: " + lm)
            zl.assert_status(r, 304, proto + " If-Modified-Since")
            zl.assert_eq(r.body, b"", proto + " 304 body")
            r = get(z, proto, path, "If-Modified-Since: " + OLD_DATE)
            zl.assert_status(r, 200, proto + " If-Modified-Since old")
            zl.assert_eq(r.body, site.files.get(path, (site.index,))[0], proto + " body")


def test_ranges(env):
    site, z = start(env)
    data = site.files["/notes.txt"][0]
    n = len(data)
    for proto in zl.PROTOS:
        for spec, lo, hi in (("2-5", 2, 5), ("-4", n - 4, n - 1), ("%d-" % (n - 3), n - 3, n - 1),
                             ("10-%d" % (n + 100), 10, n - 1)):
            r = get(z, proto, "/notes.txt", "Range: bytes=" + spec)
            zl.assert_status(r, 206, "%s range %s" % (proto, spec))
            zl.assert_eq(r.header("content-range"), "bytes %d-%d/%d" % (lo, hi, n),
                         "%s content-range %s" % (proto, spec))
            zl.assert_eq(r.body, data[lo:hi + 1], "%s range %s body" % (proto, spec))
            zl.assert_eq(r.header("content-length"), str(hi + 1 - lo), proto + " range length")
        for spec in ("%d-" % n, "%d-%d" % (n + 10, n + 20)):
            r = get(z, proto, "/notes.txt", "Range: bytes=" + spec)
            zl.assert_status(r, 416, "%s unsatisfiable %s" % (proto, spec))
            zl.assert_eq(r.header("content-range"), "bytes */%d" % n, proto + " 416 content-range")


def test_write_methods_405(env):
    site, z = start(env)
    for proto in zl.PROTOS:
        for method in ("POST", "PUT", "DELETE"):
            for path in ("/", "/notes.txt", "/menu/"):
                r = get(z, proto, path, method=method)
                zl.assert_status(r, 405, "%s %s %s" % (proto, method, path))
            # a missing page may answer 404 first, as nginx does for POST
            r = get(z, proto, "/no-such-page", method=method)
            assert r.status in (404, 405), "%s %s /no-such-page: %s" % (proto, method, r.status)


def test_refused_post_keeps_connection(env):
    """A 405 for a POST with a body leaves the connection usable (or says it closes)."""
    site, z = start(env)
    body = b"x" * 200000
    want = site.files["/style.css"][0]
    for tls in (False, True):
        c = z.h1(tls=tls)
        r = c.request("POST", "/", body=body)
        zl.assert_status(r, 405, "raw POST")
        if "close" in (r.header("connection") or "").lower():
            c.close()
            c = z.h1(tls=tls)
        g = c.request("GET", "/style.css")
        zl.assert_status(g, 200, "GET after refused POST")
        zl.assert_eq(g.body, want, "body after refused POST")
        c.close()
    for tls in (True, False):
        c = z.h2(tls=tls)
        sid = c.request("/", method="POST", body=body)
        s = c.wait_streams([sid])[0]
        zl.assert_status(s.response(), 405, "h2 POST")
        g = c.get("/style.css")
        zl.assert_status(g, 200, "h2 GET after refused POST")
        zl.assert_eq(g.body, want, "h2 body after refused POST")
        c.close()


def test_directory_redirect(env):
    site, z = start(env)
    for proto in zl.PROTOS:
        r = get(z, proto, "/menu")
        zl.assert_status(r, 301, proto + " /menu")
        loc = r.header("location") or ""
        assert loc.endswith("/menu/"), "%s Location %r" % (proto, loc)
        r = get(z, proto, "/menu/")
        zl.assert_status(r, 200, proto + " /menu/")
        zl.assert_eq(r.body, site.files["/menu/index.html"][0], proto + " /menu/ body")


def test_server_header_configured(env):
    site, z = start(env, server_header="nginx")
    n = len(site.files["/notes.txt"][0])
    for proto in zl.PROTOS:
        g = get(z, proto, "/", server="nginx")
        etag = g.header("etag")
        cases = [((), 200, "/"), ((), 404, "/nope"), (("If-None-Match: " + etag,), 304, "/"),
                 (("Range: bytes=0-1",), 206, "/notes.txt"),
                 (("Range: bytes=%d-" % n,), 416, "/notes.txt"), ((), 301, "/menu")]
        for headers, status, path in cases:
            r = get(z, proto, path, *headers, server="nginx")
            zl.assert_status(r, status, "%s %s" % (proto, path))
        for method in ("POST", "HEAD"):
            r = get(z, proto, "/", method=method, server="nginx")
            zl.assert_status(r, 405 if method == "POST" else 200, proto + " " + method)


def test_builtin_pages(env):
    """Without a 404.html the built-in 404 is used; without cover: a built-in page.
    Neither may name zaslon or carry a Server field."""
    site, z = start(env, site=zl.CoverSite(env, with_404=False))
    for proto in zl.PROTOS:
        r = get(z, proto, "/no-such-page")
        zl.assert_status(r, 404, proto + " built-in 404")
        r = get(z, proto, "/", method="DELETE")
        zl.assert_status(r, 405, proto + " built-in 405")
    z.stop()
    z2 = env.zaslon(zl.edge_config(env))
    for proto in zl.PROTOS:
        r = get(z2, proto, "/")
        zl.assert_status(r, 200, proto + " built-in cover page")
        r = get(z2, proto, "/anything/else")
        assert r.status in (200, 404), "%s built-in cover: %s" % (proto, r.status)


if __name__ == "__main__":
    zl.main(globals())
