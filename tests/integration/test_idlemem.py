#!/usr/bin/python3
"""Memory held by idle TLS HTTP/2 connections (issue 5).

1,000 clients each open a TLS connection (ALPN h2), send the connection preface,
SETTINGS and one GET with browser-sized header fields, read the whole answer, then go
quiet. zaslon's RSS (VmRSS) is read before the first and two seconds after the last;
the difference per connection must stay under a bound a few KiB above what zaslon
reaches (the figure is printed) and under the ~38 KiB it took before idle sessions
gave their frame buffers back. A sample of the idle connections then sends a second GET
each: all are answered in full, so giving memory back broke nothing. A second test does
the same with no GET at all (what scripts/bench measures) and also checks that the
server's SETTINGS and its ACK of ours came through.

IDLEMEM_CONNS overrides the count (for measuring; the bound applies whatever it is)."""

import os
import resource
import socket
import ssl
import struct
import time

import hpack

import zl

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
CONNS = int(os.environ.get("IDLEMEM_CONNS", "1000"))
SANITIZED = os.environ.get("ZASLON_SANITIZED") == "1"
# KiB per idle connection. Release: zaslon reaches about 23.6 with a GET done (the
# header fields below sit in both HPACK tables) and about 21 without, against 38.5 when
# every session kept its 16 KiB frame buffer and 4 KiB stream table; the bounds are a
# few KiB above. ASan adds redzones to every block and keeps freed ones in quarantine.
BOUND_GET_KIB = 80 if SANITIZED else 28
BOUND_BARE_KIB = 80 if SANITIZED else 25
SAMPLE = 50

DATA, HEADERS, RST_STREAM, SETTINGS, GOAWAY = 0, 1, 3, 4, 7
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4

# What a browser sends on its first request, more or less (about 400 bytes of HPACK).
BROWSER_FIELDS = [
    ("user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
    ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("accept-language", "be-BY,be;q=0.9,ru;q=0.8,en-US;q=0.6,en;q=0.4"),
    ("accept-encoding", "gzip, deflate, br, zstd"),
    ("sec-fetch-dest", "document"),
    ("sec-fetch-mode", "navigate"),
    ("sec-fetch-site", "none"),
    ("upgrade-insecure-requests", "1"),
]


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", sid) + payload


SETTINGS_EMPTY = frame(SETTINGS, 0, 0)
SETTINGS_ACK = frame(SETTINGS, ACK, 0)


class Conn:
    """One TLS h2 client connection, blocking, just enough of HTTP/2 for GETs."""

    def __init__(self, ctx, port):
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            self.s = ctx.wrap_socket(raw, server_hostname="localhost")
        except Exception:
            raw.close()
            raise
        assert self.s.selected_alpn_protocol() == "h2", "ALPN h2 not selected"
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.buf = b""
        self.got_settings = self.got_ack = False
        self.next_id = 1

    def get_frame(self):
        while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
            data = self.s.recv(65536)
            if not data:
                raise ConnectionError("closed by the server")
            self.buf += data
        n = int.from_bytes(self.buf[:3], "big")
        hd, payload, self.buf = self.buf[:9], self.buf[9:9 + n], self.buf[9 + n:]
        return hd[3], hd[4], int.from_bytes(hd[5:9], "big") & 0x7FFFFFFF, payload

    def handle_control(self, ftype, flags, payload):
        if ftype == SETTINGS and flags & ACK:
            self.got_ack = True
        elif ftype == SETTINGS:
            self.got_settings = True
            self.s.sendall(SETTINGS_ACK)
        elif ftype == GOAWAY:
            raise ConnectionError("GOAWAY %r" % payload[:8])

    def request(self, path, preface=b""):
        """Sends a GET for |path| (after |preface|) and reads the whole answer:
        (status, body)."""
        sid = self.next_id
        self.next_id += 2
        fields = [(":method", "GET"), (":scheme", "https"), (":authority", "localhost"),
                  (":path", path)] + BROWSER_FIELDS
        self.s.sendall(preface + frame(HEADERS, END_STREAM | END_HEADERS, sid,
                                       self.enc.encode(fields)))
        status, body = None, b""
        while True:
            ftype, flags, fsid, payload = self.get_frame()
            if fsid == 0:
                self.handle_control(ftype, flags, payload)
                continue
            assert fsid == sid, "a frame on stream %d" % fsid
            if ftype == RST_STREAM:
                raise ConnectionError("stream %d reset" % sid)
            if ftype == HEADERS:
                status = int(dict(self.dec.decode(payload))[":status"])
            elif ftype == DATA:
                body += payload
            if flags & END_STREAM:
                return status, body

    def settle(self):
        """Reads until our SETTINGS is acknowledged and theirs has come (no GET)."""
        self.s.sendall(PREFACE + SETTINGS_EMPTY)
        while not (self.got_settings and self.got_ack):
            ftype, flags, _, payload = self.get_frame()
            self.handle_control(ftype, flags, payload)

    def quiet(self):
        """True if the connection is open and the server sent nothing since."""
        self.s.setblocking(False)
        try:
            return self.s.recv(1) == b"" and False
        except (BlockingIOError, ssl.SSLWantReadError):
            return True
        except OSError:
            return False
        finally:
            self.s.setblocking(True)

    def close(self):
        self.s.close()


def hold_idle(env, with_get):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = CONNS + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(want, 8192)), hard))
    a = env.backend("a")
    # One worker, so that the figure does not depend on which thread's heap each
    # connection lands in; deadlines long enough for the whole test.
    z = env.zaslon(zl.edge_config(
        env, backends={"a": a}, routes=[zl.route("a")], workers=1,
        limits={"idle_timeout": "120s", "header_timeout": "60s",
                "tls_handshake_timeout": "60s"}))
    ctx = ssl.create_default_context(cafile=env.certs().ca)
    ctx.set_alpn_protocols(["h2"])
    # Warm-up: the first connection and request allocate what every later one shares
    # (upstream pool, caches, the worker's staging buffer).
    for i in range(3):
        w = Conn(ctx, z.tls_port)
        zl.assert_eq(w.request("/warm/%d" % i, PREFACE + SETTINGS_EMPTY)[0], 200, "warm-up")
        w.close()
    time.sleep(0.5)
    before = z.rss_kib()
    conns = []
    t0 = time.monotonic()
    try:
        for i in range(CONNS):
            c = Conn(ctx, z.tls_port)
            conns.append(c)
            if with_get:
                status, body = c.request("/idle/%d" % i, PREFACE + SETTINGS_EMPTY)
                zl.assert_eq(status, 200, "GET on connection %d" % i)
                zl.assert_eq(body, b"backend a /idle/%d" % i, "body on connection %d" % i)
            else:
                c.settle()
        opened = time.monotonic() - t0
        time.sleep(2)
        after = z.rss_kib()
        per = (after - before) / len(conns)
        print("  %d idle TLS h2 connections%s, opened in %.1f s: RSS %d -> %d KiB, "
              "%.2f KiB per connection" % (len(conns), " after one GET" if with_get else "",
                                           opened, before, after, per))
        bound = BOUND_GET_KIB if with_get else BOUND_BARE_KIB
        assert per <= bound, "%.2f KiB per idle connection, want <= %d" % (per, bound)
        quiet = sum(c.quiet() for c in conns)
        zl.assert_eq(quiet, len(conns), "connections open and quiet")
        # Fifty connections spread over the whole set ask again: the
        # memory handed back must come back intact.
        step = max(1, len(conns) // SAMPLE)
        for i in range(0, len(conns), step):
            c = conns[i]
            status, body = c.request("/again/%d" % i)
            zl.assert_eq(status, 200, "second GET on connection %d" % i)
            zl.assert_eq(body, b"backend a /again/%d" % i, "second body on connection %d" % i)
            if not with_get:
                assert c.got_settings and c.got_ack, "settings exchange on %d" % i
        zl.assert_status(z.curl("h2", "/ok"), 200, "a new connection")
    finally:
        for c in conns:
            c.close()
    rc = z.stop(timeout=30)
    zl.assert_eq(rc, 0, "zaslon exit status")


def test_idle_after_get(env):
    hold_idle(env, with_get=True)


def test_idle_bare(env):
    hold_idle(env, with_get=False)


if __name__ == "__main__":
    zl.main(globals())
