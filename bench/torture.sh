#!/bin/sh
# Full-scale SIGKILL torture (see tests/it/torture.rs): 5,000 kills of append (lines up to
# 400 KB), write, json, ledger, broker clients and the broker daemon, niced. Prints the table
# docs/RELIABILITY.md records; exits non-zero if any promise broke.
#
#   bench/torture.sh                 # 5,000 kills, lines up to 400 KB
#   SCALE=20000 bench/torture.sh     # more
set -eu
cd "$(dirname "$0")/.."
out=${OUT:-target/torture.md}
CONCUR_TORTURE_SCALE=${SCALE:-5000} \
CONCUR_TORTURE_MAX_LINE=${MAX_LINE:-409600} \
CONCUR_TORTURE_REPORT="$PWD/$out" \
    nice -n 10 cargo nextest run --no-capture -E 'test(=torture::sigkill_torture_leaves_no_torn_lost_or_doubled_record)'
echo "table written to $out"
