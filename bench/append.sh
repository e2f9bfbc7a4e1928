#!/usr/bin/env bash
# Whole-process append cost: `concur append F '{..}'` against the shell idiom it replaces,
# `flock F.lock sh -c 'echo ... >> F'` (util-linux flock(1)). Both run as fresh processes per
# append, as a hook would; concur also fdatasyncs every line (the shell idiom does not), so a
# second pair compares `concur append --no-fsync` too.
#
# Usage: bench/append.sh [RUNS]   (default 300; needs hyperfine, flock, a release build)
# Output: hyperfine's table and the ratios, measured in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-300}
bin=$(scripts/cargo-exe --release --bin concur)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export CONCUR_HOME="$dir/home"
line='{"event":"tool","session":"s1","n":42,"ok":true}'

hyperfine --warmup 20 --runs "$runs" -N --export-json "$dir/r.json" \
  -n "concur append" "$bin append $dir/a.jsonl '$line'" \
  -n "concur append --no-fsync" "$bin append --no-fsync $dir/b.jsonl '$line'" \
  -n "flock F.lock sh -c 'echo >> F'" "flock $dir/c.jsonl.lock sh -c 'echo '\''$line'\'' >> $dir/c.jsonl'"

python3 - "$dir/r.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
base = r["flock F.lock sh -c 'echo >> F'"]["median"]
for name in ("concur append", "concur append --no-fsync"):
    m = r[name]["median"]
    print(f"{name}: median {m*1e3:.2f} ms; ratio to flock+sh {m/base:.2f}")
print(f"flock F.lock sh -c 'echo >> F': median {base*1e3:.2f} ms")
PY
