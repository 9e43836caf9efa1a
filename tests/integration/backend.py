#!/usr/bin/python3
"""A recording HTTP/1.1 test backend for zaslon's integration tests.

Run as a subprocess by zl.Backend:

    backend.py --port PORT --name NAME --log FILE

It listens on 127.0.0.1:PORT, keeps connections alive, and appends one JSON line per
request to FILE, written after the request body has been read and before the response
goes out:

    {"backend", "method", "path", "version", "headers": [[name, value], ...] (as
     received, in order, names with their case), "body_length", "body_sha256",
     "body_complete", "chunked", "peer", "peer_port", "time"}

Endpoints (the query string is ignored for dispatch):

    /echo          the request body back, with the request's content-type
    /bytes/N       N deterministic bytes (pattern_chunks), with content-length
    /sha256        hex sha256 of the body (content-length or chunked), 64 characters
    /status/N      status N, body "status N" (none for 1xx/204/304)
    /slow/MS       waits MS milliseconds, then 200 "slow MS"
    /headers       this request's record as JSON
    anything else  200 "backend NAME PATH"

Every response carries Server, X-Powered-By and Via fields with distinctive values so
tests can check the gateway does not pass them on. Bodies are read and written in
64 KiB chunks: memory stays bounded for any size, in both directions.
"""

import argparse
import hashlib
import json
import os
import socket
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHUNK = 64 * 1024
ECHO_MAX = 64 * 1024 * 1024
LEAKY_SERVER = "BackendLeak/9.9.9"
LEAKY_POWERED_BY = "PHP/5.1.6-leak"
LEAKY_VIA = "1.1 backend-leak-via"

_BASE = bytes((i * 131 + 7) % 251 for i in range(CHUNK))


def pattern_chunks(n, chunk=CHUNK):
    """Yields the first |n| bytes of the test pattern, in pieces of at most |chunk|.

    Block i of 64 KiB is the base block with its first 8 bytes replaced by i (big
    endian), so a repeated, dropped or reordered block changes the digest."""
    sent = 0
    block_index = 0
    while sent < n:
        block = struct.pack(">Q", block_index) + _BASE[8:]
        block_index += 1
        take = min(CHUNK, n - sent)
        block = block[:take]
        for off in range(0, take, chunk):
            yield block[off:off + chunk]
        sent += take


class BodyError(Exception):
    pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 300  # a stuck peer must not keep a thread forever
    # The head and the body go out in separate writes: without TCP_NODELAY the body
    # waits for the peer's delayed ACK (~40 ms a request).
    disable_nagle_algorithm = True

    def version_string(self):
        return LEAKY_SERVER

    def log_message(self, fmt, *args):  # quiet: 20000-request runs would flood stderr
        pass

    # every method goes through one dispatcher
    def do_GET(self):
        self.dispatch()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    # --- request body -------------------------------------------------------------

    def body_chunks(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            yield from self.chunked_body()
            return
        cl = self.headers.get("Content-Length")
        if cl is None:
            return
        try:
            remaining = int(cl)
        except ValueError:
            raise BodyError("bad content-length")
        while remaining > 0:
            data = self.rfile.read(min(CHUNK, remaining))
            if not data:
                raise BodyError("eof in body")
            remaining -= len(data)
            yield data

    def chunked_body(self):
        while True:
            line = self.rfile.readline(1024)
            if not line.endswith(b"\n"):
                raise BodyError("bad chunk size line")
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while True:  # trailers
                    t = self.rfile.readline(65536)
                    if t in (b"\r\n", b"\n"):
                        return
                    if not t:
                        raise BodyError("eof in trailers")
            remaining = size
            while remaining > 0:
                data = self.rfile.read(min(CHUNK, remaining))
                if not data:
                    raise BodyError("eof in chunk")
                remaining -= len(data)
                yield data
            if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise BodyError("missing chunk terminator")

    def read_body(self, keep):
        """Reads the whole body, hashing it. Returns (bytes or None, record fields)."""
        h = hashlib.sha256()
        n = 0
        kept = [] if keep else None
        complete = True
        try:
            for data in self.body_chunks():
                h.update(data)
                n += len(data)
                if kept is not None:
                    if n > ECHO_MAX:
                        kept = None
                        keep = False
                    else:
                        kept.append(data)
        except (BodyError, ValueError, OSError):
            complete = False
        fields = {"body_length": n, "body_sha256": h.hexdigest(), "body_complete": complete}
        return (b"".join(kept) if kept is not None else None), fields

    # --- recording ---------------------------------------------------------------

    def record(self, fields):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        rec = {
            "backend": self.server.backend_name,
            "method": self.command,
            "path": self.path,
            "version": self.request_version,
            "headers": [[k, v] for k, v in self.headers.items()],
            "chunked": "chunked" in te,
            "peer": self.client_address[0],
            "peer_port": self.client_address[1],
            "time": time.time(),
        }
        rec.update(fields)
        line = json.dumps(rec, sort_keys=True) + "\n"
        with self.server.log_lock:
            self.server.log_file.write(line)
            self.server.log_file.flush()
        return rec

    # --- responses ---------------------------------------------------------------

    def start(self, status, length, ctype="text/plain", extra=()):
        self.send_response(status)
        self.send_header("X-Powered-By", LEAKY_POWERED_BY)
        self.send_header("Via", LEAKY_VIA)
        self.send_header("X-Backend", self.server.backend_name)
        if length is not None:
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(length))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()

    def reply(self, status, body, ctype="text/plain"):
        no_body = status < 200 or status in (204, 304)
        self.start(status, None if no_body else len(body), ctype)
        if not no_body and self.command != "HEAD":
            self.wfile.write(body)

    def dispatch(self):
        path = urllib.parse.urlsplit(self.path).path
        keep = path == "/echo"
        body, fields = self.read_body(keep)
        rec = self.record(fields)
        if not fields["body_complete"]:
            self.close_connection = True
            return
        parts = path.split("/")
        try:
            if path == "/echo":
                if body is None:
                    self.reply(413, b"echo body too large")
                else:
                    ctype = self.headers.get("Content-Type") or "application/octet-stream"
                    self.reply(200, body, ctype)
            elif len(parts) == 3 and parts[1] == "bytes" and parts[2].isdigit():
                self.send_bytes(int(parts[2]))
            elif path == "/sha256":
                self.reply(200, fields["body_sha256"].encode())
            elif len(parts) == 3 and parts[1] == "status" and parts[2].isdigit():
                code = int(parts[2])
                self.reply(code, b"status %d" % code)
            elif len(parts) == 3 and parts[1] == "slow" and parts[2].isdigit():
                ms = int(parts[2])
                time.sleep(ms / 1000.0)
                self.reply(200, b"slow %d" % ms)
            elif path == "/headers":
                self.reply(200, json.dumps(rec, sort_keys=True).encode(), "application/json")
            else:
                msg = "backend %s %s" % (self.server.backend_name, self.path)
                self.reply(200, msg.encode())
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True

    def send_bytes(self, n):
        self.start(200, n, "application/octet-stream")
        if self.command == "HEAD":
            return
        for piece in pattern_chunks(n):
            self.wfile.write(piece)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def handle_error(self, request, client_address):
        # peers that vanish mid-request are normal in these tests
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, socket.timeout, BodyError)):
            return
        super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--name", default="a")
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    srv = Server((args.host, args.port), Handler)
    srv.backend_name = args.name
    srv.log_lock = threading.Lock()
    srv.log_file = open(args.log, "a", encoding="utf-8")
    sys.stdout.write("ready %d\n" % os.getpid())
    sys.stdout.flush()
    try:
        srv.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
