#!/usr/bin/env bash
# Start-up cost of the concur binary: instruction counts (callgrind: repeatable whatever the
# load) and whole-process medians (hyperfine -N) against /bin/true, flock(1) and cat.
# Usage: bench/startup.sh [path/to/concur]   (default: builds and uses target/release/concur)
#        RUNS=300 bench/startup.sh           (hyperfine runs per command, default 200)
# Needs: valgrind (callgrind), hyperfine, python3, util-linux flock.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-}
if [ -z "$BIN" ]; then
  cargo build --release --quiet --bin concur
  BIN=target/release/concur
fi
BIN=$(realpath "$BIN")
runs=${RUNS:-200}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export CONCUR_HOME="$tmp/home"
unset CONCUR_SESSION CONCUR_BACKEND
cd "$tmp"
"$BIN" home >/dev/null
cat > "$CONCUR_HOME/concur.toml" <<TOML
[guard]
protect = ["~/.claude/projects/*/memory/MEMORY.md", "$tmp/shared/*.jsonl"]
TOML
mkdir -p proj
printf '%s' "{\"session_id\":\"8c35adc1-0b1e\",\"transcript_path\":\"/t.jsonl\",\"cwd\":\"$tmp/proj\",\"permission_mode\":\"default\",\"hook_event_name\":\"PreToolUse\",\"tool_name\":\"Write\",\"tool_input\":{\"file_path\":\"$tmp/proj/x.txt\",\"content\":\"hi\"},\"tool_use_id\":\"toolu_01DU\"}" > payload.json
"$BIN" lock f true

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
if command -v valgrind >/dev/null; then
  echo "| instructions (callgrind) | count |"
  echo "|---|---|"
  count() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null | sed -n 's/.*Collected : //p'; }
  echo "| \`concur --version\` | $(count "$BIN" --version) |"
  echo "| \`concur home\` | $(count "$BIN" home) |"
  echo "| \`concur hook claude\` (allowed Write) | $(count "$BIN" hook claude < payload.json) |"
  echo "| \`concur lock f true\` (concur's side only) | $(count "$BIN" lock f true) |"
  echo
else
  echo "(valgrind not installed: no instruction counts)"
fi

hyperfine -N --warmup 20 --runs "$runs" --export-json r.json \
  "$BIN --version" /bin/true "$BIN home" "$BIN lock f true" "/usr/bin/flock f true" >/dev/null 2>&1
# The hook reads its payload on stdin: timed from Python (fork+exec, payload on a pipe), with
# cat of the same payload as the floor.
python3 - "$BIN" payload.json r.json "$runs" <<'PY'
import json, statistics, subprocess, sys, time
binary, payload, results, runs = sys.argv[1], open(sys.argv[2], "rb").read(), sys.argv[3], int(sys.argv[4])
med = {r["command"].replace(binary, "concur"): statistics.median(r["times"]) * 1e3
       for r in json.load(open(results))["results"]}
def median_ms(cmd):
    times = []
    for i in range(20 + runs):
        t = time.perf_counter()
        subprocess.run(cmd, input=payload, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
        if i >= 20:
            times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)
med["concur hook claude < payload (from Python)"] = median_ms([binary, "hook", "claude"])
med["cat < payload (from Python)"] = median_ms(["cat"])
print("| command | median ms |")
print("|---|---|")
for k, v in med.items():
    print(f"| `{k}` | {v:.3f} |")
print()
print(f"concur --version / /bin/true = {med['concur --version'] / med['/bin/true']:.2f}")
print(f"concur lock f true / flock f true = {med['concur lock f true'] / med['/usr/bin/flock f true']:.2f}")
hook, cat = med["concur hook claude < payload (from Python)"], med["cat < payload (from Python)"]
print(f"hook / cat = {hook / cat:.2f} (hook {hook:.3f} ms, {hook - cat:.3f} ms above the floor)")
PY
