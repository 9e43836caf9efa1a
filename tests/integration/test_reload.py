#!/usr/bin/python3
"""SIGHUP reload (issue 6). zaslon reloads its config while clients keep it busy: TLS h2
and h2c on long-lived connections (a new connection after each GOAWAY, as RFC 9113
asks), TLS HTTP/1.1 and cleartext HTTP/1.1 with a new connection per request (so the
listening sockets' accept queues are exercised on every reload), cleartext HTTP/1.1
keep-alive, and sealed requests from `zaslonctl request`. Fails when:
  - any request fails, any connection is refused or reset, or any stream is refused
    (an HTTP/1.1 request whose connection a drain closed before any byte of an answer
    is resent, as RFC 9112 9.3.1 allows, and counted apart: at most one per reload),
    across reloads that switch a route to another backend, change a limit
    (max_concurrent_streams, seen in SETTINGS), the worker count, the certificate
    (new connections see the new serial), and the keys (a new key id is served at the
    key path and accepted; a key removed from the keys directory is refused);
  - a bad new config (YAML syntax error, unknown adapter, missing certificate, a port
    in use, a changed error_log) is not refused with its reason in the log, or the old
    config stops serving;
  - a sealed request replayed after a reload reaches the backend a second time (the
    replay cache is kept, also with a new replay_window; a new replay_cache size is
    refused);
  - SIGTERM right after a reload does not drain both generations (a slow request on
    the old one completes with 200, exit 0);
  - after 20 reloads (bursts of 5 within a second) the process has more descriptors or
    threads than before, or its RSS grew by more than 8 MiB (48 under ASan);
  - zaslon does not exit 0 on SIGTERM at the end (under ASan: a leak fails the exit)."""

import copy
import email.utils
import http.server
import os
import re
import signal
import socket
import ssl
import string
import struct
import subprocess
import threading
import time

import zl

SEALED_PATH = "/s/"
KEYS_PATH = "/.well-known/ohttp-gateway"
HIDDEN = "edge.hidden.example"
SETTLE = 0.7  # seconds of load after each reload, across the old generation's drain


# -------------------------------------------------------------------------- helpers

def ctl(*args, timeout=30):
    return subprocess.run((zl.ZASLONCTL_BIN,) + args, capture_output=True, text=True,
                          errors="replace", timeout=timeout, stdin=subprocess.DEVNULL)


def keygen(path, kid):
    r = ctl("keygen", "--id", str(kid), "--out", path)
    assert r.returncode == 0, "keygen: %s" % r.stderr
    return bytes.fromhex(r.stdout.strip())


def keys_file(env, name, cfg):
    p = env.path(name)
    with open(p, "wb") as f:
        f.write(struct.pack(">H", len(cfg)) + cfg)
    return p


def key_ids(blob):
    """Key ids in an application/ohttp-keys list."""
    ids, i = [], 0
    while i + 2 <= len(blob):
        (n,) = struct.unpack(">H", blob[i:i + 2])
        ids.append(blob[i + 2])
        i += 2 + n
    return sorted(ids)


def issue_leaf(env, serial):
    """Another leaf for localhost / 127.0.0.1 from the Env's test CA, with |serial|."""
    c = env.certs()
    d = os.path.dirname(c.cert)
    stem = "leaf%d" % serial
    run = lambda *a: subprocess.run(("openssl",) + a, cwd=d, check=True, timeout=30,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", stem + ".key", "-out", stem + ".csr", "-subj", "/CN=localhost")
    run("x509", "-req", "-in", stem + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-set_serial", str(serial), "-out", stem + ".pem", "-days", "2",
        "-extfile", "leaf.ext")
    os.chmod(os.path.join(d, stem + ".key"), 0o600)
    return os.path.join(d, stem + ".pem"), os.path.join(d, stem + ".key")


def peer_serial(z):
    ctx = ssl.create_default_context(cafile=z.env.certs().ca)
    with socket.create_connection(("127.0.0.1", z.tls_port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            return int(t.getpeercert()["serialNumber"], 16)


def write_config(z, cfg):
    text = string.Template(zl.to_yaml(cfg) + "\n").substitute(
        rundir=z.rundir, dir=z.env.dir)
    tmp = z.config_path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, z.config_path)


def log_lines(z, pattern):
    try:
        with open(os.path.join(z.rundir, "error.log"), encoding="utf-8",
                  errors="replace") as f:
            return [ln for ln in f if re.search(pattern, ln)]
    except FileNotFoundError:
        return []


def reload(z, cfg=None, refused=False, timeout=15, settle=0.0):
    """Writes |cfg| (if given), sends SIGHUP and waits for the log line that says the
    reload happened (or, with |refused|, was refused). Returns that line."""
    if cfg is not None:
        write_config(z, cfg)
    pat = r"reload refused" if refused else r"reload: generation \d+ serving"
    other = r"reload: generation \d+ serving" if refused else r"reload refused"
    n, n_other = len(log_lines(z, pat)), len(log_lines(z, other))
    z.send_signal(signal.SIGHUP)
    zl.wait_until(lambda: len(log_lines(z, pat)) > n or len(log_lines(z, other)) > n_other,
                  timeout, what="the reload's log line")
    got = log_lines(z, pat)
    assert len(got) > n, "reload %s; log: %s" % (
        "accepted" if refused else "refused", log_lines(z, other)[-1].strip())
    time.sleep(settle)  # let the load run across the old generation's drain
    return got[-1]


def drained(z):
    return len(log_lines(z, r"generation \d+: drained"))


def proc_counts(pid):
    return (len(os.listdir("/proc/%d/fd" % pid)), len(os.listdir("/proc/%d/task" % pid)))


# ----------------------------------------------------------------------- the load

class Load:
    """Client threads that keep zaslon busy and count every outcome."""

    def __init__(self, z, path):
        self.z, self.path = z, path
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok = {}          # kind -> successful requests
        self.failures = []    # (kind, what)
        self.bodies = {}      # kind -> last body
        self.goaways = 0      # h2 connections the server closed with GOAWAY
        self.retried = 0      # keep-alive requests resent (RFC 9112 9.3.1), see below
        self.h2_retried = 0   # h2 streams above a GOAWAY's last stream id, resent
        self.fresh_closed = 0  # new TLS HTTP/1.1 connections closed unanswered, see _h1
        self.threads = []

    def _ok(self, kind, body=None):
        with self.lock:
            self.ok[kind] = self.ok.get(kind, 0) + 1
            if body is not None:
                self.bodies[kind] = body

    def _fail(self, kind, what):
        with self.lock:
            self.failures.append((kind, what))

    def start(self, sealed_args=None):
        for kind, fn in (("h2", lambda: self._h2("h2", True)),
                         ("h2c", lambda: self._h2("h2c", False)),
                         ("h2-b", lambda: self._h2("h2-b", True)),
                         ("h1", lambda: self._h1("h1", True)),
                         ("h1c", lambda: self._h1("h1c", False)),
                         ("h1-keepalive", lambda: self._h1_keepalive("h1-keepalive"))):
            self._spawn(kind, fn)
        if sealed_args:
            self._spawn("sealed", lambda: self._sealed(sealed_args))

    def _spawn(self, kind, fn):
        def run():
            while not self.stop.is_set():
                try:
                    fn()
                except Exception as e:  # every exception is a failure of that client
                    self._fail(kind, "%s: %s" % (type(e).__name__, e))
                    time.sleep(0.05)
        t = threading.Thread(target=run, daemon=True, name=kind)
        self.threads.append(t)
        t.start()

    def _h2(self, kind, tls):
        c = self.z.h2(tls=tls, timeout=10)
        try:
            # one connection until the server's GOAWAY; then a new one (RFC 9113 6.8)
            while not self.stop.is_set() and c.goaway is None and not c.eof:
                sid = c.request(self.path)
                try:
                    s = c.wait_streams([sid], timeout=10)[0]
                except ConnectionError:
                    # A stream above the GOAWAY's last stream id was not processed and
                    # may be retried on a new connection (RFC 9113 6.8), as browsers
                    # and curl do: counted apart, like HTTP/1.1 resends.
                    if c.goaway is None or sid <= c.goaway[1]:
                        raise
                    with self.lock:
                        self.h2_retried += 1
                    break
                if s.reset is not None:
                    self._fail(kind, "stream %d reset with %d (goaway %s)"
                               % (sid, s.reset, c.goaway))
                elif s.status != 200:
                    self._fail(kind, "status %s" % s.status)
                else:
                    self._ok(kind, bytes(s.data))
        finally:
            if c.goaway is not None:
                with self.lock:
                    self.goaways += 1
            c.close()

    def _h1(self, kind, tls):
        """A new connection per request. Over TLS, a connection the old generation
        accepted and finished the handshake on just before its drain is closed if the
        request has not arrived yet (transport's tp_h1_drain closes an HTTP/1.1
        connection with no request in progress): no byte of an answer came, so the
        GET is resent (RFC 9112 9.3.1) and counted apart. Anything else fails."""
        c = self.z.h1(tls=tls, timeout=10)
        try:
            try:
                c.send(zl.H1Conn.build("GET", self.path))
                c._fill()
            except (EOFError, ConnectionResetError, BrokenPipeError):
                if not tls:
                    raise
                with self.lock:
                    self.fresh_closed += 1
                return
            r = c.read_response()
            if r.status != 200:
                self._fail(kind, "status %s" % r.status)
            else:
                self._ok(kind, r.body)
        finally:
            c.close()

    def _h1_keepalive(self, kind):
        """Cleartext HTTP/1.1, one connection for many requests. A drain closes idle
        keep-alive connections, and a request sent at that moment meets the close: a
        client may then resend it on a new connection, if no byte of an answer came
        (RFC 9112 9.3.1; curl, browsers and proxies do). Those are counted apart;
        anything else is a failure."""
        c = self.z.h1(timeout=10)
        used = 0
        try:
            while not self.stop.is_set():
                try:
                    c.send(zl.H1Conn.build("GET", self.path))
                    if not c.buf:
                        c._fill()
                except (EOFError, ConnectionResetError, BrokenPipeError):
                    if used == 0:
                        raise
                    with self.lock:
                        self.retried += 1
                    return
                r = c.read_response()
                used += 1
                if r.status != 200:
                    self._fail(kind, "status %s" % r.status)
                else:
                    self._ok(kind, r.body)
                if (r.header("connection") or "").lower() == "close":
                    return
        finally:
            c.close()

    def _sealed(self, args):
        r = ctl(*args)
        if r.returncode != 0:
            self._fail("sealed", "zaslonctl exit %d: %s" % (r.returncode, r.stderr.strip()))
        elif '"status":200' not in r.stdout.replace(" ", ""):
            self._fail("sealed", "opened answer %s" % r.stdout[:200])
        else:
            self._ok("sealed")

    def total(self):
        with self.lock:
            return sum(self.ok.values())

    def wait_body(self, kinds, want, timeout=10):
        """Waits until the last body of every kind in |kinds| is |want|."""
        def check():
            with self.lock:
                return all(self.bodies.get(k) == want for k in kinds)
        zl.wait_until(check, timeout, what="every client to get %r" % want)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)
            assert not t.is_alive(), "load thread %s did not stop" % t.name


def sealed_setup(env):
    """A 0700 keys dir with keys 1 and 2; key files for each id alone."""
    keydir = env.path("keys")
    os.mkdir(keydir, 0o700)
    cfgs = {kid: keygen(os.path.join(keydir, "k%d.key" % kid), kid) for kid in (1, 2)}
    return keydir, cfgs


def sealed_args(z, keyfile, url="https://id.example/whoami", extra=()):
    return ["request", "--relay", "https://localhost:%d%s" % (z.tls_port, SEALED_PATH),
            "--connect-to", "127.0.0.1:%d" % z.tls_port, "--cacert", z.env.certs().ca,
            "--host", HIDDEN, "--keys", keyfile, "--json", "--timeout", "15"] + \
        list(extra) + ["GET", url]


def served_key_ids(z):
    c = z.h2()
    try:
        r = c.get(KEYS_PATH, timeout=10)
    finally:
        c.close()
    zl.assert_status(r, 200, "key path")
    return key_ids(r.body)


# ---------------------------------------------------------------------------- tests

def test_reload_under_load(env):
    a, b = env.backend("a"), env.backend("b")
    keydir, kcfg = sealed_setup(env)
    routes = [zl.route("a", host="id.example"), zl.route("a", path="/api/")]
    cfg = zl.edge_config(env, backends={"a": a, "b": b}, routes=routes, workers=2,
                         sealed={"path": SEALED_PATH, "keys": keydir},
                         limits={"drain_timeout": "10s"}, log_level="info")
    z = env.zaslon(cfg)
    key2 = keys_file(env, "keys-2", kcfg[2])
    first_serial = peer_serial(z)
    load = Load(z, "/api/x")
    load.start(sealed_args(z, key2))
    plain = ("h2", "h2c", "h2-b", "h1", "h1c", "h1-keepalive")
    zl.wait_until(lambda: len(load.ok) == 7 and min(load.ok.values()) >= 2, 30,
                  what="every client to succeed twice")
    load.wait_body(("h2", "h2c", "h1", "h1c"), b"backend a /api/x")
    t0 = time.monotonic()

    # 1. a route switches to another backend
    cfg1 = copy.deepcopy(cfg)
    cfg1["routes"] = [zl.route("a", host="id.example"), zl.route("b", path="/api/")]
    reload(z, cfg1, settle=SETTLE)
    load.wait_body(("h2", "h2c", "h1", "h1c"), b"backend b /api/x")
    n_b = len(b.records_for("/api/x"))
    assert n_b > 0, "backend b got nothing after the route moved"

    # 2. a limit: max_concurrent_streams, in a new connection's SETTINGS
    cfg2 = copy.deepcopy(cfg1)
    cfg2["limits"]["max_concurrent_streams"] = 37
    reload(z, cfg2, settle=SETTLE)

    def settings_mcs():
        c = z.h2()
        try:
            c.pump(1.0)
            return c.conn.remote_settings.max_concurrent_streams
        finally:
            c.close()
    zl.wait_until(lambda: settings_mcs() == 37, 10, what="SETTINGS_MAX_CONCURRENT_STREAMS 37")

    # 3. the worker count, up and down
    cfg3 = copy.deepcopy(cfg2)
    cfg3["workers"] = 3
    line = reload(z, cfg3, settle=SETTLE)
    assert "with 3 workers" in line, line
    cfg3["workers"] = 1
    line = reload(z, cfg3, settle=SETTLE)
    assert "with 1 workers" in line, line

    # 4. the certificate: new connections see the new serial
    cert, key = issue_leaf(env, 0x5A5A01)
    cfg4 = copy.deepcopy(cfg3)
    cfg4["workers"] = 2
    cfg4["listen"][0]["tls"] = {"certificate": cert, "key": key}
    reload(z, cfg4, settle=SETTLE)
    zl.wait_until(lambda: peer_serial(z) == 0x5A5A01, 10, what="the new certificate")
    assert first_serial != 0x5A5A01
    for _ in range(5):
        zl.assert_eq(peer_serial(z), 0x5A5A01, "serial on a new connection")

    # 5. keys: key 3 added (served and accepted), then key 1 removed (refused)
    kcfg[3] = keygen(os.path.join(keydir, "k3.key"), 3)
    reload(z)
    zl.wait_until(lambda: served_key_ids(z) == [1, 2, 3], 10, what="key ids 1, 2, 3 served")
    r = ctl(*sealed_args(z, keys_file(env, "keys-3", kcfg[3])))
    assert r.returncode == 0 and '"status":200' in r.stdout.replace(" ", ""), \
        "sealed to the new key 3: %s %s" % (r.stdout, r.stderr)
    key1 = keys_file(env, "keys-1", kcfg[1])
    r = ctl(*sealed_args(z, key1))
    zl.assert_eq(r.returncode, 0, "sealed to key 1 before its removal: " + r.stderr)
    os.unlink(os.path.join(keydir, "k1.key"))
    reload(z)
    zl.wait_until(lambda: served_key_ids(z) == [2, 3], 10, what="key ids 2, 3 served")
    r = ctl(*sealed_args(z, key1))
    assert r.returncode == 1 and "refused" in r.stderr, \
        "sealed to the removed key 1: exit %d %s" % (r.returncode, r.stderr)

    # 6. a few more in a row, unchanged config, while the load goes on
    for _ in range(3):
        reload(z, settle=SETTLE)
    dt = time.monotonic() - t0
    load.finish()
    total = load.total()
    print("  %d requests in %.1fs over 10 reloads: %s; %d h2 connections ended by "
          "GOAWAY; resent: %d idle keep-alive, %d new TLS HTTP/1.1, %d h2 streams above "
          "a GOAWAY's last stream id; failures %d"
          % (total, dt, dict(sorted(load.ok.items())), load.goaways, load.retried,
             load.fresh_closed, load.h2_retried, len(load.failures)))
    assert not load.failures, "failed requests/connections (%d): %s" % (
        len(load.failures), load.failures[:10])
    assert load.goaways >= 3, "only %d h2 connections saw a GOAWAY" % load.goaways
    # at most one per reload for the one keep-alive client (each drain closes it once)
    assert load.retried <= 10, "%d keep-alive requests resent" % load.retried
    assert load.fresh_closed <= 10, "%d new TLS connections closed unanswered" % \
        load.fresh_closed
    assert load.h2_retried <= 10, "%d unprocessed h2 streams resent" % load.h2_retried
    for kind in plain + ("sealed",):
        assert load.ok.get(kind, 0) >= 5, "client %s made only %s requests" % (
            kind, load.ok.get(kind))
    zl.wait_until(lambda: drained(z) >= 10, 15, what="the old generations to drain")
    zl.assert_eq(z.stop(timeout=15), 0, "exit code after the reloads")


def test_bad_config_keeps_serving(env):
    a, b = env.backend("a"), env.backend("b")
    cfg = zl.edge_config(env, backends={"a": a, "b": b}, routes=[zl.route("a", path="/api/")],
                         log_level="info")
    z = env.zaslon(cfg)
    serial = peer_serial(z)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    bad_port = busy.getsockname()[1]

    def with_(**changes):
        c = copy.deepcopy(cfg)
        c["routes"] = [zl.route("b", path="/api/")]  # would move /api/ if it loaded
        c.update(changes)
        return c
    missing = copy.deepcopy(cfg["listen"])
    missing[0]["tls"] = {"certificate": env.path("nope.pem"), "key": env.path("nope.key")}
    taken = copy.deepcopy(cfg["listen"]) + [{"address": "127.0.0.1:%d" % bad_port}]
    cases = [
        ("syntax", "listen: [\n  - {address: \"127.0.0.1:1\"\nroutes: ]\n",
         r"zaslon\.yaml:\d+: "),
        ("adapter", with_(backends={"a": {"adapter": "carrier-pigeon"},
                                    "b": zl.backend_block(b)}),
         r"zaslon\.yaml:\d+: unknown adapter \"carrier-pigeon\""),
        ("certificate", with_(listen=missing), r"zaslon\.yaml:\d+: .*nope"),
        ("port in use", with_(listen=taken),
         r"zaslon\.yaml:\d+: cannot listen on 127\.0\.0\.1:%d" % bad_port),
        ("error_log", with_(error_log={"path": "$rundir/other.log", "level": "info"}),
         r"error_log changed"),
    ]
    for name, c, want in cases:
        if isinstance(c, str):
            with open(z.config_path, "w") as f:
                f.write(c)
        else:
            write_config(z, c)
        line = reload(z, refused=True)
        assert re.search(want, line), "%s: refusal says %r" % (name, line)
        assert "generation 1 keeps serving" in line, line
        for proto in zl.PROTOS:
            r = z.curl(proto, "/api/%s" % proto)
            zl.assert_status(r, 200, "%s after the refused %s config" % (proto, name))
            zl.assert_eq(r.body, b"backend a /api/" + proto.encode(),
                         "%s still routed by the old config (%s)" % (proto, name))
        zl.assert_eq(peer_serial(z), serial, "certificate after the refused %s config" % name)
    busy.close()
    assert not os.path.exists(os.path.join(z.rundir, "other.log"))
    # and a good config still loads after all that
    write_config(z, with_())
    reload(z)
    zl.wait_until(lambda: z.curl("h1c", "/api/x").body == b"backend b /api/x", 5,
                  what="the good config to apply")
    zl.assert_eq(z.stop(timeout=15), 0, "exit code")


class Capture(http.server.BaseHTTPRequestHandler):
    """A stand-in relay that keeps the sealed bytes zaslonctl sends it."""
    bodies = []

    def do_POST(self):
        n = int(self.headers.get("content-length", "0"))
        Capture.bodies.append(self.rfile.read(n))
        self.send_response(502)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


def capture_sealed(keyfile, url, headers):
    srv = http.server.HTTPServer(("127.0.0.1", 0), Capture)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        Capture.bodies = []
        args = ["request", "--relay", "http://127.0.0.1:%d%s" % (srv.server_port, SEALED_PATH),
                "--keys", keyfile, "--timeout", "10"]
        for h in headers:
            args += ["-H", h]
        ctl(*(args + ["POST", url]), timeout=20)
    finally:
        srv.shutdown()
        srv.server_close()
    assert Capture.bodies, "zaslonctl sent nothing to the capture relay"
    return Capture.bodies[0]


def post_sealed(z, body):
    c = z.h2()
    try:
        sid = c.request(SEALED_PATH, method="POST", authority=HIDDEN, body=body,
                        headers=[("content-type", "message/ohttp-req"),
                                 ("content-length", str(len(body)))])
        return c.wait_streams([sid], timeout=15)[0].response()
    finally:
        c.close()


def test_replay_across_reload(env):
    v = env.backend("voting")
    keydir, kcfg = sealed_setup(env)
    cfg = zl.edge_config(env, backends={"voting": zl.backend_block(v, replay="strict")},
                         routes=[zl.route("voting", host="vote.example")],
                         sealed={"path": SEALED_PATH, "keys": keydir,
                                 "replay_window": "60s"}, log_level="info")
    z = env.zaslon(cfg)
    kf = keys_file(env, "keys-1", kcfg[1])
    date = "date: " + email.utils.formatdate(time.time(), usegmt=True)
    ballots = [capture_sealed(kf, "https://vote.example/ballot", [date, "x-n: %d" % i])
               for i in range(2)]
    for i, blob in enumerate(ballots):
        r = post_sealed(z, blob)
        zl.assert_status(r, 200, "ballot %d, first copy" % i)
        zl.assert_eq(r.header("content-type"), "message/ohttp-res", "sealed answer")
    zl.assert_eq(len(v.records_for("/ballot")), 2, "ballots delivered")
    # same replay settings: the cache is handed over, the copy is caught
    line = reload(z, cfg)
    assert "replay cache kept" in line, line
    r = post_sealed(z, ballots[0])
    zl.assert_status(r, 200, "replayed ballot 0 (a sealed refusal)")
    zl.assert_eq(len(v.records_for("/ballot")), 2, "ballots after a replay across a reload")
    # a new window: still the same cache
    cfg2 = copy.deepcopy(cfg)
    cfg2["sealed"]["replay_window"] = "90s"
    line = reload(z, cfg2)
    assert "replay cache kept" in line, line
    r = post_sealed(z, ballots[1])
    zl.assert_status(r, 200, "replayed ballot 1 (a sealed refusal)")
    zl.assert_eq(len(v.records_for("/ballot")), 2, "ballots after a replay, new window")
    # a new size: refused (an empty cache would let copies through), the old serves
    cfg3 = copy.deepcopy(cfg2)
    cfg3["sealed"]["replay_cache"] = 200000
    line = reload(z, cfg3, refused=True)
    assert "sealed.replay_cache changed" in line, line
    r = post_sealed(z, ballots[0])
    zl.assert_status(r, 200, "replayed ballot 0 after the refused size change")
    zl.assert_eq(len(v.records_for("/ballot")), 2, "ballots after the refused size change")
    zl.assert_eq(z.stop(timeout=15), 0, "exit code")


def test_sigterm_during_reload(env):
    """A slow request on generation 1, SIGHUP, then SIGTERM at once: both generations
    drain, the request completes with 200 and zaslon exits 0."""
    a = env.backend("a")
    cfg = zl.edge_config(env, backends={"a": a}, routes=[zl.route("a", path="/slow/")],
                         limits={"drain_timeout": "8s"}, log_level="info")
    z = env.zaslon(cfg)
    c = z.h2(timeout=15)
    sid = c.request("/slow/2000")
    a.wait_record("/slow/2000")
    reload(z)
    t_sig = time.monotonic()
    z.send_signal(signal.SIGTERM)
    s = c.wait_streams([sid], timeout=10)[0]
    zl.assert_status(s.response(), 200, "request on the old generation")
    zl.assert_eq(bytes(s.data), b"slow 2000", "its body")
    rc = z.wait(8)
    zl.assert_eq(rc, 0, "exit code after SIGTERM during a reload")
    dt = time.monotonic() - t_sig
    assert dt < 6, "exit %.1fs after SIGTERM" % dt
    c.close()


def test_many_reloads_no_leak(env):
    a = env.backend("a")
    keydir, _ = sealed_setup(env)
    cfg = zl.edge_config(env, backends={"a": a}, routes=[zl.route("a", path="/api/")],
                         workers=2, sealed={"path": SEALED_PATH, "keys": keydir},
                         log_level="info")
    z = env.zaslon(cfg)
    for proto in zl.PROTOS:
        zl.assert_status(z.curl(proto, "/api/warm"), 200, proto)
    reload(z)  # the first reload's allocations (arenas, caches) are not a leak
    zl.wait_until(lambda: drained(z) >= 1, 10, what="generation 1 to drain")
    base_fd, base_tasks = proc_counts(z.pid)
    base_rss = z.rss_kib()
    done = 1
    for burst in range(4):
        n = len(log_lines(z, r"reload: generation \d+ serving"))
        for _ in range(5):  # five within a second: each a new generation
            z.send_signal(signal.SIGHUP)
            time.sleep(0.15)
        zl.wait_until(lambda: len(log_lines(z, r"reload: generation \d+ serving")) >= n + 5,
                      10, what="five reloads")
        done += 5
        for proto in zl.PROTOS:  # the cover: no upstream connection stays open
            r = z.curl(proto, "/?%d" % burst)
            zl.assert_status(r, 200, "%s after burst %d" % (proto, burst))
    zl.wait_until(lambda: drained(z) >= done, 15, what="every old generation to drain")
    fd, tasks = zl.wait_until(
        lambda: (lambda c: c if c == (base_fd, base_tasks) else None)(proc_counts(z.pid)),
        5, what="descriptors and threads back to %d / %d (now %s)"
        % (base_fd, base_tasks, proc_counts(z.pid)))
    rss = z.rss_kib()
    print("  after 21 reloads: %d fds, %d threads (before: %d, %d); RSS %d KiB (before %d)"
          % (fd, tasks, base_fd, base_tasks, rss, base_rss))
    # ASan's quarantine (16 MiB) and shadow memory grow with it; LSan checks leaks there
    margin = 48 if os.environ.get("ZASLON_SANITIZED") == "1" else 8
    assert rss < base_rss + margin * 1024, "RSS grew from %d to %d KiB" % (base_rss, rss)
    zl.assert_eq(z.stop(timeout=15), 0, "exit code after 21 reloads")


if __name__ == "__main__":
    zl.main(globals())
