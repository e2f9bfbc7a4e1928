#!/usr/bin/env bash
# Whole-process cost of the edit-reservation check with 1,000 active reservations held by 20
# sessions (50 each: 45 files and 5 globs per session, in one repository):
#   concur hook claude < PreToolUse payload   (the agent waits on this for every edit)
#   concur reserve check PATH                 (the same question from a script)
#   /bin/cat payload                          (the floor: one process reading the payload)
# Compare medians; on a loaded machine look at min too.
# Usage: bench/reserve.sh            (builds the release binary first; CONCUR_BIN=path skips that)
# Prints hyperfine's table, the medians and the ratios to /bin/cat, all from the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${CONCUR_BIN:-$(scripts/cargo-exe --release --bin concur)}
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export CONCUR_HOME="$work/home"
repo="$work/repo"
mkdir -p "$repo/.git" "$repo/src"
cd "$repo"
for s in $(seq 1 20); do
  args=()
  for f in $(seq 1 45); do args+=("src/s$s/file$f.rs"); done
  for g in $(seq 1 5); do args+=("src/s$s/gen$g/**"); done
  "$bin" reserve --session "sess-$s" "${args[@]}" >/dev/null
done
test "$("$bin" reservations --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["reservations"]))')" = 1000
# An edit by a session holding nothing, of a file nobody reserved (the common case: allowed
# after checking all 1,000), and of a reserved one (denied, holder named).
printf '{"session_id":"editor","transcript_path":"/t","cwd":"%s","permission_mode":"default","hook_event_name":"PreToolUse","tool_name":"Edit","tool_input":{"file_path":"%s/src/free/new.rs","old_string":"a","new_string":"b"},"tool_use_id":"toolu_1"}' "$repo" "$repo" > "$work/free.json"
printf '{"session_id":"editor","transcript_path":"/t","cwd":"%s","permission_mode":"default","hook_event_name":"PreToolUse","tool_name":"Edit","tool_input":{"file_path":"%s/src/s7/gen3/x.rs","old_string":"a","new_string":"b"},"tool_use_id":"toolu_1"}' "$repo" "$repo" > "$work/held.json"
"$bin" hook claude < "$work/free.json" > "$work/out" ; test ! -s "$work/out"
"$bin" hook claude < "$work/held.json" | grep -q '"deny"'
# -N: no shell in the measurement. `reserve check` and `cat FILE` take no stdin; the hook
# reads its payload from stdin, so it and its floor both run as `sh -c 'exec ... < payload'`
# (the same shell start-up on both sides of that ratio).
hyperfine -N --warmup 30 --runs "${RUNS:-500}" --export-json "$work/r.json" \
  -n "reserve check (free path)" "$bin reserve check --session editor src/free/new.rs" \
  -n "/bin/cat payload" "/bin/cat $work/free.json" \
  -n "hook claude (free path)" "sh -c 'exec $bin hook claude < $work/free.json'" \
  -n "hook claude (reserved path, deny)" "sh -c 'exec $bin hook claude < $work/held.json'" \
  -n "sh: cat < payload" "sh -c 'exec /bin/cat < $work/free.json'"
python3 - "$work/r.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
def row(name, floor):
    x, f = r[name], r[floor]
    print(f"{name:36s} median {x['median']*1e3:6.3f} ms  min {x['min']*1e3:6.3f} ms  "
          f"ratio to {floor!r} (medians) {x['median']/f['median']:5.2f}")
row("reserve check (free path)", "/bin/cat payload")
row("hook claude (free path)", "sh: cat < payload")
row("hook claude (reserved path, deny)", "sh: cat < payload")
PY
