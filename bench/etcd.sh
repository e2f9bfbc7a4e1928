#!/usr/bin/env bash
# concur's etcd backend against etcdctl, whole process, and in-process ops/s on 1 and 3 nodes.
#
# Starts its own etcd servers on loopback (bench/lib/etcd.sh), stops them by pid.
# Needs: etcd and etcdctl (Debian etcd-server, etcd-client), hyperfine, python3 (free ports).
# Usage: bench/etcd.sh [RUNS]        (hyperfine runs per command, default 40)
# Prints markdown tables; docs/perf/etcd.md holds a recorded run.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-40}

concur=$(scripts/cargo-exe --release --bin concur)
ops=$(scripts/cargo-exe --release --example etcd_ops)

. bench/lib/etcd.sh

# start_cluster N -> sets $url (etcd://...) and $eps (etcdctl --endpoints)
start_cluster() {
  etcd_start "$1"
  url=$etcd_url
  eps=$etcd_eps
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
for op in put lock lock-pooled slot slot-pooled token session; do
  one[$op]=$("$ops" "$url" "$op" 300 | python3 -c 'import json,sys; print(json.load(sys.stdin)["ops_per_s"])')
done
start_cluster 3
for op in put lock lock-pooled slot slot-pooled token session; do
  three=$("$ops" "$url" "$op" 300 | python3 -c 'import json,sys; print(json.load(sys.stdin)["ops_per_s"])')
  echo "| $op | ${one[$op]} | $three |"
done
