#!/usr/bin/python3
"""THE stripping test. A client bound to 127.13.37.5 sends every CDN and forwarding
field with distinctive values, a cookie, a user agent and an allowlisted Accept, over
TLS h2, TLS HTTP/1.1, cleartext HTTP/1.1 and h2c (curl and the Python h2 client).

Fails if any of those values, or the client address, reaches any header a backend
received or any file zaslon wrote (error log at debug level, access log, stdout,
stderr); fails the other way if the allowlisted field did not arrive, or if the access
log stayed empty. Cookie reaches only the backend with allow_cookie: true."""

import zl

COOKIE_VALUE = "sekrit-cookie-value"
ACCEPT = "application/x-zl-allowlisted"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"

# (field, value, secret tokens in the value)
IDENTIFYING = [
    ("X-Forwarded-For", "198.51.100.77, 10.9.8.7", ["198.51.100.77", "10.9.8.7"]),
    ("Forwarded", "for=198.51.100.78;proto=https;by=203.0.113.90", ["198.51.100.78", "203.0.113.90"]),
    ("X-Real-IP", "198.51.100.79", ["198.51.100.79"]),
    ("True-Client-IP", "198.51.100.81", ["198.51.100.81"]),
    ("CF-Connecting-IP", "203.0.113.80", ["203.0.113.80"]),
    ("Fastly-Client-IP", "198.51.100.82", ["198.51.100.82"]),
    ("X-Client-IP", "198.51.100.83", ["198.51.100.83"]),
    ("X-Cluster-Client-IP", "198.51.100.84", ["198.51.100.84"]),
    ("CloudFront-Viewer-Address", "198.51.100.85:46532", ["198.51.100.85"]),
    ("Via", "1.1 198.51.100.86 (via-sekrit-proxy)", ["198.51.100.86", "via-sekrit-proxy"]),
    ("CDN-Loop", "cdn-sekrit-loop; ttl=3", ["cdn-sekrit-loop"]),
    ("traceparent", "00-%s-00f067aa0ba902b7-01" % TRACE_ID, [TRACE_ID]),
    ("User-Agent", "ua-sekrit-agent/7.1", ["ua-sekrit-agent"]),
]
COOKIE = ("Cookie", "session=%s" % COOKIE_VALUE, [COOKIE_VALUE])
SECRETS = sorted({t for _, _, ts in IDENTIFYING + [COOKIE] for t in ts} | {zl.CLIENT_ADDR})
# what STYLE.md 7 also keeps out of logs: authority (= SNI here), path, query
LOG_SECRETS = SECRETS + ["authority-sekrit", "path-sekrit", "query-sekrit"]
HOST = "authority-sekrit.example.net"


def request_headers(with_cookie=True):
    fields = [(k, v) for k, v, _ in IDENTIFYING] + [("Accept", ACCEPT)]
    if with_cookie:
        fields.append(COOKIE[:2])
    return fields


def start(env):
    plain, cookies = env.backend("plain"), env.backend("cookies")
    routes = [zl.route("cookies", host="cookies.example.net"), zl.route("plain", path="/api/")]
    backends = {"plain": plain, "cookies": zl.backend_block(cookies, allow_cookie=True)}
    z = env.zaslon(zl.edge_config(env, routes=routes, backends=backends,
                                  log_level="debug", access_log=True))
    return plain, cookies, z


def send_all(z, host, path):
    """The identifying request over every protocol, with curl and the h2 client, from
    127.13.37.5. Returns the number of requests made."""
    args = ["--interface", zl.CLIENT_ADDR]
    for k, v in request_headers():
        args += ["-H", "%s: %s" % (k, v)]
    n = 0
    for proto in zl.PROTOS:
        r = z.curl(proto, path + "?via=curl-" + proto, host=host, args=args)
        zl.assert_status(r, 200, "curl " + proto)
        n += 1
    for tls in (True, False):
        c = z.h2(tls=tls, source=zl.CLIENT_ADDR,
                 server_hostname=HOST if tls else None)
        hdrs = [(k.lower(), v) for k, v in request_headers(with_cookie=False)]
        # two cookie crumbs, as HTTP/2 clients may send them (RFC 9113 8.2.3)
        hdrs += [("cookie", "session=%s" % COOKIE_VALUE), ("cookie", "theme=dark")]
        r = c.get(path + "?via=h2-" + ("tls" if tls else "h2c"), authority=host, headers=hdrs)
        zl.assert_status(r, 200, "h2 client")
        c.close()
        n += 1
    return n


def assert_backend_clean(records, allow_cookie):
    # no forwarding field at all, whatever its value (an upstream User-Agent of the
    # gateway's own is allowed: only the client's value is checked for)
    forbidden_names = {k.lower() for k, _, _ in IDENTIFYING} - {"user-agent"}
    if not allow_cookie:
        forbidden_names.add("cookie")
    for rec in records:
        where = "backend %s %s" % (rec["backend"], rec["path"])
        for name, value in rec["headers"]:
            assert name.lower() not in forbidden_names, "%s got field %s: %s" % (where, name, value)
            for secret in SECRETS:
                if allow_cookie and secret == COOKIE_VALUE and name.lower() == "cookie":
                    continue
                assert secret.lower() not in (name + ": " + value).lower(), \
                    "%s: %r leaked in %s: %s" % (where, secret, name, value)
        zl.assert_eq(zl.header_value(rec["headers"], "accept"), [ACCEPT],
                     where + ": the allowlisted Accept field")
        assert rec["peer"] != zl.CLIENT_ADDR, where + ": connected from the client address"


def assert_files_clean(z, min_access_lines):
    files = z.files_text()
    access = [p for p in files if p.endswith("access.log")]
    assert access, "no access log written (files: %s)" % sorted(files)
    lines = files[access[0]].count(b"\n")
    assert lines >= min_access_lines, "access log has %d lines, want >= %d" % (
        lines, min_access_lines)
    for path, data in files.items():
        low = data.lower()
        for secret in LOG_SECRETS:
            assert secret.lower().encode() not in low, "%r written to %s" % (secret, path)


def test_stripped_everywhere(env):
    plain, cookies, z = start(env)
    n = send_all(z, HOST, "/api/path-sekrit")
    records = plain.records()
    zl.assert_eq(len(records), n, "requests the backend saw")
    assert_backend_clean(records, allow_cookie=False)
    zl.assert_eq(z.stop(), 0, "exit code after SIGTERM")  # flushes logs
    assert_files_clean(z, n)


def test_cookie_only_with_allow_cookie(env):
    plain, cookies, z = start(env)
    n = send_all(z, "cookies.example.net", "/query-sekrit/path-sekrit")
    records = cookies.records()
    zl.assert_eq(len(records), n, "requests the cookie backend saw")
    assert_backend_clean(records, allow_cookie=True)
    for rec in records:
        cookie = zl.header_value(rec["headers"], "cookie")
        want = ["session=%s; theme=dark" % COOKIE_VALUE] if "via=h2-" in rec["path"] \
            else ["session=%s" % COOKIE_VALUE]
        zl.assert_eq(cookie, want, "cookie at the allow_cookie backend for " + rec["path"])
    zl.assert_eq(plain.records(), [], "the other backend saw nothing")
    zl.assert_eq(z.stop(), 0, "exit code after SIGTERM")
    assert_files_clean(z, n)


def test_refused_and_failed_requests_leave_no_trace(env):
    """Cover answers, 404s, 405s and a 502 with the same identifying fields: nothing
    identifying in any file either."""
    dead = zl.free_port()
    cfg = zl.edge_config(env, routes=[zl.route("dead", path="/dead/")],
                         backends={"dead": zl.backend_block(url="http://127.0.0.1:%d" % dead)})
    z = env.zaslon(cfg)
    args = ["--interface", zl.CLIENT_ADDR]
    for k, v in request_headers():
        args += ["-H", "%s: %s" % (k, v)]
    statuses = set()
    for proto in zl.PROTOS:
        for path, method in (("/", "GET"), ("/path-sekrit", "GET"), ("/", "DELETE"),
                             ("/dead/path-sekrit?q=query-sekrit", "GET")):
            r = z.curl(proto, path, host=HOST, args=args + ["-X", method])
            statuses.add(r.status)
    assert {200, 405, 502} <= statuses, "statuses seen: %s" % sorted(statuses, key=str)
    zl.assert_eq(z.stop(), 0, "exit code after SIGTERM")
    assert_files_clean(z, 16)


if __name__ == "__main__":
    zl.main(globals())
