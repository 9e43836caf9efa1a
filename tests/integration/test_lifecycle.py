#!/usr/bin/python3
"""Graceful shutdown. SIGTERM (and SIGINT) while a slow request is in flight: the
listeners close at once (new connections refused), HTTP/2 clients get GOAWAY, idle
connections do not hold the exit back, the in-flight request completes with 200, and
zaslon exits 0 within the drain deadline; past drain_timeout what is left is closed
and zaslon still exits 0. On HTTP/2 the drain takes two GOAWAYs (RFC 9113 6.8): the
shutdown notice (last stream id 2^31-1) at once, then about a second later one with
the real last stream id, so a stream the client opened meanwhile is still served."""

import signal
import threading
import time

import h2.events

import zl

DRAIN_S = 5


class GoawayLog(zl.H2Client):
    """An H2Client that keeps every GOAWAY: (monotonic time, last stream id, code)."""

    def __init__(self, *a, **kw):
        self.goaways = []
        super().__init__(*a, **kw)

    def _event(self, ev):
        if isinstance(ev, h2.events.ConnectionTerminated):
            self.goaways.append((time.monotonic(), ev.last_stream_id, ev.error_code))
        super()._event(ev)


def start(env, drain=DRAIN_S):
    a = env.backend("a")
    z = env.zaslon(zl.edge_config(env, backends={"a": a}, routes=[zl.route("a", path="/slow/")],
                                  limits={"drain_timeout": "%ds" % drain}))
    return a, z


def in_background(fn):
    """Runs fn() in a thread; returns a function that joins it and gives its result."""
    box = {}

    def run():
        try:
            box["value"] = fn()
        except Exception as e:  # surfaced by the joiner
            box["error"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()

    def join(timeout=30):
        t.join(timeout)
        assert not t.is_alive(), "background request still running"
        if "error" in box:
            raise box["error"]
        return box["value"]
    return join


def refused_soon(z, ports, within=1.0):
    """True once every port refuses connections; fails after |within| s."""
    zl.wait_until(lambda: not any(zl.can_connect(p, timeout=0.2) for p in ports), within,
                  what="listeners to close after the signal")


def shutdown_with_slow_request(env, sig):
    a, z = start(env)
    idle = z.h1()  # an idle keep-alive connection must not delay the exit
    zl.assert_status(idle.request("GET", "/"), 200, "idle connection's first request")
    c = z.h2()
    sid = c.request("/slow/2000")
    h1_result = in_background(lambda: z.curl("h1", "/slow/2000", timeout=20))
    a.wait_record("/slow/2000")
    zl.wait_until(lambda: len(a.records_for("/slow/2000")) == 2, 5, what="both requests")
    t_sig = time.monotonic()
    z.send_signal(sig)
    refused_soon(z, [z.tls_port, z.plain_port])
    t_refused = time.monotonic() - t_sig
    s = c.wait_streams([sid], timeout=DRAIN_S + 2)[0]
    zl.assert_status(s.response(), 200, "h2 request in flight at the signal")
    zl.assert_eq(bytes(s.data), b"slow 2000", "h2 in-flight body")
    r = h1_result()
    zl.assert_status(r, 200, "h1 request in flight at the signal")
    zl.assert_eq(r.body, b"slow 2000", "h1 in-flight body")
    rc = z.wait(DRAIN_S + 1 - (time.monotonic() - t_sig))
    t_exit = time.monotonic() - t_sig
    assert rc is not None, "zaslon still running %.1fs after the signal" % t_exit
    zl.assert_eq(rc, 0, "exit code")
    assert t_exit < 3.5, "exit %.1fs after the signal: idle connections held it back" % t_exit
    print("  listeners closed after %.2fs, exit 0 after %.2fs" % (t_refused, t_exit))
    c.wait_closed(1)  # read what the server sent before closing
    assert c.goaway is not None, "the h2 connection was closed without GOAWAY"
    idle.close()
    c.close()


def test_sigterm_drains(env):
    shutdown_with_slow_request(env, signal.SIGTERM)


def test_sigint_drains(env):
    shutdown_with_slow_request(env, signal.SIGINT)


def test_sigterm_two_goaways(env):
    """A raw h2 client with a slow request in flight: the shutdown notice GOAWAY (last
    stream id 2^31-1) arrives at once; a stream opened after it is still served; the
    second GOAWAY, about a second later, names the last stream really processed; both
    streams complete with 200 and zaslon exits 0 well within drain_timeout."""
    a, z = start(env)
    c = GoawayLog(z.tls_port, tls=True, ca=env.certs().ca, timeout=DRAIN_S + 5)
    sid = c.request("/slow/2500")
    a.wait_record("/slow/2500")
    t_sig = time.monotonic()
    z.send_signal(signal.SIGTERM)
    c.wait(lambda: c.goaways, 2.0, what="the first GOAWAY")
    t1, last1, code1 = c.goaways[0]
    zl.assert_eq(last1, 2 ** 31 - 1, "first GOAWAY's last stream id (the shutdown notice)")
    zl.assert_eq(code1, 0, "first GOAWAY's error code")
    assert t1 - t_sig < 1.0, "first GOAWAY %.2fs after SIGTERM" % (t1 - t_sig)
    late = c.request("/slow/200")  # after the notice, before the real GOAWAY
    c.wait(lambda: len(c.goaways) >= 2, 3.0, what="the second GOAWAY")
    t2, last2, code2 = c.goaways[1]
    zl.assert_eq(last2, late, "second GOAWAY's last stream id")
    zl.assert_eq(code2, 0, "second GOAWAY's error code")
    assert 0.7 <= t2 - t1 <= 2.5, "second GOAWAY %.2fs after the first" % (t2 - t1)
    for s, body in zip(c.wait_streams([sid, late], timeout=DRAIN_S + 2),
                       (b"slow 2500", b"slow 200")):
        zl.assert_status(s.response(), 200, "stream %d after SIGTERM" % s.id)
        zl.assert_eq(bytes(s.data), body, "stream %d body" % s.id)
    rc = z.wait(DRAIN_S + 1 - (time.monotonic() - t_sig))
    t_exit = time.monotonic() - t_sig
    assert rc is not None, "zaslon still running %.1fs after SIGTERM" % t_exit
    zl.assert_eq(rc, 0, "exit code")
    assert t_exit < DRAIN_S, "exit %.1fs after SIGTERM (drain_timeout %ds)" % (t_exit, DRAIN_S)
    print("  GOAWAYs %.2fs and %.2fs after SIGTERM (last ids %d, %d); exit 0 after %.2fs"
          % (t1 - t_sig, t2 - t_sig, last1, last2, t_exit))
    c.close()


def test_drain_deadline(env):
    """A request longer than drain_timeout does not keep zaslon alive."""
    a, z = start(env, drain=2)
    c = z.h2(timeout=15)
    sid = c.request("/slow/8000")
    a.wait_record("/slow/8000")
    t_sig = time.monotonic()
    z.send_signal(signal.SIGTERM)
    rc = z.wait(4.0)
    dt = time.monotonic() - t_sig
    assert rc is not None, "zaslon still running 4s after SIGTERM with drain_timeout 2s"
    zl.assert_eq(rc, 0, "exit code after the drain deadline")
    assert 1.5 <= dt <= 3.0, "exit %.2fs after SIGTERM, drain_timeout is 2s" % dt
    s = c.streams[sid]
    c.wait_closed(2)
    assert not (s.ended and s.status == 200), "a request past the deadline completed?"


def test_sigterm_when_idle(env):
    a, z = start(env)
    conns = [z.h2(), z.h2(tls=False), z.h1(), z.h1(tls=True)]
    t0 = time.monotonic()
    rc = z.stop(timeout=DRAIN_S + 2)
    dt = time.monotonic() - t0
    zl.assert_eq(rc, 0, "exit code")
    # allows a one-second GOAWAY grace as h2o has, far below drain_timeout
    assert dt < 2.5, "idle zaslon took %.1fs to exit (drain_timeout %ds)" % (dt, DRAIN_S)
    for c in conns:
        c.close()


if __name__ == "__main__":
    zl.main(globals())
