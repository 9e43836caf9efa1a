"""Holds many idle TLS HTTP/2 connections open, for scripts/bench's memory figure.

Each connection: TCP connect, TLS 1.3 handshake (TLS_AES_128_GCM_SHA256 only, ALPN h2),
the client connection preface and an empty SETTINGS frame, then the server's SETTINGS
is read and acknowledged. After that the connection sends nothing more: it is what a
phone that opened an app and went quiet looks like to the proxy.

Standard library only (Debian's python3); no h2 package is needed for two frames.
Python's ssl module cannot restrict TLS 1.3 suites, so scripts/bench runs this file as
a child process with OPENSSL_CONF pointing at openssl-client.cnf (TLS 1.3,
TLS_AES_128_GCM_SHA256 only), like h2load's --tls13-ciphers.

  python3 idle_client.py HOST PORT COUNT DEADLINE_S
prints one JSON line when the connections are open, then reads commands on stdin:
"alive" prints how many are still open, "close" closes them all and exits.
"""

import json
import resource
import socket
import ssl
import sys
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS_EMPTY = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
SETTINGS_ACK = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"


def _context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # a throwaway self-signed certificate
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_alpn_protocols(["h2"])
    # TLS 1.3 suites come from OPENSSL_CONF (see the module comment); the suite
    # actually negotiated is counted per connection.
    return ctx


def _read_server_settings(s, deadline):
    """Reads frames until the server's (non-ACK) SETTINGS; returns True if seen."""
    buf = b""
    while time.monotonic() < deadline:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = s.recv(16384)
        except (socket.timeout, ssl.SSLWantReadError):
            continue
        if not data:
            return False
        buf += data
        while len(buf) >= 9:
            length = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + length:
                break
            ftype, flags = buf[3], buf[4]
            buf = buf[9 + length:]
            if ftype == 4 and not flags & 1:
                return True
    return False


class IdleConnections:
    def __init__(self):
        self.socks = []
        self.failed = 0
        self.ciphers = {}
        self.first_error = None

    def open(self, host, port, count, deadline_s):
        """Opens up to |count| connections, one after another, within |deadline_s|."""
        ctx = _context()
        end = time.monotonic() + deadline_s
        for _ in range(count):
            if time.monotonic() > end:
                break
            try:
                raw = socket.create_connection((host, port), timeout=5)
                s = ctx.wrap_socket(raw, server_hostname="localhost")
                if s.selected_alpn_protocol() != "h2":
                    raise OSError("ALPN h2 not selected")
                s.sendall(PREFACE + SETTINGS_EMPTY)
                if not _read_server_settings(s, time.monotonic() + 5):
                    raise OSError("no SETTINGS from the server")
                s.sendall(SETTINGS_ACK)
                s.setblocking(False)
                c = s.cipher()[0] if s.cipher() else "?"
                self.ciphers[c] = self.ciphers.get(c, 0) + 1
                self.socks.append(s)
            except (OSError, ssl.SSLError) as e:
                self.failed += 1
                if self.first_error is None:
                    self.first_error = repr(e)
                try:
                    raw.close()
                except Exception:
                    pass
        return len(self.socks)

    def alive(self):
        """Drains whatever the servers sent (SETTINGS ACK, tickets) without answering
        anything else; returns how many connections are still open."""
        n = 0
        for s in self.socks:
            ok = True
            try:
                while True:
                    d = s.recv(16384)
                    if not d:
                        ok = False
                        break
            except (ssl.SSLWantReadError, BlockingIOError):
                pass
            except (OSError, ssl.SSLError):
                ok = False
            n += ok
        return n

    def close(self):
        for s in self.socks:
            try:
                s.close()
            except Exception:
                pass
        self.socks = []


def main():
    host, port, count, deadline = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, count + 256) if hard != resource.RLIM_INFINITY else count + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    conns = IdleConnections()
    t0 = time.monotonic()
    held = conns.open(host, port, count, deadline)
    print(json.dumps({"held": held, "failed": conns.failed, "ciphers": conns.ciphers,
                      "first_error": conns.first_error,
                      "seconds": round(time.monotonic() - t0, 2)}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "alive":
            print(json.dumps({"alive": conns.alive()}), flush=True)
        elif cmd == "close":
            break
    conns.close()


if __name__ == "__main__":
    main()
