"""Drives zaslon's C OHTTP code (tests/tools/tp_ohttp_peer_check) against an independent
peer built on @hpke/core (tests/peer/ohttp_peer.mjs), in both directions and with all
three AEADs:

  A. node client -> C gateway: C generates the key; node seals requests (GET with a
     query string, POST with a body, repeated header fields); the C gateway must
     decapsulate exactly the method, scheme, authority, path, headers (order and
     repeats kept) and body that were sealed; the C gateway seals a response, and node
     must open exactly that.
  B. C client -> node gateway: node generates the key; the C client seals the same
     requests, node's gateway must recover them exactly and answer; the C client must
     open the answer exactly.

Each sealed message is also replayed with one byte changed, and the other side must
refuse it. Run by run_peer_check.sh, which checks that node and node_modules exist.
"""
import json
import os
import random
import subprocess
import sys

TOOL, PEER = sys.argv[1], sys.argv[2]
checks = 0


def die(msg):
    print(f"peer_ohttp: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def run(argv, ok=True):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if ok and p.returncode != 0:
        die(f"{argv[0]} {argv[1] if len(argv) > 1 else ''} failed: {p.stderr.strip()}")
    if not ok and p.returncode == 0:
        die(f"{' '.join(argv[:2])} accepted a tampered message")
    return json.loads(p.stdout) if ok else None


def node(*args, ok=True):
    return run(["node", PEER, *args], ok)


def tool(*args, ok=True):
    return run([TOOL, *args], ok)


def check(cond, what):
    global checks
    if not cond:
        die(what)
    checks += 1


def h(s):
    return (s if isinstance(s, bytes) else s.encode()).hex()


def flip(hexstr, pos):
    b = bytearray(bytes.fromhex(hexstr))
    b[pos % len(b)] ^= 0x01
    return b.hex()


def field_args(fields, body):
    args = [f"{n}:{v}" for n, v in fields]
    if body:
        args += ["--body", body.hex()]
    return args


rng = random.Random(os.urandom(16))
REQUESTS = [
    dict(method="GET", scheme="https", authority="vote.example",
         path="/ballot?id=42&lang=be&q=%D0%B7%20x",
         headers=[("accept", "*/*"), ("x-rep", "1"), ("x-rep", "2")], body=b""),
    dict(method="POST", scheme="https", authority="id.example:8443",
         path="/api/v1/verify",
         headers=[("content-type", "application/octet-stream"), ("x-trace", "a\"b\\c")],
         body=bytes(rng.getrandbits(8) for _ in range(1500))),
    dict(method="PUT", scheme="https", authority="svc.example",
         path="/a/b/c?x=1&x=2",
         headers=[("cookie", "a=1"), ("cookie", "b=2"), ("x-multi", "v1"),
                  ("x-multi", "v2"), ("x-multi", "v3"), ("x-empty", "")],
         body=b'{"k":"v"}'),
]
RESPONSES = [
    dict(status=201, headers=[("content-type", "text/plain; charset=utf-8"),
                              ("set-cookie", "a=1"), ("set-cookie", "b=2")],
         body=bytes(rng.getrandbits(8) for _ in range(2000))),
    dict(status=204, headers=[], body=b""),
    dict(status=404, headers=[("x-reason", "nope")], body=b"not here"),
]


def check_request(got, want, aead, who):
    check(got["method"] == h(want["method"]), f"{who}: method")
    check(got["scheme"] == h(want["scheme"]), f"{who}: scheme")
    check(got["authority"] == h(want["authority"]), f"{who}: authority")
    check(got["path"] == h(want["path"]), f"{who}: path and query")
    check(got["headers"] == [[h(n), h(v)] for n, v in want["headers"]],
          f"{who}: header fields (order, repeats)")
    check(got["body"] == want["body"].hex(), f"{who}: body")
    check(got["trailers"] == [], f"{who}: trailers")
    check(got["aead"] == aead, f"{who}: aead")


def check_response(got, want, who):
    check(got["status"] == want["status"], f"{who}: status")
    check(got["informational"] == [], f"{who}: informational responses")
    check(got["headers"] == [[h(n), h(v)] for n, v in want["headers"]],
          f"{who}: response header fields")
    check(got["body"] == want["body"].hex(), f"{who}: response body")
    check(got["trailers"] == [], f"{who}: response trailers")


def url(r):
    return f"{r['scheme']}://{r['authority']}{r['path']}"


# A. node client -> C gateway
for aead in (1, 2, 3):
    key = tool("keygen", str(rng.randrange(256)))
    for i, req in enumerate(REQUESTS):
        res = RESPONSES[(i + aead) % len(RESPONSES)]
        who = f"node->C aead {aead} {req['method']}"
        sealed = node("seal", key["key_config"], str(aead), req["method"], url(req),
                      *field_args(req["headers"], req["body"]))
        gw = tool("gateway", key["sk"], key["key_config"], sealed["request"],
                  str(res["status"]), *field_args(res["headers"], res["body"]))
        check_request(gw["request"], req, aead, who)
        check(gw["enc"] == sealed["enc"], f"{who}: enc")
        opened = node("open", json.dumps(sealed), gw["response"])
        check_response(opened, res, who)
        # One changed byte anywhere (header, enc, ciphertext, tag) is refused.
        pos = rng.randrange(len(sealed["request"]) // 2)
        tool("gateway", key["sk"], key["key_config"], flip(sealed["request"], pos), "200",
             ok=False)
        pos = rng.randrange(len(gw["response"]) // 2)
        node("open", json.dumps(sealed), flip(gw["response"], pos), ok=False)
        checks += 2

# B. C client -> node gateway
for aead in (1, 2, 3):
    key = node("keygen", str(rng.randrange(256)))
    for i, req in enumerate(REQUESTS):
        res = RESPONSES[(i + aead + 1) % len(RESPONSES)]
        who = f"C->node aead {aead} {req['method']}"
        for tamper in (None, "request", "response"):
            cl = subprocess.Popen(
                [TOOL, "client", key["key_config"], str(aead), req["method"],
                 req["scheme"], req["authority"], req["path"],
                 *field_args(req["headers"], req["body"])],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True)
            line = cl.stdout.readline()
            if not line:
                cl.kill()
                die(f"{who}: C client printed no request: {cl.stderr.read().strip()}")
            request = json.loads(line)["request"]
            if tamper == "request":
                node("gateway", key["sk"], key["key_config"],
                     flip(request, rng.randrange(len(request) // 2)), "200", ok=False)
                checks += 1
                cl.kill()
                cl.wait()
                continue
            gw = node("gateway", key["sk"], key["key_config"], request,
                      str(res["status"]), *field_args(res["headers"], res["body"]))
            check_request(gw["request"], req, aead, who)
            response = gw["response"]
            if tamper == "response":
                response = flip(response, rng.randrange(len(response) // 2))
            out, err = cl.communicate(response + "\n", timeout=60)
            if tamper == "response":
                check(cl.returncode != 0, f"{who}: C client accepted a tampered response")
                continue
            if cl.returncode != 0:
                die(f"{who}: C client failed: {err.strip()}")
            check_response(json.loads(out), res, who)

print(f"peer_ohttp: {checks} checks passed")
print(f"{checks} passed, 0 failed")
