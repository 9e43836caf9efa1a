#!/usr/bin/python3
"""Logging never stalls or kills the daemon (issue 6). Under h2load load (h2c, cover
site): an access log and an error log on /dev/full, an access log on a 64 KiB tmpfs
that fills up, a log directory removed while running, logrotate's "move, then SIGUSR1",
and a FIFO nobody reads as the access log. Every request succeeds, the process lives,
lines that could not be written are counted and the count ("N log lines dropped") shows
up once writing works again; SIGUSR1 reopens both logs by path. Lines written plus
lines counted as dropped equal the requests made, so nothing goes missing silently.
Every access line is checked for the client address (there must be none)."""

import os
import re
import shutil
import signal
import subprocess
import threading
import time

import zl

DROPPED = re.compile(r"\[warn\] (\d+) log lines dropped$")
ACCESS = re.compile(r"^\S+Z route=cover status=200 bytes=\d+ us=\d+$")


def start(env, access_log, error_log=None, level="info"):
    site = zl.CoverSite(env)
    cfg = zl.edge_config(env, tls=False, cover=site.root, log_level=level,
                         access_log=False)
    cfg["access_log"] = access_log
    if error_log:
        cfg["error_log"] = {"path": error_log, "level": level}
    return env.zaslon(cfg)


def load(z, n, c=10, m=10):
    """h2load over h2c against the cover site; asserts every request got a 200."""
    url = "http://127.0.0.1:%d/index.html" % z.plain_port
    p, res = zl.h2load(url, n=n, c=c, m=m, timeout=120,
                       args=["--connection-inactivity-timeout=20"])
    assert res, "h2load printed no summary (exit %d): %s %s" % (
        p.returncode, p.stdout[-1000:], p.stderr[-1000:])
    zl.assert_eq((res["succeeded"], res["2xx"], res["failed"], res["errored"]),
                 (n, n, 0, 0), "h2load -n %d results" % n)
    assert z.running(), "zaslon died"


def lines(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def split_access(text_lines, what):
    """(number of access lines, sum of the dropped counts) in an access log. A fragment
    of an access line (a short write on a full disk, counted as dropped) may stand just
    before a dropped-lines report or last; any other line, or the client address anywhere,
    fails."""
    n = dropped = 0
    for i, line in enumerate(text_lines):
        assert "127.0.0.1" not in line, "%s: client address in %r" % (what, line)
        m = DROPPED.search(line)
        if m:
            dropped += int(m.group(1))
        elif ACCESS.match(line):
            n += 1
        elif not (i + 1 == len(text_lines) or DROPPED.search(text_lines[i + 1])):
            raise AssertionError("%s: unexpected line %r" % (what, line))
    return n, dropped


def wait_lines(path, pred, what, timeout=10):
    """Waits until pred(lines of |path|) holds; returns those lines."""
    got = []
    zl.wait_until(lambda: pred(got.clear() or got.extend(lines(path)) or got), timeout,
                  what=what)
    return got


def stop_ok(z):
    zl.assert_eq(z.stop(timeout=20), 0, "exit status on SIGTERM")


def test_dev_full(env):
    """Both logs on /dev/full (via symlinks, so they can be pointed elsewhere): every
    write fails with ENOSPC; 3000 requests all succeed; the symlinks are replaced by
    real files, SIGUSR1, and both logs report how many lines they dropped."""
    logs = env.newdir("logs")
    access, error = os.path.join(logs, "access.log"), os.path.join(logs, "error.log")
    os.symlink("/dev/full", access)
    os.symlink("/dev/full", error)
    z = start(env, access, error, level="debug")
    load(z, 3000)
    os.unlink(access)
    os.unlink(error)
    z.send_signal(signal.SIGUSR1)
    wait_lines(error, lambda ls: any("logs reopened" in x for x in ls), "reopen")
    zl.assert_status(z.curl("h1c", "/index.html"), 200, "after reopen")
    ls = wait_lines(access, lambda ls: len(ls) >= 2, "access lines after reopen")
    n, dropped = split_access(ls, "access log")
    zl.assert_eq(n, 1, "access lines after reopen")
    assert dropped >= 3000, "access log reports %d dropped, want >= 3000" % dropped
    errs = [int(m.group(1)) for m in map(DROPPED.search, lines(error)) if m]
    assert len(errs) == 1 and errs[0] > 0, "error log dropped reports: %r" % errs
    stop_ok(z)
    total = [x for x in lines(error) if "dropped since start" in x]
    assert total and re.search(r"\d+ error log, (\d+) access log", total[-1]), total
    a = int(re.search(r"(\d+) access log", total[-1]).group(1))
    zl.assert_eq(a, dropped, "access lines dropped since start (exit line)")


def test_tmpfs_full(env):
    """The access log on a 64 KiB tmpfs: it fills after about a thousand lines, the
    rest are dropped while 3000 requests all succeed; growing the tmpfs lets writes
    through again without a signal, and lines written + dropped = requests made."""
    mnt = env.newdir("tmpfs")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", mnt],
                   check=True, timeout=10)
    try:
        access = os.path.join(mnt, "access.log")
        z = start(env, access)
        load(z, 3000)
        n1, d1 = split_access(lines(access), "full access log")
        assert 0 < n1 < 3000 and d1 == 0, "lines in the full log: %d (%d dropped)" % (n1, d1)
        subprocess.run(["mount", "-o", "remount,size=4m", mnt], check=True, timeout=10)
        load(z, 100, c=1, m=1)
        n, dropped = split_access(lines(access), "access log")
        zl.assert_eq((n, n + dropped), (n1 + 100, 3100), "lines written, written + dropped")
        stop_ok(z)
    finally:
        for p in env._procs:
            p.stop()
        if subprocess.run(["umount", mnt], timeout=10).returncode != 0:
            subprocess.run(["umount", "-l", mnt], timeout=10)


def test_removed_directory(env):
    """The log directory is deleted while running: requests keep succeeding (SIGUSR1
    while it is gone changes nothing); once it exists again, SIGUSR1 brings both logs
    back and new lines land in the new files."""
    logs = env.newdir("logs")
    access, error = os.path.join(logs, "access.log"), os.path.join(logs, "error.log")
    z = start(env, access, error)
    load(z, 200)
    shutil.rmtree(logs)
    load(z, 1000)
    z.send_signal(signal.SIGUSR1)
    load(z, 200)
    assert not os.path.exists(logs), "the log directory came back by itself"
    os.makedirs(logs)
    z.send_signal(signal.SIGUSR1)
    wait_lines(error, lambda ls: any("logs reopened" in x for x in ls), "reopen")
    load(z, 300)
    n, dropped = split_access(lines(access), "new access log")
    zl.assert_eq((n, dropped), (300, 0), "new access log lines, dropped")
    stop_ok(z)


def test_logrotate(env):
    """While h2load runs round after round, mv access.log access.log.1 and error.log
    error.log.1, then SIGUSR1: every request has exactly one line across the two
    access logs (none lost around the move), and lines after the reopen go to the new
    files."""
    logs = env.newdir("logs")
    access, error = os.path.join(logs, "access.log"), os.path.join(logs, "error.log")
    z = start(env, access, error)
    rounds, stop, failures = [], threading.Event(), []

    def loader():
        try:
            while not stop.is_set():
                load(z, 200, 4, 4)
                rounds.append(200)
        except Exception as e:  # reported by the main thread
            failures.append(e)

    t = threading.Thread(target=loader)
    t.start()
    try:
        zl.wait_until(lambda: len(rounds) >= 3 or failures, 60, what="3 rounds")
        os.rename(access, access + ".1")
        os.rename(error, error + ".1")
        moved_at = len(rounds)
        zl.wait_until(lambda: len(rounds) >= moved_at + 2 or failures, 60,
                      what="2 rounds after the move")
        z.send_signal(signal.SIGUSR1)
        wait_lines(error, lambda ls: any("logs reopened" in x for x in ls), "reopen")
        reopened_at = len(rounds)
        zl.wait_until(lambda: len(rounds) >= reopened_at + 3 or failures, 60,
                      what="3 rounds after the reopen")
    finally:
        stop.set()
        t.join(150)
    assert not t.is_alive(), "h2load still running"
    assert not failures, "load failed: %r" % failures
    old, d_old = split_access(lines(access + ".1"), "access.log.1")
    new, d_new = split_access(lines(access), "access.log")
    print("  %d rounds; access.log.1: %d lines, access.log: %d lines"
          % (len(rounds), old, new))
    zl.assert_eq((old + new, d_old + d_new), (sum(rounds), 0), "lines across both, dropped")
    assert old >= 200 * (moved_at + 1) and new >= 200 * 2, (old, new)
    assert not any("dropped" in x for x in lines(error + ".1") + lines(error))
    stop_ok(z)


def test_fifo_nobody_reads(env):
    """A FIFO nobody reads as the access log: the pipe buffer fills and later lines
    are dropped at once (O_NONBLOCK), so 3000 requests succeed and single requests stay
    fast; a reader that comes later finds the buffered lines, then the dropped count,
    and lines in the pipe + dropped = requests made."""
    access = env.path("access.fifo")
    os.mkfifo(access)
    z = start(env, access)
    t0 = time.monotonic()
    load(z, 3000)
    print("  3000 requests: %.1fs" % (time.monotonic() - t0))
    for _ in range(5):
        t0 = time.monotonic()
        zl.assert_status(z.curl("h1c", "/index.html", timeout=10), 200, "single request")
        dt = time.monotonic() - t0
        assert dt < 3.0, "a request took %.1fs with the FIFO full" % dt
    fd = os.open(access, os.O_RDONLY | os.O_NONBLOCK)
    try:
        buffered = _drain(fd)
        n1, d1 = split_access(buffered, "FIFO contents")
        assert 0 < n1 < 3005 and d1 == 0, "lines buffered in the FIFO: %d" % n1
        for _ in range(10):
            zl.assert_status(z.curl("h1c", "/index.html"), 200, "after draining")
        later = []
        zl.wait_until(lambda: later.extend(_drain(fd)) or
                      split_access(later, "FIFO")[0] >= 10, 10, what="10 lines")
        n2, d2 = split_access(later, "FIFO after draining")
        zl.assert_eq((n2, n1 + n2 + d2), (10, 3015), "lines, lines + dropped")
    finally:
        os.close(fd)
    stop_ok(z)


def _drain(fd):
    data = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        data += chunk
    text = data.decode("utf-8", "replace")
    assert not data or text.endswith("\n"), "partial line in the FIFO"
    return text.splitlines()


zl.main(globals())
