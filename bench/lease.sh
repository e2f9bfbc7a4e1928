#!/usr/bin/env bash
# Whole-process lease acquire: `concur lease acquire` against the sqlite3 CLI running the same
# transaction on the same database (busy_timeout, synchronous=FULL, BEGIN IMMEDIATE, read the
# row, bump the fencing counter, insert the lease, commit). Before every measured run the lease
# is released (hyperfine --prepare: `concur session end` releases the session's leases), so every
# run is a fresh grant.
#
# Usage: bench/lease.sh [hyperfine args]   (needs hyperfine and sqlite3; builds --release)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(scripts/cargo-exe --release --bin concur)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export CONCUR_HOME=$dir/home CONCUR_SESSION=bench
"$BIN" lease list >/dev/null # creates the home and the database
DB=$CONCUR_HOME/leases.db

. bench/lib/lease-sql.sh # $ACQUIRE, $RELEASE

hyperfine -N --warmup 10 --runs "${RUNS:-200}" "$@" \
  --export-json "$dir/out.json" \
  --prepare "$BIN session end" -n "concur lease acquire" "$BIN lease acquire cli" \
  --prepare "sqlite3 $DB \"$RELEASE\"" -n "sqlite3 CLI, same transaction" "sqlite3 $DB \"$ACQUIRE\""

python3 - "$dir/out.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
c, s = r[0], r[1]
print(f"concur median {c['median']*1e3:.2f} ms, sqlite3 median {s['median']*1e3:.2f} ms, "
      f"ratio concur/sqlite3 = {c['median']/s['median']:.2f}")
PY
