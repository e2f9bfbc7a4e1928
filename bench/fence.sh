#!/usr/bin/env bash
# What fencing costs: write / json with and without --fence (local record only, then with the
# etcd holder check), and json --key (CAS on etcd) against a plain etcdctl put.
#
# Starts its own single-node etcd on loopback (bench/lib/etcd.sh), stops it by pid.
# Needs: etcd and etcdctl (Debian etcd-server, etcd-client), hyperfine, python3 (free port).
# Usage: bench/fence.sh [RUNS]   (hyperfine runs per command, default 40)
#        CONCUR_BIN=$(scripts/cargo-exe --bin concur) bench/fence.sh   (a debug build)
# Prints a markdown table; docs/perf/fence.md holds a recorded run.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-40}

if [ -z "${CONCUR_BIN:-}" ]; then
  CONCUR_BIN=$(scripts/cargo-exe --release --bin concur)
fi
concur=$CONCUR_BIN

. bench/lib/etcd.sh
holder=
cleanup() {
  [ -n "$holder" ] && kill "$holder" 2>/dev/null || true
  etcd_cleanup
}
trap cleanup EXIT
etcd_start 1
eps=$etcd_eps
url=$etcd_url
export ETCDCTL_API=3 CONCUR_HOME=$tmp/home

# A lock holder for the etcd-checked runs: its command reports the fence, then waits.
mkfifo "$tmp/go"
"$concur" --backend "$url" lock --name bench -c "printf %s \"\$CONCUR_FENCE\" > $tmp/fence; cat $tmp/go >/dev/null" &
holder=$!
for _ in $(seq 200); do [ -s "$tmp/fence" ] && break; sleep 0.05; done
fence=$(cat "$tmp/fence")
cd "$tmp"
echo '{"n":0}' > doc.json

# Both commands in one hyperfine run, alternating baseline and fenced in blocks of 5 so that
# load changes on a shared machine hit both sides alike; medians.
row() { # name base-cmd cmd
  local i a b
  : >"$tmp/samples-a"; : >"$tmp/samples-b"
  for ((i = 0; i < runs; i += 5)); do
    hyperfine -N -w 1 -r 5 --export-json "$tmp/h.json" "$2" "$3" >/dev/null 2>&1
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]
for x, f in zip(r, sys.argv[2:]): open(f, "a").write("\n".join(str(t) for t in x["times"]) + "\n")' \
      "$tmp/h.json" "$tmp/samples-a" "$tmp/samples-b"
  done
  python3 - "$1" "$tmp/samples-a" "$tmp/samples-b" <<'PY'
import statistics, sys
a = statistics.median(float(l) for l in open(sys.argv[2]) if l.strip()) * 1000
b = statistics.median(float(l) for l in open(sys.argv[3]) if l.strip()) * 1000
print("| %s | %.2f | %.2f | %.2f |" % (sys.argv[1], a, b, b / a))
PY
}

echo "## Fencing overhead (median of $runs runs each, whole process)"
echo
echo "| operation | baseline ms (median) | measured ms (median) | measured ÷ baseline |"
echo "|---|---|---|---|"
row "write, record only (no backend)" "$concur write a.txt x" "$concur write --fence $fence a.txt x"
row "write, record + etcd holder check" "$concur write b.txt x" "$concur --backend $url write --fence $fence b.txt x"
row "json '.n += 1', record + etcd holder check" "$concur json doc.json .n+=1" "$concur --backend $url json --fence $fence doc.json .n+=1"
"$concur" --backend "$url" json --key doc . --init '{"n":0}' >/dev/null
row "json --key '.n += 1' (etcd CAS); baseline: etcdctl put" "etcdctl --endpoints $eps put concur/x 1" "$concur --backend $url json --key doc .n+=1"
row "json --key, fenced in the txn; baseline: unfenced" "$concur --backend $url json --key doc .n+=1" "$concur --backend $url json --key doc --fence $fence .n+=1"
echo go > "$tmp/go"
wait "$holder" || true
holder=
