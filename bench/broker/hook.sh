#!/usr/bin/env bash
# Whole-process round trip of `concur hook claude` for an allowed PreToolUse (the path the agent
# waits on for every tool call), with a [guard] of two patterns, against `cat` of the same
# payload (the floor: one process start and a stdin read).
# Usage: bench/broker/hook.sh [path/to/concur]   (default: target/release/concur)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-target/release/concur}
[ -x "$BIN" ] || cargo build --release --quiet
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
# hyperfine runs each command through a shell and subtracts the shell's own start-up time.
hyperfine --warmup 50 --runs 500 \
  -n 'concur hook claude (allowed Write)' "$BIN hook claude < $tmp/payload.json" \
  -n 'cat payload (floor)' "cat $tmp/payload.json" \
  --export-json "$tmp/h.json" >&2
python3 - "$tmp/h.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
hook, cat = r[0], r[1]
print(f"hook median {hook['median']*1000:.2f} ms, cat median {cat['median']*1000:.2f} ms, "
      f"ratio {hook['median']/cat['median']:.2f}x")
PY
