#!/usr/bin/env bash
# Whole-process round trip of `concur hook claude` for an allowed PreToolUse (the path the agent
# waits on for every tool call), with a [guard] of two patterns, against `cat` of the same
# payload (the floor: one process start and a stdin read).
# Usage: bench/broker/hook.sh [path/to/concur]   (default: the release build, via scripts/cargo-exe)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-$(scripts/cargo-exe --release --bin concur)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export CONCUR_HOME="$tmp/home"
"$BIN" home >/dev/null
cat > "$CONCUR_HOME/concur.toml" <<TOML
[guard]
protect = ["~/.claude/projects/*/memory/MEMORY.md", "$tmp/shared/*.jsonl"]
TOML
mkdir -p "$tmp/proj"
printf '%s' "{\"session_id\":\"8c35adc1-0b1e\",\"transcript_path\":\"/t.jsonl\",\"cwd\":\"$tmp/proj\",\"permission_mode\":\"default\",\"hook_event_name\":\"PreToolUse\",\"tool_name\":\"Write\",\"tool_input\":{\"file_path\":\"$tmp/proj/x.txt\",\"content\":\"hi\"},\"tool_use_id\":\"toolu_01DU\"}" > "$tmp/payload.json"
# Sanity: allowed means exit 0 and no output.
out=$("$BIN" hook claude < "$tmp/payload.json")
[ -z "$out" ] || { echo "unexpected hook output: $out" >&2; exit 1; }
# Timed from Python: each run is a fork+exec with the payload on a pipe, as the agent does it
# (hyperfine cannot feed stdin without a shell, and a shell's start-up dwarfs what is measured).
python3 - "$BIN" "$tmp/payload.json" <<'PY'
import statistics, subprocess, sys, time
binary, payload = sys.argv[1], open(sys.argv[2], "rb").read()
def median_ms(cmd, runs=500, warmup=50):
    times = []
    for i in range(warmup + runs):
        t = time.perf_counter()
        r = subprocess.run(cmd, input=payload, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        dt = time.perf_counter() - t
        assert r.returncode == 0 and r.stdout == b"" or cmd[0] == "cat", r
        if i >= warmup:
            times.append(dt * 1000)
    return statistics.median(times), statistics.quantiles(times, n=20)[18]
hook = median_ms([binary, "hook", "claude"])
cat = median_ms(["cat"])
print(f"concur hook claude (allowed Write): median {hook[0]:.2f} ms, p95 {hook[1]:.2f} ms")
print(f"cat of the payload (floor):         median {cat[0]:.2f} ms, p95 {cat[1]:.2f} ms")
print(f"ratio of medians: {hook[0] / cat[0]:.2f}x")
PY
