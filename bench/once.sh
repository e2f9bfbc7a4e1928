#!/usr/bin/env bash
# `concur once`: how long after a leader is killed with SIGKILL the one waiter's command runs
# (the handoff), against the time from starting an uncontended `concur once` to its command
# running. Both commands are `bash -c 'echo $EPOCHREALTIME …'`, so both figures include one bash
# start; the handoff also includes the kernel killing the dead leader's command (it holds the
# key's lock descriptor until it is gone).
#
# With --etcd both run on a one-member etcd on loopback (bench/lib/etcd.sh): the waiter takes
# over when the killed leader's lease (5 s TTL, renewed every 1.7 s) runs out.
#
# Usage: bench/once.sh [RUNS] [--etcd]   (default 50; needs a release build, bash, python3;
#        --etcd also Debian's etcd-server)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-50}
BIN=$(scripts/cargo-exe --release --bin concur)
export BIN
if [ "${2:-}" = --etcd ]; then
  . bench/lib/etcd.sh
  etcd_start 1
  export CONCUR_BACKEND=$etcd_url ETCD_PORT=$etcd_port
else
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
fi
export CONCUR_HOME="$tmp/home"
cd "$tmp"
python3 - "$runs" <<'PY'
import os, statistics, subprocess, sys, time
runs, bin = int(sys.argv[1]), os.environ["BIN"]

def wait_for(pred):
    while not pred():
        time.sleep(0.0005)

def lines(p):
    try:
        return open(p).read().split()
    except FileNotFoundError:
        return []

def blocked(lock):
    if os.environ.get("ETCD_PORT"):
        # etcd: the waiter watches the leader key; count the member's watchers.
        import urllib.request
        text = urllib.request.urlopen(f"http://127.0.0.1:{os.environ['ETCD_PORT']}/metrics").read()
        for l in text.decode().splitlines():
            if l.startswith("etcd_debugging_mvcc_watcher_total "):
                return int(float(l.split()[1]))
        return 0
    try:
        ino = ":%d " % os.stat(lock).st_ino
    except FileNotFoundError:
        return 0
    return sum(1 for l in open("/proc/locks") if "->" in l and ino in l)

handoff, cold = [], []
for i in range(runs):
    key, t = f"k{i}", f"t{i}"
    os.mkfifo(f"gate{i}")
    leader = subprocess.Popen([bin, "once", key, "--", "bash", "-c",
                               f"echo $EPOCHREALTIME >> {t}; read x < gate{i}"])
    wait_for(lambda: len(lines(t)) == 1)
    waiter = subprocess.Popen([bin, "once", key, "--", "bash", "-c", f"echo $EPOCHREALTIME >> {t}"],
                              stdout=subprocess.DEVNULL)
    wait_for(lambda: blocked(f"home/once/{key}.lock") == 1)
    t0 = time.time()
    os.kill(leader.pid, 9)
    waiter.wait()
    leader.wait()
    handoff.append(float(lines(t)[1]) - t0)
    c = f"c{i}"
    t0 = time.time()
    subprocess.run([bin, "once", f"cold{i}", "--", "bash", "-c", f"echo $EPOCHREALTIME >> {c}"],
                   stdout=subprocess.DEVNULL, check=True)
    cold.append(float(lines(c)[0]) - t0)

def ms(xs):
    xs = sorted(xs)
    return f"median {statistics.median(xs)*1e3:.2f} ms, p90 {xs[int(len(xs)*0.9)-1]*1e3:.2f} ms"
print(f"runs: {runs}, cores: {os.cpu_count()}, backend: {'etcd' if os.environ.get('ETCD_PORT') else 'local'}")
print(f"handoff, SIGKILL of the leader -> the waiter's command runs: {ms(handoff)}")
print(f"uncontended, start of concur once -> its command runs:     {ms(cold)}")
print(f"ratio of medians (handoff / uncontended start): {statistics.median(handoff)/statistics.median(cold):.2f}")
PY
