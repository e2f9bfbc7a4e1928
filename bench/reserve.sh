#!/usr/bin/env bash
# Whole-process cost of the edit-reservation check with 1,000 active reservations held by 20
# sessions (50 each: 45 files and 5 globs per session, in one repository):
#   concur hook claude < PreToolUse payload   (the agent waits on this for every edit)
#   concur reserve check PATH                 (the same question from a script)
#   /bin/cat payload                          (the floor: one process reading the payload)
# Usage: bench/reserve.sh            (builds the release binary first)
# Prints hyperfine's table, the medians and the ratios to /bin/cat, all from the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin="$PWD/target/release/concur"
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
# hyperfine runs each command through sh and subtracts the shell's own start-up time, so the
# `< payload` redirection costs nothing extra in the numbers.
hyperfine --warmup 30 --runs "${RUNS:-500}" --export-json "$work/r.json" \
  -n "hook claude (free path)" "$bin hook claude < $work/free.json" \
  -n "hook claude (reserved path, deny)" "$bin hook claude < $work/held.json" \
  -n "reserve check" "$bin reserve check --session editor src/free/new.rs" \
  -n "/bin/cat payload" "/bin/cat < $work/free.json"
python3 - "$work/r.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
cat = r["/bin/cat payload"]["median"]
for name, x in r.items():
    print(f"{name:36s} median {x['median']*1e3:6.3f} ms   ratio to cat {x['median']/cat:5.2f}")
PY
