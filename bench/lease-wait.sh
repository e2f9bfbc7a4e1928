#!/usr/bin/env bash
# `concur lease acquire -w` on etcd (watches the holder key) against the local SQLite store
# (polls, 5 ms backing off to 200 ms): how soon a waiter holds the task after the holder's
# release, and how many acquire attempts (etcd lease grants, read from etcd's /metrics) the
# etcd waiter made while it waited.
#
# Each round: a holder takes the task, a waiter starts `lease acquire -w 60`, the holder keeps it
# HOLD seconds, then releases; the time from the release command's return to the waiter's exit
# is the wake-up (it includes the waiter's own final acquire and process exit).
# Starts its own single-node etcd on loopback (bench/lib/etcd.sh), stops it by pid.
# Needs: etcd (Debian etcd-server), python3.
# Usage: bench/lease-wait.sh [ROUNDS] [HOLD]     (default 5 rounds, 1 s held)
# docs/perf/etcd-hooks.md holds a recorded run.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
hold=${2:-1}

concur=$(scripts/cargo-exe --release --bin concur)

. bench/lib/etcd.sh
etcd_start 1

python3 - "$concur" "$tmp" "$etcd_port" "$rounds" "$hold" <<'PY'
import os, statistics, subprocess, sys, time, urllib.request
concur, tmp, port, rounds, hold = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
url = f"etcd://127.0.0.1:{port}"

def metric(name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise SystemExit(f"etcd has no metric {name}")

def env(backend):
    e = dict(os.environ, CONCUR_HOME=f"{tmp}/home-{'etcd' if backend else 'local'}")
    e.pop("CONCUR_SESSION", None)
    e.pop("CONCUR_BACKEND", None)
    if backend:
        e["CONCUR_BACKEND"] = backend
    return e

def run(backend, *args):
    subprocess.run([concur, *args], env=env(backend), check=True, stdout=subprocess.DEVNULL)

def rounds_on(backend):
    wakes, grants = [], []
    for r in range(rounds):
        task = f"t{r}"
        run(backend, "lease", "acquire", task, "--session", "holder", "--ttl", "1h")
        g0 = metric("etcd_debugging_lease_granted_total") if backend else 0
        waiter = subprocess.Popen([concur, "lease", "acquire", task, "-w", "60", "--session", "waiter"],
                                  env=env(backend), stdout=subprocess.DEVNULL)
        time.sleep(hold)  # the holder works; the waiter waits
        g1 = metric("etcd_debugging_lease_granted_total") if backend else 0
        run(backend, "lease", "release", task, "--session", "holder")
        t = time.perf_counter()
        assert waiter.wait() == 0
        wakes.append((time.perf_counter() - t) * 1000)
        grants.append(g1 - g0)
    return statistics.median(wakes), max(wakes), grants

e = rounds_on(url)
l = rounds_on(None)
print(f"| store | wake-up after release, median (max) | etcd acquire attempts in {hold:g} s of waiting (the first included), per round |")
print("|---|---|---|")
print(f"| etcd (watch) | {e[0]:.1f} ms ({e[1]:.1f} ms) | {', '.join(f'{g:.0f}' for g in e[2])} |")
print(f"| SQLite (poll 5..200 ms) | {l[0]:.1f} ms ({l[1]:.1f} ms) | - |")
print(f"\nwake-up ratio etcd / SQLite (medians): {e[0] / l[0]:.2f}")
PY
