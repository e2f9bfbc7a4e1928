#!/usr/bin/env bash
# How etcd's write latency grows when the server has been idle: the same put over one kept-alive
# HTTP connection, back to back and after idle gaps of 1, 3 and 10 ms. A CLI process finds the
# server idle before each of its writes (its own start-up, the command it runs), a loop in one
# process does not — which is why whole-process numbers are slower per write than in-process ones.
#
# Starts its own single-node etcd on loopback (bench/lib/etcd.sh). Needs etcd, python3.
# Usage: bench/etcd-idle.sh [PUTS]   (per gap, default 200)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200}
. bench/lib/etcd.sh
etcd_start 1
python3 - "$etcd_port" "$n" <<'PY'
import base64, http.client, json, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
conn = http.client.HTTPConnection("127.0.0.1", port)
body = json.dumps({"key": base64.b64encode(b"idle").decode(), "value": base64.b64encode(b"v").decode()})
def put():
    t = time.perf_counter()
    conn.request("POST", "/v3/kv/put", body)
    conn.getresponse().read()
    return time.perf_counter() - t
print("| idle gap before each put | median µs | mean µs |")
print("|---|---|---|")
for gap in (0, 0.001, 0.003, 0.010):
    xs = []
    for _ in range(n):
        if gap:
            time.sleep(gap)
        xs.append(put())
    xs.sort()
    print(f"| {gap * 1000:.0f} ms | {xs[len(xs) // 2] * 1e6:.0f} | {sum(xs) / len(xs) * 1e6:.0f} |")
PY
