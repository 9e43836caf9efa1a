#!/usr/bin/python3
"""Deadlines and caps: a slowloris HTTP/1.1 client is closed by header_timeout (2s)
however it trickles; a TLS client that stalls in the handshake is closed by
tls_handshake_timeout (2s); idle h2 and HTTP/1.1 connections are closed after
idle_timeout and activity re-arms it; a header list over header_list_size or
header_fields is refused (431 on HTTP/1.1; 431, RST_STREAM or GOAWAY on HTTP/2),
never a crash; streams beyond max_concurrent_streams are refused with REFUSED_STREAM
while the first 100 complete. Timing checks run concurrently in threads."""

import select
import socket
import ssl
import threading
import time

import h2.errors

import zl

DEADLINE = 2.0
LATEST = 2.6    # "no later than ~2.5 s" plus scheduling slack on a busy 2-core box
EARLIEST = 1.5  # closing much earlier means some other timer fired


def start(env, **limits):
    a = env.backend("a")
    z = env.zaslon(zl.edge_config(env, backends={"a": a}, routes=[zl.route("a", path="/slow/")],
                                  limits=limits))
    return a, z


def concurrently(jobs, timeout=30):
    """Runs {name: fn} in threads; returns {name: result}; re-raises the first error."""
    results, errors = {}, {}

    def run(name, fn):
        try:
            results[name] = fn()
        except Exception as e:
            errors[name] = e
    threads = [threading.Thread(target=run, args=kv, daemon=True) for kv in jobs.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    for name, e in errors.items():
        raise AssertionError("%s: %r" % (name, e)) from e
    missing = set(jobs) - set(results)
    assert not missing, "jobs did not finish: %s" % sorted(missing)
    return results


def raw_socket(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def trickle_until_closed(sock, data, interval, limit=8.0, t_start=None):
    """Sends |data| one byte per |interval| s, reading whatever arrives. Returns
    (seconds from |t_start| (default: the first byte) to the connection's close, bytes
    received), or (None, received) if still open after |limit| s."""
    received = bytearray()
    t0 = time.monotonic() if t_start is None else t_start
    next_send = time.monotonic()
    i = 0
    while time.monotonic() - t0 < limit:
        now = time.monotonic()
        if now >= next_send and i < len(data):
            try:
                sock.send(data[i:i + 1])
            except OSError:
                return time.monotonic() - t0, bytes(received)
            i += 1
            next_send = now + interval
        wait = next_send - now if i < len(data) else 0.5
        pending = isinstance(sock, ssl.SSLSocket) and sock.pending()
        if pending or select.select([sock], [], [], max(0.0, min(wait, 0.5)))[0]:
            try:
                chunk = sock.recv(4096)
            except ssl.SSLWantReadError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                return time.monotonic() - t0, bytes(received)
            received += chunk
    return None, bytes(received)


def assert_closed_in_window(name, elapsed, received=b""):
    assert elapsed is not None, "%s: still open after the deadline (got %r)" % (name, received[:100])
    assert EARLIEST <= elapsed <= LATEST, "%s: closed after %.2fs, want %.1f..%.1fs" % (
        name, elapsed, EARLIEST, LATEST)
    assert not received.startswith(b"HTTP/1.1 2"), "%s: got a 2xx: %r" % (name, received[:100])


SLOW_REQUEST = b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 100


def test_slowloris_header_timeout(env):
    a, z = start(env, header_timeout="2s", idle_timeout="10s", tls_handshake_timeout="10s")

    def bytewise(interval, tls=False):
        def job():
            s = z.h1(tls=tls).sock if tls else raw_socket(z.plain_port)
            try:
                return trickle_until_closed(s, SLOW_REQUEST, interval)
            finally:
                s.close()
        return job

    def after_line():
        s = raw_socket(z.plain_port)
        t0 = time.monotonic()
        s.sendall(b"GET / HTTP/1.1\r\n")
        try:
            return trickle_until_closed(s, b"Host: localhost\r\nX-Slow: " + b"b" * 100, 0.5,
                                        t_start=t0)
        finally:
            s.close()

    def second_request():
        c = z.h1()
        zl.assert_status(c.request("GET", "/"), 200, "first request on keep-alive")
        time.sleep(1.0)  # idle but well inside idle_timeout
        try:
            return trickle_until_closed(c.sock, SLOW_REQUEST, 0.5)
        finally:
            c.close()

    results = concurrently({
        "1 byte / 500ms": bytewise(0.5),
        "1 byte / 100ms": bytewise(0.1),
        "1 byte / 500ms over TLS": bytewise(0.5, tls=True),
        "line at once, then 1 byte / 500ms": after_line,
        "second request on keep-alive, 1 byte / 500ms": second_request,
    })
    for name, (elapsed, got) in sorted(results.items()):
        print("  %s: closed after %s s" % (name, "%.2f" % elapsed if elapsed else "never"))
    for name, (elapsed, got) in sorted(results.items()):
        assert_closed_in_window(name, elapsed, got)
    zl.assert_status(z.curl("h1c", "/"), 200, "still serving")


def client_hello():
    """The bytes of a real TLS ClientHello (from an in-memory handshake)."""
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def test_tls_handshake_timeout(env):
    a, z = start(env, tls_handshake_timeout="2s", header_timeout="10s", idle_timeout="10s")
    hello = client_hello()

    def partial(prefix):
        def job():
            s = raw_socket(z.tls_port)
            try:
                return trickle_until_closed(s, prefix, 0.0001, limit=8)
            finally:
                s.close()
        return job

    def trickled():
        s = raw_socket(z.tls_port)
        try:
            return trickle_until_closed(s, hello, 0.3)
        finally:
            s.close()

    results = concurrently({
        "silent TCP client": partial(b""),
        "5-byte record header only": partial(hello[:5]),
        "half a ClientHello": partial(hello[:len(hello) // 2]),
        "ClientHello 1 byte / 300ms": trickled,
    })
    for name, (elapsed, got) in sorted(results.items()):
        print("  %s: closed after %s s" % (name, "%.2f" % elapsed if elapsed else "never"))
    for name, (elapsed, got) in sorted(results.items()):
        assert_closed_in_window(name, elapsed, got)
    zl.assert_status(z.curl("h2", "/"), 200, "still serving")


def test_idle_timeout(env):
    a, z = start(env, idle_timeout="2s", header_timeout="10s", tls_handshake_timeout="10s")

    def h2_after_request(tls):
        def job():
            c = z.h2(tls=tls)
            zl.assert_status(c.get("/"), 200, "h2 request")
            t = c.wait_closed(6)
            c.close()
            return t, c.goaway
        return job

    def h2_no_request():
        c = z.h2()
        t = c.wait_closed(6)
        c.close()
        return t, c.goaway

    def h1_after_request(tls):
        def job():
            c = z.h1(tls=tls)
            zl.assert_status(c.request("GET", "/"), 200, "h1 request")
            t = c.wait_closed(6)
            c.close()
            return t, None
        return job

    def h2_kept_busy():
        """A request every second for 4 s keeps the connection; then it idles out."""
        c = z.h2()
        for i in range(5):
            if i:
                time.sleep(1.0)
            zl.assert_status(c.get("/"), 200, "busy h2 connection, request %d" % i)
            assert not c.eof, "busy connection closed after %d requests" % (i + 1)
        t = c.wait_closed(6)
        c.close()
        return t, c.goaway

    results = concurrently({
        "h2 TLS after a request": h2_after_request(True),
        "h2c after a request": h2_after_request(False),
        "h2 TLS with no request": h2_no_request,
        "h1 keep-alive": h1_after_request(False),
        "h1 TLS keep-alive": h1_after_request(True),
        "h2 kept busy, then idle": h2_kept_busy,
    })
    for name, (elapsed, goaway) in sorted(results.items()):
        print("  %s: closed after %s s, goaway %s" % (
            name, "%.2f" % elapsed if elapsed else "never", goaway))
    for name, (elapsed, goaway) in sorted(results.items()):
        assert_closed_in_window(name, elapsed)


def h2_refused(s, c):
    """True if the stream was refused: a 431, a RST_STREAM, or a connection error
    (GOAWAY, or the connection closed) before any response."""
    if s.status is not None:
        return s.status == 431
    return s.reset is not None or c.goaway is not None or c.eof


def test_header_list_caps(env):
    a, z = start(env, header_list_size="8k", header_fields=100)
    big = [("X-Big", "v" * 16384)]
    many = [("X-Field-%d" % i, "v") for i in range(150)]
    fits = [("X-Fits", "v" * 4000)] + [("X-Field-%d" % i, "v") for i in range(50)]
    for tls in (False, True):
        for name, headers, want in (("16 KiB field", big, 431), ("150 fields", many, 431),
                                    ("within the caps", fits, 200)):
            c = z.h1(tls=tls)
            try:
                r = c.request("GET", "/", headers=headers)
                status = r.status
            except EOFError:
                status = "closed"
            c.close()
            zl.assert_eq(status, want, "h1%s %s" % (" TLS" if tls else "", name))
        for name, headers in (("16 KiB field", big), ("150 fields", many)):
            c = z.h2(tls=tls)
            sid = c.request("/", headers=[(k.lower(), v) for k, v in headers])
            c.wait(lambda: c.streams[sid].done or c.goaway is not None or c.eof, 5, "a refusal")
            s = c.streams[sid]
            assert h2_refused(s, c), "h2%s %s: not refused: status %s reset %s goaway %s" % (
                "" if tls else "c", name, s.status, s.reset, c.goaway)
            if c.goaway is None and not c.eof:  # only the stream was refused
                zl.assert_status(c.get("/"), 200, "same connection after the refusal")
            c.close()
        c = z.h2(tls=tls)
        zl.assert_status(c.get("/", headers=[(k.lower(), v) for k, v in fits]), 200,
                         "h2 within the caps")
        c.close()
    assert z.running(), "zaslon died"
    zl.assert_status(z.curl("h2", "/"), 200, "still serving")


def test_max_concurrent_streams(env):
    """120 streams sent before the client has even read the server's SETTINGS (as a
    client racing them would): the first 100 complete, the other 20 are refused with
    REFUSED_STREAM, and the connection stays usable."""
    a, z = start(env, max_concurrent_streams=100)
    for tls in (True, False):
        c = z.h2(tls=tls, timeout=20)
        sids = [c.request("/slow/1500?i=%d" % i, flush=False) for i in range(120)]
        c.flush()
        streams = c.wait_streams(sids, timeout=20)
        first, extra = streams[:100], streams[100:]
        for s in first:
            zl.assert_status(s.response(), 200, "stream %d of the first 100" % s.id)
            zl.assert_eq(bytes(s.data), b"slow 1500", "stream %d body" % s.id)
        zl.assert_eq([s.reset for s in extra], [h2.errors.ErrorCodes.REFUSED_STREAM] * 20,
                     "the 20 extra streams")
        zl.assert_status(c.get("/"), 200, "the connection after the refusals")
        c.close()
    zl.assert_eq(len([r for r in a.records() if r["path"].startswith("/slow/")]), 200,
                 "requests that reached the backend")


if __name__ == "__main__":
    zl.main(globals())
