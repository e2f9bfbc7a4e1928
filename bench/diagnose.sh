#!/usr/bin/env bash
# Wall time of `concur diagnose` (the built-in suite) and each target's time per mode, from a
# release build. Prints markdown (the tables in docs/perf/diagnose.md).
# Usage: bench/diagnose.sh [RUNS]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
bin=$(scripts/cargo-exe --release --bin concur)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "## Whole suite: \`concur diagnose\` ($runs runs, $(nproc) cores)"
echo
hyperfine --style none --warmup 1 --runs "$runs" --export-json "$tmp/h.json" "$bin diagnose" >/dev/null
python3 - "$tmp/h.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print("| mean | min | max |\n|---|---|---|")
print(f"| {r['mean']:.2f} s | {r['min']:.2f} s | {r['max']:.2f} s |")
PY
echo
echo "## Per target (median of $runs runs; verdicts seen across all runs)"
echo
for i in $(seq "$runs"); do "$bin" diagnose --json > "$tmp/run-$i.json"; done
python3 - "$tmp" <<'PY'
import glob, json, statistics, sys
rows = {}
for f in sorted(glob.glob(sys.argv[1] + "/run-*.json")):
    for r in json.load(open(f))["results"]:
        k = (r["target"], r["mode"])
        rows.setdefault(k, {"t": [], "v": set(), "w": r["writers"], "ops": r["ops"], "rounds": r["rounds"]})
        rows[k]["t"].append(r["seconds"])
        rows[k]["v"].add(r["verdict"])
print("| target | mode | writers | ops | rounds | median time | verdicts |\n|---|---|---|---|---|---|---|")
for (t, m), r in rows.items():
    print(f"| {t} | {m} | {r['w']} | {r['ops']} | {r['rounds']} | {statistics.median(r['t']):.3f} s | {', '.join(sorted(r['v']))} |")
PY
