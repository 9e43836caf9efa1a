#!/bin/sh
# Independent-peer check for zaslon's sealing code (ctest: peer_ohttp).
#   run_peer_check.sh <path to the tp_ohttp_peer_check executable>
# Needs node and tests/peer/node_modules (npm ci --prefix tests/peer). Without them the
# test FAILS with a message: CI installs both, and a silent skip would hide a broken
# peer check.
set -eu
here=$(cd "${0%/*}" && pwd)
tool=${1:?usage: run_peer_check.sh <tp_ohttp_peer_check>}
if ! command -v node >/dev/null 2>&1; then
    echo "peer_ohttp: FAIL: node is not installed (Debian: apt-get install nodejs npm)" >&2
    exit 1
fi
for pkg in core dhkem-x25519 chacha20poly1305; do
    if [ ! -f "$here/node_modules/@hpke/$pkg/package.json" ]; then
        echo "peer_ohttp: FAIL: tests/peer/node_modules/@hpke/$pkg is missing:" \
             "run 'npm ci --prefix tests/peer'" >&2
        exit 1
    fi
done
exec /usr/bin/python3 "$here/run_peer_check.py" "$tool" "$here/ohttp_peer.mjs"
