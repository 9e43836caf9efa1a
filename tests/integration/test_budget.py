#!/usr/bin/python3
"""The process-wide memory budget (limits.memory_budget: 512k here). Twelve clients
that never read large responses fill it (each holds ~64 KiB of output plus the fixed
per-connection cost). Then, while it is spent:
  - a new stream on an HTTP/2 connection opened earlier gets REFUSED_STREAM;
  - a new request on an HTTP/1.1 keep-alive connection opened earlier gets 503 and the
    connection closes;
  - a new connection waits (no answer within 1.5 s), on whichever worker it lands
    (every worker looks at the budget every 100 ms);
  - a request admitted before (a slow reader of 8 MB) still completes, byte for byte;
  - nothing is killed: the slow readers stay connected.
After the slow readers go away the waiting connection is served within ~1 s and new
streams and connections are served again. The log names the event."""

import hashlib
import os
import socket
import time

import h2.config
import h2.connection
import h2.errors
import h2.settings

import zl

BUDGET = "512k"
FILLERS = 12
BIG = 50 * 1000 * 1000
ADMITTED = 8 * 1000 * 1000
REFUSED = h2.errors.ErrorCodes.REFUSED_STREAM


def assert_clean_exit(z):
    """Stops |z| and checks it exited 0 with no sanitizer report (a leak or an error
    under ASan aborts with a non-zero status)."""
    rc = z.stop(timeout=30)
    err = open(z.stderr_path, errors="replace").read()
    assert rc == 0 and "Sanitizer" not in err, "zaslon exit %s; stderr:\n%s" % (rc, err[-3000:])


def stalled_get(port, path):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % path).encode())
    return s


def read_response(s, timeout=30):
    """Reads one HTTP/1.1 response with Content-Length; returns (status, body)."""
    s.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            return None, buf
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v)
    h = hashlib.sha256(body)
    n = len(body)
    while n < length:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        h.update(chunk)
        n += len(chunk)
    return status, (n, h.hexdigest())


def test_budget(env):
    a = env.backend("a")
    z = env.zaslon(zl.edge_config(env, backends={"a": a}, routes=[zl.route("a")],
                                  limits={"memory_budget": BUDGET, "write_timeout": "60s",
                                          "stream_timeout": "60s", "idle_timeout": "60s",
                                          "header_timeout": "30s"}))
    # connections opened while there is room
    c2 = zl.H2Client(z.plain_port, tls=False)
    zl.assert_status(c2.get("/before"), 200, "h2 before the budget is spent")
    h1 = socket.create_connection(("127.0.0.1", z.plain_port), timeout=10)
    h1.sendall(b"GET /before HTTP/1.1\r\nHost: localhost\r\n\r\n")
    zl.assert_eq(read_response(h1)[0], 200, "h1 before the budget is spent")

    admitted = stalled_get(z.plain_port, "/bytes/%d" % ADMITTED)
    fillers = [stalled_get(z.plain_port, "/bytes/%d" % BIG) for _ in range(FILLERS)]

    # wait until the budget is spent: a new stream is refused
    t0 = time.monotonic()
    refused = None
    while time.monotonic() - t0 < 15:
        st = c2.streams[c2.request("/probe")]
        c2.wait(lambda: st.done, timeout=10, what="probe stream")
        if st.reset == REFUSED:
            refused = time.monotonic() - t0
            break
        time.sleep(0.2)
    assert refused is not None, "new streams still admitted with %d slow readers" % FILLERS
    print("  budget spent %.2f s after the slow readers connected" % refused)

    # a new HTTP/1.1 request on an old connection: 503, then close
    h1.sendall(b"GET /over HTTP/1.1\r\nHost: localhost\r\n\r\n")
    status, _ = read_response(h1)
    zl.assert_eq(status, 503, "h1 request over budget")
    h1.settimeout(5)
    try:
        rest = h1.recv(4096)
    except OSError:
        rest = b""
    zl.assert_eq(rest, b"", "connection closed after the 503")
    h1.close()

    # new connections wait, on every worker (each notices within 100 ms; until then a
    # connection is accepted and its request refused like the ones above)
    time.sleep(0.5)
    waiting = []
    for i in range(4):
        s = socket.create_connection(("127.0.0.1", z.plain_port), timeout=10)
        s.sendall(b"GET /waiting HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        waiting.append(s)
    time.sleep(1.5)
    for s in waiting:
        s.setblocking(False)
        try:
            early = s.recv(4096)
        except BlockingIOError:
            early = None
        assert early is None, "a new connection was answered over budget: %r" % early[:100]
        s.setblocking(True)

    # the request admitted before the budget ran out completes
    status, (n, digest) = read_response(admitted, timeout=60)
    admitted.close()
    zl.assert_eq(status, 200, "admitted request status")
    zl.assert_eq(n, ADMITTED, "admitted request length")
    zl.assert_eq(digest, zl.pattern_sha256(ADMITTED), "admitted request body")

    # nothing killed: the slow readers are still connected
    for s in fillers:
        s.setblocking(False)
        try:
            alive = s.recv(1) != b""
        except BlockingIOError:
            alive = True
        assert alive, "a slow reader was closed"
        s.setblocking(True)

    # the slow readers leave: waiting connections are served, new ones too
    for s in fillers:
        s.close()
    t_free = time.monotonic()
    for s in waiting:
        status, _ = read_response(s, timeout=10)
        zl.assert_eq(status, 200, "waiting connection after the budget freed up")
        s.close()
    dt = time.monotonic() - t_free
    print("  waiting connections served %.2f s after the slow readers left" % dt)
    assert dt < 3.0, "waiting connections served only after %.2f s" % dt
    zl.assert_status(c2.get("/after"), 200, "new stream after the budget freed up")
    zl.assert_status(z.curl("h2c", "/after"), 200, "new connection after the budget freed up")
    log = open(os.path.join(z.rundir, "error.log")).read()
    assert "memory budget spent" in log, "no budget event logged"
    c2.sock.close()
    assert_clean_exit(z)


def test_budget_counts_h2_streams(env):
    """One HTTP/2 connection that never reads, with 30 streams of large responses:
    its per-stream queues (64 KiB each) count, so it alone spends a 1m budget (its
    connection queue, 256 KiB, would not); closing it gives the budget back."""
    a = env.backend("a")
    z = env.zaslon(zl.edge_config(env, backends={"a": a}, routes=[zl.route("a")],
                                  limits={"memory_budget": "1m", "write_timeout": "60s",
                                          "stream_timeout": "60s", "idle_timeout": "60s"}))
    c2 = zl.H2Client(z.plain_port, tls=False)
    zl.assert_status(c2.get("/before"), 200, "h2 before the budget is spent")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", z.plain_port))
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: (1 << 24)})
    conn.increment_flow_control_window((1 << 30))
    for _ in range(30):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"),
                                (":authority", "localhost"), (":path", "/bytes/%d" % BIG)],
                          end_stream=True)
    s.sendall(conn.data_to_send())
    t0 = time.monotonic()
    refused = None
    while time.monotonic() - t0 < 15:
        st = c2.streams[c2.request("/probe")]
        c2.wait(lambda: st.done, timeout=10, what="probe stream")
        if st.reset == REFUSED:
            refused = time.monotonic() - t0
            break
        time.sleep(0.2)
    assert refused is not None, "a stalled h2 connection with 30 streams did not spend 1m"
    print("  budget spent %.2f s after the stalled h2 connection opened its streams" % refused)
    s.close()
    t_free = time.monotonic()
    while True:
        st = c2.streams[c2.request("/after")]
        c2.wait(lambda: st.done, timeout=10, what="stream after")
        if st.reset is None:
            break
        assert time.monotonic() - t_free < 5, "budget not given back after the close"
        time.sleep(0.1)
    zl.assert_eq(st.status, 200, "stream after the budget freed up")
    c2.sock.close()
    assert_clean_exit(z)


if __name__ == "__main__":
    zl.main(globals())
