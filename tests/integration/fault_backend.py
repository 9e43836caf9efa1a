#!/usr/bin/python3
"""A misbehaving HTTP/1.1 backend for test_faults.py, run as a subprocess:

    fault_backend.py --port PORT --log FILE

It listens on 127.0.0.1:PORT (asyncio: thousands of requests a second on one core),
reads each request in full (head, then a Content-Length or chunked body), appends one
line to FILE, flushed before any byte of the answer goes out:

    MODE ID METHOD CONN SEQ

(ID is the `id` query parameter, "-" without one; CONN the connection's serial; SEQ
the request's number on that connection, from 1), then answers as the first path
segment says:

    /ok             200 "ok ID", keep-alive
    /okclose        200 "ok ID", keep-alive announced, then the connection is closed
                    within a few milliseconds (a stale pooled connection for the next
                    request: the classic cause of a resend)
    /slow/MS        waits MS milliseconds, then 200
    /hang           never answers
    /garbage        bytes that are not HTTP, then a close
    /badstatus      a status line with a bad status code
    /overlong       Content-Length 5 and 64 bytes of body (more than declared)
    /truncchunk     chunked: one chunk, then a close before the last chunk
    /badchunk       chunked, with a chunk size that is not hex
    /bighead        a 1 MiB header field
    /resetbody      Content-Length 100000, 1000 bytes, then a TCP reset
    /closereq       no answer: a close right after the request was read
    /resetreq       no answer: a TCP reset right after the request was read
    /closehead      the head (Content-Length 100), then a close
    /closepartial   the head (Content-Length 100) and 10 bytes, then a close
    /resetpartial   the head (Content-Length 100) and 10 bytes, then a TCP reset

Anything else: 404. blackhole() (for importers) makes a listening socket whose accept
queue is full, so a SYN to it is dropped: a connect there times out."""

import argparse
import asyncio
import os
import socket
import struct
import sys
import urllib.parse

BIG_HEADER = 1 << 20
MAX_HEAD = 1 << 20


class Log:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1)

    def write(self, mode, rid, method, conn, seq):
        self.f.write("%s %s %s %d %d\n" % (mode, rid, method, conn, seq))
        self.f.flush()


def reset(writer):
    """Closes with a TCP RST (SO_LINGER 0) instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


async def read_request(reader):
    """(method, target, keep_alive) of one request, its body read and dropped; None at
    EOF or on a request this backend cannot parse."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        return None
    method, target, version = parts
    fields = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            fields[k.strip().lower()] = v.strip()
    try:
        if "chunked" in fields.get("transfer-encoding", "").lower():
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":
                        pass
                    break
                await reader.readexactly(size + 2)
        elif int(fields.get("content-length", "0")) > 0:
            await reader.readexactly(int(fields["content-length"]))
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError,
            ValueError):
        return None
    keep = version == "HTTP/1.1" and fields.get("connection", "").lower() != "close"
    return method, target, keep


def answer(status, body, extra=b""):
    return (b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n%s\r\n" % (status, len(body), extra)
            + body)


class Server:
    def __init__(self, log):
        self.log = log
        self.conns = 0

    async def handle(self, reader, writer):
        self.conns += 1
        conn, seq = self.conns, 0
        try:
            while True:
                req = await read_request(reader)
                if req is None:
                    break
                method, target, keep = req
                seq += 1
                url = urllib.parse.urlsplit(target)
                segs = url.path.strip("/").split("/")
                mode = segs[0] or "-"
                rid = urllib.parse.parse_qs(url.query).get("id", ["-"])[0]
                self.log.write(mode, rid, method, conn, seq)
                if not await self.respond(mode, segs, rid, writer):
                    return
                if not keep:
                    break
            writer.close()
        except ConnectionError:
            writer.transport.abort()

    async def respond(self, mode, segs, rid, w):
        """Answers per |mode|; returns False once the connection is gone."""
        ok = b"ok " + rid.encode()
        if mode == "ok":
            w.write(answer(200, ok))
        elif mode == "okclose":
            w.write(answer(200, ok))
            await w.drain()
            await asyncio.sleep((hash(rid) % 5) / 1000.0)
            w.close()
            return False
        elif mode == "slow":
            await asyncio.sleep(int(segs[1]) / 1000.0 if len(segs) > 1 else 1.0)
            w.write(answer(200, b"slow"))
        elif mode == "hang":
            await asyncio.sleep(3600)
            return False
        elif mode == "garbage":
            w.write(b"\x16\x03\x01\x02\x00 this is not HTTP at all\r\n\r\n")
            await w.drain()
            w.close()
            return False
        elif mode == "badstatus":
            w.write(b"HTTP/1.1 2x0 Weird\r\nContent-Length: 0\r\n\r\n")
        elif mode == "overlong":
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello" + b"X" * 59)
        elif mode == "truncchunk":
            w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            await w.drain()
            w.close()
            return False
        elif mode == "badchunk":
            w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n")
            await w.drain()
            w.close()
            return False
        elif mode == "bighead":
            w.write(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * BIG_HEADER +
                    b"\r\nContent-Length: 2\r\n\r\nok")
            await w.drain()
        elif mode == "resetbody":
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"r" * 1000)
            await w.drain()
            await asyncio.sleep(0.01)
            reset(w)
            return False
        elif mode in ("closereq", "resetreq"):
            (w.close if mode == "closereq" else lambda: reset(w))()
            return False
        elif mode in ("closehead", "closepartial", "resetpartial"):
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" +
                    (b"p" * 10 if mode != "closehead" else b""))
            await w.drain()
            if mode == "resetpartial":
                await asyncio.sleep(0.005)
                reset(w)
            else:
                w.close()
            return False
        else:
            w.write(answer(404, b"no such mode"))
        await w.drain()
        return True


def blackhole():
    """(listener, fillers, port): a socket listening on 127.0.0.1 with its accept queue
    full, so further SYNs are dropped. Keep the three alive while it is needed."""
    lis = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lis.bind(("127.0.0.1", 0))
    lis.listen(0)
    port = lis.getsockname()[1]
    fillers = []
    for _ in range(4):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(c)
    return lis, fillers, port


async def serve(port, log):
    srv = Server(log)
    server = await asyncio.start_server(srv.handle, "127.0.0.1", port, backlog=1024,
                                        limit=MAX_HEAD)
    async with server:
        await server.serve_forever()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--log", required=True)
    a = ap.parse_args()
    try:
        asyncio.run(serve(a.port, Log(a.log)))
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    os.umask(0o022)
    main()
