#!/usr/bin/python3
"""h2flood: raw HTTP/2 attack frames, a measuring sink backend and a latency probe for
test_floods.py.

  frame / hdr_block / Attacker   frames as bytes; an h2c connection that sends them in
                                 batches and notes when (and how) the server ends it
  Sink                           an HTTP/1.1 backend in a thread that records, per
                                 request, when it arrived and when it ended (answered or
                                 the peer closed), and the most requests in flight
  probe                          `h2flood.py probe PORT PATH OUT` in a subprocess (its
                                 own interpreter, so the attacker's loop cannot delay
                                 it): sequential GETs over one h2c connection, one line
                                 "start latency_ms status" per request (start on the
                                 system's monotonic clock), until SIGTERM
"""

import select
import signal
import socket
import struct
import sys
import threading
import time

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, \
    WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x20
CANCEL, ENHANCE_YOUR_CALM = 0x8, 0xb
TCP_CLOSE, TCP_CLOSE_WAIT = 7, 8  # linux/tcp_states.h


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", ftype, flags,
                                                              sid & 0x7fffffff) + payload


def hdr_block(path, extra=(), authority="localhost"):
    """An HPACK block for GET |path| that leaves the peer's dynamic table alone (every
    field indexed from the static table or a literal without indexing)."""
    enc = hpack.Encoder()
    fields = [(":method", "GET"), (":scheme", "http"), (":authority", authority),
              (":path", path)] + list(extra)
    return enc.encode([hpack.NeverIndexedHeaderTuple(k, v) for k, v in fields])


def request(sid, path, end_stream=True):
    return frame(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0), sid,
                 hdr_block(path))


class Result:
    def __init__(self):
        self.frames = 0         # attack frames sent before the end was seen
        self.goaway = None      # the server's GOAWAY error code, if one arrived
        self.closed = False     # EOF or reset from the server
        self.seconds = 0.0      # from the first attack frame to the end
        self.received = {}      # frame type -> count, of what the server sent

    @property
    def ended(self):
        return self.closed or self.goaway is not None

    def __repr__(self):
        return "frames=%d goaway=%s closed=%s %.2fs" % (self.frames, self.goaway,
                                                         self.closed, self.seconds)


class Attacker:
    """One h2c connection to 127.0.0.1:|port|: the preface and an empty SETTINGS go out
    at once; |rcvbuf| shrinks the receive buffer (for attacks that do not read)."""

    def __init__(self, port, rcvbuf=None):
        s = socket.socket()
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.connect(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        self.sock = s
        self.inbuf = bytearray()
        self.res = Result()
        self.pings = self.acked = 0
        self.send(PREFACE + frame(SETTINGS, 0, 0))

    def send(self, data, timeout=5.0):
        """Sends |data|; False if the peer closed or the socket stayed full |timeout| s."""
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        while view:
            try:
                n = self.sock.send(view)
                view = view[n:]
                continue
            except BlockingIOError:
                pass
            except OSError:
                self.res.closed = True
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            select.select([], [self.sock], [], min(left, 0.1))
        return True

    def read(self, timeout=0.0):
        """Reads what is there (waiting up to |timeout| s for the first bytes) and
        parses frames. Returns False once the server has closed."""
        if self.res.closed:
            return False
        r, _, _ = select.select([self.sock], [], [], timeout)
        while r:
            try:
                data = self.sock.recv(1 << 20)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                self.res.closed = True
                break
            self.inbuf += data
        while len(self.inbuf) >= 9:
            n = int.from_bytes(self.inbuf[:3], "big")
            if len(self.inbuf) < 9 + n:
                break
            ftype = self.inbuf[3]
            self.res.received[ftype] = self.res.received.get(ftype, 0) + 1
            if ftype == PING and self.inbuf[4] & ACK:
                self.acked = int.from_bytes(self.inbuf[9:17], "big")
            if ftype == GOAWAY and n >= 8:
                self.res.goaway = int.from_bytes(self.inbuf[13:17], "big")
            del self.inbuf[:9 + n]
        return not self.res.closed

    def flood(self, make, max_frames, batch=50, sync=True, reading=True, pace=0.0,
              seconds=20.0):
        """Sends make(i) (one frame's bytes, or a list of frames) for i = 0, 1, ...
        in batches of |batch| frames until the server ends the connection,
        |max_frames| are sent, or |seconds| pass. With |sync| each batch is followed by
        a PING whose ACK is awaited, so every frame counted was processed before the
        next batch goes (not inside a header block); otherwise |pace| s pass between
        batches. Without |reading| nothing is ever read: sending stops when the socket
        stays full for 2 s, then the server's close is awaited. Returns the Result."""
        t0 = time.monotonic()
        i = 0
        while self.res.frames < max_frames and time.monotonic() - t0 < seconds:
            chunk = []
            while len(chunk) < batch and self.res.frames + len(chunk) < max_frames:
                f = make(i)
                i += 1
                chunk.extend(f if isinstance(f, list) else [f])
            data = b"".join(chunk)
            if sync:
                self.pings += 1
                data += frame(PING, 0, 0, self.pings.to_bytes(8, "big"))
            if not self.send(data, timeout=2.0):
                break
            self.res.frames += len(chunk)
            if not reading:
                continue
            if sync:
                deadline = time.monotonic() + 10
                while self.acked < self.pings and time.monotonic() < deadline:
                    if not self.read(0.05) or self.res.goaway is not None:
                        break
            elif pace:
                self.read(pace)
            if not self.read() or self.res.goaway is not None:
                break
        if reading:
            self.finish(t0)
        else:
            self.await_close(t0)
        return self.res

    def finish(self, t0, timeout=15.0):
        """Reads until the server closes (or |timeout| s); fills in the end time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.read(0.1):
            pass
        self.res.seconds = time.monotonic() - t0

    def await_close(self, t0, timeout=15.0):
        """Without reading: waits until the kernel says the server has closed (FIN or
        reset: TCP_INFO's state is CLOSE_WAIT or CLOSE); then reads what is left."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
            if state in (TCP_CLOSE, TCP_CLOSE_WAIT):
                self.res.closed = True
                break
            time.sleep(0.05)
        self.res.seconds = time.monotonic() - t0

    def close(self):
        self.sock.close()


# ------------------------------------------------------------------------ the sink

class Sink:
    """An HTTP/1.1 keep-alive backend on 127.0.0.1: `/sink/MS` is answered 200 after MS
    milliseconds unless the peer closes first. Records (arrival, end, cancelled) per
    request and the highest number in flight at once."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(1024)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.records = []   # [arrival, end or None, cancelled]
        self.inflight = 0
        self.max_inflight = 0
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def reset_stats(self):
        with self.lock:
            self.records = []
            self.max_inflight = self.inflight

    def _accept(self):
        while not self._stop:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, buf = buf.split(b"\r\n\r\n", 1)
                path = head.split(b" ", 2)[1].decode("latin-1")
                try:
                    ms = int(path.split("/")[2].split("?")[0])
                except (IndexError, ValueError):
                    ms = 0
                rec = [time.monotonic(), None, False]
                with self.lock:
                    self.records.append(rec)
                    self.inflight += 1
                    self.max_inflight = max(self.max_inflight, self.inflight)
                try:
                    closed = self._hold(c, ms / 1000.0)
                    if not closed:
                        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                                  b"Content-Type: text/plain\r\n\r\nok")
                finally:
                    with self.lock:
                        rec[1] = time.monotonic()
                        rec[2] = closed
                        self.inflight -= 1
                if closed:
                    return
        except OSError:
            return
        finally:
            c.close()

    @staticmethod
    def _hold(c, seconds):
        """Waits |seconds|; True if the peer closed the connection meanwhile."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            r, _, _ = select.select([c], [], [], min(left, 0.05))
            if r:
                try:
                    if not c.recv(1, socket.MSG_PEEK):
                        return True
                except OSError:
                    return True
                time.sleep(min(left, 0.005))  # pipelined bytes: keep waiting

    def close(self):
        self._stop = True
        self.lsock.close()


# ----------------------------------------------------------------------- the probe

def probe_main(port, path, out_path):
    """Sequential GETs over one h2c connection until SIGTERM; a new connection after a
    GOAWAY or close. One line per request: "start latency_ms status" (status 0:
    failed)."""
    import h2.config
    import h2.connection
    import h2.events

    class _KeepReceiving(h2.connection.H2Connection):
        """Lets the stream a GOAWAY names as the last one finish (as zl's client)."""

        def _receive_goaway_frame(self, frame):
            frames, events = super()._receive_goaway_frame(frame)
            self.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
            return frames, events
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    out = open(out_path, "w", buffering=1)
    conn = sock = None
    while not stop:
        if conn is None:
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _KeepReceiving(h2.config.H2Configuration(
                client_side=True, header_encoding="utf-8"))
            conn.initiate_connection()
            sock.sendall(conn.data_to_send())
        t0 = time.monotonic()
        status, done, fresh = 0, False, False
        try:
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"),
                                    (":authority", "localhost"), (":path", path)],
                              end_stream=True)
            sock.sendall(conn.data_to_send())
            while not done and time.monotonic() - t0 < 10:
                data = sock.recv(65536)
                if not data:
                    break
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                        status = int(dict(ev.headers)[":status"])
                    elif isinstance(ev, h2.events.DataReceived):
                        conn.acknowledge_received_data(ev.flow_controlled_length,
                                                       ev.stream_id)
                    elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                        done = True
                    elif isinstance(ev, h2.events.ConnectionTerminated):
                        fresh = True
                sock.sendall(conn.data_to_send())
        except Exception:
            status, fresh = 0, True
        if not done:
            status = 0
        out.write("%.4f %.3f %d\n" % (t0, (time.monotonic() - t0) * 1000, status))
        if fresh or not done:
            sock.close()
            conn = None
        time.sleep(0.01)
    out.close()


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "probe":
        probe_main(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        sys.stderr.write("usage: h2flood.py probe PORT PATH OUT\n")
        sys.exit(2)
