#!/usr/bin/env bash
# Whole-process cost of taking a lock around a trivial command:
#   concur lock F true   vs   util-linux flock F true   (and concur's own flock link)
# Usage: bench/lock.sh            (builds the release binary first)
# Prints hyperfine's table; the ratio is concur ÷ flock, measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(scripts/cargo-exe --release --bin concur)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export CONCUR_HOME="$work/home"
ln -s "$bin" "$work/flock"
cd "$work"
"$bin" lock f true   # create the home and the lock file outside the measurement
hyperfine -N --warmup 50 --runs "${RUNS:-1000}" --export-json "$work/r.json" \
  "$bin lock f true" \
  "/usr/bin/flock f true" \
  "$work/flock f true"
python3 - "$work/r.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
c, f, link = (x["mean"] for x in r)
print(f"concur lock F true / flock F true = {c / f:.2f}  (concur {c*1e3:.3f} ms, flock {f*1e3:.3f} ms)")
print(f"flock link  F true / flock F true = {link / f:.2f}")
PY
