#!/usr/bin/env bash
# Scores `concur scan` on the labelled corpus of public agent-hook repositories
# (tests/corpus/scan/repos.tsv: name, URL, pinned commit; labels.tsv: file, line, expected
# pattern, expected risk). Prints, over every repository scanned with the default options:
#
#   recall        labelled sites whose expected pattern is the finding's pattern there
#                 ('-' sites: right when nothing at medium or above is reported there)
#   safe-as-high  labelled safe/low sites the scanner reports high
#   precision     3 random samples (seeds 1, 2, 3) of 20 `high` sites: share labelled high;
#                 an unlabelled sampled site is listed (label it, then run again)
#
# With --semgrep, the same trees also go through semgrep (bench/scan-semgrep.yml, a comparable
# rule set for Python and JS/TS; `pip install semgrep`, SEMGREP=path to override) and the wall
# times of both are printed with their ratio (both on every core).
#
# Usage: bench/scan-corpus.sh [--corpus DIR] [--no-fetch] [--verbose] [--semgrep] [-- SCAN-OPTIONS...]
#   DIR (default ~/.cache/concur-scan-corpus) holds one checkout per repository, named as in
#   repos.tsv; missing ones are cloned at the pinned commit unless --no-fetch.
#   needs: git, python3, a build (CONCUR_BIN, default target/release/concur or target/debug).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CORPUS="${HOME}/.cache/concur-scan-corpus"
FETCH=1
VERBOSE=0
SEMGREP_RUN=0
while [ $# -gt 0 ]; do
    case "$1" in
    --corpus) CORPUS=$2; shift 2 ;;
    --no-fetch) FETCH=0; shift ;;
    --verbose) VERBOSE=1; shift ;;
    --semgrep) SEMGREP_RUN=1; shift ;;
    --) shift; break ;;
    *) echo "bench/scan-corpus.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done
BIN="${CONCUR_BIN:-}"
if [ -z "$BIN" ]; then
    for b in target/release/concur target/debug/concur; do
        if [ -x "$b" ]; then BIN=$ROOT/$b; break; fi
    done
fi
[ -x "${BIN:-}" ] || { echo "bench/scan-corpus.sh: build first: cargo build --release" >&2; exit 2; }

mkdir -p "$CORPUS"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
while IFS=$'\t' read -r name url commit; do
    case "$name" in ''|'#'*) continue ;; esac
    dir="$CORPUS/$name"
    if [ ! -d "$dir" ]; then
        if [ "$FETCH" = 0 ]; then
            echo "bench/scan-corpus.sh: missing $dir (run without --no-fetch)" >&2
            exit 2
        fi
        git init -q "$dir"
        git -C "$dir" fetch -q --depth 1 "$url" "$commit"
        git -C "$dir" -c advice.detachedHead=false checkout -q FETCH_HEAD
    fi
    start=$(date +%s.%N)
    "$BIN" scan --json "$@" "$dir" >"$out/$name.json" 2>"$out/$name.err" || {
        echo "bench/scan-corpus.sh: scan failed on $name:" >&2
        cat "$out/$name.err" >&2
        exit 1
    }
    end=$(date +%s.%N)
    echo "$name $(python3 -c "print(f'{$end - $start:.2f}')")" >>"$out/times"
done <tests/corpus/scan/repos.tsv

if [ "$SEMGREP_RUN" = 1 ]; then
    SG="${SEMGREP:-semgrep}"
    dirs=()
    while IFS=$'\t' read -r name _ _; do
        case "$name" in ''|'#'*) continue ;; esac
        dirs+=("$CORPUS/$name")
    done <tests/corpus/scan/repos.tsv
    start=$(date +%s.%N)
    "$BIN" scan --json "${dirs[@]}" >"$out/all.json" 2>/dev/null
    mid=$(date +%s.%N)
    SEMGREP_ENABLE_VERSION_CHECK=0 "$SG" scan --config bench/scan-semgrep.yml --metrics=off \
        --disable-version-check --quiet --json -j "$(nproc)" "${dirs[@]}" >"$out/semgrep.json" 2>/dev/null || true
    end=$(date +%s.%N)
    python3 - "$start" "$mid" "$end" "$out" <<'PY'
import json, sys
a, b, c, out = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
n_scan = len(json.load(open(out + "/all.json"))["findings"])
n_sg = len(json.load(open(out + "/semgrep.json")).get("results", []))
print(f"concur scan: {b - a:.2f} s, {n_scan} findings; semgrep: {c - b:.2f} s, {n_sg} results; "
      f"scan / semgrep = {(b - a) / (c - b):.3f}")
PY
fi

python3 - "$out" tests/corpus/scan/labels.tsv "$VERBOSE" <<'PY'
import json, os, random, sys

out, labels_path, verbose = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
times = dict(l.split() for l in open(os.path.join(out, "times")))
labels = {}
for line in open(labels_path):
    if line.startswith("#") or not line.strip():
        continue
    repo, file, ln, pattern, risk, note = (line.rstrip("\n").split("\t") + [""])[:6]
    labels[(repo, file, int(ln))] = (pattern.split("|"), risk, note)

findings = {}
for repo in times:
    rep = json.load(open(os.path.join(out, repo + ".json")))
    findings[repo] = rep["findings"]

def at(repo, file, ln):
    return [f for f in findings.get(repo, []) if f["file"] == file and f["line_start"] <= ln <= f["line_end"]]

rank = {"safe": 0, "low": 1, "medium": 2, "high": 3}
hits, misses, safe_high = 0, [], []
for (repo, file, ln), (pats, risk, note) in sorted(labels.items()):
    fs = at(repo, file, ln)
    if "-" in pats and not any(rank[f["risk"]] >= 2 for f in fs):
        ok = True
    else:
        ok = any(f["pattern"] in pats for f in fs)
    if ok:
        hits += 1
    else:
        got = ", ".join(f"{f['pattern']}/{f['risk']}" for f in fs) or "nothing"
        misses.append(f"  {repo} {file}:{ln} want {'|'.join(pats)}/{risk}, got {got}")
    if risk in ("safe", "low") and any(f["risk"] == "high" for f in fs):
        safe_high.append(f"  {repo} {file}:{ln} ({note})")

print("repository                          findings  high  seconds")
for repo in sorted(times):
    fs = findings[repo]
    print(f"{repo:35} {len(fs):8} {sum(f['risk'] == 'high' for f in fs):5}  {times[repo]:>7}")
n = len(labels)
print(f"\nrecall (pattern right): {hits}/{n} = {100 * hits / n:.0f}%")
if verbose or len(misses) <= 15:
    print("\n".join(misses))
print(f"safe or low sites reported high: {len(safe_high)}")
print("\n".join(safe_high))

sites = sorted({(r, f["file"], f["line_start"]) for r, fs in findings.items() for f in fs if f["risk"] == "high"})
print(f"\nhigh sites: {len(sites)}")
unlabelled = set()
for seed in (1, 2, 3):
    sample = random.Random(seed).sample(sites, min(20, len(sites)))
    tp = fp = 0
    for s in sample:
        lab = labels.get(s)
        if lab is None:
            unlabelled.add(s)
        elif lab[1] == "high":
            tp += 1
        else:
            fp += 1
    print(f"precision of high, sample {seed}: {tp}/{len(sample)} labelled high, {fp} not, {len(sample) - tp - fp} unlabelled")
for s in sorted(unlabelled):
    print(f"  unlabelled: {s[0]} {s[1]}:{s[2]}")
PY
