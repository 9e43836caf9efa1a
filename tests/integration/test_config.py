#!/usr/bin/python3
"""Config checking: `zaslon -t -c FILE` and `zaslonctl check-config FILE` accept good
configs (exit 0) and refuse bad ones with exit 1 and "FILE:LINE: reason" on stderr at
the right line; the daemon refuses to start with a bad config (non-zero exit, nothing
listening) and does start with the full good one.

Each bad case edits the full good config; the expected line carries "# ERR" (and
"# ALT" marks a second acceptable line where the schema does not say which of two
lines is to blame). A case with no marker accepts any line number."""

import os
import re
import time

import zl

GOOD = """\
workers: 2
role: edge
server_header: "nginx"
error_log: { path: stderr, level: info }
access_log: $dir/access.log
listen:
  - address: "127.0.0.1:$port1"
    tls:
      certificate: $cert
      key: $key
  - address: "127.0.0.1:$port2"
limits:
  connections_per_worker: 1000
  max_concurrent_streams: 100
  header_list_size: 64k
  header_fields: 100
  max_continuations: 8
  stream_reset_burst: 1000
  stream_reset_rate: 33
  tls_handshake_timeout: 10s
  header_timeout: 10s
  idle_timeout: 60s
  body_timeout: 30s
  write_timeout: 30s
  output_buffer: 256k
  stream_buffer: 64k
  drain_timeout: 30s
cover:
  root: $dir/cover
  index: index.html
  not_found: 404.html
backends:
  a:
    adapter: http
    url: "http://127.0.0.1:$port3"
    first_byte_timeout: 5s
    headers: [accept, content-type]
    allow_cookie: false
    replay: optional
    pad_min: 1k
routes:
  - host: "vote.example.net"
    path: "/api/"
    handler: "backend a"
  - host: "*.example.net"
    handler: cover
"""

MINIMAL = """\
listen:
  - address: "127.0.0.1:$port2"
"""

# name -> list of edits (line prefix to find, replacement lines; "+" in front of the
# prefix inserts after that line instead of replacing it)
BAD = {
    "unknown top-level key": [("+role: edge", ["colour: blue  # ERR"])],
    "unknown key in limits": [("  idle_timeout:", ["  idel_timeout: 60s  # ERR"])],
    "bad duration": [("  header_timeout:", ["  header_timeout: soon  # ERR"])],
    "bad size": [("  output_buffer:", ["  output_buffer: 12q  # ERR"])],
    "workers out of range": [("workers:", ["workers: 257  # ERR"])],
    "bad log level": [("error_log:", ["error_log: { path: stderr, level: chatty }  # ERR"])],
    "bad port": [('  - address: "127.0.0.1:$port2"', ['  - address: "127.0.0.1:99999"  # ERR'])],
    "wrong type (list for scalar)": [("server_header:", ["server_header: [a, b]  # ERR"])],
    "duplicate key": [("+role: edge", ["workers: 3  # ERR"])],
    "yaml syntax": [("server_header:", ["server_header: nginx: 1  # ERR"])],
    "missing cert file": [('  - address: "127.0.0.1:$port1"', ['  - address: "127.0.0.1:$port1"  # ALT']),
                          ("      certificate:", ["      certificate: $dir/no-such-cert.pem  # ERR"])],
    "missing key file": [('  - address: "127.0.0.1:$port1"', ['  - address: "127.0.0.1:$port1"  # ALT']),
                         ("      key:", ["      key: $dir/no-such-key.pem  # ERR"])],
    "tls without key": [('  - address: "127.0.0.1:$port1"', ['  - address: "127.0.0.1:$port1"  # ALT']),
                        ("    tls:", ["    tls:  # ALT"]),
                        ("      certificate:", ["      certificate: $cert  # ALT"]),
                        ("      key:", [])],
    "route to unknown backend": [('  - host: "vote.example.net"', ['  - host: "vote.example.net"  # ALT']),
                                 ('    handler: "backend a"', ['    handler: "backend nosuch"  # ERR'])],
    "unknown adapter key": [("+    first_byte_timeout:", ["    colour: blue  # ERR"])],
    "unknown adapter": [("    adapter: http", ["    adapter: carrier-pigeon  # ERR"])],
    "bad upstream url": [("    url:", ['    url: "ftp://127.0.0.1:1/"  # ERR'])],
    "bad adapter timeout": [("    first_byte_timeout:", ["    first_byte_timeout: never  # ERR"])],
    "cover root and upstream": [("cover:", ["cover:  # ALT"]),
                                ("+  root:", ['  upstream: "http://127.0.0.1:1"  # ERR'])],
    "missing cover root dir": [("  root:", ["  root: $dir/no-such-dir  # ERR"])],
    "missing listen": None,  # see bad_text
}


def edit(text, edits):
    lines = text.splitlines()
    for prefix, repl in edits:
        insert = prefix.startswith("+")
        prefix = prefix[1:] if insert else prefix
        idx = next(i for i, line in enumerate(lines) if line.startswith(prefix))
        if insert:
            lines[idx + 1:idx + 1] = repl
        else:
            lines[idx:idx + 1] = repl
    return "\n".join(lines) + "\n"


def bad_text(name):
    if name == "missing listen":
        return "workers: 2\nrole: edge\n"  # no marker: any line will do
    return edit(GOOD, BAD[name])


def marked_lines(text):
    """1-based line numbers carrying # ERR or # ALT."""
    return {i + 1 for i, line in enumerate(text.splitlines()) if "# ERR" in line or "# ALT" in line}


def write_config(env, name, text):
    """Fills $dir, $cert, $key and ports; returns (path, final text)."""
    c = env.certs()
    if not os.path.isdir(env.path("cover")):
        zl.CoverSite(env)
    ports = {"port%d" % i: zl.free_port() for i in (1, 2, 3)}
    final = text
    for k, v in dict(ports, dir=env.dir, cert=c.cert, key=c.key).items():
        final = final.replace("$" + k, str(v))
    path = env.path(name + ".yaml")
    with open(path, "w") as f:
        f.write(final)
    return path, final, ports


def assert_refused(path, text, rc, err, tool):
    lines = marked_lines(text)
    assert rc == 1, "%s %s: exit %s, want 1; stderr %r" % (tool, path, rc, err)
    m = re.search(r"^%s:(\d+): \S" % re.escape(path), err, re.M)
    assert m, "%s: no '%s:LINE: reason' in stderr %r" % (tool, path, err)
    if lines:
        assert int(m.group(1)) in lines, "%s %s: line %s, want %s; stderr %r" % (
            tool, os.path.basename(path), m.group(1), sorted(lines), err)


def test_good_configs_pass(env):
    for name, text in (("good", GOOD), ("minimal", MINIMAL)):
        path, _, _ = write_config(env, name, text)
        for ctl in (False, True):
            rc, err = zl.check_config(path, ctl=ctl)
            tool = "zaslonctl check-config" if ctl else "zaslon -t"
            zl.assert_eq(rc, 0, "%s %s (stderr %r)" % (tool, name, err))


def test_bad_configs_refused(env):
    failures = []
    for name in BAD:
        path, text, _ = write_config(env, re.sub(r"\W+", "-", name), bad_text(name))
        for ctl in (False, True):
            tool = "zaslonctl check-config" if ctl else "zaslon -t"
            rc, err = zl.check_config(path, ctl=ctl)
            try:
                assert_refused(path, text, rc, err, tool)
            except AssertionError as e:
                failures.append("[%s] %s" % (name, e))
    assert not failures, "%d of %d checks failed:\n  %s" % (
        len(failures), 2 * len(BAD), "\n  ".join(failures))


def test_daemon_refuses_bad_config(env):
    for name in ("route to unknown backend", "missing cert file", "unknown adapter key",
                 "unknown key in limits"):
        path, text, ports = write_config(env, re.sub(r"\W+", "-", name), bad_text(name))
        z = env.zaslon(text, start=False)
        z.start(wait=False)
        t0 = time.monotonic()
        while z.running() and time.monotonic() - t0 < 5:
            for p in (ports["port1"], ports["port2"]):
                assert not zl.can_connect(p, timeout=0.1), \
                    "%s: something listens on %d with a bad config" % (name, p)
            time.sleep(0.05)
        rc = z.wait(0.1)
        assert rc is not None, "%s: zaslon still running after 5s with a bad config" % name
        assert rc != 0, "%s: zaslon exited 0 with a bad config" % name
        with open(z.stderr_path) as f:
            err = f.read()
        assert_refused(z.config_path, text, 1, err, "zaslon -c")
        for p in (ports["port1"], ports["port2"]):
            assert not zl.can_connect(p, timeout=0.2), "%s: port %d open after exit" % (name, p)


def test_daemon_runs_good_config(env):
    site = zl.CoverSite(env)
    path, text, ports = write_config(env, "good", GOOD)
    z = env.zaslon(text)
    z.tls_port, z.plain_port = ports["port1"], ports["port2"]
    for proto in zl.PROTOS:
        r = z.curl(proto, "/")
        zl.assert_status(r, 200, proto + " cover with the full config")
        zl.assert_eq(r.body, site.index, proto + " cover body")
        zl.assert_eq(r.header_all("server"), ["nginx"], proto + " server_header")
    zl.assert_eq(z.stop(), 0, "exit after SIGTERM")


if __name__ == "__main__":
    zl.main(globals())
