#!/usr/bin/env bash
# The session registry on etcd: what `concur session start` costs with an etcd backend (lease
# grant + put + starting the detached keeper) against the local registry alone, what
# `session list` costs on etcd against locally, and how soon a killed agent's entry leaves etcd
# (the keeper wakes on the agent's pidfd and revokes) against the TTL it would otherwise wait.
#
# Each start round re-registers the same session for one `sleep` agent, so the previous keeper
# is stopped and its lease revoked inside the measured command, as on a real re-start. Each
# removal round starts a session for a fresh `sleep`, kills the sleep, and polls etcd's
# /v3/kv/range every 1 ms until the key is gone.
# Starts its own single-node etcd on loopback (bench/lib/etcd.sh), stops it by pid.
# Needs: etcd (Debian etcd-server), python3.
# Usage: bench/session-etcd.sh [ROUNDS]     (default 20)
# docs/perf/etcd-session.md holds a recorded run.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-20}

concur=$(scripts/cargo-exe --release --bin concur)

. bench/lib/etcd.sh
etcd_start 1

python3 - "$concur" "$tmp" "$etcd_port" "$rounds" <<'PY'
import base64, json, os, statistics, subprocess, sys, time, urllib.request
concur, tmp, port, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
url = f"etcd://127.0.0.1:{port}"

def key_exists(key):
    body = json.dumps({"key": base64.b64encode(key.encode()).decode()}).encode()
    r = urllib.request.urlopen(f"http://127.0.0.1:{port}/v3/kv/range", body, timeout=5)
    return "kvs" in json.load(r)

def env(backend):
    e = dict(os.environ, CONCUR_HOME=f"{tmp}/home-{'etcd' if backend else 'local'}")
    for v in ("CONCUR_SESSION", "CONCUR_BACKEND"):
        e.pop(v, None)
    if backend:
        e["CONCUR_BACKEND"] = backend
    return e

def timed(backend, *args, n=rounds):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run([concur, *args], env=env(backend), check=True, stdout=subprocess.DEVNULL)
        out.append((time.perf_counter() - t) * 1000)
    return statistics.median(out)

agent = subprocess.Popen(["sleep", "1000"])
pid = str(agent.pid)
start = ["session", "start", "--session", "bench", "--pid", pid]
s_etcd, s_local = timed(url, *start), timed(None, *start)
l_etcd, l_local = timed(url, "session", "list"), timed(None, "session", "list")
subprocess.run([concur, "session", "end", "--session", "bench"], env=env(url), check=True,
               stdout=subprocess.DEVNULL)
agent.kill(); agent.wait()

gone = []
for r in range(rounds):
    a = subprocess.Popen(["sleep", "1000"])
    sid = f"gone{r}"
    subprocess.run([concur, "session", "start", "--session", sid, "--pid", str(a.pid), "--ttl", "30s"],
                   env=env(url), check=True, stdout=subprocess.DEVNULL)
    assert key_exists(f"concur/session/{sid}")
    t = time.perf_counter()
    a.kill(); a.wait()
    while key_exists(f"concur/session/{sid}"):
        time.sleep(0.001)
    gone.append((time.perf_counter() - t) * 1000)

print(f"{rounds} rounds each, medians (whole process: start, run, exit)\n")
print("| command | local registry | etcd backend | ratio etcd / local |")
print("|---|---|---|---|")
print(f"| `session start` | {s_local:.2f} ms | {s_etcd:.2f} ms | {s_etcd / s_local:.2f} |")
print(f"| `session list` | {l_local:.2f} ms | {l_etcd:.2f} ms | {l_etcd / l_local:.2f} |")
print(f"\nkilled agent -> key gone from etcd: median {statistics.median(gone):.1f} ms, "
      f"max {max(gone):.1f} ms; without the keeper's revoke it would wait for the 30 s TTL "
      f"(ratio median / TTL: {statistics.median(gone) / 30000:.4f})")
PY
