#!/usr/bin/env bash
# concur's etcd backend against etcdctl, whole process, and in-process ops/s on 1 and 3 nodes.
#
# Starts its own etcd servers on loopback (free ports, temporary data dirs), stops them by pid.
# Needs: etcd and etcdctl (Debian etcd-server, etcd-client), hyperfine, python3 (free ports).
# Usage: bench/etcd.sh [RUNS]        (hyperfine runs per command, default 40)
# Prints markdown tables; docs/perf/etcd.md holds a recorded run.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-40}

cargo build --release --quiet --bin concur --example etcd_ops
concur=$PWD/target/release/concur
ops=$PWD/target/release/examples/etcd_ops

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_cluster N -> sets $url (etcd://...) and $eps (etcdctl --endpoints)
start_cluster() {
  local n=$1 i initial="" cps=() pps=()
  for ((i = 0; i < n; i++)); do
    cps[i]=$(port); pps[i]=$(port)
    initial+="${initial:+,}b$n-$i=http://127.0.0.1:${pps[i]}"
  done
  for ((i = 0; i < n; i++)); do
    etcd --name "b$n-$i" --data-dir "$tmp/b$n-$i" \
      --listen-client-urls "http://127.0.0.1:${cps[i]}" --advertise-client-urls "http://127.0.0.1:${cps[i]}" \
      --listen-peer-urls "http://127.0.0.1:${pps[i]}" --initial-advertise-peer-urls "http://127.0.0.1:${pps[i]}" \
      --initial-cluster "$initial" --initial-cluster-token "bench-$n-$$" >"$tmp/b$n-$i.log" 2>&1 &
    pids+=($!)
  done
  eps=$(printf '127.0.0.1:%s,' "${cps[@]}"); eps=${eps%,}
  url="etcd://$eps"
  for _ in $(seq 200); do
    ETCDCTL_API=3 etcdctl --endpoints "$eps" endpoint health >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "etcd cluster of $n did not start" >&2; exit 1
}

mean_ms() { python3 -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["results"][0]["mean"]*1000))' "$1"; }

compare() { # name concur-cmd etcdctl-cmd [prepare]
  local name=$1 a=$2 b=$3 prep=${4:-true}
  hyperfine -N -w 3 -r "$runs" -p "$prep" --export-json "$tmp/a.json" "$a" >/dev/null 2>&1
  hyperfine -w 3 -r "$runs" -p "$prep" --export-json "$tmp/b.json" "$b" >/dev/null 2>&1
  local ma mb
  ma=$(mean_ms "$tmp/a.json"); mb=$(mean_ms "$tmp/b.json")
  printf '| %s | %s | %s | %.2f |\n' "$name" "$ma" "$mb" "$(python3 -c "print($ma/$mb)")"
}

start_cluster 1
export ETCDCTL_API=3
export CONCUR_HOME=$tmp/home CONCUR_SESSION=bench
echo "## Whole process, single node ($runs runs each; etcdctl through sh for its pipelines)"
echo
echo "| operation | concur ms | etcdctl ms | concur ÷ etcdctl |"
echo "|---|---|---|---|"
compare "lock + unlock (run \`true\`)" \
  "$concur --backend $url lock --name bench true" \
  "etcdctl --endpoints $eps lock bench true"
compare "token take (issued before each run)" \
  "$concur --backend $url token take bench" \
  "etcdctl --endpoints $eps del concur/token/bench" \
  "$concur --backend $url token issue bench --replace"
compare "lease claim (released before each run)" \
  "$concur --backend $url lease acquire bench" \
  "etcdctl --endpoints $eps put --lease=\$(etcdctl --endpoints $eps lease grant 600 | cut -d' ' -f2) claim/bench x" \
  "sh -c '$concur --backend $url lease release bench || true'"
echo
echo "## In-process ops/s (examples/etcd_ops, 300 ops in a row)"
echo
echo "| operation | 1 node ops/s | 3 nodes ops/s |"
echo "|---|---|---|"
declare -A one
for op in put lock slot token session; do
  one[$op]=$("$ops" "$url" "$op" 300 | python3 -c 'import json,sys; print(json.load(sys.stdin)["ops_per_s"])')
done
start_cluster 3
for op in put lock slot token session; do
  three=$("$ops" "$url" "$op" 300 | python3 -c 'import json,sys; print(json.load(sys.stdin)["ops_per_s"])')
  echo "| $op | ${one[$op]} | $three |"
done
