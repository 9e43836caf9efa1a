#!/usr/bin/python3
"""Allocation failures never crash the daemon (issue 6). zaslon runs with the
tests/tools/failalloc.c shim preloaded; once it listens, the test creates the arm file
and every Nth malloc/calloc/realloc/memalign (N = 7, 50, 200, 1000, 5000) returns NULL
under a mixed load: cover GETs (h2load over TLS h2), proxied GETs and POSTs over h2c,
TLS HTTP/1.1, cleartext HTTP/1.1 and python-h2, and sealed requests from
`zaslonctl request` (TLS h2, h2c, HTTP/1.1) with a key configured. Fails when:
  - the process dies (or is not alive after each phase);
  - a request neither completes nor fails: every one must end with a status (any), a
    reset or a closed connection, well before the client's own timeout;
  - the shim did not actually fail allocations (its report says failed=0);
  - once the arm file is gone, any request fails, from the very first one on (every
    kind must succeed, sealed answers must open to the backend's bytes): nothing a
    failure left behind, such as a pooled upstream connection mid-exchange, may cost a
    later request;
  - SIGTERM does not end it with exit status 0.

The shim cannot go into a sanitizer build (ASan has its own allocator and refuses a
preloaded one), so this test always runs a release-build zaslon: under the ASan tree
(ZASLON_SANITIZED=1, or a ZASLON_BIN linked with libasan) it uses the sibling release
build dir (../build next to ZASLON_BUILD) and fails, never skips, when that is absent.
To debug a crash, ZL_DEBUG_WRAP names a script run in zaslon's place with the same
arguments and environment (e.g. one that runs zaslon under gdb, preloading the shim only
into zaslon)."""

import json
import os
import subprocess
import time

import zl

EVERY = (7, 50, 200, 1000, 5000)
SEALED_PATH = "/s/"
FRONT = "front.example"
HIDDEN = "edge.hidden.example"
CLIENT_TIMEOUT = 20      # each client's own limit; a request still open then is a hang
                         # (zaslon's deadlines below are all 5 s or less)


def release_binaries():
    """(zaslon, shim) of a release build: ZASLON_BUILD's own, or its sibling build/
    when ZASLON_BUILD is a sanitizer build."""
    sanitized = os.environ.get("ZASLON_SANITIZED") == "1"
    if not sanitized:
        try:
            out = subprocess.run(["ldd", zl.ZASLON_BIN], capture_output=True, text=True,
                                 timeout=10).stdout
            sanitized = "libasan" in out
        except (OSError, subprocess.SubprocessError):
            pass
    if sanitized:
        build = os.path.join(os.path.dirname(os.path.abspath(zl.BUILD)), "build")
        zaslon = os.path.join(build, "gateway", "zaslon")
    else:
        build, zaslon = zl.BUILD, zl.ZASLON_BIN
    shim = os.path.join(build, "tests", "tools", "zl_failalloc.so")
    for p in (zaslon, shim):
        if not os.path.isfile(p):
            raise AssertionError(
                "%s is missing: test_allocfail needs a release build (scripts/build "
                "release)%s; the failalloc shim cannot be preloaded into a sanitizer "
                "build" % (p, " next to the ASan tree" if sanitized else ""))
    return zaslon, shim


def ctl(*args, timeout=CLIENT_TIMEOUT + 10):
    return subprocess.run((zl.ZASLONCTL_BIN,) + args, capture_output=True, text=True,
                          errors="replace", timeout=timeout, stdin=subprocess.DEVNULL)


class Setup:
    def __init__(self, env, every):
        self.env = env
        certs = env.certs(names=(FRONT, "localhost"), ips=("127.0.0.1",))
        self.ca = certs.ca
        site = zl.CoverSite(env)
        keydir = env.path("keys")
        os.mkdir(keydir, 0o700)
        r = ctl("keygen", "--id", "1", "--out", os.path.join(keydir, "k1.key"))
        assert r.returncode == 0, "keygen: %s" % r.stderr
        self.keys_file = env.path("ohttp-keys")
        r = ctl("keys", "export", "--dir", keydir, "--out", self.keys_file)
        assert r.returncode == 0, "keys export: %s" % r.stderr
        self.a = env.backend("a")
        # Short deadlines: whatever an allocation failure leaves waiting must be ended
        # by one of them well before a client's own CLIENT_TIMEOUT.
        backend = zl.backend_block(self.a, connect_timeout="2s", first_byte_timeout="3s",
                                   idle_timeout="5s")
        limits = {"tls_handshake_timeout": "3s", "header_timeout": "3s",
                  "idle_timeout": "5s", "body_timeout": "3s", "write_timeout": "3s"}
        cfg = zl.edge_config(env, cover=site.root, backends={"a": backend},
                             routes=[zl.route("a", host="api.example"),
                                     zl.route("a", path="/api/")],
                             sealed={"path": SEALED_PATH, "keys": keydir}, limits=limits,
                             log_level="info", access_log=True)
        self.arm = env.path("arm")
        self.report = env.path("report")
        zaslon, shim = release_binaries()
        saved = dict(os.environ)
        saved_bin = zl.ZASLON_BIN
        os.environ.update(LD_PRELOAD=shim, ZL_FAILALLOC_EVERY=str(every),
                          ZL_FAILALLOC_ARM=self.arm, ZL_FAILALLOC_REPORT=self.report)
        zl.ZASLON_BIN = os.environ.get("ZL_DEBUG_WRAP") or zaslon
        try:
            self.z = env.zaslon(cfg, wait=False)  # only this child inherits LD_PRELOAD
        finally:
            os.environ.clear()
            os.environ.update(saved)
            zl.ZASLON_BIN = saved_bin
        self.z.wait_ready()

    def alive(self, what):
        assert self.z.running(), "zaslon died (%s): exit %s" % (what, self.z.proc.returncode)

    # --- the mixed load; returns {kind: [outcome, ...]} -------------------------------

    def h2load(self, url, n):
        p, res = zl.h2load(url, n=n, c=4, m=10, timeout=CLIENT_TIMEOUT + 40,
                           args=["--connection-inactivity-timeout=%d" % CLIENT_TIMEOUT])
        assert res, "h2load printed no summary (exit %d): %s" % (p.returncode,
                                                                   p.stderr[-500:])
        assert res["timeout"] == 0, "h2load: %d requests timed out: %s" % (res["timeout"], res)
        # requests of a connection that failed are counted failed, never started
        zl.assert_eq(res["succeeded"] + res["failed"], n, "h2load outcomes (%s)" % res)
        return res

    def curl(self, proto, path, post=False):
        args = ["--data-binary", "x" * 3000] if post else []
        r = self.z.curl(proto, path,
                        args=args, timeout=CLIENT_TIMEOUT)
        assert r.rc != 28, "curl %s %s hung until its timeout: %r" % (proto, path, r)
        return r

    def h2_posts(self, tls, n=10):
        """n POSTs on one python-h2 connection: (statuses, resets, connection lost)."""
        out = []
        try:
            c = self.z.h2(tls=tls, server_hostname="localhost", timeout=CLIENT_TIMEOUT)
        except (OSError, ConnectionError) as e:
            return ["connect: %s" % e.__class__.__name__]
        try:
            sids = [c.request("/api/echo-%d" % i, method="POST", body=b"y" * 5000,
                              headers=[("content-length", "5000")]) for i in range(n)]
            try:
                for s in c.wait_streams(sids, timeout=CLIENT_TIMEOUT):
                    out.append(s.status if s.reset is None else "reset %d" % s.reset)
            except ConnectionError:
                out.append("connection closed")
        except TimeoutError as e:  # an OSError too, but a hang, not a failure
            raise AssertionError("python-h2 POSTs hung: %s" % e)
        except OSError as e:
            out.append("send: %s" % e.__class__.__name__)
        finally:
            c.close()
        return out

    def sealed(self, transport, n=0):
        port = self.z.tls_port if transport == "h2" else self.z.plain_port
        scheme = "https" if transport == "h2" else "http"
        args = ["request", "--relay", "%s://%s:%d%s" % (scheme, FRONT, port, SEALED_PATH),
                "--connect-to", "127.0.0.1:%d" % port, "--host", HIDDEN,
                "--keys", self.keys_file, "--json", "--timeout", str(CLIENT_TIMEOUT)]
        if transport == "h2":
            args += ["--cacert", self.ca]
        elif transport == "h2c":
            args.append("--h2c")
        args += ["--data", "sealed-body-%d" % n, "POST", "https://api.example/sealed/%d" % n]
        t0 = time.monotonic()
        r = ctl(*args)
        dt = time.monotonic() - t0
        assert dt < CLIENT_TIMEOUT, "zaslonctl over %s took %.1fs" % (transport, dt)
        if r.returncode != 0:
            return "exit %d" % r.returncode
        return json.loads(r.stdout)

    def mixed(self, rounds=1):
        out = {}
        for i in range(rounds):
            out.setdefault("h2load cover", []).append(
                self.h2load("https://127.0.0.1:%d/index.html" % self.z.tls_port, 1000))
            self.alive("h2load cover")
            out.setdefault("h2load proxied h2c", []).append(
                self.h2load("http://127.0.0.1:%d/api/load" % self.z.plain_port, 300))
            self.alive("h2load proxied")
            for proto in zl.PROTOS:
                for post in (False, True):
                    r = self.curl(proto, "/api/c-%s-%d" % (proto, post), post)
                    out.setdefault("curl %s %s" % (proto, "POST" if post else "GET"),
                                   []).append(r.status or "rc %d" % r.rc)
            self.alive("curl")
            for tls in (True, False):
                out.setdefault("python-h2 POST tls=%s" % tls, []).extend(self.h2_posts(tls))
            self.alive("python-h2")
            for t in ("h2", "h2c", "h1c"):
                r = self.sealed(t, i)
                out.setdefault("sealed %s" % t, []).append(
                    r if isinstance(r, str) else r["status"])
            self.alive("sealed")
        return out


def check_healthy(s):
    """Everything succeeds: the failing has stopped."""
    for url, n in (("https://127.0.0.1:%d/index.html" % s.z.tls_port, 500),
                   ("http://127.0.0.1:%d/api/ok" % s.z.plain_port, 300)):
        res = s.h2load(url, n)
        zl.assert_eq((res["succeeded"], res["2xx"]), (n, n), url + " after disarming")
    for proto in zl.PROTOS:
        for post in (False, True):
            path = "/api/after-%s-%d" % (proto, post)
            r = s.curl(proto, path, post)
            zl.assert_status(r, 200, "curl %s %s after disarming" % (proto, path))
            zl.assert_eq(r.body, ("backend a " + path).encode(), proto + " body")
    for tls in (True, False):
        zl.assert_eq(s.h2_posts(tls, 5), [200] * 5, "python-h2 POSTs after disarming")
    for t in ("h2", "h2c", "h1c"):
        r = s.sealed(t, 99)
        assert not isinstance(r, str), "sealed over %s after disarming: %s" % (t, r)
        zl.assert_eq((r["status"], r.get("body")), (200, "backend a /sealed/99"),
                     "sealed over %s after disarming" % t)


def run(env, every):
    s = Setup(env, every)
    check_healthy(s)  # the shim is loaded but not armed: nothing fails yet
    with open(s.arm, "w"):
        pass
    t0 = time.monotonic()
    out = s.mixed(rounds=3)
    os.unlink(s.arm)
    print("  every %d (%.1fs armed): %s" % (every, time.monotonic() - t0, json.dumps(
        {k: (v if not k.startswith("h2load") else
             [{x: r[x] for x in ("succeeded", "failed", "errored")} for r in v])
         for k, v in out.items()}, default=str)), flush=True)
    s.alive("after the armed phase")
    # the shim notices the arm file is gone at its next allocation and writes its report
    zl.wait_until(lambda: s.z.curl("h1c", "/index.html").status and
                  os.path.exists(s.report), 10, what="the shim's report")
    with open(s.report) as f:
        report = dict(x.split("=") for x in f.read().split())
    print("  shim: %s" % report)
    assert int(report["failed"]) > 0, "no allocation was failed: %s" % report
    # No settling round: whatever a failure left behind (a pooled upstream connection
    # mid-exchange, a stalled read) must already be gone, so the very first requests
    # after disarming all succeed.
    check_healthy(s)
    s.alive("after the healthy phase")
    zl.assert_eq(s.z.stop(timeout=20), 0, "exit status on SIGTERM")


def test_every_7(env):
    run(env, 7)


def test_every_50(env):
    run(env, 50)


def test_every_200(env):
    run(env, 200)


def test_every_1000(env):
    run(env, 1000)


def test_every_5000(env):
    run(env, 5000)


zl.main(globals())
