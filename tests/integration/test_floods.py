#!/usr/bin/python3
"""HTTP/2 floods and budgets (issue 6), over h2c with raw frames (h2flood.py) against a
zaslon with a recording backend (backend.py, /api/) and a measuring sink (/sink/MS).

Budgets under test, at their defaults: nghttp2's incoming-reset limit and zaslon's own
glitch and provoked-reset buckets all use limits.stream_reset_burst (1000) and
stream_reset_rate (33/s); no separate config keys. A flood may therefore run for at
most BURST + RATE x seconds (+ one batch of slack) frames before the connection ends.

Per attack, while a probe subprocess does sequential GETs of the cover page over its
own connection (the cover, so that the probe measures zaslon and not the Python
backends, which share this box's two cores with the attacker):
  - zaslon lives; the attacking connection ends (GOAWAY or close) within the budget;
  - the probe keeps 100 % success and p99 <= max(2 x baseline, baseline + 50 ms)
    (ZASLON_SANITIZED: max(4 x baseline, baseline + 250 ms), since ASan on a shared
    2-core box is slow and noisy); a miss is measured once more, by running the attack
    again, before it fails;
  - RSS (sampled every 100 ms) stays below baseline + 64 MiB throughout and is back
    within baseline + 24 MiB afterwards (ZASLON_SANITIZED: peak only, + 192 MiB);
  - the sink never has more than MAX_CONCURRENT_STREAMS (100) requests in flight.
Separately: a reset stream's backend request is cancelled within 100 ms (250 ms
sanitized); 150 streams at once give 100 served and 50 REFUSED_STREAM; 5000 sequential
requests on one connection get a graceful GOAWAY after each 1000 and all succeed after
reconnecting; and an honest busy connection (300 requests/s for 10 s, 10 % reset by
the client) is never ended by the budgets."""

import os
import signal
import subprocess
import time

import h2.errors

import zl
from h2flood import (CANCEL, CONTINUATION, DATA, END_HEADERS, END_STREAM,
                     ENHANCE_YOUR_CALM, HEADERS, PING, PRIORITY, RST_STREAM,
                     SETTINGS, WINDOW_UPDATE, Attacker, Sink, frame, hdr_block, request)

SANITIZED = os.environ.get("ZASLON_SANITIZED") == "1"
BURST, RATE = 1000, 33
MAX_STREAMS = 100
BATCH = 50
# Header-block floods cannot be synchronised with PINGs: one frame per PACE s, and
# the close may be seen a few frames late on a loaded box. nghttp2 allows
# max_continuations (8) after the HEADERS.
PACE = 0.01
CONTINUATION_FRAMES = 1 + 8 + 4
CANCEL_MS = 250 if SANITIZED else 100
# Under ASan every allocation carries redzones and freed memory waits in quarantine
# (as test_bodies.py notes), so RSS there gets test_bodies' looser 192 MiB and the
# "back near baseline" check, meaningless with ASan's allocator, is left to release.
RSS_PEAK_MIB = 192 if SANITIZED else 64
RSS_AFTER_MIB = None if SANITIZED else 24


def p99_bound(base):
    if SANITIZED:
        return max(4 * base, base + 250)
    return max(2 * base, base + 50)


def budget_frames(seconds, per=1):
    """Most frames a budgeted flood may send: the burst, the refill over |seconds|,
    one batch in flight; |per| frames make one budgeted event."""
    return per * (BURST + int(RATE * seconds) + 1) + BATCH + per


def start(env, sink, log_level="info", **limits):
    a = env.backend("a")
    cfg = zl.edge_config(env, tls=False,
                         backends={"a": a, "sink": zl.backend_block(url=sink.url)},
                         routes=[zl.route("a", path="/api/"), zl.route("a", path="/slow/"),
                                 zl.route("sink", path="/sink/")],
                         limits=dict({"write_timeout": "5s"}, **limits), log_level=log_level)
    return a, env.zaslon(cfg)


class Probe:
    """h2flood.py's probe in a subprocess: sequential GETs on its own connection."""

    def __init__(self, env, z, path="/"):
        self.out = env.path("probe-%d.txt" % zl.free_port())
        self.proc = env.register(_Proc(subprocess.Popen(
            [zl.PYTHON, os.path.join(zl.HERE, "h2flood.py"), "probe", str(z.plain_port),
             path, self.out], stdin=subprocess.DEVNULL, start_new_session=True)))

    def samples(self, t0=0.0, t1=float("inf")):
        """[(latency_ms, status)] of requests started in [t0, t1]."""
        out = []
        try:
            with open(self.out) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 3 and t0 <= float(parts[0]) <= t1:
                        out.append((float(parts[1]), int(parts[2])))
        except FileNotFoundError:
            pass
        return out


class _Proc:
    def __init__(self, p):
        self.p = p

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)


def p99(vals):
    vals = sorted(vals)
    return vals[min(len(vals) - 1, int(len(vals) * 0.99))] if vals else 0.0


# ---------------------------------------------------------------------- the attacks
# Each takes (port, sink) and returns (Result, most frames allowed, what must end it):
# "calm" = GOAWAY(ENHANCE_YOUR_CALM); "error" = a GOAWAY with an error code, or a
# close without one; "any" = any end.

def rapid_reset(port, sink):
    a = Attacker(port)
    r = a.flood(lambda i: [request(2 * i + 1, "/sink/10000", end_stream=True),
                           frame(RST_STREAM, 0, 2 * i + 1, CANCEL.to_bytes(4, "big"))],
                max_frames=10 * BURST)
    a.close()
    # nghttp2's own limit queues its GOAWAY without stopping the frames already read,
    # so its end may trail the budget by up to two more batches.
    return r, budget_frames(r.seconds, per=2) + 2 * BATCH, "error"


def made_you_reset(kind):
    """A complete request to the sink, then a frame that makes zaslon reset the stream
    (or end the connection)."""
    def run(port, sink):
        def make(i):
            sid = 2 * i + 1
            req = request(sid, "/sink/10000", end_stream=True)
            if kind == "window_zero":
                bad = frame(WINDOW_UPDATE, 0, sid, b"\0\0\0\0")
            elif kind == "window_overflow":
                bad = frame(WINDOW_UPDATE, 0, sid, b"\x7f\xff\xff\xff")
            elif kind == "data_after_end":
                bad = frame(DATA, 0, sid, b"x")
            elif kind == "headers_after_end":
                bad = frame(HEADERS, END_HEADERS | END_STREAM, sid,
                            b"\x10\x01x\x01y")
            else:  # bad_priority: the stream depends on itself
                bad = frame(PRIORITY, 0, sid, sid.to_bytes(4, "big") + b"\x10")
            return [req, bad]
        a = Attacker(port)
        r = a.flood(make, max_frames=10 * BURST)
        a.close()
        # nghttp2 makes the first three connection errors; the others are stream
        # errors, answered with resets that zaslon's budgets count.
        want = "calm" if kind in ("window_overflow", "bad_priority") else "error"
        return r, budget_frames(r.seconds, per=2), want
    run.__name__ = "made_you_reset_" + kind
    return run


def continuation_zero(port, sink):
    a = Attacker(port)
    r = a.flood(lambda i: frame(HEADERS, 0, 1, hdr_block("/sink/0")) if i == 0 else
                frame(CONTINUATION, 0, 1), max_frames=5000, batch=1, sync=False, pace=PACE)
    a.close()
    return r, CONTINUATION_FRAMES, "error"


def continuation_16k(port, sink):
    value = b"v" * 16000
    lit = b"\x10\x04x-16\x7f" + _hpack_int(len(value), 7)[1:] + value  # never indexed

    def make(i):
        if i == 0:
            return frame(HEADERS, 0, 1, hdr_block("/sink/0"))
        return frame(CONTINUATION, 0, 1, lit)
    a = Attacker(port)
    r = a.flood(make, max_frames=2000, batch=1, sync=False, pace=PACE)
    a.close()
    return r, CONTINUATION_FRAMES, "error"


def continuation_after_refusal(port, sink):
    """100 streams fill MAX_CONCURRENT_STREAMS; the 101st is refused with a reset and
    its header block is ignored, then never ends."""
    a = Attacker(port)
    for i in range(MAX_STREAMS):
        a.send(request(2 * i + 1, "/sink/3000"))
    a.read(0.5)
    sid = 2 * MAX_STREAMS + 1
    r = a.flood(lambda i: frame(HEADERS, 0, sid, hdr_block("/sink/0")) if i == 0 else
                frame(CONTINUATION, 0, sid), max_frames=5000, batch=1, sync=False, pace=PACE)
    a.close()
    return r, CONTINUATION_FRAMES, "error"


def _hpack_int(n, prefix):
    """HPACK integer with a |prefix|-bit prefix (first byte's flag bits left zero)."""
    top = (1 << prefix) - 1
    if n < top:
        return bytes([n])
    out = [top]
    n -= top
    while n >= 128:
        out.append(n % 128 + 128)
        n //= 128
    out.append(n)
    return bytes(out)


def hpack_bomb(port, sink):
    """A 4000-byte entry in the dynamic table, then header blocks of nothing but
    references to it: 16 KiB of block decodes to 64 MB of fields."""
    bomb = b"\x40\x06x-bomb" + b"\x7f" + _hpack_int(4000, 7)[1:] + b"b" * 4000

    def make(i):
        sid = 2 * i + 1
        if i == 0:
            return frame(HEADERS, END_HEADERS | END_STREAM, sid, hdr_block("/sink/0") + bomb)
        block = hdr_block("/sink/0")
        return frame(HEADERS, END_HEADERS | END_STREAM, sid,
                     block + b"\xbe" * (16384 - len(block)))
    a = Attacker(port)
    r = a.flood(make, max_frames=5 * BURST, batch=10)
    a.close()
    return r, budget_frames(r.seconds), "calm"


def oversized_headers(port, sink):
    """150 fields per request (the cap is 100): 431 each, and the budget ends it."""
    extra = [("x-f%d" % k, "v") for k in range(150)]
    a = Attacker(port)
    r = a.flood(lambda i: frame(HEADERS, END_HEADERS | END_STREAM, 2 * i + 1,
                                hdr_block("/sink/0", extra)), max_frames=5 * BURST)
    a.close()
    return r, budget_frames(r.seconds), "calm"


def noread(ftype, payload=b""):
    """SETTINGS or PING frames, never reading the ACKs: zaslon stops reading once its
    output is full and the write timeout (5 s here) ends the connection."""
    def run(port, sink):
        a = Attacker(port, rcvbuf=4096)
        r = a.flood(lambda i: frame(ftype, 0, 0, payload), max_frames=2000000,
                    batch=500, sync=False, reading=False, seconds=10)
        a.close()
        return r, None, "any"
    run.__name__ = "noread_" + {SETTINGS: "settings", PING: "ping"}[ftype]
    return run


def settings_2000(port, sink):
    a = Attacker(port)
    r = a.flood(lambda i: frame(SETTINGS, 0, 0, b"\x00\x99\x00\x00\x00\x00" * 2000),
                max_frames=1, batch=1, sync=False)
    a.close()
    return r, 1, "calm"


def empty_data(port, sink):
    def make(i):
        if i == 0:
            return frame(HEADERS, END_HEADERS, 1, hdr_block("/sink/10000"))
        return frame(DATA, 0, 1)
    a = Attacker(port)
    r = a.flood(make, max_frames=10 * BURST)
    a.close()
    return r, budget_frames(r.seconds) + 1, "calm"


def unknown_frames(port, sink):
    a = Attacker(port)
    r = a.flood(lambda i: frame(0x42 + i % 100, 0, 0, b"unknown!"), max_frames=10 * BURST)
    a.close()
    return r, budget_frames(r.seconds), "calm"


def priority_frames(port, sink):
    a = Attacker(port)
    r = a.flood(lambda i: frame(PRIORITY, 0, 2 * (i % 5000) + 1, b"\0\0\0\0\x10"),
                max_frames=10 * BURST)
    a.close()
    return r, budget_frames(r.seconds), "calm"


ATTACKS = [rapid_reset] + [made_you_reset(k) for k in (
    "window_zero", "window_overflow", "data_after_end", "headers_after_end",
    "bad_priority")] + [continuation_zero, continuation_16k, continuation_after_refusal,
                        hpack_bomb, oversized_headers, noread(SETTINGS),
                        noread(PING, b"12345678"), settings_2000, empty_data,
                        unknown_frames, priority_frames]


def test_attacks(env):
    sink = Sink()
    try:
        _attacks(env, sink)
    finally:
        sink.close()


def _attacks(env, sink):
    # Connection events are debug lines. The request cap (tested on its own below)
    # is raised so that the budgets, not the cap, must end the stream floods.
    a, z = start(env, sink, log_level="debug", max_requests_per_connection=100000)
    probe = Probe(env, z)
    time.sleep(3)  # baseline
    base = probe.samples()
    assert len(base) > 20 and all(s == 200 for _, s in base), "probe baseline: %r" % base[:5]
    base_p99 = p99([ms for ms, _ in base[5:]])
    bound = p99_bound(base_p99)
    rss0 = z.rss_kib()
    print("  baseline: %d probe requests, p99 %.1f ms (bound %.1f ms), RSS %d KiB"
          % (len(base), base_p99, bound, rss0), flush=True)
    failures = []
    with zl.RssSampler(z) as rss:
        for attack in ATTACKS:
            for attempt in (1, 2):
                sink.reset_stats()
                t0 = time.monotonic()
                res, most, want = attack(z.plain_port, sink)
                time.sleep(0.3)
                t1 = time.monotonic()
                got = probe.samples(t0, t1)
                lat = p99([ms for ms, _ in got])
                print("  %-32s %s; probe %d req p99 %.1f ms; sink max in flight %d" % (
                    attack.__name__, res, len(got), lat, sink.max_inflight), flush=True)
                # One slow probe request can be the shared box's doing: a latency miss
                # is measured once more, and an attack that slows zaslon misses twice.
                if lat <= bound or not z.running():
                    break
            bad = [s for _, s in got if s != 200]
            why = []
            if not z.running():
                why.append("zaslon died")
            if not res.ended:
                why.append("the connection did not end")
            if want == "error" and res.goaway == 0:
                why.append("a graceful GOAWAY, not an error")
            if want == "calm" and res.goaway != ENHANCE_YOUR_CALM:
                why.append("GOAWAY %s, not ENHANCE_YOUR_CALM" % res.goaway)
            if most is not None and res.frames > most:
                why.append("%d frames sent, budget allows %d" % (res.frames, most))
            if not got or bad:
                why.append("probe: %d requests, %d failed" % (len(got), len(bad)))
            if lat > bound:
                why.append("probe p99 %.1f ms > %.1f ms" % (lat, bound))
            if sink.max_inflight > MAX_STREAMS:
                why.append("sink had %d in flight" % sink.max_inflight)
            if why:
                failures.append("%s: %s" % (attack.__name__, "; ".join(why)))
            if not z.running():
                break
        # every request an attack left at the sink was cancelled
        zl.wait_until(lambda: sink.inflight == 0, 5, what="sink requests to be cancelled")
    time.sleep(1.5)
    rss1 = z.rss_kib()
    print("  RSS: baseline %d KiB, peak %d KiB, after %d KiB" % (rss0, rss.peak_kib, rss1),
          flush=True)
    if rss.peak_kib > rss0 + RSS_PEAK_MIB * 1024:
        failures.append("RSS peak %d KiB > baseline %d + %d MiB"
                        % (rss.peak_kib, rss0, RSS_PEAK_MIB))
    if RSS_AFTER_MIB is not None and rss1 > rss0 + RSS_AFTER_MIB * 1024:
        failures.append("RSS after %d KiB > baseline %d + %d MiB"
                        % (rss1, rss0, RSS_AFTER_MIB))
    # The seven floods ended by zaslon's own budgets are counted as "flood" events.
    with open(os.path.join(z.rundir, "error.log")) as f:
        floods = sum(1 for line in f if line.rstrip().endswith(" flood"))
    print("  flood events logged: %d" % floods, flush=True)
    if floods < 7:
        failures.append("%d flood events logged, want at least 7" % floods)
    assert not failures, "\n".join(failures)


def test_reset_cancels_backend(env):
    """A stream reset by the client while its request waits at the backend: the
    backend's connection is closed (the request cancelled) within CANCEL_MS."""
    sink = Sink()
    try:
        a, z = start(env, sink)
        c = z.h2(tls=False)
        delays = []
        for i in range(20):
            n0 = len(sink.records)
            sid = c.request("/sink/10000?i=%d" % i)
            zl.wait_until(lambda: len(sink.records) > n0, 5, what="the sink to see it")
            rec = sink.records[-1]
            t = time.monotonic()
            c.conn.reset_stream(sid, error_code=CANCEL)
            c.flush()
            zl.wait_until(lambda: rec[1] is not None, 5, what="the sink request to end")
            assert rec[2], "request %d was answered, not cancelled" % i
            delays.append((rec[1] - t) * 1000)
        print("  cancel delays: median %.1f ms, max %.1f ms (bound %d ms)"
              % (sorted(delays)[10], max(delays), CANCEL_MS), flush=True)
        assert max(delays) <= CANCEL_MS, "cancel delays %r" % delays
        zl.assert_status(c.get("/sink/0"), 200, "the connection after 20 resets")
        c.close()
    finally:
        sink.close()


def test_150_streams(env):
    """150 streams sent at once: 100 reach the backend together and are answered, 50
    are refused (REFUSED_STREAM), and the connection is not ended by any budget."""
    sink = Sink()
    try:
        a, z = start(env, sink)
        c = z.h2(tls=False, timeout=20)
        sids = [c.request("/sink/1000?i=%d" % i, flush=False) for i in range(150)]
        c.flush()
        streams = c.wait_streams(sids, timeout=20)
        ok = [s for s in streams if s.status == 200]
        refused = [s for s in streams if s.reset == h2.errors.ErrorCodes.REFUSED_STREAM]
        zl.assert_eq((len(ok), len(refused)), (100, 50), "answered, refused")
        zl.assert_eq(sink.max_inflight, 100, "most requests in flight at the backend")
        zl.assert_eq(c.goaway, None, "GOAWAY")
        zl.assert_status(c.get("/sink/0"), 200, "the connection afterwards")
        c.close()
    finally:
        sink.close()


def test_5000_sequential(env):
    """5000 requests one after another: a graceful GOAWAY (NO_ERROR, naming the
    1000th stream) after every 1000, a new connection, and every request answered."""
    sink = Sink()
    try:
        a, z = start(env, sink)
        done, goaways, conns = 0, [], 0
        while done < 5000 and conns < 10:
            c = z.h2(tls=False)
            conns += 1
            while done < 5000:
                sid = c.request("/")
                s = c.wait_streams([sid])[0]
                zl.assert_status(s.response(), 200, "request %d" % done)
                done += 1
                if c.goaway is not None:
                    goaways.append(c.goaway)
                    break
            c.close()
        zl.assert_eq(done, 5000, "requests answered")
        zl.assert_eq(conns, 5, "connections used")
        zl.assert_eq(goaways, [(0, 1999)] * 5, "GOAWAYs (error code, last stream)")
    finally:
        sink.close()


def test_busy_honest_connection(env):
    """A CDN-like front connection: 300 requests/s for 10 s (cover pages, every tenth
    to backend.py), every tenth reset by the client while its request waits at the
    sink (30 resets/s, under the 33/s refill). No budget may end it: no GOAWAY, every
    other request answered 200. The per-connection request cap is raised to 10000
    here so that only budgets could end it."""
    sink = Sink()
    try:
        a, z = start(env, sink, max_requests_per_connection=10000)
        c = z.h2(tls=False, timeout=20)
        c.keep_body = False
        rate, seconds = 300, 10.0
        t0 = time.monotonic()
        sent, resets, due = 0, [], []
        while time.monotonic() - t0 < seconds:
            now = time.monotonic()
            while sent < (now - t0) * rate and \
                    c.conn.open_outbound_streams < MAX_STREAMS - 5:
                if sent % 10 == 9:
                    sid = c.request("/sink/300?i=%d" % sent)
                    due.append((now + 0.05, sid))
                elif sent % 10 == 4:
                    c.request("/api/cdn?i=%d" % sent)
                else:
                    c.request("/?i=%d" % sent)
                sent += 1
            while due and due[0][0] <= now:
                sid = due.pop(0)[1]
                if not c.streams[sid].done:
                    c.conn.reset_stream(sid, error_code=CANCEL)
                    resets.append(sid)
                c.flush()
            if not c.pump(0.002):
                break
        rate_got = sent / (time.monotonic() - t0)
        reset_set = set(resets)
        others = [sid for sid in c.streams if sid not in reset_set]
        c.wait_streams(others, timeout=20)
        bad = [(sid, c.streams[sid].status, c.streams[sid].reset) for sid in others
               if c.streams[sid].status != 200]
        print("  %d requests at %.0f/s, %d reset by the client, %d failed; goaway %s"
              % (sent, rate_got, len(resets), len(bad), c.goaway), flush=True)
        zl.assert_eq(c.goaway, None, "GOAWAY on the busy connection")
        assert not c.eof, "the busy connection was closed"
        assert rate_got >= 250, "only %.0f requests/s were sent" % rate_got
        assert len(resets) >= sent // 10 - 30, "only %d resets" % len(resets)
        zl.assert_eq(bad, [], "requests not answered 200")
        zl.assert_status(c.get("/api/after"), 200, "the connection afterwards")
        c.close()
    finally:
        sink.close()


if __name__ == "__main__":
    zl.main(globals())
