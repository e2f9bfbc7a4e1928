#!/usr/bin/env bash
# What `concur diagnose --chaos` buys and costs, from a release build. Prints markdown (the
# tables in docs/diagnose.md, "Measured").
#
# 1. The daily-log header race of issue 17 (4 bash writers, 50 rounds) for SEEDS seeds, with and
#    without --chaos: the round it was first caught in, how many rounds broke, time per round.
# 2. Every built-in naive target, ROUNDS rounds, with and without --chaos: rounds caught, first.
# 3. Every concur twin under --chaos: verdict, and time per round against the same run without.
#
# Usage: bench/chaos.sh [SEEDS] [ROUNDS]   (default 5 and 10)
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-5}
rounds=${2:-10}
bin=$(scripts/cargo-exe --release --bin concur)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
race='cd "$CONCUR_STATE_DIR"; [ -f log ] || echo "# header" > log; echo entry >> log'

echo "## The daily-log header race: 4 bash writers, 50 rounds ($(nproc) cores)"
echo
for s in $(seq "$seeds"); do
  "$bin" diagnose --json --chaos --seed "$s" --rounds 50 --cmd "bash -c '$race'" \
    --check 'header:log:# header' --check 'lines:log:^entry$' > "$tmp/race-chaos-$s.json" || true
  "$bin" diagnose --json --rounds 50 --cmd "bash -c '$race'" \
    --check 'header:log:# header' --check 'lines:log:^entry$' > "$tmp/race-plain-$s.json" || true
done
python3 - "$tmp" "$seeds" <<'PY'
import json, re, sys
d, seeds = sys.argv[1], int(sys.argv[2])
def parse(f):
    rs = json.load(open(f))["results"]
    first, broke = None, 0
    for r in rs[1:]:
        m = re.search(r"\(round (\d+); (\d+) of", r["observed"])
        if m:
            rd, k = int(m.group(1)), int(m.group(2))
            first = rd if first is None else min(first, rd)
            broke = max(broke, k)
    return first, broke, rs[0]["seconds"] / 50
print("| run | seed | first caught in round | rounds broken of 50 | time per round |")
print("|---|---|---|---|---|")
for s in range(1, seeds + 1):
    for kind in ("chaos", "plain"):
        first, broke, t = parse(f"{d}/race-{kind}-{s}.json")
        label = "--chaos" if kind == "chaos" else "without"
        seed = str(s) if kind == "chaos" else "-"
        print(f"| {label} | {seed} | {'-' if first is None else first} | {broke} | {t*1e3:.0f} ms |")
PY
echo
echo "## Built-in naive targets, $rounds rounds each: rounds caught, with and without --chaos"
echo
"$bin" diagnose --json --mode naive --rounds "$rounds" > "$tmp/naive-plain.json" || true
"$bin" diagnose --json --mode naive --rounds "$rounds" --chaos --seed 1 > "$tmp/naive-chaos.json" || true
"$bin" diagnose --json --mode concur > "$tmp/concur-plain.json" || true
"$bin" diagnose --json --mode concur --chaos --seed 1 > "$tmp/concur-chaos.json" || true
python3 - "$tmp" "$rounds" <<'PY'
import json, re, sys
d, rounds = sys.argv[1], int(sys.argv[2])
def load(n): return {r["target"]: r for r in json.load(open(f"{d}/{n}.json"))["results"]}
def caught(r):
    v = r["verdict"]
    if v in ("SAFE", "NOT REPRODUCED", "ERROR"): return 0, None
    ks = [int(k) for k in re.findall(r"(\d+) of %d rounds" % rounds, r["observed"])]
    fs = [int(f) for f in re.findall(r"\(round (\d+);", r["observed"])]
    return (max(ks) if ks else rounds), (min(fs) if fs else 0)
p, c = load("naive-plain"), load("naive-chaos")
print("| target | without: rounds caught | first | --chaos: rounds caught | first | time per round without / with |")
print("|---|---|---|---|---|---|")
for t in p:
    (kp, fp), (kc, fc) = caught(p[t]), caught(c[t])
    tp, tc = p[t]["seconds"] / rounds * 1e3, c[t]["seconds"] / rounds * 1e3
    print(f"| {t} | {kp}/{rounds} | {fp} | {kc}/{rounds} | {fc} | {tp:.0f} / {tc:.0f} ms |")
print()
print("## Concur twins under --chaos (default rounds)")
print()
p, c = load("concur-plain"), load("concur-chaos")
print("| target | verdict without | verdict with --chaos | time per round without | with --chaos | overhead per round |")
print("|---|---|---|---|---|---|")
for t in p:
    n = p[t]["rounds"]
    tp, tc = p[t]["seconds"] / n * 1e3, c[t]["seconds"] / n * 1e3
    print(f"| {t} | {p[t]['verdict']} | {c[t]['verdict']} | {tp:.0f} ms | {tc:.0f} ms | +{tc-tp:.0f} ms |")
PY
