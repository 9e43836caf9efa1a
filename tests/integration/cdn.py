"""cdn: Debian's haproxy (2.6) as a stand-in for a CDN / cloud front.

A `Cdn` is one haproxy process, in the foreground (`haproxy -f CFG -db`), with its
config written into the test's temp dir and stopped by PID (TERM, then KILL) with the
test's other processes. It:

  - terminates TLS on 127.0.0.1:PORT with a certificate for the front name only
    (front.example, from its own throwaway CA: see `front_certs`), ALPN h2 and
    http/1.1, like a CDN edge;
  - routes on the inner Host (`:authority` over h2): only the hidden edge name goes to
    the origin; any other Host gets haproxy's own 404 page and never reaches zaslon;
  - adds `X-Forwarded-For` (`option forwardfor`), `X-Real-IP` and `Via` (what real
    fronts add, so the tests can show none of it goes further), and sets the origin
    secret header (`http-request set-header x-origin-secret SECRET`, replacing any value
    the client sent) on everything it sends to the origin; `secret=None` is a front
    that injects none (a prober's path to the origin, or a misconfigured front);
  - speaks to the origin in one of ORIGIN_MODES:
        h2    HTTP/2 over TLS to zaslon's TLS listener (`ssl verify required ca-file
              CA sni str(NAME) alpn h2 proto h2`): what a CDN speaks to an HTTPS origin
        h2c   cleartext HTTP/2 with prior knowledge to the plain listener (`proto h2`)
        h1    cleartext HTTP/1.1 to the plain listener, connections reused between
              clients (`http-reuse always`), the shape a request-smuggling desync needs
        h1tls HTTP/1.1 over TLS to the TLS listener (`alpn http/1.1`);
  - logs one line per request to its stderr (`log stderr format raw`): the front and
    origin HTTP versions, status, Host and path, so a test can prove which protocol was
    spoken on each hop (`log_lines()`).

The origin is any (host, port); `origin_name`/`origin_ca` are the name haproxy sends as
SNI and verifies, and the CA it trusts, for the TLS modes.
"""

import os
import signal
import subprocess
import time

import zl

HAPROXY = "/usr/sbin/haproxy"
FRONT = "front.example"                 # the TLS SNI and the only name in the front's cert
HIDDEN = "edge.hidden.example"          # the inner Host the front routes to the origin
SECRET_HEADER = "x-origin-secret"
ORIGIN_MODES = ("h2", "h2c", "h1", "h1tls")
VIA = "1.1 cdn-standin"

# One log line per request: fields split on "|" (see log_lines()).
_LOG_FORMAT = ("zlcdn|%[fc_http_major]|%[bc_http_major]|%ST|%b|%s|%[capture.req.hdr(0)]"
               "|%HP|%tsc|%ci")


def front_certs(env, names=(FRONT,)):
    """A throwaway CA and a leaf for the front name(s), in their own directory (not the
    origin's: the front's certificate names nothing but the front), plus the PEM bundle
    (chain + key) haproxy's `crt` wants. Returns a zl.Certs with .bundle set."""
    c = zl.make_certs(env.path("front-certs"), names=tuple(names), ips=())
    c.bundle = os.path.join(os.path.dirname(c.cert), "front-bundle.pem")
    with open(c.bundle, "wb") as out:
        for p in (c.cert, c.key):
            with open(p, "rb") as f:
                out.write(f.read())
    os.chmod(c.bundle, 0o600)
    return c


class Cdn:
    """haproxy in front of an origin; see the module comment. Registered with |env|
    (stopped by PID when the test ends)."""

    def __init__(self, env, origin_port, mode, *, secret, certs, origin_host="127.0.0.1",
                 origin_name=None, origin_ca=None, hidden=HIDDEN, port=None,
                 name=None, start=True):
        assert mode in ORIGIN_MODES, mode
        if mode in ("h2", "h1tls"):
            assert origin_name and origin_ca, "a TLS origin needs origin_name and origin_ca"
        self.env, self.mode, self.secret, self.certs = env, mode, secret, certs
        self.hidden = hidden
        self.port = port or zl.free_port()
        self.name = name or "cdn-%s" % mode
        self.dir = env.newdir(self.name)
        self.config_path = os.path.join(self.dir, "haproxy.cfg")
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.proc = None
        with open(self.config_path, "w") as f:
            f.write(self.config_text(origin_host, origin_port, origin_name, origin_ca))
        env.register(self)
        if start:
            self.start()

    def config_text(self, origin_host, origin_port, origin_name, origin_ca):
        server = "server origin %s:%d" % (origin_host, origin_port)
        if self.mode == "h2":
            server += " ssl verify required ca-file %s sni str(%s) alpn h2 proto h2" % (
                origin_ca, origin_name)
        elif self.mode == "h1tls":
            server += " ssl verify required ca-file %s sni str(%s) alpn http/1.1" % (
                origin_ca, origin_name)
        elif self.mode == "h2c":
            server += " proto h2"
        inject = []
        if self.secret is not None:
            inject.append("    http-request set-header %s %s" % (SECRET_HEADER,
                                                                 self.secret))
        else:
            inject.append("    http-request del-header %s" % SECRET_HEADER)
        return "\n".join([
            "global",
            "    log stderr format raw local0 info",
            "    maxconn 256",
            "    nbthread 1",
            "    ssl-server-verify required",
            "",
            "defaults",
            "    mode http",
            "    log global",
            "    log-format \"%s\"" % _LOG_FORMAT,
            "    timeout connect 5s",
            "    timeout client 30s",
            "    timeout server 30s",
            "    timeout http-request 10s",
            "    timeout http-keep-alive 10s",
            "",
            "frontend front",
            "    bind 127.0.0.1:%d ssl crt %s alpn h2,http/1.1" % (self.port,
                                                                   self.certs.bundle),
            "    capture request header Host len 64",
            "    option forwardfor",
            "    http-request set-header x-real-ip %[src]",
            "    http-request add-header via \"%s\"" % VIA,
            # the inner Host (h2: :authority), without a port, case-insensitive
            "    acl hidden req.hdr(host),lower,field(1,:) -m str %s" % self.hidden.lower(),
            "    http-request deny deny_status 404 unless hidden",
            "    default_backend origin",
            "",
            "backend origin",
        ] + inject + [
            "    http-reuse always",
            "    " + server,
            "",
        ])

    # --- process ---------------------------------------------------------------------

    def start(self, timeout=zl.READY_TIMEOUT):
        r = subprocess.run([HAPROXY, "-c", "-f", self.config_path], capture_output=True,
                           text=True, timeout=30, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, "haproxy -c %s: %s%s" % (self.config_path, r.stdout,
                                                          r.stderr)
        with open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen([HAPROXY, "-f", self.config_path, "-db"],
                                         cwd=self.dir, stdin=subprocess.DEVNULL,
                                         stdout=err, stderr=err, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not zl.can_connect(self.port, timeout=0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise zl.StartError("haproxy (%s) not listening on %d; stderr:\n%s" % (
                    self.mode, self.port, zl.tail(self.stderr_path)))
            time.sleep(0.05)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def stop(self, timeout=5.0):
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    # --- what it did -----------------------------------------------------------------

    def log_lines(self):
        """[{front, origin, status, backend, server, host, path}] for each request
        logged so far (front/origin: HTTP major version on the client side and on the
        origin side, "-" when no origin connection was used)."""
        out = []
        try:
            with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if not line.startswith("zlcdn|"):
                        continue
                    p = line.rstrip("\n").split("|")
                    out.append({"front": p[1], "origin": p[2], "status": p[3],
                                "backend": p[4], "server": p[5], "host": p[6],
                                "path": p[7], "term": p[8]})
        except FileNotFoundError:
            pass
        return out

    def wait_logged(self, n, timeout=5.0):
        """Waits until at least |n| requests are logged (haproxy logs at the end of a
        request, right after the answer)."""
        return zl.wait_until(lambda: len(self.log_lines()) >= n and self.log_lines(),
                             timeout, what="haproxy to log %d requests" % n)

    def url(self, path="/"):
        return "https://%s:%d%s" % (FRONT, self.port, path)

    def curl_args(self, path="/", http="--http2"):
        """curl flags and URL for a request through this front: SNI front.example,
        connected to 127.0.0.1 without a DNS lookup, verified against the front's CA."""
        return [http, "--cacert", self.certs.ca,
                "--connect-to", "%s:%d:127.0.0.1:%d" % (FRONT, self.port, self.port),
                self.url(path)]

    def h1(self, **kw):
        """A raw HTTP/1.1 connection to the front over TLS (SNI front.example, ALPN
        http/1.1)."""
        kw.setdefault("timeout", 10.0)
        return zl.H1Conn(self.port, tls=True, server_hostname=FRONT, ca=self.certs.ca, **kw)
