#!/bin/sh
# Full-scale SIGKILL torture (see tests/it/torture.rs): 5,000 kills of append (lines up to
# 400 KB), write, json, ledger, broker clients and the broker daemon, niced. Prints the table
# docs/RELIABILITY.md records (also written to target/torture/table.md); exits non-zero if any
# promise broke. Runs copies of the binaries, so rebuilding meanwhile does not disturb it.
#
#   bench/torture.sh                                  # 5,000 kills, lines up to 400 KB
#   SCALE=20000 bench/torture.sh                      # more kills
#   CONCUR_TORTURE_SEED=123 bench/torture.sh          # replay a run
set -eu
cd "$(dirname "$0")/.."
cargo build --quiet --tests --bins
it=$(cargo test --no-run --test it --message-format=json 2>/dev/null \
    | sed -n 's/.*"executable":"\([^"]*\/it-[^"]*\)".*/\1/p' | tail -n 1)
mkdir -p target/torture
cp target/debug/concur target/torture/concur
cp "$it" target/torture/it
CONCUR_TEST_BIN="$PWD/target/torture/concur" \
CONCUR_TORTURE_SCALE=${SCALE:-5000} \
CONCUR_TORTURE_MAX_LINE=${MAX_LINE:-409600} \
CONCUR_TORTURE_REPORT="$PWD/target/torture/table.md" \
    nice -n 10 target/torture/it --exact torture::sigkill_torture_leaves_no_torn_lost_or_doubled_record --nocapture
