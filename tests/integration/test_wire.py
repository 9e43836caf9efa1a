#!/usr/bin/python3
"""What zaslon puts on the wire per HTTP/2 response over TLS: the frames of one flush
leave in as few TLS records as their size allows (one record holds up to 16 KiB), not
one record per internal buffer. The client here does its own TLS through memory BIOs,
so it sees every record as it comes off the socket and can count them."""

import os
import socket
import ssl
import time

import h2.config
import h2.connection
import h2.events

import zl

RECORD_MAX = 16384


class RecordClient:
    """TLS 1.2/1.3 h2 client that counts the application-data records it receives."""

    def __init__(self, port, ca):
        ctx = ssl.create_default_context(cafile=ca)
        ctx.set_alpn_protocols(["h2"])
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.inc, self.out, server_hostname="localhost")
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.raw = b""
        self.records = 0
        self.per_record = False  # decrypt and parse one record at a time
        self.pending = []        # (record number, h2 event) when per_record
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._send_tls()
                self._recv(block=True, count=False)
        self._send_tls()
        zl.assert_eq(self.tls.selected_alpn_protocol(), "h2", "ALPN")
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8"))
        self.h2.initiate_connection()
        self._send_h2()

    def _send_tls(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def _send_h2(self):
        data = self.h2.data_to_send()
        if data:
            self.tls.write(data)
        self._send_tls()

    def _recv(self, block, count=True):
        """Reads what the socket has; feeds whole records to TLS, counting type 23
        (application data; TLS 1.3 hides the real type behind it). Returns False on EOF
        or when nothing came (non-blocking)."""
        self.sock.settimeout(10 if block else 0.2)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        if not data:
            return False
        self.raw += data
        while len(self.raw) >= 5:
            n = int.from_bytes(self.raw[3:5], "big")
            if len(self.raw) < 5 + n:
                break
            rec, self.raw = self.raw[:5 + n], self.raw[5 + n:]
            if count and rec[0] == 23:
                self.records += 1
            self.inc.write(rec)
            if self.per_record and count:
                self.pending += [(self.records, ev) for ev in self._events()]
        return True

    def _events(self):
        plain = b""
        while True:
            try:
                chunk = self.tls.read(65536)
            except ssl.SSLWantReadError:
                break
            if not chunk:
                break
            plain += chunk
        events = self.h2.receive_data(plain) if plain else []
        self._send_h2()
        return events

    def settle(self):
        """Until the server's SETTINGS and the ACK of ours are in, then until the line
        is quiet (session tickets, window updates), so later counts are the response's."""
        got_settings = got_ack = False
        deadline = time.monotonic() + 10
        while not (got_settings and got_ack):
            assert time.monotonic() < deadline, "no SETTINGS exchange"
            self._recv(block=True)
            for ev in self._events():
                if isinstance(ev, h2.events.RemoteSettingsChanged):
                    got_settings = True
                elif isinstance(ev, h2.events.SettingsAcknowledged):
                    got_ack = True
        while self._recv(block=False):
            self._events()

    def get(self, path):
        """Sends one GET; returns (status, body, records received until END_STREAM)."""
        self.records = 0
        sid = self.h2.get_next_available_stream_id()
        self.h2.send_headers(sid, [(":method", "GET"), (":scheme", "https"),
                                   (":authority", "localhost"), (":path", path)],
                             end_stream=True)
        self._send_h2()
        status, body, done = None, b"", False
        deadline = time.monotonic() + 10
        while not done:
            assert time.monotonic() < deadline, "no answer to %s" % path
            assert self._recv(block=True), "connection closed during %s" % path
            for ev in self._events():
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                    status = dict(ev.headers).get(":status")
                elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid:
                    body += ev.data
                    self.h2.acknowledge_received_data(ev.flow_controlled_length, sid)
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                    done = True
            self._send_h2()  # window updates for what was just read
        return status, body, self.records

    def post_cut_short(self, path):
        """Sends a POST whose body never ends; returns the record numbers that carried
        the response's END_STREAM and the server's RST_STREAM."""
        self.per_record = True
        self.records = 0
        sid = self.h2.get_next_available_stream_id()
        self.h2.send_headers(sid, [(":method", "POST"), (":scheme", "https"),
                                   (":authority", "localhost"), (":path", path),
                                   ("content-length", "100000")])
        self.h2.send_data(sid, b"x" * 100)
        self._send_h2()
        ended = reset = None
        deadline = time.monotonic() + 10
        while ended is None or reset is None:
            assert time.monotonic() < deadline, "no end and reset for %s" % path
            assert self._recv(block=True), "connection closed during %s" % path
            for rec, ev in self.pending:
                if isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                    ended = rec
                elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == sid:
                    zl.assert_eq(ev.error_code, 0, "reset code (NO_ERROR)")
                    reset = rec
            self.pending = []
        self.per_record = False
        return ended, reset

    def get_many(self, path, n):
        """Sends n GETs, each in a TLS record of its own, all in one socket write;
        returns how many were answered 200 with END_STREAM within 10 s."""
        sids = []
        for _ in range(n):
            sid = self.h2.get_next_available_stream_id()
            self.h2.send_headers(sid, [(":method", "GET"), (":scheme", "https"),
                                       (":authority", "localhost"), (":path", path)],
                                 end_stream=True)
            self.tls.write(self.h2.data_to_send())  # one record per request
            sids.append(sid)
        self._send_tls()
        ok, ended = set(), set()
        deadline = time.monotonic() + 10
        while len(ended) < n and time.monotonic() < deadline:
            if not self._recv(block=True):
                continue
            for ev in self._events():
                if isinstance(ev, h2.events.ResponseReceived):
                    if dict(ev.headers).get(":status") == "200":
                        ok.add(ev.stream_id)
                elif isinstance(ev, h2.events.DataReceived):
                    self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    ended.add(ev.stream_id)
            self._send_h2()
        return len(ok & ended & set(sids))

    def close(self):
        self.sock.close()


def record_client(env, files):
    """zaslon serving |files| (name: bytes) from its cover root over TLS, and a
    RecordClient past the SETTINGS exchange."""
    for name, data in files.items():
        env.write("site/" + name, data)
    cfg = zl.edge_config(env, plain=False, cover={"root": env.path("site")},
                         log_level="info")
    z = env.zaslon(cfg)
    c = RecordClient(z.port_for("h2"), env.certs().ca)
    c.settle()
    return c


def test_records_per_response(env):
    """A 1 KiB file: HEADERS and DATA in one record (two before: HEADERS with the DATA
    frame header, then the body). 40 KiB: three full-ish records (six or more before,
    one per internal buffer). 100 KiB: cut into flushes by the 64 KiB stream window and
    our WINDOW_UPDATEs; each flush leaves in whole records."""
    small = b"a" * 1024
    large = bytes(range(256)) * 160  # 40 KiB
    huge = b"z" * (100 * 1024)
    c = record_client(env, {"one.bin": small, "forty.bin": large, "hundred.bin": huge})
    try:
        for _ in range(3):
            status, body, records = c.get("/one.bin")
            zl.assert_eq(status, "200", "1 KiB status")
            zl.assert_eq(body, small, "1 KiB body")
            zl.assert_eq(records, 1, "records for a 1 KiB answer")
        status, body, records = c.get("/forty.bin")
        zl.assert_eq(status, "200", "40 KiB status")
        zl.assert_eq(body, large, "40 KiB body")
        # 40,960 body bytes + HEADERS + three DATA frame headers: three records.
        assert records <= 3, "40 KiB answer took %d records" % records
        status, body, records = c.get("/hundred.bin")
        zl.assert_eq(status, "200", "100 KiB status")
        zl.assert_eq(body, huge, "100 KiB body")
        least = (len(huge) + RECORD_MAX - 1) // RECORD_MAX
        # Flow control cuts the answer into a few flushes, each ending in a part record.
        assert least <= records <= least + 4, \
            "100 KiB answer took %d records (at least %d)" % (records, least)
    finally:
        c.close()


def test_reset_after_response_in_its_own_record(env):
    """A response that ends while the request body is still coming is followed by
    RST_STREAM(NO_ERROR) (RFC 9113 8.1). The reset must not share the response's last
    record: libcurl 7.88 over OpenSSL reads one record at a time and, given both at
    once, fails a complete answer whose upload was cut (zaslonctl then saw a transport
    failure instead of the cover's answer)."""
    c = record_client(env, {"index.html": "<!doctype html><title>x</title>\n"})
    try:
        for _ in range(3):
            ended, reset = c.post_cut_short("/index.html")
            assert reset > ended, "END_STREAM in record %d, RST_STREAM in %d" % (ended, reset)
    finally:
        c.close()


def test_records_read_ahead_are_all_read(env):
    """zaslon reads TLS ahead (one socket read takes every record that is there) and
    libevent 2.1 hands over only the first record or two of such a read: the rest must
    still be read at once, not when the next packet comes. 40 requests in 40 records
    sent in one write, then silence: all 40 are answered."""
    c = record_client(env, {"one.bin": b"a" * 1024})
    try:
        for _ in range(3):
            zl.assert_eq(c.get_many("/one.bin", 40), 40, "answered of 40 in one write")
    finally:
        c.close()


def _closed_within(sock, limit):
    """Seconds until the peer closes |sock| (EOF or reset), or None after |limit|."""
    t0 = time.monotonic()
    sock.settimeout(0.5)
    while time.monotonic() - t0 < limit:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - t0
        except socket.timeout:
            pass
        except ConnectionError:
            return time.monotonic() - t0
    return None


def test_bad_record_read_ahead_ends_the_connection(env):
    """Ten good records and then a forged one (or the client's close_notify), all in
    one write, then silence: the good ones come in through libevent, the last only when
    zaslon drains what it read ahead. The good ones carry WINDOW_UPDATEs, which ask for
    no answer, so no write meets the ended TLS state either. The connection must end
    at once (for the forged record OpenSSL sends bad_record_mac), not when the 60 s
    idle deadline passes."""
    for tail in ("forged", "close_notify"):
        c = record_client(env, {"one.bin": b"a" * 1024})
        try:
            for _ in range(10):
                c.h2.increment_flow_control_window(1)
                c.tls.write(c.h2.data_to_send())  # one record each
            if tail == "forged":
                # application data whose tag cannot verify
                last = bytes([23, 3, 3, 0, 64]) + os.urandom(64)
            else:
                try:
                    c.tls.unwrap()
                except ssl.SSLWantReadError:
                    pass  # close_notify written; ours would wait for the server's
                last = b""
            c.sock.sendall(c.out.read() + last)
            took = _closed_within(c.sock, 10)
            assert took is not None, "%s: connection still open after 10 s" % tail
            assert took < 2, "%s: closed after %.1f s" % (tail, took)
        finally:
            c.close()

if __name__ == "__main__":
    zl.main(globals())
