#!/usr/bin/python3
"""Many concurrent streams through zaslon to a backend: h2load -n 20000 -c 20 -m 50
(all 2xx; 1000 requests per connection, the default max_requests_per_connection, after
which zaslon sends a graceful GOAWAY), nghttp -m 100 on one connection, and the Python h2 client with 100
streams on one connection, each a distinct path whose response bytes are checked."""

import zl


def start(env):
    a = env.backend("a")
    z = env.zaslon(zl.edge_config(env, backends={"a": a}, routes=[zl.route("a", path="/api/"),
                                                                 zl.route("a", path="/bytes/")],
                                  log_level="info"))
    return a, z


def test_h2load_20000(env):
    a, z = start(env)
    for url in ("https://127.0.0.1:%d/api/load" % z.tls_port,
                "http://127.0.0.1:%d/api/load-h2c" % z.plain_port):
        p, res = zl.h2load(url, n=20000, c=20, m=50, timeout=150,
                           args=["--connection-inactivity-timeout=20"])
        print("  %s: %s" % (url, res), flush=True)
        assert res, "h2load printed no summary (exit %d): %s %s" % (
            p.returncode, p.stdout[-1500:], p.stderr[-1500:])
        zl.assert_eq((res["succeeded"], res["2xx"], res["failed"], res["errored"]),
                     (20000, 20000, 0, 0), url + " h2load results")
    assert z.running(), "zaslon died under load"


def test_nghttp_multiply_100(env):
    a, z = start(env)
    for scheme, port in (("https", z.tls_port), ("http", z.plain_port)):
        url = "%s://127.0.0.1:%d/api/nghttp-%s" % (scheme, port, scheme)
        p, rows = zl.nghttp_stats(url, multiply=100)
        zl.assert_eq(p.returncode, 0, "nghttp exit: " + p.stderr[-500:])
        zl.assert_eq(len(rows), 100, scheme + " responses")
        want_size = str(len("backend a /api/nghttp-%s" % scheme))
        zl.assert_eq({(s, size) for s, size, _ in rows}, {(200, want_size)}, scheme + " results")
    zl.assert_eq(len(a.records()), 200, "requests the backend saw")


def test_h2_client_100_streams(env):
    a, z = start(env)
    for tls in (True, False):
        c = z.h2(tls=tls)
        paths = {}
        for i in range(100):
            path = "/api/item/%d?tls=%d" % (i, tls) if i % 2 else "/bytes/%d" % (1000 + 997 * i)
            paths[c.request(path, flush=False)] = path
        c.flush()
        streams = c.wait_streams(sorted(paths), timeout=30)
        for s in streams:
            path = paths[s.id]
            zl.assert_status(s.response(), 200, path)
            if path.startswith("/api/item/"):
                zl.assert_eq(bytes(s.data), ("backend a " + path).encode(), path)
            else:
                zl.assert_eq(bytes(s.data), zl.pattern_bytes(int(path.split("/")[2])), path)
        c.close()
    zl.assert_eq(len(a.records()), 200, "requests the backend saw")


if __name__ == "__main__":
    zl.main(globals())
