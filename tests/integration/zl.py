"""zl: the integration-test harness for zaslon.

Every test is a plain function `test_x(env)` taking an Env: a private temp dir plus a
registry of the processes started for it, stopped (by PID: TERM, then KILL) and removed
when the test ends (the dir stays with ZASLON_KEEP=1). A test file ends with
`zl.main(globals())`, which runs its tests in order (or those named on the command
line), prints "N passed, N failed" and exits non-zero on any failure.

Pieces:
  Env           temp dir, certificates, backends, zaslon instances for one test
  make_certs    a throwaway CA and an ECDSA P-256 leaf (openssl CLI)
  free_port     an unused TCP port on 127.0.0.1
  to_yaml       a small YAML writer for config dicts
  Zaslon        the daemon: config, start, readiness, stop, RSS, CPU, files written
  Backend       backend.py as a subprocess; records() returns what it received
  curl, nghttp, h2load          the command-line clients, bounded by timeouts
  H2Client      a python3-h2 client (TLS+ALPN or h2c, source binding, raw headers)
  H1Conn        a raw HTTP/1.1 client (TLS or not) that reads exactly what arrives
  RssSampler    samples a process's RSS every 100 ms in a thread
"""

import hashlib
import json
import os
import re
import select
import shutil
import signal
import socket
import ssl
import string
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from backend import pattern_chunks

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("ZASLON_SRC") or os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("ZASLON_BUILD") or os.path.join(SRC, "build-integ")
ZASLON_BIN = os.environ.get("ZASLON_BIN") or os.path.join(BUILD, "gateway", "zaslon")
ZASLONCTL_BIN = os.environ.get("ZASLONCTL_BIN") or os.path.join(BUILD, "client", "zaslonctl")
PYTHON = "/usr/bin/python3"
BACKEND_PY = os.path.join(HERE, "backend.py")
KEEP = os.environ.get("ZASLON_KEEP") == "1"

READY_TIMEOUT = 10.0
CLIENT_ADDR = "127.13.37.5"  # distinctive loopback source address for privacy tests
PROTOS = ("h2", "h1", "h1c", "h2c")  # TLS h2, TLS HTTP/1.1, cleartext HTTP/1.1, h2c
CERT_NAMES = ("localhost", "*.example.net", "*.wild.example.net")
CERT_IPS = ("127.0.0.1",)
MiB = 1024 * 1024
GiB = 1024 * MiB


# --------------------------------------------------------------------------- runner

def main(namespace):
    """Runs every test_* function of |namespace| in definition order (or the ones named
    in sys.argv), each with a fresh Env; prints a summary line and exits."""
    tests = [(n, f) for n, f in namespace.items() if n.startswith("test_") and callable(f)]
    wanted = sys.argv[1:]
    unknown = [w for w in wanted if w not in dict(tests)]
    if unknown:
        print("unknown test(s): %s" % ", ".join(unknown))
        sys.exit(2)
    # ctest's timeout sends SIGTERM: unwind so every Env stops what it started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    passed = failed = 0
    for name, fn in tests:
        if wanted and name not in wanted:
            continue
        t0 = time.monotonic()
        env = Env(name)
        ok = False
        try:
            fn(env)
            ok = True
        except Exception:
            traceback.print_exc()
            env.dump_tails()
        finally:
            reports = env.close()
        if reports:
            # a sanitizer report in a daemon's stderr fails the test, even one written
            # at exit (a leak) after every assertion passed
            print("sanitizer report(s):\n%s" % "\n".join(reports))
            ok = False
        dt = time.monotonic() - t0
        print("%s %s (%.1fs)" % ("PASS" if ok else "FAIL", name, dt), flush=True)
        passed += ok
        failed += not ok
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed or not passed else 0)


class Env:
    """One test's temp dir and the processes started in it."""

    def __init__(self, name="test"):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="zl-%s-" % name)
        self._procs = []
        self._certs = None
        self._counter = 0
        self._scratch = None

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def newdir(self, stem):
        self._counter += 1
        d = self.path("%s%d" % (stem, self._counter))
        os.makedirs(d)
        return d

    def write(self, relpath, data, mode=0o644):
        p = self.path(relpath)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(p, mode)
        return p

    def scratch_path(self, name, size):
        """A path for a big throwaway file: in /dev/shm when it has room for |size|
        bytes twice over (writing 1 GiB to disk can take 10 s), else in the temp dir.
        Removed with the temp dir."""
        try:
            st = os.statvfs("/dev/shm")
            if st.f_bavail * st.f_frsize >= 2 * size:
                if self._scratch is None:
                    self._scratch = tempfile.mkdtemp(prefix="zl-%s-" % self.name, dir="/dev/shm")
                return os.path.join(self._scratch, name)
        except OSError:
            pass
        return self.path(name)

    def certs(self, names=None, ips=None):
        """The test CA and leaf, made on first use. |names| / |ips| (first call only)
        replace CERT_NAMES / CERT_IPS, e.g. for a front name such as front.example."""
        if self._certs is None:
            self._certs = make_certs(self.path("certs"), names=names or CERT_NAMES,
                                     ips=ips or CERT_IPS)
        elif names or ips:
            assert (not names or set(names) <= set(self._certs.names)) and \
                (not ips or set(ips) <= set(self._certs.names)), \
                "certificates already made for %s" % self._certs.names
        return self._certs

    def register(self, proc):
        self._procs.append(proc)
        return proc

    def backend(self, name="a", start=True):
        b = self.register(Backend(self, name, start=False))
        if start:
            b.start()
        return b

    def zaslon(self, config, start=True, wait=True, **kw):
        """A Zaslon registered before it starts, so a failed start is still stopped."""
        z = self.register(Zaslon(self, config, start=False, **kw))
        if start:
            z.start(wait)
        return z

    def dump_tails(self):
        """After a failure: the end of every daemon's stderr and logs."""
        for p in self._procs:
            if isinstance(p, Zaslon):
                print("--- config: %s" % p.config_path)
                for f in p.log_paths():
                    print("--- %s (tail)" % f)
                    print(tail(f))

    def close(self):
        """Stops everything; returns the sanitizer reports found in the daemons' stderr."""
        reports = []
        for p in reversed(self._procs):
            try:
                p.stop()
            except Exception:
                traceback.print_exc()
            if isinstance(p, Zaslon):
                reports += p.sanitizer_reports()
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)
        if KEEP:
            print("kept %s" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        return reports


def tail(path, n=4000):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - n))
            return f.read().decode("utf-8", "replace")
    except OSError as e:
        return "(%s)" % e


# --------------------------------------------------------------------- certificates

class Certs:
    def __init__(self, ca, cert, key, names):
        self.ca, self.cert, self.key, self.names = ca, cert, key, names


def _openssl(*args, cwd):
    subprocess.run(("openssl",) + args, cwd=cwd, check=True, timeout=30,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_certs(d, names=CERT_NAMES, ips=CERT_IPS):
    """A test CA and a P-256 leaf for |names| and |ips|; keys are mode 0600."""
    os.makedirs(d, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=zl test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _openssl("req", "-new", *ec, "-keyout", "leaf.key", "-out", "leaf.csr",
             "-subj", "/CN=%s" % names[0], cwd=d)
    san = ",".join(["DNS:%s" % n for n in names] + ["IP:%s" % i for i in ips])
    with open(os.path.join(d, "leaf.ext"), "w") as f:
        f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n" % san)
    _openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", "leaf.ext",
             cwd=d)
    for k in ("ca.key", "leaf.key"):
        os.chmod(os.path.join(d, k), 0o600)
    return Certs(os.path.join(d, "ca.pem"), os.path.join(d, "leaf.pem"),
                 os.path.join(d, "leaf.key"), list(names) + list(ips))


# ---------------------------------------------------------------------------- ports

_handed_out = set()


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on now (and that this process has
    not handed out before)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port")


def can_connect(port, host="127.0.0.1", timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(pred, timeout, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


# ----------------------------------------------------------------------------- YAML

_PLAIN = re.compile(r"^[A-Za-z0-9_./][A-Za-z0-9_./:$-]*$")
_SPECIAL = {"true", "false", "yes", "no", "on", "off", "null", "~", "y", "n"}


def yaml_scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    s = str(v)
    if _PLAIN.match(s) and s.lower() not in _SPECIAL and not s.endswith(":"):
        return s
    return json.dumps(s)  # a JSON string is a valid YAML double-quoted scalar


def _is_scalar(v):
    return not isinstance(v, (dict, list, tuple))


def to_yaml(obj, indent=0):
    """Block-style YAML for nested dicts and lists; lists of scalars go flow-style.
    Keys whose value is None are left out."""
    pad = " " * indent
    out = []
    for k, v in obj.items():
        if v is None:
            continue
        if _is_scalar(v):
            out.append("%s%s: %s" % (pad, k, yaml_scalar(v)))
        elif isinstance(v, dict):
            out.append("%s%s:" % (pad, k))
            out.append(to_yaml(v, indent + 2))
        elif all(_is_scalar(x) for x in v):
            out.append("%s%s: [%s]" % (pad, k, ", ".join(yaml_scalar(x) for x in v)))
        else:
            out.append("%s%s:" % (pad, k))
            for item in v:
                out.append(_yaml_list_item(item, indent + 2))
    return "\n".join(x for x in out if x != "")


def _yaml_list_item(item, indent):
    if _is_scalar(item):
        return "%s- %s" % (" " * indent, yaml_scalar(item))
    body = to_yaml(item, indent + 2)
    return " " * indent + "- " + body[indent + 2:]


# --------------------------------------------------------------------------- config

def backend_block(backend=None, url=None, **extra):
    """A `backends:` entry for the http adapter pointing at |backend| (or |url|)."""
    blk = {"adapter": "http", "url": url or backend.url}
    blk.update(extra)
    return blk


def edge_config(env, *, tls=True, plain=True, cover=None, backends=None, routes=None,
                limits=None, server_header=None, log_level="debug", access_log=True,
                **extra):
    """A config dict: a TLS listener and/or a cleartext one on free ports, the error log
    (at |log_level|) and access log in the daemon's run dir ($rundir), the given cover,
    backends ({name: Backend or dict}), routes and limits."""
    listen = []
    if tls:
        c = env.certs()
        listen.append({"address": "127.0.0.1:%d" % free_port(),
                       "tls": {"certificate": c.cert, "key": c.key}})
    if plain:
        listen.append({"address": "127.0.0.1:%d" % free_port()})
    cfg = {
        "server_header": server_header,
        "error_log": {"path": "$rundir/error.log", "level": log_level},
        "access_log": "$rundir/access.log" if access_log else None,
        "listen": listen,
    }
    if limits:
        cfg["limits"] = dict(limits)
    if cover is not None:
        cfg["cover"] = cover if isinstance(cover, dict) else {"root": cover}
    if backends:
        cfg["backends"] = {n: (b if isinstance(b, dict) else backend_block(b))
                           for n, b in backends.items()}
    if routes:
        cfg["routes"] = list(routes)
    cfg.update(extra)
    return cfg


def route(handler, host=None, path=None):
    """A routes: entry. |handler| is "cover" or a backend name."""
    r = {}
    if host is not None:
        r["host"] = host
    if path is not None:
        r["path"] = path
    r["handler"] = handler if handler == "cover" else "backend %s" % handler
    return r


# --------------------------------------------------------------------------- zaslon

class StartError(Exception):
    pass


_LISTEN_RE = re.compile(r'address:\s*"?(?:127\.0\.0\.1|\*|\[::1\]):(\d+)')


class Zaslon:
    """The daemon under test, in its own run dir (its cwd; config, stdout and stderr
    live there). |config| is a dict (see edge_config) or YAML text; both may use
    $rundir, $dir (the Env dir), $cert, $key, $ca and any |subst| names."""

    def __init__(self, env, config, *, subst=None, start=True, wait=True, name="zaslon"):
        self.env = env
        self.rundir = env.newdir(name)
        self.config_path = os.path.join(self.rundir, "zaslon.yaml")
        self.proc = None
        self._seen_open = set()  # files outside rundir it held open for writing
        self.tls_port = self.plain_port = None
        if isinstance(config, dict):
            for entry in config.get("listen", []):
                port = int(entry["address"].rsplit(":", 1)[1])
                if "tls" in entry:
                    self.tls_port = self.tls_port or port
                else:
                    self.plain_port = self.plain_port or port
            text = to_yaml(config) + "\n"
        else:
            text = config
        mapping = {"rundir": self.rundir, "dir": env.dir}
        if env._certs is not None or "$cert" in text or "$key" in text or "$ca" in text:
            c = env.certs()
            mapping.update(cert=c.cert, key=c.key, ca=c.ca)
        mapping.update(subst or {})
        self.config_text = string.Template(text).substitute(mapping)
        with open(self.config_path, "w") as f:
            f.write(self.config_text)
        self.ports = [int(p) for p in _LISTEN_RE.findall(self.config_text)]
        if start:
            self.start(wait)

    # --- process -------------------------------------------------------------------

    def start(self, wait=True):
        self.stdout_path = os.path.join(self.rundir, "stdout.log")
        self.stderr_path = os.path.join(self.rundir, "stderr.log")
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen([ZASLON_BIN, "-c", self.config_path],
                                         cwd=self.rundir, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=err, start_new_session=True)
        self.started_at = time.time()
        if wait:
            self.wait_ready()
        return self

    @property
    def pid(self):
        return self.proc.pid

    def wait_ready(self, timeout=READY_TIMEOUT):
        """Waits until every listen port accepts a connection; raises StartError if the
        process exits or the deadline passes first."""
        if not self.ports:
            raise StartError("config has no listen address to wait for")
        deadline = time.monotonic() + timeout
        pending = list(self.ports)
        while pending:
            if self.proc.poll() is not None:
                raise StartError("zaslon exited with %s before listening; stderr:\n%s"
                                 % (self.proc.returncode, tail(self.stderr_path)))
            pending = [p for p in pending if not can_connect(p, timeout=0.2)]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise StartError("zaslon not listening on %s after %.0fs; stderr:\n%s"
                                 % (pending, timeout, tail(self.stderr_path)))
            time.sleep(0.05)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        if self.running():
            os.kill(self.proc.pid, sig)

    def wait(self, timeout):
        """The exit code, or None if still running after |timeout| seconds."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=10.0, sig=signal.SIGTERM):
        """Sends |sig| to our PID, waits up to |timeout| s, then SIGKILL. Returns the
        exit code (negative: killed by that signal)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._seen_open |= self._open_for_write()
            self.send_signal(sig)
            if self.wait(timeout) is None:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    _SANITIZER_RE = re.compile(r"ERROR: (?:Address|Leak)Sanitizer|runtime error:")

    def sanitizer_reports(self):
        """Lines of stderr where AddressSanitizer, LeakSanitizer or UBSan reported."""
        if self.proc is None:
            return []
        try:
            with open(self.stderr_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return []
        return ["%s: %s" % (self.stderr_path, line) for line in text.splitlines()
                if self._SANITIZER_RE.search(line)]

    # --- measurements ----------------------------------------------------------------

    def rss_kib(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self):
        with open("/proc/%d/stat" % self.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        return ticks / os.sysconf("SC_CLK_TCK")

    def written_files(self):
        """Every file zaslon wrote: its run dir (logs, stdout, stderr; not the config we
        wrote) plus any regular file it holds open for writing elsewhere."""
        files = set()
        for root, _, names in os.walk(self.rundir):
            for n in names:
                p = os.path.join(root, n)
                if p != self.config_path:
                    files.add(p)
        self._seen_open |= self._open_for_write()
        files.update(self._seen_open)
        return sorted(files)

    def _open_for_write(self):
        out = set()
        if not self.running():
            return out
        fd_dir = "/proc/%d/fd" % self.pid
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            return out
        for fd in fds:
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
                with open("/proc/%d/fdinfo/%s" % (self.pid, fd)) as f:
                    flags = int(f.read().split("flags:")[1].split()[0], 8)
            except (OSError, IndexError, ValueError):
                continue
            if target.startswith("/") and not target.startswith("/dev/") \
                    and (flags & os.O_ACCMODE) != os.O_RDONLY and os.path.isfile(target):
                out.add(target)
        return out

    def log_paths(self):
        return [p for p in self.written_files() if os.path.isfile(p)]

    def files_text(self):
        """{path: bytes} for written_files()."""
        out = {}
        for p in self.written_files():
            try:
                with open(p, "rb") as f:
                    out[p] = f.read()
            except OSError:
                pass
        return out

    # --- clients ---------------------------------------------------------------------

    def port_for(self, proto):
        port = self.tls_port if proto in ("h2", "h1") else self.plain_port
        if port is None:
            raise AssertionError("no %s listener configured" % proto)
        return port

    def url(self, proto, path, host="localhost"):
        scheme = "https" if proto in ("h2", "h1") else "http"
        return "%s://%s:%d%s" % (scheme, host, self.port_for(proto), path)

    def curl_args(self, proto, path, host="localhost"):
        """curl flags and URL for |proto| in PROTOS: |host| resolves to 127.0.0.1 and
        the TLS certificate is verified against the test CA."""
        port = self.port_for(proto)
        flags = {"h2": ["--http2"], "h1": ["--http1.1"], "h1c": ["--http1.1"],
                 "h2c": ["--http2-prior-knowledge"]}[proto]
        flags += ["--resolve", "%s:%d:127.0.0.1" % (host, port)]
        if proto in ("h2", "h1"):
            flags += ["--cacert", self.env.certs().ca]
        return flags + [self.url(proto, path, host)]

    def curl(self, proto, path, host="localhost", args=(), **kw):
        """zl.curl against this daemon over |proto|; fails on another HTTP version."""
        want = "2" if proto in ("h2", "h2c") else "1.1"
        return curl(list(args) + self.curl_args(proto, path, host), want_version=want, **kw)

    def h2(self, tls=True, **kw):
        if tls:
            kw.setdefault("ca", self.env.certs().ca)
            return H2Client(self.tls_port, tls=True, **kw)
        return H2Client(self.plain_port, tls=False, **kw)

    def h1(self, tls=False, **kw):
        if tls:
            kw.setdefault("ca", self.env.certs().ca)
            return H1Conn(self.tls_port, tls=True, **kw)
        return H1Conn(self.plain_port, tls=False, **kw)


def check_config(path, ctl=False, timeout=20):
    """`zaslon -t -c path` (or `zaslonctl check-config path`): (exit code, stderr)."""
    cmd = [ZASLONCTL_BIN, "check-config", path] if ctl else [ZASLON_BIN, "-t", "-c", path]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    return p.returncode, p.stderr.decode("utf-8", "replace")


class RssSampler:
    """with RssSampler(z) as s: ... ; s.peak_kib — samples every |interval| s."""

    def __init__(self, z, interval=0.1):
        self.z, self.interval = z, interval
        self.samples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.samples.append(self.z.rss_kib())
            except (OSError, RuntimeError):
                pass
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False

    @property
    def peak_kib(self):
        return max(self.samples) if self.samples else 0


# -------------------------------------------------------------------------- backend

class Backend:
    """backend.py in a subprocess on 127.0.0.1:port, recording to a JSON-lines file."""

    def __init__(self, env, name="a", start=True):
        self.env, self.name = env, name
        self.port = free_port()
        self.log = env.path("backend-%s.jsonl" % name)
        self.proc = None
        if start:
            self.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self):
        self.errlog = open(self.env.path("backend-%s.stderr" % self.name), "ab")
        self.proc = subprocess.Popen(
            [PYTHON, BACKEND_PY, "--port", str(self.port), "--name", self.name,
             "--log", self.log], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self.errlog, start_new_session=True)
        deadline = time.monotonic() + READY_TIMEOUT
        while not can_connect(self.port, timeout=0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise StartError("backend %s did not start" % self.name)
            time.sleep(0.05)

    def records(self):
        try:
            with open(self.log, encoding="utf-8") as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def records_for(self, path):
        return [r for r in self.records() if r["path"] == path]

    def wait_record(self, path, timeout=5.0):
        return wait_until(lambda: self.records_for(path), timeout,
                          what="backend %s to record %s" % (self.name, path))[0]

    def stop(self, timeout=5.0):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.errlog.close()


def header_value(rec_headers, name):
    """The values of |name| (case-insensitive) in a [[name, value], ...] list."""
    return [v for k, v in rec_headers if k.lower() == name.lower()]


# ------------------------------------------------------------------------- patterns

_pattern_sha_cache = {}


def pattern_sha256(n):
    """Hex sha256 of the first |n| bytes of backend.pattern_chunks."""
    if n not in _pattern_sha_cache:
        h = hashlib.sha256()
        for piece in pattern_chunks(n, 1 << 20):
            h.update(piece)
        _pattern_sha_cache[n] = h.hexdigest()
    return _pattern_sha_cache[n]


def pattern_bytes(n):
    return b"".join(pattern_chunks(n))


def write_pattern_file(path, n):
    """Writes n pattern bytes to |path|; returns their hex sha256."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for piece in pattern_chunks(n, 1 << 20):
            h.update(piece)
            f.write(piece)
    return h.hexdigest()


# --------------------------------------------------------------------- curl / tools

class Response:
    """A response as a client saw it. headers: [(lowercase name, value), ...]."""

    def __init__(self, status=None, headers=(), body=b"", version=None, rc=0, stderr="",
                 body_sha256=None, body_len=None, reset=None):
        self.status, self.headers, self.body = status, list(headers), body
        self.version, self.rc, self.stderr = version, rc, stderr
        self.body_sha256 = body_sha256 if body_sha256 is not None else \
            (hashlib.sha256(body).hexdigest() if body is not None else None)
        self.body_len = body_len if body_len is not None else \
            (len(body) if body is not None else None)
        self.reset = reset

    def header(self, name):
        vals = self.header_all(name)
        return vals[0] if vals else None

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    def __repr__(self):
        return "<Response %s v%s rc=%s %d headers, %s body bytes%s>" % (
            self.status, self.version, self.rc, len(self.headers), self.body_len,
            (" stderr=%r" % self.stderr[-300:]) if self.rc else "")


def parse_head_block(text):
    """(version, status, [(name, value)]) from the last header block in |text|."""
    blocks = [b for b in re.split(r"\r?\n\r?\n", text) if b.strip()]
    if not blocks:
        return None, None, []
    lines = blocks[-1].splitlines()
    m = re.match(r"HTTP/(\S+)\s+(\d{3})", lines[0])
    if not m:
        return None, None, []
    headers = []
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers.append((k.strip().lower(), v.strip()))
    return m.group(1), int(m.group(2)), headers


def curl(args, *, timeout=30, input_file=None, stdin_iter=None, sha_only=False,
         want_version=None):
    """Runs curl -sS with |args| (which include the URL). The body goes to memory, or
    only its sha256 and length with |sha_only| (for huge downloads). |stdin_iter| feeds
    curl's stdin from a generator (for `-T -`). Returns a Response; status is None when
    curl failed (rc != 0). With |want_version|, a response over another HTTP version
    fails the test."""
    fd, hdr_path = tempfile.mkstemp(prefix="zl-curl-", suffix=".hdr")
    os.close(fd)
    cmd = ["curl", "-sS", "--max-time", str(timeout), "-D", hdr_path, "-o", "-"] + list(args)
    stdin = subprocess.DEVNULL
    try:
        if stdin_iter is not None:
            stdin = subprocess.PIPE
        elif input_file:
            stdin = open(input_file, "rb")
        p = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        feeder = None
        if stdin_iter is not None:
            feeder = threading.Thread(target=_feed, args=(p.stdin, stdin_iter), daemon=True)
            feeder.start()
        errbuf = []
        errt = threading.Thread(target=lambda: errbuf.append(p.stderr.read()), daemon=True)
        errt.start()
        h = hashlib.sha256()
        n = 0
        kept = []
        try:
            while True:
                data = p.stdout.read1(1 << 20)
                if not data:
                    break
                n += len(data)
                if sha_only:
                    h.update(data)
                else:
                    kept.append(data)
            rc = p.wait(timeout + 10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise
        errt.join(10)
        if feeder:
            feeder.join(10)
        with open(hdr_path, encoding="latin-1") as f:
            version, status, headers = parse_head_block(f.read())
    finally:
        os.unlink(hdr_path)
        if hasattr(stdin, "close"):
            stdin.close()
    stderr = (errbuf[0] if errbuf else b"").decode("utf-8", "replace")
    body = None if sha_only else b"".join(kept)
    resp = Response(status if rc == 0 else None, headers, body, version, rc, stderr,
                    body_sha256=h.hexdigest() if sha_only else None,
                    body_len=n if sha_only else None)
    if want_version and rc == 0 and version != want_version:
        raise AssertionError("expected HTTP/%s, got HTTP/%s (%r)"
                             % (want_version, version, args))
    return resp


def _feed(pipe, it):
    try:
        for piece in it:
            pipe.write(piece)
    except BrokenPipeError:
        pass
    finally:
        try:
            pipe.close()
        except BrokenPipeError:
            pass


def run_tool(cmd, timeout):
    """Runs a client tool with a hard timeout; returns CompletedProcess (text)."""
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          errors="replace", timeout=timeout)


def nghttp(args, timeout=30):
    return run_tool(["nghttp"] + list(args), timeout)


_NGHTTP_RECV = re.compile(r"recv \(stream_id=\d+\) ([^:\s][^:]*|:[a-z]+): (.*)$", re.M)


def nghttp_recv_headers(verbose_out):
    """[(name, value)] of every header field nghttp -v shows as received."""
    return [(m.group(1), m.group(2)) for m in _NGHTTP_RECV.finditer(verbose_out)]


# " 13     +1.78ms        +99us   1.68ms  200   12 /n"
_NGHTTP_STAT = re.compile(r"^\s*\d+\s+\+\S+\s+\+?\S+\s+\S+\s+(\d{3})\s+(\S+)\s+(\S+)\s*$")


def nghttp_stats(url, *, multiply=1, headers=(), timeout=60, args=()):
    """nghttp -n -s: [(status, size, path)] for every request made."""
    cmd = ["-n", "-s", "-m", str(multiply)] + ["-H%s" % h for h in headers] + \
        list(args) + [url]
    p = nghttp(cmd, timeout)
    rows = []
    for line in p.stdout.splitlines():
        m = _NGHTTP_STAT.match(line)
        if m:
            rows.append((int(m.group(1)), m.group(2), m.group(3)))
    return p, rows


_H2LOAD_REQ = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) "
                         r"succeeded, (\d+) failed, (\d+) errored, (\d+) timeout")
_H2LOAD_STATUS = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")


def h2load(url, *, n, c, m, timeout=120, args=()):
    """h2load -n N -c C -m M URL, killed after |timeout| s. Returns (CompletedProcess,
    dict with total/started/done/succeeded/failed/errored/timeout/2xx/3xx/4xx/5xx)."""
    p = run_tool(["h2load", "-n", str(n), "-c", str(c), "-m", str(m)] + list(args) + [url],
                 timeout)
    res = {}
    r = _H2LOAD_REQ.search(p.stdout)
    if r:
        res.update(zip(("total", "started", "done", "succeeded", "failed", "errored",
                        "timeout"), map(int, r.groups())))
    s = _H2LOAD_STATUS.search(p.stdout)
    if s:
        res.update(zip(("2xx", "3xx", "4xx", "5xx"), map(int, s.groups())))
    return p, res


# ------------------------------------------------------------------------ H2 client

class H2Stream:
    def __init__(self, sid, keep_body=True):
        self.id = sid
        self.status = None
        self.headers = []
        self.trailers = []
        self.data = bytearray() if keep_body else None
        self.sha = hashlib.sha256()
        self.nbytes = 0
        self.ended = False
        self.reset = None  # error code of a RST_STREAM from the server

    @property
    def done(self):
        return self.ended or self.reset is not None

    def header(self, name):
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def response(self):
        return Response(self.status, self.headers,
                        bytes(self.data) if self.data is not None else None, "2",
                        body_sha256=self.sha.hexdigest(), body_len=self.nbytes,
                        reset=self.reset)


class _H2Connection(h2.connection.H2Connection):
    """python-h2 treats any GOAWAY as the end of the connection and refuses every
    later frame; RFC 9113 6.8 lets streams up to last_stream_id finish (that is what
    graceful shutdown tests look at), so keep receiving after a GOAWAY."""

    def _receive_goaway_frame(self, frame):
        frames, events = super()._receive_goaway_frame(frame)
        self.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
        return frames, events


class H2Client:
    """A python3-h2 client. Over TLS it offers ALPN h2 only and checks the peer's
    certificate against |ca| for |server_hostname|. |source| binds the source address.
    |window| sets the stream window (SETTINGS) and grows the connection window."""

    def __init__(self, port, *, tls=True, host="127.0.0.1", server_hostname="localhost",
                 ca=None, source=None, window=None, timeout=10.0, send_preface=True):
        self.timeout = timeout
        src = (source, 0) if source else None
        sock = socket.create_connection((host, port), timeout=timeout, source_address=src)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:
            ctx = ssl.create_default_context(cafile=ca)
            ctx.set_alpn_protocols(["h2"])
            sock = ctx.wrap_socket(sock, server_hostname=server_hostname)
            if sock.selected_alpn_protocol() != "h2":
                raise AssertionError("ALPN selected %r, not h2" % sock.selected_alpn_protocol())
        self.sock = sock
        self.tls = tls
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                        validate_outbound_headers=False,
                                        normalize_outbound_headers=False)
        self.conn = _H2Connection(cfg)
        self.streams = {}
        self.goaway = None      # (error_code, last_stream_id)
        self.eof = False
        self.auto_ack = True    # return flow-control credit as data is read
        self.keep_body = True
        if send_preface:
            self.conn.initiate_connection()
            if window:
                self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
                self.conn.increment_flow_control_window(window - 65535)
            self.flush()

    # --- sending ---------------------------------------------------------------------

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, path="/", method="GET", authority="localhost", headers=(), body=None,
                end=True, flush=True, scheme=None):
        """Opens a stream; returns its id. |headers| go after the pseudo-fields, as
        given (any names, any values)."""
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":scheme", scheme or ("https" if self.tls else "http")),
                (":authority", authority), (":path", path)] + list(headers)
        self.streams[sid] = H2Stream(sid, self.keep_body)
        self.conn.send_headers(sid, hdrs, end_stream=end and body is None)
        if body is not None:
            self.send_body(sid, body, end=end, flush=False)
        if flush:
            self.flush()
        return sid

    def send_body(self, sid, body, end=True, flush=True):
        """Sends |body| within flow control, pumping for window updates; stops early
        if the server ends or resets the stream. Returns the bytes sent."""
        view = memoryview(body)
        sent = 0
        try:
            while view:
                if self.streams[sid].done or self.eof:
                    return sent
                room = min(self.conn.local_flow_control_window(sid),
                           self.conn.max_outbound_frame_size, len(view))
                if room <= 0:
                    self.flush()
                    if not self.pump(self.timeout):
                        return sent
                    continue
                self.conn.send_data(sid, bytes(view[:room]))
                view = view[room:]
                sent += room
            if end:
                self.conn.end_stream(sid)
        except h2.exceptions.StreamClosedError:
            return sent
        if flush:
            self.flush_quietly()
        return sent

    # --- receiving -------------------------------------------------------------------

    def pump(self, timeout=None):
        """Reads what arrives within |timeout| and handles it. Returns False at EOF."""
        if self.eof:
            return False
        timeout = self.timeout if timeout is None else timeout
        if not (self.tls and self.sock.pending()):
            r, _, _ = select.select([self.sock], [], [], timeout)
            if not r:
                return True
        try:
            data = self.sock.recv(1 << 20)
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
            data = b""
        if not data:
            self.eof = True
            return False
        for ev in self.conn.receive_data(data):
            self._event(ev)
        self.flush_quietly()
        return True

    def flush_quietly(self):
        try:
            self.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            pass

    def _event(self, ev):
        if isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway = (ev.error_code, ev.last_stream_id)
            return
        s = self.streams.get(getattr(ev, "stream_id", None))
        if s is None:
            return
        if isinstance(ev, h2.events.ResponseReceived):
            s.headers = list(ev.headers)
            s.status = int(dict(ev.headers)[":status"])
        elif isinstance(ev, h2.events.TrailersReceived):
            s.trailers = list(ev.headers)
        elif isinstance(ev, h2.events.DataReceived):
            s.nbytes += len(ev.data)
            s.sha.update(ev.data)
            if s.data is not None:
                s.data += ev.data
            if self.auto_ack and ev.flow_controlled_length:
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            s.ended = True
        elif isinstance(ev, h2.events.StreamReset):
            s.reset = ev.error_code

    def wait(self, pred, timeout=None, what="condition"):
        """Pumps until pred() is true; raises TimeoutError after |timeout| s, or
        ConnectionError if the connection ends first."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not pred():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("h2: timed out waiting for %s" % what)
            if not self.pump(min(left, 0.5)) and not pred():
                raise ConnectionError("h2: connection closed waiting for %s (goaway=%s)"
                                      % (what, self.goaway))

    def wait_streams(self, sids, timeout=None):
        self.wait(lambda: all(self.streams[i].done for i in sids), timeout,
                  "streams %s..%s" % (min(sids), max(sids)))
        return [self.streams[i] for i in sids]

    def get(self, path="/", timeout=None, **kw):
        sid = self.request(path, **kw)
        return self.wait_streams([sid], timeout)[0].response()

    def wait_closed(self, timeout):
        """Pumps until the server closes the connection; returns the seconds it took,
        or None if it stayed open."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if not self.pump(0.05):
                return time.monotonic() - t0
        return None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ------------------------------------------------------------------------ H1 client

class H1Conn:
    """A raw HTTP/1.1 connection: sends exactly the bytes given and parses exactly the
    bytes received (so a body after a HEAD response, for instance, is caught)."""

    def __init__(self, port, *, tls=False, host="127.0.0.1", server_hostname="localhost",
                 ca=None, source=None, timeout=10.0, rcvbuf=None):
        src = (source, 0) if source else None
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout)
        if src:
            sock.bind(src)
        sock.connect((host, port))
        if tls:
            ctx = ssl.create_default_context(cafile=ca)
            ctx.set_alpn_protocols(["http/1.1"])
            sock = ctx.wrap_socket(sock, server_hostname=server_hostname)
        self.sock, self.tls, self.timeout = sock, tls, timeout
        self.buf = bytearray()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, timeout=None):
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        try:
            data = self.sock.recv(1 << 20)
        except ConnectionResetError:
            data = b""
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def _take(self, n):
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = self._take(i)
                del self.buf[:2]
                return line
            self._fill()

    def _exact(self, n, sink=None):
        """n bytes; with |sink| (a callable) they are handed over as they arrive and
        not kept."""
        if sink is None:
            while len(self.buf) < n:
                self._fill()
            return self._take(n)
        while n > 0:
            if not self.buf:
                self._fill()
            piece = self._take(min(n, len(self.buf)))
            sink(piece)
            n -= len(piece)
        return b""

    @staticmethod
    def build(method, path, host="localhost", headers=(), body=None):
        lines = ["%s %s HTTP/1.1" % (method, path), "Host: %s" % host]
        lines += ["%s: %s" % (k, v) for k, v in headers]
        if body is not None:
            lines.append("Content-Length: %d" % len(body))
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")

    def request(self, method, path, host="localhost", headers=(), body=None, **kw):
        self.send(self.build(method, path, host, headers, body))
        return self.read_response(head=method == "HEAD", **kw)

    def read_head(self):
        """(version, status, headers) of the next non-1xx response."""
        while True:
            status_line = self._line().decode("latin-1")
            m = re.match(r"HTTP/(1\.[01]) (\d{3})", status_line)
            if not m:
                raise AssertionError("bad status line %r" % status_line)
            headers = []
            while True:
                line = self._line().decode("latin-1")
                if not line:
                    break
                k, v = line.split(":", 1)
                headers.append((k.strip().lower(), v.strip()))
            status = int(m.group(2))
            if status >= 200 or status == 101:
                return m.group(1), status, headers

    def read_response(self, head=False, keep_body=True):
        """Parses one response (skipping 1xx). Body framing per RFC 9112 6.3; with
        keep_body=False only its sha256 and length are kept."""
        version, status, headers = self.read_head()
        resp = Response(status, headers, b"", version)
        if head or status in (204, 304) or status < 200:
            return resp
        h = hashlib.sha256()
        count = [0]

        def sink(piece):
            h.update(piece)
            count[0] += len(piece)
        use = None if keep_body else sink
        if "chunked" in (resp.header("transfer-encoding") or "").lower():
            body = self._chunked(use)
        elif resp.header("content-length") is not None:
            body = self._exact(int(resp.header("content-length")), use)
        else:
            body = self._until_eof(use)
        if keep_body:
            return Response(status, headers, body, version)
        return Response(status, headers, None, version, body_sha256=h.hexdigest(),
                        body_len=count[0])

    def _chunked(self, sink):
        out = []
        while True:
            size = int(self._line().split(b";")[0], 16)
            if size == 0:
                while self._line():
                    pass
                return b"".join(out)
            out.append(self._exact(size, sink))
            self._line()

    def _until_eof(self, sink):
        while True:
            try:
                self._fill()
            except EOFError:
                break
            if sink and self.buf:
                sink(self._take(len(self.buf)))
        if sink:
            sink(self._take(len(self.buf)))
            return b""
        return self._take(len(self.buf))

    def wait_closed(self, timeout):
        """Reads (and keeps) whatever arrives until EOF; returns seconds until EOF, or
        None if the connection is still open after |timeout|."""
        t0 = time.monotonic()
        while True:
            left = timeout - (time.monotonic() - t0)
            if left <= 0:
                return None
            try:
                self._fill(min(left, 0.5))
            except (socket.timeout, TimeoutError):
                continue
            except (EOFError, OSError):
                return time.monotonic() - t0

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ----------------------------------------------------------------------- assertions

def assert_eq(got, want, what=""):
    if got != want:
        g, w = repr(got), repr(want)
        raise AssertionError("%s: got %s, want %s" % (what, g[:500], w[:500]))


def assert_status(resp, want, what=""):
    if resp.status != want:
        body = resp.body[:200] if resp.body else b""
        raise AssertionError("%s: status %s, want %s (%r; body %r)"
                             % (what, resp.status, want, resp, body))


def assert_clean(resp, server_header=None, what=""):
    """No header name, header value or body byte string mentions zaslon; the Server
    field is absent, or exactly |server_header| when one is configured."""
    for k, v in resp.headers:
        if "zaslon" in k.lower() or "zaslon" in v.lower():
            raise AssertionError("%s: header %s: %s mentions zaslon" % (what, k, v))
    if resp.body and b"zaslon" in resp.body.lower():
        raise AssertionError("%s: body mentions zaslon: %r" % (what, resp.body[:300]))
    servers = resp.header_all("server")
    want = [server_header] if server_header is not None else []
    if servers != want:
        raise AssertionError("%s: Server fields %r, want %r" % (what, servers, want))


# ---------------------------------------------------------------------- cover site

def _png_1x1():
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00\xc0\x90\x40")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + \
        chunk(b"IEND", b"")


class CoverSite:
    """A small static site: files maps URL path -> (bytes, [acceptable media types])."""

    MEDIA = {".html": ["text/html"], ".css": ["text/css"],
             ".js": ["application/javascript", "text/javascript"],
             ".json": ["application/json"], ".txt": ["text/plain"],
             ".png": ["image/png"], ".svg": ["image/svg+xml"]}

    def __init__(self, env, with_404=True, subdir="cover"):
        self.root = env.path(subdir)
        page = ("<!doctype html>\n<html><head><title>Linden Street Bakery</title>"
                "<link rel=\"stylesheet\" href=\"/style.css\"></head>\n<body><h1>Linden "
                "Street Bakery</h1><p>%s</p></body></html>\n")
        content = {
            "/index.html": page % "Fresh rye every morning since 1987.",
            "/style.css": "body { font-family: serif; color: #332; }\n",
            "/app.js": "document.addEventListener('DOMContentLoaded', function () {});\n",
            "/data.json": '{"opening": "07:00", "closing": "18:00"}\n',
            "/notes.txt": "0123456789abcdefghijklmnopqrstuvwxyz\n" * 4,
            "/logo.png": _png_1x1(),
            "/image.svg": '<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>\n',
            "/menu/index.html": page % "Menu: rye, sourdough, poppy-seed rolls.",
        }
        if with_404:
            content["/404.html"] = page % "Sorry, that page is not on our shelves."
        self.files = {}
        for urlpath, data in content.items():
            data = data.encode() if isinstance(data, str) else data
            env.write(subdir + urlpath, data)
            ext = os.path.splitext(urlpath)[1]
            self.files[urlpath] = (data, self.MEDIA[ext])
        self.index = self.files["/index.html"][0]
        self.not_found = self.files["/404.html"][0] if with_404 else None


def media_type(resp):
    v = resp.header("content-type")
    return v.split(";")[0].strip().lower() if v else None
