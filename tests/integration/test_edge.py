#!/usr/bin/python3
"""The edge's other shapes: the cover as `upstream URL` (everything unrouted is
proxied to a real web server, stripped like any backend request), an IPv6 listener
on [::1] serving TLS h2, TLS HTTP/1.1 and cleartext, and TLS session resumption."""

import os
import subprocess
import time

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


def _s_client(port, ca, *extra):
    """openssl s_client's handshake trace (-msg) and summary for one TLS 1.3
    connection, held open for a second so that the tickets sent after the handshake
    arrive before it leaves."""
    p = subprocess.Popen(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                          "-servername", "localhost", "-CAfile", ca, "-tls1_3",
                          "-alpn", "h2", "-msg"] + list(extra),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    time.sleep(1.0)
    out, _ = p.communicate(timeout=20)
    return out


def test_one_session_ticket_that_resumes(env):
    """A full TLS 1.3 handshake ends with exactly one NewSessionTicket (OpenSSL's
    default is two; one saves every new connection a record and a write), and that
    ticket resumes: the second connection is reported as reused, with no certificate
    sent. The peer is openssl s_client, not our own TLS code."""
    cfg = zl.edge_config(env)
    z = env.zaslon(cfg)
    c = env.certs()
    sess = env.path("ticket.pem")
    out = _s_client(z.tls_port, c.ca, "-sess_out", sess)
    tickets = out.count("NewSessionTicket")
    zl.assert_eq(tickets, 1,
                 "NewSessionTicket messages in a full handshake:\n" + out[-3000:])
    assert "Verify return code: 0 (ok)" in out, out[-3000:]
    assert os.path.getsize(sess) > 0, "s_client saved no session"
    out = _s_client(z.tls_port, c.ca, "-sess_in", sess)
    assert "Reused, TLSv1.3" in out, "the ticket did not resume:\n" + out[-3000:]
    assert ", Certificate" not in out, "a resumed handshake sent the certificate again"
    assert z.running(), "zaslon died"


if __name__ == "__main__":
    zl.main(globals())
