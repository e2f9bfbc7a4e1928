#!/usr/bin/env bash
# How etcd's write latency grows when the server has been idle: the same put over one kept-alive
# HTTP connection, back to back and after idle gaps of 1, 3 and 10 ms. A CLI process finds the
# server idle before each of its writes (its own start-up, the command it runs), a loop in one
# process does not — which is why whole-process numbers are slower per write than in-process ones.
# Also prints etcd's own mean WAL fsync time for each row (from its /metrics), and what a warm-up
# read sent just before the write does to the pair.
#
# Starts its own single-node etcd on loopback (bench/lib/etcd.sh). Needs etcd, python3.
# Usage: bench/etcd-idle.sh [PUTS]   (per gap, default 200)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200}
. bench/lib/etcd.sh
etcd_start 1
python3 - "$etcd_port" "$n" <<'PY'
import base64, http.client, json, sys, time, urllib.request
port, n = int(sys.argv[1]), int(sys.argv[2])
conn = http.client.HTTPConnection("127.0.0.1", port)
b64 = lambda b: base64.b64encode(b).decode()
put_body = json.dumps({"key": b64(b"idle"), "value": b64(b"v")})
read_body = json.dumps({"key": b64(b"idle"), "serializable": True})
def call(path, body):
    t = time.perf_counter()
    conn.request("POST", path, body)
    conn.getresponse().read()
    return time.perf_counter() - t
def wal_fsync():
    """etcd's own count and total seconds of WAL fsyncs so far."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    get = lambda name: float(next(l.split()[1] for l in text.splitlines() if l.startswith(name + " ")))
    return get("etcd_disk_wal_fsync_duration_seconds_count"), get("etcd_disk_wal_fsync_duration_seconds_sum")
def row(label, xs):
    xs.sort()
    print(f"| {label} | {xs[len(xs) // 2] * 1e6:.0f} | {sum(xs) / len(xs) * 1e6:.0f} |")
print("| before each put | median µs | mean µs |")
print("|---|---|---|")
for gap in (0, 0.001, 0.003, 0.010):
    c0, s0 = wal_fsync()
    xs = []
    for _ in range(n):
        if gap:
            time.sleep(gap)
        xs.append(call("/v3/kv/put", put_body))
    c1, s1 = wal_fsync()
    row(f"{gap * 1000:.0f} ms idle (etcd's WAL fsync: {(s1 - s0) / (c1 - c0) * 1e6:.0f} µs mean)", xs)
# A warm-up read right before the write: does waking the server first make the write cheaper?
reads, puts, both = [], [], []
for _ in range(n):
    time.sleep(0.003)
    r = call("/v3/kv/range", read_body)
    p = call("/v3/kv/put", put_body)
    reads.append(r); puts.append(p); both.append(r + p)
row("3 ms idle, then a serializable read: the put", puts)
row("3 ms idle, then a serializable read: read + put", both)
PY
